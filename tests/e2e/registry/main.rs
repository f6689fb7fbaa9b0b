//! Issue 8: registries. Pull, push and login against real registry servers
//! (Debian's `docker-registry`, the CNCF distribution server) started on
//! 127.0.0.1 free ports, one plain and one with TLS and htpasswd auth, plus
//! tiny fake registries (std TcpListener) for what a real one won't do: a
//! corrupt blob, and the bearer-token flow. Everything stays on loopback.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_tests::fixtures::{self, Entry};
use berth_tests::host::count_entries;
use berth_tests::http::http;
use berth_tests::*;
use serde_json::{json, Value};

mod auth;
mod pull_push;

// ---------------------------------------------------------------------------
// A real registry

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

fn digest_from_push(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in push output:\n{out}"))
        .to_string()
}
