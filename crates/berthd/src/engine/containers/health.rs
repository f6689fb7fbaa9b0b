//! Health checks: the image's `HEALTHCHECK` or `--health-*`, run as
//! processes inside the container (like `docker exec`), with Docker's state
//! machine: starting → healthy / unhealthy after `retries` failures, a
//! start period whose failures do not count, the last five results kept.

use std::sync::Arc;
use std::time::Duration;

use berth_api::models::{Health, HealthStatusEnum, HealthcheckResult};
use berth_api::shim::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{now, shim, Container, Status};
use crate::engine::containers::Containers;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const MAX_OUTPUT: usize = 4096;

fn dur(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// The probe's argv, or None when health checks are off.
fn probe_args(test: &[String]) -> Option<Vec<String>> {
    match test.first().map(String::as_str) {
        Some("CMD") => Some(test[1..].to_vec()).filter(|a| !a.is_empty()),
        Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]),
        _ => None,
    }
}

impl Containers {
    /// Starts the health-check loop for a container that just started.
    pub(crate) fn spawn_health(self: &Arc<Self>, c: Arc<Container>) {
        let r = c.snapshot();
        let Some(hc) = r.config.healthcheck.clone() else {
            return;
        };
        let Some(args) = probe_args(&hc.test.clone().unwrap_or_default()) else {
            return;
        };
        let interval = dur(hc.interval, DEFAULT_INTERVAL);
        let timeout = dur(hc.timeout, DEFAULT_TIMEOUT);
        let start_period = dur(hc.start_period, Duration::ZERO);
        let start_interval = dur(hc.start_interval, DEFAULT_START_INTERVAL);
        let retries = hc.retries.filter(|n| *n > 0).unwrap_or(3);
        let run_no = c.progress.borrow().starts;
        {
            let mut rec = c.lock();
            rec.health = Some(Health {
                status: Some(HealthStatusEnum::STARTING),
                failing_streak: Some(0),
                log: Some(vec![]),
            });
        }
        let me = self.clone();
        tokio::spawn(async move {
            let began = tokio::time::Instant::now();
            loop {
                let in_start = began.elapsed() < start_period;
                let wait = if in_start {
                    start_interval.min(interval)
                } else {
                    interval
                };
                tokio::time::sleep(wait).await;
                // Ends with this run of the container.
                let cur = c.snapshot();
                if c.progress.borrow().starts != run_no || !cur.state.status.is_running() {
                    return;
                }
                if cur.state.status == Status::Paused {
                    continue;
                }
                let start = now();
                let (code, output) = me.probe(&c, args.clone(), timeout).await;
                let end = now();
                let in_start = began.elapsed() < start_period;
                me.record_health(&c, code, output, start, end, retries, in_start);
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn record_health(
        &self,
        c: &Container,
        code: i64,
        output: String,
        start: String,
        end: String,
        retries: i64,
        in_start: bool,
    ) {
        crate::engine::metrics::get().health_check(code != 0);
        let (old, new) = {
            let mut rec = c.lock();
            let h = rec.health.get_or_insert_with(Health::default);
            let old = h.status;
            let mut log = h.log.take().unwrap_or_default();
            log.push(HealthcheckResult {
                start: Some(start),
                end: Some(end),
                exit_code: Some(code),
                output: Some(output),
            });
            if log.len() > 5 {
                let extra = log.len() - 5;
                log.drain(..extra);
            }
            h.log = Some(log);
            if code == 0 {
                h.failing_streak = Some(0);
                h.status = Some(HealthStatusEnum::HEALTHY);
            } else if !in_start || old != Some(HealthStatusEnum::STARTING) {
                let streak = h.failing_streak.unwrap_or(0) + 1;
                h.failing_streak = Some(streak);
                if streak >= retries {
                    h.status = Some(HealthStatusEnum::UNHEALTHY);
                }
            }
            (old, h.status)
        };
        let _ = self.persist(c);
        if old != new {
            if let Some(s) = new {
                self.container_event(&c.snapshot(), &format!("health_status: {s}"), &[]);
            }
        }
    }

    /// Runs one probe; returns its exit code (-1 on timeout) and output.
    async fn probe(&self, c: &Container, args: Vec<String>, timeout: Duration) -> (i64, String) {
        let r = c.snapshot();
        let process = match self.build_process(&r, args, None, &[], None, false, false, None, false)
        {
            Ok(p) => p,
            Err(e) => return (-1, e.to_string()),
        };
        let socket = self.paths(&r.id).socket;
        let exec_id = format!("health-{}", crate::engine::ids::random_hex(8));
        let run = async {
            let mut conn = shim::connect(&socket).await.map_err(|e| e.to_string())?;
            let rep = conn
                .send(&Request::Exec {
                    exec_id: exec_id.clone(),
                    process,
                })
                .await
                .map_err(|e| e.to_string())?;
            if let Some(err) = rep.error {
                return Ok::<_, String>((rep.exit.map(|x| x.exit_code as i64).unwrap_or(126), err));
            }
            let s = conn.stream.get_mut();
            let _ = s.shutdown().await;
            let mut out = Vec::new();
            let mut header = [0u8; 8];
            loop {
                if conn.stream.read_exact(&mut header).await.is_err() {
                    return Ok((-1, String::from_utf8_lossy(&out).into_owned()));
                }
                let n = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                let mut buf = vec![0u8; n];
                if conn.stream.read_exact(&mut buf).await.is_err() {
                    return Ok((-1, String::from_utf8_lossy(&out).into_owned()));
                }
                if header[0] == berth_api::shim::EXIT_STREAM {
                    let st: berth_api::shim::ExitStatus =
                        serde_json::from_slice(&buf).unwrap_or_default();
                    return Ok((
                        st.exit_code as i64,
                        String::from_utf8_lossy(&out).into_owned(),
                    ));
                }
                if out.len() < MAX_OUTPUT {
                    out.extend_from_slice(&buf[..buf.len().min(MAX_OUTPUT - out.len())]);
                }
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => (-1, e),
            Err(_) => {
                let _ = shim::call(
                    &socket,
                    &Request::Kill {
                        exec_id: Some(exec_id),
                        signal: libc::SIGKILL,
                    },
                )
                .await;
                (-1, format!("Health check exceeded timeout ({timeout:?})"))
            }
        }
    }
}

/// `(healthy)`, `(unhealthy)` or `(health: starting)` for `ps`.
pub fn status_suffix(h: Option<&Health>) -> Option<&'static str> {
    match h?.status? {
        HealthStatusEnum::STARTING => Some("(health: starting)"),
        HealthStatusEnum::HEALTHY => Some("(healthy)"),
        HealthStatusEnum::UNHEALTHY => Some("(unhealthy)"),
        _ => None,
    }
}
