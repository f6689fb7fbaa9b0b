//! Stage 2 of a start: the container's network namespace (its own, the
//! host's or another container's) and the identity that goes with it —
//! host name, domain name and the `/etc` files it shares — and the IPC and
//! PID namespaces it may share.

use berth_runtime::{ContainerFiles, NetNs, NsMode};

use super::super::{Paths, Record};
use crate::engine::{containers::Containers, EngineError, Result};

/// Where a container's network comes from, and its names.
pub(in crate::engine::containers) struct Network {
    /// `HostConfig.NetworkMode`.
    pub mode: String,
    pub netns: NetNs,
    pub files: ContainerFiles,
    pub hostname: String,
    pub domainname: String,
    pub host_net: bool,
    /// Served by the embedded DNS (on a user-defined network).
    pub embedded: bool,
}

impl Containers {
    pub(in crate::engine::containers) fn network_identity(
        &self,
        r: &Record,
        p: &Paths,
    ) -> Result<Network> {
        let hc = &r.host_config;
        let mode = hc.network_mode.clone().unwrap_or_default();
        let mut joined = None;
        let net = if mode == "host" {
            NetNs::Host
        } else if let Some(other) = mode.strip_prefix("container:") {
            let o = self.find(other)?.snapshot();
            if !o.state.status.is_running() {
                return Err(EngineError::conflict(format!(
                    "cannot join network namespace of a non running container: container {} is exited",
                    o.id
                )));
            }
            let ns = NetNs::Path(format!("/proc/{}/ns/net", o.state.pid).into());
            joined = Some(o);
            ns
        } else {
            NetNs::Path(p.netns.clone())
        };
        // Joining another container's network namespace means taking its
        // host name and sharing its hostname, hosts and resolv.conf files,
        // as dockerd does (its embedded DNS then answers this one too).
        let files = match &joined {
            Some(o) => {
                let op = self.paths(&o.id);
                ContainerFiles {
                    hosts: Some(op.hosts),
                    resolv_conf: Some(op.resolv),
                    hostname: Some(op.hostname),
                }
            }
            None => ContainerFiles {
                hosts: Some(p.hosts.clone()),
                resolv_conf: Some(p.resolv.clone()),
                hostname: Some(p.hostname.clone()),
            },
        };
        let config_of = |rec: &Record| (rec.config.hostname.clone(), rec.config.domainname.clone());
        let (hostname, domainname) = config_of(joined.as_ref().unwrap_or(r));
        let host_net = mode == "host";
        let embedded = r
            .endpoints
            .keys()
            .any(|n| self.networks.find(n).map(|x| x.has_dns()).unwrap_or(false));
        let hostname = hostname.unwrap_or_default();
        let hostname = if hostname.is_empty() {
            crate::engine::host::hostname()
        } else {
            hostname
        };
        Ok(Network {
            mode,
            netns: net,
            files,
            hostname,
            domainname: domainname.unwrap_or_default(),
            host_net,
            embedded,
        })
    }

    /// `--ipc`/`--pid`: private, the host's, or another container's.
    pub(in crate::engine::containers) fn shared_namespaces(
        &self,
        r: &Record,
    ) -> Result<(NsMode, NsMode)> {
        let hc = &r.host_config;
        let ns_mode = |m: Option<&String>| -> Result<NsMode> {
            match m.map(String::as_str).unwrap_or("") {
                "host" => Ok(NsMode::Host),
                m if m.starts_with("container:") => {
                    let o = self.find(&m["container:".len()..])?.snapshot();
                    Ok(NsMode::Path(format!("/proc/{}/ns", o.state.pid).into()))
                }
                _ => Ok(NsMode::Private),
            }
        };
        let ipc = match ns_mode(hc.ipc_mode.as_ref())? {
            NsMode::Path(d) => NsMode::Path(d.join("ipc")),
            m => m,
        };
        let pid = match ns_mode(hc.pid_mode.as_ref())? {
            NsMode::Path(d) => NsMode::Path(d.join("pid")),
            m => m,
        };
        Ok((ipc, pid))
    }
}
