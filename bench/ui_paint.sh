#!/usr/bin/env bash
# The dashboard's first paint and memory with many containers (issue 23):
# runs the ignored measurement in tests/e2e/ui/paint.rs (headless Chromium
# over WebDriver against a berthd of its own; needs root, chromium and
# chromium-driver). Not part of CI.
#
#   bench/ui_paint.sh                                   # 300 running containers
#   BERTH_UI_PAINT_N=1000 BERTH_UI_PAINT_RUNNING=0 bench/ui_paint.sh
#
# BERTH_UI_PAINT_LOADS sets the page loads (default 7; medians are printed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
exec cargo test -p berth-tests --test ui -- --ignored --exact \
  paint::first_paint_and_memory_with_many_containers --nocapture
