//! Starting a container, one stage per module, in this order:
//!
//! 1. `root.rs`: the root file system is mounted;
//! 2. `namespaces.rs`: where its network comes from (its own namespace, made
//!    meanwhile on a thread of its own, the host's or another container's),
//!    with its host name and `/etc` files, and the IPC/PID namespaces;
//! 3. `process.rs`: user, environment, arguments, working directory;
//! 4. `spec.rs`: the OCI spec (with the mounts and the seccomp BPF);
//! 5. `launch.rs`: a shim is launched; it loads the container and waits;
//! 6. `finish.rs`: the networks are joined, `/etc/hosts` and `resolv.conf`
//!    written in place (`etc_files.rs`), and the shim told to go.
//!
//! Stages 1–5 depend on the configuration alone, so for a fresh container
//! they may run ahead of the start request (`ahead.rs`); the shim then
//! creates the container before the word, once the network namespace and
//! the `/etc` files it mounts exist. A failure at any
//! stage undoes what the earlier ones did (`Containers::teardown`).

mod ahead;
mod etc_files;
mod finish;
mod launch;
mod namespaces;
mod process;
mod root;
mod spec;

pub(super) use ahead::{drop_now, Staged};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{shim, Container, Paths, Record, Status};
use crate::engine::networks::netns;
use crate::engine::{containers::Containers, Result};

/// Debug timing of an operation's steps (`BERTH_LOG=debug`, or
/// `BERTH_LOG=berthd::timing=debug` for these lines alone): one line per
/// step, with the microseconds since the operation began.
pub(in crate::engine::containers) fn lap(op: &str, id: &str, t0: std::time::Instant, what: &str) {
    tracing::debug!(target: "berthd::timing", id = %&id[..12.min(id.len())], step = what, us = t0.elapsed().as_micros() as u64, "{op}");
}

fn start_lap(id: &str, t0: std::time::Instant, what: &str) {
    lap("start", id, t0, what)
}

/// A start's configuration-only half (see `Containers::prepare_start`).
pub(super) struct Prepared {
    pub launched: shim::Launched,
    /// The container's own network namespace, being created meanwhile.
    pub netns: Option<netns::Pending>,
    mode: String,
    host_net: bool,
    embedded: bool,
    hostname: String,
    /// `/etc/hosts` lines for the container's links.
    link_hosts: String,
}

impl Prepared {
    /// Lets the shim go without creating anything (see
    /// `shim::Launched::abandon`), once the namespace is made.
    pub async fn abandon(self) {
        if let Some(n) = self.netns {
            let _ = n.ready().await;
        }
        self.launched.abandon().await;
    }
}

impl Containers {
    pub async fn start_container(self: &Arc<Self>, key: &str) -> Result<()> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        self.start_locked(&c).await
    }

    /// A start; the caller holds the container's lifecycle lock.
    pub(super) async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let c = c.clone();
        let r = c.snapshot();
        super::state::check_start(r.state.status)?;
        let p = self.paths(&r.id);
        let t0 = std::time::Instant::now();
        match self.start_inner(&c, &r, &p).await {
            Ok((pid, started_at)) => {
                {
                    let mut rec = c.lock();
                    rec.state.status = Status::Running;
                    rec.state.pid = pid as i64;
                    rec.state.started_at = Some(started_at);
                    rec.state.error = String::new();
                    rec.state.oom_killed = false;
                    rec.has_been_started = true;
                    rec.manually_stopped = false;
                }
                c.exit_on_next.store(false, Ordering::SeqCst);
                if let Err(e) = self.persist(&c) {
                    // The start cannot be recorded (a full disk): the
                    // container must not run unknown to the store, so it
                    // is stopped and the start fails as any other does.
                    self.stop_unrecorded(&c, &p).await;
                    return self.fail_start(&c, &p, e);
                }
                start_lap(&r.id, t0, "recorded");
                let m = crate::engine::metrics::get();
                m.container_action("start", t0.elapsed());
                if !r.has_been_started {
                    if let Some(d) = since_created(&r.created) {
                        m.container_started(d);
                    }
                }
                c.progress.send_modify(|p| p.starts += 1);
                let started = c.snapshot();
                self.update_linking_hosts(&started);
                self.container_event(&started, "start", &[]);
                self.spawn_health(c.clone());
                let me = self.clone();
                let c2 = c.clone();
                tokio::spawn(async move { me.monitor(c2).await });
                Ok(())
            }
            Err(e) => self.fail_start(&c, &p, e),
        }
    }

    /// Undoes what a start set up on the host: networks, namespace, rootfs.
    /// A start that failed: what it set up is undone, the error is
    /// recorded, and an AutoRemove container is removed.
    fn fail_start(
        self: &Arc<Self>,
        c: &Arc<Container>,
        p: &Paths,
        e: crate::engine::EngineError,
    ) -> Result<()> {
        self.teardown(c, p);
        let msg = e.to_string();
        {
            let mut rec = c.lock();
            rec.state.error = msg;
            rec.state.exit_code = shim::kind_of(&e).exit_code();
            rec.state.pid = 0;
            if rec.has_been_started {
                rec.state.status = Status::Exited;
            }
        }
        let _ = self.persist(c);
        // Attach clients waiting for this start are released.
        c.pending.lock().unwrap_or_else(|x| x.into_inner()).clear();
        let rec = c.snapshot();
        c.progress
            .send_modify(|pr| pr.exit_code = rec.state.exit_code);
        // As moby: a container that was to be removed on exit is
        // removed when it cannot start (`docker run --rm` waits for it).
        if rec.host_config.auto_remove == Some(true) && self.forget_container(c).is_ok() {
            self.container_event(&rec, "destroy", &[]);
        }
        Err(e)
    }

    /// Kills a container whose start could not be recorded and waits
    /// (bounded) for its shim to report the exit.
    async fn stop_unrecorded(&self, c: &Container, p: &Paths) {
        c.exit_on_next.store(true, Ordering::SeqCst);
        if let Err(e) = self.signal(c, libc::SIGKILL).await {
            tracing::warn!(id = %c.id, error = %e, "killing an unrecorded start");
        }
        let record = p.bundle.join("exit.json");
        let exited = shim::follow_exit(&p.socket, &record);
        if tokio::time::timeout(std::time::Duration::from_secs(10), exited)
            .await
            .is_err()
        {
            tracing::warn!(id = %c.id, "an unrecorded start did not exit in 10 s");
        }
    }

    pub(crate) fn teardown(&self, c: &Container, p: &Paths) {
        let mut eps = c.lock().endpoints.clone();
        self.detach_networks(&c.id, &mut eps);
        {
            let mut r = c.lock();
            r.endpoints = eps;
            r.ports = None;
        }
        p.rw.unmount_soon();
        netns::remove(&p.netns);
        let _ = std::fs::remove_file(&p.socket);
        self.unmount_volumes(c);
        self.stop_logging(&c.snapshot());
    }

    async fn start_inner(
        self: &Arc<Self>,
        c: &Arc<Container>,
        r: &Record,
        p: &Paths,
    ) -> Result<(i32, String)> {
        let prep = match ahead::take(c, r, p).await {
            Some(prep) => prep,
            None => self.prepare_start(r, p, false).await?,
        };
        self.finish_start(c, r, p, prep).await
    }

    /// The part of a start that depends only on the container's
    /// configuration: the root file system, the runtime spec and a loaded
    /// shim waiting for the word. (Run early for a fresh container, see
    /// `ahead.rs`.) With `create_early`, the shim creates the container
    /// before the word: the network namespace and the `/etc` files are
    /// made first, since the container's init enters and mounts them.
    pub(super) async fn prepare_start(
        self: &Arc<Self>,
        r: &Record,
        p: &Paths,
        create_early: bool,
    ) -> Result<Prepared> {
        let mode = r.host_config.network_mode.as_deref().unwrap_or_default();
        let private_netns = !(mode == "host" || mode.starts_with("container:"));
        // The (empty) network namespace is made on a thread of its own
        // while the rest is prepared; the networks are attached at start.
        let mut netns = private_netns.then(|| netns::create_soon(&p.netns));
        match self.prepare_rest(r, p, create_early, &mut netns).await {
            Ok(mut prep) => {
                prep.netns = netns;
                Ok(prep)
            }
            Err(e) => {
                // Made before the caller's clean-up looks for it.
                if let Some(n) = netns {
                    let _ = n.ready().await;
                }
                Err(e)
            }
        }
    }

    /// Stages 1–5 (see the module's comment).
    async fn prepare_rest(
        self: &Arc<Self>,
        r: &Record,
        p: &Paths,
        create_early: bool,
        netns: &mut Option<netns::Pending>,
    ) -> Result<Prepared> {
        let t0 = std::time::Instant::now();
        let lap = |what: &str| start_lap(&r.id, t0, what);
        self.mount_root(r, p)?;
        lap("rootfs");
        let net = self.network_identity(r, p)?;
        let (mode, host_net, embedded) = (net.mode.clone(), net.host_net, net.embedded);
        let hostname = net.hostname.clone();
        let proc = self.process(r, p, &hostname)?;
        let (tty, link_hosts) = (proc.tty, proc.link_hosts.clone());
        let written = self.write_spec(r, p, net, proc, lap).await?;
        lap("spec");
        if create_early {
            if let Some(n) = netns.take() {
                n.ready().await?;
            }
            self.write_etc(r, p, &hostname, &link_hosts, host_net, embedded)?;
        }
        let launched = self.launch_shim(r, p, tty, written, create_early)?;
        lap("launch");
        Ok(Prepared {
            launched,
            netns: None,
            mode,
            host_net,
            embedded,
            hostname,
            link_hosts,
        })
    }
}

/// How long ago a container was created (its RFC 3339 `Created`).
fn since_created(created: &str) -> Option<std::time::Duration> {
    let t = chrono::DateTime::parse_from_rfc3339(created).ok()?;
    (chrono::Utc::now() - t.to_utc()).to_std().ok()
}
