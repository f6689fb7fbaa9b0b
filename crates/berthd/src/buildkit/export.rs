//! The exporters whose result is an archive the client keeps: `docker`
//! and `oci` (the image as `docker save` writes it, which is both a
//! docker-archive and an OCI image layout) and `tar` (the image's root
//! filesystem). The archive goes back through the client's session: we
//! call its `moby.filesync.v1.FileSend/DiffCopy`, send the bytes as
//! `BytesMessage` chunks, close our side and wait for the client's end.
//! `local` (the root filesystem as files in the client's directory) goes
//! through the same method, as fsutil's packets (see `sendfs`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use super::jobs::Job;
use super::progress::Vtx;
use super::proto::fsutil::types::Packet;
use super::proto::moby::buildkit::v1 as pb;
use super::proto::moby::filesync::v1::BytesMessage;
use super::{BuildKit, BuildKitError};
use crate::engine::fs::snapshot::RwLayer;
use crate::engine::fs::{pack, PackOptions};
use crate::engine::Engine;

/// The bytes per message; well under gRPC's 4 MiB default.
pub(super) const CHUNK: usize = 32 * 1024;

/// How long an export waits for its session.
const SESSION_WAIT: Duration = Duration::from_secs(60);

/// The method the client serves to receive the archive.
const FILE_SEND: &str = "/moby.filesync.v1.FileSend/DiffCopy";

/// Whether `t` is one of the archive exporters.
pub(super) fn is_archive(t: &str) -> bool {
    matches!(t, "docker" | "oci" | "tar")
}

/// Whether `t` is one of the exporters here (the archives and `local`).
pub(super) fn to_client(t: &str) -> bool {
    is_archive(t) || t == "local"
}

/// A blocking writer whose bytes go to a channel as chunks of at most
/// `CHUNK` bytes; `flush` sends what is left.
pub(super) struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    pub(super) fn new(tx: mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("the client stopped receiving"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.send(full)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.send(rest)?;
        }
        Ok(())
    }
}

/// The image's overlay, mounted for reading; unmounted and removed on drop.
struct Mounted {
    dir: std::path::PathBuf,
    rw: RwLayer,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.rw.unmount();
        if !self.rw.is_mounted() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Mounts `image` as a discardable overlay under the builder's scratch
/// space; only read.
fn mount(engine: &Engine, image: &str) -> Result<Mounted, BuildKitError> {
    let dir = engine.builder.scratch_dir("export");
    let m = Mounted {
        rw: RwLayer::at(&dir),
        dir,
    };
    engine.containers.mount_rw(&m.rw, image, true)?;
    Ok(m)
}

fn write_archive(
    engine: &Engine,
    kind: &str,
    image: &str,
    names: &[String],
    w: ChunkWriter,
) -> Result<(), BuildKitError> {
    let mut w = if kind == "tar" {
        let m = mount(engine, image)?;
        pack(&m.rw.merged, w, &PackOptions::default())
            .map_err(|e| BuildKitError::Build(format!("exporting the filesystem: {e}")))?
    } else {
        let plan = if names.is_empty() {
            engine.images.prepare_save(&[image.to_string()])?
        } else {
            engine.images.prepare_save(names)?
        };
        engine.images.write_save(&plan, w)?
    };
    w.flush()?;
    Ok(())
}

impl BuildKit {
    /// Sends the `docker`, `oci` or `tar` archive of `image` to the job's
    /// session; the exporter's response.
    pub(super) async fn export_archive(
        &self,
        job: &Arc<Job>,
        image: &str,
        exporter: &pb::Exporter,
    ) -> Result<HashMap<String, String>, BuildKitError> {
        let kind = exporter.r#type.clone();
        let title = match kind.as_str() {
            "tar" => "exporting to client tarball".to_string(),
            "local" => "exporting to client directory".to_string(),
            k => format!("exporting to {k} image format"),
        };
        let v = Vtx::start(job, &title);
        let r = if kind == "local" {
            self.send_tree(job, image).await
        } else {
            self.send_archive(job, image, exporter, &v).await
        };
        // A transfer cut by the session's drop says so.
        let r = match (r, self.sessions.dropped(&job.session)) {
            (Err(_), Some(why)) => Err(BuildKitError::SessionGone(job.session.clone(), why)),
            (r, _) => r,
        };
        match &r {
            Ok(_) => v.done(),
            Err(e) => v.fail(&e.to_string()),
        }
        r
    }

    /// The `local` exporter: the image's files, through fsutil's packets.
    async fn send_tree(
        &self,
        job: &Arc<Job>,
        image: &str,
    ) -> Result<HashMap<String, String>, BuildKitError> {
        let session = self.sessions.wait(&job.session, SESSION_WAIT).await?;
        if !session.serves_any_case(FILE_SEND) {
            return Err(BuildKitError::Invalid(format!(
                "the local exporter needs a client that receives files: its session does not serve {FILE_SEND}"
            )));
        }
        let (out_tx, out_rx) = mpsc::channel::<Packet>(64);
        let (in_tx, in_rx) = mpsc::channel::<Packet>(64);
        let engine = self.engine.clone();
        let id = image.to_string();
        let server = tokio::task::spawn_blocking(move || {
            let m = mount(&engine, &id)?;
            super::sendfs::serve(&m.rw.merged, in_rx, out_tx).map_err(|msg| {
                BuildKitError::Transfer {
                    what: "the local export".into(),
                    msg,
                }
            })
        });
        let talk = async {
            let mut answers = session
                .file_send_packets(ReceiverStream::new(out_rx))
                .await?;
            while let Some(p) = answers.message().await? {
                if in_tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok::<(), BuildKitError>(())
        }
        .await;
        drop(in_tx);
        server
            .await
            .map_err(|e| BuildKitError::Build(format!("export worker: {e}")))??;
        talk?;
        Ok(HashMap::new())
    }

    async fn send_archive(
        &self,
        job: &Arc<Job>,
        image: &str,
        exporter: &pb::Exporter,
        v: &Vtx,
    ) -> Result<HashMap<String, String>, BuildKitError> {
        let kind = exporter.r#type.clone();
        let session = self.sessions.wait(&job.session, SESSION_WAIT).await?;
        if !session.serves_any_case(FILE_SEND) {
            return Err(BuildKitError::Invalid(format!(
                "the {kind} exporter needs a client that receives files: its session does not serve {FILE_SEND}"
            )));
        }
        let (mut names, mut saved) = (Vec::new(), Vec::new());
        if kind != "tar" {
            // The archive names the image as the store does.
            for (r, tag) in self.tag_names(image, exporter, v)? {
                names.push(r.to_string());
                saved.push(format!("{}:{tag}", r.name()));
            }
        }
        v.status("sending tarball", 0);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
        let engine = self.engine.clone();
        let (k, id, n) = (kind.clone(), image.to_string(), saved);
        let writer = tokio::task::spawn_blocking(move || {
            write_archive(&engine, &k, &id, &n, ChunkWriter::new(tx))
        });
        let out = ReceiverStream::new(rx).map(|data| BytesMessage { data });
        let sent = async {
            let mut answer = session.file_send().diff_copy(out).await?.into_inner();
            while answer.message().await?.is_some() {}
            Ok::<(), BuildKitError>(())
        }
        .await;
        let written = writer
            .await
            .map_err(|e| BuildKitError::Build(format!("export worker: {e}")))?;
        // The archive's own failure explains a broken transfer best.
        written?;
        sent?;
        let mut resp = HashMap::new();
        if kind != "tar" {
            resp.insert("containerimage.digest".into(), image.to_string());
            resp.insert("containerimage.config.digest".into(), image.to_string());
            if !names.is_empty() {
                resp.insert("image.name".into(), names.join(","));
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_bounded_and_complete() {
        let (tx, mut rx) = mpsc::channel(1024);
        let data: Vec<u8> = (0..(CHUNK * 3 + 123)).map(|i| (i % 251) as u8).collect();
        let d2 = data.clone();
        std::thread::spawn(move || {
            let mut w = ChunkWriter::new(tx);
            w.write_all(&d2[..10]).unwrap();
            w.write_all(&d2[10..]).unwrap();
            w.flush().unwrap();
        })
        .join()
        .unwrap();
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sizes.push(c.len());
            got.extend(c);
        }
        assert_eq!(got, data);
        assert_eq!(sizes, vec![CHUNK, CHUNK, CHUNK, 123]);
    }

    #[test]
    fn a_gone_reader_fails_the_writer() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut w = ChunkWriter::new(tx);
        assert!(w.write_all(&vec![0u8; CHUNK]).is_err());
    }

    #[test]
    fn archive_kinds() {
        assert!(is_archive("docker") && is_archive("oci") && is_archive("tar"));
        assert!(!is_archive("moby") && !is_archive("local"));
        assert!(to_client("local") && to_client("tar") && !to_client("moby"));
    }
}
