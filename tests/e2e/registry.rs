//! Issue 8: registries. Pull, push and login against real registry servers
//! (Debian's `docker-registry`, the CNCF distribution server) started on
//! 127.0.0.1 free ports, one plain and one with TLS and htpasswd auth, plus
//! tiny fake registries (std TcpListener) for what a real one won't do: a
//! corrupt blob, and the bearer-token flow. Everything stays on loopback.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_tests::fixtures::{self, Entry};
use berth_tests::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// A real registry

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Registry {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// `tls`: (certificate, key) files; `htpasswd`: a bcrypt htpasswd file.
    fn start(tls: Option<(&Path, &Path)>, htpasswd: Option<&Path>) -> Self {
        Self::start_full(tls, htpasswd, None)
    }

    /// `client_ca`: require client certificates signed by it.
    fn start_full(
        tls: Option<(&Path, &Path)>,
        htpasswd: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Self {
        let dir = scratch();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = tls {
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            if let Some(ca) = client_ca {
                cfg.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
            }
        }
        if let Some(h) = htpasswd {
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                h.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry is installed (scripts/deps.sh)");
        let r = Registry {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn plain() -> Self {
        Self::start(None, None)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// A little HTTP over std, to talk to a plain registry directly.

struct HttpResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResp {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut rd = BufReader::new(s);
    let mut line = String::new();
    rd.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut hs = Vec::new();
    loop {
        line.clear();
        rd.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            hs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = Vec::new();
    if method != "HEAD" {
        let _ = rd.read_to_end(&mut body);
    }
    let chunked = hs
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut b = body.as_slice();
        while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
            b = &b[nl + 2 + n + 2..];
        }
        body = out;
    }
    HttpResp {
        status,
        headers: hs,
        body,
    }
}

fn digest_of(b: &[u8]) -> String {
    format!("sha256:{}", fixtures::sha256_hex(b))
}

/// Monolithic blob upload to a plain registry.
fn put_blob(port: u16, repo: &str, data: &[u8]) -> String {
    let d = digest_of(data);
    let r = http(
        port,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let loc = r.header("Location").unwrap().to_string();
    let path = match loc.find("/v2/") {
        Some(i) => loc[i..].to_string(),
        None => loc,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = http(
        port,
        "PUT",
        &format!("{path}{sep}digest={d}"),
        &[("Content-Type", "application/octet-stream")],
        data,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    d
}

fn put_manifest(port: u16, repo: &str, reference: &str, media_type: &str, m: &[u8]) -> String {
    let r = http(
        port,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        m,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    digest_of(m)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd_of(b: &[u8]) -> Vec<u8> {
    zstd::encode_all(b, 3).unwrap()
}

fn busybox_tar() -> Vec<u8> {
    std::fs::read(fixtures::busybox_rootfs_tar()).unwrap()
}

/// Pushes an OCI image (config + layers as (media type, blob, diff tar))
/// and returns (manifest bytes, config digest).
fn push_oci_image(
    port: u16,
    repo: &str,
    arch: &str,
    layers: &[(&str, Vec<u8>, Vec<u8>)],
) -> (Vec<u8>, String) {
    let diff_ids: Vec<String> = layers.iter().map(|(_, _, t)| digest_of(t)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cfg_digest = put_blob(port, repo, &config);
    let mut descs = Vec::new();
    for (mt, blob, _) in layers {
        let d = put_blob(port, repo, blob);
        descs.push(json!({"mediaType": mt, "digest": d, "size": blob.len()}));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    (manifest, cfg_digest)
}

// ---------------------------------------------------------------------------
// A fake registry: std TcpListener, one thread per connection, one request
// per connection (`Connection: close`).

struct FakeReq {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

struct FakeResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn resp(status: u16, ctype: &str, body: Vec<u8>) -> FakeResp {
    FakeResp {
        status,
        headers: vec![("Content-Type".into(), ctype.into())],
        body,
    }
}

type Handler = Arc<dyn Fn(&FakeReq) -> FakeResp + Send + Sync>;

struct Fake {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl Fake {
    fn start(handler: Handler) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (st, rq) = (stop.clone(), requests.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(c) = c else { continue };
                let (h, rq) = (handler.clone(), rq.clone());
                std::thread::spawn(move || serve_one(c, h, rq));
            }
        });
        Fake {
            port,
            stop,
            requests,
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_one(mut c: TcpStream, h: Handler, count: Arc<AtomicUsize>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut first = [0u8; 1];
    if c.peek(&mut first).is_err() {
        return;
    }
    if first[0] == 0x16 {
        // A TLS hello: answer as Go's plain server does.
        let _ = c.write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        );
        return;
    }
    let mut rd = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if rd.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if rd.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    count.fetch_add(1, Ordering::SeqCst);
    let r = h(&FakeReq {
        method: method.clone(),
        path,
        headers,
    });
    let mut out = format!(
        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        r.status,
        r.body.len()
    );
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = c.write_all(out.as_bytes());
    if method != "HEAD" {
        let _ = c.write_all(&r.body);
    }
}

/// A small image served by a fake: (manifest, config, [(digest, blob)]).
struct FakeImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: String,
    blobs: HashMap<String, Vec<u8>>,
}

fn fake_image(files: &[(&str, &[u8])], corrupt_layer: bool) -> FakeImage {
    let entries: Vec<Entry> = files.iter().map(|(n, d)| Entry::File(n, d)).collect();
    let tar = fixtures::layer_tar(&entries);
    let blob = gzip(&tar);
    let layer_digest = digest_of(&blob);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&tar)]},
    }))
    .unwrap();
    let config_digest = digest_of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest, "size": blob.len()}],
    }))
    .unwrap();
    let served = if corrupt_layer {
        // Same size, valid gzip, other content: only the digest tells.
        let mut other = tar.clone();
        let n = other.len();
        other[n - 1100] ^= 0x55;
        let mut g = gzip(&other);
        g.resize(blob.len(), 0);
        g
    } else {
        blob
    };
    let mut blobs = HashMap::new();
    blobs.insert(layer_digest, served);
    blobs.insert(config_digest.clone(), config.clone());
    FakeImage {
        manifest,
        config,
        config_digest,
        blobs,
    }
}

fn serve_image(img: &FakeImage, repo: &str, r: &FakeReq) -> FakeResp {
    let mpath = format!("/v2/{repo}/manifests/");
    let bpath = format!("/v2/{repo}/blobs/");
    if r.path == "/v2/" {
        return resp(200, "application/json", b"{}".to_vec());
    }
    if r.path.starts_with(&mpath) && (r.method == "GET" || r.method == "HEAD") {
        return resp(
            200,
            "application/vnd.docker.distribution.manifest.v2+json",
            img.manifest.clone(),
        );
    }
    if let Some(d) = r.path.strip_prefix(&bpath) {
        if let Some(b) = img.blobs.get(d) {
            return resp(200, "application/octet-stream", b.clone());
        }
    }
    resp(
        404,
        "application/json",
        br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#.to_vec(),
    )
}

// ---------------------------------------------------------------------------
// Helpers on the daemon side

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = d.docker_ok(&["image", "inspect", name]);
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

/// The JSON-message lines of a raw pull through the API.
fn api_pull(d: &Daemon, image: &str, tag: &str, extra: &str) -> (u16, Vec<Value>) {
    let (st, _, body) = d.raw(
        "POST",
        &format!("/images/create?fromImage={image}&tag={tag}{extra}"),
        None,
    );
    let lines = String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or(json!({"raw": l})))
        .collect();
    (st, lines)
}

fn statuses_of(lines: &[Value], id: &str) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .filter(|l| l["id"] == id)
        .map(|l| l["status"].as_str().unwrap_or("").to_string())
        .collect();
    v.dedup();
    v
}

/// A multi-layer image: busybox plus four small layers, loaded as `tag`.
fn load_multi(d: &Daemon, tag: &str) -> String {
    let layers = vec![
        busybox_tar(),
        fixtures::layer_tar(&[Entry::File("hello.txt", b"hello from the registry\n")]),
        fixtures::layer_tar(&[Entry::Dir("etc/"), Entry::File("etc/motd", b"motd\n")]),
        fixtures::layer_tar(&[Entry::File("a.bin", &vec![7u8; 300_000])]),
        fixtures::layer_tar(&[Entry::File("b.txt", b"b\n")]),
    ];
    let (tar, id) = fixtures::docker_archive(
        &layers,
        &[tag],
        json!({"config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}}),
    );
    let dir = scratch();
    let p = fixtures::write_file(dir.path(), "multi.tar", &tar);
    d.docker_ok(&["load", "-i", &p.display().to_string()]);
    id
}

fn count_entries(p: &Path) -> usize {
    std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

fn digest_from_push(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in push output:\n{out}"))
        .to_string()
}

// ---------------------------------------------------------------------------

#[test]
fn push_rmi_pull_by_tag_and_digest_then_run() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let name = format!("{}/e2e/multi", reg.host());
    let tag = format!("{name}:1");
    let id = load_multi(&d, &tag);

    let out = d.docker_ok(&["push", &tag]);
    assert!(
        out.contains(&format!("The push refers to repository [{name}]")),
        "{out}"
    );
    assert_eq!(out.matches(": Pushed").count(), 5, "{out}");
    let digest = digest_from_push(&out);
    assert!(
        out.contains(&format!("1: digest: {digest} size: ")),
        "{out}"
    );
    // Again: every layer is known to be there.
    let out = d.docker_ok(&["push", &tag]);
    assert_eq!(out.matches(": Layer already exists").count(), 5, "{out}");
    assert_eq!(digest_from_push(&out), digest);

    // Gone locally, back by tag: same image.
    d.docker_ok(&["rmi", &tag]);
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    let out = d.docker_ok(&["pull", &tag]);
    assert!(out.contains("1: Pulling from e2e/multi"), "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 5, "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {tag}")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&tag), "{out}");
    let v = inspect(&d, &tag);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["RepoDigests"], json!([format!("{name}@{digest}")]));
    let out = d.docker_ok(&["pull", &tag]);
    assert!(
        out.contains(&format!("Status: Image is up to date for {tag}")),
        "{out}"
    );
    assert!(!out.contains("Pull complete"), "{out}");

    // The raw stream: Docker's per-layer statuses, in Docker's order.
    d.docker_ok(&["rmi", &tag]);
    let (st, lines) = api_pull(&d, &name, "1", "");
    assert_eq!(st, 200);
    assert!(
        lines.iter().all(|l| l.get("errorDetail").is_none()),
        "{lines:?}"
    );
    assert_eq!(
        lines[0],
        json!({"status": "Pulling from e2e/multi", "id": "1"})
    );
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| l["status"] == "Pulling fs layer")
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5, "{lines:?}");
    let waiting = lines.iter().filter(|l| l["status"] == "Waiting").count();
    assert_eq!(waiting, 2, "three downloads at a time: {lines:?}");
    for id in &ids {
        assert_eq!(id.len(), 12);
        let mut seq = statuses_of(&lines, id);
        seq.retain(|s| s != "Waiting");
        assert_eq!(
            seq,
            vec![
                "Pulling fs layer",
                "Downloading",
                "Verifying Checksum",
                "Download complete",
                "Extracting",
                "Pull complete"
            ],
            "{id}: {lines:?}"
        );
        let dl = lines
            .iter()
            .find(|l| l["id"] == id.as_str() && l["status"] == "Downloading")
            .unwrap();
        assert!(dl["progressDetail"]["total"].as_i64().unwrap() > 0, "{dl}");
        assert!(dl["progress"].as_str().unwrap().contains('['), "{dl}");
    }
    let n = lines.len();
    assert_eq!(lines[n - 2], json!({"status": format!("Digest: {digest}")}));
    assert_eq!(
        lines[n - 1],
        json!({"status": format!("Status: Downloaded newer image for {tag}")})
    );

    // By digest: same image, RepoDigests set.
    d.docker_ok(&["rmi", &tag]);
    let by_digest = format!("{name}@{digest}");
    let out = d.docker_ok(&["pull", &by_digest]);
    assert!(
        out.contains(&format!("{digest}: Pulling from e2e/multi")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {by_digest}")),
        "{out}"
    );
    let v = inspect(&d, &by_digest);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["RepoDigests"], json!([by_digest]));
    d.docker_ok(&["rmi", &by_digest]);

    // docker run of a missing image pulls it (the CLI's 404 → pull → retry).
    let o = d.docker(&["run", "--rm", &tag, "cat", "/hello.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from the registry\n");
    assert!(
        stderr(&o).contains(&format!("Unable to find image '{tag}' locally")),
        "{}",
        stderr(&o)
    );
    // berth run does the same.
    d.docker_ok(&["rmi", &tag]);
    let o = d.berth(&["run", "--rm", &tag, "cat", "/etc/motd"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "motd\n");
    assert!(stderr(&o).contains("Pull complete"), "{}", stderr(&o));
}

#[test]
fn shared_layers_are_skipped_and_mounted() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let a = format!("{}/e2e/a:1", reg.host());
    let b = format!("{}/e2e/b:1", reg.host());
    let base = busybox_tar();
    let (ta, _) = fixtures::docker_archive(
        &[base.clone(), fixtures::layer_tar(&[Entry::File("a", b"a")])],
        &[&a],
        json!({}),
    );
    let (tb, _) = fixtures::docker_archive(
        &[base.clone(), fixtures::layer_tar(&[Entry::File("b", b"b")])],
        &[&b],
        json!({}),
    );
    let dir = scratch();
    for (n, t) in [("a.tar", &ta), ("b.tar", &tb)] {
        let p = fixtures::write_file(dir.path(), n, t);
        d.docker_ok(&["load", "-i", &p.display().to_string()]);
    }
    d.docker_ok(&["push", &a]);
    // The shared layer goes across repositories without an upload.
    let out = d.docker_ok(&["push", &b]);
    assert!(out.contains(": Mounted from e2e/a"), "{out}");
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");
    d.docker_ok(&["rmi", &a, &b]);
    d.docker_ok(&["pull", &a]);
    let out = d.docker_ok(&["pull", &b]);
    assert_eq!(out.matches(": Already exists").count(), 1, "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 1, "{out}");
    // Both run on the shared busybox layer.
    let o = d.docker(&["run", "--rm", &b, "cat", "/b"]);
    assert_eq!(stdout(&o), "b", "{}", stderr(&o));
}

/// A Dockerfile whose FROM names an image only the registry has: the
/// classic builder pulls it, with the pull's progress in the build output.
#[test]
fn build_pulls_a_missing_from_image() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let base = format!("{}/e2e/base:1", reg.host());
    let (t, _) = fixtures::docker_archive(
        &[
            busybox_tar(),
            fixtures::layer_tar(&[Entry::File("base.txt", b"base\n")]),
        ],
        &[&base],
        json!({"Cmd": ["sh"]}),
    );
    let dir = scratch();
    let p = fixtures::write_file(dir.path(), "base.tar", &t);
    d.docker_ok(&["load", "-i", &p.display().to_string()]);
    d.docker_ok(&["push", &base]);
    d.docker_ok(&["rmi", &base]);

    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN cat /base.txt > /copied.txt\n"),
    )
    .unwrap();
    let o = Command::new("docker")
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "from-registry", &ctx.display().to_string()])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("1: Pulling from e2e/base"), "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 2, "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {base}")),
        "{out}"
    );
    let o = d.docker(&["run", "--rm", "from-registry", "cat", "/copied.txt"]);
    assert_eq!(stdout(&o), "base\n", "{}", stderr(&o));
    // The base image is now local, as after a docker pull.
    assert!(d.docker(&["image", "inspect", &base]).status.success());
}

#[test]
fn oci_index_picks_the_platform_and_reads_gzip_zstd_and_plain_layers() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let repo = "e2e/multiarch";
    let base = busybox_tar();
    let plat = |arch: &str| fixtures::layer_tar(&[Entry::File("platform.txt", arch.as_bytes())]);
    let zst = fixtures::layer_tar(&[Entry::File("zstd.txt", b"zstd layer\n")]);
    let amd = plat("amd64");
    let arm = plat("arm64");
    let (m_amd, id_amd) = push_oci_image(
        reg.port,
        repo,
        "amd64",
        &[
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                gzip(&base),
                base.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                zstd_of(&zst),
                zst.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                amd.clone(),
                amd.clone(),
            ),
        ],
    );
    let (m_arm, id_arm) = push_oci_image(
        reg.port,
        repo,
        "arm64",
        &[
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                gzip(&base),
                base.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                arm.clone(),
                arm.clone(),
            ),
        ],
    );
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let d_amd = put_manifest(reg.port, repo, &digest_of(&m_amd), mt, &m_amd);
    let d_arm = put_manifest(reg.port, repo, &digest_of(&m_arm), mt, &m_arm);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": mt, "digest": d_arm, "size": m_arm.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": mt, "digest": d_amd, "size": m_amd.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }))
    .unwrap();
    let index_digest = put_manifest(
        reg.port,
        repo,
        "1",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let tag = format!("{}/{repo}:1", reg.host());

    // The host's platform by default.
    let out = d.docker_ok(&["pull", &tag]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let v = inspect(&d, &tag);
    assert_eq!(v["Id"], id_amd.as_str());
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(
        v["RepoDigests"],
        json!([format!("{}/{repo}@{index_digest}", reg.host())])
    );
    let o = d.docker(&["run", "--rm", &tag, "cat", "/platform.txt", "/zstd.txt"]);
    assert_eq!(stdout(&o), "amd64zstd layer\n", "{}", stderr(&o));

    // --platform picks the other one; the shared base layer is reused.
    let out = d.docker_ok(&["pull", "--platform", "linux/arm64", &tag]);
    assert!(out.contains("Already exists"), "{out}");
    let v = inspect(&d, &tag);
    assert_eq!(v["Id"], id_arm.as_str());
    assert_eq!(v["Architecture"], "arm64");
    // berth's CLI too, back to amd64.
    let o = d.berth(&["pull", "--platform", "linux/amd64", &tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(inspect(&d, &tag)["Id"], id_amd.as_str());
    // A platform the index lacks.
    let o = d.docker(&["pull", "--platform", "linux/s390x", &tag]);
    assert!(!o.status.success());
    assert!(
        format!("{}{}", stdout(&o), stderr(&o))
            .contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused_and_nothing_is_stored() {
    let img = Arc::new(fake_image(&[("f.txt", &vec![b'x'; 4000])], true));
    let i2 = img.clone();
    let fake = Fake::start(Arc::new(move |r: &FakeReq| serve_image(&i2, "bad/img", r)));
    let d = Daemon::start();
    let (st, lines) = api_pull(
        &d,
        &format!("127.0.0.1:{}/bad/img", fake.port),
        "latest",
        "",
    );
    assert_eq!(st, 200, "{lines:?}");
    let last = lines.last().unwrap();
    let msg = last["errorDetail"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("filesystem layer verification failed for digest"),
        "{lines:?}"
    );
    assert_eq!(last["error"].as_str(), Some(msg));
    let o = d.docker(&["pull", &format!("127.0.0.1:{}/bad/img", fake.port)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("verification failed"), "{}", stderr(&o));
    // Nothing half-stored.
    assert!(d.docker_ok(&["images", "-qa"]).trim().is_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count_entries(&d.data_root.join("content/sha256")), 0);
    assert_eq!(count_entries(&d.data_root.join("layers")), 0);
    assert_eq!(count_entries(&d.data_root.join("content/tmp")), 0);
    let _ = (&img.config, &img.config_digest);
}

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
    let v = inspect(&d, &image);
    assert_eq!(v["Id"], img.config_digest.as_str());
    assert!(fake.requests.load(Ordering::SeqCst) > 0);
}

/// A client certificate signed by a fresh CA: (ca.pem, client.cert, client.key).
fn make_client_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["berth-client".into()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer).unwrap();
    let (a, c, k) = (
        dir.join("client-ca.pem"),
        dir.join("client.cert"),
        dir.join("client.key"),
    );
    std::fs::write(&a, ca.pem()).unwrap();
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
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
    assert_eq!(inspect(&d2, &tag)["Id"], id.as_str());
}

fn make_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &issuer).unwrap();
    let (c, k, a) = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::write(&a, ca.pem()).unwrap();
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
    assert_eq!(inspect(&d, &tag)["Id"], id.as_str());

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

#[test]
fn skopeo_reads_what_berth_pushes_and_berth_pulls_what_skopeo_pushes() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let tag = format!("{}/interop/mine:1", reg.host());
    load_multi(&d, &tag);
    let digest = digest_from_push(&d.docker_ok(&["push", &tag]));
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{tag}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 5);
    assert_eq!(v["Architecture"], "amd64");
    // skopeo copy verifies every blob it reads back.
    let dir = scratch();
    let o = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &format!("docker://{tag}")])
        .arg(format!("oci:{}:x", dir.path().join("oci").display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // The other way round.
    let (tar, id) = fixtures::docker_archive(
        &[
            busybox_tar(),
            fixtures::layer_tar(&[Entry::File("s.txt", b"from skopeo\n")]),
        ],
        &["skopeo/src:1"],
        json!({"config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}}),
    );
    let p = fixtures::write_file(dir.path(), "src.tar", &tar);
    let theirs = format!("{}/interop/theirs:1", reg.host());
    let o = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", p.display()))
        .arg(format!("docker://{theirs}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = d.docker_ok(&["pull", &theirs]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(inspect(&d, &theirs)["Id"], id.as_str());
    let o = d.docker(&["run", "--rm", &theirs, "cat", "/s.txt"]);
    assert_eq!(stdout(&o), "from skopeo\n", "{}", stderr(&o));
}

#[test]
fn berth_cli_pull_and_push() {
    let reg = Registry::plain();
    let d = Daemon::start();
    let tag = format!("{}/cli/bb:1", reg.host());
    fixtures::import_busybox(&d, &tag);
    let o = d.berth(&["push", &tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Pushed") && out.contains("1: digest: sha256:"),
        "{out}"
    );
    d.docker_ok(&["rmi", &tag]);
    let o = d.berth(&["pull", &tag]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // Off a terminal: docker's plain lines, no progress bars.
    assert!(out.starts_with("1: Pulling from cli/bb\n"), "{out}");
    assert!(
        out.contains(": Pulling fs layer\n") && out.contains(": Pull complete\n"),
        "{out}"
    );
    assert!(!out.contains("Downloading"), "{out}");
    assert!(
        out.ends_with(&format!(
            "Status: Downloaded newer image for {tag}\n{tag}\n"
        )),
        "{out}"
    );
    // -a pulls every tag.
    d.docker_ok(&["tag", &tag, &format!("{}/cli/bb:2", reg.host())]);
    d.docker_ok(&["push", &format!("{}/cli/bb:2", reg.host())]);
    d.docker_ok(&["rmi", "-f", &tag]);
    let o = d.berth(&["pull", "-a", &format!("{}/cli/bb", reg.host())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("1: Pulling from cli/bb") && out.contains("2: Pulling from cli/bb"),
        "{out}"
    );
    let tags = d.docker_ok(&[
        "images",
        "--format",
        "{{.Tag}}",
        &format!("{}/cli/bb", reg.host()),
    ]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, vec!["1", "2"]);
    // Errors as docker prints them.
    let o = d.berth(&["pull", &format!("{}/cli/nope:1", reg.host())]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "Error response from daemon: manifest for {}/cli/nope:1 not found: manifest unknown",
            reg.host()
        )),
        "{}",
        stderr(&o)
    );
}
