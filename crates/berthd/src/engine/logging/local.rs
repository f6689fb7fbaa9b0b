//! The `local` driver. The shim writes the file (`berth-shim`'s logger
//! in the local format: each record a protobuf `LogEntry`, its length as
//! 4 big-endian bytes before and after it) at
//! `<container dir>/local-logs/container.log`, rotated at `max-size`
//! (20m) into `max-file` (5) files in all, the rotated ones gzipped
//! (`compress`, true); this side checks the options with dockerd's
//! messages (the keys at create, the values at start, as dockerd's `New`)
//! and reads the files back through `logfile`. As dockerd, inspect shows
//! no `LogPath` (the file is no API).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::logfile::{self, Format};
use super::{
    CapabilitiesResponse, Follow, Framing, Info, LogDriver, LogEntry, ReadConfig, ShimSink,
};
use crate::engine::{EngineError, Result};

pub const NAME: &str = "local";

/// The options the local driver takes.
const OPTS: &[&str] = &["max-file", "max-size", "compress"];

const DEFAULT_MAX_SIZE: u64 = 20 * 1024 * 1024;
const DEFAULT_MAX_FILE: u32 = 5;

pub struct Local;

/// The file the shim writes, beside the json-file path of the container
/// (both in the container's directory).
pub fn log_file(json_path: &str) -> PathBuf {
    let dir = Path::new(json_path).parent().unwrap_or(Path::new("/"));
    dir.join("local-logs").join("container.log")
}

/// Go's `strconv.ParseBool`.
pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The options' values as dockerd's `New` reads them: (max size, max
/// files, compress), or its error.
fn config(o: &HashMap<String, String>) -> std::result::Result<(u64, u32, bool), String> {
    let mut size = DEFAULT_MAX_SIZE;
    if let Some(v) = o.get("max-size") {
        let n = berth_api::units::from_human_size(v)
            .map_err(|e| format!("invalid value for max-size: {v}: {e}"))?;
        size = u64::try_from(n).map_err(|_| "max size should be a positive number".to_string())?;
    }
    let mut files: i64 = i64::from(DEFAULT_MAX_FILE);
    if let Some(v) = o.get("max-file") {
        files = v.parse().map_err(|_| {
            format!("invalid value for max-file: {v}: strconv.Atoi: parsing {v:?}: invalid syntax")
        })?;
    }
    let mut compress = true;
    if let Some(v) = o.get("compress") {
        compress = parse_bool(v).ok_or_else(|| {
            format!("error reading compress log option: strconv.ParseBool: parsing {v:?}: invalid syntax")
        })?;
    }
    if files < 0 {
        return Err("max file count cannot be less than 0".into());
    }
    if compress && files <= 1 {
        return Err("compression cannot be enabled when max file count is 1".into());
    }
    let files = u32::try_from(files.max(1)).unwrap_or(u32::MAX);
    Ok((size, files, compress))
}

impl LogDriver for Local {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse {
            cap: super::Capabilities { read_logs: true },
        }
    }

    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()> {
        // dockerd's local driver words it the other way round.
        match super::first_unknown(opts, OPTS) {
            Some(k) => Err(EngineError::invalid(format!(
                "unknown log opt '{k}' for log driver {NAME}"
            ))),
            None => Ok(()),
        }
    }

    fn shim_sink(&self, info: &Info) -> ShimSink {
        let (max_size, max_file, compress) =
            config(&info.config).unwrap_or((DEFAULT_MAX_SIZE, DEFAULT_MAX_FILE, true));
        ShimSink {
            path: log_file(&info.log_path).display().to_string(),
            max_size,
            max_file,
            compress,
            format: NAME.into(),
            fifo: String::new(),
            attrs: String::new(),
        }
    }

    fn log_path(&self, _: &Info) -> String {
        String::new()
    }

    fn start_logging(&self, info: &Info, _: &Path) -> Result<ShimSink> {
        config(&info.config).map_err(|e| {
            EngineError::invalid(format!("failed to initialize logging driver: {e}"))
        })?;
        Ok(self.shim_sink(info))
    }

    fn read_logs(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        Ok(logfile::read_logs(
            log_file(&info.log_path),
            Format::Local,
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
            log_file(&info.log_path),
            Format::Local,
            config,
            follow,
            framing,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kv: &[(&str, &str)]) -> Info {
        Info {
            log_path: "/c/abc/abc-json.log".into(),
            config: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_file_as_dockerd() {
        let s = Local.shim_sink(&info(&[]));
        assert_eq!(s.path, "/c/abc/local-logs/container.log");
        assert_eq!((s.max_size, s.max_file, s.compress), (20 << 20, 5, true));
        assert_eq!(s.format, "local");
        assert!(Local.log_path(&info(&[])).is_empty());
        let s = Local.shim_sink(&info(&[("max-size", "1k"), ("compress", "false")]));
        assert_eq!((s.max_size, s.max_file, s.compress), (1000, 5, false));
    }

    #[test]
    fn options_are_refused_with_dockerds_messages() {
        let e = |kv: &[(&str, &str)]| {
            Local
                .start_logging(&info(kv), Path::new("/x"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let p = "failed to initialize logging driver: ";
        assert_eq!(
            e(&[("max-file", "1")]),
            format!("{p}compression cannot be enabled when max file count is 1")
        );
        assert_eq!(e(&[("max-file", "1"), ("compress", "false")]), "");
        assert_eq!(
            e(&[("max-file", "-1"), ("compress", "false")]),
            format!("{p}max file count cannot be less than 0")
        );
        assert_eq!(
            e(&[("max-file", "x")]),
            format!(
                "{p}invalid value for max-file: x: strconv.Atoi: parsing \"x\": invalid syntax"
            )
        );
        assert_eq!(
            e(&[("compress", "maybe")]),
            format!("{p}error reading compress log option: strconv.ParseBool: parsing \"maybe\": invalid syntax")
        );
        assert_eq!(
            e(&[("max-size", "big")]),
            format!("{p}invalid value for max-size: big: invalid size: 'big'")
        );
        assert_eq!(
            Local
                .validate_options(&info(&[("tag", "x")]).config)
                .unwrap_err()
                .to_string(),
            "unknown log opt 'tag' for log driver local"
        );
    }
}
