//! Container I/O the way the docker CLI moves it: hijacked attach/exec
//! sessions (stdin in, output out, framed by `Config.Tty`), the
//! multiplexed-stream decoder, `wait` registered before `start`, and TTY
//! size tracking.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use bollard::Docker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::raw::{self, Raw};
use crate::term::Escape;

/// Decoder for Docker's multiplexed stream: 8-byte headers
/// `[stream, 0, 0, 0, size(u32 BE)]`, each followed by `size` bytes.
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Feeds bytes; calls `out(stream, payload)` for each complete frame.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut out: impl FnMut(u8, &[u8]) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while self.buf.len() - at >= 8 {
            let h = &self.buf[at..at + 8];
            let n = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.buf.len() - at - 8 < n {
                break;
            }
            let kind = h[0];
            let payload = &self.buf[at + 8..at + 8 + n];
            match kind {
                0..=2 => out(kind, payload)?,
                3 => bail!(
                    "error from daemon in stream: {}",
                    String::from_utf8_lossy(payload)
                ),
                k => bail!("Unrecognized input header: {k}"),
            }
            at += 8 + n;
        }
        self.buf.drain(..at);
        Ok(())
    }
}

/// Writes a frame's payload where docker puts it: stdin echoes and stdout
/// to stdout, stderr to stderr.
pub fn write_frame(kind: u8, payload: &[u8]) -> std::io::Result<()> {
    if kind == 2 {
        let mut e = std::io::stderr().lock();
        e.write_all(payload)?;
        e.flush()
    } else {
        write_stdout(payload)
    }
}

pub fn write_stdout(b: &[u8]) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(b)?;
    o.flush()
}

/// How a hijacked session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The daemon closed the stream (the process exited, or it was stopped).
    Closed,
    /// The user typed the detach keys.
    Detached,
}

pub struct Session {
    pub tty: bool,
    /// Our stdin, when the session takes it.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// The detach sequence to watch for (TTY sessions with stdin, as docker).
    pub detach_keys: Option<Vec<u8>>,
    /// Whether any output stream is attached.
    pub output: bool,
}

/// Runs a hijacked session until the output ends (or, without output,
/// until stdin ends), or the user detaches.
pub async fn pump(io: raw::Stream, s: Session) -> anyhow::Result<End> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let Session {
        tty,
        stdin,
        detach_keys,
        output: has_output,
    } = s;
    let input = async move {
        if let Some(mut rx) = stdin {
            let mut esc = detach_keys.map(Escape::new);
            while let Some(chunk) = rx.recv().await {
                let (n, hit) = match esc.as_mut() {
                    Some(e) => e.feed(&chunk),
                    None => (chunk.len(), false),
                };
                // The keys go to the daemon too: it detaches and closes.
                if wr.write_all(&chunk[..n]).await.is_err() || wr.flush().await.is_err() {
                    return End::Closed;
                }
                if hit {
                    return End::Detached;
                }
            }
        }
        // Half-close: the daemon then closes the process's stdin but keeps
        // sending its output.
        let _ = wr.shutdown().await;
        End::Closed
    };
    let output = async move {
        let mut demux = Demux::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            if tty {
                write_stdout(&buf[..n])?;
            } else {
                demux.feed(&buf[..n], write_frame)?;
            }
        }
    };
    tokio::pin!(input, output);
    let mut input_done = false;
    loop {
        tokio::select! {
            r = &mut output => {
                let r: anyhow::Result<()> = r;
                r?;
                return Ok(End::Closed);
            }
            end = &mut input, if !input_done => {
                input_done = true;
                if end == End::Detached {
                    // Let the daemon act on the keys and close; don't hang
                    // if it doesn't.
                    let _ = tokio::time::timeout(Duration::from_secs(1), &mut output).await;
                    return Ok(End::Detached);
                }
                if !has_output {
                    return Ok(End::Closed);
                }
            }
        }
    }
}

/// A `wait` registered with the daemon (its headers arrived), whose result
/// comes when the container reaches the condition.
pub struct Waiter(tokio::task::JoinHandle<anyhow::Result<i64>>);

impl Waiter {
    pub async fn start(raw: &Raw, id: &str, condition: &str) -> anyhow::Result<Self> {
        // No condition means `not-running`, as `docker wait` sends it.
        let mut path = format!("/containers/{}/wait", raw::seg(id));
        if !condition.is_empty() {
            path.push_str(&format!(
                "?{}",
                raw::query(&[("condition", condition.to_string())])
            ));
        }
        let r = raw.send("POST", &path, None, false).await?;
        if r.status >= 400 {
            return Err(r.error().await.into());
        }
        Ok(Self(tokio::spawn(async move {
            let body = r.body().await?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| anyhow::anyhow!("bad wait response: {e}"))?;
            if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
                bail!("{m}");
            }
            Ok(v["StatusCode"].as_i64().unwrap_or(0))
        })))
    }

    pub async fn status(self) -> anyhow::Result<i64> {
        self.0.await?
    }
}

#[derive(Clone)]
pub enum TtyOf {
    Container(String),
    Exec(String),
}

async fn resize(d: &Docker, of: &TtyOf, (h, w): (u16, u16)) -> anyhow::Result<()> {
    match of {
        TtyOf::Container(id) => {
            d.resize_container_tty(
                id,
                bollard::query_parameters::ResizeContainerTTYOptions {
                    h: h.into(),
                    w: w.into(),
                },
            )
            .await?
        }
        TtyOf::Exec(id) => {
            d.resize_exec(
                id,
                bollard::exec::ResizeExecOptions {
                    height: h,
                    width: w,
                },
            )
            .await?
        }
    }
    Ok(())
}

/// Sends our terminal's size now and after every SIGWINCH, as docker's
/// `MonitorTtySize`. The first resize is retried a few times: an exec's
/// process may not be running yet.
pub fn monitor_tty_size(d: Docker, of: TtyOf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(size) = crate::term::console_size() else {
            return;
        };
        let mut ok = false;
        for i in 0..10u64 {
            if resize(&d, &of, size).await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10 * (i + 1))).await;
        }
        if !ok {
            eprintln!("failed to resize tty, using default size");
        }
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some(size) = crate::term::console_size() {
                let _ = resize(&d, &of, size).await;
            }
        }
    })
}

/// Forwards the signals the CLI receives to the container (docker's
/// `--sig-proxy`, used when there is no TTY).
pub fn proxy_signals(d: Docker, id: String) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ];
        let (tx, mut rx) = mpsc::channel::<&'static str>(8);
        for (kind, name) in kinds {
            let Ok(mut s) = signal(kind) else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(name).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        while let Some(name) = rx.recv().await {
            let _ = d
                .kill_container(
                    &id,
                    Some(bollard::query_parameters::KillContainerOptions {
                        signal: name.to_string(),
                    }),
                )
                .await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_splits_frames_across_reads() {
        let mut d = Demux::default();
        let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
        let data = b"\x01\0\0\0\0\0\0\x04out\n\x02\0\0\0\0\0\0\x04err\n";
        for piece in data.chunks(5) {
            d.feed(piece, |k, p| {
                got.push((k, p.to_vec()));
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(got, vec![(1, b"out\n".to_vec()), (2, b"err\n".to_vec())]);
        let err = d
            .feed(b"\x03\0\0\0\0\0\0\x04bad!", |_, _| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("bad!"));
    }
}
