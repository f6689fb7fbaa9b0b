//! `docker import`: a root file-system tar becomes a one-layer image, with
//! Dockerfile-style `changes` applied to its config.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use serde_json::json;

use super::reference::Reference;
use super::spec::ContainerDefaults;
use super::{now_rfc3339, Image, ImageService};
use crate::engine::host::go_arch;
use crate::engine::{EngineError, Result};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Where to tag the image (`repo` / `tag` of the request).
    pub tag: Option<Reference>,
    /// Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER,
    /// WORKDIR, VOLUME, STOPSIGNAL, ONBUILD.
    pub changes: Vec<String>,
    /// The history comment; Docker's default is `Imported from <src>`.
    pub message: String,
    /// Where the tar came from, for the default message (`-` for the body).
    pub source: String,
}

/// Splits words the way a Dockerfile does: whitespace separates, quotes
/// group, backslash escapes.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `["a","b"]` (JSON form) or a shell-form string.
fn json_or_shell(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if t.starts_with('[') {
        serde_json::from_str::<Vec<String>>(t).ok()
    } else {
        None
    }
}

fn key_values(rest: &str, what: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(rest);
    if words.is_empty() {
        return Err(EngineError::invalid(format!(
            "{what} requires at least one argument"
        )));
    }
    // Legacy form `ENV KEY value with spaces`.
    if !words[0].contains('=') {
        let (k, v) = rest
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| EngineError::invalid(format!("{what} must have two arguments")))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    EngineError::invalid(format!("{what} names can not be blank: {w:?}"))
                })
        })
        .collect()
}

/// Applies Dockerfile instructions to the image config, as `docker import
/// --change` and `docker commit --change` do.
pub fn apply_changes(cfg: &mut ContainerDefaults, changes: &[String]) -> Result<()> {
    // One parameter may carry several lines (bollard joins them), as a
    // Dockerfile would.
    for change in changes.iter().flat_map(|c| c.lines()) {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let (word, rest) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let rest = rest.trim();
        let shell = |r: &str| vec!["/bin/sh".to_string(), "-c".to_string(), r.to_string()];
        match word.to_ascii_uppercase().as_str() {
            "CMD" => cfg.cmd = Some(json_or_shell(rest).unwrap_or_else(|| shell(rest))),
            "ENTRYPOINT" => {
                cfg.entrypoint = Some(json_or_shell(rest).unwrap_or_else(|| shell(rest)))
            }
            "ENV" => {
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(rest, "ENV")? {
                    let entry = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split('=').next() == Some(k.as_str()))
                    {
                        Some(e) => *e = entry,
                        None => env.push(entry),
                    }
                }
            }
            "LABEL" => {
                let labels = cfg.labels.get_or_insert_with(HashMap::new);
                for (k, v) in key_values(rest, "LABEL")? {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = cfg.exposed_ports.get_or_insert_with(HashMap::new);
                for p in split_words(rest) {
                    let p = if p.contains('/') {
                        p.to_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let num = p.split('/').next().unwrap_or("");
                    let valid = num.split('-').all(|n| n.parse::<u16>().is_ok());
                    if !valid {
                        return Err(EngineError::invalid(format!(
                            "invalid containerPort: {num}"
                        )));
                    }
                    ports.insert(p, HashMap::new());
                }
            }
            "USER" => cfg.user = Some(rest.to_string()),
            "WORKDIR" => {
                let base = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
                let joined = if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    format!("{}/{rest}", base.trim_end_matches('/'))
                };
                cfg.working_dir = Some(joined);
            }
            "VOLUME" => {
                let vols = cfg.volumes.get_or_insert_with(HashMap::new);
                let list = json_or_shell(rest).unwrap_or_else(|| split_words(rest));
                if list.is_empty() {
                    return Err(EngineError::invalid(
                        "VOLUME specified can not be an empty string",
                    ));
                }
                for v in list {
                    vols.insert(v, HashMap::new());
                }
            }
            "STOPSIGNAL" => cfg.stop_signal = Some(rest.to_string()),
            "ONBUILD" => cfg
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_string()),
            "SHELL" => {
                cfg.shell = Some(json_or_shell(rest).ok_or_else(|| {
                    EngineError::invalid("SHELL requires the arguments to be in JSON form")
                })?)
            }
            _ => {
                return Err(EngineError::invalid(format!(
                    "{} is not a valid change command",
                    word.to_ascii_lowercase()
                )))
            }
        }
    }
    Ok(())
}

impl ImageService {
    /// `POST /images/create?fromSrc=-`: the body is a root file system tar
    /// (plain, gzip or zstd).
    pub fn import<R: Read>(&self, reader: R, opts: &ImportOptions) -> Result<Arc<Image>> {
        let mut defaults = ContainerDefaults::default();
        apply_changes(&mut defaults, &opts.changes)?;
        let layer = self.create_layer(None, reader)?;
        let created = now_rfc3339();
        let message = if opts.message.is_empty() {
            format!("Imported from {}", opts.source)
        } else {
            opts.message.clone()
        };
        let config = json!({
            "architecture": go_arch(),
            "comment": message,
            "config": defaults,
            "created": created,
            "history": [{"created": created, "created_by": "", "comment": message}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        });
        let bytes = serde_json::to_vec(&config)?;
        let tags: Vec<Reference> = opts.tag.iter().cloned().collect();
        let img = self.create_image(&bytes, &tags)?;
        drop(layer);
        self.publish("import", &img, &img.id);
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_a_dockerfile() {
        let mut c = ContainerDefaults::default();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["sh"]"#.into(),
                "ENTRYPOINT echo hi".into(),
                "ENV A=b C=\"d e\"".into(),
                "ENV F g h".into(),
                "ENV A=z".into(),
                "EXPOSE 80 53/UDP".into(),
                "LABEL x=y".into(),
                "USER nobody".into(),
                "WORKDIR /app".into(),
                "WORKDIR sub".into(),
                "VOLUME /data /logs".into(),
                "STOPSIGNAL SIGINT".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["sh"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.env.unwrap(), vec!["A=z", "C=d e", "F=g h"]);
        let ports = c.exposed_ports.unwrap();
        assert!(ports.contains_key("80/tcp") && ports.contains_key("53/udp"));
        assert_eq!(c.labels.unwrap()["x"], "y");
        assert_eq!(c.user.unwrap(), "nobody");
        assert_eq!(c.working_dir.unwrap(), "/app/sub");
        assert_eq!(c.volumes.unwrap().len(), 2);
        assert_eq!(c.stop_signal.unwrap(), "SIGINT");
        assert!(apply_changes(&mut ContainerDefaults::default(), &["RUN x".into()]).is_err());
    }
}
