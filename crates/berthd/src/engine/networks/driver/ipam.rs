//! The `default` IPAM: pools carved from `default-address-pools` around
//! the host's routes and the pools in use, and addresses handed out in
//! order within a pool (or its sub-pool). A pool's ID names its subnet
//! (and sub-pool), as libnetwork's do, so the pools of networks already
//! on record need no registry here: the daemon replays the gateways and
//! the running containers' addresses when it starts
//! (`RequiresRequestReplay`).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{
    AddressSpaces, IpamCapabilities, IpamDriver, ReleaseAddressRequest, ReleasePoolRequest,
    RequestAddressRequest, RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
    ADDRESS_OWNER, GATEWAY_ADDRESS, REQUEST_ADDRESS_TYPE, REUSABLE_POOL,
};
use crate::engine::networks::ipam::{self, Subnet, Subnet6};
use crate::engine::networks::lock;
use crate::engine::{EngineError, Result};

/// The address space of every pool here (berth has no global scope).
pub const ADDRESS_SPACE: &str = "LocalDefault";

/// Where the host's routes come from (netlink; a fixed list in tests).
pub type Routes = Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<Subnet>>> + Send + Sync>;

/// The ID of the pool `subnet` (and `sub_pool`), as a network records them.
pub fn pool_id(subnet: &str, sub_pool: Option<&str>) -> String {
    match sub_pool.filter(|s| !s.is_empty()) {
        Some(r) => format!("{ADDRESS_SPACE}/{subnet}/{r}"),
        None => format!("{ADDRESS_SPACE}/{subnet}"),
    }
}

enum Pool {
    V4 {
        subnet: Subnet,
        range: Option<Subnet>,
    },
    V6(Subnet6),
}

fn parse_pool(id: &str) -> Result<Pool> {
    let bad = || EngineError::invalid(format!("invalid pool id: {id}"));
    let rest = id
        .strip_prefix(ADDRESS_SPACE)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [b, p] if b.contains(':') => Ok(Pool::V6(Subnet6::parse(&format!("{b}/{p}"))?)),
        [b, p] => Ok(Pool::V4 {
            subnet: format!("{b}/{p}").parse()?,
            range: None,
        }),
        [b, p, rb, rp] => Ok(Pool::V4 {
            subnet: format!("{b}/{p}").parse()?,
            range: Some(format!("{rb}/{rp}").parse()?),
        }),
        _ => Err(bad()),
    }
}

pub struct DefaultIpam {
    /// `default-address-pools`: base and the size of the subnets cut from it.
    defaults: Vec<(Subnet, u8)>,
    routes: Routes,
    /// Pool ID → address → its holder (empty for a gateway).
    used: Mutex<BTreeMap<String, HashMap<IpAddr, String>>>,
}

impl DefaultIpam {
    /// `defaults`: (base CIDR, size); bases that do not parse are skipped.
    pub fn new(defaults: &[(String, u8)], routes: Routes) -> Self {
        Self {
            defaults: defaults
                .iter()
                .filter_map(|(b, size)| Some((b.parse().ok()?, *size)))
                .collect(),
            routes,
            used: Mutex::default(),
        }
    }

    /// The pools in use (those holding at least their gateway).
    fn pools(&self) -> Vec<Pool> {
        lock(&self.used)
            .keys()
            .filter_map(|id| parse_pool(id).ok())
            .collect()
    }

    async fn pool4(&self, req: &RequestPoolRequest) -> Result<RequestPoolResponse> {
        let mut taken = (self.routes)().await?;
        taken.extend(self.pools().into_iter().filter_map(|p| match p {
            Pool::V4 { subnet, .. } => Some(subnet),
            Pool::V6(_) => None,
        }));
        let subnet = if req.pool.is_empty() {
            if let Some(r) = req.options.get(REUSABLE_POOL) {
                taken.retain(|t| t.to_string() != *r);
            }
            self.defaults
                .iter()
                .find_map(|(base, size)| ipam::carve(base, *size, &taken))
                .ok_or_else(|| EngineError::Forbidden(
                    "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                ))?
        } else {
            let s: Subnet = req.pool.parse()?;
            if s.prefix > 30 {
                return Err(EngineError::invalid(format!(
                    "invalid subnet {}: too small",
                    req.pool
                )));
            }
            if taken.iter().any(|t| t.overlaps(&s)) {
                return Err(overlap());
            }
            s
        };
        let sub = match req.sub_pool.as_str() {
            "" => None,
            r => {
                let rr: Subnet = r.parse()?;
                if !subnet.contains(rr.base) || rr.prefix < subnet.prefix {
                    return Err(EngineError::invalid(format!(
                        "no matching subnet for range {r}"
                    )));
                }
                Some(rr.to_string())
            }
        };
        let pool = subnet.to_string();
        Ok(RequestPoolResponse {
            pool_id: pool_id(&pool, sub.as_deref()),
            pool,
            data: HashMap::new(),
        })
    }

    fn pool6(&self, req: &RequestPoolRequest) -> Result<RequestPoolResponse> {
        if req.pool.is_empty() {
            return Err(EngineError::invalid("an IPv6 subnet is required with --ipv6: no default IPv6 address pools are configured"));
        }
        let s6 = Subnet6::parse(&req.pool)?;
        let clash = self.pools().into_iter().any(|p| match p {
            Pool::V6(o) => o.contains(s6.base) || s6.contains(o.base),
            Pool::V4 { .. } => false,
        });
        if clash {
            return Err(overlap());
        }
        let pool = s6.to_string();
        Ok(RequestPoolResponse {
            pool_id: pool_id(&pool, None),
            pool,
            data: HashMap::new(),
        })
    }
}

fn overlap() -> EngineError {
    EngineError::Forbidden(
        "invalid pool request: Pool overlaps with other one on this address space".into(),
    )
}

/// The IPAM's own word for a full pool; the daemon names the network.
pub const NO_AVAILABLE_ADDRESSES: &str = "no available addresses on this pool";

impl IpamDriver for DefaultIpam {
    fn get_capabilities(&self) -> IpamCapabilities {
        IpamCapabilities {
            requires_mac_address: false,
            requires_request_replay: true,
        }
    }

    fn get_default_address_spaces(&self) -> AddressSpaces {
        AddressSpaces {
            local_default_address_space: ADDRESS_SPACE.into(),
            global_default_address_space: "GlobalDefault".into(),
        }
    }

    fn request_pool<'a>(
        &'a self,
        req: &'a RequestPoolRequest,
    ) -> BoxFuture<'a, Result<RequestPoolResponse>> {
        Box::pin(async move {
            if req.v6 {
                self.pool6(req)
            } else {
                self.pool4(req).await
            }
        })
    }

    fn release_pool(&self, req: &ReleasePoolRequest) -> Result<()> {
        lock(&self.used).remove(&req.pool_id);
        Ok(())
    }

    fn request_address(&self, req: &RequestAddressRequest) -> Result<RequestAddressResponse> {
        let pool = parse_pool(&req.pool_id)?;
        let owner = req.options.get(ADDRESS_OWNER).map_or("", String::as_str);
        let gateway = req
            .options
            .get(REQUEST_ADDRESS_TYPE)
            .is_some_and(|t| t == GATEWAY_ADDRESS);
        let want = req.address.as_str();
        let mut used = lock(&self.used);
        let taken = used.entry(req.pool_id.clone()).or_default();
        let (prefix, family) = match &pool {
            Pool::V4 { subnet, .. } => (subnet.prefix, "IPv4"),
            Pool::V6(s6) => (s6.prefix, "IPv6"),
        };
        let ip: IpAddr = if want.is_empty() {
            let free = match &pool {
                Pool::V4 { subnet, range } => ipam::next_free(subnet, range.as_ref(), &|ip| {
                    taken.contains_key(&IpAddr::V4(ip))
                })
                .map(IpAddr::V4),
                Pool::V6(s6) => (2u128..1 << 20)
                    .map(|i| s6.nth(i))
                    .find(|ip| !taken.contains_key(&IpAddr::V6(*ip)) && s6.contains(*ip))
                    .map(IpAddr::V6),
            };
            free.ok_or_else(|| EngineError::Forbidden(NO_AVAILABLE_ADDRESSES.into()))?
        } else {
            let (ip, inside) = match &pool {
                Pool::V4 { subnet, .. } => want
                    .parse::<Ipv4Addr>()
                    .ok()
                    .map(|a| (IpAddr::V4(a), subnet.contains(a))),
                Pool::V6(s6) => want
                    .parse::<Ipv6Addr>()
                    .ok()
                    .map(|a| (IpAddr::V6(a), s6.contains(a))),
            }
            .ok_or_else(|| EngineError::invalid(format!("invalid {family} address: {want}")))?;
            // The gateway is the daemon's pick: it is only marked taken.
            if !gateway {
                if !inside {
                    return Err(EngineError::invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
                if taken.get(&ip).is_some_and(|c| c != owner) {
                    return Err(EngineError::conflict(format!(
                        "Address already in use: {ip}"
                    )));
                }
            }
            ip
        };
        taken.insert(ip, owner.to_string());
        Ok(RequestAddressResponse {
            address: format!("{ip}/{prefix}"),
            data: HashMap::new(),
        })
    }

    fn release_address(&self, req: &ReleaseAddressRequest) -> Result<()> {
        let a = req.address.split('/').next().unwrap_or_default();
        let ip: IpAddr = a
            .parse()
            .map_err(|_| EngineError::invalid(format!("invalid address: {}", req.address)))?;
        if let Some(m) = lock(&self.used).get_mut(&req.pool_id) {
            m.remove(&ip);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam_with_routes(routes: &[&str]) -> DefaultIpam {
        let routes: Vec<Subnet> = routes.iter().map(|r| r.parse().expect("route")).collect();
        let routes: Routes = Arc::new(move || Box::pin(std::future::ready(Ok(routes.clone()))));
        DefaultIpam::new(
            &[("172.17.0.0/16".into(), 16), ("10.10.0.0/16".into(), 24)],
            routes,
        )
    }

    fn block<T>(f: BoxFuture<'_, T>) -> T {
        futures_util::FutureExt::now_or_never(f).expect("ready")
    }

    fn pool(ipam: &DefaultIpam, pool: &str, sub: &str, v6: bool) -> Result<RequestPoolResponse> {
        block(ipam.request_pool(&RequestPoolRequest {
            address_space: ADDRESS_SPACE.into(),
            pool: pool.into(),
            sub_pool: sub.into(),
            v6,
            ..Default::default()
        }))
    }

    fn ask(ipam: &DefaultIpam, pool_id: &str, address: &str, owner: &str) -> Result<String> {
        let options = HashMap::from([(ADDRESS_OWNER.to_string(), owner.to_string())]);
        ipam.request_address(&RequestAddressRequest {
            pool_id: pool_id.into(),
            address: address.into(),
            options,
        })
        .map(|r| r.address)
    }

    fn gateway(ipam: &DefaultIpam, pool_id: &str, address: &str) {
        let options = HashMap::from([(REQUEST_ADDRESS_TYPE.into(), GATEWAY_ADDRESS.into())]);
        ipam.request_address(&RequestAddressRequest {
            pool_id: pool_id.into(),
            address: address.into(),
            options,
        })
        .expect("gateway");
    }

    fn release(ipam: &DefaultIpam, pool_id: &str, address: &str) {
        ipam.release_address(&ReleaseAddressRequest {
            pool_id: pool_id.into(),
            address: address.into(),
        })
        .expect("release");
    }

    #[test]
    fn capabilities_and_address_spaces() {
        let ipam = ipam_with_routes(&[]);
        assert!(ipam.get_capabilities().requires_request_replay);
        assert!(!ipam.get_capabilities().requires_mac_address);
        let s = ipam.get_default_address_spaces();
        assert_eq!(s.local_default_address_space, "LocalDefault");
        assert_eq!(s.global_default_address_space, "GlobalDefault");
    }

    #[test]
    fn addresses_come_in_order_after_the_gateway() {
        let ipam = ipam_with_routes(&[]);
        let p = pool(&ipam, "172.20.0.0/16", "", false).expect("pool");
        assert_eq!(p.pool_id, "LocalDefault/172.20.0.0/16");
        assert_eq!(p.pool, "172.20.0.0/16");
        gateway(&ipam, &p.pool_id, "172.20.0.1");
        assert_eq!(ask(&ipam, &p.pool_id, "", "a").expect("a"), "172.20.0.2/16");
        assert_eq!(ask(&ipam, &p.pool_id, "", "b").expect("b"), "172.20.0.3/16");
    }

    #[test]
    fn static_addresses_in_and_out_of_the_subnet() {
        let ipam = ipam_with_routes(&[]);
        let id = pool_id("172.20.0.0/16", None);
        gateway(&ipam, &id, "172.20.0.1");
        assert_eq!(
            ask(&ipam, &id, "172.20.5.5", "a").expect("in"),
            "172.20.5.5/16"
        );
        // The same holder asking again is no clash; another is.
        ask(&ipam, &id, "172.20.5.5", "a").expect("again");
        match ask(&ipam, &id, "172.20.5.5", "b") {
            Err(EngineError::Conflict(m)) => assert_eq!(m, "Address already in use: 172.20.5.5"),
            other => panic!("{other:?}"),
        }
        match ask(&ipam, &id, "10.0.0.5", "a") {
            Err(EngineError::InvalidParameter(m)) => assert_eq!(
                m,
                "no configured subnet or ip-range contain the IP address 10.0.0.5"
            ),
            other => panic!("{other:?}"),
        }
        match ask(&ipam, &id, "172.20.0.x", "a") {
            Err(EngineError::InvalidParameter(m)) => {
                assert_eq!(m, "invalid IPv4 address: 172.20.0.x")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_gateway_is_refused() {
        let ipam = ipam_with_routes(&[]);
        let id = pool_id("172.20.0.0/16", None);
        gateway(&ipam, &id, "172.20.0.1");
        match ask(&ipam, &id, "172.20.0.1", "a") {
            Err(EngineError::Conflict(m)) => assert_eq!(m, "Address already in use: 172.20.0.1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn released_addresses_are_reused_and_full_pools_say_so() {
        let ipam = ipam_with_routes(&[]);
        // A /30: network, gateway, one host, broadcast.
        let id = pool_id("172.20.0.0/30", None);
        gateway(&ipam, &id, "172.20.0.1");
        let a = ask(&ipam, &id, "", "a").expect("a");
        assert_eq!(a, "172.20.0.2/30");
        match ask(&ipam, &id, "", "b") {
            Err(EngineError::Forbidden(m)) => assert_eq!(m, NO_AVAILABLE_ADDRESSES),
            other => panic!("{other:?}"),
        }
        release(&ipam, &id, &a);
        assert_eq!(ask(&ipam, &id, "", "b").expect("b"), "172.20.0.2/30");
    }

    #[test]
    fn a_sub_pool_bounds_the_addresses() {
        let ipam = ipam_with_routes(&[]);
        let p = pool(&ipam, "172.20.0.0/16", "172.20.5.0/24", false).expect("pool");
        assert_eq!(p.pool_id, "LocalDefault/172.20.0.0/16/172.20.5.0/24");
        gateway(&ipam, &p.pool_id, "172.20.0.1");
        assert_eq!(ask(&ipam, &p.pool_id, "", "a").expect("a"), "172.20.5.0/16");
        match pool(&ipam, "172.30.0.0/16", "172.21.0.0/24", false) {
            Err(EngineError::InvalidParameter(m)) => {
                assert_eq!(m, "no matching subnet for range 172.21.0.0/24")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pools_avoid_routes_and_pools_in_use() {
        let ipam = ipam_with_routes(&["172.17.0.0/16"]);
        // The first default is covered by a route: the next pool is cut.
        let p = pool(&ipam, "", "", false).expect("pick");
        assert_eq!(p.pool, "10.10.0.0/24");
        gateway(&ipam, &p.pool_id, "10.10.0.1");
        assert_eq!(
            pool(&ipam, "", "", false).expect("pick").pool,
            "10.10.1.0/24"
        );
        for clash in ["172.17.5.0/24", "10.10.0.0/16"] {
            match pool(&ipam, clash, "", false) {
                Err(EngineError::Forbidden(m)) => assert_eq!(
                    m,
                    "invalid pool request: Pool overlaps with other one on this address space"
                ),
                other => panic!("{other:?}"),
            }
        }
        match pool(&ipam, "192.168.0.0/31", "", false) {
            Err(EngineError::InvalidParameter(m)) => {
                assert_eq!(m, "invalid subnet 192.168.0.0/31: too small")
            }
            other => panic!("{other:?}"),
        }
        // Released, the pool is free again.
        ipam.release_pool(&ReleasePoolRequest {
            pool_id: p.pool_id.clone(),
        })
        .expect("release");
        assert_eq!(
            pool(&ipam, "", "", false).expect("pick").pool,
            "10.10.0.0/24"
        );
    }

    #[test]
    fn the_default_bridge_may_reuse_its_own_subnet() {
        let ipam = ipam_with_routes(&["172.17.0.0/16"]);
        let mut req = RequestPoolRequest::default();
        req.options
            .insert(REUSABLE_POOL.into(), "172.17.0.0/16".into());
        let p = block(ipam.request_pool(&req)).expect("pick");
        assert_eq!(p.pool, "172.17.0.0/16");
    }

    #[test]
    fn ipv6_pools_and_addresses() {
        let ipam = ipam_with_routes(&[]);
        let p = pool(&ipam, "fd00:1::/64", "", true).expect("pool");
        assert_eq!(p.pool_id, "LocalDefault/fd00:1::/64");
        gateway(&ipam, &p.pool_id, "fd00:1::1");
        assert_eq!(ask(&ipam, &p.pool_id, "", "a").expect("a"), "fd00:1::2/64");
        match ask(&ipam, &p.pool_id, "fd00:1::1", "b") {
            Err(EngineError::Conflict(m)) => assert_eq!(m, "Address already in use: fd00:1::1"),
            other => panic!("{other:?}"),
        }
        match pool(&ipam, "fd00:1::/48", "", true) {
            Err(EngineError::Forbidden(_)) => {}
            other => panic!("{other:?}"),
        }
        assert!(pool(&ipam, "", "", true).is_err());
    }
}
