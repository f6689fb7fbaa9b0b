//! Start, stop, kill, restart, pause, remove, wait; what happens when a
//! container's process exits; and live restore after a daemon restart.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_api::shim::Request;

use super::{shim, Container, Status};
use crate::engine::cgroups;
use crate::engine::metrics::Timer;
use crate::engine::signal::parse_signal;
use crate::engine::{containers::Containers, EngineError, Result};

/// How long a SIGKILL `kill` waits for the exit before it fails.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// `GET /containers/{id}/wait` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(Self::NotRunning),
            "next-exit" => Ok(Self::NextExit),
            "removed" => Ok(Self::Removed),
            other => Err(EngineError::invalid(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

pub struct Waiter {
    rx: tokio::sync::watch::Receiver<super::Progress>,
    cond: WaitCondition,
    base_exits: u64,
    immediate: Option<i64>,
}

impl Waiter {
    /// Resolves with the exit code once the condition holds.
    pub async fn wait(mut self) -> i64 {
        if let Some(code) = self.immediate {
            return code;
        }
        let base = self.base_exits;
        let cond = self.cond;
        let r = self
            .rx
            .wait_for(|p| match cond {
                WaitCondition::Removed => p.removed,
                _ => p.exits > base || p.removed,
            })
            .await;
        let code = r.map(|p| p.exit_code).ok();
        code.unwrap_or_else(|| self.rx.borrow().exit_code)
    }
}

impl Containers {
    fn socket_of(&self, c: &Container) -> std::path::PathBuf {
        self.paths(&c.id).socket
    }

    /// Sends a signal to the container's init.
    pub(super) async fn signal(&self, c: &Container, sig: i32) -> Result<()> {
        if sig == libc::SIGKILL {
            cgroups::kill_descendants(&c.id);
        }
        shim::call(
            &self.socket_of(c),
            &Request::Kill {
                exec_id: None,
                signal: sig,
            },
        )
        .await
        .map(|_| ())
    }

    async fn wait_exit(&self, c: &Container, base: u64, limit: Option<Duration>) -> bool {
        let mut rx = c.progress.subscribe();
        let fut = rx.wait_for(|p| p.exits > base || p.removed);
        match limit {
            Some(d) => tokio::time::timeout(d, fut)
                .await
                .map(|r| r.is_ok())
                .unwrap_or(false),
            None => fut.await.is_ok(),
        }
    }

    /// `docker kill`. As in dockerd, SIGKILL (the default) answers only
    /// once the container has exited, so an inspect or `rm` right after
    /// sees it stopped; other signals answer once delivered.
    pub async fn kill_container(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let t = Timer::start();
        let r = self.kill_container_timed(key, signal).await;
        if r.is_ok() {
            t.container("kill");
        }
        r
    }

    async fn kill_container_timed(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let c = self.find(key).map_err(|e| match e {
            EngineError::NotFound(m) => {
                EngineError::NotFound(format!("Cannot kill container: {key}: {m}"))
            }
            e => e,
        })?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => libc::SIGKILL,
        };
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(EngineError::conflict(format!(
                "Cannot kill container: {key}: Container {} is not running",
                r.id
            )));
        }
        let stop_signal = match r.config.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(parse_signal(s)?),
            None => None,
        };
        // dockerd's "exit on next": SIGKILL, or the stop signal (any signal
        // when none is configured), means the exit it causes is not
        // restarted, and a paused container is resumed to receive it.
        if r.state.status == Status::Restarting {
            // In a restart back-off there is no process to signal: the kill
            // cancels the restart, and the container stays exited.
            {
                let mut rec = c.lock();
                if rec.state.status == Status::Restarting {
                    rec.state.status = Status::Exited;
                }
            }
            self.persist(&c)?;
            self.container_event(&r, "kill", &[("signal", sig.to_string())]);
            return Ok(());
        }
        let stopping = sig == libc::SIGKILL || stop_signal.is_none_or(|s| s == sig);
        if stopping {
            c.exit_on_next.store(true, Ordering::SeqCst);
        }
        let base = c.progress.borrow().exits;
        if let Err(e) = self.signal(&c, sig).await {
            // The process exited as the signal went (its shim is closing):
            // done, as dockerd answers when the task is already gone.
            if !self.wait_exit(&c, base, Some(Duration::from_secs(2))).await
                && c.status().is_running()
            {
                return Err(e);
            }
            return Ok(());
        }
        self.container_event(&r, "kill", &[("signal", sig.to_string())]);
        if r.state.status == Status::Paused && stopping && cgroups::freeze(&r.id, false).is_ok() {
            // Unless the process has exited meanwhile (its exit is recorded).
            let resumed = {
                let mut rec = c.lock();
                let was = rec.state.status == Status::Paused;
                if was {
                    rec.state.status = Status::Running;
                }
                was
            };
            if resumed {
                self.persist(&c)?;
                self.container_event(&c.snapshot(), "unpause", &[]);
            }
        }
        if sig == libc::SIGKILL && !self.wait_exit(&c, base, Some(KILL_WAIT)).await {
            return Err(EngineError::internal(format!(
                "container {} did not exit after SIGKILL",
                r.id
            )));
        }
        Ok(())
    }

    pub async fn stop_container(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let t = Timer::start();
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let r = self.stop_locked(&c, timeout, signal).await;
        if r.is_ok() {
            t.container("stop");
        }
        r
    }

    async fn stop_locked(
        &self,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(EngineError::NotModified("container already stopped".into()));
        }
        if r.state.status == Status::Restarting {
            // Waiting out a back-off: no process to signal, just stay down.
            {
                let mut rec = c.lock();
                rec.manually_stopped = true;
                rec.state.status = Status::Exited;
            }
            self.persist(c)?;
            self.container_event(&c.snapshot(), "stop", &[]);
            return Ok(());
        }
        let sig = match signal.filter(|s| !s.is_empty()).or(r
            .config
            .stop_signal
            .as_deref()
            .filter(|s| !s.is_empty()))
        {
            Some(s) => parse_signal(s)?,
            None => libc::SIGTERM,
        };
        let t = timeout.or(r.config.stop_timeout).unwrap_or(10);
        let base = c.progress.borrow().exits;
        c.lock().manually_stopped = true;
        self.persist(c)?;
        if self.signal(c, sig).await.is_ok() {
            self.container_event(&r, "kill", &[("signal", sig.to_string())]);
        }
        if r.state.status == Status::Paused {
            let _ = cgroups::freeze(&r.id, false);
        }
        let limit = (t >= 0).then(|| Duration::from_secs(t as u64));
        if !self.wait_exit(c, base, limit).await {
            if self.signal(c, libc::SIGKILL).await.is_ok() {
                self.container_event(&r, "kill", &[("signal", libc::SIGKILL.to_string())]);
            }
            if !self.wait_exit(c, base, Some(Duration::from_secs(30))).await {
                return Err(EngineError::internal(format!(
                    "container {} did not exit after SIGKILL",
                    r.id
                )));
            }
        }
        self.container_event(&c.snapshot(), "stop", &[]);
        Ok(())
    }

    pub async fn restart_container(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let t = Timer::start();
        let r = self.restart_container_timed(key, timeout, signal).await;
        if r.is_ok() {
            t.container("restart");
        }
        r
    }

    async fn restart_container_timed(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.find(key)?;
        // One lock over both halves: no other start slips in between.
        let _op = c.op.lock().await;
        match self.stop_locked(&c, timeout, signal).await {
            Ok(()) | Err(EngineError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        if self.find(&c.id).is_err() {
            return Err(EngineError::NotFound(format!("No such container: {key}")));
        }
        self.start_locked(&c).await?;
        self.container_event(&c.snapshot(), "restart", &[]);
        Ok(())
    }

    pub async fn pause_container(&self, key: &str, pause: bool) -> Result<()> {
        let t = Timer::start();
        let r = self.pause_container_timed(key, pause).await;
        if r.is_ok() {
            t.container(if pause { "pause" } else { "unpause" });
        }
        r
    }

    async fn pause_container_timed(&self, key: &str, pause: bool) -> Result<()> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        super::state::check_pause(r.state.status, pause, &r.id)?;
        if let Err(e) = cgroups::freeze(&r.id, pause) {
            // The process exited under us and its cgroup went with it; its
            // exit is not recorded yet. As dockerd: it is not running.
            if !cgroups::exists(&r.id) {
                return Err(super::state::not_running(&r.id));
            }
            return Err(e);
        }
        {
            let mut rec = c.lock();
            rec.state.status = if pause {
                Status::Paused
            } else {
                Status::Running
            };
            // The user's pause (or unpause) is the user's to undo.
            rec.paused_for_commit = false;
        }
        self.persist(&c)?;
        self.container_event(&c.snapshot(), if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    pub async fn remove_container(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let t = Timer::start();
        let r = self.remove_container_timed(key, force, volumes).await;
        if r.is_ok() {
            t.container("delete");
        }
        r
    }

    async fn remove_container_timed(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let t0 = std::time::Instant::now();
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        if super::state::check_remove(r.state.status, force, &r.name)? {
            let base = c.progress.borrow().exits;
            c.removing.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = self.signal(&c, libc::SIGKILL).await;
            if r.state.status == Status::Paused {
                let _ = cgroups::freeze(&r.id, false);
            }
            self.container_event(&r, "kill", &[("signal", libc::SIGKILL.to_string())]);
            let exited = self
                .wait_exit(&c, base, Some(Duration::from_secs(30)))
                .await;
            // The exit (written once `exits` moved) is behind us.
            c.removing.store(false, std::sync::atomic::Ordering::SeqCst);
            if !exited {
                return Err(EngineError::internal(format!(
                    "could not kill running container {}, cannot remove",
                    r.id
                )));
            }
        }
        if self.find(&c.id).is_err() {
            // Auto-removed meanwhile.
            return Ok(());
        }
        c.lock().state.status = Status::Removing;
        self.forget_container(&c)?;
        super::start::lap("remove", &r.id, t0, "forgotten");
        if volumes {
            self.remove_anonymous_volumes(&r);
        }
        self.container_event(&r, "destroy", &[]);
        Ok(())
    }

    pub async fn resize_container(&self, key: &str, h: u16, w: u16) -> Result<()> {
        let c = self.find(key)?;
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(super::state::not_running(&r.id));
        }
        shim::call(
            &self.socket_of(&c),
            &Request::Resize {
                exec_id: None,
                height: h,
                width: w,
            },
        )
        .await?;
        self.container_event(
            &r,
            "resize",
            &[("height", h.to_string()), ("width", w.to_string())],
        );
        Ok(())
    }

    /// Validates the container now; the returned waiter resolves later.
    pub fn wait_container(&self, key: &str, cond: WaitCondition) -> Result<Waiter> {
        let c = self.find(key)?;
        let rx = c.progress.subscribe();
        let p = *rx.borrow();
        let r = c.snapshot();
        let immediate = (cond == WaitCondition::NotRunning && !r.state.status.is_running())
            .then_some(r.state.exit_code);
        Ok(Waiter {
            rx,
            cond,
            base_exits: p.exits,
            immediate,
        })
    }

    pub async fn prune_containers(
        &self,
        filters: &berth_api::filters::Filters,
    ) -> Result<(Vec<String>, i64)> {
        filters.validate(&["until", "label", "label!"])?;
        let until = filters.get("until").next().map(parse_until).transpose()?;
        let mut deleted = Vec::new();
        let mut space = 0;
        for c in self.all() {
            let r = c.snapshot();
            if r.state.status.is_running() || r.state.status == Status::Removing {
                continue;
            }
            if !filters.match_labels("label", r.config.labels.as_ref()) {
                continue;
            }
            if filters.contains("label!")
                && filters.get("label!").any(|l| {
                    let mut f = berth_api::filters::Filters::new();
                    f.add("l", l);
                    f.match_labels("l", r.config.labels.as_ref())
                })
            {
                continue;
            }
            if let Some(u) = until {
                let created = chrono::DateTime::parse_from_rfc3339(&r.created)
                    .map(|t| t.timestamp())
                    .unwrap_or(0);
                if created >= u {
                    continue;
                }
            }
            let size = crate::engine::host::dir_size(&self.paths(&r.id).rw.upper);
            if self.remove_container(&r.id, false, false).await.is_ok() {
                deleted.push(r.id.clone());
                space += size;
            }
        }
        if !deleted.is_empty() {
            self.events.publish(
                "container",
                "prune",
                "",
                [("reclaimed".to_string(), space.to_string())]
                    .into_iter()
                    .collect(),
            );
        }
        Ok((deleted, space))
    }
}

fn parse_until(u: &str) -> Result<i64> {
    if let Ok(n) = u.split('.').next().unwrap_or("").parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(u) {
        return Ok(t.timestamp());
    }
    Err(EngineError::invalid(format!("invalid until filter: {u}")))
}
