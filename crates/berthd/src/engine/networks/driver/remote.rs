//! A network driver that is a plugin (`/NetworkDriver.*`, libnetwork's
//! remote driver protocol). The plugin makes each endpoint's link in the
//! daemon's namespace and names it in `Join` (`InterfaceName.SrcName`);
//! the daemon takes it into the container's namespace, renames it
//! (`DstPrefix` and the interface's index), and gives it the endpoint's
//! MAC and addresses, the gateway and the `StaticRoutes` the plugin
//! answered.
//!
//! The plugin is resolved on every call (`Plugins` caches it), so that a
//! network outlives a plugin's restart, and a daemon starts with its
//! plugin networks whether or not their plugins are up yet.
//! `DiscoverNew`/`DiscoverDelete` are never sent: they carry cluster node
//! discovery, and berth has no cluster.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_api::models::PortMap;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Capabilities, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
    DeleteNetworkRequest, EndpointInterface, EndpointOperInfoResponse, EndpointRequest,
    JoinRequest, JoinResponse, NetworkDriver, ProgramExternalConnectivityRequest,
};
use crate::engine::networks::bridge::{self, ExtraRoute, Iface};
use crate::engine::networks::{ipam, lock};
use crate::engine::plugins::client::CallError;
use crate::engine::plugins::{self, Plugin, Plugins};
use crate::engine::{EngineError, Result};

/// Calls `method` on plugin `p`; an answer whose `Err` is set is an error
/// worded as Docker's (`remote: <Err>`), and an answer that does not have
/// the method's shape is the plugin's fault, reported as such.
pub(super) fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
    p: &Plugin,
    method: &str,
    body: &B,
) -> Result<T> {
    let v: serde_json::Value = p.call(method, body)?;
    answer(p, method, v)
}

/// As `call`, for a method a plugin need not implement: a 404 is no
/// error (libnetwork's rule for `ProgramExternalConnectivity` and
/// `RevokeExternalConnectivity`).
fn call_optional<B: Serialize + ?Sized>(p: &Plugin, method: &str, body: &B) -> Result<()> {
    match p.client().call::<B, serde_json::Value>(method, body) {
        Ok(v) => answer::<serde_json::Value>(p, method, v).map(drop),
        Err(CallError::Status { status: 404, .. }) => Ok(()),
        Err(e) => Err(p.error(e)),
    }
}

/// A decoded answer: an error if its `Err` is set, else the method's type.
fn answer<T: DeserializeOwned>(p: &Plugin, method: &str, v: serde_json::Value) -> Result<T> {
    if let Some(e) = v.get("Err").and_then(|e| e.as_str()) {
        if !e.is_empty() {
            return Err(EngineError::internal(format!("remote: {e}")));
        }
    }
    serde_json::from_value(v).map_err(|e| {
        EngineError::internal(format!(
            "{method}: bad answer from plugin {:?}: {e}",
            p.name()
        ))
    })
}

/// `a.b.c.d/n` (or IPv6): the address and its prefix length.
pub(super) fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (p <= max).then_some((ip, p))
}

/// The interface name in the container: the plugin's prefix and the index
/// the daemon picked (`eth2` → `DstPrefix` + `2`).
fn container_ifname(dst_prefix: &str, picked: &str) -> String {
    if dst_prefix.is_empty() {
        return picked.to_string();
    }
    let digits = picked.trim_start_matches(|c: char| !c.is_ascii_digit());
    format!(
        "{dst_prefix}{}",
        if digits.is_empty() { "0" } else { digits }
    )
}

#[derive(Serialize)]
struct WireJoin<'a> {
    #[serde(rename = "NetworkID")]
    network_id: &'a str,
    #[serde(rename = "EndpointID")]
    endpoint_id: &'a str,
    #[serde(rename = "SandboxKey")]
    sandbox_key: &'a str,
    #[serde(rename = "Options")]
    options: HashMap<String, String>,
}

/// A published port as libnetwork sends it (`types.PortBinding`).
#[derive(Serialize, Deserialize, Default)]
struct WirePort {
    #[serde(rename = "Proto")]
    proto: u8,
    #[serde(rename = "IP")]
    ip: String,
    #[serde(rename = "Port")]
    port: u16,
    #[serde(rename = "HostIP", skip_serializing_if = "String::is_empty")]
    host_ip: String,
    #[serde(rename = "HostPort", skip_serializing_if = "is_zero")]
    host_port: u16,
    #[serde(rename = "HostPortEnd", skip_serializing_if = "is_zero")]
    host_port_end: u16,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// `80/tcp` → (6, 80).
fn proto_port(key: &str) -> Option<(u8, u16)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        _ => return None,
    };
    Some((proto, port.parse().ok()?))
}

fn wire_ports(map: &PortMap) -> Vec<WirePort> {
    let mut out = Vec::new();
    for (key, bindings) in map {
        let Some((proto, port)) = proto_port(key) else {
            continue;
        };
        for b in bindings.iter().flatten() {
            let hp = b.host_port.as_deref().unwrap_or_default();
            let (lo, hi) = hp.split_once('-').unwrap_or((hp, ""));
            out.push(WirePort {
                proto,
                port,
                host_ip: b.host_ip.clone().unwrap_or_default(),
                host_port: lo.parse().unwrap_or(0),
                host_port_end: hi.parse().unwrap_or(0),
                ..Default::default()
            });
        }
    }
    out
}

/// A plugin's network driver.
pub struct RemoteDriver {
    name: String,
    plugins: Arc<Plugins>,
    netlink: Arc<bridge::Netlink>,
    /// Endpoints' interfaces (from `CreateEndpoint`), for their `Join`.
    endpoints: Mutex<HashMap<String, EndpointInterface>>,
}

impl RemoteDriver {
    pub fn new(name: &str, plugins: Arc<Plugins>, netlink: Arc<bridge::Netlink>) -> Self {
        Self {
            name: name.to_string(),
            plugins,
            netlink,
            endpoints: Mutex::default(),
        }
    }

    fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &str,
        body: &B,
    ) -> Result<T> {
        let p = self.plugins.get(&self.name, plugins::NETWORK)?;
        call(&p, &format!("{}.{method}", plugins::NETWORK), body)
    }

    fn call_optional<B: Serialize + ?Sized>(&self, method: &str, body: &B) -> Result<()> {
        let p = self.plugins.get(&self.name, plugins::NETWORK)?;
        call_optional(&p, &format!("{}.{method}", plugins::NETWORK), body)
    }

    /// `GetCapabilities`, checked as libnetwork does when it registers a
    /// driver: the scope is `local` or `global`.
    pub fn capabilities(&self) -> Result<Capabilities> {
        let mut c: Capabilities = self.call("GetCapabilities", &serde_json::Value::Null)?;
        if c.scope != "local" && c.scope != "global" {
            return Err(EngineError::internal(format!(
                "invalid capability: expecting 'local' or 'global', got {}",
                c.scope
            )));
        }
        if c.connectivity_scope.is_empty() {
            c.connectivity_scope = c.scope.clone();
        }
        Ok(c)
    }

    async fn join_now(&self, req: &JoinRequest) -> Result<JoinResponse> {
        let iface = lock(&self.endpoints)
            .get(&req.endpoint_id)
            .cloned()
            .ok_or_else(|| {
                EngineError::internal(format!("endpoint {} not found", req.endpoint_id))
            })?;
        let mut res: JoinResponse = self.call(
            "Join",
            &WireJoin {
                network_id: &req.network_id,
                endpoint_id: &req.endpoint_id,
                sandbox_key: &req.sandbox_key,
                options: HashMap::new(),
            },
        )?;
        let names = res
            .interface_name
            .clone()
            .filter(|n| !n.src_name.is_empty())
            .ok_or_else(|| {
                EngineError::internal(format!(
                    "{}.Join: plugin {:?} named no interface (InterfaceName.SrcName)",
                    plugins::NETWORK,
                    self.name
                ))
            })?;
        let bad =
            |what: &str, v: &str| EngineError::internal(format!("unable to parse {what} \"{v}\""));
        let (ip, prefix) = match parse_cidr(&iface.address) {
            Some((IpAddr::V4(ip), p)) => (ip, p),
            _ => return Err(bad("Address", &iface.address)),
        };
        let ip6 = match parse_cidr(&iface.address_ipv6) {
            Some((IpAddr::V6(ip), p)) => Some((ip, p)),
            _ => None,
        };
        let mac = ipam::parse_mac(&iface.mac_address)?;
        if !req.options.default_route {
            res.gateway.clear();
            res.gateway_ipv6.clear();
        }
        let gateway = match res.gateway.as_str() {
            "" => None,
            g => Some(g.parse::<Ipv4Addr>().map_err(|_| bad("Gateway", g))?),
        };
        let gateway6 = match res.gateway_ipv6.as_str() {
            "" => None,
            g => Some(g.parse::<Ipv6Addr>().map_err(|_| bad("GatewayIPv6", g))?),
        };
        let mut routes = Vec::new();
        for r in &res.static_routes {
            let (dest, prefix) =
                parse_cidr(&r.destination).ok_or_else(|| bad("Destination", &r.destination))?;
            let via = match r.route_type {
                // CONNECTED: straight out of the interface.
                1 => None,
                _ => Some(
                    r.next_hop
                        .parse::<IpAddr>()
                        .map_err(|_| bad("NextHop", &r.next_hop))?,
                ),
            };
            routes.push(ExtraRoute { dest, prefix, via });
        }
        let h = self.netlink.handle()?;
        let name = container_ifname(&names.dst_prefix, &req.options.interface_name);
        let iface = Iface {
            name,
            ip,
            prefix,
            mac,
            gateway,
            ip6,
            gateway6,
        };
        bridge::adopt_link(
            &h,
            &names.src_name,
            Path::new(&req.sandbox_key),
            iface,
            routes,
        )
        .await?;
        Ok(res)
    }
}

impl NetworkDriver for RemoteDriver {
    fn get_capabilities(&self) -> Capabilities {
        self.capabilities()
            .unwrap_or_else(|_| Capabilities::local())
    }

    fn create_network<'a>(&'a self, req: &'a CreateNetworkRequest) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let _: serde_json::Value = self.call("CreateNetwork", req)?;
            Ok(())
        })
    }

    fn delete_network<'a>(&'a self, req: &'a DeleteNetworkRequest) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let _: serde_json::Value = self.call("DeleteNetwork", req)?;
            Ok(())
        })
    }

    fn create_endpoint(&self, req: &CreateEndpointRequest) -> Result<CreateEndpointResponse> {
        let res: CreateEndpointResponse = self.call("CreateEndpoint", req)?;
        let mut iface = req.interface.clone().unwrap_or_default();
        // The driver may fill in what the request left empty.
        if let Some(given) = res.interface {
            if iface.mac_address.is_empty() {
                iface.mac_address = given.mac_address;
            }
            if iface.address.is_empty() {
                iface.address = given.address;
            }
            if iface.address_ipv6.is_empty() {
                iface.address_ipv6 = given.address_ipv6;
            }
        }
        if iface.mac_address.is_empty() {
            // As the bridge driver: a MAC derived from the address, so
            // that the interface can be found by it (disconnect).
            if let Some((IpAddr::V4(ip), _)) = parse_cidr(&iface.address) {
                iface.mac_address = ipam::mac_string(&ipam::mac_for(ip));
            }
        }
        lock(&self.endpoints).insert(req.endpoint_id.clone(), iface.clone());
        Ok(CreateEndpointResponse {
            interface: Some(iface),
        })
    }

    fn endpoint_oper_info(&self, req: &EndpointRequest) -> Result<EndpointOperInfoResponse> {
        // What a plugin reports is its own business (libnetwork only shows
        // it), and a failure here must not fail a start: the ports stay
        // as asked.
        if let Err(e) = self.call::<_, serde_json::Value>("EndpointOperInfo", req) {
            tracing::debug!(plugin = %self.name, error = %e, "EndpointOperInfo");
        }
        Ok(EndpointOperInfoResponse::default())
    }

    fn delete_endpoint(&self, req: &EndpointRequest) -> Result<()> {
        lock(&self.endpoints).remove(&req.endpoint_id);
        let _: serde_json::Value = self.call("DeleteEndpoint", req)?;
        Ok(())
    }

    fn join<'a>(&'a self, req: &'a JoinRequest) -> BoxFuture<'a, Result<JoinResponse>> {
        Box::pin(self.join_now(req))
    }

    fn leave(&self, req: &EndpointRequest) -> Result<()> {
        let _: serde_json::Value = self.call("Leave", req)?;
        Ok(())
    }

    fn program_external_connectivity<'a>(
        &'a self,
        req: &'a ProgramExternalConnectivityRequest,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let exposed: Vec<WirePort> = req
                .options
                .exposed_ports
                .iter()
                .filter_map(|k| proto_port(k))
                .map(|(proto, port)| WirePort {
                    proto,
                    port,
                    ..Default::default()
                })
                .collect();
            let body = serde_json::json!({
                "NetworkID": req.network_id,
                "EndpointID": req.endpoint_id,
                "Options": {
                    "com.docker.network.endpoint.exposedports": exposed,
                    "com.docker.network.portmap": wire_ports(&req.options.port_map),
                },
            });
            self.call_optional("ProgramExternalConnectivity", &body)
        })
    }

    fn revoke_external_connectivity(&self, req: &EndpointRequest) -> Result<()> {
        self.call_optional("RevokeExternalConnectivity", req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_interface_takes_the_plugins_prefix_and_the_index() {
        assert_eq!(container_ifname("eth", "eth0"), "eth0");
        assert_eq!(container_ifname("veth", "eth2"), "veth2");
        assert_eq!(container_ifname("", "eth1"), "eth1");
    }

    #[test]
    fn cidrs_are_checked() {
        assert_eq!(
            parse_cidr("10.1.2.3/24"),
            Some((IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 24))
        );
        assert!(parse_cidr("10.1.2.3").is_none());
        assert!(parse_cidr("10.1.2.3/33").is_none());
        assert!(parse_cidr("garbage/8").is_none());
        assert!(parse_cidr("fd00::1/64").is_some());
    }

    #[test]
    fn published_ports_go_in_libnetworks_shape() {
        let map: PortMap = [(
            "80/tcp".to_string(),
            Some(vec![berth_api::models::PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("8080".into()),
            }]),
        )]
        .into_iter()
        .collect();
        let w = serde_json::to_value(wire_ports(&map)).unwrap();
        assert_eq!(
            w,
            serde_json::json!([{"Proto": 6, "IP": "", "Port": 80, "HostIP": "127.0.0.1", "HostPort": 8080}])
        );
    }
}
