//! IPv4 address management: subnets as (base, prefix), pool carving that
//! avoids host routes and existing networks, and address allocation.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::engine::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn new(ip: Ipv4Addr, prefix: u8) -> Self {
        let mask = Self::mask_of(prefix);
        Self {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        }
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix as u32)
        }
    }

    pub fn mask(&self) -> u32 {
        Self::mask_of(self.prefix)
    }

    pub fn first(&self) -> u32 {
        u32::from(self.base)
    }

    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    pub fn overlaps(&self, o: &Subnet) -> bool {
        self.first() <= o.last() && o.first() <= self.last()
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || EngineError::invalid(format!("invalid CIDR address: {s}"));
        let (ip, p) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let p: u8 = p.parse().map_err(|_| bad())?;
        if p > 32 {
            return Err(bad());
        }
        Ok(Subnet::new(ip, p))
    }
}

/// Carves the first `size`-prefix subnet out of `pool` that overlaps none
/// of `taken`.
pub fn carve(pool: &Subnet, size: u8, taken: &[Subnet]) -> Option<Subnet> {
    if size < pool.prefix || size > 30 {
        return None;
    }
    let step = 1u64 << (32 - size as u32);
    let mut at = pool.first() as u64;
    while at + step - 1 <= pool.last() as u64 {
        let cand = Subnet::new(Ipv4Addr::from(at as u32), size);
        if !taken.iter().any(|t| t.overlaps(&cand)) {
            return Some(cand);
        }
        at += step;
    }
    None
}

/// The next free address in `range` (within `subnet`), skipping the network
/// and broadcast addresses and anything `used`.
pub fn next_free(
    subnet: &Subnet,
    range: Option<&Subnet>,
    used: &dyn Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    let r = range.unwrap_or(subnet);
    let lo = r.first().max(subnet.first() + 1);
    let hi = r.last().min(subnet.last().saturating_sub(1));
    (lo..=hi).map(Ipv4Addr::from).find(|ip| !used(*ip))
}

/// Docker derives a container's MAC from its IPv4 address.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || EngineError::invalid(format!("invalid MAC address: {s}"));
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carves_around_taken_subnets() {
        let pool: Subnet = "172.17.0.0/16".parse().unwrap();
        assert_eq!(carve(&pool, 16, &[]).unwrap().to_string(), "172.17.0.0/16");
        let pool: Subnet = "10.10.0.0/16".parse().unwrap();
        let taken: Vec<Subnet> = vec![
            "10.10.0.0/24".parse().unwrap(),
            "10.10.1.128/25".parse().unwrap(),
        ];
        assert_eq!(
            carve(&pool, 24, &taken).unwrap().to_string(),
            "10.10.2.0/24"
        );
        assert!(carve(
            &"10.0.0.0/24".parse().unwrap(),
            24,
            &["10.0.0.0/8".parse().unwrap()]
        )
        .is_none());
    }

    #[test]
    fn allocates_skipping_used_and_reserved() {
        let s: Subnet = "10.1.0.0/29".parse().unwrap();
        let used = |ip: Ipv4Addr| ip == Ipv4Addr::new(10, 1, 0, 1);
        assert_eq!(next_free(&s, None, &used), Some(Ipv4Addr::new(10, 1, 0, 2)));
        let all = |_ip: Ipv4Addr| true;
        assert_eq!(next_free(&s, None, &all), None);
        assert!(s.contains(Ipv4Addr::new(10, 1, 0, 7)));
        assert!(!s.contains(Ipv4Addr::new(10, 1, 0, 8)));
        assert_eq!(
            mac_string(&mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}

/// An IPv6 subnet, for networks created with `--ipv6 --subnet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet6 {
    pub base: std::net::Ipv6Addr,
    pub prefix: u8,
}

impl Subnet6 {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || EngineError::invalid(format!("invalid CIDR address: {s}"));
        let (ip, p) = s.split_once('/').ok_or_else(bad)?;
        let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
        let p: u8 = p.parse().map_err(|_| bad())?;
        if p > 126 {
            return Err(bad());
        }
        let mask = if p == 0 {
            0
        } else {
            u128::MAX << (128 - p as u32)
        };
        Ok(Self {
            base: std::net::Ipv6Addr::from(u128::from(ip) & mask),
            prefix: p,
        })
    }

    pub fn contains(&self, ip: std::net::Ipv6Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix as u32)
        };
        u128::from(ip) & mask == u128::from(self.base)
    }

    /// `base + n`.
    pub fn nth(&self, n: u128) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(u128::from(self.base) + n)
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[cfg(test)]
mod v6_tests {
    use super::*;

    #[test]
    fn parses_v6_subnets() {
        let s = Subnet6::parse("fd00:dead:beef::1/64").unwrap();
        assert_eq!(s.to_string(), "fd00:dead:beef::/64");
        assert!(s.contains("fd00:dead:beef::42".parse().unwrap()));
        assert!(!s.contains("fd00:dead:bef0::42".parse().unwrap()));
        assert_eq!(s.nth(1).to_string(), "fd00:dead:beef::1");
        assert!(Subnet6::parse("10.0.0.0/8").is_err());
    }
}
