//! Legacy links (`--link name:alias`, `HostConfig.Links`).
//!
//! As in dockerd, a link is registered at create when the container is on
//! the default bridge (or `none`): the parent records the target's ID and
//! the alias, under the link name `/parent/alias`, which also resolves to
//! the target wherever a container name does. At start, a parent on the
//! default bridge gets the target's address in `/etc/hosts` and Docker's
//! `ALIAS_*` environment variables, and refuses to start while a target
//! is not running; a target's (re)start updates the `/etc/hosts` of the
//! running parents. On a user-defined network, `EndpointSettings.Links`
//! are DNS aliases of the linking container only (see `networks`), and
//! `HostConfig.Links` is ignored, as dockerd does.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use berth_api::models::HostConfig;
use serde::{Deserialize, Serialize};

use super::{Container, Record, Status};
use crate::engine::{containers::Containers, EngineError, Result};

/// One registered link of a parent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The target's container ID.
    pub target: String,
    /// The target's name (without `/`) when linked: what inspect shows,
    /// and what a restarted daemon looks up, once the target is gone.
    pub name: String,
    pub alias: String,
}

/// How many `container:` hops are followed to a namespace owner.
const MAX_HOPS: usize = 16;

/// The network modes in which `HostConfig.Links` are registered: not on a
/// user-defined network (dockerd ignores them there).
fn registers(network_mode: &str) -> bool {
    matches!(network_mode, "" | "default" | "bridge" | "host" | "none")
        || network_mode.starts_with("container:")
}

fn parse(spec: &str) -> Result<(String, String)> {
    berth_api::links::parse(spec).map_err(|e| EngineError::internal(e.to_string()))
}

/// `HostConfig.Links` with network modes that cannot have them.
pub fn check_mode(hc: &HostConfig) -> Result<()> {
    if hc.links.as_ref().is_none_or(|l| l.is_empty()) {
        return Ok(());
    }
    let mode = hc.network_mode.as_deref().unwrap_or("");
    if mode.starts_with("container:") {
        return Err(EngineError::invalid(
            "conflicting options: container type network can't be used with links. This would result in undefined behavior",
        ));
    }
    if mode == "host" {
        return Err(host_conflict());
    }
    Ok(())
}

fn host_conflict() -> EngineError {
    EngineError::invalid(
        "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
    )
}

/// `ALIAS_*` variables for a link to a container at `ip` (dockerd 20.10's
/// `links.ToEnv`: the lowest port, port ranges, each port, the link name
/// and the target's environment but `HOME` and `PATH`).
pub fn env_vars(
    link_name: &str,
    ip: &str,
    exposed: &[String],
    target_env: &[String],
) -> Vec<String> {
    let alias = link_name
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let mut ports: Vec<(u32, String)> = exposed
        .iter()
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
            Some((p.parse().ok()?, proto.to_string()))
        })
        .collect();
    // By number, TCP first among equal numbers.
    ports.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (a.1 != "tcp").cmp(&(b.1 != "tcp")))
            .then_with(|| a.1.cmp(&b.1))
    });
    let mut env = Vec::new();
    let key = |n: u32, proto: &str| format!("{alias}_PORT_{n}_{}", proto.to_uppercase());
    if let Some((n, proto)) = ports.first() {
        env.push(format!("{alias}_PORT={proto}://{ip}:{n}"));
    }
    // Runs of consecutive numbers (whatever their protocols, as Docker).
    let mut i = 0;
    while i < ports.len() {
        let j = next_contiguous(&ports, i);
        if j > i + 1 {
            let (p, pp) = (&ports[i], &ports[i].1);
            let (q, qp) = (&ports[j], &ports[j].1);
            let k = key(p.0, pp);
            env.push(format!("{k}_START={pp}://{ip}:{}", p.0));
            env.push(format!("{k}_ADDR={ip}"));
            env.push(format!("{k}_PROTO={pp}"));
            env.push(format!("{k}_PORT_START={}", p.0));
            let kq = key(p.0, qp);
            env.push(format!("{kq}_END={qp}://{ip}:{}", q.0));
            env.push(format!("{kq}_PORT_END={}", q.0));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for (n, proto) in &ports {
        let k = key(*n, proto);
        env.push(format!("{k}={proto}://{ip}:{n}"));
        env.push(format!("{k}_ADDR={ip}"));
        env.push(format!("{k}_PORT={n}"));
        env.push(format!("{k}_PROTO={proto}"));
    }
    env.push(format!("{alias}_NAME={link_name}"));
    for e in target_env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        // Set by builds, meaningless to the linking container.
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{alias}_ENV_{k}={v}"));
    }
    env
}

/// Docker's `nextContiguous`: the end of the run of numbers starting at
/// `i` (one more each step, protocols ignored).
fn next_contiguous(ports: &[(u32, String)], i: usize) -> usize {
    if i + 1 == ports.len() {
        return i;
    }
    // The k-th port after `i` may be at most k + 1 above the first.
    (i + 1..ports.len())
        .find(|&k| ports[k].0 > ports[i].0 + (k - i) as u32)
        .map_or(ports.len() - 1, |k| k - 1)
}

/// The `/etc/hosts` line(s) of one link: the alias, the target's host name
/// and (unless it is the alias) its name.
fn hosts_lines(alias: &str, target: &Record) -> String {
    let hostname = target.config.hostname.clone().unwrap_or_default();
    let mut names = format!("{alias} {hostname}");
    if alias != target.name {
        names.push(' ');
        names.push_str(&target.name);
    }
    let mut out = String::new();
    if let Some(ep) = target.endpoints.get("bridge") {
        for ip in [ep.ip_address.as_deref(), ep.global_ipv6_address.as_deref()]
            .into_iter()
            .flatten()
            .filter(|i| !i.is_empty())
        {
            out.push_str(&format!("{ip}\t{names}\n"));
        }
    }
    out
}

/// What links add to a starting container.
#[derive(Debug, Default)]
pub struct Linked {
    /// `ALIAS_*` variables, before the container's own environment.
    pub env: Vec<String>,
    /// `/etc/hosts` lines, after `--add-host` ones.
    pub hosts: String,
}

impl Containers {
    /// Resolves a new container's `HostConfig.Links` to the links it
    /// registers (errors as dockerd's at create).
    pub fn register_links(&self, hc: &HostConfig) -> Result<Vec<Link>> {
        let mut out: Vec<Link> = Vec::new();
        if !registers(hc.network_mode.as_deref().unwrap_or("")) {
            return Ok(out);
        }
        for spec in hc.links.clone().unwrap_or_default() {
            let (name, alias) = parse(&spec)?;
            let mut target = self.find(&name).map_err(|e| match e {
                EngineError::NotFound(m) => {
                    EngineError::invalid(format!("could not get container for {name}: {m}"))
                }
                other => other,
            })?;
            // A container sharing another's namespace is reached there.
            for _ in 0..MAX_HOPS {
                let mode = target.lock().host_config.network_mode.clone();
                let Some(owner) = mode.as_deref().and_then(|m| m.strip_prefix("container:")) else {
                    break;
                };
                target = self.find(owner).map_err(|e| match e {
                    EngineError::NotFound(m) => {
                        EngineError::invalid(format!("Could not get container for {owner}: {m}"))
                    }
                    other => other,
                })?;
            }
            let t = target.snapshot();
            if t.host_config.network_mode.as_deref() == Some("host") {
                return Err(host_conflict());
            }
            // A second link under one alias is ignored, as dockerd does.
            if out.iter().any(|l| l.alias == alias) {
                continue;
            }
            out.push(Link {
                target: t.id,
                name: t.name,
                alias,
            });
        }
        Ok(out)
    }

    /// `HostConfig.Links` as inspect shows it: `/target:/parent/alias`.
    pub fn inspect_links(&self, r: &Record) -> Option<Vec<String>> {
        if r.links.is_empty() {
            return None;
        }
        Some(
            r.links
                .iter()
                .map(|l| {
                    let name = self
                        .find(&l.target)
                        .map(|c| c.name())
                        .unwrap_or_else(|_| l.name.clone());
                    format!("/{name}:/{}/{}", r.name, l.alias)
                })
                .collect(),
        )
    }

    /// The link names (`/parent/alias`) under which each container is
    /// linked, by target ID (for `ContainerSummary.Names`).
    pub fn link_names<'a>(
        &self,
        cs: impl IntoIterator<Item = &'a Arc<Container>>,
    ) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for c in cs {
            let r = c.lock();
            for l in &r.links {
                out.entry(l.target.clone())
                    .or_default()
                    .push(format!("/{}/{}", r.name, l.alias));
            }
        }
        out
    }

    /// The environment and hosts lines a starting container (or a process
    /// run in it) gets from its links, or dockerd's refusal when a target cannot be linked (not on
    /// the default bridge, not running).
    pub fn linked(&self, r: &Record) -> Result<Linked> {
        let mut out = Linked::default();
        // Only a parent on the default bridge gets anything (or checks).
        if r.links.is_empty() || !r.endpoints.contains_key("bridge") {
            return Ok(out);
        }
        let targets: Vec<(&Link, Option<Record>)> = r
            .links
            .iter()
            .map(|l| {
                let t = self.find(&l.target).ok().map(|c| c.snapshot());
                (l, t)
            })
            .collect();
        // Checked when the network is set up, before the running check.
        for (l, t) in &targets {
            if t.as_ref()
                .is_some_and(|t| !t.endpoints.contains_key("bridge"))
            {
                return Err(EngineError::internal(format!(
                    "Cannot link to /{}, as it does not belong to the default network",
                    t.as_ref()
                        .map(|t| t.name.clone())
                        .unwrap_or_else(|| l.name.clone())
                )));
            }
        }
        for (l, t) in &targets {
            let link_name = format!("/{}/{}", r.name, l.alias);
            let Some(t) = t.as_ref().filter(|t| t.state.status == Status::Running) else {
                let name = t
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| l.name.clone());
                return Err(EngineError::internal(format!(
                    "Cannot link to a non running container: /{name} AS {link_name}"
                )));
            };
            let ip = t
                .endpoints
                .get("bridge")
                .and_then(|e| e.ip_address.clone())
                .unwrap_or_default();
            let mut exposed: Vec<String> = t
                .config
                .exposed_ports
                .clone()
                .unwrap_or_default()
                .into_keys()
                .collect();
            exposed.sort();
            out.env.extend(env_vars(
                &link_name,
                &ip,
                &exposed,
                &t.config.env.clone().unwrap_or_default(),
            ));
            out.hosts.push_str(&hosts_lines(&l.alias, t));
        }
        // A range's `_ADDR`/`_PROTO` come again for its first port: once.
        let mut seen = std::collections::HashSet::new();
        out.env
            .retain(|e| seen.insert(e.split('=').next().unwrap_or_default().to_string()));
        Ok(out)
    }

    /// After `target` started: the running containers linking to it on the
    /// default bridge point their `/etc/hosts` lines for the link at its
    /// new address (as libnetwork's parent update).
    pub fn update_linking_hosts(&self, target: &Record) {
        let Some(ip) = target
            .endpoints
            .get("bridge")
            .and_then(|e| e.ip_address.clone())
            .filter(|i| !i.is_empty())
        else {
            return;
        };
        for c in self.all() {
            // Cheap for the (usual) containers that link to nothing.
            if !c.lock().links.iter().any(|l| l.target == target.id) {
                continue;
            }
            let parent = c.snapshot();
            if parent.id == target.id
                || !parent.state.status.is_running()
                || !parent.endpoints.contains_key("bridge")
            {
                continue;
            }
            for l in parent.links.iter().filter(|l| l.target == target.id) {
                let path = self.paths(&parent.id).hosts;
                if let Err(e) = repoint_hosts(&path, &l.alias, Some(&ip)) {
                    tracing::debug!(parent = %parent.id, error = %e, "updating a link's hosts line");
                }
            }
        }
    }

    /// `DELETE /containers/{parent}/{alias}?link=1`.
    pub fn remove_link(&self, name: &str) -> Result<()> {
        // The link name must resolve, like any container name.
        self.find(name)?;
        let full = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        let Some((parent, alias)) = full.rsplit_once('/').filter(|(p, _)| !p.is_empty()) else {
            // dockerd answers these two with a 500; they are the request's
            // fault: 409 and 404.
            return Err(EngineError::conflict(
                "Conflict, cannot remove the default link name of the container",
            ));
        };
        let c = self.find(parent).map_err(|_| {
            EngineError::not_found(format!("Cannot get parent {parent} for link name {full}"))
        })?;
        c.lock().links.retain(|l| l.alias != alias);
        self.persist(&c)?;
        // A running parent's /etc/hosts loses the line (dockerd rebuilds it).
        let r = c.snapshot();
        if r.state.status.is_running() && r.endpoints.contains_key("bridge") {
            if let Err(e) = repoint_hosts(&self.paths(&r.id).hosts, alias, None) {
                tracing::debug!(id = %r.id, error = %e, "removing a link's hosts line");
            }
        }
        Ok(())
    }

    /// After a daemon restart: a link whose target was removed while the
    /// previous daemon ran is looked up again by name (dockerd registers
    /// links by name at start), or dropped.
    pub fn restore_links(&self) {
        for c in self.all() {
            let links = c.lock().links.clone();
            if links.is_empty() {
                continue;
            }
            let kept: Vec<Link> = links
                .iter()
                .filter_map(|l| {
                    if self.find(&l.target).is_ok() {
                        return Some(l.clone());
                    }
                    let t = self.find(&l.name).ok()?;
                    Some(Link {
                        target: t.id.clone(),
                        ..l.clone()
                    })
                })
                .collect();
            if kept != links {
                c.lock().links = kept;
                if let Err(e) = self.persist(&c) {
                    tracing::warn!(id = %c.id, error = %e, "restoring links");
                }
            }
        }
    }
}

/// Rewrites, in place (the file is bind-mounted), the IPv4 lines whose
/// first name is `alias`: to address `ip`, or (without one) away.
fn repoint_hosts(path: &std::path::Path, alias: &str, ip: Option<&str>) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path)?;
    let mut changed = false;
    let new: String = old
        .split_inclusive('\n')
        .map(|line| {
            let Some((addr, rest)) = line.split_once('\t') else {
                return line.to_string();
            };
            let first = rest.split(|c: char| c.is_whitespace()).next().unwrap_or("");
            match ip {
                // Only the IPv4 line: an IPv6 address stays as it was.
                Some(ip) if first == alias && !addr.contains(':') && addr != ip => {
                    changed = true;
                    format!("{ip}\t{rest}")
                }
                None if first == alias => {
                    changed = true;
                    String::new()
                }
                _ => line.to_string(),
            }
        })
        .collect();
    if !changed {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(new.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn env_matches_dockerd_for_a_tcp_and_a_udp_port() {
        // Seen on dockerd 20.10: `--expose 80/tcp --expose 53/udp -e FOO=bar`.
        let env = env_vars(
            "/app/db",
            "172.17.0.2",
            &s(&["80/tcp", "53/udp"]),
            &s(&["FOO=bar", "HOME=/x", "PATH=/bin", "NOVALUE"]),
        );
        assert_eq!(
            env,
            s(&[
                "DB_PORT=udp://172.17.0.2:53",
                "DB_PORT_53_UDP=udp://172.17.0.2:53",
                "DB_PORT_53_UDP_ADDR=172.17.0.2",
                "DB_PORT_53_UDP_PORT=53",
                "DB_PORT_53_UDP_PROTO=udp",
                "DB_PORT_80_TCP=tcp://172.17.0.2:80",
                "DB_PORT_80_TCP_ADDR=172.17.0.2",
                "DB_PORT_80_TCP_PORT=80",
                "DB_PORT_80_TCP_PROTO=tcp",
                "DB_NAME=/app/db",
                "DB_ENV_FOO=bar",
            ])
        );
    }

    #[test]
    fn ranges_follow_dockerd_including_mixed_protocols() {
        // `--expose 53/tcp --expose 53/udp --expose 54/udp --expose 7/sctp`.
        let env = env_vars(
            "/x/my-m",
            "10.0.0.7",
            &s(&["53/udp", "7/sctp", "54/udp", "53/tcp"]),
            &[],
        );
        assert_eq!(
            &env[..7],
            &s(&[
                "MY_M_PORT=sctp://10.0.0.7:7",
                "MY_M_PORT_53_TCP_START=tcp://10.0.0.7:53",
                "MY_M_PORT_53_TCP_ADDR=10.0.0.7",
                "MY_M_PORT_53_TCP_PROTO=tcp",
                "MY_M_PORT_53_TCP_PORT_START=53",
                "MY_M_PORT_53_UDP_END=udp://10.0.0.7:54",
                "MY_M_PORT_53_UDP_PORT_END=54",
            ])[..]
        );
        assert_eq!(env[7], "MY_M_PORT_7_SCTP=sctp://10.0.0.7:7");
        assert_eq!(env.last().unwrap(), "MY_M_NAME=/x/my-m");
    }

    #[test]
    fn hosts_lines_repoint_in_place() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts");
        std::fs::write(
            &p,
            "127.0.0.1\tlocalhost\n172.17.0.2\tdb abc web\n172.17.0.9\tdbx\n",
        )
        .unwrap();
        repoint_hosts(&p, "db", Some("172.17.0.5")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "127.0.0.1\tlocalhost\n172.17.0.5\tdb abc web\n172.17.0.9\tdbx\n"
        );
        repoint_hosts(&p, "db", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "127.0.0.1\tlocalhost\n172.17.0.9\tdbx\n"
        );
    }
}
