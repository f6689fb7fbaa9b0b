//! Connecting to the daemon the way the docker CLI does: `-H`/`DOCKER_HOST`,
//! TLS from `--tlsverify`/`DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bollard::Docker;

use crate::raw::{Raw, Tls};

pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
/// No client-side timeout: `wait`, `logs -f` and `events` may run for days.
const TIMEOUT_SECS: u64 = 60 * 60 * 24 * 365;

#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Daemon socket to connect to
    #[arg(
        short = 'H',
        long = "host",
        env = "DOCKER_HOST",
        global = true,
        value_name = "HOST"
    )]
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

    /// Our own HTTP client on the same daemon, at the negotiated version.
    pub fn raw(&self, d: &Docker) -> Raw {
        let v = d.client_version();
        Raw {
            host: self.host(),
            tls: self.tls_files(),
            prefix: format!("/v{}.{}", v.major_version, v.minor_version),
        }
    }

    async fn try_connect(&self, host: &str) -> anyhow::Result<Docker> {
        let version = bollard::API_DEFAULT_VERSION;
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
        Ok(docker.negotiate_version().await?)
    }
}
