//! Networks: the predefined `bridge`, `host` and `none`, user-defined bridge
//! networks, and each container's attachment to them (address, veth, port
//! publishing, embedded DNS). Networks and endpoints go through the
//! drivers (`driver/`: the network driver and IPAM traits, bridge, host,
//! null, default IPAM); kernel work is in `bridge.rs` (netlink) and
//! `firewall.rs` (berth's own nftables table).

pub mod attach;
pub mod bridge;
pub mod dns;
pub mod driver;
pub mod endpoints;
pub mod firewall;
pub mod ipam;
pub mod netns;
mod pending;
pub mod plugin;
pub mod portdriver;
pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, RwLock};

use berth_api::filters::Filters;
use berth_api::models::{
    EndpointSettings, Ipam, IpamConfig, Network, NetworkContainer, NetworkCreateRequest, PortMap,
};
use serde::{Deserialize, Serialize};

use super::store::Table;
use super::{EngineError, Result};
use driver::ipam::{pool_id, DefaultIpam, ADDRESS_SPACE};
use driver::{
    CreateNetworkRequest, DeleteNetworkRequest, IpamData, NetworkOptions, ReleasePoolRequest,
    RequestAddressRequest, RequestPoolRequest, BRIDGE_NAME, GATEWAY_ADDRESS, REQUEST_ADDRESS_TYPE,
    REUSABLE_POOL,
};
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
    /// A network whose driver is a plugin (`plugin.rs`).
    #[serde(default)]
    pub plugin: Option<plugin::PluginNet>,
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

    /// Its driver gives containers an interface (all but `host` and `null`).
    pub fn plugs(&self) -> bool {
        !matches!(self.driver.as_str(), "host" | "null")
    }

    /// User-defined networks get the embedded DNS; the default bridge does not.
    pub fn has_dns(&self) -> bool {
        self.plugs() && !self.predefined
    }

    /// The IPAM's name (`Ipam.Driver`).
    pub fn ipam_driver(&self) -> &str {
        self.plugin.as_ref().map_or("default", |p| p.ipam.as_str())
    }

    /// Its IPAM is a plugin (which keeps its own allocations).
    pub fn remote_ipam(&self) -> bool {
        self.ipam_driver() != "default"
    }

    /// The IPv4 pool its addresses come from (the IPAM's pool ID).
    pub fn pool_id(&self) -> Option<String> {
        if let Some(p) = self.plugin.as_ref().and_then(|p| p.pool.clone()) {
            return Some(p);
        }
        Some(pool_id(self.subnet.as_deref()?, self.ip_range.as_deref()))
    }

    pub fn pool6_id(&self) -> Option<String> {
        if let Some(p) = self.plugin.as_ref().and_then(|p| p.pool6.clone()) {
            return Some(p);
        }
        Some(pool_id(self.subnet6.as_deref()?, None))
    }

    /// What its driver is told to create (at `network create`, and for
    /// every network again when the daemon starts).
    fn driver_request(&self) -> CreateNetworkRequest {
        let data = |pool: &Option<String>, gw: &Option<String>| -> Vec<IpamData> {
            let Some(p) = pool else {
                return Vec::new();
            };
            let prefix = p.split_once('/').map_or("", |(_, l)| l);
            vec![IpamData {
                address_space: ADDRESS_SPACE.into(),
                pool: p.clone(),
                gateway: gw
                    .as_deref()
                    .map(|g| format!("{g}/{prefix}"))
                    .unwrap_or_default(),
                aux_addresses: HashMap::new(),
            }]
        };
        let mut generic = self.options.clone();
        generic.insert(BRIDGE_NAME.into(), self.bridge.clone());
        CreateNetworkRequest {
            network_id: self.id.clone(),
            options: NetworkOptions {
                generic,
                enable_ipv6: self.enable_ipv6,
                internal: self.internal,
            },
            ipv4_data: data(&self.subnet, &self.gateway),
            ipv6_data: data(&self.subnet6, &self.gateway6),
        }
    }
}

/// The ports a container asks to publish: `HostConfig.PortBindings`,
/// `PublishAllPorts` and the keys of `Config.ExposedPorts`.
pub struct Publish {
    pub bindings: PortMap,
    pub all: bool,
    pub exposed: Vec<String>,
}

/// Per running container: its embedded DNS server, stopped with it.
#[derive(Default)]
pub struct Live {
    pub dns: Option<dns::DnsServer>,
}

/// The daemon settings networks use.
struct Settings {
    /// The default bridge's link name (`--bridge`).
    bridge: String,
    /// `default-address-pools`, as given.
    default_address_pools: Vec<crate::config::AddressPool>,
    /// berth's nftables table (`firewall-table`).
    firewall_table: String,
}

pub struct Networks {
    store: Arc<super::store::Store>,
    events: Arc<super::events::EventBus>,
    config: Settings,
    index: RwLock<BTreeMap<String, Arc<NetRecord>>>,
    netlink: Arc<bridge::Netlink>,
    drivers: driver::Registry,
    /// The `bridge` driver also renders the firewall table.
    bridge_driver: Arc<driver::bridge::BridgeDriver>,
    /// Plugins, for the networks whose driver or IPAM is one (installed
    /// once, `Networks::set_plugins`).
    plugins: std::sync::OnceLock<Arc<super::plugins::Plugins>>,
    /// The plugins' network drivers by name, made on first use (`plugin.rs`).
    remote: Mutex<HashMap<String, Arc<driver::remote::RemoteDriver>>>,
    /// What each running container holds on its networks (`attach.rs`).
    joined: Mutex<HashMap<String, attach::Joined>>,
    pub live: Mutex<HashMap<String, Live>>,
    /// Running containers' endpoints (see `endpoints.rs`).
    endpoints: Mutex<endpoints::Table>,
    /// Serialises network creation and removal.
    write: tokio::sync::Mutex<()>,
    /// Bridges being made (`pending.rs`).
    pending: pending::Pending,
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
    pub fn open(
        store: Arc<super::store::Store>,
        events: Arc<super::events::EventBus>,
        config: &crate::config::DaemonConfig,
    ) -> Result<Self> {
        let netlink = Arc::new(bridge::Netlink::default());
        let port_driver = config.rootless.then(|| {
            let d = portdriver::PortDriver::new(
                crate::rootless::paths::state_dir(&config.exec_root)
                    .join(crate::rootless::slirp::SOCKET),
                crate::rootless::host_port_start(),
            );
            // Running containers publish theirs again as they are restored.
            d.clear();
            d
        });
        let bridge_driver = Arc::new(driver::bridge::BridgeDriver::new(
            netlink.clone(),
            format!("berth:{}", config.firewall_table),
            config.firewall_table.clone(),
            port_driver,
        ));
        let nl = netlink.clone();
        let routes: driver::ipam::Routes = Arc::new(move || {
            let nl = nl.clone();
            Box::pin(async move { bridge::host_routes(&nl.handle()?).await })
        });
        let defaults: Vec<(String, u8)> = config
            .default_address_pools
            .iter()
            .map(|p| (p.base.clone(), p.size))
            .collect();
        let mut network: HashMap<String, Arc<dyn driver::NetworkDriver>> = HashMap::new();
        network.insert("bridge".into(), bridge_driver.clone());
        network.insert(
            "host".into(),
            Arc::new(driver::singleton::Singleton::host()),
        );
        network.insert(
            "null".into(),
            Arc::new(driver::singleton::Singleton::null()),
        );
        let mut ipam: HashMap<String, Arc<dyn driver::IpamDriver>> = HashMap::new();
        ipam.insert(
            "default".into(),
            Arc::new(DefaultIpam::new(&defaults, routes)),
        );
        let n = Networks {
            store: store.clone(),
            events,
            config: Settings {
                bridge: config.bridge.clone(),
                default_address_pools: config.default_address_pools.clone(),
                firewall_table: config.firewall_table.clone(),
            },
            index: RwLock::default(),
            netlink,
            drivers: driver::Registry { network, ipam },
            bridge_driver,
            plugins: std::sync::OnceLock::new(),
            remote: Mutex::default(),
            joined: Mutex::default(),
            live: Mutex::default(),
            endpoints: Mutex::default(),
            write: tokio::sync::Mutex::default(),
            pending: pending::Pending::new(&config.exec_root),
            referenced: std::sync::OnceLock::new(),
        };
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

    /// Installs the plugins (once): networks whose driver or IPAM is a
    /// plugin reach it through them.
    pub fn set_plugins(&self, plugins: Arc<super::plugins::Plugins>) {
        let _ = self.plugins.set(plugins);
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
        self.netlink.handle()
    }

    /// Marks network `n`'s gateways taken in its pools (which also makes
    /// the default IPAM count the pools as in use).
    fn claim_gateways(&self, n: &NetRecord) {
        if n.remote_ipam() {
            // A plugin keeps its own allocations.
            return;
        }
        let Ok(ipam) = self.ipam_of(n) else {
            return;
        };
        for (pool, gw) in [(n.pool_id(), &n.gateway), (n.pool6_id(), &n.gateway6)] {
            let (Some(pool_id), Some(gw)) = (pool, gw) else {
                continue;
            };
            let req = RequestAddressRequest {
                pool_id,
                address: gw.clone(),
                options: HashMap::from([(REQUEST_ADDRESS_TYPE.into(), GATEWAY_ADDRESS.into())]),
            };
            if let Err(e) = ipam.request_address(&req) {
                tracing::warn!(network = %n.name, error = %e, "claiming the gateway");
            }
        }
    }

    /// A pool picked by the IPAM; `reusable`: a subnet it may take
    /// although a host route covers it.
    async fn auto_pool(&self, n: &NetRecord, reusable: Option<String>) -> Result<Subnet> {
        let mut req = RequestPoolRequest {
            address_space: ADDRESS_SPACE.into(),
            ..Default::default()
        };
        if let Some(r) = reusable {
            req.options.insert(REUSABLE_POOL.into(), r);
        }
        let p = self.ipam_of(n)?.request_pool(&req).await?;
        p.pool.parse()
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
/// A container's endpoints by network name. Boxed: a map's node has room
/// for eleven entries, and a container (a thousand at once) mostly has one.
pub type EndpointMap = BTreeMap<String, Box<EndpointSettings>>;

pub fn join_without_interface(eps: &mut EndpointMap) {
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

impl Networks {
    pub(crate) fn net_event(&self, action: &str, n: &NetRecord, extra: &[(&str, String)]) {
        let mut attrs: HashMap<String, String> = n.labels.clone();
        attrs.insert("name".into(), n.name.clone());
        attrs.insert("type".into(), n.driver.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("network", action, &n.id, attrs);
    }

    /// Creates the predefined networks on first start, brings the bridges
    /// up, and rebuilds the firewall table.
    pub async fn init_networks(&self) -> Result<()> {
        // The default IPAM forgot its pools with the last run: the
        // networks on record claim theirs before any new pool is picked.
        for n in self.all() {
            self.claim_gateways(&n);
        }
        let now = super::clock::now();
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if self.all().iter().any(|n| n.name == name && n.predefined) {
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
                        // Our own default bridge's route must not block
                        // reusing its subnet.
                        let own = self
                            .all()
                            .into_iter()
                            .find(|n| n.bridge == self.config.bridge)
                            .and_then(|n| n.subnet.clone());
                        let s = self.auto_pool(&rec, own).await?;
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
            let rec = self.insert(rec);
            self.claim_gateways(&rec);
        }
        let h = self.handle()?;
        let owner = self.bridge_owner();
        self.remove_stale_bridges(&h, &owner).await;
        for n in self.all().iter().filter(|n| n.is_bridge()) {
            // Brings the bridge up with its addresses (the driver's state
            // is in memory too).
            let d = self.driver_of(n)?;
            d.create_network(&n.driver_request()).await?;
            if n.gateway6_ip().is_some() && n.subnet6().is_some() && !n.internal {
                ip6_forward_on();
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
        let h = self.handle()?;
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
        // A pending name is trusted only as far as it names a bridge.
        let begun = self.pending.left();
        let host_bridges: Vec<String> = bridge::bridges(h)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        candidates.extend(begun.iter().filter(|b| host_bridges.contains(b)).cloned());
        let known: Vec<String> = self.all().iter().map(|n| n.bridge.clone()).collect();
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
        for b in begun {
            self.pending.end(&b);
        }
    }

    /// Renders and applies berth's nftables table from the current state
    /// (the bridge driver's networks and published ports).
    pub fn refresh_firewall(&self) -> Result<()> {
        self.bridge_driver.refresh_firewall()
    }

    pub async fn create_network(&self, req: NetworkCreateRequest) -> Result<(String, String)> {
        let t = crate::engine::metrics::Timer::start();
        let r = self.create_network_timed(req).await;
        if r.is_ok() {
            t.network("create");
        }
        r
    }

    async fn create_network_timed(&self, req: NetworkCreateRequest) -> Result<(String, String)> {
        let _w = self.write.lock().await;
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
        if self.all().iter().any(|n| n.name == name) {
            return Err(EngineError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let driver = req
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "bridge".into());
        let Some(d) = self.drivers.network(&driver) else {
            return self.create_plugin_network(&req, name, driver).await;
        };
        let id = super::ids::new_object_id();
        if driver != "bridge" {
            // `host` and `null` take no addresses, so their driver is
            // asked before anything else; it refuses another network, as
            // dockerd does before reading the rest of the request.
            d.create_network(&CreateNetworkRequest {
                network_id: id,
                ..Default::default()
            })
            .await?;
            return Err(EngineError::Forbidden(format!(
                "only one instance of \"{driver}\" network is allowed"
            )));
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
        let opts = req.options.clone().unwrap_or_default();
        let bridge_name = opts
            .get(BRIDGE_NAME)
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge_name.len() > 15 {
            return Err(EngineError::invalid(format!(
                "bridge name {bridge_name} is longer than 15 characters"
            )));
        }
        if self.all().iter().any(|n| n.bridge == bridge_name) {
            return Err(EngineError::conflict(format!(
                "bridge {bridge_name} is already in use"
            )));
        }
        let ipam = req.ipam.clone().unwrap_or_default();
        let ipam_name = ipam
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "default".into());
        let Some(ipam_d) = self.drivers.ipam(&ipam_name) else {
            // An IPAM plugin serves the networks of network plugins
            // (`plugin.rs`); the bridge's pools are the default IPAM's.
            self.plugins()?
                .get(&ipam_name, super::plugins::IPAM)
                .map_err(|_| EngineError::not_found(format!("plugin \"{ipam_name}\" not found")))?;
            return Err(EngineError::invalid(format!(
                "the bridge driver takes its addresses from the default IPAM only, not from \"{ipam_name}\""
            )));
        };
        let pool_req = |pool: &str, sub_pool: &str, v6: bool| RequestPoolRequest {
            address_space: ADDRESS_SPACE.into(),
            pool: pool.to_string(),
            sub_pool: sub_pool.to_string(),
            options: ipam.options.clone().unwrap_or_default(),
            v6,
        };
        let mut v4: Option<(Subnet, Ipv4Addr, Option<String>)> = None;
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
            // The gateway and range are judged after the pool's overlap
            // (dockerd's order), so their verdict waits for the IPAM's.
            let checked = gateway_and_range(&s, c.gateway.as_deref(), c.ip_range.as_deref());
            let sub = checked.as_ref().ok().and_then(|(_, r)| r.clone());
            ipam_d
                .request_pool(&pool_req(sn, sub.as_deref().unwrap_or(""), false))
                .await?;
            let (gw, range) = checked?;
            v4 = Some((s, gw, range));
            break;
        }
        let user_subnet = v4.is_some();
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
                ipam_d.request_pool(&pool_req(sn, "", true)).await?;
                v6 = Some((s6, gw6));
            }
            if v6.is_none() {
                return Err(EngineError::invalid("an IPv6 subnet is required with --ipv6: no default IPv6 address pools are configured"));
            }
        }
        let (subnet, gateway, ip_range) = match v4 {
            Some(x) => x,
            None => {
                let p = ipam_d.request_pool(&pool_req("", "", false)).await?;
                let s: Subnet = p.pool.parse()?;
                (s, Ipv4Addr::from(s.first() + 1), None)
            }
        };
        let rec = NetRecord {
            id: id.clone(),
            name: name.clone(),
            driver,
            created: super::clock::now(),
            bridge: bridge_name.clone(),
            subnet: Some(subnet.to_string()),
            gateway: Some(gateway.to_string()),
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
            plugin: None,
        };
        // A bridge this create makes (not one it adopts) is recorded as
        // pending until the network is, so a crash in between cannot leak it.
        let h = self.handle()?;
        let makes = bridge::link_index(&h, &bridge_name).await?.is_none();
        if makes {
            self.pending.begin(&bridge_name).map_err(|e| {
                EngineError::internal(format!("recording bridge {bridge_name}: {e}"))
            })?;
        }
        let made = match d.create_network(&rec.driver_request()).await {
            Ok(()) => self.store.put(Table::Networks, &id, &rec),
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            let gone = DeleteNetworkRequest { network_id: id };
            let _ = d.delete_network(&gone).await;
            if makes {
                // The driver forgets a network whose create failed, so
                // the half-made bridge is removed here.
                let _ = bridge::delete_link(&h, &bridge_name).await;
                self.pending.end(&bridge_name);
            }
            return Err(e);
        }
        if makes {
            self.pending.end(&bridge_name);
        }
        let rec = self.insert(rec);
        self.claim_gateways(&rec);
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
        let t = crate::engine::metrics::Timer::start();
        let r = self.remove_network_timed(key).await;
        if r.is_ok() {
            t.network("delete");
        }
        r
    }

    async fn remove_network_timed(&self, key: &str) -> Result<()> {
        let _w = self.write.lock().await;
        let n = self.find(key)?;
        if n.predefined {
            return Err(EngineError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !self.attached_to(&n.name).is_empty() {
            return Err(EngineError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        if n.plugin.is_some() {
            return self.remove_plugin_network(&n).await;
        }
        self.store.delete(Table::Networks, &n.id)?;
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&n.id);
        let ipam = self.ipam_of(&n)?;
        for pool_id in [n.pool_id(), n.pool6_id()].into_iter().flatten() {
            ipam.release_pool(&ReleasePoolRequest { pool_id })?;
        }
        let gone = DeleteNetworkRequest {
            network_id: n.id.clone(),
        };
        self.driver_of(&n)?.delete_network(&gone).await?;
        self.refresh_firewall()?;
        self.net_event("destroy", &n, &[]);
        Ok(())
    }

    pub fn network_view(&self, n: &NetRecord, with_containers: bool) -> Network {
        let mut containers = HashMap::new();
        if with_containers {
            for (id, a) in self.attached_to(&n.name) {
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
            (Some(s), g) if n.plugs() => vec![IpamConfig {
                subnet: Some(s.clone()),
                ip_range: n.ip_range.clone(),
                gateway: g.clone(),
                auxiliary_addresses: n
                    .plugin
                    .as_ref()
                    .map(|p| p.aux.clone())
                    .filter(|a| !a.is_empty()),
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
                driver: Some(n.ipam_driver().to_string()),
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
        let n = self.find(key)?;
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
        let mut nets = self.all();
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
                let unused = self.attached_to(&n.name).is_empty() && !n.predefined;
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
        for n in self.all() {
            if n.predefined || !f.match_labels("label", Some(&n.labels)) {
                continue;
            }
            let used_at_all = self.is_referenced(&n.name);
            if used_at_all {
                continue;
            }
            if self.remove_network(&n.id).await.is_ok() {
                gone.push(n.name.clone());
            }
        }
        Ok(gone)
    }

    /// The gateway of the default bridge (for `host-gateway` in --add-host).
    pub fn default_gateway(&self) -> Option<String> {
        self.all()
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

/// A configured gateway (else the subnet's first address) and IP range,
/// checked against subnet `s`.
fn gateway_and_range(
    s: &Subnet,
    gateway: Option<&str>,
    ip_range: Option<&str>,
) -> Result<(Ipv4Addr, Option<String>)> {
    let gw = match gateway.filter(|g| !g.is_empty()) {
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
    let range = match ip_range.filter(|r| !r.is_empty()) {
        Some(r) => {
            let rr: Subnet = r.parse()?;
            if !s.contains(rr.base) || rr.prefix < s.prefix {
                return Err(EngineError::invalid(format!(
                    "no matching subnet for range {r}"
                )));
            }
            Some(rr.to_string())
        }
        None => None,
    };
    Ok((gw, range))
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
