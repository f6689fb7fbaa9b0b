//! `GET /distribution/{name}/json`: what a registry holds under a name —
//! the manifest's descriptor and the platforms it serves — without pulling.

use berth_api::models::{DistributionInspect, OciDescriptor, OciPlatform};

use std::sync::Arc;

use super::pull::{fetch_config, is_index, prepare_inner, PullRequest};
use super::{AuthConfig, Registries};
use crate::engine::images::reference::Reference;
use crate::engine::images::spec::{ImageSpec, Index, Manifest};
use crate::engine::{EngineError, Result};

impl Registries {
    pub async fn distribution_inspect(
        self: &Arc<Self>,
        mut reference: Reference,
        creds: AuthConfig,
    ) -> Result<DistributionInspect> {
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some("latest".into());
        }
        let prepared = prepare_inner(
            self,
            PullRequest {
                reference: reference.clone(),
                platform: None,
                creds,
            },
        )
        .await
        .map_err(|e| match e {
            // dockerd passes the registry's error on as is, without the
            // "manifest for … not found:" a pull adds.
            EngineError::NotFound(m) => EngineError::NotFound(
                m.split_once(" not found: ")
                    .map(|(_, cause)| cause.to_string())
                    .unwrap_or(m),
            ),
            e => e,
        })?;
        let fetched = prepared
            .targets
            .into_iter()
            .find_map(|(_, f)| f)
            .ok_or_else(|| EngineError::internal("no manifest fetched"))?;
        let bad = |e: serde_json::Error| EngineError::internal(format!("invalid manifest: {e}"));
        let platforms = if is_index(&fetched.media_type) {
            let index: Index = serde_json::from_slice(&fetched.bytes).map_err(bad)?;
            index
                .manifests
                .into_iter()
                .filter_map(|m| m.platform)
                .map(|p| OciPlatform {
                    architecture: Some(p.architecture),
                    os: Some(p.os),
                    variant: p.variant,
                    ..Default::default()
                })
                .collect()
        } else {
            // A single image: its platform is in its config (as dockerd reads it).
            let manifest: Manifest = serde_json::from_slice(&fetched.bytes).map_err(bad)?;
            let config = fetch_config(&prepared.session, &reference.path, &manifest.config).await?;
            let spec: ImageSpec = serde_json::from_slice(&config)
                .map_err(|e| EngineError::internal(format!("invalid image config: {e}")))?;
            vec![OciPlatform {
                architecture: Some(spec.architecture),
                os: Some(spec.os),
                variant: spec.variant,
                ..Default::default()
            }]
        };
        Ok(DistributionInspect {
            descriptor: OciDescriptor {
                media_type: Some(fetched.media_type),
                digest: Some(fetched.digest),
                size: Some(fetched.bytes.len() as i64),
                ..Default::default()
            },
            platforms,
        })
    }
}
