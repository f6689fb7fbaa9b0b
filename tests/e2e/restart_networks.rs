//! Issue 16: what berthd finds on the host at start. A default bridge that
//! is already there is adopted with its address (as dockerd adopts
//! docker0's), never given another subnet; bridges berth made for networks
//! that are gone are removed; nothing berth did not make is touched.

use std::process::{Command, Stdio};

use berth_tests::fixtures::import_busybox;
use berth_tests::*;

/// The IPv4 addresses (address, prefix length) of a link, in kernel order.
fn ipv4_addrs(link: &str) -> Vec<(String, u64)> {
    let out = Command::new("ip")
        .args(["-j", "-4", "addr", "show", "dev", link])
        .output()
        .expect("ip runs");
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some((a["local"].as_str()?.to_string(), a["prefixlen"].as_u64()?)))
        .collect()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip runs");
    assert!(st.success(), "ip {args:?}");
}

/// Links this test made itself, deleted however the test ends.
struct OwnLinks(Vec<String>);

impl Drop for OwnLinks {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The `bridge` network's subnet and gateway as the daemon reports them.
fn bridge_network(d: &Daemon) -> (String, String) {
    let v: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["network", "inspect", "bridge"])).expect("json");
    let c = &v[0]["IPAM"]["Config"][0];
    (
        c["Subnet"].as_str().expect("subnet").to_string(),
        c["Gateway"].as_str().expect("gateway").to_string(),
    )
}

/// `a.b.c.d/p` of the network an address is in.
fn network_of(addr: &str, prefix: u64) -> String {
    let ip: std::net::Ipv4Addr = addr.parse().expect("ipv4");
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    format!(
        "{}/{prefix}",
        std::net::Ipv4Addr::from(u32::from(ip) & mask)
    )
}

fn in_subnet(addr: &str, subnet: &str) -> bool {
    let (_, p) = subnet.split_once('/').expect("cidr");
    network_of(addr, p.parse().expect("prefix")) == subnet
}

#[test]
fn a_fresh_data_root_beside_the_bridge_adopts_its_address() {
    let mut first = Daemon::start();
    let original = ipv4_addrs(&first.bridge);
    assert_eq!(original.len(), 1, "one address after the first start");
    let (subnet, gateway) = bridge_network(&first);
    assert_eq!(subnet, network_of(&original[0].0, original[0].1));
    first.terminate();

    // Five new users, each with a fresh data root, beside the same bridge.
    for round in 0..5 {
        let d = Daemon::start_beside(&first)
            .unwrap_or_else(|e| panic!("round {round}: berthd starts: {e}"));
        assert_eq!(
            ipv4_addrs(&d.bridge),
            original,
            "round {round}: the bridge keeps exactly its one address"
        );
        assert_eq!(
            bridge_network(&d),
            (subnet.clone(), gateway.clone()),
            "round {round}: the bridge network is the bridge's subnet"
        );
        if round == 4 {
            import_busybox(&d, "busybox:latest");
            let out = d.docker_ok(&[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                &format!("ip -4 -o addr show eth0 && ping -c 1 -W 2 {gateway}"),
            ]);
            let addr = out
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .unwrap_or_else(|| panic!("no address in {out}"))
                .to_string();
            assert!(
                in_subnet(&addr, &subnet),
                "{addr} is in the bridge's {subnet}"
            );
            assert!(out.contains("1 packets received"), "gateway answers: {out}");
        }
    }
    assert_eq!(ipv4_addrs(&first.bridge), original);
}

const FOREIGN: &str = "198.51.100.7/32";

#[test]
fn addresses_an_earlier_berth_added_are_removed_and_foreign_ones_kept() {
    let mut first = Daemon::start();
    let original = ipv4_addrs(&first.bridge);
    assert_eq!(original.len(), 1);
    let (subnet, _) = bridge_network(&first);
    first.terminate();
    // The damaged state of the issue, left by a berth that did not mark its
    // bridges: more subnets of berth's pool on the bridge, plus an address
    // someone else put there.
    let (a, b, _, _) = {
        let o: Vec<u8> = original[0]
            .0
            .split('.')
            .map(|x| x.parse().expect("octet"))
            .collect();
        (o[0], o[1], o[2], o[3])
    };
    ip(&["link", "set", "dev", &first.bridge, "alias", ""]);
    for third in [200, 201] {
        ip(&[
            "addr",
            "add",
            &format!("{a}.{b}.{third}.1/24"),
            "dev",
            &first.bridge,
        ]);
    }
    // A /32 from TEST-NET-2: no route to collide with the host's own.
    ip(&["addr", "add", FOREIGN, "dev", &first.bridge]);
    assert_eq!(ipv4_addrs(&first.bridge).len(), 4);

    let d = Daemon::start_beside(&first).expect("berthd starts");
    let mut want = original.clone();
    want.push(("198.51.100.7".into(), 32));
    assert_eq!(
        ipv4_addrs(&d.bridge),
        want,
        "berth's extra subnets are gone, the foreign address stays"
    );
    assert_eq!(bridge_network(&d).0, subnet);
}

#[test]
fn bridges_of_networks_that_are_gone_are_removed_at_start() {
    let mut first = Daemon::start();
    let id1 = first
        .docker_ok(&["network", "create", "gone1"])
        .trim()
        .to_string();
    let id2 = first
        .docker_ok(&["network", "create", "gone2"])
        .trim()
        .to_string();
    let br1 = format!("br-{}", &id1[..12]);
    let br2 = format!("br-{}", &id2[..12]);
    let foreign = format!("br-{}", &random_hex()[..12]);
    let _own = OwnLinks(vec![br1.clone(), br2.clone(), foreign.clone()]);
    assert!(link_exists(&br1) && link_exists(&br2));
    // A crash: the store that knew these networks is then lost.
    first.kill9();
    // gone2's bridge as an earlier berth left it, without the mark: known
    // only from this daemon's firewall table.
    ip(&["link", "set", "dev", &br2, "alias", ""]);
    // Someone else's bridge of the same shape is not berth's to remove.
    ip(&["link", "add", &foreign, "type", "bridge"]);

    let d = Daemon::start_beside(&first).expect("berthd starts");
    assert!(!link_exists(&br1), "{br1} (marked) removed");
    assert!(!link_exists(&br2), "{br2} (in the table) removed");
    assert!(link_exists(&foreign), "{foreign} (not berth's) kept");
    assert!(link_exists(&d.bridge), "the default bridge stays");
    // A network the new daemon makes is its own and works as before.
    let id3 = d
        .docker_ok(&["network", "create", "kept"])
        .trim()
        .to_string();
    assert!(link_exists(&format!("br-{}", &id3[..12])));
}

/// A daemon killed after it made a network's bridge and before it recorded
/// the network (maybe before it marked the bridge: two netlink calls)
/// leaves the bridge named in `<exec-root>/network-pending`; the next start
/// removes it. The kill is simulated by making that state by hand: the
/// window is too narrow to hit with a signal.
#[test]
fn a_bridge_made_for_a_network_never_recorded_is_removed_at_start() {
    let mut d = Daemon::start();
    let half = format!("br-{}", &random_hex()[..12]);
    let foreign = format!("br-{}", &random_hex()[..12]);
    // A record naming a link that is not a bridge is not trusted.
    let dummy = format!("bd{}", &random_hex()[..8]);
    let _own = OwnLinks(vec![half.clone(), foreign.clone(), dummy.clone()]);
    d.kill9();
    ip(&["link", "add", &half, "type", "bridge"]);
    ip(&["link", "add", &foreign, "type", "bridge"]);
    let peer = format!("bp{}", &dummy[2..]);
    ip(&["link", "add", &dummy, "type", "veth", "peer", "name", &peer]);
    let pending = d.exec_root.join("network-pending");
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join(&half), b"").unwrap();
    std::fs::write(pending.join(&dummy), b"").unwrap();

    d.restart().expect("berthd restarts");
    assert!(
        !link_exists(&half),
        "{half} (begun, never recorded) removed"
    );
    assert!(link_exists(&foreign), "{foreign} (not berth's) kept");
    assert!(link_exists(&dummy), "{dummy} (not a bridge) kept");
    assert!(!pending.exists(), "the record is cleared");
    // A network made now records nothing once it exists.
    let id = d.docker_ok(&["network", "create", "n1"]).trim().to_string();
    assert!(link_exists(&format!("br-{}", &id[..12])));
    assert!(!pending.exists());
}

#[test]
fn a_restart_on_its_own_data_root_clears_extra_subnets_from_its_bridge() {
    let mut d = Daemon::start();
    let original = ipv4_addrs(&d.bridge);
    assert_eq!(original.len(), 1);
    let (subnet, gateway) = bridge_network(&d);
    d.terminate();
    let o: Vec<&str> = original[0].0.split('.').collect();
    ip(&[
        "addr",
        "add",
        &format!("{}.{}.202.1/24", o[0], o[1]),
        "dev",
        &d.bridge,
    ]);
    d.restart().expect("berthd restarts");
    assert_eq!(ipv4_addrs(&d.bridge), original);
    assert_eq!(bridge_network(&d), (subnet, gateway));
}
