//! What a build needs of the rest of the engine beyond images, as moby's
//! builder `Backend`: a RUN step's container (create, start with its output
//! attached, remove), a scratch root mounted over an image, and the pull
//! of a FROM image. The engine implements it (`containers/build_steps.rs`)
//! and hands itself to each build, so the builder holds no engine (which
//! owns the builder) and never imports the containers module.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::io::AsyncRead;

use crate::engine::fs::snapshot::RwLayer;
use crate::engine::registry::{Progress, PullRequest};
use crate::engine::Result;

/// A RUN step's container: the step's command as its entrypoint (no Cmd),
/// its output attached, no health check, the build's network options.
#[derive(Debug, Clone, Default)]
pub struct StepConfig {
    /// The image the step runs on (the previous step's).
    pub image: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// `networkmode`: empty for the default network.
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    pub shm_size: Option<i64>,
}

/// A started step container.
pub struct Started {
    /// Its stdout and stderr, multiplexed in Docker's attach framing
    /// (stdcopy); it ends with the process, and dropping it detaches.
    pub output: Box<dyn AsyncRead + Send + Unpin>,
    /// Its exit code, once it has exited.
    pub exit: BoxFuture<'static, i64>,
}

pub trait Backend: Send + Sync {
    /// Pulls a FROM image into the image store, its JSON progress lines
    /// sent to `progress`.
    fn pull_image(
        self: Arc<Self>,
        req: PullRequest,
        progress: Progress,
    ) -> BoxFuture<'static, Result<()>>;

    /// Creates a RUN step's container; its ID.
    fn create_step(&self, cfg: StepConfig) -> Result<String>;

    /// Starts a step container with its output attached from the first byte.
    fn start_step(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Started>>;

    /// Removes a step container (forced, with its anonymous volumes).
    fn remove_step<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The rw layer a step container wrote, committed as the step's layer.
    fn step_layer(&self, id: &str) -> RwLayer;

    /// Prepares and mounts `rw` over the layers of `image_id` (none for an
    /// empty ID), to be read into a layer and dropped (COPY, ADD, WORKDIR,
    /// `COPY --from`'s source).
    fn mount_scratch(&self, rw: &RwLayer, image_id: &str) -> Result<()>;
}
