//! Live restore after a daemon restart: reattaching to the shims that
//! reconciliation adopted, recording the exits that happened meanwhile,
//! and starting the containers whose restart policy wants them up.

use std::sync::Arc;
use std::time::Duration;

use berth_api::shim::ExitStatus;

use super::{now, shim, Status};
use crate::engine::containers::Containers;

impl Containers {
    /// Reattaches to shims that survived a daemon restart and records the
    /// exits that happened while the daemon was down.
    /// Runs after `reconcile`, which leaves only adopted shims behind.
    pub async fn restore_containers(self: &Arc<Self>) {
        self.restore_links();
        self.restore_running().await;
        let running: std::collections::HashSet<String> = self
            .all()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| r.state.status.is_running())
            .map(|r| r.id)
            .collect();
        self.volumes
            .release_idle_volumes(&|holder| running.contains(holder));
        // Containers whose policy wants them up, as dockerd does at start.
        use berth_api::models::RestartPolicyNameEnum as P;
        for c in self.all() {
            let r = c.snapshot();
            if r.state.status.is_running() || r.state.status == Status::Removing {
                continue;
            }
            let policy = r.host_config.restart_policy.as_ref().and_then(|p| p.name);
            let want = match policy {
                Some(P::ALWAYS) => r.has_been_started,
                Some(P::UNLESS_STOPPED) => r.has_been_started && !r.manually_stopped,
                _ => false,
            } || r.state.status == Status::Restarting;
            if want && !(r.manually_stopped && policy != Some(P::ALWAYS)) {
                if let Err(e) = self.start_container(&r.id).await {
                    tracing::warn!(id = %r.id, error = %e, "starting on daemon start");
                }
            }
        }
    }

    async fn restore_running(self: &Arc<Self>) {
        for c in self.all() {
            let r = c.snapshot();
            let p = self.paths(&r.id);
            if !r.state.status.is_running() {
                // A crash may have left host state behind.
                if p.rw.is_mounted() || p.netns.exists() {
                    self.teardown(&c, &p);
                }
                continue;
            }
            match shim::probe(&p.socket, Duration::from_secs(5)).await {
                shim::Probe::Running => {
                    tracing::info!(id = %r.id, "reattached to running container");
                    self.resume_after_commit(&c);
                    self.resume_logging(&r);
                    self.restore_container_network(&r).await;
                    self.spawn_health(c.clone());
                    let me = self.clone();
                    tokio::spawn(async move { me.monitor(c).await });
                }
                shim::Probe::Exited(st) => self.handle_exit(&c, st).await,
                shim::Probe::Unreachable => {
                    // Whatever still runs of it (a shim that does not
                    // answer, processes whose shim was killed) is stopped.
                    self.release_stray(&r.id).await;
                    let st = shim::read_exit(&p.bundle.join("exit.json")).unwrap_or(ExitStatus {
                        exit_code: 255,
                        finished_at: now(),
                        oom_killed: false,
                    });
                    tracing::info!(id = %r.id, code = st.exit_code, "container exited while the daemon was down");
                    self.handle_exit(&c, st).await;
                }
            }
        }
    }
}
