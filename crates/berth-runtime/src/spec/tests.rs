use std::path::PathBuf;

use bollard_stubs::models::{DeviceMapping, HostConfigCgroupnsModeEnum, ResourcesUlimits};
use serde_json::{json, Value};

use super::*;
use crate::{ContainerConfig, ContainerFiles, HostConfig, ResolvedUser};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn input<'a>(config: &'a ContainerConfig, hc: &'a HostConfig) -> SpecInput<'a> {
    SpecInput {
        id: ID,
        config,
        host_config: hc,
        rootfs: PathBuf::from("/var/lib/berth/overlay/x/merged"),
        args: vec!["sh".into(), "-c".into(), "echo hi".into()],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "HOSTNAME=0123456789ab".into(),
        ],
        cwd: "/".into(),
        user: ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![1, 2],
        },
        hostname: "0123456789ab".into(),
        domainname: String::new(),
        files: ContainerFiles {
            hosts: Some("/run/berth/x/hosts".into()),
            resolv_conf: Some("/run/berth/x/resolv.conf".into()),
            hostname: Some("/run/berth/x/hostname".into()),
        },
        netns: NetNs::Path("/run/berth/netns/x".into()),
        ipc: NsMode::Private,
        pid: NsMode::Private,
        uts_host: false,
        cgroups_path: format!("/berth/{ID}"),
        cgroups: true,
        extra_mounts: vec![],
        init_binary: None,
        seccomp: SeccompChoice::Default,
        no_new_privileges: false,
    }
}

fn to_json(spec: &Spec) -> Value {
    serde_json::to_value(spec).unwrap()
}

fn build_json(i: &SpecInput<'_>) -> Value {
    to_json(&build(i, &HostInfo::fake()).unwrap())
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn ns_types(j: &Value) -> Vec<String> {
    j["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn default_spec_serializes_with_dockers_defaults() {
    let config = ContainerConfig::default();
    let hc = HostConfig::default();
    let spec = build(&input(&config, &hc), &HostInfo::fake()).unwrap();
    let text = serde_json::to_string_pretty(&spec).unwrap();
    let j: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(j["ociVersion"], "1.2.1");
    assert_eq!(
        j["root"],
        json!({"path": "/var/lib/berth/overlay/x/merged"})
    );
    assert_eq!(j["hostname"], "0123456789ab");
    assert!(j.get("domainname").is_none());
    assert!(j.get("annotations").is_none());

    let p = &j["process"];
    assert_eq!(p["terminal"], false);
    assert_eq!(p["args"], json!(["sh", "-c", "echo hi"]));
    assert_eq!(p["cwd"], "/");
    assert_eq!(
        p["user"],
        json!({"uid": 0, "gid": 0, "additionalGids": [0, 1, 2]})
    );
    assert_eq!(p["oomScoreAdj"], 0);
    assert!(p.get("noNewPrivileges").is_none());
    assert!(p.get("rlimits").is_none());
    assert!(p.get("consoleSize").is_none());
    let default_caps = sorted(caps::default_capabilities());
    assert_eq!(sorted(strs(&p["capabilities"]["bounding"])), default_caps);
    assert_eq!(sorted(strs(&p["capabilities"]["effective"])), default_caps);
    assert_eq!(sorted(strs(&p["capabilities"]["permitted"])), default_caps);
    assert!(p["capabilities"].get("inheritable").is_none());
    assert!(p["capabilities"].get("ambient").is_none());

    let dests: Vec<&str> = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/dev/shm",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/etc/hosts"
        ]
    );
    assert_eq!(
        j["mounts"][0],
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]})
    );
    assert_eq!(
        j["mounts"][9],
        json!({"destination": "/etc/hosts", "type": "bind", "source": "/run/berth/x/hosts", "options": ["rbind", "rprivate"]})
    );

    let l = &j["linux"];
    assert_eq!(l["cgroupsPath"], format!("/berth/{ID}"));
    assert_eq!(
        ns_types(&j),
        ["mount", "network", "uts", "pid", "ipc", "cgroup"]
    );
    assert_eq!(l["namespaces"][1]["path"], "/run/berth/netns/x");
    assert_eq!(strs(&l["maskedPaths"]), DEFAULT_MASKED_PATHS);
    assert_eq!(strs(&l["readonlyPaths"]), DEFAULT_READONLY_PATHS);
    assert_eq!(
        l["sysctl"],
        json!({"net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0"})
    );

    let devs = l["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 6);
    assert_eq!(
        devs[0],
        json!({"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0})
    );
    let rules = l["resources"]["devices"].as_array().unwrap();
    assert_eq!(rules[0], json!({"allow": false, "access": "rwm"}));
    assert_eq!(
        rules[1],
        json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"})
    );
    assert_eq!(
        rules.last().unwrap(),
        &json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    );
    assert!(l["resources"].get("memory").is_none());
    assert!(l["resources"].get("cpu").is_none());
    assert!(l["resources"].get("pids").is_none());

    let sc = &l["seccomp"];
    assert_eq!(sc["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(sc["defaultErrnoRet"], 1);
    assert_eq!(
        sc["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    assert_eq!(sc["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
    assert!(sc["syscalls"][0]["names"].as_array().unwrap().len() > 300);

    // What the shim reads back is what we built.
    let back: Spec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn privileged() {
    let config = ContainerConfig::default();
    let hc = HostConfig {
        privileged: Some(true),
        devices: Some(vec![DeviceMapping {
            path_on_host: Some("/dev/null".into()),
            path_in_container: Some("/dev/othernull".into()),
            cgroup_permissions: Some("r".into()),
        }]),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    assert_eq!(strs(&j["process"]["capabilities"]["bounding"]).len(), 41);
    assert!(j["linux"].get("seccomp").is_none());
    assert!(j["linux"].get("maskedPaths").is_none());
    assert!(j["linux"].get("readonlyPaths").is_none());
    let sys = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert_eq!(sys["options"], json!(["nosuid", "noexec", "nodev"]));
    let cg = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "cgroup")
        .unwrap();
    assert_eq!(cg["options"], json!(["nosuid", "noexec", "nodev"]));
    assert_eq!(
        j["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    let paths: Vec<&str> = j["linux"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/dev/null"));
    assert!(paths.contains(&"/dev/othernull"));
    assert!(paths.contains(&"/dev/tty"));
    let mut uniq = paths.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), paths.len(), "no duplicate device paths");
}

#[test]
fn privileged_with_custom_seccomp_keeps_it() {
    let config = ContainerConfig::default();
    let hc = HostConfig {
        privileged: Some(true),
        ..Default::default()
    };
    let mut i = input(&config, &hc);
    i.seccomp = SeccompChoice::Custom(r#"{"defaultAction":"SCMP_ACT_LOG"}"#.into());
    let j = build_json(&i);
    assert_eq!(j["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
}

#[test]
fn host_namespaces() {
    let config = ContainerConfig::default();
    let hc = HostConfig {
        network_mode: Some("host".into()),
        ..Default::default()
    };
    let mut i = input(&config, &hc);
    i.netns = NetNs::Host;
    i.uts_host = true;
    i.pid = NsMode::Host;
    i.ipc = NsMode::Path("/proc/42/ns/ipc".into());
    i.domainname = "example.com".into();
    let j = build_json(&i);
    assert_eq!(ns_types(&j), ["mount", "ipc", "cgroup"]);
    assert_eq!(j["linux"]["namespaces"][1]["path"], "/proc/42/ns/ipc");
    assert!(j.get("hostname").is_none());
    assert!(j.get("domainname").is_none());
    // No network sysctls outside a namespace of the container's own.
    assert!(j["linux"].get("sysctl").is_none());
    // sysfs stays read-only.
    let sys = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(strs(&sys["options"]).contains(&"ro".to_string()));
}

#[test]
fn cgroup_namespace_modes() {
    let config = ContainerConfig::default();
    let v1 = HostInfo {
        cgroup_v2: false,
        ..HostInfo::fake()
    };
    let hc = HostConfig::default();
    let j = to_json(&build(&input(&config, &hc), &v1).unwrap());
    assert!(!ns_types(&j).contains(&"cgroup".to_string()));
    let hc = HostConfig {
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        ..Default::default()
    };
    let j = to_json(&build(&input(&config, &hc), &v1).unwrap());
    assert!(ns_types(&j).contains(&"cgroup".to_string()));
    let hc = HostConfig {
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::HOST),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    assert!(!ns_types(&j).contains(&"cgroup".to_string()));
}

#[test]
fn process_options() {
    let config = ContainerConfig {
        tty: Some(true),
        domainname: Some("x".into()),
        ..Default::default()
    };
    let hc = HostConfig {
        console_size: Some(vec![40, 120]),
        oom_score_adj: Some(500),
        ulimits: Some(vec![
            ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(1024),
                hard: Some(2048),
            },
            ResourcesUlimits {
                name: Some("core".into()),
                soft: Some(-1),
                hard: Some(-1),
            },
        ]),
        ..Default::default()
    };
    let mut i = input(&config, &hc);
    i.no_new_privileges = true;
    i.domainname = "example.com".into();
    i.user = ResolvedUser {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![1000, 10],
    };
    let j = build_json(&i);
    let p = &j["process"];
    assert_eq!(p["terminal"], true);
    assert_eq!(p["consoleSize"], json!({"height": 40, "width": 120}));
    assert_eq!(p["noNewPrivileges"], true);
    assert_eq!(p["oomScoreAdj"], 500);
    assert_eq!(p["user"]["additionalGids"], json!([1000, 10]));
    assert_eq!(
        p["rlimits"],
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
            {"type": "RLIMIT_CORE", "soft": u64::MAX, "hard": u64::MAX}
        ])
    );
    assert_eq!(j["domainname"], "example.com");
    // Same capability set for a non-root user, as Docker.
    assert_eq!(strs(&p["capabilities"]["effective"]).len(), 14);

    let bad = HostConfig {
        ulimits: Some(vec![ResourcesUlimits {
            name: Some("bogus".into()),
            soft: Some(1),
            hard: Some(1),
        }]),
        ..Default::default()
    };
    let err = build(&input(&config, &bad), &HostInfo::fake()).unwrap_err();
    assert!(matches!(err, SpecError::Invalid(_)), "{err}");
    let bad = HostConfig {
        oom_score_adj: Some(1001),
        ..Default::default()
    };
    assert!(build(&input(&config, &bad), &HostInfo::fake()).is_err());
}

#[test]
fn capability_options_reach_seccomp() {
    let config = ContainerConfig::default();
    let hc = HostConfig {
        cap_add: Some(vec!["sys_admin".into()]),
        cap_drop: Some(vec!["CAP_NET_RAW".into()]),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    let caps = strs(&j["process"]["capabilities"]["bounding"]);
    assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
    let mount_allowed = j["linux"]["seccomp"]["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| strs(&r["names"]).contains(&"mount".to_string()));
    assert!(mount_allowed);

    let hc = HostConfig {
        cap_add: Some(vec!["CAP_FOO".into()]),
        ..Default::default()
    };
    let err = build(&input(&config, &hc), &HostInfo::fake()).unwrap_err();
    assert_eq!(err.to_string(), "unknown capability: \"CAP_FOO\"");
}

#[test]
fn seccomp_choices() {
    let config = ContainerConfig::default();
    let hc = HostConfig::default();
    let mut i = input(&config, &hc);
    i.seccomp = SeccompChoice::Unconfined;
    assert!(build_json(&i)["linux"].get("seccomp").is_none());
    i.seccomp = SeccompChoice::Custom("{oops".into());
    let err = build(&i, &HostInfo::fake()).unwrap_err().to_string();
    assert!(
        err.starts_with("Decoding seccomp profile failed: "),
        "{err}"
    );
}

#[test]
fn readonly_rootfs_and_user_mounts() {
    let config = ContainerConfig::default();
    let hc = HostConfig {
        readonly_rootfs: Some(true),
        shm_size: Some(1 << 20),
        ..Default::default()
    };
    let mut i = input(&config, &hc);
    i.init_binary = Some("/usr/libexec/berth/init".into());
    i.extra_mounts = vec![oci_spec::runtime::MountBuilder::default()
        .destination("/data")
        .typ("bind")
        .source("/srv/data")
        .options(vec!["rbind".to_string(), "rslave".to_string()])
        .build()
        .unwrap()];
    let j = build_json(&i);
    assert_eq!(j["root"]["readonly"], true);
    let ms = j["mounts"].as_array().unwrap();
    let find = |d: &str| ms.iter().find(|m| m["destination"] == d).unwrap().clone();
    assert_eq!(
        strs(&find("/etc/hosts")["options"]),
        ["rbind", "ro", "rprivate"]
    );
    assert_eq!(
        strs(&find("/dev/shm")["options"]).last().unwrap(),
        "size=1048576"
    );
    assert_eq!(
        find("/sbin/docker-init")["source"],
        "/usr/libexec/berth/init"
    );
    // Shallower user mounts first (moby sortMounts), after the defaults and init.
    let dests: Vec<&str> = ms
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        &dests[7..],
        [
            "/sbin/docker-init",
            "/data",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/etc/hosts"
        ]
    );
    assert_eq!(j["linux"]["rootfsPropagation"], "slave");
}

#[test]
fn masked_paths_options() {
    let config = ContainerConfig::default();
    let host = HostInfo {
        thermal_throttle: vec!["/sys/devices/system/cpu/cpu0/thermal_throttle".into()],
        ..HostInfo::fake()
    };
    let hc = HostConfig::default();
    let j = to_json(&build(&input(&config, &hc), &host).unwrap());
    assert_eq!(
        strs(&j["linux"]["maskedPaths"]).last().unwrap(),
        "/sys/devices/system/cpu/cpu0/thermal_throttle"
    );
    let hc = HostConfig {
        masked_paths: Some(vec!["/proc/foo".into()]),
        readonly_paths: Some(vec![]),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    assert_eq!(strs(&j["linux"]["maskedPaths"]), ["/proc/foo"]);
    assert!(j["linux"].get("readonlyPaths").is_none());
    let hc = HostConfig {
        security_opt: Some(vec!["systempaths=unconfined".into()]),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    assert!(j["linux"].get("maskedPaths").is_none());
    assert!(j["linux"].get("readonlyPaths").is_none());
}

#[test]
fn devices_and_rules() {
    let config = ContainerConfig::default();
    let hc = HostConfig {
        devices: Some(vec![DeviceMapping {
            path_on_host: Some("/dev/zero".into()),
            path_in_container: Some("/dev/myzero".into()),
            cgroup_permissions: Some("rw".into()),
        }]),
        device_cgroup_rules: Some(vec!["c 42:* rmw".into()]),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    let devs = j["linux"]["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 7);
    assert_eq!(devs[6]["path"], "/dev/myzero");
    let rules = j["linux"]["resources"]["devices"].as_array().unwrap();
    let n = rules.len();
    assert_eq!(
        rules[n - 2],
        json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"})
    );
    assert_eq!(
        rules[n - 1],
        json!({"allow": true, "type": "c", "major": 42, "access": "rmw"})
    );

    let hc = HostConfig {
        device_cgroup_rules: Some(vec!["nope".into()]),
        ..Default::default()
    };
    assert!(build(&input(&config, &hc), &HostInfo::fake()).is_err());
    let hc = HostConfig {
        devices: Some(vec![DeviceMapping {
            path_on_host: Some("/no/such".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    assert!(build(&input(&config, &hc), &HostInfo::fake()).is_err());
}

#[test]
fn resources_and_sysctls() {
    let config = ContainerConfig::default();
    let hc = HostConfig {
        memory: Some(64 << 20),
        nano_cpus: Some(500_000_000),
        pids_limit: Some(-1),
        sysctls: Some(
            [
                (
                    "net.ipv4.ip_unprivileged_port_start".to_string(),
                    "1024".to_string(),
                ),
                ("kernel.shmmax".to_string(), "1".to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    let r = &j["linux"]["resources"];
    assert_eq!(r["memory"], json!({"limit": 64 << 20, "swap": 128 << 20}));
    assert_eq!(r["cpu"], json!({"quota": 50000, "period": 100000}));
    assert_eq!(r["pids"], json!({"limit": -1}));
    assert_eq!(
        j["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
        "1024"
    );
    assert_eq!(j["linux"]["sysctl"]["kernel.shmmax"], "1");

    let hc = HostConfig {
        network_mode: Some("container:abc".into()),
        ..Default::default()
    };
    let j = build_json(&input(&config, &hc));
    assert!(j["linux"].get("sysctl").is_none());
}

/// Runs against the real host, as the daemon does.
#[test]
fn real_host_build() {
    let config = ContainerConfig::default();
    let hc = HostConfig::default();
    let spec = crate::build_spec(&input(&config, &hc)).unwrap();
    assert!(spec.linux().as_ref().unwrap().seccomp().is_some());
    assert!(!crate::all_capabilities().is_empty());
}

#[test]
fn pid_host_in_a_user_namespace_binds_proc() {
    let config = ContainerConfig::default();
    let hc = HostConfig::default();
    let host = HostInfo {
        in_userns: true,
        ..HostInfo::fake()
    };
    let mut i = input(&config, &hc);
    i.pid = NsMode::Host;
    let j = to_json(&build(&i, &host).unwrap());
    let proc = j["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/proc")
        .unwrap();
    assert_eq!(proc["type"], "bind");
    assert_eq!(proc["source"], "/proc");
    assert_eq!(
        strs(&proc["options"]),
        ["rbind", "nosuid", "noexec", "nodev"]
    );
    assert!(strs(&j["linux"]["maskedPaths"]).contains(&"/proc/kcore".to_string()));
    assert!(strs(&j["linux"]["readonlyPaths"])
        .iter()
        .all(|p| !p.starts_with("/proc/")));
    // The daemon's own PID namespace named by path: nothing to join.
    i.pid = NsMode::Path("/proc/self/ns/pid".into());
    let j = to_json(&build(&i, &host).unwrap());
    assert!(!ns_types(&j).contains(&"pid".to_string()));
    // Without a user namespace, or with a PID namespace of its own: proc.
    for (mode, host) in [
        (NsMode::Host, HostInfo::fake()),
        (NsMode::Private, host.clone()),
    ] {
        i.pid = mode;
        let j = to_json(&build(&i, &host).unwrap());
        let proc = j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/proc")
            .unwrap();
        assert_eq!(proc["type"], "proc");
    }
}
