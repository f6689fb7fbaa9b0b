//! Finding legacy plugins as Docker does: a socket `<name>.sock` (or
//! `<name>/<name>.sock`) in a sockets directory, else a `<name>.spec` (a
//! URL) or `<name>.json` (`Name`, `Addr`, `TLSConfig`) file in a specs
//! directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where a plugin was found, before it is activated.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub name: String,
    /// `unix:///…`, `tcp://…` or `https://…`.
    pub url: String,
    pub tls: Option<TlsSpec>,
}

/// A `.json` spec's `TLSConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TlsSpec {
    #[serde(rename = "InsecureSkipVerify")]
    pub insecure_skip_verify: bool,
    #[serde(rename = "CAFile")]
    pub ca_file: String,
    #[serde(rename = "CertFile")]
    pub cert_file: String,
    #[serde(rename = "KeyFile")]
    pub key_file: String,
}

#[derive(Deserialize)]
struct JsonSpec {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Addr", default)]
    addr: String,
    #[serde(rename = "TLSConfig")]
    tls: Option<TlsSpec>,
}

/// The directories searched, in order.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub sockets: Vec<PathBuf>,
    pub specs: Vec<PathBuf>,
}

/// A plugin name as Docker allows it (a file name, no separators).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

impl Dirs {
    /// Looks `name` up; sockets first, then specs.
    pub fn find(&self, name: &str) -> Result<Option<Found>, String> {
        if !valid_name(name) {
            return Ok(None);
        }
        for dir in &self.sockets {
            for p in [
                dir.join(format!("{name}.sock")),
                dir.join(name).join(format!("{name}.sock")),
            ] {
                if is_socket(&p) {
                    return Ok(Some(Found {
                        name: name.into(),
                        url: format!("unix://{}", p.display()),
                        tls: None,
                    }));
                }
            }
        }
        for dir in &self.specs {
            for ext in ["spec", "json"] {
                let p = dir.join(format!("{name}.{ext}"));
                if p.is_file() {
                    return read_spec(name, &p).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Every plugin name present, sockets first, each name once.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |n: String| {
            if valid_name(&n) && !out.contains(&n) {
                out.push(n);
            }
        };
        for dir in &self.sockets {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                let Some(file) = p.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                if let Some(n) = file.strip_suffix(".sock") {
                    if is_socket(&p) {
                        add(n.to_string());
                    }
                } else if is_socket(&p.join(format!("{file}.sock"))) {
                    add(file.to_string());
                }
            }
        }
        for dir in &self.specs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                let Some(file) = p.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                if let Some(n) = file
                    .strip_suffix(".spec")
                    .or_else(|| file.strip_suffix(".json"))
                {
                    add(n.to_string());
                }
            }
        }
        out
    }
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn read_spec(name: &str, path: &Path) -> Result<Found, String> {
    let data = std::fs::read_to_string(path)
        .map_err(|e| format!("reading plugin spec {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        let s: JsonSpec = serde_json::from_str(&data)
            .map_err(|e| format!("plugin spec {}: {e}", path.display()))?;
        if s.addr.is_empty() {
            return Err(format!("plugin spec {}: no Addr", path.display()));
        }
        return Ok(Found {
            // Docker names the plugin after the file when the spec has none.
            name: if s.name.is_empty() {
                name.into()
            } else {
                s.name
            },
            url: s.addr,
            tls: s.tls,
        });
    }
    let url = data.trim();
    if url.is_empty() {
        return Err(format!("plugin spec {}: empty", path.display()));
    }
    Ok(Found {
        name: name.into(),
        url: url.into(),
        tls: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_come_before_specs_and_both_layouts_are_found() {
        let t = tempfile::tempdir().unwrap();
        let socks = t.path().join("run");
        let specs = t.path().join("etc");
        std::fs::create_dir_all(socks.join("nested")).unwrap();
        std::fs::create_dir_all(&specs).unwrap();
        let _a = std::os::unix::net::UnixListener::bind(socks.join("flat.sock")).unwrap();
        let _b = std::os::unix::net::UnixListener::bind(socks.join("nested").join("nested.sock"))
            .unwrap();
        std::fs::write(specs.join("flat.spec"), "tcp://127.0.0.1:1\n").unwrap();
        std::fs::write(specs.join("remote.spec"), "tcp://127.0.0.1:2\n").unwrap();
        std::fs::write(
            specs.join("tls.json"),
            r#"{"Name":"tls","Addr":"https://127.0.0.1:3","TLSConfig":{"InsecureSkipVerify":true}}"#,
        )
        .unwrap();
        std::fs::write(specs.join("bad.json"), "{").unwrap();
        // A regular file named like a socket is not a plugin.
        std::fs::write(socks.join("file.sock"), "").unwrap();
        let d = Dirs {
            sockets: vec![socks.clone()],
            specs: vec![specs],
        };
        assert_eq!(
            d.find("flat").unwrap().unwrap().url,
            format!("unix://{}", socks.join("flat.sock").display())
        );
        assert!(d
            .find("nested")
            .unwrap()
            .unwrap()
            .url
            .ends_with("nested/nested.sock"));
        assert_eq!(d.find("remote").unwrap().unwrap().url, "tcp://127.0.0.1:2");
        let tls = d.find("tls").unwrap().unwrap();
        assert!(tls.tls.unwrap().insecure_skip_verify);
        assert!(d.find("bad").is_err());
        assert_eq!(d.find("file").unwrap(), None);
        assert_eq!(d.find("../etc/passwd").unwrap(), None);
        assert_eq!(d.find("none").unwrap(), None);
        assert_eq!(
            d.names(),
            ["flat", "nested", "bad", "remote", "tls"].map(String::from)
        );
    }
}
