//! `moby.buildkit.v1.Control`: Solve (a gateway build driven through
//! LLBBridge, or the `dockerfile.v0` frontend run directly), Status, the
//! worker list and the build cache. ListenBuildHistory is not served:
//! tonic answers Unimplemented, which buildx reads as "no history API".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::progress::Vtx;
use super::proto::moby::buildkit::v1 as pb;
use super::proto::moby::buildkit::v1::control_server::Control;
use super::proto::moby::buildkit::v1::types::{BuildkitVersion, Platform, WorkerRecord};
use super::{host_arch, BuildKit, BuildKitError};
use crate::engine::images::reference::Reference;

/// How long `Status` waits for its Solve (buildkitd's wait).
const STATUS_WAIT: Duration = Duration::from_secs(6);

/// The version clients show (`buildx ls`, `docker buildx version` of the
/// builder); a BuildKit release's API, served by berthd.
const BUILDKIT_VERSION: &str = "v0.22.0-berth";

pub struct ControlApi(pub Arc<BuildKit>);

impl BuildKit {
    pub(super) fn worker(&self) -> WorkerRecord {
        let mut labels = HashMap::new();
        // buildx resolves `host-gateway` in extra hosts with this label.
        // Never the snapshotter label: it would promise the OCI exporters.
        if let Some(gw) = self.engine.networks.default_gateway() {
            labels.insert(
                "org.mobyproject.buildkit.worker.moby.host-gateway-ip".to_string(),
                gw,
            );
        }
        WorkerRecord {
            id: self.engine.id.clone(),
            labels,
            platforms: vec![Platform {
                architecture: host_arch().to_string(),
                os: "linux".into(),
                variant: String::new(),
            }],
            buildkit_version: Some(version()),
        }
    }

    /// Tags `image` with each entry of the exporter's comma-separated
    /// `name` (never a digest), shown under `v`; the references and tags.
    pub(super) fn tag_names(
        &self,
        image: &str,
        exporter: &pb::Exporter,
        v: &Vtx,
    ) -> Result<Vec<(Reference, String)>, BuildKitError> {
        let mut out = Vec::new();
        let list = exporter.attrs.get("name").map(String::as_str).unwrap_or("");
        for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let r = Reference::parse(n)?;
            if r.digest.is_some() {
                return Err(BuildKitError::Invalid(format!(
                    "invalid image name {n:?}: a build cannot be tagged with a digest"
                )));
            }
            let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
            self.engine.images.tag(image, &r.name(), &tag)?;
            v.status(&format!("naming to {r}"), 0);
            out.push((r, tag));
        }
        Ok(out)
    }

    /// The `moby` exporter: tags the image with each `name`.
    pub(super) fn export(
        &self,
        job: &Arc<super::jobs::Job>,
        image: &str,
        exporter: &pb::Exporter,
    ) -> Result<HashMap<String, String>, BuildKitError> {
        let v = Vtx::start(job, "exporting to image");
        v.status(&format!("writing image {image}"), 0);
        let names: Vec<String> = self
            .tag_names(image, exporter, &v)?
            .iter()
            .map(|(r, _)| r.to_string())
            .collect();
        v.done();
        let mut resp = HashMap::new();
        // Compose keeps `containerimage.digest` as the image's ID.
        resp.insert("containerimage.digest".into(), image.to_string());
        resp.insert("containerimage.config.digest".into(), image.to_string());
        if !names.is_empty() {
            resp.insert("image.name".into(), names.join(","));
        }
        Ok(resp)
    }

    async fn solve(&self, r: pb::SolveRequest) -> Result<pb::SolveResponse, Status> {
        let mut exporters = r.exporters.clone();
        if exporters.is_empty() && !r.exporter_deprecated.is_empty() {
            exporters.push(pb::Exporter {
                r#type: r.exporter_deprecated.clone(),
                attrs: r.exporter_attrs_deprecated.clone(),
            });
        }
        if let Some(e) = exporters.iter().find(|e| {
            e.r#type != "moby" && e.r#type != "image" && !super::export::is_archive(&e.r#type)
        }) {
            return Err(Status::invalid_argument(format!(
                "exporter {:?} could not be found",
                e.r#type
            )));
        }
        if exporters.len() > 1 {
            return Err(Status::unimplemented(
                "berthd exports to one image per build",
            ));
        }
        let (job, returned) = self.jobs.create(&r.r#ref, &r.session)?;
        let res = async {
            let image = if !r.frontend.is_empty() {
                let attrs = super::syntax::frontend_attrs(&r.frontend, &r.frontend_attrs)?;
                Some(self.build_dockerfile(&job, &attrs).await?)
            } else if !r.definition.is_empty() {
                return Err(Status::unimplemented(
                    "LLB definitions are not supported by berthd: use the dockerfile.v0 frontend",
                ));
            } else {
                // A gateway build: the client drives LLBBridge and ends
                // with Return.
                returned
                    .await
                    .map_err(|_| Status::cancelled("the build ended without a result"))??
            };
            let mut resp = HashMap::new();
            if let (Some(id), Some(e)) = (image, exporters.first()) {
                resp = if super::export::to_client(&e.r#type) {
                    self.export_archive(&job, &id, e).await?
                } else {
                    let resp = self.export(&job, &id, e)?;
                    if super::push::wants_push(e) {
                        self.push_names(&job, e).await?;
                    }
                    resp
                };
            }
            Ok(pb::SolveResponse {
                exporter_response: resp,
            })
        }
        .await;
        // Status streams end now, with OK, whatever the outcome.
        job.log.close();
        self.jobs.retire(&r.r#ref);
        res
    }
}

fn version() -> BuildkitVersion {
    BuildkitVersion {
        package: "github.com/moby/buildkit".into(),
        version: BUILDKIT_VERSION.into(),
        revision: String::new(),
    }
}

fn timestamp(rfc3339: Option<&String>) -> Option<pb::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339?).ok()?;
    Some(pb::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

#[tonic::async_trait]
impl Control for ControlApi {
    type PruneStream = tokio_stream::Iter<std::vec::IntoIter<Result<pb::UsageRecord, Status>>>;
    type StatusStream = tokio_stream::wrappers::ReceiverStream<Result<pb::StatusResponse, Status>>;

    async fn disk_usage(
        &self,
        _req: Request<pb::DiskUsageRequest>,
    ) -> Result<Response<pb::DiskUsageResponse>, Status> {
        let record = self
            .0
            .engine
            .builder
            .build_cache_usage()
            .into_iter()
            .map(|c| pb::UsageRecord {
                id: c.id.unwrap_or_default(),
                in_use: c.in_use.unwrap_or_default(),
                size: c.size.unwrap_or_default(),
                created_at: timestamp(c.created_at.as_ref()),
                last_used_at: timestamp(c.last_used_at.as_ref()),
                usage_count: c.usage_count.unwrap_or_default(),
                description: c.description.unwrap_or_default(),
                record_type: "regular".into(),
                shared: c.shared.unwrap_or_default(),
                parents: c.parents.unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pb::DiskUsageResponse { record }))
    }

    async fn prune(
        &self,
        req: Request<pb::PruneRequest>,
    ) -> Result<Response<Self::PruneStream>, Status> {
        let r = req.into_inner();
        let mut f = berth_api::filters::Filters::new();
        for s in &r.filter {
            if let Some((k, v)) = s.split_once('=') {
                f.add(k.trim_end_matches(['!', '~']), v.trim_start_matches('='));
            }
        }
        if r.keep_duration > 0 {
            f.add("until", format!("{}s", r.keep_duration / 1_000_000_000));
        }
        let resp = self
            .0
            .engine
            .builder
            .prune_build_cache(&f)
            .await
            .map_err(|e| Status::from(BuildKitError::from(e)))?;
        let gone: Vec<Result<pb::UsageRecord, Status>> = resp
            .caches_deleted
            .unwrap_or_default()
            .into_iter()
            .map(|id| {
                Ok(pb::UsageRecord {
                    id,
                    record_type: "regular".into(),
                    ..Default::default()
                })
            })
            .collect();
        Ok(Response::new(tokio_stream::iter(gone)))
    }

    async fn solve(
        &self,
        req: Request<pb::SolveRequest>,
    ) -> Result<Response<pb::SolveResponse>, Status> {
        self.0.solve(req.into_inner()).await.map(Response::new)
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<Self::StatusStream>, Status> {
        let id = req.into_inner().r#ref;
        let job = self
            .0
            .jobs
            .wait(&id, STATUS_WAIT)
            .await
            .ok_or_else(|| Status::not_found(format!("no such job {id}")))?;
        Ok(Response::new(job.log.clone().follow()))
    }

    async fn list_workers(
        &self,
        _req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        Ok(Response::new(pb::ListWorkersResponse {
            record: vec![self.0.worker()],
        }))
    }

    async fn info(
        &self,
        _req: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        Ok(Response::new(pb::InfoResponse {
            buildkit_version: Some(version()),
        }))
    }
}
