//! Issue 22, item 4: Docker's built-in log drivers. Listeners written
//! here on loopback (a unix datagram socket, UDP and TCP for syslog; a
//! Forward-protocol server for fluentd) receive what berthd sends; the
//! file drivers (json-file with `compress`, `local`) are checked on disk
//! and through `docker logs`, `-f` across rotations. The docker CLI
//! drives berthd. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_tests::*;

// fluentd-request-ack and the end of a removed container's retries.
#[path = "log_drivers/fluentd_ack.rs"]
mod fluentd_ack;

/// What a listener received, one message each.
type Got = Arc<Mutex<Vec<String>>>;

fn wait_count(got: &Got, n: usize) -> Vec<String> {
    let ok = wait_for(Duration::from_secs(20), || {
        got.lock().map(|g| g.len() >= n).unwrap_or(false)
    });
    let g = got.lock().map(|g| g.clone()).unwrap_or_default();
    assert!(ok, "expected {n} messages, got {g:?}");
    g
}

fn udp_listener() -> (u16, Got) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = s.recv(&mut buf) {
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (port, got)
}

fn unixgram_listener(dir: &std::path::Path) -> (String, Got) {
    let path = dir.join("log.sock");
    let s = UnixDatagram::bind(&path).unwrap();
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = s.recv(&mut buf) {
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (path.display().to_string(), got)
}

/// Lines of every TCP connection (the newline kept).
fn tcp_listener() -> (u16, Got) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(c);
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    g.lock().unwrap().push(std::mem::take(&mut line));
                }
            });
        }
    });
    (port, got)
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

use berth_tests::cli::run_script_to_exit as run;

/// `<pri>1 <time> <host> <tag> <pid> <tag> - <msg>\n`, checked field by
/// field (the time is the daemon's now).
fn check_5424(m: &str, pri: u8, host: &str, tag: &str, pid: u32, msg: &str) {
    let f: Vec<&str> = m.splitn(8, ' ').collect();
    assert_eq!(f.len(), 8, "{m:?}");
    assert_eq!(f[0], format!("<{pri}>1"), "{m:?}");
    assert!(f[1].len() >= 20 && f[1].contains('T'), "{m:?}");
    assert_eq!(&f[2..7], &[host, tag, &pid.to_string(), tag, "-"], "{m:?}");
    assert_eq!(f[7], format!("{msg}\n"), "{m:?}");
}

/// `<pri>Mmm dd hh:mm:ss [host ]tag[pid]: msg\n`.
fn check_3164(m: &str, pri: u8, host: Option<&str>, tag: &str, pid: u32, msg: &str) {
    let head = format!("<{pri}>");
    assert!(m.starts_with(&head), "{m:?}");
    // The stamp is 15 characters (`Jan _2 15:04:05`).
    let rest = &m[head.len() + 15..];
    let want = match host {
        Some(h) => format!(" {h} {tag}[{pid}]: {msg}\n"),
        None => format!(" {tag}[{pid}]: {msg}\n"),
    };
    assert_eq!(rest, want, "{m:?}");
    assert_eq!(m.as_bytes()[head.len() + 3], b' ', "{m:?}");
}

#[test]
fn syslog_to_udp_unixgram_and_tcp_in_dockers_formats() {
    let d = daemon();
    let pid = d.pid().expect("the daemon runs");
    let host = hostname();
    let dir = scratch();

    // RFC 5424 over UDP, the tag a template, stderr at priority err.
    let (port, got) = udp_listener();
    let addr = format!("syslog-address=udp://127.0.0.1:{port}");
    let id = run(
        &d,
        "s5424",
        &[
            "--log-driver",
            "syslog",
            "--log-opt",
            &addr,
            "--log-opt",
            "syslog-format=rfc5424",
            "--log-opt",
            "tag={{.Name}}/{{.ID}}",
        ],
        "echo hello; sleep 0.2; echo oops >&2",
    );
    let m = wait_count(&got, 2);
    let tag = format!("s5424/{}", &id[..12]);
    check_5424(&m[0], 30, &host, &tag, pid, "hello");
    check_5424(&m[1], 27, &host, &tag, pid, "oops");
    // Dual logging: docker logs reads the local cache.
    let o = d.docker(&["logs", "s5424"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello\n");
    assert_eq!(stderr(&o), "oops\n");
    assert_eq!(
        d.inspect_format("s5424", "{{.HostConfig.LogConfig.Type}}"),
        "syslog"
    );
    assert_eq!(d.inspect_format("s5424", "{{.LogPath}}"), "");

    // RFC 3164 to a unix datagram socket, facility local0 (16).
    let (path, got) = unixgram_listener(dir.path());
    let addr = format!("syslog-address=unixgram://{path}");
    let id = run(
        &d,
        "s3164",
        &[
            "--log-driver",
            "syslog",
            "--log-opt",
            &addr,
            "--log-opt",
            "syslog-format=rfc3164",
            "--log-opt",
            "syslog-facility=local0",
        ],
        "echo one; echo two",
    );
    let m = wait_count(&got, 2);
    check_3164(&m[0], 134, Some(&host), &id[..12], pid, "one");
    check_3164(&m[1], 134, Some(&host), &id[..12], pid, "two");

    // The default format (srslog's unix one) over TCP, micro RFC 5424 too.
    let (port, got) = tcp_listener();
    let addr = format!("syslog-address=tcp://127.0.0.1:{port}");
    run(
        &d,
        "stcp",
        &[
            "--log-driver",
            "syslog",
            "--log-opt",
            &addr,
            "--log-opt",
            "tag=web",
        ],
        "echo a; echo b >&2",
    );
    let m = wait_count(&got, 2);
    check_3164(&m[0], 30, None, "web", pid, "a");
    check_3164(&m[1], 27, None, "web", pid, "b");
    let (port, got) = tcp_listener();
    let addr = format!("syslog-address=tcp://127.0.0.1:{port}");
    run(
        &d,
        "smicro",
        &[
            "--log-driver",
            "syslog",
            "--log-opt",
            &addr,
            "--log-opt",
            "tag=m",
            "--log-opt",
            "syslog-format=rfc5424micro",
        ],
        "echo x",
    );
    let m = wait_count(&got, 1);
    check_5424(&m[0], 30, &host, "m", pid, "x");
    let stamp = m[0].split(' ').nth(1).unwrap_or_default();
    assert_eq!(
        stamp.split('.').nth(1).map(|f| f.len() >= 7),
        Some(true),
        "{stamp}"
    );
}

#[test]
fn fluentd_speaks_the_forward_protocol() {
    let d = daemon();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<rmpv::Value>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(c);
                while let Ok(v) = rmpv::decode::read_value(&mut r) {
                    g.lock().unwrap().push(v);
                }
            });
        }
    });
    let addr = format!("fluentd-address=127.0.0.1:{port}");
    let id = run(
        &d,
        "fl",
        &[
            "--log-driver",
            "fluentd",
            "--log-opt",
            &addr,
            "--log-opt",
            "tag=docker.{{.Name}}",
            "--label",
            "team=obs",
            "--log-opt",
            "labels=team",
        ],
        "echo hello; sleep 0.2; echo oops >&2",
    );
    let ok = wait_for(Duration::from_secs(20), || got.lock().unwrap().len() >= 2);
    let msgs = got.lock().unwrap().clone();
    assert!(ok, "{msgs:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (m, (source, line)) in msgs.iter().zip([("stdout", "hello"), ("stderr", "oops")]) {
        let a = m.as_array().expect("a message is an array");
        assert!(a.len() == 3 || a.len() == 4, "{m}");
        assert_eq!(a[0].as_str(), Some("docker.fl"), "{m}");
        let t = a[1].as_i64().expect("time in seconds");
        assert!((now - t).abs() < 120, "{m}");
        let rec: std::collections::HashMap<&str, &str> = a[2]
            .as_map()
            .expect("a record")
            .iter()
            .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
            .collect();
        assert_eq!(rec["container_id"], id, "{m}");
        assert_eq!(rec["container_name"], "/fl", "{m}");
        assert_eq!(rec["source"], source, "{m}");
        assert_eq!(rec["log"], line, "{m}");
        assert_eq!(rec["team"], "obs", "{m}");
    }
    assert_eq!(stdout(&d.docker(&["logs", "fl"])), "hello\n");

    // Nothing listens: the start fails as dockerd's (not with async).
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("fluentd-address=tcp://127.0.0.1:{dead}");
    let o = d.docker(&[
        "run",
        "--name",
        "nofl",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &addr,
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("failed to initialize logging driver"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&[
        "run",
        "--name",
        "asyncfl",
        "--log-driver",
        "fluentd",
        "--log-opt",
        &addr,
        "--log-opt",
        "fluentd-async=true",
        "busybox",
        "echo",
        "x",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn options_are_refused_with_dockerds_messages() {
    let d = daemon();
    let cases: &[(&str, &str, &str)] = &[
        (
            "syslog",
            "foo=1",
            "unknown log opt 'foo' for syslog log driver",
        ),
        ("syslog", "syslog-format=json", "invalid syslog format"),
        ("syslog", "syslog-facility=nope", "invalid syslog facility"),
        (
            "syslog",
            "syslog-address=http://x",
            "unsupported scheme: 'http'",
        ),
        (
            "syslog",
            "syslog-address=unix:///nonexistent/log.sock",
            "stat /nonexistent/log.sock: no such file or directory",
        ),
        (
            "fluentd",
            "fluentd-tag=x",
            "unknown log opt 'fluentd-tag' for fluentd log driver",
        ),
        (
            "fluentd",
            "fluentd-address=udp://h:1",
            "invalid fluentd-address (udp://h:1): unsupported scheme: 'udp'",
        ),
        (
            "syslog",
            "mode=fast",
            "logger: logging mode not supported: fast",
        ),
    ];
    for (driver, opt, msg) in cases {
        let o = d.docker(&[
            "create",
            "--log-driver",
            driver,
            "--log-opt",
            opt,
            "busybox",
            "true",
        ]);
        assert!(!o.status.success(), "{driver} {opt}");
        assert!(stderr(&o).contains(msg), "{driver} {opt}: {}", stderr(&o));
    }
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Log}}"]);
    assert_eq!(
        info.trim(),
        r#"["fluentd","journald","json-file","local","syslog"]"#
    );
}

#[test]
fn the_daemons_default_driver_and_a_restart_keep_forwarding() {
    let (port, got) = udp_listener();
    let addr = format!("syslog-address=udp://127.0.0.1:{port}");
    let mut d = Daemon::start_with(&[
        "--log-driver",
        "syslog",
        "--log-opt",
        &addr,
        "--log-opt",
        "tag=dflt",
    ])
    .expect("berthd starts");
    berth_tests::fixtures::import_busybox(&d, "busybox:latest");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "long",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 40 ]; do echo line$i; i=$((i+1)); sleep 0.25; done",
    ]);
    assert_eq!(
        d.inspect_format("long", "{{.HostConfig.LogConfig.Type}}"),
        "syslog"
    );
    wait_count(&got, 2);
    // The daemon dies while the container logs, and comes back.
    d.kill9();
    std::thread::sleep(Duration::from_secs(1));
    d.restart().expect("berthd restarts");
    d.docker_ok(&["wait", "long"]);
    let m = wait_count(&got, 40);
    let lines: Vec<String> = m
        .iter()
        .map(|s| {
            s.rsplit(": ")
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_string()
        })
        .collect();
    // Every line, in order, once (the pipe and the shim's queue held
    // what came while no daemon read).
    let want: Vec<String> = (0..40).map(|i| format!("line{i}")).collect();
    assert_eq!(lines, want);
    assert!(m[0].contains(" dflt["), "{}", m[0]);
}

/// The files of a container's log directory whose names start with
/// `prefix`, sorted.
fn log_files(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A file's bytes, gunzipped when its name ends in `.gz` (checking the
/// gzip magic).
fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let raw = std::fs::read(path).unwrap();
    if !path.to_string_lossy().ends_with(".gz") {
        return raw;
    }
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "{} is gzip", path.display());
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The numbers of `line N` texts, in order.
fn numbers(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("line ")?.parse().ok())
        .collect()
}

fn consecutive(v: &[u32]) -> bool {
    v.windows(2).all(|w| w[1] == w[0] + 1)
}

/// One record of a `local` file: (source, time_nano, line, partial), as
/// protobuf fields 1, 2, 3, 4 (decoded by hand here).
fn local_records(data: &[u8]) -> Vec<(String, i64, String, bool)> {
    fn varint(b: &[u8], at: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let x = b[*at];
            *at += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let after = u32::from_be_bytes(data[at + 4 + n..at + 8 + n].try_into().unwrap());
        assert_eq!(after as usize, n, "the length after the record");
        let msg = &data[at + 4..at + 4 + n];
        let mut rec = (String::new(), 0i64, String::new(), false);
        let mut i = 0;
        while i < msg.len() {
            let key = varint(msg, &mut i);
            match (key >> 3, key & 7) {
                (2, 0) => rec.1 = varint(msg, &mut i) as i64,
                (4, 0) => rec.3 = varint(msg, &mut i) != 0,
                (f, 2) => {
                    let len = varint(msg, &mut i) as usize;
                    let s = String::from_utf8_lossy(&msg[i..i + len]).into_owned();
                    i += len;
                    match f {
                        1 => rec.0 = s,
                        3 => rec.2 = s,
                        _ => {}
                    }
                }
                (_, 0) => {
                    varint(msg, &mut i);
                }
                _ => panic!("unexpected wire type"),
            }
        }
        out.push(rec);
        at += 8 + n;
    }
    out
}

/// `docker logs -f` started before a container prints `n` numbered
/// lines (at a steady pace, or at once with `pause` empty) sees each
/// exactly once, in order, across the rotations its options cause.
fn follow_sees_every_line_once(d: &Daemon, name: &str, opts: &[&str], n: u32, pause: &str) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(opts);
    let script = format!(
        "sleep 1; i=0; while [ $i -lt {n} ]; do echo \"line $i\"; i=$((i+1)); {pause} done"
    );
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    d.docker_ok(&args);
    let follower = d
        .docker_cmd()
        .args(["logs", "-f", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = finish(follower, Duration::from_secs(90));
    assert!(o.status.success(), "logs -f: {}", stderr(&o));
    let got = numbers(&stdout(&o));
    let want: Vec<u32> = (0..n).collect();
    assert_eq!(got, want, "{name}: every line once, in order");
}

/// json-file's `labels`, `labels-regex`, `env`, `env-regex` and `tag`
/// options: every line carries the attributes (`"attrs"`, between
/// `stream` and `time`, as dockerd writes them), and `docker logs
/// --details` prints them as dockerd does: sorted, query-escaped,
/// `k=v,…` and a blank before the text.
#[test]
fn json_file_attributes_show_with_details() {
    let d = daemon();
    let id = run(
        &d,
        "attrs",
        &[
            "--label",
            "app=web",
            "--label",
            "com.x=a b/c",
            "--label",
            "DUP=label",
            "--label",
            "other=no",
            "-e",
            "ENV1=v1",
            "-e",
            "DUP=env",
            "-e",
            "ZZ=<z>",
            "--log-opt",
            "labels=app,DUP,missing",
            "--log-opt",
            "labels-regex=^com\\.",
            "--log-opt",
            "env=ENV1,DUP",
            "--log-opt",
            "env-regex=^Z",
            "--log-opt",
            "tag={{.Name}}",
        ],
        "echo hello; echo oops >&2",
    );
    let file = d
        .data_root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    let text = std::fs::read_to_string(&file).unwrap();
    let first = text.lines().next().unwrap();
    // dockerd's bytes: Go's json.Marshal of the map (sorted, HTML escaped).
    let attrs = r#""attrs":{"DUP":"env","ENV1":"v1","ZZ":"\u003cz\u003e","app":"web","com.x":"a b/c","tag":"attrs"}"#;
    assert!(
        first.starts_with(r#"{"log":"hello\n","stream":"stdout","#)
            && first.contains(&format!(r#""stdout",{attrs},"time":"#)),
        "{first}"
    );
    let want = "DUP=env,ENV1=v1,ZZ=%3Cz%3E,app=web,com.x=a+b%2Fc,tag=attrs";
    let o = d.docker(&["logs", "--details", "attrs"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{want} hello\n"));
    assert_eq!(stderr(&o), format!("{want} oops\n"));
    // The stderr line is the last; the time before the attributes.
    let o = d.docker(&["logs", "--details", "--timestamps", "--tail", "1", "attrs"]);
    let both = stderr(&o);
    let (ts, rest) = both.split_once(' ').unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 30, "{both:?}");
    assert_eq!(rest, format!("{want} oops\n"));
    // Without --details, the text alone.
    assert_eq!(stdout(&d.docker(&["logs", "attrs"])), "hello\n");
    // A pattern that is no regexp fails the start as dockerd's `New`.
    let o = d.docker(&[
        "run",
        "--name",
        "badre",
        "--log-opt",
        "env-regex=(",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("failed to initialize logging driver: error parsing regexp"),
        "{}",
        stderr(&o)
    );
}

/// `docker logs` without `-f` while the container writes fast and the
/// log rotates many times a second: every read sees one consistent set
/// of files, its numbers strictly consecutive (no file missed or read
/// twice), for json-file and local.
#[test]
fn reads_racing_rotations_are_consistent() {
    let d = daemon();
    let script = "i=0; while [ $i -lt 30000 ]; do echo \"line $i\"; i=$((i+1)); done; sleep 1";
    for (name, opts) in [
        (
            "rj",
            &[
                "--log-opt",
                "max-size=2k",
                "--log-opt",
                "max-file=4",
                "--log-opt",
                "compress=true",
            ][..],
        ),
        (
            "rl",
            &[
                "--log-driver",
                "local",
                "--log-opt",
                "max-size=2k",
                "--log-opt",
                "max-file=4",
            ][..],
        ),
    ] {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        d.docker_ok(&args);
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let sock = d.sock.clone();
                let cfg = d.docker_config.clone();
                let name = name.to_string();
                std::thread::spawn(move || {
                    let mut reads = 0;
                    while std::time::Instant::now() < deadline && reads < 40 {
                        let o = std::process::Command::new("docker")
                            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
                            .env("DOCKER_CONFIG", &cfg)
                            .env_remove("DOCKER_API_VERSION")
                            .env_remove("DOCKER_CONTEXT")
                            .stdin(std::process::Stdio::null())
                            .args(["logs", &name])
                            .output()
                            .unwrap();
                        assert!(o.status.success(), "{}", stderr(&o));
                        let nums = numbers(&stdout(&o));
                        assert!(
                            consecutive(&nums),
                            "{name}: a read missed or repeated: {nums:?}"
                        );
                        reads += 1;
                        if nums.last() == Some(&29_999) {
                            break;
                        }
                    }
                    reads
                })
            })
            .collect();
        let reads: usize = readers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(reads >= 8, "{name}: {reads} reads");
        d.docker_ok(&["rm", "-f", name]);
    }
}

#[test]
fn json_file_compresses_rotated_files_and_follows_across_them() {
    let d = daemon();
    let rot = [
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
    ];
    // Without rotation to compress, dockerd's refusal at start.
    let o = d.docker(&[
        "run",
        "--name",
        "nocomp",
        "--log-opt",
        "compress=true",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "failed to initialize logging driver: compress cannot be true when max-file is less than 2 or max-size is not set"
        ),
        "{}",
        stderr(&o)
    );
    let id = run(
        &d,
        "jc",
        &rot,
        "i=0; while [ $i -lt 200 ]; do echo \"line $i\"; i=$((i+1)); done",
    );
    let dir = d.data_root.join("containers").join(&id);
    let base = format!("{id}-json.log");
    // The shim compresses before it reports the exit.
    assert_eq!(
        log_files(&dir, &base),
        [base.clone(), format!("{base}.1.gz"), format!("{base}.2.gz")]
    );
    let mut kept = Vec::new();
    for f in [format!("{base}.2.gz"), format!("{base}.1.gz"), base.clone()] {
        let text = String::from_utf8(file_bytes(&dir.join(&f))).unwrap();
        let mut logs = String::new();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["stream"], "stdout");
            logs.push_str(v["log"].as_str().unwrap());
        }
        let nums = numbers(&logs);
        assert!(!nums.is_empty() && consecutive(&nums), "{f}: {nums:?}");
        kept.extend(nums);
    }
    assert!(consecutive(&kept) && kept.last() == Some(&199), "{kept:?}");
    // docker logs reads them all, in order.
    let all = numbers(&d.docker_ok(&["logs", "jc"]));
    assert_eq!(all, kept);
    let tail = numbers(&d.docker_ok(&["logs", "--tail", "5", "jc"]));
    assert_eq!(tail, [195, 196, 197, 198, 199]);
    // --since / --until at a line's own time, as --timestamps shows it.
    let stamped = d.docker_ok(&["logs", "--timestamps", "jc"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), kept.len());
    let (ts, text) = lines[3].split_once(' ').unwrap();
    assert_eq!(numbers(text), [kept[3]]);
    let since = numbers(&d.docker_ok(&["logs", "--since", ts, "jc"]));
    assert_eq!(since, kept[3..]);
    let until = numbers(&d.docker_ok(&["logs", "--until", ts, "jc"]));
    assert_eq!(until, kept[..4]);
    // --details: dockerd's `<time> <attrs> <text>`, the attributes empty.
    let detailed = d.docker_ok(&["logs", "--details", "--tail", "1", "jc"]);
    assert_eq!(detailed, " line 199\n");
    let both = d.docker_ok(&["logs", "--details", "--timestamps", "--tail", "1", "jc"]);
    let (ts, rest) = both.split_once(' ').unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 30, "{both:?}");
    assert_eq!(rest, " line 199\n");
    // A follower sees every line once across many rotations.
    follow_sees_every_line_once(&d, "jf", &rot, 150, "sleep 0.02;");
    // A burst: many rotations and compressions between two passes.
    follow_sees_every_line_once(
        &d,
        "jburst",
        &[
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=200",
            "--log-opt",
            "compress=true",
        ],
        2000,
        "",
    );
}

#[test]
fn local_driver_round_trip_as_the_daemons_default() {
    // The daemon's default driver and options (a container's own options
    // fill in over them).
    let d = Daemon::start_with(&["--log-driver", "local", "--log-opt", "max-file=3"])
        .expect("berthd starts");
    berth_tests::fixtures::import_busybox(&d, "busybox:latest");
    assert_eq!(
        d.docker_ok(&[
            "info",
            "--format",
            "{{.LoggingDriver}} {{json .Plugins.Log}}"
        ])
        .trim(),
        r#"local ["fluentd","journald","json-file","local","syslog"]"#
    );
    let id = run(
        &d,
        "lc",
        &["--log-opt", "max-size=1k"],
        "i=0; while [ $i -lt 100 ]; do echo \"line $i\"; i=$((i+1)); done",
    );
    assert_eq!(
        d.inspect_format(
            "lc",
            "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}} [{{.LogPath}}]"
        ),
        r#"local {"max-file":"3","max-size":"1k"} []"#
    );
    // On disk: Docker's framing, rotated files gzipped.
    let dir = d.data_root.join("containers").join(&id).join("local-logs");
    assert_eq!(
        log_files(&dir, "container.log"),
        ["container.log", "container.log.1.gz", "container.log.2.gz"]
    );
    let mut kept = Vec::new();
    let mut last_time = 0;
    for f in ["container.log.2.gz", "container.log.1.gz", "container.log"] {
        for (source, time, line, partial) in local_records(&file_bytes(&dir.join(f))) {
            assert_eq!(source, "stdout");
            assert!(!partial);
            assert!(time >= last_time, "times in order");
            last_time = time;
            // The newline is not stored.
            assert!(!line.ends_with('\n'), "{line:?}");
            kept.extend(numbers(&line));
        }
    }
    assert!(consecutive(&kept) && kept.last() == Some(&99), "{kept:?}");
    assert_eq!(numbers(&d.docker_ok(&["logs", "lc"])), kept);
    assert_eq!(
        numbers(&d.docker_ok(&["logs", "--tail", "3", "lc"])),
        [97, 98, 99]
    );
    let stamped = d.docker_ok(&["logs", "-t", "--tail", "10", "lc"]);
    let (ts, _) = stamped.lines().nth(2).unwrap().split_once(' ').unwrap();
    assert_eq!(
        numbers(&d.docker_ok(&["logs", "--since", ts, "lc"])),
        (92..100).collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(&d.docker_ok(&["logs", "--until", ts, "--tail", "2", "lc"])),
        [91, 92]
    );
    follow_sees_every_line_once(&d, "lf", &["--log-opt", "max-size=1k"], 120, "sleep 0.02;");
    // A burst: many rotations (and compressions) between two passes of
    // the follower, the files kept long enough to be found.
    follow_sees_every_line_once(
        &d,
        "lburst",
        &["--log-opt", "max-size=1k", "--log-opt", "max-file=200"],
        2000,
        "",
    );
    // dockerd's refusals: the keys at create, the values at start.
    let o = d.docker(&[
        "create",
        "--log-driver",
        "local",
        "--log-opt",
        "tag=x",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown log opt 'tag' for log driver local"),
        "{}",
        stderr(&o)
    );
    for (opt, msg) in [
        ("max-file=1", "compression cannot be enabled when max file count is 1"),
        (
            "compress=maybe",
            "error reading compress log option: strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        ("max-size=big", "invalid value for max-size: big: invalid size: 'big'"),
    ] {
        let o = d.docker(&["run", "--log-opt", opt, "busybox", "true"]);
        assert!(!o.status.success(), "{opt}");
        assert!(
            stderr(&o).contains(&format!("failed to initialize logging driver: {msg}")),
            "{opt}: {}",
            stderr(&o)
        );
    }
}

/// A CA (`ca.pem` in `dir`) and a server identity for 127.0.0.1 it
/// signed, for rustls.
fn tls_server_config(dir: &std::path::Path) -> Arc<rustls::ServerConfig> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let chain = vec![cert.der().clone()];
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    Arc::new(cfg)
}

/// Lines of every TLS connection (the newline kept).
fn tls_listener(cfg: Arc<rustls::ServerConfig>) -> (u16, Got) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let (g, cfg) = (g.clone(), cfg.clone());
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
                let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                    return;
                };
                let mut r = BufReader::new(rustls::StreamOwned::new(conn, c));
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    g.lock().unwrap().push(std::mem::take(&mut line));
                }
            });
        }
    });
    (port, got)
}

#[test]
fn syslog_over_tls_to_a_loopback_listener() {
    let d = daemon();
    let dir = scratch();
    let (port, got) = tls_listener(tls_server_config(dir.path()));
    let addr = format!("syslog-address=tcp+tls://127.0.0.1:{port}");
    let ca = format!("syslog-tls-ca-cert={}", dir.path().join("ca.pem").display());
    run(
        &d,
        "stls",
        &[
            "--log-driver",
            "syslog",
            "--log-opt",
            &addr,
            "--log-opt",
            &ca,
            "--log-opt",
            "syslog-format=rfc5424",
            "--log-opt",
            "tag=tls",
        ],
        "echo one; echo two",
    );
    let m = wait_count(&got, 2);
    assert!(
        m[0].starts_with("<30>1 ") && m[0].ends_with(" tls - one\n"),
        "{m:?}"
    );
    assert!(m[1].ends_with(" tls - two\n"), "{m:?}");
    // Without the CA the server is not trusted: the start fails, as
    // dockerd's dial does; skip-verify trusts any certificate.
    let o = d.docker(&[
        "run",
        "--log-driver",
        "syslog",
        "--log-opt",
        &addr,
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("failed to initialize logging driver"),
        "{}",
        stderr(&o)
    );
    run(
        &d,
        "sskip",
        &[
            "--log-driver",
            "syslog",
            "--log-opt",
            &addr,
            "--log-opt",
            "syslog-tls-skip-verify=true",
            "--log-opt",
            "tag=skip",
        ],
        "echo three",
    );
    let m = wait_count(&got, 3);
    assert!(m[2].contains("skip[") && m[2].ends_with("three\n"), "{m:?}");
}

#[test]
fn fluentd_over_tls_trusts_the_system_roots() {
    // The daemon's system roots are the test's CA (rustls-native-certs
    // reads SSL_CERT_FILE), as fluentd's tls:// has no CA option.
    let dir = scratch();
    let cfg = tls_server_config(dir.path());
    let ca = dir.path().join("ca.pem").display().to_string();
    let d = Daemon::start_with_env(&[], &[("SSL_CERT_FILE", &ca)]).expect("berthd starts");
    berth_tests::fixtures::import_busybox(&d, "busybox:latest");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<rmpv::Value>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let (g, cfg) = (g.clone(), cfg.clone());
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
                let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                    return;
                };
                let mut r = BufReader::new(rustls::StreamOwned::new(conn, c));
                while let Ok(v) = rmpv::decode::read_value(&mut r) {
                    g.lock().unwrap().push(v);
                }
            });
        }
    });
    let addr = format!("fluentd-address=tls://127.0.0.1:{port}");
    run(
        &d,
        "fltls",
        &[
            "--log-driver",
            "fluentd",
            "--log-opt",
            &addr,
            "--log-opt",
            "tag=sec",
        ],
        "echo secret",
    );
    let ok = wait_for(Duration::from_secs(20), || !got.lock().unwrap().is_empty());
    let msgs = got.lock().unwrap().clone();
    assert!(ok, "{msgs:?}");
    let a = msgs[0].as_array().expect("a message is an array");
    assert_eq!(a[0].as_str(), Some("sec"));
    let log = a[2]
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == Some("log"))
        .map(|(_, v)| v.as_str().unwrap().to_string());
    assert_eq!(log.as_deref(), Some("secret"));
}
