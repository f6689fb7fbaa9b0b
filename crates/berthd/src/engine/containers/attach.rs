//! Attach: a client's hijacked connection bridged to the shim's attach
//! stream. A client may attach before the container starts (the docker CLI
//! always does): its stdin is buffered and it is connected to the shim by
//! `start` before the process runs, so it sees every byte of output.

use std::path::Path;
use std::sync::Arc;

use berth_api::shim::{stdin_chunk, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::logs::LogOptions;
use super::shim;
use crate::engine::{containers::Containers, EngineError, Result};

#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub detach_keys: Option<String>,
    /// Replay the container's log first.
    pub logs: bool,
    /// Then stay attached to the live streams (without it the answer ends
    /// after the replay).
    pub stream: bool,
}

/// An attach waiting for the container to start.
pub struct Pending {
    opts: AttachOptions,
    tx: oneshot::Sender<shim::Conn>,
}

impl Pending {
    pub async fn connect(self, socket: &Path) {
        if let Some(c) = open(socket, &self.opts).await {
            let _ = self.tx.send(c);
        }
    }
}

async fn open(socket: &Path, o: &AttachOptions) -> Option<shim::Conn> {
    let mut c = shim::connect(socket).await.ok()?;
    let rep = c
        .send(&Request::Attach {
            stdin: o.stdin,
            stdout: o.stdout,
            stderr: o.stderr,
        })
        .await
        .ok()?;
    rep.error.is_none().then_some(c)
}

/// `ctrl-p,ctrl-q` → `[16, 17]` (Docker's detach-key syntax), with the
/// daemon's wording of a bad list.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    berth_api::detach::parse(s)
        .map_err(|_| EngineError::invalid(format!("Invalid escape keys ({s}) provided")))
}

/// Outcome of pumping the client's stdin.
pub enum StdinEnd {
    Eof,
    Detached,
    Gone,
}

/// Scans input for the detach sequence, holding back a partial match.
pub struct Escape {
    keys: Vec<u8>,
    held: usize,
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, held: 0 }
    }

    /// Returns the bytes to forward and whether the sequence completed.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return (out, false);
        }
        for &b in data {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// Copies client stdin to the shim as chunks until EOF, detach or error.
pub async fn pump_stdin<R, W>(
    client: &mut R,
    shim_w: &mut W,
    esc: &mut Escape,
    buffered: Vec<u8>,
) -> StdinEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !buffered.is_empty() {
        let (fwd, det) = esc.feed(&buffered);
        if !fwd.is_empty() && shim_w.write_all(&stdin_chunk(&fwd)).await.is_err() {
            return StdinEnd::Gone;
        }
        if det {
            return StdinEnd::Detached;
        }
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) => return StdinEnd::Eof,
            Ok(n) => n,
            Err(_) => return StdinEnd::Gone,
        };
        let (fwd, det) = esc.feed(&buf[..n]);
        if !fwd.is_empty() && shim_w.write_all(&stdin_chunk(&fwd)).await.is_err() {
            return StdinEnd::Gone;
        }
        if det {
            return StdinEnd::Detached;
        }
    }
}

/// Copies shim frames to the client: as they are for a non-TTY container
/// (Docker's multiplexed framing), payload only for a TTY.
pub async fn pump_output<R, W>(shim_r: &mut R, client: &mut W, tty: bool) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    loop {
        if shim_r.read_exact(&mut header).await.is_err() {
            break;
        }
        let n = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(n, 0);
        shim_r.read_exact(&mut buf).await?;
        if header[0] == berth_api::shim::EXIT_STREAM {
            break;
        }
        if !tty {
            client.write_all(&header).await?;
        }
        client.write_all(&buf).await?;
    }
    client.flush().await
}

pub struct AttachSession {
    engine: Arc<Containers>,
    c: Arc<super::Container>,
    opts: AttachOptions,
    keys: Vec<u8>,
    pub tty: bool,
}

impl Containers {
    pub fn attach_container(
        self: &Arc<Self>,
        key: &str,
        opts: AttachOptions,
    ) -> Result<AttachSession> {
        let c = self.find(key)?;
        let r = c.snapshot();
        // As moby: the detach sequence is honoured on a TTY only.
        let keys = match opts.detach_keys.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => parse_detach_keys(k)?,
            None => vec![16, 17],
        };
        let keys = if r.config.tty.unwrap_or(false) {
            keys
        } else {
            vec![]
        };
        // dockerd's words, naming the container as the client did.
        match r.state.status {
            super::Status::Paused => {
                return Err(EngineError::conflict(format!(
                    "container {key} is paused, unpause the container before attach"
                )))
            }
            super::Status::Restarting => {
                return Err(EngineError::conflict(format!(
                    "container {key} is restarting, wait until the container is running"
                )))
            }
            _ => {}
        }
        Ok(AttachSession {
            engine: self.clone(),
            tty: r.config.tty.unwrap_or(false),
            c,
            opts,
            keys,
        })
    }
}

impl AttachSession {
    /// Writes the container's whole log for the chosen streams, framed as
    /// the live output is (multiplexed without a TTY, raw with one).
    async fn replay_log<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        if !self.opts.stdout && !self.opts.stderr {
            return Ok(());
        }
        let opts = LogOptions {
            stdout: self.opts.stdout,
            stderr: self.opts.stderr,
            ..LogOptions::default()
        };
        // A log driver that cannot be read back has nothing to replay.
        let Ok((_, mut rx)) = self.engine.container_logs(&self.c.id, opts) else {
            return Ok(());
        };
        while let Some(b) = rx.recv().await {
            w.write_all(&b).await?;
        }
        w.flush().await
    }

    /// Runs the session on the client's (hijacked) connection.
    pub async fn run<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (mut cr, mut cw) = tokio::io::split(io);
        if self.opts.logs && self.replay_log(&mut cw).await.is_err() {
            return;
        }
        let rec = self.c.snapshot();
        self.engine.container_event(&rec, "attach", &[]);
        if !self.opts.stream {
            let _ = cw.shutdown().await;
            return;
        }
        let socket = self.engine.paths(&self.c.id).socket;
        let mut buffered = Vec::new();
        let mut client_eof = false;
        let conn = if rec.state.status.is_running() {
            open(&socket, &self.opts).await
        } else {
            let (tx, mut rx) = oneshot::channel();
            self.c
                .pending
                .lock()
                .unwrap_or_else(|x| x.into_inner())
                .push(Pending {
                    opts: self.opts.clone(),
                    tx,
                });
            // Hold stdin until the start connects us.
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                tokio::select! {
                    r = &mut rx => break r.ok(),
                    n = cr.read(&mut buf), if self.opts.stdin && !client_eof => match n {
                        Ok(0) | Err(_) => client_eof = true,
                        Ok(n) => {
                            if buffered.len() < 16 << 20 {
                                buffered.extend_from_slice(&buf[..n]);
                            }
                        }
                    },
                }
            }
        };
        let Some(conn) = conn else {
            let _ = cw.shutdown().await;
            return;
        };
        let (mut sr, mut sw) = tokio::io::split(conn.stream);
        let tty = self.tty;
        let mut esc = Escape::new(self.keys.clone());
        let stdin_wanted = self.opts.stdin;
        let input = async {
            if !stdin_wanted {
                // Keep reading so a client hang-up is noticed; data is ignored.
                return std::future::pending::<StdinEnd>().await;
            }
            if client_eof {
                let (fwd, det) = esc.feed(&buffered);
                if !fwd.is_empty() {
                    let _ = sw.write_all(&stdin_chunk(&fwd)).await;
                }
                if det {
                    return StdinEnd::Detached;
                }
                let _ = sw.write_all(&stdin_chunk(&[])).await;
                return std::future::pending::<StdinEnd>().await;
            }
            match pump_stdin(&mut cr, &mut sw, &mut esc, std::mem::take(&mut buffered)).await {
                StdinEnd::Eof => {
                    let _ = sw.write_all(&stdin_chunk(&[])).await;
                    std::future::pending::<StdinEnd>().await
                }
                other => other,
            }
        };
        let output = pump_output(&mut sr, &mut cw, tty);
        tokio::select! {
            end = input => {
                if let StdinEnd::Detached = end {
                    self.engine.container_event(&self.c.snapshot(), "detach", &[]);
                }
            }
            _ = output => {}
        }
        let _ = cw.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_match() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("ctrl-pp").unwrap_err().to_string(),
            "Invalid escape keys (ctrl-pp) provided"
        );
        let mut e = Escape::new(vec![16, 17]);
        assert_eq!(e.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(e.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(e.feed(b"x\x10\x11y"), (b"x".to_vec(), true));
    }
}
