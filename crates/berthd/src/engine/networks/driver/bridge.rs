//! The `bridge` driver: a Linux bridge per network (with the gateway's
//! addresses), a veth into the container's namespace per endpoint, and
//! published ports (userland proxies plus DNAT in berth's nftables table,
//! which this driver renders, as it knows the bridges and the DNATs).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_api::models::{PortBinding, PortMap};
use futures_util::future::BoxFuture;

use super::{
    Capabilities, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
    DeleteNetworkRequest, EndpointInterface, EndpointOperInfoResponse, EndpointRequest,
    ExternalOptions, JoinRequest, JoinResponse, NetworkDriver, OperInfo,
    ProgramExternalConnectivityRequest, BRIDGE_NAME,
};
use crate::engine::networks::ipam::{self, Subnet};
use crate::engine::networks::portdriver::{Forward, PortDriver};
use crate::engine::networks::{bridge, firewall, lock, proxy};
use crate::engine::{EngineError, Result};

#[derive(Clone)]
struct Net {
    bridge: String,
    subnet: Subnet,
    gateway: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
    internal: bool,
}

#[derive(Clone)]
struct Endpoint {
    ip: Ipv4Addr,
    prefix: u8,
    mac: [u8; 6],
    ip6: Option<(Ipv6Addr, u8)>,
}

/// An endpoint's published ports: undone by dropping them.
#[derive(Default)]
struct External {
    proxies: Vec<proxy::Proxy>,
    /// Rootless: the slirp4netns forwards from the host.
    forwards: Vec<Forward>,
    dnats: Vec<firewall::Dnat>,
    ports: PortMap,
}

pub struct BridgeDriver {
    netlink: Arc<bridge::Netlink>,
    /// The alias that marks the bridges this daemon creates.
    owner: String,
    firewall_table: String,
    /// By network ID (the firewall lists the bridges in this order).
    networks: Mutex<BTreeMap<String, Net>>,
    endpoints: Mutex<HashMap<String, Endpoint>>,
    external: Mutex<HashMap<String, External>>,
    /// Rootless: published ports are slirp4netns forwards.
    ports: Option<PortDriver>,
}

/// The address part of a CIDR (`Gateway`, `Address`); empty: none.
fn ip_of<T: std::str::FromStr>(cidr: &str) -> Result<Option<T>> {
    let a = cidr.split('/').next().unwrap_or_default();
    if a.is_empty() {
        return Ok(None);
    }
    a.parse()
        .map(Some)
        .map_err(|_| EngineError::invalid(format!("invalid address: {cidr}")))
}

fn prefix_of(cidr: &str) -> Result<u8> {
    cidr.split_once('/')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| EngineError::invalid(format!("invalid CIDR address: {cidr}")))
}

/// The port map of a container that publishes nothing (yet): its exposed
/// ports, unbound.
pub fn exposed_only(exposed: &[String]) -> PortMap {
    exposed.iter().map(|k| (k.clone(), None)).collect()
}

impl BridgeDriver {
    pub fn new(
        netlink: Arc<bridge::Netlink>,
        owner: String,
        firewall_table: String,
        ports: Option<PortDriver>,
    ) -> Self {
        Self {
            netlink,
            owner,
            firewall_table,
            networks: Mutex::default(),
            endpoints: Mutex::default(),
            external: Mutex::default(),
            ports,
        }
    }

    /// Renders and applies berth's nftables table from the bridges and
    /// the published ports.
    pub fn refresh_firewall(&self) -> Result<()> {
        let nets: Vec<firewall::BridgeNet> = lock(&self.networks)
            .values()
            .map(|n| firewall::BridgeNet {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                internal: n.internal,
            })
            .collect();
        let dnats: Vec<firewall::Dnat> = lock(&self.external)
            .values()
            .flat_map(|l| l.dnats.clone())
            .collect();
        firewall::apply(&firewall::render(&self.firewall_table, &nets, &dnats))
    }

    async fn create(&self, req: &CreateNetworkRequest) -> Result<()> {
        let v4 = req
            .ipv4_data
            .first()
            .ok_or_else(|| EngineError::internal("a bridge network needs an IPv4 pool"))?;
        let subnet: Subnet = v4.pool.parse()?;
        let gateway: Option<Ipv4Addr> = ip_of(&v4.gateway)?;
        let name = match req.options.generic.get(BRIDGE_NAME) {
            Some(b) => b.clone(),
            None => format!("br-{}", req.network_id.get(..12).unwrap_or_default()),
        };
        let mut gateway6 = None;
        let mut addr6 = None;
        if let Some(d) = req.ipv6_data.first() {
            gateway6 = ip_of::<Ipv6Addr>(&d.gateway)?;
            addr6 = gateway6.map(|g| (g, prefix_of(&d.pool)));
        }
        let h = self.netlink.handle()?;
        let idx =
            bridge::ensure_bridge(&h, &name, gateway.map(|g| (g, subnet.prefix)), &self.owner)
                .await?;
        if let Some((g6, p)) = addr6 {
            bridge::add_addr6(&h, idx, g6, p?).await?;
        }
        lock(&self.networks).insert(
            req.network_id.clone(),
            Net {
                bridge: name,
                subnet,
                gateway,
                gateway6,
                internal: req.options.internal,
            },
        );
        Ok(())
    }

    async fn join_now(&self, req: &JoinRequest) -> Result<JoinResponse> {
        let ep = lock(&self.endpoints)
            .get(&req.endpoint_id)
            .cloned()
            .ok_or_else(|| {
                EngineError::internal(format!("endpoint {} not found", req.endpoint_id))
            })?;
        let net = lock(&self.networks)
            .get(&req.network_id)
            .cloned()
            .ok_or_else(|| {
                EngineError::not_found(format!("network {} not found", req.network_id))
            })?;
        let h = self.netlink.handle()?;
        let br_idx = match bridge::link_index(&h, &net.bridge).await? {
            Some(i) => i,
            None => {
                bridge::ensure_bridge(
                    &h,
                    &net.bridge,
                    net.gateway.map(|g| (g, net.subnet.prefix)),
                    &self.owner,
                )
                .await?
            }
        };
        let route = req.options.default_route && !net.internal;
        let iface = bridge::Iface {
            name: req.options.interface_name.clone(),
            ip: ep.ip,
            prefix: ep.prefix,
            mac: ep.mac,
            gateway: net.gateway.filter(|_| route),
            ip6: ep.ip6,
            gateway6: net.gateway6.filter(|_| route),
        };
        bridge::add_endpoint(&h, br_idx, Path::new(&req.sandbox_key), iface).await?;
        let show = |ip: Option<String>| ip.filter(|_| route).unwrap_or_default();
        Ok(JoinResponse {
            gateway: show(net.gateway.map(|g| g.to_string())),
            gateway_ipv6: show(net.gateway6.map(|g| g.to_string())),
            ..Default::default()
        })
    }

    async fn program(&self, req: &ProgramExternalConnectivityRequest) -> Result<()> {
        let target = lock(&self.endpoints)
            .get(&req.endpoint_id)
            .map(|e| e.ip)
            .ok_or_else(|| {
                EngineError::internal(format!("endpoint {} not found", req.endpoint_id))
            })?;
        let (mut live, ports) = publish(&req.options, target, self.ports.as_ref()).await?;
        let had_dnat = !live.dnats.is_empty();
        {
            let mut ext = lock(&self.external);
            let e = ext.entry(req.endpoint_id.clone()).or_default();
            e.proxies.append(&mut live.proxies);
            e.forwards.append(&mut live.forwards);
            e.dnats.append(&mut live.dnats);
            e.ports = ports;
        }
        if had_dnat {
            self.refresh_firewall()?;
        }
        Ok(())
    }
}

/// A host port spec: one port, a range (`a-z`), or any (empty).
fn host_ports(spec: Option<&str>) -> Result<Vec<u16>> {
    let Some(p) = spec.filter(|p| !p.is_empty()) else {
        return Ok(vec![0]);
    };
    let bad_range = || EngineError::invalid(format!("invalid port range {p}"));
    Ok(match p.split_once('-') {
        Some((a, z)) => {
            let (a, z): (u16, u16) = (
                a.parse().map_err(|_| bad_range())?,
                z.parse().map_err(|_| bad_range())?,
            );
            (a..=z).collect()
        }
        None => vec![p
            .parse()
            .map_err(|_| EngineError::invalid(format!("invalid host port {p}")))?],
    })
}

/// Binds the ports `o` asks for, relayed to `target`: the proxies and
/// DNATs, and the port map with the ports actually bound. Rootless
/// (`ports`): the proxy listens on every address of the daemon's namespace
/// and a slirp4netns forward brings the host's address and port to it.
async fn publish(
    o: &ExternalOptions,
    target: Ipv4Addr,
    ports: Option<&PortDriver>,
) -> Result<(External, PortMap)> {
    let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for (k, v) in o.port_map.clone() {
        bindings.insert(k, v.unwrap_or_default());
    }
    if o.publish_all {
        for k in &o.exposed_ports {
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
    let mut out = exposed_only(&o.exposed_ports);
    let mut live = External::default();
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
            let ip: IpAddr = host_ip
                .parse()
                .map_err(|_| EngineError::invalid(format!("invalid host IP {host_ip}")))?;
            if ports.is_some() {
                // Before any proxy binds.
                PortDriver::check_family(ip, b.host_port.as_deref().unwrap_or_default())?;
            }
            let mut last_err = None;
            let mut bound = None;
            let listen = match (ports, ip) {
                (None, _) => ip,
                (Some(_), IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                (Some(_), IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            for hp in host_ports(b.host_port.as_deref())? {
                match proxy::start(
                    proto,
                    SocketAddr::new(listen, hp),
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
            // On failure the proxies bound so far go with `live`.
            let (px, port) = bound
                .ok_or_else(|| last_err.unwrap_or_else(|| EngineError::internal("no port")))?;
            live.proxies.push(px);
            if let Some(pd) = ports {
                live.forwards.push(pd.add(proto, ip, port)?);
            } else if let IpAddr::V4(v4) = ip {
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
    Ok((live, out))
}

impl NetworkDriver for BridgeDriver {
    fn get_capabilities(&self) -> Capabilities {
        Capabilities::local()
    }

    fn create_network<'a>(&'a self, req: &'a CreateNetworkRequest) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.create(req))
    }

    fn delete_network<'a>(&'a self, req: &'a DeleteNetworkRequest) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(n) = lock(&self.networks).remove(&req.network_id) else {
                return Ok(());
            };
            let h = self.netlink.handle()?;
            // The network is gone from the daemon either way.
            if let Err(e) = bridge::delete_link(&h, &n.bridge).await {
                tracing::warn!(bridge = %n.bridge, error = %e, "removing bridge");
            }
            Ok(())
        })
    }

    fn create_endpoint(&self, req: &CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let i = req
            .interface
            .as_ref()
            .ok_or_else(|| EngineError::internal("a bridge endpoint needs an address"))?;
        let ip: Ipv4Addr = ip_of(&i.address)?
            .ok_or_else(|| EngineError::internal("a bridge endpoint needs an IPv4 address"))?;
        // Docker derives a MAC from the IPv4 address unless one is given.
        let mac = match i.mac_address.as_str() {
            "" => ipam::mac_for(ip),
            m => ipam::parse_mac(m)?,
        };
        let ip6 = match ip_of::<Ipv6Addr>(&i.address_ipv6)? {
            Some(a) => Some((a, prefix_of(&i.address_ipv6)?)),
            None => None,
        };
        let ep = Endpoint {
            ip,
            prefix: prefix_of(&i.address)?,
            mac,
            ip6,
        };
        lock(&self.endpoints).insert(req.endpoint_id.clone(), ep);
        Ok(CreateEndpointResponse {
            interface: Some(EndpointInterface {
                mac_address: ipam::mac_string(&mac),
                ..Default::default()
            }),
        })
    }

    fn endpoint_oper_info(&self, req: &EndpointRequest) -> Result<EndpointOperInfoResponse> {
        let port_map = lock(&self.external)
            .get(&req.endpoint_id)
            .map(|e| e.ports.clone());
        Ok(EndpointOperInfoResponse {
            value: OperInfo { port_map },
        })
    }

    fn delete_endpoint(&self, req: &EndpointRequest) -> Result<()> {
        lock(&self.endpoints).remove(&req.endpoint_id);
        Ok(())
    }

    fn join<'a>(&'a self, req: &'a JoinRequest) -> BoxFuture<'a, Result<JoinResponse>> {
        Box::pin(self.join_now(req))
    }

    fn leave(&self, _req: &EndpointRequest) -> Result<()> {
        // The veth goes with the namespace (or with `network disconnect`,
        // which removes the container's end).
        Ok(())
    }

    fn program_external_connectivity<'a>(
        &'a self,
        req: &'a ProgramExternalConnectivityRequest,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.program(req))
    }

    fn revoke_external_connectivity(&self, req: &EndpointRequest) -> Result<()> {
        let gone = lock(&self.external).remove(&req.endpoint_id);
        match gone {
            Some(e) if !e.dnats.is_empty() => {
                drop(e);
                self.refresh_firewall()
            }
            _ => Ok(()),
        }
    }
}
