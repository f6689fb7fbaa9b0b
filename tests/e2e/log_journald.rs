//! Issue 22, item 4: the `journald` log driver against a real
//! `systemd-journald`, run in a private mount namespace with a berthd
//! (`berth_tests::Journal`), so the host's journal is never written:
//! `docker logs` reads the journal back as dockerd does, and the entries'
//! fields are checked with `journalctl -o json`. Every wait is bounded.

use std::time::Duration;

use berth_tests::*;

use berth_tests::cli::run_script_to_exit as run;

#[test]
fn journald_needs_the_journal() {
    // A mount namespace whose /run/systemd is empty: no journal socket.
    let j = Journal::start(false).expect("a mount namespace");
    let d = Daemon::start_in_journal(&j, &[]).expect("berthd starts");
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

/// The stdcopy frames of a raw `logs` answer: (stream, bytes).
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while b.len() >= 8 {
        let n = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        assert!(b.len() >= 8 + n, "a frame cut short");
        v.push((b[0], b[8..8 + n].to_vec()));
        b = &b[8 + n..];
    }
    assert!(b.is_empty(), "trailing bytes");
    v
}

/// The entries `journalctl -o json` shows for the container, in order.
fn journal_entries(j: &Journal, id: &str) -> Vec<serde_json::Value> {
    let o = j
        .command("journalctl")
        .args(["--no-pager", "--all", "-o", "json"])
        .arg(format!("CONTAINER_ID_FULL={id}"))
        .output()
        .expect("journalctl");
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl's json"))
        .collect()
}

#[test]
fn journald_round_trip_through_a_real_journal() {
    let Some(j) = Journal::start(true) else {
        return;
    };
    let d = Daemon::start_in_journal(&j, &[]).expect("berthd starts");
    let long = "x".repeat(20_000);
    let script = "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; printf '\\377\\376ok\\n'; sleep 1.2; echo out2; \
                  head -c 20000 /dev/zero | tr '\\0' x; echo";
    let id = run(
        &d,
        "jd",
        &[
            "--log-driver",
            "journald",
            "--log-opt",
            "labels=com.x",
            "--log-opt",
            "tag={{.Name}}",
            "--label",
            "com.x=y z*",
        ],
        script,
    );
    // No local cache: dockerd keeps none for a driver that reads.
    assert_eq!(d.inspect_format("jd", "{{.LogPath}}").trim(), "");
    let want_out = format!("out1\n\u{fffd}\u{fffd}ok\nout2\n{long}\n");
    // The journal takes the datagrams on its own time: bounded wait.
    let mut last = String::new();
    let complete = wait_for(Duration::from_secs(20), || {
        let o = d.docker(&["logs", "jd"]);
        last = String::from_utf8_lossy(&o.stdout).into_owned();
        last == want_out && stderr(&o) == "err1\n"
    });
    assert!(
        complete,
        "docker logs: {last:?}\n{}",
        tail(&d.log_text(), 30)
    );

    // Both streams in the journal's order, each in its frame; the long
    // line in two pieces, the newline on the last; bytes as written.
    let (st, _, body) = d.raw("GET", "/containers/jd/logs?stdout=1&stderr=1", None);
    assert_eq!(st, 200);
    let f = frames(&body);
    let streams: Vec<u8> = f.iter().map(|(s, _)| *s).collect();
    // (The pauses in the script order the two pipes.)
    let sizes: Vec<usize> = f.iter().map(|(_, b)| b.len()).collect();
    assert_eq!(streams, [1, 2, 1, 1, 1, 1], "{sizes:?}");
    assert_eq!(f[2].1, b"\xff\xfeok\n");
    assert_eq!(f[4].1.len(), 16 * 1024);
    assert_eq!(f[5].1, format!("{}\n", &long[16 * 1024..]).into_bytes());

    // --tail counts the entries of the streams asked for.
    let o = d.docker(&["logs", "--tail", "3", "jd"]);
    assert_eq!(stdout(&o), format!("out2\n{long}\n"));
    assert_eq!(stderr(&o), "");
    let (_, _, body) = d.raw("GET", "/containers/jd/logs?stderr=1&tail=1", None);
    assert_eq!(frames(&body), [(2, b"err1\n".to_vec())]);

    // -t: the entry's realtime timestamp, dockerd's fixed nanoseconds.
    let entries = journal_entries(&j, &id);
    let by_message = |m: &str| {
        entries
            .iter()
            .find(|e| e["MESSAGE"] == m)
            .unwrap_or_else(|| panic!("no entry {m:?} in {entries:?}"))
    };
    let realtime = |m: &str| -> i64 {
        by_message(m)["__REALTIME_TIMESTAMP"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let o = d.docker_ok(&["logs", "-t", "jd"]);
    let first = o.lines().next().unwrap();
    let (ts, text) = first.split_once(' ').unwrap();
    assert_eq!(text, "out1");
    let us = realtime("out1");
    let t = chrono_like(us);
    assert_eq!(ts, t, "{o}");

    // --since the second line's time: what came before it is left out.
    let since = chrono_like(realtime("out2"));
    let o = d.docker(&["logs", "--since", &since, "jd"]);
    assert_eq!(stdout(&o), format!("out2\n{long}\n"));
    assert_eq!(stderr(&o), "");
    let o = d.docker(&["logs", "--until", &since, "jd"]);
    assert_eq!(stdout(&o), "out1\n\u{fffd}\u{fffd}ok\nout2\n");

    // --details: the label the `labels` option named, query-escaped.
    let o = d.docker_ok(&["logs", "--details", "jd"]);
    assert!(o.starts_with("COM_X=y+z%2A out1\n"), "{o}");

    // The fields, as dockerd's driver writes them.
    let e = by_message("out1");
    assert_eq!(e["CONTAINER_ID"], &id[..12]);
    assert_eq!(e["CONTAINER_ID_FULL"], id.as_str());
    assert_eq!(e["CONTAINER_NAME"], "jd");
    assert_eq!(e["CONTAINER_TAG"], "jd");
    assert_eq!(e["SYSLOG_IDENTIFIER"], "jd");
    assert_eq!(e["IMAGE_NAME"], "busybox");
    assert_eq!(e["PRIORITY"], "6");
    assert_eq!(e["COM_X"], "y z*");
    assert_eq!(e["CONTAINER_LOG_ORDINAL"], "1");
    assert_eq!(e["CONTAINER_LOG_EPOCH"].as_str().unwrap().len(), 64);
    assert!(e["SYSLOG_TIMESTAMP"].as_str().unwrap().ends_with('Z'));
    assert!(e.get("CONTAINER_PARTIAL_ID").is_none());
    assert_eq!(by_message("err1")["PRIORITY"], "3");
    let pieces: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e.get("CONTAINER_PARTIAL_ID").is_some())
        .collect();
    assert_eq!(pieces.len(), 2, "{pieces:?}");
    assert_eq!(
        pieces[0]["CONTAINER_PARTIAL_ID"],
        pieces[1]["CONTAINER_PARTIAL_ID"]
    );
    assert_eq!(pieces[0]["CONTAINER_PARTIAL_ORDINAL"], "1");
    assert_eq!(pieces[0]["CONTAINER_PARTIAL_LAST"], "false");
    assert_eq!(pieces[0]["CONTAINER_PARTIAL_MESSAGE"], "true");
    assert_eq!(pieces[1]["CONTAINER_PARTIAL_ORDINAL"], "2");
    assert_eq!(pieces[1]["CONTAINER_PARTIAL_LAST"], "true");
    assert!(pieces[1].get("CONTAINER_PARTIAL_MESSAGE").is_none());

    // -f: a line written later is seen, and the follow ends at the exit.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "jf",
        "--log-driver",
        "journald",
        "busybox",
        "sh",
        "-c",
        "echo first; sleep 2; echo later",
    ]);
    let started = std::time::Instant::now();
    let child = d
        .docker_cmd()
        .args(["logs", "-f", "jf"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = finish(child, Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "first\nlater\n");
    assert!(started.elapsed() < Duration::from_secs(15));
    // A follow of a stopped container ends after what it wrote.
    let o = d.docker(&["logs", "-f", "jf"]);
    assert_eq!(stdout(&o), "first\nlater\n");

    // A client gone: the daemon's journalctl goes too.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "jl",
        "--log-driver",
        "journald",
        "busybox",
        "sleep",
        "60",
    ]);
    let mut child = d
        .docker_cmd()
        .args(["logs", "-f", "jl"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || !journalctls(&j).is_empty()),
        "no journalctl follows"
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        wait_for(Duration::from_secs(10), || journalctls(&j).is_empty()),
        "journalctl outlived its client: {:?}",
        journalctls(&j)
    );
}

/// The `journalctl` processes in the journal's mount namespace.
fn journalctls(j: &Journal) -> Vec<i32> {
    let ns = std::fs::read_link(j.mount_ns()).ok();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "journalctl")
                && std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok() == ns
        })
        .collect()
}

/// A journal time (Unix microseconds) as dockerd shows it: RFC 3339 UTC
/// with nine digits.
fn chrono_like(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let nanos = us.rem_euclid(1_000_000) * 1000;
    let o = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .unwrap();
    format!("{}.{nanos:09}Z", stdout(&o).trim())
}
