//! Issue 19, item 4: logging plugins. A test plugin (`tests/plugins/
//! logplugin.py`, Docker's LogDriver protocol over a unix socket in the
//! daemon's plugins dir) stores every entry the shim writes into its FIFO
//! and serves them back through `ReadLogs`; the docker CLI drives berthd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_tests::*;
use serde_json::Value;

/// The test plugin, killed on drop.
struct LogPlugin {
    name: String,
    store: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl LogPlugin {
    fn start(d: &Daemon, read_logs: bool) -> Self {
        Self::start_with(d, if read_logs { &[] } else { &["--no-read-logs"] })
    }

    fn start_with(d: &Daemon, flags: &[&str]) -> Self {
        Self::start_named(d, &format!("tlog{}", &random_hex()[..8]), flags)
    }

    fn start_named(d: &Daemon, name: &str, flags: &[&str]) -> Self {
        let name = name.to_string();
        let dir = scratch();
        let store = dir.path().join("store");
        let socket = d.exec_root.join("plugins").join(format!("{name}.sock"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/logplugin.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(&socket).arg(&store).args(flags);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the test plugin");
        let p = Self {
            name,
            store,
            socket,
            child: Some(child),
            _dir: dir,
        };
        assert!(
            wait_for(Duration::from_secs(10), || p.socket.exists()),
            "the test plugin did not listen"
        );
        p
    }

    /// The plugin dies (its socket stays, as after a crash).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.store.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The entries the plugin received for a container.
    fn entries(&self, id: &str) -> Vec<Value> {
        self.lines(&format!("{id}.jsonl"))
    }

    /// The `Info`s of the StartLogging calls for a container (with `File`).
    fn starts(&self, id: &str) -> Vec<Value> {
        self.lines("info.jsonl")
            .into_iter()
            .filter(|v| v["Info"]["ContainerID"] == id)
            .collect()
    }

    fn stops(&self, id: &str) -> usize {
        self.lines("events.jsonl")
            .iter()
            .filter(|v| v["id"] == id && v.get("stopped").is_some())
            .count()
    }

    fn read_logs_calls(&self, id: &str) -> Vec<Value> {
        self.lines("events.jsonl")
            .into_iter()
            .filter(|v| v["readlogs"] == id)
            .collect()
    }

    /// Waits until the container's logging has stopped `n` times.
    fn wait_stops(&self, id: &str, n: usize) {
        assert!(
            wait_for(Duration::from_secs(30), || self.stops(id) >= n),
            "StopLogging #{n} of {id} never came; events: {:?}",
            self.lines("events.jsonl")
        );
    }
}

impl Drop for LogPlugin {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn start_daemon() -> Daemon {
    let d = Daemon::start_with(&["--plugin-timeout", "5"]).expect("berthd starts");
    berth_tests::fixtures::import_busybox(&d, "busybox:latest");
    d
}

fn texts(entries: &[Value], source: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["source"] == source)
        .map(|e| e["line"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The FIFOs left in the daemon's logging dir.
fn fifos(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.exec_root.join("logging"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (bounded) for the FIFOs to go: StopLogging runs on a thread of
/// its own and the FIFO goes after it.
fn no_fifo_left(d: &Daemon) {
    assert!(
        wait_for(Duration::from_secs(10), || fifos(d).is_empty()),
        "FIFOs left: {:?}",
        fifos(d)
    );
}

fn id_of(d: &Daemon, name: &str) -> String {
    d.inspect_format(name, "{{.Id}}")
}

#[test]
fn every_line_reaches_the_plugin_and_reads_back() {
    let d = start_daemon();
    let p = LogPlugin::start(&d, true);
    let script = "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; \
                  head -c 20000 /dev/zero | tr '\\0' a; echo; echo end";
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lines",
        "--log-driver",
        &p.name,
        "--log-opt",
        "x=y",
        "--label",
        "team=logs",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id_of(&d, "lines");
    d.docker_ok(&["wait", "lines"]);
    p.wait_stops(&id, 1);

    // Info as Docker gives it, with the --log-opt as Config.
    let starts = p.starts(&id);
    assert_eq!(starts.len(), 1, "{starts:?}");
    let info = &starts[0]["Info"];
    assert_eq!(info["Config"], serde_json::json!({"x": "y"}));
    assert_eq!(info["ContainerName"], "/lines");
    assert_eq!(info["ContainerImageName"], "busybox");
    assert_eq!(info["ContainerEntrypoint"], "sh");
    assert_eq!(info["ContainerArgs"][0], "-c");
    assert_eq!(info["ContainerLabels"]["team"], "logs");
    assert_eq!(info["DaemonName"], "docker");
    assert!(info["ContainerImageID"]
        .as_str()
        .unwrap_or("")
        .starts_with("sha256:"));
    let file = starts[0]["File"].as_str().unwrap_or_default().to_string();
    assert!(
        Path::new(&file).starts_with(d.exec_root.join("logging")),
        "{file}"
    );
    // The FIFO is gone once logging stopped.
    no_fifo_left(&d);
    assert!(!Path::new(&file).exists(), "{file} left behind");

    // Every line, on its stream, in order, whole; the long one in pieces.
    let entries = p.entries(&id);
    let out = texts(&entries, "stdout");
    let err = texts(&entries, "stderr");
    let want_err: Vec<String> = (0..300).map(|i| format!("err{i}")).collect();
    assert_eq!(err, want_err);
    let want_out: Vec<String> = (0..300).map(|i| format!("out{i}")).collect();
    assert_eq!(out[..300], want_out[..]);
    let pieces: Vec<&Value> = entries
        .iter()
        .filter(|e| e["source"] == "stdout" && e["partial"] == true)
        .collect();
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert_eq!(pieces[0]["line"].as_str().unwrap().len(), 16 * 1024);
    assert_eq!(pieces[1]["line"].as_str().unwrap().len(), 20000 - 16 * 1024);
    assert_eq!(pieces[0]["meta"]["ordinal"], 1);
    assert_eq!(pieces[1]["meta"]["ordinal"], 2);
    assert_eq!(pieces[0]["meta"]["last"], false);
    assert_eq!(pieces[1]["meta"]["last"], true);
    assert_eq!(pieces[0]["meta"]["id"], pieces[1]["meta"]["id"]);
    assert_eq!(pieces[0]["meta"]["id"].as_str().unwrap().len(), 64);
    assert_eq!(out.last().map(String::as_str), Some("end"));
    assert!(entries
        .iter()
        .all(|e| e["time_nano"].as_i64().unwrap_or(0) > 0));

    // docker logs reads back through ReadLogs (no local file is kept).
    assert_eq!(d.inspect_format("lines", "{{.LogPath}}"), "");
    let o = d.docker(&["logs", "lines"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got_out = stdout(&o);
    let mut want = want_out.join("\n");
    want.push('\n');
    want.push_str(&"a".repeat(20000));
    want.push_str("\nend\n");
    assert_eq!(got_out, want);
    assert_eq!(stderr(&o), want_err.join("\n") + "\n");
    assert_eq!(p.read_logs_calls(&id).len(), 1);
    let call = &p.read_logs_calls(&id)[0];
    assert_eq!(call["config"]["Tail"], -1);
    assert_eq!(call["config"]["Follow"], false);
    assert_eq!(call["info"]["ContainerName"], "/lines");

    // docker info lists it after the built-in drivers.
    let log_drivers = d.docker_ok(&["info", "--format", "{{json .Plugins.Log}}"]);
    let log_drivers: Vec<String> = serde_json::from_str(log_drivers.trim()).unwrap();
    let want = [
        "fluentd",
        "journald",
        "json-file",
        "local",
        "syslog",
        &p.name,
    ];
    assert_eq!(log_drivers, want);
    d.docker_ok(&["rm", "lines"]);
}

#[test]
fn tail_since_and_follow_through_read_logs() {
    let d = start_daemon();
    let p = LogPlugin::start(&d, true);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "nums",
        "--log-driver",
        &p.name,
        "busybox",
        "sh",
        "-c",
        "i=1; while [ $i -le 50 ]; do echo $i; i=$((i+1)); done",
    ]);
    let id = id_of(&d, "nums");
    d.docker_ok(&["wait", "nums"]);
    p.wait_stops(&id, 1);

    let tail = d.docker_ok(&["logs", "--tail", "5", "nums"]);
    assert_eq!(tail, "46\n47\n48\n49\n50\n");
    assert_eq!(d.docker_ok(&["logs", "--tail", "0", "nums"]), "");

    // --timestamps shows each entry's time; --since one of them starts there.
    let stamped = d.docker_ok(&["logs", "--timestamps", "nums"]);
    let rows: Vec<(String, String)> = stamped
        .lines()
        .map(|l| {
            let (t, v) = l.split_once(' ').expect("a timestamp");
            (t.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(rows.len(), 50, "{stamped}");
    assert_eq!(rows[0].1, "1");
    let since = rows[29].0.clone();
    let want: Vec<String> = rows
        .iter()
        .filter(|(t, _)| *t >= since)
        .map(|(_, v)| format!("{v}\n"))
        .collect();
    // Lines 30 to 50 (and any earlier one stamped the same nanosecond).
    assert!((21..50).contains(&want.len()), "{want:?}");
    let got = d.docker_ok(&["logs", "--since", &since, "nums"]);
    assert_eq!(got, want.concat());
    assert!(got.ends_with(
        "30\n31\n32\n33\n34\n35\n36\n37\n38\n39\n40\n41\n42\n43\n44\n45\n46\n47\n48\n49\n50\n"
    ));

    // --until one of them ends there (inclusive, as dockerd).
    let until = rows[9].0.clone();
    let want: String = rows
        .iter()
        .filter(|(t, _)| *t <= until)
        .map(|(_, v)| format!("{v}\n"))
        .collect();
    assert!(
        want.starts_with("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
        "{want}"
    );
    assert_eq!(d.docker_ok(&["logs", "--until", &until, "nums"]), want);

    // Follow on a running container: every line, and the end with it.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "--log-driver",
        &p.name,
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; i=0; while [ $i -lt 40 ]; do echo f$i; i=$((i+1)); sleep 0.05; done",
    ]);
    let follower = d
        .docker_cmd()
        .args(["logs", "-f", "live"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker logs -f");
    let o = finish(follower, Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    let want: String = (0..40).map(|i| format!("f{i}\n")).collect();
    assert_eq!(stdout(&o), want);
    let live = id_of(&d, "live");
    assert_eq!(p.read_logs_calls(&live)[0]["config"]["Follow"], true);
    // A stopped container is not followed: the plugin is told so.
    p.wait_stops(&live, 1);
    let o = d.docker_ok(&["logs", "-f", "--tail", "1", "live"]);
    assert_eq!(o, "f39\n");
    assert_eq!(p.read_logs_calls(&live)[1]["config"]["Follow"], false);
    d.docker_ok(&["rm", "-f", "nums", "live"]);
}

#[test]
fn a_plugin_that_cannot_read_gets_dual_logging() {
    let d = start_daemon();
    let p = LogPlugin::start(&d, false);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dual",
        "--log-driver",
        &p.name,
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 0.3; echo three",
    ]);
    let id = id_of(&d, "dual");
    d.docker_ok(&["wait", "dual"]);
    p.wait_stops(&id, 1);
    let entries = p.entries(&id);
    assert_eq!(texts(&entries, "stdout"), ["one", "three"]);
    assert_eq!(texts(&entries, "stderr"), ["two"]);
    // docker logs reads the local cache, not the plugin.
    let o = d.docker(&["logs", "dual"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "one\nthree\n");
    assert_eq!(stderr(&o), "two\n");
    assert_eq!(d.docker_ok(&["logs", "--tail", "1", "dual"]), "three\n");
    assert!(p.read_logs_calls(&id).is_empty());

    // Without the cache nothing can be read back.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "nocache",
        "--log-driver",
        &p.name,
        "--log-opt",
        "cache-disabled=true",
        "busybox",
        "echo",
        "lost",
    ]);
    let nid = id_of(&d, "nocache");
    d.docker_ok(&["wait", "nocache"]);
    p.wait_stops(&nid, 1);
    assert_eq!(texts(&p.entries(&nid), "stdout"), ["lost"]);
    let o = d.docker(&["logs", "nocache"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("configured logging driver does not support reading"),
        "{}",
        stderr(&o)
    );
    // A bad cache option is refused at create.
    let o = d.docker(&[
        "create",
        "--log-driver",
        &p.name,
        "--log-opt",
        "cache-max-file=0",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid max-file: 0"), "{}", stderr(&o));
    assert_eq!(d.docker_ok(&["ps", "-aq"]).lines().count(), 2);
    d.docker_ok(&["rm", "dual", "nocache"]);
}

#[test]
fn a_missing_failing_or_dead_plugin_is_a_clear_error() {
    let d = start_daemon();
    let mut p = LogPlugin::start(&d, true);

    // No such plugin: refused at create, nothing created.
    let o = d.docker(&[
        "run",
        "--name",
        "ghost",
        "--log-driver",
        "nosuchlog",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o)
            .contains("error looking up logging plugin nosuchlog: plugin \"nosuchlog\" not found"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");

    // StartLogging fails: the start fails with the plugin's word, and no
    // FIFO is left.
    d.docker_ok(&[
        "create",
        "--name",
        "refused",
        "--log-driver",
        &p.name,
        "--log-opt",
        "fail=boom",
        "busybox",
        "echo",
        "hi",
    ]);
    let o = d.docker(&["start", "refused"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("failed to initialize logging driver") && e.contains("refused: boom"),
        "{e}"
    );
    no_fifo_left(&d);
    assert_eq!(d.inspect_format("refused", "{{.State.Running}}"), "false");

    // The plugin dies: a start fails within the timeout, clearly, and the
    // daemon keeps serving.
    d.docker_ok(&[
        "create",
        "--name",
        "orphan",
        "--log-driver",
        &p.name,
        "busybox",
        "echo",
        "x",
    ]);
    p.kill();
    let t0 = std::time::Instant::now();
    let o = d.docker(&["start", "orphan"]);
    assert!(!o.status.success());
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let e = stderr(&o);
    assert!(
        e.contains("failed to initialize logging driver")
            && e.contains(&format!(
                "plugin \"{}\" is not running or not answering",
                p.name
            )),
        "{e}"
    );
    no_fifo_left(&d);
    assert_eq!(d.inspect_format("orphan", "{{.State.Running}}"), "false");
    // docker logs says why too, and the daemon answers the rest.
    let o = d.docker(&["logs", "orphan"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not running or not answering"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    d.docker_ok(&["rm", "refused", "orphan"]);
}

#[test]
fn lines_survive_a_daemon_restart_and_a_new_start_logs_again() {
    let mut d = start_daemon();
    let p = LogPlugin::start(&d, true);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        "--log-driver",
        &p.name,
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 60 ]; do echo $i; i=$((i+1)); sleep 0.05; done",
    ]);
    let id = id_of(&d, "counter");
    assert!(wait_for(Duration::from_secs(20), || p.entries(&id).len() >= 5));
    d.kill9();
    // The shim keeps writing while no daemon runs.
    let before = p.entries(&id).len();
    assert!(
        wait_for(Duration::from_secs(20), || p.entries(&id).len()
            > before + 5),
        "nothing logged while the daemon was down"
    );
    d.restart().expect("berthd restarts");
    d.docker_ok(&["wait", "counter"]);
    p.wait_stops(&id, 1);
    let want: Vec<String> = (0..60).map(|i| i.to_string()).collect();
    assert_eq!(texts(&p.entries(&id), "stdout"), want);
    no_fifo_left(&d);

    // A start after the restart: StartLogging again, with a new FIFO.
    d.docker_ok(&["start", "counter"]);
    d.docker_ok(&["wait", "counter"]);
    p.wait_stops(&id, 2);
    let starts = p.starts(&id);
    assert_eq!(starts.len(), 2);
    assert_ne!(starts[0]["File"], starts[1]["File"]);
    assert_eq!(texts(&p.entries(&id), "stdout").len(), 120);
    let logs = d.docker_ok(&["logs", "--tail", "2", "counter"]);
    assert_eq!(logs, "58\n59\n");
    d.docker_ok(&["rm", "counter"]);
}

#[test]
fn a_plugin_that_never_reads_does_not_hold_the_container() {
    let d = start_daemon();
    let p = LogPlugin::start_with(&d, &["--no-read-logs", "--stall"]);
    // About 3 MB: far more than the FIFO and the shim's queue hold.
    d.docker_ok(&[
        "run", "-d", "--name", "flood", "--log-driver", &p.name, "busybox", "sh", "-c",
        "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 | head -n 30000; echo done",
    ]);
    let id = id_of(&d, "flood");
    let waiter = d
        .docker_cmd()
        .args(["wait", "flood"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker wait");
    // One stall of 5 s, then the output flows (and is dropped for the plugin).
    let o = finish(waiter, Duration::from_secs(60));
    assert_eq!(stdout(&o).trim(), "0", "{}", stderr(&o));
    p.wait_stops(&id, 1);
    assert!(p.entries(&id).is_empty());
    no_fifo_left(&d);
    // The local cache has every line all the same.
    let logs = d.docker_ok(&["logs", "flood"]);
    assert_eq!(logs.lines().count(), 30001);
    assert_eq!(logs.lines().last(), Some("done"));
    d.docker_ok(&["rm", "flood"]);
}

#[test]
fn the_daemons_default_log_driver_may_be_a_plugin() {
    let name = format!("tlog{}", &random_hex()[..8]);
    let d = Daemon::start_with(&[
        "--plugin-timeout",
        "5",
        "--log-driver",
        &name,
        "--log-opt",
        "tag=dflt",
    ])
    .expect("berthd starts");
    berth_tests::fixtures::import_busybox(&d, "busybox:latest");
    let p = LogPlugin::start_named(&d, &name, &[]);
    assert_eq!(
        d.docker_ok(&["info", "--format", "{{.LoggingDriver}}"])
            .trim(),
        name
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dflt",
        "busybox",
        "echo",
        "by default",
    ]);
    let id = id_of(&d, "dflt");
    d.docker_ok(&["wait", "dflt"]);
    p.wait_stops(&id, 1);
    assert_eq!(texts(&p.entries(&id), "stdout"), ["by default"]);
    // The daemon's options come with its driver, under the container's own.
    assert_eq!(
        p.starts(&id)[0]["Info"]["Config"],
        serde_json::json!({"tag": "dflt"})
    );
    assert_eq!(
        d.inspect_format("dflt", "{{json .HostConfig.LogConfig}}")
            .trim(),
        format!(r#"{{"Type":"{name}","Config":{{"tag":"dflt"}}}}"#)
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "own",
        "--log-opt",
        "tag=mine",
        "busybox",
        "true",
    ]);
    let own = id_of(&d, "own");
    d.docker_ok(&["wait", "own"]);
    p.wait_stops(&own, 1);
    assert_eq!(
        p.starts(&own)[0]["Info"]["Config"],
        serde_json::json!({"tag": "mine"})
    );
    // Attached, and removed at exit: the output shows and the plugin
    // still gets it; nothing is left.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--name", "gone", "busybox", "echo", "attached"]),
        "attached\n"
    );
    assert!(wait_for(Duration::from_secs(10), || {
        p.lines("info.jsonl")
            .iter()
            .filter_map(|v| v["Info"]["ContainerID"].as_str().map(str::to_string))
            .any(|c| p.entries(&c).iter().any(|e| e["line"] == "attached") && p.stops(&c) == 1)
    }));
    no_fifo_left(&d);
    // Another driver named on the container takes none of them.
    d.docker_ok(&[
        "run",
        "--name",
        "plain",
        "--log-driver",
        "json-file",
        "busybox",
        "echo",
        "local",
    ]);
    assert_eq!(d.docker_ok(&["logs", "plain"]), "local\n");
    assert!(p.starts(&id_of(&d, "plain")).is_empty());
    d.docker_ok(&["rm", "dflt", "own", "plain"]);
}

/// A managed (v2) logging plugin: the same test plugin, packaged with a
/// `config.json` (`docker.logdriver/1.0`) and run by the daemon (the
/// host's python bound into its root read-only). Its FIFO is made in the
/// plugin's root at `/run/docker/logging/<name>` and given by that path,
/// as Docker does, and goes after `StopLogging`.
#[test]
fn a_managed_logging_plugin_gets_its_fifo_inside_its_root() {
    let d = start_daemon();
    let t = scratch();
    let store = t.path().join("store");
    let dir = berth_tests::plugins::python_plugin_dir(
        t.path(),
        "mlog",
        "logplugin.py",
        &["/run/docker/plugins/mlog.sock", "/store"],
        &["docker.logdriver/1.0"],
        &store,
    );
    d.docker_ok(&["plugin", "create", "mlog", &dir.display().to_string()]);
    d.docker_ok(&["plugin", "enable", "mlog"]);
    let plugin_id = d
        .docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", "mlog"])
        .trim()
        .to_string();
    let in_root = d
        .data_root
        .join("plugins")
        .join(&plugin_id)
        .join("rootfs/run/docker/logging");

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "managed",
        "--log-driver",
        "mlog",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2",
    ]);
    let id = id_of(&d, "managed");
    d.docker_ok(&["wait", "managed"]);
    let read = |f: &str| -> Vec<Value> {
        std::fs::read_to_string(store.join(f))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(30), || read("events.jsonl")
            .iter()
            .any(|v| v["id"] == id.as_str() && v.get("stopped").is_some())),
        "StopLogging never came: {:?}",
        read("events.jsonl")
    );
    let starts: Vec<Value> = read("info.jsonl")
        .into_iter()
        .filter(|v| v["Info"]["ContainerID"] == id.as_str())
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let file = starts[0]["File"].as_str().unwrap_or_default();
    assert!(file.starts_with("/run/docker/logging/"), "{file}");
    let entries = read(&format!("{id}.jsonl"));
    assert_eq!(texts(&entries, "stdout"), ["one"]);
    assert_eq!(texts(&entries, "stderr"), ["two"]);

    // docker logs through the managed plugin's ReadLogs.
    let o = d.docker(&["logs", "managed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "one\n");
    assert_eq!(stderr(&o), "two\n");

    // Neither the link in the daemon's directory nor the FIFO in the
    // plugin's root is left.
    no_fifo_left(&d);
    let left: Vec<_> = std::fs::read_dir(&in_root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "FIFOs left in the plugin's root: {left:?}");

    d.docker_ok(&["rm", "managed"]);
    d.docker_ok(&["plugin", "disable", "mlog"]);
    d.docker_ok(&["plugin", "rm", "mlog"]);
}
