//! Issue 20: rootless mode. berthd run by an unprivileged user (made once
//! per run by the harness, `berth_tests::rootless`), driven by the docker
//! CLI run as that user: the daemon's uid, container root as the user's own
//! uid and container uid 1000 as a subordinate one, the default bridge,
//! live restore through re-joining the namespace holder, and the owner of
//! files written to a bind mount.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use berth_tests::*;

fn start() -> (Daemon, String) {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    let img = fixtures::import_busybox(&d, "rl:1");
    assert!(!img.is_empty());
    (d, "rl:1".to_string())
}

#[test]
fn daemon_runs_as_the_user_and_answers_info() {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    let u = d.rootless_user().expect("rootless").clone();
    let pid = d.pid().expect("daemon pid").to_string();
    assert_eq!(rootless::host_uid(&pid), u.uid, "berthd runs as {}", u.name);
    // The holder and slirp4netns run as the user too.
    let holder = d.holder_pid().expect("holder pid file");
    assert_eq!(rootless::host_uid(&holder.to_string()), u.uid);
    let info = d.docker_ok(&["info", "--format", "{{.ServerVersion}} {{.Driver}}"]);
    assert!(!info.trim().is_empty(), "{info}");
    // The socket is the user's.
    let md = std::fs::metadata(&d.sock).expect("socket");
    assert_eq!(md.uid(), u.uid);
}

#[test]
fn container_root_is_the_user_and_uid_1000_a_subordinate_id() {
    let (d, img) = start();
    let u = d.rootless_user().expect("rootless").clone();
    let out = d.docker_ok(&["run", "--rm", "--network", "none", &img, "id", "-u"]);
    assert_eq!(out.trim(), "0");
    d.docker_ok(&["run", "-d", "--name", "rt", &img, "sleep", "300"]);
    let pid = d.inspect_format("rt", "{{.State.Pid}}");
    assert_eq!(
        rootless::host_uid(pid.trim()),
        u.uid,
        "container root is the user on the host"
    );
    d.docker_ok(&[
        "run", "-d", "--name", "k1", "--user", "1000", &img, "sleep", "300",
    ]);
    let pid = d.inspect_format("k1", "{{.State.Pid}}");
    assert_eq!(
        rootless::host_uid(pid.trim()),
        u.subuid + 999,
        "uid 1000 is subuid start + 999"
    );
    // exec, logs, stop, rm.
    assert_eq!(d.docker_ok(&["exec", "rt", "id", "-u"]).trim(), "0");
    assert_eq!(d.docker_ok(&["exec", "k1", "id", "-u"]).trim(), "1000");
    d.docker_ok(&["run", "--name", "lg", &img, "echo", "hello-rootless"]);
    assert_eq!(d.docker_ok(&["logs", "lg"]).trim(), "hello-rootless");
    d.docker_ok(&["stop", "-t", "1", "rt"]);
    assert_eq!(d.inspect_format("rt", "{{.State.Running}}").trim(), "false");
    d.docker_ok(&["rm", "-f", "rt", "k1", "lg"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn bridge_containers_reach_each_other_by_ip() {
    let (d, img) = start();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        &img,
        "sh",
        "-c",
        "mkdir -p /w && echo from-srv > /w/index.html && httpd -f -p 80 -h /w",
    ]);
    let ip = d.inspect_format("srv", "{{.NetworkSettings.IPAddress}}");
    let ip = ip.trim().to_string();
    assert!(!ip.is_empty(), "srv has an address on the default bridge");
    let url = format!("http://{ip}:80/index.html");
    let mut last = String::new();
    let ok = wait_for_polling(Duration::from_millis(200), Duration::from_secs(15), || {
        let o = d.docker(&["run", "--rm", &img, "wget", "-qO-", &url]);
        last = format!("{}{}", stdout(&o), stderr(&o));
        o.status.success() && stdout(&o).trim() == "from-srv"
    });
    assert!(ok, "client reaches srv at {url}: {last}");
}

#[test]
fn kill9_and_restart_keep_a_running_container() {
    let (mut d, img) = start();
    d.docker_ok(&["run", "-d", "--name", "live", &img, "sleep", "300"]);
    let pid = d.inspect_format("live", "{{.State.Pid}}");
    let holder = d.holder_pid().expect("holder");
    d.kill9();
    // The holder and the container outlive the daemon.
    assert!(std::path::Path::new(&format!("/proc/{holder}")).exists());
    assert!(std::path::Path::new(&format!("/proc/{}", pid.trim())).exists());
    d.restart().expect("restart");
    assert_eq!(
        d.holder_pid(),
        Some(holder),
        "the new daemon joined the same holder"
    );
    assert_eq!(
        d.inspect_format("live", "{{.State.Running}}").trim(),
        "true"
    );
    assert_eq!(
        d.inspect_format("live", "{{.State.Pid}}").trim(),
        pid.trim()
    );
    assert_eq!(
        d.docker_ok(&["exec", "live", "echo", "still-here"]).trim(),
        "still-here"
    );
    // And new containers still run on the bridge.
    assert_eq!(
        d.docker_ok(&["run", "--rm", &img, "echo", "after-restart"])
            .trim(),
        "after-restart"
    );
}

#[test]
fn files_written_by_container_root_belong_to_the_user() {
    let (d, img) = start();
    let u = d.rootless_user().expect("rootless").clone();
    let dir = d.dir.path().join("bind");
    std::fs::create_dir(&dir).expect("mkdir");
    rootless::chown_tree(&dir, &u).expect("chown");
    let v = format!("{}:/x", dir.display());
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &v,
        &img,
        "sh",
        "-c",
        "echo r > /x/by-root",
    ]);
    d.docker_ok(&["run", "--rm", "-v", &v, &img, "sh", "-c", "chmod 777 /x"]);
    d.docker_ok(&[
        "run",
        "--rm",
        "--user",
        "1000:1000",
        "-v",
        &v,
        &img,
        "sh",
        "-c",
        "echo k > /x/by-1000",
    ]);
    let root = std::fs::metadata(dir.join("by-root")).expect("by-root");
    assert_eq!((root.uid(), root.gid()), (u.uid, u.gid));
    let k = std::fs::metadata(dir.join("by-1000")).expect("by-1000");
    assert_eq!((k.uid(), k.gid()), (u.subuid + 999, u.subgid + 999));
    // A named volume, too: its files are the user's on the host.
    d.docker_ok(&["run", "--rm", "-v", "vol:/v", &img, "touch", "/v/f"]);
    let mp = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vol"]);
    let f = std::fs::metadata(std::path::Path::new(mp.trim()).join("f")).expect("volume file");
    assert_eq!(f.uid(), u.uid);
}

#[test]
fn rootless_check_passes_for_the_user() {
    let u = rootless::user();
    let o = finish(
        u.command(bin("berth"))
            .args(["rootless", "check"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("berth rootless check"),
        Duration::from_secs(30),
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains(&format!("[ok]      /etc/subuid: {} has", u.name)),
        "{out}"
    );
    assert!(out.contains("slirp4netns found"), "{out}");
    // Setup here: no systemd user manager, so no unit, and it says so.
    let o = finish(
        u.command(bin("berth"))
            .args(["rootless", "setup"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("berth rootless setup"),
        Duration::from_secs(30),
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("DOCKER_HOST=unix:///run/user/"), "{out}");
    if out.contains("systemctl --user does not work here") {
        assert!(!u.home.join(".config/systemd/user/berthd.service").exists());
    }
}

#[test]
fn without_subordinate_ids_check_and_berthd_name_the_fix() {
    let u = rootless::user_without_subids();
    let fix = format!(
        "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {}",
        u.name
    );
    let o = finish(
        u.command(bin("berth"))
            .args(["rootless", "check"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("berth rootless check"),
        Duration::from_secs(30),
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("[missing] /etc/subuid: no subordinate ids for"),
        "{out}"
    );
    assert!(out.contains(&fix), "{out}");
    // The daemon refuses to start, with the same fix.
    let dir = scratch();
    std::fs::write(dir.path().join("daemon.json"), "{}").expect("daemon.json");
    rootless::chown_tree(dir.path(), u).expect("chown");
    let p = |s: &str| dir.path().join(s).display().to_string();
    let o = finish(
        u.command(bin("berthd"))
            .args(["-H", &format!("unix://{}", p("s.sock"))])
            .args(["--data-root", &p("data"), "--exec-root", &p("exec")])
            .args(["--config-file", &p("daemon.json")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("berthd"),
        Duration::from_secs(30),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no subordinate ids for user"), "{err}");
    assert!(err.contains(&fix), "{err}");
    assert!(!dir.path().join("s.sock").exists());
}

/// GET `path` from 127.0.0.1:`port` on the host; the body, if any.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[test]
fn published_ports_reach_the_container_through_slirp4netns() {
    let (mut d, img) = start();
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &spec,
        &img,
        "sh",
        "-c",
        "mkdir -p /w && echo published > /w/index.html && httpd -f -p 80 -h /w",
    ]);
    let got = || http_get(port, "/index.html").map(|b| b.trim().to_string());
    assert!(
        wait_for_polling(Duration::from_millis(100), Duration::from_secs(10), || {
            got().as_deref() == Some("published")
        }),
        "127.0.0.1:{port} on the host reaches the container: {:?}",
        got()
    );
    let shown = d.docker_ok(&["port", "web", "80"]);
    assert_eq!(shown.trim(), format!("127.0.0.1:{port}"));
    // A daemon killed and started again publishes the port again.
    d.kill9();
    d.restart().expect("restart");
    assert!(
        wait_for_polling(Duration::from_millis(100), Duration::from_secs(10), || {
            got().as_deref() == Some("published")
        }),
        "after a restart: {:?}",
        got()
    );
    // Removed with the container: the host port is free again.
    d.docker_ok(&["rm", "-f", "web"]);
    assert!(
        wait_for(Duration::from_secs(5), || {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        }),
        "port {port} is released on the host"
    );
    // Ports below the host's unprivileged start are refused, with the fix.
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start > 81 {
        let o = d.docker(&[
            "run", "-d", "--name", "low", "-p", "81:8080", &img, "sleep", "30",
        ]);
        let err = stderr(&o);
        assert!(!o.status.success());
        assert!(
            err.contains(&format!("cannot expose privileged port 81, you can add 'net.ipv4.ip_unprivileged_port_start=81' to /etc/sysctl.conf (currently {start})")),
            "{err}"
        );
    }
}

#[test]
fn plain_berthd_uses_the_xdg_defaults() {
    let u = rootless::user();
    let run = u.runtime_dir();
    let (sock, exec, data) = (
        run.join("berth.sock"),
        run.join("berth"),
        u.home.join(".local/share/berth"),
    );
    let cleanup = || {
        for f in ["rootless/holder.pid", "rootless/slirp4netns.pid"] {
            if let Some(pid) = std::fs::read_to_string(exec.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY (test code): a kill of a pid the daemon recorded.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&exec);
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_file(&sock);
    };
    cleanup();
    let mut child = u
        .command(bin("berthd"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("berthd");
    let up = wait_for(Duration::from_secs(20), || {
        matches!(raw_request(&sock, "GET", "/_ping", None), Ok((200, _, _)))
    });
    let info = u
        .command("docker")
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .output()
        .expect("docker info");
    let _ = child.kill();
    let _ = child.wait();
    let holder_made = exec.join("rootless/holder.pid").exists();
    cleanup();
    assert!(up, "berthd answers on {}", sock.display());
    assert_eq!(stdout(&info).trim(), data.display().to_string());
    assert!(holder_made);
}

#[test]
fn host_network_is_the_daemons_namespace() {
    let (d, img) = start();
    // The daemon's namespace: slirp4netns's tap0 with its address, not the
    // host's links.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        &img,
        "ip",
        "-o",
        "-4",
        "addr",
    ]);
    assert!(
        out.contains("tap0") && out.contains("10.0.2.100/24"),
        "{out}"
    );
    assert!(!out.contains("192.0.2."), "{out}");
}

#[test]
fn a_dead_slirp4netns_is_replaced_when_the_daemon_starts_again() {
    let (mut d, img) = start();
    let pid_file = d.exec_root.join("rootless/slirp4netns.pid");
    let old: i32 = std::fs::read_to_string(&pid_file)
        .expect("slirp4netns pid file")
        .trim()
        .parse()
        .expect("pid");
    // SAFETY (test code): a kill of the pid the daemon recorded.
    unsafe { libc::kill(old, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{old}/comm"))
            .map(|c| c.trim() != "slirp4netns")
            .unwrap_or(true)
    }));
    d.kill9();
    d.restart().expect("restart");
    let new: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_ne!(new, old);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{new}/comm"))
            .expect("new slirp4netns runs")
            .trim(),
        "slirp4netns"
    );
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        &img,
        "ip",
        "-o",
        "-4",
        "addr",
    ]);
    assert!(
        out.contains("tap0") && out.contains("10.0.2.100/24"),
        "{out}"
    );
}

#[test]
fn privileged_runs_but_cannot_read_what_the_user_cannot() {
    let (d, img) = start();
    // All capabilities, in the user namespace only.
    let caps = d.docker_ok(&[
        "run",
        "--rm",
        "--privileged",
        &img,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(caps.contains("000001ffffffffff"), "{caps}");
    // A file of the host's root, mode 0600: unreadable even so.
    let dir = d.dir.path().join("secret");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("x"), "host-secret").expect("write");
    std::fs::set_permissions(
        dir.join("x"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let v = format!("{}:/s", dir.display());
    let o = d.docker(&["run", "--rm", "--privileged", "-v", &v, &img, "cat", "/s/x"]);
    assert!(!o.status.success());
    assert!(!stdout(&o).contains("host-secret"));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
}

#[test]
fn push_and_pull_through_a_registry_in_the_daemons_namespace() {
    let (d, img) = start();
    let dir = scratch();
    let reg = LocalRegistry::start_in_netns_of(&d, dir.path()).expect("docker-registry runs");
    let r = format!("127.0.0.1:{}/rl/bb:1", reg.port);
    d.docker_ok(&[
        "run",
        "--name",
        "mk",
        &img,
        "sh",
        "-c",
        "mkdir /d && echo layer > /d/f && chown 1000:1000 /d/f",
    ]);
    d.docker_ok(&["commit", "mk", &r]);
    d.docker_ok(&["push", &r]);
    d.docker_ok(&["rm", "-f", "mk"]);
    d.docker_ok(&["rmi", &r]);
    d.docker_ok(&["pull", &r]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        &r,
        "sh",
        "-c",
        "cat /d/f; stat -c %u:%g /d/f",
    ]);
    assert_eq!(out.trim(), "layer\n1000:1000");
}

#[test]
fn build_runs_its_steps_in_the_namespace() {
    let (d, img) = start();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {img}\nRUN echo built > /b && chown 1000:1000 /b\nCMD stat -c '%u %n' /b\n"),
    )
    .expect("Dockerfile");
    let home = d.dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    rootless::chown_tree(&ctx, d.rootless_user().expect("rootless")).expect("chown");
    rootless::chown_tree(&home, d.rootless_user().expect("rootless")).expect("chown");
    // A user with no docker config at all (by hand, a CLI like this one
    // sent `X-Registry-Config: null`; this run may not).
    let o = d
        .docker_cmd()
        .env_remove("DOCKER_CONFIG")
        .env("HOME", &home)
        .args(["build", "-q", "-t", "built:1"])
        .arg(&ctx)
        .output()
        .expect("docker build");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(d.docker_ok(&["run", "--rm", "built:1"]).trim(), "1000 /b");
}
