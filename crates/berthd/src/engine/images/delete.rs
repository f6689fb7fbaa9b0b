//! `rmi` and `image prune`, with Docker's untag-versus-delete rules and its
//! conflict messages.

use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::models::{ImageDeleteResponseItem, ImagePruneResponse};

use super::content::digest_hex;
use super::reference::Reference;
use super::{Image, ImageService, ImageUser};
use crate::engine::store::Table;
use crate::engine::{EngineError, Result};

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub force: bool,
    /// Docker's `noprune`: keep untagged parents. berth images have no
    /// parent images, so it changes nothing.
    pub noprune: bool,
}

const CONFLICT_RUNNING: u8 = 1;
const CONFLICT_ACTIVE_REF: u8 = 2;
const CONFLICT_STOPPED: u8 = 4;
const CONFLICT_HARD: u8 = CONFLICT_RUNNING;
const CONFLICT_SOFT: u8 = CONFLICT_ACTIVE_REF | CONFLICT_STOPPED;

struct Conflict {
    hard: bool,
    used: bool,
    message: String,
}

fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..hex.len().min(12)].to_string()
}

fn conflict_error(img: &Image, c: &Conflict) -> EngineError {
    EngineError::conflict(format!(
        "conflict: unable to delete {} ({}) - {}",
        img.short_id(),
        if c.hard {
            "cannot be forced"
        } else {
            "must be forced"
        },
        c.message
    ))
}

/// Docker's `isSingleReference`: every reference is in one repository and
/// there is at most one tag.
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut names = std::collections::HashSet::new();
    for r in refs {
        if r.digest.is_some() {
            names.insert(r.name());
        } else if single.is_none() {
            names.insert(r.name());
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    names.len() == 1 && names.contains(&single.name())
}

fn is_id_prefix(id: &str, s: &str) -> bool {
    id.starts_with(s) || id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(s))
}

impl ImageService {
    fn check_conflict(&self, img: &Image, users: &[ImageUser], mask: u8) -> Option<Conflict> {
        if mask & CONFLICT_RUNNING != 0 {
            if let Some(u) = users.iter().find(|u| u.running) {
                return Some(Conflict {
                    hard: true,
                    used: true,
                    message: format!(
                        "image is being used by running container {}",
                        short(&u.container_id)
                    ),
                });
            }
        }
        if mask & CONFLICT_ACTIVE_REF != 0 && !self.read_index().refs_of(&img.id).is_empty() {
            return Some(Conflict {
                hard: false,
                used: false,
                message: "image is referenced in multiple repositories".into(),
            });
        }
        if mask & CONFLICT_STOPPED != 0 {
            if let Some(u) = users.iter().find(|u| !u.running) {
                return Some(Conflict {
                    hard: false,
                    used: true,
                    message: format!(
                        "image is being used by stopped container {}",
                        short(&u.container_id)
                    ),
                });
            }
        }
        None
    }

    /// Removes one reference (one transaction) and reports it.
    fn untag_locked(
        &self,
        img: &Image,
        r: &Reference,
        out: &mut Vec<ImageDeleteResponseItem>,
    ) -> Result<()> {
        let key = r.to_string();
        self.store.write(|t| t.delete(Table::Tags, &key))?;
        {
            let mut idx = self.write_index();
            idx.refs.remove(&key);
            idx.refresh(&img.id);
        }
        out.push(ImageDeleteResponseItem {
            untagged: Some(r.familiar()),
            deleted: None,
        });
        self.publish("untag", img, &img.id);
        Ok(())
    }

    /// `DELETE /images/{name}`.
    pub fn delete(&self, name: &str, opts: &DeleteOptions) -> Result<Vec<ImageDeleteResponseItem>> {
        let _w = self.write_lock();
        self.delete_locked(name, opts)
    }

    fn delete_locked(
        &self,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let img = self.resolve(name)?;
        let users = self.users(&img.id);
        let mut refs = self.read_index().refs_of(&img.id);
        let mut out = Vec::new();
        let mut removed_repo_ref = false;
        if !is_id_prefix(&img.id, name) {
            // A reference was named: untag it first.
            let parsed = Reference::parse(name)?.with_default_tag();
            if !opts.force && is_single_reference(&refs) {
                if let Some(u) = users.first() {
                    return Err(EngineError::conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short(&u.container_id),
                        img.short_id()
                    )));
                }
            }
            if refs.contains(&parsed) {
                self.untag_locked(&img, &parsed, &mut out)?;
            }
            refs = self.read_index().refs_of(&img.id);
            if !refs.is_empty() {
                return Ok(out);
            }
            removed_repo_ref = true;
        } else if is_single_reference(&refs) {
            // An ID with at most one tag: remove the tag along with it.
            let mut mask = CONFLICT_HARD;
            if !opts.force {
                mask |= CONFLICT_SOFT & !CONFLICT_ACTIVE_REF;
            }
            if let Some(c) = self.check_conflict(&img, &users, mask) {
                return Err(conflict_error(&img, &c));
            }
            for r in &refs {
                self.untag_locked(&img, r, &mut out)?;
            }
        }
        self.delete_image_locked(&img, &users, opts.force, removed_repo_ref, &mut out)?;
        Ok(out)
    }

    /// Docker's `imageDeleteHelper`.
    fn delete_image_locked(
        &self,
        img: &Arc<Image>,
        users: &[ImageUser],
        force: bool,
        quiet: bool,
        out: &mut Vec<ImageDeleteResponseItem>,
    ) -> Result<i64> {
        let mut mask = CONFLICT_HARD;
        if !force {
            mask |= CONFLICT_SOFT;
        }
        if let Some(c) = self.check_conflict(img, users, mask) {
            let dangling = self.read_index().refs_of(&img.id).is_empty();
            if quiet && (!dangling || c.used) {
                // The untag was the whole job; the image stays.
                return Ok(0);
            }
            return Err(conflict_error(img, &c));
        }
        // Bound first: a guard in the loop head would live through the loop.
        let refs = self.read_index().refs_of(&img.id);
        for r in refs {
            self.untag_locked(img, &r, out)?;
        }
        let hex = digest_hex(&img.id)?.to_string();
        self.store.write(|t| t.delete(Table::Images, &hex))?;
        self.write_index().images.remove(&img.id);
        self.publish("delete", img, &img.id);
        out.push(ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(img.id.clone()),
        });
        let mut freed = 0i64;
        for l in self.collect_locked()? {
            freed += l.size as i64;
            out.push(ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(l.chain_id),
            });
        }
        Ok(freed)
    }

    /// `POST /images/prune`: dangling images (or, with `dangling=false`,
    /// every image no container uses), narrowed by `until` and `label`.
    pub fn prune(&self, filters: &Filters) -> Result<ImagePruneResponse> {
        filters.validate(&["dangling", "until", "label", "label!"])?;
        let dangling_only = filters.get_bool("dangling")?.unwrap_or(true);
        let until = match filters.get("until").next() {
            Some(u) => Some(super::query::parse_until(u)?),
            None => None,
        };
        let _w = self.write_lock();
        let mut candidates: Vec<Arc<Image>> = self
            .read_index()
            .images
            .values()
            .filter(|i| !dangling_only || i.repo_tags.is_empty() && i.repo_digests.is_empty())
            .filter(|i| until.is_none_or(|u| i.config.created_unix() < u))
            .filter(|i| super::query::labels_match(filters, i))
            .cloned()
            .collect();
        candidates.sort_by(|a, b| a.id.cmp(&b.id));
        let mut deleted = Vec::new();
        let mut reclaimed = 0i64;
        for img in candidates {
            if !self.users(&img.id).is_empty() {
                continue;
            }
            let mut out = Vec::new();
            let mut failed = false;
            let refs = self.read_index().refs_of(&img.id);
            for r in refs {
                if let Err(e) = self.untag_locked(&img, &r, &mut out) {
                    tracing::warn!(image = %img.id, error = %e, "prune: untag failed");
                    failed = true;
                }
            }
            if !failed {
                match self.delete_image_locked(&img, &[], false, false, &mut out) {
                    Ok(freed) => reclaimed += freed,
                    Err(e) => tracing::warn!(image = %img.id, error = %e, "prune: delete failed"),
                }
            }
            deleted.extend(out);
        }
        let mut attrs = std::collections::HashMap::new();
        attrs.insert("reclaimed".to_string(), reclaimed.to_string());
        self.events.publish("image", "prune", "", attrs);
        Ok(ImagePruneResponse {
            images_deleted: if deleted.is_empty() {
                None
            } else {
                Some(deleted)
            },
            space_reclaimed: Some(reclaimed),
        })
    }
}
