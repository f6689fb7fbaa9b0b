//! Registries: pull, push and login over the OCI distribution protocol.
//!
//! [`Registries`] is the service: it owns these operations and reaches
//! the image store through its own handle on the image service (registry
//! → images, one way), never through the engine.
//!
//! The client is berth's own, on hyper + rustls (see `client.rs` for why
//! not `oci-client`): layers stream from the socket through digest
//! verification and decompression straight into the layer store, with
//! per-registry TLS from a Docker-style `certs.d` tree.
//!
//! - `endpoint`: which URLs serve a registry (Docker Hub's defaults,
//!   mirrors, insecure registries and the https → http fallback).
//! - `client`: the HTTP transport, TLS trust and Go-style error texts.
//! - `auth`: `X-Registry-Auth`, challenges, bearer tokens, basic auth, login.
//! - `pull` / `push`: the two transfers, with Docker's progress stream.
//! - `metadata`: which registry blobs are known for a layer.
//! - `search`: the v1 search API (`GET /images/search`).

pub mod auth;
pub mod client;
mod distribution;
pub mod endpoint;
pub mod metadata;
pub mod platform;
pub mod plugin;
pub mod pull;
mod push;
pub mod search;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use berth_api::jsonmessage::JsonMessage;

use crate::config::DaemonConfig;
use crate::engine::images::ImageService;
use crate::engine::settings::Live;
use crate::engine::store::Store;
use crate::engine::Result;

pub use auth::AuthConfig;
pub use endpoint::Endpoint;
pub use platform::Platform;
pub use pull::{PreparedPull, PullRequest};
pub use push::PushRequest;

/// Where progress lines go: the chunks of the HTTP response. A client
/// that went away does not stop the transfer.
#[derive(Clone)]
pub struct Progress(pub tokio::sync::mpsc::Sender<bytes::Bytes>);

impl Progress {
    pub async fn send(&self, m: JsonMessage) {
        let _ = self.0.send(bytes::Bytes::from(m.to_line())).await;
    }

    /// From a blocking thread.
    pub fn blocking_send(&self, m: JsonMessage) {
        let _ = self.0.blocking_send(bytes::Bytes::from(m.to_line()));
    }
}

pub struct Registries {
    /// Where pulls land and pushes read from.
    images: Arc<ImageService>,
    /// How many layers move at once (`max-concurrent-downloads`/`uploads`),
    /// read at each transfer: a reload changes the next one.
    live: Arc<Live>,
    /// Insecure registries and mirrors; replaced whole on a reload.
    endpoints: ArcSwap<endpoint::Resolver>,
    pub transports: Arc<client::Transports>,
    pub metadata: metadata::Metadata,
    /// Hosts whose https endpoint failed and whose http one answered.
    plain_http: Mutex<HashMap<String, bool>>,
}

impl Registries {
    pub fn new(
        cfg: &DaemonConfig,
        live: Arc<Live>,
        store: Arc<Store>,
        images: Arc<ImageService>,
    ) -> Result<Self> {
        Ok(Self {
            images,
            live,
            endpoints: ArcSwap::from_pointee(endpoint::Resolver::new(
                &cfg.insecure_registries,
                &cfg.registry_mirrors,
                cfg.loopback_registries_insecure,
            )?),
            transports: Arc::new(client::Transports::new(cfg.certs_dir.clone())),
            metadata: metadata::Metadata::new(store),
            plain_http: Mutex::new(HashMap::new()),
        })
    }

    /// The resolver in force (a reload may replace it at any time).
    pub fn endpoints(&self) -> Arc<endpoint::Resolver> {
        self.endpoints.load_full()
    }

    /// A reload's new insecure registries and mirrors. Checked whole
    /// before anything changes (`prepare`), then put in force (`commit`).
    pub fn prepare_endpoints(
        insecure: &[String],
        mirrors: &[String],
        loopback_insecure: bool,
    ) -> Result<endpoint::Resolver> {
        endpoint::Resolver::new(insecure, mirrors, loopback_insecure)
    }

    pub fn commit_endpoints(&self, r: endpoint::Resolver) {
        self.endpoints.store(Arc::new(r));
    }

    fn max_concurrent_downloads(&self) -> usize {
        self.live.get().max_concurrent_downloads.max(1)
    }

    fn max_concurrent_uploads(&self) -> usize {
        self.live.get().max_concurrent_uploads.max(1)
    }

    fn remember_scheme(&self, host: &str, plain: bool) {
        self.plain_http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_string(), plain);
    }

    /// Endpoints ordered so the one that answered last time comes first.
    fn ordered(&self, mut eps: Vec<Endpoint>) -> Vec<Endpoint> {
        let known = self.plain_http.lock().unwrap_or_else(|p| p.into_inner());
        eps.sort_by_key(|e| match known.get(&e.host) {
            Some(true) => (e.mirror_rank, u8::from(e.scheme != "http")),
            _ => (e.mirror_rank, 0),
        });
        eps
    }
}

impl Registries {
    /// `POST /auth`: checks credentials against the registry named by
    /// `serveraddress` (Docker Hub when empty). Returns the identity token.
    pub async fn login(&self, creds: &AuthConfig) -> Result<String> {
        let domain = endpoint::normalize_server_address(&creds.serveraddress);
        let eps = self.ordered(self.endpoints().endpoints(&domain, false).await);
        let mut c = creds.clone();
        c.fill_from_auth();
        auth::login(&self.transports, &eps, &c).await
    }
}
