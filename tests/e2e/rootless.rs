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

/// The host uid owning a process.
fn host_uid(pid: &str) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid line")
}

#[test]
fn daemon_runs_as_the_user_and_answers_info() {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    let u = d.rootless_user().expect("rootless").clone();
    let pid = d.pid().expect("daemon pid").to_string();
    assert_eq!(host_uid(&pid), u.uid, "berthd runs as {}", u.name);
    // The holder and slirp4netns run as the user too.
    let holder = d.holder_pid().expect("holder pid file");
    assert_eq!(host_uid(&holder.to_string()), u.uid);
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
        host_uid(pid.trim()),
        u.uid,
        "container root is the user on the host"
    );
    d.docker_ok(&[
        "run", "-d", "--name", "k1", "--user", "1000", &img, "sleep", "300",
    ]);
    let pid = d.inspect_format("k1", "{{.State.Pid}}");
    assert_eq!(
        host_uid(pid.trim()),
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
        "mkdir -p /w && echo from-srv > /w/index.html && httpd -f -p 8080 -h /w",
    ]);
    let ip = d.inspect_format("srv", "{{.NetworkSettings.IPAddress}}");
    let ip = ip.trim().to_string();
    assert!(!ip.is_empty(), "srv has an address on the default bridge");
    let url = format!("http://{ip}:8080/index.html");
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
