//! Networks: the predefined `bridge`, `host` and `none`, user-defined bridge
//! networks, and each container's attachment to them (address, veth, port
//! publishing, embedded DNS). Kernel work is in `bridge.rs` (netlink) and
//! `firewall.rs` (berth's own nftables table).

pub mod addresses;
pub mod bridge;
pub mod dns;
pub mod endpoints;
pub mod firewall;
pub mod ipam;
pub mod netns;
pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use berth_api::filters::Filters;
use berth_api::models::{
    EndpointSettings, Ipam, IpamConfig, Network, NetworkContainer, NetworkCreateRequest,
    PortBinding, PortMap,
};
use serde::{Deserialize, Serialize};

use super::store::Table;
use super::{Engine, EngineError, Result};
use ipam::Subnet;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetRecord {
    pub id: String,
    pub name: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    pub created: String,
    /// The bridge device (bridge driver only).
    pub bridge: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    /// IPv6 (with `EnableIPv6`).
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    /// The subnet was given by the user (static `--ip` is allowed then).
    pub user_subnet: bool,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    /// As given: dockerd reports `null` when the request had none.
    pub ipam_options: Option<HashMap<String, String>>,
    pub predefined: bool,
}

impl NetRecord {
    fn subnet(&self) -> Option<Subnet> {
        self.subnet.as_deref().and_then(|s| s.parse().ok())
    }

    fn gateway_ip(&self) -> Option<Ipv4Addr> {
        self.gateway.as_deref().and_then(|g| g.parse().ok())
    }

    fn subnet6(&self) -> Option<ipam::Subnet6> {
        self.subnet6
            .as_deref()
            .and_then(|s| ipam::Subnet6::parse(s).ok())
    }

    fn gateway6_ip(&self) -> Option<std::net::Ipv6Addr> {
        self.gateway6.as_deref().and_then(|g| g.parse().ok())
    }

    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// User-defined networks get the embedded DNS; the default bridge does not.
    pub fn has_dns(&self) -> bool {
        self.is_bridge() && !self.predefined
    }
}

/// The ports a container asks to publish: `HostConfig.PortBindings`,
/// `PublishAllPorts` and the keys of `Config.ExposedPorts`.
pub struct Publish {
    pub bindings: PortMap,
    pub all: bool,
    pub exposed: Vec<String>,
}

/// Per running container: what must be undone when it stops.
#[derive(Default)]
pub struct Live {
    pub proxies: Vec<proxy::Proxy>,
    pub dnats: Vec<firewall::Dnat>,
    pub dns: Option<dns::DnsServer>,
}

#[derive(Default)]
pub struct Networks {
    index: RwLock<BTreeMap<String, Arc<NetRecord>>>,
    handle: Mutex<Option<rtnetlink::Handle>>,
    /// Addresses in use, per network ID.
    used: Mutex<HashMap<String, HashMap<Ipv4Addr, String>>>,
    used6: Mutex<HashMap<String, HashMap<std::net::Ipv6Addr, String>>>,
    pub live: Mutex<HashMap<String, Live>>,
    /// Running containers' endpoints (see `endpoints.rs`).
    endpoints: Mutex<endpoints::Table>,
    /// Serialises network creation and removal.
    write: tokio::sync::Mutex<()>,
    /// Whether any container (running or not) names a network; supplied
    /// by the container side (`Networks::set_referenced`).
    referenced: std::sync::OnceLock<Referenced>,
}

/// See `Networks::set_referenced`.
pub type Referenced = Box<dyn Fn(&str) -> bool + Send + Sync>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Networks {
    pub fn open(store: &super::store::Store) -> Result<Self> {
        let n = Networks::default();
        {
            let mut idx = n.index.write().unwrap_or_else(|p| p.into_inner());
            for (id, rec) in store.load_all::<NetRecord>(Table::Networks)? {
                idx.insert(id, Arc::new(rec));
            }
        }
        Ok(n)
    }

    /// Installs the container side's answer to "does any container name
    /// this network" (once); `prune` keeps such networks.
    pub fn set_referenced(&self, f: Referenced) {
        let _ = self.referenced.set(f);
    }

    fn is_referenced(&self, name: &str) -> bool {
        self.referenced.get().is_some_and(|f| f(name))
    }

    pub fn all(&self) -> Vec<Arc<NetRecord>> {
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// By full ID, exact name, or unique ID prefix (Docker's order).
    pub fn find(&self, key: &str) -> Result<Arc<NetRecord>> {
        let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = idx.get(key) {
            return Ok(n.clone());
        }
        if let Some(n) = idx.values().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let hits: Vec<_> = idx
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key))
            .collect();
        match hits.len() {
            1 => Ok(hits[0].clone()),
            0 => Err(EngineError::not_found(format!("network {key} not found"))),
            _ => Err(EngineError::invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                hits.len()
            ))),
        }
    }

    pub fn handle(&self) -> Result<rtnetlink::Handle> {
        let mut h = lock(&self.handle);
        if h.is_none() {
            *h = Some(bridge::host_handle()?);
        }
        h.clone()
            .ok_or_else(|| EngineError::internal("netlink unavailable"))
    }

    fn insert(&self, rec: NetRecord) -> Arc<NetRecord> {
        let a = Arc::new(rec);
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(a.id.clone(), a.clone());
        a
    }
}

/// Resolved `NetworkMode`.
pub enum Mode {
    None,
    Host,
    Container(String),
    /// Attach to these networks (names), in order.
    Networks,
}

pub fn mode_of(network_mode: &str) -> Mode {
    match network_mode {
        "none" => Mode::None,
        "host" => Mode::Host,
        m if m.starts_with("container:") => Mode::Container(m["container:".len()..].to_string()),
        _ => Mode::Networks,
    }
}

/// The `none` and `host` networks plug no interface, but dockerd still
/// gives a running container an endpoint (and its ID) on them; the stop's
/// `detach_networks` clears it again.
pub fn join_without_interface(eps: &mut BTreeMap<String, EndpointSettings>) {
    for ep in eps.values_mut() {
        ep.endpoint_id = Some(super::ids::new_object_id());
    }
}

fn ip_forward_on() {
    // Docker turns forwarding on for bridge networks to reach the outside.
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
}

/// As Docker with ip6tables: IPv6 networks route, so IPv6 forwarding goes
/// on (berth's ip6 table then keeps the networks apart).
fn ip6_forward_on() {
    let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1");
}

impl Engine {
    pub(crate) fn net_event(&self, action: &str, n: &NetRecord, extra: &[(&str, String)]) {
        let mut attrs: HashMap<String, String> = n.labels.clone();
        attrs.insert("name".into(), n.name.clone());
        attrs.insert("type".into(), n.driver.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("network", action, &n.id, attrs);
    }

    /// Subnets berth must not hand out: host routes and existing networks.
    async fn taken_subnets(&self) -> Result<Vec<Subnet>> {
        let h = self.networks.handle()?;
        let mut v = bridge::host_routes(&h).await?;
        v.extend(self.networks.all().iter().filter_map(|n| n.subnet()));
        Ok(v)
    }

    async fn pick_subnet(&self, skip_own_bridge: Option<&str>) -> Result<Subnet> {
        let mut taken = self.taken_subnets().await?;
        if let Some(b) = skip_own_bridge {
            // Our own default bridge's route must not block reusing its subnet.
            if let Some(n) = self.networks.all().iter().find(|n| n.bridge == b) {
                if let Some(s) = n.subnet() {
                    taken.retain(|t| *t != s);
                }
            }
        }
        for p in &self.config.default_address_pools {
            let Ok(base) = p.base.parse::<Subnet>() else {
                continue;
            };
            if let Some(s) = ipam::carve(&base, p.size, &taken) {
                return Ok(s);
            }
        }
        Err(EngineError::Forbidden(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
        ))
    }

    /// Creates the predefined networks on first start, brings the bridges
    /// up, and rebuilds the firewall table.
    pub async fn init_networks(&self) -> Result<()> {
        let now = super::clock::now();
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if self
                .networks
                .all()
                .iter()
                .any(|n| n.name == name && n.predefined)
            {
                continue;
            }
            let mut rec = NetRecord {
                id: super::ids::new_object_id(),
                name: name.into(),
                driver: driver.into(),
                created: now.clone(),
                predefined: true,
                ..Default::default()
            };
            if driver == "bridge" {
                // As dockerd with docker0: a bridge that is already there
                // with an address keeps it (a fresh data root beside it
                // must not add another subnet).
                let (s, gw) = match self.existing_bridge_address().await? {
                    Some(found) => found,
                    None => {
                        let s = self.pick_subnet(Some(&self.config.bridge)).await?;
                        (s, Ipv4Addr::from(s.first() + 1))
                    }
                };
                rec.bridge = self.config.bridge.clone();
                rec.subnet = Some(s.to_string());
                rec.gateway = Some(gw.to_string());
                rec.options.insert(
                    "com.docker.network.bridge.default_bridge".into(),
                    "true".into(),
                );
                rec.options
                    .insert("com.docker.network.bridge.enable_icc".into(), "true".into());
                rec.options.insert(
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "true".into(),
                );
                rec.options.insert(
                    "com.docker.network.bridge.name".into(),
                    self.config.bridge.clone(),
                );
                rec.options
                    .insert("com.docker.network.driver.mtu".into(), "1500".into());
            }
            self.store.put(Table::Networks, &rec.id, &rec)?;
            self.networks.insert(rec);
        }
        let h = self.networks.handle()?;
        let owner = self.bridge_owner();
        self.remove_stale_bridges(&h, &owner).await;
        for n in self.networks.all().iter().filter(|n| n.is_bridge()) {
            let gw = match (n.gateway_ip(), n.subnet()) {
                (Some(g), Some(s)) => Some((g, s.prefix)),
                _ => None,
            };
            let idx = bridge::ensure_bridge(&h, &n.bridge, gw, &owner).await?;
            if let (Some(g6), Some(s6)) = (n.gateway6_ip(), n.subnet6()) {
                bridge::add_addr6(&h, idx, g6, s6.prefix).await?;
                if !n.internal {
                    ip6_forward_on();
                }
            }
        }
        self.prune_default_bridge(&h, &owner).await;
        ip_forward_on();
        self.refresh_firewall()
    }

    /// The alias that marks the bridges this daemon creates; the firewall
    /// table's name is what sets one daemon's host state apart from another's.
    fn bridge_owner(&self) -> String {
        format!("berth:{}", self.config.firewall_table)
    }

    /// The default bridge's first usable IPv4 address, if the bridge exists.
    async fn existing_bridge_address(&self) -> Result<Option<(Subnet, Ipv4Addr)>> {
        let h = self.networks.handle()?;
        let addrs = bridge::ipv4_addrs(&h, &self.config.bridge).await?;
        Ok(addrs.into_iter().find_map(|(ip, plen)| {
            let s = Subnet::new(ip, plen);
            let host = u32::from(ip);
            (plen <= 30 && host != s.first() && host != s.last()).then_some((s, ip))
        }))
    }

    /// Removes from the default bridge the IPv4 addresses other than the
    /// `bridge` network's gateway that berth put there: all of them on a
    /// bridge berth created, only those in berth's address pools on one it
    /// adopted (what an earlier berth added, never the owner's own).
    async fn prune_default_bridge(&self, h: &rtnetlink::Handle, owner: &str) {
        let Some(n) = self
            .networks
            .all()
            .into_iter()
            .find(|n| n.predefined && n.is_bridge())
        else {
            return;
        };
        let Some(gw) = n.gateway_ip() else {
            return;
        };
        let created = bridge::is_owned_bridge(h, &n.bridge, owner)
            .await
            .unwrap_or(false);
        let pools: Vec<Subnet> = self
            .config
            .default_address_pools
            .iter()
            .filter_map(|p| p.base.parse().ok())
            .collect();
        let removable = |ip: Ipv4Addr, _plen: u8| created || pools.iter().any(|p| p.contains(ip));
        match bridge::prune_ipv4(h, &n.bridge, gw, removable).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(bridge = %n.bridge, removed = ?gone, "removed stale addresses");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(bridge = %n.bridge, "pruning addresses: {e}"),
        }
    }

    /// Deletes the bridges this daemon created for networks no longer in its
    /// store: those carrying its alias, and those of berth's `br-` scheme
    /// listed in its own firewall table from the last run. Nothing else.
    async fn remove_stale_bridges(&self, h: &rtnetlink::Handle, owner: &str) {
        let mut candidates = bridge::owned_bridges(h, owner).await.unwrap_or_default();
        candidates.extend(
            firewall::listed_bridges(&self.config.firewall_table)
                .into_iter()
                .filter(|b| is_generated_bridge_name(b)),
        );
        let known: Vec<String> = self
            .networks
            .all()
            .iter()
            .map(|n| n.bridge.clone())
            .collect();
        candidates.sort();
        candidates.dedup();
        for b in candidates {
            if b == self.config.bridge || known.contains(&b) {
                continue;
            }
            match bridge::delete_link(h, &b).await {
                Ok(()) => {
                    tracing::info!(bridge = %b, "removed the bridge of a network that is gone")
                }
                Err(e) => tracing::warn!(bridge = %b, "removing a stale bridge: {e}"),
            }
        }
    }

    /// Renders and applies berth's nftables table from the current state.
    pub fn refresh_firewall(&self) -> Result<()> {
        let nets: Vec<firewall::BridgeNet> = self
            .networks
            .all()
            .iter()
            .filter(|n| n.is_bridge())
            .filter_map(|n| {
                Some(firewall::BridgeNet {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet()?,
                    internal: n.internal,
                })
            })
            .collect();
        let dnats: Vec<firewall::Dnat> = lock(&self.networks.live)
            .values()
            .flat_map(|l| l.dnats.clone())
            .collect();
        firewall::apply(&firewall::render(
            &self.config.firewall_table,
            &nets,
            &dnats,
        ))
    }

    pub async fn create_network(&self, req: NetworkCreateRequest) -> Result<(String, String)> {
        let _w = self.networks.write.lock().await;
        let name = req.name.trim().to_string();
        if name.is_empty() {
            return Err(EngineError::invalid("network name cannot be empty"));
        }
        // dockerd refuses these names before looking for a clash (the
        // trailing space is its own).
        if ["bridge", "host", "none", "default"].contains(&name.as_str()) {
            return Err(EngineError::Forbidden(format!(
                "operation is not permitted on predefined {name} network "
            )));
        }
        if self.networks.all().iter().any(|n| n.name == name) {
            return Err(EngineError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let driver = req
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "bridge".into());
        match driver.as_str() {
            "bridge" => {}
            "host" | "null" => {
                return Err(EngineError::Forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )))
            }
            other => {
                return Err(EngineError::not_found(format!(
                    "plugin \"{other}\" not found"
                )))
            }
        }
        // Refusals of what the request asks, not server failures: no 5xx
        // (clients retry those).
        if req.ingress == Some(true) {
            return Err(EngineError::Forbidden(
                "ingress networks are only available in swarm mode, which berth does not serve"
                    .into(),
            ));
        }
        if req.config_only == Some(true) {
            return Err(EngineError::invalid(
                "config-only networks are not supported",
            ));
        }
        let id = super::ids::new_object_id();
        let opts = req.options.clone().unwrap_or_default();
        let bridge_name = opts
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge_name.len() > 15 {
            return Err(EngineError::invalid(format!(
                "bridge name {bridge_name} is longer than 15 characters"
            )));
        }
        if self.networks.all().iter().any(|n| n.bridge == bridge_name) {
            return Err(EngineError::conflict(format!(
                "bridge {bridge_name} is already in use"
            )));
        }
        let ipam = req.ipam.clone().unwrap_or_default();
        if let Some(d) = ipam
            .driver
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "default")
        {
            return Err(EngineError::not_found(format!("plugin \"{d}\" not found")));
        }
        let mut subnet = None;
        let mut gateway = None;
        let mut ip_range = None;
        let mut user_subnet = false;
        let taken = self.taken_subnets().await?;
        for c in ipam.config.clone().unwrap_or_default() {
            let Some(sn) = c.subnet.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            if sn.contains(':') {
                // IPv6 subnets are recorded for inspect; addresses are IPv4 only.
                continue;
            }
            let s: Subnet = sn.parse()?;
            if s.prefix > 30 {
                return Err(EngineError::invalid(format!(
                    "invalid subnet {sn}: too small"
                )));
            }
            if taken.iter().any(|t| t.overlaps(&s)) {
                return Err(EngineError::Forbidden(
                    "invalid pool request: Pool overlaps with other one on this address space"
                        .into(),
                ));
            }
            let gw = match c.gateway.as_deref().filter(|g| !g.is_empty()) {
                Some(g) => {
                    let ip: Ipv4Addr = g
                        .parse()
                        .map_err(|_| EngineError::invalid(format!("invalid gateway {g}")))?;
                    if !s.contains(ip) {
                        return Err(EngineError::invalid(format!(
                            "no matching subnet for gateway {g}"
                        )));
                    }
                    ip
                }
                None => Ipv4Addr::from(s.first() + 1),
            };
            if let Some(r) = c.ip_range.as_deref().filter(|r| !r.is_empty()) {
                let rr: Subnet = r.parse()?;
                if !s.contains(rr.base) || rr.prefix < s.prefix {
                    return Err(EngineError::invalid(format!(
                        "no matching subnet for range {r}"
                    )));
                }
                ip_range = Some(rr.to_string());
            }
            subnet = Some(s);
            gateway = Some(gw);
            user_subnet = true;
            break;
        }
        let mut v6: Option<(ipam::Subnet6, std::net::Ipv6Addr)> = None;
        if req.enable_ipv6 == Some(true) {
            for c in ipam.config.clone().unwrap_or_default() {
                let Some(sn) = c.subnet.as_deref().filter(|s| s.contains(':')) else {
                    continue;
                };
                let s6 = ipam::Subnet6::parse(sn)?;
                let gw6 = match c.gateway.as_deref().filter(|g| g.contains(':')) {
                    Some(g) => g
                        .parse()
                        .map_err(|_| EngineError::invalid(format!("invalid gateway {g}")))?,
                    None => s6.nth(1),
                };
                if self
                    .networks
                    .all()
                    .iter()
                    .filter_map(|n| n.subnet6())
                    .any(|o| o.contains(s6.base) || s6.contains(o.base))
                {
                    return Err(EngineError::Forbidden(
                        "invalid pool request: Pool overlaps with other one on this address space"
                            .into(),
                    ));
                }
                v6 = Some((s6, gw6));
            }
            if v6.is_none() {
                return Err(EngineError::invalid("an IPv6 subnet is required with --ipv6: no default IPv6 address pools are configured"));
            }
        }
        let subnet = match subnet {
            Some(s) => s,
            None => {
                let s = self.pick_subnet(None).await?;
                gateway = Some(Ipv4Addr::from(s.first() + 1));
                s
            }
        };
        let rec = NetRecord {
            id: id.clone(),
            name: name.clone(),
            driver,
            created: super::clock::now(),
            bridge: bridge_name.clone(),
            subnet: Some(subnet.to_string()),
            gateway: gateway.map(|g| g.to_string()),
            ip_range,
            subnet6: v6.map(|(s, _)| s.to_string()),
            gateway6: v6.map(|(_, g)| g.to_string()),
            user_subnet,
            internal: req.internal.unwrap_or(false),
            attachable: req.attachable.unwrap_or(false),
            enable_ipv6: req.enable_ipv6.unwrap_or(false),
            labels: req.labels.clone().unwrap_or_default(),
            options: opts,
            ipam_options: ipam.options.clone(),
            predefined: false,
        };
        let h = self.networks.handle()?;
        let idx = bridge::ensure_bridge(
            &h,
            &bridge_name,
            gateway.map(|g| (g, subnet.prefix)),
            &self.bridge_owner(),
        )
        .await?;
        if let Some((s6, g6)) = v6 {
            bridge::add_addr6(&h, idx, g6, s6.prefix).await?;
        }
        if let Err(e) = self.store.put(Table::Networks, &id, &rec) {
            let _ = bridge::delete_link(&h, &bridge_name).await;
            return Err(e);
        }
        let rec = self.networks.insert(rec);
        if !rec.internal {
            ip_forward_on();
            if rec.subnet6().is_some() {
                ip6_forward_on();
            }
        }
        self.refresh_firewall()?;
        self.net_event("create", &rec, &[]);
        Ok((id, String::new()))
    }

    pub async fn remove_network(&self, key: &str) -> Result<()> {
        let _w = self.networks.write.lock().await;
        let n = self.networks.find(key)?;
        if n.predefined {
            return Err(EngineError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !self.networks.attached_to(&n.name).is_empty() {
            return Err(EngineError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.store.delete(Table::Networks, &n.id)?;
        self.networks
            .index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&n.id);
        lock(&self.networks.used).remove(&n.id);
        let h = self.networks.handle()?;
        if let Err(e) = bridge::delete_link(&h, &n.bridge).await {
            tracing::warn!(bridge = %n.bridge, error = %e, "removing bridge");
        }
        self.refresh_firewall()?;
        self.net_event("destroy", &n, &[]);
        Ok(())
    }

    pub fn network_view(&self, n: &NetRecord, with_containers: bool) -> Network {
        let mut containers = HashMap::new();
        if with_containers {
            for (id, a) in self.networks.attached_to(&n.name) {
                let ep = &a.settings;
                containers.insert(
                    id,
                    NetworkContainer {
                        name: Some(a.name.clone()),
                        endpoint_id: ep.endpoint_id.clone(),
                        mac_address: ep.mac_address.clone(),
                        ipv4_address: Some(
                            match ep.ip_address.as_deref().filter(|a| !a.is_empty()) {
                                Some(a) => format!("{a}/{}", ep.ip_prefix_len.unwrap_or(0)),
                                None => String::new(),
                            },
                        ),
                        ipv6_address: Some(
                            match ep.global_ipv6_address.as_deref().filter(|a| !a.is_empty()) {
                                Some(a) => {
                                    format!("{a}/{}", ep.global_ipv6_prefix_len.unwrap_or(0))
                                }
                                None => String::new(),
                            },
                        ),
                    },
                );
            }
        }
        let config = match (&n.subnet, &n.gateway) {
            (Some(s), g) if n.is_bridge() => vec![IpamConfig {
                subnet: Some(s.clone()),
                ip_range: n.ip_range.clone(),
                gateway: g.clone(),
                auxiliary_addresses: None,
            }],
            _ => vec![],
        };
        let mut config = config;
        if let Some(s6) = &n.subnet6 {
            config.push(IpamConfig {
                subnet: Some(s6.clone()),
                ip_range: None,
                gateway: n.gateway6.clone(),
                auxiliary_addresses: None,
            });
        }
        Network {
            name: Some(n.name.clone()),
            id: Some(n.id.clone()),
            created: Some(n.created.clone()),
            scope: Some("local".into()),
            driver: Some(n.driver.clone()),
            enable_ipv4: Some(true),
            enable_ipv6: Some(n.enable_ipv6),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(config),
                options: n.ipam_options.clone(),
            }),
            internal: Some(n.internal),
            attachable: Some(n.attachable),
            ingress: Some(false),
            config_from: Some(berth_api::models::ConfigReference {
                network: Some(String::new()),
            }),
            config_only: Some(false),
            containers: Some(containers),
            options: Some(n.options.clone()),
            labels: Some(n.labels.clone()),
            peers: None,
        }
    }

    pub fn inspect_network(&self, key: &str) -> Result<Network> {
        let n = self.networks.find(key)?;
        Ok(self.network_view(&n, true))
    }

    pub fn list_networks(&self, f: &Filters) -> Result<Vec<Network>> {
        f.validate(&["name", "id", "label", "driver", "type", "dangling", "scope"])?;
        for t in f.get("type") {
            if t != "custom" && t != "builtin" {
                return Err(EngineError::invalid(format!(
                    "invalid filter: 'type'='{t}'"
                )));
            }
        }
        let dangling = f.get_bool("dangling")?;
        let mut out = Vec::new();
        let mut nets = self.networks.all();
        nets.sort_by(|a, b| a.name.cmp(&b.name));
        for n in nets {
            if !f.substring_match("name", &n.name)
                || !f.prefix_match("id", &n.id)
                || !f.exact_match("driver", &n.driver)
                || !f.exact_match("scope", "local")
                || !f.match_labels("label", Some(&n.labels))
                || !f.exact_match("type", if n.predefined { "builtin" } else { "custom" })
            {
                continue;
            }
            if let Some(d) = dangling {
                let unused = self.networks.attached_to(&n.name).is_empty() && !n.predefined;
                if unused != d {
                    continue;
                }
            }
            out.push(self.network_view(&n, false));
        }
        Ok(out)
    }

    pub async fn prune_networks(&self, f: &Filters) -> Result<Vec<String>> {
        f.validate(&["until", "label", "label!"])?;
        let mut gone = Vec::new();
        for n in self.networks.all() {
            if n.predefined || !f.match_labels("label", Some(&n.labels)) {
                continue;
            }
            let used_at_all = self.networks.is_referenced(&n.name);
            if used_at_all {
                continue;
            }
            if self.remove_network(&n.id).await.is_ok() {
                gone.push(n.name.clone());
            }
        }
        Ok(gone)
    }

    #[allow(clippy::too_many_arguments)]
    /// Joins container `cid` (named `name`) to bridge network `n`: an
    /// address, a veth into `netns` named `ifname`, and its DNS names.
    pub(crate) async fn plug(
        &self,
        h: &rtnetlink::Handle,
        cid: &str,
        name: &str,
        n: &NetRecord,
        ep: &mut EndpointSettings,
        netns: &Path,
        ifname: &str,
        default_route: bool,
    ) -> Result<()> {
        // As dockerd, an endpoint's links are parsed when it joins.
        for l in ep.links.iter().flatten() {
            berth_api::links::parse(l).map_err(|e| EngineError::internal(e.to_string()))?;
        }
        let want = ep.ipam_config.as_ref().and_then(|c| c.ipv4_address.clone());
        let ip = self.networks.allocate(n, cid, want.as_deref())?;
        let subnet = n
            .subnet()
            .ok_or_else(|| EngineError::internal("no subnet"))?;
        let mac = match ep.mac_address.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => ipam::parse_mac(m)?,
            None => ipam::mac_for(ip),
        };
        let br_idx = match bridge::link_index(h, &n.bridge).await? {
            Some(i) => i,
            None => {
                bridge::ensure_bridge(
                    h,
                    &n.bridge,
                    n.gateway_ip().map(|g| (g, subnet.prefix)),
                    &self.bridge_owner(),
                )
                .await?
            }
        };
        let ip6 = match n.subnet6() {
            Some(s6) => {
                let want6 = ep.ipam_config.as_ref().and_then(|c| c.ipv6_address.clone());
                match self.networks.allocate6(n, &s6, cid, want6.as_deref()) {
                    Ok(a) => Some((a, s6.prefix)),
                    Err(e) => {
                        self.networks.release(&n.id, cid);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let mut iface = bridge::Iface {
            name: ifname.to_string(),
            ip,
            prefix: subnet.prefix,
            mac,
            ip6: None,
            gateway6: None,
            gateway: if default_route && !n.internal {
                n.gateway_ip()
            } else {
                None
            },
        };
        iface.ip6 = ip6;
        iface.gateway6 = if default_route && !n.internal {
            n.gateway6_ip()
        } else {
            None
        };
        if let Err(e) = bridge::add_endpoint(h, br_idx, netns, iface).await {
            self.networks.release(&n.id, cid);
            return Err(e);
        }
        ep.ip_address = Some(ip.to_string());
        ep.ip_prefix_len = Some(subnet.prefix as i64);
        ep.gateway = Some(n.gateway.clone().unwrap_or_default());
        ep.mac_address = Some(ipam::mac_string(&mac));
        ep.network_id = Some(n.id.clone());
        if let Some((a, p)) = ip6 {
            ep.global_ipv6_address = Some(a.to_string());
            ep.global_ipv6_prefix_len = Some(p as i64);
            ep.ipv6_gateway = Some(n.gateway6.clone().unwrap_or_default());
        }
        ep.endpoint_id = Some(super::ids::new_object_id());
        if n.has_dns() {
            let mut names = vec![name.to_string(), cid[..12].to_string()];
            for a in ep.aliases.clone().unwrap_or_default() {
                if !names.contains(&a) {
                    names.push(a);
                }
            }
            ep.dns_names = Some(names);
        }
        Ok(())
    }

    /// Publishes container `cid`'s ports on the host, forwarded to
    /// `target` (its address on its first network). Returns what was bound.
    pub(crate) async fn publish(
        &self,
        cid: &str,
        ports: &Publish,
        target: Option<Ipv4Addr>,
    ) -> Result<PortMap> {
        let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
        for (k, v) in ports.bindings.clone() {
            bindings.insert(k, v.unwrap_or_default());
        }
        if ports.all {
            for k in &ports.exposed {
                bindings.entry(k.clone()).or_default();
                if bindings[k].is_empty() {
                    bindings.insert(
                        k.clone(),
                        vec![PortBinding {
                            host_ip: Some(String::new()),
                            host_port: Some(String::new()),
                        }],
                    );
                }
            }
        }
        let mut out: PortMap = HashMap::new();
        for k in &ports.exposed {
            out.insert(k.clone(), None);
        }
        let Some(target) = target else {
            return Ok(out);
        };
        let mut live = Live::default();
        for (port_proto, binds) in &bindings {
            let (ctr_port, proto) = port_proto
                .split_once('/')
                .unwrap_or((port_proto.as_str(), "tcp"));
            let ctr_port: u16 = ctr_port
                .parse()
                .map_err(|_| EngineError::invalid(format!("invalid port {port_proto}")))?;
            let mut actual = Vec::new();
            for b in binds {
                let host_ip = b
                    .host_ip
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into());
                let ip: std::net::IpAddr = host_ip
                    .parse()
                    .map_err(|_| EngineError::invalid(format!("invalid host IP {host_ip}")))?;
                let candidates: Vec<u16> = match b.host_port.as_deref().filter(|p| !p.is_empty()) {
                    None => vec![0],
                    Some(p) => match p.split_once('-') {
                        Some((a, z)) => {
                            let (a, z): (u16, u16) = (
                                a.parse().map_err(|_| {
                                    EngineError::invalid(format!("invalid port range {p}"))
                                })?,
                                z.parse().map_err(|_| {
                                    EngineError::invalid(format!("invalid port range {p}"))
                                })?,
                            );
                            (a..=z).collect()
                        }
                        None => vec![p
                            .parse()
                            .map_err(|_| EngineError::invalid(format!("invalid host port {p}")))?],
                    },
                };
                let mut last_err = None;
                let mut bound = None;
                for hp in candidates {
                    match proxy::start(
                        proto,
                        SocketAddr::new(ip, hp),
                        SocketAddr::new(target.into(), ctr_port),
                    )
                    .await
                    {
                        Ok(x) => {
                            bound = Some(x);
                            break;
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                let (px, port) = match bound {
                    Some(x) => x,
                    None => {
                        drop(live);
                        return Err(last_err.unwrap_or_else(|| EngineError::internal("no port")));
                    }
                };
                live.proxies.push(px);
                if let std::net::IpAddr::V4(v4) = ip {
                    if !v4.is_loopback() {
                        live.dnats.push(firewall::Dnat {
                            host_ip: (!v4.is_unspecified()).then_some(v4),
                            host_port: port,
                            proto: proto.to_string(),
                            target,
                            target_port: ctr_port,
                        });
                    }
                }
                actual.push(PortBinding {
                    host_ip: Some(host_ip.clone()),
                    host_port: Some(port.to_string()),
                });
            }
            out.insert(port_proto.clone(), Some(actual));
        }
        let had_dnat = !live.dnats.is_empty();
        {
            let mut l = lock(&self.networks.live);
            let e = l.entry(cid.to_string()).or_default();
            e.proxies.append(&mut live.proxies);
            e.dnats.append(&mut live.dnats);
        }
        if had_dnat {
            self.refresh_firewall()?;
        }
        Ok(out)
    }

    /// The gateway of the default bridge (for `host-gateway` in --add-host).
    pub fn default_gateway(&self) -> Option<String> {
        self.networks
            .all()
            .iter()
            .find(|n| n.name == "bridge" && n.predefined)
            .and_then(|n| n.gateway.clone())
    }
}

/// Attachment order: the default bridge first, then by name (Docker sorts
/// by gateway priority, then name).
/// `br-` and twelve hex digits: the name berth gives a network's bridge.
fn is_generated_bridge_name(name: &str) -> bool {
    name.strip_prefix("br-")
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|c| c.is_ascii_hexdigit()))
}

pub fn validate_endpoint(n: &NetRecord, ep: &EndpointSettings) -> Result<()> {
    // Addresses are checked for form first (as dockerd).
    if let Some(c) = &ep.ipam_config {
        if let Some(a) = c.ipv4_address.as_deref().filter(|a| !a.is_empty()) {
            a.parse::<Ipv4Addr>()
                .map_err(|_| EngineError::invalid(format!("invalid IPv4 address: {a}")))?;
        }
        if let Some(a) = c.ipv6_address.as_deref().filter(|a| !a.is_empty()) {
            a.parse::<std::net::Ipv6Addr>()
                .map_err(|_| EngineError::invalid(format!("invalid IPv6 address: {a}")))?;
        }
    }
    let wants_ip = ep.ipam_config.as_ref().is_some_and(|c| {
        c.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
            || c.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
    });
    if wants_ip && (n.predefined || !(n.user_subnet || n.subnet6.is_some())) {
        return Err(EngineError::invalid(if n.predefined {
            "user specified IP address is supported on user defined networks only".to_string()
        } else {
            "user specified IP address is supported only when connecting to networks with user configured subnets".to_string()
        }));
    }
    if let Some(ip) = ep
        .ipam_config
        .as_ref()
        .and_then(|c| c.ipv4_address.as_deref())
        .filter(|a| !a.is_empty())
    {
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| EngineError::invalid(format!("invalid IPv4 address: {ip}")))?;
        if let Some(s) = n.subnet() {
            if !s.contains(ip) {
                return Err(EngineError::invalid(format!(
                    "no configured subnet or ip-range contain the IP address {ip}"
                )));
            }
        }
    }
    if ep.aliases.as_ref().is_some_and(|a| !a.is_empty()) && n.predefined {
        return Err(EngineError::invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    if let Some(m) = ep.mac_address.as_deref().filter(|m| !m.is_empty()) {
        ipam::parse_mac(m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_berths_generated_bridge_names_match() {
        assert!(is_generated_bridge_name("br-0123456789ab"));
        assert!(!is_generated_bridge_name("br-0123456789a"));
        assert!(!is_generated_bridge_name("br-0123456789xz"));
        assert!(!is_generated_bridge_name("berth0"));
        assert!(!is_generated_bridge_name("docker0"));
    }
}
