//! `moby.buildkit.v1.frontend.LLBBridge`, the calls buildx makes next to
//! `Control.Solve` (tagged with `buildkit-controlapi-buildid`): Ping, the
//! Dockerfile frontend's Solve, and Return, which ends the job's build.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::jobs::Job;
use super::proto::moby::buildkit::v1::frontend as pb;
use super::proto::moby::buildkit::v1::frontend::llb_bridge_server::LlbBridge;
use super::BuildKit;

/// How long a call waits for its Solve to register (buildkitd's wait).
const JOB_WAIT: Duration = Duration::from_secs(3);

/// Without `return` the client falls back to the old Final-Solve path,
/// without `proto.refarray` to string refs: both must be on.
const FRONTEND_CAPS: &[&str] = &[
    "solve.base",
    "solve.inlinereturn",
    "return",
    "returnmap",
    "proto.refarray",
    "frontend.inputs",
    "gateway.solve.metadata",
    "resolveimage",
    "resolveimage.resolvemode",
];

pub struct Gateway(pub Arc<BuildKit>);

impl Gateway {
    async fn job<T>(&self, req: &Request<T>) -> Result<Arc<Job>, Status> {
        let id = req
            .metadata()
            .get("buildkit-controlapi-buildid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if id.is_empty() {
            return Err(Status::invalid_argument("no buildid found in context"));
        }
        self.0
            .jobs
            .wait(&id, JOB_WAIT)
            .await
            .ok_or_else(|| Status::not_found(format!("no such job {id}")))
    }
}

#[tonic::async_trait]
impl LlbBridge for Gateway {
    async fn solve(
        &self,
        req: Request<pb::SolveRequest>,
    ) -> Result<Response<pb::SolveResponse>, Status> {
        let job = self.job(&req).await?;
        let r = req.into_inner();
        if r.frontend.is_empty() {
            if r.definition.is_empty() {
                // Nothing to build: an empty result.
                return Ok(Response::new(pb::SolveResponse {
                    r#ref: String::new(),
                    result: Some(pb::Result {
                        result: Some(pb::result::Result::Ref(pb::Ref::default())),
                        metadata: HashMap::new(),
                    }),
                }));
            }
            return Err(Status::unimplemented(
                "LLB definitions are not supported by berthd: use the dockerfile.v0 frontend",
            ));
        }
        let attrs = super::syntax::frontend_attrs(&r.frontend, &r.frontend_opt)?;
        let image = self.0.build_dockerfile(&job, &attrs).await?;
        let id = job.keep_result(&image);
        let mut metadata = HashMap::new();
        if let Some(img) = self.0.engine.images.get(&image) {
            metadata.insert(
                "containerimage.config".to_string(),
                img.raw_config.as_bytes().to_vec(),
            );
        }
        Ok(Response::new(pb::SolveResponse {
            r#ref: String::new(),
            result: Some(pb::Result {
                result: Some(pb::result::Result::Ref(pb::Ref {
                    id,
                    def: Vec::new(),
                })),
                metadata,
            }),
        }))
    }

    async fn ping(
        &self,
        _req: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PongResponse>, Status> {
        let caps = FRONTEND_CAPS
            .iter()
            .map(|c| pb::ApiCap {
                id: c.to_string(),
                enabled: true,
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pb::PongResponse {
            frontend_api_caps: caps,
            llb_caps: Vec::new(),
            workers: vec![self.0.worker()],
        }))
    }

    async fn r#return(
        &self,
        req: Request<pb::ReturnRequest>,
    ) -> Result<Response<pb::ReturnResponse>, Status> {
        let job = self.job(&req).await?;
        let r = req.into_inner();
        let outcome = match r.error.filter(|e| e.code != 0) {
            Some(e) => Err(Status::new(tonic::Code::from(e.code), e.message)),
            None => {
                let reference = match r.result.and_then(|x| x.result) {
                    Some(pb::result::Result::Ref(rf)) => Some(rf.id),
                    Some(pb::result::Result::Refs(m)) => m.refs.into_values().next().map(|r| r.id),
                    Some(pb::result::Result::RefDeprecated(id)) => Some(id),
                    _ => None,
                };
                match reference.filter(|id| !id.is_empty()) {
                    None => Ok(None),
                    Some(id) => match job.result(&id) {
                        Some(image) => Ok(Some(image)),
                        None => Err(Status::not_found(format!("no such result {id}"))),
                    },
                }
            }
        };
        if !job.finish(outcome) {
            return Err(Status::failed_precondition(
                "the build has already returned",
            ));
        }
        Ok(Response::new(pb::ReturnResponse {}))
    }
}
