//! Issue 7: limits, restart policies, health checks, stats, export, diff,
//! commit, update — through the real docker CLI.

use std::process::Stdio;
use std::time::Duration;

use berth_tests::*;

/// How often a wait polls here (its conditions run the docker CLI).
const POLL: Duration = Duration::from_millis(100);

/// Past events up to now. `--until 0s` is whole seconds in the CLI, so it
/// would miss this second's events; ask until the next second instead.
fn events(d: &Daemon, filter: &str, format: &str) -> String {
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    d.docker_ok(&[
        "events", "--since", "0", "--until", &until, "--filter", filter, "--format", format,
    ])
}

fn cgroup_file(d: &Daemon, name: &str, ctrl: &str, file: &str) -> String {
    let id = d.inspect_format(name, "{{.Id}}");
    let parent = d.cgroup_parent();
    for p in [
        format!("/sys/fs/cgroup/{ctrl}{parent}/{id}/{file}"),
        format!("/sys/fs/cgroup{parent}/{id}/{file}"),
    ] {
        if let Ok(s) = std::fs::read_to_string(&p) {
            return s.trim().to_string();
        }
    }
    panic!("no {ctrl}/{file} for {name}");
}

#[test]
fn memory_limit_oom_kills_with_137_and_an_oom_event() {
    let d = daemon();
    let o = d.docker(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert_eq!(
        d.inspect_format("hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    let ev = events(&d, "container=hog", "{{.Action}}");
    assert!(ev.lines().any(|l| l == "oom"), "{ev}");
}

#[test]
fn pids_and_cpu_limits_hold_and_update_changes_them() {
    let d = daemon();
    // The 21st process cannot be forked.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "pl",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "300",
    ]);
    let o = d.docker(&[
        "exec",
        "pl",
        "sh",
        "-c",
        "for i in $(seq 1 30); do sleep 100 & done",
    ]);
    assert!(stderr(&o).contains("can't fork"), "{}", stderr(&o));
    let current: u32 = cgroup_file(&d, "pl", "pids", "pids.current")
        .parse()
        .unwrap();
    assert!(current <= 20, "{current} processes under a limit of 20");
    d.docker_ok(&[
        "run", "-d", "--name", "lim", "--cpus", "0.5", "-m", "32m", "busybox", "sleep", "300",
    ]);
    let quota = cgroup_file(&d, "lim", "cpu", "cpu.cfs_quota_us");
    assert_eq!(quota, "50000");
    assert_eq!(
        cgroup_file(&d, "lim", "memory", "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    d.docker_ok(&["update", "--memory", "64m", "--memory-swap", "128m", "lim"]);
    assert_eq!(
        cgroup_file(&d, "lim", "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        d.inspect_format("lim", "{{.HostConfig.Memory}}"),
        (64u64 << 20).to_string()
    );
    let ev = events(&d, "event=update", "{{.Actor.Attributes.name}}");
    assert_eq!(ev.trim(), "lim");
}

#[test]
fn restart_policies_restart_and_give_up_as_docker_does() {
    let mut d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert!(
        wait_for_polling(POLL, Duration::from_secs(20), || d
            .inspect_format("flaky", "{{.RestartCount}} {{.State.Status}}")
            == "2 exited"),
        "{}",
        d.inspect_format("flaky", "{{.RestartCount}} {{.State.Status}}")
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        d.inspect_format("flaky", "{{.RestartCount}} {{.State.ExitCode}}"),
        "2 1"
    );
    // always: back after a crash of its process, and after a daemon kill -9.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "300",
    ]);
    let pid = d.inspect_format("keeper", "{{.State.Pid}}");
    unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || {
        let s = d.inspect_format("keeper", "{{.State.Status}} {{.State.Pid}}");
        s.starts_with("running ") && !s.ends_with(&format!(" {pid}"))
    }));
    assert!(
        d.inspect_format("keeper", "{{.RestartCount}}")
            .parse::<i64>()
            .unwrap()
            >= 1
    );
    // unless-stopped: one running, one stopped by hand.
    for name in ["u-run", "u-stopped"] {
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            "unless-stopped",
            "busybox",
            "sleep",
            "300",
        ]);
    }
    d.docker_ok(&["stop", "-t", "0", "u-stopped"]);
    // The daemon dies, then so do the containers' processes: a restarted
    // daemon finds them exited and brings back what its policy wants.
    let before: Vec<String> = ["keeper", "u-run"]
        .iter()
        .map(|n| d.inspect_format(n, "{{.State.Pid}}"))
        .collect();
    d.kill9();
    for pid in &before {
        unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(300));
    d.restart().unwrap();
    for (name, old) in ["keeper", "u-run"].iter().zip(&before) {
        assert!(
            wait_for_polling(POLL, Duration::from_secs(10), || {
                let s = d.inspect_format(name, "{{.State.Status}} {{.State.Pid}}");
                s.starts_with("running ") && !s.ends_with(&format!(" {old}"))
            }),
            "{name}: {}",
            d.inspect_format(name, "{{.State.Status}} {{.State.Pid}}")
        );
    }
    assert_eq!(d.inspect_format("u-stopped", "{{.State.Status}}"), "exited");
    // An explicit stop is respected while the daemon runs...
    d.docker_ok(&["stop", "-t", "1", "keeper"]);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(d.inspect_format("keeper", "{{.State.Running}}"), "false");
    // ...and, as in Docker, `always` starts again with the daemon while
    // a stopped `unless-stopped` container does not.
    d.restart().unwrap();
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || d
        .inspect_format("keeper", "{{.State.Running}}")
        == "true"));
    assert_eq!(d.inspect_format("u-stopped", "{{.State.Status}}"), "exited");
}

#[test]
fn health_checks_go_starting_healthy_unhealthy() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 300",
    ]);
    assert!(d
        .docker_ok(&["ps", "--format", "{{.Status}}"])
        .contains("(health: starting)"));
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || d
        .inspect_format("hc", "{{.State.Health.Status}}")
        == "healthy"));
    assert!(d
        .docker_ok(&["ps", "--format", "{{.Status}}"])
        .contains("(healthy)"));
    d.docker_ok(&["exec", "hc", "rm", "/tmp/ok"]);
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || d
        .inspect_format("hc", "{{.State.Health.Status}}")
        == "unhealthy"));
    assert!(d
        .docker_ok(&["ps", "--format", "{{.Status}}"])
        .contains("(unhealthy)"));
    let streak: i64 = d
        .inspect_format("hc", "{{.State.Health.FailingStreak}}")
        .parse()
        .unwrap();
    assert!(streak >= 2);
    let logs: usize = d
        .inspect_format("hc", "{{len .State.Health.Log}}")
        .parse()
        .unwrap();
    assert!((1..=5).contains(&logs));
    let ev = events(&d, "event=health_status", "{{.Action}}");
    assert!(
        ev.contains("health_status: healthy") && ev.contains("health_status: unhealthy"),
        "{ev}"
    );
}

#[test]
fn stats_show_a_busy_containers_cpu_and_memory() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "x=$(seq 1 20000); while true; do :; done",
    ]);
    std::thread::sleep(Duration::from_millis(700));
    let out = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.MemUsage}}",
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("busy "))
        .unwrap_or_else(|| panic!("{out}"));
    let cpu: f64 = line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 1.0, "cpu {line}");
    assert!(!line.contains(" 0B /"), "memory {line}");
    let o = d.raw(
        "GET",
        "/v1.50/containers/busy/stats?stream=0&one-shot=1",
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.2).unwrap();
    assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);
    assert!(v["memory_stats"]["usage"].as_u64().unwrap() > 0);
    assert!(v["pids_stats"]["current"].as_u64().unwrap() >= 1);
}

#[test]
fn export_diff_and_commit_see_the_rw_layer() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "--name",
        "work",
        "busybox",
        "sh",
        "-c",
        "echo made > /newfile; rm /bin/ls; touch /tmp/t",
    ]);
    let diff = d.docker_ok(&["diff", "work"]);
    for want in ["A /newfile", "D /bin/ls", "C /bin", "C /tmp", "A /tmp/t"] {
        assert!(
            diff.lines().any(|l| l == want),
            "{want} missing in:\n{diff}"
        );
    }
    // export of the stopped container.
    let mut c = d
        .docker_cmd()
        .args(["export", "work"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tar = Vec::new();
    use std::io::Read;
    c.stdout.take().unwrap().read_to_end(&mut tar).unwrap();
    assert!(c.wait().unwrap().success());
    let mut ar = tar::Archive::new(&tar[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "newfile"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/busybox"));
    assert!(
        !names.iter().any(|n| n == "bin/ls"),
        "deleted file exported"
    );
    // commit: the new image has the file and the changed CMD.
    let id = d.docker_ok(&[
        "commit",
        "-m",
        "added a file",
        "-a",
        "tester",
        "-c",
        "CMD [\"cat\", \"/newfile\"]",
        "work",
        "committed:1",
    ]);
    assert!(id.trim().starts_with("sha256:"));
    assert_eq!(d.docker_ok(&["run", "--rm", "committed:1"]), "made\n");
    assert_eq!(
        d.docker(&["run", "--rm", "committed:1", "ls", "/"])
            .status
            .code(),
        Some(127),
        "ls was deleted"
    );
    let hist = d.docker_ok(&["history", "--format", "{{.Comment}}", "committed:1"]);
    assert_eq!(hist.lines().next(), Some("added a file"));
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", "{{.Author}}", "committed:1"])
            .trim(),
        "tester"
    );
    // `--entrypoint ""` resets the entrypoint.
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "",
            "committed:1",
            "echo",
            "hi"
        ]),
        "hi\n"
    );
    // The runtime's mount points are not part of the committed layer.
    let mut c = d
        .docker_cmd()
        .args(["save", "committed:1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut saved = Vec::new();
    c.stdout.take().unwrap().read_to_end(&mut saved).unwrap();
    assert!(c.wait().unwrap().success());
    let mut blobs = std::collections::HashMap::new();
    for e in tar::Archive::new(&saved[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        blobs.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&blobs["manifest.json"]).unwrap();
    let top = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let layer: Vec<String> = tar::Archive::new(&blobs[&top][..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(layer.iter().any(|n| n == "newfile"), "{layer:?}");
    assert!(
        !layer
            .iter()
            .any(|n| n.ends_with("etc/hosts") || n.ends_with("etc/resolv.conf")),
        "{layer:?}"
    );
}

/// `docker update --restart` on a running container takes effect: after
/// the update, a crash of its process brings it back.
#[test]
fn a_restart_policy_set_by_update_takes_effect() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "upd", "busybox", "sleep", "300"]);
    d.docker_ok(&["update", "--restart", "on-failure:3", "upd"]);
    assert_eq!(
        d.inspect_format(
            "upd",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure 3"
    );
    let pid = d.inspect_format("upd", "{{.State.Pid}}");
    unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    assert!(
        wait_for_polling(POLL, Duration::from_secs(10), || {
            let s = d.inspect_format("upd", "{{.State.Status}} {{.RestartCount}} {{.State.Pid}}");
            s.starts_with("running 1 ") && !s.ends_with(&format!(" {pid}"))
        }),
        "{}",
        d.inspect_format("upd", "{{.State.Status}} {{.RestartCount}} {{.State.Pid}}")
    );
}
