//! The `json-file` driver. The shim writes the file (`berth-shim`'s
//! logger: one JSON object per line, rotated at `max-size` into `.1` …
//! `.N`, gzipped into `.N.gz` with `compress`); this side checks the
//! options, tells the shim where and how to write, and reads the files
//! back through `logfile`.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::local::parse_bool;
use super::logfile::{self, Format};

use super::{
    CapabilitiesResponse, Follow, Framing, Info, LogDriver, LogEntry, ReadConfig, ShimSink,
    JSON_FILE,
};
use crate::engine::{EngineError, Result};

pub struct JsonFile;

/// Log options the json-file driver takes (dockerd refuses others).
const OPTS: &[&str] = &[
    "max-file",
    "max-size",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

/// `10m`, `1g`, `512k`, plain bytes (go-units' `FromHumanSize`, decimal); the
/// log driver's `max-size`, which must not be negative.
pub fn parse_size(s: &str) -> Option<u64> {
    // Surrounding blanks were always forgiven here.
    berth_api::units::from_human_size(s.trim())
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

/// `max-size` and `max-file`, when given, must make sense.
pub fn check_rotation(opts: &HashMap<String, String>) -> Result<()> {
    if let Some(s) = opts.get("max-size") {
        parse_size(s).ok_or_else(|| EngineError::invalid(format!("invalid max-size: {s}")))?;
    }
    if let Some(s) = opts.get("max-file") {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| EngineError::invalid(format!("invalid max-file: {s}")))?;
    }
    Ok(())
}

/// The rotation the options ask for (no path); `compress` only when
/// there is rotation to compress (dockerd refuses it otherwise, at
/// start: `check_compress`).
pub fn rotation(opts: &HashMap<String, String>) -> ShimSink {
    let max_size = opts
        .get("max-size")
        .and_then(|s| parse_size(s))
        .unwrap_or(0);
    let max_file = opts
        .get("max-file")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let compress = opts.get("compress").and_then(|v| parse_bool(v)) == Some(true);
    ShimSink {
        max_size,
        max_file,
        compress: compress && max_size > 0 && max_file > 1,
        ..Default::default()
    }
}

/// dockerd's json-file `New` on `compress`: a Go boolean, and only with
/// rotation to compress.
fn check_compress(opts: &HashMap<String, String>) -> Result<()> {
    let Some(v) = opts.get("compress") else {
        return Ok(());
    };
    let fail = |m: String| {
        Err(EngineError::internal(format!(
            "failed to initialize logging driver: {m}"
        )))
    };
    let Some(on) = parse_bool(v) else {
        return fail(format!("strconv.ParseBool: parsing {v:?}: invalid syntax"));
    };
    let files = opts
        .get("max-file")
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1);
    if on && (files < 2 || !opts.contains_key("max-size")) {
        return fail(
            "compress cannot be true when max-file is less than 2 or max-size is not set".into(),
        );
    }
    Ok(())
}

/// The extra attributes every line carries (`"attrs"`), as dockerd's
/// `New` makes them: the labels and environment the options name (an
/// environment variable wins over a label of the same name), and `tag`
/// only when the option is set; the JSON object of Go's `json.Marshal`
/// (keys sorted, `<`, `>`, `&` escaped), or empty when there are none.
fn attrs(info: &Info) -> Result<String> {
    let fail =
        |e: EngineError| EngineError::internal(format!("failed to initialize logging driver: {e}"));
    let mut extra = super::forward::extra_attributes(info, str::to_string).map_err(fail)?;
    let tag = super::forward::tag_or(info, "").map_err(fail)?;
    if !tag.is_empty() {
        extra.insert("tag".into(), tag);
    }
    if extra.is_empty() {
        return Ok(String::new());
    }
    Ok(go_json_escape(&serde_json::to_string(&extra)?))
}

/// Go's `json.Marshal` escapes HTML's special characters and the line
/// separators inside strings; serde_json does not. In serde_json's
/// output those characters can only be inside strings, so replacing them
/// anywhere is exact.
fn go_json_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

impl LogDriver for JsonFile {
    fn name(&self) -> &str {
        JSON_FILE
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse {
            cap: super::Capabilities { read_logs: true },
        }
    }

    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()> {
        super::only(opts, OPTS, JSON_FILE)?;
        check_rotation(opts)
    }

    fn shim_sink(&self, info: &Info) -> ShimSink {
        ShimSink {
            path: info.log_path.clone(),
            attrs: attrs(info).unwrap_or_default(),
            ..rotation(&info.config)
        }
    }

    fn start_logging(&self, info: &Info, _: &std::path::Path) -> Result<ShimSink> {
        check_compress(&info.config)?;
        // Here an option the attributes cannot be made of fails the start.
        let attrs = attrs(info)?;
        Ok(ShimSink {
            path: info.log_path.clone(),
            attrs,
            ..rotation(&info.config)
        })
    }

    fn read_logs(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        Ok(logfile::read_logs(
            PathBuf::from(&info.log_path),
            Format::Json,
            config,
            follow,
        ))
    }

    fn read_framed(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
        framing: Framing,
    ) -> Result<mpsc::Receiver<Bytes>> {
        Ok(logfile::read_framed(
            PathBuf::from(&info.log_path),
            Format::Json,
            config,
            follow,
            framing,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn attributes_as_dockerd_writes_them() {
        let info = Info {
            log_path: "/d/c-json.log".into(),
            container_id: "0123456789abcdef".into(),
            container_name: "/web".into(),
            container_labels: HashMap::from([
                ("app".to_string(), "a<b&c".to_string()),
                ("dup".to_string(), "label".to_string()),
                ("x.y".to_string(), "1".to_string()),
            ]),
            container_env: vec!["dup=env".into(), "E1=v=1".into(), "NOPE".into()],
            config: opts(&[
                ("labels", "app,dup,missing"),
                ("labels-regex", "^x\\."),
                ("env", "dup"),
                ("env-regex", "^E"),
                ("tag", "{{.Name}}/{{.ID}}"),
            ]),
            ..Default::default()
        };
        // Sorted keys, HTML escaped as Go's, the environment over a label.
        assert_eq!(
            attrs(&info).unwrap(),
            r#"{"E1":"v=1","app":"a\u003cb\u0026c","dup":"env","tag":"web/0123456789ab","x.y":"1"}"#
        );
        let s = JsonFile
            .start_logging(&info, std::path::Path::new("/x"))
            .unwrap();
        assert_eq!(s.attrs, attrs(&info).unwrap());
        assert_eq!(s.path, "/d/c-json.log");
        // No options: no attributes, and no tag by default.
        let plain = Info {
            config: HashMap::new(),
            ..info.clone()
        };
        assert_eq!(attrs(&plain).unwrap(), "");
        // A bad pattern fails the start, as dockerd's `New`.
        let bad = Info {
            config: opts(&[("env-regex", "(")]),
            ..info
        };
        let e = JsonFile
            .start_logging(&bad, std::path::Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("failed to initialize logging driver: error parsing regexp"),
            "{e}"
        );
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("10m"), Some(10_000_000));
        assert_eq!(parse_size("1k"), Some(1000));
        assert_eq!(parse_size("1KiB"), Some(1000));
        assert_eq!(parse_size("100"), Some(100));
        assert!(parse_size("x").is_none());
    }

    #[test]
    fn options_are_checked_and_become_the_shims_rotation() {
        let d = JsonFile;
        assert!(d
            .validate_options(&opts(&[("max-size", "10m"), ("max-file", "3")]))
            .is_ok());
        let e = |o: &[(&str, &str)]| d.validate_options(&opts(o)).unwrap_err().to_string();
        assert_eq!(
            e(&[("bogus", "1")]),
            "unknown log opt 'bogus' for json-file log driver"
        );
        assert_eq!(e(&[("max-size", "big")]), "invalid max-size: big");
        assert_eq!(e(&[("max-file", "0")]), "invalid max-file: 0");
        let info = Info {
            log_path: "/d/c-json.log".into(),
            config: opts(&[("max-size", "1k"), ("max-file", "2")]),
            ..Default::default()
        };
        assert_eq!(
            d.shim_sink(&info),
            ShimSink {
                path: "/d/c-json.log".into(),
                max_size: 1000,
                max_file: 2,
                ..Default::default()
            }
        );
        assert_eq!(
            d.shim_sink(&Info::default()),
            ShimSink {
                path: String::new(),
                max_size: 0,
                max_file: 1,
                ..Default::default()
            }
        );
        assert!(d.capabilities().cap.read_logs);
        // compress: a Go boolean, refused at start without rotation.
        let start = |o: &[(&str, &str)]| {
            let info = Info {
                config: opts(o),
                ..Default::default()
            };
            d.start_logging(&info, std::path::Path::new("/x"))
                .map(|s| s.compress)
                .map_err(|e| e.to_string())
        };
        let rot = [("max-size", "1k"), ("max-file", "3")];
        assert_eq!(start(&[rot[0], rot[1], ("compress", "true")]), Ok(true));
        assert_eq!(start(&[rot[0], rot[1]]), Ok(false));
        assert_eq!(
            start(&[("max-file", "3"), ("compress", "true")]),
            Err("failed to initialize logging driver: compress cannot be true when max-file is less than 2 or max-size is not set".into())
        );
        assert_eq!(
            start(&[("compress", "yes")]),
            Err("failed to initialize logging driver: strconv.ParseBool: parsing \"yes\": invalid syntax".into())
        );
    }
}
