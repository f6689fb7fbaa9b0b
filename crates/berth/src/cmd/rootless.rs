//! `berth rootless check|setup`: whether this user can run berthd rootless
//! on this host, each missing piece with the exact fix; `setup` also
//! installs a systemd user unit where a systemd user manager runs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ExitCode;

#[derive(clap::Subcommand)]
pub enum RootlessCmd {
    /// Check this host and user for rootless mode; print what to fix
    Check,
    /// Check, then install a systemd user unit for berthd where systemd runs
    Setup,
}

/// One finding: `Fail` stops rootless mode, `Warn` limits it.
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Finding {
    level: Level,
    what: String,
    fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        what: what.into(),
        fix: None,
    }
}

fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Fail,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

pub fn rootless(c: RootlessCmd) -> anyhow::Result<()> {
    let findings = check();
    let mut failed = false;
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "[ok]     ",
            Level::Warn => "[warning]",
            Level::Fail => "[missing]",
        };
        failed |= matches!(f.level, Level::Fail);
        println!("{tag} {}", f.what);
        if let Some(fix) = &f.fix {
            println!("          fix: {fix}");
        }
    }
    if failed {
        println!("rootless mode cannot start until the [missing] items are fixed");
        return Err(ExitCode(1).into());
    }
    match c {
        RootlessCmd::Check => {
            println!("rootless mode can start: run `berthd` as this user");
            Ok(())
        }
        RootlessCmd::Setup => setup(),
    }
}

fn user() -> (u32, u32, String) {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
            })
        })
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string());
    (uid, gid, name)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn check() -> Vec<Finding> {
    let (uid, _gid, name) = user();
    let mut v = Vec::new();
    if uid == 0 {
        v.push(fail(
            "running as root",
            "run `berth rootless check` as the user who will run berthd",
        ));
        return v;
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let range = text.lines().find_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            let count: u64 = f.get(2)?.parse().ok()?;
            (f.len() == 3 && (f[0] == name || f[0] == uid.to_string()) && count > 0)
                .then(|| (f[1].to_string(), count))
        });
        match range {
            Some((start, count)) if count >= 65536 => {
                v.push(ok(format!("{file}: {name} has {count} ids from {start}")))
            }
            Some((start, count)) => v.push(warn(
                format!("{file}: {name} has only {count} ids from {start}; images with higher uids fail to unpack"),
                format!("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name} (and remove the short range)"),
            )),
            None => v.push(fail(
                format!("{file}: no subordinate ids for {name}"),
                format!("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}"),
            )),
        }
    }
    for bin in ["newuidmap", "newgidmap"] {
        match which(bin) {
            None => v.push(fail(
                format!("{bin} not found"),
                "sudo apt-get install uidmap (Fedora: shadow-utils)",
            )),
            Some(p) => {
                let md = p.metadata();
                let setuid = md
                    .as_ref()
                    .map(|m| m.uid() == 0 && m.permissions().mode() & 0o4000 != 0)
                    .unwrap_or(false);
                let fcaps = Command::new("getcap")
                    .arg(&p)
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cap_setuid"))
                    .unwrap_or(false);
                if setuid || fcaps {
                    v.push(ok(format!("{} is setuid root", p.display())));
                } else {
                    v.push(fail(
                        format!(
                            "{} is neither setuid root nor has file capabilities",
                            p.display()
                        ),
                        format!("sudo chmod u+s {}", p.display()),
                    ));
                }
            }
        }
    }
    let max_ns: u64 = read_trim("/proc/sys/user/max_user_namespaces")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let clone_ok = read_trim("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|s| s == "1");
    let apparmor_ok = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .is_none_or(|s| s == "0");
    let probe = userns_probe();
    match (max_ns > 0 && clone_ok, apparmor_ok, &probe) {
        (false, _, _) => v.push(fail(
            "unprivileged user namespaces are disabled",
            "sudo sysctl -w user.max_user_namespaces=28633 kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/)",
        )),
        (_, false, _) => v.push(fail(
            "AppArmor restricts unprivileged user namespaces",
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for berthd allowing userns",
        )),
        (_, _, Probe::NoUserns(e)) => v.push(fail(
            format!("creating a user namespace failed: {e}"),
            "enable unprivileged user namespaces (kernel CONFIG_USER_NS, sysctls above)",
        )),
        (_, _, Probe::NoOverlay(e)) => v.push(fail(
            format!("overlayfs in a user namespace failed: {e}"),
            "a kernel >= 5.11 mounts overlayfs in a user namespace; otherwise berthd uses the fuse-overlayfs storage driver: sudo apt-get install fuse-overlayfs (and /dev/fuse mode 0666)",
        )),
        (_, _, Probe::Ok) => v.push(ok("user namespaces work, and overlayfs (userxattr) in one")),
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => v.push(ok("/dev/net/tun is accessible")),
        Err(e) => v.push(fail(
            format!("/dev/net/tun is not accessible: {e}"),
            "sudo chmod 0666 /dev/net/tun (and a udev rule: KERNEL==\"tun\", MODE=\"0666\")",
        )),
    }
    match which("slirp4netns") {
        Some(p) => v.push(ok(format!("{} found", p.display()))),
        None => v.push(fail(
            "slirp4netns not found (the rootless network)",
            "sudo apt-get install slirp4netns",
        )),
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if Path::new(&d).is_dir() => {
            v.push(ok(format!("XDG_RUNTIME_DIR={}", Path::new(&d).display())))
        }
        _ => v.push(fail(
            "$XDG_RUNTIME_DIR is not set to a directory",
            format!("sudo install -d -m 0700 -o {name} /run/user/{uid}; export XDG_RUNTIME_DIR=/run/user/{uid}"),
        )),
    }
    if let Some(start) = read_trim("/proc/sys/net/ipv4/ip_unprivileged_port_start") {
        if start == "0" {
            v.push(ok(
                "every port can be published (ip_unprivileged_port_start=0)",
            ));
        } else {
            v.push(warn(
                format!("ports below {start} cannot be published (net.ipv4.ip_unprivileged_port_start={start})"),
                "sudo sysctl -w net.ipv4.ip_unprivileged_port_start=0 (and in /etc/sysctl.d/)",
            ));
        }
    }
    v.push(cgroup_finding(uid));
    v
}

enum Probe {
    Ok,
    NoUserns(String),
    NoOverlay(String),
}

/// `unshare -Urm` (util-linux) mounting a small overlay with `userxattr`
/// in a scratch directory.
fn userns_probe() -> Probe {
    // A fresh name each time: another user's leftover of the same PID
    // must not fail the probe.
    let dir = match tempfile::Builder::new()
        .prefix("berth-probe-")
        .tempdir_in(std::env::temp_dir())
    {
        Ok(d) => d,
        Err(e) => return Probe::NoUserns(format!("making a scratch directory: {e}")),
    };
    let probe = probe_in(dir.path());
    // overlayfs leaves its `work/work` with mode 000, which the user
    // cannot list (and so not remove) until it is opened up again.
    let _ = std::fs::set_permissions(
        dir.path().join("w/work"),
        std::fs::Permissions::from_mode(0o700),
    );
    drop(dir);
    probe
}

fn probe_in(dir: &Path) -> Probe {
    for d in ["l", "u", "w", "m"] {
        let _ = std::fs::create_dir(dir.join(d));
    }
    let run = |script: &str| {
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
    };
    match run("true") {
        Err(e) => return Probe::NoUserns(format!("running unshare: {e}")),
        Ok(o) if !o.status.success() => {
            return Probe::NoUserns(String::from_utf8_lossy(&o.stderr).trim().to_string())
        }
        Ok(_) => {}
    }
    match run("mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w,userxattr m") {
        Ok(o) if o.status.success() => Probe::Ok,
        Ok(o) => Probe::NoOverlay(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Probe::NoOverlay(e.to_string()),
    }
}

fn fs_magic(p: &str) -> Option<i64> {
    let c = std::ffi::CString::new(p).ok()?;
    // SAFETY: statfs fills the zeroed struct for a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

fn cgroup_finding(uid: u32) -> Finding {
    const CGROUP2: i64 = 0x6367_7270;
    let no_limits =
        "containers run without cgroups: no resource limits, no stats from cgroups, no pause";
    if fs_magic("/sys/fs/cgroup") == Some(CGROUP2) {
        let own = format!(
            "/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
        );
        match read_trim(&own) {
            Some(c) if !c.is_empty() => ok(format!("cgroup v2 with delegated controllers: {c}")),
            _ => warn(
                format!("cgroup v2 without controllers delegated to this user: {no_limits}"),
                "run berthd under systemd --user with Delegate=yes (systemctl edit user@.service)",
            ),
        }
    } else {
        warn(
            format!("cgroup v1 (or hybrid): {no_limits}"),
            "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2) and systemd",
        )
    }
}

const UNIT: &str = "[Unit]
Description=berth rootless daemon
Documentation=https://github.com/berth/berth

[Service]
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=BERTHD
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutSec=0
RestartSec=2
Restart=always
Delegate=yes
Type=simple
KillMode=mixed

[Install]
WantedBy=default.target
";

fn setup() -> anyhow::Result<()> {
    let berthd = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("berthd")))
        .filter(|p| p.is_file())
        .or_else(|| which("berthd"))
        .unwrap_or_else(|| PathBuf::from("berthd"));
    let run = std::env::var("XDG_RUNTIME_DIR").unwrap_or_default();
    let user_manager = Command::new("systemctl")
        .args(["--user", "show-environment"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !user_manager {
        println!(
            "systemctl --user does not work here (no systemd user manager): no unit installed"
        );
        println!("start the daemon by hand:  {} &", berthd.display());
    } else {
        let home = std::env::var("HOME").unwrap_or_default();
        let config = std::env::var("XDG_CONFIG_HOME").unwrap_or_else(|_| format!("{home}/.config"));
        let dir = Path::new(&config).join("systemd/user");
        std::fs::create_dir_all(&dir)?;
        let unit = dir.join("berthd.service");
        std::fs::write(&unit, UNIT.replace("BERTHD", &berthd.display().to_string()))?;
        println!("installed {}", unit.display());
        let _ = Command::new("systemctl")
            .args(["--user", "daemon-reload"])
            .status();
        println!("start it:  systemctl --user enable --now berthd");
    }
    println!("then:  export DOCKER_HOST=unix://{run}/berth.sock");
    Ok(())
}
