//! berth's own nftables table: outbound masquerade, DNAT for published
//! ports, and Docker's isolation rules between networks. The whole table is
//! rendered from state and replaced in one `nft -f` transaction, so it is
//! idempotent and never touches anyone else's tables. (`nft`'s batch input
//! is used rather than a netlink crate: it is the stable interface, and one
//! atomic transaction per change is what we want.)

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::ipam::Subnet;
use crate::engine::{EngineError, Result};

#[derive(Debug, Clone)]
pub struct BridgeNet {
    pub bridge: String,
    pub subnet: Subnet,
    pub internal: bool,
}

#[derive(Debug, Clone)]
pub struct Dnat {
    /// None: any local address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub proto: String,
    pub target: Ipv4Addr,
    pub target_port: u16,
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', ""))
}

/// The table's full definition.
pub fn render(table: &str, nets: &[BridgeNet], dnats: &[Dnat]) -> String {
    let mut s = String::new();
    // Create-then-delete makes the replacement work whether or not it exists.
    for family in ["ip", "ip6"] {
        s.push_str(&format!(
            "add table {family} {table}\ndelete table {family} {table}\n"
        ));
    }
    if nets.is_empty() {
        return s;
    }
    s.push_str(&format!("table ip {table} {{\n"));
    s.push_str(&bridges_set(nets));
    s.push_str(
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
    );
    for d in dnats {
        let m = match d.host_ip {
            None => "fib daddr type local".to_string(),
            Some(ip) => format!("ip daddr {ip}"),
        };
        s.push_str(&format!(
            "    {m} {} dport {} dnat to {}:{}\n",
            d.proto, d.host_port, d.target, d.target_port
        ));
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in nets.iter().filter(|n| !n.internal) {
        s.push_str(&format!(
            "    ip saddr {} oifname != {} masquerade\n",
            n.subnet,
            q(&n.bridge)
        ));
    }
    s.push_str("  }\n");
    s.push_str(&forward_chain(nets));
    s.push_str("}\n");
    // IPv6 (EnableIPv6 networks) gets the same isolation; as Docker by
    // default, no NAT for IPv6.
    s.push_str(&format!("table ip6 {table} {{\n"));
    s.push_str(&bridges_set(nets));
    s.push_str(&forward_chain(nets));
    s.push_str("}\n");
    s
}

fn bridges_set(nets: &[BridgeNet]) -> String {
    let names: Vec<String> = nets.iter().map(|n| q(&n.bridge)).collect();
    format!(
        "  set bridges {{ type ifname; elements = {{ {} }} }}\n",
        names.join(", ")
    )
}

/// Docker's isolation: no traffic between networks, none in or out of an
/// internal one. Interface matches, so the same rules serve both families.
fn forward_chain(nets: &[BridgeNet]) -> String {
    let mut s = String::from(
        "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
    );
    for n in nets {
        let b = q(&n.bridge);
        if n.internal {
            s.push_str(&format!("    iifname {b} oifname != {b} drop\n"));
            s.push_str(&format!("    oifname {b} iifname != {b} drop\n"));
        } else {
            s.push_str(&format!(
                "    iifname {b} oifname @bridges oifname != {b} drop\n"
            ));
        }
    }
    s.push_str("  }\n");
    s
}

pub fn apply(ruleset: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| EngineError::internal(format!("running nft: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(ruleset.as_bytes())
            .map_err(|e| EngineError::internal(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| EngineError::internal(format!("nft: {e}")))?;
    if !out.status.success() {
        return Err(EngineError::internal(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The bridges named in the `bridges` set of the table as the last run left
/// it (empty when there is no such table).
pub fn listed_bridges(table: &str) -> Vec<String> {
    let Ok(out) = Command::new("nft")
        .args(["-j", "list", "set", "ip", table, "bridges"])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    parse_set_elements(&out.stdout)
}

fn parse_set_elements(json: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["set"]["elem"].as_array())
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

pub fn remove(table: &str) {
    let _ = apply(&render(table, &[], &[]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bridges_set() {
        let j = br#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "ip", "name": "bridges", "table": "berth", "type": "ifname", "handle": 1, "elem": ["berth0", "br-0123456789ab"]}}]}"#;
        assert_eq!(parse_set_elements(j), vec!["berth0", "br-0123456789ab"]);
        assert!(parse_set_elements(b"garbage").is_empty());
    }

    #[test]
    fn renders_isolation_masquerade_and_dnat() {
        let nets = vec![
            BridgeNet {
                bridge: "berth0".into(),
                subnet: "172.30.0.0/16".parse().unwrap(),
                internal: false,
            },
            BridgeNet {
                bridge: "br-int".into(),
                subnet: "10.9.0.0/24".parse().unwrap(),
                internal: true,
            },
        ];
        let d = vec![Dnat {
            host_ip: None,
            host_port: 8080,
            proto: "tcp".into(),
            target: Ipv4Addr::new(172, 30, 0, 2),
            target_port: 80,
        }];
        let r = render("berth", &nets, &d);
        assert!(r.contains("ip saddr 172.30.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(
            !r.contains("10.9.0.0/24 oifname"),
            "internal networks are not masqueraded"
        );
        assert!(r.contains("fib daddr type local tcp dport 8080 dnat to 172.30.0.2:80"));
        assert!(r.contains("iifname \"br-int\" oifname != \"br-int\" drop"));
        assert!(r.starts_with("add table ip berth\ndelete table ip berth\n"));
    }
}
