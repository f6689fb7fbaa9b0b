//! Env and label files (`--env-file`, `--label-file`) and the lists
//! built from them.

use std::collections::BTreeMap;

use anyhow::{bail, Context};

/// `k=v` items as a map, docker's `ConvertKVStringsToMap`; a bare `k`
/// has `""`.
pub fn kv_map(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Lines of an env or label file: `#` comments and blank lines skipped,
/// `KEY` alone taken from our environment (skipped when unset, for env).
pub(super) fn read_kv_file(path: &str, from_env: bool) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => {
                if k.is_empty() {
                    bail!("no variable name on line '{line}'");
                }
                if k.contains(char::is_whitespace) {
                    bail!("variable '{k}' contains whitespaces");
                }
                out.push(format!("{k}={v}"));
            }
            None if from_env => {
                if let Ok(v) = std::env::var(line) {
                    out.push(format!("{line}={v}"));
                }
            }
            None => {
                if line.contains(char::is_whitespace) {
                    bail!("{path}:{}: variable '{line}' contains whitespaces", n + 1);
                }
                out.push(line.to_string());
            }
        }
    }
    Ok(out)
}

/// The env list docker sends: files first, then `-e` (whose bare `KEY`
/// takes our value, or goes as is to unset it in the container).
pub fn read_env(files: &[String], env: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        out.extend(read_kv_file(f, true)?);
    }
    for e in env {
        if e.is_empty() || e.starts_with('=') {
            bail!("invalid environment variable: {e}");
        }
        if e.contains('=') {
            out.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            out.push(format!("{e}={v}"));
        } else {
            out.push(e.clone());
        }
    }
    Ok(out)
}

pub(super) fn read_labels(
    files: &[String],
    labels: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut all = Vec::new();
    for f in files {
        all.extend(read_kv_file(f, false)?);
    }
    all.extend(labels.iter().cloned());
    Ok(kv_map(&all))
}
