//! `network create|ls|inspect|rm|prune|connect|disconnect`, as the docker
//! CLI sends and prints them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::common::{confirm, filters_json, parse_go_bool, print_raw_inspect, status_of};
use crate::client::Conn;
use crate::format::{natural_cmp, Tmpl};
use crate::opts::kv_map;
use crate::raw::{self, Raw};
use crate::ExitCode;

#[derive(clap::Subcommand)]
pub enum NetworkCmd {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(name = "ls", visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(name = "rm", visible_aliases = ["remove"])]
    Rm(RmArgs),
}

pub async fn network(conn: &Conn, c: NetworkCmd) -> anyhow::Result<()> {
    match c {
        NetworkCmd::Connect(a) => connect(conn, a).await,
        NetworkCmd::Create(a) => create(conn, a).await,
        NetworkCmd::Disconnect(a) => disconnect(conn, a).await,
        NetworkCmd::Inspect(a) => inspect(conn, a).await,
        NetworkCmd::Ls(a) => ls(conn, a).await,
        NetworkCmd::Prune(a) => prune(conn, a).await,
        NetworkCmd::Rm(a) => rm(conn, a).await,
    }
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, value_name = "string", default_value = "bridge")]
    driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long, value_name = "list")]
    label: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable or disable IPv4 address assignment
    #[arg(long, value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    ipv6: Option<bool>,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long)]
    ingress: bool,
    /// Control the network's scope
    #[arg(long, value_name = "string", default_value = "")]
    scope: String,
    /// Create a configuration only network
    #[arg(long)]
    config_only: bool,
    /// The network from which to copy the configuration
    #[arg(long, value_name = "string")]
    config_from: Option<String>,
    /// IP Address Management Driver
    #[arg(long, value_name = "string", default_value = "default")]
    ipam_driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    subnet: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "strings", value_delimiter = ',')]
    ip_range: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    gateway: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "map")]
    aux_address: Vec<String>,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt", value_name = "map")]
    ipam_opt: Vec<String>,
    #[arg(value_name = "NETWORK")]
    name: String,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    verbose: bool,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(clap::Args)]
pub struct ConnectArgs {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, value_name = "string")]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long, value_name = "string")]
    ip6: Option<String>,
    /// Add link to another container
    #[arg(long, value_name = "list")]
    link: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    alias: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_name = "strings", value_delimiter = ',')]
    link_local_ip: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_name = "strings", value_delimiter = ',')]
    driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(
        long = "gw-priority",
        value_name = "int",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    gw_priority: i64,
    #[arg(value_name = "NETWORK")]
    network: String,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(clap::Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    force: bool,
    #[arg(value_name = "NETWORK")]
    network: String,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// `--label`s as docker's `ValidateLabel` + `ConvertKVStringsToMap` do.
fn labels(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for l in items {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.trim().is_empty() {
            anyhow::bail!(
                "invalid argument {l:?} for \"--label\" flag: invalid label '{l}': empty name"
            );
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

/// Go's `net.ParseCIDR`, reduced to what the subnet checks need.
fn parse_cidr(s: &str) -> Result<(IpAddr, u32), String> {
    let bad = || format!("invalid CIDR address: {s}");
    let (ip, bits) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let bits: u32 = bits.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max || s.ends_with('/') {
        return Err(bad());
    }
    Ok((ip, bits))
}

fn ip_bits(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(v) => (u32::from(v) as u128, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

/// docker's `subnetMatches`: whether `data` (an address or a CIDR) lies in
/// `subnet`.
fn subnet_matches(subnet: &str, data: &str) -> anyhow::Result<bool> {
    let (net, bits) = parse_cidr(subnet).map_err(|e| anyhow::anyhow!("invalid subnet: {e}"))?;
    let ip = if data.contains('/') {
        parse_cidr(data).map_err(anyhow::Error::msg)?.0
    } else {
        match data.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return Ok(false),
        }
    };
    let ((n, width), (i, iwidth)) = (ip_bits(net), ip_bits(ip));
    if width != iwidth {
        return Ok(false);
    }
    let shift = width - bits;
    let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
    Ok(n & mask == i & mask)
}

/// The IPAM block of the create request, with docker's checks: every
/// range, gateway and aux address must fall in one of the subnets.
fn ipam_config(a: &CreateArgs) -> anyhow::Result<Value> {
    if a.subnet.len() < a.ip_range.len() || a.subnet.len() < a.gateway.len() {
        anyhow::bail!("every ip-range or gateway must have a corresponding subnet");
    }
    struct Cfg {
        subnet: String,
        range: String,
        gateway: String,
        aux: BTreeMap<String, String>,
    }
    let mut cfgs: Vec<Cfg> = Vec::new();
    for s in &a.subnet {
        for c in &cfgs {
            if subnet_matches(s, &c.subnet)? || subnet_matches(&c.subnet, s)? {
                anyhow::bail!("multiple overlapping subnet configuration is not supported");
            }
        }
        cfgs.push(Cfg {
            subnet: s.clone(),
            range: String::new(),
            gateway: String::new(),
            aux: BTreeMap::new(),
        });
    }
    for r in &a.ip_range {
        let mut matched = false;
        for c in cfgs.iter_mut() {
            parse_cidr(r).map_err(anyhow::Error::msg)?;
            if !subnet_matches(&c.subnet, r)? {
                continue;
            }
            if !c.range.is_empty() {
                anyhow::bail!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    c.range,
                    c.subnet
                );
            }
            c.range = r.clone();
            matched = true;
        }
        if !matched {
            anyhow::bail!("no matching subnet for range {r}");
        }
    }
    for g in &a.gateway {
        let mut matched = false;
        for c in cfgs.iter_mut() {
            if !subnet_matches(&c.subnet, g)? {
                continue;
            }
            if !c.gateway.is_empty() {
                anyhow::bail!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    c.gateway,
                    c.subnet
                );
            }
            c.gateway = g.clone();
            matched = true;
        }
        if !matched {
            anyhow::bail!("no matching subnet for gateway {g}");
        }
    }
    for (key, addr) in kv_map(&a.aux_address) {
        let mut matched = false;
        for c in cfgs.iter_mut() {
            if subnet_matches(&c.subnet, &addr)? {
                c.aux.insert(key.clone(), addr.clone());
                matched = true;
            }
        }
        if !matched {
            anyhow::bail!("no matching subnet for aux-address {addr}");
        }
    }
    let config: Vec<Value> = cfgs
        .into_iter()
        .map(|c| {
            // Empty fields left out, as Go's `omitempty` does.
            let mut m = Map::new();
            m.insert("Subnet".into(), json!(c.subnet));
            if !c.range.is_empty() {
                m.insert("IPRange".into(), json!(c.range));
            }
            if !c.gateway.is_empty() {
                m.insert("Gateway".into(), json!(c.gateway));
            }
            if !c.aux.is_empty() {
                m.insert("AuxiliaryAddresses".into(), json!(c.aux));
            }
            Value::Object(m)
        })
        .collect();
    Ok(json!({
        "Driver": a.ipam_driver,
        "Config": config,
        "Options": kv_map(&a.ipam_opt),
    }))
}

fn create_body(a: &CreateArgs) -> anyhow::Result<Value> {
    let mut body = json!({
        "Name": a.name,
        "Driver": a.driver,
        "Scope": a.scope,
        "IPAM": ipam_config(a)?,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Ingress": a.ingress,
        "ConfigOnly": a.config_only,
        "ConfigFrom": a.config_from.as_ref().map(|n| json!({"Network": n})),
        "Options": kv_map(&a.opt),
        "Labels": labels(&a.label)?,
    });
    // Only when given: unset leaves the daemon's default.
    if let Some(v) = a.ipv4 {
        body["EnableIPv4"] = json!(v);
    }
    if let Some(v) = a.ipv6 {
        body["EnableIPv6"] = json!(v);
    }
    Ok(body)
}

async fn post_json(raw: &Raw, path: &str, body: &Value) -> anyhow::Result<Vec<u8>> {
    raw.call(
        "POST",
        path,
        Some(("application/json", serde_json::to_vec(body)?)),
    )
    .await
}

pub async fn create(conn: &Conn, a: CreateArgs) -> anyhow::Result<()> {
    let body = create_body(&a)?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let r: Value = serde_json::from_slice(&post_json(&raw, "/networks/create", &body).await?)?;
    println!("{}", r["Id"].as_str().unwrap_or(""));
    Ok(())
}

/// Go's `time.Time.String()` of an RFC 3339 time (`CreatedAt`).
fn go_time_string(s: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) else {
        return String::new();
    };
    let mut frac = format!("{:09}", t.timestamp_subsec_nanos());
    while frac.ends_with('0') {
        frac.pop();
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    let off = t.offset().local_minus_utc();
    let off_s = format!(
        "{}{:02}{:02}",
        if off < 0 { '-' } else { '+' },
        off.abs() / 3600,
        off.abs() % 3600 / 60
    );
    // A parsed zone has no name: UTC prints as such, others repeat the offset.
    let zone = if off == 0 {
        "UTC".to_string()
    } else {
        off_s.clone()
    };
    format!("{}{frac} {off_s} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
}

fn ls_row(n: &Value, trunc: bool) -> Value {
    let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
    let b = |k: &str| n[k].as_bool().unwrap_or(false).to_string();
    let id = if trunc {
        s("Id").chars().take(12).collect()
    } else {
        s("Id")
    };
    let mut labels: Vec<String> = n["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    json!({
        "ID": id,
        "Name": s("Name"),
        "Driver": s("Driver"),
        "Scope": s("Scope"),
        "IPv4": b("EnableIPv4"),
        "IPv6": b("EnableIPv6"),
        "Internal": b("Internal"),
        "Labels": labels.join(","),
        "CreatedAt": go_time_string(&s("Created")),
    })
}

const LS_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// The template `network ls` uses: a custom `--format` wins over `-q`, as
/// in docker; `table` and `raw` are docker's named formats.
fn ls_format(format: Option<&str>, quiet: bool) -> String {
    match format.filter(|f| !f.is_empty()).unwrap_or("table") {
        "table" if quiet => "{{.ID}}".into(),
        "table" => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".into(),
        "raw" if quiet => "network_id: {{.ID}}".into(),
        "raw" => {
            "network_id: {{.ID}}\\nname: {{.Name}}\\ndriver: {{.Driver}}\\nscope: {{.Scope}}\\n"
                .into()
        }
        f => f.to_string(),
    }
}

pub async fn ls(conn: &Conn, a: LsArgs) -> anyhow::Result<()> {
    let t = Tmpl::parse(&ls_format(a.format.as_deref(), a.quiet), LS_HEADERS)?;
    let filters = filters_json(&a.filter, &[])?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let path = match filters {
        Some(f) => format!("/networks?{}", raw::query(&[("filters", f)])),
        None => "/networks".to_string(),
    };
    let mut list: Vec<Value> = serde_json::from_slice(&raw.call("GET", &path, None).await?)?;
    list.sort_by(|x, y| {
        natural_cmp(
            x["Name"].as_str().unwrap_or(""),
            y["Name"].as_str().unwrap_or(""),
        )
    });
    let rows: Vec<Value> = list.iter().map(|n| ls_row(n, !a.no_trunc)).collect();
    print!("{}", t.render_all(&rows)?);
    Ok(())
}

pub async fn inspect(conn: &Conn, a: InspectArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &a.networks {
        let mut path = format!("/networks/{}", raw::seg(name));
        if a.verbose {
            path.push_str("?verbose=true");
        }
        match raw.get_raw(&path).await {
            Ok(body) => found.push(body),
            Err(e) => missing.push(super::error_text(&e)),
        }
    }
    print_raw_inspect(&found, &missing, a.format.as_deref())
}

/// One by one, as docker: each removed name is printed, each failure goes
/// to stderr, and any failure makes the exit status 1.
pub async fn rm(conn: &Conn, a: RmArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut failed = false;
    for name in &a.networks {
        let r = if name.trim().is_empty() {
            Err(anyhow::anyhow!("network name cannot be empty"))
        } else {
            raw.call("DELETE", &format!("/networks/{}", raw::seg(name)), None)
                .await
        };
        match r {
            Ok(_) => println!("{name}"),
            Err(e) if a.force && status_of(&e) == Some(404) => {}
            Err(e) => {
                eprintln!("{}", super::error_text(&e));
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode(1).into());
    }
    Ok(())
}

pub async fn prune(conn: &Conn, a: PruneArgs) -> anyhow::Result<()> {
    let filters = filters_json(&a.filter, &[])?;
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )
    {
        // docker treats the refusal as a cancellation: no message, status 0.
        return Ok(());
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let path = match filters {
        Some(f) => format!("/networks/prune?{}", raw::query(&[("filters", f)])),
        None => "/networks/prune".to_string(),
    };
    let r: Value = serde_json::from_slice(&raw.call("POST", &path, None).await?)?;
    let deleted: Vec<&str> = r["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Networks:\n");
        for n in deleted {
            out.push_str(n);
            out.push('\n');
        }
        println!("{out}");
    }
    Ok(())
}

/// `--driver-opt k=v`: docker's `convertDriverOpt`.
fn driver_opts(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for o in items {
        match o.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                m.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => anyhow::bail!("invalid key/value pair format in driver options"),
        }
    }
    Ok(m)
}

fn connect_body(a: &ConnectArgs) -> anyhow::Result<Value> {
    let mut ipam = Map::new();
    if let Some(ip) = a.ip.as_ref().filter(|s| !s.is_empty()) {
        ipam.insert("IPv4Address".into(), json!(ip));
    }
    if let Some(ip) = a.ip6.as_ref().filter(|s| !s.is_empty()) {
        ipam.insert("IPv6Address".into(), json!(ip));
    }
    if !a.link_local_ip.is_empty() {
        ipam.insert("LinkLocalIPs".into(), json!(a.link_local_ip));
    }
    Ok(json!({
        "Container": a.container.trim(),
        "EndpointConfig": {
            "IPAMConfig": ipam,
            "Links": (!a.link.is_empty()).then_some(&a.link),
            "Aliases": a.alias,
            "DriverOpts": driver_opts(&a.driver_opt)?,
            "GwPriority": a.gw_priority,
        },
    }))
}

/// The client's check on both names before anything is sent.
fn require_ids(network: &str, container: &str) -> anyhow::Result<()> {
    if network.trim().is_empty() {
        anyhow::bail!("invalid network name or ID: value is empty");
    }
    if container.trim().is_empty() {
        anyhow::bail!("invalid container name or ID: value is empty");
    }
    Ok(())
}

pub async fn connect(conn: &Conn, a: ConnectArgs) -> anyhow::Result<()> {
    require_ids(&a.network, &a.container)?;
    let body = connect_body(&a)?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let path = format!("/networks/{}/connect", raw::seg(a.network.trim()));
    post_json(&raw, &path, &body).await?;
    Ok(())
}

pub async fn disconnect(conn: &Conn, a: DisconnectArgs) -> anyhow::Result<()> {
    require_ids(&a.network, &a.container)?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let path = format!("/networks/{}/disconnect", raw::seg(a.network.trim()));
    let body = json!({"Container": a.container.trim(), "Force": a.force});
    post_json(&raw, &path, &body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(subcommand)]
        c: NetworkCmd,
    }

    fn create_args(argv: &[&str]) -> CreateArgs {
        let mut v = vec!["t", "create"];
        v.extend_from_slice(argv);
        match T::try_parse_from(v).expect("parses").c {
            NetworkCmd::Create(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn create_body_has_ipam_and_checks_subnets() {
        let a = create_args(&[
            "--subnet",
            "10.99.0.0/16",
            "--ip-range",
            "10.99.1.0/24",
            "--gateway",
            "10.99.0.1",
            "--label",
            "a=b",
            "-o",
            "com.example.mtu=1400",
            "--ipv6=false",
            "--internal",
            "n1",
        ]);
        let b = create_body(&a).unwrap();
        assert_eq!(b["Name"], "n1");
        assert_eq!(b["Driver"], "bridge");
        assert_eq!(
            b["IPAM"],
            json!({"Driver": "default", "Options": {}, "Config": [
                {"Subnet": "10.99.0.0/16", "IPRange": "10.99.1.0/24", "Gateway": "10.99.0.1"}
            ]})
        );
        assert_eq!(b["Labels"], json!({"a": "b"}));
        assert_eq!(b["Options"], json!({"com.example.mtu": "1400"}));
        assert_eq!(b["EnableIPv6"], json!(false));
        assert!(b.get("EnableIPv4").is_none());
        assert_eq!(b["Internal"], json!(true));

        let err = |argv: &[&str]| create_body(&create_args(argv)).unwrap_err().to_string();
        assert_eq!(
            err(&["--gateway", "10.0.0.1", "n"]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            err(&["--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1", "n"]),
            "no matching subnet for gateway 10.2.0.1"
        );
        assert_eq!(
            err(&["--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24", "n"]),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            err(&["--subnet", "10.1.0.0/24", "--subnet", "10.2.0.0", "n"]),
            "invalid subnet: invalid CIDR address: 10.2.0.0"
        );
        assert!(subnet_matches("fd00::/64", "fd00::1").unwrap());
        assert!(!subnet_matches("fd00::/64", "10.0.0.1").unwrap());
        assert!(subnet_matches("0.0.0.0/0", "10.0.0.1").unwrap());
    }

    #[test]
    fn ls_rows_and_formats_as_docker() {
        let n = json!({"Name": "web", "Id": "0123456789abcdef0123", "Driver": "bridge",
            "Scope": "local", "EnableIPv6": false, "Internal": true,
            "Created": "2026-01-02T03:04:05.120000000Z", "Labels": {"z": "1", "a": "2"}});
        let r = ls_row(&n, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Internal"], "true");
        assert_eq!(r["IPv4"], "false");
        assert_eq!(r["Labels"], "a=2,z=1");
        assert_eq!(r["CreatedAt"], "2026-01-02 03:04:05.12 +0000 UTC");
        assert_eq!(ls_format(None, true), "{{.ID}}");
        assert_eq!(ls_format(Some("{{.Name}}"), true), "{{.Name}}");
        let t = Tmpl::parse(&ls_format(None, false), LS_HEADERS).unwrap();
        assert_eq!(
            t.render_all(&[r]).unwrap(),
            "NETWORK ID     NAME      DRIVER    SCOPE\n0123456789ab   web       bridge    local\n"
        );
    }

    #[test]
    fn connect_body_as_docker_sends_it() {
        let a = match T::try_parse_from([
            "t", "connect", "--alias", "a,b", "--ip", "10.0.0.5", "net", "ctr",
        ])
        .unwrap()
        .c
        {
            NetworkCmd::Connect(a) => a,
            _ => unreachable!(),
        };
        let b = connect_body(&a).unwrap();
        assert_eq!(b["Container"], "ctr");
        assert_eq!(b["EndpointConfig"]["Aliases"], json!(["a", "b"]));
        assert_eq!(
            b["EndpointConfig"]["IPAMConfig"],
            json!({"IPv4Address": "10.0.0.5"})
        );
        assert!(driver_opts(&["=x".into()]).is_err());
    }
}
