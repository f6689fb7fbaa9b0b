//! The kernel side of bridge networks, through netlink (rtnetlink): bridges,
//! veth pairs into container namespaces, addresses, routes.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::ipam::Subnet;
use crate::engine::{EngineError, Result};

fn nl_err(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(format!("{what}: {e}"))
}

/// A netlink connection in the daemon's network namespace.
pub fn host_handle() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| nl_err("netlink", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The daemon namespace's netlink handle, opened on first use and shared
/// by the networks service and its drivers.
#[derive(Default)]
pub struct Netlink(std::sync::Mutex<Option<Handle>>);

impl Netlink {
    pub fn handle(&self) -> Result<Handle> {
        let mut h = super::lock(&self.0);
        if h.is_none() {
            *h = Some(host_handle()?);
        }
        h.clone()
            .ok_or_else(|| EngineError::internal("netlink unavailable"))
    }
}

pub async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl_err(&format!("looking up {name}"), e)),
    }
}

/// Creates (or adopts) a bridge with the gateway address, and brings it up.
/// A bridge berth creates carries `owner` as its alias (ifalias): that is
/// how a later start recognises it as this daemon's own.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Option<(Ipv4Addr, u8)>,
    owner: &str,
) -> Result<u32> {
    let idx = match link_index(h, name).await? {
        Some(i) => i,
        None => {
            h.link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await
                .map_err(|e| nl_err(&format!("creating bridge {name}"), e))?;
            let idx = link_index(h, name)
                .await?
                .ok_or_else(|| EngineError::internal(format!("bridge {name} vanished")))?;
            // The kernel takes an alias only on a change, not at creation.
            let mut msg = LinkUnspec::new_with_index(idx).build();
            msg.attributes
                .push(LinkAttribute::IfAlias(owner.to_string()));
            h.link()
                .set(msg)
                .execute()
                .await
                .map_err(|e| nl_err(&format!("marking bridge {name}"), e))?;
            idx
        }
    };
    if let Some((gw, prefix)) = gateway {
        let mut addrs = h.address().get().set_link_index_filter(idx).execute();
        let mut present = false;
        while let Ok(Some(a)) = addrs.try_next().await {
            for attr in a.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = attr {
                    if ip == gw {
                        present = true;
                    }
                }
            }
        }
        if !present {
            h.address()
                .add(idx, IpAddr::V4(gw), prefix)
                .execute()
                .await
                .map_err(|e| nl_err(&format!("addressing bridge {name}"), e))?;
        }
    }
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(|e| nl_err(&format!("bringing up {name}"), e))?;
    Ok(idx)
}

fn ipv4_of(m: &AddressMessage) -> Option<(Ipv4Addr, u8)> {
    m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(IpAddr::V4(ip)) => Some((*ip, m.header.prefix_len)),
        _ => None,
    })
}

async fn ipv4_messages(h: &Handle, idx: u32) -> Result<Vec<AddressMessage>> {
    let mut out = Vec::new();
    let mut addrs = h.address().get().set_link_index_filter(idx).execute();
    while let Some(a) = addrs
        .try_next()
        .await
        .map_err(|e| nl_err("listing addresses", e))?
    {
        // The filter is advisory on some kernels.
        if a.header.index == idx && ipv4_of(&a).is_some() {
            out.push(a);
        }
    }
    Ok(out)
}

/// The IPv4 addresses (with prefix lengths) of a link, in the kernel's order
/// (the primary address first).
pub async fn ipv4_addrs(h: &Handle, name: &str) -> Result<Vec<(Ipv4Addr, u8)>> {
    let Some(idx) = link_index(h, name).await? else {
        return Ok(Vec::new());
    };
    Ok(ipv4_messages(h, idx)
        .await?
        .iter()
        .filter_map(ipv4_of)
        .collect())
}

/// Removes the IPv4 addresses of a link other than `keep` for which
/// `removable` holds; their prefix routes go with them. Returns what went.
pub async fn prune_ipv4(
    h: &Handle,
    name: &str,
    keep: Ipv4Addr,
    removable: impl Fn(Ipv4Addr, u8) -> bool,
) -> Result<Vec<(Ipv4Addr, u8)>> {
    let Some(idx) = link_index(h, name).await? else {
        return Ok(Vec::new());
    };
    let mut gone = Vec::new();
    for m in ipv4_messages(h, idx).await? {
        let Some((ip, plen)) = ipv4_of(&m) else {
            continue;
        };
        if ip == keep || !removable(ip, plen) {
            continue;
        }
        match h.address().del(m).execute().await {
            Ok(()) => gone.push((ip, plen)),
            // Deleting a primary address also drops its secondaries.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {}
            Err(e) => return Err(nl_err(&format!("removing {ip}/{plen} from {name}"), e)),
        }
    }
    Ok(gone)
}

/// Whether a link is a bridge carrying `owner` as its alias.
pub async fn is_owned_bridge(h: &Handle, name: &str, owner: &str) -> Result<bool> {
    Ok(owned_bridges(h, owner).await?.iter().any(|n| n == name))
}

/// Names of the bridges that carry `owner` as their alias.
pub async fn owned_bridges(h: &Handle, owner: &str) -> Result<Vec<String>> {
    Ok(bridges(h)
        .await?
        .into_iter()
        .filter(|(_, alias)| alias.as_deref() == Some(owner))
        .map(|(name, _)| name)
        .collect())
}

/// The host's bridges, each with its alias (ifalias) if it has one.
pub async fn bridges(h: &Handle) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut links = h.link().get().execute();
    while let Some(l) = links
        .try_next()
        .await
        .map_err(|e| nl_err("listing links", e))?
    {
        let mut name = None;
        let mut alias = None;
        let mut bridge = false;
        for a in l.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n),
                LinkAttribute::IfAlias(s) => alias = Some(s),
                LinkAttribute::LinkInfo(infos) => {
                    bridge |= infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)));
                }
                _ => {}
            }
        }
        if let (true, Some(n)) = (bridge, name) {
            out.push((n, alias));
        }
    }
    Ok(out)
}

pub async fn delete_link(h: &Handle, name: &str) -> Result<()> {
    if let Some(idx) = link_index(h, name).await? {
        h.link()
            .del(idx)
            .execute()
            .await
            .map_err(|e| nl_err(&format!("deleting {name}"), e))?;
    }
    Ok(())
}

/// IPv4 destinations of the host's routes (the default route excluded).
pub async fn host_routes(h: &Handle) -> Result<Vec<Subnet>> {
    let mut out = Vec::new();
    let mut routes = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(r) = routes
        .try_next()
        .await
        .map_err(|e| nl_err("listing routes", e))?
    {
        let plen = r.header.destination_prefix_length;
        if plen == 0 {
            continue;
        }
        for a in &r.attributes {
            if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                out.push(Subnet::new(*ip, plen));
            }
        }
    }
    Ok(out)
}

/// What a container's interface on one network looks like.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// Default route through this gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 address and prefix, and the IPv6 default route.
    pub ip6: Option<(std::net::Ipv6Addr, u8)>,
    pub gateway6: Option<std::net::Ipv6Addr>,
}

/// Adds an IPv6 address without duplicate address detection (which would
/// leave it "tentative", unusable, for a second or two).
pub async fn add_addr6(h: &Handle, idx: u32, ip: std::net::Ipv6Addr, prefix: u8) -> Result<()> {
    let mut req = h.address().add(idx, IpAddr::V6(ip), prefix);
    req.message_mut()
        .attributes
        .push(netlink_packet_route::address::AddressAttribute::Flags(
            netlink_packet_route::address::AddressFlags::Nodad,
        ));
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        Err(e) => Err(nl_err("adding an IPv6 address", e)),
    }
}

/// Runs `f` with a netlink handle inside the network namespace at `netns`
/// (on a dedicated thread: setns only affects the calling thread).
pub fn in_netns<T, F, Fut>(netns: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    let ns = std::fs::File::open(netns)
        .map_err(|e| nl_err(&format!("opening {}", netns.display()), e))?;
    std::thread::spawn(move || -> Result<T> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| nl_err("setns", e))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| nl_err("runtime", e))?;
        rt.block_on(async move {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| nl_err("netlink", e))?;
            let c = tokio::spawn(conn);
            let r = f(handle).await;
            c.abort();
            r
        })
    })
    .join()
    .map_err(|_| EngineError::internal("netns thread panicked"))?
}

/// Creates a veth pair with the host end in `bridge_idx` and the other end
/// inside the namespace at `netns`, configured as `iface`.
/// Returns the host end's name.
pub async fn add_endpoint(
    h: &Handle,
    bridge_idx: u32,
    netns: &Path,
    iface: Iface,
) -> Result<String> {
    let tag = &crate::engine::ids::random_hex(4)[..7];
    let host = format!("veth{tag}");
    // One request: the host end plugged into the bridge and up, the peer
    // born inside the container's namespace with its final name and MAC.
    // Moving a link between namespaces afterwards costs the kernel an RCU
    // grace period (~15 ms here); creating it there does not.
    let ns = std::fs::File::open(netns).map_err(|e| nl_err("opening netns", e))?;
    let peer_msg = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
        .name(iface.name.clone())
        .address(iface.mac.to_vec())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    h.link()
        .add(
            LinkVeth::new(&host, "unused")
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
                .controller(bridge_idx)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| nl_err("creating veth", e))?;
    drop(ns);
    let made = async {
        let peer_name = iface.name.clone();
        in_netns(netns, move |nh| async move {
            let idx = link_index(&nh, &peer_name)
                .await?
                .ok_or_else(|| EngineError::internal("veth missing in the container"))?;
            nh.address()
                .add(idx, IpAddr::V4(iface.ip), iface.prefix)
                .execute()
                .await
                .map_err(|e| nl_err("addressing the container interface", e))?;
            nh.link()
                .set(LinkUnspec::new_with_index(idx).up().build())
                .execute()
                .await
                .map_err(|e| nl_err("bringing up the container interface", e))?;
            if let Some(gw) = iface.gateway {
                nh.route()
                    .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build())
                    .execute()
                    .await
                    .map_err(|e| nl_err("adding the default route", e))?;
            }
            if let Some((ip6, p6)) = iface.ip6 {
                add_addr6(&nh, idx, ip6, p6).await?;
                if let Some(gw6) = iface.gateway6 {
                    nh.route()
                        .add(
                            RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                                .gateway(gw6)
                                .build(),
                        )
                        .execute()
                        .await
                        .map_err(|e| nl_err("adding the IPv6 default route", e))?;
                }
            }
            Ok(())
        })
    }
    .await;
    if let Err(e) = made {
        let _ = delete_link(h, &host).await;
        return Err(e);
    }
    Ok(host)
}

/// A route a network plugin asks for (`StaticRoutes`): through `via`, or
/// straight out of the interface (`RouteType` 1) when `via` is `None`.
#[derive(Debug, Clone)]
pub struct ExtraRoute {
    pub dest: IpAddr,
    pub prefix: u8,
    pub via: Option<IpAddr>,
}

/// Takes link `src` (made in the daemon's namespace by a network plugin)
/// into the namespace at `netns` as `iface`: renamed in the same request
/// that moves it, then its MAC, addresses, routes, and up.
pub async fn adopt_link(
    h: &Handle,
    src: &str,
    netns: &Path,
    iface: Iface,
    routes: Vec<ExtraRoute>,
) -> Result<()> {
    let idx = link_index(h, src)
        .await?
        .ok_or_else(|| EngineError::internal(format!("the plugin's interface {src} not found")))?;
    let ns = std::fs::File::open(netns).map_err(|e| nl_err("opening netns", e))?;
    h.link()
        .set(
            LinkUnspec::new_with_index(idx)
                .down()
                .name(iface.name.clone())
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| nl_err(&format!("moving {src} into the container"), e))?;
    drop(ns);
    in_netns(netns, move |nh| async move {
        let idx = link_index(&nh, &iface.name)
            .await?
            .ok_or_else(|| EngineError::internal("interface missing in the container"))?;
        nh.link()
            .set(
                LinkUnspec::new_with_index(idx)
                    .address(iface.mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| nl_err("setting the interface's MAC address", e))?;
        nh.address()
            .add(idx, IpAddr::V4(iface.ip), iface.prefix)
            .execute()
            .await
            .map_err(|e| nl_err("addressing the container interface", e))?;
        if let Some((ip6, p6)) = iface.ip6 {
            add_addr6(&nh, idx, ip6, p6).await?;
        }
        nh.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .map_err(|e| nl_err("bringing up the container interface", e))?;
        let bad = |e| nl_err("a static route", e);
        for r in routes {
            let mut m = RouteMessageBuilder::<IpAddr>::new()
                .destination_prefix(r.dest, r.prefix)
                .map_err(bad)?
                .output_interface(idx);
            if let Some(via) = r.via {
                m = m.gateway(via).map_err(bad)?;
            }
            nh.route()
                .add(m.build())
                .execute()
                .await
                .map_err(|e| nl_err("adding a static route", e))?;
        }
        if let Some(gw) = iface.gateway {
            nh.route()
                .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build())
                .execute()
                .await
                .map_err(|e| nl_err("adding the default route", e))?;
        }
        if let Some(gw6) = iface.gateway6 {
            nh.route()
                .add(
                    RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                        .gateway(gw6)
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| nl_err("adding the IPv6 default route", e))?;
        }
        Ok(())
    })
}

/// Removes a container interface by deleting its namespace-side link.
pub fn remove_iface(netns: &Path, name: &str) -> Result<()> {
    let name = name.to_string();
    in_netns(netns, move |nh| async move {
        if let Some(idx) = link_index(&nh, &name).await? {
            nh.link()
                .del(idx)
                .execute()
                .await
                .map_err(|e| nl_err("deleting interface", e))?;
        }
        Ok(())
    })
}

/// Names of the interfaces in a namespace (to pick the next `ethN`).
pub fn iface_names(netns: &Path) -> Result<Vec<String>> {
    in_netns(netns, |nh| async move {
        let mut out = Vec::new();
        let mut links = nh.link().get().execute();
        while let Some(l) = links
            .try_next()
            .await
            .map_err(|e| nl_err("listing links", e))?
        {
            for a in l.attributes {
                if let netlink_packet_route::link::LinkAttribute::IfName(n) = a {
                    out.push(n);
                }
            }
        }
        Ok(out)
    })
}
