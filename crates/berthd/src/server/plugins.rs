//! Plugin routes (`/plugins/...`), against the narrow backend they need
//! (moby's `router/plugin` and its `Backend`), so that they can be tested
//! alone.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use berth_api::filters::Filters;
use http::StatusCode;

use super::error::ApiError;
use super::http::{ok_json, status_only, ApiResult, Req};
use crate::engine::plugins::managed::PluginObj;
use crate::engine::{Engine, Result};

/// `docker plugin enable`'s default.
const DEFAULT_ENABLE_TIMEOUT: u64 = 30;

/// What the plugin routes ask of the engine. The calls that run, stop or
/// unpack a plugin block: the routes make them off the async workers.
pub trait Backend: Send + Sync + 'static {
    fn list_plugins(&self, filters: &Filters) -> Result<Vec<PluginObj>>;
    fn inspect_plugin(&self, name: &str) -> Result<PluginObj>;
    fn create_plugin(&self, name: &str, tar: &mut dyn Read) -> Result<()>;
    fn enable_plugin(&self, name: &str, timeout: Duration) -> Result<()>;
    fn disable_plugin(&self, name: &str, force: bool) -> Result<()>;
    fn remove_plugin(&self, name: &str, force: bool) -> Result<()>;
    fn set_plugin(&self, name: &str, args: &[String]) -> Result<()>;
}

impl Backend for Engine {
    fn list_plugins(&self, filters: &Filters) -> Result<Vec<PluginObj>> {
        self.plugin_manager.list(filters)
    }
    fn inspect_plugin(&self, name: &str) -> Result<PluginObj> {
        self.plugin_manager.get(name)
    }
    fn create_plugin(&self, name: &str, tar: &mut dyn Read) -> Result<()> {
        self.plugin_manager.create(name, tar).map(|_| ())
    }
    fn enable_plugin(&self, name: &str, timeout: Duration) -> Result<()> {
        self.plugin_manager.enable(name, timeout)
    }
    fn disable_plugin(&self, name: &str, force: bool) -> Result<()> {
        self.plugin_manager.disable(name, force)
    }
    fn remove_plugin(&self, name: &str, force: bool) -> Result<()> {
        self.plugin_manager.remove(name, force)
    }
    fn set_plugin(&self, name: &str, args: &[String]) -> Result<()> {
        self.plugin_manager.set(name, args)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??)
}

pub async fn list<B: Backend>(b: &B, req: Req) -> ApiResult {
    ok_json(&b.list_plugins(&req.query.filters()?)?)
}

pub async fn inspect<B: Backend>(b: &B, _req: Req, name: &str) -> ApiResult {
    ok_json(&b.inspect_plugin(name)?)
}

/// `POST /plugins/create?name=`: the body is a tar of the plugin's
/// directory; the rest of a refused upload is read, so that the client
/// gets the answer rather than a broken pipe.
pub async fn create<B: Backend>(b: Arc<B>, mut req: Req) -> ApiResult {
    let name = req.query.get("name").unwrap_or_default().to_string();
    let mut body = req.body_reader_draining(64 << 20);
    blocking(move || b.create_plugin(&name, &mut body)).await?;
    status_only(StatusCode::NO_CONTENT)
}

pub async fn enable<B: Backend>(b: Arc<B>, req: Req, name: &str) -> ApiResult {
    let raw = req.query.get("timeout").unwrap_or_default();
    let secs: i64 = raw.parse().map_err(|_| {
        ApiError::bad_request(format!("strconv.Atoi: parsing {raw:?}: invalid syntax"))
    })?;
    let secs = if secs <= 0 {
        DEFAULT_ENABLE_TIMEOUT
    } else {
        secs as u64
    };
    let name = name.to_string();
    blocking(move || b.enable_plugin(&name, Duration::from_secs(secs))).await?;
    status_only(StatusCode::OK)
}

pub async fn disable<B: Backend>(b: Arc<B>, req: Req, name: &str) -> ApiResult {
    let (name, force) = (name.to_string(), req.query.bool("force"));
    blocking(move || b.disable_plugin(&name, force)).await?;
    status_only(StatusCode::OK)
}

pub async fn remove<B: Backend>(b: Arc<B>, req: Req, name: &str) -> ApiResult {
    let (name, force) = (name.to_string(), req.query.bool("force"));
    blocking(move || b.remove_plugin(&name, force)).await?;
    status_only(StatusCode::OK)
}

pub async fn set<B: Backend>(b: &B, mut req: Req, name: &str) -> ApiResult {
    let args: Vec<String> = req.json().await?;
    b.set_plugin(name, &args)?;
    status_only(StatusCode::NO_CONTENT)
}

/// The registry side (`privileges`, `pull`, `push`): the registry service
/// moves the blobs, the plugin manager packs and installs.
pub mod remote {
    use berth_api::jsonmessage::JsonMessage;
    use bytes::Bytes;
    use http::header::{HeaderValue, CONTENT_TYPE};
    use http::Response;

    use super::super::error::ApiError;
    use super::super::http::{full, ok_json, ApiResult, Req};
    use super::super::Ctx;
    use crate::engine::images::reference::Reference;
    use crate::engine::plugins::managed::{Config, Privilege};
    use crate::engine::registry::auth::AuthConfig;
    use crate::engine::EngineError;

    fn creds(req: &Req) -> Result<AuthConfig, ApiError> {
        Ok(AuthConfig::from_header(
            req.headers
                .get("X-Registry-Auth")
                .and_then(|v| v.to_str().ok()),
        )?)
    }

    /// `remote` as moby's `parseRemoteRef`: normalised, `latest` added.
    fn remote_ref(raw: &str) -> Result<Reference, ApiError> {
        Ok(Reference::parse(raw)
            .map_err(EngineError::from)?
            .with_default_tag())
    }

    /// JSON message lines, as one body.
    fn lines(msgs: &[JsonMessage], name: Option<&str>) -> ApiResult {
        let body: Vec<u8> = msgs.iter().flat_map(|m| m.to_line()).collect();
        let mut r = Response::new(full(Bytes::from(body)));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(n) = name.and_then(|n| HeaderValue::from_str(n).ok()) {
            r.headers_mut().insert("Docker-Plugin-Name", n);
        }
        Ok(r)
    }

    /// `GET /plugins/privileges?remote=`.
    pub async fn privileges(ctx: &Ctx, req: Req) -> ApiResult {
        let r = remote_ref(req.query.get("remote").unwrap_or_default())?;
        let raw = ctx
            .engine
            .registries
            .plugin_config(&r, &creds(&req)?)
            .await?;
        ok_json(&Config::parse(&raw)?.privileges())
    }

    /// `POST /plugins/pull?remote=&name=` with the privileges granted.
    pub async fn pull(ctx: &Ctx, mut req: Req) -> ApiResult {
        let remote = req.query.get("remote").unwrap_or_default().to_string();
        let name = req.query.get("name").unwrap_or_default().to_string();
        let r = remote_ref(&remote)?;
        let creds = creds(&req)?;
        let granted: Vec<Privilege> = req.json_or_default().await?;
        let blobs = ctx.engine.registries.pull_plugin(&r, &creds).await?;
        let engine = ctx.engine.clone();
        let familiar = r.familiar();
        let p = tokio::task::spawn_blocking(move || {
            engine
                .plugin_manager
                .install(&name, &familiar, blobs, &granted)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
        lines(
            &[
                JsonMessage::status(format!("Pulled {}", r.familiar())),
                JsonMessage::status(format!("Installed plugin {}", p.name)),
            ],
            Some(&p.name),
        )
    }

    /// `POST /plugins/{name}/upgrade?remote=` with the privileges granted.
    pub async fn upgrade(ctx: &Ctx, mut req: Req, name: &str) -> ApiResult {
        let remote = req.query.get("remote").unwrap_or_default().to_string();
        let r = remote_ref(&remote)?;
        let creds = creds(&req)?;
        let granted: Vec<Privilege> = req.json_or_default().await?;
        // Refused before any download when it is enabled.
        let p = ctx.engine.plugin_manager.get(name)?;
        if p.enabled {
            return Err(EngineError::conflict(format!(
                "plugin must be disabled before upgrading: plugin {} is enabled",
                p.name
            ))
            .into());
        }
        let blobs = ctx.engine.registries.pull_plugin(&r, &creds).await?;
        let engine = ctx.engine.clone();
        let n = name.to_string();
        let p =
            tokio::task::spawn_blocking(move || engine.plugin_manager.upgrade(&n, blobs, &granted))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
        lines(
            &[
                JsonMessage::status(format!("Pulled {}", r.familiar())),
                JsonMessage::status(format!("Upgraded plugin {}", p.name)),
            ],
            Some(&p.name),
        )
    }

    /// `POST /plugins/{name}/push`.
    pub async fn push(ctx: &Ctx, req: Req, name: &str) -> ApiResult {
        let creds = creds(&req)?;
        let engine = ctx.engine.clone();
        let n = name.to_string();
        let (p, blobs) = tokio::task::spawn_blocking(move || engine.plugin_manager.export(&n))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let r = Reference::parse(&p.name).map_err(|e| {
            EngineError::invalid(format!("plugin has invalid name {} for push: {e}", p.name))
        })?;
        let mut repo = r.clone();
        repo.tag = None;
        let (digest, size) = ctx.engine.registries.push_plugin(&r, &creds, blobs).await?;
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        lines(
            &[
                JsonMessage::status(format!("The push refers to repository [{}]", repo.name())),
                JsonMessage::status(format!("{tag}: digest: {digest} size: {size}")),
                JsonMessage::aux(serde_json::json!({"Tag": tag, "Digest": digest, "Size": size})),
            ],
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use berth_api::version::ApiVersion;

    use super::*;
    use crate::engine::EngineError;
    use crate::server::testing;

    #[derive(Default)]
    struct Fake {
        asked: testing::Asked,
    }

    impl Backend for Fake {
        fn list_plugins(&self, f: &Filters) -> Result<Vec<PluginObj>> {
            f.validate(&["enabled", "capability"])?;
            Ok(vec![PluginObj {
                id: "a".repeat(64),
                name: "p:latest".into(),
                ..Default::default()
            }])
        }
        fn inspect_plugin(&self, name: &str) -> Result<PluginObj> {
            Err(EngineError::not_found(format!("plugin {name:?} not found")))
        }
        fn create_plugin(&self, name: &str, tar: &mut dyn Read) -> Result<()> {
            let mut s = String::new();
            tar.read_to_string(&mut s).unwrap();
            self.asked.note(format!("create {name} {s}"));
            Ok(())
        }
        fn enable_plugin(&self, name: &str, t: Duration) -> Result<()> {
            self.asked.note(format!("enable {name} {}", t.as_secs()));
            Ok(())
        }
        fn disable_plugin(&self, name: &str, force: bool) -> Result<()> {
            self.asked.note(format!("disable {name} {force}"));
            Err(EngineError::conflict(format!("plugin {name} is in use")))
        }
        fn remove_plugin(&self, name: &str, force: bool) -> Result<()> {
            self.asked.note(format!("remove {name} {force}"));
            Ok(())
        }
        fn set_plugin(&self, name: &str, args: &[String]) -> Result<()> {
            self.asked.note(format!("set {name} {args:?}"));
            Ok(())
        }
    }

    fn req(q: &str) -> Req {
        let mut r = testing::req(http::Method::POST, q, ApiVersion::new(1, 50));
        r.path = "/plugins".into();
        r
    }

    async fn body(r: ApiResult) -> (u16, String) {
        let (status, _, b) = testing::answer(r).await;
        (status.as_u16(), String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn routes_answer_as_dockerd() {
        let b = Arc::new(Fake::default());
        let (s, j) = body(list(&*b, req("")).await).await;
        assert_eq!(s, 200);
        assert!(j.contains("\"Name\":\"p:latest\""), "{j}");
        let (s, _) = body(list(&*b, req(r#"filters={"nope":{"x":true}}"#)).await).await;
        assert_eq!(s, 400);
        let (s, j) = body(inspect(&*b, req(""), "x").await).await;
        assert_eq!((s, j.contains("plugin \\\"x\\\" not found")), (404, true));
        assert_eq!(
            body(enable(b.clone(), req("timeout=0"), "p").await).await.0,
            200
        );
        assert_eq!(
            body(enable(b.clone(), req("timeout=5"), "p").await).await.0,
            200
        );
        assert_eq!(body(enable(b.clone(), req(""), "p").await).await.0, 400);
        assert_eq!(
            body(disable(b.clone(), req("force=1"), "p").await).await.0,
            409
        );
        assert_eq!(body(remove(b.clone(), req(""), "p").await).await.0, 200);
        assert_eq!(
            b.asked.all(),
            [
                "enable p 30",
                "enable p 5",
                "disable p true",
                "remove p false"
            ]
        );
    }
}
