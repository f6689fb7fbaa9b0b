//! Issue 19 (5): authorization plugins. A test plugin (python3,
//! `tests/plugins/authz.py`) listens in the daemon's plugins directory,
//! records every call, refuses privileged containers (or whatever URI it
//! is told to) and allows the rest; the daemon is driven with the real
//! docker CLI and raw HTTP.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_tests::*;
use serde_json::Value;

const DENIED_PRIVILEGED: &str =
    "authorization denied by plugin authz-test: privileged containers are not allowed";

/// One run of the test plugin on `<exec-root>/plugins/<name>.sock`; killed
/// on drop.
struct AuthzPlugin {
    name: String,
    sock: PathBuf,
    record: PathBuf,
    child: Option<Child>,
}

impl AuthzPlugin {
    fn start(exec_root: &Path, name: &str, record_dir: &Path, opts: &[&str]) -> Self {
        let dir = exec_root.join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = AuthzPlugin {
            name: name.into(),
            sock: dir.join(format!("{name}.sock")),
            record: record_dir.join(format!("{name}.calls")),
            child: None,
        };
        p.run(opts);
        p
    }

    /// (Re)starts the process with `opts`, on the same socket and record.
    fn run(&mut self, opts: &[&str]) {
        self.kill();
        let _ = std::fs::remove_file(&self.sock);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/authz.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(&self.sock)
            .arg(&self.record)
            .args(opts)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the test plugin");
        self.child = Some(child);
        assert!(
            wait_for(Duration::from_secs(10), || UnixStream::connect(&self.sock)
                .is_ok()),
            "the test plugin {} did not come up",
            self.name
        );
    }

    /// A crash: the process dies, its socket file stays (connections are
    /// refused).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every call recorded so far: `{"call": ..., "req": ...}`.
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The requests (`AuthZReq`) or answers (`AuthZRes`) seen whose URI
    /// contains `uri`.
    fn seen(&self, call: &str, uri: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| {
                c["call"] == call && c["req"]["RequestUri"].as_str().unwrap_or("").contains(uri)
            })
            .map(|c| c["req"].clone())
            .collect()
    }
}

impl Drop for AuthzPlugin {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// A daemon started with its plugins already listening. The daemon is
/// dropped (and cleans up through its API) before the plugins stop.
struct Setup {
    d: Daemon,
    plugins: Vec<AuthzPlugin>,
    _records: tempfile::TempDir,
}

fn setup(args: &[&str], plugins: &[(&str, &[&str])]) -> Setup {
    let records = scratch();
    let mut started = Vec::new();
    let d = Daemon::start_prepared(args, |d| {
        for (name, opts) in plugins {
            started.push(AuthzPlugin::start(&d.exec_root, name, records.path(), opts));
        }
        Ok(())
    })
    .expect("berthd starts with its authorization plugins");
    fixtures::import_busybox(&d, "busybox:latest");
    Setup {
        d,
        plugins: started,
        _records: records,
    }
}

/// One HTTP/1.1 request on the daemon's socket with extra header lines;
/// `chunked` sends the body in 64 KiB chunks without a length.
fn request(
    sock: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> (u16, String, Vec<u8>) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        for c in body.chunks(64 << 10) {
            s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .unwrap();
            s.write_all(c).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\n\r\n").unwrap();
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
    }
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < nl + 2 + n {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[(nl + 4 + n).min(b.len())..];
    }
    out
}

fn decoded_body(req: &Value, field: &str) -> Option<Value> {
    let b64 = req[field].as_str()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("the body is base64");
    Some(serde_json::from_slice(&raw).expect("the body is the JSON sent"))
}

fn create_body(label: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "Image": "busybox",
        "Cmd": ["true"],
        "Labels": {"big": label},
    }))
    .unwrap()
}

fn count_containers(d: &Daemon) -> usize {
    d.docker_ok(&["ps", "-aq"]).lines().count()
}

#[test]
fn privileged_is_denied_and_the_rest_allowed() {
    let s = setup(
        &["--authorization-plugin", "authz-test"],
        &[("authz-test", &["--deny-privileged"])],
    );
    let (d, p) = (&s.d, &s.plugins[0]);
    let before = count_containers(d);

    // Refused with dockerd's words and the CLI's exit code; nothing made.
    let o = d.docker(&["run", "--privileged", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("docker: Error response from daemon: {DENIED_PRIVILEGED}\n\nRun 'docker run --help' for more information\n")
    );
    assert_eq!(
        count_containers(d),
        before,
        "a denied create made a container"
    );
    // On the wire: 403, the message, none of the common headers.
    let (status, head, body) = request(
        &d.sock,
        "POST",
        "/v1.50/containers/create",
        &[("Content-Type", "application/json")],
        br#"{"Image":"busybox","HostConfig":{"Privileged":true}}"#,
        false,
    );
    assert_eq!(status, 403, "{head}");
    assert_eq!(
        body_json(&body),
        serde_json::json!({ "message": DENIED_PRIVILEGED })
    );
    assert_eq!(header(&head, "Api-Version"), None, "{head}");

    // The rest goes through.
    let o = d.docker(&["run", "--rm", "busybox", "echo", "allowed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "allowed");
    d.docker_ok(&["ps"]);

    // The plugin saw the create's JSON body (base64) and, after it, the answer.
    let creates = p.seen("AuthZReq", "/containers/create");
    let privileged = creates
        .iter()
        .filter_map(|r| decoded_body(r, "RequestBody"))
        .filter(|b| b["HostConfig"]["Privileged"] == true)
        .count();
    assert!(privileged >= 2, "{creates:#?}");
    let plain = creates
        .iter()
        .find(|r| {
            decoded_body(r, "RequestBody")
                .is_some_and(|b| b["Cmd"] == serde_json::json!(["echo", "allowed"]))
        })
        .unwrap_or_else(|| panic!("the allowed create was not shown: {creates:#?}"));
    assert_eq!(plain["RequestMethod"], "POST");
    assert!(plain["RequestUri"]
        .as_str()
        .unwrap()
        .starts_with("/v1.50/containers/create"));
    assert!(
        plain["RequestHeaders"]["User-Agent"]
            .as_str()
            .unwrap_or("")
            .starts_with("Docker-Client/"),
        "{plain:#?}"
    );
    assert!(plain.get("User").is_none(), "no TLS, no user: {plain:#?}");
    let answers = p.seen("AuthZRes", "/containers/create");
    let created = answers
        .iter()
        .find(|r| r["ResponseStatusCode"] == 201)
        .unwrap_or_else(|| panic!("no AuthZRes for the create: {answers:#?}"));
    let answer = decoded_body(created, "ResponseBody").expect("the answer's body");
    assert!(answer["Id"].as_str().is_some_and(|id| id.len() == 64));
    assert_eq!(
        created["ResponseHeaders"]["Content-Type"],
        "application/json"
    );
    assert_eq!(created["ResponseHeaders"]["Api-Version"], "1.50");
    // A denied request is not shown again after its (non-)handler.
    assert!(answers.iter().all(|r| r["ResponseStatusCode"] != 403));
    // The hijacked attach is reported too, once handed over.
    assert!(
        wait_for(Duration::from_secs(10), || !p
            .seen("AuthZRes", "/attach")
            .is_empty()),
        "no AuthZRes for the attach"
    );

    // An exec's start (a JSON body, then a hijack) and a followed log
    // stream work through the middleware, and are reported once over.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "busybox",
        "sh",
        "-c",
        "echo logged; sleep 60",
    ]);
    let o = d.docker(&["exec", "sleeper", "echo", "from-exec"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "from-exec");
    let starts = p.seen("AuthZReq", "/exec/");
    assert!(
        starts
            .iter()
            .any(|r| r["RequestUri"].as_str().unwrap().ends_with("/start")
                && decoded_body(r, "RequestBody").is_some()),
        "{starts:#?}"
    );
    assert!(
        wait_for_polling(Duration::from_millis(200), Duration::from_secs(10), || {
            stdout(&d.docker(&["logs", "sleeper"])).trim() == "logged"
        }),
        "docker logs"
    );
    assert!(
        wait_for(Duration::from_secs(10), || p
            .seen("AuthZRes", "/logs")
            .iter()
            .any(|r| r["ResponseStatusCode"] == 200)),
        "no AuthZRes for the log stream"
    );
    d.docker_ok(&["rm", "-f", "sleeper"]);

    // Credentials never reach the plugin; other headers do.
    let (status, head, _) = request(
        &d.sock,
        "POST",
        "/v1.50/containers/create?name=probe",
        &[
            ("Content-Type", "application/json"),
            ("X-Registry-Auth", "c2VjcmV0LWF1dGg="),
            ("X-Registry-Config", "c2VjcmV0LWNvbmZpZw=="),
            ("Authorization", "Basic c2VjcmV0"),
            ("X-Probe", "seen"),
        ],
        &create_body("small"),
        false,
    );
    assert_eq!(status, 201, "{head}");
    let probe = p.seen("AuthZReq", "name=probe");
    assert_eq!(probe.len(), 1, "{probe:#?}");
    let h = probe[0]["RequestHeaders"].as_object().unwrap();
    assert_eq!(h["X-Probe"], "seen", "{h:#?}");
    for secret in ["X-Registry-Auth", "X-Registry-Config", "Authorization"] {
        assert!(!h.contains_key(secret), "{secret} was shown: {h:#?}");
    }
    let record = std::fs::read_to_string(&p.record).unwrap();
    for secret in ["c2VjcmV0LWF1dGg=", "c2VjcmV0LWNvbmZpZw==", "Basic c2VjcmV0"] {
        assert!(!record.contains(secret), "{secret} reached the plugin");
    }
    // Nor does a login's body (it carries the password).
    let (status, _, _) = request(
        &d.sock,
        "POST",
        "/v1.50/auth",
        &[("Content-Type", "application/json")],
        br#"{"username":"u","password":"hunter2-secret","serveraddress":"127.0.0.1:1"}"#,
        false,
    );
    assert_ne!(status, 403);
    assert_eq!(p.seen("AuthZReq", "/auth").len(), 1);
    assert!(!std::fs::read_to_string(&p.record)
        .unwrap()
        .contains(&base64::engine::general_purpose::STANDARD.encode("hunter2")[..6]));
    assert!(p.seen("AuthZReq", "/auth")[0].get("RequestBody").is_none());
    d.docker_ok(&["rm", "-f", "probe"]);
}

#[test]
fn bodies_of_1_mib_and_more_are_not_shown() {
    let s = setup(
        &["--authorization-plugin", "authz-test"],
        &[("authz-test", &["--deny-privileged"])],
    );
    let (d, p) = (&s.d, &s.plugins[0]);
    let json = [("Content-Type", "application/json")];
    for (name, size, chunked, shown) in [
        ("small-chunked", 1000, true, true),
        ("under", 900 << 10, false, true),
        ("over", 1100 << 10, false, false),
        ("over-chunked", 1100 << 10, true, false),
    ] {
        let label = "x".repeat(size);
        let body = create_body(&label);
        let path = format!("/v1.50/containers/create?name={name}");
        let (status, head, answer) = request(&d.sock, "POST", &path, &json, &body, chunked);
        assert_eq!(
            status,
            201,
            "{name}: {head} {}",
            String::from_utf8_lossy(&answer)
        );
        let seen = p.seen("AuthZReq", &format!("name={name}"));
        assert_eq!(seen.len(), 1, "{name}");
        match decoded_body(&seen[0], "RequestBody") {
            Some(b) => {
                assert!(shown, "{name}: a body of {} bytes was shown", body.len());
                assert_eq!(b["Labels"]["big"].as_str().map(str::len), Some(size));
            }
            None => assert!(!shown, "{name}: the body was not shown"),
        }
        // The handler got the whole body all the same.
        let got = d.docker_ok(&["inspect", "-f", "{{len .Config.Labels.big}}", name]);
        assert_eq!(got.trim(), size.to_string(), "{name}");
        d.docker_ok(&["rm", name]);
    }
}

#[test]
fn plugins_are_asked_in_order() {
    let s = setup(
        &[
            "--authorization-plugin",
            "authz-test",
            "--authorization-plugin",
            "authz-second",
        ],
        &[
            ("authz-test", &["--deny-privileged"]),
            ("authz-second", &["--deny-uri", "/volumes/create"]),
        ],
    );
    let (d, first, second) = (&s.d, &s.plugins[0], &s.plugins[1]);
    assert_eq!(
        d.docker_ok(&["info", "--format", "{{json .Plugins.Authorization}}"])
            .trim(),
        r#"["authz-test","authz-second"]"#
    );
    // The first allows volume creation; the second does not.
    let o = d.docker(&["volume", "create", "denied-vol"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: authorization denied by plugin authz-second: no /volumes/create here"
    );
    assert_eq!(first.seen("AuthZReq", "/volumes/create").len(), 1);
    assert_eq!(second.seen("AuthZReq", "/volumes/create").len(), 1);
    assert!(d.docker_ok(&["volume", "ls", "-q"]).trim().is_empty());
    // The first denies: the second is never asked.
    let o = d.docker(&["run", "--privileged", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains(DENIED_PRIVILEGED), "{}", stderr(&o));
    let privileged = |p: &AuthzPlugin| {
        p.seen("AuthZReq", "/containers/create")
            .iter()
            .filter(|r| {
                decoded_body(r, "RequestBody")
                    .is_some_and(|b| b["HostConfig"]["Privileged"] == true)
            })
            .count()
    };
    assert_eq!(privileged(first), 1);
    assert_eq!(privileged(second), 0);
    // Both allow: both see the request and its answer.
    let o = d.docker(&["run", "--rm", "busybox", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for p in [first, second] {
        assert!(!p.seen("AuthZReq", "/start").is_empty(), "{}", p.name);
        assert!(!p.seen("AuthZRes", "/start").is_empty(), "{}", p.name);
    }
}

#[test]
fn answers_are_shown_and_may_be_refused() {
    let s = setup(
        &["--authorization-plugin", "authz-test"],
        &[("authz-test", &["--deny-answer-uri", "/volumes"])],
    );
    let (d, p) = (&s.d, &s.plugins[0]);
    const WITHHELD: &str = "authorization denied by plugin authz-test: answer of /volumes withheld";
    // A buffered answer the plugin refuses is replaced by the refusal.
    let o = d.docker(&["volume", "ls"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(
        stderr(&o).trim(),
        format!("Error response from daemon: {WITHHELD}")
    );
    let (status, head, body) = request(&d.sock, "GET", "/v1.50/volumes", &[], b"", false);
    assert_eq!(status, 403, "{head}");
    assert_eq!(body_json(&body), serde_json::json!({ "message": WITHHELD }));
    assert_eq!(header(&head, "Api-Version"), None, "{head}");
    // The plugin was shown the answer it refused.
    let shown = p.seen("AuthZRes", "/volumes");
    assert!(
        shown.iter().all(|r| r["ResponseStatusCode"] == 200
            && decoded_body(r, "ResponseBody").is_some_and(|b| b["Volumes"].is_array())),
        "{shown:#?}"
    );
    // A handler's error stands, whatever the plugin says of it, and the
    // plugin sees neither its status nor its body (as with dockerd).
    let (status, head, body) = request(
        &d.sock,
        "GET",
        "/v1.50/volumes/no-such-volume",
        &[],
        b"",
        false,
    );
    assert_eq!(status, 404, "{head}");
    assert_eq!(
        body_json(&body)["message"],
        "get no-such-volume: no such volume"
    );
    assert_eq!(header(&head, "Api-Version"), None, "{head}");
    let shown = p.seen("AuthZRes", "/volumes/no-such-volume");
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(shown[0].get("ResponseStatusCode").is_none() && shown[0].get("ResponseBody").is_none());
    assert_eq!(shown[0]["ResponseHeaders"]["Api-Version"], "1.50");
    // Other answers go through.
    assert!(d.docker_ok(&["network", "ls", "-q"]).lines().count() >= 3);
}

/// `GET /containers/json`, timed.
fn timed_list(d: &Daemon) -> (u16, Value, Duration) {
    let t = Instant::now();
    let (status, _, body) = request(&d.sock, "GET", "/v1.50/containers/json", &[], b"", false);
    (status, body_json(&body), t.elapsed())
}

#[test]
fn a_plugin_that_fails_refuses_everything_until_it_is_back() {
    let mut s = setup(
        &[
            "--authorization-plugin",
            "authz-test",
            "--plugin-timeout",
            "2",
        ],
        &[("authz-test", &["--deny-privileged"])],
    );
    d_ok(&s.d);
    let limit = Duration::from_secs(6);

    // Crashed: nothing answers on its socket.
    s.plugins[0].kill();
    let (status, body, took) = timed_list(&s.d);
    assert_eq!(status, 500, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("plugin authz-test failed with error: ")
            && msg.contains("not running or not answering"),
        "{msg}"
    );
    assert!(took < limit, "refused after {took:?}");
    let o = s.d.docker(&["ps"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Error response from daemon: plugin authz-test failed with error: "),
        "{}",
        stderr(&o)
    );

    // Hung: the call times out.
    s.plugins[0].run(&["--hang"]);
    let (status, body, took) = timed_list(&s.d);
    assert_eq!(status, 500, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("plugin authz-test failed with error: ")
            && msg.contains("did not answer within 2s"),
        "{msg}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < limit,
        "refused after {took:?}"
    );

    // Talking nonsense.
    s.plugins[0].run(&["--garbage"]);
    let (status, body, _) = timed_list(&s.d);
    assert_eq!(status, 500, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("bad answer from plugin"),
        "{body}"
    );

    // Back: served again, the same daemon.
    s.plugins[0].run(&["--deny-privileged"]);
    d_ok(&s.d);
    let o = s.d.docker(&["run", "--privileged", "busybox", "true"]);
    assert!(stderr(&o).contains(DENIED_PRIVILEGED), "{}", stderr(&o));
}

fn d_ok(d: &Daemon) {
    let o = d.docker(&["run", "--rm", "busybox", "echo", "served"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "served");
    d.docker_ok(&["ps"]);
}

#[test]
fn daemon_json_names_the_plugins() {
    let records = scratch();
    let mut plugin = None;
    let d = Daemon::start_prepared(&[], |d| {
        std::fs::write(
            d.dir.path().join("daemon.json"),
            r#"{"authorization-plugins": ["authz-test"]}"#,
        )?;
        plugin = Some(AuthzPlugin::start(
            &d.exec_root,
            "authz-test",
            records.path(),
            &["--deny-privileged"],
        ));
        Ok(())
    })
    .expect("berthd starts");
    fixtures::import_busybox(&d, "busybox:latest");
    let o = d.docker(&["run", "--privileged", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains(DENIED_PRIVILEGED), "{}", stderr(&o));
    d_ok(&d);
    let p = plugin.as_ref().unwrap();
    assert!(!p.seen("AuthZReq", "/containers/create").is_empty());
    drop(d);
}

#[test]
fn a_missing_plugin_stops_the_start() {
    let e = match Daemon::start_with(&["--authorization-plugin", "authz-absent"]) {
        Ok(_) => panic!("berthd started without its authorization plugin"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("failed to validate authorization plugin: plugin \"authz-absent\" not found"),
        "{e}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client one whose subject
/// is `CN=<cn>`, in the docker CLI's layout (`client/{ca,cert,key}.pem`).
fn make_pki(dir: &Path, cn: &str) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let client = dir.join("client");
    std::fs::create_dir_all(&client).unwrap();
    std::fs::write(client.join("ca.pem"), ca_cert.pem()).unwrap();
    for (stem, names, usage, out) in [
        (
            "server",
            vec!["127.0.0.1".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
            dir.to_path_buf(),
        ),
        (
            "client",
            vec!["client".to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
            client.clone(),
        ),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![usage];
        if stem == "client" {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        let cert = p.signed_by(&key, &issuer).unwrap();
        let (c, k) = if stem == "client" {
            ("cert.pem".to_string(), "key.pem".to_string())
        } else {
            (format!("{stem}-cert.pem"), format!("{stem}-key.pem"))
        };
        std::fs::write(out.join(c), cert.pem()).unwrap();
        std::fs::write(out.join(k), key.serialize_pem()).unwrap();
    }
}

/// The base64 payload of a PEM text, lines joined.
fn pem_payload(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

#[test]
fn a_tls_client_is_named_by_its_certificate() {
    let pki = scratch();
    make_pki(pki.path(), "alice");
    let p = |f: &str| pki.path().join(f).display().to_string();
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let s = setup(
        &[
            "--authorization-plugin",
            "authz-test",
            "-H",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server-cert.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ],
        &[("authz-test", &["--deny-privileged"])],
    );
    let o = Command::new("docker")
        .env("DOCKER_HOST", &tcp)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", pki.path().join("client"))
        .env("DOCKER_CONFIG", &s.d.docker_config)
        .env_remove("DOCKER_API_VERSION")
        .args(["volume", "ls"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = s.plugins[0].seen("AuthZReq", "/volumes");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["User"], "alice", "{:#?}", seen[0]);
    assert_eq!(seen[0]["UserAuthNMethod"], "TLS");
    let certs = seen[0]["RequestPeerCertificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "{certs:#?}");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(certs[0].as_str().unwrap())
        .unwrap();
    let pem = String::from_utf8(pem).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    let sent = std::fs::read_to_string(pki.path().join("client/cert.pem")).unwrap();
    assert_eq!(pem_payload(&pem), pem_payload(&sent));
    // On the unix socket there is no certificate, so no user.
    s.d.docker_ok(&["network", "ls"]);
    let seen = s.plugins[0].seen("AuthZReq", "/networks");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].get("User").is_none() && seen[0].get("RequestPeerCertificates").is_none());
}

/// A managed (v2) authorization plugin (`docker.authz/1.0`): the test
/// plugin packaged with a `config.json`, enabled, then named in
/// `daemon.json`. After a restart the daemon starts it before it checks
/// the chain; it refuses as a legacy one does, under the name it was
/// given; once disabled it leaves the chain (the daemon keeps serving).
#[test]
fn a_managed_authorization_plugin_joins_the_chain_and_leaves_it_when_disabled() {
    let mut d = Daemon::start_with(&["--plugin-timeout", "5"]).expect("berthd starts");
    fixtures::import_busybox(&d, "busybox:latest");
    let t = scratch();
    let store = t.path().join("store");
    let dir = berth_tests::plugins::python_plugin_dir(
        t.path(),
        "mauthz",
        "authz.py",
        &[
            "/run/docker/plugins/mauthz.sock",
            "/store/record.jsonl",
            "--deny-privileged",
        ],
        &["docker.authz/1.0"],
        &store,
    );
    d.docker_ok(&["plugin", "create", "mauthz", &dir.display().to_string()]);
    d.docker_ok(&["plugin", "enable", "mauthz"]);
    std::fs::write(
        d.dir.path().join("daemon.json"),
        r#"{"authorization-plugins": ["mauthz"]}"#,
    )
    .unwrap();
    d.restart()
        .expect("berthd starts with its managed authz plugin");

    let o = d.docker(&["run", "--privileged", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "authorization denied by plugin mauthz: privileged containers are not allowed"
        ),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let record = std::fs::read_to_string(store.join("record.jsonl")).unwrap_or_default();
    assert!(
        record.contains("/containers/create"),
        "the managed plugin saw no create: {record}"
    );

    // Disabled, it is out of the chain: requests are served (not 500s),
    // and what it refused goes through.
    d.docker_ok(&["plugin", "disable", "mauthz"]);
    d.docker_ok(&["ps"]);
    d.docker_ok(&["run", "--rm", "--privileged", "busybox", "true"]);
    d.docker_ok(&["plugin", "rm", "mauthz"]);
}

/// Issue 22: `authorization-plugins` is reloaded on `SIGHUP`, as dockerd
/// does; a plugin that cannot be found refuses the reload (dockerd exits).
#[test]
fn a_reload_sets_the_chain_and_a_missing_plugin_refuses_it() {
    let s = setup(&[], &[("authz-test", &["--deny-privileged"])]);
    let d = &s.d;
    let create_privileged = || d.docker(&["create", "--privileged", "busybox", "true"]);
    let reload = |json: &str| {
        let mark = d.log_text().len();
        std::fs::write(d.dir.path().join("daemon.json"), json).unwrap();
        // SAFETY: a signal to our own child process.
        assert_eq!(
            unsafe { libc::kill(d.pid().unwrap() as i32, libc::SIGHUP) },
            0
        );
        assert!(
            wait_for(Duration::from_secs(10), || {
                let l = d.log_text();
                let l = l.get(mark..).unwrap_or("");
                l.contains("Reloaded configuration") || l.contains("ERROR")
            }),
            "no reload outcome:\n{}",
            d.log_text()
        );
        d.log_text().get(mark..).unwrap_or("").to_string()
    };
    let o = create_privileged();
    assert!(o.status.success(), "{}", stderr(&o));

    let log = reload(r#"{"authorization-plugins": ["no-such-authz"]}"#);
    assert!(
        log.contains("Error validating authorization plugin"),
        "{log}"
    );
    let o = create_privileged();
    assert!(o.status.success(), "{}", stderr(&o));

    reload(r#"{"authorization-plugins": ["authz-test"]}"#);
    let authz = d.docker_ok(&["info", "--format", "{{json .Plugins.Authorization}}"]);
    assert_eq!(authz.trim(), r#"["authz-test"]"#);
    let o = create_privileged();
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(DENIED_PRIVILEGED), "{}", stderr(&o));

    reload(r#"{"authorization-plugins": []}"#);
    let o = create_privileged();
    assert!(o.status.success(), "{}", stderr(&o));
    d.docker_ok(&["container", "prune", "-f"]);
}
