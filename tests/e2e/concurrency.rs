//! Issue 16: concurrency on one object. Hundreds of concurrent lifecycle
//! calls against the same few containers end in a consistent state, with
//! no deadlock (every call answers within its time limit), no 5xx, and
//! only the status codes Docker gives each call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_tests::host::footprint;
use berth_tests::*;
use serde_json::Value;

/// The calls, by index: each a method and a path template (`{c}` is the
/// container, `{n}` a fresh number).
/// Each with the status codes Docker answers it with.
const CALLS: &[(&str, &str, &[u16])] = &[
    ("POST", "/containers/{c}/start", &[204, 304, 404, 409]),
    ("POST", "/containers/{c}/stop?t=1", &[204, 304, 404, 409]),
    // Never 304: a restart of a stopped container starts it.
    ("POST", "/containers/{c}/restart?t=1", &[204, 404, 409]),
    ("POST", "/containers/{c}/kill", &[204, 404, 409]),
    (
        "POST",
        "/containers/{c}/kill?signal=SIGUSR1",
        &[204, 404, 409],
    ),
    ("POST", "/containers/{c}/pause", &[204, 404, 409]),
    ("POST", "/containers/{c}/unpause", &[204, 404, 409]),
    (
        "POST",
        "/containers/{c}/rename?name={c}-r{n}",
        &[204, 404, 409],
    ),
    ("GET", "/containers/{c}/json", &[200, 404]),
    ("GET", "/containers/json?all=1", &[200]),
    ("GET", "/containers/{c}/top", &[200, 404, 409]),
    (
        "POST",
        "/containers/{c}/wait?condition=next-exit",
        &[200, 404],
    ),
    ("DELETE", "/containers/{c}", &[204, 404, 409]),
    ("DELETE", "/containers/{c}?force=1", &[204, 404, 409]),
];

#[test]
fn two_hundred_concurrent_calls_on_four_containers_stay_consistent() {
    let d = daemon();
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let before = footprint(&d);
    let ids: Vec<String> = (0..4)
        .map(|i| {
            d.docker_ok(&[
                "run",
                "-d",
                "--name",
                &format!("busy{i}"),
                "busybox",
                "sleep",
                "1000",
            ])
            .trim()
            .to_string()
        })
        .collect();
    let sock = d.sock.clone();
    let statuses: Arc<Mutex<BTreeMap<(String, u16), usize>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let (sock, ids) = (sock.clone(), ids.clone());
            let (statuses, failures) = (statuses.clone(), failures.clone());
            std::thread::spawn(move || {
                for k in 0..10 {
                    let n = t * 10 + k;
                    // A spread over calls and containers, the same each run.
                    // Removals come last, so most calls meet a container.
                    let calls = if k < 8 {
                        &CALLS[..CALLS.len() - 2]
                    } else {
                        CALLS
                    };
                    let (method, tpl, allowed) = calls[(n * 7 + t) % calls.len()];
                    let id = &ids[(n * 3 + k) % ids.len()];
                    let path = tpl.replace("{c}", &id[..12]).replace("{n}", &n.to_string());
                    let start = Instant::now();
                    match raw_request(&sock, method, &path, None) {
                        Ok((status, _, body)) => {
                            if !allowed.contains(&status) {
                                failures.lock().unwrap().push(format!(
                                    "{method} {path}: {status} {}",
                                    String::from_utf8_lossy(&body)
                                ));
                            }
                            *statuses
                                .lock()
                                .unwrap()
                                .entry((format!("{method} {tpl}"), status))
                                .or_default() += 1;
                        }
                        // No answer in 30 s (the read timeout): a deadlock.
                        Err(e) => failures.lock().unwrap().push(format!(
                            "{method} {path}: no answer after {:?}: {e}",
                            start.elapsed()
                        )),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    for ((call, status), n) in statuses.lock().unwrap().iter() {
        eprintln!("{n:>4} x {status} {call}");
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "failed calls:\n{}",
        failures.join("\n")
    );

    // Consistent: every container left inspects; one that runs answers
    // exec and has its process; one that does not has no shim or process.
    let (status, _, body) = d.raw("GET", "/containers/json?all=1", None);
    assert_eq!(status, 200);
    let list: Vec<Value> = serde_json::from_slice(&body).expect("list");
    for c in &list {
        let id = c["Id"].as_str().expect("id");
        let (status, _, body) = d.raw("GET", &format!("/containers/{id}/json"), None);
        assert_eq!(status, 200, "{id} is listed but does not inspect");
        let v: Value = serde_json::from_slice(&body).expect("inspect");
        let st = &v["State"];
        if st["Running"] == true && st["Paused"] == false {
            assert_eq!(d.docker_ok(&["exec", id, "echo", "ok"]).trim(), "ok");
            let pid = st["Pid"].as_i64().unwrap_or(0);
            assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
        } else if st["Running"] == false {
            assert_eq!(st["Pid"], 0, "{id} is not running but has a pid: {st}");
        }
        // The name in the list is the one inspect gives.
        assert_eq!(
            c["Names"][0].as_str(),
            v["Name"].as_str(),
            "list and inspect disagree on {id}'s name"
        );
    }
    for c in &list {
        d.docker_ok(&["rm", "-f", c["Id"].as_str().expect("id")]);
    }
    let mut left = Vec::new();
    wait_for(Duration::from_secs(15), || {
        left = footprint(&d).beyond(&before);
        left.is_empty()
    });
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}
