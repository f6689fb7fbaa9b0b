//! System routes: ping, version, info, df, events, and the swarm/plugin
//! answers a non-swarm engine gives.

use std::time::Duration;

use berth_api::events::Event;
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};

use super::error::ApiError;
use super::http::{ok_json, ok_shaped, stream, text, ApiResult, Req};
use super::Ctx;
use crate::engine::events;
use berth_api::shapes;

/// `POST /auth`: checks the credentials against the registry; the daemon
/// keeps nothing (the CLI stores them).
pub async fn auth(ctx: &Ctx, mut req: Req) -> ApiResult {
    let creds: crate::engine::registry::AuthConfig = req.json().await?;
    let token = ctx.engine.registries.login(&creds).await?;
    ok_json(&serde_json::json!({"Status": "Login Succeeded", "IdentityToken": token}))
}

pub async fn ping(_ctx: &Ctx, req: Req) -> ApiResult {
    let body = if req.method == Method::HEAD { "" } else { "OK" };
    let mut r = text(StatusCode::OK, body);
    let h = r.headers_mut();
    // BuildKit: `/grpc`, `/session` and `POST /build?version=2` are served
    // (moby >= 23 on Linux sends `2`; CLIs <= 22 then build through the
    // session, and `DOCKER_BUILDKIT=0` still picks the classic builder).
    h.insert("Builder-Version", HeaderValue::from_static("2"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if req.method == Method::HEAD {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    Ok(r)
}

pub async fn version(ctx: &Ctx, req: Req) -> ApiResult {
    ok_shaped(&ctx.engine.version(), &shapes::VERSION, req.version)
}

pub async fn info(ctx: &Ctx, req: Req) -> ApiResult {
    ok_shaped(&ctx.engine.info(), &shapes::INFO, req.version)
}

pub async fn df(ctx: &Ctx, req: Req) -> ApiResult {
    let mut du = ctx.engine.disk_usage();
    if let Some(images) = du.images.as_mut() {
        super::images::untagged_placeholders(images, req.version);
    }
    if !req.version.at_least(1, 44) {
        for i in du.images.iter_mut().flatten() {
            i.virtual_size = Some(i.size);
        }
    }
    ok_shaped(&du, &shapes::DISK_USAGE, req.version)
}

/// What dockerd answers for swarm routes on a node outside any swarm:
/// leaving says there is no swarm, everything else needs a manager.
pub async fn swarm_unavailable(_ctx: &Ctx, req: Req) -> ApiResult {
    let message = if req.method == Method::POST && req.path == "/swarm/leave" {
        "This node is not part of a swarm"
    } else {
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
    };
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message))
}

/// `since`/`until` as the CLI sends them: unix seconds, optionally `.nanos`.
pub fn parse_ts(s: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid timestamp {s:?}"));
    let (secs, nanos) = match s.split_once('.') {
        Some((a, b)) => {
            let mut frac = b.to_string();
            if frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            while frac.len() < 9 {
                frac.push('0');
            }
            (
                a.parse::<i64>().map_err(|_| bad())?,
                frac.parse::<i64>().map_err(|_| bad())?,
            )
        }
        None => (s.parse::<i64>().map_err(|_| bad())?, 0),
    };
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

pub async fn events(ctx: &Ctx, req: Req) -> ApiResult {
    let filters = req.query.filters()?;
    filters.validate(events::FILTER_KEYS)?;
    let since = req
        .query
        .get("since")
        .filter(|s| !s.is_empty())
        .map(parse_ts)
        .transpose()?;
    let until = req
        .query
        .get("until")
        .filter(|s| !s.is_empty())
        .map(parse_ts)
        .transpose()?;
    let now = events::now_nanos();
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request(
                "`since` time must be before `until` time",
            ));
        }
    }
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    let engine = ctx.engine.clone();
    let gone = req.client_gone();
    tokio::spawn(async move {
        let gone = gone.wait();
        tokio::pin!(gone);
        let mut shutdown = engine.shutdown_signal();
        let mut sub = engine.events.subscribe(since);
        let send = |ev: &Event| -> Option<Bytes> {
            if !events::matches(&filters, ev) {
                return None;
            }
            let mut line = serde_json::to_vec(ev).ok()?;
            line.push(b'\n');
            Some(Bytes::from(line))
        };
        for ev in std::mem::take(&mut sub.past) {
            if until.is_some_and(|u| ev.time_nano > u) {
                return;
            }
            if let Some(b) = send(&ev) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        // `until` in the past: the replay was everything.
        let deadline = match until {
            Some(u) if u <= now => return,
            Some(u) => Some(tokio::time::Instant::now() + Duration::from_nanos((u - now) as u64)),
            None => None,
        };
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, sub.live.recv()).await.ok(),
                    None => Some(sub.live.recv().await),
                }
            };
            tokio::select! {
                r = next => match r {
                    None => return, // until reached
                    Some(Ok(ev)) => {
                        if until.is_some_and(|u| ev.time_nano > u) { return; }
                        if let Some(b) = send(&ev) {
                            if tx.send(b).await.is_err() { return; }
                        }
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                        tracing::warn!(missed = n, "events subscriber lagged");
                    }
                    Some(Err(_)) => return,
                },
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
                _ = &mut gone => return,
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_cli_timestamps() {
        assert_eq!(super::parse_ts("12").unwrap(), 12_000_000_000);
        assert_eq!(super::parse_ts("12.5").unwrap(), 12_500_000_000);
        assert_eq!(super::parse_ts("1.000000001").unwrap(), 1_000_000_001);
        assert!(super::parse_ts("x").is_err());
    }
}
