//! Container routes: thin wrappers over the container service, written
//! against the narrow `Backend` they need (moby's `router/container` and
//! its backend), so that they can be tested alone (`tests.rs`, on a fake).
//! Attach hands the engine's `AttachSession` to the hijack: a fake can
//! refuse an attach, and the session itself is the engine's to test.

use std::future::Future;
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerSummary,
    ContainerTopResponse, ContainerUpdateBody, FilesystemChange,
};
use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use super::error::ApiError;
use super::hijack::{self, stream_content_type};
use super::http::{
    json, no_content, ok_json, ok_shaped, shaped, stream, stream_of, ApiResult, Req,
};
use super::system::parse_ts;
use crate::engine::containers::attach::{AttachOptions, AttachSession};
use crate::engine::containers::commit::CommitOptions;
use crate::engine::containers::lifecycle::WaitCondition;
use crate::engine::containers::logs::LogOptions;
use crate::engine::containers::{Containers, CreateOptions};
use crate::engine::Result;
use berth_api::shapes;
use tokio::sync::mpsc;

/// What the container routes ask of the container service.
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
    fn list_containers(
        &self,
        all: bool,
        limit: Option<i64>,
        size: bool,
        filters: &Filters,
    ) -> Result<Vec<ContainerSummary>>;
    /// The IDs removed and the bytes reclaimed.
    fn prune_containers(
        &self,
        filters: &Filters,
    ) -> impl Future<Output = Result<(Vec<String>, i64)>> + Send;
    fn top(&self, key: &str, ps_args: &str) -> Result<ContainerTopResponse>;
    /// Checked now (a missing container is an error before any answer);
    /// the future resolves with the exit code once `cond` holds.
    fn wait_container(
        &self,
        key: &str,
        cond: WaitCondition,
    ) -> Result<impl Future<Output = i64> + Send + 'static>;
    fn resize_container(
        &self,
        key: &str,
        h: u16,
        w: u16,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Whether the container has a TTY, and its log stream (framed when not).
    fn container_logs(
        self: &Arc<Self>,
        key: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Bytes>)>;
    /// The engine's session, run on the hijacked connection.
    fn attach_container(self: &Arc<Self>, key: &str, opts: AttachOptions) -> Result<AttachSession>;
    /// Stats documents, one per message.
    fn container_stats(
        self: &Arc<Self>,
        key: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<mpsc::Receiver<Bytes>>;
    /// The warnings of the new configuration.
    fn update_container(
        &self,
        key: &str,
        body: ContainerUpdateBody,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The root file system as a tar stream.
    fn export_container(
        self: &Arc<Self>,
        key: &str,
    ) -> impl Future<Output = Result<mpsc::Receiver<Bytes>>> + Send;
    /// `None` when the container has no changes (dockerd sends `null`).
    fn container_changes(&self, key: &str) -> Result<Option<Vec<FilesystemChange>>>;
    /// The new image's ID.
    fn commit_container(
        self: &Arc<Self>,
        key: &str,
        opts: CommitOptions,
    ) -> impl Future<Output = Result<String>> + Send;
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
    fn list_containers(
        &self,
        all: bool,
        limit: Option<i64>,
        size: bool,
        filters: &Filters,
    ) -> Result<Vec<ContainerSummary>> {
        Containers::list_containers(self, all, limit, size, filters)
    }
    async fn prune_containers(&self, filters: &Filters) -> Result<(Vec<String>, i64)> {
        Containers::prune_containers(self, filters).await
    }
    fn top(&self, key: &str, ps_args: &str) -> Result<ContainerTopResponse> {
        Containers::top(self, key, ps_args)
    }
    fn wait_container(
        &self,
        key: &str,
        cond: WaitCondition,
    ) -> Result<impl Future<Output = i64> + Send + 'static> {
        Ok(Containers::wait_container(self, key, cond)?.wait())
    }
    async fn resize_container(&self, key: &str, h: u16, w: u16) -> Result<()> {
        Containers::resize_container(self, key, h, w).await
    }
    fn container_logs(
        self: &Arc<Self>,
        key: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Bytes>)> {
        Containers::container_logs(self, key, opts)
    }
    fn attach_container(self: &Arc<Self>, key: &str, opts: AttachOptions) -> Result<AttachSession> {
        Containers::attach_container(self, key, opts)
    }
    fn container_stats(
        self: &Arc<Self>,
        key: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<mpsc::Receiver<Bytes>> {
        Containers::container_stats(self, key, stream, one_shot)
    }
    async fn update_container(&self, key: &str, body: ContainerUpdateBody) -> Result<Vec<String>> {
        Containers::update_container(self, key, body).await
    }
    async fn export_container(self: &Arc<Self>, key: &str) -> Result<mpsc::Receiver<Bytes>> {
        Containers::export_container(self, key).await
    }
    fn container_changes(&self, key: &str) -> Result<Option<Vec<FilesystemChange>>> {
        Containers::container_changes(self, key)
    }
    async fn commit_container(self: &Arc<Self>, key: &str, opts: CommitOptions) -> Result<String> {
        Containers::commit_container(self, key, opts).await
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

pub async fn list<B: Backend>(b: &B, req: Req) -> ApiResult {
    let f = req.query.filters()?;
    let list = b.list_containers(
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

pub async fn top<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    ok_json(&b.top(id, req.query.get("ps_args").unwrap_or(""))?)
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

pub async fn wait<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    let cond = WaitCondition::parse(req.query.get("condition"))?;
    let waiter = b.wait_container(id, cond)?;
    let legacy_error = !req.version.at_least(1, 42);
    // Headers now: the CLI sends `start` only after it has them.
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    let gone = req.client_gone();
    tokio::spawn(async move {
        // A client that leaves ends the wait, as in dockerd (whose request
        // context is cancelled): nothing holds its connection meanwhile.
        let code = tokio::select! {
            code = waiter => code,
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

pub async fn prune<B: Backend>(b: &B, req: Req) -> ApiResult {
    #[derive(Serialize)]
    struct Pruned {
        #[serde(rename = "ContainersDeleted")]
        deleted: Option<Vec<String>>,
        #[serde(rename = "SpaceReclaimed")]
        space: i64,
    }
    let f = req.query.filters()?;
    let (deleted, space) = b.prune_containers(&f).await?;
    ok_json(&Pruned {
        deleted: (!deleted.is_empty()).then_some(deleted),
        space,
    })
}

pub async fn resize<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    let (h, w) = size_of(&req)?;
    b.resize_container(id, h, w).await?;
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

pub async fn logs<B: Backend>(b: &Arc<B>, req: Req, id: &str) -> ApiResult {
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
        details: q.bool("details"),
        tail,
    };
    let (tty, mut rx) = b.container_logs(id, opts)?;
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

pub async fn attach<B: Backend>(b: &Arc<B>, mut req: Req, id: &str) -> ApiResult {
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
        let session = match b.attach_container(id, opts) {
            Ok(s) => s,
            Err(e) => return Ok(hijack::refused(e.into())),
        };
        let tty = session.tty;
        return hijack::upgrade(&mut req, tty, move |io| session.run(io))
            .unwrap_or_else(|| Err(hijack::no_upgrade()));
    }
    // No Upgrade header: stream the output in a plain response.
    let session = b.attach_container(
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

pub async fn stats<B: Backend>(b: &Arc<B>, req: Req, id: &str) -> ApiResult {
    let stream_on = req.query.bool_or("stream", true);
    let one_shot = req.query.bool("one-shot");
    let mut rx = b.container_stats(id, stream_on, one_shot)?;
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
    Ok(stream_of(StatusCode::OK, "application/json", rx))
}

pub async fn update<B: Backend>(b: &B, mut req: Req, id: &str) -> ApiResult {
    let raw: serde_json::Value = req.json().await?;
    if let Some(name) = raw.pointer("/RestartPolicy/Name").and_then(|v| v.as_str()) {
        check_restart_name(name)?;
    }
    let body: ContainerUpdateBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let warnings = b.update_container(id, body).await?;
    // dockerd (20.10 and 28 alike) sends `null`, not `[]`, when there are none.
    let warnings = (!warnings.is_empty()).then_some(warnings);
    ok_json(&serde_json::json!({ "Warnings": warnings }))
}

pub async fn export<B: Backend>(b: &Arc<B>, _req: Req, id: &str) -> ApiResult {
    let rx = b.export_container(id).await?;
    // dockerd sets no type; Go's sniffing names a tar `application/octet-stream`.
    Ok(stream_of(StatusCode::OK, "application/octet-stream", rx))
}

pub async fn changes<B: Backend>(b: &B, _req: Req, id: &str) -> ApiResult {
    ok_json(&b.container_changes(id)?)
}

pub async fn commit<B: Backend>(b: &Arc<B>, mut req: Req) -> ApiResult {
    let q = req.query.clone();
    let container = q.get("container").unwrap_or("").to_string();
    if container.is_empty() {
        return Err(ApiError::bad_request("container is required"));
    }
    let config: Option<ContainerConfig> = {
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
    let opts = CommitOptions {
        repo: q.get("repo").unwrap_or("").to_string(),
        tag: q.get("tag").unwrap_or("").to_string(),
        comment: q.get("comment").unwrap_or("").to_string(),
        author: q.get("author").unwrap_or("").to_string(),
        pause: q.bool_or("pause", true),
        changes: q.all("changes").to_vec(),
        config,
    };
    let id = b.commit_container(&container, opts).await?;
    json(StatusCode::CREATED, &serde_json::json!({ "Id": id }))
}

#[cfg(test)]
mod tests;
