//! The engine as the builder's `Backend`: a RUN step is an ordinary
//! container (created, attached, started, waited for, removed), a scratch
//! root is mounted as a container's is, and a FROM image is pulled as
//! `docker pull` does.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use berth_api::models::{ContainerCreateBody, HealthConfig, HostConfig};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, DuplexStream, ReadBuf};
use tokio::task::JoinHandle;

use super::attach::AttachOptions;
use super::lifecycle::WaitCondition;
use super::CreateOptions;
use crate::engine::builder::{Backend, Started, StepConfig};
use crate::engine::fs::snapshot::RwLayer;
use crate::engine::registry::{Progress, PullRequest};
use crate::engine::{containers::Containers, Result};

impl Backend for Containers {
    fn pull_image(
        self: Arc<Self>,
        req: PullRequest,
        progress: Progress,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let prepared = self.registries.prepare_pull(req).await?;
            prepared.run(progress).await
        })
    }

    fn create_step(&self, cfg: StepConfig) -> Result<String> {
        let body = ContainerCreateBody {
            image: Some(cfg.image),
            entrypoint: Some(cfg.argv),
            env: Some(cfg.env),
            user: cfg.user,
            working_dir: cfg.working_dir,
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            healthcheck: Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            labels: Some(Default::default()),
            host_config: Some(HostConfig {
                network_mode: Some(match cfg.network_mode.as_str() {
                    "" => "default".into(),
                    m => m.to_string(),
                }),
                extra_hosts: Some(cfg.extra_hosts).filter(|h| !h.is_empty()),
                shm_size: cfg.shm_size,
                ..Default::default()
            }),
            ..Default::default()
        };
        let (id, _) = self.create_container(
            CreateOptions {
                name: None,
                platform: None,
            },
            body,
        )?;
        Ok(id)
    }

    fn start_step(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Started>> {
        Box::pin(async move {
            let session = self.attach_container(
                &id,
                AttachOptions {
                    stdin: false,
                    stdout: true,
                    stderr: true,
                    detach_keys: None,
                    logs: false,
                    stream: true,
                },
            )?;
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let attach = tokio::spawn(session.run(theirs));
            // The attach must be waiting before the start, or output is lost.
            let c = self.find(&id)?;
            for _ in 0..500 {
                if !c
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let waiter = self.wait_container(&id, WaitCondition::NextExit)?;
            self.start_container(&id).await?;
            Ok(Started {
                output: Box::new(Output {
                    stream: ours,
                    attach,
                }),
                exit: Box::pin(waiter.wait()),
            })
        })
    }

    fn remove_step<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.remove_container(id, true, true))
    }

    fn step_layer(&self, id: &str) -> RwLayer {
        self.paths(id).rw
    }

    fn mount_scratch(&self, rw: &RwLayer, image_id: &str) -> Result<()> {
        // Read into a layer, then dropped: no need to sync it.
        self.mount_rw(rw, image_id, true)
    }
}

/// A step's attached output; dropping it ends the attach.
struct Output {
    stream: DuplexStream,
    attach: JoinHandle<()>,
}

impl AsyncRead for Output {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.attach.abort();
    }
}
