//! The on-disk and on-wire image formats: the image config (Docker's, which
//! OCI's is a subset of), OCI manifests and indexes, docker-archive
//! `manifest.json`, and chain IDs.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::content::sha256_digest;
use crate::engine::{EngineError, Result};

pub use berth_api::models::ImageConfig as ContainerDefaults;

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image config: `config` holds the container defaults (`Env`, `Cmd`,
/// `Entrypoint`, `WorkingDir`, `User`, `ExposedPorts`, `Volumes`, `Labels`,
/// `StopSignal`, `Healthcheck`, `OnBuild`, `Shell`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerDefaults>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Docker's v1 fields, still written by `docker import`/`commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The container a commit or build step was made from (v1 fields that
    /// dockerd still writes and shows before API 1.45).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// That container's config; kept as JSON so that an unusual one never
    /// makes the image unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub typ: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

impl ImageSpec {
    /// Parses and checks what the engine relies on.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let spec: ImageSpec = serde_json::from_slice(bytes)
            .map_err(|e| EngineError::invalid(format!("invalid image config: {e}")))?;
        if !spec.rootfs.typ.is_empty() && spec.rootfs.typ != "layers" {
            return Err(EngineError::invalid(format!(
                "invalid image config: unsupported rootfs type {:?}",
                spec.rootfs.typ
            )));
        }
        for d in &spec.rootfs.diff_ids {
            super::content::digest_hex(d)?;
        }
        Ok(spec)
    }

    /// Seconds since the epoch of `created`, 0 when absent or unreadable.
    pub fn created_unix(&self) -> i64 {
        self.created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0)
    }

    pub fn labels(&self) -> Option<&HashMap<String, String>> {
        self.config.as_ref().and_then(|c| c.labels.as_ref())
    }
}

/// `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => sha256_digest(format!("{p} {diff_id}").as_bytes()),
    }
}

pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let c = chain_id(out.last().map(String::as_str), d);
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI image manifest (also reads Docker schema 2).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An OCI image index (also reads Docker manifest lists).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArchiveManifestEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

/// The OCI manifest berth keeps for an image: its config and uncompressed
/// layer blobs (the form `save` writes).
pub fn build_manifest(config_digest: &str, config_len: usize, layers: &[(String, u64)]) -> String {
    let m = Manifest {
        schema_version: 2,
        media_type: Some(MT_OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: MT_OCI_CONFIG.into(),
            digest: config_digest.into(),
            size: config_len as i64,
            ..Default::default()
        },
        layers: layers
            .iter()
            .map(|(d, size)| Descriptor {
                media_type: MT_OCI_LAYER.into(),
                digest: d.clone(),
                size: *size as i64,
                ..Default::default()
            })
            .collect(),
    };
    serde_json::to_string(&m).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], sha256_digest(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn parses_docker_configs() {
        let cfg = br#"{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"ExposedPorts":{"80/tcp":{}}},"created":"2024-01-01T00:00:00Z","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},"history":[{"created_by":"x"}]}"#;
        let s = ImageSpec::parse(cfg).unwrap();
        assert_eq!(s.config.clone().unwrap().cmd.unwrap(), vec!["sh"]);
        assert_eq!(s.created_unix(), 1704067200);
        assert!(
            ImageSpec::parse(b"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"x\"]}}").is_err()
        );
    }
}
