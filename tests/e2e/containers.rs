//! Issue 4: containers through the real docker CLI (and bollard): run,
//! attach, TTYs, the lifecycle, exec, live restore, default security.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::host::is_mountpoint;
use berth_tests::pty::Pty;
use berth_tests::*;

/// How often a wait polls here (its conditions run the docker CLI).
const POLL: Duration = Duration::from_millis(50);

#[test]
fn docker_run_prints_output_and_returns_the_exit_code() {
    let d = daemon();
    let o = d.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("hi\n", Some(0)),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    // stdin piped before the container starts is delivered, then closed.
    let mut c = d
        .docker_cmd()
        .args(["run", "-i", "--rm", "busybox", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "x\n");
    // stderr stays stderr.
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    // --rm removed them all.
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn a_missing_command_fails_like_docker() {
    let d = daemon();
    let o = d.docker(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "--rm containers go even when they cannot start"
    );
}

#[test]
fn run_it_gives_a_terminal_that_follows_resizes() {
    let d = daemon();
    let mut cmd = d.docker_cmd();
    cmd.args(["run", "-it", "--rm", "busybox", "sh"]);
    berth_tests::pty::check_run_it_session(cmd);
}

#[test]
fn detach_keys_leave_the_container_running() {
    let d = daemon();
    let mut cmd = d.docker_cmd();
    cmd.args(["run", "-it", "--name", "dk", "busybox", "sh"]);
    let mut p = Pty::spawn(cmd, 24, 80);
    assert!(p.expect("/ #", Duration::from_secs(20)), "{}", p.text());
    p.write("\x10\x11");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0), "{}", p.text());
    assert_eq!(d.inspect_format("dk", "{{.State.Status}}"), "running");
    // The shell still has its terminal: exec into it works too.
    let o = d.docker(&["exec", "dk", "echo", "still-here"]);
    assert_eq!(stdout(&o), "still-here\n");
}

#[test]
fn a_detached_container_lives_through_logs_signals_pause_exec_stop_and_restart() {
    let d = daemon();
    let script = r#"trap 'echo got-usr1' USR1; trap 'echo got-term; exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"#;
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--label",
        "role=test",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    // logs -f streams while it runs.
    let mut follow = d
        .docker_cmd()
        .args(["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || stdout(
        &d.docker(&["logs", "web"])
    )
    .contains("tick 3")));
    // kill -s USR1 reaches the trap.
    d.docker_ok(&["kill", "-s", "USR1", "web"]);
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || stdout(
        &d.docker(&["logs", "web"])
    )
    .contains("got-usr1")));
    // ps shows it with Docker's columns.
    let ps = d.docker_ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID   IMAGE     COMMAND"), "{ps}");
    assert!(ps.contains("Up ") && ps.contains("web"), "{ps}");
    assert_eq!(
        d.docker_ok(&["ps", "-q", "--filter", "label=role=test"])
            .trim(),
        &id[..12]
    );
    // top lists its processes.
    let top = d.docker_ok(&["top", "web"]);
    assert!(top.contains("PID") && top.contains("sh -c"), "{top}");
    // pause freezes the counter.
    d.docker_ok(&["pause", "web"]);
    assert_eq!(d.inspect_format("web", "{{.State.Status}}"), "paused");
    let a = stdout(&d.docker(&["logs", "web"])).lines().count();
    std::thread::sleep(Duration::from_millis(500));
    let b = stdout(&d.docker(&["logs", "web"])).lines().count();
    assert_eq!(a, b, "paused container kept printing");
    assert!(d.docker_ok(&["ps"]).contains("(Paused)"));
    d.docker_ok(&["unpause", "web"]);
    assert!(wait_for_polling(POLL, Duration::from_secs(5), || stdout(
        &d.docker(&["logs", "web"])
    )
    .lines()
    .count()
        > b));
    // exec, with its exit code, and exec -it in a terminal.
    assert_eq!(
        d.docker_ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $X $(pwd)"
        ]),
        "1 /tmp\n"
    );
    // An exec'd process lives in the container's cgroups, like its init.
    let cg = d.docker_ok(&["exec", "web", "cat", "/proc/self/cgroup", "/proc/1/cgroup"]);
    let lines: Vec<&str> = cg.lines().collect();
    let (mine, init) = lines.split_at(lines.len() / 2);
    assert_eq!(mine, init, "{cg}");
    assert!(cg.contains("pids:/"), "{cg}");
    assert_eq!(
        d.docker(&["exec", "web", "sh", "-c", "exit 4"])
            .status
            .code(),
        Some(4)
    );
    let mut cmd = d.docker_cmd();
    cmd.args(["exec", "-it", "web", "sh", "-c", "tty; stty size"]);
    let mut p = Pty::spawn(cmd, 25, 90);
    assert_eq!(p.wait(Duration::from_secs(20)), Some(0), "{}", p.text());
    assert!(
        p.text().contains("/dev/pts/") && p.text().contains("25 90"),
        "{}",
        p.text()
    );
    let o = d.docker(&["exec", "-d", "web", "touch", "/tmp/detached"]);
    assert!(o.status.success());
    assert!(wait_for_polling(POLL, Duration::from_secs(5), || d
        .docker(&["exec", "web", "test", "-f", "/tmp/detached"])
        .status
        .success()));
    // stop: SIGTERM reaches the trap, exit code 7.
    let t = Instant::now();
    d.docker_ok(&["stop", "-t", "5", "web"]);
    assert!(t.elapsed() < Duration::from_secs(4));
    assert_eq!(
        d.inspect_format("web", "{{.State.ExitCode}} {{.State.Status}}"),
        "7 exited"
    );
    let _ = follow.wait();
    let mut out = String::new();
    use std::io::Read;
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains("tick 0") && out.contains("got-term"),
        "logs -f: {out}"
    );
    let ps = d.docker_ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (7)"), "{ps}");
    // restart runs it again; rename keeps it.
    d.docker_ok(&["restart", "-t", "1", "web"]);
    assert_eq!(d.inspect_format("web", "{{.State.Running}}"), "true");
    d.docker_ok(&["rename", "web", "web2"]);
    assert_eq!(d.inspect_format(id, "{{.Name}}"), "/web2");
    // wait returns the code; stop after -t sends SIGKILL to a process that ignores TERM.
    let id2 = d.docker_ok(&[
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; sleep 100 & wait",
    ]);
    let t = Instant::now();
    d.docker_ok(&["stop", "-t", "1", id2.trim()]);
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(d.docker_ok(&["wait", id2.trim()]).trim(), "137");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "w3",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; exit 9",
    ]);
    assert_eq!(d.docker_ok(&["wait", "w3"]).trim(), "9");
    // rm of a running container needs -f.
    let o = d.docker(&["rm", "web2"]);
    assert!(
        !o.status.success()
            && stderr(&o).contains("stop the container before removing or force remove"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["rm", "-f", "web2"]);
    let pruned = d.docker_ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn containers_survive_a_killed_daemon() {
    let mut d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "quits",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 9",
    ]);
    let pid = d.inspect_format("keep", "{{.State.Pid}}");
    d.kill9();
    let killed_at = chrono_now();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container died with the daemon"
    );
    d.restart().unwrap();
    assert_eq!(
        d.inspect_format("keep", "{{.State.Status}} {{.State.Pid}}"),
        format!("running {pid}")
    );
    // The one that exited meanwhile has its real code and time.
    assert_eq!(d.inspect_format("quits", "{{.State.ExitCode}}"), "9");
    let finished = d.inspect_format("quits", "{{.State.FinishedAt}}");
    assert!(
        finished.as_str() > killed_at.as_str(),
        "{finished} vs {killed_at}"
    );
    // Everything still works on the survivor.
    assert_eq!(d.docker_ok(&["exec", "keep", "echo", "hello"]), "hello\n");
    let mut follow = d
        .docker_cmd()
        .args(["logs", "-f", "--tail", "1", "keep"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut attach = d
        .docker_cmd()
        .args(["attach", "--no-stdin", "keep"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    d.docker_ok(&["stop", "keep"]);
    assert!(follow.wait().unwrap().success());
    let _ = attach.wait();
    let mut a = String::new();
    use std::io::Read;
    attach
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut a)
        .unwrap();
    assert!(a.contains("tick"), "attach after restore saw: {a}");
    assert_eq!(d.inspect_format("keep", "{{.State.Status}}"), "exited");
}

fn chrono_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .unwrap();
    stdout(&out).trim().to_string()
}

fn cap_last() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn security_defaults_match_dockers() {
    let d = daemon();
    let status = d.docker_ok(&["run", "--rm", "busybox", "cat", "/proc/self/status"]);
    assert!(status.contains("CapEff:\t00000000a80425fb"), "{status}");
    assert!(status.contains("CapBnd:\t00000000a80425fb"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");
    // Masked and read-only /proc paths.
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            // Masked files are /dev/null over them: character devices.
            "for f in /proc/timer_list /proc/keys; do [ -c $f ] && wc -c < $f; done"
        ])
        .split_whitespace()
        .collect::<Vec<_>>(),
        vec!["0", "0"]
    );
    // This VM's kernel has no /proc/kcore; where it exists, it is masked.
    if std::path::Path::new("/proc/kcore").exists() {
        d.docker_ok(&["run", "--rm", "busybox", "test", "-c", "/proc/kcore"]);
    }
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname",
    ]);
    assert!(!o.status.success());
    // Seccomp blocks what Docker's profile blocks.
    let o = d.docker(&["run", "--rm", "busybox", "unshare", "-n", "true"]);
    assert!(!o.status.success(), "unshare must be refused");
    // --privileged: every capability, no seccomp.
    let st = d.docker_ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert!(st.contains("Seccomp:\t0"), "{st}");
    let eff = st
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .unwrap();
    let eff = u64::from_str_radix(eff, 16).unwrap();
    // This sandbox may itself lack some capabilities; all the host has are given.
    let host_bnd = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = u64::from_str_radix(
        host_bnd
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:\t"))
            .unwrap(),
        16,
    )
    .unwrap();
    assert_eq!(
        eff,
        host_bnd & ((1u64 << (cap_last() + 1)) - 1),
        "privileged CapEff {eff:x}"
    );
    // The workload starts with default signal dispositions and no blocked signals.
    d.docker_ok(&["run", "-d", "--name", "sig", "busybox", "sleep", "100"]);
    let st = d.docker_ok(&["exec", "sig", "cat", "/proc/1/status"]);
    assert!(st.contains("SigIgn:\t0000000000000000"), "{st}");
    assert!(st.contains("SigBlk:\t0000000000000000"), "{st}");
    // An exec'd process has the same filter and capabilities.
    let st = d.docker_ok(&["exec", "sig", "cat", "/proc/self/status"]);
    assert!(st.contains("Seccomp:\t2"), "{st}");
    assert!(st.contains("CapEff:\t00000000a80425fb"), "{st}");
    assert!(!d
        .docker(&["exec", "sig", "unshare", "-n", "true"])
        .status
        .success());
    // The shim runs from a sealed in-memory copy (CVE-2019-5736).
    let shim = shim_pids(&d);
    assert!(!shim.is_empty(), "no shim found");
    for pid in shim {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(
            exe.display().to_string().starts_with("/memfd:berth-shim"),
            "{}",
            exe.display()
        );
        assert!(std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{pid}/exe"))
            .is_err());
        // Named as the binary, not after the memfd's descriptor number.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "berth-shim");
    }
}

fn shim_pids(d: &Daemon) -> Vec<i32> {
    let root = d.exec_root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c).to_string();
                    c.starts_with("berth-shim") && c.contains(&root)
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn run_flags_shape_the_process() {
    let d = daemon();
    let env_file = d.dir.path().join("env.list");
    std::fs::write(&env_file, "FROM_FILE=yes\n").unwrap();
    let out = d.docker_ok(&[
        "run", "--rm", "-u", "nobody", "-w", "/tmp", "-e", "FOO=bar", "--env-file", &env_file.display().to_string(),
        "-h", "myhost", "--group-add", "root", "busybox", "sh", "-c",
        "id -u; id -G; pwd; echo $FOO $FROM_FILE; hostname; cat /etc/hostname; grep CapEff /proc/self/status",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "65534");
    assert!(lines[1].split(' ').any(|g| g == "0"), "{out}");
    assert_eq!(&lines[2..6], &["/tmp", "bar yes", "myhost", "myhost"]);
    assert_eq!(
        lines[6], "CapEff:\t0000000000000000",
        "a non-root user has no effective capabilities"
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            "busybox",
            "via",
            "entrypoint"
        ]),
        "via entrypoint\n"
    );
    let st = d.docker_ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_RAW",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(st.trim(), "CapEff:\t0000000000002000");
    let st = d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert_eq!(st.trim(), "NoNewPrivs:\t1");
    let st = d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(st.trim(), "Seccomp:\t0");
    let o = d.docker(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(
        !o.status.success() && stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    // --init: berth's init is PID 1, reaps, and passes the exit code on.
    let ps = d.docker_ok(&["run", "--rm", "--init", "busybox", "ps", "-o", "pid,args"]);
    assert!(
        ps.lines()
            .any(|l| l.trim().starts_with("1 /sbin/docker-init")),
        "{ps}"
    );
    assert_eq!(
        d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 6"])
            .status
            .code(),
        Some(6)
    );
    // --stop-signal and labels are recorded.
    d.docker_ok(&[
        "create",
        "--name",
        "lab",
        "--label",
        "a=b",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "3",
        "busybox",
        "true",
    ]);
    assert_eq!(
        d.inspect_format(
            "lab",
            "{{.Config.Labels.a}} {{.Config.StopSignal}} {{.Config.StopTimeout}}"
        ),
        "b SIGUSR1 3"
    );
    assert_eq!(
        d.inspect_format(
            "lab",
            "{{.State.Status}} {{.HostConfig.NetworkMode}} {{.Driver}}"
        ),
        "created default overlay2"
    );
}

#[test]
fn bad_requests_get_dockers_errors() {
    let d = daemon();
    // A missing image is a 404 (the CLI would then try to pull).
    let (st, head, body) = d.raw(
        "POST",
        "/v1.50/containers/create",
        Some(br#"{"Image":"nope:latest"}"#),
    );
    assert_eq!(st, 404);
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    assert!(String::from_utf8_lossy(&body).contains("No such image: nope:latest"));
    let (st, _, body) = d.raw("POST", "/v1.50/containers/create", Some(b"{not json"));
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    let (st, _, _) = d.raw(
        "POST",
        "/v1.50/containers/create?name=-bad",
        Some(br#"{"Image":"busybox"}"#),
    );
    assert_eq!(st, 400);
    d.docker_ok(&["create", "--name", "taken", "busybox", "true"]);
    let o = d.docker(&["create", "--name", "taken", "busybox", "true"]);
    assert!(
        stderr(&o).contains("The container name \"/taken\" is already in use by container"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["kill", "taken"]);
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    let (st, _, body) = d.raw(
        "POST",
        "/v1.50/containers/create",
        Some(br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"nosuchnet"}}"#),
    );
    assert_eq!(st, 404);
    assert!(String::from_utf8_lossy(&body).contains("network nosuchnet not found"));
    // Starting a running container is a no-op (304), which the CLI accepts.
    d.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "100"]);
    let (st, _, _) = d.raw("POST", "/v1.50/containers/up/start", None);
    assert_eq!(st, 304);
    d.docker_ok(&["start", "up"]);
    let (st, _, _) = d.raw("POST", "/v1.50/containers/nope/stop", None);
    assert_eq!(st, 404);
    // The ID prefix and the name both find it.
    let id = d.inspect_format("up", "{{.Id}}");
    assert_eq!(d.inspect_format(&id[..6], "{{.Name}}"), "/up");
}

#[test]
fn events_follow_the_lifecycle() {
    let d = daemon();
    let since = stdout(&Command::new("date").arg("+%s").output().unwrap())
        .trim()
        .to_string();
    d.docker_ok(&["run", "--rm", "--name", "ev", "busybox", "true"]);
    let until = (since.parse::<i64>().unwrap() + 30).to_string();
    let mut c = d
        .docker_cmd()
        .args([
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=ev",
            "--format",
            "{{.Action}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _ = c.kill();
    let o = c.wait_with_output().unwrap();
    let actions: Vec<String> = stdout(&o).lines().map(String::from).collect();
    for a in ["create", "attach", "start", "die", "destroy"] {
        assert!(actions.iter().any(|x| x == a), "missing {a} in {actions:?}");
    }
}

#[test]
fn fifty_containers_start_concurrently() {
    let d = daemon();
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let mut cmd = d.docker_cmd();
            cmd.args([
                "run",
                "-d",
                "--name",
                &format!("c{i:02}"),
                "busybox",
                "sleep",
                "300",
            ]);
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    for t in threads {
        let o = t.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let ps = d.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    let mut names: Vec<&str> = ps.lines().collect();
    names.sort();
    assert_eq!(names.len(), 50, "{ps}");
    for (i, l) in names.iter().enumerate() {
        assert_eq!(*l, format!("c{i:02} running"));
    }
}

#[test]
fn bollard_runs_a_container() {
    let d = daemon();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use bollard::models::ContainerCreateBody;
        use bollard::query_parameters::{
            CreateContainerOptionsBuilder, LogsOptionsBuilder, WaitContainerOptions,
        };
        use futures_util::StreamExt;
        let docker = d.bollard().negotiate_version().await.unwrap();
        let body = ContainerCreateBody {
            image: Some("busybox".into()),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo from-bollard; exit 2".into(),
            ]),
            ..Default::default()
        };
        let c = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name("bl").build()),
                body,
            )
            .await
            .unwrap();
        docker
            .start_container(
                &c.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .unwrap();
        let mut w = docker.wait_container(&c.id, None::<WaitContainerOptions>);
        let mut code = None;
        while let Some(r) = w.next().await {
            code = Some(match r {
                Ok(x) => x.status_code,
                Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
                Err(e) => panic!("{e}"),
            });
        }
        assert_eq!(code, Some(2));
        let mut logs = docker.logs(&c.id, Some(LogsOptionsBuilder::new().stdout(true).build()));
        let mut text = String::new();
        while let Some(l) = logs.next().await {
            text.push_str(&l.unwrap().to_string());
        }
        assert_eq!(text, "from-bollard\n");
    });
}

/// The container's life in `docker events`: pause/unpause, rename, exec,
/// kill with its signal, stop, die with its exit code — in order.
#[test]
fn container_events_follow_its_life() {
    let d = daemon();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let t0 = now();
    // --init: as PID 1, sleep itself would ignore SIGUSR2.
    let id = d.docker_ok(&[
        "run", "-d", "--init", "--name", "ev1", "busybox", "sleep", "30",
    ]);
    let id = id.trim();
    d.docker_ok(&["pause", "ev1"]);
    d.docker_ok(&["unpause", "ev1"]);
    d.docker_ok(&["rename", "ev1", "ev2"]);
    d.docker_ok(&["exec", "ev2", "true"]);
    d.docker_ok(&["kill", "-s", "USR2", "ev2"]);
    // SIGUSR2, forwarded by the init, kills sleep; start it again to stop it.
    d.docker_ok(&["wait", "ev2"]);
    d.docker_ok(&["start", "ev2"]);
    d.docker_ok(&["stop", "-t", "1", "ev2"]);
    let ev = d.docker_ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &(now() + 1).to_string(),
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}|{{.Actor.Attributes.signal}}|{{.Actor.Attributes.exitCode}}|{{.Actor.Attributes.name}}",
    ]);
    let acts: Vec<&str> = ev.lines().collect();
    let pos = |p: &str| {
        acts.iter()
            .position(|a| a.starts_with(p))
            .unwrap_or_else(|| panic!("no {p:?} in {acts:#?}"))
    };
    let order = [
        "create|",
        "start|",
        "pause|",
        "unpause|",
        "rename|",
        "exec_create: true|",
        "exec_start: true|",
        "exec_die|",
        "kill|12|",
        "die|<no value>|140|ev2",
        "kill|15|",
        "stop|",
    ];
    let idx: Vec<usize> = order.iter().map(|p| pos(p)).collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "{acts:#?}");
}

/// Bad resources, ports and health checks are refused at create with
/// dockerd's 400 messages, and no container is left behind.
#[test]
fn create_refuses_bad_limits_ports_and_healthchecks() {
    let d = daemon();
    for (extra, msg) in [
        (
            r#""HostConfig":{"Memory":-5}"#,
            "Minimum memory limit allowed is 6MB",
        ),
        (
            r#""HostConfig":{"Memory":1048576}"#,
            "Minimum memory limit allowed is 6MB",
        ),
        (
            r#""HostConfig":{"Memory":67108864,"MemorySwap":33554432}"#,
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (
            r#""HostConfig":{"CpusetCpus":"abc"}"#,
            "Invalid value abc for cpuset cpus",
        ),
        (
            r#""HostConfig":{"CpusetCpus":"0-4096"}"#,
            "Requested CPUs are not available",
        ),
        (
            r#""HostConfig":{"NanoCpus":-1}"#,
            "Range of CPUs is from 0.01 to",
        ),
        (
            r#""HostConfig":{"BlkioWeight":5}"#,
            "Range of blkio weight is from 10 to 1000",
        ),
        (
            r#""HostConfig":{"OomScoreAdj":2000}"#,
            "range for oom score adj is [-1000, 1000]",
        ),
        (
            r#""HostConfig":{"PortBindings":{"abc/tcp":[{"HostPort":"80"}]}}"#,
            "invalid port specification: \"abc\"",
        ),
        (
            r#""HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"x"}]}}"#,
            "invalid port specification: \"x\"",
        ),
        (
            r#""Healthcheck":{"Test":["CMD","true"],"Interval":-1}"#,
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            r#""Healthcheck":{"Test":["CMD","true"],"Retries":-2}"#,
            "Retries in Healthcheck cannot be negative",
        ),
    ] {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],{extra}}}"#);
        let (st, _, out) = d.raw("POST", "/containers/create", Some(body.as_bytes()));
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(st, 400, "{extra}: {out}");
        let text = out["message"].as_str().unwrap_or_default();
        assert!(text.contains(msg), "{extra}: {out}");
    }
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    // The same rules hold for docker update.
    d.docker_ok(&["run", "-d", "--name", "lim", "busybox", "sleep", "60"]);
    let o = d.docker(&["update", "--cpuset-cpus", "0-4096", "lim"]);
    assert!(
        stderr(&o).contains("Requested CPUs are not available"),
        "{}",
        stderr(&o)
    );
}

fn shim_of(d: &Daemon, id: &str) -> bool {
    shim_pids(d).iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(id))
            .unwrap_or(false)
    })
}

/// `docker run --rm`: the exit is reported first, the housekeeping
/// (runtime state, container files) finishes after; nothing is left.
#[test]
fn a_removed_run_leaves_no_files_and_shares_its_seccomp_program() {
    let d = daemon();
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status"
        ]),
        "Seccomp:\t2\n"
    );
    d.docker_ok(&["run", "-d", "--name", "svc", "busybox", "sleep", "300"]);
    // An exec'd process gets the filter from the shared compiled program.
    let status = d.docker_ok(&["exec", "svc", "grep", "Seccomp:", "/proc/self/status"]);
    assert_eq!(status, "Seccomp:\t2\n");
    // The program (compiled as a binary tree) decides as Docker's profile
    // does: a new user namespace is refused without CAP_SYS_ADMIN, in an
    // exec as in the init, and allowed once the filter is off.
    for argv in [
        &["exec", "svc", "unshare", "-U", "true"][..],
        &["run", "--rm", "busybox", "unshare", "-U", "true"][..],
    ] {
        let o = d.docker(argv);
        assert!(
            !o.status.success() && stderr(&o).contains("Operation not permitted"),
            "{argv:?}: {}",
            stderr(&o)
        );
    }
    d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);
    let programs = std::fs::read_dir(d.exec_root.join("seccomp"))
        .unwrap()
        .count();
    assert_eq!(
        programs, 1,
        "one compiled program for Docker's default profile"
    );
    d.docker_ok(&["rm", "-f", "svc"]);
    let empty = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .map(|r| r.count() == 0)
            .unwrap_or(true)
    };
    assert!(
        wait_for_polling(POLL, Duration::from_secs(10), || empty(
            &d.exec_root.join("trash")
        ) && empty(
            &d.data_root.join("trash")
        ) && empty(
            &d.exec_root.join("runtime")
        ) && empty(
            &d.exec_root.join("containers")
        ) && empty(
            &d.data_root.join("containers")
        )),
        "files stayed after the containers were removed"
    );
}

/// berthd prepares a created container's start ahead (root file system,
/// spec, a shim that creates the container); what no start claims is
/// dropped, and a start after that, after a `docker cp`, or after `docker
/// update` sees the container as it is then.
#[test]
fn a_start_prepared_ahead_is_claimed_or_dropped() {
    let d = daemon();
    let id = d
        .docker_ok(&["create", "--name", "ahead", "busybox", "cat", "/marker"])
        .trim()
        .to_string();
    let merged = d.data_root.join("containers").join(&id).join("rw/merged");
    let netns = d.exec_root.join("netns").join(&id);
    assert!(
        wait_for_polling(POLL, Duration::from_secs(2), || shim_of(&d, &id)
            && is_mountpoint(&merged)
            && is_mountpoint(&netns)),
        "the start was not prepared"
    );
    // The shim created the container ahead: its init waits in the
    // container's cgroup (for the word, then for the start).
    let cgroup = format!("{}/{id}", d.cgroup_parent());
    let memory_cgroup = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory{cgroup}"));
    assert!(
        wait_for_polling(POLL, Duration::from_secs(2), || {
            !berth_tests::host::cgroup_procs(&cgroup).is_empty()
        }),
        "the container was not created ahead"
    );
    // Unclaimed: the shim deletes the container (its init and cgroups) and
    // exits, the root file system is unmounted and the network namespace
    // removed.
    assert!(
        wait_for_polling(POLL, Duration::from_secs(10), || !shim_of(&d, &id)
            && !is_mountpoint(&merged)
            && !netns.exists()
            && berth_tests::host::cgroup_procs(&cgroup).is_empty()
            && !memory_cgroup.exists()
            && !d.exec_root.join("runtime").join(&id).exists()),
        "an unclaimed preparation stayed"
    );
    let src = d.dir.path().join("marker");
    std::fs::write(&src, "copied in\n").unwrap();
    d.docker_ok(&["cp", src.to_str().unwrap(), "ahead:/marker"]);
    assert_eq!(d.docker_ok(&["start", "-a", "ahead"]), "copied in\n");

    // A change between create and start is seen by the start.
    let id = d
        .docker_ok(&["create", "--name", "updated", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    d.docker_ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "updated",
    ]);
    d.docker_ok(&["start", "updated"]);
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory{}/{id}/memory.limit_in_bytes",
        d.cgroup_parent()
    ))
    .unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    d.docker_ok(&["rm", "-f", "updated"]);

    // A command copied in after the create: the container created ahead
    // could not find it, and the start creates it again (as `testcontainers`
    // copies files into a created container before its start).
    let id = d
        .docker_ok(&["create", "--name", "later", "busybox", "/bin/later"])
        .trim()
        .to_string();
    assert!(
        wait_for_polling(POLL, Duration::from_secs(2), || shim_of(&d, &id)),
        "the start was not prepared"
    );
    let script = d.dir.path().join("later");
    std::fs::write(&script, "#!/bin/sh\necho copied command\n").unwrap();
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    d.docker_ok(&["cp", script.to_str().unwrap(), "later:/bin/later"]);
    assert_eq!(d.docker_ok(&["start", "-a", "later"]), "copied command\n");
    d.docker_ok(&["rm", "later"]);

    // A container removed before its start leaves no shim, no mount, no
    // process and no cgroup.
    let id = d
        .docker_ok(&["create", "busybox", "true"])
        .trim()
        .to_string();
    let cgroup = format!("{}/{id}", d.cgroup_parent());
    assert!(
        wait_for_polling(POLL, Duration::from_secs(2), || {
            !berth_tests::host::cgroup_procs(&cgroup).is_empty()
        }),
        "the container was not created ahead"
    );
    d.docker_ok(&["rm", &id]);
    let merged = d.data_root.join("containers").join(&id).join("rw/merged");
    let netns = d.exec_root.join("netns").join(&id);
    let memory_cgroup = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory{cgroup}"));
    assert!(
        wait_for_polling(POLL, Duration::from_secs(10), || !shim_of(&d, &id)
            && !is_mountpoint(&merged)
            && !netns.exists()
            && berth_tests::host::cgroup_procs(&cgroup).is_empty()
            && !memory_cgroup.exists()
            && !d.exec_root.join("runtime").join(&id).exists()),
        "a removed container's preparation stayed"
    );
    // Removed at once, as often as it takes to meet the create midway: no
    // runtime state, process or cgroup is left.
    let mut ids = Vec::new();
    for delay_ms in [0u64, 2, 5, 10, 20, 50] {
        let id = d
            .docker_ok(&["create", "busybox", "true"])
            .trim()
            .to_string();
        std::thread::sleep(Duration::from_millis(delay_ms));
        d.docker_ok(&["rm", &id]);
        ids.push(id);
    }
    let left = || {
        ids.iter()
            .filter(|id| {
                let cg = format!("{}/{id}", d.cgroup_parent());
                shim_of(&d, id)
                    || d.exec_root.join("runtime").join(id).exists()
                    || !berth_tests::host::cgroup_procs(&cg).is_empty()
                    || std::path::Path::new(&format!("/sys/fs/cgroup/memory{cg}")).exists()
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        wait_for_polling(POLL, Duration::from_secs(10), || left().is_empty()),
        "containers removed while created ahead left state: {:?}",
        left()
    );
    d.docker_ok(&["rm", "-f", "ahead"]);
}
