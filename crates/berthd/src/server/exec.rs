//! Exec routes, against the narrow `Backend` they need (moby's
//! `router/container`'s exec backend). Start hands the engine's
//! `ExecSession` to the hijack: a fake can refuse a start, and the session
//! itself is the engine's to test.

use std::future::Future;
use std::sync::Arc;

use berth_api::models::{ExecConfig, ExecInspectResponse, ExecStartConfig};
use http::StatusCode;
use serde::Serialize;

use super::containers::size_of;
use super::hijack;
use super::http::{empty, json, ok_shaped, status_only, ApiResult, Req};
use crate::engine::containers::exec::ExecSession;
use crate::engine::containers::Containers;
use crate::engine::Result;
use berth_api::shapes;

/// What the exec routes ask of the container service.
pub trait Backend: Send + Sync + 'static {
    /// The new exec's ID; a container that is not running (or paused) is
    /// a conflict.
    fn create_exec(&self, container: &str, cfg: ExecConfig) -> Result<String>;
    /// The engine's session, run detached or on the hijacked connection.
    fn start_exec(self: &Arc<Self>, id: &str) -> Result<ExecSession>;
    fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse>;
    fn resize_exec(&self, id: &str, h: u16, w: u16) -> impl Future<Output = Result<()>> + Send;
}

impl Backend for Containers {
    fn create_exec(&self, container: &str, cfg: ExecConfig) -> Result<String> {
        Containers::create_exec(self, container, cfg)
    }
    fn start_exec(self: &Arc<Self>, id: &str) -> Result<ExecSession> {
        Containers::start_exec(self, id)
    }
    fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse> {
        Containers::inspect_exec(self, id)
    }
    async fn resize_exec(&self, id: &str, h: u16, w: u16) -> Result<()> {
        Containers::resize_exec(self, id, h, w).await
    }
}

#[derive(Serialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

pub async fn create<B: Backend>(b: &B, mut req: Req, container: &str) -> ApiResult {
    let cfg: ExecConfig = req.json().await?;
    let id = b.create_exec(container, cfg)?;
    json(StatusCode::CREATED, &Created { id })
}

pub async fn start<B: Backend>(b: &Arc<B>, mut req: Req, id: &str) -> ApiResult {
    let body: ExecStartConfig = req.json_or_default().await?;
    let session = b.start_exec(id)?;
    if body.detach.unwrap_or(false) {
        // Answered once the process has started, as dockerd does.
        session.run_detached().await;
        return status_only(StatusCode::OK);
    }
    let tty = session.tty;
    if req.upgrade.is_some() {
        return hijack::upgrade(&mut req, tty, move |io| session.run(Some(io)))
            .unwrap_or_else(|| Err(hijack::no_upgrade()));
    }
    // Without an upgrade the output streams in the response body.
    Ok(hijack::plain(move |io| session.run(Some(io))))
}

pub async fn inspect<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    ok_shaped(&b.inspect_exec(id)?, &shapes::EXEC_INSPECT, req.version)
}

pub async fn resize<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    let (h, w) = size_of(&req)?;
    b.resize_exec(id, h, w).await?;
    let mut r = status_only(StatusCode::OK)?;
    *r.body_mut() = empty();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use berth_api::version::ApiVersion;
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::engine::EngineError;
    use crate::server::testing::{self, answer, get, with_body, Asked};

    /// A backend with a running container `web`, a paused one `frozen` and
    /// a stopped one `idle`; `e1` is an exec in `idle`.
    #[derive(Default)]
    struct Fake {
        asked: Asked,
    }

    impl Fake {
        fn runnable(&self, key: &str) -> Result<()> {
            match key {
                "web" => Ok(()),
                "frozen" => Err(EngineError::conflict(format!(
                    "Container {key} is paused, unpause the container before exec"
                ))),
                "idle" => Err(EngineError::conflict("Container 1d1e is not running")),
                _ => Err(EngineError::not_found(format!("No such container: {key}"))),
            }
        }
    }

    impl Backend for Fake {
        fn create_exec(&self, container: &str, cfg: ExecConfig) -> Result<String> {
            self.runnable(container)?;
            self.asked.note(format!("create {:?}", cfg.cmd));
            Ok("e1".into())
        }
        fn start_exec(self: &Arc<Self>, id: &str) -> Result<ExecSession> {
            if id != "e1" {
                return Err(EngineError::not_found(format!(
                    "No such exec instance: {id}"
                )));
            }
            self.runnable("idle")?;
            Err(EngineError::internal("unreachable in the fake"))
        }
        fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse> {
            if id != "e1" {
                return Err(EngineError::not_found(format!(
                    "No such exec instance: {id}"
                )));
            }
            Ok(ExecInspectResponse {
                id: Some("e1".into()),
                running: Some(false),
                ..Default::default()
            })
        }
        async fn resize_exec(&self, id: &str, h: u16, w: u16) -> Result<()> {
            self.asked.note(format!("resize {id} {h}x{w}"));
            Ok(())
        }
    }

    fn post(body: &str) -> Req {
        with_body(
            testing::req(Method::POST, "", ApiVersion::new(1, 50)),
            body.to_string(),
        )
    }

    #[tokio::test]
    async fn exec_in_a_paused_or_stopped_container_is_a_409() {
        let b = Arc::new(Fake::default());
        let body = r#"{"Cmd":["true"]}"#;
        let (status, v) = testing::json(create(&*b, post(body), "frozen").await).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            v,
            json!({"message": "Container frozen is paused, unpause the container before exec"})
        );
        let (status, v) = testing::json(create(&*b, post(body), "idle").await).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(v["message"], "Container 1d1e is not running");
        assert_eq!(
            testing::json(create(&*b, post(body), "nope").await).await.0,
            StatusCode::NOT_FOUND
        );
        // Started after its container stopped: the same 409, before any hijack.
        let (status, v) = testing::json(start(&b, post("{}"), "e1").await).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(v["message"], "Container 1d1e is not running");
        let (status, v) = testing::json(start(&b, post("{}"), "e9").await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["message"], "No such exec instance: e9");
        let (status, v) = testing::json(create(&*b, post(body), "web").await).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(v, json!({"Id": "e1"}));
        assert_eq!(b.asked.all(), ["create Some([\"true\"])"]);
    }

    #[tokio::test]
    async fn exec_resize_answers_200_with_no_body_and_checks_its_size() {
        let b = Fake::default();
        let (status, _, body) = answer(resize(&b, get("h=24&w=80"), "e1").await).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        let (status, v) = testing::json(resize(&b, get("h=x&w=80"), "e1").await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["message"], "strconv.Atoi: parsing \"x\": invalid syntax");
        assert_eq!(b.asked.all(), ["resize e1 24x80"]);
        let (status, v) = testing::json(inspect(&b, get(""), "e1").await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["ID"], "e1");
    }
}
