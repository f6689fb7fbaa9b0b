//! Which URLs serve a registry, as Docker decides it:
//!
//! - `docker.io` (and `index.docker.io`) is served by
//!   `https://registry-1.docker.io`, after the configured mirrors (pulls
//!   only);
//! - a registry is *insecure* when it is listed in `insecure-registries`
//!   (as `host[:port]` or a CIDR holding its address), or when its address
//!   is on loopback (`127.0.0.0/8`, `::1`, Docker's defaults). Insecure
//!   registries are tried over https without verifying the certificate,
//!   then over plain http;
//! - everything else is https, verified.

use std::net::IpAddr;

use crate::engine::{EngineError, Result};

pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
pub const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";
/// What `docker login` sends for Docker Hub.
pub const DOCKER_HUB_INDEX: &str = "https://index.docker.io/v1/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or `http`.
    pub scheme: &'static str,
    /// `host[:port]`, as in URLs.
    pub host: String,
    /// TLS without certificate verification (insecure registries).
    pub skip_verify: bool,
    /// 0 for mirrors (tried first), 1 for the registry itself.
    pub mirror_rank: u8,
    pub mirror: bool,
}

impl Endpoint {
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.host, path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('/')?;
        let net: IpAddr = a.parse().ok()?;
        let bits: u8 = b.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Self { net, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Resolver {
    insecure_hosts: Vec<String>,
    insecure_cidrs: Vec<Cidr>,
    /// Mirrors as (scheme, host).
    mirrors: Vec<(&'static str, String)>,
}

/// `https://mirror.example:5000/` → (https, mirror.example:5000).
fn parse_mirror(m: &str) -> Result<(&'static str, String)> {
    let u = url::Url::parse(m)
        .map_err(|e| EngineError::invalid(format!("invalid mirror {m:?}: {e}")))?;
    let scheme = match u.scheme() {
        "https" => "https",
        "http" => "http",
        s => {
            return Err(EngineError::invalid(format!(
                "invalid mirror: unsupported scheme {s:?} in {m:?}"
            )))
        }
    };
    if !matches!(u.path(), "" | "/") {
        return Err(EngineError::invalid(format!(
            "invalid mirror: path-based mirrors are not supported: {m}"
        )));
    }
    let host = u
        .host_str()
        .ok_or_else(|| EngineError::invalid(format!("invalid mirror {m:?}: no host")))?;
    let host = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    Ok((scheme, host))
}

/// `host:port` → `host`; `[::1]:5000` → `::1`.
pub fn host_only(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The host that serves a repository domain (`docker.io` → Docker Hub's
/// registry endpoint).
pub fn registry_host(domain: &str) -> String {
    match domain {
        DOCKER_HUB_DOMAIN | "index.docker.io" | "registry-1.docker.io" => {
            DOCKER_HUB_ENDPOINT.to_string()
        }
        d => d.to_string(),
    }
}

/// What `docker login` names a registry by (`serveraddress`): a bare
/// `host[:port]`, a URL, or Docker Hub's index URL. Returns the repository
/// domain (`docker.io` for Docker Hub).
pub fn normalize_server_address(addr: &str) -> String {
    let a = addr.trim();
    let a = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    let host = a.split('/').next().unwrap_or(a);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | DOCKER_HUB_DOMAIN => {
            DOCKER_HUB_DOMAIN.to_string()
        }
        h => h.to_string(),
    }
}

impl Resolver {
    pub fn new(insecure: &[String], mirrors: &[String], loopback_insecure: bool) -> Result<Self> {
        let mut hosts = Vec::new();
        let mut cidrs = Vec::new();
        if loopback_insecure {
            cidrs.extend(Cidr::parse("127.0.0.0/8"));
            cidrs.extend(Cidr::parse("::1/128"));
        }
        for i in insecure {
            // Docker accepts `http://host` here too and strips the scheme.
            let i = i
                .trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if i.contains('/') {
                cidrs.push(Cidr::parse(i).ok_or_else(|| {
                    EngineError::invalid(format!("insecure registry {i} is not a valid CIDR"))
                })?);
            } else if !i.is_empty() {
                hosts.push(i.to_string());
            }
        }
        let mirrors = mirrors
            .iter()
            .map(|m| parse_mirror(m))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            insecure_hosts: hosts,
            insecure_cidrs: cidrs,
            mirrors,
        })
    }

    /// Whether a registry host (`host[:port]`) is insecure. Names are
    /// resolved, as Docker does, to check their addresses against the CIDRs.
    pub async fn is_insecure(&self, host: &str) -> bool {
        if self
            .insecure_hosts
            .iter()
            .any(|h| h == host || h == host_only(host))
        {
            return true;
        }
        if self.insecure_cidrs.is_empty() {
            return false;
        }
        let name = host_only(host);
        let ips: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((name, 0)).await {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                Err(_) => vec![],
            },
        };
        ips.iter()
            .any(|ip| self.insecure_cidrs.iter().any(|c| c.contains(*ip)))
    }

    fn with_trust(host: String, insecure: bool, mirror_rank: u8) -> Vec<Endpoint> {
        let mut v = vec![Endpoint {
            scheme: "https",
            host: host.clone(),
            skip_verify: insecure,
            mirror_rank,
            mirror: mirror_rank == 0,
        }];
        if insecure {
            v.push(Endpoint {
                scheme: "http",
                host,
                skip_verify: true,
                mirror_rank,
                mirror: mirror_rank == 0,
            });
        }
        v
    }

    /// The endpoints to try for a repository domain, in order. Mirrors
    /// serve pulls from Docker Hub only.
    pub async fn endpoints(&self, domain: &str, pull: bool) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let host = registry_host(domain);
        if host == DOCKER_HUB_ENDPOINT && pull {
            for (scheme, m) in &self.mirrors {
                let insecure = self.is_insecure(m).await;
                if *scheme == "http" {
                    out.push(Endpoint {
                        scheme: "http",
                        host: m.clone(),
                        skip_verify: true,
                        mirror_rank: 0,
                        mirror: true,
                    });
                } else {
                    out.extend(Self::with_trust(m.clone(), insecure, 0));
                }
            }
        }
        let insecure = host != DOCKER_HUB_ENDPOINT && self.is_insecure(&host).await;
        out.extend(Self::with_trust(host, insecure, 1));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn docker_hub_defaults_and_mirrors() {
        // No loopback CIDRs: nothing here may resolve a name.
        let r = Resolver::new(&[], &["https://mirror.example:5000/".into()], false).unwrap();
        let eps = rt().block_on(r.endpoints("docker.io", true));
        assert_eq!(eps.len(), 2, "{eps:?}");
        assert_eq!(eps[0].base(), "https://mirror.example:5000");
        assert!(eps[0].mirror && !eps[0].skip_verify);
        assert_eq!(eps[1].base(), "https://registry-1.docker.io");
        assert!(!eps[1].mirror && !eps[1].skip_verify);
        // Pushes never go to mirrors.
        let eps = rt().block_on(r.endpoints("docker.io", false));
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].url("/v2/"), "https://registry-1.docker.io/v2/");
        // Other registries are not mirrored.
        let eps = rt().block_on(r.endpoints("quay.io", true));
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].base(), "https://quay.io");
        assert_eq!(registry_host("index.docker.io"), "registry-1.docker.io");
        assert!(Resolver::new(&[], &["https://m.example/path".into()], true).is_err());
        assert!(Resolver::new(&[], &["ftp://m.example".into()], true).is_err());
    }

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let r = Resolver::new(
            &["myreg.example:5000".into(), "10.20.0.0/16".into()],
            &[],
            true,
        )
        .unwrap();
        let rt = rt();
        assert!(rt.block_on(r.is_insecure("127.0.0.1:5000")));
        assert!(rt.block_on(r.is_insecure("127.3.2.1")));
        assert!(rt.block_on(r.is_insecure("[::1]:5000")));
        assert!(rt.block_on(r.is_insecure("myreg.example:5000")));
        assert!(rt.block_on(r.is_insecure("10.20.3.4:443")));
        assert!(!rt.block_on(r.is_insecure("10.21.3.4:443")));
        let eps = rt.block_on(r.endpoints("127.0.0.1:5000", true));
        assert_eq!(
            eps.iter().map(Endpoint::base).collect::<Vec<_>>(),
            vec!["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert!(eps[0].skip_verify);
        // Without Docker's loopback default, loopback is verified https.
        let strict = Resolver::new(&[], &[], false).unwrap();
        assert!(!rt.block_on(strict.is_insecure("127.0.0.1:5000")));
        assert_eq!(
            rt.block_on(strict.endpoints("127.0.0.1:5000", true)).len(),
            1
        );
    }

    #[test]
    fn server_addresses_normalise() {
        assert_eq!(normalize_server_address(DOCKER_HUB_INDEX), "docker.io");
        assert_eq!(normalize_server_address(""), "docker.io");
        assert_eq!(
            normalize_server_address("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(normalize_server_address("localhost:5000"), "localhost:5000");
        assert_eq!(host_only("[::1]:5000"), "::1");
        assert_eq!(host_only("a.b:5000"), "a.b");
        assert_eq!(host_only("a.b"), "a.b");
    }
}
