//! fluentd's `fluentd-request-ack` against a Forward server written
//! here, and the end of a removed container's retries.

use std::io::BufReader;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::run;
use berth_tests::*;

/// The chunk ID of a Forward message's option (`{"chunk": id}`), if any.
fn chunk_of(m: &rmpv::Value) -> Option<String> {
    let opt = m.as_array()?.get(3)?.as_map()?;
    opt.iter()
        .find(|(k, _)| k.as_str() == Some("chunk"))
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

/// A Forward server that answers `{"ack": chunk}` to every message
/// asking for one, except the first `silent` (read and left unanswered:
/// the client's wait times out and it sends the message again).
fn acking_listener(silent: usize) -> (u16, Arc<Mutex<Vec<rmpv::Value>>>) {
    use std::io::Write;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<rmpv::Value>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                while let Ok(v) = rmpv::decode::read_value(&mut r) {
                    let n = {
                        let mut g = g.lock().unwrap();
                        g.push(v.clone());
                        g.len()
                    };
                    let Some(id) = chunk_of(&v) else { continue };
                    if n <= silent {
                        continue;
                    }
                    let ack = rmpv::Value::Map(vec![("ack".into(), id.into())]);
                    let mut b = Vec::new();
                    rmpv::encode::write_value(&mut b, &ack).unwrap();
                    if w.write_all(&b).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

/// `fluentd-request-ack`: each message asks for an ack with a chunk ID
/// of its own, the next one waits for it, and one left unanswered is
/// sent again (the same message, the same chunk) on a new connection.
#[test]
fn fluentd_request_ack_waits_for_each_ack_and_resends() {
    let d = daemon();
    let (port, got) = acking_listener(0);
    let addr = format!("fluentd-address=127.0.0.1:{port}");
    run(
        &d,
        "ack",
        &[
            "--log-driver",
            "fluentd",
            "--log-opt",
            &addr,
            "--log-opt",
            "fluentd-request-ack=true",
        ],
        "echo one; echo two; echo three",
    );
    let ok = wait_for(Duration::from_secs(20), || got.lock().unwrap().len() >= 3);
    let msgs = got.lock().unwrap().clone();
    assert!(ok && msgs.len() == 3, "{msgs:?}");
    let chunks: Vec<String> = msgs.iter().map(|m| chunk_of(m).expect("a chunk")).collect();
    assert!(
        chunks[0] != chunks[1] && chunks[1] != chunks[2] && chunks[0] != chunks[2],
        "{chunks:?}"
    );
    let logs: Vec<&str> = msgs
        .iter()
        .map(|m| {
            let rec = m.as_array().unwrap()[2].as_map().unwrap();
            rec.iter()
                .find(|(k, _)| k.as_str() == Some("log"))
                .and_then(|(_, v)| v.as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(logs, ["one", "two", "three"]);

    // The first message gets no ack: after the write timeout it comes
    // again, and only then the second.
    let (port, got) = acking_listener(1);
    let addr = format!("fluentd-address=127.0.0.1:{port}");
    run(
        &d,
        "resend",
        &[
            "--log-driver",
            "fluentd",
            "--log-opt",
            &addr,
            "--log-opt",
            "fluentd-request-ack=true",
            "--log-opt",
            "fluentd-write-timeout=1s",
            "--log-opt",
            "fluentd-retry-wait=100ms",
        ],
        "echo first; echo second",
    );
    let ok = wait_for(Duration::from_secs(30), || got.lock().unwrap().len() >= 3);
    let msgs = got.lock().unwrap().clone();
    assert!(ok, "{msgs:?}");
    assert_eq!(msgs[0], msgs[1], "the unacknowledged message again, whole");
    assert_ne!(chunk_of(&msgs[2]), chunk_of(&msgs[0]));
    let third = msgs[2].as_array().unwrap()[2].as_map().unwrap();
    assert!(
        third
            .iter()
            .any(|(k, v)| k.as_str() == Some("log") && v.as_str() == Some("second")),
        "{msgs:?}"
    );
}

/// The daemon's threads named `name` (their `comm`).
fn threads_named(d: &Daemon, name: &str) -> usize {
    let pid = d.pid().expect("the daemon's pid");
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
                })
                .count()
        })
        .unwrap_or(0)
}

/// With fluentd's default retries (for ever, waits up to a minute) and a
/// server that never comes, the thread forwarding a container's lines
/// ends once the container is removed.
#[test]
fn fluentd_retries_end_with_the_container() {
    let d = daemon();
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("fluentd-address=tcp://127.0.0.1:{dead}");
    run(
        &d,
        "gone",
        &[
            "--log-driver",
            "fluentd",
            "--log-opt",
            &addr,
            "--log-opt",
            "fluentd-async=true",
        ],
        "echo lost",
    );
    // Exited, its line still being retried.
    assert!(wait_for(Duration::from_secs(10), || threads_named(
        &d,
        "berthd-fluentd"
    ) == 1));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(threads_named(&d, "berthd-fluentd"), 1, "retrying still");
    d.docker_ok(&["rm", "gone"]);
    assert!(
        wait_for(Duration::from_secs(5), || threads_named(
            &d,
            "berthd-fluentd"
        ) == 0),
        "the forwarding thread ends with the container"
    );
}
