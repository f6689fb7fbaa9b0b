//! `docker exec`: exec instances (kept in memory, as Docker does) and their
//! sessions through the shim. The exit code is recorded before the client's
//! stream is closed, because the CLI reads `/exec/{id}/json` right after.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::models::{ExecConfig, ExecInspectResponse, ProcessConfig};
use berth_api::shim::{stdin_chunk, ExecProcess, Request};
use berth_api::stdcopy::{frame, StreamType};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::attach::{parse_detach_keys, pump_stdin, Escape, StdinEnd};
use super::{shim, Status};
use crate::engine::users;
use crate::engine::{containers::Containers, EngineError, Result};

#[derive(Debug, Default, Clone)]
pub struct ExecState {
    pub started: bool,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
}

pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
    /// Flips to true once the process has a PID (resize waits for it).
    pub running: watch::Sender<bool>,
}

impl Exec {
    fn st(&self) -> std::sync::MutexGuard<'_, ExecState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn action_suffix(&self) -> String {
        self.config.cmd.clone().unwrap_or_default().join(" ")
    }
}

pub struct ExecSession {
    engine: Arc<Containers>,
    exec: Arc<Exec>,
    pub tty: bool,
    keys: Vec<u8>,
}

impl Containers {
    fn exec_get(&self, id: &str) -> Result<Arc<Exec>> {
        self.execs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::not_found(format!("No such exec instance: {id}")))
    }

    pub fn create_exec(&self, key: &str, cfg: ExecConfig) -> Result<String> {
        let c = self.find(key)?;
        let r = c.snapshot();
        match r.state.status {
            // As dockerd: the paused message names the container as the
            // client did, the not-running one by its full ID.
            Status::Paused => {
                return Err(EngineError::conflict(format!(
                    "Container {key} is paused, unpause the container before exec"
                )))
            }
            s if !s.is_running() => {
                return Err(EngineError::conflict(format!(
                    "Container {} is not running",
                    r.id
                )))
            }
            _ => {}
        }
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(EngineError::invalid("No exec command specified"));
        }
        if let Some(k) = cfg.detach_keys.as_deref().filter(|k| !k.is_empty()) {
            parse_detach_keys(k)?;
        }
        // dockerd refuses at create when a link's target has stopped.
        self.linked(&r)?;
        let id = crate::engine::ids::new_object_id();
        let (running, _) = watch::channel(false);
        let e = Arc::new(Exec {
            id: id.clone(),
            container_id: r.id.clone(),
            config: cfg,
            state: Mutex::new(ExecState::default()),
            running,
        });
        self.execs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), e.clone());
        self.container_event(
            &r,
            &format!("exec_create: {}", e.action_suffix()),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    pub fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse> {
        let e = self.exec_get(id)?;
        let st = e.st().clone();
        let cmd = e.config.cmd.clone().unwrap_or_default();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(e.config.detach_keys.clone().unwrap_or_default()),
            id: Some(e.id.clone()),
            running: Some(st.running),
            exit_code: st.exit_code,
            process_config: Some(ProcessConfig {
                privileged: Some(e.config.privileged.unwrap_or(false)),
                user: Some(e.config.user.clone().unwrap_or_default()),
                tty: Some(e.config.tty.unwrap_or(false)),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(e.config.attach_stdin.unwrap_or(false)),
            open_stderr: Some(e.config.attach_stderr.unwrap_or(false)),
            open_stdout: Some(e.config.attach_stdout.unwrap_or(false)),
            container_id: Some(e.container_id.clone()),
            pid: Some(st.pid),
        })
    }

    /// Validates an exec start; the session then runs on a connection (or
    /// detached). As in dockerd, the container's state is checked before
    /// the exec's own.
    pub fn start_exec(self: &Arc<Self>, id: &str) -> Result<ExecSession> {
        let e = self.exec_get(id)?;
        {
            let c = self.find(&e.container_id)?;
            let r = c.snapshot();
            match r.state.status {
                Status::Paused => {
                    return Err(EngineError::conflict(format!(
                        "Container {} is paused, unpause the container before exec",
                        r.id
                    )))
                }
                s if !s.is_running() => {
                    return Err(EngineError::conflict(format!(
                        "Container {} is not running: {}",
                        r.id,
                        super::status_text(&r)
                    )))
                }
                _ => {}
            }
            let mut st = e.st();
            if st.started {
                let what = if st.exit_code.is_some() {
                    "has already run"
                } else {
                    "is already running"
                };
                return Err(EngineError::conflict(format!(
                    "Error: Exec command {} {what}",
                    e.id
                )));
            }
            st.started = true;
            st.running = true;
        }
        let keys = match e.config.detach_keys.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => parse_detach_keys(k)?,
            None => vec![16, 17],
        };
        let keys = if e.config.tty.unwrap_or(false) {
            keys
        } else {
            vec![]
        };
        Ok(ExecSession {
            engine: self.clone(),
            tty: e.config.tty.unwrap_or(false),
            exec: e,
            keys,
        })
    }

    pub async fn resize_exec(&self, id: &str, h: u16, w: u16) -> Result<()> {
        let e = self.exec_get(id)?;
        // The CLI resizes right after the upgrade, racing the process start.
        let mut rx = e.running.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|r| *r)).await;
        let socket = self.paths(&e.container_id).socket;
        shim::call(
            &socket,
            &Request::Resize {
                exec_id: Some(e.id.clone()),
                height: h,
                width: w,
            },
        )
        .await?;
        Ok(())
    }

    fn exec_process(&self, e: &Exec) -> Result<ExecProcess> {
        let c = self.find(&e.container_id)?;
        let r = c.snapshot();
        let cfg = &e.config;
        self.build_process(
            &r,
            cfg.cmd.clone().unwrap_or_default(),
            cfg.user.as_deref(),
            &cfg.env.clone().unwrap_or_default(),
            cfg.working_dir.as_deref(),
            cfg.tty.unwrap_or(false),
            cfg.attach_stdin.unwrap_or(false),
            cfg.console_size
                .as_ref()
                .filter(|v| v.len() == 2 && v[0] > 0 && v[1] > 0)
                .map(|v| (v[0] as u16, v[1] as u16)),
            cfg.privileged.unwrap_or(false),
        )
    }

    /// A process to run in a running container, with Docker's exec
    /// defaults: the container's env and user unless overridden.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build_process(
        &self,
        r: &super::Record,
        args: Vec<String>,
        user: Option<&str>,
        extra_env: &[String],
        workdir: Option<&str>,
        tty: bool,
        stdin: bool,
        console_size: Option<(u16, u16)>,
        privileged: bool,
    ) -> Result<ExecProcess> {
        let p = self.paths(&r.id);
        let user_spec = user
            .filter(|u| !u.is_empty())
            .map(String::from)
            .or(r.config.user.clone())
            .unwrap_or_default();
        let (u, home) = users::resolve(
            &p.rw.merged,
            &user_spec,
            &r.host_config.group_add.clone().unwrap_or_default(),
        )?;
        // As dockerd, the links' variables are worked out anew for each
        // process (a target may have moved), and refuse a stopped target.
        let linked = self.linked(r)?;
        let mut env = super::daemon_env(
            &r.config.hostname.clone().unwrap_or_default(),
            tty,
            linked.env,
            &[&r.config.env.clone().unwrap_or_default(), extra_env],
        );
        let key = |s: &str| s.split('=').next().unwrap_or("").to_string();
        let has = |env: &Vec<String>, k: &str| env.iter().any(|x| key(x) == k);
        if !has(&env, "HOME") {
            env.push(format!("HOME={home}"));
        }
        let cwd = workdir
            .filter(|w| !w.is_empty())
            .map(String::from)
            .or(r.config.working_dir.clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        Ok(ExecProcess {
            args,
            env,
            cwd,
            uid: u.uid,
            gid: u.gid,
            additional_gids: u.additional_gids,
            tty,
            stdin,
            console_size,
            privileged: privileged || r.host_config.privileged.unwrap_or(false),
        })
    }

    /// At a container's exit its execs that have not finished are gone,
    /// as in dockerd (finished ones stay inspectable).
    pub(crate) fn forget_unfinished_execs(&self, container_id: &str) {
        self.execs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.container_id != container_id || e.st().exit_code.is_some());
    }

    fn exec_finished(&self, e: &Exec, code: i64) {
        {
            let mut st = e.st();
            st.running = false;
            st.exit_code = Some(code);
        }
        // send_replace: a plain send drops the value while no resize waits.
        e.running.send_replace(false);
        if let Ok(c) = self.find(&e.container_id) {
            self.container_event(
                &c.snapshot(),
                "exec_die",
                &[("execID", e.id.clone()), ("exitCode", code.to_string())],
            );
        }
    }
}

impl ExecSession {
    /// Runs the exec detached; returns once its process has started (or
    /// failed to), so that an inspect right after shows its PID.
    pub async fn run_detached(self) {
        let mut started = self.exec.running.subscribe();
        let run = tokio::spawn(self.run(None::<tokio::io::DuplexStream>));
        tokio::select! {
            _ = started.wait_for(|r| *r) => {}
            _ = run => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }

    /// Runs the exec, bridging it to `io` (None: detached, output dropped).
    pub async fn run<IO>(self, io: Option<IO>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let t0 = std::time::Instant::now();
        let e = self.exec.clone();
        let engine = self.engine.clone();
        let socket = engine.paths(&e.container_id).socket;
        let process = match engine.exec_process(&e) {
            Ok(p) => p,
            Err(err) => {
                if let Some(io) = io {
                    let (_, mut w) = tokio::io::split(io);
                    let msg = format!("{err}\r\n");
                    let bytes = if self.tty {
                        msg.into_bytes().into()
                    } else {
                        frame(StreamType::Stderr, msg.as_bytes())
                    };
                    let _ = w.write_all(&bytes).await;
                    engine.exec_finished(&e, 126);
                    let _ = w.shutdown().await;
                } else {
                    engine.exec_finished(&e, 126);
                }
                return;
            }
        };
        let stdin = process.stdin;
        let conn = async {
            let mut c = shim::connect(&socket).await?;
            let rep = c
                .send(&Request::Exec {
                    exec_id: e.id.clone(),
                    process,
                })
                .await?;
            Ok::<_, std::io::Error>((c, rep))
        }
        .await;
        let (conn, rep) = match conn {
            Ok(x) => x,
            Err(err) => {
                engine.exec_finished(&e, 126);
                tracing::warn!(exec = %e.id, error = %err, "exec: shim unreachable");
                if let Some(io) = io {
                    let (_, mut w) = tokio::io::split(io);
                    let _ = w.shutdown().await;
                }
                return;
            }
        };
        if let Some(msg) = rep.error {
            let code = rep.exit.map(|x| x.exit_code as i64).unwrap_or(126);
            if let Ok(c) = engine.find(&e.container_id) {
                engine.container_event(
                    &c.snapshot(),
                    &format!("exec_start: {}", e.action_suffix()),
                    &[("execID", e.id.clone())],
                );
            }
            let msg = format!("OCI runtime exec failed: exec failed: unable to start container process: {msg}: unknown\r\n");
            engine.exec_finished(&e, code);
            if let Some(io) = io {
                let (_, mut w) = tokio::io::split(io);
                let bytes = if self.tty {
                    msg.into_bytes().into()
                } else {
                    frame(StreamType::Stdout, msg.as_bytes())
                };
                let _ = w.write_all(&bytes).await;
                let _ = w.shutdown().await;
            }
            return;
        }
        {
            let mut st = e.st();
            st.pid = rep.pid.unwrap_or(0) as i64;
        }
        e.running.send_replace(true);
        let t_pid = t0.elapsed();
        if let Ok(c) = engine.find(&e.container_id) {
            engine.container_event(
                &c.snapshot(),
                &format!("exec_start: {}", e.action_suffix()),
                &[("execID", e.id.clone())],
            );
        }
        let (mut sr, mut sw) = tokio::io::split(conn.stream);
        let code = match io {
            None => {
                if stdin {
                    let _ = sw.write_all(&stdin_chunk(&[])).await;
                }
                let mut sink = tokio::io::sink();
                read_until_exit(&mut sr, &mut sink, true, ALL).await
            }
            Some(io) => {
                let (mut cr, mut cw) = tokio::io::split(io);
                let mut esc = Escape::new(self.keys.clone());
                let input = async {
                    if !stdin {
                        return std::future::pending::<StdinEnd>().await;
                    }
                    match pump_stdin(&mut cr, &mut sw, &mut esc, Vec::new()).await {
                        StdinEnd::Eof => {
                            let _ = sw.write_all(&stdin_chunk(&[])).await;
                            std::future::pending::<StdinEnd>().await
                        }
                        other => other,
                    }
                };
                let outcome = {
                    let output = read_until_exit(&mut sr, &mut cw, self.tty, self.streams());
                    tokio::pin!(output);
                    tokio::select! {
                        c = &mut output => Some(c),
                        _ = input => None,
                    }
                };
                match outcome {
                    Some(code) => {
                        // Recorded before the client sees the end of the stream.
                        engine.exec_finished(&e, code);
                        tracing::debug!(exec = %e.id, pid_ms = t_pid.as_secs_f64() * 1e3,
                            exit_ms = t0.elapsed().as_secs_f64() * 1e3, "exec: stages");
                        let _ = cw.shutdown().await;
                        return;
                    }
                    None => {
                        // Detached: the process keeps running; collect its
                        // exit in the background.
                        let e2 = e.clone();
                        let eng = engine.clone();
                        tokio::spawn(async move {
                            let mut sink = tokio::io::sink();
                            let code = read_until_exit(&mut sr, &mut sink, true, ALL).await;
                            eng.exec_finished(&e2, code);
                        });
                        let _ = cw.shutdown().await;
                        return;
                    }
                }
            }
        };
        engine.exec_finished(&e, code);
    }
}

/// Which of stdout and stderr reach the client.
#[derive(Clone, Copy)]
struct Streams {
    stdout: bool,
    stderr: bool,
}

const ALL: Streams = Streams {
    stdout: true,
    stderr: true,
};

impl ExecSession {
    /// Only the streams the exec was created to attach, as in dockerd.
    fn streams(&self) -> Streams {
        let c = &self.exec.config;
        Streams {
            stdout: c.attach_stdout.unwrap_or(false),
            stderr: c.attach_stderr.unwrap_or(false),
        }
    }
}

/// Forwards frames until the shim's exit frame; returns the exit code.
async fn read_until_exit<R, W>(sr: &mut R, out: &mut W, tty: bool, streams: Streams) -> i64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    let mut out_ok = true;
    loop {
        if sr.read_exact(&mut header).await.is_err() {
            return 255;
        }
        let n = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(n, 0);
        if sr.read_exact(&mut buf).await.is_err() {
            return 255;
        }
        if header[0] == berth_api::shim::EXIT_STREAM {
            let st: berth_api::shim::ExitStatus = serde_json::from_slice(&buf).unwrap_or_default();
            let _ = out.flush().await;
            return st.exit_code as i64;
        }
        let wanted = match header[0] {
            1 => streams.stdout,
            2 => streams.stderr,
            _ => true,
        };
        if out_ok && wanted {
            let r = if tty {
                out.write_all(&buf).await
            } else {
                match out.write_all(&header).await {
                    Ok(()) => out.write_all(&buf).await,
                    Err(e) => Err(e),
                }
            };
            out_ok = r.is_ok();
        }
    }
}
