//! Connecting to the daemon the way the docker CLI does: `-H`/`DOCKER_HOST`
//! or a context (`ctxstore` resolves them into `host` before a command runs),
//! TLS from `--tlsverify`/`DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.

use std::path::PathBuf;

use std::sync::OnceLock;

use anyhow::{bail, Context};
use berth_api::ApiVersion;
use bollard::{ClientVersion, Docker};

use crate::raw::{Raw, Tls};

/// The daemon's API version, once a connection has pinged it.
static SERVER_API: OnceLock<ApiVersion> = OnceLock::new();

pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
/// No client-side timeout: `wait`, `logs -f` and `events` may run for days.
const TIMEOUT_SECS: u64 = 60 * 60 * 24 * 365;

#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Name of the context to use to connect to the daemon (overrides
    /// DOCKER_HOST env var and default context set with "berth context use")
    /// (before the command only, as in docker: `run -c` is `--cpu-shares`)
    #[arg(short = 'c', long = "context", value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", global = true, value_name = "HOST")]
    pub host: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long, global = true)]
    pub tls: bool,
    /// Use TLS and verify the remote
    #[arg(long, global = true, env = "DOCKER_TLS_VERIFY", value_parser = parse_flag_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certs signed only by this CA
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file
    #[arg(long, global = true, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
}

fn parse_flag_bool(s: &str) -> Result<bool, String> {
    Ok(!matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no"
    ))
}

impl Conn {
    pub async fn connect(&self) -> anyhow::Result<Docker> {
        let host = self.host();
        self.try_connect(&host).await.map_err(|e| {
            anyhow::anyhow!(
                "Cannot connect to the berth daemon at {host}. Is the daemon running? ({e:#})"
            )
        })
    }

    fn host(&self) -> String {
        self.host
            .clone()
            .unwrap_or_else(|| DEFAULT_HOST.to_string())
    }

    /// The TLS files to use, when TLS is on (`--tls`, `--tlsverify`).
    fn tls_files(&self) -> Option<Tls> {
        if !(self.tls || self.tlsverify.unwrap_or(false)) {
            return None;
        }
        let dir = std::env::var("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                std::env::var("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".docker")
            });
        Some(Tls {
            ca: self.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem")),
            cert: self.tlscert.clone().unwrap_or_else(|| dir.join("cert.pem")),
            key: self.tlskey.clone().unwrap_or_else(|| dir.join("key.pem")),
        })
    }

    /// Our own HTTP client on the same daemon, at the version the docker
    /// CLI would use: the daemon's, up to the API berth speaks (bollard's
    /// typed calls stop at the version its models know).
    pub fn raw(&self, d: &Docker) -> Raw {
        let prefix = match SERVER_API.get() {
            Some(v) => format!("/v{}", (*v).min(berth_api::API_VERSION)),
            None => {
                let v = d.client_version();
                format!("/v{}.{}", v.major_version, v.minor_version)
            }
        };
        Raw {
            host: self.host(),
            tls: self.tls_files(),
            prefix,
        }
    }

    /// The daemon's API version from `/_ping`, as the docker CLI learns it.
    async fn ping_version(&self, host: &str) -> Option<ApiVersion> {
        let raw = Raw {
            host: host.to_string(),
            tls: self.tls_files(),
            prefix: String::new(),
        };
        let r = raw.send("GET", "/_ping", None, false).await.ok()?;
        r.header("api-version")?.parse().ok()
    }

    async fn try_connect(&self, host: &str) -> anyhow::Result<Docker> {
        // Negotiated on `/_ping` (one request, as bollard's own negotiation).
        let pinged = self.ping_version(host).await;
        if let Some(v) = pinged {
            let _ = SERVER_API.set(v);
        }
        let max = bollard::API_DEFAULT_VERSION;
        let ours = ApiVersion::new(max.major_version as u32, max.minor_version as u32);
        let agreed = pinged.map(|v| v.min(ours)).map(|v| ClientVersion {
            major_version: v.major as usize,
            minor_version: v.minor as usize,
        });
        let version = agreed.as_ref().unwrap_or(max);
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, TIMEOUT_SECS, version)?
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            if let Some(t) = self.tls_files() {
                Docker::connect_with_ssl(
                    &format!("https://{addr}"),
                    &t.key,
                    &t.cert,
                    &t.ca,
                    TIMEOUT_SECS,
                    version,
                )
                .context("setting up TLS")?
            } else {
                Docker::connect_with_http(&format!("http://{addr}"), TIMEOUT_SECS, version)?
            }
        } else {
            bail!("unsupported host {host:?}: use unix:///path or tcp://host:port");
        };
        if agreed.is_some() {
            return Ok(docker);
        }
        Ok(docker.negotiate_version().await?)
    }
}
