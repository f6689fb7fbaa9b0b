//! Volume routes, against the narrow backend they need (moby's
//! `router/volume` and its `Backend`), so that they can be tested alone.

use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::models::{Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse};
use http::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use super::http::{no_content, ok_shaped, shaped, ApiResult, Req};
use crate::engine::volumes::Status;
use crate::engine::{Engine, Result};
use berth_api::shapes;

/// What the volume routes ask of the engine.
pub trait Backend: Send + Sync + 'static {
    fn create_volume(&self, body: VolumeCreateOptions) -> Result<Volume>;
    /// The volume, and the `Status` its plugin gives (if any).
    fn inspect_volume(&self, name: &str) -> Result<(Volume, Option<Status>)>;
    fn list_volumes(&self, filters: &Filters) -> Result<VolumeListResponse>;
    fn remove_volume(&self, name: &str, force: bool) -> Result<()>;
    fn prune_volumes(&self, filters: &Filters) -> Result<VolumePruneResponse>;
}

impl Backend for Engine {
    fn create_volume(&self, body: VolumeCreateOptions) -> Result<Volume> {
        self.volumes.create_volume(body)
    }
    fn inspect_volume(&self, name: &str) -> Result<(Volume, Option<Status>)> {
        self.volumes.inspect_volume(name)
    }
    fn list_volumes(&self, filters: &Filters) -> Result<VolumeListResponse> {
        self.volumes.list_volumes(filters)
    }
    fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        self.volumes.remove_volume(name, force)
    }
    fn prune_volumes(&self, filters: &Filters) -> Result<VolumePruneResponse> {
        self.volumes.prune_volumes(filters)
    }
}

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

pub async fn create<B: Backend>(b: &B, mut req: Req) -> ApiResult {
    let body: VolumeCreateOptions = req.json_or_default().await?;
    let v = wire(&b.create_volume(body)?);
    shaped(
        StatusCode::CREATED,
        &v,
        &shapes::VOLUME_INSPECT,
        req.version,
    )
}

pub async fn list<B: Backend>(b: &B, req: Req) -> ApiResult {
    let list = b.list_volumes(&req.query.filters()?)?;
    let vols: Vec<Value> = list.volumes.unwrap_or_default().iter().map(wire).collect();
    let v = serde_json::json!({ "Volumes": vols, "Warnings": list.warnings });
    shaped(StatusCode::OK, &v, &shapes::VOLUME_LIST, req.version)
}

pub async fn inspect<B: Backend>(b: &B, req: Req, name: &str) -> ApiResult {
    let (v, status) = b.inspect_volume(name)?;
    let mut v = wire(&v);
    if let Some(status) = status {
        v["Status"] = serde_json::json!(status);
    }
    shaped(StatusCode::OK, &v, &shapes::VOLUME_INSPECT, req.version)
}

/// Removing a volume deletes its files: off the async workers.
pub async fn remove<B: Backend>(b: Arc<B>, req: Req, name: &str) -> ApiResult {
    let (name, force) = (name.to_string(), req.query.bool("force"));
    tokio::task::spawn_blocking(move || b.remove_volume(&name, force))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    no_content()
}

pub async fn prune<B: Backend>(b: Arc<B>, req: Req) -> ApiResult {
    let mut f = req.query.filters()?;
    // Before 1.42 a prune took named volumes too (dockerd's router adds
    // `all=true` for those clients).
    if !req.version.at_least(1, 42) && !f.contains("all") {
        f.add("all", "true");
    }
    let r = tokio::task::spawn_blocking(move || b.prune_volumes(&f))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    ok_shaped(&r, &shapes::VOLUME_PRUNE, req.version)
}

#[cfg(test)]
mod tests {
    use berth_api::version::ApiVersion;

    use super::*;
    use crate::engine::EngineError;
    use crate::server::testing::{json, req, Asked};

    /// A backend that records what it was asked.
    #[derive(Default)]
    struct Fake {
        asked: Asked,
    }

    impl Backend for Fake {
        fn create_volume(&self, _: VolumeCreateOptions) -> Result<Volume> {
            Err(EngineError::internal("not used"))
        }
        fn inspect_volume(&self, name: &str) -> Result<(Volume, Option<Status>)> {
            if name != "data" && name != "remote" {
                return Err(EngineError::not_found(format!(
                    "get {name}: no such volume"
                )));
            }
            let status =
                (name == "remote").then(|| [("size".to_string(), serde_json::json!(42))].into());
            Ok((
                Volume {
                    name: name.into(),
                    driver: "local".into(),
                    labels: Default::default(),
                    options: Default::default(),
                    ..Default::default()
                },
                status,
            ))
        }
        fn list_volumes(&self, _: &Filters) -> Result<VolumeListResponse> {
            Ok(VolumeListResponse::default())
        }
        fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
            self.asked.note(format!("remove {name} force={force}"));
            Ok(())
        }
        fn prune_volumes(&self, f: &Filters) -> Result<VolumePruneResponse> {
            self.asked
                .note(format!("prune all={:?}", f.get_bool("all").ok().flatten()));
            Ok(VolumePruneResponse::default())
        }
    }

    #[tokio::test]
    async fn inspect_writes_empty_maps_as_null_and_errors_as_docker() {
        let b = Fake::default();
        let (status, v) = json(
            inspect(
                &b,
                req(http::Method::GET, "", ApiVersion::new(1, 50)),
                "data",
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["Name"], "data");
        assert_eq!(v["Labels"], Value::Null);
        assert_eq!(v["Options"], Value::Null);
        assert!(v.get("Status").is_none(), "{v}");
        let (_, v) = json(
            inspect(
                &b,
                req(http::Method::GET, "", ApiVersion::new(1, 50)),
                "remote",
            )
            .await,
        )
        .await;
        assert_eq!(v["Status"], serde_json::json!({"size": 42}));
        let (status, v) = json(
            inspect(
                &b,
                req(http::Method::GET, "", ApiVersion::new(1, 50)),
                "nope",
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["message"], "get nope: no such volume");
    }

    #[tokio::test]
    async fn remove_passes_force_and_prune_takes_named_volumes_before_1_42() {
        let b = Arc::new(Fake::default());
        let r = remove(
            b.clone(),
            req(http::Method::GET, "force=1", ApiVersion::new(1, 50)),
            "data",
        )
        .await;
        assert_eq!(json(r).await.0, StatusCode::NO_CONTENT);
        prune(
            b.clone(),
            req(http::Method::GET, "", ApiVersion::new(1, 41)),
        )
        .await
        .unwrap();
        prune(
            b.clone(),
            req(http::Method::GET, "", ApiVersion::new(1, 42)),
        )
        .await
        .unwrap();
        assert_eq!(
            b.asked.all(),
            [
                "remove data force=true",
                "prune all=Some(true)",
                "prune all=None"
            ]
        );
    }
}
