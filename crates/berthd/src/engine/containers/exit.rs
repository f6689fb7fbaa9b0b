//! What happens when a container's process exits: the shim is followed
//! until it reports the exit, which is recorded; host state is released;
//! and the restart policy decides whether it starts again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_api::shim::ExitStatus;

use super::{now, shim, Container, Record, Status};
use crate::engine::containers::Containers;

impl Containers {
    /// Follows a running container until its process exits.
    pub(crate) async fn monitor(self: Arc<Self>, c: Arc<Container>) {
        // This future lives as long as its container runs, a thousand at
        // once: it keeps only what the wait needs; the exit's work (whose
        // state holds a whole record) is boxed when it comes.
        let (socket, exit_record) = {
            let p = self.paths(&c.id);
            (p.socket, p.bundle.join("exit.json"))
        };
        let status = shim::follow_exit(&socket, &exit_record).await;
        drop((socket, exit_record));
        let status = match status {
            Some(s) => s,
            None => {
                // The shim died without a word (killed): its container's
                // processes may live on, unreachable. They are stopped.
                Box::pin(self.release_stray(&c.id)).await;
                ExitStatus {
                    exit_code: 255,
                    finished_at: now(),
                    oom_killed: false,
                }
            }
        };
        Box::pin(self.handle_exit(&c, status)).await;
    }

    /// Stops what runs of a container outside a working shim, and releases
    /// its cgroups and runtime state (see `release::release`).
    pub(super) async fn release_stray(&self, id: &str) {
        let (cfg, id) = (self.config.clone(), id.to_string());
        let _ = tokio::task::spawn_blocking(move || {
            let shims = super::release::shims_of(&cfg.exec_root, &id);
            super::release::release_processes(&cfg, &id, &shims);
        })
        .await;
    }

    pub(super) async fn handle_exit(self: &Arc<Self>, c: &Arc<Container>, st: ExitStatus) {
        let t0 = std::time::Instant::now();
        let lap = |what: &str| super::start::lap("exit", &c.id, t0, what);
        let p = self.paths(&c.id);
        self.teardown(c, &p);
        lap("teardown");
        crate::engine::trash::remove(
            &p.bundle,
            &crate::engine::trash::dir(&self.config.exec_root),
        );
        {
            let mut r = c.lock();
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = st.exit_code as i64;
            r.state.finished_at = Some(st.finished_at.clone());
            r.state.oom_killed = st.oom_killed;
        }
        // An AutoRemove container's record is deleted just below, so its
        // exit is not written first (a daemon that dies in between finds
        // the shim gone at restart and removes the container then).
        let auto_remove = c.lock().host_config.auto_remove == Some(true);
        if !auto_remove {
            // A forced removal deletes the record durably next; should the
            // daemon die first, the container is found without its shim
            // at start, as if its exit had not been written at all.
            let written = if c.removing.load(Ordering::SeqCst) {
                self.persist_lazily(c)
            } else {
                self.persist(c)
            };
            if let Err(e) = written {
                tracing::error!(id = %c.id, error = %e, "recording the exit");
            }
        }
        lap("recorded");
        self.forget_unfinished_execs(&c.id);
        let rec = c.snapshot();
        if st.oom_killed {
            self.container_event(&rec, "oom", &[]);
        }
        self.container_event(&rec, "die", &[("exitCode", st.exit_code.to_string())]);
        c.progress.send_modify(|pr| {
            pr.exits += 1;
            pr.exit_code = st.exit_code as i64;
        });
        let exit_on_next = c.exit_on_next.swap(false, Ordering::SeqCst);
        if !exit_on_next && self.should_restart(&rec) {
            self.schedule_restart(c.clone(), &rec);
            return;
        }
        if auto_remove {
            let _op = c.op.lock().await;
            if self.find(&c.id).is_ok() {
                if let Err(e) = self.forget(c, false) {
                    tracing::warn!(id = %c.id, error = %e, "auto-remove");
                    let _ = self.persist(c);
                } else {
                    self.container_event(&rec, "destroy", &[]);
                }
            }
            lap("removed");
        }
    }

    /// Docker's restart policies (an explicit `stop` is never undone here).
    fn should_restart(&self, r: &Record) -> bool {
        use berth_api::models::RestartPolicyNameEnum as P;
        if r.manually_stopped || r.host_config.auto_remove == Some(true) {
            return false;
        }
        if *self.shutdown_signal().borrow() {
            return false;
        }
        let policy = r.host_config.restart_policy.clone().unwrap_or_default();
        match policy.name {
            Some(P::ALWAYS) | Some(P::UNLESS_STOPPED) => true,
            Some(P::ON_FAILURE) => {
                let max = policy.maximum_retry_count.unwrap_or(0);
                r.state.exit_code != 0 && (max <= 0 || r.restart_count < max)
            }
            _ => false,
        }
    }

    /// Restarts after Docker's back-off: 100 ms doubling up to a minute,
    /// back to 100 ms once a run lasted 10 s.
    fn schedule_restart(self: &Arc<Self>, c: Arc<Container>, r: &Record) {
        let ran = match (
            r.state
                .started_at
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()),
            r.state
                .finished_at
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()),
        ) {
            (Some(a), Some(b)) => (b - a).num_milliseconds(),
            _ => 0,
        };
        let delay = {
            let mut b = c.backoff.lock().unwrap_or_else(|p| p.into_inner());
            *b = if ran >= 10_000 || b.is_zero() {
                Duration::from_millis(100)
            } else {
                (*b * 2).min(Duration::from_secs(60))
            };
            *b
        };
        c.lock().state.status = Status::Restarting;
        let _ = self.persist(&c);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let still = c.snapshot();
            if still.state.status != Status::Restarting
                || still.manually_stopped
                || me.find(&c.id).is_err()
            {
                return;
            }
            c.lock().restart_count += 1;
            // start() refuses a "restarting" container; it is exited really.
            c.lock().state.status = Status::Exited;
            if let Err(e) = me.start_container(&c.id).await {
                tracing::warn!(id = %c.id, error = %e, "restart policy: start failed");
                c.lock().state.status = Status::Exited;
                let _ = me.persist(&c);
            }
        });
    }
}
