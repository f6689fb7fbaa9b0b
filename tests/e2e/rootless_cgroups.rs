//! Issue 20: a rootless daemon on this hybrid cgroup v1 host has no cgroups
//! (driver `none`). Limits are refused with the cause named (zero values
//! pass), `docker info` says so as dockerd does, processes are found in
//! `/proc` (top, stats, stop, kill, rm leave nothing behind, with and
//! without a PID namespace of the container's own), `pause` fails as
//! dockerd's does without a freezer and `commit` still works.

use std::time::Duration;

use berth_tests::*;

fn start() -> (Daemon, String) {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    let img = fixtures::import_busybox(&d, "rlcg:1");
    assert!(!img.is_empty());
    (d, "rlcg:1".to_string())
}

/// Whether a host process is gone (a zombie counts as gone: it runs no more).
fn gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The host PIDs `docker top` lists, with their command lines.
fn top(d: &Daemon, name: &str) -> Vec<(i64, String)> {
    let out = d.docker_ok(&["top", name, "-o", "pid,args"]);
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let (pid, args) = l.trim().split_once(char::is_whitespace)?;
            Some((pid.parse().ok()?, args.trim().to_string()))
        })
        .collect()
}

/// `docker top` until it lists `n` processes (bounded).
fn top_n(d: &Daemon, name: &str, n: usize) -> Vec<(i64, String)> {
    let mut last = Vec::new();
    wait_for_polling(Duration::from_millis(100), Duration::from_secs(10), || {
        last = top(d, name);
        last.len() >= n
    });
    last
}

fn all_gone(pids: &[(i64, String)]) -> bool {
    wait_for_polling(Duration::from_millis(50), Duration::from_secs(10), || {
        pids.iter().all(|(p, _)| gone(*p))
    })
}

const REFUSAL: &str = "Resource limits are not supported in rootless mode without cgroups";

#[test]
fn limits_are_refused_with_the_cause_and_zero_values_pass() {
    let (d, img) = start();
    for (flags, named) in [
        (vec!["--memory", "64m"], "--memory"),
        (vec!["--cpus", "0.5"], "--cpus"),
        (vec!["--pids-limit", "10"], "--pids-limit"),
        (vec!["--cpu-shares", "512"], "--cpu-shares"),
        (vec!["--cpuset-cpus", "0"], "--cpuset-cpus"),
    ] {
        let mut args = vec!["create"];
        args.extend(flags.iter().copied());
        args.extend([img.as_str(), "true"]);
        let o = d.docker(&args);
        assert!(!o.status.success(), "{flags:?} was accepted");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{REFUSAL}: {named} (to enable cgroups in rootless mode, boot the system in cgroup v2 mode)")),
            "{flags:?}: {err}"
        );
    }
    // The status is a 400, as any invalid parameter.
    let (status, _, body) = d.raw(
        "POST",
        "/containers/create",
        Some(br#"{"Image":"rlcg:1","HostConfig":{"Memory":67108864}}"#),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // Zero and unlimited values are what the CLI sends for flags not given.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--memory",
        "0",
        "--pids-limit",
        "-1",
        "--cpus",
        "0",
        "--cpu-shares",
        "0",
        &img,
        "echo",
        "ran",
    ]);
    assert_eq!(out.trim(), "ran");
    // `docker update` refuses the same way; a restart policy alone is fine.
    d.docker_ok(&["create", "--name", "up", &img, "true"]);
    let o = d.docker(&["update", "--memory", "64m", "--memory-swap", "128m", "up"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(REFUSAL), "{}", stderr(&o));
    d.docker_ok(&["update", "--restart", "on-failure:2", "up"]);
    assert_eq!(d.inspect_format("up", "{{.HostConfig.Memory}}"), "0");
    d.docker_ok(&["rm", "up"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn info_shows_cgroup_driver_none_the_warning_and_rootless() {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    let f = d.docker_ok(&[
        "info",
        "--format",
        "{{.CgroupDriver}}|{{.CgroupVersion}}|{{.MemoryLimit}}|{{.SwapLimit}}|{{.CPUShares}}|{{.CPUSet}}|{{.PidsLimit}}|{{.CPUCfsQuota}}|{{.OomKillDisable}}",
    ]);
    assert_eq!(f.trim(), "none|1|false|false|false|false|false|false|false");
    let sec = d.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(sec.contains("\"name=rootless\""), "{sec}");
    // The human form, with dockerd's warning (on stderr).
    let o = d.docker(&["info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Cgroup Driver: none"), "{}", stdout(&o));
    assert!(stdout(&o).contains("rootless"), "{}", stdout(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("WARNING: Running in rootless-mode without cgroups. To enable cgroups in rootless-mode, you need to boot the system in cgroup v2 mode."),
        "{all}"
    );
}

#[test]
fn top_stats_stop_kill_and_rm_find_every_process_without_cgroups() {
    let (d, img) = start();
    let busy = "sleep 300 & sleep 301 & wait";
    for name in ["st", "kl", "rf"] {
        d.docker_ok(&["run", "-d", "--name", name, &img, "sh", "-c", busy]);
    }
    // An exec'd process is the container's too (same PID namespace).
    d.docker_ok(&["exec", "-d", "rf", "sleep", "302"]);
    let st = top_n(&d, "st", 3);
    let kl = top_n(&d, "kl", 3);
    let rf = top_n(&d, "rf", 4);
    assert_eq!(st.len(), 3, "sh and two sleeps: {st:?}");
    assert!(st.iter().any(|(_, a)| a.contains("sleep 301")), "{st:?}");
    assert_eq!(rf.len(), 4, "with the exec'd sleep: {rf:?}");
    assert!(rf.iter().any(|(_, a)| a.contains("sleep 302")), "{rf:?}");
    // No process of another container (or of the host) is listed.
    let kl_pids: Vec<i64> = kl.iter().map(|(p, _)| *p).collect();
    assert!(st.iter().all(|(p, _)| !kl_pids.contains(p)));

    // stats: the processes counted, their memory and CPU read from /proc.
    let s = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.PIDs}}|{{.MemUsage}}",
        "st",
    ]);
    let (pids, mem) = s.trim().split_once('|').expect("stats line");
    assert_eq!(pids, "3", "{s}");
    assert!(!mem.starts_with("0B"), "memory is read: {s}");
    let (status, _, body) = d.raw("GET", "/containers/st/stats?stream=false", None);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("stats json");
    assert!(v["memory_stats"]["usage"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );

    d.docker_ok(&["stop", "-t", "1", "st"]);
    assert!(all_gone(&st), "stop left {st:?}");
    d.docker_ok(&["kill", "kl"]);
    assert!(all_gone(&kl), "kill left {kl:?}");
    d.docker_ok(&["rm", "-f", "rf"]);
    assert!(all_gone(&rf), "rm -f left {rf:?}");
    assert_eq!(d.inspect_format("st", "{{.State.Running}}"), "false");
    assert_eq!(d.inspect_format("kl", "{{.State.Running}}"), "false");
    d.docker_ok(&["rm", "st", "kl"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}

/// `--pid container:<other>` (as `--pid host`, which a rootless daemon
/// cannot mount a `/proc` for): the init is not its namespace's PID 1, so
/// the container's processes are its init and descendants, not the
/// namespace's, and removing it leaves the other container alone.
#[test]
fn in_a_shared_pid_namespace_the_inits_descendants_are_found_and_killed() {
    let (d, img) = start();
    d.docker_ok(&["run", "-d", "--name", "owner", &img, "sleep", "305"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--pid",
        "container:owner",
        "--name",
        "joined",
        &img,
        "sh",
        "-c",
        "sleep 303 & sleep 304 & wait",
    ]);
    let joined = top_n(&d, "joined", 3);
    assert_eq!(joined.len(), 3, "sh and its two sleeps only: {joined:?}");
    assert!(
        joined.iter().any(|(_, a)| a.contains("sleep 304")),
        "{joined:?}"
    );
    assert!(
        !joined.iter().any(|(_, a)| a.contains("sleep 305")),
        "{joined:?}"
    );
    let owner = top_n(&d, "owner", 1);
    assert_eq!(owner.len(), 1, "{owner:?}");
    d.docker_ok(&["rm", "-f", "joined"]);
    assert!(all_gone(&joined), "rm -f left {joined:?}");
    assert_eq!(d.inspect_format("owner", "{{.State.Running}}"), "true");
    assert!(
        !gone(owner[0].0),
        "the other container's process was killed"
    );
    d.docker_ok(&["rm", "-f", "owner"]);
    assert!(all_gone(&owner), "rm -f left {owner:?}");
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn pause_is_refused_and_commit_goes_on_unpaused() {
    let (d, img) = start();
    d.docker_ok(&["run", "-d", "--name", "pz", &img, "sleep", "300"]);
    let o = d.docker(&["pause", "pz"]);
    assert!(!o.status.success(), "pause succeeded without cgroups");
    let err = stderr(&o);
    assert!(
        err.contains("cannot pause container")
            && err.contains("cannot toggle freezer: cgroups not configured for container"),
        "{err}"
    );
    assert_eq!(d.inspect_format("pz", "{{.State.Status}}"), "running");
    let o = d.docker(&["unpause", "pz"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not paused"), "{}", stderr(&o));
    // commit pauses by default; without a freezer it commits unpaused.
    d.docker_ok(&["exec", "pz", "sh", "-c", "echo kept > /committed"]);
    let id = d.docker_ok(&["commit", "pz", "rlcg:committed"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.inspect_format("pz", "{{.State.Status}}"), "running");
    let out = d.docker_ok(&["run", "--rm", "rlcg:committed", "cat", "/committed"]);
    assert_eq!(out.trim(), "kept");
    d.docker_ok(&["rm", "-f", "pz"]);
}

/// The container's shim (`berth-shim run <exec-root>/containers/<id>`).
fn shim_pid(d: &Daemon, id: &str) -> Option<i32> {
    let want = d.exec_root.join("containers").join(id);
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        (args.first() == Some(&&b"berth-shim"[..])
            && args.get(2) == Some(&want.as_os_str().as_encoded_bytes()))
        .then_some(pid)
    })
}

fn kill_shim(d: &Daemon, id: &str) {
    let shim = shim_pid(d, id).expect("the container has a shim");
    // SAFETY (test code): a signal to a process of this test's daemon.
    assert_eq!(unsafe { libc::kill(shim, libc::SIGKILL) }, 0);
}

/// Without a cgroup, a container whose shim dies (daemon up, or down and
/// restarted) still has its processes found from its runtime state and
/// killed: nothing outlives it.
#[test]
fn a_killed_shim_leaves_no_process_behind_live_or_across_a_restart() {
    let (mut d, img) = start();
    let busy = "sleep 306 & sleep 307 & wait";
    d.docker_ok(&["run", "-d", "--name", "sk", &img, "sh", "-c", busy]);
    let sk = top_n(&d, "sk", 3);
    assert_eq!(sk.len(), 3, "{sk:?}");
    kill_shim(&d, &d.inspect_format("sk", "{{.Id}}"));
    assert!(
        wait_for_polling(Duration::from_millis(100), Duration::from_secs(15), || {
            d.inspect_format("sk", "{{.State.Running}}") == "false"
        }),
        "still running after its shim was killed"
    );
    assert!(all_gone(&sk), "left {sk:?}");

    d.docker_ok(&["run", "-d", "--name", "sk2", &img, "sh", "-c", busy]);
    let sk2 = top_n(&d, "sk2", 3);
    assert_eq!(sk2.len(), 3, "{sk2:?}");
    let id2 = d.inspect_format("sk2", "{{.Id}}");
    d.kill9();
    kill_shim(&d, &id2);
    // Nothing else stops them while the daemon is down.
    std::thread::sleep(Duration::from_millis(300));
    assert!(sk2.iter().all(|(p, _)| !gone(*p)), "{sk2:?}");
    d.restart().expect("restart");
    assert_eq!(d.inspect_format("sk2", "{{.State.Running}}"), "false");
    assert!(all_gone(&sk2), "left {sk2:?}");
    d.docker_ok(&["rm", "sk", "sk2"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}
