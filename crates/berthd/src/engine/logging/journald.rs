//! The `journald` driver (dockerd's `daemon/logger/journald`): one native
//! journal datagram per line to `/run/systemd/journal/socket`, with
//! `MESSAGE`, `PRIORITY` (6 stdout, 3 stderr), `SYSLOG_TIMESTAMP`, the
//! container's `CONTAINER_ID` (short), `CONTAINER_ID_FULL`,
//! `CONTAINER_NAME`, `CONTAINER_TAG` and `SYSLOG_IDENTIFIER` (the tag),
//! `IMAGE_NAME`, the extra attributes (keys upper-cased, other than
//! `[A-Z0-9_]` made `_`) and, for a piece of a long line,
//! `CONTAINER_PARTIAL_*`. Without the journal's socket the start fails
//! with dockerd's "journald is not enabled on this host".
//!
//! Reading back from the journal (dockerd links `sd-journal`) is not
//! done: `docker logs` reads the local cache as for the other
//! forwarding drivers.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use super::forward::{self, Backend, Sink};
use super::plugin::Entry;
use super::Info;
use crate::engine::{EngineError, Result};

pub const NAME: &str = "journald";

const SOCKET: &str = "/run/systemd/journal/socket";

const OPTIONS: &[&str] = &["env", "env-regex", "labels", "labels-regex", "tag"];

/// Appends one field in the journal's native format: `KEY=value\n`, or,
/// for a value with a newline, `KEY\n`, its length as 8 little-endian
/// bytes, the value and `\n`.
pub fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// dockerd's key sanitizer for the extra attributes.
fn sanitize(k: &str) -> String {
    k.chars()
        .map(|c| match c.to_ascii_uppercase() {
            c @ ('A'..='Z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect::<String>()
        .trim_start_matches('_')
        .to_string()
}

/// The fields every line of a container carries.
pub fn container_fields(info: &Info) -> Result<Vec<(String, String)>> {
    let tag = forward::tag(info)?;
    let id = &info.container_id;
    let mut v = vec![
        ("CONTAINER_ID".into(), id[..id.len().min(12)].to_string()),
        ("CONTAINER_ID_FULL".into(), id.clone()),
        (
            "CONTAINER_NAME".into(),
            info.container_name.trim_start_matches('/').to_string(),
        ),
        ("CONTAINER_TAG".into(), tag.clone()),
        ("IMAGE_NAME".into(), info.container_image_name.clone()),
        ("SYSLOG_IDENTIFIER".into(), tag),
    ];
    v.extend(forward::extra_attributes(info, sanitize)?);
    Ok(v)
}

/// One entry's datagram.
pub fn datagram(fixed: &[(String, String)], e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.line.len() + 512);
    field(&mut out, "MESSAGE", &e.line);
    let priority = if e.source == "stderr" { b"3" } else { b"6" };
    field(&mut out, "PRIORITY", priority);
    let ts = chrono::DateTime::from_timestamp_nanos(e.time_nano)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    field(&mut out, "SYSLOG_TIMESTAMP", ts.as_bytes());
    for (k, v) in fixed {
        field(&mut out, k, v.as_bytes());
    }
    if let Some(p) = e.partial_log_metadata.as_ref().filter(|_| e.partial) {
        field(&mut out, "CONTAINER_PARTIAL_MESSAGE", b"true");
        field(&mut out, "CONTAINER_PARTIAL_ID", p.id.as_bytes());
        field(
            &mut out,
            "CONTAINER_PARTIAL_ORDINAL",
            p.ordinal.to_string().as_bytes(),
        );
        field(
            &mut out,
            "CONTAINER_PARTIAL_LAST",
            p.last.to_string().as_bytes(),
        );
    }
    out
}

pub struct Journald;

impl Backend for Journald {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self, opts: &HashMap<String, String>) -> Result<()> {
        super::only(opts, OPTIONS, NAME)
    }

    fn open(&self, info: &Info) -> Result<Box<dyn Sink>> {
        if !Path::new(SOCKET).exists() {
            return Err(EngineError::internal(
                "journald is not enabled on this host",
            ));
        }
        let sock = UnixDatagram::unbound()?;
        sock.connect(SOCKET)?;
        Ok(Box::new(JournalSink {
            sock,
            fixed: container_fields(info)?,
        }))
    }
}

struct JournalSink {
    sock: UnixDatagram,
    fixed: Vec<(String, String)>,
}

impl Sink for JournalSink {
    fn send(&mut self, e: &Entry) -> std::io::Result<()> {
        self.sock.send(&datagram(&self.fixed, e)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_in_the_native_format() {
        let info = Info {
            container_id: "0123456789abcdef".into(),
            container_name: "/web".into(),
            container_image_name: "alpine".into(),
            container_labels: HashMap::from([("com.x-y".to_string(), "v".to_string())]),
            config: HashMap::from([("labels".to_string(), "com.x-y".to_string())]),
            ..Default::default()
        };
        let fixed = container_fields(&info).unwrap();
        let e = Entry {
            source: "stderr".into(),
            time_nano: 1_700_000_000_000_000_000,
            line: b"hello".to_vec(),
            ..Default::default()
        };
        let d = String::from_utf8(datagram(&fixed, &e)).unwrap();
        assert_eq!(
            d,
            "MESSAGE=hello\nPRIORITY=3\nSYSLOG_TIMESTAMP=2023-11-14T22:13:20Z\n\
             CONTAINER_ID=0123456789ab\nCONTAINER_ID_FULL=0123456789abcdef\n\
             CONTAINER_NAME=web\nCONTAINER_TAG=0123456789ab\nIMAGE_NAME=alpine\n\
             SYSLOG_IDENTIFIER=0123456789ab\nCOM_X_Y=v\n"
        );
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", b"a\nb");
        assert_eq!(out, b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n");
        assert_eq!(
            Journald
                .validate(&HashMap::from([("x".to_string(), String::new())]))
                .unwrap_err()
                .to_string(),
            "unknown log opt 'x' for journald log driver"
        );
    }
}
