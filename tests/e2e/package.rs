//! Issue 22, items 1 and 2: the Debian package and socket activation.
//! `scripts/package.sh --profile debug` builds the package; apt installs
//! it into this system; the INSTALLED `/usr/bin/berthd` runs under
//! `systemd-socket-activate` (systemd is not PID 1 here: it stands in for
//! `berthd.socket`, and the test does the restart that postinst asks of
//! systemd on an upgrade) with this test's own roots, bridge and table; a
//! container outlives the upgrade; remove and purge leave nothing of
//! berth's behind. A guard purges the package whatever happens.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::*;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether every tool is there; in CI (which installs them) a missing
/// one fails the test.
fn tools(names: &[&str]) -> bool {
    for tool in names {
        if !have(tool) {
            assert!(
                std::env::var_os("CI").is_none(),
                "{tool} is missing: .ci/run must install it"
            );
            eprintln!("skipped: {tool} is missing (.ci/run installs it)");
            return false;
        }
    }
    true
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn apt(args: &[&str], env: &[(&str, &str)]) -> String {
    run(Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .envs(env.iter().copied()))
}

/// `installed`, `config-files` or `absent`.
fn dpkg_state() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status} ${Version}", "berth"])
        .output()
        .expect("dpkg-query");
    if !out.status.success() {
        return "absent".into();
    }
    stdout(&out).trim().to_string()
}

fn group_exists() -> bool {
    Command::new("getent")
        .args(["group", "berth"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

const FILES: &[&str] = &[
    "/usr/bin/berthd",
    "/usr/bin/berth",
    "/usr/bin/berth-shim",
    "/lib/systemd/system/berthd.service",
    "/lib/systemd/system/berthd.socket",
    "/usr/share/man/man1/berth.1.gz",
    "/usr/share/man/man1/berth-run.1.gz",
    "/usr/share/man/man8/berthd.8.gz",
    "/usr/share/man/man8/berth-shim.8.gz",
    "/usr/share/lintian/overrides/berth",
    "/usr/share/bash-completion/completions/berth",
    "/usr/share/zsh/vendor-completions/_berth",
    "/usr/share/fish/vendor_completions.d/berth.fish",
    "/usr/share/doc/berth/copyright",
    "/usr/share/doc/berth/changelog.gz",
];

/// The links `systemctl enable` (deb-systemd-helper) makes for the units.
const ENABLE_LINKS: &[&str] = &[
    "/etc/systemd/system/sockets.target.wants/berthd.socket",
    "/etc/systemd/system/multi-user.target.wants/berthd.service",
];

/// Processes running a berth binary from /usr/bin (also once deleted).
fn installed_processes() -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            let exe = exe.display().to_string();
            if exe.starts_with("/usr/bin/berth") {
                found.push(format!("{} {exe}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Purges the package (and what the test made under the default roots)
/// on every exit, failure included.
struct Guard {
    debs: Vec<PathBuf>,
    made_default_roots: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if dpkg_state() != "absent" {
            let _ = Command::new("apt-get")
                .args(["purge", "-y", "-qq", "berth"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .status();
        }
        if self.made_default_roots {
            let _ = std::fs::remove_dir_all("/var/lib/berth");
            let _ = std::fs::remove_dir_all("/run/berth");
        }
        for d in &self.debs {
            let _ = std::fs::remove_file(d);
        }
    }
}

fn package(version: &str) -> PathBuf {
    let target = bin_dir().parent().expect("target dir").to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo");
    let out = run(Command::new(repo.join("scripts/package.sh"))
        .args(["--profile", "debug", "--version", version])
        .env("CARGO_TARGET_DIR", &target));
    let deb = PathBuf::from(out.lines().last().expect("deb path").trim());
    assert!(deb.exists(), "{}", deb.display());
    std::fs::canonicalize(deb).expect("deb path")
}

/// The installed berthd as `berthd.socket` would start it: the socket
/// bound by `systemd-socket-activate`, berthd exec'd (same pid) on the
/// first connection with LISTEN_FDS and NOTIFY_SOCKET.
fn activate(d: &Daemon, notify: &Path) -> Child {
    let _ = std::fs::remove_file(&d.sock);
    let sock = d.sock.display().to_string();
    let child = activate_with(d, "/usr/bin/berthd", &[&sock], "fd://", &[], Some(notify));
    assert!(
        wait_for(Duration::from_secs(10), || d.sock.exists()),
        "systemd-socket-activate did not bind {}",
        d.sock.display()
    );
    child
}

/// `berthd` with `d`'s roots under `systemd-socket-activate`, listening on
/// `listen` (paths or `IP:PORT`), `-H <host>` instead of `d`'s socket.
fn activate_with(
    d: &Daemon,
    berthd: &str,
    listen: &[&str],
    host: &str,
    extra: &[&str],
    notify: Option<&Path>,
) -> Child {
    let mut args = d.args();
    assert_eq!(args[0], "-H");
    args[1] = host.into();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.dir.path().join("berthd.log"))
        .expect("log");
    let mut c = Command::new("systemd-socket-activate");
    for l in listen {
        c.arg("-l").arg(l);
    }
    c.arg("--fdname=berth-api");
    if let Some(n) = notify {
        c.arg("-E").arg(format!("NOTIFY_SOCKET={}", n.display()));
    }
    c.args(["-E", "PATH", "-E", "BERTH_LOG=info"])
        .arg(berthd)
        .args(&args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("systemd-socket-activate")
}

fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn recv_state(rx: &UnixDatagram, want: &str) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match rx.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = m.lines().any(|l| l == want);
                got.push(m);
                if hit {
                    return got;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    panic!("no {want} on NOTIFY_SOCKET; got {got:?}");
}

fn stop(child: &mut Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("berthd did not stop on SIGTERM within 20 s");
}

#[test]
fn package_installs_activates_upgrades_and_purges() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: installing a package needs root");
        return;
    }
    for tool in [
        "dpkg-deb",
        "apt-get",
        "systemd-socket-activate",
        "dpkg-shlibdeps",
    ] {
        if !have(tool) {
            eprintln!("skipped: {tool} is missing (.ci/run installs it)");
            return;
        }
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if dpkg_state() != "absent" {
        eprintln!("skipped: a berth package is installed on this host; not touching it");
        return;
    }
    let defaults_existed = Path::new("/var/lib/berth").exists() || Path::new("/run/berth").exists();
    let mut guard = Guard {
        debs: Vec::new(),
        made_default_roots: false,
    };

    // Build: what the package holds.
    let base = "0.0.1";
    let deb1 = package(&format!("{base}~e2e1"));
    guard.debs.push(deb1.clone());
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb1));
    for want in [
        "Package: berth",
        "libseccomp2",
        "libssl3",
        "nftables",
        "Installed-Size:",
        "postinst",
        "prerm",
        "postrm",
        "md5sums",
    ] {
        assert!(info.contains(want), "no {want} in\n{info}");
    }
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb1));
    for f in FILES {
        assert!(
            contents.contains(&format!(".{f}\n")),
            "no {f} in\n{contents}"
        );
    }

    // Install.
    apt(&["install", "-y", "-qq", &deb1.display().to_string()], &[]);
    assert_eq!(dpkg_state(), format!("installed {base}~e2e1"));
    for f in FILES {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    assert!(group_exists(), "no berth group after install");
    if have("systemd-analyze") {
        run(Command::new("systemd-analyze").args([
            "verify",
            "--man=no",
            "/lib/systemd/system/berthd.socket",
            "/lib/systemd/system/berthd.service",
        ]));
    }
    // deb-systemd-helper enables both units without a running systemd,
    // as debhelper's scripts do.
    for link in ENABLE_LINKS {
        assert!(
            std::fs::read_link(link).is_ok(),
            "{link}: not enabled on install"
        );
    }
    // The scripts' systemd side on a host run by systemd (systemd is not
    // PID 1 here): a first install starts the socket only, an upgrade
    // restarts a running berthd too, prerm stops only on remove, always
    // through deb-systemd-invoke (which honours policy-rc.d).
    let enable = [
        "deb-systemd-helper unmask berthd.socket",
        "deb-systemd-helper --quiet was-enabled berthd.socket",
        "deb-systemd-helper enable berthd.socket",
        "deb-systemd-helper unmask berthd.service",
        "deb-systemd-helper --quiet was-enabled berthd.service",
        "deb-systemd-helper enable berthd.service",
        "systemctl --system daemon-reload",
        "deb-systemd-invoke start berthd.socket",
    ];
    assert_eq!(on_fake_systemd("postinst", &["configure", ""]), enable);
    let mut upgrade = enable.to_vec();
    upgrade.push("deb-systemd-invoke try-restart berthd.service");
    assert_eq!(
        on_fake_systemd("postinst", &["configure", "0.0.1~e2e0"]),
        upgrade
    );
    assert!(on_fake_systemd("prerm", &["upgrade", "0.0.1~e2e2"]).is_empty());
    assert_eq!(
        on_fake_systemd("prerm", &["remove"]),
        ["deb-systemd-invoke stop berthd.socket berthd.service"]
    );
    let version = run(Command::new("/usr/bin/berthd").arg("--version"));
    assert!(version.contains("berthd"), "{version}");

    // Socket activation: nothing but the socket before the first request.
    let d = Daemon::unstarted_own().expect("roots");
    std::fs::write(d.dir.path().join("daemon.json"), "{}").unwrap();
    let notify_path = d.dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = activate(&d, &notify_path);
    std::thread::sleep(Duration::from_millis(300));
    let exe = exe_of(child.id());
    assert!(
        exe.ends_with("systemd-socket-activate"),
        "something runs before the first request: {exe}"
    );
    assert!(
        installed_processes().is_empty(),
        "{:?}",
        installed_processes()
    );
    let v = d.docker_ok(&["version", "--format", "{{.Server.Os}}"]);
    assert_eq!(v.trim(), "linux");
    assert_eq!(
        exe_of(child.id()),
        "/usr/bin/berthd",
        "not started by activation"
    );
    recv_state(&notify, "READY=1");
    let log = d.log_text();
    assert!(log.contains("systemd-activated unix socket"), "{log}");

    // A container that must outlive the upgrade.
    fixtures::import_busybox(&d, "busybox:latest");
    let id = d.docker_ok(&["run", "-d", "--name", "pkg-live", "busybox", "sleep", "600"]);
    let id = id.trim().to_string();
    let pid_before = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", &id]);

    // Upgrade: a newer package over the running daemon; postinst would
    // `systemctl try-restart berthd` on a systemd host, the test does it.
    let deb2 = package(&format!("{base}~e2e2"));
    guard.debs.push(deb2.clone());
    apt(&["install", "-y", "-qq", &deb2.display().to_string()], &[]);
    assert_eq!(dpkg_state(), format!("installed {base}~e2e2"));
    stop(&mut child);
    recv_state(&notify, "STOPPING=1");
    let mut child = activate(&d, &notify_path);
    let state = d.docker_ok(&["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", &id]);
    assert_eq!(
        state.trim(),
        format!("true {}", pid_before.trim()),
        "the container did not survive the upgrade"
    );
    recv_state(&notify, "READY=1");
    d.docker_ok(&["rm", "-f", &id]);
    stop(&mut child);
    drop(d);

    // Remove: binaries and units go, the group stays until purge.
    if !defaults_existed {
        std::fs::create_dir_all("/var/lib/berth/volumes").unwrap();
        std::fs::write("/var/lib/berth/volumes/keep", "data").unwrap();
        std::fs::create_dir_all("/run/berth").unwrap();
        guard.made_default_roots = true;
    }
    apt(&["remove", "-y", "-qq", "berth"], &[]);
    assert!(dpkg_state().starts_with("config-files"), "{}", dpkg_state());
    for f in FILES {
        assert!(!Path::new(f).exists(), "{f} left after remove");
    }
    assert!(group_exists(), "remove took the group (purge does)");
    // As debhelper: the enable links stay until purge, the units masked.
    for unit in ["berthd.socket", "berthd.service"] {
        let mask = std::fs::read_link(format!("/etc/systemd/system/{unit}"));
        assert_eq!(
            mask.ok(),
            Some(PathBuf::from("/dev/null")),
            "{unit} not masked on remove"
        );
    }
    assert!(
        installed_processes().is_empty(),
        "{:?}",
        installed_processes()
    );

    // Purge: group and /etc/berth go; data stays unless asked.
    apt(&["purge", "-y", "-qq", "berth"], &[]);
    assert_eq!(dpkg_state(), "absent");
    assert!(!group_exists(), "the berth group outlived the purge");
    assert!(
        !Path::new("/etc/berth").exists(),
        "/etc/berth outlived the purge"
    );
    // Purge undoes enable and mask, and deb-systemd-helper's records.
    let mut left: Vec<String> = ENABLE_LINKS.iter().map(|l| l.to_string()).collect();
    for unit in ["berthd.socket", "berthd.service"] {
        left.push(format!("/etc/systemd/system/{unit}"));
        left.push(format!(
            "/var/lib/systemd/deb-systemd-helper-enabled/{unit}.dsh-also"
        ));
        left.push(format!("/var/lib/systemd/deb-systemd-helper-masked/{unit}"));
    }
    left.retain(|p| std::fs::symlink_metadata(p).is_ok());
    assert!(left.is_empty(), "left after purge: {left:?}");
    if !defaults_existed {
        assert!(
            Path::new("/var/lib/berth/volumes/keep").exists(),
            "purge removed data without BERTH_PURGE_DATA=yes"
        );
        // Asked: install again, purge with BERTH_PURGE_DATA=yes.
        apt(&["install", "-y", "-qq", &deb2.display().to_string()], &[]);
        apt(
            &["purge", "-y", "-qq", "berth"],
            &[("BERTH_PURGE_DATA", "yes")],
        );
        assert_eq!(dpkg_state(), "absent");
        assert!(
            !Path::new("/var/lib/berth").exists(),
            "BERTH_PURGE_DATA=yes kept the data"
        );
        assert!(
            !Path::new("/run/berth").exists(),
            "BERTH_PURGE_DATA=yes kept /run/berth"
        );
        guard.made_default_roots = false;
    }
    assert!(
        installed_processes().is_empty(),
        "{:?}",
        installed_processes()
    );
}

/// Runs an installed maintainer script as on a systemd host: in a mount
/// namespace of its own, `/run` is a fresh tmpfs holding
/// `/run/systemd/system`, and `systemctl`, `deb-systemd-helper` and
/// `deb-systemd-invoke` are stand-ins that record their arguments (and
/// succeed). Returns the calls, one `tool args` a line.
fn on_fake_systemd(script: &str, args: &[&str]) -> Vec<String> {
    let dir = scratch();
    let log = dir.path().join("calls");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["systemctl", "deb-systemd-helper", "deb-systemd-invoke"] {
        let path = bin.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{tool} $*\" >>\"$CALLS\"\n"),
        )
        .unwrap();
        run(Command::new("chmod").arg("755").arg(&path));
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/systemd/system; exec sh \"$0\" \"$@\"")
        .arg(format!("/var/lib/dpkg/info/berth.{script}"))
        .args(args)
        .env("PATH", path)
        .env("CALLS", &log));
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits for the activated process to exit; its status and the log.
fn exit_of(mut child: Child, d: &Daemon) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return (st.success(), d.log_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("berthd did not exit:\n{}", d.log_text());
}

/// `fd://N` serves fd N only and closes the others; an activated TCP
/// socket follows the `tcp://` TLS rule; dockerd's errors for a missing
/// fd and for no activation at all. Runs the built berthd (no package).
#[test]
fn fd_hosts_take_activated_unix_and_tcp_sockets() {
    if unsafe { libc::geteuid() } != 0 || !tools(&["systemd-socket-activate"]) {
        return;
    }
    let berthd = bin("berthd").display().to_string();

    // fd://4 of two unix sockets: the second is served, the first closed.
    let d = Daemon::unstarted_own().expect("roots");
    std::fs::write(d.dir.path().join("daemon.json"), "{}").unwrap();
    let first = d.dir.path().join("first.sock");
    let (a, b) = (first.display().to_string(), d.sock.display().to_string());
    let mut child = activate_with(&d, &berthd, &[&a, &b], "fd://4", &[], None);
    assert!(wait_for(Duration::from_secs(10), || d.sock.exists()));
    let v = d.docker_ok(&["version", "--format", "{{.Server.Os}}"]);
    assert_eq!(v.trim(), "linux");
    let refused = Command::new("docker")
        .args(["-H", &format!("unix://{a}"), "version"])
        .env("DOCKER_CONFIG", &d.docker_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success(), "fd 3 was served too");
    stop(&mut child);
    assert!(d.sock.exists(), "berthd removed systemd's socket file");

    // fd://5 of one socket: dockerd's error.
    let _ = std::fs::remove_file(&d.sock);
    let child = activate_with(&d, &berthd, &[&b], "fd://5", &[], None);
    assert!(wait_for(Duration::from_secs(10), || d.sock.exists()));
    let _ = raw_request(&d.sock, "GET", "/_ping", None);
    let (ok, log) = exit_of(child, &d);
    assert!(
        !ok && log.contains("too few socket activated files passed in by systemd"),
        "{log}"
    );

    // A TCP socket without TLS is refused as tcp:// is; --insecure-tcp serves it.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = activate_with(&d, &berthd, &[&addr], "fd://", &[], None);
    assert!(wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).is_ok()
    }));
    let (ok, log) = exit_of(child, &d);
    assert!(
        !ok && log.contains("refusing to serve systemd-activated tcp://"),
        "{log}"
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = activate_with(&d, &berthd, &[&addr], "fd://", &["--insecure-tcp"], None);
    let v = Command::new("docker")
        .args([
            "-H",
            &format!("tcp://{addr}"),
            "version",
            "--format",
            "{{.Server.Os}}",
        ])
        .env("DOCKER_CONFIG", &d.docker_config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&v).trim(), "linux", "{}", stderr(&v));
    let log = d.log_text();
    assert!(log.contains("systemd-activated tcp socket"), "{log}");
    // The journal gets plain text.
    assert!(!log.contains('\u{1b}'), "colour codes in the log: {log}");
    stop(&mut child);

    // No activation at all.
    let out = Command::new(&berthd)
        .args(d.args().iter().skip(2))
        .args(["-H", "fd://"])
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no sockets found via socket activation"),
        "{}",
        stderr(&out)
    );
}

/// The package tests one at a time: the first installs berth on this
/// host, whose root is the lower layer of the second's machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A systemd booted as PID 1 by `systemd-nspawn` from this host's own
/// root under a tmpfs overlay: its own mount, PID, network (loopback
/// only), IPC, UTS and cgroup namespaces; writes land in the overlay. The
/// launcher runs in a mount namespace of its own (the overlay, and a
/// tmpfs on `/run` for nspawn's lock files, vanish with it) and in a
/// cgroup of its own under its present one in every hierarchy, so that
/// everything the machine makes nests there and goes with it.
struct Machine {
    nspawn: Child,
    leader: u32,
    cgroups: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

/// This process's cgroup directory in every mounted hierarchy.
fn own_cgroups() -> Vec<PathBuf> {
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut dirs = Vec::new();
    for m in mounts.lines() {
        // id parent maj:min root mountpoint opts ... - fstype source superopts
        let Some((left, right)) = m.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 || l[3] != "/" {
            continue;
        }
        let key = match r[0] {
            "cgroup2" => String::new(),
            "cgroup" => {
                // The superblock options name the hierarchy's controllers.
                let ctl: Vec<&str> = r[2]
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                    .collect();
                ctl.join(",")
            }
            _ => continue,
        };
        let path = mine.lines().find_map(|c| {
            let mut f = c.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            let mut a: Vec<&str> = ctl.split(',').collect();
            let mut b: Vec<&str> = key.split(',').filter(|s| !s.is_empty()).collect();
            a.sort_unstable();
            b.sort_unstable();
            (a == b || (ctl.is_empty() && key.is_empty())).then(|| path.to_string())
        });
        if let Some(p) = path {
            dirs.push(PathBuf::from(l[4]).join(p.trim_start_matches('/')));
        }
    }
    dirs
}

impl Machine {
    fn boot(deb: &Path, image: &Path) -> Machine {
        let dir = scratch();
        let name = format!("berth-e2e-nspawn-{}", random_hex());
        let mut cgroups = Vec::new();
        for parent in own_cgroups() {
            let cg = parent.join(&name);
            std::fs::create_dir(&cg).unwrap_or_else(|e| panic!("{}: {e}", cg.display()));
            // A v1 cpuset cgroup takes no process until it has CPUs and
            // memory nodes: its parent's.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(parent.join(f)) {
                    std::fs::write(cg.join(f), v.trim()).expect(f);
                }
            }
            cgroups.push(cg);
        }
        let procs: Vec<String> = cgroups
            .iter()
            .map(|c| c.join("cgroup.procs").display().to_string())
            .collect();
        let log = std::fs::File::create(dir.path().join("nspawn.log")).expect("log");
        let script = r#"set -e
for f in $BERTH_CGROUP_PROCS; do echo $$ >"$f"; done
mount -t tmpfs -o mode=0755 tmpfs /run
d=$0
mount -t tmpfs -o mode=0755 tmpfs "$d"
mkdir "$d/upper" "$d/work" "$d/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$d/root"
exec systemd-nspawn --quiet --register=no --keep-unit --private-network \
  --console=passive -D "$d/root" "$@""#;
        let overlay = dir.path().join("machine");
        std::fs::create_dir(&overlay).unwrap();
        let nspawn = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script])
            .arg(&overlay)
            // overlay2 cannot have the machine's overlay as its upper layer.
            .arg("--tmpfs=/var/lib/berth")
            .arg(format!("--bind-ro={}:/root/berth.deb", deb.display()))
            .arg(format!("--bind-ro={}:/root/busybox.tar", image.display()))
            .arg("--boot")
            // Only the early boot: journald, tmpfiles, no host services.
            .arg("systemd.unit=sysinit.target")
            .env("BERTH_CGROUP_PROCS", procs.join(" "))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("unshare");
        let mut m = Machine {
            nspawn,
            leader: 0,
            cgroups,
            dir,
        };
        // The leader is nspawn's child systemd (unshare and sh exec'd).
        let pid = m.nspawn.id();
        let found = wait_for(Duration::from_secs(20), || {
            let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for k in kids.split_whitespace() {
                let comm = std::fs::read_to_string(format!("/proc/{k}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    m.leader = k.parse().unwrap_or(0);
                    return true;
                }
            }
            false
        });
        assert!(found, "no systemd in the machine: {}", m.log());
        // Until systemd has booted (its private socket answers).
        let mut state = String::new();
        let booted = wait_for_polling(Duration::from_millis(200), Duration::from_secs(30), || {
            let out = m.run("systemctl is-system-running");
            state = format!("{}{}", stdout(&out), stderr(&out));
            matches!(stdout(&out).trim(), "running" | "degraded")
        });
        assert!(
            booted,
            "the machine did not boot: {state}\n{}\n{}",
            stdout(&m.run("systemctl --failed --no-pager")),
            m.log()
        );
        m
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nspawn.log")).unwrap_or_default()
    }

    /// A shell command in the machine, as its root; bounded in time.
    fn run(&self, script: &str) -> Output {
        Command::new("timeout")
            .arg("30")
            .args(["nsenter", "-t", &self.leader.to_string(), "-a"])
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    fn sh(&self, script: &str) -> String {
        let out = self.run(script);
        assert!(
            out.status.success(),
            "in the machine: {script}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn unit(&self, prop: &str) -> String {
        self.sh(&format!("systemctl show berthd.service -p {prop} --value"))
            .trim()
            .to_string()
    }

    /// Powers the machine off and waits for nspawn; kills it if it hangs.
    fn stop(&mut self) -> bool {
        if let Ok(Some(_)) = self.nspawn.try_wait() {
            return true;
        }
        let _ = self.run("systemctl poweroff --no-block");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Killing nspawn would orphan the machine: its PID 1 goes first,
        // and with it every process of its PID namespace.
        // SAFETY: kill(2) has no memory effects. `leader` is the machine's
        // PID 1, a child of nspawn, which was still running a moment ago
        // (try_wait above), so the pid has not been reused.
        unsafe { libc::kill(self.leader as i32, libc::SIGKILL) };
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        false
    }

    /// Removes the machine's cgroups (deepest first); what is left.
    fn remove_cgroups(&self) -> Vec<String> {
        let mut left = Vec::new();
        for cg in &self.cgroups {
            let mut dirs = Vec::new();
            collect_dirs(cg, &mut dirs);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                // A cgroup empties when its last process is reaped.
                let gone = wait_for(Duration::from_secs(5), || {
                    std::fs::remove_dir(&d).is_ok() || !d.exists()
                });
                if !gone {
                    left.push(d.display().to_string());
                }
            }
        }
        left
    }
}

fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    out.push(d.to_path_buf());
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_dirs(&e.path(), out);
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stop();
        self.remove_cgroups();
    }
}

/// The package under a real systemd as PID 1: dpkg installs it in the
/// machine (policy-rc.d first forbidding, then allowing the start),
/// `berthd.socket` listens while berthd is not running, a member of the
/// `berth` group's first request starts berthd.service (Type=notify:
/// active only on READY=1), `systemctl reload` reloads daemon.json,
/// `systemctl stop` leaves the container and its shim running
/// (KillMode=process, live restore) and the next request finds it again,
/// and a `kill -9` of berthd is answered by a restart. The machine, its
/// overlay, cgroups and processes are gone at the end.
#[test]
fn package_runs_under_systemd_as_pid1() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: booting a machine needs root");
        return;
    }
    if !tools(&[
        "systemd-nspawn",
        "dpkg-deb",
        "dpkg-shlibdeps",
        "nsenter",
        "unshare",
        "setpriv",
        "busybox",
    ]) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let version = "0.0.1~e2e3";
    let deb = package(version);
    struct RmDeb(PathBuf);
    impl Drop for RmDeb {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = RmDeb(deb.clone());
    let image = fixtures::busybox_rootfs_tar();

    let mut m = Machine::boot(&deb, &image);
    let cgroups = m.cgroups.clone();
    let leader = m.leader;
    // nspawn mounts a hybrid host's v1 controllers read-only in the
    // machine (systemd there manages name=systemd only); berthd's
    // cgroupfs driver needs them writable. They are this test's own
    // cgroups (the machine's cgroup namespace starts there).
    m.sh("awk '$3 == \"cgroup\" { print $2 }' /proc/self/mounts | \
          while read -r c; do mount -o remount,bind,rw \"$c\"; done");
    // Machine-local settings (the overlay): man-db's trigger is slow,
    // policy-rc.d forbids starting services, berthd keeps containers.
    m.sh("echo 'man-db man-db/auto-update boolean false' | debconf-set-selections; \
          printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
          mkdir -p /etc/berth; echo '{\"live-restore\": true}' >/etc/berth/daemon.json");

    // Install under policy-rc.d's 101: enabled, not started.
    m.sh("dpkg -i /root/berth.deb >/dev/null 2>&1");
    assert_eq!(
        m.sh("systemctl is-enabled berthd.socket berthd.service")
            .trim(),
        "enabled\nenabled"
    );
    assert_eq!(
        m.run("systemctl is-active berthd.socket").status.code(),
        Some(3),
        "policy-rc.d said no, yet the socket started"
    );
    // Allowed: the configure step starts the socket, and only the socket.
    m.sh("rm /usr/sbin/policy-rc.d; dpkg -i /root/berth.deb >/dev/null 2>&1");
    assert_eq!(m.sh("systemctl is-active berthd.socket").trim(), "active");
    assert_eq!(m.unit("ActiveState"), "inactive");
    assert!(
        !m.run("pgrep -x berthd").status.success(),
        "berthd runs before the first request"
    );
    assert_eq!(
        m.sh("stat -c '%A %U %G' /run/berth/berth.sock").trim(),
        "srw-rw---- root berth"
    );

    // The first request, from a member of `berth`, starts the service.
    let as_user = |groups: &str, cmd: &str| {
        m.run(&format!(
            "setpriv --reuid=nobody --regid=nogroup {groups} --reset-env \
             env HOME=/tmp DOCKER_CONFIG=/tmp/docker-{} docker -H unix:///run/berth/berth.sock {cmd}",
            random_hex()
        ))
    };
    let denied = as_user("--clear-groups", "version --format '{{.Server.Os}}'");
    assert!(!denied.status.success(), "a stranger reached berthd");
    assert!(
        stderr(&denied).contains("permission denied"),
        "{}",
        stderr(&denied)
    );
    let v = as_user("--groups=berth", "version --format '{{.Server.Os}}'");
    assert_eq!(stdout(&v).trim(), "linux", "{}", stderr(&v));
    // Type=notify: active/running only once berthd sent READY=1.
    assert_eq!(
        format!("{} {}", m.unit("ActiveState"), m.unit("SubState")),
        "active running"
    );
    assert_eq!(m.unit("Type"), "notify");
    let journal = m.sh("journalctl -u berthd.service --no-pager -o cat");
    assert!(
        journal.contains("systemd-activated unix socket"),
        "{journal}"
    );

    // A container to outlive the stops.
    let docker = "docker -H unix:///run/berth/berth.sock";
    m.sh(&format!(
        "{docker} import /root/busybox.tar busybox:latest >/dev/null"
    ));
    let id = m.sh(&format!("{docker} run -d --name live busybox sleep 600"));
    let id = id.trim().to_string();
    let pid = m.sh(&format!("{docker} inspect -f '{{{{.State.Pid}}}}' {id}"));
    let pid = pid.trim().to_string();

    // Reload: SIGHUP through ExecReload, and the daemon's reload event.
    let since = m.sh("date +%s").trim().to_string();
    m.sh("systemctl reload berthd.service");
    let until = (since.parse::<u64>().unwrap() + 30).to_string();
    let events = m.sh(&format!(
        "timeout 10 {docker} events --since {since} --until {until} --filter type=daemon --format '{{{{.Action}}}}' & \
         p=$!; sleep 1; kill $p 2>/dev/null; wait $p || true"
    ));
    assert!(
        events.lines().any(|l| l == "reload"),
        "no reload event: {events:?}"
    );

    // Stop: berthd goes (STOPPING=1, clean exit), the container and its
    // shim stay (KillMode=process), the socket keeps listening.
    let berthd1 = m.unit("MainPID");
    m.sh("systemctl stop berthd.service");
    assert_eq!(m.unit("ActiveState"), "inactive");
    assert_eq!(m.unit("Result"), "success");
    assert_eq!(m.sh("systemctl is-active berthd.socket").trim(), "active");
    assert!(
        m.run(&format!("kill -0 {pid}")).status.success(),
        "the container died with berthd"
    );
    assert!(
        m.run(&format!("kill -0 {berthd1}")).status.code() != Some(0),
        "berthd outlived its stop"
    );
    let journal = m.sh("journalctl -u berthd.service --no-pager -o cat");
    assert!(journal.contains("SIGTERM: shutting down"), "{journal}");
    assert!(
        journal.contains("remains running after unit stopped"),
        "{journal}"
    );
    // The next request starts berthd again, which finds the container.
    let state = m.sh(&format!(
        "{docker} inspect -f '{{{{.State.Running}}}} {{{{.State.Pid}}}}' {id}"
    ));
    assert_eq!(state.trim(), format!("true {pid}"));
    assert_eq!(m.unit("ActiveState"), "active");

    // kill -9: Restart= brings berthd back (RestartSec=2).
    let berthd2 = m.unit("MainPID");
    assert_ne!(berthd2, berthd1);
    m.sh(&format!("kill -9 {berthd2}"));
    let restarted = wait_for(Duration::from_secs(15), || {
        m.unit("NRestarts") == "1" && m.unit("ActiveState") == "active"
    });
    assert!(
        restarted,
        "no restart after kill -9: {}",
        m.unit("ActiveState")
    );
    let berthd3 = m.unit("MainPID");
    assert!(berthd3 != berthd2 && berthd3 != "0", "{berthd3}");
    let state = m.sh(&format!(
        "{docker} inspect -f '{{{{.State.Running}}}} {{{{.State.Pid}}}}' {id}"
    ));
    assert_eq!(state.trim(), format!("true {pid}"));
    m.sh(&format!("{docker} rm -f {id} >/dev/null"));

    // Power off; nothing of the machine is left on the host.
    assert!(m.stop(), "the machine did not power off:\n{}", m.log());
    let left = m.remove_cgroups();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    assert!(
        !Path::new(&format!("/proc/{leader}")).exists(),
        "the machine's PID 1 outlived it"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let overlay = m.dir.path().display().to_string();
    assert!(!mounts.contains(&overlay), "{overlay} still mounted");
    drop(m);
    for cg in &cgroups {
        assert!(!cg.exists(), "{} left", cg.display());
    }
    eprintln!("machine test took {:?}", t0.elapsed());
}
