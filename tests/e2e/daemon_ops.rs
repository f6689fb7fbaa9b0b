//! Issue 22 (items 3 and 5): `SIGHUP` reloads `daemon.json` as dockerd
//! does, and `--metrics-addr` serves Prometheus text (issue 23: so does the
//! API socket at `/_berth/metrics`). Each test runs its own daemon, signals
//! only that daemon's pid, and waits with bounds.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use berth_tests::*;

fn sighup(d: &Daemon) {
    let pid = d.pid().expect("daemon pid") as i32;
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

fn write_config(d: &Daemon, json: &str) {
    std::fs::write(d.dir.path().join("daemon.json"), json).unwrap();
}

/// Polls `f` until it holds, for at most `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Log lines after byte `from`.
fn log_since(d: &Daemon, from: usize) -> String {
    d.log_text().get(from..).unwrap_or_default().to_string()
}

fn info(d: &Daemon) -> serde_json::Value {
    serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).unwrap()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn sighup_reloads_daemon_json_and_emits_a_reload_event() {
    let d = Daemon::start();
    let before = info(&d);
    assert_eq!(before["Debug"], false);
    assert_eq!(before["Labels"], serde_json::json!([]));
    let since = now_secs();
    let mark = d.log_text().len();
    let quiet_before = !log_since(&d, 0).contains("DEBUG");

    write_config(
        &d,
        r#"{
            "debug": true,
            "labels": ["env=test", "tier=ops"],
            "insecure-registries": ["reg.example.test:5000", "10.99.0.0/16"],
            "registry-mirrors": ["https://mirror.example.test", "http://m2.example.test:5000/"],
            "max-concurrent-downloads": 7,
            "live-restore": false
        }"#,
    );
    sighup(&d);
    assert!(
        eventually(Duration::from_secs(10), || info(&d)["Labels"]
            == serde_json::json!(["env=test", "tier=ops"])),
        "labels not reloaded:\n{}",
        tail(&d.log_text(), 3000)
    );
    let after = info(&d);
    assert_eq!(after["Debug"], true);
    assert_eq!(after["LiveRestoreEnabled"], false);
    let reg = &after["RegistryConfig"];
    assert!(
        reg["InsecureRegistryCIDRs"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("10.99.0.0/16")),
        "{reg}"
    );
    assert_eq!(
        reg["IndexConfigs"]["reg.example.test:5000"]["Secure"], false,
        "{reg}"
    );
    // dockerd shows mirrors normalized, with one trailing slash, in
    // both places.
    let mirrors = serde_json::json!([
        "https://mirror.example.test/",
        "http://m2.example.test:5000/"
    ]);
    assert_eq!(reg["Mirrors"], mirrors, "{reg}");
    assert_eq!(
        reg["IndexConfigs"]["docker.io"]["Mirrors"], mirrors,
        "{reg}"
    );
    let shown = d.docker_ok(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"]);
    assert_eq!(shown.trim(), mirrors.to_string());

    // dockerd's log line, and the log level follows `debug` at once.
    let log = log_since(&d, mark);
    assert!(
        log.contains("Got signal to reload configuration, reloading from:"),
        "{log}"
    );
    assert!(log.contains("Reloaded configuration: {"), "{log}");
    assert!(log.contains("\"max-concurrent-downloads\":7"), "{log}");
    d.docker_ok(&["version"]);
    if quiet_before {
        assert!(
            eventually(Duration::from_secs(5), || log_since(&d, mark)
                .contains("DEBUG")),
            "no debug line after the reload:\n{}",
            log_since(&d, mark)
        );
    }

    // The `reload` event, as dockerd emits it.
    let until = now_secs() + 1;
    let out = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=daemon",
        "--format",
        "{{json .}}",
    ]);
    let ev: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["Action"] == "reload")
        .unwrap_or_else(|| panic!("no reload event in:\n{out}"));
    assert_eq!(ev["Type"], "daemon");
    assert_eq!(ev["scope"], "local");
    assert_eq!(ev["Actor"]["ID"], after["ID"], "{ev}");
    let a = &ev["Actor"]["Attributes"];
    assert_eq!(a["debug"], "true", "{ev}");
    assert_eq!(a["labels"], r#"["env=test","tier=ops"]"#, "{ev}");
    assert_eq!(
        a["insecure-registries"], r#"["reg.example.test:5000","10.99.0.0/16"]"#,
        "{ev}"
    );
    assert_eq!(a["max-concurrent-downloads"], "7", "{ev}");
    assert_eq!(a["max-concurrent-uploads"], "5", "{ev}");
    assert_eq!(a["live-restore"], "false", "{ev}");
    assert_eq!(a["name"], after["Name"], "{ev}");
}

#[test]
fn a_bad_reload_leaves_the_running_config_and_the_daemon() {
    let d = Daemon::start();
    write_config(&d, r#"{"labels": ["keep=1"]}"#);
    sighup(&d);
    assert!(eventually(Duration::from_secs(10), || info(&d)["Labels"]
        == serde_json::json!(["keep=1"])));

    // Not JSON: refused, logged, nothing changes, the daemon lives.
    let mark = d.log_text().len();
    write_config(&d, r#"{"labels": ["new=1"], "#);
    sighup(&d);
    assert!(
        eventually(Duration::from_secs(10), || log_since(&d, mark)
            .contains("unable to configure the daemon with file")),
        "{}",
        log_since(&d, mark)
    );
    assert_eq!(info(&d)["Labels"], serde_json::json!(["keep=1"]));

    // A key also given as a flag (the test daemon runs with `--bridge`):
    // refused as dockerd refuses it, whole.
    let mark = d.log_text().len();
    write_config(&d, r#"{"labels": ["new=1"], "bridge": "other0"}"#);
    sighup(&d);
    assert!(
        eventually(Duration::from_secs(10), || {
            log_since(&d, mark).contains(
            "the following directives are specified both as a flag and in the configuration file: bridge"
        )
        }),
        "{}",
        log_since(&d, mark)
    );
    assert_eq!(info(&d)["Labels"], serde_json::json!(["keep=1"]));

    // Conflicting label values: refused.
    let mark = d.log_text().len();
    write_config(&d, r#"{"labels": ["a=1", "a=2"]}"#);
    sighup(&d);
    assert!(
        eventually(Duration::from_secs(10), || log_since(&d, mark)
            .contains("conflict labels for a=2 and a=1")),
        "{}",
        log_since(&d, mark)
    );
    assert_eq!(info(&d)["Labels"], serde_json::json!(["keep=1"]));

    // A key dockerd does not reload (the default log driver): the
    // reloadable ones apply, it does not.
    let mark = d.log_text().len();
    write_config(&d, r#"{"labels": ["new=2"], "log-driver": "local"}"#);
    sighup(&d);
    assert!(eventually(Duration::from_secs(10), || info(&d)["Labels"]
        == serde_json::json!(["new=2"])));
    assert_eq!(info(&d)["LoggingDriver"], "json-file");
    assert!(
        log_since(&d, mark).contains("need a restart of berthd were not applied: log-driver"),
        "{}",
        log_since(&d, mark)
    );
    let (code, _, _) = d.raw("GET", "/_ping", None);
    assert_eq!(code, 200);
}

/// `ulimit -Sn` and `-Hn` in a fresh container of `d`, with `extra` run
/// options.
fn nofile(d: &Daemon, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", "ulimit -Sn; ulimit -Hn"]);
    d.docker_ok(&args)
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn inspected_ulimits(d: &Daemon, name: &str) -> serde_json::Value {
    let out = d.docker_ok(&["inspect", "--format", "{{json .HostConfig.Ulimits}}", name]);
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn default_ulimits_fill_what_a_container_leaves_unset_and_reload() {
    // A bad flag value: refused at start, with go-units' message.
    let bad = Daemon::start_with(&["--default-ulimit", "nofiles=10"]);
    assert!(bad.is_err(), "a bad --default-ulimit was accepted");

    let d = Daemon::start_with(&["--default-ulimit", "nofile=1000:2000"]).unwrap();
    berth_tests::fixtures::import_busybox(&d, "busybox:latest");
    assert_eq!(nofile(&d, &[]), ["1000", "2000"]);
    // The container's own limit of that name wins.
    assert_eq!(nofile(&d, &["--ulimit", "nofile=300:400"]), ["300", "400"]);
    // Inspect shows the merge, as dockerd's does; the record keeps what
    // was asked.
    let name = format!("ul-{}", &random_hex()[..8]);
    d.docker_ok(&[
        "create", "--name", &name, "--ulimit", "core=0:0", "busybox", "true",
    ]);
    assert_eq!(
        inspected_ulimits(&d, &name),
        serde_json::json!([
            {"Name": "core", "Soft": 0, "Hard": 0},
            {"Name": "nofile", "Soft": 1000, "Hard": 2000}
        ])
    );
    d.docker_ok(&["rm", "-f", &name]);
    // Given as a flag, the key cannot come from the file too.
    let mark = d.log_text().len();
    write_config(
        &d,
        r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 5, "Hard": 6}}}"#,
    );
    sighup(&d);
    assert!(
        eventually(Duration::from_secs(10), || {
            log_since(&d, mark).contains(
            "the following directives are specified both as a flag and in the configuration file: default-ulimits"
        )
        }),
        "{}",
        log_since(&d, mark)
    );
    assert_eq!(nofile(&d, &[]), ["1000", "2000"]);
    drop(d);

    // From the file, and changed by a reload: the next start has it.
    let d = Daemon::start();
    berth_tests::fixtures::import_busybox(&d, "busybox:latest");
    let name = format!("ul-{}", &random_hex()[..8]);
    d.docker_ok(&["create", "--name", &name, "busybox", "true"]);
    // The docker CLI sends an empty list.
    assert_eq!(inspected_ulimits(&d, &name), serde_json::json!([]));
    write_config(
        &d,
        r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1500, "Hard": 2500}}}"#,
    );
    sighup(&d);
    assert!(
        eventually(Duration::from_secs(10), || inspected_ulimits(&d, &name)
            == serde_json::json!([{"Name": "nofile", "Soft": 1500, "Hard": 2500}])),
        "{}",
        tail(&d.log_text(), 3000)
    );
    assert_eq!(nofile(&d, &[]), ["1500", "2500"]);
    // A bad entry: refused whole, the running defaults stay.
    let mark = d.log_text().len();
    write_config(
        &d,
        r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 9, "Hard": 3}}}"#,
    );
    sighup(&d);
    assert!(
        eventually(Duration::from_secs(10), || log_since(&d, mark).contains(
            "ulimit soft limit must be less than or equal to hard limit: 9 > 3"
        )),
        "{}",
        log_since(&d, mark)
    );
    assert_eq!(nofile(&d, &[]), ["1500", "2500"]);
    d.docker_ok(&["rm", "-f", &name]);
}

// --- metrics ---------------------------------------------------------------

/// The address the daemon says it serves metrics on.
fn metrics_addr(d: &Daemon) -> String {
    let mut addr = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            if let Some(l) = d
                .log_text()
                .lines()
                .find(|l| l.contains("metrics API listening on "))
            {
                addr = l
                    .rsplit("metrics API listening on ")
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
            }
            !addr.is_empty()
        }),
        "{}",
        d.log_text()
    );
    addr
}

fn scrape(addr: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (head.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// A strict reader of the Prometheus text format (0.0.4): every line is a
/// `# HELP`, a `# TYPE` or a sample `name{label="value",...} number`;
/// every sample belongs to a declared family. Returns sample → value.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut p = rest.splitn(3, ' ');
            let kind = p.next().unwrap();
            let name = p.next().expect("metric name");
            assert!(valid_name(name), "bad name in {line:?}");
            match kind {
                "HELP" => {}
                "TYPE" => {
                    let t = p.next().expect("type");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{line:?}"
                    );
                    types.insert(name.to_string(), t.to_string());
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = match series.split_once('{') {
            Some((n, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                check_labels(labels, line);
                n
            }
            None => series,
        };
        assert!(valid_name(name), "bad name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample without TYPE: {line:?}");
        samples.insert(series.to_string(), v);
    }
    samples
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn check_labels(mut s: &str, line: &str) {
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"").unwrap_or_else(|| panic!("{line:?}"));
        assert!(valid_name(k), "bad label name in {line:?}");
        // The value runs to the first unescaped quote.
        let mut end = None;
        let mut esc = false;
        for (i, c) in rest.char_indices() {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label in {line:?}"));
        s = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[test]
fn metrics_are_served_and_move_with_the_work() {
    let d = Daemon::start_with(&["--metrics-addr", "127.0.0.1:0"]).expect("berthd starts");
    fixtures::import_busybox(&d, "busybox:latest");
    let addr = metrics_addr(&d);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (head, text) = scrape(&addr);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let m0 = parse_exposition(&text);
    // A labelled family with no sample yet is left out (as Go's client
    // does): container actions appear once a container was acted on.
    for fam in [
        "# TYPE engine_daemon_container_states_containers gauge",
        "# TYPE engine_daemon_events_total counter",
        "# TYPE engine_daemon_events_subscribers_total gauge",
        "# TYPE engine_daemon_engine_info gauge",
        "# TYPE engine_daemon_engine_cpus_cpus gauge",
        "# TYPE engine_daemon_engine_memory_bytes gauge",
        "# TYPE engine_daemon_health_checks_total counter",
        "# TYPE berth_container_start_seconds histogram",
        "# TYPE berth_shims gauge",
        "# TYPE berth_shim_memory_bytes gauge",
        "# TYPE berth_api_request_duration_seconds histogram",
        "# TYPE berth_image_pull_bytes_total counter",
    ] {
        assert!(text.contains(fam), "{fam} missing:\n{text}");
    }
    assert!(value(&m0, "engine_daemon_engine_cpus_cpus") >= 1.0);
    assert!(
        text.contains("engine_daemon_engine_info{version=\""),
        "{text}"
    );

    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    d.docker_ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "60"]);

    let (_, text) = scrape(&addr);
    let m1 = parse_exposition(&text);
    assert!(
        text.contains("# TYPE engine_daemon_container_actions_seconds histogram"),
        "{text}"
    );
    let start = "engine_daemon_container_actions_seconds_count{action=\"start\"}";
    assert!(value(&m1, start) >= value(&m0, start) + 3.0, "{text}");
    let create = "engine_daemon_container_actions_seconds_count{action=\"create\"}";
    assert!(value(&m1, create) >= value(&m0, create) + 3.0, "{text}");
    assert!(
        value(&m1, "berth_container_start_seconds_count")
            >= value(&m0, "berth_container_start_seconds_count") + 3.0,
        "{text}"
    );
    let api = "berth_api_request_duration_seconds_count{route=\"/containers/{id}/start\",method=\"POST\",code=\"204\"}";
    assert!(value(&m1, api) >= value(&m0, api) + 3.0, "{text}");
    assert!(
        value(&m1, "engine_daemon_events_total") > value(&m0, "engine_daemon_events_total"),
        "{text}"
    );
    assert!(
        value(
            &m1,
            "engine_daemon_container_states_containers{state=\"running\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(value(&m1, "berth_shims") >= 1.0, "{text}");
    assert!(value(&m1, "berth_shim_memory_bytes") > 0.0, "{text}");
    // No raw path leaks into a label.
    assert!(!text.contains("busy\""), "{text}");

    d.docker_ok(&["rm", "-f", "busy"]);
    let (_, text) = scrape(&addr);
    let m2 = parse_exposition(&text);
    let delete = "engine_daemon_container_actions_seconds_count{action=\"delete\"}";
    assert!(value(&m2, delete) >= value(&m1, delete) + 1.0, "{text}");

    // Anything but /metrics is not found.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
}

#[test]
fn an_empty_metrics_addr_serves_nothing_and_a_bad_one_is_refused() {
    let d = Daemon::start_with(&["--metrics-addr", ""]).expect("berthd starts");
    assert!(!d.log_text().contains("metrics API listening"));
    drop(d);
    let e = Daemon::start_with(&["--metrics-addr", "not-an-address"])
        .err()
        .expect("refused");
    assert!(e.to_string().contains("invalid metrics-addr"), "{e}");
}

#[test]
fn a_pull_counts_its_bytes() {
    let dir = scratch();
    let Some(reg) = LocalRegistry::start(dir.path()) else {
        panic!("docker-registry is needed (see .ci/run)");
    };
    let d = Daemon::start_with(&["--metrics-addr", "127.0.0.1:0"]).expect("berthd starts");
    fixtures::import_busybox(&d, "busybox:latest");
    let addr = metrics_addr(&d);
    let tag = format!("127.0.0.1:{}/ops/busybox:1", reg.port);
    d.docker_ok(&["tag", "busybox:latest", &tag]);
    d.docker_ok(&["push", &tag]);
    d.docker_ok(&["rmi", &tag, "busybox:latest"]);
    let (_, text) = scrape(&addr);
    let before = value(&parse_exposition(&text), "berth_image_pull_bytes_total");
    d.docker_ok(&["pull", &tag]);
    let (_, text) = scrape(&addr);
    let m = parse_exposition(&text);
    // At least the compressed layer (busybox is ~1 MB).
    assert!(
        value(&m, "berth_image_pull_bytes_total") > before + 100_000.0,
        "{text}"
    );
    let pull = "berth_api_request_duration_seconds_count{route=\"/images/create\",method=\"POST\",code=\"200\"}";
    assert!(value(&m, pull) >= 1.0, "{text}");
    d.docker_ok(&["rmi", &tag]);
}

/// A flood of idle connections to the metrics listener (more than its
/// bound, each holding its 30 s header timeout) neither stops a scrape
/// nor stays open: past the bound the oldest are closed.
#[test]
fn idle_connections_do_not_keep_a_scrape_out() {
    let d = Daemon::start_with(&["--metrics-addr", "127.0.0.1:0"]).expect("berthd starts");
    let addr = metrics_addr(&d);
    let flood: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // The listener has taken them all (accepted in order).
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    let (_, text) = scrape(&addr);
    assert!(text.contains("engine_daemon_engine_info"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // At most the bound (less the scrape's) are still open.
    let mut closed = 0;
    for mut c in flood {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 1];
        match c.read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert!(
        closed >= 200 - 64,
        "{closed} of 200 idle connections closed"
    );
}

/// `GET /_berth/metrics` on the API socket: the daemon's metrics whether or
/// not `--metrics-addr` is set (here it is not).
fn api_scrape(d: &Daemon) -> (String, HashMap<String, f64>) {
    let (status, head, body) = d.raw("GET", "/_berth/metrics", None);
    assert_eq!(status, 200, "{head}");
    assert!(
        header(&head, "content-type").is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{head}"
    );
    let text = String::from_utf8(body).unwrap();
    let m = parse_exposition(&text);
    (text, m)
}

#[test]
fn the_api_socket_serves_berths_metrics_at_an_unversioned_path() {
    let d = Daemon::start_with(&[]).expect("berthd starts");
    assert!(!d.log_text().contains("metrics API listening"));
    fixtures::import_busybox(&d, "busybox:latest");
    let (text, m0) = api_scrape(&d);
    for fam in [
        "# TYPE berth_container_start_seconds histogram",
        "# TYPE berth_shims gauge",
        "# TYPE berth_shim_memory_bytes gauge",
        "# TYPE engine_daemon_engine_info gauge",
    ] {
        assert!(text.contains(fam), "{fam} missing:\n{text}");
    }

    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    d.docker_ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "60"]);
    let (text, m1) = api_scrape(&d);
    let starts = "berth_container_start_seconds_count";
    assert!(value(&m1, starts) >= value(&m0, starts) + 2.0, "{text}");
    assert!(value(&m1, "berth_shims") >= 1.0, "{text}");
    assert!(value(&m1, "berth_shim_memory_bytes") > 0.0, "{text}");
    // The scrape itself is timed under its own route label.
    let own = "berth_api_request_duration_seconds_count{route=\"/_berth/metrics\",method=\"GET\",code=\"200\"}";
    assert!(value(&m1, own) >= 1.0, "{text}");

    // HEAD: the headers, no body.
    let (status, head, body) = d.raw("HEAD", "/_berth/metrics", None);
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty());
    // Versioned, other `/_berth/*` paths and other methods: dockerd's 404.
    for (method, path) in [
        ("GET", "/v1.50/_berth/metrics"),
        ("GET", "/v1.41/_berth/metrics"),
        ("GET", "/_berth/nope"),
        ("GET", "/_berth"),
        ("POST", "/_berth/metrics"),
    ] {
        let (status, head, body) = d.raw(method, path, None);
        assert_eq!(status, 404, "{method} {path}: {head}");
        assert_eq!(
            body_json(&body)["message"],
            "page not found",
            "{method} {path}"
        );
    }
    // Route labels are the router's own templates: names with `/` fold
    // into `{name}`, and what matched no route is `other`.
    d.docker_ok(&["tag", "busybox:latest", "library/busy/box:1"]);
    d.docker_ok(&["image", "inspect", "library/busy/box:1"]);
    let (text, m2) = api_scrape(&d);
    for key in [
        "berth_api_request_duration_seconds_count{route=\"/images/{name}/json\",method=\"GET\",code=\"200\"}",
        "berth_api_request_duration_seconds_count{route=\"other\",method=\"GET\",code=\"404\"}",
        "berth_api_request_duration_seconds_count{route=\"other\",method=\"POST\",code=\"404\"}",
    ] {
        assert!(value(&m2, key) >= 1.0, "{key} missing:\n{text}");
    }
    d.docker_ok(&["rmi", "library/busy/box:1"]);
    d.docker_ok(&["rm", "-f", "busy"]);
}
