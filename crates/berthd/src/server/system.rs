//! System routes: ping, version, info, df, events, and the swarm/plugin
//! answers a non-swarm engine gives.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use berth_api::events::Event;
use berth_api::models::{SystemDataUsageResponse, SystemInfo, SystemVersion};
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use tokio::sync::watch;

use super::error::ApiError;
use super::http::{ok_json, ok_shaped, stream, text, ApiResult, Req};
use crate::engine::events::{self, EventBus};
use crate::engine::registry::AuthConfig;
use crate::engine::{Engine, Result};
use berth_api::shapes;

/// What the system routes ask of the engine (moby's `router/system` and
/// its `Backend`).
pub trait Backend: Send + Sync + 'static {
    fn system_version(&self) -> SystemVersion;
    fn system_info(&self) -> SystemInfo;
    fn disk_usage(&self) -> SystemDataUsageResponse;
    /// Checks credentials against their registry; the identity token.
    fn login(&self, creds: &AuthConfig) -> impl Future<Output = Result<String>> + Send;
    /// Where events are published (and replayed from).
    fn event_bus(&self) -> Arc<EventBus>;
    /// Flips when the daemon begins to shut down: streams end then.
    fn shutdown_signal(&self) -> watch::Receiver<bool>;
}

impl Backend for Engine {
    fn system_version(&self) -> SystemVersion {
        self.version()
    }
    fn system_info(&self) -> SystemInfo {
        self.info()
    }
    fn disk_usage(&self) -> SystemDataUsageResponse {
        Engine::disk_usage(self)
    }
    async fn login(&self, creds: &AuthConfig) -> Result<String> {
        self.registries.login(creds).await
    }
    fn event_bus(&self) -> Arc<EventBus> {
        self.events.clone()
    }
    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        Engine::shutdown_signal(self)
    }
}

/// `POST /auth`: checks the credentials against the registry; the daemon
/// keeps nothing (the CLI stores them).
pub async fn auth<B: Backend>(b: &B, mut req: Req) -> ApiResult {
    let creds: AuthConfig = req.json().await?;
    let token = b.login(&creds).await?;
    ok_json(&serde_json::json!({"Status": "Login Succeeded", "IdentityToken": token}))
}

pub async fn ping(req: Req) -> ApiResult {
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

pub async fn version<B: Backend>(b: &B, req: Req) -> ApiResult {
    ok_shaped(&b.system_version(), &shapes::VERSION, req.version)
}

pub async fn info<B: Backend>(b: &B, req: Req) -> ApiResult {
    ok_shaped(&b.system_info(), &shapes::INFO, req.version)
}

pub async fn df<B: Backend>(b: &B, req: Req) -> ApiResult {
    let mut du = b.disk_usage();
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
pub async fn swarm_unavailable(req: Req) -> ApiResult {
    let message = if req.method == Method::POST && req.path == "/swarm/leave" {
        "This node is not part of a swarm"
    } else {
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
    };
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message))
}

/// `since`/`until` as the CLI sends them: unix seconds, optionally `.nanos`.
pub fn parse_ts(s: &str) -> std::result::Result<i64, ApiError> {
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

pub async fn events<B: Backend>(b: &B, req: Req) -> ApiResult {
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
    let (bus, mut shutdown) = (b.event_bus(), b.shutdown_signal());
    let gone = req.client_gone();
    tokio::spawn(async move {
        let gone = gone.wait();
        tokio::pin!(gone);
        let mut sub = bus.subscribe(since);
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
    use std::collections::HashMap;

    use berth_api::models::ImageSummary;
    use berth_api::ApiVersion;
    use serde_json::{json, Value};

    use super::*;
    use crate::server::testing::{answer, get, json, lines, req, with_body};

    /// A backend with an empty engine's answers and a real event bus.
    struct Fake {
        bus: Arc<EventBus>,
        stop: watch::Sender<bool>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                bus: Arc::new(EventBus::new()),
                stop: watch::channel(false).0,
            }
        }
    }

    impl Backend for Fake {
        fn system_version(&self) -> SystemVersion {
            SystemVersion::default()
        }
        fn system_info(&self) -> SystemInfo {
            SystemInfo::default()
        }
        fn disk_usage(&self) -> SystemDataUsageResponse {
            SystemDataUsageResponse {
                images: Some(vec![ImageSummary {
                    size: 7,
                    ..Default::default()
                }]),
                ..Default::default()
            }
        }
        async fn login(&self, creds: &AuthConfig) -> Result<String> {
            match creds.password.as_str() {
                "right" => Ok(String::new()),
                _ => Err(crate::engine::EngineError::Unauthorized(
                    "login attempt failed with status: 401 Unauthorized".into(),
                )),
            }
        }
        fn event_bus(&self) -> Arc<EventBus> {
            self.bus.clone()
        }
        fn shutdown_signal(&self) -> watch::Receiver<bool> {
            self.stop.subscribe()
        }
    }

    #[test]
    fn parses_cli_timestamps() {
        assert_eq!(parse_ts("12").unwrap(), 12_000_000_000);
        assert_eq!(parse_ts("12.5").unwrap(), 12_500_000_000);
        assert_eq!(parse_ts("1.000000001").unwrap(), 1_000_000_001);
        assert!(parse_ts("x").is_err());
    }

    #[tokio::test]
    async fn ping_carries_the_negotiation_and_cache_headers() {
        let mut r = ping(get("")).await.unwrap();
        crate::server::add_common_headers(&mut r);
        let (status, h, body) = answer(Ok(r)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"OK");
        for (k, v) in [
            ("Api-Version", "1.50"),
            ("Docker-Experimental", "false"),
            ("Ostype", "linux"),
            ("Builder-Version", "2"),
            ("Swarm", "inactive"),
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
        ] {
            assert_eq!(h.get(k).map(|v| v.to_str().unwrap()), Some(v), "{k}");
        }
        let r = ping(req(Method::HEAD, "", ApiVersion::new(1, 50))).await;
        let (status, h, body) = answer(r).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(h[header::CONTENT_LENGTH], "0");
    }

    #[tokio::test]
    async fn info_and_version_keep_their_fields_when_empty() {
        let b = Fake::new();
        let (status, v) = json(info(&b, get("")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v["Plugins"],
            json!({"Volume": null, "Network": null, "Authorization": null, "Log": null})
        );
        for k in [
            "DriverStatus",
            "Labels",
            "SecurityOptions",
            "Warnings",
            "Runtimes",
        ] {
            assert_eq!(v.get(k), Some(&Value::Null), "{k}");
        }
        assert_eq!(v["Swarm"]["LocalNodeState"], "");
        assert_eq!(v["CDISpecDirs"], json!([]));
        assert_eq!(v["ContainerdCommit"], json!({"ID": ""}));
        let old = req(Method::GET, "", ApiVersion::new(1, 41));
        let (_, v) = json(info(&b, old).await).await;
        assert_eq!(v["ContainerdCommit"], json!({"ID": "", "Expected": ""}));
        assert!(v.get("CDISpecDirs").is_none(), "{v}");
        let (_, v) = json(version(&b, get("")).await).await;
        assert_eq!(v["Platform"], json!({"Name": ""}));
        assert_eq!(v["Components"], Value::Null);
        assert!(v.get("MinAPIVersion").is_none(), "{v}");
    }

    #[tokio::test]
    async fn df_gives_old_clients_virtual_size() {
        let b = Fake::new();
        let old = req(Method::GET, "", ApiVersion::new(1, 41));
        let (_, v) = json(df(&b, old).await).await;
        assert_eq!(v["Images"][0]["VirtualSize"], 7);
        assert_eq!(v["Images"][0]["RepoTags"], json!(["<none>:<none>"]));
        let (_, v) = json(df(&b, get("")).await).await;
        assert!(v["Images"][0].get("VirtualSize").is_none(), "{v}");
    }

    #[tokio::test]
    async fn auth_answers_the_cli_s_shape_or_the_registry_s_refusal() {
        let b = Fake::new();
        let body = r#"{"username":"u","password":"right","serveraddress":"r"}"#;
        let (status, v) = json(auth(&b, with_body(get(""), body)).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, json!({"Status": "Login Succeeded", "IdentityToken": ""}));
        let body = r#"{"username":"u","password":"wrong"}"#;
        let (status, v) = json(auth(&b, with_body(get(""), body)).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            v["message"],
            "login attempt failed with status: 401 Unauthorized"
        );
        let (status, v) = json(auth(&b, get("")).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["message"], "invalid JSON: request body is empty");
    }

    #[tokio::test]
    async fn events_replay_filtered_and_end_at_a_past_until() {
        let b = Fake::new();
        let attrs = || HashMap::from([("name".to_string(), "c1".to_string())]);
        b.bus.publish("container", "start", "c1id", attrs());
        b.bus.publish("network", "create", "n1id", HashMap::new());
        b.bus.publish("container", "die", "c1id", attrs());
        let now = events::now_nanos();
        let until = format!("{}.{:09}", now / 1_000_000_000, now % 1_000_000_000);
        let q = format!(r#"since=0&until={until}&filters={{"type":["container"]}}"#);
        let (status, v) = lines(events(&b, get(&q)).await).await;
        assert_eq!(status, StatusCode::OK);
        let actions: Vec<_> = v.iter().map(|e| e["Action"].clone()).collect();
        assert_eq!(actions, [json!("start"), json!("die")]);
        assert_eq!(v[0]["status"], "start");
        assert_eq!(v[0]["Actor"]["Attributes"]["name"], "c1");
        let (status, v) = json(events(&b, get("since=20&until=10")).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["message"], "`since` time must be before `until` time");
        let (status, _) = json(events(&b, get(r#"filters={"bogus":["x"]}"#)).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_live_event_stream_ends_when_the_daemon_stops() {
        let b = Fake::new();
        let r = events(&b, get("")).await;
        b.bus.publish("image", "tag", "sha256:aa", HashMap::new());
        b.stop.send_replace(true);
        let (status, v) = tokio::time::timeout(Duration::from_secs(10), lines(r))
            .await
            .expect("the stream ended");
        assert_eq!(status, StatusCode::OK);
        assert!(v.len() <= 1, "{v:?}");
    }

    #[tokio::test]
    async fn swarm_routes_answer_as_a_node_outside_a_swarm() {
        let mut r = req(Method::POST, "", ApiVersion::new(1, 50));
        r.path = "/swarm/leave".into();
        let (status, v) = json(swarm_unavailable(r).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["message"], "This node is not part of a swarm");
        let (status, v) = json(swarm_unavailable(get("")).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("This node is not a swarm manager."));
    }
}
