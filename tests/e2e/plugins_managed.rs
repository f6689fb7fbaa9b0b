//! Issue 19 (items 6 and `/info`): managed (v2) plugins through the real
//! docker CLI — `docker plugin create|ls|inspect|set|enable|disable|rm` —
//! with a test volume plugin (`tests/plugins/managed_vol.py`, run by the
//! host's python bound into the plugin read-only), and refused input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_tests::fixtures::{self, layer_tar, Entry};
use berth_tests::http::raw_request;
use berth_tests::*;
use serde_json::{json, Value};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/managed_vol.py");

/// The test plugin's `config.json`, with `change` merged in at the top.
fn config(change: Value) -> Value {
    let mut c = json!({
        "description": "a test volume plugin",
        "documentation": "https://example.invalid/pyvol",
        "entrypoint": ["/usr/bin/python3", "/plugin/managed_vol.py"],
        "interface": {"socket": "pyvol.sock", "types": ["docker.volumedriver/1.0"]},
        "env": [
            {"name": "GREETING", "description": "written in volumes", "settable": ["value"], "value": "hello"},
            {"name": "FIXED", "value": "1"}
        ],
        "mounts": [
            {"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind", "options": ["rbind", "ro"]}
        ],
        "propagatedMount": "/data",
        "linux": {"capabilities": ["CAP_SYS_ADMIN"]},
        "network": {"type": "host"}
    });
    for (k, v) in change.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    c
}

/// A plugin directory (`config.json` + `rootfs/`) under `parent`.
fn plugin_dir(parent: &Path, name: &str, config: &Value) -> PathBuf {
    let dir = parent.join(name);
    let root = dir.join("rootfs");
    for d in ["plugin", "usr", "etc", "data", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for l in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l)).unwrap();
    }
    std::fs::copy(SCRIPT, root.join("plugin/managed_vol.py")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_vec(config).unwrap()).unwrap();
    dir
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = d.docker_ok(&["plugin", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn names(d: &Daemon, filter: Option<&str>) -> Vec<String> {
    let mut args = vec!["plugin", "ls", "--format", "{{.Name}}"];
    if let Some(f) = filter {
        args.extend(["--filter", f]);
    }
    d.docker_ok(&args).lines().map(str::to_string).collect()
}

/// Processes running the test plugin's script for daemon `d` (in its
/// cgroup parent: tests run in parallel).
fn plugin_processes(d: &Daemon) -> Vec<i32> {
    let parent = d.cgroup_parent();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("/plugin/managed_vol.py"))
                && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .is_ok_and(|c| c.contains(parent.as_str()))
        })
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect()
}

/// Calls the plugin on its own socket (as the daemon does).
fn call(sock: &Path, method: &str, body: Value) -> Value {
    let (status, _, out) = raw_request(
        sock,
        "POST",
        &format!("/{method}"),
        Some(body.to_string().as_bytes()),
    )
    .expect("the plugin answers");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn a_plugin_is_created_listed_inspected_set_and_removed() {
    let d = Daemon::start();
    let t = scratch();
    let dir = plugin_dir(t.path(), "pyvol", &config(json!({})));
    d.docker_ok(&["plugin", "create", "pyvol", dir.to_str().unwrap()]);

    let p = inspect(&d, "pyvol");
    assert_eq!(p["Name"], "pyvol:latest");
    assert_eq!(p["Enabled"], false);
    assert_eq!(p["PluginReference"], "pyvol:latest");
    let id = p["Id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(
        p["Config"]["Interface"]["Types"],
        json!(["docker.volumedriver/1.0"])
    );
    assert_eq!(p["Config"]["PropagatedMount"], "/data");
    assert_eq!(p["Config"]["Linux"]["Devices"], Value::Null);
    assert_eq!(p["Settings"]["Env"], json!(["GREETING=hello", "FIXED=1"]));
    assert_eq!(p["Settings"]["Devices"], json!([]));
    assert_eq!(p["Settings"]["Mounts"][0]["Source"], "/usr");
    assert!(d
        .data_root
        .join("plugins")
        .join(&id)
        .join("rootfs/plugin/managed_vol.py")
        .is_file());
    // By full name, by ID prefix.
    assert_eq!(inspect(&d, "pyvol:latest")["Id"], id.as_str());
    assert_eq!(inspect(&d, &id[..12])["Name"], "pyvol:latest");

    // ls, with docker's filters.
    assert_eq!(names(&d, None), ["pyvol:latest"]);
    assert_eq!(names(&d, Some("enabled=false")), ["pyvol:latest"]);
    assert!(names(&d, Some("enabled=true")).is_empty());
    assert_eq!(names(&d, Some("capability=volumedriver")), ["pyvol:latest"]);
    assert!(names(&d, Some("capability=authz")).is_empty());
    let o = d.docker(&["plugin", "ls", "--filter", "color=red"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid filter 'color'"),
        "{}",
        stderr(&o)
    );
    let table = d.docker_ok(&["plugin", "ls", "--no-trunc"]);
    assert!(
        table.contains(&id) && table.contains("a test volume plugin") && table.contains("false"),
        "{table}"
    );

    // set: only what the config lets be set.
    d.docker_ok(&["plugin", "set", "pyvol", "GREETING=bonjour"]);
    assert_eq!(
        inspect(&d, "pyvol")["Settings"]["Env"],
        json!(["GREETING=bonjour", "FIXED=1"])
    );
    for (arg, want) in [
        ("FIXED=2", "\"FIXED\" is not settable"),
        ("usr.source=/etc", "\"usr.source\" is not settable"),
        (
            "NOPE=1",
            "setting \"NOPE\" not found in the plugin configuration",
        ),
    ] {
        let o = d.docker(&["plugin", "set", "pyvol", arg]);
        assert!(!o.status.success(), "{arg}");
        assert!(stderr(&o).contains(want), "{arg}: {}", stderr(&o));
    }

    // The same name twice is refused; an unknown one is not found.
    let o = d.docker(&["plugin", "create", "pyvol:latest", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("plugin pyvol:latest already exists"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["plugin", "inspect", "absent"]);
    assert!(
        stderr(&o).contains("plugin \"absent\" not found"),
        "{}",
        stderr(&o)
    );
    let (status, _, _) = d.raw("POST", "/v1.50/plugins/absent/enable?timeout=1", None);
    assert_eq!(status, 404);

    d.docker_ok(&["plugin", "rm", "pyvol"]);
    assert!(names(&d, None).is_empty());
    assert!(!d.data_root.join("plugins").join(&id).exists());
    // Kept across a restart: a plugin created, then the daemon restarted.
    d.docker_ok(&["plugin", "create", "other/pyvol:v2", dir.to_str().unwrap()]);
    let mut d = d;
    d.restart().unwrap();
    assert_eq!(names(&d, None), ["other/pyvol:v2"]);
    d.docker_ok(&["plugin", "rm", "other/pyvol:v2"]);
}

#[test]
fn bad_archives_and_configs_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    let good = serde_json::to_vec(&config(json!({}))).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            layer_tar(&[
                Entry::File("config.json", &good),
                Entry::Dir("rootfs"),
                Entry::RawFile("rootfs/../../escaped", b"x"),
            ]),
            "",
        ),
        (
            "abslink",
            layer_tar(&[
                Entry::File("config.json", &good),
                Entry::Dir("rootfs"),
                Entry::Symlink("rootfs/etc", "/etc"),
                Entry::File("rootfs/etc/berth-plugin-escape", b"x"),
            ]),
            "",
        ),
        (
            "linkedconfig",
            layer_tar(&[
                Entry::Symlink("config.json", "/etc/passwd"),
                Entry::Dir("rootfs"),
            ]),
            "config.json is not a regular file",
        ),
        (
            "notjson",
            layer_tar(&[Entry::File("config.json", b"{nope"), Entry::Dir("rootfs")]),
            "failed to parse config",
        ),
        (
            "nointerface",
            layer_tar(&[
                Entry::File("config.json", br#"{"entrypoint":["/x"]}"#),
                Entry::Dir("rootfs"),
            ]),
            "Interface.Types is empty",
        ),
        (
            "noconfig",
            layer_tar(&[Entry::Dir("rootfs")]),
            "config not found",
        ),
        (
            "norootfs",
            layer_tar(&[Entry::File("config.json", &good)]),
            "no rootfs found",
        ),
    ];
    for (name, tar, want) in cases {
        let (status, _, body) = d.raw(
            "POST",
            &format!("/v1.50/plugins/create?name={name}"),
            Some(&tar),
        );
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains(want), "{name}: {body}");
    }
    assert!(!Path::new("/etc/berth-plugin-escape").exists());
    assert!(!d.data_root.join("escaped").exists() && !d.data_root.join("plugins/escaped").exists());
    // Nothing recorded, nothing left on disk.
    assert_eq!(d.docker_ok(&["plugin", "ls", "-q"]), "");
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("plugins"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A digest is not a plugin name.
    let (status, _, body) = d.raw(
        "POST",
        &format!("/v1.50/plugins/create?name=x@sha256:{}", "a".repeat(64)),
        Some(&layer_tar(&[Entry::Dir("rootfs")])),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn an_enabled_plugin_runs_apart_serves_its_socket_and_propagates_its_mounts() {
    let d = Daemon::start();
    let t = scratch();
    let dir = plugin_dir(t.path(), "pyvol", &config(json!({})));
    d.docker_ok(&["plugin", "create", "pyvol", dir.to_str().unwrap()]);
    d.docker_ok(&["plugin", "set", "pyvol", "GREETING=from-settings"]);
    let id = inspect(&d, "pyvol")["Id"].as_str().unwrap().to_string();
    d.docker_ok(&["plugin", "enable", "pyvol"]);
    assert_eq!(inspect(&d, "pyvol")["Enabled"], true);
    assert_eq!(names(&d, Some("enabled=true")), ["pyvol:latest"]);
    assert_eq!(plugin_processes(&d).len(), 1);
    // Not a Docker container.
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
    // /info lists it with the built-in volume driver.
    let vols = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(vols.trim(), r#"["local","pyvol:latest"]"#);
    assert!(
        d.docker_ok(&["info"])
            .contains("Volume: local pyvol:latest"),
        "docker info shows it"
    );

    // Its socket, under the exec root, answers; what it mounts at its
    // PropagatedMount shows on the host (moby's ScopedPath).
    let sock = d
        .exec_root
        .join("plugins")
        .join(&id[..12])
        .join("pyvol.sock");
    assert_eq!(
        call(&sock, "VolumeDriver.Capabilities", json!({})),
        json!({"Capabilities": {"Scope": "local"}})
    );
    call(&sock, "VolumeDriver.Create", json!({"Name": "v1"}));
    let m = call(
        &sock,
        "VolumeDriver.Mount",
        json!({"Name": "v1", "ID": "a"}),
    );
    assert_eq!(m["Mountpoint"], "/data/v1");
    let host = d
        .data_root
        .join("plugins")
        .join(&id)
        .join("propagated-mount");
    assert!(
        wait_for(Duration::from_secs(5), || host.join("v1/greeting").exists()),
        "the plugin's mount propagates: {:?}",
        mounts_under(&host)
    );
    assert_eq!(
        std::fs::read_to_string(host.join("v1/greeting")).unwrap(),
        "from-settings"
    );

    // Enabling twice, setting or removing while enabled are refused.
    let o = d.docker(&["plugin", "enable", "pyvol"]);
    assert!(
        stderr(&o).contains("plugin pyvol:latest is enabled"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["plugin", "set", "pyvol", "GREETING=x"]);
    assert!(
        stderr(&o).contains("cannot set on an active plugin"),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["plugin", "rm", "pyvol"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("plugin pyvol:latest is enabled"),
        "{}",
        stderr(&o)
    );

    // Disable stops it and releases its mounts and socket.
    d.docker_ok(&["plugin", "disable", "pyvol"]);
    assert_eq!(inspect(&d, "pyvol")["Enabled"], false);
    assert!(wait_for(Duration::from_secs(10), || plugin_processes(&d).is_empty()));
    assert!(mounts_under(&host).is_empty(), "{:?}", mounts_under(&host));
    assert!(!sock.exists());
    let o = d.docker(&["plugin", "disable", "pyvol"]);
    assert!(
        stderr(&o).contains("plugin pyvol:latest found but disabled"),
        "{}",
        stderr(&o)
    );
    let vols = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(vols.trim(), r#"["local"]"#);
    // Found, but disabled: no volume of it, and no legacy plugin instead.
    let o = d.docker(&["volume", "create", "-d", "pyvol", "x"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("plugin pyvol found but disabled"),
        "{}",
        stderr(&o)
    );

    // Enabled again, then removed with force while enabled.
    d.docker_ok(&["plugin", "enable", "pyvol"]);
    assert_eq!(plugin_processes(&d).len(), 1);
    d.docker_ok(&["plugin", "rm", "-f", "pyvol"]);
    assert!(wait_for(Duration::from_secs(10), || plugin_processes(&d).is_empty()));
    assert!(names(&d, None).is_empty());
    assert!(!d.data_root.join("plugins").join(&id).exists());
    assert!(mounts_under(&d.data_root.join("plugins")).is_empty());
}

#[test]
fn an_enabled_plugin_is_adopted_after_a_daemon_crash_and_a_disabled_one_is_not_left_running() {
    let mut d = Daemon::start();
    let t = scratch();
    let dir = plugin_dir(t.path(), "pyvol", &config(json!({})));
    d.docker_ok(&["plugin", "create", "pyvol", dir.to_str().unwrap()]);
    d.docker_ok(&["plugin", "enable", "pyvol"]);
    let id = inspect(&d, "pyvol")["Id"].as_str().unwrap().to_string();
    let before = plugin_processes(&d);
    assert_eq!(before.len(), 1);
    d.kill9();
    d.restart().unwrap();
    // The same process serves again, and the daemon reaches it.
    assert_eq!(plugin_processes(&d), before);
    assert_eq!(inspect(&d, "pyvol")["Enabled"], true);
    let sock = d
        .exec_root
        .join("plugins")
        .join(&id[..12])
        .join("pyvol.sock");
    assert_eq!(
        call(&sock, "VolumeDriver.Capabilities", json!({}))["Capabilities"]["Scope"],
        "local"
    );
    let vols = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(vols.trim(), r#"["local","pyvol:latest"]"#);
    d.docker_ok(&["plugin", "disable", "pyvol"]);
    assert!(wait_for(Duration::from_secs(10), || plugin_processes(&d).is_empty()));
    d.docker_ok(&["plugin", "rm", "pyvol"]);
}

#[test]
fn a_plugin_whose_socket_never_appears_fails_to_enable_within_its_timeout() {
    let d = Daemon::start();
    let t = scratch();
    // A process that runs but never opens its socket.
    let dir = plugin_dir(
        t.path(),
        "mute",
        &config(
            json!({"entrypoint": ["/usr/bin/python3", "/plugin/managed_vol.py"],
                       "interface": {"socket": "other.sock", "types": ["docker.volumedriver/1.0"]}}),
        ),
    );
    d.docker_ok(&["plugin", "create", "mute", dir.to_str().unwrap()]);
    let start = Instant::now();
    let o = d.docker(&["plugin", "enable", "--timeout", "3", "mute"]);
    let took = start.elapsed();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("plugin mute:latest did not start: no socket \"other.sock\" within 3s"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(inspect(&d, "mute")["Enabled"], false);
    assert!(wait_for(Duration::from_secs(10), || plugin_processes(&d).is_empty()));
    assert!(mounts_under(&d.data_root.join("plugins")).is_empty());

    // A process that exits at once: the failure is as quick, with its output.
    let dir = plugin_dir(
        t.path(),
        "dies",
        &config(json!({"entrypoint": ["/usr/bin/python3", "/plugin/managed_vol.py", "exit"]})),
    );
    d.docker_ok(&["plugin", "create", "dies", dir.to_str().unwrap()]);
    let start = Instant::now();
    let o = d.docker(&["plugin", "enable", "--timeout", "30", "dies"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("its process exited"), "{}", stderr(&o));
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(inspect(&d, "dies")["Enabled"], false);
    for p in ["mute", "dies"] {
        d.docker_ok(&["plugin", "rm", p]);
    }
    assert!(names(&d, None).is_empty());
}

#[test]
fn containers_share_a_volume_of_a_managed_plugin_which_is_not_disabled_while_in_use() {
    let d = daemon();
    let t = scratch();
    let dir = plugin_dir(t.path(), "pyvol", &config(json!({})));
    d.docker_ok(&["plugin", "create", "pyvol", dir.to_str().unwrap()]);
    d.docker_ok(&["plugin", "enable", "pyvol"]);
    let id = inspect(&d, "pyvol")["Id"].as_str().unwrap().to_string();
    d.docker_ok(&["volume", "create", "-d", "pyvol", "shared"]);
    assert_eq!(
        d.docker_ok(&["volume", "inspect", "-f", "{{.Driver}}", "shared"])
            .trim(),
        "pyvol:latest",
        "a managed plugin drives its volumes by its full name, as in Docker"
    );
    // One container writes and stays; another reads through the same
    // mount, which is the plugin's, seen on the host under its
    // propagated mount.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "-v",
        "shared:/v",
        "busybox",
        "sh",
        "-c",
        "echo one > /v/f; sleep 60",
    ]);
    let host = d
        .data_root
        .join("plugins")
        .join(&id)
        .join("propagated-mount/shared");
    assert!(wait_for(Duration::from_secs(10), || host
        .join("f")
        .exists()));
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/v",
        "busybox",
        "cat",
        "/v/f",
        "/v/greeting",
    ]);
    assert_eq!(out, "one\nhello");
    // In use: disable and rm refuse without force.
    let o = d.docker(&["plugin", "disable", "pyvol"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("plugin pyvol:latest is in use"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["rm", "-f", "writer"]);
    assert!(wait_for(Duration::from_secs(10), || mounts_under(&host).is_empty()));
    d.docker_ok(&["volume", "rm", "shared"]);
    d.docker_ok(&["plugin", "disable", "pyvol"]);
    d.docker_ok(&["plugin", "rm", "pyvol"]);
    assert!(wait_for(Duration::from_secs(10), || plugin_processes(&d).is_empty()));
}

/// Copies a host binary and the shared libraries `ldd` names into `root`
/// at the same paths.
fn copy_with_libs(root: &Path, bin: &str) {
    let mut files = vec![bin.to_string()];
    let ldd = std::process::Command::new("ldd").arg(bin).output().unwrap();
    for l in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        let path = match l.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => l.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(p.to_string());
        }
    }
    for f in files {
        let dest = root.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if !dest.exists() {
            // The file itself, not a link to the host's.
            std::fs::copy(std::fs::canonicalize(&f).unwrap(), &dest).unwrap();
        }
    }
}

/// Debian's rclone packaged as a managed plugin, as rclone packages
/// itself (rclone.org/docker: `rclone serve docker`, its socket
/// `rclone.sock`, volumes under the propagated mount `/mnt`, FUSE through
/// `/dev/fuse` with CAP_SYS_ADMIN, host network), with a root built from
/// the host's files.
fn rclone_plugin_dir(parent: &Path, state: &Path) -> PathBuf {
    let dir = parent.join("rclone-plugin");
    let root = dir.join("rootfs");
    for d in [
        "etc",
        "tmp",
        "mnt",
        "data/config",
        "data/cache",
        "remote",
        "bin",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The root's own layout: no links into the host's merged /usr.
    copy_with_libs(&root, "/usr/bin/rclone");
    copy_with_libs(&root, "/usr/bin/fusermount3");
    std::os::unix::fs::symlink("fusermount3", root.join("usr/bin/fusermount")).unwrap();
    std::fs::copy(fixtures::BUSYBOX, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    for d in ["config", "cache", "remote"] {
        std::fs::create_dir_all(state.join(d)).unwrap();
    }
    std::fs::write(state.join("config/rclone.conf"), "").unwrap();
    let src = |d: &str| state.join(d).display().to_string();
    let config = json!({
        "description": "Rclone volume plugin for Docker",
        "documentation": "https://rclone.org/docker/",
        "interface": {"socket": "rclone.sock", "types": ["docker.volumedriver/1.0"]},
        "linux": {"capabilities": ["CAP_SYS_ADMIN"], "devices": [{"path": "/dev/fuse"}]},
        "network": {"type": "host"},
        "entrypoint": ["/usr/bin/rclone", "serve", "docker"],
        "workdir": "/data",
        "args": {"name": "args", "value": [], "settable": ["value"]},
        "env": [
            {"name": "RCLONE_VERBOSE", "value": "0", "settable": ["value"]},
            {"name": "RCLONE_CONFIG", "value": "/data/config/rclone.conf"},
            {"name": "RCLONE_CACHE_DIR", "value": "/data/cache"},
            {"name": "RCLONE_BASE_DIR", "value": "/mnt"},
            {"name": "PATH", "value": "/usr/bin:/bin"}
        ],
        "mounts": [
            {"name": "config", "source": "/var/lib/docker-plugins/rclone/config",
             "destination": "/data/config", "type": "bind", "options": ["rbind"], "settable": ["source"]},
            {"name": "cache", "source": "/var/lib/docker-plugins/rclone/cache",
             "destination": "/data/cache", "type": "bind", "options": ["rbind"], "settable": ["source"]},
            {"name": "remote", "source": src("remote"),
             "destination": "/remote", "type": "bind", "options": ["rbind"], "settable": ["source"]}
        ],
        "propagatedMount": "/mnt"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    dir
}

#[test]
fn rclone_as_a_managed_plugin_serves_a_volume_to_two_containers() {
    let d = daemon();
    let t = scratch();
    let state = t.path().join("state");
    let dir = rclone_plugin_dir(t.path(), &state);
    d.docker_ok(&["plugin", "create", "rclone", dir.to_str().unwrap()]);
    // Its state where the test wants it, through the settable sources.
    let config_src = format!("config.source={}", state.join("config").display());
    let cache_src = format!("cache.source={}", state.join("cache").display());
    d.docker_ok(&["plugin", "set", "rclone", &config_src, &cache_src]);
    d.docker_ok(&["plugin", "enable", "--timeout", "60", "rclone"]);
    let id = inspect(&d, "rclone")["Id"].as_str().unwrap().to_string();
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(info.trim(), r#"["local","rclone:latest"]"#);

    d.docker_ok(&[
        "volume",
        "create",
        "-d",
        "rclone",
        "-o",
        "type=local",
        "-o",
        "path=/remote",
        "rvol",
    ]);
    let v: Value = serde_json::from_str(&d.docker_ok(&["volume", "inspect", "rvol"])).unwrap();
    let propagated = d
        .data_root
        .join("plugins")
        .join(&id)
        .join("propagated-mount");
    assert_eq!(v[0]["Driver"], "rclone:latest");
    assert_eq!(
        v[0]["Mountpoint"],
        propagated.join("rvol").display().to_string(),
        "the plugin's /mnt/rvol, as the host sees it"
    );

    // One container writes through rclone's FUSE mount and stays; a
    // second reads what the first wrote.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "-v",
        "rvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f && sleep 60",
    ]);
    assert!(
        wait_for(Duration::from_secs(20), || {
            std::fs::read_to_string(state.join("remote/f")).is_ok_and(|s| s == "hello\n")
        }),
        "written through rclone to its remote; mounts: {:?}",
        mounts_under(&propagated)
    );
    let out = d.docker_ok(&["run", "--rm", "-v", "rvol:/d", "busybox", "cat", "/d/f"]);
    assert_eq!(out, "hello\n");
    let o = d.docker(&["plugin", "disable", "rclone"]);
    assert!(
        stderr(&o).contains("plugin rclone:latest is in use"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["rm", "-f", "writer"]);
    assert!(
        wait_for(Duration::from_secs(15), || mounts_under(&propagated).len()
            <= 1),
        "rclone unmounted its FUSE mount: {:?}",
        mounts_under(&propagated)
    );
    d.docker_ok(&["volume", "rm", "rvol"]);
    d.docker_ok(&["plugin", "disable", "rclone"]);
    d.docker_ok(&["plugin", "rm", "rclone"]);
    assert!(mounts_under(&d.data_root.join("plugins")).is_empty());
    // The remote keeps the data.
    assert_eq!(
        std::fs::read_to_string(state.join("remote/f")).unwrap(),
        "hello\n"
    );
}

#[test]
fn rclone_is_pushed_to_a_registry_and_installed_back_with_its_privileges() {
    let d = daemon();
    let t = scratch();
    let Some(reg) = LocalRegistry::start(t.path()) else {
        panic!("docker-registry (Debian's) is needed for this test");
    };
    let state = t.path().join("state");
    let dir = rclone_plugin_dir(t.path(), &state);
    let name = format!("127.0.0.1:{}/berth/rclone:v1", reg.port);
    d.docker_ok(&["plugin", "create", &name, dir.to_str().unwrap()]);
    let out = d.docker_ok(&["plugin", "push", &name]);
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    d.docker_ok(&["plugin", "rm", &name]);
    assert!(names(&d, None).is_empty());

    // What installing it grants, as the registry's config says.
    let (status, _, body) = d.raw(
        "GET",
        &format!("/v1.50/plugins/privileges?remote={name}"),
        None,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let privs: Value = serde_json::from_slice(&body).unwrap();
    let pnames: Vec<&str> = privs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        pnames,
        [
            "network",
            "mount",
            "mount",
            "mount",
            "device",
            "capabilities"
        ]
    );
    // Refused without the privileges it asks for.
    let (status, _, body) = d.raw(
        "POST",
        &format!("/v1.50/plugins/pull?remote={name}&name=nope"),
        Some(b"[]"),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("incorrect privileges"));
    assert!(names(&d, None).is_empty());

    // Installed back under an alias, its sources set, enabled, used.
    let config_src = format!("config.source={}", state.join("config").display());
    let cache_src = format!("cache.source={}", state.join("cache").display());
    d.docker_ok(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        "--alias",
        "rclone",
        &name,
        &config_src,
        &cache_src,
    ]);
    let p = inspect(&d, "rclone");
    assert_eq!(p["Name"], "rclone:latest");
    assert_eq!(p["Enabled"], true);
    assert_eq!(p["PluginReference"], name.as_str());
    assert_eq!(p["Config"]["rootfs"]["type"], "layers");
    assert_eq!(
        p["Config"]["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(1)
    );
    d.docker_ok(&[
        "volume",
        "create",
        "-d",
        "rclone",
        "-o",
        "type=local",
        "-o",
        "path=/remote",
        "again",
    ]);
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "again:/data",
        "busybox",
        "sh",
        "-c",
        "echo installed > /data/g",
    ]);
    assert_eq!(
        std::fs::read_to_string(state.join("remote/g")).unwrap(),
        "installed\n"
    );
    d.docker_ok(&["volume", "rm", "again"]);
    d.docker_ok(&["plugin", "rm", "-f", "rclone"]);
    assert!(mounts_under(&d.data_root.join("plugins")).is_empty());
    drop(reg);
}

#[test]
fn a_disabled_plugin_is_upgraded_from_a_registry_keeping_its_settings() {
    let d = Daemon::start();
    let t = scratch();
    let Some(reg) = LocalRegistry::start(t.path()) else {
        panic!("docker-registry (Debian's) is needed for this test");
    };
    let v1 = format!("127.0.0.1:{}/pyvol:v1", reg.port);
    let v2 = format!("127.0.0.1:{}/pyvol:v2", reg.port);
    let old = plugin_dir(t.path(), "old", &config(json!({})));
    let new = plugin_dir(
        t.path(),
        "new",
        &config(json!({"description": "the second version"})),
    );
    std::fs::write(new.join("rootfs/plugin/VERSION"), "2").unwrap();
    d.docker_ok(&["plugin", "create", &v2, new.to_str().unwrap()]);
    d.docker_ok(&["plugin", "push", &v2]);
    d.docker_ok(&["plugin", "rm", &v2]);
    d.docker_ok(&["plugin", "create", &v1, old.to_str().unwrap()]);
    d.docker_ok(&["plugin", "set", &v1, "GREETING=kept"]);
    let id = inspect(&d, &v1)["Id"].as_str().unwrap().to_string();

    // Not while enabled.
    d.docker_ok(&["plugin", "enable", &v1]);
    let (status, _, body) = d.raw(
        "POST",
        &format!("/v1.50/plugins/{v1}/upgrade?remote={v2}"),
        Some(b"[]"),
    );
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains(&format!(
        "plugin must be disabled before upgrading: plugin {v1} is enabled"
    )));
    d.docker_ok(&["plugin", "disable", &v1]);

    // Another tag of the same repository: the CLI asks first unless told.
    let out = d.docker_ok(&[
        "plugin",
        "upgrade",
        "--grant-all-permissions",
        "--skip-remote-check",
        &v1,
        &v2,
    ]);
    assert!(out.contains("Upgraded plugin"), "{out}");
    let p = inspect(&d, &v1);
    assert_eq!(p["Id"], id.as_str());
    assert_eq!(p["Name"], v1.as_str());
    assert_eq!(p["Config"]["Description"], "the second version");
    assert_eq!(p["Settings"]["Env"], json!(["GREETING=kept", "FIXED=1"]));
    let root = d.data_root.join("plugins").join(&id);
    assert_eq!(
        std::fs::read_to_string(root.join("rootfs/plugin/VERSION")).unwrap(),
        "2"
    );
    assert!(!root.join("rootfs-old").exists() && !root.join("rootfs-new").exists());
    // And it runs.
    d.docker_ok(&["plugin", "enable", &v1]);
    assert_eq!(plugin_processes(&d).len(), 1);
    d.docker_ok(&["plugin", "rm", "-f", &v1]);
    assert!(wait_for(Duration::from_secs(10), || plugin_processes(&d).is_empty()));
    drop(reg);
}

/// berth's own CLI (`berth plugin …`) against the same daemon: its output
/// as the docker CLI's for the same calls.
#[test]
fn the_berth_cli_drives_managed_plugins_as_the_docker_cli_does() {
    let d = Daemon::start();
    let t = scratch();
    let dir = plugin_dir(t.path(), "pyvol", &config(json!({})));
    let berth = |args: &[&str]| {
        let o = berth_tests::cli::berth(&d, args);
        (o.status.success(), stdout(&o), stderr(&o))
    };
    let (ok, out, err) = berth(&["plugin", "create", "pyvol", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "pyvol");
    for fmt in ["{{.Name}} {{.Enabled}}", "{{.ID}} {{.Description}}"] {
        let (ok, out, err) = berth(&["plugin", "ls", "--no-trunc", "--format", fmt]);
        assert!(ok, "{err}");
        assert_eq!(
            out,
            d.docker_ok(&["plugin", "ls", "--no-trunc", "--format", fmt])
        );
    }
    let (ok, out, _) = berth(&["plugin", "inspect", "-f", "{{.Settings.Env}}", "pyvol"]);
    assert!(ok);
    assert_eq!(out.trim(), "[GREETING=hello FIXED=1]");
    let (ok, _, err) = berth(&["plugin", "set", "pyvol", "GREETING=berth"]);
    assert!(ok, "{err}");
    let (ok, _, err) = berth(&["plugin", "set", "pyvol", "FIXED=2"]);
    assert!(!ok);
    assert!(err.contains("\"FIXED\" is not settable"), "{err}");
    let (ok, out, err) = berth(&["plugin", "enable", "pyvol"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "pyvol");
    assert_eq!(plugin_processes(&d).len(), 1);
    let (ok, _, err) = berth(&["plugin", "rm", "pyvol"]);
    assert!(!ok);
    assert!(err.contains("plugin pyvol:latest is enabled"), "{err}");
    let (ok, out, err) = berth(&["plugin", "disable", "pyvol"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "pyvol");
    assert!(wait_for(Duration::from_secs(10), || plugin_processes(&d).is_empty()));
    let (ok, out, err) = berth(&["plugin", "rm", "pyvol"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "pyvol");
    assert!(names(&d, None).is_empty());
}
