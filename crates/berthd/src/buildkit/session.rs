//! Client sessions (`POST /session`): after the 101 we are the HTTP/2
//! client on the hijacked socket, and call the gRPC services the CLI
//! serves there (FileSync, Auth). A build may name its session before the
//! client has opened it, so lookups wait.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hyper::client::conn::http2::SendRequest;
use tokio::sync::watch;

use super::proto::fsutil::types::Packet;
use super::proto::moby::filesync::v1::auth_client::AuthClient;
use super::proto::moby::filesync::v1::file_send_client::FileSendClient;
use super::proto::moby::filesync::v1::file_sync_client::FileSyncClient;
use super::proto::moby::filesync::v1::CredentialsRequest;
use super::{BuildKitError, MAX_MESSAGE};
use crate::engine::registry::AuthConfig;

/// What the `/session` request said (its `X-Docker-Expose-Session-*`
/// headers).
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub id: String,
    pub shared_key: String,
    /// The gRPC methods the client serves, as `/pkg.Service/Method`.
    pub methods: Vec<String>,
}

/// The HTTP/2 connection to the client, as the `tower::Service` tonic's
/// generated clients call.
#[derive(Clone)]
pub struct H2(SendRequest<tonic::body::Body>);

impl tower::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// An open session.
pub struct Session {
    methods: HashSet<String>,
    conn: H2,
}

impl Session {
    pub fn serves(&self, method: &str) -> bool {
        self.methods.contains(method)
    }

    /// As `serves`, with the method's name in any case: bollard announces
    /// `/moby.filesync.v1.FileSend/diffcopy`.
    pub fn serves_any_case(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    /// The client's `:scheme` and `:authority` are required by Go's h2
    /// server; `localhost` is what buildkitd dials too.
    fn origin() -> http::Uri {
        http::Uri::from_static("http://localhost")
    }

    pub fn file_sync(&self) -> FileSyncClient<H2> {
        FileSyncClient::with_origin(self.conn.clone(), Self::origin())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn file_send(&self) -> FileSendClient<H2> {
        FileSendClient::with_origin(self.conn.clone(), Self::origin())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// FileSend.DiffCopy carrying fsutil packets: the `local` exporter's
    /// wire, the same method as `file_send` with another message type.
    pub async fn file_send_packets(
        &self,
        out: impl tokio_stream::Stream<Item = Packet> + Send + 'static,
    ) -> Result<tonic::Streaming<Packet>, tonic::Status> {
        let mut g = tonic::client::Grpc::with_origin(self.conn.clone(), Self::origin())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        g.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("session: {e}")))?;
        let path = http::uri::PathAndQuery::from_static("/moby.filesync.v1.FileSend/DiffCopy");
        let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
        g.streaming(tonic::Request::new(out), path, codec)
            .await
            .map(tonic::Response::into_inner)
    }

    pub fn auth(&self) -> AuthClient<H2> {
        AuthClient::with_origin(self.conn.clone(), Self::origin())
    }

    /// The client's credentials for the registry `domain` (none when it
    /// serves no Auth, or has none for it).
    pub async fn credentials_for(&self, domain: &str) -> Option<AuthConfig> {
        if !self.serves("/moby.filesync.v1.Auth/Credentials") {
            return None;
        }
        // The client maps Docker Hub's registry host to its config key.
        let host = if domain == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            domain.to_string()
        };
        let c = match self.auth().credentials(CredentialsRequest { host }).await {
            Ok(c) => c.into_inner(),
            Err(e) => {
                tracing::debug!(registry = %domain, error = %e, "session credentials");
                return None;
            }
        };
        if c.secret.is_empty() {
            return None;
        }
        // No user name: the secret is an identity token.
        let mut a = AuthConfig {
            username: c.username.clone(),
            ..Default::default()
        };
        if c.username.is_empty() {
            a.identitytoken = c.secret;
        } else {
            a.password = c.secret;
        }
        Some(a)
    }
}

/// The registry of open sessions, by UUID.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    bump: watch::Sender<u64>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Speaks HTTP/2 (client side, prior knowledge: our preface goes out
    /// first) on the upgraded connection and keeps the session registered
    /// until the connection ends.
    pub async fn run(
        &self,
        io: hyper::upgrade::Upgraded,
        info: SessionInfo,
    ) -> Result<(), BuildKitError> {
        let (send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| BuildKitError::Transfer {
                    what: "session".into(),
                    msg: e.to_string(),
                })?;
        let s = Arc::new(Session {
            methods: super::method_set(&info.methods),
            conn: H2(send),
        });
        {
            let mut m = self.lock();
            if m.contains_key(&info.id) {
                return Err(BuildKitError::SessionExists(info.id));
            }
            m.insert(info.id.clone(), s);
        }
        self.bump.send_modify(|n| *n += 1);
        tracing::debug!(session = %info.id, key = %info.shared_key, "buildkit session open");
        let r = conn.await;
        self.lock().remove(&info.id);
        r.map_err(|e| BuildKitError::Transfer {
            what: "session".into(),
            msg: e.to_string(),
        })
    }

    /// The session `id`, waiting up to `patience` for the client to open it.
    pub async fn wait(&self, id: &str, patience: Duration) -> Result<Arc<Session>, BuildKitError> {
        let mut changed = self.bump.subscribe();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(s) = self.lock().get(id).cloned() {
                return Ok(s);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(BuildKitError::NoSession(id.to_string())),
            }
        }
    }
}
