//! Issue 22, item 4: Docker's built-in forwarding log drivers. Listeners
//! written here on loopback (a unix datagram socket, UDP and TCP for
//! syslog; a Forward-protocol server for fluentd) receive what berthd
//! sends; the docker CLI drives berthd. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_tests::*;

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

fn run(d: &Daemon, name: &str, opts: &[&str], script: &str) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    d.docker_ok(&args);
    d.docker_ok(&["wait", name]);
    d.inspect_format(name, "{{.Id}}")
}

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
fn journald_needs_the_journal() {
    let d = daemon();
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("journald: a journal socket exists here; not writing into the host's journal");
        return;
    }
    eprintln!(
        "journald: no /run/systemd/journal/socket on this host; checking the start error only"
    );
    let o = d.docker(&[
        "run",
        "--name",
        "jd",
        "--log-driver",
        "journald",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o)
            .contains("failed to initialize logging driver: journald is not enabled on this host"),
        "{}",
        stderr(&o)
    );
    // Validation happens at create, as dockerd's.
    let o = d.docker(&[
        "create",
        "--log-driver",
        "journald",
        "--log-opt",
        "x=1",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&o).contains("unknown log opt 'x' for journald log driver"),
        "{}",
        stderr(&o)
    );
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
        r#"["fluentd","journald","json-file","syslog"]"#
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
