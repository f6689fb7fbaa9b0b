//! Issue 15: the values dockerd's create fills in and its inspect reports
//! (IPC and cgroup namespace modes, swap limit, masked paths, ports, the
//! `none`/`host` endpoint) are what berthd stores, shows and applies —
//! checked against the kernel where the kernel has a say.

use berth_tests::*;
use serde_json::{json, Value};

const MIB: i64 = 1024 * 1024;

fn call(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let (status, _, out) = d.raw(method, path, bytes.as_deref());
    let v = serde_json::from_slice(&out).unwrap_or(Value::Null);
    (status, v)
}

fn ns_link(pid: i64, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("ns {ns} of {pid}: {e}"))
        .display()
        .to_string()
}

fn is_hex_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn create_stores_dockerds_defaults_and_start_applies_them() {
    let d = daemon();
    let (status, v) = call(
        &d,
        "POST",
        "/v1.41/containers/create?name=vals",
        Some(json!({
            "Image": "busybox:latest",
            "Cmd": ["sleep", "300"],
            "ExposedPorts": {"7000/tcp": {}},
            "HostConfig": {
                "Memory": 64 * MIB,
                "PortBindings": {"7000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
            }
        })),
    );
    assert_eq!(status, 201, "{v}");

    let v = d.api_inspect("containers", "vals");
    let hc = &v["HostConfig"];
    assert_eq!(hc["MemorySwap"], json!(128 * MIB), "swap = 2 × memory");
    assert_eq!(hc["IpcMode"], json!("private"));
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(
        hc["CgroupnsMode"],
        json!(if v2 { "private" } else { "host" })
    );
    // Not running: no sandbox, so no port keys (dockerd answers `{}`).
    assert_eq!(v["NetworkSettings"]["Ports"], json!({}));

    d.docker_ok(&["start", "vals"]);
    let v = d.api_inspect("containers", "vals");
    let ports = v["NetworkSettings"]["Ports"].as_object().expect("Ports");
    assert!(ports.contains_key("7000/tcp"), "running: {ports:?}");
    let pid = v["State"]["Pid"].as_i64().expect("pid");
    assert!(pid > 0);
    // Private IPC: not the daemon's namespace; cgroup ns as inspect says.
    let daemon_pid = i64::from(d.pid().expect("daemon pid"));
    assert_ne!(ns_link(pid, "ipc"), ns_link(daemon_pid, "ipc"));
    let same_cgroupns = ns_link(pid, "cgroup") == ns_link(daemon_pid, "cgroup");
    assert_eq!(same_cgroupns, !v2, "cgroupns host on v1, private on v2");

    // The stored swap limit is the one the cgroup has.
    let id = v["Id"].as_str().expect("id");
    let parent = d.cgroup_parent();
    let memsw = format!("/sys/fs/cgroup/memory{parent}/{id}/memory.memsw.limit_in_bytes");
    let swap_max = format!("/sys/fs/cgroup{parent}/{id}/memory.swap.max");
    if let Ok(s) = std::fs::read_to_string(&memsw) {
        assert_eq!(s.trim(), (128 * MIB).to_string(), "memsw limit");
    } else if let Ok(s) = std::fs::read_to_string(&swap_max) {
        // v2 counts swap apart from memory: 2 × 64 MiB − 64 MiB.
        assert_eq!(s.trim(), (64 * MIB).to_string(), "swap.max");
    }

    // dockerd: a memory limit above the stored swap limit needs a new one.
    let (status, v) = call(
        &d,
        "POST",
        "/v1.41/containers/vals/update",
        Some(json!({"Memory": 200 * MIB})),
    );
    assert_eq!(status, 409, "{v}");
    assert_eq!(
        v["message"],
        json!(format!(
            "Cannot update container {id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        ))
    );
    let (status, v) = call(
        &d,
        "POST",
        "/v1.41/containers/vals/update",
        Some(json!({"Memory": 100 * MIB})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        d.api_inspect("containers", "vals")["HostConfig"]["MemorySwap"],
        json!(128 * MIB)
    );

    d.docker_ok(&["rm", "-f", "vals"]);
    // Stopped again: the port keys go with the sandbox.
    d.docker_ok(&[
        "run", "-d", "--name", "gone", "--expose", "7000", "busybox", "sleep", "300",
    ]);
    d.docker_ok(&["stop", "-t", "0", "gone"]);
    assert_eq!(
        d.api_inspect("containers", "gone")["NetworkSettings"]["Ports"],
        json!({})
    );
    d.docker_ok(&["rm", "-f", "gone"]);
}

#[test]
fn reported_masked_paths_are_masked_in_the_container() {
    let d = daemon();
    d.docker_ok(&["run", "-d", "--name", "masked", "busybox", "sleep", "300"]);
    let v = d.api_inspect("containers", "masked");
    let masked: Vec<String> = serde_json::from_value(v["HostConfig"]["MaskedPaths"].clone())
        .expect("MaskedPaths is a list");
    assert!(masked.iter().any(|p| p == "/proc/kcore"), "{masked:?}");
    let read = |p: &str| {
        d.docker_ok(&[
            "exec",
            "masked",
            "sh",
            "-c",
            &format!("if [ -d {p} ]; then ls -A {p}; else cat {p}; fi"),
        ])
    };
    // The probe sees content where nothing is masked.
    assert!(!read("/proc/cpuinfo").is_empty());
    let mut checked = 0;
    for p in masked.iter().filter(|p| std::path::Path::new(p).exists()) {
        assert_eq!(read(p), "", "{p} is reported masked but readable");
        checked += 1;
    }
    assert!(checked >= 3, "too few masked paths exist here: {masked:?}");
    d.docker_ok(&["rm", "-f", "masked"]);
}

#[test]
fn none_and_host_endpoints_have_an_id_while_running() {
    let d = daemon();
    for net in ["none", "host"] {
        let name = format!("ep-{net}");
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            net,
            "busybox",
            "sleep",
            "300",
        ]);
        let v = d.api_inspect("containers", &name);
        let ep = &v["NetworkSettings"]["Networks"][net];
        assert!(is_hex_id(&ep["EndpointID"]), "{net}: {ep}");
        d.docker_ok(&["stop", "-t", "0", &name]);
        let v = d.api_inspect("containers", &name);
        assert_eq!(
            v["NetworkSettings"]["Networks"][net]["EndpointID"],
            json!("")
        );
        d.docker_ok(&["rm", "-f", &name]);
    }
}

/// The JSON lines of a `POST /images/load` answer.
fn load(d: &Daemon, query: &str, archive: &[u8]) -> Vec<Value> {
    let (status, _, body) = d.raw("POST", &format!("/v1.41/images/load{query}"), Some(archive));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn image_load_is_quiet_unless_asked() {
    let d = daemon();
    let dir = scratch();
    let tar = dir.path().join("busybox.tar");
    d.docker_ok(&["save", "-o", &tar.display().to_string(), "busybox:latest"]);
    let archive = std::fs::read(&tar).expect("saved archive");
    let progress = |lines: &[Value]| {
        lines
            .iter()
            .filter(|l| l["status"] == json!("Loading layer"))
            .count()
    };
    let loaded = json!({"stream": "Loaded image: busybox:latest\n"});

    // No `quiet` parameter: dockerd's default is quiet, even for a new layer.
    d.docker_ok(&["rmi", "busybox:latest"]);
    let lines = load(&d, "", &archive);
    assert_eq!(lines, vec![loaded.clone()]);

    // quiet=0 on a layer the store no longer has: per-layer progress.
    d.docker_ok(&["rmi", "busybox:latest"]);
    let lines = load(&d, "?quiet=0", &archive);
    assert!(progress(&lines) >= 1, "{lines:?}");
    assert_eq!(lines.last(), Some(&loaded));

    let lines = load(&d, "?quiet=1", &archive);
    assert_eq!(lines, vec![loaded]);
    d.docker_ok(&["rmi", "busybox:latest"]);
}
