//! Networks whose driver is a plugin (`docker network create -d <plugin>`),
//! with the default IPAM or a plugin's (`--ipam-driver <plugin>`): the
//! pools and gateways come from the IPAM as libnetwork asks for them,
//! then the driver creates the network; removal undoes both. Nothing is
//! recorded until every step has succeeded, and a failed step gives back
//! what the earlier ones took.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::models::{IpamConfig, NetworkCreateRequest};
use serde::{Deserialize, Serialize};

use super::driver::ipam::ADDRESS_SPACE;
use super::driver::remote::RemoteDriver;
use super::driver::remote_ipam::RemoteIpam;
use super::driver::{
    CreateNetworkRequest, DeleteNetworkRequest, IpamData, IpamDriver, NetworkDriver,
    NetworkOptions, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestPoolRequest, GATEWAY_ADDRESS, REQUEST_ADDRESS_TYPE,
};
use super::{lock, NetRecord, Networks};
use crate::engine::plugins::{self, Plugins};
use crate::engine::store::Table;
use crate::engine::{EngineError, Result};

/// What a plugin network records beyond a bridge's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginNet {
    /// The IPAM driver: `default` or a plugin's name.
    pub ipam: String,
    /// The pools' IDs as the IPAM gave them (IPv4, IPv6).
    pub pool: Option<String>,
    pub pool6: Option<String>,
    /// The addresses requested from the IPAM at create (gateways,
    /// `--aux-address`), as (pool ID, address): they are released with
    /// the pools. A gateway the pool's `Data` named was never requested,
    /// and is not.
    #[serde(default)]
    pub gateways: Vec<(String, String)>,
    /// `--aux-address` of the IPv4 pool, as given (name → address).
    #[serde(default)]
    pub aux: HashMap<String, String>,
}

/// What a network create has taken from its IPAM so far.
#[derive(Default)]
struct Taken {
    pools: Vec<String>,
    addresses: Vec<(String, String)>,
}

impl Taken {
    fn give_back(&self, ipam: &dyn IpamDriver) {
        for (pool_id, address) in &self.addresses {
            let req = ReleaseAddressRequest {
                pool_id: pool_id.clone(),
                address: address.clone(),
            };
            if let Err(e) = ipam.release_address(&req) {
                tracing::warn!(error = %e, "releasing a gateway");
            }
        }
        for pool_id in &self.pools {
            let req = ReleasePoolRequest {
                pool_id: pool_id.clone(),
            };
            if let Err(e) = ipam.release_pool(&req) {
                tracing::warn!(error = %e, "releasing a pool");
            }
        }
    }
}

/// One pool as the network records it.
struct Pool {
    id: String,
    /// CIDR.
    pool: String,
    /// The gateway's address (no prefix); may be empty.
    gateway: String,
    /// Auxiliary addresses reserved in it (name → address, no prefix).
    aux: HashMap<String, String>,
}

impl Pool {
    fn data(&self, space: &str) -> IpamData {
        let prefix = self.pool.split_once('/').map_or("", |(_, p)| p);
        IpamData {
            address_space: space.to_string(),
            pool: self.pool.clone(),
            gateway: if self.gateway.is_empty() {
                String::new()
            } else {
                format!("{}/{prefix}", self.gateway)
            },
            aux_addresses: self
                .aux
                .iter()
                .map(|(k, a)| (k.clone(), format!("{a}/{prefix}")))
                .collect(),
        }
    }
}

fn bare(a: &str) -> &str {
    a.split('/').next().unwrap_or_default()
}

impl Networks {
    /// Plugin `name`'s network driver (one per plugin: it remembers the
    /// endpoints it created until they join).
    pub(super) fn remote_driver(&self, name: &str) -> Result<Arc<dyn NetworkDriver>> {
        let plugins = self.plugins()?;
        let mut remote = lock(&self.remote);
        let d = remote
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(RemoteDriver::new(name, plugins, self.netlink.clone())));
        Ok(d.clone())
    }

    pub(super) fn plugins(&self) -> Result<Arc<Plugins>> {
        self.plugins
            .get()
            .cloned()
            .ok_or_else(|| EngineError::internal("plugins are not set up"))
    }

    /// The IPAM named `name`: the default one, or a plugin's.
    pub(super) fn ipam_named(&self, name: &str) -> Result<Arc<dyn IpamDriver>> {
        if name == "default" {
            return self
                .drivers
                .ipam("default")
                .ok_or_else(|| EngineError::not_found("plugin \"default\" not found"));
        }
        Ok(Arc::new(RemoteIpam::new(name, self.plugins()?)))
    }

    /// A pool for `cfg` (or one the IPAM picks), and its gateway: the one
    /// configured, else the one the pool's `Data` names, else one the
    /// IPAM hands out, as libnetwork asks.
    async fn take_pool(
        ipam: &dyn IpamDriver,
        space: &str,
        cfg: Option<&IpamConfig>,
        options: &HashMap<String, String>,
        v6: bool,
        taken: &mut Taken,
    ) -> Result<Pool> {
        let some = |s: Option<&String>| s.filter(|s| !s.is_empty()).cloned();
        let req = RequestPoolRequest {
            address_space: space.to_string(),
            pool: some(cfg.and_then(|c| c.subnet.as_ref())).unwrap_or_default(),
            sub_pool: some(cfg.and_then(|c| c.ip_range.as_ref())).unwrap_or_default(),
            options: options.clone(),
            v6,
        };
        let p = ipam.request_pool(&req).await?;
        taken.pools.push(p.pool_id.clone());
        let wanted = some(cfg.and_then(|c| c.gateway.as_ref()));
        let gateway = match (wanted, p.data.get(GATEWAY_ADDRESS)) {
            (None, Some(g)) => bare(g).to_string(),
            (wanted, _) => {
                let r = ipam.request_address(&RequestAddressRequest {
                    pool_id: p.pool_id.clone(),
                    address: wanted.unwrap_or_default(),
                    options: HashMap::from([(REQUEST_ADDRESS_TYPE.into(), GATEWAY_ADDRESS.into())]),
                })?;
                taken.addresses.push((p.pool_id.clone(), r.address.clone()));
                bare(&r.address).to_string()
            }
        };
        // Auxiliary addresses are reserved so that no endpoint gets them.
        let mut aux = HashMap::new();
        for (k, a) in cfg
            .and_then(|c| c.auxiliary_addresses.clone())
            .unwrap_or_default()
        {
            let r = ipam.request_address(&RequestAddressRequest {
                pool_id: p.pool_id.clone(),
                address: a.clone(),
                options: HashMap::new(),
            })?;
            taken.addresses.push((p.pool_id.clone(), r.address));
            aux.insert(k, a);
        }
        Ok(Pool {
            id: p.pool_id,
            pool: p.pool,
            gateway,
            aux,
        })
    }

    /// `network create` with a plugin's driver (`driver`); the caller has
    /// checked the name and holds the write lock.
    pub(super) async fn create_plugin_network(
        &self,
        req: &NetworkCreateRequest,
        name: String,
        driver: String,
    ) -> Result<(String, String)> {
        let plugins = self.plugins()?;
        plugins.get(&driver, plugins::NETWORK)?;
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
        let remote = RemoteDriver::new(&driver, plugins.clone(), self.netlink.clone());
        remote.capabilities()?;
        let d = self.remote_driver(&driver)?;
        let ipam_cfg = req.ipam.clone().unwrap_or_default();
        let ipam_name = ipam_cfg
            .driver
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "default".into());
        let space = if ipam_name == "default" {
            ADDRESS_SPACE.to_string()
        } else {
            plugins.get(&ipam_name, plugins::IPAM)?;
            RemoteIpam::new(&ipam_name, plugins.clone())
                .address_spaces()?
                .local_default_address_space
        };
        let ipam = self.ipam_named(&ipam_name)?;
        let configs = ipam_cfg.config.clone().unwrap_or_default();
        let is_v6 = |c: &&IpamConfig| c.subnet.as_deref().is_some_and(|s| s.contains(':'));
        let c4 = configs
            .iter()
            .find(|c| !is_v6(c) && c.subnet.as_deref().is_some_and(|s| !s.is_empty()));
        let c6 = configs.iter().find(is_v6);
        let opts = ipam_cfg.options.clone().unwrap_or_default();
        let enable_ipv6 = req.enable_ipv6.unwrap_or(false);
        let mut taken = Taken::default();
        let pools = async {
            let p4 = Self::take_pool(&*ipam, &space, c4, &opts, false, &mut taken).await?;
            let p6 = if enable_ipv6 {
                Some(Self::take_pool(&*ipam, &space, c6, &opts, true, &mut taken).await?)
            } else {
                None
            };
            Ok::<_, EngineError>((p4, p6))
        }
        .await;
        let (p4, p6) = match pools {
            Ok(p) => p,
            Err(e) => {
                taken.give_back(&*ipam);
                return Err(e);
            }
        };
        let id = crate::engine::ids::new_object_id();
        let options = req.options.clone().unwrap_or_default();
        let internal = req.internal.unwrap_or(false);
        let create = CreateNetworkRequest {
            network_id: id.clone(),
            options: NetworkOptions {
                generic: options.clone(),
                enable_ipv6,
                internal,
            },
            ipv4_data: vec![p4.data(&space)],
            ipv6_data: p6.iter().map(|p| p.data(&space)).collect(),
        };
        if let Err(e) = d.create_network(&create).await {
            taken.give_back(&*ipam);
            return Err(e);
        }
        let keep = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let rec = NetRecord {
            id: id.clone(),
            name,
            driver,
            created: crate::engine::clock::now(),
            bridge: String::new(),
            subnet: Some(p4.pool.clone()),
            gateway: keep(&p4.gateway),
            ip_range: c4
                .and_then(|c| c.ip_range.clone())
                .filter(|r| !r.is_empty()),
            subnet6: p6.as_ref().map(|p| p.pool.clone()),
            gateway6: p6.as_ref().and_then(|p| keep(&p.gateway)),
            user_subnet: c4.is_some(),
            internal,
            attachable: req.attachable.unwrap_or(false),
            enable_ipv6,
            labels: req.labels.clone().unwrap_or_default(),
            options,
            ipam_options: ipam_cfg.options.clone(),
            predefined: false,
            plugin: Some(PluginNet {
                ipam: ipam_name,
                pool: Some(p4.id.clone()),
                pool6: p6.as_ref().map(|p| p.id.clone()),
                gateways: taken.addresses.clone(),
                aux: p4.aux.clone(),
            }),
        };
        if let Err(e) = self.store.put(Table::Networks, &id, &rec) {
            let gone = DeleteNetworkRequest { network_id: id };
            let _ = d.delete_network(&gone).await;
            taken.give_back(&*ipam);
            return Err(e);
        }
        let rec = self.insert(rec);
        self.net_event("create", &rec, &[]);
        Ok((id, String::new()))
    }

    /// `network rm` of a plugin network (no endpoints left): the driver
    /// deletes it first (a refusal keeps the network, as with dockerd),
    /// then its gateways and pools go back to the IPAM.
    pub(super) async fn remove_plugin_network(&self, n: &NetRecord) -> Result<()> {
        let gone = DeleteNetworkRequest {
            network_id: n.id.clone(),
        };
        self.driver_of(n)?.delete_network(&gone).await?;
        self.store.delete(Table::Networks, &n.id)?;
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&n.id);
        let taken = Taken {
            pools: [n.pool_id(), n.pool6_id()].into_iter().flatten().collect(),
            addresses: n
                .plugin
                .as_ref()
                .map(|p| p.gateways.clone())
                .unwrap_or_default(),
        };
        match self.ipam_of(n) {
            Ok(ipam) => taken.give_back(&*ipam),
            Err(e) => tracing::warn!(network = %n.name, error = %e, "releasing the pools"),
        }
        self.net_event("destroy", n, &[]);
        Ok(())
    }
}
