//! Container routes: thin wrappers over the container service. Create,
//! inspect, the lifecycle verbs, rename and remove are written against the
//! narrow `Backend` they need (moby's `router/container` and its backend),
//! so that they can be tested alone; the streaming routes (wait, logs,
//! attach, stats, export) still take the server's context.

use std::future::Future;
use std::sync::Arc;

use berth_api::models::{ContainerCreateBody, ContainerInspectResponse};
use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use super::error::ApiError;
use super::hijack::{self, stream_content_type};
use super::http::{json, no_content, ok_json, ok_shaped, shaped, stream, ApiResult, Req};
use super::system::parse_ts;
use super::Ctx;
use crate::engine::containers::attach::AttachOptions;
use crate::engine::containers::lifecycle::WaitCondition;
use crate::engine::containers::logs::LogOptions;
use crate::engine::containers::{Containers, CreateOptions};
use crate::engine::Result;
use berth_api::shapes;

/// What the create, inspect, lifecycle, rename and remove routes ask of
/// the container service.
pub trait Backend: Send + Sync + 'static {
    /// The new container's ID and the warnings of its configuration.
    fn create_container(
        &self,
        opts: CreateOptions,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>)>;
    /// Starts preparing the start `docker run` asks for next.
    fn prepare_ahead(self: &Arc<Self>, id: &str);
    fn inspect_container(&self, key: &str, size: bool) -> Result<ContainerInspectResponse>;
    fn start_container(self: &Arc<Self>, key: &str) -> impl Future<Output = Result<()>> + Send;
    fn stop_container(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn restart_container(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn kill_container(
        &self,
        key: &str,
        signal: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn pause_container(&self, key: &str, pause: bool) -> impl Future<Output = Result<()>> + Send;
    fn remove_container(
        &self,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// `DELETE /containers/{parent/alias}?link=1`.
    fn remove_link(&self, name: &str) -> Result<()>;
    fn rename_container(&self, key: &str, new_name: &str) -> Result<()>;
}

impl Backend for Containers {
    fn create_container(
        &self,
        opts: CreateOptions,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>)> {
        Containers::create_container(self, opts, body)
    }
    fn prepare_ahead(self: &Arc<Self>, id: &str) {
        Containers::prepare_ahead(self, id)
    }
    fn inspect_container(&self, key: &str, size: bool) -> Result<ContainerInspectResponse> {
        Containers::inspect_container(self, key, size)
    }
    async fn start_container(self: &Arc<Self>, key: &str) -> Result<()> {
        Containers::start_container(self, key).await
    }
    async fn stop_container(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        Containers::stop_container(self, key, timeout, signal).await
    }
    async fn restart_container(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        Containers::restart_container(self, key, timeout, signal).await
    }
    async fn kill_container(&self, key: &str, signal: Option<&str>) -> Result<()> {
        Containers::kill_container(self, key, signal).await
    }
    async fn pause_container(&self, key: &str, pause: bool) -> Result<()> {
        Containers::pause_container(self, key, pause).await
    }
    async fn remove_container(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        Containers::remove_container(self, key, force, volumes).await
    }
    fn remove_link(&self, name: &str) -> Result<()> {
        Containers::remove_link(self, name)
    }
    fn rename_container(&self, key: &str, new_name: &str) -> Result<()> {
        Containers::rename_container(self, key, new_name)
    }
}

#[derive(Serialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Warnings")]
    warnings: Vec<String>,
}

fn check_restart_name(name: &str) -> Result<(), ApiError> {
    if ["", "no", "always", "unless-stopped", "on-failure"].contains(&name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid restart policy '{name}'"
        )))
    }
}

/// Values the typed body cannot hold, refused with dockerd's messages
/// (rather than a decoding error).
fn check_enums(raw: &serde_json::Value) -> Result<(), ApiError> {
    let get = |p: &str| raw.pointer(p).and_then(|v| v.as_str());
    if let Some(name) = get("/HostConfig/RestartPolicy/Name") {
        check_restart_name(name)?;
    }
    if let Some(m) = get("/HostConfig/Isolation") {
        if !["", "default"].contains(&m) {
            // dockerd 20.10 answers this one with a 500; bad input is the
            // client's error (and a 5xx makes clients retry), so 400.
            return Err(ApiError::bad_request(format!(
                "Invalid isolation: {m:?} - linux only supports 'default'"
            )));
        }
    }
    if let Some(m) = get("/HostConfig/CgroupnsMode") {
        if !["", "private", "host"].contains(&m) {
            return Err(ApiError::bad_request(format!(
                "invalid cgroup namespace mode: {m}"
            )));
        }
    }
    Ok(())
}

pub async fn create<B: Backend>(b: &Arc<B>, mut req: Req) -> ApiResult {
    let raw: serde_json::Value = req.json().await?;
    check_enums(&raw)?;
    if !req.version.at_least(1, 44) {
        // One endpoint at create before API 1.44 (more come with connect).
        if let Some(eps) = raw
            .pointer("/NetworkingConfig/EndpointsConfig")
            .and_then(|v| v.as_object())
            .filter(|m| m.len() > 1)
        {
            let names: Vec<&str> = eps.keys().map(String::as_str).collect();
            return Err(ApiError::bad_request(format!(
                "Container cannot be connected to network endpoints: {}",
                names.join(", ")
            )));
        }
    }
    let body: ContainerCreateBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let opts = CreateOptions {
        name: req.query.get("name").map(String::from),
        platform: req.query.get("platform").map(String::from),
    };
    let (id, warnings) = b.create_container(opts, body)?;
    // `docker run` asks for the start next: its preparation starts now.
    b.prepare_ahead(&id);
    json(StatusCode::CREATED, &Created { id, warnings })
}

pub async fn list(ctx: &Ctx, req: Req) -> ApiResult {
    let f = req.query.filters()?;
    let list = ctx.engine.containers.list_containers(
        req.query.bool("all"),
        req.query.int("limit")?,
        req.query.bool("size"),
        &f,
    )?;
    ok_shaped(&list, &shapes::CONTAINER_LIST, req.version)
}

pub async fn inspect<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    let c = b.inspect_container(id, req.query.bool("size"))?;
    let mut v = serde_json::to_value(&c).map_err(|e| ApiError::internal(e.to_string()))?;
    if !req.version.at_least(1, 45) {
        legacy_aliases(&mut v);
    }
    shaped(StatusCode::OK, &v, &shapes::CONTAINER_INSPECT, req.version)
}

/// Before API 1.45 an endpoint's `Aliases` on a user-defined network also
/// held the short container ID and the hostname (DNSNames replaced that).
fn legacy_aliases(v: &mut serde_json::Value) {
    let short: String = v["Id"].as_str().unwrap_or("").chars().take(12).collect();
    let host = v["Config"]["Hostname"].as_str().unwrap_or("").to_string();
    let Some(nets) = v
        .pointer_mut("/NetworkSettings/Networks")
        .and_then(|n| n.as_object_mut())
    else {
        return;
    };
    for (name, ep) in nets.iter_mut() {
        if ["bridge", "host", "none", "default"].contains(&name.as_str())
            || name.starts_with("container:")
        {
            continue;
        }
        let mut aliases: Vec<serde_json::Value> =
            ep["Aliases"].as_array().cloned().unwrap_or_default();
        for extra in [&short, &host] {
            if !extra.is_empty() && !aliases.iter().any(|a| a == extra.as_str()) {
                aliases.push(extra.as_str().into());
            }
        }
        ep["Aliases"] = serde_json::Value::Array(aliases);
    }
}

pub async fn start<B: Backend>(b: &Arc<B>, _req: Req, id: &str) -> ApiResult {
    b.start_container(id).await?;
    no_content()
}

pub async fn stop<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    b.stop_container(id, req.query.int("t")?, req.query.get("signal"))
        .await?;
    no_content()
}

pub async fn restart<B: Backend>(b: &Arc<B>, req: Req, id: &str) -> ApiResult {
    b.restart_container(id, req.query.int("t")?, req.query.get("signal"))
        .await?;
    no_content()
}

pub async fn kill<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    b.kill_container(id, req.query.get("signal")).await?;
    no_content()
}

pub async fn pause<B: Backend>(b: &B, _req: Req, id: &str, on: bool) -> ApiResult {
    b.pause_container(id, on).await?;
    no_content()
}

pub async fn remove<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    if req.query.bool("link") {
        b.remove_link(id)?;
        return no_content();
    }
    b.remove_container(id, req.query.bool("force"), req.query.bool("v"))
        .await?;
    no_content()
}

pub async fn rename<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    let name = req.query.get("name").unwrap_or("");
    b.rename_container(id, name)?;
    no_content()
}

pub async fn top(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    ok_json(
        &ctx.engine
            .containers
            .top(id, req.query.get("ps_args").unwrap_or(""))?,
    )
}

/// The wait answer. dockerd 20.10 (API 1.41) always sent `"Error": null`;
/// from moby 23 (API 1.42) `Error` is omitted when there was none.
#[derive(Serialize)]
struct WaitBody {
    #[serde(rename = "Error", skip_serializing_if = "Option::is_none")]
    error: Option<Option<()>>,
    #[serde(rename = "StatusCode")]
    status_code: i64,
}

pub async fn wait(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let cond = WaitCondition::parse(req.query.get("condition"))?;
    let waiter = ctx.engine.containers.wait_container(id, cond)?;
    let legacy_error = !req.version.at_least(1, 42);
    // Headers now: the CLI sends `start` only after it has them.
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    let gone = req.client_gone();
    tokio::spawn(async move {
        // A client that leaves ends the wait, as in dockerd (whose request
        // context is cancelled): nothing holds its connection meanwhile.
        let code = tokio::select! {
            code = waiter.wait() => code,
            _ = gone.wait() => return,
        };
        let mut b = serde_json::to_vec(&WaitBody {
            error: legacy_error.then_some(None),
            status_code: code,
        })
        .unwrap_or_default();
        b.push(b'\n');
        let _ = tx.send(Bytes::from(b)).await;
    });
    Ok(resp)
}

pub async fn prune(ctx: &Ctx, req: Req) -> ApiResult {
    #[derive(Serialize)]
    struct Pruned {
        #[serde(rename = "ContainersDeleted")]
        deleted: Option<Vec<String>>,
        #[serde(rename = "SpaceReclaimed")]
        space: i64,
    }
    let f = req.query.filters()?;
    let (deleted, space) = ctx.engine.containers.prune_containers(&f).await?;
    ok_json(&Pruned {
        deleted: (!deleted.is_empty()).then_some(deleted),
        space,
    })
}

pub async fn resize(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let (h, w) = size_of(&req)?;
    ctx.engine.containers.resize_container(id, h, w).await?;
    // 200 with no body and no Content-Type, as dockerd.
    super::http::status_only(StatusCode::OK)
}

/// `h` and `w` of a resize, both required, with the errors of Go's
/// `strconv.Atoi` that dockerd passes on.
pub fn size_of(req: &Req) -> Result<(u16, u16), ApiError> {
    let atoi = |k: &str| -> Result<i64, ApiError> {
        let v = req.query.get(k).unwrap_or("");
        let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::bad_request(format!(
                "strconv.Atoi: parsing {v:?}: invalid syntax"
            )));
        }
        v.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing {v:?}: value out of range"))
        })
    };
    let h = atoi("h")?;
    let w = atoi("w")?;
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(ApiError::bad_request("invalid terminal size"));
    }
    Ok((h as u16, w as u16))
}

pub async fn logs(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let q = &req.query;
    let tail = match q.get("tail") {
        None | Some("") | Some("all") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail: {t}")))?
                .max(0) as usize,
        ),
    };
    let opts = LogOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        follow: q.bool("follow"),
        since: q
            .get("since")
            .filter(|s| !s.is_empty() && *s != "0")
            .map(parse_ts)
            .transpose()?,
        until: q
            .get("until")
            .filter(|s| !s.is_empty() && *s != "0")
            .map(parse_ts)
            .transpose()?,
        timestamps: q.bool("timestamps"),
        tail,
    };
    let (tty, mut rx) = ctx.engine.containers.container_logs(id, opts)?;
    let (tx, resp) = stream(StatusCode::OK, stream_content_type(req.version, tty));
    let gone = req.client_gone();
    tokio::spawn(async move {
        // A quiet `logs -f` would otherwise hold its connection, after the
        // client left, until the container writes or exits.
        let gone = gone.wait();
        tokio::pin!(gone);
        loop {
            let b = tokio::select! {
                b = rx.recv() => b,
                _ = &mut gone => return,
            };
            let Some(b) = b else { return };
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
    Ok(resp)
}

pub async fn attach(ctx: &Ctx, mut req: Req, id: &str) -> ApiResult {
    let q = &req.query;
    let opts = AttachOptions {
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        detach_keys: q.get("detachKeys").map(String::from),
        logs: q.bool("logs"),
        stream: q.bool("stream"),
    };
    if req.upgrade.is_some() {
        let session = match ctx.engine.containers.attach_container(id, opts) {
            Ok(s) => s,
            Err(e) => return Ok(hijack::refused(e.into())),
        };
        let tty = session.tty;
        return hijack::upgrade(&mut req, tty, move |io| session.run(io))
            .unwrap_or_else(|| Err(hijack::no_upgrade()));
    }
    // No Upgrade header: stream the output in a plain response.
    let session = ctx.engine.containers.attach_container(
        id,
        AttachOptions {
            stdin: false,
            ..opts
        },
    );
    match session {
        Ok(session) => Ok(hijack::plain(move |io| session.run(io))),
        Err(e) => Ok(hijack::refused(e.into())),
    }
}

pub async fn stats(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let stream_on = req.query.bool_or("stream", true);
    let one_shot = req.query.bool("one-shot");
    let mut rx = ctx
        .engine
        .containers
        .container_stats(id, stream_on, one_shot)?;
    if !stream_on {
        // One sample: a plain body with its length, as dockerd sends it.
        let b = rx.recv().await.unwrap_or_default();
        let mut r = http::Response::new(super::http::full(b));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
    Ok(resp)
}

pub async fn update(ctx: &Ctx, mut req: Req, id: &str) -> ApiResult {
    let raw: serde_json::Value = req.json().await?;
    if let Some(name) = raw.pointer("/RestartPolicy/Name").and_then(|v| v.as_str()) {
        check_restart_name(name)?;
    }
    let body: berth_api::models::ContainerUpdateBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let warnings = ctx.engine.containers.update_container(id, body).await?;
    // dockerd (20.10 and 28 alike) sends `null`, not `[]`, when there are none.
    let warnings = (!warnings.is_empty()).then_some(warnings);
    ok_json(&serde_json::json!({ "Warnings": warnings }))
}

pub async fn export(ctx: &Ctx, _req: Req, id: &str) -> ApiResult {
    let mut rx = ctx.engine.containers.export_container(id).await?;
    // dockerd sets no type; Go's sniffing names a tar `application/octet-stream`.
    let (tx, resp) = stream(StatusCode::OK, "application/octet-stream");
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
    Ok(resp)
}

pub async fn changes(ctx: &Ctx, _req: Req, id: &str) -> ApiResult {
    ok_json(&ctx.engine.containers.container_changes(id)?)
}

pub async fn commit(ctx: &Ctx, mut req: Req) -> ApiResult {
    let q = req.query.clone();
    let container = q.get("container").unwrap_or("").to_string();
    if container.is_empty() {
        return Err(ApiError::bad_request("container is required"));
    }
    let config: Option<berth_api::models::ContainerConfig> = {
        let b = req.bytes(super::http::MAX_JSON_BODY).await?;
        if b.iter().all(|c| c.is_ascii_whitespace()) || &b[..] == b"null" {
            None
        } else {
            Some(
                serde_json::from_slice(&b)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?,
            )
        }
    };
    let opts = crate::engine::containers::commit::CommitOptions {
        repo: q.get("repo").unwrap_or("").to_string(),
        tag: q.get("tag").unwrap_or("").to_string(),
        comment: q.get("comment").unwrap_or("").to_string(),
        author: q.get("author").unwrap_or("").to_string(),
        pause: q.bool_or("pause", true),
        changes: q.all("changes").to_vec(),
        config,
    };
    let id = ctx
        .engine
        .containers
        .commit_container(&container, opts)
        .await?;
    json(StatusCode::CREATED, &serde_json::json!({ "Id": id }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn legacy_aliases_add_short_id_and_hostname_on_user_networks() {
        let mut v = json!({
            "Id": "0123456789abcdef",
            "Config": {"Hostname": "web"},
            "NetworkSettings": {"Networks": {
                "bridge": {"Aliases": null},
                "app": {"Aliases": ["db", "web"]},
                "other": {"Aliases": null},
            }},
        });
        super::legacy_aliases(&mut v);
        let n = &v["NetworkSettings"]["Networks"];
        assert_eq!(n["bridge"]["Aliases"], json!(null));
        assert_eq!(n["app"]["Aliases"], json!(["db", "web", "0123456789ab"]));
        assert_eq!(n["other"]["Aliases"], json!(["0123456789ab", "web"]));
    }
}

#[cfg(test)]
mod backend_tests {
    use std::sync::Mutex;

    use berth_api::version::ApiVersion;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};

    use super::*;
    use crate::engine::EngineError;
    use crate::server::http::{Query, ReqBody};

    /// A backend with one running container, `web`, that records what it
    /// was asked.
    #[derive(Default)]
    struct Fake {
        asked: Mutex<Vec<String>>,
    }

    impl Fake {
        fn ask(&self, what: String) {
            self.asked.lock().unwrap().push(what);
        }
        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
        fn find(&self, key: &str) -> Result<()> {
            match key {
                "web" => Ok(()),
                _ => Err(EngineError::not_found(format!("No such container: {key}"))),
            }
        }
    }

    impl Backend for Fake {
        fn create_container(
            &self,
            opts: CreateOptions,
            body: ContainerCreateBody,
        ) -> Result<(String, Vec<String>)> {
            self.ask(format!(
                "create name={:?} image={:?}",
                opts.name, body.image
            ));
            Ok(("c0ffee".into(), Vec::new()))
        }
        fn prepare_ahead(self: &Arc<Self>, id: &str) {
            self.ask(format!("prepare {id}"));
        }
        fn inspect_container(&self, key: &str, _: bool) -> Result<ContainerInspectResponse> {
            self.find(key)?;
            Ok(ContainerInspectResponse {
                id: Some("c0ffee".into()),
                name: Some("/web".into()),
                ..Default::default()
            })
        }
        async fn start_container(self: &Arc<Self>, key: &str) -> Result<()> {
            self.find(key)
        }
        async fn stop_container(&self, key: &str, _: Option<i64>, _: Option<&str>) -> Result<()> {
            self.find(key)
        }
        async fn restart_container(
            self: &Arc<Self>,
            key: &str,
            _: Option<i64>,
            _: Option<&str>,
        ) -> Result<()> {
            self.find(key)
        }
        async fn kill_container(&self, key: &str, _: Option<&str>) -> Result<()> {
            self.find(key)
        }
        async fn pause_container(&self, key: &str, _: bool) -> Result<()> {
            self.find(key)
        }
        async fn remove_container(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
            self.find(key)?;
            if !force {
                return Err(EngineError::conflict(format!(
                    "cannot remove container \"/{key}\": container is running: stop the container before removing or force remove"
                )));
            }
            self.ask(format!("remove {key} force={force} v={volumes}"));
            Ok(())
        }
        fn remove_link(&self, name: &str) -> Result<()> {
            self.ask(format!("unlink {name}"));
            Ok(())
        }
        fn rename_container(&self, key: &str, _: &str) -> Result<()> {
            self.find(key)
        }
    }

    fn req(query: &str, body: &str) -> Req {
        Req {
            method: http::Method::POST,
            version: ApiVersion::new(1, 50),
            path: String::new(),
            query: Query::parse(Some(query)),
            headers: Default::default(),
            body: Some(ReqBody::resumed(Bytes::from(body.to_string()), None)),
            upgrade: None,
            peer: None,
        }
    }

    async fn body_of(r: ApiResult) -> (StatusCode, Value) {
        let resp = match r {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn a_missing_container_is_a_404_with_dockers_message() {
        let b = Arc::new(Fake::default());
        let (status, v) = body_of(inspect(&*b, req("", ""), "nope").await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v, json!({"message": "No such container: nope"}));
        for r in [
            start(&b, req("", ""), "nope").await,
            stop(&*b, req("t=1", ""), "nope").await,
            kill(&*b, req("", ""), "nope").await,
            rename(&*b, req("name=x", ""), "nope").await,
        ] {
            assert_eq!(body_of(r).await.0, StatusCode::NOT_FOUND);
        }
        let (status, v) = body_of(inspect(&*b, req("", ""), "web").await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["Name"], "/web");
        assert_eq!(
            body_of(start(&b, req("", ""), "web").await).await.0,
            StatusCode::NO_CONTENT
        );
    }

    #[tokio::test]
    async fn create_answers_201_with_warnings_as_an_array_and_prepares_the_start() {
        let b = Arc::new(Fake::default());
        let r = create(&b, req("name=web", r#"{"Image":"busybox"}"#)).await;
        let (status, v) = body_of(r).await;
        assert_eq!(status, StatusCode::CREATED);
        // `[]`, never `null`: the CLI prints each warning.
        assert_eq!(v, json!({"Id": "c0ffee", "Warnings": []}));
        assert_eq!(
            b.asked(),
            [
                "create name=Some(\"web\") image=Some(\"busybox\")",
                "prepare c0ffee"
            ]
        );
        // A value the typed body cannot hold: dockerd's 400, nothing created.
        let body = r#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#;
        let (status, v) = body_of(create(&b, req("", body)).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["message"], "invalid restart policy 'sometimes'");
        assert_eq!(b.asked().len(), 2);
    }

    #[tokio::test]
    async fn removing_a_running_container_needs_force_and_a_link_is_only_unlinked() {
        let b = Fake::default();
        let (status, v) = body_of(remove(&b, req("", ""), "web").await).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            v["message"],
            "cannot remove container \"/web\": container is running: stop the container before removing or force remove"
        );
        let r = remove(&b, req("force=1&v=1", ""), "web").await;
        assert_eq!(body_of(r).await.0, StatusCode::NO_CONTENT);
        let r = remove(&b, req("link=1", ""), "web/db").await;
        assert_eq!(body_of(r).await.0, StatusCode::NO_CONTENT);
        assert_eq!(b.asked(), ["remove web force=true v=true", "unlink web/db"]);
    }
}
