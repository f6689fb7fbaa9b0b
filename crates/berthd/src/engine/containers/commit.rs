//! Filesystem views of a container: `export` (a tar of the merged root),
//! `changes` (what the rw layer added, changed or deleted) and `commit`
//! (the rw layer as a new image layer).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::models::{ContainerConfig, FilesystemChange};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::Status;
use crate::engine::cgroups::freeze;
use crate::engine::fs::snapshot::Upper;
use crate::engine::fs::{self, pack, PackOptions};
use crate::engine::images::reference::Reference;
use crate::engine::{containers::Containers, EngineError, Result};

/// A `Write` that hands 64 KiB chunks to an async receiver.
struct ChanWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let b = Bytes::from(std::mem::take(&mut self.buf));
            self.tx
                .blocking_send(b)
                .map_err(|_| std::io::Error::other("client went away"))?;
        }
        Ok(())
    }
}

/// Paths the runtime creates as mount points in the rw layer; Docker keeps
/// them in a separate init layer, so they are neither changes nor committed.
const MOUNT_POINTS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev",
    "/proc",
    "/sys",
    "/sbin/docker-init",
    "/.dockerenv",
];

fn is_mount_point(p: &str) -> bool {
    MOUNT_POINTS
        .iter()
        .any(|m| p == *m || p.starts_with(&format!("{m}/")))
}

pub struct CommitOptions {
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    pub pause: bool,
    pub changes: Vec<String>,
    pub config: Option<ContainerConfig>,
}

impl Containers {
    /// Streams the container's merged root as a tar. Returns once the root
    /// is mounted, so that a failure there is the answer's status.
    pub async fn export_container(self: &Arc<Self>, key: &str) -> Result<mpsc::Receiver<Bytes>> {
        let c = self.find(key)?;
        let (tx, rx) = mpsc::channel(16);
        let (ready, mounted) = tokio::sync::oneshot::channel::<Result<()>>();
        let me = self.clone();
        tokio::spawn(async move {
            // Held while a stopped container's root is mounted for us.
            let _op = c.op.lock().await;
            let r = c.snapshot();
            let p = me.paths(&r.id);
            let mounted_here = if p.rw.is_mounted() {
                false
            } else {
                // An image gone meanwhile leaves the container's own files.
                let lowers = me.images.lowers(&r.image_id).unwrap_or_default();
                let shim = || me.shim_bin.command();
                if let Err(e) = p.rw.mount(&lowers, shim, false) {
                    tracing::warn!(id = %r.id, error = %e, "export: mounting the root");
                    let _ = ready.send(Err(e));
                    return;
                }
                true
            };
            let _ = ready.send(Ok(()));
            let merged = p.rw.merged.clone();
            let w = ChanWriter {
                tx,
                buf: Vec::new(),
            };
            let res = tokio::task::spawn_blocking(move || {
                let mut w = pack(&merged, w, &PackOptions::default())?;
                w.flush().map_err(|e| fs::ArchiveError::Io(format!("{e}")))
            })
            .await;
            if let Ok(Err(e)) = res {
                tracing::debug!(error = %e, "export ended early");
            }
            if mounted_here {
                p.rw.unmount();
            }
        });
        mounted
            .await
            .map_err(|_| EngineError::internal("export: the worker stopped"))??;
        Ok(rx)
    }

    /// Docker's `A`/`C`/`D` list from the rw layer (`None` when unchanged).
    pub fn container_changes(&self, key: &str) -> Result<Option<Vec<FilesystemChange>>> {
        let c = self.find(key)?;
        let r = c.snapshot();
        let upper = self.paths(&r.id).rw.upper;
        let lowers = self.images.lower_dirs(&r.image_id)?;
        let in_lower = |rel: &str| {
            lowers
                .iter()
                .any(|l| std::fs::symlink_metadata(l.join(rel.trim_start_matches('/'))).is_ok())
        };
        let mut out: Vec<(String, u8)> = Vec::new();
        let mut dirs: Vec<String> = Vec::new();
        walk(&upper, "", &mut |rel: &str, md: &std::fs::Metadata| {
            if is_mount_point(rel) {
                return;
            }
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                out.push((rel.to_string(), 2));
            } else if ft.is_dir() {
                if in_lower(rel) {
                    dirs.push(rel.to_string());
                } else {
                    out.push((rel.to_string(), 1));
                }
            } else {
                out.push((rel.to_string(), if in_lower(rel) { 0 } else { 1 }));
            }
        })?;
        // An existing directory counts as changed when something in it did.
        let reported: BTreeSet<String> = out.iter().map(|(p, _)| p.clone()).collect();
        for d in dirs {
            let prefix = format!("{d}/");
            if reported.iter().any(|p| p.starts_with(&prefix)) {
                out.push((d, 0));
            }
        }
        out.sort();
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            out.into_iter()
                .map(|(path, kind)| FilesystemChange {
                    path,
                    kind: kind_of(kind),
                })
                .collect(),
        ))
    }

    pub async fn commit_container(self: &Arc<Self>, key: &str, o: CommitOptions) -> Result<String> {
        let c = self.find(key)?;
        let r = c.snapshot();
        let tags = if o.repo.is_empty() {
            vec![]
        } else {
            vec![Reference::parse_repo_tag(&o.repo, &o.tag)?]
        };
        let image = self
            .images
            .get(&r.image_id)
            .ok_or_else(|| EngineError::not_found(format!("No such image: {}", r.image_id)))?;
        // The new image's config: the container's, with the changes applied.
        let mut cfg: berth_api::models::ImageConfig = serde_json::from_value(
            serde_json::to_value(o.config.clone().unwrap_or(r.config.clone()))?,
        )?;
        if o.config.is_some() {
            // Fields not given in the body come from the container.
            let base: berth_api::models::ImageConfig =
                serde_json::from_value(serde_json::to_value(&r.config)?)?;
            merge_missing(&mut cfg, &base);
        }
        crate::engine::images::apply_changes(&mut cfg, &o.changes)?;
        // Paused as `docker pause` would (state, events), so that what is
        // committed is consistent; resumed afterwards.
        let _op = if o.pause && r.state.status == Status::Running {
            Some(c.op.lock().await)
        } else {
            None
        };
        // Without a freezer (rootless, no cgroups) the commit goes on
        // unpaused, as dockerd's ignores its pause's failure.
        let frozen =
            _op.is_some() && c.status() == Status::Running && crate::engine::cgroups::can_freeze();
        if frozen {
            freeze(&r.id, true)?;
            self.set_paused(&c, true);
        }
        // Resumed on every way out, after the `commit` event (dockerd's order).
        let _resume = Resume {
            engine: self,
            container: &c,
            frozen,
        };
        let rw = self.paths(&r.id).rw;
        let parent = image.chain_ids.last().cloned();
        // moby's NewChildImage adds no layer for an empty diff; the history
        // entry says `empty_layer` instead.
        // Packing and unpacking a large upper takes seconds: off the
        // runtime's workers, so that other requests (an inspect of this very
        // container) are not held behind it.
        let me = self.clone();
        let layer = tokio::task::spawn_blocking(move || {
            rw.commit(Upper::Container, |r| {
                me.images.create_layer(parent.as_deref(), r)
            })
        })
        .await
        .map_err(|e| EngineError::internal(format!("commit: {e}")))?
        .map_err(|e| match e {
            EngineError::Internal(m) => EngineError::Internal(format!("commit: {m}")),
            other => other,
        })?;
        let mut config: serde_json::Value = serde_json::from_str(&image.raw_config)?;
        let now = super::now();
        // The parent's v1 fields are not inherited (moby builds the child's
        // config afresh); the comment lives in the history entry.
        if let Some(obj) = config.as_object_mut() {
            for k in [
                "comment",
                "container",
                "container_config",
                "parent",
                "id",
                "author",
                "docker_version",
            ] {
                obj.remove(k);
            }
        }
        config["config"] = serde_json::to_value(&cfg)?;
        config["created"] = serde_json::Value::String(now.clone());
        config["container"] = serde_json::Value::String(r.id.clone());
        config["container_config"] = serde_json::to_value(&r.config)?;
        if !o.author.is_empty() {
            config["author"] = serde_json::Value::String(o.author.clone());
        }
        if let Some(layer) = &layer {
            match config["rootfs"]["diff_ids"].as_array_mut() {
                Some(d) => d.push(serde_json::Value::String(layer.diff_id.clone())),
                None => {
                    config["rootfs"] =
                        serde_json::json!({"type": "layers", "diff_ids": [layer.diff_id]})
                }
            }
        }
        // moby: the committed config's Cmd, joined.
        let created_by = r.config.cmd.clone().unwrap_or_default().join(" ");
        let mut h = serde_json::json!({"created": now, "created_by": created_by});
        if !o.author.is_empty() {
            h["author"] = o.author.clone().into();
        }
        if !o.comment.is_empty() {
            h["comment"] = o.comment.clone().into();
        }
        if layer.is_none() {
            h["empty_layer"] = true.into();
        }
        match config["history"].as_array_mut() {
            Some(hist) => hist.push(h),
            None => config["history"] = serde_json::json!([h]),
        }
        let bytes = serde_json::to_vec(&config)?;
        // Recorded as the image's parent, as moby's commit does.
        let img = self
            .images
            .create_child_image(&bytes, &tags, Some(&r.image_id))?;
        self.container_event(
            &r,
            "commit",
            &[
                ("comment", o.comment.clone()),
                ("imageID", img.id.clone()),
                (
                    "imageRef",
                    tags.first().map(Reference::familiar).unwrap_or_default(),
                ),
            ],
        );
        Ok(img.id.clone())
    }
}

/// Thaws a container frozen for a commit when dropped.
struct Resume<'a> {
    engine: &'a Containers,
    container: &'a super::Container,
    frozen: bool,
}

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        if self.frozen && freeze(&self.container.id, false).is_ok() {
            self.engine.set_paused(self.container, false);
        }
    }
}

impl Containers {
    /// After a restart: a container a commit paused (the daemon died
    /// before the commit resumed it) is resumed.
    pub(crate) fn resume_after_commit(&self, c: &super::Container) {
        // Frozen but recorded running: the daemon died between the freeze
        // and its record (a commit's or a pause's), which was never
        // acknowledged.
        if c.status() == Status::Running && crate::engine::cgroups::is_frozen(&c.id) {
            tracing::info!(id = %c.id, "thawing a container frozen by an operation cut off");
            if let Err(e) = freeze(&c.id, false) {
                tracing::warn!(id = %c.id, error = %e, "thawing");
            }
            return;
        }
        if c.lock().paused_for_commit && c.status() == Status::Paused {
            if let Err(e) = freeze(&c.id, false) {
                tracing::warn!(id = %c.id, error = %e, "resuming a container a commit paused");
                return;
            }
            tracing::info!(id = %c.id, "resumed a container a commit left paused");
            self.set_paused(c, false);
        }
    }

    /// Records a freeze or thaw done on the container's behalf (unless it
    /// exited meanwhile), with Docker's `pause`/`unpause` event.
    fn set_paused(&self, c: &super::Container, paused: bool) {
        let (from, to) = if paused {
            (Status::Running, Status::Paused)
        } else {
            (Status::Paused, Status::Running)
        };
        let changed = {
            let mut rec = c.lock();
            let was = rec.state.status == from;
            if was {
                rec.state.status = to;
                rec.paused_for_commit = paused;
            }
            was
        };
        if changed {
            if let Err(e) = self.persist(c) {
                tracing::warn!(id = %c.id, error = %e, "commit: recording the pause");
            }
            let action = if paused { "pause" } else { "unpause" };
            self.container_event(&c.snapshot(), action, &[]);
        }
    }
}

fn kind_of(k: u8) -> berth_api::models::ChangeType {
    match k {
        0 => berth_api::models::ChangeType::_0,
        1 => berth_api::models::ChangeType::_1,
        _ => berth_api::models::ChangeType::_2,
    }
}

fn merge_missing(cfg: &mut berth_api::models::ImageConfig, base: &berth_api::models::ImageConfig) {
    macro_rules! fill {
        ($($f:ident),*) => {$(
            if cfg.$f.is_none() {
                cfg.$f = base.$f.clone();
            }
        )*};
    }
    fill!(
        hostname,
        domainname,
        user,
        env,
        cmd,
        entrypoint,
        working_dir,
        labels,
        exposed_ports,
        volumes,
        stop_signal,
        healthcheck,
        shell,
        on_build
    );
}

fn walk(root: &Path, rel: &str, f: &mut dyn FnMut(&str, &std::fs::Metadata)) -> Result<()> {
    let dir: PathBuf = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel.trim_start_matches('/'))
    };
    let rd = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(EngineError::internal(format!(
                "reading {}: {e}",
                dir.display()
            )))
        }
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = format!("{rel}/{name}");
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        f(&p, &md);
        if md.is_dir() {
            walk(root, &p, f)?;
        }
    }
    Ok(())
}
