//! Issue 15: berthd's answers against dockerd's, recorded as golden
//! fixtures (`conformance/golden/v1.41/`) and type-derived 1.50 shapes
//! (`conformance/golden/v1.50/`). The harness replays its scenario on a
//! berthd of its own; differences listed in `conformance/known-gaps.json`
//! are tolerated, any other one fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::*;

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/conformance.py")
}

#[test]
fn berthd_matches_the_golden_fixtures() {
    let d = Daemon::start();
    let started = Instant::now();
    let child = Command::new("python3")
        .arg(harness())
        .args(["--golden", "--sock"])
        .arg(&d.sock)
        .arg("--docker-config")
        .arg(&d.docker_config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the harness");
    let out = finish(child, Duration::from_secs(300));
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "conformance harness failed ({}) after {:?}:\n{text}\ndaemon log tail:\n{}",
        out.status,
        started.elapsed(),
        tail(&d.log_text(), 40)
    );
    // It ran the scenario and compared something.
    assert!(text.contains("berthd vs golden v1.41 fixtures"), "{text}");
    assert!(!text.contains("cases without a fixture"), "{text}");

    // And left nothing behind.
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "", "containers left");
    assert_eq!(
        d.docker_ok(&["volume", "ls", "-q"]).trim(),
        "",
        "volumes left"
    );
    assert_eq!(d.docker_ok(&["images", "-aq"]).trim(), "", "images left");
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut nets: Vec<&str> = nets.lines().collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"], "networks left");
}
