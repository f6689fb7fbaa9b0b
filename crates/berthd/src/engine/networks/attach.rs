//! Containers on networks, through the drivers: addresses from the
//! network's IPAM, the interface from its network driver, published ports
//! as the primary endpoint's external connectivity. What each container
//! holds is remembered here, so that leaving undoes exactly that whatever
//! its record says (a start that failed half-way has not saved its
//! endpoints).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use berth_api::models::{EndpointSettings, PortMap};

use super::driver::bridge::exposed_only;
use super::driver::ipam::NO_AVAILABLE_ADDRESSES;
use super::driver::{
    CreateEndpointRequest, EndpointInterface, EndpointRequest, ExternalOptions, IpamDriver,
    JoinOptions, JoinRequest, NetworkDriver, ProgramExternalConnectivityRequest,
    ReleaseAddressRequest, RequestAddressRequest, ADDRESS_OWNER,
};
use super::{lock, NetRecord, Networks, Publish};
use crate::engine::{EngineError, Result};

/// What a container holds on one network.
struct Held {
    network_id: String,
    driver: Arc<dyn NetworkDriver>,
    ipam: Arc<dyn IpamDriver>,
    endpoint_id: String,
    /// (pool ID, address) as the IPAM gave them.
    addresses: Vec<(String, String)>,
    /// The driver knows the endpoint (`CreateEndpoint` succeeded).
    created: bool,
}

impl Held {
    fn endpoint(&self) -> EndpointRequest {
        EndpointRequest {
            network_id: self.network_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
        }
    }

    /// Leaves the network: the endpoint, then the addresses.
    fn undo(self) {
        if self.created {
            let ep = self.endpoint();
            if let Err(e) = self.driver.leave(&ep) {
                tracing::warn!(endpoint = %ep.endpoint_id, error = %e, "leaving a network");
            }
            if let Err(e) = self.driver.delete_endpoint(&ep) {
                tracing::warn!(endpoint = %ep.endpoint_id, error = %e, "deleting an endpoint");
            }
        }
        for (pool_id, address) in self.addresses {
            let _ = self
                .ipam
                .release_address(&ReleaseAddressRequest { pool_id, address });
        }
    }
}

/// A container's holdings on its networks.
#[derive(Default)]
pub struct Joined {
    endpoints: Vec<Held>,
    /// The endpoint that publishes its ports.
    external: Option<(Arc<dyn NetworkDriver>, EndpointRequest)>,
}

impl Networks {
    pub fn driver_of(&self, n: &NetRecord) -> Result<Arc<dyn NetworkDriver>> {
        if n.plugin.is_some() {
            return self.remote_driver(&n.driver);
        }
        self.drivers
            .network(&n.driver)
            .ok_or_else(|| EngineError::not_found(format!("plugin \"{}\" not found", n.driver)))
    }

    /// The default IPAM, or a plugin network's own.
    pub fn ipam_of(&self, n: &NetRecord) -> Result<Arc<dyn IpamDriver>> {
        self.ipam_named(n.ipam_driver())
    }

    fn hold(&self, cid: &str, h: Held) {
        lock(&self.joined)
            .entry(cid.to_string())
            .or_default()
            .endpoints
            .push(h);
    }

    /// Container `cid` leaves network `net_id` (`network disconnect`);
    /// its published ports stay until it stops, as with dockerd.
    pub fn unplug(&self, cid: &str, net_id: &str) {
        let held: Vec<Held> = match lock(&self.joined).get_mut(cid) {
            Some(j) => {
                let (gone, kept) = std::mem::take(&mut j.endpoints)
                    .into_iter()
                    .partition(|h| h.network_id == net_id);
                j.endpoints = kept;
                gone
            }
            None => return,
        };
        held.into_iter().for_each(Held::undo);
    }

    /// Container `cid` leaves every network: ports, endpoints, addresses.
    pub fn unplug_all(&self, cid: &str) {
        let Some(j) = lock(&self.joined).remove(cid) else {
            return;
        };
        if let Some((d, ep)) = j.external {
            if let Err(e) = d.revoke_external_connectivity(&ep) {
                tracing::warn!(error = %e, "refreshing the firewall");
            }
        }
        j.endpoints.into_iter().for_each(Held::undo);
    }

    /// Container `cid` is gone (it died with the daemon): what it holds in
    /// plugins, which outlived the daemon, is given back as a stop would
    /// (`Leave`, `DeleteEndpoint`, `ReleaseAddress`) from its record,
    /// for the networks this daemon does not hold for it.
    pub fn release_unheld(&self, cid: &str, eps: &crate::engine::networks::EndpointMap) {
        let held: Vec<String> = lock(&self.joined)
            .get(cid)
            .map(|j| j.endpoints.iter().map(|h| h.network_id.clone()).collect())
            .unwrap_or_default();
        for ep in eps.values() {
            let endpoint_id = ep.endpoint_id.clone().unwrap_or_default();
            let Some(n) = ep.network_id.as_deref().and_then(|id| self.find(id).ok()) else {
                continue;
            };
            if endpoint_id.is_empty() || n.plugin.is_none() || held.contains(&n.id) {
                continue;
            }
            let (Ok(driver), Ok(ipam)) = (self.driver_of(&n), self.ipam_of(&n)) else {
                continue;
            };
            let mut addresses = Vec::new();
            if n.remote_ipam() {
                let v4 = (n.pool_id(), ep.ip_address.as_deref());
                let v6 = (n.pool6_id(), ep.global_ipv6_address.as_deref());
                for (pool, a) in [v4, v6] {
                    if let (Some(pool), Some(a)) = (pool, a.filter(|a| !a.is_empty())) {
                        addresses.push((pool, a.to_string()));
                    }
                }
            }
            tracing::info!(id = %cid, network = %n.name, "releasing the endpoint of a container that died with the daemon");
            Held {
                network_id: n.id.clone(),
                driver,
                ipam,
                endpoint_id,
                addresses,
                created: true,
            }
            .undo();
        }
    }

    /// After a daemon restart: a running container's addresses and
    /// endpoints are requested again (the drivers keep them in memory).
    pub fn replug(&self, cid: &str, eps: &crate::engine::networks::EndpointMap) {
        for ep in eps.values() {
            let Some(n) = ep.network_id.as_deref().and_then(|id| self.find(id).ok()) else {
                continue;
            };
            let (Ok(driver), Ok(ipam)) = (self.driver_of(&n), self.ipam_of(&n)) else {
                continue;
            };
            let mut held = Held {
                network_id: n.id.clone(),
                driver,
                ipam,
                endpoint_id: ep.endpoint_id.clone().unwrap_or_default(),
                addresses: Vec::new(),
                created: false,
            };
            let mut iface = EndpointInterface {
                mac_address: ep.mac_address.clone().unwrap_or_default(),
                ..Default::default()
            };
            let v4 = (n.pool_id(), ep.ip_address.as_deref(), ep.ip_prefix_len);
            let v6 = (
                n.pool6_id(),
                ep.global_ipv6_address.as_deref(),
                ep.global_ipv6_prefix_len,
            );
            for (i, (pool, a, plen)) in [v4, v6].into_iter().enumerate() {
                let (Some(pool_id), Some(a)) = (pool, a.filter(|a| !a.is_empty())) else {
                    continue;
                };
                let cidr = format!("{a}/{}", plen.unwrap_or(0));
                if n.remote_ipam() {
                    // The plugin outlived the daemon with its allocations.
                    held.addresses.push((pool_id, cidr.clone()));
                    if i == 0 {
                        iface.address = cidr;
                    } else {
                        iface.address_ipv6 = cidr;
                    }
                    continue;
                }
                let req = RequestAddressRequest {
                    pool_id: pool_id.clone(),
                    address: a.to_string(),
                    options: HashMap::from([(ADDRESS_OWNER.to_string(), cid.to_string())]),
                };
                match held.ipam.request_address(&req) {
                    Ok(r) => held.addresses.push((pool_id, r.address)),
                    Err(e) => {
                        tracing::warn!(id = %cid, address = %a, error = %e, "restoring an address")
                    }
                }
                if i == 0 {
                    iface.address = cidr;
                } else {
                    iface.address_ipv6 = cidr;
                }
            }
            if n.plugin.is_some() {
                // So does a network plugin with its endpoints.
                held.created = !held.endpoint_id.is_empty();
            } else if !held.endpoint_id.is_empty() && !iface.address.is_empty() {
                let req = CreateEndpointRequest {
                    network_id: n.id.clone(),
                    endpoint_id: held.endpoint_id.clone(),
                    interface: Some(iface),
                    options: HashMap::new(),
                };
                match held.driver.create_endpoint(&req) {
                    Ok(_) => held.created = true,
                    Err(e) => tracing::warn!(id = %cid, error = %e, "restoring an endpoint"),
                }
            }
            self.hold(cid, held);
        }
    }
}

impl Networks {
    /// The daemon's words for a full pool: it names the network.
    fn exhausted(e: EngineError, family: &str, n: &NetRecord) -> EngineError {
        match e {
            EngineError::Forbidden(m) if m == NO_AVAILABLE_ADDRESSES => EngineError::Forbidden(
                format!("no available {family} addresses on network {}", n.name),
            ),
            e => e,
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// Joins container `cid` (named `name`) to network `n`: addresses from
    /// its IPAM, then an endpoint and its interface `ifname` in `netns`
    /// from its driver, and its DNS names.
    pub(crate) async fn plug(
        &self,
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
        let pool = n
            .pool_id()
            .ok_or_else(|| EngineError::internal(format!("network {} has no subnet", n.name)))?;
        let mut held = Held {
            network_id: n.id.clone(),
            driver: self.driver_of(n)?,
            ipam: self.ipam_of(n)?,
            endpoint_id: super::super::ids::new_object_id(),
            addresses: Vec::new(),
            created: false,
        };
        let owner = HashMap::from([(ADDRESS_OWNER.to_string(), cid.to_string())]);
        let want = |v6: bool| {
            let c = ep.ipam_config.as_ref();
            let a = if v6 {
                c.and_then(|c| c.ipv6_address.clone())
            } else {
                c.and_then(|c| c.ipv4_address.clone())
            };
            a.unwrap_or_default()
        };
        let a4 = held
            .ipam
            .request_address(&RequestAddressRequest {
                pool_id: pool.clone(),
                address: want(false),
                options: owner.clone(),
            })
            .map_err(|e| Self::exhausted(e, "IPv4", n))?;
        held.addresses.push((pool, a4.address.clone()));
        let mut a6 = String::new();
        if let Some(pool6) = n.pool6_id() {
            let req = RequestAddressRequest {
                pool_id: pool6.clone(),
                address: want(true),
                options: owner,
            };
            match held.ipam.request_address(&req) {
                Ok(r) => {
                    a6 = r.address.clone();
                    held.addresses.push((pool6, r.address));
                }
                Err(e) => {
                    held.undo();
                    return Err(Self::exhausted(e, "IPv6", n));
                }
            }
        }
        let given_mac = ep.mac_address.clone().filter(|m| !m.is_empty());
        let created = held.driver.create_endpoint(&CreateEndpointRequest {
            network_id: n.id.clone(),
            endpoint_id: held.endpoint_id.clone(),
            interface: Some(EndpointInterface {
                address: a4.address.clone(),
                address_ipv6: a6.clone(),
                mac_address: given_mac.clone().unwrap_or_default(),
            }),
            // `--driver-opt`, for the driver (a plugin) to read.
            options: ep.driver_opts.clone().unwrap_or_default(),
        });
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                held.undo();
                return Err(e);
            }
        };
        held.created = true;
        let join = JoinRequest {
            network_id: n.id.clone(),
            endpoint_id: held.endpoint_id.clone(),
            sandbox_key: netns.to_string_lossy().into_owned(),
            options: JoinOptions {
                interface_name: ifname.to_string(),
                default_route,
            },
        };
        let joined = match held.driver.join(&join).await {
            Ok(j) => j,
            Err(e) => {
                held.undo();
                return Err(e);
            }
        };
        let endpoint_id = held.endpoint_id.clone();
        self.hold(cid, held);
        let (ip, prefix) = a4.address.split_once('/').unwrap_or((&a4.address, "0"));
        ep.ip_address = Some(ip.to_string());
        ep.ip_prefix_len = Some(prefix.parse().unwrap_or(0));
        ep.gateway = Some(if n.plugin.is_some() {
            // A plugin's endpoint has the gateway its `Join` answered.
            joined.gateway.clone()
        } else {
            n.gateway.clone().unwrap_or_default()
        });
        ep.mac_address = created
            .interface
            .map(|i| i.mac_address)
            .filter(|m| !m.is_empty())
            .or(given_mac);
        ep.network_id = Some(n.id.clone());
        if let Some((a, p)) = a6.split_once('/') {
            ep.global_ipv6_address = Some(a.to_string());
            ep.global_ipv6_prefix_len = Some(p.parse().unwrap_or(0));
            ep.ipv6_gateway = Some(if n.plugin.is_some() {
                joined.gateway_ipv6.clone()
            } else {
                n.gateway6.clone().unwrap_or_default()
            });
        }
        ep.endpoint_id = Some(endpoint_id);
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

    /// Publishes container `cid`'s ports on the host through the driver
    /// of its primary endpoint `(network, endpoint ID)` (the first network
    /// it joined), if any. Returns what was bound.
    pub(crate) async fn publish(
        &self,
        cid: &str,
        ports: &Publish,
        primary: Option<(&NetRecord, &str)>,
    ) -> Result<PortMap> {
        let Some((n, endpoint_id)) = primary else {
            return Ok(exposed_only(&ports.exposed));
        };
        let d = self.driver_of(n)?;
        let ep = EndpointRequest {
            network_id: n.id.clone(),
            endpoint_id: endpoint_id.to_string(),
        };
        d.program_external_connectivity(&ProgramExternalConnectivityRequest {
            network_id: ep.network_id.clone(),
            endpoint_id: ep.endpoint_id.clone(),
            options: ExternalOptions {
                port_map: ports.bindings.clone(),
                exposed_ports: ports.exposed.clone(),
                publish_all: ports.all,
            },
        })
        .await?;
        let info = d.endpoint_oper_info(&ep)?;
        lock(&self.joined)
            .entry(cid.to_string())
            .or_default()
            .external = Some((d, ep));
        Ok(info
            .value
            .port_map
            .unwrap_or_else(|| exposed_only(&ports.exposed)))
    }
}
