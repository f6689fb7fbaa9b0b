//! Registries that ask for credentials or certificates: bearer tokens,
//! client certificates from certs.d, TLS with htpasswd.

use super::*;

#[test]
fn bearer_token_challenge_login_and_pull() {
    let img = Arc::new(fake_image(&[("token.txt", b"via a bearer token\n")], false));
    let token_requests = Arc::new(AtomicUsize::new(0));
    let port = Arc::new(std::sync::OnceLock::<u16>::new());
    let (i2, tr, p2) = (img.clone(), token_requests.clone(), port.clone());
    let fake = Fake::start(Arc::new(move |r: &FakeReq| {
        let port = *p2.get().unwrap();
        if r.path.starts_with("/token") {
            tr.fetch_add(1, Ordering::SeqCst);
            let good = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
            );
            if r.headers.get("authorization") == Some(&good)
                && r.path.contains("service=fake-registry")
            {
                return resp(
                    200,
                    "application/json",
                    br#"{"token":"tok-123","expires_in":300}"#.to_vec(),
                );
            }
            return resp(401, "application/json", br#"{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}"#.to_vec());
        }
        if r.headers.get("authorization").map(String::as_str) != Some("Bearer tok-123") {
            let mut x = resp(
                401,
                "application/json",
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            );
            x.headers.push((
                "WWW-Authenticate".into(),
                format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake-registry\""),
            ));
            return x;
        }
        serve_image(&i2, "tok/img", r)
    }));
    port.set(fake.port).unwrap();
    let d = Daemon::start();
    let host = format!("127.0.0.1:{}", fake.port);
    let image = format!("{host}/tok/img:latest");
    // Anonymous: the token server refuses.
    let o = d.docker(&["pull", &image]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unauthorized"), "{}", stderr(&o));
    // docker login goes through the token server.
    let login = |user: &str, pass: &str| {
        let mut c = d.docker_cmd();
        c.args(["login", &host, "-u", user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        ch.stdin.take().unwrap().write_all(pass.as_bytes()).unwrap();
        ch.wait_with_output().unwrap()
    };
    let o = login("alice", "wrong");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unauthorized: incorrect username or password"),
        "{}",
        stderr(&o)
    );
    let o = login("alice", "s3cret");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Login Succeeded"));
    let out = d.docker_ok(&["pull", &image]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(token_requests.load(Ordering::SeqCst) >= 3);
    let v = d.image_inspect_json(&image);
    assert_eq!(v["Id"], img.config_digest.as_str());
    assert!(fake.requests.load(Ordering::SeqCst) > 0);
}

/// A fresh CA and a certificate it signs for `names` and `usage`: the PEMs
/// of (CA certificate, certificate, key).
fn issue(names: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names).unwrap();
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A client certificate signed by a fresh CA: (ca.pem, client.cert, client.key).
fn make_client_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, cert, key) = issue(
        &["berth-client"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (a, c, k) = (
        dir.join("client-ca.pem"),
        dir.join("client.cert"),
        dir.join("client.key"),
    );
    std::fs::write(&a, ca).unwrap();
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (a, c, k)
}

#[test]
fn client_certificates_come_from_certs_d() {
    let pki = scratch();
    let (cert, key, ca) = make_tls(pki.path());
    let cdir = pki.path().join("client");
    std::fs::create_dir_all(&cdir).unwrap();
    let (client_ca, ccert, ckey) = make_client_cert(&cdir);
    let reg = Registry::start_full(Some((&cert, &key)), None, Some(&client_ca));
    let certs = pki.path().join("certs.d");
    let host_dir = certs.join(reg.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca, host_dir.join("ca.crt")).unwrap();
    let certs_s = certs.display().to_string();
    let d = Daemon::start_with(&[
        "--certs-dir",
        &certs_s,
        "--loopback-registries-insecure=false",
    ])
    .unwrap();
    let tag = format!("{}/mtls/bb:1", reg.host());
    fixtures::import_busybox(&d, &tag);
    // Without a client certificate the registry ends the handshake.
    let o = d.docker(&["push", &tag]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let o2 = d.docker(&["pull", &tag]);
    assert!(!o2.status.success());
    assert!(stderr(&o2).contains("tls"), "{}", stderr(&o2));
    // With one (Docker's layout: X.cert + X.key), push and pull work. The
    // TLS set-up is cached per registry, so a second daemon reads it anew.
    std::fs::copy(&ccert, host_dir.join("client.cert")).unwrap();
    std::fs::copy(&ckey, host_dir.join("client.key")).unwrap();
    let d2 = Daemon::start_with(&[
        "--certs-dir",
        &certs_s,
        "--loopback-registries-insecure=false",
    ])
    .unwrap();
    let id = fixtures::import_busybox(&d2, &tag);
    let out = d2.docker_ok(&["push", &tag]);
    assert!(out.contains("Pushed"), "{out}");
    d2.docker_ok(&["rmi", &tag]);
    d2.docker_ok(&["pull", &tag]);
    assert_eq!(d2.image_inspect_json(&tag)["Id"], id.as_str());
}

/// A server certificate for the loopback signed by a fresh CA:
/// (server.crt, server.key, ca.pem).
fn make_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, cert, key) = issue(
        &["127.0.0.1", "localhost"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (c, k, a) = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    );
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    std::fs::write(&a, ca).unwrap();
    (c, k, a)
}

#[test]
fn tls_registry_with_htpasswd_login_push_pull() {
    let pki = scratch();
    let (cert, key, ca) = make_tls(pki.path());
    let htpasswd = pki.path().join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "tester", "pa55word"])
        .output()
        .expect("htpasswd (apache2-utils) is installed");
    std::fs::write(&htpasswd, &o.stdout).unwrap();
    let reg = Registry::start(Some((&cert, &key)), Some(&htpasswd));
    let certs = pki.path().join("certs.d");
    std::fs::create_dir_all(certs.join(reg.host())).unwrap();
    std::fs::copy(&ca, certs.join(reg.host()).join("ca.crt")).unwrap();
    let certs_s = certs.display().to_string();
    // Loopback is insecure by default (as in Docker); turn that off so the
    // registry's certificate is verified against certs.d.
    let d = Daemon::start_with(&[
        "--certs-dir",
        &certs_s,
        "--loopback-registries-insecure=false",
    ])
    .unwrap();
    let tag = format!("{}/secure/bb:1", reg.host());
    let id = fixtures::import_busybox(&d, &tag);

    // No credentials.
    let o = d.docker(&["push", &tag]);
    assert!(!o.status.success());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("no basic auth credentials"), "{all}");
    let o = d.docker(&["pull", &tag]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no basic auth credentials"),
        "{}",
        stderr(&o)
    );

    let login = |args: &[&str], pass: &str| {
        let mut c = d.docker_cmd();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        ch.stdin.take().unwrap().write_all(pass.as_bytes()).unwrap();
        ch.wait_with_output().unwrap()
    };
    let host = reg.host();
    let o = login(
        &["login", &host, "-u", "tester", "--password-stdin"],
        "wrong",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "Error response from daemon: login attempt to https://{host}/v2/ failed with status: 401 Unauthorized"
        )),
        "{}",
        stderr(&o)
    );
    let o = login(
        &["login", &host, "-u", "tester", "--password-stdin"],
        "pa55word",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Login Succeeded"));
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(d.docker_config.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        cfg["auths"][&host]["auth"],
        base64::engine::general_purpose::STANDARD.encode("tester:pa55word")
    );

    let out = d.docker_ok(&["push", &tag]);
    assert!(out.contains("Pushed"), "{out}");
    d.docker_ok(&["rmi", &tag]);
    let out = d.docker_ok(&["pull", &tag]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(d.image_inspect_json(&tag)["Id"], id.as_str());

    // berth's own login/logout write the same file.
    let o = d.berth(&["logout", &host]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("Removing login credentials for {host}")
    );
    d.docker_ok(&["rmi", &tag]);
    let o = d.berth(&["pull", &tag]);
    assert!(!o.status.success());
    let mut c = d.berth_cmd();
    c.args(["login", "-u", "tester", "--password-stdin", &host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ch = c.spawn().unwrap();
    ch.stdin.take().unwrap().write_all(b"pa55word\n").unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "Login Succeeded");
    let o = d.berth(&["pull", "-q", &tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), tag);

    // A daemon without the CA: a clear TLS error.
    let empty = scratch();
    let e = empty.path().display().to_string();
    let d2 =
        Daemon::start_with(&["--certs-dir", &e, "--loopback-registries-insecure=false"]).unwrap();
    let o = d2.docker(&["pull", &tag]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "Get \"https://{host}/v2/\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
        )),
        "{}",
        stderr(&o)
    );
}
