//! Driver seams: every network has a network driver and an IPAM driver.
//! Both traits have the shape of Docker's remote plugin protocols
//! (`/NetworkDriver.*` and `/IpamDriver.*`, JSON over HTTP), and their
//! requests and responses serialise with the protocols' field names.
//! Built in: `bridge`, `host`, `null` and the `default` IPAM; a plugin is
//! one more implementation (`remote.rs`, `remote_ipam.rs`).
//!
//! Work that is asynchronous (netlink, a pool pick that reads the host's
//! routes, port proxies) returns a boxed future so that drivers can sit in
//! a registry as `dyn`; bookkeeping that is not stays synchronous, so the
//! stop path (which is synchronous) can undo a join without a runtime.

pub mod bridge;
pub mod ipam;
pub mod remote;
pub mod remote_ipam;
pub mod singleton;

use std::collections::HashMap;

use berth_api::models::PortMap;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::engine::Result;

/// `GetCapabilities`: berth's drivers are all local.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    #[serde(rename = "Scope")]
    pub scope: String,
    #[serde(rename = "ConnectivityScope")]
    pub connectivity_scope: String,
}

impl Capabilities {
    pub fn local() -> Self {
        Self {
            scope: "local".into(),
            connectivity_scope: "local".into(),
        }
    }
}

/// One pool of a network as the IPAM gave it (`IPv4Data`, `IPv6Data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamData {
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// CIDR.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// CIDR (the gateway's address with the pool's prefix).
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "AuxAddresses", default)]
    pub aux_addresses: HashMap<String, String>,
}

/// The options libnetwork sends with `CreateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOptions {
    /// The driver options (`-o`); berth puts the bridge's name here too.
    #[serde(rename = "com.docker.network.generic", default)]
    pub generic: HashMap<String, String>,
    #[serde(rename = "com.docker.network.enable_ipv6", default)]
    pub enable_ipv6: bool,
    #[serde(rename = "com.docker.network.internal", default)]
    pub internal: bool,
}

/// Driver option naming a bridge network's device.
pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "Options")]
    pub options: NetworkOptions,
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Vec<IpamData>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// An endpoint's interface: addresses in CIDR form, MAC as `aa:bb:…`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointInterface {
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "AddressIPv6")]
    pub address_ipv6: String,
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateEndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Interface")]
    pub interface: Option<EndpointInterface>,
    #[serde(rename = "Options", default)]
    pub options: HashMap<String, String>,
}

/// The driver fills in what the request left empty (the bridge: the MAC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateEndpointResponse {
    #[serde(rename = "Interface")]
    pub interface: Option<EndpointInterface>,
}

/// `DeleteEndpoint`, `Leave`, `EndpointOperInfo` and
/// `RevokeExternalConnectivity` all name just the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointOperInfoResponse {
    #[serde(rename = "Value")]
    pub value: OperInfo,
}

/// What `EndpointOperInfo` reports: the ports actually bound.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperInfo {
    #[serde(rename = "com.docker.network.portmap", default)]
    pub port_map: Option<PortMap>,
}

/// Join options. berth's drivers plumb the interface in one netlink
/// request (faster than libnetwork's create-then-move), so the name and
/// whether it carries the default route are asked for up front.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinOptions {
    #[serde(rename = "berth.interface-name")]
    pub interface_name: String,
    #[serde(rename = "berth.default-route")]
    pub default_route: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The network namespace's path.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    #[serde(rename = "Options")]
    pub options: JoinOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceName {
    #[serde(rename = "SrcName")]
    pub src_name: String,
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StaticRoute {
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RouteType")]
    pub route_type: i32,
    #[serde(rename = "NextHop")]
    pub next_hop: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JoinResponse {
    #[serde(rename = "InterfaceName")]
    pub interface_name: Option<InterfaceName>,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "GatewayIPv6")]
    pub gateway_ipv6: String,
    #[serde(rename = "StaticRoutes", default)]
    pub static_routes: Vec<StaticRoute>,
    #[serde(rename = "DisableGatewayService")]
    pub disable_gateway_service: bool,
}

/// What to publish: the container's `PortBindings`, its exposed ports, and
/// `PublishAllPorts` (libnetwork expands the last itself; berth leaves it
/// to the driver, which picks the host ports).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExternalOptions {
    #[serde(rename = "com.docker.network.portmap", default)]
    pub port_map: PortMap,
    #[serde(rename = "com.docker.network.exposedports", default)]
    pub exposed_ports: Vec<String>,
    #[serde(rename = "berth.publish-all", default)]
    pub publish_all: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramExternalConnectivityRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Options")]
    pub options: ExternalOptions,
}

/// `/NetworkDriver.*`.
pub trait NetworkDriver: Send + Sync {
    fn get_capabilities(&self) -> Capabilities;
    fn create_network<'a>(&'a self, req: &'a CreateNetworkRequest) -> BoxFuture<'a, Result<()>>;
    fn delete_network<'a>(&'a self, req: &'a DeleteNetworkRequest) -> BoxFuture<'a, Result<()>>;
    fn create_endpoint(&self, req: &CreateEndpointRequest) -> Result<CreateEndpointResponse>;
    fn endpoint_oper_info(&self, req: &EndpointRequest) -> Result<EndpointOperInfoResponse>;
    fn delete_endpoint(&self, req: &EndpointRequest) -> Result<()>;
    fn join<'a>(&'a self, req: &'a JoinRequest) -> BoxFuture<'a, Result<JoinResponse>>;
    fn leave(&self, req: &EndpointRequest) -> Result<()>;
    fn program_external_connectivity<'a>(
        &'a self,
        req: &'a ProgramExternalConnectivityRequest,
    ) -> BoxFuture<'a, Result<()>>;
    fn revoke_external_connectivity(&self, req: &EndpointRequest) -> Result<()>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpamCapabilities {
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    /// The driver forgets its allocations with the daemon: they are
    /// requested again on a restart (berth's default IPAM keeps them in
    /// memory; the network and container records are what persist).
    #[serde(rename = "RequiresRequestReplay")]
    pub requires_request_replay: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressSpaces {
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local_default_address_space: String,
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global_default_address_space: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolRequest {
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// CIDR; empty: the IPAM picks one.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// CIDR within `Pool` that addresses are handed out from.
    #[serde(rename = "SubPool")]
    pub sub_pool: String,
    #[serde(rename = "Options", default)]
    pub options: HashMap<String, String>,
    #[serde(rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestPoolResponse {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// CIDR.
    #[serde(rename = "Pool")]
    pub pool: String,
    #[serde(rename = "Data", default)]
    pub data: HashMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePoolRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `Options` key libnetwork uses to ask for a network's gateway.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
pub const GATEWAY_ADDRESS: &str = "com.docker.network.gateway";
/// `Options` key naming who holds an address (the container's ID): the
/// same holder asking again for its own address is not a clash.
pub const ADDRESS_OWNER: &str = "berth.owner";
/// `RequestPool` option: a subnet a pick may reuse although a host route
/// covers it (the default bridge's own).
pub const REUSABLE_POOL: &str = "berth.reusable-pool";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// Empty: the next free one.
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Options", default)]
    pub options: HashMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestAddressResponse {
    /// CIDR (the address with its pool's prefix).
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Data", default)]
    pub data: HashMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address")]
    pub address: String,
}

/// `/IpamDriver.*`.
pub trait IpamDriver: Send + Sync {
    fn get_capabilities(&self) -> IpamCapabilities;
    fn get_default_address_spaces(&self) -> AddressSpaces;
    fn request_pool<'a>(
        &'a self,
        req: &'a RequestPoolRequest,
    ) -> BoxFuture<'a, Result<RequestPoolResponse>>;
    fn release_pool(&self, req: &ReleasePoolRequest) -> Result<()>;
    fn request_address(&self, req: &RequestAddressRequest) -> Result<RequestAddressResponse>;
    fn release_address(&self, req: &ReleaseAddressRequest) -> Result<()>;
}

/// The drivers by name (`NetRecord.driver`, the IPAM's `Driver`).
pub struct Registry {
    pub network: HashMap<String, std::sync::Arc<dyn NetworkDriver>>,
    pub ipam: HashMap<String, std::sync::Arc<dyn IpamDriver>>,
}

impl Registry {
    pub fn network(&self, name: &str) -> Option<std::sync::Arc<dyn NetworkDriver>> {
        self.network.get(name).cloned()
    }

    pub fn ipam(&self, name: &str) -> Option<std::sync::Arc<dyn IpamDriver>> {
        self.ipam.get(name).cloned()
    }
}
