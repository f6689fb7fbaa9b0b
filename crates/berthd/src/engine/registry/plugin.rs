//! Managed plugins in a registry (`docker plugin push|install`): a Docker
//! schema 2 manifest whose config has the media type
//! `application/vnd.docker.plugin.v1+json` (the plugin's `config.json`)
//! and whose layers are its root file system as gzip tars. The plugin
//! manager packs and unpacks; this moves the blobs.

use bytes::Bytes;
use http::{header, Method, StatusCode};

use super::auth::{repo_scope, AuthConfig, Session};
use super::client::{read_body, RegistryError};
use super::pull::{fetch_manifest, MT_DOCKER_LAYER_GZIP};
use super::push::{blob_exists, upload_bytes};
use super::Registries;
use crate::engine::images::content::sha256_digest;
use crate::engine::images::reference::Reference;
use crate::engine::images::spec::{Descriptor, Manifest, MT_DOCKER_MANIFEST};
use crate::engine::{EngineError, Result};

pub const MT_PLUGIN_CONFIG: &str = "application/vnd.docker.plugin.v1+json";
/// A plugin's root is read into memory on its way: refuse more.
const MAX_LAYER: usize = 1 << 30;

/// A plugin as a registry holds it.
pub struct PluginBlobs {
    pub config: Bytes,
    /// Gzip tars, bottom first.
    pub layers: Vec<Bytes>,
}

impl Registries {
    async fn plugin_session(
        &self,
        r: &Reference,
        pull: bool,
        creds: &AuthConfig,
    ) -> Result<Session> {
        let eps = self.ordered(self.endpoints().endpoints(&r.domain, pull).await);
        let actions = if pull { "pull" } else { "pull,push" };
        let scopes = vec![repo_scope(&r.path, actions)];
        let mut last = None;
        for ep in eps {
            match Session::open(self.transports.clone(), ep.clone(), &scopes, creds.clone()).await {
                Ok(s) => {
                    self.remember_scheme(&ep.host, ep.scheme == "http");
                    return Ok(s);
                }
                Err(e @ EngineError::Unavailable(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| EngineError::internal("no registry endpoint")))
    }

    /// Pushes a plugin; returns the manifest's digest and size.
    pub async fn push_plugin(
        &self,
        r: &Reference,
        creds: &AuthConfig,
        blobs: PluginBlobs,
    ) -> Result<(String, usize)> {
        let s = self.plugin_session(r, false, creds).await?;
        let mut layers = Vec::new();
        for l in blobs.layers {
            let digest = sha256_digest(&l);
            let size = l.len() as i64;
            if !blob_exists(&s, &r.path, &digest).await? {
                upload_bytes(&s, &r.path, &digest, l).await?;
            }
            layers.push(Descriptor {
                media_type: MT_DOCKER_LAYER_GZIP.into(),
                digest,
                size,
                ..Default::default()
            });
        }
        let config = Descriptor {
            media_type: MT_PLUGIN_CONFIG.into(),
            digest: sha256_digest(&blobs.config),
            size: blobs.config.len() as i64,
            ..Default::default()
        };
        if !blob_exists(&s, &r.path, &config.digest).await? {
            upload_bytes(&s, &r.path, &config.digest, blobs.config).await?;
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MT_DOCKER_MANIFEST.into()),
            config,
            layers,
        };
        let raw = Bytes::from(serde_json::to_vec(&m)?);
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let url = s.url(&format!("/v2/{}/manifests/{tag}", r.path));
        let headers = [(header::CONTENT_TYPE, MT_DOCKER_MANIFEST.to_string())];
        let resp = s
            .request(Method::PUT, &url, &headers, Some(raw.clone()))
            .await?;
        if resp.status() != StatusCode::CREATED {
            let e = RegistryError::from_response(resp).await;
            return Err(EngineError::internal(format!("Put \"{url}\": {e}")));
        }
        let _ = read_body(resp, 64 << 10).await;
        Ok((sha256_digest(&raw), raw.len()))
    }

    /// The manifest of a plugin, and its config.
    async fn plugin_manifest(&self, s: &Session, r: &Reference) -> Result<(Manifest, Bytes)> {
        let target = r
            .digest
            .clone()
            .or_else(|| r.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let f = fetch_manifest(s, r, &target).await?;
        let m: Manifest = serde_json::from_slice(&f.bytes)
            .map_err(|e| EngineError::internal(format!("invalid plugin manifest: {e}")))?;
        if m.config.media_type != MT_PLUGIN_CONFIG {
            return Err(EngineError::invalid(format!(
                "{} is not a plugin (its config is {:?})",
                r.familiar(),
                m.config.media_type
            )));
        }
        let config = fetch_blob(s, &r.path, &m.config.digest, 4 << 20).await?;
        Ok((m, config))
    }

    /// A plugin's `config.json` only (`GET /plugins/privileges`).
    pub async fn plugin_config(&self, r: &Reference, creds: &AuthConfig) -> Result<Bytes> {
        let s = self.plugin_session(r, true, creds).await?;
        Ok(self.plugin_manifest(&s, r).await?.1)
    }

    /// A plugin's config and layers, verified against their digests.
    pub async fn pull_plugin(&self, r: &Reference, creds: &AuthConfig) -> Result<PluginBlobs> {
        let s = self.plugin_session(r, true, creds).await?;
        let (m, config) = self.plugin_manifest(&s, r).await?;
        let mut layers = Vec::new();
        for l in &m.layers {
            layers.push(fetch_blob(&s, &r.path, &l.digest, MAX_LAYER).await?);
        }
        Ok(PluginBlobs { config, layers })
    }
}

async fn fetch_blob(s: &Session, path: &str, digest: &str, limit: usize) -> Result<Bytes> {
    let url = s.url(&format!("/v2/{path}/blobs/{digest}"));
    let resp = s.request(Method::GET, &url, &[], None).await?;
    if resp.status() != StatusCode::OK {
        let e = RegistryError::from_response(resp).await;
        return Err(EngineError::internal(format!("Get \"{url}\": {e}")));
    }
    let b = read_body(resp, limit).await?;
    if sha256_digest(&b) != digest {
        return Err(EngineError::internal(format!(
            "blob verification failed for digest {digest}"
        )));
    }
    Ok(b)
}
