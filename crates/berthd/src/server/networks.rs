//! Network routes.

use berth_api::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use http::StatusCode;
use serde::Serialize;

use super::error::ApiError;
use super::http::{json, no_content, ok_json, ok_shaped, status_only, ApiResult, Req};
use super::Ctx;
use berth_api::shapes;

#[derive(Serialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Warning")]
    warning: String,
}

pub async fn create(ctx: &Ctx, mut req: Req) -> ApiResult {
    let body: NetworkCreateRequest = req.json().await?;
    let (id, warning) = ctx.engine.create_network(body).await?;
    json(StatusCode::CREATED, &Created { id, warning })
}

pub async fn list(ctx: &Ctx, req: Req) -> ApiResult {
    let list = ctx.engine.list_networks(&req.query.filters()?)?;
    ok_shaped(&list, &shapes::NETWORK_LIST, req.version)
}

pub async fn inspect(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let n = ctx.engine.inspect_network(id)?;
    ok_shaped(&n, &shapes::NETWORK_INSPECT, req.version)
}

pub async fn remove(ctx: &Ctx, _req: Req, id: &str) -> ApiResult {
    ctx.engine.remove_network(id).await?;
    no_content()
}

pub async fn prune(ctx: &Ctx, req: Req) -> ApiResult {
    #[derive(Serialize)]
    struct Pruned {
        #[serde(rename = "NetworksDeleted")]
        deleted: Option<Vec<String>>,
    }
    let gone = ctx.engine.prune_networks(&req.query.filters()?).await?;
    ok_json(&Pruned {
        deleted: (!gone.is_empty()).then_some(gone),
    })
}

pub async fn connect(ctx: &Ctx, mut req: Req, id: &str) -> ApiResult {
    let body: NetworkConnectRequest = req.json().await?;
    let c = body
        .container
        .ok_or_else(|| ApiError::bad_request("container is required"))?;
    ctx.engine
        .connect_network(id, &c, body.endpoint_config)
        .await?;
    status_only(StatusCode::OK)
}

pub async fn disconnect(ctx: &Ctx, mut req: Req, id: &str) -> ApiResult {
    let body: NetworkDisconnectRequest = req.json().await?;
    let c = body
        .container
        .ok_or_else(|| ApiError::bad_request("container is required"))?;
    ctx.engine
        .disconnect_network(id, &c, body.force.unwrap_or(false))
        .await?;
    status_only(StatusCode::OK)
}
