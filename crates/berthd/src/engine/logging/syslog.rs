//! The `syslog` driver (dockerd's `daemon/logger/syslog`, which writes
//! through `srslog`): one message per line, priority `facility | 6` for
//! stdout and `facility | 3` for stderr, in the format `syslog-format`
//! names, to `syslog-address` (`unix://`, `unixgram://`, `udp://`,
//! `tcp://`, `tcp+tls://`; by default the local syslog socket:
//! `/dev/log`, `/var/run/syslog` or `/var/run/log`, datagram first). The
//! message ends with a newline, as srslog's does. Over TLS (rustls, the
//! handshake done when dialling, so that a refused certificate fails the
//! start as dockerd's dial does): `syslog-tls-ca-cert` (the system's roots
//! without it), `syslog-tls-cert` and `syslog-tls-key` (a client
//! certificate), `syslog-tls-skip-verify` (present: any server
//! certificate, as dockerd, whatever its value).

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use berth_api::tls::ClientTls;

use super::forward::{self, Backend, Sink};
use super::plugin::Entry;
use super::Info;
use crate::engine::{EngineError, Result};

pub const NAME: &str = "syslog";

const OPTIONS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "syslog-address",
    "syslog-facility",
    "syslog-tls-ca-cert",
    "syslog-tls-cert",
    "syslog-tls-key",
    "syslog-tls-skip-verify",
    "tag",
    "syslog-format",
];

const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Where the messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum Address {
    /// The local syslog socket.
    Local,
    Unix(String),
    Unixgram(String),
    Udp(String),
    Tcp(String),
    TcpTls(String),
}

/// dockerd's `parseAddress` (a missing port is 514).
pub fn parse_address(a: &str) -> Result<Address> {
    if a.is_empty() {
        return Ok(Address::Local);
    }
    let u = url::Url::parse(a).ok();
    let scheme = u.as_ref().map_or(String::new(), |u| u.scheme().to_string());
    let scheme = scheme.as_str();
    let stat = |p: &str| {
        std::fs::metadata(p)
            .map(drop)
            .map_err(|e| EngineError::invalid(format!("stat {p}: {}", go_errno(&e))))
    };
    let u = match (scheme, u) {
        ("unix" | "unixgram", Some(u)) => {
            let p = u.path().to_string();
            stat(&p)?;
            return Ok(if scheme == "unix" {
                Address::Unix(p)
            } else {
                Address::Unixgram(p)
            });
        }
        ("udp" | "tcp" | "tcp+tls", Some(u)) => u,
        _ => {
            return Err(EngineError::invalid(format!(
                "unsupported scheme: '{scheme}'"
            )))
        }
    };
    let host = match u.host() {
        Some(url::Host::Ipv6(h)) => format!("[{h}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    let hp = format!("{host}:{}", u.port().unwrap_or(514));
    Ok(match scheme {
        "udp" => Address::Udp(hp),
        "tcp" => Address::Tcp(hp),
        _ => Address::TcpTls(hp),
    })
}

/// Go's text of an `os.Stat` error.
fn go_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// dockerd's `parseFacility` (the facility code, `daemon` by default).
pub fn parse_facility(f: &str) -> Result<u8> {
    if f.is_empty() {
        return Ok(3);
    }
    if let Some((_, n)) = FACILITIES.iter().find(|(k, _)| *k == f) {
        return Ok(*n);
    }
    f.parse::<u8>()
        .ok()
        .filter(|n| *n <= 23)
        .ok_or_else(|| EngineError::invalid("invalid syslog facility"))
}

/// `syslog-format`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    /// srslog's `UnixFormatter` (the default).
    Unix,
    Rfc3164,
    Rfc5424,
    Rfc5424Micro,
}

pub fn parse_format(f: &str) -> Result<Format> {
    match f {
        "" => Ok(Format::Unix),
        "rfc3164" => Ok(Format::Rfc3164),
        "rfc5424" => Ok(Format::Rfc5424),
        "rfc5424micro" => Ok(Format::Rfc5424Micro),
        _ => Err(EngineError::invalid("invalid syslog format")),
    }
}

/// One message as srslog writes it (with its newline).
pub fn format_message(
    format: Format,
    priority: u8,
    now: chrono::DateTime<chrono::Local>,
    hostname: &str,
    tag: &str,
    pid: u32,
    content: &str,
) -> String {
    let stamp = || now.format("%b %e %H:%M:%S").to_string();
    let mut m = match format {
        Format::Unix => format!("<{priority}>{} {tag}[{pid}]: {content}", stamp()),
        Format::Rfc3164 => format!("<{priority}>{} {hostname} {tag}[{pid}]: {content}", stamp()),
        Format::Rfc5424 | Format::Rfc5424Micro => {
            let secs = if format == Format::Rfc5424 {
                chrono::SecondsFormat::Secs
            } else {
                chrono::SecondsFormat::Micros
            };
            let ts = now.to_rfc3339_opts(secs, true);
            format!("<{priority}>1 {ts} {hostname} {tag} {pid} {tag} - {content}")
        }
    };
    if !m.ends_with('\n') {
        m.push('\n');
    }
    m
}

pub struct Syslog;

impl Backend for Syslog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self, opts: &HashMap<String, String>) -> Result<()> {
        super::only(opts, OPTIONS, NAME)?;
        let get = |k: &str| opts.get(k).map(String::as_str).unwrap_or("");
        parse_address(get("syslog-address"))?;
        parse_facility(get("syslog-facility"))?;
        parse_format(get("syslog-format"))?;
        Ok(())
    }

    fn open(&self, info: &Info) -> Result<Box<dyn Sink>> {
        let get = |k: &str| info.config.get(k).map(String::as_str).unwrap_or("");
        let address = parse_address(get("syslog-address"))?;
        let tls = match address {
            Address::TcpTls(_) => Some(tls_config(&info.config)?),
            _ => None,
        };
        let mut s = SyslogSink {
            conn: Conn::dial(&address, tls.as_ref())
                .map_err(|e| EngineError::internal(e.to_string()))?,
            address,
            tls,
            facility: parse_facility(get("syslog-facility"))?,
            format: parse_format(get("syslog-format"))?,
            tag: forward::tag(info)?,
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
        };
        s.hostname.truncate(255);
        Ok(Box::new(s))
    }
}

/// dockerd's `parseTLSConfig`: the CA, the client's certificate and key,
/// and `syslog-tls-skip-verify` by its presence.
fn tls_config(o: &HashMap<String, String>) -> Result<Arc<rustls::ClientConfig>> {
    let path = |k: &str| o.get(k).filter(|v| !v.is_empty()).map(std::path::Path::new);
    let identity = match (path("syslog-tls-cert"), path("syslog-tls-key")) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let mut t = ClientTls::from_files(path("syslog-tls-ca-cert"), identity)
        .map_err(|e| EngineError::invalid(e.to_string()))?;
    t.skip_verify = o.contains_key("syslog-tls-skip-verify");
    t.config()
        .map(Arc::new)
        .map_err(|e| EngineError::invalid(e.to_string()))
}

enum Conn {
    Stream(Box<dyn Write + Send>),
    Unixgram(UnixDatagram),
    Udp(UdpSocket),
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl Conn {
    fn dial(a: &Address, tls: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Self> {
        match a {
            Address::Local => {
                let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
                for p in ["/dev/log", "/var/run/syslog", "/var/run/log"] {
                    if let Ok(c) = Self::dial(&Address::Unixgram(p.into()), None) {
                        return Ok(c);
                    }
                    match Self::dial(&Address::Unix(p.into()), None) {
                        Ok(c) => return Ok(c),
                        Err(e) => last = e,
                    }
                }
                Err(std::io::Error::new(
                    last.kind(),
                    format!("Unix syslog delivery error ({last})"),
                ))
            }
            Address::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Ok(Conn::Stream(Box::new(s)))
            }
            Address::Unixgram(p) => {
                let s = UnixDatagram::unbound()?;
                s.connect(p)?;
                Ok(Conn::Unixgram(s))
            }
            Address::Udp(hp) => {
                let target = resolve(hp)?;
                let bind = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(target)?;
                Ok(Conn::Udp(s))
            }
            Address::Tcp(hp) => {
                let s = TcpStream::connect_timeout(&resolve(hp)?, TIMEOUT)?;
                s.set_write_timeout(Some(TIMEOUT))?;
                Ok(Conn::Stream(Box::new(s)))
            }
            Address::TcpTls(hp) => {
                let cfg = tls.ok_or_else(|| std::io::Error::other("no TLS configuration"))?;
                let tls = forward::dial_tls(hp, cfg, Some(TIMEOUT))?;
                Ok(Conn::Stream(Box::new(tls)))
            }
        }
    }

    fn write(&mut self, m: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Stream(s) => s.write_all(m).and_then(|()| s.flush()),
            Conn::Unixgram(s) => s.send(m).map(drop),
            Conn::Udp(s) => s.send(m).map(drop),
        }
    }
}

fn resolve(hp: &str) -> std::io::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    hp.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("lookup {hp}")))
}

struct SyslogSink {
    conn: Conn,
    address: Address,
    tls: Option<Arc<rustls::ClientConfig>>,
    facility: u8,
    format: Format,
    tag: String,
    hostname: String,
    pid: u32,
}

impl Sink for SyslogSink {
    fn send(&mut self, e: &Entry) -> std::io::Result<()> {
        if e.line.is_empty() {
            return Ok(());
        }
        let severity = if e.source == "stderr" { 3 } else { 6 };
        let m = format_message(
            self.format,
            (self.facility << 3) | severity,
            chrono::Local::now(),
            &self.hostname,
            &self.tag,
            self.pid,
            &String::from_utf8_lossy(&e.line),
        );
        // As srslog: one new connection and one more try.
        if self.conn.write(m.as_bytes()).is_ok() {
            return Ok(());
        }
        self.conn = Conn::dial(&self.address, self.tls.as_ref())?;
        self.conn.write(m.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn options_as_dockerd() {
        let v = |kv: &[(&str, &str)]| {
            Syslog.validate(
                &kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert!(v(&[("syslog-address", "udp://127.0.0.1"), ("tag", "x")]).is_ok());
        assert!(v(&[
            ("syslog-facility", "local7"),
            ("syslog-format", "rfc5424micro")
        ])
        .is_ok());
        assert_eq!(
            v(&[("foo", "1")]).unwrap_err().to_string(),
            "unknown log opt 'foo' for syslog log driver"
        );
        assert_eq!(
            v(&[("syslog-address", "http://x")])
                .unwrap_err()
                .to_string(),
            "unsupported scheme: 'http'"
        );
        assert_eq!(
            v(&[("syslog-address", "unix:///nonexistent/sock")])
                .unwrap_err()
                .to_string(),
            "stat /nonexistent/sock: no such file or directory"
        );
        assert_eq!(
            v(&[("syslog-facility", "24")]).unwrap_err().to_string(),
            "invalid syslog facility"
        );
        assert_eq!(
            v(&[("syslog-format", "json")]).unwrap_err().to_string(),
            "invalid syslog format"
        );
        assert_eq!(
            parse_address("tcp://[::1]").unwrap(),
            Address::Tcp("[::1]:514".into())
        );
        assert_eq!(
            parse_address("udp://127.0.0.1:5514").unwrap(),
            Address::Udp("127.0.0.1:5514".into())
        );
        assert_eq!(
            parse_address("tcp+tls://logs.example").unwrap(),
            Address::TcpTls("logs.example:514".into())
        );
        // TLS files are read at start; a missing one fails it.
        let o = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert!(tls_config(&o(&[])).is_ok());
        assert!(tls_config(&o(&[("syslog-tls-skip-verify", "")])).is_ok());
        let e = tls_config(&o(&[("syslog-tls-ca-cert", "/nonexistent/ca.pem")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn formats_as_srslog() {
        let now = chrono::Local
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .unwrap();
        let stamp = now.format("%b %e %H:%M:%S").to_string();
        assert_eq!(
            format_message(Format::Unix, 30, now, "h", "t", 7, "hi"),
            format!("<30>{stamp} t[7]: hi\n")
        );
        assert_eq!(
            format_message(Format::Rfc3164, 27, now, "h", "t", 7, "hi"),
            format!("<27>{stamp} h t[7]: hi\n")
        );
        let r = format_message(Format::Rfc5424, 30, now, "h", "t", 7, "hi");
        let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(r, format!("<30>1 {ts} h t 7 t - hi\n"));
        let r = format_message(Format::Rfc5424Micro, 30, now, "h", "t", 7, "hi");
        assert!(r.contains(".123456"), "{r}");
    }
}
