//! Rootless daemons: berthd run by an unprivileged user (`berthrl`, made
//! once per test run), its docker CLI run as that user too.
//!
//! `Daemon::start_rootless` gives a `Daemon` like any other (its own socket,
//! roots, bridge and table, all under a scratch directory owned by the
//! user); its `docker*` helpers run the CLI as the user, and its teardown
//! also kills the namespace holder and slirp4netns by their pid files.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{Daemon, Result};

/// The test user: name, uid, gid, home, subordinate id start.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// First subordinate uid (and gid): container uid 1 on the host.
    pub subuid: u32,
    pub subgid: u32,
}

impl User {
    pub fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    /// A command run as this user with the environment a login would give
    /// (HOME, XDG_RUNTIME_DIR, a PATH with the sbin directories), no
    /// supplementary groups.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .current_dir("/");
        c
    }
}

const NAME: &str = "berthrl";

/// The rootless test user, made on first use (`useradd`, subordinate ids,
/// `/run/user/<uid>`); later runs reuse it. A file lock keeps parallel
/// test binaries from racing.
pub fn user() -> &'static User {
    static USER: OnceLock<User> = OnceLock::new();
    USER.get_or_init(|| make_user(NAME, true).expect("making the rootless test user"))
}

/// A user without subordinate ids (for the refusals that name the fix).
pub fn user_without_subids() -> &'static User {
    static USER: OnceLock<User> = OnceLock::new();
    USER.get_or_init(|| make_user("berthrl-nosub", false).expect("making a user"))
}

fn make_user(name: &str, subids: bool) -> Result<User> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        // Beside the build's binaries, not on the host's /run.
        .open(crate::bin_dir().join("berth-rootless-users.lock"))?;
    // Held until `lock` drops at the end of this function.
    // SAFETY (test code): flock on a descriptor this function owns.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let exists = Command::new("id")
        .args(["-u", name])
        .output()?
        .status
        .success();
    if !exists {
        // Debian's useradd gives a new user subordinate ids itself (login.defs).
        let st = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .status()?;
        anyhow::ensure!(st.success(), "useradd {name} failed");
    }
    let id = |flag: &str| -> Result<u32> {
        let o = Command::new("id").args([flag, name]).output()?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
    };
    let (uid, gid) = (id("-u")?, id("-g")?);
    let range = |file: &str| -> Option<u32> {
        std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
            let mut f = l.split(':');
            let who = f.next()?;
            let start = f.next()?.parse().ok()?;
            (who == name || who == uid.to_string()).then_some(start)
        })
    };
    if subids && (range("/etc/subuid").is_none() || range("/etc/subgid").is_none()) {
        let st = Command::new("usermod")
            .args([
                "--add-subuids",
                "100000-165535",
                "--add-subgids",
                "100000-165535",
                name,
            ])
            .status()?;
        anyhow::ensure!(st.success(), "usermod --add-subuids for {name} failed");
    }
    if !subids {
        for (file, flag) in [
            ("/etc/subuid", "--del-subuids"),
            ("/etc/subgid", "--del-subgids"),
        ] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for l in text.lines().filter(|l| l.starts_with(&format!("{name}:"))) {
                let f: Vec<&str> = l.split(':').collect();
                if let (Some(s), Some(c)) = (
                    f.get(1).and_then(|s| s.parse::<u64>().ok()),
                    f.get(2).and_then(|s| s.parse::<u64>().ok()),
                ) {
                    let _ = Command::new("usermod")
                        .args([flag, &format!("{s}-{}", s + c - 1), name])
                        .status();
                }
            }
        }
    }
    let run = PathBuf::from(format!("/run/user/{uid}"));
    std::fs::create_dir_all(&run)?;
    nix::unistd::chown(
        &run,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )?;
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let home = PathBuf::from(
        String::from_utf8_lossy(
            &Command::new("sh")
                .args(["-c", &format!("getent passwd {name} | cut -d: -f6")])
                .output()?
                .stdout,
        )
        .trim()
        .to_string(),
    );
    Ok(User {
        name: name.to_string(),
        uid,
        gid,
        home,
        subuid: range("/etc/subuid").unwrap_or(0),
        subgid: range("/etc/subgid").unwrap_or(0),
    })
}

/// `path` and everything under it owned by `u` (a scratch directory the
/// user's daemon works in).
pub fn chown_tree(path: &Path, u: &User) -> Result<()> {
    let st = Command::new("chown")
        .args(["-R", &format!("{}:{}", u.uid, u.gid)])
        .arg(path)
        .status()?;
    anyhow::ensure!(st.success(), "chown -R {}", path.display());
    Ok(())
}

impl Daemon {
    /// A daemon run by the rootless test user (`berthd` with no flag: an
    /// unprivileged euid implies `--rootless`).
    pub fn start_rootless() -> Result<Self> {
        Self::start_rootless_with(&[])
    }

    pub fn start_rootless_with(args: &[&str]) -> Result<Self> {
        let u = user().clone();
        let tag = &crate::random_hex()[..8];
        let mut d = Self::unstarted(
            format!("bt{tag}"),
            format!("berth_t{tag}"),
            args.iter().map(|s| s.to_string()).collect(),
            Vec::new(),
            None,
        )?;
        std::fs::write(d.dir.path().join("daemon.json"), "{}")?;
        chown_tree(d.dir.path(), &u)?;
        d.rootless = Some(u);
        d.spawn()?;
        Ok(d)
    }

    /// The rootless user running this daemon, if it is rootless.
    pub fn rootless_user(&self) -> Option<&User> {
        self.rootless.as_ref()
    }

    /// The pid of the namespace holder (rootless daemons).
    pub fn holder_pid(&self) -> Option<i32> {
        read_pid(&self.exec_root.join("rootless/holder.pid"))
    }

    /// Kills the holder and slirp4netns of a rootless daemon (teardown).
    pub(crate) fn kill_rootless_helpers(&self) {
        let mut pids = Vec::new();
        for f in ["rootless/holder.pid", "rootless/slirp4netns.pid"] {
            if let Some(pid) = read_pid(&self.exec_root.join(f)) {
                // SAFETY (test code): a plain kill of a pid we recorded.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                pids.push(pid);
            }
        }
        // Gone before the scratch directory is removed (bounded).
        crate::wait_for(std::time::Duration::from_secs(5), || {
            pids.iter()
                .all(|p| !Path::new(&format!("/proc/{p}")).exists())
        });
    }
}

fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

impl crate::LocalRegistry {
    /// A registry in a rootless daemon's network namespace, where its
    /// `127.0.0.1:<port>` is (the host's loopback is not reachable from
    /// there, as with rootless Docker). Storage under `dir`.
    pub fn start_in_netns_of(d: &Daemon, dir: &Path) -> Option<Self> {
        let holder = d.holder_pid()?;
        let net = format!("--net=/proc/{holder}/ns/net");
        let port = crate::net::try_free_port()?;
        let cfg = dir.join("registry.yml");
        let text = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("registry").display()
        );
        std::fs::write(&cfg, text).ok()?;
        let child = Command::new("nsenter")
            .args([net.as_str(), "--", "docker-registry", "serve"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let r = crate::LocalRegistry { port, child };
        let url = format!("http://127.0.0.1:{port}/v2/");
        crate::wait_for_polling(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(20),
            || {
                Command::new("nsenter")
                    .args([net.as_str(), "--", "curl", "-sf", "-o", "/dev/null", &url])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            },
        )
        .then_some(r)
    }
}

/// The host uid owning a process (`pid` may carry the CLI's newline).
pub fn host_uid(pid: &str) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
        .unwrap_or_else(|e| panic!("reading /proc/{}/status: {e}", pid.trim()));
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid line")
}
