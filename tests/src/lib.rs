//! The end-to-end harness: every test starts its own `berthd` on a private
//! socket, data root and exec root, drives it with the real docker CLI (or
//! bollard, or raw HTTP), and cleans up what it made before stopping it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use anyhow::Result;

pub mod cli;
pub mod fixtures;
pub mod host;
pub mod http;
pub mod inspect;
pub mod net;
pub mod plugins;
pub mod pty;
pub mod rootless;
pub mod wait;

pub use http::{body_json, header, raw_request};
pub use net::free_port;
pub use wait::{retry, wait_for, wait_for_polling};

/// Directory holding the workspace binaries (`berthd`, `berth`, `berth-shim`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BERTH_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        p.display()
    );
    p
}

/// A scratch directory under the system temp dir, removed on drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-e2e-")
        .tempdir()
        .expect("tempdir")
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    /// This daemon's default bridge and nftables table (unique per test).
    pub bridge: String,
    pub firewall_table: String,
    pub sock: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub docker_config: PathBuf,
    extra_args: Vec<String>,
    /// Environment variables for the daemon process (beside `BERTH_LOG`).
    extra_env: Vec<(String, String)>,
    /// Started beside another daemon whose bridge and table it shares: that
    /// one removes them.
    shares_host_state: bool,
    /// A network namespace of its own (`/run/netns/<name>`), made for it.
    pub netns: Option<String>,
    /// A mount namespace it runs in (`/proc/<pid>/ns/mnt` of its holder,
    /// a [`Journal`]).
    mount_ns: Option<String>,
    child: Option<Child>,
    log: PathBuf,
    /// Run by this unprivileged user (`Daemon::start_rootless`).
    rootless: Option<rootless::User>,
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(&[]).expect("berthd starts")
    }

    pub fn start_with(args: &[&str]) -> Result<Self> {
        Self::start_with_env(args, &[])
    }

    /// A daemon with extra command-line arguments and environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let tag = &random_hex()[..8];
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::launch(tag, args, env, None)
    }

    /// A daemon whose directories are known before it starts: `before`
    /// runs first (to start a plugin the daemon must find at start-up, in
    /// its exec root, or to write its `daemon.json`).
    pub fn start_prepared(
        args: &[&str],
        before: impl FnOnce(&Daemon) -> Result<()>,
    ) -> Result<Self> {
        let mut d = Self::unstarted_with(args)?;
        before(&d)?;
        d.spawn()?;
        Ok(d)
    }

    /// A daemon of its own (bridge and table named after a fresh tag),
    /// with `args`, not yet spawned.
    fn unstarted_with(args: &[&str]) -> Result<Self> {
        let tag = &random_hex()[..8];
        Self::unstarted(
            format!("bt{tag}"),
            format!("berth_t{tag}"),
            args.iter().map(|s| s.to_string()).collect(),
            Vec::new(),
            None,
        )
    }

    /// The roots, bridge and table of a daemon that the test starts its own
    /// way (e.g. an installed berthd under `systemd-socket-activate`, with
    /// `args()`); dropping it still cleans up what that daemon left.
    pub fn unstarted_own() -> Result<Self> {
        let tag = &random_hex()[..8];
        Self::unstarted(
            format!("bt{tag}"),
            format!("berth_t{tag}"),
            Vec::new(),
            Vec::new(),
            None,
        )
    }

    /// A second daemon with a fresh data root (and socket, exec root) that
    /// shares `other`'s bridge, firewall table and address pool: a new user
    /// starting berth beside what an earlier one left on the host.
    pub fn start_beside(other: &Daemon) -> Result<Self> {
        let mut d = Self::unstarted(
            other.bridge.clone(),
            other.firewall_table.clone(),
            other.extra_args.clone(),
            other.extra_env.clone(),
            other.netns.clone(),
        )?;
        d.shares_host_state = true;
        d.spawn()?;
        Ok(d)
    }

    /// A daemon in a network namespace of its own: what it does to links,
    /// addresses and firewall rules stays there (for input that may ask
    /// for anything, such as the API fuzzer's).
    pub fn start_in_netns(args: &[&str]) -> Result<Self> {
        let tag = &random_hex()[..8];
        let ns = format!("bn{tag}");
        let ok = Command::new("ip")
            .args(["netns", "add", &ns])
            .status()?
            .success()
            && Command::new("ip")
                .args(["-n", &ns, "link", "set", "lo", "up"])
                .status()?
                .success();
        anyhow::ensure!(ok, "could not create network namespace {ns}");
        Self::launch(tag, args, Vec::new(), Some(ns))
    }

    /// A daemon in the mount namespace of `journal` (its journald, or
    /// none), with `busybox:latest` imported.
    pub fn start_in_journal(journal: &Journal, args: &[&str]) -> Result<Self> {
        let mut d = Self::unstarted_with(args)?;
        d.mount_ns = Some(journal.mount_ns());
        d.spawn()?;
        fixtures::import_busybox(&d, "busybox:latest");
        Ok(d)
    }

    /// A daemon of its own (bridge and table named after `tag`), started.
    fn launch(
        tag: &str,
        args: &[&str],
        env: Vec<(String, String)>,
        netns: Option<String>,
    ) -> Result<Self> {
        let mut d = Self::unstarted(
            format!("bt{tag}"),
            format!("berth_t{tag}"),
            args.iter().map(|s| s.to_string()).collect(),
            env,
            netns,
        )?;
        d.spawn()?;
        Ok(d)
    }

    /// The roots of a new daemon in a scratch directory, not yet started.
    fn unstarted(
        bridge: String,
        firewall_table: String,
        extra_args: Vec<String>,
        extra_env: Vec<(String, String)>,
        netns: Option<String>,
    ) -> Result<Self> {
        let dir = scratch();
        let root = dir.path().to_path_buf();
        let docker_config = root.join("docker-config");
        std::fs::create_dir_all(&docker_config)?;
        Ok(Daemon {
            bridge,
            firewall_table,
            sock: root.join("berth.sock"),
            data_root: root.join("data"),
            exec_root: root.join("exec"),
            docker_config,
            extra_args,
            extra_env,
            shares_host_state: false,
            netns,
            mount_ns: None,
            child: None,
            log: root.join("berthd.log"),
            rootless: None,
            dir,
        })
    }

    /// berthd, entered into the daemon's network namespace if it has one
    /// (nsenter execs it: the child is berthd itself).
    fn berthd_command(&self) -> Command {
        if let Some(u) = &self.rootless {
            return u.command(bin("berthd"));
        }
        if self.netns.is_none() && self.mount_ns.is_none() {
            return Command::new(bin("berthd"));
        }
        let mut c = Command::new("nsenter");
        if let Some(ns) = &self.netns {
            c.arg(format!("--net=/run/netns/{ns}"));
        }
        if let Some(m) = &self.mount_ns {
            c.arg(format!("--mount={m}"));
        }
        c.arg("--").arg(bin("berthd"));
        c
    }

    /// The command line this daemon runs with (for a second instance or a restart).
    pub fn args(&self) -> Vec<String> {
        let mut v = vec![
            "-H".to_string(),
            format!("unix://{}", self.sock.display()),
            "--data-root".into(),
            self.data_root.display().to_string(),
            "--exec-root".into(),
            self.exec_root.display().to_string(),
            "--config-file".into(),
            self.dir.path().join("daemon.json").display().to_string(),
            "--bridge".into(),
            self.bridge.clone(),
            "--firewall-table".into(),
            self.firewall_table.clone(),
        ];
        if !self
            .extra_args
            .iter()
            .any(|a| a == "--default-address-pool")
        {
            // A pool of its own, so parallel daemons do not race for subnets.
            let n = 64 + (u32::from_str_radix(&self.bridge[2..6], 16).unwrap_or(0) % 180);
            v.push("--default-address-pool".into());
            v.push(format!("base=10.{n}.0.0/16,size=24"));
        }
        if self.rootless.is_none() && !self.extra_args.iter().any(|a| a == "--cgroup-parent") {
            // Its own cgroups, so that what it leaves is counted exactly.
            v.push("--cgroup-parent".into());
            v.push(self.cgroup_parent());
        }
        v.extend(self.extra_args.iter().cloned());
        v
    }

    fn spawn(&mut self) -> Result<()> {
        let cfg = self.dir.path().join("daemon.json");
        if !cfg.exists() {
            std::fs::write(&cfg, "{}")?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .berthd_command()
            .args(self.args())
            .env(
                "BERTH_LOG",
                std::env::var("BERTH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    anyhow::bail!("berthd exited early ({st}):\n{}", self.log_text());
                }
            }
            // `/_ping` answers while the daemon still starts (networks,
            // reconciliation, live restore); any other request waits for
            // the start-up, so an answer to `/version` (whatever its
            // status: an authorization plugin may refuse it) means ready.
            if let Ok((200, _, _)) = raw_request(&self.sock, "GET", "/_ping", None) {
                if raw_request(&self.sock, "GET", "/version", None).is_ok() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!(
            "berthd did not answer /_ping in {limit:?}:\n{}",
            self.log_text()
        )
    }

    /// The parent of this daemon's container cgroups (one per bridge).
    pub fn cgroup_parent(&self) -> String {
        format!("/berth-{}", self.bridge)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// The real docker CLI, pointed at this daemon.
    pub fn docker_cmd(&self) -> Command {
        let mut c = match &self.rootless {
            Some(u) => u.command("docker"),
            None => Command::new("docker"),
        };
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CLI_HINTS", "false")
            .stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd()
            .args(args)
            .output()
            .expect("running docker")
    }

    /// Runs docker and asserts success; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log tail:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            tail(&self.log_text(), 40)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// berth's own CLI, pointed at this daemon.
    pub fn berth_cmd(&self) -> Command {
        let mut c = match &self.rootless {
            Some(u) => u.command(bin("berth")),
            None => Command::new(bin("berth")),
        };
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.docker_config)
            .stdin(Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_cmd().args(args).output().expect("running berth")
    }

    pub fn bollard(&self) -> bollard::Docker {
        bollard::Docker::connect_with_unix(
            &self.sock.display().to_string(),
            60,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("bollard client")
    }

    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String, Vec<u8>) {
        raw_request(&self.sock, method, path, body).expect("raw request")
    }

    /// Kills the daemon with SIGKILL, leaving its containers running.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and returns how long it took to exit.
    pub fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        start.elapsed()
    }

    /// Starts the daemon process on the same roots without waiting for it
    /// to answer (to kill it during its start-up).
    pub fn spawn_only(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.terminate();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .berthd_command()
            .args(self.args())
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts the daemon again on the same roots (after `kill9` or `terminate`).
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.terminate();
        }
        self.spawn()
    }

    /// Removes every container through the API while the daemon is up.
    fn remove_containers(&self) {
        let Ok((200, _, body)) = raw_request(&self.sock, "GET", "/containers/json?all=1", None)
        else {
            return;
        };
        let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) else {
            return;
        };
        for c in list {
            if let Some(id) = c.get("Id").and_then(|v| v.as_str()) {
                let _ = raw_request(
                    &self.sock,
                    "DELETE",
                    &format!("/containers/{id}?force=1&v=1"),
                    None,
                );
            }
        }
    }

    /// Removes user-defined networks through the API while the daemon is up.
    fn remove_networks(&self) {
        let Ok((200, _, body)) = raw_request(&self.sock, "GET", "/networks", None) else {
            return;
        };
        let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) else {
            return;
        };
        for n in list {
            let builtin = ["bridge", "host", "none"].contains(&n["Name"].as_str().unwrap_or(""));
            if let (false, Some(id)) = (builtin, n["Id"].as_str()) {
                let _ = raw_request(&self.sock, "DELETE", &format!("/networks/{id}"), None);
            }
        }
    }

    /// The bridges berthd marked (ifalias) as this daemon's own.
    pub fn owned_bridges(&self) -> Vec<String> {
        let Ok(out) = Command::new("ip")
            .args(["-j", "link", "show", "type", "bridge"])
            .output()
        else {
            return Vec::new();
        };
        let owner = format!("berth:{}", self.firewall_table);
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap_or_default()
            .iter()
            .filter(|l| l["ifalias"].as_str() == Some(owner.as_str()))
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// Deletes this daemon's bridges (the default one and any it marked as
    /// its own) and nftables table.
    fn remove_host_network_state(&self) {
        let mut bridges = self.owned_bridges();
        bridges.push(self.bridge.clone());
        for b in bridges {
            let _ = Command::new("ip")
                .args(["link", "del", &b])
                .stderr(Stdio::null())
                .status();
        }
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &self.firewall_table])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Kills processes left behind under our roots (shims and their
    /// containers), e.g. after a test killed the daemon and failed.
    fn kill_leftovers(&self) {
        let roots = [
            self.exec_root.display().to_string(),
            self.data_root.display().to_string(),
        ];
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return;
        };
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd);
            if roots.iter().any(|r| cmd.contains(r.as_str())) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Unmounts anything still mounted under our roots, deepest first.
    fn unmount_leftovers(&self) {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let root = self.dir.path().display().to_string();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let c = std::ffi::CString::new(p).unwrap_or_default();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_containers();
            self.remove_networks();
            self.terminate();
        }
        self.kill_leftovers();
        if self.rootless.is_some() {
            // Its mounts, links and rules live in the holder's namespaces,
            // which go with it.
            self.kill_rootless_helpers();
        } else {
            self.unmount_leftovers();
        }
        if !self.shares_host_state && self.rootless.is_none() {
            self.remove_host_network_state();
            host::remove_cgroups(&self.cgroup_parent());
            if let Some(ns) = &self.netns {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
        if std::thread::panicking() {
            eprintln!("---- berthd log ----\n{}", tail(&self.log_text(), 80));
        }
    }
}

pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits for a child with a deadline (killing it on expiry), collecting
/// its output.
pub fn finish(mut c: Child, limit: Duration) -> Output {
    let mut out = c.stdout.take();
    let mut err = c.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut b);
        }
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut b);
        }
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = c.try_wait().expect("try_wait") {
            break Some(st);
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (o, e) = (
        t_out.join().unwrap_or_default(),
        t_err.join().unwrap_or_default(),
    );
    let Some(status) = status else {
        panic!(
            "command timed out after {limit:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&e)
        );
    };
    Output {
        status,
        stdout: o,
        stderr: e,
    }
}

/// A daemon of its own with the test image `busybox:latest` imported.
pub fn daemon() -> Daemon {
    let d = Daemon::start();
    fixtures::import_busybox(&d, "busybox:latest");
    d
}

/// A plain registry (Debian's `docker-registry`) on a free loopback port,
/// stopped on drop.
pub struct LocalRegistry {
    pub port: u16,
    child: Child,
}

impl LocalRegistry {
    /// Storage under `dir`; `None` when `docker-registry` is not there or
    /// does not come up.
    pub fn start(dir: &Path) -> Option<Self> {
        Self::start_with_auth(dir, None)
    }

    /// As `start`, asking for the users of a bcrypt `htpasswd` file.
    pub fn start_with_auth(dir: &Path, htpasswd: Option<&Path>) -> Option<Self> {
        let port = net::try_free_port()?;
        let cfg = dir.join("registry.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("registry").display()
        );
        if let Some(h) = htpasswd {
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                h.display()
            ));
        }
        std::fs::write(&cfg, text).ok()?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let r = LocalRegistry { port, child };
        wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .then_some(r)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private mount namespace, held by a `sleep`, whose `/run/systemd` and
/// `/run/log` (and `/var/log/journal`, if the host has one) are fresh
/// tmpfs, and, if asked, a real `systemd-journald` running in it (volatile
/// storage, no kernel messages): a journal of the test's own, the host's
/// untouched. A daemon started with [`Daemon::start_in_journal`] logs
/// there. Dropping it kills journald and the holder, and the namespace
/// goes with its last process (drop the daemon first).
pub struct Journal {
    holder: Child,
    journald: Option<Child>,
}

/// Where Debian and others install journald.
const JOURNALD: &[&str] = &[
    "/lib/systemd/systemd-journald",
    "/usr/lib/systemd/systemd-journald",
];

impl Journal {
    /// `None` (said on stderr) when journald is not installed and `CI` is
    /// not set; with `CI` set that is a failure (`.ci/run` installs
    /// systemd).
    pub fn start(with_journald: bool) -> Option<Self> {
        let journald = JOURNALD.iter().find(|p| Path::new(p).exists());
        if with_journald && journald.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but systemd-journald is not installed"
            );
            eprintln!("systemd-journald is not installed: skipped");
            return None;
        }
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sleep", "900"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let mut j = Journal {
            holder,
            journald: None,
        };
        let own = std::fs::read_link("/proc/self/ns/mnt").ok();
        let ns = j.mount_ns();
        assert!(
            wait::wait_for(Duration::from_secs(10), || std::fs::read_link(&ns).ok()
                != own),
            "unshare made no mount namespace"
        );
        let setup = "set -e
            mount -t tmpfs tmpfs /run/systemd
            mkdir -p /run/log
            mount -t tmpfs tmpfs /run/log
            if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
            mkdir -p /run/systemd/journald.conf.d
            printf '[Journal]\\nStorage=volatile\\nReadKMsg=no\\nForwardToSyslog=no\\nForwardToWall=no\\n' \\
              > /run/systemd/journald.conf.d/berth-test.conf";
        let o = j
            .command("sh")
            .args(["-c", setup])
            .output()
            .expect("nsenter");
        assert!(o.status.success(), "{}", stderr(&o));
        if let Some(path) = journald.filter(|_| with_journald) {
            let child = j
                .command(path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("systemd-journald");
            let socket = format!("/proc/{}/root/run/systemd/journal/socket", child.id());
            j.journald = Some(child);
            assert!(
                wait::wait_for(Duration::from_secs(10), || Path::new(&socket).exists()),
                "systemd-journald made no socket"
            );
        }
        Some(j)
    }

    /// The namespace, for `nsenter --mount=`.
    pub fn mount_ns(&self) -> String {
        format!("/proc/{}/ns/mnt", self.holder.id())
    }

    /// `program` run in the namespace (e.g. `journalctl`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount={}", self.mount_ns()))
            .arg("--")
            .arg(program);
        c
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        for c in self.journald.iter_mut().chain([&mut self.holder]) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
