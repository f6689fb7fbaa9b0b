//! `GET /images/search` and `docker search`: the registry v1 search API.
//! No real registry here speaks v1 search (Debian's docker-registry is v2
//! only), so a tiny v1 index (std TcpListener on 127.0.0.1) answers
//! `/v1/_ping` and `/v1/search` with a fixed body and records what it was
//! asked. Everything stays on loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_tests::*;
use serde_json::{json, Value};

/// One search request the index received.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    authorization: Option<String>,
}

struct V1Index {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Longer than the 45 characters the table shows.
const LONG: &str = "Buzzing about the hive all day long, then\nsome more";

fn answer() -> Value {
    json!({
        "num_results": 3,
        "query": "busy",
        "results": [
            {"name": "busy/box", "description": "A small box", "star_count": 5,
             "is_official": true, "is_automated": false},
            {"name": "busy/bee", "description": LONG, "star_count": 2,
             "is_official": false, "is_automated": true},
            {"name": "busy/body", "description": null, "star_count": 3,
             "is_official": false, "is_automated": false}
        ]
    })
}

impl V1Index {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: at most 5 minutes, at most 200 connections.
            let deadline = Instant::now() + Duration::from_secs(300);
            let mut served = 0;
            while !st2.load(Ordering::SeqCst) && Instant::now() < deadline && served < 200 {
                match l.accept() {
                    Ok((c, _)) => {
                        served += 1;
                        serve(c, &s2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for V1Index {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut c: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // A TLS ClientHello (the https attempt): hang up, as a plain HTTP
        // server would fail it.
        if buf[0] == 0x16 {
            return;
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 64 << 10 {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let authorization = header(&head, "Authorization").map(str::to_string);
    let (status, body) = if target == "/v1/_ping" {
        ("200 OK", "true".to_string())
    } else if target.starts_with("/v1/search?") {
        seen.lock().unwrap().push(Seen {
            target,
            authorization,
        });
        ("200 OK", answer().to_string())
    } else {
        ("404 Not Found", "{}".to_string())
    };
    let _ = write!(
        c,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn names(out: &str) -> Vec<String> {
    out.lines().map(str::to_string).collect()
}

#[test]
fn docker_search_asks_the_v1_index_and_filters_its_answer() {
    let d = Daemon::start();
    let idx = V1Index::start();
    let term = format!("127.0.0.1:{}/busy", idx.port);

    // The table, as the docker CLI prints it.
    let out = d.docker_ok(&["search", &term]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let cols: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(cols, ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], "{out}");
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        first,
        ["busy/box", "A", "small", "box", "5", "[OK]"],
        "{out}"
    );
    let seen = idx.take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/v1/search?q=busy&n=25");
    assert_eq!(seen[0].authorization, None);

    // --limit goes to the index as n.
    d.docker_ok(&["search", "--limit", "2", &term]);
    assert_eq!(idx.take()[0].target, "/v1/search?q=busy&n=2");

    // Filters are applied by the daemon.
    let out = d.docker_ok(&[
        "search",
        "--filter",
        "is-official=true",
        "--format",
        "{{.Name}}",
        &term,
    ]);
    assert_eq!(names(&out), ["busy/box"]);
    let out = d.docker_ok(&[
        "search",
        "--filter",
        "stars=3",
        "--format",
        "{{.Name}}",
        &term,
    ]);
    assert_eq!(names(&out), ["busy/box", "busy/body"]);
    let out = d.docker_ok(&[
        "search",
        "--filter",
        "is-automated=true",
        "--format",
        "{{.Name}}:{{.StarCount}}",
        &term,
    ]);
    assert_eq!(names(&out), ["busy/bee:2"]);
    idx.take();

    // The long description: cut to 45 characters, newlines as spaces.
    let out = d.docker_ok(&["search", &term]);
    assert!(
        out.contains("Buzzing about the hive all day long, then so… "),
        "{out}"
    );
    let out = d.docker_ok(&["search", "--no-trunc", &term]);
    assert!(
        out.contains("Buzzing about the hive all day long, then some more"),
        "{out}"
    );

    // berth's own CLI prints what docker's prints.
    for args in [
        vec!["search", term.as_str()],
        vec!["search", "--no-trunc", term.as_str()],
        vec!["search", "--limit", "2", "-f", "stars=3", term.as_str()],
        vec![
            "search",
            "--format",
            "{{.Name}}|{{.StarCount}}|{{.IsOfficial}}",
            term.as_str(),
        ],
    ] {
        let b = d.berth(&args);
        assert!(b.status.success(), "berth {args:?}: {}", stderr(&b));
        assert_eq!(stdout(&b), d.docker_ok(&args), "berth {args:?}");
    }
    let seen = idx.take();
    assert!(
        seen.iter().any(|s| s.target == "/v1/search?q=busy&n=2"),
        "{seen:?}"
    );

    // Stored credentials for the registry reach it as basic auth.
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let cfg = json!({"auths": {format!("127.0.0.1:{}", idx.port): {"auth": auth}}});
    let cfg_path = d.docker_cmd().get_envs().find_map(|(k, v)| {
        (k == "DOCKER_CONFIG").then(|| std::path::PathBuf::from(v.unwrap()).join("config.json"))
    });
    let cfg_path = cfg_path.expect("DOCKER_CONFIG is set");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    d.docker_ok(&["search", &term]);
    let b = d.berth(&["search", &term]);
    assert!(b.status.success(), "{}", stderr(&b));
    std::fs::remove_file(&cfg_path).unwrap();
    let seen = idx.take();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Basic {auth}").as_str()),
            "{s:?}"
        );
    }
}

#[test]
fn the_search_api_answers_as_dockerd() {
    let d = Daemon::start();
    let idx = V1Index::start();
    let term = format!("127.0.0.1:{}/busy", idx.port);

    let (st, _, body) = d.raw("GET", &format!("/v1.41/images/search?term={term}"), None);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!([
            {"star_count": 5, "is_official": true, "name": "busy/box",
             "is_automated": false, "description": "A small box"},
            {"star_count": 2, "is_official": false, "name": "busy/bee",
             "is_automated": true, "description": LONG},
            {"star_count": 3, "is_official": false, "name": "busy/body",
             "is_automated": false, "description": ""}
        ])
    );
    // Nothing matches: an empty list, not null.
    let f = "%7B%22stars%22%3A%7B%2299%22%3Atrue%7D%7D";
    let (st, _, body) = d.raw(
        "GET",
        &format!("/v1.41/images/search?term={term}&filters={f}"),
        None,
    );
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!([]));
    let seen = idx.take();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].target, "/v1/search?q=busy&n=25");

    let msg = |path: &str| -> (u16, String) {
        let (st, _, body) = d.raw("GET", path, None);
        let v: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&body)));
        (st, v["message"].as_str().unwrap_or_default().to_string())
    };
    // The limit: checked once the registry answered its ping.
    for l in [0, 101] {
        assert_eq!(
            msg(&format!("/v1.41/images/search?term={term}&limit={l}")),
            (400, format!("Limit {l} is outside the range of [1, 100]"))
        );
    }
    // Docker Hub is never pinged: the limit fails before any traffic.
    assert_eq!(
        msg("/v1.41/images/search?term=busybox&limit=0"),
        (400, "Limit 0 is outside the range of [1, 100]".into())
    );
    assert_eq!(
        msg(&format!("/v1.41/images/search?term={term}&limit=abc")),
        (500, "strconv.Atoi: parsing \"abc\": invalid syntax".into())
    );
    assert!(idx.take().is_empty(), "no search after a refused limit");
    // Filters: validated before anything else.
    let bad = [
        (
            "%7B%22foo%22%3A%7B%22x%22%3Atrue%7D%7D",
            "Invalid filter 'foo'",
        ),
        (
            "%7B%22is-official%22%3A%7B%22yes%22%3Atrue%7D%7D",
            "Invalid filter 'is-official=[yes]'",
        ),
        (
            "%7B%22stars%22%3A%7B%22abc%22%3Atrue%7D%7D",
            "Invalid filter 'stars=abc'",
        ),
    ];
    for (f, m) in bad {
        assert_eq!(
            msg(&format!("/v1.41/images/search?term={term}&filters={f}")),
            (400, m.to_string())
        );
    }
    assert_eq!(
        msg("/v1.41/images/search?term=http://x/busybox").0,
        500,
        "a scheme in the term"
    );

    // An unreachable registry: dockerd's 500 with both attempts.
    let p = free_port();
    assert_eq!(
        msg(&format!("/v1.41/images/search?term=127.0.0.1:{p}/busybox")),
        (
            500,
            format!(
                "invalid registry endpoint \"http://127.0.0.1:{p}/v1/\". HTTPS attempt: Get \"https://127.0.0.1:{p}/v1/_ping\": dial tcp 127.0.0.1:{p}: connect: connection refused. HTTP attempt: Get \"http://127.0.0.1:{p}/v1/_ping\": dial tcp 127.0.0.1:{p}: connect: connection refused"
            )
        )
    );
    // And the docker CLI shows it.
    let o = d.docker(&["search", &format!("127.0.0.1:{p}/busybox")]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid registry endpoint"),
        "{}",
        stderr(&o)
    );
    let b = d.berth(&["search", &format!("127.0.0.1:{p}/busybox")]);
    assert!(!b.status.success());
    assert_eq!(stderr(&b), stderr(&o));
}
