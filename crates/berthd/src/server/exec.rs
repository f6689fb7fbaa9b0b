//! Exec routes, against the narrow `Backend` they need (moby's
//! `router/container`'s exec backend). Start hands the engine's
//! `ExecSession` to the hijack: a fake can refuse a start, and the session
//! itself is the engine's to test.

use std::future::Future;
use std::sync::Arc;

use berth_api::models::{ExecConfig, ExecInspectResponse, ExecStartConfig};
use http::StatusCode;
use serde::Serialize;

use super::containers::size_of;
use super::hijack;
use super::http::{empty, json, ok_shaped, status_only, ApiResult, Req};
use crate::engine::containers::exec::ExecSession;
use crate::engine::containers::Containers;
use crate::engine::Result;
use berth_api::shapes;

/// What the exec routes ask of the container service.
pub trait Backend: Send + Sync + 'static {
    /// The new exec's ID; a container that is not running (or paused) is
    /// a conflict.
    fn create_exec(&self, container: &str, cfg: ExecConfig) -> Result<String>;
    /// The engine's session, run detached or on the hijacked connection.
    fn start_exec(self: &Arc<Self>, id: &str) -> Result<ExecSession>;
    fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse>;
    fn resize_exec(&self, id: &str, h: u16, w: u16) -> impl Future<Output = Result<()>> + Send;
}

impl Backend for Containers {
    fn create_exec(&self, container: &str, cfg: ExecConfig) -> Result<String> {
        Containers::create_exec(self, container, cfg)
    }
    fn start_exec(self: &Arc<Self>, id: &str) -> Result<ExecSession> {
        Containers::start_exec(self, id)
    }
    fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse> {
        Containers::inspect_exec(self, id)
    }
    async fn resize_exec(&self, id: &str, h: u16, w: u16) -> Result<()> {
        Containers::resize_exec(self, id, h, w).await
    }
}

#[derive(Serialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

pub async fn create<B: Backend>(b: &B, mut req: Req, container: &str) -> ApiResult {
    let cfg: ExecConfig = req.json().await?;
    let id = b.create_exec(container, cfg)?;
    json(StatusCode::CREATED, &Created { id })
}

pub async fn start<B: Backend>(b: &Arc<B>, mut req: Req, id: &str) -> ApiResult {
    let body: ExecStartConfig = req.json_or_default().await?;
    let session = b.start_exec(id)?;
    if body.detach.unwrap_or(false) {
        // Answered once the process has started, as dockerd does.
        session.run_detached().await;
        return status_only(StatusCode::OK);
    }
    let tty = session.tty;
    if req.upgrade.is_some() {
        return hijack::upgrade(&mut req, tty, move |io| session.run(Some(io)))
            .unwrap_or_else(|| Err(hijack::no_upgrade()));
    }
    // Without an upgrade the output streams in the response body.
    Ok(hijack::plain(move |io| session.run(Some(io))))
}

pub async fn inspect<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    ok_shaped(&b.inspect_exec(id)?, &shapes::EXEC_INSPECT, req.version)
}

pub async fn resize<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    let (h, w) = size_of(&req)?;
    b.resize_exec(id, h, w).await?;
    let mut r = status_only(StatusCode::OK)?;
    *r.body_mut() = empty();
    Ok(r)
}
