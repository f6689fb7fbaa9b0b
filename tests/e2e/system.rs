//! Issue 2: the daemon, its API plumbing and the system endpoints, through
//! the real docker CLI, bollard and raw HTTP.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::*;

#[test]
fn docker_version_shows_the_server_at_api_1_50() {
    let d = Daemon::start();
    let out = d.docker_ok(&["version"]);
    let server = out.split("Server:").nth(1).expect("a Server block");
    assert!(
        server.contains("API version:      1.50 (minimum version 1.24)"),
        "{out}"
    );
    assert!(server.contains("OS/Arch:          linux/"), "{out}");
    // And templated, as scripts use it.
    assert_eq!(
        d.docker_ok(&["version", "--format", "{{.Server.APIVersion}}"])
            .trim(),
        "1.50"
    );
}

#[test]
fn an_older_client_version_is_served() {
    let d = Daemon::start();
    let out = d
        .docker_cmd()
        .env("DOCKER_API_VERSION", "1.41")
        .args([
            "version",
            "--format",
            "{{.Client.APIVersion}} {{.Server.APIVersion}}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1.41 1.50");
}

#[test]
fn versions_outside_the_range_get_400_json() {
    let d = Daemon::start();
    for (path, msg) in [
        (
            "/v1.51/version",
            "client version 1.51 is too new. Maximum supported API version is 1.50",
        ),
        (
            "/v9.99/version",
            "client version 9.99 is too new. Maximum supported API version is 1.50",
        ),
        (
            "/v1.12/version",
            "client version 1.12 is too old. Minimum supported API version is 1.24",
        ),
    ] {
        let (status, head, body) = d.raw("GET", path, None);
        assert_eq!(status, 400, "{path}");
        assert_eq!(header(&head, "Content-Type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["message"].as_str().unwrap().starts_with(msg), "{v}");
    }
    // Every version in range, and none, is served.
    for p in [
        "/version",
        "/v1.24/version",
        "/v1.41/version",
        "/v1.50/version",
    ] {
        assert_eq!(d.raw("GET", p, None).0, 200, "{p}");
    }
}

#[test]
fn unknown_paths_get_404_json() {
    let d = Daemon::start();
    let (status, head, body) = d.raw("GET", "/nope", None);
    assert_eq!(status, 404);
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    assert_eq!(body, br#"{"message":"page not found"}"#);
    assert_eq!(d.raw("GET", "/v1.50/nope/deeper", None).0, 404);
}

#[test]
fn ping_answers_head_and_get_with_docker_headers() {
    let d = Daemon::start();
    let (status, head, body) = d.raw("HEAD", "/_ping", None);
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(header(&head, "Api-Version"), Some("1.50"));
    assert_eq!(header(&head, "Ostype"), Some("linux"));
    assert_eq!(header(&head, "Docker-Experimental"), Some("false"));
    assert_eq!(header(&head, "Builder-Version"), Some("2"));
    assert_eq!(header(&head, "Swarm"), Some("inactive"));
    let (status, _, body) = d.raw("GET", "/_ping", None);
    assert_eq!((status, body.as_slice()), (200, &b"OK"[..]));
}

#[test]
fn docker_info_shows_real_host_values() {
    let d = Daemon::start();
    let out = d.docker_ok(&["info"]);
    let uname = Command::new("uname").arg("-r").output().unwrap();
    let kernel = stdout(&uname).trim().to_string();
    assert!(out.contains(&format!("Kernel Version: {kernel}")), "{out}");
    assert!(out.contains("Storage Driver: overlay2"), "{out}");
    assert!(out.contains("Logging Driver: json-file"), "{out}");
    assert!(
        out.contains(&format!("Docker Root Dir: {}", d.data_root.display())),
        "{out}"
    );
    let ncpu = std::thread::available_parallelism().unwrap().get();
    assert!(out.contains(&format!("CPUs: {ncpu}")), "{out}");
    assert!(out.contains("Live Restore Enabled: true"), "{out}");
    let cg = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    assert!(out.contains(&format!("Cgroup Version: {cg}")), "{out}");
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let pretty = os
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap()
        .trim_matches('"');
    assert!(
        out.contains(&format!("Operating System: {pretty}")),
        "{out}"
    );
    let mem = d.docker_ok(&["info", "--format", "{{.MemTotal}}"]);
    assert!(mem.trim().parse::<u64>().unwrap() > 64 << 20);
}

#[test]
fn docker_system_df_works() {
    let d = Daemon::start();
    let out = d.docker_ok(&["system", "df"]);
    for row in ["Images", "Containers", "Local Volumes", "Build Cache"] {
        assert!(out.contains(row), "{out}");
    }
    d.docker_ok(&["system", "df", "-v"]);
}

#[test]
fn docker_events_since_until_returns() {
    let d = Daemon::start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let start = Instant::now();
    d.docker_ok(&["events", "--since", "0", "--until", &now]);
    assert!(start.elapsed() < Duration::from_secs(5));
    // A future `until` ends the stream when it is reached.
    let start = Instant::now();
    d.docker_ok(&["events", "--until", "1s", "--filter", "type=container"]);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A bad filter is refused with Docker's message.
    let o = d.docker(&["events", "--until", "0s", "--filter", "bogus=1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid filter 'bogus'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn swarm_and_plugins_answer_as_a_non_swarm_engine() {
    let d = Daemon::start();
    let (status, _, body) = d.raw("POST", "/v1.50/swarm/leave", None);
    assert_eq!(status, 503);
    assert_eq!(body, br#"{"message":"This node is not part of a swarm"}"#);
    let (status, _, body) = d.raw("GET", "/v1.50/plugins", None);
    assert_eq!((status, body.as_slice()), (200, &b"[]"[..]));
    assert_eq!(d.raw("GET", "/v1.50/plugins/foo/json", None).0, 404);
}

#[test]
fn the_socket_is_root_only() {
    let d = Daemon::start();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(&d.sock).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!(m.uid(), 0);
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_and_a_stale_one_is_replaced() {
    let d = Daemon::start();
    let other = scratch();
    let out = Command::new(bin("berthd"))
        .args([
            "-H",
            &d.host(),
            "--data-root",
            &other.path().join("data").display().to_string(),
            "--exec-root",
            &other.path().join("exec").display().to_string(),
            "--config-file",
            "/nonexistent-but-unused.json",
        ])
        .output()
        .unwrap();
    // The explicit missing config file is itself an error; use an empty one.
    assert!(!out.status.success());
    let cfg = other.path().join("daemon.json");
    std::fs::write(&cfg, "{}").unwrap();
    let out = Command::new(bin("berthd"))
        .args([
            "-H",
            &d.host(),
            "--data-root",
            &other.path().join("data").display().to_string(),
            "--exec-root",
            &other.path().join("exec").display().to_string(),
            "--config-file",
            &cfg.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already listening"),
        "{}",
        stderr(&out)
    );
    // The first daemon is unharmed.
    assert_eq!(d.raw("GET", "/_ping", None).0, 200);

    // A stale socket file (no listener) is replaced.
    let stale_dir = scratch();
    let stale = stale_dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    // Its own bridge and firewall table, never the host's defaults.
    let tag = &random_hex()[..8];
    let (bridge, table) = (format!("bt{tag}"), format!("berth_t{tag}"));
    let mut child = Command::new(bin("berthd"))
        .args([
            "-H",
            &format!("unix://{}", stale.display()),
            "--data-root",
            &stale_dir.path().join("data").display().to_string(),
            "--exec-root",
            &stale_dir.path().join("exec").display().to_string(),
            "--config-file",
            &cfg.display().to_string(),
            "--bridge",
            &bridge,
            "--firewall-table",
            &table,
            "--default-address-pool",
            "base=10.251.0.0/16,size=24",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut up = false;
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok((200, _, _)) = raw_request(&stale, "GET", "/_ping", None) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let _ = Command::new("ip").args(["link", "del", &bridge]).output();
    for family in ["ip", "ip6"] {
        let _ = Command::new("nft")
            .args(["delete", "table", family, &table])
            .output();
    }
    assert!(up, "berthd did not take over the stale socket");
}

#[test]
fn config_file_errors_are_reported_as_dockerd_does() {
    let dir = scratch();
    let run = |json: &str, extra: &[&str]| {
        let cfg = dir.path().join("daemon.json");
        std::fs::write(&cfg, json).unwrap();
        let mut args = vec![
            "-H".to_string(),
            format!("unix://{}/s.sock", dir.path().display()),
            "--exec-root".into(),
            dir.path().join("exec").display().to_string(),
            "--config-file".into(),
            cfg.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(bin("berthd")).args(args).output().unwrap()
    };
    let o = run(r#"{"no-such-key": true}"#, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o)
            .contains("the following directives don't match any configuration option: no-such-key"),
        "{}",
        stderr(&o)
    );
    let o = run(r#"{"data-root": "/tmp/x"}"#, &["--data-root", "/tmp/y"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("specified both as a flag and in the configuration file: data-root"),
        "{}",
        stderr(&o)
    );
    let o = run("{}", &["-H", "tcp://127.0.0.1:0"]);
    assert!(!o.status.success(), "plain TCP must be refused");
    assert!(stderr(&o).contains("without TLS"), "{}", stderr(&o));
}

#[test]
fn sigterm_exits_within_a_second_even_with_an_open_event_stream() {
    let mut d = Daemon::start();
    let mut events = d.docker_cmd().args(["events"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let took = d.terminate();
    let _ = events.kill();
    let _ = events.wait();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(!d.sock.exists(), "the socket is removed on shutdown");
}

#[test]
fn bollard_talks_to_berthd() {
    let d = Daemon::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let docker = d.bollard();
        let docker = docker.negotiate_version().await.unwrap();
        // bollard 0.19 speaks 1.49 at most; negotiation must not fail.
        assert!(docker.client_version().to_string().starts_with("1.4"));
        let v = docker.version().await.unwrap();
        assert_eq!(v.api_version.as_deref(), Some("1.50"));
        let info = docker.info().await.unwrap();
        assert_eq!(info.driver.as_deref(), Some("overlay2"));
        assert_eq!(
            info.docker_root_dir.as_deref(),
            Some(d.data_root.to_str().unwrap())
        );
        docker.ping().await.unwrap();
        let df = docker
            .df(None::<bollard::query_parameters::DataUsageOptions>)
            .await
            .unwrap();
        assert_eq!(df.images.map(|v| v.len()), Some(0));
    });
}

fn make_pki(dir: &std::path::Path) -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mk = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, stem: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}-cert.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}-key.pem")), key.serialize_pem()).unwrap();
    };
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    mk(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    mk(
        vec!["client".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        "client",
    );
    // The docker CLI reads ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH.
    let client_dir = dir.join("client");
    std::fs::create_dir_all(&client_dir).unwrap();
    std::fs::copy(dir.join("ca.pem"), client_dir.join("ca.pem")).unwrap();
    std::fs::copy(dir.join("client-cert.pem"), client_dir.join("cert.pem")).unwrap();
    std::fs::copy(dir.join("client-key.pem"), client_dir.join("key.pem")).unwrap();
    let nocert_dir = dir.join("nocert");
    std::fs::create_dir_all(&nocert_dir).unwrap();
    std::fs::copy(dir.join("ca.pem"), nocert_dir.join("ca.pem")).unwrap();
    (
        client_dir.display().to_string(),
        nocert_dir.display().to_string(),
    )
}

#[test]
fn tcp_with_mutual_tls_accepts_a_client_cert_and_rejects_none() {
    let pki = scratch();
    let (client_dir, _nocert_dir) = make_pki(pki.path());
    let port = free_port();
    let p = |f: &str| pki.path().join(f).display().to_string();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with(&[
        "-H",
        &tcp,
        "--tlsverify",
        "--tlscacert",
        &p("ca.pem"),
        "--tlscert",
        &p("server-cert.pem"),
        "--tlskey",
        &p("server-key.pem"),
    ])
    .unwrap();
    let docker_tcp = |cert_dir: &str| {
        Command::new("docker")
            .env("DOCKER_HOST", &tcp)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_dir)
            .env("DOCKER_CONFIG", &d.docker_config)
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .unwrap()
    };
    let ok = docker_tcp(&client_dir);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok).trim(), "1.50");
    // The berth CLI's own client (`network inspect` goes through it, not
    // bollard) with the same files.
    let berth = Command::new(bin("berth"))
        .env("DOCKER_HOST", &tcp)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &client_dir)
        .env("DOCKER_CONFIG", &d.docker_config)
        .args(["network", "inspect", "bridge", "--format", "{{.Name}}"])
        .output()
        .unwrap();
    assert!(berth.status.success(), "{}", stderr(&berth));
    assert_eq!(stdout(&berth).trim(), "bridge");
    // Without a client certificate the handshake is refused.
    let bad = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "--cacert",
            &p("ca.pem"),
            &format!("https://127.0.0.1:{port}/_ping"),
        ])
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "a client without a certificate must be rejected"
    );
    // Plain HTTP on the TLS port gets nothing useful either.
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/_ping"),
        ])
        .output()
        .unwrap();
    assert_ne!(stdout(&plain).trim(), "OK");
}

#[test]
fn berth_cli_prints_version_info_df_and_events_like_docker() {
    let d = Daemon::start();
    let out = d.berth(&["version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("API version:      1.50 (minimum version 1.24)"),
        "{text}"
    );
    let out = d.berth(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(stdout(&out).trim(), "1.50");

    let info = stdout(&d.berth(&["info"]));
    let kernel = stdout(&Command::new("uname").arg("-r").output().unwrap())
        .trim()
        .to_string();
    assert!(
        info.contains(&format!("Kernel Version: {kernel}")),
        "{info}"
    );
    assert!(info.contains("Storage Driver: overlay2"), "{info}");
    assert_eq!(
        stdout(&d.berth(&["info", "--format", "{{.Driver}}"])).trim(),
        "overlay2"
    );

    let df = stdout(&d.berth(&["system", "df"]));
    let first = df.lines().next().unwrap();
    assert_eq!(
        first,
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    );
    assert!(
        df.contains("Local Volumes   0         0         0B        0B"),
        "{df}"
    );

    let out = d.berth(&["events", "--since", "0", "--until", "0s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d.berth(&["events", "--until", "0s", "--filter", "bogus=x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Error response from daemon: invalid filter 'bogus'"),
        "{}",
        stderr(&out)
    );

    // The CLI names a dead daemon clearly.
    let out = Command::new(bin("berth"))
        .args(["-H", "unix:///nonexistent.sock", "info"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Cannot connect to the berth daemon"),
        "{}",
        stderr(&out)
    );
}
