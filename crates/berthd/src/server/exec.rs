//! Exec routes.

use berth_api::models::{ExecConfig, ExecStartConfig};
use http::StatusCode;
use serde::Serialize;

use super::containers::size_of;
use super::hijack;
use super::http::{empty, json, ok_shaped, status_only, ApiResult, Req};
use super::Ctx;
use berth_api::shapes;

#[derive(Serialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

pub async fn create(ctx: &Ctx, mut req: Req, container: &str) -> ApiResult {
    let cfg: ExecConfig = req.json().await?;
    let id = ctx.engine.containers.create_exec(container, cfg)?;
    json(StatusCode::CREATED, &Created { id })
}

pub async fn start(ctx: &Ctx, mut req: Req, id: &str) -> ApiResult {
    let body: ExecStartConfig = req.json_or_default().await?;
    let session = ctx.engine.containers.start_exec(id)?;
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

pub async fn inspect(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    ok_shaped(
        &ctx.engine.containers.inspect_exec(id)?,
        &shapes::EXEC_INSPECT,
        req.version,
    )
}

pub async fn resize(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let (h, w) = size_of(&req)?;
    ctx.engine.containers.resize_exec(id, h, w).await?;
    let mut r = status_only(StatusCode::OK)?;
    *r.body_mut() = empty();
    Ok(r)
}
