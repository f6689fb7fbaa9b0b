//! `POST /build` (the classic builder) and `POST /build/prune`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_api::jsonmessage::JsonMessage;
use bytes::Bytes;
use http::StatusCode;

use super::error::ApiError;
use super::http::{ok_json, stream, ApiResult, Req};
use super::Ctx;
use crate::engine::builder::{Backend, BuildOptions};
use crate::engine::images::reference::Reference;
use crate::engine::registry::endpoint::normalize_server_address;
use crate::engine::registry::AuthConfig;

fn json_param<T: serde::de::DeserializeOwned + Default>(
    req: &Req,
    key: &str,
) -> Result<T, ApiError> {
    match req.query.get(key).filter(|s| !s.trim().is_empty()) {
        None => Ok(T::default()),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
    }
}

pub async fn build(ctx: &Ctx, mut req: Req) -> ApiResult {
    let q = &req.query;
    // moby's parseVersion: absent or empty is the classic builder.
    match q.get("version").unwrap_or("") {
        "" | "1" | "2" => {}
        v => return Err(ApiError::bad_request(format!("invalid version {v}"))),
    }
    if q.bool("squash") {
        return Err(ApiError::bad_request(
            "squash is only supported with experimental mode",
        ));
    }
    let mut tags = Vec::new();
    for t in q.all("t") {
        let r = Reference::parse(t)?;
        if r.digest.is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid tag {t:?}: a build cannot be tagged with a digest"
            )));
        }
        tags.push(r);
    }
    // X-Registry-Config: base64 JSON of registry → credentials, for the
    // pulls of FROM images.
    let mut registry_auth = HashMap::new();
    if let Some(h) = req.header("X-Registry-Config").filter(|h| !h.is_empty()) {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(h.trim())
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h.trim()))
            .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Config: {e}")))?;
        // A CLI with no config file at all sends `null` (Go decodes it to an
        // empty map).
        let m: Option<HashMap<String, AuthConfig>> = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Config: {e}")))?;
        for (server, mut c) in m.unwrap_or_default() {
            c.fill_from_auth();
            registry_auth.insert(normalize_server_address(&server), c);
        }
    }
    let opts = BuildOptions {
        dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
        tags,
        quiet: q.bool("q"),
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        rm: q.bool_or("rm", true),
        force_rm: q.bool("forcerm"),
        network_mode: q.get("networkmode").unwrap_or("").to_string(),
        // The CLI sends them comma-separated, or the parameter repeated.
        extra_hosts: q
            .all("extrahosts")
            .iter()
            .flat_map(|h| h.split(','))
            .filter(|h| !h.is_empty())
            .map(String::from)
            .collect(),
        shm_size: q.int("shmsize")?.filter(|s| *s != 0),
        cache_from: json_param::<Vec<String>>(&req, "cachefrom")?,
        build_args: json_param::<BTreeMap<String, Option<String>>>(&req, "buildargs")?,
        labels: json_param::<BTreeMap<String, String>>(&req, "labels")?,
        target: q.get("target").unwrap_or("").to_string(),
        platform: q.get("platform").unwrap_or("").to_string(),
        remote: q.get("remote").unwrap_or("").to_string(),
        registry_auth,
    };
    match opts.network_mode.as_str() {
        "" | "default" | "bridge" | "none" | "host" => {}
        other => {
            ctx.engine.networks.find(other)?;
        }
    }
    if req.query.get("version") == Some("2") {
        return build_v2(ctx, req, opts).await;
    }
    let body: Box<dyn std::io::Read + Send> = Box::new(req.body_reader());
    let (jtx, mut jrx) = tokio::sync::mpsc::channel::<JsonMessage>(64);
    let engine = ctx.engine.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        // The engine runs the build's containers and pulls.
        let backend: Arc<dyn Backend> = engine.clone();
        engine
            .builder
            .build(backend, body, opts, jtx, ready_tx)
            .await
    });
    // Errors before the build starts (context, Dockerfile) are the answer.
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {}
    }
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    tokio::spawn(async move {
        while let Some(m) = jrx.recv().await {
            if tx.send(Bytes::from(m.to_line())).await.is_err() {
                // The client left: dropping the receiver ends the build.
                return;
            }
        }
    });
    Ok(resp)
}

/// `POST /build?version=2`: the BuildKit service builds (see
/// `buildkit::buildv2`); its refusals come before any output, with
/// dockerd's statuses.
async fn build_v2(ctx: &Ctx, mut req: Req, opts: BuildOptions) -> ApiResult {
    use crate::buildkit::BuildKitError as E;
    let get = |k: &str| req.query.get(k).unwrap_or("").to_string();
    let v2 = crate::buildkit::BuildV2 {
        session: get("session"),
        build_id: get("buildid"),
        remote: opts.remote.clone(),
        outputs: get("outputs"),
        opts: BuildOptions {
            remote: String::new(),
            ..opts
        },
        body: Box::new(req.body_reader()),
    };
    let mut rx = match ctx.buildkit.clone().build_v2(v2).await {
        Ok(rx) => rx,
        Err(E::Engine(e)) => return Err(e.into()),
        Err(e @ (E::Invalid(_) | E::Unsupported(_))) => {
            return Err(ApiError::bad_request(e.to_string()))
        }
        Err(E::Grpc(s)) if s.code() == tonic::Code::AlreadyExists => {
            return Err(ApiError::new(StatusCode::CONFLICT, s.message().to_string()))
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    Ok(resp)
}

pub async fn prune(ctx: &Ctx, req: Req) -> ApiResult {
    let filters = req.query.filters()?;
    ok_json(&ctx.engine.builder.prune_build_cache(&filters).await?)
}

/// `POST /build/cancel`: classic builds end when their client goes away.
/// `POST /build/cancel`: the classic builder has nothing to cancel. dockerd
/// answers 200 with a JSON type and no body (and refuses a missing ID, with
/// a 500 there; bad input is a 400 here).
pub async fn cancel(_ctx: &Ctx, req: Req) -> ApiResult {
    if req.query.get("id").unwrap_or("").is_empty() {
        return Err(ApiError::bad_request("build ID not provided"));
    }
    let mut r = super::http::status_only(StatusCode::OK)?;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
