//! Issue 16: crash consistency. Rounds of concurrent operations through the
//! real docker CLI with berthd killed (SIGKILL) at a random instant in each
//! round; after each restart every acknowledged object must be there and
//! work, and after removing everything nothing may be left on the host.
//!
//! Size: `BERTH_CRASH_ROUNDS` (default 5) rounds of `BERTH_CRASH_OPS`
//! (default 12) operations; `BERTH_CRASH_SEED` replays a run (the seed is
//! printed). The figures of a run are printed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::fixtures::{self, Entry};
use berth_tests::host::is_mountpoint;
use berth_tests::host::{footprint, Footprint};
use berth_tests::*;
use serde_json::Value;

/// A small deterministic generator (xorshift64*): replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn env_num(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A container prints a counter every 50 ms: its log shows any lost line.
const COUNTER: &str = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.05; done";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CState {
    Created,
    Running,
    Stopped,
}

/// What the test believes exists (acknowledged by the daemon).
#[derive(Default, Debug)]
struct Model {
    containers: BTreeMap<String, CState>,
    images: BTreeSet<String>,
    volumes: BTreeSet<String>,
    networks: BTreeSet<String>,
    /// Files copied into containers: (container, path).
    copied: BTreeSet<(String, String)>,
    /// Network connections: (network, container).
    connected: BTreeSet<(String, String)>,
}

#[derive(Debug, Clone)]
enum Op {
    RunDetached(String),
    RunRm,
    Create(String),
    Start(String),
    Stop(String),
    RemoveForce(String),
    Exec(String),
    Copy(String, String),
    Commit(String, String),
    Import(String),
    Load(String),
    Pull,
    Build(String),
    VolumeCreate(String),
    VolumeRemove(String),
    NetworkCreate(String),
    NetworkConnect(String, String),
    NetworkRemove(String),
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::RunDetached(_) => "run -d",
            Op::RunRm => "run --rm",
            Op::Create(_) => "create",
            Op::Start(_) => "start",
            Op::Stop(_) => "stop",
            Op::RemoveForce(_) => "rm -f",
            Op::Exec(_) => "exec",
            Op::Copy(..) => "cp",
            Op::Commit(..) => "commit",
            Op::Import(_) => "import",
            Op::Load(_) => "load",
            Op::Pull => "pull",
            Op::Build(_) => "build",
            Op::VolumeCreate(_) => "volume create",
            Op::VolumeRemove(_) => "volume rm",
            Op::NetworkCreate(_) => "network create",
            Op::NetworkConnect(..) => "network connect",
            Op::NetworkRemove(_) => "network rm",
        }
    }

    /// The container names it touches.
    fn containers(&self) -> Vec<String> {
        match self {
            Op::RunDetached(c)
            | Op::Create(c)
            | Op::Start(c)
            | Op::Stop(c)
            | Op::RemoveForce(c)
            | Op::Exec(c)
            | Op::Copy(c, _)
            | Op::Commit(c, _)
            | Op::NetworkConnect(_, c) => vec![c.clone()],
            _ => vec![],
        }
    }
}

struct Harness {
    d: Daemon,
    rng: Rng,
    seq: usize,
    model: Model,
    registry_image: Option<String>,
    work: tempfile::TempDir,
    /// Figures for the note.
    acknowledged: usize,
    failed: usize,
    /// Acknowledged objects checked after the restarts.
    verified: usize,
    by_kind: BTreeMap<&'static str, (usize, usize)>,
}

impl Harness {
    fn name(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{}", self.seq)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.below(items.len())].clone())
    }

    /// One operation on objects no other operation of the round touches.
    fn choose(&mut self, busy: &mut BTreeSet<String>) -> Op {
        let free = |m: &Model, busy: &BTreeSet<String>, want: &[CState]| -> Vec<String> {
            m.containers
                .iter()
                .filter(|(n, s)| want.contains(s) && !busy.contains(*n))
                .map(|(n, _)| n.clone())
                .collect()
        };
        for _ in 0..20 {
            let running = free(&self.model, busy, &[CState::Running]);
            let any = free(
                &self.model,
                busy,
                &[CState::Created, CState::Running, CState::Stopped],
            );
            let startable = free(&self.model, busy, &[CState::Created, CState::Stopped]);
            let vols: Vec<String> = self
                .model
                .volumes
                .iter()
                .filter(|v| !busy.contains(*v))
                .cloned()
                .collect();
            let nets: Vec<String> = self
                .model
                .networks
                .iter()
                .filter(|n| !busy.contains(*n))
                .cloned()
                .collect();
            let op = match self.rng.below(18) {
                0 | 1 => Op::RunDetached(self.name("c")),
                2 => Op::RunRm,
                3 => Op::Create(self.name("c")),
                4 => self.pick(&startable).map(Op::Start).unwrap_or(Op::RunRm),
                5 => self.pick(&running).map(Op::Stop).unwrap_or(Op::RunRm),
                6 => self.pick(&any).map(Op::RemoveForce).unwrap_or(Op::RunRm),
                7 => self.pick(&running).map(Op::Exec).unwrap_or(Op::RunRm),
                8 => match self.pick(&any) {
                    Some(c) => Op::Copy(c, format!("/cp{}", self.seq)),
                    None => Op::RunRm,
                },
                9 => match self.pick(&any) {
                    Some(c) => {
                        let t = self.name("commit");
                        Op::Commit(c, t)
                    }
                    None => Op::Import(self.name("imp")),
                },
                10 => Op::Import(self.name("imp")),
                11 => Op::Load(self.name("load")),
                12 if self.registry_image.is_some() && !busy.contains("pull") => Op::Pull,
                12 | 13 => Op::Build(self.name("bld")),
                14 => Op::VolumeCreate(self.name("v")),
                15 => self.pick(&vols).map(Op::VolumeRemove).unwrap_or(Op::RunRm),
                16 => Op::NetworkCreate(self.name("n")),
                _ => match (self.pick(&nets), self.pick(&running)) {
                    (Some(n), Some(c)) if self.rng.below(2) == 0 => Op::NetworkConnect(n, c),
                    (Some(n), _) => Op::NetworkRemove(n),
                    _ => Op::NetworkCreate(self.name("n")),
                },
            };
            let objs: Vec<String> = op
                .containers()
                .into_iter()
                .chain(match &op {
                    Op::VolumeRemove(v) => vec![v.clone()],
                    Op::NetworkRemove(n) | Op::NetworkConnect(n, _) => vec![n.clone()],
                    Op::Pull => vec!["pull".into()],
                    _ => vec![],
                })
                .collect();
            if objs.iter().any(|o| busy.contains(o)) {
                continue;
            }
            busy.extend(objs);
            return op;
        }
        Op::RunRm
    }

    fn spawn(&self, op: &Op) -> Child {
        let mut c = self.d.docker_cmd();
        c.env("DOCKER_BUILDKIT", "0");
        match op {
            Op::RunDetached(n) => {
                c.args(["run", "-d", "--name", n, "busybox", "sh", "-c", COUNTER])
            }
            Op::RunRm => c.args(["run", "--rm", "busybox", "echo", "hi"]),
            Op::Create(n) => c.args(["create", "--name", n, "busybox", "sh", "-c", COUNTER]),
            Op::Start(n) => c.args(["start", n]),
            Op::Stop(n) => c.args(["stop", "-t", "1", n]),
            Op::RemoveForce(n) => c.args(["rm", "-f", n]),
            Op::Exec(n) => c.args(["exec", n, "echo", "ok"]),
            Op::Copy(n, path) => {
                let src = self.work.path().join("payload");
                c.args(["cp", &src.display().to_string(), &format!("{n}:{path}")])
            }
            Op::Commit(n, t) => c.args(["commit", n, t]),
            Op::Import(t) => c.args([
                "import",
                &fixtures::busybox_rootfs_tar().display().to_string(),
                t,
            ]),
            Op::Load(t) => {
                let layer = fixtures::layer_tar(&[Entry::File(&format!("{t}.txt"), t.as_bytes())]);
                let (tar, _) =
                    fixtures::docker_archive(&[layer], &[&format!("{t}:latest")], Value::Null);
                let f = self.work.path().join(format!("{t}.tar"));
                std::fs::write(&f, tar).expect("archive");
                c.args(["load", "-q", "-i", &f.display().to_string()])
            }
            Op::Pull => c.args(["pull", "-q", self.registry_image.as_deref().unwrap_or("")]),
            Op::Build(t) => {
                let dir = self.work.path().join(t.as_str());
                std::fs::create_dir_all(&dir).expect("context");
                std::fs::write(
                    dir.join("Dockerfile"),
                    format!("FROM busybox\nRUN echo {t} > /built\n"),
                )
                .expect("Dockerfile");
                c.args(["build", "-q", "-t", t, &dir.display().to_string()])
            }
            Op::VolumeCreate(v) => c.args(["volume", "create", v]),
            Op::VolumeRemove(v) => c.args(["volume", "rm", v]),
            Op::NetworkCreate(n) => c.args(["network", "create", n]),
            Op::NetworkConnect(n, ctr) => c.args(["network", "connect", n, ctr]),
            Op::NetworkRemove(n) => c.args(["network", "rm", n]),
        };
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker runs")
    }

    /// What an acknowledged operation promises.
    fn acknowledge(&mut self, op: &Op) {
        let m = &mut self.model;
        match op {
            Op::RunDetached(n) | Op::Start(n) => {
                m.containers.insert(n.clone(), CState::Running);
            }
            Op::Create(n) => {
                m.containers.insert(n.clone(), CState::Created);
            }
            Op::Stop(n) => {
                m.containers.insert(n.clone(), CState::Stopped);
            }
            Op::RemoveForce(n) => {
                m.containers.remove(n);
                m.copied.retain(|(c, _)| c != n);
                m.connected.retain(|(_, c)| c != n);
            }
            Op::Copy(n, p) => {
                m.copied.insert((n.clone(), p.clone()));
            }
            Op::Commit(_, t) | Op::Import(t) | Op::Load(t) | Op::Build(t) => {
                m.images.insert(t.clone());
            }
            Op::Pull => {
                if let Some(i) = &self.registry_image {
                    m.images.insert(i.clone());
                }
            }
            Op::VolumeCreate(v) => {
                m.volumes.insert(v.clone());
            }
            Op::VolumeRemove(v) => {
                m.volumes.remove(v);
            }
            Op::NetworkCreate(n) => {
                m.networks.insert(n.clone());
            }
            Op::NetworkConnect(n, c) => {
                m.connected.insert((n.clone(), c.clone()));
            }
            Op::NetworkRemove(n) => {
                m.networks.remove(n);
            }
            Op::RunRm | Op::Exec(_) => {}
        }
    }

    fn inspect(&self, what: &str, name: &str) -> Option<Value> {
        let o = self.d.docker(&[what, "inspect", name]);
        if !o.status.success() {
            let e = stderr(&o);
            let l = e.to_lowercase();
            assert!(
                l.contains("no such") || l.contains("not found"),
                "{what} inspect {name} failed otherwise: {e}"
            );
            return None;
        }
        let v: Value = serde_json::from_slice(&o.stdout).expect("inspect JSON");
        Some(v[0].clone())
    }

    fn actual_state(&self, name: &str) -> Option<CState> {
        let v = self.inspect("container", name)?;
        Some(match v["State"]["Status"].as_str().unwrap_or("") {
            "running" | "paused" | "restarting" => CState::Running,
            "created" => CState::Created,
            _ => CState::Stopped,
        })
    }

    /// After a crash: what an unacknowledged operation left is read back
    /// from the daemon (either outcome is allowed); everything else must
    /// be exactly as acknowledged.
    fn verify(&mut self, round: usize, unsure: &[Op]) {
        let unsure_ctrs: BTreeSet<String> = unsure.iter().flat_map(|o| o.containers()).collect();
        for op in unsure {
            match op {
                Op::Commit(_, t) | Op::Import(t) | Op::Load(t) | Op::Build(t)
                    if self.inspect("image", t).is_some() =>
                {
                    self.model.images.insert(t.clone());
                }
                Op::Pull => {
                    if let Some(i) = self.registry_image.clone() {
                        if self.inspect("image", &i).is_some() {
                            self.model.images.insert(i);
                        }
                    }
                }
                Op::VolumeCreate(v) | Op::VolumeRemove(v) => {
                    if self.inspect("volume", v).is_some() {
                        self.model.volumes.insert(v.clone());
                    } else {
                        self.model.volumes.remove(v);
                    }
                }
                Op::NetworkCreate(n) | Op::NetworkRemove(n) => {
                    if self.inspect("network", n).is_some() {
                        self.model.networks.insert(n.clone());
                    } else {
                        self.model.networks.remove(n);
                        self.model.connected.retain(|(x, _)| x != n);
                    }
                }
                Op::NetworkConnect(n, c) => {
                    self.model.connected.remove(&(n.clone(), c.clone()));
                }
                _ => {}
            }
        }
        for c in &unsure_ctrs {
            match self.actual_state(c) {
                Some(s) => {
                    self.model.containers.insert(c.clone(), s);
                }
                None => {
                    self.model.containers.remove(c);
                    self.model.copied.retain(|(x, _)| x != c);
                    self.model.connected.retain(|(_, x)| x != c);
                }
            }
        }
        // Every acknowledged object exists, inspects, and is in its state.
        let m = &self.model;
        self.verified += m.containers.len()
            + m.images.len()
            + m.volumes.len()
            + m.networks.len()
            + m.connected.len()
            + m.copied.len();
        let containers = self.model.containers.clone();
        for (name, want) in &containers {
            let got = self.actual_state(name);
            assert_eq!(
                got,
                Some(*want),
                "round {round}: container {name} should be {want:?}\n{}",
                tail(&self.d.log_text(), 60)
            );
            if *want == CState::Running {
                let o = self.d.docker(&["exec", name, "echo", "ok"]);
                assert_eq!(
                    stdout(&o).trim(),
                    "ok",
                    "round {round}: exec in {name}: {}",
                    stderr(&o)
                );
                self.check_counter_log(round, name);
            }
        }
        for img in &self.model.images {
            assert!(
                self.inspect("image", img).is_some(),
                "round {round}: image {img} lost"
            );
        }
        for v in &self.model.volumes {
            assert!(
                self.inspect("volume", v).is_some(),
                "round {round}: volume {v} lost"
            );
        }
        for n in &self.model.networks {
            assert!(
                self.inspect("network", n).is_some(),
                "round {round}: network {n} lost"
            );
        }
        for (n, c) in &self.model.connected {
            let v = self.inspect("container", c).expect("connected container");
            assert!(
                v["NetworkSettings"]["Networks"].get(n).is_some(),
                "round {round}: {c} lost its connection to {n}"
            );
        }
        for (c, p) in &self.model.copied {
            let o = self.d.docker(&["cp", &format!("{c}:{p}"), "-"]);
            assert!(
                o.status.success(),
                "round {round}: {p} copied into {c} lost: {}",
                stderr(&o)
            );
        }
        // A running container answers attach too.
        if let Some((name, _)) = containers.iter().find(|(_, s)| **s == CState::Running) {
            self.check_attach(round, name);
        }
    }

    /// The counter's log has no gap: each line is the one before plus one,
    /// or 0 where a new start began.
    fn check_counter_log(&self, round: usize, name: &str) {
        let o = self.d.docker(&["logs", name]);
        assert!(o.status.success(), "logs {name}: {}", stderr(&o));
        let mut prev: Option<u64> = None;
        for l in stdout(&o).lines() {
            let Ok(n) = l.trim().parse::<u64>() else {
                panic!("round {round}: {name}: unexpected log line {l:?}");
            };
            if let Some(p) = prev {
                assert!(
                    n == p + 1 || n == 0,
                    "round {round}: {name}: log line {n} follows {p} (lines lost)"
                );
            }
            prev = Some(n);
        }
    }

    fn check_attach(&self, round: usize, name: &str) {
        let mut c = self.d.docker_cmd();
        let mut child = c
            .args(["attach", "--no-stdin", "--sig-proxy=false", name])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("attach");
        let mut out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut b = [0u8; 64];
            let _ = tx.send(out.read(&mut b).unwrap_or(0));
        });
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap_or(0);
        let _ = child.kill();
        let _ = child.wait();
        assert!(got > 0, "round {round}: attach to {name} got no output");
    }

    fn round(&mut self, round: usize, ops: usize) {
        let mut busy = BTreeSet::new();
        let plan: Vec<Op> = (0..ops).map(|_| self.choose(&mut busy)).collect();
        let children: Vec<(Op, Child)> =
            plan.iter().map(|op| (op.clone(), self.spawn(op))).collect();
        let kill_at = Duration::from_millis(50 + self.rng.below(1500) as u64);
        std::thread::sleep(kill_at);
        self.d.kill9();
        let mut unsure = Vec::new();
        for (op, child) in children {
            let o = finish(child, Duration::from_secs(60));
            let e = self.by_kind.entry(op.kind()).or_default();
            if o.status.success() {
                e.0 += 1;
                self.acknowledged += 1;
                self.acknowledge(&op);
            } else {
                e.1 += 1;
                self.failed += 1;
                unsure.push(op);
            }
        }
        self.d.restart().expect("berthd restarts after SIGKILL");
        self.verify(round, &unsure);
    }

    /// Removes every object through the API; each removal must succeed.
    fn remove_everything(&self) {
        let ids = self.d.docker_ok(&["ps", "-aq"]);
        for id in ids.split_whitespace() {
            self.d.docker_ok(&["rm", "-f", id]);
        }
        let nets = self
            .d
            .docker_ok(&["network", "ls", "-q", "--filter", "type=custom"]);
        for n in nets.split_whitespace() {
            self.d.docker_ok(&["network", "rm", n]);
        }
        let vols = self.d.docker_ok(&["volume", "ls", "-q"]);
        for v in vols.split_whitespace() {
            self.d.docker_ok(&["volume", "rm", v]);
        }
        let imgs = self
            .d
            .docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for i in imgs.split_whitespace() {
            if i != "busybox:latest" && !i.contains("<none>") {
                self.d.docker_ok(&["rmi", i]);
            }
        }
        self.d.docker_ok(&["image", "prune", "-f"]);
        self.d.docker_ok(&["builder", "prune", "-af"]);
    }
}

/// Waits until the footprint is back to `before` (the trash is emptied in
/// the background); returns what is left.
fn left_over(d: &Daemon, before: &Footprint) -> Vec<String> {
    let mut left = Vec::new();
    wait_for(Duration::from_secs(15), || {
        left = footprint(d).beyond(before);
        left.is_empty()
    });
    left
}

#[test]
fn crash_rounds_lose_nothing_and_leak_nothing() {
    let rounds = env_num("BERTH_CRASH_ROUNDS", 5) as usize;
    let ops = env_num("BERTH_CRASH_OPS", 12) as usize;
    let seed = env_num(
        "BERTH_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    );
    eprintln!("crash harness: {rounds} rounds x {ops} operations, BERTH_CRASH_SEED={seed}");
    let d = daemon();
    let work = scratch();
    std::fs::write(work.path().join("payload"), "payload\n").expect("payload");
    let reg = LocalRegistry::start(work.path());
    let registry_image = reg.as_ref().map(|r| {
        let img = format!("127.0.0.1:{}/crash/busybox:latest", r.port);
        d.docker_ok(&["tag", "busybox:latest", &img]);
        d.docker_ok(&["push", &img]);
        d.docker_ok(&["rmi", &img]);
        img
    });
    // The compiled seccomp filter is a cache that stays: made before the
    // footprint is taken.
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let before = footprint(&d);
    let mut h = Harness {
        d,
        rng: Rng(seed),
        seq: 0,
        model: Model::default(),
        registry_image,
        work,
        acknowledged: 0,
        failed: 0,
        verified: 0,
        by_kind: BTreeMap::new(),
    };
    let start = Instant::now();
    for r in 0..rounds {
        h.round(r, ops);
    }
    let live = h.model.containers.len();
    h.remove_everything();
    let left = left_over(&h.d, &before);
    eprintln!(
        "crash harness: {rounds} rounds, {} operations acknowledged, {} cut off by the crash, \
         {live} containers at the end; {} acknowledged objects found intact after the restarts; \
         orphaned resources after removing everything: {}; {:.0} s",
        h.acknowledged,
        h.failed,
        h.verified,
        left.len(),
        start.elapsed().as_secs_f64()
    );
    for (k, (ok, cut)) in &h.by_kind {
        eprintln!("  {k:<16} acknowledged {ok:>3}  cut off {cut:>3}");
    }
    assert!(
        left.is_empty(),
        "left on the host after removing everything:\n{}",
        left.join("\n")
    );
    drop(reg);
}

/// The container's shim (`berth-shim run <exec-root>/containers/<id>`).
fn shim_pid(d: &Daemon, id: &str) -> Option<i32> {
    let want = d.exec_root.join("containers").join(id);
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        (args.first() == Some(&&b"berth-shim"[..])
            && args.get(2) == Some(&want.as_os_str().as_encoded_bytes()))
        .then_some(pid)
    })
}

fn state_id(d: &Daemon, name: &str) -> String {
    d.docker_ok(&["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

fn state(d: &Daemon, id: &str) -> Value {
    let v: Value = serde_json::from_str(&d.docker_ok(&["inspect", id])).expect("inspect");
    v[0]["State"].clone()
}

#[test]
fn a_killed_shim_or_init_leaves_an_exited_removable_container() {
    let d = daemon();
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let before = footprint(&d);
    // The shim is killed: the container is reported exited, its
    // processes are stopped, and it can be removed.
    let id = d.docker_ok(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    let shim = shim_pid(&d, id).expect("the container has a shim");
    unsafe { libc::kill(shim, libc::SIGKILL) };
    assert!(
        wait_for(Duration::from_secs(15), || state(&d, id)["Running"]
            == false),
        "still reported running after its shim was killed: {}",
        state(&d, id)
    );
    assert!(
        wait_for(Duration::from_secs(5), || berth_tests::host::cgroup_procs(
            &d.cgroup_parent()
        )
        .is_empty()),
        "the container's processes outlived its shim"
    );
    d.docker_ok(&["rm", "-f", id]);
    // The container's init is killed: exit 137, removable.
    let id = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let id = id.trim();
    let pid = state(&d, id)["Pid"].as_i64().expect("pid") as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(15), || state(&d, id)
        ["Running"]
        == false));
    assert_eq!(state(&d, id)["ExitCode"], 137);
    d.docker_ok(&["rm", id]);
    let left = left_over(&d, &before);
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

/// A process's parent, and whether it is still there (a zombie, reparented
/// and not yet reaped, counts as gone).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?;
    (state != "Z").then(|| f.next()?.parse().ok())?
}

fn args_of(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The shims are forked by the daemon's spawner (`berth-shim spawner`, its
/// child). A spawner killed under a running daemon is replaced, and runs
/// go on meanwhile; a daemon killed takes its spawner with it, and the
/// shims it forked stay and are adopted after the restart.
#[test]
fn the_shim_spawner_goes_with_its_daemon_and_its_shims_stay() {
    let mut d = daemon();
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let before = footprint(&d);
    let first = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let first = first.trim().to_string();
    let shim = shim_pid(&d, &first).expect("the container has a shim");
    let spawner = parent_of(shim).expect("the shim's parent");
    assert_eq!(
        parent_of(spawner),
        d.pid().map(|p| p as i32),
        "the shim's parent {spawner} ({:?}) is not the daemon's child",
        args_of(spawner)
    );
    assert_eq!(args_of(spawner)[..2], ["berth-shim", "spawner"]);
    // The forked shim names its state directory as an executed one does.
    let args = args_of(shim);
    assert_eq!(args[..2], ["berth-shim", "run"]);
    assert!(
        args[2].ends_with(&format!("/containers/{first}")),
        "{args:?}"
    );

    unsafe { libc::kill(spawner, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(5), || parent_of(spawner).is_none()));
    assert_eq!(
        d.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]),
        "ok\n"
    );
    let second = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let second = second.trim().to_string();
    let shim2 = shim_pid(&d, &second).expect("the second container has a shim");
    let spawner2 = parent_of(shim2).expect("the second shim's parent");
    assert_ne!(spawner2, spawner);
    assert_eq!(args_of(spawner2)[..2], ["berth-shim", "spawner"]);

    d.kill9();
    assert!(
        wait_for(Duration::from_secs(5), || parent_of(spawner2).is_none()),
        "the spawner outlived its daemon: {:?}",
        args_of(spawner2)
    );
    assert!(parent_of(shim).is_some() && parent_of(shim2).is_some());
    d.restart().expect("restart");
    for id in [&first, &second] {
        assert_eq!(state(&d, id)["Running"], true);
        assert_eq!(d.docker_ok(&["exec", id, "echo", "adopted"]), "adopted\n");
    }
    d.docker_ok(&["rm", "-f", &first, &second]);
    let left = left_over(&d, &before);
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

/// A spawner that holds a shim's message without taking it (here: it is
/// stopped) is killed by the start waiting on it, which then executes the
/// shim itself: the start succeeds in seconds (not after a 60 s timeout,
/// with an error), and the next start forks from a new spawner.
#[test]
fn a_stopped_shim_spawner_is_replaced_and_the_start_goes_on() {
    let d = daemon();
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let before = footprint(&d);
    let first = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let first = first.trim().to_string();
    let spawner = parent_of(shim_pid(&d, &first).expect("a shim")).expect("its parent");
    assert_eq!(args_of(spawner)[..2], ["berth-shim", "spawner"]);
    unsafe { libc::kill(spawner, libc::SIGSTOP) };

    let t = Instant::now();
    let second = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let second = second.trim().to_string();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "the start waited {took:?} on a stopped spawner"
    );
    assert!(
        wait_for(Duration::from_secs(5), || parent_of(spawner).is_none()),
        "the stopped spawner is still there: {:?}",
        args_of(spawner)
    );
    // Executed by the daemon itself, as without a spawner.
    let shim2 = shim_pid(&d, &second).expect("the second container has a shim");
    assert_eq!(parent_of(shim2), d.pid().map(|p| p as i32));

    let third = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let third = third.trim().to_string();
    let spawner3 = parent_of(shim_pid(&d, &third).expect("a shim")).expect("its parent");
    assert_ne!(spawner3, spawner);
    assert_eq!(args_of(spawner3)[..2], ["berth-shim", "spawner"]);
    for id in [&first, &second, &third] {
        assert_eq!(state(&d, id)["Running"], true);
        assert_eq!(d.docker_ok(&["exec", id, "echo", "ok"]), "ok\n");
    }
    d.docker_ok(&["rm", "-f", &first, &second, &third]);
    let left = left_over(&d, &before);
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

/// A container is created ahead of its start (its init waits in its
/// cgroup): a daemon killed then leaves no process and no cgroup (the shim
/// deletes the container when the daemon's end of its pipe closes), and
/// the container, still `created`, starts after the restart.
#[test]
fn a_daemon_killed_while_a_container_waits_created_ahead_leaks_nothing() {
    let mut d = daemon();
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let before = footprint(&d);
    let id = d
        .docker_ok(&["create", "--name", "early", "busybox", "echo", "started"])
        .trim()
        .to_string();
    let cgroup = format!("{}/{id}", d.cgroup_parent());
    assert!(
        wait_for(Duration::from_secs(2), || {
            !berth_tests::host::cgroup_procs(&cgroup).is_empty()
        }),
        "the container was not created ahead"
    );
    d.kill9();
    let memory_cgroup = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory{cgroup}"));
    assert!(
        wait_for(Duration::from_secs(10), || {
            berth_tests::host::cgroup_procs(&cgroup).is_empty()
                && !memory_cgroup.exists()
                && shim_pid(&d, &id).is_none()
        }),
        "the container created ahead outlived the daemon: {:?}",
        berth_tests::host::cgroup_procs(&cgroup)
    );
    d.restart().expect("restart");
    assert_eq!(state(&d, &id)["Status"], "created");
    assert_eq!(d.docker_ok(&["start", "-a", "early"]), "started\n");
    d.docker_ok(&["rm", "early"]);
    let left = left_over(&d, &before);
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

#[test]
fn a_daemon_killed_during_its_own_reconciliation_reconciles_again() {
    let mut d = daemon();
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    let before = footprint(&d);
    d.docker_ok(&["network", "create", "recnet"]);
    let mut running = Vec::new();
    for i in 0..4 {
        let name = format!("keep{i}");
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "recnet",
            "busybox",
            "sh",
            "-c",
            COUNTER,
        ]);
        running.push(name);
    }
    // Starts in flight at the crash leave shims the store does not know
    // as started.
    let inflight: Vec<Child> = (0..6)
        .map(|i| {
            d.docker_cmd()
                .args([
                    "run",
                    "-d",
                    "--name",
                    &format!("cut{i}"),
                    "busybox",
                    "sleep",
                    "1000",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    d.kill9();
    let acked: Vec<bool> = inflight
        .into_iter()
        .map(|c| finish(c, Duration::from_secs(30)).status.success())
        .collect();
    // Killed again and again while it reconciles: at 0, 20, 40... ms
    // after it was started (before it answers /_ping).
    for delay in [0u64, 20, 40, 80, 120] {
        d.spawn_only().expect("berthd starts");
        std::thread::sleep(Duration::from_millis(delay));
        d.kill9();
    }
    d.restart()
        .expect("berthd starts after being killed while reconciling");
    for name in &running {
        assert_eq!(state(&d, name)["Running"], true, "{name} should still run");
        assert_eq!(d.docker_ok(&["exec", name, "echo", "ok"]).trim(), "ok");
    }
    // An acknowledged run runs; one cut off is stopped for real (no shim)
    // unless its start was recorded and only the answer was lost.
    for (i, ok) in acked.iter().enumerate() {
        let name = format!("cut{i}");
        let o = d.docker(&["inspect", &name]);
        if *ok {
            assert_eq!(state(&d, &name)["Running"], true, "{name} was acknowledged");
            continue;
        }
        if !o.status.success() {
            continue;
        }
        let v: Value = serde_json::from_slice(&o.stdout).expect("inspect");
        let id = v[0]["Id"].as_str().expect("id");
        if v[0]["State"]["Running"] == true {
            // The start was recorded before the crash and only its answer
            // was lost (reconciliation never records a start): adopted,
            // and it works.
            assert!(
                shim_pid(&d, id).is_some(),
                "{name} is recorded running without a shim"
            );
            assert_eq!(d.docker_ok(&["exec", &name, "echo", "ok"]).trim(), "ok");
            continue;
        }
        assert_eq!(
            shim_pid(&d, id),
            None,
            "the shim of {name}'s cut-off start survived"
        );
    }
    for id in d.docker_ok(&["ps", "-aq"]).split_whitespace() {
        d.docker_ok(&["rm", "-f", id]);
    }
    d.docker_ok(&["network", "rm", "recnet"]);
    let left = left_over(&d, &before);
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}

fn check(d: &Daemon) -> std::process::Output {
    Command::new(bin("berthd"))
        .args(d.args())
        .arg("--check")
        .output()
        .expect("berthd --check")
}

#[test]
fn berthd_check_reports_leftovers_and_changes_nothing() {
    let mut d = daemon();
    // A live daemon's state is not checked.
    let o = check(&d);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stopped daemon"), "{}", stderr(&o));
    let id = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let id = id.trim().to_string();
    d.docker_ok(&["create", "--name", "idle", "busybox", "true"]);
    d.kill9();
    // Leftovers a crash can leave: a shim the store does not know, and a
    // container directory without a record.
    let orphan = format!("{:064x}", 0xdead_beefu64);
    std::fs::create_dir_all(d.data_root.join("containers").join(&orphan)).expect("orphan dir");
    std::fs::create_dir_all(d.data_root.join("volumes/ghostvol/_data")).expect("volume dir");
    let o = check(&d);
    let out = stdout(&o);
    assert!(
        out.contains("volume directory ghostvol: no record"),
        "{out}"
    );
    assert_eq!(o.status.code(), Some(2), "{out}{}", stderr(&o));
    assert!(
        out.contains(&format!("container {}: running", &id[..12])),
        "{out}"
    );
    assert!(
        out.contains(&format!("container {}: no record", &orphan[..12])),
        "{out}"
    );
    // Nothing was changed: the orphan is still there, and the container
    // still runs.
    assert!(d.data_root.join("containers").join(&orphan).exists());
    assert!(shim_pid(&d, &id).is_some());
    d.restart().expect("restart");
    assert_eq!(state(&d, &id)["Running"], true);
    assert!(wait_for(Duration::from_secs(10), || !d
        .data_root
        .join("containers")
        .join(&orphan)
        .exists()));
    assert!(!d.data_root.join("volumes/ghostvol").exists());
    d.docker_ok(&["rm", "-f", &id, "idle"]);
    // (Removed files are deleted in the background: a stop cut short
    // leaves them in the trash, which --check reports.)
    let empty =
        |p: std::path::PathBuf| std::fs::read_dir(p).map(|r| r.count() == 0).unwrap_or(true);
    assert!(wait_for(Duration::from_secs(10), || empty(
        d.data_root.join("trash")
    ) && empty(
        d.exec_root.join("trash")
    )));
    d.terminate();
    let o = check(&d);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("nothing to reconcile"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn device_volumes_survive_a_crash_with_their_container_and_no_longer() {
    let mut d = daemon();
    for v in ["keep", "idle"] {
        d.docker_ok(&[
            "volume",
            "create",
            "--driver",
            "local",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            v,
        ]);
    }
    let keep = d.data_root.join("volumes/keep/_data");
    let idle = d.data_root.join("volumes/idle/_data");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "keep:/data",
        "busybox",
        "sleep",
        "600",
    ]);
    assert!(is_mountpoint(&keep));
    d.kill9();
    // What a dead daemon can leave: a device volume mounted for nobody.
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&idle)
        .status()
        .expect("mount")
        .success());
    d.restart().expect("restart");
    assert!(
        !is_mountpoint(&idle),
        "a volume no container uses stayed mounted"
    );
    assert!(
        is_mountpoint(&keep),
        "the running container's volume was unmounted"
    );
    d.docker_ok(&["exec", "user", "sh", "-c", "echo ok > /data/f"]);
    // Its last user's stop releases it, as before the crash.
    d.docker_ok(&["stop", "-t", "0", "user"]);
    assert!(wait_for(Duration::from_secs(5), || !is_mountpoint(&keep)));
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "keep", "idle"]);
}

#[test]
fn a_container_paused_by_a_commit_cut_off_is_resumed() {
    let mut d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/urandom of=/big bs=1M count=150 2>/dev/null; sleep 600",
    ]);
    // The commit packs 150 MiB: long enough to be caught paused.
    assert!(wait_for(Duration::from_secs(60), || {
        d.docker(&["exec", "busy", "test", "-s", "/big"])
            .status
            .success()
            && d.docker_ok(&["exec", "busy", "ls", "-l", "/big"])
                .contains("157286400")
    }));
    let id = state_id(&d, "busy");
    let commit = d
        .docker_cmd()
        .args(["commit", "busy", "cut:commit"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("commit");
    // Read from the freezer itself, so the pause is seen however briefly.
    let freezer = format!(
        "/sys/fs/cgroup/freezer{}/{id}/freezer.state",
        d.cgroup_parent()
    );
    let paused = || {
        std::fs::read_to_string(&freezer)
            .map(|s| s.trim() == "FROZEN")
            .unwrap_or(false)
    };
    assert!(
        wait_for(Duration::from_secs(20), paused),
        "the commit did not pause the container"
    );
    // An inspect answers during the commit, and shows the pause.
    assert_eq!(state(&d, "busy")["Paused"], true);
    d.kill9();
    let _ = finish(commit, Duration::from_secs(30));
    d.restart().expect("restart");
    let st = state(&d, "busy");
    assert_eq!(
        (st["Running"].clone(), st["Paused"].clone()),
        (Value::Bool(true), Value::Bool(false)),
        "{st}"
    );
    assert_eq!(d.docker_ok(&["exec", "busy", "echo", "ok"]).trim(), "ok");
    // A user's pause is not undone by a restart.
    d.docker_ok(&["pause", "busy"]);
    d.kill9();
    d.restart().expect("restart");
    assert_eq!(state(&d, "busy")["Paused"], true);
    d.docker_ok(&["rm", "-f", "busy"]);
}
