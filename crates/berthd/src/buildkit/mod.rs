//! BuildKit's front door, as dockerd serves it for Compose and buildx
//! (docker driver): `POST /grpc` upgraded to h2c, where berthd is the gRPC
//! server of `moby.buildkit.v1.Control` and the `LLBBridge` calls buildx
//! makes next to `Solve`, and `POST /session`, where berthd is the gRPC
//! client of the CLI's FileSync (the context) and Auth.
//!
//! The Dockerfile work is berth's own builder (`engine::builder`), fed a
//! context received through DiffCopy; its classic progress is turned into
//! BuildKit vertices (`progress.rs`). This module knows nothing of the HTTP
//! router: the server hands it upgraded connections.

mod buildv2;
mod control;
mod diffcopy;
mod export;
mod frontend;
mod gateway;
mod jobs;
mod named;
mod progress;
mod push;
mod sendfs;
mod session;
mod syntax;

/// Code generated from `crates/berthd/proto` (build.rs); modules follow
/// the proto packages, whose names are part of the wire format.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]
pub mod proto {
    pub mod moby {
        pub mod buildkit {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/moby.buildkit.v1.rs"));
                pub mod types {
                    include!(concat!(env!("OUT_DIR"), "/moby.buildkit.v1.types.rs"));
                }
                pub mod frontend {
                    include!(concat!(env!("OUT_DIR"), "/moby.buildkit.v1.frontend.rs"));
                }
            }
        }
        pub mod filesync {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/moby.filesync.v1.rs"));
            }
        }
    }
    pub mod fsutil {
        pub mod types {
            include!(concat!(env!("OUT_DIR"), "/fsutil.types.rs"));
        }
    }
    pub mod grpc {
        pub mod health {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
            }
        }
    }
}

use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::{Engine, EngineError};

pub use buildv2::BuildV2;
pub use session::SessionInfo;

/// dockerd's gRPC message limit (containerd's default), both ways; tonic's
/// own default (4 MiB) is too small for large Status batches.
const MAX_MESSAGE: usize = 16 << 20;

/// Why a BuildKit call failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildKitError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}", .0.message())]
    Grpc(#[from] tonic::Status),
    #[error("session {0} already exists")]
    SessionExists(String),
    #[error("no active session for {0}: the client did not open it in time")]
    NoSession(String),
    /// The session's health check failed: berthd dropped it.
    #[error("session {0} was dropped: {1}")]
    SessionGone(String, String),
    #[error("no local sources enabled")]
    NoLocalSources,
    /// The context transfer broke its protocol.
    #[error("transferring {what}: {msg}")]
    Transfer { what: String, msg: String },
    /// The build itself failed (a RUN, a bad instruction).
    #[error("{0}")]
    Build(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<berth_api::reference::ReferenceError> for BuildKitError {
    fn from(e: berth_api::reference::ReferenceError) -> Self {
        BuildKitError::Engine(e.into())
    }
}

impl From<BuildKitError> for tonic::Status {
    fn from(e: BuildKitError) -> Self {
        use tonic::Status;
        match e {
            BuildKitError::Grpc(s) => s,
            BuildKitError::Engine(EngineError::NotFound(m)) => Status::not_found(m),
            BuildKitError::Engine(EngineError::InvalidParameter(m)) | BuildKitError::Invalid(m) => {
                Status::invalid_argument(m)
            }
            BuildKitError::Unsupported(m) => Status::unimplemented(m),
            BuildKitError::SessionExists(_) => Status::already_exists(e.to_string()),
            BuildKitError::NoSession(_) => Status::deadline_exceeded(e.to_string()),
            BuildKitError::SessionGone(..) => Status::unavailable(e.to_string()),
            other => Status::unknown(other.to_string()),
        }
    }
}

/// The BuildKit service: jobs (by Ref) and client sessions (by UUID),
/// shared by every `/grpc` and `/session` connection.
pub struct BuildKit {
    engine: Arc<Engine>,
    jobs: Arc<jobs::Jobs>,
    sessions: session::Sessions,
}

impl BuildKit {
    pub fn new(engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            jobs: Arc::default(),
            sessions: session::Sessions::default(),
        })
    }

    /// Serves Control and LLBBridge over an upgraded `/grpc` connection
    /// (h2c with prior knowledge; we are the HTTP/2 server) until the
    /// client leaves. hyper's builder, not tonic's `serve_with_incoming`,
    /// so that the connection ends with this future.
    pub async fn serve_grpc(self: Arc<Self>, io: hyper::upgrade::Upgraded) {
        use control::ControlApi;
        use gateway::Gateway;
        use proto::moby::buildkit::v1::control_server::ControlServer;
        use proto::moby::buildkit::v1::frontend::llb_bridge_server::LlbBridgeServer;
        let routes = tonic::service::Routes::new(
            ControlServer::new(ControlApi(self.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(
            LlbBridgeServer::new(Gateway(self.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        );
        let svc = hyper_util::service::TowerToHyperService::new(routes);
        let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(io, svc);
        // buildx's driver probe closes right after the 101: not an error.
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "buildkit /grpc connection ended");
        }
    }

    /// Whether a session of that UUID is open (dockerd refuses a second).
    pub fn has_session(&self, id: &str) -> bool {
        self.sessions.contains(id)
    }

    /// Keeps an upgraded `/session` connection (we are the HTTP/2 and gRPC
    /// client; the CLI serves) under its UUID until it closes.
    pub async fn serve_session(self: Arc<Self>, io: hyper::upgrade::Upgraded, info: SessionInfo) {
        let id = info.id.clone();
        if let Err(e) = self.sessions.run(io, info).await {
            tracing::debug!(session = %id, error = %e, "buildkit session ended");
        }
    }
}

/// `linux/<arch>` of this host, in Go's architecture names.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The methods a session's client said it serves.
fn method_set(methods: &[String]) -> HashSet<String> {
    methods.iter().cloned().collect()
}
