//! Container routes: thin wrappers over the engine.

use berth_api::models::ContainerCreateBody;
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
use crate::engine::containers::CreateOptions;
use berth_api::shapes;

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

pub async fn create(ctx: &Ctx, mut req: Req) -> ApiResult {
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
    let (id, warnings) = ctx.engine.containers.create_container(opts, body)?;
    // `docker run` asks for the start next: its preparation starts now.
    ctx.engine.containers.prepare_ahead(&id);
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

pub async fn inspect(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let c = ctx
        .engine
        .containers
        .inspect_container(id, req.query.bool("size"))?;
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

pub async fn start(ctx: &Ctx, _req: Req, id: &str) -> ApiResult {
    ctx.engine.containers.start_container(id).await?;
    no_content()
}

pub async fn stop(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    ctx.engine
        .containers
        .stop_container(id, req.query.int("t")?, req.query.get("signal"))
        .await?;
    no_content()
}

pub async fn restart(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    ctx.engine
        .containers
        .restart_container(id, req.query.int("t")?, req.query.get("signal"))
        .await?;
    no_content()
}

pub async fn kill(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    ctx.engine
        .containers
        .kill_container(id, req.query.get("signal"))
        .await?;
    no_content()
}

pub async fn pause(ctx: &Ctx, _req: Req, id: &str, on: bool) -> ApiResult {
    ctx.engine.containers.pause_container(id, on).await?;
    no_content()
}

pub async fn remove(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    if req.query.bool("link") {
        ctx.engine.containers.remove_link(id)?;
        return no_content();
    }
    ctx.engine
        .containers
        .remove_container(id, req.query.bool("force"), req.query.bool("v"))
        .await?;
    no_content()
}

pub async fn rename(ctx: &Ctx, req: Req, id: &str) -> ApiResult {
    let name = req.query.get("name").unwrap_or("");
    ctx.engine.containers.rename_container(id, name)?;
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
