//! Issue 19, item 3: network and IPAM plugins. A legacy plugin written for
//! the tests (`tests/plugins/netplugin.py`) is both a network driver and
//! an IPAM: it owns a bridge of its own, makes a veth pair per endpoint
//! and hands out addresses from its own pools, and records every call.
//! Traffic goes only between the test's own containers (the plugin's
//! bridge has no address on the host).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::host::footprint;
use berth_tests::wait::wait_for;
use berth_tests::*;
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/netplugin.py");

/// The test plugin, serving on `<exec-root>/plugins/<name>.sock`; killed,
/// and its bridge and veths removed, on drop.
struct NetPlugin {
    name: String,
    bridge: String,
    tag: String,
    log: PathBuf,
    sock: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl NetPlugin {
    fn start(d: &Daemon, mode: &str) -> Self {
        let tag = random_hex()[..5].to_string();
        let dir = scratch();
        let plugins = d.exec_root.join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        let name = format!("pnet{tag}");
        let sock = plugins.join(format!("{name}.sock"));
        let log = dir.path().join("calls.jsonl");
        let bridge = format!("pb{tag}");
        let child = spawn_plugin(&sock, &bridge, &tag, &log, mode);
        NetPlugin {
            name,
            bridge,
            tag,
            log,
            sock,
            child,
            _dir: dir,
        }
    }

    /// Kills the plugin process (its bridge and veths stay).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }

    /// Starts it again on the same socket, with no memory of its state.
    fn start_again(&mut self) {
        self.child = spawn_plugin(&self.sock, &self.bridge, &self.tag, &self.log, "");
    }

    /// The calls it received, in order: (method, body).
    fn calls(&self) -> Vec<(String, Value)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| {
                (
                    v["method"].as_str().unwrap_or("").to_string(),
                    v["body"].clone(),
                )
            })
            .collect()
    }

    fn bodies(&self, method: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b)
            .collect()
    }

    /// Its links on the host: the bridge and the veths it made.
    fn links(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-j", "link", "show"])
            .output()
            .expect("ip link");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str())
            .filter(|n| n.contains(self.tag.as_str()))
            .map(str::to_string)
            .collect()
    }
}

fn spawn_plugin(sock: &Path, bridge: &str, tag: &str, log: &Path, mode: &str) -> Child {
    let child = Command::new("python3")
        .arg(SCRIPT)
        .arg(sock)
        .arg(bridge)
        .arg(tag)
        .arg(log)
        .args(["--mode", mode])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 runs the test plugin");
    assert!(
        wait_for(Duration::from_secs(10), || sock.exists()),
        "the test plugin did not come up"
    );
    child
}

impl Drop for NetPlugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for l in self.links() {
            let _ = Command::new("ip").args(["link", "del", &l]).status();
        }
        let _ = std::fs::remove_file(&self.sock);
    }
}

fn inspect_net(d: &Daemon, net: &str) -> Value {
    let v: Value = serde_json::from_str(&d.docker_ok(&["network", "inspect", net])).unwrap();
    v[0].clone()
}

fn endpoint_of(d: &Daemon, c: &str, net: &str) -> Value {
    d.inspect_json(c)["NetworkSettings"]["Networks"][net].clone()
}

/// `docker`, bounded in time.
fn docker_within(d: &Daemon, args: &[&str], limit: Duration) -> std::process::Output {
    let child = d
        .docker_cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker runs");
    finish(child, limit)
}

/// What the daemon holds on the host beyond `before`, but for directories
/// and the seccomp cache (made with the first container, and kept).
/// What the daemon holds beyond `before`, once the trash thread (which
/// deletes removed containers' files in the background) has had up to ten
/// seconds to drain.
fn leftovers(d: &Daemon, before: &berth_tests::host::Footprint) -> Vec<String> {
    let now = || -> Vec<String> {
        footprint(d)
            .beyond(before)
            .into_iter()
            .filter(|l| !l.ends_with('/') && !l.contains("exec-root/seccomp/"))
            .collect()
    };
    wait_for(Duration::from_secs(10), || now().is_empty());
    now()
}

fn count(p: &NetPlugin, method: &str, endpoint: &str) -> usize {
    p.bodies(method)
        .iter()
        .filter(|b| b["EndpointID"] == endpoint)
        .count()
}

#[test]
fn containers_on_a_plugin_network_get_its_addresses_and_reach_each_other() {
    let d = daemon();
    let p = NetPlugin::start(&d, "");
    let before = footprint(&d);
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        &p.name,
        "--ipam-driver",
        &p.name,
        "--subnet",
        "10.219.7.0/24",
        "-o",
        "colour=blue",
        "--ipam-opt",
        "flavour=mint",
        "--aux-address",
        "router=10.219.7.254",
        "pnet",
    ]);
    let n = inspect_net(&d, "pnet");
    assert_eq!(n["Driver"], p.name.as_str());
    assert_eq!(n["IPAM"]["Driver"], p.name.as_str());
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.219.7.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.219.7.1");
    assert_eq!(n["IPAM"]["Options"]["flavour"], "mint");
    assert_eq!(
        n["IPAM"]["Config"][0]["AuxiliaryAddresses"]["router"],
        "10.219.7.254"
    );
    assert_eq!(n["Options"]["colour"], "blue");
    // The pool was asked for in the plugin's address space, with the
    // IPAM options; the gateway as a gateway; the network with both.
    let pool = &p.bodies("IpamDriver.RequestPool")[0];
    assert_eq!(pool["AddressSpace"], "plocal");
    assert_eq!(pool["Pool"], "10.219.7.0/24");
    assert_eq!(pool["Options"]["flavour"], "mint");
    let gw = &p.bodies("IpamDriver.RequestAddress")[0];
    assert_eq!(
        gw["Options"]["RequestAddressType"],
        "com.docker.network.gateway"
    );
    let create = &p.bodies("NetworkDriver.CreateNetwork")[0];
    assert_eq!(create["NetworkID"], n["Id"]);
    assert_eq!(create["IPv4Data"][0]["Pool"], "10.219.7.0/24");
    assert_eq!(create["IPv4Data"][0]["Gateway"], "10.219.7.1/24");
    assert_eq!(
        create["Options"]["com.docker.network.generic"]["colour"],
        "blue"
    );
    assert_eq!(
        create["IPv4Data"][0]["AuxAddresses"]["router"],
        "10.219.7.254/24"
    );

    for c in ["c1", "c2"] {
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "pnet",
            "busybox",
            "sleep",
            "300",
        ]);
    }
    let e1 = endpoint_of(&d, "c1", "pnet");
    let e2 = endpoint_of(&d, "c2", "pnet");
    assert_eq!(e1["IPAddress"], "10.219.7.2", "{e1}");
    assert_eq!(e2["IPAddress"], "10.219.7.3", "{e2}");
    assert_eq!(e1["IPPrefixLen"], 24);
    // The MAC the plugin chose, and the gateway its Join answered.
    assert_eq!(e1["MacAddress"], "02:50:0a:db:07:02");
    assert_eq!(e1["Gateway"], "10.219.7.1");
    // Inside: the interface (the plugin's veth, renamed), its routes.
    let addr = d.docker_ok(&["exec", "c1", "ip", "addr", "show", "eth0"]);
    assert!(addr.contains("inet 10.219.7.2/24"), "{addr}");
    assert!(addr.contains("02:50:0a:db:07:02"), "{addr}");
    let routes = d.docker_ok(&["exec", "c1", "ip", "route"]);
    assert!(
        routes.contains("default via 10.219.7.1 dev eth0"),
        "{routes}"
    );
    assert!(routes.contains("10.218.99.0/24 dev eth0"), "{routes}");
    // The host ends are on the plugin's bridge.
    let on_bridge = Command::new("ip")
        .args(["-o", "link", "show", "master", &p.bridge])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&on_bridge.stdout).lines().count(),
        2,
        "{}",
        String::from_utf8_lossy(&on_bridge.stdout)
    );
    // A static address (the subnet was given) is asked of the IPAM.
    d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "pnet",
        "--ip",
        "10.219.7.50",
        "busybox",
        "true",
    ]);
    assert!(p
        .bodies("IpamDriver.RequestAddress")
        .iter()
        .any(|b| b["Address"] == "10.219.7.50"));
    assert!(p
        .bodies("IpamDriver.ReleaseAddress")
        .iter()
        .any(|b| b["Address"] == "10.219.7.50"));
    // They reach each other, by address and by name (embedded DNS).
    d.docker_ok(&["exec", "c1", "ping", "-c1", "-W2", "10.219.7.3"]);
    d.docker_ok(&["exec", "c2", "ping", "-c1", "-W2", "c1"]);
    // Network inspect lists them.
    let n = inspect_net(&d, "pnet");
    let mut names: Vec<&str> = n["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["c1", "c2"]);
    assert_eq!(
        n["Containers"][d.inspect_format("c1", "{{.Id}}").trim()]["IPv4Address"],
        "10.219.7.2/24"
    );

    // Each endpoint was created, joined, then left and deleted on rm.
    let ep1 = e1["EndpointID"].as_str().unwrap().to_string();
    assert_eq!(count(&p, "NetworkDriver.CreateEndpoint", &ep1), 1);
    assert_eq!(count(&p, "NetworkDriver.Join", &ep1), 1);
    assert_eq!(count(&p, "NetworkDriver.Leave", &ep1), 0);
    // Asked to publish although it does not implement it (optional: the
    // plugin's 404 did not fail the start).
    assert_eq!(
        count(&p, "NetworkDriver.ProgramExternalConnectivity", &ep1),
        1
    );
    d.docker_ok(&["rm", "-f", "c1"]);
    assert_eq!(count(&p, "NetworkDriver.Leave", &ep1), 1);
    assert_eq!(count(&p, "NetworkDriver.DeleteEndpoint", &ep1), 1);
    let released: Vec<Value> = p.bodies("IpamDriver.ReleaseAddress");
    assert!(
        released.iter().any(|b| b["Address"] == "10.219.7.2"),
        "{released:?}"
    );
    // A stop leaves and deletes too; the address is free again.
    let ep2 = e2["EndpointID"].as_str().unwrap().to_string();
    d.docker_ok(&["stop", "-t", "0", "c2"]);
    assert_eq!(count(&p, "NetworkDriver.Leave", &ep2), 1);
    assert_eq!(count(&p, "NetworkDriver.DeleteEndpoint", &ep2), 1);
    d.docker_ok(&["rm", "c2"]);
    // Network rm reaches the driver and gives the gateway and pool back.
    d.docker_ok(&["network", "rm", "pnet"]);
    assert_eq!(p.bodies("NetworkDriver.DeleteNetwork").len(), 1);
    for a in ["10.219.7.1", "10.219.7.254"] {
        assert!(p
            .bodies("IpamDriver.ReleaseAddress")
            .iter()
            .any(|b| b["Address"] == a));
    }
    assert_eq!(
        p.bodies("IpamDriver.ReleasePool")[0]["PoolID"],
        "plocal/10.219.7.0/24"
    );
    assert!(p.links().is_empty(), "left behind: {:?}", p.links());
    let left = leftovers(&d, &before);
    assert!(
        left.is_empty(),
        "left behind: {:?}",
        &left[..left.len().min(8)]
    );
}

#[test]
fn a_plugin_driver_with_the_default_ipam_and_connect_disconnect() {
    let d = daemon();
    let p = NetPlugin::start(&d, "");
    d.docker_ok(&["network", "create", "-d", &p.name, "pdef"]);
    let n = inspect_net(&d, "pdef");
    assert_eq!(n["IPAM"]["Driver"], "default");
    let subnet = n["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(p.bodies("IpamDriver.RequestPool").is_empty());
    // berth's bridge driver takes no plugin's addresses: a clear refusal.
    let o = d.docker(&["network", "create", "--ipam-driver", &p.name, "brx"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("takes its addresses from the default IPAM only"),
        "{}",
        stderr(&o)
    );
    assert!(p.bodies("IpamDriver.RequestPool").is_empty());
    d.docker_ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "300"]);
    d.docker_ok(&[
        "network",
        "connect",
        "--driver-opt",
        "tint=green",
        "pdef",
        "cc",
    ]);
    let ep = endpoint_of(&d, "cc", "pdef");
    let ip = ep["IPAddress"].as_str().unwrap().to_string();
    assert!(
        subnet.starts_with(&ip[..ip.rfind('.').unwrap()]),
        "{ip} not in {subnet}"
    );
    let addr = d.docker_ok(&["exec", "cc", "ip", "addr", "show", "eth1"]);
    assert!(addr.contains(&format!("inet {ip}/")), "{addr}");
    let id = ep["EndpointID"].as_str().unwrap().to_string();
    assert_eq!(count(&p, "NetworkDriver.Join", &id), 1);
    // The endpoint's driver options reach the plugin.
    let created = p.bodies("NetworkDriver.CreateEndpoint");
    assert_eq!(created[0]["Options"]["tint"], "green", "{created:?}");
    d.docker_ok(&["network", "disconnect", "pdef", "cc"]);
    assert_eq!(count(&p, "NetworkDriver.Leave", &id), 1);
    assert_eq!(count(&p, "NetworkDriver.DeleteEndpoint", &id), 1);
    let o = d.docker(&["exec", "cc", "ip", "link", "show", "eth1"]);
    assert!(!o.status.success(), "eth1 is still there");
    d.docker_ok(&["rm", "-f", "cc"]);
    d.docker_ok(&["network", "rm", "pdef"]);
    assert_eq!(p.bodies("NetworkDriver.DeleteNetwork").len(), 1);
    assert!(p.links().is_empty(), "left behind: {:?}", p.links());
}

#[test]
fn bad_ipam_answers_leave_no_network_behind() {
    let d = daemon();
    let o = d.docker(&["network", "create", "-d", "nosuchplugin", "x"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("plugin \"nosuchplugin\" not found"),
        "{}",
        stderr(&o)
    );
    for (mode, says) in [
        ("ipam-garbage", "bad answer from plugin"),
        ("ipam-err", "remote: the test plugin has no pool for you"),
        ("ipam-nopool", "invalid Pool"),
    ] {
        let p = NetPlugin::start(&d, mode);
        let o = docker_within(
            &d,
            &[
                "network",
                "create",
                "-d",
                &p.name,
                "--ipam-driver",
                &p.name,
                "bad",
            ],
            Duration::from_secs(30),
        );
        assert!(!o.status.success(), "{mode}: created");
        assert!(stderr(&o).contains(says), "{mode}: {}", stderr(&o));
        let ls = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
        assert!(!ls.lines().any(|l| l == "bad"), "{mode}: {ls}");
        assert!(
            p.bodies("NetworkDriver.CreateNetwork").is_empty(),
            "{mode}: the driver was asked"
        );
        if mode == "ipam-nopool" {
            // The pool it did give is given back.
            assert_eq!(p.bodies("IpamDriver.ReleasePool").len(), 1, "{mode}");
        }
        assert!(p.links().is_empty(), "{mode}: {:?}", p.links());
    }
}

/// Runs a container on a network of plugin `p` that fails its join, and
/// checks the start fails with `says` and leaves nothing behind.
fn failing_join(d: &Daemon, p: &NetPlugin, net: &str, says: &str, limit: Duration) {
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        &p.name,
        "--ipam-driver",
        &p.name,
        "--subnet",
        "10.219.9.0/24",
        net,
    ]);
    let before = footprint(d);
    let start = Instant::now();
    let o = docker_within(
        d,
        &[
            "run",
            "-d",
            "--name",
            net,
            "--network",
            net,
            "busybox",
            "sleep",
            "300",
        ],
        limit,
    );
    assert!(!o.status.success(), "{net}: started");
    assert!(stderr(&o).contains(says), "{net}: {}", stderr(&o));
    assert!(start.elapsed() < limit);
    assert_eq!(d.inspect_format(net, "{{.State.Running}}").trim(), "false");
    // The endpoint was created, then deleted; its address given back.
    let created = p.bodies("NetworkDriver.CreateEndpoint");
    assert_eq!(created.len(), 1, "{net}");
    let id = created[0]["EndpointID"].as_str().unwrap();
    assert_eq!(count(p, "NetworkDriver.DeleteEndpoint", id), 1, "{net}");
    assert!(
        p.bodies("IpamDriver.ReleaseAddress")
            .iter()
            .any(|b| b["Address"] == "10.219.9.2"),
        "{net}"
    );
    // No veth, namespace, mount or process left by the start.
    assert!(
        wait_for(Duration::from_secs(5), || p.links() == [p.bridge.clone()]),
        "{net}: links left: {:?}",
        p.links()
    );
    // (A preparation made ahead at create that the failed start did not
    // claim lives up to two seconds more: see `start/ahead.rs`.)
    let held = || -> Vec<String> {
        footprint(d)
            .beyond(&before)
            .into_iter()
            .filter(|l| !l.starts_with("file "))
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(10), || held().is_empty()),
        "{net}: left behind: {:?}",
        held()
    );
    d.docker_ok(&["rm", net]);
    let left = leftovers(d, &before);
    assert!(
        left.is_empty(),
        "{net}: left behind: {:?}",
        &left[..left.len().min(8)]
    );
    d.docker_ok(&["network", "rm", net]);
}

#[test]
fn a_join_that_fails_fails_the_start_cleanly() {
    let d = daemon();
    let p = NetPlugin::start(&d, "join-err");
    failing_join(
        &d,
        &p,
        "joinerr",
        "remote: the test plugin refuses to join",
        Duration::from_secs(60),
    );
    let p2 = NetPlugin::start(&d, "join-noiface");
    failing_join(&d, &p2, "noiface", "nosuchlink0", Duration::from_secs(60));
}

#[test]
fn a_join_that_hangs_fails_within_the_plugin_timeout() {
    let d = Daemon::start_with(&["--plugin-timeout", "2"]).expect("berthd starts");
    fixtures::import_busybox(&d, "busybox:latest");
    let p = NetPlugin::start(&d, "hang-join");
    failing_join(
        &d,
        &p,
        "hang",
        "did not answer within 2s",
        Duration::from_secs(40),
    );
}

#[test]
fn plugin_networks_survive_a_daemon_restart_and_dead_containers_endpoints_are_released() {
    let mut d = daemon();
    let p = NetPlugin::start(&d, "");
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        &p.name,
        "--ipam-driver",
        &p.name,
        "--subnet",
        "10.219.8.0/24",
        "pr",
    ]);
    for c in ["alive", "dead"] {
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "pr",
            "busybox",
            "sleep",
            "300",
        ]);
    }
    let dead_ep = endpoint_of(&d, "dead", "pr")["EndpointID"]
        .as_str()
        .unwrap()
        .to_string();
    let alive_ep = endpoint_of(&d, "alive", "pr")["EndpointID"]
        .as_str()
        .unwrap()
        .to_string();
    let pid: i32 = d
        .inspect_format("dead", "{{.State.Pid}}")
        .trim()
        .parse()
        .unwrap();
    d.kill9();
    // The container dies while the daemon is down.
    // SAFETY: kill(2) on a pid this test read from inspect; no memory involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(10), || !Path::new(&format!(
        "/proc/{pid}"
    ))
    .exists()));
    d.restart().expect("berthd restarts");
    // The dead one's endpoint is left and deleted, its address released.
    assert!(
        wait_for(Duration::from_secs(20), || {
            count(&p, "NetworkDriver.DeleteEndpoint", &dead_ep) == 1
        }),
        "calls: {:?}",
        p.calls().iter().map(|(m, _)| m.clone()).collect::<Vec<_>>()
    );
    assert_eq!(count(&p, "NetworkDriver.Leave", &dead_ep), 1);
    assert!(p
        .bodies("IpamDriver.ReleaseAddress")
        .iter()
        .any(|b| b["Address"] == "10.219.8.3"));
    // The live one kept its endpoint; the network is still there and
    // lists it; it still reaches a new container on it.
    assert_eq!(count(&p, "NetworkDriver.Leave", &alive_ep), 0);
    let n = inspect_net(&d, "pr");
    assert_eq!(n["Driver"], p.name.as_str());
    assert_eq!(n["Containers"].as_object().map(|c| c.len()), Some(1), "{n}");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "pr",
        "busybox",
        "sleep",
        "300",
    ]);
    let late = endpoint_of(&d, "late", "pr")["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    d.docker_ok(&["exec", "alive", "ping", "-c1", "-W2", &late]);
    d.docker_ok(&["rm", "-f", "alive", "late", "dead"]);
    assert_eq!(count(&p, "NetworkDriver.DeleteEndpoint", &alive_ep), 1);
    d.docker_ok(&["network", "rm", "pr"]);
    assert!(p.links().is_empty(), "left behind: {:?}", p.links());
}

#[test]
fn a_plugin_that_disappears_gets_clear_errors_within_its_timeout() {
    let d = Daemon::start_with(&["--plugin-timeout", "2"]).expect("berthd starts");
    fixtures::import_busybox(&d, "busybox:latest");
    let mut p = NetPlugin::start(&d, "");
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        &p.name,
        "--ipam-driver",
        &p.name,
        "--subnet",
        "10.219.6.0/24",
        "gone",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cg",
        "--network",
        "gone",
        "busybox",
        "sleep",
        "300",
    ]);
    p.kill();
    // The daemon keeps serving; a stop does not wait on the plugin past
    // its timeouts (it logs what it could not undo there).
    d.docker_ok(&["ps"]);
    let start = Instant::now();
    let o = docker_within(&d, &["stop", "-t", "0", "cg"], Duration::from_secs(40));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    // A new container cannot join, and says why.
    let o = docker_within(
        &d,
        &["run", "--rm", "--network", "gone", "busybox", "true"],
        Duration::from_secs(40),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not running or not answering"),
        "{}",
        stderr(&o)
    );
    // Nor can the network go while its driver is away (as dockerd).
    let o = docker_within(&d, &["network", "rm", "gone"], Duration::from_secs(40));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not running or not answering"),
        "{}",
        stderr(&o)
    );
    assert!(d
        .docker_ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == "gone"));
    // Back, it serves the same network again.
    p.start_again();
    d.docker_ok(&["rm", "cg"]);
    d.docker_ok(&["network", "rm", "gone"]);
    assert!(p.links().is_empty(), "left behind: {:?}", p.links());
}

#[test]
fn an_ipv6_plugin_network_gives_both_families_from_the_plugin() {
    let d = daemon();
    let p = NetPlugin::start(&d, "");
    d.docker_ok(&[
        "network",
        "create",
        "--ipv6",
        "-d",
        &p.name,
        "--ipam-driver",
        &p.name,
        "--subnet",
        "10.219.5.0/24",
        "--subnet",
        "fd00:219:5::/64",
        "p6",
    ]);
    let pools = p.bodies("IpamDriver.RequestPool");
    assert_eq!(pools.len(), 2, "{pools:?}");
    assert_eq!(pools[1]["V6"], true);
    assert_eq!(pools[1]["Pool"], "fd00:219:5::/64");
    let create = &p.bodies("NetworkDriver.CreateNetwork")[0];
    assert_eq!(create["IPv6Data"][0]["Gateway"], "fd00:219:5::1/64");
    assert_eq!(create["Options"]["com.docker.network.enable_ipv6"], true);
    for c in ["v1", "v2"] {
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "p6",
            "busybox",
            "sleep",
            "300",
        ]);
    }
    let e1 = endpoint_of(&d, "v1", "p6");
    let e2 = endpoint_of(&d, "v2", "p6");
    assert_eq!(e1["GlobalIPv6Address"], "fd00:219:5::2", "{e1}");
    assert_eq!(e1["GlobalIPv6PrefixLen"], 64);
    assert_eq!(e1["IPv6Gateway"], "fd00:219:5::1");
    let addr = d.docker_ok(&["exec", "v1", "ip", "-6", "addr", "show", "eth0"]);
    assert!(addr.contains("inet6 fd00:219:5::2/64"), "{addr}");
    let routes = d.docker_ok(&["exec", "v1", "ip", "-6", "route"]);
    assert!(routes.contains("default via fd00:219:5::1"), "{routes}");
    let ip2 = e2["GlobalIPv6Address"].as_str().unwrap().to_string();
    d.docker_ok(&["exec", "v1", "ping", "-6", "-c1", "-W2", &ip2]);
    d.docker_ok(&["rm", "-f", "v1", "v2"]);
    d.docker_ok(&["network", "rm", "p6"]);
    let released = p.bodies("IpamDriver.ReleasePool");
    assert!(
        released
            .iter()
            .any(|b| b["PoolID"] == "plocal/fd00:219:5::/64"),
        "{released:?}"
    );
    assert!(p.links().is_empty(), "left behind: {:?}", p.links());
}
