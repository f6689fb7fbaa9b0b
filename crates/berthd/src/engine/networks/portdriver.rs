//! Rootless port publishing: the daemon's network namespace is reached
//! from the host only through slirp4netns, so a published port is a
//! slirp4netns host forward (its API socket, `add_hostfwd`) from the
//! requested host address and port to the namespace's tap address, where
//! the userland proxy listens on all addresses and relays to the container
//! (Docker's rootless port driver does the same through RootlessKit).

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::{EngineError, Result};

/// slirp4netns's address for the namespace (`--configure`).
pub const GUEST_ADDR: &str = "10.0.2.100";

#[derive(Debug, Clone)]
pub struct PortDriver {
    /// The slirp4netns API socket.
    socket: PathBuf,
    /// The host's `net.ipv4.ip_unprivileged_port_start` (read before the
    /// daemon entered its own network namespace).
    unprivileged_start: u16,
}

/// A host forward; dropping it removes it.
pub struct Forward {
    driver: PortDriver,
    id: u64,
}

impl Drop for Forward {
    fn drop(&mut self) {
        let req = serde_json::json!({"execute": "remove_hostfwd", "arguments": {"id": self.id}});
        if let Err(e) = self.driver.call(&req) {
            tracing::warn!(id = self.id, error = %e, "removing a slirp4netns port forward");
        }
    }
}

impl PortDriver {
    pub fn new(socket: PathBuf, unprivileged_start: u16) -> Self {
        Self {
            socket,
            unprivileged_start,
        }
    }

    /// One request on a fresh connection (slirp4netns answers one per
    /// connection), bounded by a few seconds.
    fn call(&self, req: &serde_json::Value) -> std::result::Result<serde_json::Value, String> {
        let mut s = UnixStream::connect(&self.socket)
            .map_err(|e| format!("connecting to {}: {e}", self.socket.display()))?;
        let limit = Some(Duration::from_secs(5));
        let _ = s.set_read_timeout(limit);
        let _ = s.set_write_timeout(limit);
        s.write_all(req.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_slice(&buf).map_err(|e| {
            format!(
                "slirp4netns answered {:?}: {e}",
                String::from_utf8_lossy(&buf)
            )
        })?;
        if let Some(desc) = v.get("error").and_then(|e| e.get("desc")) {
            return Err(desc.as_str().unwrap_or_default().to_string());
        }
        Ok(v)
    }

    /// Refuses an IPv6 host address: slirp4netns forwards IPv6 ports only
    /// when started with `--enable-ipv6` (with an IPv6 address in the
    /// namespace), which the daemon does not use, and it would otherwise
    /// fail with no reason given. An empty host address means IPv4's
    /// `0.0.0.0`, as everywhere in berth.
    pub fn check_family(host_ip: IpAddr, port: &str) -> Result<()> {
        if host_ip.is_ipv6() {
            let port = if port.is_empty() {
                String::new()
            } else {
                format!(":{port}")
            };
            return Err(EngineError::internal(format!(
                "driver failed programming external connectivity: error while calling PortManager.AddPort(): \
cannot expose [{host_ip}]{port} in rootless mode: slirp4netns forwards only IPv4 host addresses here \
(it is started without --enable-ipv6); publish on an IPv4 address such as 127.0.0.1 or 0.0.0.0"
            )));
        }
        Ok(())
    }

    /// Forwards `host_ip:port` on the host to the namespace's `port`.
    /// Ports below the host's unprivileged start are refused first, in
    /// Docker's rootless words (slirp4netns itself gives no reason).
    pub fn add(&self, proto: &str, host_ip: IpAddr, port: u16) -> Result<Forward> {
        Self::check_family(host_ip, &port.to_string())?;
        let family = if host_ip.is_ipv4() { "tcp4" } else { "tcp6" };
        let family = if proto == "udp" {
            family.replace("tcp", "udp")
        } else {
            family.to_string()
        };
        if port < self.unprivileged_start {
            let start = self.unprivileged_start;
            return Err(EngineError::internal(format!(
                "driver failed programming external connectivity: error while calling PortManager.AddPort(): \
cannot expose privileged port {port}, you can add 'net.ipv4.ip_unprivileged_port_start={port}' to /etc/sysctl.conf (currently {start}), \
or choose a larger port number (>= {start}): listen {family} {host_ip}:{port}: bind: permission denied"
            )));
        }
        let req = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": proto,
                "host_addr": host_ip.to_string(),
                "host_port": port,
                "guest_addr": GUEST_ADDR,
                "guest_port": port,
            }
        });
        let v = self.call(&req).map_err(|e| {
            EngineError::internal(format!(
                "driver failed programming external connectivity: error while calling PortManager.AddPort(): \
listen {family} {host_ip}:{port}: {e} (is the port taken on the host?)"
            ))
        })?;
        let id = v
            .get("return")
            .and_then(|r| r.get("id"))
            .and_then(|i| i.as_u64())
            .ok_or_else(|| EngineError::internal(format!("slirp4netns answered {v}")))?;
        Ok(Forward {
            driver: self.clone(),
            id,
        })
    }

    /// Removes every forward (at start: the containers that still run
    /// publish theirs again when they are restored).
    pub fn clear(&self) {
        let list = match self.call(&serde_json::json!({"execute": "list_hostfwd"})) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "listing slirp4netns port forwards");
                return;
            }
        };
        // slirp4netns 1.2 answers `{"entries": [...]}` (no `return`).
        let ids: Vec<u64> = list
            .get("entries")
            .or_else(|| list.get("return").and_then(|r| r.get("entries")))
            .and_then(|e| e.as_array())
            .map(|a| a.iter().filter_map(|e| e.get("id")?.as_u64()).collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            tracing::info!(forwards = ids.len(), "removing slirp4netns port forwards");
        }
        for id in ids {
            drop(Forward {
                driver: self.clone(),
                id,
            });
        }
    }
}
