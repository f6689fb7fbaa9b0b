//! The endpoint table: which running container is attached to which
//! network, under which names and addresses. Filled when a container joins
//! a network and emptied when it leaves, so that network inspect, removal
//! and the embedded DNS never scan the containers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_api::models::EndpointSettings;

use super::{lock, Networks};

/// One container's endpoint on one network.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The container's name (without `/`), as network inspect shows it.
    pub name: String,
    pub settings: EndpointSettings,
}

/// Network name → container ID → endpoint.
pub type Table = BTreeMap<String, BTreeMap<String, Attached>>;

impl Networks {
    /// Records container `cid`'s endpoints as attached (a start, a
    /// reconnect, a restore). A bridge endpoint counts once it has an
    /// address; `host` and `none` endpoints have none and are listed too.
    pub fn attach_endpoints(
        &self,
        cid: &str,
        name: &str,
        eps: &crate::engine::networks::EndpointMap,
    ) {
        for (net, ep) in eps {
            self.attach_endpoint(cid, name, net, ep);
        }
    }

    /// As `attach_endpoints`, for one network.
    pub fn attach_endpoint(&self, cid: &str, name: &str, net: &str, ep: &EndpointSettings) {
        let bridge = self.find(net).map(|n| n.plugs()).unwrap_or(true);
        if bridge && ep.ip_address.as_deref().unwrap_or("").is_empty() {
            return;
        }
        lock(&self.endpoints)
            .entry(net.to_string())
            .or_default()
            .insert(
                cid.to_string(),
                Attached {
                    name: name.trim_start_matches('/').to_string(),
                    settings: ep.clone(),
                },
            );
    }

    /// Container `cid` left network `net`.
    pub fn detach_endpoint(&self, cid: &str, net: &str) {
        let mut t = lock(&self.endpoints);
        if let Some(m) = t.get_mut(net) {
            m.remove(cid);
            if m.is_empty() {
                t.remove(net);
            }
        }
    }

    /// Container `cid` left every network (it stopped).
    pub fn detach_all(&self, cid: &str) {
        let mut t = lock(&self.endpoints);
        for m in t.values_mut() {
            m.remove(cid);
        }
        t.retain(|_, m| !m.is_empty());
    }

    /// Container `cid` is now called `name`.
    pub fn rename_endpoints(&self, cid: &str, name: &str) {
        for m in lock(&self.endpoints).values_mut() {
            if let Some(a) = m.get_mut(cid) {
                a.name = name.trim_start_matches('/').to_string();
            }
        }
    }

    /// The containers attached to network `net`, by ID.
    pub fn attached_to(&self, net: &str) -> BTreeMap<String, Attached> {
        lock(&self.endpoints).get(net).cloned().unwrap_or_default()
    }

    /// Names visible to container `asker`: containers, their short IDs and
    /// aliases on the user-defined networks it shares, also as `name.network`.
    /// Its own legacy links (`EndpointSettings.Links`) come first: an alias
    /// names the link's target on that network, for this container only.
    pub fn dns_lookup(&self, asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        let t = lock(&self.endpoints);
        let mine: Vec<(&String, &EndpointSettings)> = t
            .iter()
            .filter_map(|(net, m)| m.get(asker).map(|a| (net, &a.settings)))
            .filter(|(net, ep)| {
                !ep.ip_address.as_deref().unwrap_or("").is_empty()
                    && self.find(net).map(|x| x.has_dns()).unwrap_or(false)
            })
            .collect();
        let my_nets: Vec<&String> = mine.iter().map(|(n, _)| *n).collect();
        for (net, ep) in &mine {
            for link in ep.links.iter().flatten() {
                let Ok((target, alias)) = berth_api::links::parse(link) else {
                    continue;
                };
                let alias = alias.to_ascii_lowercase();
                if alias == name || format!("{alias}.{}", net.to_ascii_lowercase()) == name {
                    let found = names_on(&t, &[*net], &target.to_ascii_lowercase());
                    if found.is_some() {
                        return found;
                    }
                }
            }
        }
        names_on(&t, &my_nets, name)
    }
}

/// The addresses of the attached containers that answer to `name` (or
/// `name.network`) on one of `nets`.
fn names_on(t: &Table, nets: &[&String], name: &str) -> Option<Vec<IpAddr>> {
    let mut ips = Vec::new();
    for net in nets {
        let Some(m) = t.get(*net) else {
            continue;
        };
        for a in m.values() {
            let ep = &a.settings;
            let hit = ep.dns_names.iter().flatten().any(|n| {
                let n = n.to_ascii_lowercase();
                n == name || format!("{n}.{}", net.to_ascii_lowercase()) == name
            });
            if !hit {
                continue;
            }
            // Its IPv4 address and, on IPv6 networks, its IPv6 one.
            for a in [ep.ip_address.as_deref(), ep.global_ipv6_address.as_deref()]
                .into_iter()
                .flatten()
            {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            }
        }
    }
    (!ips.is_empty()).then_some(ips)
}
