//! The `fluentd` driver (dockerd's `daemon/logger/fluentd`, which writes
//! through `fluent-logger-golang`): Fluentd's Forward protocol, one
//! message per line, msgpack `[tag, time, record, nil]` (the logger's
//! `Message` tuple; `time` in Unix seconds, or an `EventTime` (ext 0)
//! with `fluentd-sub-second-precision`), the record
//! `{container_id, container_name, source, log}` plus the extra
//! attributes (`labels`, `env`, …) and, for a piece of a long line,
//! `partial_message`, `partial_id`, `partial_ordinal`, `partial_last`.
//!
//! `fluentd-address`: `[tcp://]host[:port]` (127.0.0.1:24224) or
//! `unix:///path`. Without `fluentd-async` the start connects and fails
//! as dockerd's does when nothing listens; with it, the first line
//! connects. A failed write reconnects with `fluentd-retry-wait` (1s)
//! doubling up to 60 s, at most `fluentd-max-retries` times, and then the
//! line is dropped (the daemon's thread waits meanwhile, not the
//! container: the shim's queue holds it 5 s). `tls://host[:port]` is
//! TLS (rustls) trusting the system's roots, as fluent-logger-golang's
//! `tls` network (dockerd has no option for a CA or a client
//! certificate). With `fluentd-request-ack` (fluent-logger-golang's
//! `RequestAck`) each message carries the option `{"chunk": <id>}` and
//! the server's `{"ack": <id>}` is awaited before the next one (for
//! `fluentd-write-timeout`, else [`ACK_TIMEOUT`]); no answer, or another
//! one, is a failed write: the connection is closed and the message sent
//! again on a new one, under the same retries. The retries give up once
//! the container is removed (`forward::cancel`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rmpv::Value;

use super::forward::{self, Backend, Sink};
use super::plugin::Entry;
use super::Info;
use crate::engine::{EngineError, Result};

pub const NAME: &str = "fluentd";

const OPTIONS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "tag",
    "fluentd-address",
    "fluentd-async",
    "fluentd-async-connect",
    "fluentd-async-reconnect-interval",
    "fluentd-buffer-limit",
    "fluentd-max-retries",
    "fluentd-request-ack",
    "fluentd-retry-wait",
    "fluentd-sub-second-precision",
    "fluentd-write-timeout",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Address {
    Tcp(String),
    Tls(String),
    Unix(String),
}

/// dockerd's `parseAddress`.
pub fn parse_address(a: &str) -> std::result::Result<Address, String> {
    if a.is_empty() {
        return Ok(Address::Tcp("127.0.0.1:24224".into()));
    }
    let full = if a.contains("://") {
        a.to_string()
    } else {
        format!("tcp://{a}")
    };
    let u = url::Url::parse(&full).map_err(|e| e.to_string())?;
    match u.scheme() {
        "unix" => {
            if u.path().trim_start_matches('/').is_empty() {
                return Err("path is empty".into());
            }
            return Ok(Address::Unix(u.path().to_string()));
        }
        "tcp" | "tls" => {}
        s => return Err(format!("unsupported scheme: '{s}'")),
    }
    if !matches!(u.path(), "" | "/") {
        return Err("should not contain a path element".into());
    }
    let host = match u.host() {
        Some(url::Host::Ipv6(h)) => format!("[{h}]"),
        Some(h) => h.to_string(),
        None => "127.0.0.1".into(),
    };
    let hp = format!("{host}:{}", u.port().unwrap_or(24224));
    Ok(if u.scheme() == "tls" {
        Address::Tls(hp)
    } else {
        Address::Tcp(hp)
    })
}

/// The options, parsed (dockerd's `parseConfig`).
#[derive(Debug, Clone)]
struct Config {
    address: Address,
    is_async: bool,
    retry_wait: Duration,
    max_retries: u64,
    sub_second: bool,
    write_timeout: Option<Duration>,
    request_ack: bool,
}

/// How long an ack is awaited without `fluentd-write-timeout`.
/// fluent-logger-golang waits without end then; berth bounds the wait,
/// so that a server that never answers costs retries, not the thread.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn parse_bool(k: &str, v: &str) -> Result<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(EngineError::invalid(format!(
            "invalid {k}: strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

fn parse_duration(k: &str, v: &str) -> Result<Duration> {
    let n = berth_api::duration::parse(v).map_err(|e| EngineError::invalid(format!("{k}: {e}")))?;
    Ok(Duration::from_nanos(u64::try_from(n).unwrap_or(0)))
}

fn parse_config(o: &HashMap<String, String>) -> Result<Config> {
    let get = |k: &str| o.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let raw = get("fluentd-address").unwrap_or("");
    let address = parse_address(raw)
        .map_err(|e| EngineError::invalid(format!("invalid fluentd-address ({raw}): {e}")))?;
    let flag = |k: &str| get(k).map_or(Ok(false), |v| parse_bool(k, v));
    let is_async = flag("fluentd-async")? || flag("fluentd-async-connect")?;
    let request_ack = flag("fluentd-request-ack")?;
    let sub_second = flag("fluentd-sub-second-precision")?;
    if let Some(v) = get("fluentd-buffer-limit") {
        berth_api::units::ram_in_bytes(v)
            .map_err(|e| EngineError::invalid(format!("invalid fluentd-buffer-limit: {e}")))?;
    }
    let retry_wait = get("fluentd-retry-wait")
        .map(|v| parse_duration("fluentd-retry-wait", v))
        .transpose()?
        .unwrap_or(Duration::from_secs(1));
    let max_retries = get("fluentd-max-retries")
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                EngineError::invalid(format!("strconv.ParseUint: parsing {v:?}: invalid syntax"))
            })
        })
        .transpose()?
        .unwrap_or(u64::from(u32::MAX));
    if let Some(v) = get("fluentd-async-reconnect-interval") {
        let d = parse_duration("fluentd-async-reconnect-interval", v)?;
        if d < Duration::from_millis(100) || d > Duration::from_secs(10) {
            return Err(EngineError::invalid(format!(
                "invalid value for fluentd-async-reconnect-interval: {v}"
            )));
        }
    }
    let write_timeout = get("fluentd-write-timeout")
        .map(|v| parse_duration("fluentd-write-timeout", v))
        .transpose()?
        .filter(|d| !d.is_zero());
    Ok(Config {
        address,
        is_async,
        retry_wait,
        max_retries,
        sub_second,
        write_timeout,
        request_ack,
    })
}

/// One Forward-protocol message (Message Mode); with `chunk`, the option
/// asking the server for an ack of that ID.
pub fn encode(
    tag: &str,
    time_nano: i64,
    sub_second: bool,
    record: &[(&str, &str)],
    chunk: Option<&str>,
) -> std::io::Result<Vec<u8>> {
    let secs = time_nano.div_euclid(1_000_000_000);
    let time = if sub_second {
        let mut b = Vec::with_capacity(8);
        b.extend_from_slice(&(secs as u32).to_be_bytes());
        b.extend_from_slice(&(time_nano.rem_euclid(1_000_000_000) as u32).to_be_bytes());
        Value::Ext(0, b)
    } else {
        Value::from(secs)
    };
    let record = Value::Map(
        record
            .iter()
            .map(|(k, v)| (Value::from(*k), Value::from(*v)))
            .collect(),
    );
    let option = match chunk {
        Some(id) => Value::Map(vec![(Value::from("chunk"), Value::from(id))]),
        None => Value::Nil,
    };
    let msg = Value::Array(vec![Value::from(tag), time, record, option]);
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &msg).map_err(std::io::Error::other)?;
    Ok(out)
}

pub struct Fluentd;

impl Backend for Fluentd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self, opts: &HashMap<String, String>) -> Result<()> {
        super::only(opts, OPTIONS, NAME)?;
        parse_config(opts).map(drop)
    }

    fn open(&self, info: &Info) -> Result<Box<dyn Sink>> {
        let config = parse_config(&info.config)?;
        let conn = if config.is_async {
            None
        } else {
            Some(dial(&config).map_err(|e| EngineError::internal(e.to_string()))?)
        };
        Ok(Box::new(FluentdSink {
            conn,
            tag: forward::tag(info)?,
            id: info.container_id.clone(),
            name: info.container_name.clone(),
            extra: forward::extra_attributes(info, str::to_string)?,
            config,
        }))
    }
}

/// A connection to the server: messages one way, acks the other.
trait Conn: Read + Write + Send {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
}

impl Conn for UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, t)
    }
}

impl Conn for forward::TlsStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        forward::TlsStream::set_read_timeout(self, t)
    }
}

fn dial(c: &Config) -> std::io::Result<Box<dyn Conn>> {
    let conn = dial_only(c)?;
    if c.request_ack {
        conn.set_read_timeout(Some(c.write_timeout.unwrap_or(ACK_TIMEOUT)))?;
    }
    Ok(conn)
}

fn dial_only(c: &Config) -> std::io::Result<Box<dyn Conn>> {
    match &c.address {
        Address::Tcp(hp) => {
            let s = TcpStream::connect(hp.as_str())?;
            s.set_write_timeout(c.write_timeout)?;
            Ok(Box::new(s))
        }
        Address::Tls(hp) => {
            let cfg = berth_api::tls::ClientTls {
                system_roots: true,
                ..Default::default()
            }
            .config()
            .map_err(std::io::Error::other)?;
            let s = forward::dial_tls(hp, &std::sync::Arc::new(cfg), c.write_timeout)?;
            Ok(Box::new(s))
        }
        Address::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_write_timeout(c.write_timeout)?;
            Ok(Box::new(s))
        }
    }
}

struct FluentdSink {
    conn: Option<Box<dyn Conn>>,
    tag: String,
    id: String,
    name: String,
    extra: std::collections::BTreeMap<String, String>,
    config: Config,
}

/// Reads the server's answer to a message sent with `chunk`: its
/// `{"ack": chunk}`, or an error.
fn read_ack(mut c: &mut dyn Conn, chunk: &str) -> std::io::Result<()> {
    let v = rmpv::decode::read_value(&mut c)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let ack = v
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("ack")))
        .and_then(|(_, v)| v.as_str());
    if ack == Some(chunk) {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("fluentd: ack {ack:?} does not match the chunk {chunk:?}"),
        ))
    }
}

/// A chunk ID as fluent-logger-golang makes it: 16 random bytes, base64.
fn chunk_id() -> String {
    use base64::Engine;
    let bytes = hex::decode(crate::engine::ids::random_hex(16)).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl FluentdSink {
    /// Sends one message; with `chunk`, waits for its ack.
    fn write(&mut self, m: &[u8], chunk: Option<&str>) -> std::io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(dial(&self.config)?);
        }
        let r = match &mut self.conn {
            Some(c) => c
                .write_all(m)
                .and_then(|()| c.flush())
                .and_then(|()| match chunk {
                    Some(id) => read_ack(c.as_mut(), id),
                    None => Ok(()),
                }),
            None => Ok(()),
        };
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

impl Sink for FluentdSink {
    fn send(&mut self, e: &Entry) -> std::io::Result<()> {
        let line = String::from_utf8_lossy(&e.line);
        let mut record: Vec<(&str, &str)> = vec![
            ("container_id", self.id.as_str()),
            ("container_name", self.name.as_str()),
            ("source", e.source.as_str()),
            ("log", line.as_ref()),
        ];
        record.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (ordinal, last): (String, String);
        if let Some(p) = e.partial_log_metadata.as_ref().filter(|_| e.partial) {
            ordinal = p.ordinal.to_string();
            last = p.last.to_string();
            record.push(("partial_message", "true"));
            record.push(("partial_id", p.id.as_str()));
            record.push(("partial_ordinal", ordinal.as_str()));
            record.push(("partial_last", last.as_str()));
        }
        let chunk = self.config.request_ack.then(chunk_id);
        let m = encode(
            &self.tag,
            e.time_nano,
            self.config.sub_second,
            &record,
            chunk.as_deref(),
        )?;
        let mut err = match self.write(&m, chunk.as_deref()) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let mut wait = self.config.retry_wait;
        for _ in 0..self.config.max_retries {
            if !forward::sleep_unless_cancelled(wait) {
                break;
            }
            wait = (wait * 2).min(Duration::from_secs(60));
            match self.write(&m, chunk.as_deref()) {
                Ok(()) => return Ok(()),
                Err(e) => err = e,
            }
        }
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(kv: &[(&str, &str)]) -> Result<()> {
        Fluentd.validate(
            &kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn options_as_dockerd() {
        assert!(v(&[("fluentd-address", "localhost:24225"), ("tag", "a.b")]).is_ok());
        assert!(v(&[
            ("fluentd-address", "unix:///run/f.sock"),
            ("fluentd-async", "true")
        ])
        .is_ok());
        assert_eq!(
            v(&[("fluentd-tag", "x")]).unwrap_err().to_string(),
            "unknown log opt 'fluentd-tag' for fluentd log driver"
        );
        assert_eq!(
            v(&[("fluentd-address", "udp://h:1")])
                .unwrap_err()
                .to_string(),
            "invalid fluentd-address (udp://h:1): unsupported scheme: 'udp'"
        );
        assert_eq!(
            v(&[("fluentd-address", "tcp://h:1/p")])
                .unwrap_err()
                .to_string(),
            "invalid fluentd-address (tcp://h:1/p): should not contain a path element"
        );
        assert!(v(&[("fluentd-max-retries", "x")]).is_err());
        assert!(v(&[("fluentd-retry-wait", "soon")]).is_err());
        assert!(v(&[("fluentd-async", "maybe")]).is_err());
        assert_eq!(
            parse_address("").unwrap(),
            Address::Tcp("127.0.0.1:24224".into())
        );
        assert_eq!(
            parse_address("fluent").unwrap(),
            Address::Tcp("fluent:24224".into())
        );
        assert_eq!(
            parse_address("tls://fluent").unwrap(),
            Address::Tls("fluent:24224".into())
        );
    }

    #[test]
    fn messages_are_forward_protocol() {
        let m = encode(
            "t",
            1_700_000_000_500_000_000,
            false,
            &[("log", "hi")],
            None,
        )
        .unwrap();
        let v = rmpv::decode::read_value(&mut &m[..]).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a[0].as_str(), Some("t"));
        assert_eq!(a[1].as_i64(), Some(1_700_000_000));
        assert_eq!(a[2].as_map().unwrap()[0].1.as_str(), Some("hi"));
        assert!(a[3].is_nil());
        let m = encode("t", 1_700_000_000_500_000_000, true, &[], Some("c1")).unwrap();
        let v = rmpv::decode::read_value(&mut &m[..]).unwrap();
        let (ty, b) = v.as_array().unwrap()[1].as_ext().unwrap();
        assert_eq!(ty, 0);
        assert_eq!(
            b,
            [1_700_000_000u32.to_be_bytes(), 500_000_000u32.to_be_bytes()].concat()
        );
        let opt = v.as_array().unwrap()[3].as_map().unwrap().clone();
        assert_eq!(opt, [(Value::from("chunk"), Value::from("c1"))]);
    }
}
