//! Issue 5: bridge networks, name resolution, published ports, isolation,
//! clean-up — through the real docker CLI. Traffic goes only to loopback and
//! to the containers the tests create.

use std::process::Command;
use std::time::Duration;

use berth_tests::net::curl;
use berth_tests::*;

const HTTPD: &str =
    "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

fn web(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name, "--hostname", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", HTTPD]);
    d.docker_ok(&args).trim().to_string()
}

/// `wget` from a throwaway container; DNS never leaves the host: on the
/// default bridge the resolver is pointed at the container's own loopback.
fn fetch(d: &Daemon, net: &[&str], url: &str) -> std::process::Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(net);
    // busybox's `wget -T` crashes; `timeout` bounds it instead.
    args.extend_from_slice(&["busybox", "timeout", "5", "wget", "-qO-", url]);
    // The server may still be starting: a few tries.
    let mut last = d.docker(&args);
    for _ in 0..10 {
        if last.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        last = d.docker(&args);
    }
    last
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name_and_alias() {
    let d = daemon();
    d.docker_ok(&["network", "create", "appnet"]);
    web(
        &d,
        "web",
        &["--network", "appnet", "--network-alias", "www"],
    );
    let o = fetch(&d, &["--network", "appnet"], "http://web/");
    assert_eq!(stdout(&o), "hello-web\n", "{}", stderr(&o));
    let o = fetch(&d, &["--network", "appnet"], "http://www/");
    assert_eq!(stdout(&o), "hello-web\n", "{}", stderr(&o));
    let o = fetch(&d, &["--network", "appnet"], "http://web.appnet/");
    assert_eq!(stdout(&o), "hello-web\n", "{}", stderr(&o));
    // The default bridge has no name resolution.
    web(&d, "plain", &[]);
    let o = d.docker(&[
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        "busybox",
        "timeout",
        "5",
        "wget",
        "-qO-",
        "http://plain/",
    ]);
    assert!(!o.status.success(), "a name resolved on the default bridge");
    assert_eq!(
        stdout(&fetch(
            &d,
            &[],
            &format!("http://{}/", d.ip_on("plain", "bridge"))
        )),
        "hello-plain\n"
    );
    // Inspect shows the network's containers and the container's address.
    let ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.appnet.IPAddress}}",
        "web",
    ]);
    let ip = ip.trim();
    assert!(!ip.is_empty());
    let net = d.docker_ok(&[
        "network",
        "inspect",
        "appnet",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
    ]);
    assert!(net.trim().starts_with(&format!("web {ip}/")), "{net}");
    // The default bridge fills the legacy top-level fields.
    let top = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}} {{.NetworkSettings.MacAddress}}", "plain"]);
    let f: Vec<&str> = top.split_whitespace().collect();
    assert_eq!(f.len(), 3, "{top}");
    assert!(f[2].starts_with("02:42:"), "{top}");
    // In use → refused; free → removed.
    let o = d.docker(&["network", "rm", "appnet"]);
    assert!(
        !o.status.success() && stderr(&o).contains("has active endpoints"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["rm", "-f", "web"]);
    d.docker_ok(&["network", "rm", "appnet"]);
    assert!(!d
        .docker_ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains("appnet"));
}

#[test]
fn published_ports_answer_on_loopback_and_conflicts_fail_clearly() {
    let d = daemon();
    let port = free_port();
    web(&d, "pub", &["-p", &format!("127.0.0.1:{port}:80")]);
    assert!(retry(
        || curl(&format!("http://127.0.0.1:{port}/")) == "hello-pub\n"
    ));
    assert_eq!(
        d.docker_ok(&["port", "pub"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    // The same host port again fails, and that container does not run.
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sleep",
        "60",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("port is already allocated"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "clash"])
            .trim(),
        "false"
    );
    // -P maps every exposed port to a free one that `docker port` reports.
    web(&d, "auto", &["--expose", "80", "-P"]);
    let mapped = d.docker_ok(&["port", "auto", "80"]);
    let hostport: u16 = mapped
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(hostport >= 1024);
    assert!(retry(
        || curl(&format!("http://127.0.0.1:{hostport}/")) == "hello-auto\n"
    ));
    // Stopped: the port is free again.
    d.docker_ok(&["stop", "-t", "1", "pub"]);
    assert_eq!(d.docker_ok(&["port", "pub"]).trim(), "");
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port released on stop");
}

#[test]
fn connect_disconnect_isolation_and_internal_networks() {
    let d = daemon();
    d.docker_ok(&["network", "create", "front"]);
    d.docker_ok(&["network", "create", "back"]);
    d.docker_ok(&["network", "create", "--internal", "sealed"]);
    web(&d, "api", &["--network", "back"]);
    let api_ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.back.IPAddress}}",
        "api",
    ]);
    let api_ip = api_ip.trim().to_string();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "front",
        "busybox",
        "sleep",
        "300",
    ]);
    let get = |target: &str| {
        d.docker(&[
            "exec",
            "client",
            "timeout",
            "3",
            "wget",
            "-qO-",
            &format!("http://{target}/"),
        ])
    };
    // Different user networks are isolated.
    assert!(!get(&api_ip).status.success(), "front reached back");
    // Connected to back, the client reaches api by name and address.
    d.docker_ok(&["network", "connect", "back", "client"]);
    assert!(
        retry(|| stdout(&get("api")) == "hello-api\n"),
        "{}",
        stderr(&get("api"))
    );
    assert_eq!(stdout(&get(&api_ip)), "hello-api\n");
    let nets = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "client",
    ]);
    assert_eq!(nets.trim(), "back front");
    // Disconnected again: unreachable.
    d.docker_ok(&["network", "disconnect", "back", "client"]);
    assert!(
        !get(&api_ip).status.success(),
        "still reachable after disconnect"
    );
    // An internal network has no default route.
    let routes = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(!routes.contains("default"), "{routes}");
    let routes = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(routes.contains("default via"), "{routes}");
}

#[test]
fn static_addresses_and_no_reuse_across_a_restart() {
    let mut d = daemon();
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.213.7.0/24",
        "--gateway",
        "10.213.7.1",
        "fixed",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "pinned",
        "--network",
        "fixed",
        "--ip",
        "10.213.7.50",
        "busybox",
        "sleep",
        "300",
    ]);
    let ip = d.docker_ok(&[
        "exec",
        "pinned",
        "sh",
        "-c",
        "ip -4 addr show eth0 | grep inet",
    ]);
    assert!(ip.contains("10.213.7.50/24"), "{ip}");
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "fixed",
        "--ip",
        "10.213.7.50",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(!o.status.success(), "an address was handed out twice");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "fixed",
        "busybox",
        "sleep",
        "300",
    ]);
    let a1 = d
        .docker_ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.fixed.IPAddress}}",
            "a1",
        ])
        .trim()
        .to_string();
    // --ip on the default bridge is refused, as in Docker.
    let o = d.docker(&["run", "--rm", "--ip", "10.213.7.9", "busybox", "true"]);
    assert!(!o.status.success());
    d.kill9();
    d.restart().unwrap();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "a2",
        "--network",
        "fixed",
        "busybox",
        "sleep",
        "300",
    ]);
    let a2 = d
        .docker_ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.fixed.IPAddress}}",
            "a2",
        ])
        .trim()
        .to_string();
    assert_ne!(a1, a2, "an address was reused after the restart");
    assert_ne!(a2, "10.213.7.50");
    // Names still resolve after the restart.
    let o = d.docker(&["exec", "a2", "ping", "-c", "1", "-W", "2", "pinned"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Interfaces plugged into this daemon's bridges, and the bridges.
fn berth_links(d: &Daemon, bridges: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for b in bridges {
        let o = Command::new("ip")
            .args(["-br", "link", "show", "master", b])
            .output()
            .unwrap();
        out.extend(
            stdout(&o)
                .lines()
                .map(|l| l.split_whitespace().next().unwrap_or("").to_string()),
        );
        let exists = Command::new("ip")
            .args(["link", "show", b])
            .output()
            .unwrap()
            .status
            .success();
        if exists && *b != d.bridge {
            out.push(b.to_string());
        }
    }
    out
}

/// This daemon's nftables table of a family (`ip`, `ip6`).
fn table_of(d: &Daemon, family: &str) -> String {
    stdout(
        &Command::new("nft")
            .args(["list", "table", family, &d.firewall_table])
            .output()
            .unwrap(),
    )
}

fn table(d: &Daemon) -> String {
    table_of(d, "ip")
}

#[test]
fn nothing_is_left_behind_after_removal_or_a_crash() {
    let mut d = daemon();
    d.docker_ok(&["network", "create", "tmpnet"]);
    let bridge = format!(
        "br-{}",
        &d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "tmpnet"])[..12]
    );
    let bridges = [d.bridge.clone(), bridge.clone()];
    let bridges: Vec<&str> = bridges.iter().map(String::as_str).collect();
    let port = free_port();
    web(
        &d,
        "w1",
        &["--network", "tmpnet", "-p", &format!("{port}:80")],
    );
    d.docker_ok(&["run", "-d", "--name", "w2", "busybox", "sleep", "300"]);
    assert!(
        table(&d).contains(&format!("dport {port}")),
        "{}",
        table(&d)
    );
    assert_eq!(
        berth_links(&d, &bridges).len(),
        3,
        "two veths and the user bridge"
    );
    // kill -9 and restart: the ports and rules come back.
    d.kill9();
    d.restart().unwrap();
    assert!(retry(
        || curl(&format!("http://127.0.0.1:{port}/")) == "hello-w1\n"
    ));
    assert!(table(&d).contains(&format!("dport {port}")));
    d.docker_ok(&["rm", "-f", "w1", "w2"]);
    d.docker_ok(&["network", "rm", "tmpnet"]);
    // A container's veth goes with its network namespace, which the kernel
    // tears down in the background once the last process and pin are gone:
    // a bounded wait, after which anything still there is a leak.
    assert!(
        retry(|| berth_links(&d, &bridges).is_empty()),
        "links left: {:?}",
        berth_links(&d, &bridges)
    );
    assert!(!table(&d).contains("dport"), "{}", table(&d));
    assert!(!table(&d).contains(&bridge), "{}", table(&d));
    let netns = std::fs::read_dir(d.exec_root.join("netns"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(netns, 0, "network namespaces left behind");
}

#[test]
fn ipv6_networks_give_containers_v6_addresses() {
    let d = daemon();
    d.docker_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:b37:7::/64",
        "--subnet",
        "10.213.9.0/24",
        "six",
    ]);
    let cfg = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}{{.EnableIPv6}}",
        "six",
    ]);
    assert_eq!(cfg.trim(), "10.213.9.0/24 fd00:b37:7::/64 true");
    web(&d, "v6web", &["--network", "six"]);
    let addr = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.six.GlobalIPv6Address}}",
        "v6web",
    ]);
    let addr = addr.trim().to_string();
    assert!(addr.starts_with("fd00:b37:7::"), "{addr}");
    let o = fetch(&d, &["--network", "six"], &format!("http://[{addr}]/"));
    assert_eq!(stdout(&o), "hello-v6web\n", "{}", stderr(&o));
    let routes = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "six",
        "busybox",
        "ip",
        "-6",
        "route",
    ]);
    assert!(routes.contains("default via fd00:b37:7::1"), "{routes}");
    // The embedded DNS answers AAAA with the IPv6 address.
    let aaaa = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "six",
        "busybox",
        "nslookup",
        "-type=aaaa",
        "v6web",
    ]);
    assert!(aaaa.contains(&format!("Address: {addr}")), "{aaaa}");
    // Isolation holds for IPv6 too: a container on another IPv6 network
    // cannot reach v6web, one on the same network can.
    d.docker_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:b37:8::/64",
        "--subnet",
        "10.213.10.0/24",
        "six-b",
    ]);
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "six-b",
        // --init: as PID 1, wget would ignore timeout's SIGTERM.
        "--init",
        "busybox",
        "timeout",
        "3",
        "wget",
        "-qO-",
        &format!("http://[{addr}]/"),
    ]);
    assert!(
        !o.status.success() && !stderr(&o).contains("server returned"),
        "crossed networks over IPv6: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        table_of(&d, "ip6").contains("oifname @bridges"),
        "{}",
        table_of(&d, "ip6")
    );
    // Without a subnet, --ipv6 is refused clearly.
    let o = d.docker(&["network", "create", "--ipv6", "nosubnet"]);
    assert!(
        !o.status.success() && stderr(&o).contains("IPv6 subnet"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn host_and_container_network_modes_share_namespaces() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "base", "busybox", "sleep", "300"]);
    let base_ip = d.ip_on("base", "bridge");
    let shared = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:base",
        "busybox",
        "ip",
        "-4",
        "addr",
    ]);
    assert!(shared.contains(&format!("inet {base_ip}/")), "{shared}");
    // It is `base` on the network: its host name and its hosts file, as
    // dockerd does (inspect points at base's files).
    let base_host = d.docker_ok(&["exec", "base", "hostname"]);
    let files = d.docker_ok(&[
        "run",
        "--name",
        "joiner",
        "--network",
        "container:base",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hosts",
    ]);
    assert!(files.starts_with(&base_host), "{files}");
    assert!(
        files.contains(&format!("{base_ip}\t{}", base_host.trim())),
        "{files}"
    );
    let paths = "{{.HostsPath}} {{.HostnamePath}} {{.ResolvConfPath}} {{.Config.Hostname}}";
    assert_eq!(
        d.docker_ok(&["inspect", "-f", paths, "joiner"]),
        d.docker_ok(&["inspect", "-f", paths, "base"])
    );
    d.docker_ok(&["rm", "joiner"]);
    let host_links = stdout(&Command::new("ip").args(["-o", "link"]).output().unwrap());
    let first_host_if = host_links
        .lines()
        .nth(1)
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let inside = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(inside.contains(&format!(": {first_host_if}")), "{inside}");
}

/// `--hostname --domainname --add-host --dns --dns-search --dns-option
/// --mac-address` end up in the container's files and interfaces, and the
/// network's life shows in `docker events --filter type=network`.
#[test]
fn per_container_dns_hosts_and_mac_flags_and_network_events() {
    let d = daemon();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    d.docker_ok(&["network", "create", "flagnet"]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "flagnet",
        "--hostname",
        "box",
        "--domainname",
        "example.test",
        "--add-host",
        "db.local:10.1.2.3",
        "--add-host",
        "gw.local:host-gateway",
        "--dns-search",
        "corp.test",
        "--dns-option",
        "ndots:2",
        "--mac-address",
        "02:42:ac:11:00:99",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /sys/class/net/eth0/address",
    ]);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    let (hosts, resolv, mac) = (parts[0], parts[1], parts[2]);
    assert!(hosts.contains("10.1.2.3\tdb.local"), "{hosts}");
    assert!(
        hosts.lines().any(|l| l.ends_with("\tgw.local")),
        "host-gateway: {hosts}"
    );
    assert!(
        hosts.lines().any(|l| l.ends_with("\tbox.example.test box")),
        "own name: {hosts}"
    );
    // User networks resolve through the embedded server.
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    assert!(resolv.contains("search corp.test"), "{resolv}");
    assert!(resolv.contains("options ndots:2"), "{resolv}");
    assert_eq!(mac.trim(), "02:42:ac:11:00:99");
    d.docker_ok(&["network", "rm", "flagnet"]);

    let ev = d.docker_ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1)
        .to_string(),
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let acts: Vec<&str> = ev
        .lines()
        .filter(|l| {
            l.ends_with(" flagnet") || l.starts_with("connect") || l.starts_with("disconnect")
        })
        .collect();
    assert!(acts.contains(&"create flagnet"), "{ev}");
    assert!(acts.contains(&"destroy flagnet"), "{ev}");
    assert!(acts.iter().any(|a| a.starts_with("connect")), "{ev}");
    assert!(acts.iter().any(|a| a.starts_with("disconnect")), "{ev}");
}

/// `-p 127.0.0.1:A-B:80`: each container takes a free port of the range,
/// and a full range is refused.
#[test]
fn a_host_port_range_hands_out_its_free_ports() {
    let d = daemon();
    // Two adjacent free ports (bounded tries).
    let (a, b) = (0..50)
        .find_map(|_| {
            let a = free_port();
            let b = a.checked_add(1)?;
            std::net::TcpListener::bind(("127.0.0.1", b)).ok()?;
            Some((a, b))
        })
        .expect("two adjacent free ports");
    let range = format!("127.0.0.1:{a}-{b}:80");
    web(&d, "r1", &["-p", &range]);
    web(&d, "r2", &["-p", &range]);
    let mut ports: Vec<u16> = ["r1", "r2"]
        .iter()
        .map(|n| {
            let p = d.docker_ok(&["port", n, "80"]);
            p.trim().rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect();
    ports.sort();
    assert_eq!(ports, vec![a, b]);
    // The servers may still be starting: `retry` bounds the wait.
    for p in [a, b] {
        let url = format!("http://127.0.0.1:{p}/");
        assert!(
            retry(|| curl(&url).starts_with("hello-r")),
            "no answer on {url}: {:?}",
            curl(&url)
        );
    }
    let o = d.docker(&[
        "run", "-d", "--name", "r3", "-p", &range, "busybox", "sleep", "60",
    ]);
    assert!(
        !o.status.success(),
        "a third container got a port of a full range"
    );
    assert!(stderr(&o).contains("allocated"), "{}", stderr(&o));
}

/// Names the embedded DNS does not know go to the upstream resolvers (here
/// `--dns`, a tiny fake server on a loopback address of the host), queried
/// from the daemon's namespace as Docker does.
#[test]
fn the_embedded_dns_forwards_other_names_upstream() {
    use std::net::UdpSocket;
    let d = daemon();
    let tag = u32::from_str_radix(&random_hex()[..6], 16).unwrap();
    let ip = format!(
        "127.{}.{}.{}",
        100 + tag % 100,
        (tag >> 8) % 250 + 1,
        (tag >> 16) % 250 + 1
    );
    let sock = UdpSocket::bind((ip.as_str(), 53)).expect("bind a loopback :53");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // Answers A queries with 10.9.9.9 until told to stop (bounded by it).
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            let mut i = 12;
            while i < n && q[i] != 0 {
                i += q[i] as usize + 1;
            }
            if i + 5 > n {
                continue;
            }
            let is_a = q[i + 1] == 0 && q[i + 2] == 1;
            let mut r = vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0];
            r.extend_from_slice(&q[12..i + 5]);
            if is_a {
                r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    d.docker_ok(&["network", "create", "fwdnet"]);
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "fwdnet",
        "--dns",
        &ip,
        "busybox",
        "nslookup",
        "-type=a",
        "outside.example.test",
    ]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    let text = stdout(&out);
    assert!(text.contains("Server:\t\t127.0.0.11"), "{text}");
    assert!(text.contains("Address: 10.9.9.9"), "{text}{}", stderr(&out));
}
