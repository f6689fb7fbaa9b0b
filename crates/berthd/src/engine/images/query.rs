//! Read-only views: `images`, `image inspect`, `history`. All served from
//! the in-memory index.

use std::collections::{HashMap, HashSet};

use berth_api::filters::Filters;
use berth_api::models::{
    DriverData, HistoryResponseItem, ImageInspect, ImageInspectMetadata, ImageInspectRootFs,
    ImageSummary,
};

use super::reference::{familiar_match, Reference};
use super::{Image, ImageService};
use crate::engine::{EngineError, Result};

/// `image inspect`: the API model plus the v1 fields it no longer has
/// (`Container`, `ContainerConfig`; the answer's shape drops them from 1.45).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageDetails {
    #[serde(flatten)]
    pub inspect: ImageInspect,
    #[serde(rename = "Container")]
    pub container: String,
    #[serde(rename = "ContainerConfig")]
    pub container_config: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    pub shared_size: bool,
    /// Count each image's containers (`/system/df`); the image list leaves
    /// `Containers` at -1, as dockerd does.
    pub count_containers: bool,
    pub filters: Filters,
}

const LIST_FILTERS: &[&str] = &[
    "dangling",
    "label",
    "label!",
    "before",
    "since",
    "reference",
    "until",
];

/// `until` as Docker takes it: unix seconds (maybe fractional), RFC 3339,
/// or a Go duration before now.
pub fn parse_until(s: &str) -> Result<i64> {
    let bad = || EngineError::invalid(format!("invalid value for until: {s:?}"));
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let secs = s.split('.').next().unwrap_or("");
    if !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()) {
        return secs.parse().map_err(|_| bad());
    }
    // A Go duration before now.
    let ns = berth_api::duration::parse(s).map_err(|_| bad())?;
    Ok(chrono::Utc::now().timestamp() - ns / 1_000_000_000)
}

pub(super) fn labels_match(f: &Filters, img: &Image) -> bool {
    if !f.match_labels("label", img.config.labels()) {
        return false;
    }
    if f.contains("label!") {
        let empty = HashMap::new();
        let labels = img.config.labels().unwrap_or(&empty);
        for w in f.get("label!") {
            let hit = match w.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(w),
            };
            if hit {
                return false;
            }
        }
    }
    true
}

fn rfc3339_or_zero(s: Option<&str>) -> String {
    s.map(str::to_string)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

impl ImageService {
    /// `GET /images/json`, newest first.
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<ImageSummary>> {
        let f = &opts.filters;
        f.validate(LIST_FILTERS)?;
        let dangling = f.get_bool("dangling")?;
        let time_of = |key: &str| -> Result<Option<i64>> {
            match f.get(key).next() {
                None => Ok(None),
                Some(r) => Ok(Some(self.resolve(r)?.config.created_unix())),
            }
        };
        let before = time_of("before")?;
        let since = time_of("since")?;
        let until = match f.get("until").next() {
            Some(u) => Some(parse_until(u)?),
            None => None,
        };
        let patterns: Vec<&str> = f.get("reference").collect();
        let images = self.images();
        // Layer use counts, for SharedSize.
        let mut layer_users: HashMap<&str, usize> = HashMap::new();
        if opts.shared_size {
            for i in &images {
                let uniq: HashSet<&str> = i.chain_ids.iter().map(String::as_str).collect();
                for c in uniq {
                    *layer_users.entry(c).or_default() += 1;
                }
            }
        }
        let idx = self.read_index();
        // Images with children: untagged ones are intermediate (build steps).
        let parents: HashSet<&str> = images.iter().filter_map(|i| i.parent.as_deref()).collect();
        let mut out = Vec::new();
        for img in &images {
            let created = img.config.created_unix();
            if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                continue;
            }
            if until.is_some_and(|u| created >= u) {
                continue;
            }
            if !labels_match(f, img) {
                continue;
            }
            let mut tags = Vec::new();
            let mut digests = Vec::new();
            for r in idx.refs_of(&img.id) {
                if !patterns.is_empty() && !patterns.iter().any(|p| familiar_match(p, &r)) {
                    continue;
                }
                if r.digest.is_some() {
                    digests.push(r.familiar());
                }
                if r.tag.is_some() {
                    tags.push(r.familiar());
                }
            }
            tags.sort();
            digests.sort();
            let untagged = tags.is_empty() && digests.is_empty();
            if untagged {
                if dangling == Some(false) || !patterns.is_empty() {
                    continue;
                }
                // As moby: intermediate images only with `-a`, never dangling.
                if parents.contains(img.id.as_str()) && (!opts.all || dangling == Some(true)) {
                    continue;
                }
            } else if dangling == Some(true) {
                continue;
            }
            let shared = if opts.shared_size {
                img.chain_ids
                    .iter()
                    .filter(|c| layer_users.get(c.as_str()).copied().unwrap_or(0) > 1)
                    .filter_map(|c| self.layers.get(c))
                    .map(|l| l.size as i64)
                    .sum()
            } else {
                -1
            };
            out.push(ImageSummary {
                id: img.id.clone(),
                parent_id: img
                    .parent
                    .clone()
                    .or_else(|| img.config.parent.clone())
                    .unwrap_or_default(),
                repo_tags: tags,
                repo_digests: digests,
                created,
                size: img.size,
                shared_size: shared,
                virtual_size: None,
                labels: img.config.labels().cloned().unwrap_or_default(),
                containers: if opts.count_containers {
                    self.users(&img.id).len() as i64
                } else {
                    -1
                },
                manifests: None,
                descriptor: None,
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `GET /images/{name}/json`.
    pub fn inspect(&self, name: &str) -> Result<ImageDetails> {
        let img = self.resolve(name)?;
        let c = &img.config;
        let top = img.chain_ids.last();
        let mut data = HashMap::new();
        if let Some(top) = top {
            let upper = self.layers.diff_dir(top)?;
            let base = upper.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            data.insert("UpperDir".to_string(), upper.display().to_string());
            data.insert(
                "MergedDir".to_string(),
                base.join("merged").display().to_string(),
            );
            data.insert(
                "WorkDir".to_string(),
                base.join("work").display().to_string(),
            );
            let lowers: Vec<String> = img.chain_ids[..img.chain_ids.len() - 1]
                .iter()
                .rev()
                .filter_map(|c| self.layers.diff_dir(c).ok())
                .map(|p| p.display().to_string())
                .collect();
            if !lowers.is_empty() {
                data.insert("LowerDir".to_string(), lowers.join(":"));
            }
        }
        let inspect = ImageInspect {
            id: Some(img.id.clone()),
            repo_tags: Some(img.repo_tags.clone()),
            repo_digests: Some(img.repo_digests.clone()),
            parent: Some(
                img.parent
                    .clone()
                    .or_else(|| c.parent.clone())
                    .unwrap_or_default(),
            ),
            // moby: the config's comment, else the last history entry's
            // (where `commit` puts it).
            comment: Some(
                c.comment
                    .clone()
                    .filter(|s| !s.is_empty())
                    .or_else(|| c.history.last().and_then(|h| h.comment.clone()))
                    .unwrap_or_default(),
            ),
            created: c.created.clone(),
            docker_version: Some(c.docker_version.clone().unwrap_or_default()),
            author: Some(c.author.clone().unwrap_or_default()),
            config: Some(c.config.clone().unwrap_or_default()),
            architecture: Some(c.architecture.clone()),
            variant: c.variant.clone(),
            os: Some(c.os.clone()),
            os_version: c.os_version.clone(),
            size: Some(img.size),
            graph_driver: Some(DriverData {
                name: "overlay2".into(),
                data,
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".into(),
                layers: Some(c.rootfs.diff_ids.clone()),
            }),
            metadata: Some(ImageInspectMetadata {
                last_tag_time: Some(rfc3339_or_zero(img.last_tag_time.as_deref())),
            }),
            ..Default::default()
        };
        Ok(ImageDetails {
            inspect,
            container: c.container.clone().unwrap_or_default(),
            container_config: c
                .container_config
                .clone()
                .filter(|v| v.is_object())
                .unwrap_or_else(|| serde_json::json!({})),
        })
    }

    /// `GET /images/{name}/history`, newest first.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryResponseItem>> {
        let img = self.resolve(name)?;
        let mut out = Vec::new();
        let mut layer = 0usize;
        for h in &img.config.history {
            let mut size = 0i64;
            if !h.empty_layer.unwrap_or(false) {
                if let Some(c) = img.chain_ids.get(layer) {
                    size = self.layers.get(c).map(|l| l.size as i64).unwrap_or(0);
                }
                layer += 1;
            }
            let created = h
                .created
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp())
                .unwrap_or(0);
            out.push(HistoryResponseItem {
                id: "<missing>".into(),
                created,
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: vec![],
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        out.reverse();
        // As moby: the newest entries are named after the image and its
        // parents (commits, build steps) for as long as they are here.
        let mut cur = Some(img);
        for item in out.iter_mut() {
            let Some(i) = cur else { break };
            item.id = i.id.clone();
            item.tags = i.repo_tags.clone();
            cur = i
                .parent
                .as_deref()
                .or(i.config.parent.as_deref())
                .filter(|p| !p.is_empty())
                .and_then(|p| self.get(p));
        }
        Ok(out)
    }

    /// Every tag of a repository (`docker save busybox` saves them all).
    pub(super) fn tags_of_repo(&self, repo: &Reference) -> Vec<(Reference, String)> {
        let name = repo.name();
        self.read_index()
            .refs
            .values()
            .filter(|(r, _)| r.name() == name && r.tag.is_some() && r.digest.is_none())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn until_forms() {
        assert_eq!(super::parse_until("1700000000").unwrap(), 1700000000);
        assert_eq!(super::parse_until("1700000000.5").unwrap(), 1700000000);
        assert_eq!(
            super::parse_until("2023-11-14T22:13:20Z").unwrap(),
            1700000000
        );
        let now = chrono::Utc::now().timestamp();
        let t = super::parse_until("1h").unwrap();
        assert!((now - 3600 - t).abs() <= 1);
        assert!(super::parse_until("soon").is_err());
    }
}
