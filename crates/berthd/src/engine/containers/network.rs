//! A container's side of networking: the endpoints it is created with,
//! joining its networks at start (addresses, veths, published ports, the
//! embedded DNS) and leaving them at stop, `network connect`/`disconnect`,
//! and re-attaching after a daemon restart. The networks themselves, their
//! addresses and the endpoint table are `engine::networks`'.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};

use berth_api::models::{EndpointSettings, PortMap};

use super::{Index, Record};
use crate::engine::networks::{
    bridge, dns, ipam, lock, mode_of, validate_endpoint, Mode, NetRecord, Publish,
};
use crate::engine::{containers::Containers, EngineError, Result};

/// Whether any container, running or not, names network `name` (what
/// `network prune` keeps).
pub fn names_network(index: &RwLock<Index>, name: &str) -> bool {
    index
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .all()
        .iter()
        .any(|c| c.lock().endpoints.contains_key(name))
}

/// The ports container `r` asks to publish.
fn publish_of(r: &Record) -> Publish {
    Publish {
        bindings: r.host_config.port_bindings.clone().unwrap_or_default(),
        all: r.host_config.publish_all_ports == Some(true),
        exposed: r
            .config
            .exposed_ports
            .clone()
            .unwrap_or_default()
            .into_keys()
            .collect(),
    }
}

impl Containers {
    /// The endpoints a new container starts with (from NetworkMode and
    /// NetworkingConfig), validated now as Docker does at create.
    pub fn initial_endpoints(
        &self,
        network_mode: &str,
        configs: &HashMap<String, EndpointSettings>,
        config_mac: Option<&str>,
    ) -> Result<crate::engine::networks::EndpointMap> {
        let mut out = BTreeMap::new();
        let primary = match mode_of(network_mode) {
            Mode::Container(_) => return Ok(out),
            Mode::None => "none".to_string(),
            Mode::Host => "host".to_string(),
            Mode::Networks => match network_mode {
                "" | "default" | "bridge" => "bridge".to_string(),
                other => other.to_string(),
            },
        };
        let mut wanted: Vec<String> = vec![primary.clone()];
        for k in configs.keys() {
            let canon = if k == "default" {
                "bridge".to_string()
            } else {
                k.clone()
            };
            if !wanted.contains(&canon) {
                wanted.push(canon);
            }
        }
        let primary_name = self.networks.find(&primary)?.name.clone();
        for key in wanted {
            let n = self.networks.find(&key)?;
            if (n.name == "none" || n.name == "host") && out.len() + 1 > 1 && n.name != primary {
                return Err(EngineError::invalid(format!(
                    "container cannot be connected to network {}",
                    n.name
                )));
            }
            let given = configs
                .get(&key)
                .or_else(|| configs.get(&n.name))
                .or_else(|| configs.get(&n.id))
                .or_else(|| {
                    if n.name == "bridge" {
                        configs.get("default")
                    } else {
                        None
                    }
                })
                .cloned()
                .unwrap_or_default();
            validate_endpoint(&n, &given)?;
            // `Config.MacAddress` (API < 1.44) is the primary endpoint's.
            let mac = given
                .mac_address
                .clone()
                .filter(|m| !m.is_empty())
                .or_else(|| {
                    config_mac
                        .filter(|m| !m.is_empty() && n.name == primary_name)
                        .map(String::from)
                });
            let ep = EndpointSettings {
                ipam_config: given.ipam_config.clone(),
                links: given.links.clone(),
                mac_address: mac,
                aliases: given.aliases.clone(),
                driver_opts: given.driver_opts.clone(),
                gw_priority: given.gw_priority,
                network_id: Some(n.id.clone()),
                endpoint_id: Some(String::new()),
                gateway: Some(String::new()),
                ip_address: Some(String::new()),
                ip_prefix_len: Some(0),
                ipv6_gateway: Some(String::new()),
                global_ipv6_address: Some(String::new()),
                global_ipv6_prefix_len: Some(0),
                dns_names: None,
            };
            out.insert(n.name.clone(), Box::new(ep));
        }
        Ok(out)
    }

    /// Attaches a starting container to its networks: addresses, veths,
    /// published ports, DNS. Returns the updated endpoints and port map.
    pub async fn attach_networks(
        self: &Arc<Self>,
        cid: &str,
        rec: &Record,
        netns: &Path,
    ) -> Result<(crate::engine::networks::EndpointMap, PortMap)> {
        let mut eps = rec.endpoints.clone();
        // The first network joined publishes the ports.
        let mut primary: Option<(Arc<NetRecord>, String)> = None;
        let mut n_if = 0;
        let names: Vec<String> = order_networks(&eps);
        for name in &names {
            let n = self.networks.find(name)?;
            if !n.plugs() {
                continue;
            }
            let ep = eps
                .get_mut(name)
                .ok_or_else(|| EngineError::internal("endpoint vanished"))?;
            self.networks
                .plug(
                    cid,
                    &rec.name,
                    &n,
                    ep,
                    netns,
                    &format!("eth{n_if}"),
                    primary.is_none(),
                )
                .await?;
            self.networks
                .net_event("connect", &n, &[("container", cid.to_string())]);
            n_if += 1;
            if primary.is_none() {
                primary = Some((n.clone(), ep.endpoint_id.clone().unwrap_or_default()));
            }
        }
        // Listed (and answered by DNS) from here; `detach_networks` undoes it.
        self.networks.attach_endpoints(cid, &rec.name, &eps);
        // Published ports, to the address on the first network.
        let primary = primary.as_ref().map(|(n, ep)| (&**n, ep.as_str()));
        let ports = self
            .networks
            .publish(cid, &publish_of(rec), primary)
            .await?;
        // The embedded DNS, on user-defined networks.
        if names
            .iter()
            .any(|n| self.networks.find(n).map(|x| x.has_dns()).unwrap_or(false))
        {
            let dns = self.start_dns(cid, netns, rec)?;
            lock(&self.networks.live)
                .entry(cid.to_string())
                .or_default()
                .dns = Some(dns);
        }
        Ok((eps, ports))
    }

    fn start_dns(
        self: &Arc<Self>,
        cid: &str,
        netns: &Path,
        rec: &Record,
    ) -> Result<dns::DnsServer> {
        let weak: Weak<Containers> = Arc::downgrade(self);
        let me = cid.to_string();
        let lookup: dns::Lookup = Arc::new(move |name: &str| {
            let e = weak.upgrade()?;
            e.networks.dns_lookup(&me, name)
        });
        let upstream = upstream_resolvers(rec.host_config.dns.as_deref());
        dns::start(netns, lookup, upstream)
    }

    /// Undoes `attach_networks` for a stopped container: addresses, ports,
    /// DNS. (Its veths die with its namespace.)
    pub fn detach_networks(&self, cid: &str, eps: &mut crate::engine::networks::EndpointMap) {
        self.networks.release_unheld(cid, eps);
        self.networks.detach_all(cid);
        let live = lock(&self.networks.live).remove(cid);
        for (name, ep) in eps.iter_mut() {
            if !ep.ip_address.as_deref().unwrap_or("").is_empty() {
                if let Ok(n) = self.networks.find(name) {
                    self.networks
                        .net_event("disconnect", &n, &[("container", cid.to_string())]);
                }
            }
            ep.endpoint_id = Some(String::new());
            ep.gateway = Some(String::new());
            ep.ip_address = Some(String::new());
            ep.ip_prefix_len = Some(0);
            ep.global_ipv6_address = Some(String::new());
            ep.global_ipv6_prefix_len = Some(0);
            ep.ipv6_gateway = Some(String::new());
            ep.dns_names = None;
            if ep
                .ipam_config
                .as_ref()
                .and_then(|c| c.ipv4_address.as_ref())
                .is_none()
            {
                // A generated MAC follows the address; a configured one stays.
                ep.mac_address = Some(String::new());
            }
        }
        drop(live);
        // Ports, endpoints and addresses: what it holds, whatever `eps` says.
        self.networks.unplug_all(cid);
    }

    /// After a daemon restart: re-reserve the addresses of running
    /// containers and restart their port proxies and DNS.
    pub async fn restore_container_network(self: &Arc<Self>, rec: &Record) {
        self.networks.replug(&rec.id, &rec.endpoints);
        self.networks
            .attach_endpoints(&rec.id, &rec.name, &rec.endpoints);
        let primary = order_networks(&rec.endpoints).iter().find_map(|n| {
            let ep = &rec.endpoints[n];
            ep.ip_address.as_deref()?.parse::<Ipv4Addr>().ok()?;
            let net = self.networks.find(ep.network_id.as_deref()?).ok()?;
            Some((net, ep.endpoint_id.clone().unwrap_or_default()))
        });
        let primary = primary.as_ref().map(|(n, ep)| (&**n, ep.as_str()));
        if let Err(e) = self
            .networks
            .publish(&rec.id, &publish_of(rec), primary)
            .await
        {
            tracing::warn!(id = %rec.id, error = %e, "restoring published ports");
        }
        let netns = self.paths(&rec.id).netns;
        if rec
            .endpoints
            .keys()
            .any(|n| self.networks.find(n).map(|x| x.has_dns()).unwrap_or(false))
            && netns.exists()
        {
            match self.start_dns(&rec.id, &netns, rec) {
                Ok(d) => {
                    lock(&self.networks.live)
                        .entry(rec.id.clone())
                        .or_default()
                        .dns = Some(d)
                }
                Err(e) => tracing::warn!(id = %rec.id, error = %e, "restoring DNS"),
            }
        }
    }

    pub async fn connect_network(
        self: &Arc<Self>,
        net: &str,
        container: &str,
        cfg: Option<EndpointSettings>,
    ) -> Result<()> {
        let t = crate::engine::metrics::Timer::start();
        let r = self.connect_network_timed(net, container, cfg).await;
        if r.is_ok() {
            t.network("connect");
        }
        r
    }

    async fn connect_network_timed(
        self: &Arc<Self>,
        net: &str,
        container: &str,
        cfg: Option<EndpointSettings>,
    ) -> Result<()> {
        let n = self.networks.find(net)?;
        let c = self.find(container)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        if let Mode::Container(_) | Mode::Host =
            mode_of(r.host_config.network_mode.as_deref().unwrap_or(""))
        {
            return Err(EngineError::Forbidden("container sharing network namespace with another container or host cannot be connected to any other network".into()));
        }
        if !n.plugs() {
            return Err(EngineError::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if r.endpoints.contains_key(&n.name) {
            return Err(EngineError::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                r.name, n.name
            )));
        }
        let given = cfg.unwrap_or_default();
        validate_endpoint(&n, &given)?;
        // Echoed as given (dockerd keeps an empty list or map as sent).
        let mut ep = EndpointSettings {
            ipam_config: given.ipam_config.clone(),
            links: given.links.clone().filter(|l| !l.is_empty()),
            aliases: given.aliases.clone(),
            driver_opts: given.driver_opts.clone(),
            mac_address: given.mac_address.clone().filter(|m| !m.is_empty()),
            network_id: Some(n.id.clone()),
            ..Default::default()
        };
        if r.state.status.is_running() {
            let netns = self.paths(&r.id).netns;
            if r.endpoints.contains_key("none") {
                return Err(EngineError::Forbidden("container cannot be connected to multiple networks with one of the networks in private (none) mode".into()));
            }
            let existing = bridge::iface_names(&netns)?;
            let mut i = 0;
            while existing.contains(&format!("eth{i}")) {
                i += 1;
            }
            let no_route = !r
                .endpoints
                .values()
                .any(|e| !e.ip_address.as_deref().unwrap_or("").is_empty());
            self.networks
                .plug(
                    &r.id,
                    &r.name,
                    &n,
                    &mut ep,
                    &netns,
                    &format!("eth{i}"),
                    no_route,
                )
                .await?;
            self.networks.attach_endpoint(&r.id, &r.name, &n.name, &ep);
            if n.has_dns()
                && lock(&self.networks.live)
                    .get(&r.id)
                    .is_none_or(|l| l.dns.is_none())
            {
                let d = self.start_dns(&r.id, &netns, &r)?;
                lock(&self.networks.live)
                    .entry(r.id.clone())
                    .or_default()
                    .dns = Some(d);
            }
        }
        c.lock().endpoints.insert(n.name.clone(), Box::new(ep));
        self.persist(&c)?;
        // As dockerd: a stopped container's connect is only recorded; its
        // `connect` event comes when it starts.
        if r.state.status.is_running() {
            self.networks
                .net_event("connect", &n, &[("container", r.id.clone())]);
        }
        Ok(())
    }

    pub async fn disconnect_network(&self, net: &str, container: &str, force: bool) -> Result<()> {
        let t = crate::engine::metrics::Timer::start();
        let r = self.disconnect_network_timed(net, container, force).await;
        if r.is_ok() {
            t.network("disconnect");
        }
        r
    }

    async fn disconnect_network_timed(
        &self,
        net: &str,
        container: &str,
        _force: bool,
    ) -> Result<()> {
        let n = self.networks.find(net)?;
        let c = self.find(container)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        let Some(ep) = r.endpoints.get(&n.name).cloned() else {
            return Err(EngineError::Forbidden(format!(
                "container {} is not connected to network {}",
                r.id, n.name
            )));
        };
        if r.state.status.is_running() && n.plugs() {
            let netns = self.paths(&r.id).netns;
            // Find the interface holding this network's address.
            let ip = ep.ip_address.clone().unwrap_or_default();
            let mac = ep.mac_address.clone().unwrap_or_default();
            let ifname = find_iface_by_mac(&netns, &mac).unwrap_or_default();
            if !ifname.is_empty() {
                bridge::remove_iface(&netns, &ifname)?;
            }
            self.networks.unplug(&r.id, &n.id);
            tracing::debug!(%ip, %ifname, "disconnected");
            // dockerd logs the endpoint's leave and then the API's
            // disconnect: two events for a running container.
            self.networks
                .net_event("disconnect", &n, &[("container", r.id.clone())]);
        }
        self.networks.detach_endpoint(&r.id, &n.name);
        c.lock().endpoints.remove(&n.name);
        self.persist(&c)?;
        self.networks
            .net_event("disconnect", &n, &[("container", r.id.clone())]);
        Ok(())
    }

    /// The `/etc/hosts` lines for the container's own addresses.
    pub fn own_hosts_lines(&self, r: &Record) -> String {
        let mut s = String::new();
        // As libnetwork: the FQDN first, then the short name.
        let host = r.config.hostname.clone().unwrap_or_default();
        let names = match r.config.domainname.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => format!("{host}.{d} {host}"),
            None => host,
        };
        for ep in r.endpoints.values() {
            if let Some(ip) = ep.ip_address.as_deref().filter(|i| !i.is_empty()) {
                s.push_str(&format!("{ip}\t{names}\n"));
            }
        }
        s
    }
}

fn order_networks(eps: &crate::engine::networks::EndpointMap) -> Vec<String> {
    let mut v: Vec<(i64, String)> = eps
        .iter()
        .map(|(k, e)| (-e.gw_priority.unwrap_or(0), k.clone()))
        .collect();
    v.sort();
    v.into_iter().map(|(_, k)| k).collect()
}

fn find_iface_by_mac(netns: &Path, mac: &str) -> Option<String> {
    let mac = mac.to_string();
    bridge::in_netns(netns, move |nh| async move {
        use futures_util::TryStreamExt;
        let mut links = nh.link().get().execute();
        while let Some(l) = links
            .try_next()
            .await
            .map_err(|e| EngineError::internal(e.to_string()))?
        {
            let mut name = None;
            let mut addr = None;
            for a in l.attributes {
                match a {
                    netlink_packet_route::link::LinkAttribute::IfName(n) => name = Some(n),
                    netlink_packet_route::link::LinkAttribute::Address(a) => addr = Some(a),
                    _ => {}
                }
            }
            if let (Some(n), Some(a)) = (name, addr) {
                if ipam::mac_string(&<[u8; 6]>::try_from(a.as_slice()).unwrap_or_default()) == mac {
                    return Ok(Some(n));
                }
            }
        }
        Ok(None)
    })
    .ok()
    .flatten()
}

/// Upstream resolvers for the embedded DNS: `--dns`, else the host's.
fn upstream_resolvers(dns: Option<&[String]>) -> Vec<SocketAddr> {
    let list: Vec<String> = match dns.filter(|d| !d.is_empty()) {
        Some(d) => d.to_vec(),
        None => std::fs::read_to_string("/etc/resolv.conf")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("nameserver")
                    .map(|x| x.trim().to_string())
            })
            .collect(),
    };
    list.iter()
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}
