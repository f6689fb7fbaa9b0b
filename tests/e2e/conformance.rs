//! Issue 15: berthd's answers against dockerd's, recorded as golden
//! fixtures (`conformance/golden/v1.41/`) and type-derived 1.50 shapes
//! (`conformance/golden/v1.50/`). The harness replays its scenario on a
//! berthd of its own; differences listed in `conformance/known-gaps.json`
//! are tolerated, any other one fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::*;

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance")
}

/// Runs the harness in golden mode against `d` with extra arguments;
/// returns (success, stdout + stderr).
fn run_golden(d: &Daemon, extra: &[&str]) -> (bool, String) {
    let child = Command::new("python3")
        .arg(conformance_dir().join("conformance.py"))
        .args(["--golden", "--sock"])
        .arg(&d.sock)
        .arg("--docker-config")
        .arg(&d.docker_config)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the harness");
    let out = finish(child, Duration::from_secs(300));
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    (out.status.success(), text)
}

fn assert_nothing_left(d: &Daemon) {
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

#[test]
fn berthd_matches_the_golden_fixtures() {
    let d = Daemon::start();
    let started = Instant::now();
    let (ok, text) = run_golden(&d, &[]);
    assert!(
        ok,
        "conformance harness failed after {:?}:\n{text}\ndaemon log tail:\n{}",
        started.elapsed(),
        tail(&d.log_text(), 40)
    );
    // It ran the scenario and compared something.
    assert!(text.contains("berthd vs golden v1.41 fixtures"), "{text}");
    assert!(!text.contains("cases without a fixture"), "{text}");
    assert_nothing_left(&d);
}

/// The harness is a check that can fail: against fixtures altered on
/// purpose (and no known gaps), it reports exactly those differences.
#[test]
fn golden_mode_reports_differences() {
    let d = Daemon::start();
    let golden = scratch();
    let src = conformance_dir().join("golden/v1.41");
    for case in ["ping", "version"] {
        let name = format!("{case}.json");
        let text = std::fs::read_to_string(src.join(&name)).expect("fixture");
        let mut fx: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
        if case == "ping" {
            fx["status"] = 299.into();
        } else {
            fx["paths"]["NoSuchKey"] = "string".into();
        }
        std::fs::write(golden.path().join(&name), fx.to_string()).expect("write fixture");
    }
    let gaps = golden.path().join("gaps.json");
    std::fs::write(&gaps, "{}").expect("write gaps");
    let (ok, text) = run_golden(
        &d,
        &[
            "--only",
            "ping,version",
            "--golden-dir",
            &golden.path().display().to_string(),
            "--known-gaps",
            &gaps.display().to_string(),
            "--types-dir",
            &golden.path().join("none").display().to_string(),
        ],
    );
    assert!(!ok, "altered fixtures must fail the run:\n{text}");
    assert!(text.contains("[DIFF] ping: status: 299 != 200"), "{text}");
    assert!(text.contains("[DIFF] version: missing NoSuchKey"), "{text}");
    assert_nothing_left(&d);
}
