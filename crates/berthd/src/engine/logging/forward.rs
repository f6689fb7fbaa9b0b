//! The daemon's forwarding drivers (`syslog`, `fluentd`, `journald`):
//! Docker's built-in drivers that send each line somewhere else.
//!
//! The bytes flow as for a logging plugin, with the daemon as the plugin:
//! at each start a FIFO `<exec-root>/logging/<container id>-<random>` is
//! made and given to the shim, which writes framed `LogEntry` messages
//! into it (`berth-shim/src/pluginlog.rs`, opened read-write, so the shim
//! never waits for the daemon). A thread of the daemon, which opened the
//! FIFO read-write before the shim starts (so nothing the shim writes is
//! lost however short the container's life), reads it and hands every
//! entry to the driver's [`Sink`] (a socket to the syslog server, the
//! fluentd forward connection, the journal's datagrams). The shim closes
//! the FIFO at exit once drained; `stop_logging` then writes an empty
//! frame, which ends the thread after the rest, and removes the FIFO. After a daemon restart, the restore
//! of a running container opens a new sink on its FIFO
//! (`resume_logging`); what the shim wrote meanwhile waits in the pipe
//! (64 KiB) and in the shim's queue (1 MiB, 5 s), after which the shim
//! drops lines until the daemon reads again.
//!
//! `docker logs` reads the local cache, Docker 20.10's "dual logging" (but
//! for `journald`, which reads the journal back, `journald.rs`): the
//! shim also writes the json-file (`cache-disabled`, `cache-max-size`
//! 20m, `cache-max-file` 5), as for a plugin that cannot read.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::plugin::{self, read_frame, Entry};
use super::{
    cannot_read, jsonfile, CapabilitiesResponse, Follow, Info, LogDriver, LogEntry, ReadConfig,
    ShimSink,
};
use crate::engine::{EngineError, Result};

/// Where an entry goes: one connection (or socket) of one container.
pub trait Sink: Send {
    /// Sends one entry (a line without its newline, or a 16 KiB piece of
    /// a longer one).
    fn send(&mut self, e: &Entry) -> std::io::Result<()>;
}

/// What a forwarding driver adds to the [`Forwarder`].
pub trait Backend: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The driver's own options (dockerd's `ValidateLogOpt`), without the
    /// ones every driver takes (`mode`, `max-buffer-size`, the cache's).
    fn validate(&self, opts: &HashMap<String, String>) -> Result<()>;
    /// The sink of a container, at its start (dockerd's `New`: a driver
    /// that cannot reach its server fails the start).
    fn open(&self, info: &Info) -> Result<Box<dyn Sink>>;
}

/// A forwarding driver as a [`LogDriver`].
pub struct Forwarder {
    backend: Arc<dyn Backend>,
}

impl Forwarder {
    pub fn new(backend: impl Backend) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }
}

/// The options dockerd takes for any driver (`builtInLogOpts`), checked
/// apart from the driver's.
const COMMON: &[&str] = &[
    "mode",
    "max-buffer-size",
    "cache-disabled",
    "cache-max-size",
    "cache-max-file",
    "cache-compress",
];

/// dockerd's checks of the options every driver takes.
pub fn check_common(opts: &HashMap<String, String>) -> Result<()> {
    let mode = opts.get("mode").map(String::as_str).unwrap_or("");
    if !matches!(mode, "" | "blocking" | "non-blocking") {
        return Err(EngineError::invalid(format!(
            "logger: logging mode not supported: {mode}"
        )));
    }
    if let Some(s) = opts.get("max-buffer-size") {
        if mode != "non-blocking" {
            return Err(EngineError::invalid(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
            ));
        }
        jsonfile::parse_size(s).ok_or_else(|| {
            EngineError::invalid(format!("error parsing option max-buffer-size: {s}"))
        })?;
    }
    plugin::cache_options(opts)
}

/// The options left for the driver's own check.
pub fn own_options(opts: &HashMap<String, String>) -> HashMap<String, String> {
    opts.iter()
        .filter(|(k, _)| !COMMON.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A TLS stream to `host:port` (rustls over a blocking TCP stream with
/// `timeout` for connecting, reads and writes), its handshake done, so
/// that a refused certificate fails the dial as Go's `tls.Dial` does.
pub fn dial_tls(
    hp: &str,
    cfg: &Arc<rustls::ClientConfig>,
    timeout: Option<std::time::Duration>,
) -> std::io::Result<TlsStream> {
    use std::net::ToSocketAddrs;
    let addr = hp
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("lookup {hp}")))?;
    let s = match timeout {
        Some(t) => std::net::TcpStream::connect_timeout(&addr, t)?,
        None => std::net::TcpStream::connect(addr)?,
    };
    s.set_write_timeout(timeout)?;
    s.set_read_timeout(timeout)?;
    let name = rustls::pki_types::ServerName::try_from(berth_api::tls::server_host(hp).to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, s);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(TlsStream(tls))
}

/// How long closing a TLS stream waits for the server's end.
const TLS_CLOSE: std::time::Duration = std::time::Duration::from_millis(500);

/// A client TLS stream that closes cleanly: `close_notify`, then what
/// the server sent (session tickets nobody reads) is drained until its
/// end, for a socket closed with unread data resets the connection, and
/// a reset makes the server drop the last lines it had not read yet.
pub struct TlsStream(rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>);

impl std::io::Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl TlsStream {
    pub fn set_read_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
        self.0.sock.set_read_timeout(t)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        use std::io::Read;
        let s = &mut self.0;
        s.conn.send_close_notify();
        let _ = s.sock.set_write_timeout(Some(TLS_CLOSE));
        while s.conn.wants_write() {
            if !matches!(s.conn.write_tls(&mut s.sock), Ok(n) if n > 0) {
                break;
            }
        }
        let _ = s.sock.shutdown(std::net::Shutdown::Write);
        let _ = s.sock.set_read_timeout(Some(TLS_CLOSE));
        let deadline = std::time::Instant::now() + TLS_CLOSE;
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            if !matches!(s.sock.read(&mut buf), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

/// `stringid.TruncateID`: the first 12 hex digits, without `sha256:`.
fn short(id: &str) -> &str {
    let id = id.rsplit(':').next().unwrap_or(id);
    &id[..id.len().min(12)]
}

/// The `tag` option as Docker renders it (`loggerutils.ParseLogTag`, a Go
/// template over the container's `Info`; `{{.ID}}` when unset). The
/// fields are Docker's: `ID`, `FullID`, `Name`, `ImageID`, `ImageFullID`,
/// `ImageName`, `DaemonName`; other template syntax is refused.
pub fn tag(info: &Info) -> Result<String> {
    tag_or(info, "{{.ID}}")
}

/// [`tag`] with another template when the option is unset or empty
/// (json-file's is empty: no tag unless asked for).
pub fn tag_or(info: &Info, default: &str) -> Result<String> {
    let template = info
        .config
        .get("tag")
        .filter(|t| !t.is_empty())
        .map_or(default, String::as_str);
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            EngineError::invalid(format!(
                "template: log-tag:1: unclosed action in {template:?}"
            ))
        })?;
        let field = after[..close].trim();
        out.push_str(&match field {
            ".ID" => short(&info.container_id).to_string(),
            ".FullID" => info.container_id.clone(),
            ".Name" => info.container_name.trim_start_matches('/').to_string(),
            ".ImageID" => short(&info.container_image_id).to_string(),
            ".ImageFullID" => info.container_image_id.clone(),
            ".ImageName" => info.container_image_name.clone(),
            ".DaemonName" => info.daemon_name.clone(),
            f => {
                return Err(EngineError::invalid(format!(
                    "template: log-tag: unsupported action {{{{{f}}}}} (berth renders Docker's fields only)"
                )))
            }
        });
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Docker's `Info.ExtraAttributes`: the labels and environment variables
/// the `labels`, `labels-regex`, `env` and `env-regex` options name, keys
/// through `key_mod`.
pub fn extra_attributes(
    info: &Info,
    key_mod: impl Fn(&str) -> String,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut extra = std::collections::BTreeMap::new();
    let opt = |k: &str| info.config.get(k).filter(|v| !v.is_empty());
    let regex = |r: &str| {
        regex::Regex::new(r).map_err(|e| EngineError::invalid(format!("error parsing regexp: {e}")))
    };
    let env: HashMap<&str, &str> = info
        .container_env
        .iter()
        .filter_map(|e| e.split_once('='))
        .collect();
    let labels: HashMap<&str, &str> = info
        .container_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (names, pattern, map) in [
        ("labels", "labels-regex", &labels),
        ("env", "env-regex", &env),
    ] {
        if let Some(list) = opt(names) {
            for n in list.split(',') {
                if let Some(v) = map.get(n) {
                    extra.insert(key_mod(n), v.to_string());
                }
            }
        }
        if let Some(r) = opt(pattern) {
            let re = regex(r)?;
            for (k, v) in map.iter().filter(|(k, _)| re.is_match(k)) {
                extra.insert(key_mod(k), v.to_string());
            }
        }
    }
    Ok(extra)
}

/// The end of a FIFO's entries: a frame of length 0, which the shim never
/// writes (its entries always name their stream).
const END: [u8; 4] = [0; 4];

/// Opens a FIFO as its reader, read-write: the daemon's end keeps what
/// the shim wrote even if the shim has come and gone before the thread
/// reads, and never sees an end of file; [`END`] ends it.
fn open_fifo(fifo: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
}

/// Reads the FIFO until [`END`], sending every entry.
fn pump(driver: &'static str, id: String, file: std::fs::File, mut sink: Box<dyn Sink>) {
    let mut r = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    let mut failing = false;
    loop {
        if cancelled() {
            return;
        }
        match read_frame(&mut r, &mut buf) {
            Ok(Some(e)) if e.source.is_empty() => return,
            Ok(Some(e)) => match sink.send(&e) {
                Ok(()) => failing = false,
                Err(err) => {
                    // Logged once per run of failures; the line is lost
                    // (the cache keeps it), and the container goes on.
                    if !failing {
                        tracing::warn!(driver, id = %id, error = %err, "log line not sent");
                    }
                    failing = true;
                }
            },
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(driver, id = %id, error = %e, "reading the log FIFO");
                return;
            }
        }
    }
}

/// The forwarding threads of each container, by container ID: each
/// one's flag, set once the container is removed.
type Cancels = HashMap<String, Vec<Arc<AtomicBool>>>;
static CANCELS: Mutex<Option<Cancels>> = Mutex::new(None);

thread_local! {
    /// The flag of the forwarding thread this is (unset elsewhere).
    static CANCELLED: std::cell::RefCell<Option<Arc<AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether the container this forwarding thread sends for is removed:
/// a sink's retries give up (dockerd's retries could outlive the
/// container by days with fluentd's defaults).
pub fn cancelled() -> bool {
    CANCELLED.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

/// Sleeps `d`, in short slices; false (early) once [`cancelled`].
pub fn sleep_unless_cancelled(d: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + d;
    loop {
        if cancelled() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(std::time::Duration::from_millis(100)));
    }
}

/// The container is removed: its forwarding threads stop sending (what
/// they still hold is lost; the cache had it) and end.
pub fn cancel(container_id: &str) {
    let flags = CANCELS
        .lock()
        .ok()
        .and_then(|mut m| m.as_mut()?.remove(container_id));
    for f in flags.unwrap_or_default() {
        f.store(true, Ordering::Relaxed);
    }
}

fn spawn_pump(driver: &'static str, info: &Info, fifo: &Path, sink: Box<dyn Sink>) -> Result<()> {
    let file = open_fifo(fifo)?;
    let id = info.container_id.clone();
    let flag = Arc::new(AtomicBool::new(false));
    if let Ok(mut m) = CANCELS.lock() {
        m.get_or_insert_with(HashMap::new)
            .entry(id.clone())
            .or_default()
            .push(flag.clone());
    }
    let unregister = {
        let (id, flag) = (id.clone(), flag.clone());
        move || {
            if let Ok(mut m) = CANCELS.lock() {
                if let Some(v) = m.as_mut().and_then(|m| m.get_mut(&id)) {
                    v.retain(|f| !Arc::ptr_eq(f, &flag));
                    if v.is_empty() {
                        m.as_mut().map(|m| m.remove(&id));
                    }
                }
            }
        }
    };
    let spawned = std::thread::Builder::new()
        .name(format!("berthd-{driver}"))
        .spawn({
            let unregister = unregister.clone();
            move || {
                CANCELLED.with(|c| *c.borrow_mut() = Some(flag));
                pump(driver, id, file, sink);
                unregister();
            }
        });
    spawned.map(drop).map_err(|e| {
        unregister();
        EngineError::internal(format!("starting the {driver} logger: {e}"))
    })
}

impl LogDriver for Forwarder {
    fn name(&self) -> &str {
        self.backend.name()
    }

    fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse::default()
    }

    fn validate_options(&self, opts: &HashMap<String, String>) -> Result<()> {
        check_common(opts)?;
        self.backend.validate(&own_options(opts))
    }

    fn shim_sink(&self, info: &Info) -> ShimSink {
        plugin::cache_sink(info)
    }

    fn log_path(&self, _: &Info) -> String {
        // As dockerd: the cache is not the driver's log.
        String::new()
    }

    fn start_logging(&self, info: &Info, fifo_dir: &Path) -> Result<ShimSink> {
        let sink = self.backend.open(info).map_err(|e| {
            EngineError::internal(format!("failed to initialize logging driver: {e}"))
        })?;
        std::fs::create_dir_all(fifo_dir)?;
        let fifo = fifo_dir.join(format!(
            "{}-{}",
            info.container_id,
            crate::engine::ids::random_hex(8)
        ));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| EngineError::internal(format!("making the log FIFO: {e}")))?;
        if let Err(e) = spawn_pump(self.backend.name(), info, &fifo, sink) {
            let _ = std::fs::remove_file(&fifo);
            return Err(e);
        }
        let mut s = plugin::cache_sink(info);
        s.fifo = fifo.display().to_string();
        Ok(s)
    }

    fn resume_logging(&self, info: &Info, fifo: &Path) {
        match self.backend.open(info) {
            Ok(sink) => {
                if let Err(e) = spawn_pump(self.backend.name(), info, fifo, sink) {
                    tracing::warn!(id = %info.container_id, error = %e, "resuming the logger");
                }
            }
            Err(e) => {
                tracing::warn!(id = %info.container_id, error = %e, "resuming the logger")
            }
        }
    }

    fn stop_logging(&self, fifo: &Path) {
        // The shim has closed its end (or never opened it): the reader
        // sends what is left before it, then ends. No reader (the daemon
        // restarted after the exit): the open fails, nothing to end.
        if let Ok(mut w) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(fifo)
        {
            if let Err(e) = w.write_all(&END) {
                tracing::warn!(fifo = %fifo.display(), error = %e, "ending the logger");
            }
        }
        let _ = std::fs::remove_file(fifo);
    }

    fn read_logs(
        &self,
        info: &Info,
        config: ReadConfig,
        follow: Follow,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        if Path::new(&info.log_path).exists() {
            jsonfile::JsonFile.read_logs(info, config, follow)
        } else {
            Err(cannot_read())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(tag: Option<&str>) -> Info {
        Info {
            container_id: "0123456789abcdef0123".into(),
            container_name: "/web".into(),
            container_image_id: "sha256:fedcba9876543210aa".into(),
            container_image_name: "alpine:3".into(),
            daemon_name: "docker".into(),
            config: tag
                .map(|t| HashMap::from([("tag".to_string(), t.to_string())]))
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn tags_render_dockers_fields() {
        assert_eq!(tag(&info(None)).unwrap(), "0123456789ab");
        assert_eq!(
            tag(&info(Some(
                "{{.Name}}/{{ .ImageName }}/{{.ImageID}}/{{.FullID}}"
            )))
            .unwrap(),
            "web/alpine:3/fedcba987654/0123456789abcdef0123"
        );
        assert_eq!(tag(&info(Some("plain"))).unwrap(), "plain");
        assert!(tag(&info(Some("{{.Nope}}"))).is_err());
        assert!(tag(&info(Some("{{.ID"))).is_err());
    }

    #[test]
    fn common_options_as_dockerd() {
        let o = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_common(&o(&[("mode", "non-blocking"), ("max-buffer-size", "4m")])).is_ok());
        assert_eq!(
            check_common(&o(&[("mode", "fast")]))
                .unwrap_err()
                .to_string(),
            "logger: logging mode not supported: fast"
        );
        assert_eq!(
            check_common(&o(&[("max-buffer-size", "4m")]))
                .unwrap_err()
                .to_string(),
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
        );
        assert!(own_options(&o(&[("mode", "blocking"), ("tag", "x")])).len() == 1);
        assert_eq!(
            super::super::only(&o(&[("tag", "x"), ("bogus", "1")]), &["tag"], "syslog")
                .unwrap_err()
                .to_string(),
            "unknown log opt 'bogus' for syslog log driver"
        );
    }
}
