//! berth's own CLI driving containers on berthd: the scenarios of
//! `containers.rs` (there through the docker CLI) through `berth`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::cli::{berth, berth_inspect_format, berth_ok};
use berth_tests::pty::Pty;
use berth_tests::*;

/// How often a wait polls here (its conditions run the docker CLI).
const POLL: Duration = Duration::from_millis(50);

/// `berth ARGS` with `input` on its stdin.
fn berth_in(d: &Daemon, args: &[&str], input: &[u8]) -> Output {
    let mut c = d
        .berth_cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let mut stdin = c.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    finish(c, Duration::from_secs(60))
}

fn logs(d: &Daemon, name: &str) -> String {
    stdout(&berth(d, &["logs", name]))
}

#[test]
fn berth_run_prints_output_and_returns_the_exit_code() {
    let d = daemon();
    let o = berth(&d, &["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("hi\n", Some(0)),
        "{}",
        stderr(&o)
    );
    let o = berth(&d, &["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Piped stdin arrives before start, and its end closes the container's.
    let o = berth_in(&d, &["run", "-i", "--rm", "busybox", "cat"], b"x\ny\n");
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("x\ny\n", Some(0)));
    // stderr stays stderr.
    let o = berth(
        &d,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ],
    );
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("out\n", "err\n")
    );
    // Start failures: docker's exit codes and message.
    let o = berth(&d, &["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("berth: Error response from daemon: ")
            && stderr(&o).contains("executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
    let o = berth(&d, &["run", "--rm", "busybox", "/etc"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    // A missing image: docker's notice, then a clear failure.
    let o = berth(&d, &["run", "--rm", "nope", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).starts_with("Unable to find image 'nope:latest' locally\nberth: "),
        "{}",
        stderr(&o)
    );
    // A bad flag value is refused before anything is created.
    let o = berth(&d, &["run", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).ends_with("\n\nRun 'berth run --help' for more information\n"),
        "{}",
        stderr(&o)
    );
    // Flags after the image belong to the command.
    assert_eq!(
        berth_ok(
            &d,
            &[
                "run",
                "--rm",
                "-e",
                "A=1",
                "busybox",
                "sh",
                "-c",
                "echo $A $0 $1",
                "-d",
                "--rm"
            ]
        ),
        "1 -d --rm\n"
    );
    // --rm removed them all.
    assert_eq!(berth_ok(&d, &["ps", "-aq"]).trim(), "");
}

#[test]
fn berth_run_it_gives_a_terminal_that_follows_resizes() {
    let d = daemon();
    let mut cmd = d.berth_cmd();
    cmd.args(["run", "-it", "--rm", "busybox", "sh"]);
    berth_tests::pty::check_run_it_session(cmd);
}

#[test]
fn detach_keys_leave_the_container_running_and_restore_the_terminal() {
    let d = daemon();
    let mut cmd = Command::new("sh");
    cmd.env("DOCKER_HOST", d.host()).args([
        "-c",
        r#""$0" run -it --name dk busybox sh; echo "rc=$?"; stty -a"#,
        &bin("berth").display().to_string(),
    ]);
    let mut p = Pty::spawn(cmd, 24, 80);
    assert!(p.expect("/ #", Duration::from_secs(20)), "{}", p.text());
    p.write("\x10\x11");
    assert!(p.expect("rc=0", Duration::from_secs(10)), "{}", p.text());
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0), "{}", p.text());
    // Cooked mode again: canonical input and echo are back on.
    let after = p.text();
    let stty = &after[after.find("rc=0").unwrap_or(0)..];
    assert!(
        stty.contains(" icanon") && stty.contains(" echo ") && !stty.contains("-icanon"),
        "{stty}"
    );
    assert_eq!(
        berth_inspect_format(&d, "dk", "{{.State.Status}}"),
        "running"
    );
    // A custom sequence on attach works too, and the shell is still there.
    let mut cmd = d.berth_cmd();
    cmd.args(["attach", "--detach-keys", "ctrl-x,x", "dk"]);
    let mut p = Pty::spawn(cmd, 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    p.write("echo attached-$((1+1))\r");
    assert!(
        p.expect("attached-2", Duration::from_secs(10)),
        "{}",
        p.text()
    );
    p.write("\x18x");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0), "{}", p.text());
    assert_eq!(
        berth_inspect_format(&d, "dk", "{{.State.Status}}"),
        "running"
    );
    assert_eq!(
        berth_ok(&d, &["exec", "dk", "echo", "still-here"]),
        "still-here\n"
    );
}

#[test]
fn a_detached_container_through_logs_signals_exec_pause_stop_and_rename() {
    let d = daemon();
    let script = r#"trap 'echo got-usr1' USR1; trap 'echo got-term; exit 7' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"#;
    let id = berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-l",
            "role=test",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let follow = d
        .berth_cmd()
        .args(["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("logs -f");
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || logs(
        &d, "web"
    )
    .contains("tick 3")));
    // kill -s reaches the trap.
    berth_ok(&d, &["kill", "-s", "USR1", "web"]);
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || logs(
        &d, "web"
    )
    .contains("got-usr1")));
    // ps: docker's columns, templates, quiet.
    let ps = berth_ok(&d, &["ps"]);
    assert!(ps.starts_with("CONTAINER ID   IMAGE     COMMAND "), "{ps}");
    let row = ps.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(
        // dockerd quotes an argument holding a space.
        row.contains("   busybox   \"sh -c 'trap 'echo g…\"   "),
        "{ps}"
    );
    assert!(row.contains(" ago   Up ") && row.ends_with("web"), "{ps}");
    assert_eq!(berth_ok(&d, &["ps", "--format", "{{.Names}}"]), "web\n");
    assert_eq!(
        berth_ok(&d, &["ps", "-q", "--filter", "label=role=test"]).trim(),
        &id[..12]
    );
    assert_eq!(berth_ok(&d, &["ps", "-q", "--no-trunc"]).trim(), id);
    assert_eq!(
        berth_inspect_format(&d, "web", "{{.Config.Labels.role}}"),
        "test"
    );
    // top lists its processes.
    let top = berth_ok(&d, &["top", "web"]);
    assert!(top.starts_with("UID ") && top.contains("sh -c"), "{top}");
    // exec: output, exit code, env and workdir, piped stdin, a terminal.
    assert_eq!(
        berth_ok(
            &d,
            &[
                "exec",
                "-e",
                "X=1",
                "-w",
                "/tmp",
                "web",
                "sh",
                "-c",
                "echo $X $(pwd)"
            ]
        ),
        "1 /tmp\n"
    );
    let o = berth(&d, &["exec", "web", "sh", "-c", "echo e >&2; exit 4"]);
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(4), "e\n"));
    let o = berth_in(&d, &["exec", "-i", "web", "cat"], b"through exec\n");
    assert_eq!(stdout(&o), "through exec\n");
    let mut cmd = d.berth_cmd();
    cmd.args(["exec", "-it", "web", "sh", "-c", "tty; stty size; exit 6"]);
    let mut p = Pty::spawn(cmd, 25, 90);
    assert_eq!(p.wait(Duration::from_secs(20)), Some(6), "{}", p.text());
    assert!(
        p.text().contains("/dev/pts/") && p.text().contains("25 90"),
        "{}",
        p.text()
    );
    berth_ok(&d, &["exec", "-d", "web", "touch", "/tmp/detached"]);
    assert!(wait_for_polling(POLL, Duration::from_secs(5), || berth(
        &d,
        &["exec", "web", "test", "-f", "/tmp/detached"]
    )
    .status
    .success()));
    // pause freezes the counter; ps shows it.
    assert_eq!(berth_ok(&d, &["pause", "web"]), "web\n");
    assert_eq!(
        berth_inspect_format(&d, "web", "{{.State.Status}}"),
        "paused"
    );
    let a = logs(&d, "web").lines().count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        logs(&d, "web").lines().count(),
        a,
        "paused container kept printing"
    );
    assert!(berth_ok(&d, &["ps"]).contains("(Paused)"));
    assert_eq!(berth_ok(&d, &["unpause", "web"]), "web\n");
    assert!(wait_for_polling(POLL, Duration::from_secs(5), || logs(
        &d, "web"
    )
    .lines()
    .count()
        > a));
    // stop: SIGTERM reaches the trap, exit code 7; logs -f ends with it.
    let t = Instant::now();
    assert_eq!(berth_ok(&d, &["stop", "-t", "5", "web"]), "web\n");
    assert!(t.elapsed() < Duration::from_secs(4));
    assert_eq!(
        berth_inspect_format(&d, "web", "{{.State.ExitCode}} {{.State.Status}}"),
        "7 exited"
    );
    let out = finish(follow, Duration::from_secs(10));
    let text = stdout(&out);
    assert!(
        text.contains("tick 0") && text.contains("got-term"),
        "logs -f: {text}"
    );
    assert!(berth_ok(&d, &["ps", "-a"]).contains("Exited (7)"));
    assert_eq!(berth_ok(&d, &["ps"]).lines().count(), 1, "only the header");
    // tail and timestamps.
    let last = berth_ok(&d, &["logs", "--tail", "1", "web"]);
    assert_eq!(last, "got-term\n");
    let ts = berth_ok(&d, &["logs", "-t", "-n", "1", "web"]);
    assert!(ts.ends_with(" got-term\n") && ts.starts_with("20"), "{ts}");
    // restart and rename keep the container.
    assert_eq!(berth_ok(&d, &["restart", "-t", "1", "web"]), "web\n");
    assert_eq!(
        berth_inspect_format(&d, "web", "{{.State.Running}}"),
        "true"
    );
    berth_ok(&d, &["rename", "web", "web2"]);
    assert_eq!(berth_inspect_format(&d, &id, "{{.Name}}"), "/web2");
    // rm of a running container needs -f.
    let o = berth(&d, &["rm", "web2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("Error response from daemon: "),
        "{}",
        stderr(&o)
    );
    assert_eq!(berth_ok(&d, &["container", "rm", "-f", "web2"]), "web2\n");
}

#[test]
fn ps_columns_match_docker_exactly() {
    let d = daemon();
    berth_ok(
        &d,
        &["run", "-d", "--name", "a1", "busybox", "sleep", "100"],
    );
    berth_ok(
        &d,
        &[
            "create",
            "--name",
            "a2",
            "busybox",
            "echo",
            "a very long command line here",
        ],
    );
    for args in [
        vec!["ps"],
        vec!["ps", "-a"],
        vec!["ps", "-a", "--no-trunc"],
        vec!["ps", "-a", "-s"],
        vec!["ps", "-n", "1"],
        vec!["ps", "-l", "-q"],
        vec![
            "ps",
            "-a",
            "--format",
            "table {{.Names}}\t{{.Image}}\t{{.State}}",
        ],
        vec![
            "ps",
            "-a",
            "--filter",
            "status=created",
            "--format",
            "{{.ID}} {{.Names}}",
        ],
    ] {
        // "N seconds ago" may tick between the two runs; a few tries make
        // that harmless.
        let same = (0..5).any(|_| d.docker_ok(&args) == berth_ok(&d, &args));
        assert!(
            same,
            "berth {args:?}:\n{}\ndocker:\n{}",
            berth_ok(&d, &args),
            d.docker_ok(&args)
        );
    }
    for args in [
        vec!["inspect", "a1"],
        vec!["container", "inspect", "a1", "a2"],
        vec!["inspect", "-f", "{{.State.Status}} {{.Config.Cmd}}", "a2"],
        vec!["top", "a1"],
    ] {
        // GraphDriver.Data is a map the daemon may order differently per
        // request (compare lines as sets), and top's C column may tick
        // between the two runs (retry a few times).
        let lines = |s: &str| -> Vec<String> {
            let mut v: Vec<String> = s
                .lines()
                .map(|l| l.trim_end_matches(',').to_string())
                .collect();
            v.sort();
            v
        };
        let same = (0..5).any(|_| {
            let ok = lines(&d.docker_ok(&args)) == lines(&berth_ok(&d, &args));
            if !ok {
                std::thread::sleep(Duration::from_millis(300));
            }
            ok
        });
        assert!(
            same,
            "berth {args:?}:\n{}\ndocker:\n{}",
            berth_ok(&d, &args),
            d.docker_ok(&args)
        );
    }
}

#[test]
fn multi_container_commands_report_each() {
    let d = daemon();
    for n in ["m1", "m2"] {
        berth_ok(&d, &["run", "-d", "--name", n, "busybox", "sleep", "100"]);
    }
    // One missing: the others still act; errors on stderr; status 1.
    let o = berth(&d, &["stop", "-t", "0", "m1", "nope", "m2"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "m1\nm2\n");
    assert_eq!(
        stderr(&o),
        "Error response from daemon: No such container: nope\n"
    );
    // wait prints each status; start prints each name.
    assert_eq!(berth_ok(&d, &["wait", "m1", "m2"]), "137\n137\n");
    assert_eq!(berth_ok(&d, &["start", "m1", "m2"]), "m1\nm2\n");
    assert_eq!(berth_inspect_format(&d, "m2", "{{.State.Running}}"), "true");
    // rm -f of several, tolerating a missing one.
    let o = berth(&d, &["rm", "-f", "m1", "gone", "m2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "m1\nm2\n");
    assert!(stderr(&o).contains("No such container: gone"));
    assert_eq!(berth_ok(&d, &["ps", "-aq"]).trim(), "");
    // container prune.
    berth_ok(&d, &["create", "--name", "p1", "busybox", "true"]);
    let id = berth_inspect_format(&d, "p1", "{{.Id}}");
    let out = berth_ok(&d, &["container", "prune", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Containers:\n{id}\n\nTotal reclaimed space: "
        )),
        "{out}"
    );
}

#[test]
fn create_start_attach_and_wait() {
    let d = daemon();
    // start -a: output and exit code.
    berth_ok(
        &d,
        &[
            "create",
            "--name",
            "s1",
            "busybox",
            "sh",
            "-c",
            "echo started; exit 4",
        ],
    );
    let o = berth(&d, &["start", "-a", "s1"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("started\n", Some(4))
    );
    // start -ai with piped stdin.
    berth_ok(&d, &["create", "-i", "--name", "s2", "busybox", "cat"]);
    let o = berth_in(&d, &["start", "-ai", "s2"], b"via start\n");
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("via start\n", Some(0))
    );
    // attach to a running container follows it until it stops.
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "s3",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' TERM; while true; do echo alive; sleep 0.1; done",
        ],
    );
    let att = d
        .berth_cmd()
        .args(["attach", "--no-stdin", "s3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("attach");
    std::thread::sleep(Duration::from_millis(500));
    berth_ok(&d, &["stop", "s3"]);
    let o = finish(att, Duration::from_secs(20));
    assert!(stdout(&o).contains("alive"), "{}", stdout(&o));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // wait blocks until the exit.
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "s4",
            "busybox",
            "sh",
            "-c",
            "sleep 0.5; exit 9",
        ],
    );
    assert_eq!(berth_ok(&d, &["wait", "s4"]), "9\n");
    // Errors are docker's.
    let o = berth(&d, &["attach", "s4"]);
    assert_eq!(
        stderr(&o),
        "You cannot attach to a stopped container, start it first\n"
    );
    let o = berth(&d, &["create", "--name", "s4", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already in use"), "{}", stderr(&o));
}
