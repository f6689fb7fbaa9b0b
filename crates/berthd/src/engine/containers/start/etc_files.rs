//! The container's `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`,
//! written at start once its addresses are known.

use std::path::Path;

use super::super::Record;
use crate::engine::{EngineError, Result};

pub(in crate::engine::containers) fn write_file(path: &Path, data: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)
        .map_err(|e| EngineError::internal(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| EngineError::internal(format!("writing {}: {e}", path.display())))
}

/// Rewrites one of the container's `/etc` files in place: a container
/// created ahead of its start has it bind-mounted already, and a rename
/// would leave the mount on the old file.
pub(super) fn write_in_place(path: &Path, data: &str) -> Result<()> {
    std::fs::write(path, data)
        .map_err(|e| EngineError::internal(format!("writing {}: {e}", path.display())))
}

/// The container's resolv.conf: the embedded DNS on user-defined networks,
/// else the host's resolvers minus loopback ones (they mean nothing in the
/// container's namespace); `--dns*` flags override, as in Docker.
pub(super) fn resolv_conf(r: &Record, embedded: bool, host_net: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hc = &r.host_config;
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for l in host.lines() {
        let t = l.trim();
        let mut it = t.split_whitespace();
        match it.next() {
            Some("nameserver") => {
                if let Some(a) = it.next() {
                    if host_net || !(a.starts_with("127.") || a == "::1") {
                        servers.push(a.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = it.map(String::from).collect(),
            Some("options") => options.extend(it.map(String::from)),
            _ => {}
        }
    }
    if let Some(d) = hc.dns.as_ref().filter(|d| !d.is_empty()) {
        servers = d.clone();
    }
    if let Some(d) = hc.dns_search.as_ref().filter(|d| !d.is_empty()) {
        search = d.clone();
    }
    if let Some(d) = hc.dns_options.as_ref().filter(|d| !d.is_empty()) {
        options = d.clone();
    }
    if embedded {
        // The embedded server forwards to `servers`; the container asks it.
        servers = vec![crate::engine::networks::dns::ADDR.to_string()];
        if !options.iter().any(|o| o.starts_with("ndots")) {
            options.push("ndots:0".into());
        }
    } else if servers.is_empty() {
        // Docker's fallback when the host has only local resolvers.
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// `links` are the lines of the container's links (after `--add-host`
/// ones, as libnetwork orders them).
pub(super) fn hosts_file(
    r: &Record,
    own: &str,
    links: &str,
    gateway: Option<String>,
    host_net: bool,
) -> String {
    let mut s = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        )
    };
    for h in r.host_config.extra_hosts.clone().unwrap_or_default() {
        if let Some((name, ip)) = h.split_once(':') {
            let ip = if ip == "host-gateway" {
                gateway.clone().unwrap_or_default()
            } else {
                ip.to_string()
            };
            s.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    s.push_str(links);
    s.push_str(own);
    s
}
