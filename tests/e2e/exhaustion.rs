//! Issue 16: exhaustion. A data root that fills up (a small loop-mounted
//! ext4 in the test) during commit, import, load, pull, build and container
//! writes gives a clear `No space left on device`, keeps the daemon
//! serving, and registers nothing half-made; a 10 MB log line and a slow
//! `/events` reader under thousands of events stay bounded in memory.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::host::rss_kib;
use berth_tests::*;
use serde_json::Value;

/// Incompressible bytes (xorshift), so that no layer packs small.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn layer_dirs(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.data_root.join("layers"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn images(d: &Daemon) -> String {
    d.docker_ok(&[
        "images",
        "-a",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Repository}}",
    ])
}

fn assert_no_space(what: &str, o: &std::process::Output) {
    assert!(!o.status.success(), "{what} succeeded on a full disk");
    let all = format!("{}{}", stdout(o), stderr(o));
    assert!(
        all.contains("No space left on device"),
        "{what}: the error does not say the disk is full:\n{all}"
    );
}

#[test]
fn a_full_data_root_gives_clear_errors_and_registers_nothing() {
    let mut d = Daemon::start();
    d.terminate();
    // 96 MiB of ext4 without reserved blocks: the daemon (root) meets the
    // end of the disk like everyone else.
    let img = d.dir.path().join("disk.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(96 << 20))
        .expect("image file");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    assert!(ok(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0"])
        .arg(&img)));
    assert!(ok(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&d.data_root)));
    d.restart().expect("berthd on the small data root");
    fixtures::import_busybox(&d, "busybox:latest");
    let dir = scratch();

    // A container takes 40 of the 85 MiB left.
    d.docker_ok(&[
        "run",
        "--name",
        "half",
        "busybox",
        "dd",
        "if=/dev/urandom",
        "of=/big",
        "bs=1M",
        "count=40",
    ]);
    let layers = layer_dirs(&d);
    let imgs = images(&d);

    // commit: the 40 MiB upper does not fit as a layer too.
    assert_no_space("commit", &d.docker(&["commit", "half", "full:commit"]));
    // import and load of a 60 MiB layer.
    let big = dir.path().join("big");
    std::fs::write(&big, noise(60 << 20)).expect("big file");
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        b.append_path_with_name(&big, "big").expect("tar");
        b.into_inner().expect("tar")
    };
    let layer_file = fixtures::write_file(dir.path(), "layer.tar", &layer);
    assert_no_space(
        "import",
        &d.docker(&["import", &layer_file.display().to_string(), "full:import"]),
    );
    let (archive, _) = fixtures::docker_archive(&[layer], &["full:load"], Value::Null);
    let archive_file = fixtures::write_file(dir.path(), "image.tar", &archive);
    assert_no_space(
        "load",
        &d.docker(&["load", "-i", &archive_file.display().to_string()]),
    );
    // build: a step that writes more than there is.
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN dd if=/dev/urandom of=/b bs=1M count=60\n",
    )
    .expect("Dockerfile");
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "full:build", &ctx.display().to_string()])
        .output()
        .expect("build");
    assert_no_space("build", &o);
    // pull: a 60 MiB image pushed by a daemon with room to a local registry.
    if let Some(reg) = LocalRegistry::start(dir.path()) {
        let roomy = Daemon::start();
        let img = format!("127.0.0.1:{}/full/big:latest", reg.port);
        roomy.docker_ok(&["load", "-i", &archive_file.display().to_string()]);
        roomy.docker_ok(&["tag", "full:load", &img]);
        roomy.docker_ok(&["push", &img]);
        assert_no_space("pull", &d.docker(&["pull", &img]));
    } else {
        panic!("docker-registry is not installed: run scripts/deps.sh");
    }
    // A container's own writes.
    assert_no_space(
        "container write",
        &d.docker(&[
            "run",
            "--rm",
            "busybox",
            "dd",
            "if=/dev/zero",
            "of=/big",
            "bs=1M",
            "count=100",
        ]),
    );

    // Nothing half-registered: no image, no layer directory, no partial
    // download; and the daemon serves.
    assert_eq!(
        images(&d),
        imgs,
        "an image was registered from a failed write"
    );
    assert_eq!(layer_dirs(&d), layers, "a layer directory was left");
    let partial = std::fs::read_dir(d.data_root.join("content/tmp"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(partial, 0, "partial downloads were left");
    assert_eq!(d.raw("GET", "/_ping", None).0, 200);
    // Once there is room again, everything works, after a restart too.
    d.docker_ok(&["rm", "half"]);
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "after",
        "busybox",
        "sh",
        "-c",
        "echo ok > /f; sleep 600",
    ]);
    d.docker_ok(&["commit", id.trim(), "full:after"]);
    d.docker_ok(&["rm", "-f", "after"]);
    d.restart().expect("restart on the once-full disk");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "full:after", "cat", "/f"])
            .trim(),
        "ok"
    );
}

#[test]
fn a_ten_megabyte_log_line_is_stored_and_served_in_bounded_memory() {
    let d = daemon();
    let base = rss_kib(&d);
    d.docker_ok(&[
        "run",
        "--name",
        "long",
        "busybox",
        "sh",
        "-c",
        "head -c 10000000 /dev/zero | tr '\\0' a; echo; echo after",
    ]);
    let o = d.docker(&["logs", "long"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().map(str::len),
        Some(10_000_000),
        "the long line, whole"
    );
    assert_eq!(lines.next(), Some("after"));
    let grown = rss_kib(&d).saturating_sub(base);
    eprintln!("daemon RSS grew {grown} KiB serving a 10 MB line");
    assert!(
        grown < 48 * 1024,
        "the daemon grew {grown} KiB for one log line"
    );
    d.docker_ok(&["rm", "long"]);
}

#[test]
fn a_reader_that_never_reads_events_does_not_grow_the_daemon() {
    let d = daemon();
    // Subscribes, then never reads.
    let mut stalled = UnixStream::connect(&d.sock).expect("connect");
    stalled
        .write_all(b"GET /v1.50/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut first = [0u8; 64];
    stalled.read_exact(&mut first[..12]).expect("answer");
    assert_eq!(&first[..12], b"HTTP/1.1 200");
    let base = rss_kib(&d);
    // Thousands of events: each volume create and remove is two, with
    // attributes.
    let start = Instant::now();
    let mut n = 0;
    while n < 12_000 && start.elapsed() < Duration::from_secs(120) {
        let name = format!("ev{n}");
        let body = format!(
            r#"{{"Name":"{name}","Labels":{{"filler":"{}"}}}}"#,
            "x".repeat(200)
        );
        assert_eq!(
            d.raw("POST", "/v1.50/volumes/create", Some(body.as_bytes()))
                .0,
            201
        );
        assert_eq!(
            d.raw("DELETE", &format!("/v1.50/volumes/{name}"), None).0,
            204
        );
        n += 2;
    }
    let grown = rss_kib(&d).saturating_sub(base);
    eprintln!(
        "{n} events to a stalled reader in {:?}; daemon RSS grew {grown} KiB",
        start.elapsed()
    );
    assert!(n >= 4_000, "too few events made ({n})");
    assert!(
        grown < 64 * 1024,
        "the daemon grew {grown} KiB behind a stalled reader"
    );
    // Others are still served promptly, and a fresh subscriber works.
    let t = Instant::now();
    assert_eq!(d.raw("GET", "/_ping", None).0, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (status, _, body) = d.raw(
        "GET",
        &format!("/v1.50/events?since=0&until={}", now + 1),
        None,
    );
    assert_eq!(status, 200);
    let last = String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .next_back()
        .expect("events in the history");
    assert_eq!(
        last["Type"], "volume",
        "the history ends with the latest events"
    );
    drop(stalled);
}
