//! Volume routes.

use berth_api::models::{Volume, VolumeCreateOptions};
use http::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use super::http::{json, no_content, ok_json, ApiResult, Req};
use super::Ctx;

/// A volume as Docker writes it: empty `Labels`/`Options` are `null`.
fn wire(v: &Volume) -> Value {
    let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
    for k in ["Labels", "Options"] {
        if j.get(k)
            .and_then(Value::as_object)
            .is_some_and(|m| m.is_empty())
        {
            j[k] = Value::Null;
        }
    }
    j
}

pub async fn create(ctx: &Ctx, mut req: Req) -> ApiResult {
    let body: VolumeCreateOptions = req.json_or_default().await?;
    json(StatusCode::CREATED, &wire(&ctx.engine.create_volume(body)?))
}

pub async fn list(ctx: &Ctx, req: Req) -> ApiResult {
    let list = ctx.engine.list_volumes(&req.query.filters()?)?;
    let vols: Vec<Value> = list.volumes.unwrap_or_default().iter().map(wire).collect();
    ok_json(&serde_json::json!({ "Volumes": vols, "Warnings": null }))
}

pub async fn inspect(ctx: &Ctx, _req: Req, name: &str) -> ApiResult {
    ok_json(&wire(&ctx.engine.inspect_volume(name)?))
}

/// Removing a volume deletes its files: off the async workers.
pub async fn remove(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
    let (engine, name, force) = (
        ctx.engine.clone(),
        name.to_string(),
        req.query.bool("force"),
    );
    tokio::task::spawn_blocking(move || engine.remove_volume(&name, force))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    no_content()
}

pub async fn prune(ctx: &Ctx, req: Req) -> ApiResult {
    let (engine, mut f) = (ctx.engine.clone(), req.query.filters()?);
    // Before API 1.42 prune took named volumes too: as dockerd, older
    // clients get the `all` filter added for them.
    if !req.version.at_least(1, 42) {
        f.add("all", "true");
    }
    let r = tokio::task::spawn_blocking(move || engine.prune_volumes(&f))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    ok_json(&r)
}
