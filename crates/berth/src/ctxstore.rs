//! The docker CLI's context store, shared file for file with it:
//! `$DOCKER_CONFIG/contexts/meta/<sha256(name)>/meta.json`, TLS material in
//! `contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem`, and the current
//! context in `config.json`'s `currentContext`. Also the endpoint a command
//! talks to, chosen as the docker CLI chooses it: `--host` > `--context` >
//! `DOCKER_HOST` > `DOCKER_CONTEXT` > `currentContext` > `default`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::client::{Conn, DEFAULT_HOST};

pub const DEFAULT: &str = "default";
const META_FILE: &str = "meta.json";
const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

/// The CLI's configuration directory: `$DOCKER_CONFIG` or `~/.docker`.
pub fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker"),
    }
}

fn digest(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

pub fn meta_dir(name: &str) -> PathBuf {
    config_dir().join("contexts/meta").join(digest(name))
}

pub fn tls_dir(name: &str) -> PathBuf {
    config_dir().join("contexts/tls").join(digest(name))
}

/// The docker CLI's `^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    if name == DEFAULT {
        bail!("\"default\" is a reserved context name");
    }
    let ok_rest = |c: char| c.is_ascii_alphanumeric() || "_.+-".contains(c);
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || name.len() < 2 || !chars.all(ok_rest) {
        bail!(
            "context name {name:?} is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\""
        );
    }
    Ok(())
}

/// A stored context's `meta.json`, kept as JSON so that endpoints and
/// metadata berth does not know (e.g. another tool's) survive an update.
pub fn read_meta(name: &str) -> anyhow::Result<Value> {
    let path = meta_dir(name).join(META_FILE);
    let data = std::fs::read(&path).map_err(|e| {
        anyhow!(
            "context {name:?}: context not found: open {}: {}",
            path.display(),
            go_io_error(&e)
        )
    })?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
}

fn go_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

pub fn exists(name: &str) -> bool {
    name == DEFAULT || meta_dir(name).join(META_FILE).is_file()
}

/// Writes `path` atomically: a temporary file beside it, synced, renamed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `meta.json`'s keys in the docker CLI's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ordered<'a> {
    pub name: &'a Value,
    pub metadata: &'a Value,
    pub endpoints: &'a Value,
}

impl<'a> Ordered<'a> {
    pub fn of(meta: &'a Value) -> Self {
        Self {
            name: &meta["Name"],
            metadata: &meta["Metadata"],
            endpoints: &meta["Endpoints"],
        }
    }
}

pub fn write_meta(meta: &Value) -> anyhow::Result<()> {
    let name = meta["Name"].as_str().unwrap_or_default();
    let dir = meta_dir(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = serde_json::to_vec(&Ordered::of(meta))?;
    write_atomic(&dir.join(META_FILE), &data, 0o644)
}

/// The TLS files of a context's docker endpoint: (file name, contents).
pub fn read_tls(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tls_dir(name).join("docker");
    TLS_FILES
        .iter()
        .filter_map(|f| Some((f.to_string(), std::fs::read(dir.join(f)).ok()?)))
        .collect()
}

/// Replaces a context's docker TLS material (none removes it).
pub fn write_tls(name: &str, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let dir = tls_dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    if files.is_empty() {
        return Ok(());
    }
    let ep = dir.join("docker");
    std::fs::create_dir_all(&ep).with_context(|| format!("creating {}", ep.display()))?;
    for (f, data) in files {
        write_atomic(&ep.join(f), data, 0o600)?;
    }
    Ok(())
}

pub fn remove(name: &str) -> anyhow::Result<()> {
    let dir = meta_dir(name);
    if !dir.join(META_FILE).is_file() {
        bail!("context {name:?} does not exist");
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(tls_dir(name));
    Ok(())
}

/// Every stored context's metadata, sorted by name.
pub fn list() -> Vec<Result<Value, (String, String)>> {
    let dir = config_dir().join("contexts/meta");
    let mut out: Vec<Result<Value, (String, String)>> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path().join(META_FILE);
            if !p.is_file() {
                continue;
            }
            match std::fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|d| Ok(serde_json::from_slice::<Value>(&d)?))
            {
                Ok(v) => out.push(Ok(v)),
                Err(err) => out.push(Err((
                    e.file_name().to_string_lossy().into(),
                    err.to_string(),
                ))),
            }
        }
    }
    out.sort_by_key(|r| match r {
        Ok(v) => v["Name"].as_str().unwrap_or_default().to_string(),
        Err((n, _)) => n.clone(),
    });
    out
}

fn config_path() -> PathBuf {
    config_dir().join("config.json")
}

fn read_config() -> anyhow::Result<Map<String, Value>> {
    let path = config_path();
    match std::fs::read(&path) {
        Ok(d) if d.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(d) => match serde_json::from_slice(&d) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => bail!("{}: not a JSON object", path.display()),
            Err(e) => Err(anyhow!("loading config file: {}: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(anyhow!("loading config file: {}: {e}", path.display())),
    }
}

/// `currentContext` from `config.json` (empty when unset).
pub fn current_from_config() -> String {
    read_config()
        .ok()
        .and_then(|m| m.get("currentContext")?.as_str().map(String::from))
        .unwrap_or_default()
}

/// Sets (or, for `default`, removes) `currentContext`, keeping every other
/// key of `config.json` as it was.
pub fn set_current(name: &str) -> anyhow::Result<()> {
    let mut cfg = read_config()?;
    if name == DEFAULT || name.is_empty() {
        cfg.remove("currentContext");
    } else {
        cfg.insert("currentContext".into(), json!(name));
    }
    let mut data = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut data, fmt);
    serde::Serialize::serialize(&Value::Object(cfg), &mut ser)?;
    write_atomic(&config_path(), &data, 0o600)
}

/// The context a command uses, by the docker CLI's precedence.
pub fn current_name(explicit: Option<&str>, host_flag: bool) -> String {
    if let Some(c) = explicit.filter(|c| !c.is_empty()) {
        return c.to_string();
    }
    if host_flag || std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
        return DEFAULT.into();
    }
    if let Ok(c) = std::env::var("DOCKER_CONTEXT") {
        if !c.is_empty() {
            return c;
        }
    }
    let c = current_from_config();
    if c.is_empty() {
        DEFAULT.into()
    } else {
        c
    }
}

/// The default context's host: `DOCKER_HOST` or berth's socket.
pub fn default_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// The docker endpoint of a context: (host, skip TLS verification).
pub fn endpoint(meta: &Value) -> (String, bool) {
    let ep = &meta["Endpoints"]["docker"];
    (
        ep["Host"].as_str().unwrap_or_default().to_string(),
        ep["SkipTLSVerify"].as_bool().unwrap_or(false),
    )
}

/// Where this invocation talks to, resolved once before a command runs.
pub struct Resolved {
    pub name: String,
}

/// Points `conn` at the endpoint of the context in force (the `--host`
/// flag and the default context leave it as the TLS flags say).
pub fn resolve(conn: &mut Conn) -> anyhow::Result<Resolved> {
    let host_flag = conn.host.is_some();
    if host_flag && conn.context.as_deref().is_some_and(|c| !c.is_empty()) {
        bail!("conflicting options: cannot specify both --host and --context");
    }
    let name = current_name(conn.context.as_deref(), host_flag);
    if name == DEFAULT {
        if conn.host.is_none() {
            conn.host = Some(default_host());
        }
        return Ok(Resolved { name });
    }
    let meta = read_meta(&name)
        .map_err(|e| anyhow!("Failed to initialize: unable to resolve docker endpoint: {e:#}"))?;
    let (host, skip) = endpoint(&meta);
    if host.is_empty() {
        bail!("Failed to initialize: unable to resolve docker endpoint: context {name:?} has no docker endpoint");
    }
    conn.host = Some(host);
    let dir = tls_dir(&name).join("docker");
    let have = |f: &str| dir.join(f).is_file().then(|| dir.join(f));
    let tls = have("ca.pem").is_some() || have("cert.pem").is_some();
    if tls || skip {
        conn.tls = true;
        conn.tlsverify = Some(!skip);
        conn.tlscacert = have("ca.pem").or(conn.tlscacert.take());
        conn.tlscert = have("cert.pem").or(conn.tlscert.take());
        conn.tlskey = have("key.pem").or(conn.tlskey.take());
    } else {
        conn.tls = false;
        conn.tlsverify = None;
    }
    Ok(Resolved { name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_as_docker_does() {
        assert!(validate_name("ab").is_ok());
        assert!(validate_name("a.b_c+d-e").is_ok());
        assert!(validate_name("a").is_err());
        assert!(validate_name("-ab").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("default").is_err());
    }

    #[test]
    fn digests_are_the_docker_cli_s() {
        assert_eq!(
            digest("foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }
}
