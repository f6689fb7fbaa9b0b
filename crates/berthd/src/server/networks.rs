//! Network routes, against the narrow backend they need (moby's
//! `router/network` and its `Backend`), so that they can be tested alone.

use std::future::Future;
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::models::{
    EndpointSettings, Network, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use http::StatusCode;
use serde::Serialize;

use super::error::ApiError;
use super::http::{json, no_content, ok_json, ok_shaped, status_only, ApiResult, Req};
use crate::engine::{Engine, Result};
use berth_api::shapes;

/// What the network routes ask of the engine.
pub trait Backend: Send + Sync + 'static {
    /// The new network's ID and a warning.
    fn create_network(
        &self,
        req: NetworkCreateRequest,
    ) -> impl Future<Output = Result<(String, String)>> + Send;
    fn inspect_network(&self, key: &str) -> Result<Network>;
    fn list_networks(&self, f: &Filters) -> Result<Vec<Network>>;
    fn remove_network(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
    /// The names of the networks removed.
    fn prune_networks(&self, f: &Filters) -> impl Future<Output = Result<Vec<String>>> + Send;
    fn connect_network(
        self: &Arc<Self>,
        net: &str,
        container: &str,
        cfg: Option<EndpointSettings>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn disconnect_network(
        &self,
        net: &str,
        container: &str,
        force: bool,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl Backend for Engine {
    async fn create_network(&self, req: NetworkCreateRequest) -> Result<(String, String)> {
        self.networks.create_network(req).await
    }
    fn inspect_network(&self, key: &str) -> Result<Network> {
        self.networks.inspect_network(key)
    }
    fn list_networks(&self, f: &Filters) -> Result<Vec<Network>> {
        self.networks.list_networks(f)
    }
    async fn remove_network(&self, key: &str) -> Result<()> {
        self.networks.remove_network(key).await
    }
    async fn prune_networks(&self, f: &Filters) -> Result<Vec<String>> {
        self.networks.prune_networks(f).await
    }
    async fn connect_network(
        self: &Arc<Self>,
        net: &str,
        container: &str,
        cfg: Option<EndpointSettings>,
    ) -> Result<()> {
        self.containers.connect_network(net, container, cfg).await
    }
    async fn disconnect_network(&self, net: &str, container: &str, force: bool) -> Result<()> {
        self.containers
            .disconnect_network(net, container, force)
            .await
    }
}

#[derive(Serialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Warning")]
    warning: String,
}

pub async fn create<B: Backend>(b: &B, mut req: Req) -> ApiResult {
    let body: NetworkCreateRequest = req.json().await?;
    let (id, warning) = b.create_network(body).await?;
    json(StatusCode::CREATED, &Created { id, warning })
}

pub async fn list<B: Backend>(b: &B, req: Req) -> ApiResult {
    let list = b.list_networks(&req.query.filters()?)?;
    ok_shaped(&list, &shapes::NETWORK_LIST, req.version)
}

pub async fn inspect<B: Backend>(b: &B, req: Req, id: &str) -> ApiResult {
    let n = b.inspect_network(id)?;
    ok_shaped(&n, &shapes::NETWORK_INSPECT, req.version)
}

pub async fn remove<B: Backend>(b: &B, _req: Req, id: &str) -> ApiResult {
    b.remove_network(id).await?;
    no_content()
}

pub async fn prune<B: Backend>(b: &B, req: Req) -> ApiResult {
    #[derive(Serialize)]
    struct Pruned {
        #[serde(rename = "NetworksDeleted")]
        deleted: Option<Vec<String>>,
    }
    let gone = b.prune_networks(&req.query.filters()?).await?;
    ok_json(&Pruned {
        deleted: (!gone.is_empty()).then_some(gone),
    })
}

pub async fn connect<B: Backend>(b: &Arc<B>, mut req: Req, id: &str) -> ApiResult {
    let body: NetworkConnectRequest = req.json().await?;
    let c = body
        .container
        .ok_or_else(|| ApiError::bad_request("container is required"))?;
    b.connect_network(id, &c, body.endpoint_config).await?;
    status_only(StatusCode::OK)
}

pub async fn disconnect<B: Backend>(b: &B, mut req: Req, id: &str) -> ApiResult {
    let body: NetworkDisconnectRequest = req.json().await?;
    let c = body
        .container
        .ok_or_else(|| ApiError::bad_request("container is required"))?;
    b.disconnect_network(id, &c, body.force.unwrap_or(false))
        .await?;
    status_only(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;
    use crate::server::testing::{get, json};

    /// A backend whose prune removes what it is told to.
    struct Fake {
        pruned: Vec<String>,
    }

    impl Backend for Fake {
        async fn create_network(&self, _: NetworkCreateRequest) -> Result<(String, String)> {
            Err(EngineError::internal("not used"))
        }
        fn inspect_network(&self, key: &str) -> Result<Network> {
            Err(EngineError::not_found(format!("network {key} not found")))
        }
        fn list_networks(&self, _: &Filters) -> Result<Vec<Network>> {
            Ok(vec![])
        }
        async fn remove_network(&self, key: &str) -> Result<()> {
            Err(EngineError::Forbidden(format!(
                "{key} is a pre-defined network and cannot be removed"
            )))
        }
        async fn prune_networks(&self, _: &Filters) -> Result<Vec<String>> {
            Ok(self.pruned.clone())
        }
        async fn connect_network(
            self: &Arc<Self>,
            _: &str,
            _: &str,
            _: Option<EndpointSettings>,
        ) -> Result<()> {
            Ok(())
        }
        async fn disconnect_network(&self, _: &str, _: &str, _: bool) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn prune_says_null_when_nothing_went_and_errors_keep_their_status() {
        let none = Fake { pruned: vec![] };
        let (status, v) = json(prune(&none, get("")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, serde_json::json!({ "NetworksDeleted": null }));
        let some = Fake {
            pruned: vec!["n1".into()],
        };
        let (_, v) = json(prune(&some, get("")).await).await;
        assert_eq!(v, serde_json::json!({ "NetworksDeleted": ["n1"] }));
        let (status, v) = json(remove(&none, get(""), "bridge").await).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            v["message"],
            "bridge is a pre-defined network and cannot be removed"
        );
        let (status, _) = json(inspect(&none, get(""), "x").await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
