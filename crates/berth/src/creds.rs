//! Registry credentials in the docker CLI's `config.json`
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `auths`
//! entries of base64 `user:password`, or a credential helper
//! (`credsStore`, or `credHelpers` per registry) run as
//! `docker-credential-<name> get|store|erase`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Docker Hub's key in `auths`.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

#[derive(Debug, Clone, Default)]
pub struct Creds {
    pub username: String,
    pub password: String,
    pub identity_token: String,
}

pub fn config_dir() -> PathBuf {
    if let Ok(d) = std::env::var("DOCKER_CONFIG") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root"))
        .join(".docker")
}

pub fn config_path() -> PathBuf {
    config_dir().join("config.json")
}

fn load() -> anyhow::Result<Map<String, Value>> {
    let p = config_path();
    match std::fs::read(&p) {
        Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Ok(Map::new()),
        Ok(b) => match serde_json::from_slice::<Value>(&b)
            .with_context(|| format!("loading config file {}", p.display()))?
        {
            Value::Object(m) => Ok(m),
            _ => bail!("{}: not a JSON object", p.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

fn save(m: &Map<String, Value>) -> anyhow::Result<()> {
    let p = config_path();
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = p.with_extension(format!("json.tmp-{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(&Value::Object(m.clone()))?.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

/// The `auths` key for a registry domain (`docker.io` → Docker Hub's index URL).
pub fn key_for(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "" => INDEX_SERVER.into(),
        d => d.to_string(),
    }
}

/// What the user typed after `login`/`logout` → the `auths` key.
pub fn normalize_server(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        return INDEX_SERVER.into();
    }
    let host = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let host = host.split('/').next().unwrap_or(host);
    key_for(host)
}

fn helper_for(m: &Map<String, Value>, key: &str) -> Option<String> {
    if let Some(h) = m
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .and_then(Value::as_str)
    {
        return Some(h.to_string());
    }
    m.get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(helper: &str, verb: &str, input: &str) -> anyhow::Result<String> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("error getting credentials - err: exec: \"{prog}\": executable file not found in $PATH"))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        bail!("{prog} {verb}: {text}");
    }
    Ok(text)
}

/// The stored credentials for a registry key, if any.
pub fn get(key: &str) -> anyhow::Result<Option<Creds>> {
    let m = load()?;
    if let Some(h) = helper_for(&m, key) {
        return match run_helper(&h, "get", key) {
            Ok(out) => {
                let v: Value = serde_json::from_str(&out)?;
                let user = v["Username"].as_str().unwrap_or("").to_string();
                let secret = v["Secret"].as_str().unwrap_or("").to_string();
                Ok(Some(if user == "<token>" {
                    Creds {
                        identity_token: secret,
                        ..Default::default()
                    }
                } else {
                    Creds {
                        username: user,
                        password: secret,
                        identity_token: String::new(),
                    }
                }))
            }
            // "credentials not found in native keychain"
            Err(e) if e.to_string().contains("not found") => Ok(None),
            Err(e) => Err(e),
        };
    }
    let Some(entry) = m.get("auths").and_then(|a| a.get(key)) else {
        return Ok(None);
    };
    let mut c = Creds::default();
    if let Some(a) = entry.get("auth").and_then(Value::as_str) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .context("invalid auth configuration file")?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        if let Some((u, p)) = raw.split_once(':') {
            c.username = u.to_string();
            c.password = p.to_string();
        }
    }
    if let Some(t) = entry.get("identitytoken").and_then(Value::as_str) {
        c.identity_token = t.to_string();
    }
    Ok((!c.username.is_empty() || !c.identity_token.is_empty()).then_some(c))
}

/// Stores credentials; returns whether they went to the plain file (for
/// docker's "stored unencrypted" warning).
pub fn store(key: &str, c: &Creds) -> anyhow::Result<bool> {
    let mut m = load()?;
    if let Some(h) = helper_for(&m, key) {
        let (user, secret) = if c.identity_token.is_empty() {
            (c.username.as_str(), c.password.as_str())
        } else {
            ("<token>", c.identity_token.as_str())
        };
        let input = json!({"ServerURL": key, "Username": user, "Secret": secret}).to_string();
        run_helper(&h, "store", &input)?;
        // The file keeps an empty entry, as the docker CLI leaves it.
        let auths = m
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = auths.as_object_mut() {
            a.insert(key.to_string(), json!({}));
        }
        save(&m)?;
        return Ok(false);
    }
    let mut entry = Map::new();
    if c.identity_token.is_empty() {
        let raw = format!("{}:{}", c.username, c.password);
        entry.insert(
            "auth".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
        );
    } else {
        entry.insert(
            "auth".into(),
            Value::String(
                base64::engine::general_purpose::STANDARD.encode(format!("{}:", c.username)),
            ),
        );
        entry.insert(
            "identitytoken".into(),
            Value::String(c.identity_token.clone()),
        );
    }
    let auths = m
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    match auths.as_object_mut() {
        Some(a) => {
            a.insert(key.to_string(), Value::Object(entry));
        }
        None => bail!("{}: \"auths\" is not an object", config_path().display()),
    }
    save(&m)?;
    Ok(true)
}

/// Removes stored credentials; returns whether there were any.
pub fn erase(key: &str) -> anyhow::Result<bool> {
    let mut m = load()?;
    let mut found = false;
    if let Some(h) = helper_for(&m, key) {
        found = run_helper(&h, "erase", key).is_ok();
    }
    if let Some(a) = m.get_mut("auths").and_then(Value::as_object_mut) {
        found |= a.remove(key).is_some();
    }
    if found {
        save(&m)?;
    }
    Ok(found)
}

/// The `X-Registry-Auth` header value for a registry domain: base64url JSON
/// of the stored credentials, `{}` when there are none.
pub fn registry_auth_header(domain: &str) -> String {
    let key = key_for(domain);
    let v = match get(&key) {
        Ok(Some(c)) => json!({
            "username": c.username,
            "password": c.password,
            "identitytoken": c.identity_token,
            "serveraddress": key,
        }),
        _ => json!({}),
    };
    base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise() {
        assert_eq!(normalize_server(""), INDEX_SERVER);
        assert_eq!(normalize_server("docker.io"), INDEX_SERVER);
        assert_eq!(
            normalize_server("https://index.docker.io/v1/"),
            INDEX_SERVER
        );
        assert_eq!(normalize_server("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(key_for("localhost:5000"), "localhost:5000");
    }
}
