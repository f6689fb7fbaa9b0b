//! The CLIs run with a deadline (60 s), for tests of the CLIs themselves.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{finish, stderr, stdout, tail, Daemon};

/// Runs `cmd` with its output collected, killed after 60 s.
pub fn bounded(mut cmd: Command) -> Output {
    let c = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish(c, Duration::from_secs(60))
}

/// `berth ARGS`, bounded in time.
pub fn berth(d: &Daemon, args: &[&str]) -> Output {
    let mut c = d.berth_cmd();
    c.args(args);
    bounded(c)
}

/// `docker ARGS`, bounded in time.
pub fn docker(d: &Daemon, args: &[&str]) -> Output {
    let mut c = d.docker_cmd();
    c.args(args);
    bounded(c)
}

/// `berth ARGS`, which must succeed: its stdout.
pub fn berth_ok(d: &Daemon, args: &[&str]) -> String {
    let o = berth(d, args);
    assert!(
        o.status.success(),
        "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log tail:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 40)
    );
    stdout(&o)
}

/// `berth inspect -f FMT NAME`, trimmed.
pub fn berth_inspect_format(d: &Daemon, name: &str, fmt: &str) -> String {
    berth_ok(d, &["inspect", "-f", fmt, name])
        .trim()
        .to_string()
}

/// Runs `script` in busybox as container `name` (detached, with `opts`
/// before the image), waits for it to exit and returns its full ID; the
/// container is kept for its logs.
pub fn run_script_to_exit(d: &Daemon, name: &str, opts: &[&str], script: &str) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    d.docker_ok(&args);
    d.docker_ok(&["wait", name]);
    d.inspect_format(name, "{{.Id}}")
}
