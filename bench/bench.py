#!/usr/bin/env python3
"""Side-by-side benchmarks: berthd vs dockerd on this machine.

Each daemon runs on its own socket, data root and exec root, inside its own
network namespace (so neither touches the host's networks). Measurements are
paired (A B A B ...) and the table shows medians and the berthd/dockerd ratio
(< 1 means berthd is faster or smaller), and issue #21's target where a row
has one, with a met/missed mark.

Usage: bench/bench.py [--runs N] [--only ROW[,ROW...]] [--keep] [--baseline BIN_DIR]
                      [--back-to-back | --modes settled|b2b|both] [--scale N] [--quick]
Needs root. Installs docker.io if dockerd is absent. Not part of CI.

--baseline BIN_DIR pairs this build's berthd against another build's (e.g.
a release build of an earlier commit) instead of dockerd: a before/after
check of a change, measured the same way.

Modes: settled (the default) pauses BENCH_SETTLE seconds (0.2) before each
sample, so one daemon's trailing work is not billed to the other; back to
back (--back-to-back) has no pause, as CI loops run, and times each run
right after an untimed run of the same daemon, as in a loop on one engine
(BENCH_B2B_INTERLEAVED=1: every run timed, each after the other daemon's);
--modes both measures every row that depends on it both ways and prints
both. Memory, cold start,
the scale and the stream rows are measured once.

Before the rows (and before each scale phase) the page cache is dropped
and the machine let settle: dying memory cgroups left by whatever ran
earlier slow every container's start and removal, and a previous run's
kernel work may still be going on (lib/machine.py).

--scale N sets the container count of the scale rows (default 1000; 100
with --quick). BENCH_STREAM_MB sets the size of the logs and cp rows
(default 1000 MB; 100 with --quick).
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib.catalog import ROWS, Result  # noqa: E402
from lib.daemon import BERTH_BIN, DEFAULT_SETTLE, ROOT, Daemon, ensure_dockerd, set_lead, set_settle, settle, sh  # noqa: E402
from lib.machine import settle_machine  # noqa: E402
import rows  # noqa: E402,F401  (registers the rows)

MODE_TITLES = {"settled": "settled", "b2b": "back to back"}


class Ctx:
    def __init__(self, args, vs_dockerd):
        self.runs = args.runs
        self.scale = args.scale if args.scale else (100 if args.quick else 1000)
        default_mb = 100 if args.quick else 1000
        self.stream_mb = float(os.environ.get("BENCH_STREAM_MB", default_mb))
        self.vs_dockerd = vs_dockerd


def run_rows(b, d, ctx, modes, only):
    """Runs the selected rows in each mode; returns {line name: entry}, in
    order, an entry holding unit, target, note and {mode: (vb, vd)}."""
    table = {}

    def put(res, mode):
        e = table.setdefault(res.name, {"unit": res.unit, "target": res.target, "note": res.note, "vals": {}})
        e["vals"][mode] = (res.vb, res.vd)
        e["unit"] = res.unit

    for r in ROWS.values():
        if not r.matches(ctx, only):
            continue
        title = r.title(ctx)
        for mode in (modes if r.modal else modes[:1]):
            set_settle(0.0 if mode == "b2b" else settled_pause())
            set_lead(r.modal and mode == "b2b")
            print(f"  measuring ({MODE_TITLES[mode]}): {title} ...", file=sys.stderr)
            try:
                out = r.fn(b, d, ctx)
                if isinstance(out, tuple):
                    out = [Result(title, out[0], out[1], out[2], r.target)]
                for res in out:
                    put(res, mode)
            except Exception as e:  # a failed row is reported, not fatal
                detail = getattr(e, "stderr", None) or b""
                if isinstance(detail, bytes):
                    detail = detail.decode(errors="replace")
                put(Result(title, None, None, f"error: {e} {detail.strip()}"[:600], r.target), mode)
    return table


def settled_pause():
    env = os.environ.get("BENCH_SETTLE")
    return float(env) if env is not None and float(env) > 0 else DEFAULT_SETTLE


def judge(entry, modes, ctx):
    """The target's label and mark: met / MISSED / n/a; `*` when judged
    on another mode than the one the target is stated in."""
    t = entry["target"]
    if t is None:
        return "", ""
    vals = {m: v for m, v in entry["vals"].items() if v[0] is not None}
    if not vals:
        return t.label(entry["unit"]), "n/a"
    mode = t.mode if t.mode in vals else next(m for m in modes if m in vals)
    ok = t.met(*vals[mode], ctx.vs_dockerd)
    mark = "n/a" if ok is None else ("met" if ok else "MISSED")
    if t.mode and mode != t.mode and ok is not None:
        mark += "*"
    return t.label(entry["unit"]), mark


def print_table(table, modes, b, d, ctx):
    if not table:
        print("no row matched --only")
        return
    w = max(len(n) for n in table) + 2
    head = f"{'benchmark':<{w}}"
    for m in modes:
        tag = "" if len(modes) == 1 else ("b2b " if m == "b2b" else "")
        head += f"{tag + b.label:>14}{tag + d.label:>14}{'ratio':>8}"
    head += f"  {'unit':<6}{'#21 target':>14}  met"
    if len(modes) == 1 and modes[0] == "b2b":
        print("\n(back to back: no pause between samples)")
    print("\n" + head)
    print("-" * len(head))
    notes = []
    for name, e in table.items():
        if e["unit"].startswith("error"):
            print(f"{name:<{w}}{e['unit']}")
            continue
        line = f"{name:<{w}}"
        once = len(e["vals"]) == 1 and next(iter(e["vals"])) not in modes[1:]
        for i, m in enumerate(modes):
            v = e["vals"].get(m) or (next(iter(e["vals"].values())) if once and i == 0 else None)
            if v is None or v[0] is None:
                line += f"{'—':>14}{'—':>14}{'':>8}"
                continue
            vb, vd = v
            ratio = vb / vd if vd else float("nan")
            line += f"{vb:>14.2f}{vd:>14.2f}{ratio:>8.3f}"
        label, mark = judge(e, modes, ctx)
        print(f"{line}  {e['unit']:<6}{label:>14}  {mark}")
        if e["note"]:
            notes.append(f"{name}: {e['note']}")
    print(f"\nratio = {b.label} / {d.label} (median of paired runs; lower is better, except MB/s rows)")
    if len(modes) > 1:
        print("rows measured once (memory, cold start, scale, streams) show in the settled columns")
    print("met* = judged on a mode other than the one the target names (b2b targets need --modes both or b2b)")
    if not ctx.vs_dockerd:
        print("ratio targets are against dockerd: n/a against a baseline build")
    for n in notes:
        print(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--baseline", default="", help="pair against this bin dir's berthd, not dockerd")
    ap.add_argument("--back-to-back", action="store_true", help="no settling pause between samples")
    ap.add_argument("--modes", choices=("settled", "b2b", "both"), default=None,
                    help="settled, back to back (b2b) or both, each row twice")
    ap.add_argument("--scale", type=int, default=0, help="containers in the scale rows (default 1000)")
    ap.add_argument("--quick", action="store_true", help="scale 100 and 100 MB streams unless set")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root (namespaces, mounts)")
    # A SIGTERM (`timeout`, a CI job's end) unwinds like Ctrl-C: the rows'
    # clean-up removes their containers before the daemons are stopped
    # (by default Python would die at once, leaving both engines' containers).
    signal.signal(signal.SIGTERM, lambda sig, _frame: sys.exit(128 + sig))
    mode = args.modes or ("b2b" if args.back_to_back or settle() == 0 else "settled")
    modes = ["settled", "b2b"] if mode == "both" else [mode]
    if not os.path.exists(os.path.join(BERTH_BIN, "berthd")):
        print("building berth (release) ...", file=sys.stderr)
        sh(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT)
    if not args.baseline:
        ensure_dockerd()
    # Short: containerd's shim sockets live under the exec root (sun_path).
    base = tempfile.mkdtemp(prefix="bb", dir="/tmp")
    b = Daemon("berthd", base)
    d = (Daemon("berthd", base, bin_dir=args.baseline, label="baseline")
         if args.baseline else Daemon("dockerd", base))
    ctx = Ctx(args, vs_dockerd=not args.baseline)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    table = {}
    try:
        b.start()
        d.start()
        # Not the residue of earlier runs: see lib/machine.py.
        settle_machine()
        table = run_rows(b, d, ctx, modes, only)
    finally:
        b.close()
        d.close()
        if not args.keep:
            for root, dirs, _ in os.walk(base, topdown=False):
                for x in dirs:
                    p = os.path.join(root, x)
                    if os.path.ismount(p):
                        sh(["umount", "-l", p], check=False)
            shutil.rmtree(base, ignore_errors=True)
    print_table(table, modes, b, d, ctx)


if __name__ == "__main__":
    main()
