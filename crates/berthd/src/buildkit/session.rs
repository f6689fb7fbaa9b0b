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
use super::proto::grpc::health::v1::health_check_response::ServingStatus;
use super::proto::grpc::health::v1::health_client::HealthClient;
use super::proto::grpc::health::v1::HealthCheckRequest;
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
    id: String,
    methods: HashSet<String>,
    conn: H2,
    /// Why berthd dropped it (its health check failed), once it has.
    gone: std::sync::OnceLock<String>,
}

impl Session {
    pub fn serves(&self, method: &str) -> bool {
        self.methods.contains(method)
    }

    /// A failed call's error, or the reason the session was dropped if it
    /// was (the call failed because its connection went with it).
    pub fn explain(&self, e: BuildKitError) -> BuildKitError {
        match self.gone.get() {
            Some(why) => BuildKitError::SessionGone(self.id.clone(), why.clone()),
            None => e,
        }
    }

    /// `grpc.health.v1.Health/Check` once, within `patience`. As
    /// buildkitd, any answer is health (its status is only logged); an
    /// error or no answer in time is a failure.
    async fn check_health(&self, patience: Duration) -> Result<(), String> {
        let mut c = HealthClient::with_origin(self.conn.clone(), Self::origin());
        let req = HealthCheckRequest {
            service: String::new(),
        };
        match tokio::time::timeout(patience, c.check(req)).await {
            Err(_) => Err(format!("health check: no answer in {patience:?}")),
            Ok(Err(e)) => Err(format!("health check: {}", e.message())),
            Ok(Ok(r)) => {
                let st = r.into_inner().status();
                if st != ServingStatus::Serving {
                    tracing::debug!(session = %self.id, status = st.as_str_name(), "session health");
                }
                Ok(())
            }
        }
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

/// How a session's liveness is checked, as buildkitd checks it: the
/// client's Health service every 5 s, each check given 15 s (or half as
/// long again as the last one took, if more), and the session dropped
/// after two failures in a row.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub every: Duration,
    pub patience: Duration,
    pub failures: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(5),
            patience: Duration::from_secs(15),
            failures: 2,
        }
    }
}

/// How many dropped sessions are remembered (with why), for the builds
/// that look for them afterwards.
const DROPPED_KEPT: usize = 64;

/// The registry of open sessions, by UUID.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    bump: watch::Sender<u64>,
    /// Sessions dropped by their health check, oldest first, with why.
    dropped: Mutex<std::collections::VecDeque<(String, String)>>,
    pub health: HealthPolicy,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the session `id` was dropped, if its health check had it.
    pub fn dropped(&self, id: &str) -> Option<String> {
        let d = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        d.iter().find(|(i, _)| i == id).map(|(_, why)| why.clone())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Speaks HTTP/2 (client side, prior knowledge: our preface goes out
    /// first) on the upgraded connection and keeps the session registered
    /// until the connection ends, or its health check fails (then the
    /// connection is closed: calls in flight fail, and the session's
    /// builds with them).
    pub async fn run<IO>(&self, io: IO, info: SessionInfo) -> Result<(), BuildKitError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| BuildKitError::Transfer {
                    what: "session".into(),
                    msg: e.to_string(),
                })?;
        let s = Arc::new(Session {
            id: info.id.clone(),
            methods: super::method_set(&info.methods),
            conn: H2(send),
            gone: std::sync::OnceLock::new(),
        });
        {
            let mut m = self.lock();
            if m.contains_key(&info.id) {
                return Err(BuildKitError::SessionExists(info.id));
            }
            m.insert(info.id.clone(), s.clone());
        }
        self.bump.send_modify(|n| *n += 1);
        tracing::debug!(session = %info.id, key = %info.shared_key, "buildkit session open");
        let r = tokio::select! {
            r = conn => r.map_err(|e| BuildKitError::Transfer {
                what: "session".into(),
                msg: e.to_string(),
            }),
            why = watch_health(&s, self.health) => {
                tracing::info!(session = %info.id, reason = %why, "buildkit session dropped");
                let _ = s.gone.set(why.clone());
                let mut d = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
                if d.len() >= DROPPED_KEPT {
                    d.pop_front();
                }
                d.push_back((info.id.clone(), why.clone()));
                Err(BuildKitError::SessionGone(info.id.clone(), why))
            }
        };
        self.lock().remove(&info.id);
        self.bump.send_modify(|n| *n += 1);
        r
    }

    /// The session `id`, waiting up to `patience` for the client to open
    /// it; at once an error if its health check had it dropped.
    pub async fn wait(&self, id: &str, patience: Duration) -> Result<Arc<Session>, BuildKitError> {
        let mut changed = self.bump.subscribe();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(s) = self.lock().get(id).cloned() {
                return Ok(s);
            }
            if let Some(why) = self.dropped(id) {
                return Err(BuildKitError::SessionGone(id.to_string(), why));
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(BuildKitError::NoSession(id.to_string())),
            }
        }
    }
}

/// Checks the session's health by the policy; returns only when it has
/// failed enough times in a row (never for a client that serves no
/// Health, as bollard's sessions may not).
async fn watch_health(s: &Session, p: HealthPolicy) -> String {
    if !s.serves("/grpc.health.v1.Health/Check") {
        return std::future::pending().await;
    }
    let mut failed = 0;
    let mut last = Duration::ZERO;
    loop {
        tokio::time::sleep(p.every).await;
        let patience = p.patience.max(last.mul_f32(1.5));
        let t = tokio::time::Instant::now();
        let r = s.check_health(patience).await;
        last = t.elapsed();
        match r {
            Ok(()) => failed = 0,
            Err(why) => {
                failed += 1;
                if failed >= p.failures.max(1) {
                    return why;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::buildkit::proto::grpc::health::v1::health_server::{Health, HealthServer};
    use crate::buildkit::proto::grpc::health::v1::HealthCheckResponse;

    const SERVING: u8 = 0;
    const NOT_SERVING: u8 = 1;
    const SILENT: u8 = 2;
    const FAILING: u8 = 3;

    /// The client's Health service, its answer switched by the test.
    #[derive(Clone)]
    struct Client(Arc<AtomicU8>);

    #[tonic::async_trait]
    impl Health for Client {
        async fn check(
            &self,
            _req: Request<HealthCheckRequest>,
        ) -> Result<Response<HealthCheckResponse>, Status> {
            let status = match self.0.load(Ordering::SeqCst) {
                SERVING => ServingStatus::Serving,
                NOT_SERVING => ServingStatus::NotServing,
                FAILING => return Err(Status::unavailable("going away")),
                _ => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    ServingStatus::Unknown
                }
            };
            Ok(Response::new(HealthCheckResponse {
                status: status as i32,
            }))
        }
    }

    /// A session whose client (the other end of an in-memory pipe) serves
    /// Health as `mode` says; the registry checks it every 50 ms.
    fn open(
        id: &str,
        mode: &Arc<AtomicU8>,
        methods: &[&str],
    ) -> (
        Arc<Sessions>,
        tokio::task::JoinHandle<Result<(), BuildKitError>>,
    ) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let routes = tonic::service::Routes::new(HealthServer::new(Client(mode.clone())));
        tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(
                    TokioIo::new(theirs),
                    hyper_util::service::TowerToHyperService::new(routes),
                )
                .await;
        });
        let sessions = Arc::new(Sessions {
            health: HealthPolicy {
                every: Duration::from_millis(50),
                patience: Duration::from_millis(200),
                failures: 2,
            },
            ..Default::default()
        });
        let info = SessionInfo {
            id: id.to_string(),
            shared_key: String::new(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
        };
        let s = sessions.clone();
        let task = tokio::spawn(async move { s.run(TokioIo::new(ours), info).await });
        (sessions, task)
    }

    const CHECK: &str = "/grpc.health.v1.Health/Check";

    async fn dropped_after_failures(mode_after: u8, want: &str) {
        let mode = Arc::new(AtomicU8::new(SERVING));
        let (sessions, task) = open("s1", &mode, &[CHECK]);
        sessions
            .wait("s1", Duration::from_secs(5))
            .await
            .expect("the session opens");
        // Healthy: several checks pass, the session stays.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(sessions.contains("s1"));
        assert!(!task.is_finished());
        mode.store(mode_after, Ordering::SeqCst);
        let r = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the session is dropped in time")
            .expect("the session task");
        let e = r
            .expect_err("a dropped session ends with an error")
            .to_string();
        assert!(e.starts_with("session s1 was dropped: "), "{e}");
        assert!(e.contains(want), "{e}");
        assert!(!sessions.contains("s1"));
        // A build looking for it now fails at once, saying why.
        let t = std::time::Instant::now();
        let e = sessions
            .wait("s1", Duration::from_secs(30))
            .await
            .err()
            .expect("no session")
            .to_string();
        assert!(e.contains(want), "{e}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_session_whose_health_check_fails_is_dropped() {
        dropped_after_failures(FAILING, "health check: going away").await;
    }

    #[tokio::test]
    async fn a_session_whose_client_does_not_answer_is_dropped() {
        dropped_after_failures(SILENT, "health check: no answer in").await;
    }

    /// Any answer is health (buildkitd's rule), and a client that serves
    /// no Health is not checked.
    #[tokio::test]
    async fn answers_keep_a_session_and_no_health_is_not_checked() {
        for (id, methods, answer) in [("s2", &[CHECK][..], NOT_SERVING), ("s3", &[][..], FAILING)] {
            let mode = Arc::new(AtomicU8::new(answer));
            let (sessions, task) = open(id, &mode, methods);
            sessions
                .wait(id, Duration::from_secs(5))
                .await
                .expect("the session opens");
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(sessions.contains(id), "{id}");
            assert!(!task.is_finished(), "{id}");
            task.abort();
        }
    }
}
