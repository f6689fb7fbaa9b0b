//! Address allocation on a network (the default IPAM's bookkeeping): which
//! container holds which IPv4 and IPv6 address, per network ID.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{ipam, lock, NetRecord, Networks};
use crate::engine::{EngineError, Result};
use ipam::Subnet;

impl Networks {
    /// Allocates an address on `n` (static when asked).
    pub fn allocate(&self, n: &NetRecord, cid: &str, want: Option<&str>) -> Result<Ipv4Addr> {
        let subnet = n
            .subnet()
            .ok_or_else(|| EngineError::internal(format!("network {} has no subnet", n.name)))?;
        let gw = n.gateway_ip();
        let mut used = lock(&self.used);
        let taken = used.entry(n.id.clone()).or_default();
        let ip = match want.filter(|w| !w.is_empty()) {
            Some(w) => {
                let ip: Ipv4Addr = w
                    .parse()
                    .map_err(|_| EngineError::invalid(format!("invalid IPv4 address: {w}")))?;
                if !subnet.contains(ip) {
                    return Err(EngineError::invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
                if Some(ip) == gw || taken.get(&ip).is_some_and(|c| c != cid) {
                    return Err(EngineError::conflict(format!(
                        "Address already in use: {ip}"
                    )));
                }
                ip
            }
            None => {
                let range = n.ip_range.as_deref().and_then(|r| r.parse::<Subnet>().ok());
                ipam::next_free(&subnet, range.as_ref(), &|ip| {
                    Some(ip) == gw || taken.contains_key(&ip)
                })
                .ok_or_else(|| {
                    EngineError::Forbidden(format!(
                        "no available IPv4 addresses on network {}",
                        n.name
                    ))
                })?
            }
        };
        taken.insert(ip, cid.to_string());
        Ok(ip)
    }

    /// Gives back every address `cid` holds on network `net_id`.
    pub fn release(&self, net_id: &str, cid: &str) {
        if let Some(m) = lock(&self.used).get_mut(net_id) {
            m.retain(|_, c| c != cid);
        }
        if let Some(m) = lock(&self.used6).get_mut(net_id) {
            m.retain(|_, c| c != cid);
        }
    }

    pub fn allocate6(
        &self,
        n: &NetRecord,
        s6: &ipam::Subnet6,
        cid: &str,
        want: Option<&str>,
    ) -> Result<Ipv6Addr> {
        let gw = n.gateway6_ip();
        let mut used = lock(&self.used6);
        let taken = used.entry(n.id.clone()).or_default();
        let ip = match want.filter(|w| !w.is_empty()) {
            Some(w) => {
                let ip: Ipv6Addr = w
                    .parse()
                    .map_err(|_| EngineError::invalid(format!("invalid IPv6 address: {w}")))?;
                if !s6.contains(ip) {
                    return Err(EngineError::invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
                if Some(ip) == gw || taken.get(&ip).is_some_and(|c| c != cid) {
                    return Err(EngineError::conflict(format!(
                        "Address already in use: {ip}"
                    )));
                }
                ip
            }
            None => (2u128..1 << 20)
                .map(|i| s6.nth(i))
                .find(|ip| Some(*ip) != gw && !taken.contains_key(ip) && s6.contains(*ip))
                .ok_or_else(|| {
                    EngineError::Forbidden(format!(
                        "no available IPv6 addresses on network {}",
                        n.name
                    ))
                })?,
        };
        taken.insert(ip, cid.to_string());
        Ok(ip)
    }

    /// Marks `ip` as held by `cid` again (after a daemon restart).
    pub fn reserve(&self, net_id: &str, ip: std::net::IpAddr, cid: &str) {
        match ip {
            std::net::IpAddr::V4(v4) => {
                lock(&self.used)
                    .entry(net_id.to_string())
                    .or_default()
                    .insert(v4, cid.to_string());
            }
            std::net::IpAddr::V6(v6) => {
                lock(&self.used6)
                    .entry(net_id.to_string())
                    .or_default()
                    .insert(v6, cid.to_string());
            }
        }
    }
}
