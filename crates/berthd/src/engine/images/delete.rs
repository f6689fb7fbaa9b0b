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
    /// Docker's `noprune`: keep untagged parents (the intermediate images
    /// of a classic build).
    pub noprune: bool,
}

const CONFLICT_RUNNING: u8 = 1;
const CONFLICT_ACTIVE_REF: u8 = 2;
const CONFLICT_STOPPED: u8 = 4;
const CONFLICT_CHILD: u8 = 8;
const CONFLICT_HARD: u8 = CONFLICT_RUNNING | CONFLICT_CHILD;
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
        if mask & CONFLICT_CHILD != 0 && !self.children(&img.id).is_empty() {
            return Some(Conflict {
                hard: true,
                used: false,
                message: "image has dependent child images".into(),
            });
        }
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
            // As moby: once a repository has no tag left on the image, its
            // digest references (`name@sha256:…`, from pulls and pushes) go
            // too.
            if parsed.digest.is_none()
                && !refs
                    .iter()
                    .any(|r| r.digest.is_none() && r.name() == parsed.name())
            {
                for r in refs
                    .iter()
                    .filter(|r| r.digest.is_some() && r.name() == parsed.name())
                {
                    self.untag_locked(&img, r, &mut out)?;
                }
                refs = self.read_index().refs_of(&img.id);
            }
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
            if let Some(u) = users.first() {
                // See delete_image_locked: nothing is untagged either.
                return Err(EngineError::conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by stopped container {}",
                    img.short_id(),
                    short(&u.container_id)
                )));
            }
            for r in &refs {
                self.untag_locked(&img, r, &mut out)?;
            }
        }
        self.delete_image_locked(
            &img,
            &users,
            opts.force,
            removed_repo_ref,
            !opts.noprune,
            &mut out,
        )?;
        Ok(out)
    }

    /// Docker's `imageDeleteHelper`.
    fn delete_image_locked(
        &self,
        img: &Arc<Image>,
        users: &[ImageUser],
        force: bool,
        quiet: bool,
        prune_parents: bool,
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
        if let Some(u) = users.first() {
            // Forced past a stopped container. Docker drops the image and
            // keeps the layers alive through the container's rw layer;
            // berth's containers reach their layers through their image, so
            // it stays (untagged by a forced rmi of its name) until its
            // last container is removed.
            if quiet {
                return Ok(0);
            }
            return Err(EngineError::conflict(format!(
                "conflict: unable to delete {} (cannot be forced) - image is being used by stopped container {}",
                img.short_id(),
                short(&u.container_id)
            )));
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
        // An untagged parent left without children goes too (quietly
        // stopping at any conflict), as moby prunes a build's step images.
        if let Some(parent) = img.parent.as_deref().filter(|_| prune_parents) {
            if let Some(p) = self.get(parent) {
                let users = self.users(&p.id);
                freed += self.delete_image_locked(&p, &users, false, true, true, out)?;
            }
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
            .filter(|i| !dangling_only || self.children(&i.id).is_empty())
            .filter(|i| until.is_none_or(|u| i.config.created_unix() < u))
            .filter(|i| super::query::labels_match(filters, i))
            .cloned()
            .collect();
        candidates.sort_by(|a, b| a.id.cmp(&b.id));
        let mut deleted = Vec::new();
        let mut reclaimed = 0i64;
        for img in candidates {
            // Removed already, as the parent of an earlier candidate.
            if self.get(&img.id).is_none() || !self.users(&img.id).is_empty() {
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
                match self.delete_image_locked(&img, &[], false, false, true, &mut out) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{ImageUser, ImportOptions};
    use super::*;
    use crate::engine::events::EventBus;
    use crate::engine::store::Store;

    fn service(dir: &std::path::Path) -> ImageService {
        let store = Arc::new(Store::open(dir).unwrap());
        ImageService::open(dir, store, Arc::new(EventBus::new())).unwrap()
    }

    fn tiny_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "hi", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn containers_using_an_image_block_its_removal_as_in_docker() {
        let d = tempfile::tempdir().unwrap();
        let svc = service(d.path());
        let img = svc
            .import(
                std::io::Cursor::new(tiny_tar()),
                &ImportOptions {
                    tag: Some(Reference::parse("bb").unwrap()),
                    source: "-".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r2 = running.clone();
        let exists = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let e2 = exists.clone();
        let id = img.id.clone();
        svc.set_usage_checker(Box::new(move |image| {
            if image == id && e2.load(std::sync::atomic::Ordering::Relaxed) {
                vec![ImageUser {
                    container_id: "abcdef1234567890".into(),
                    running: r2.load(std::sync::atomic::Ordering::Relaxed),
                }]
            } else {
                vec![]
            }
        }));
        let short = img.short_id().to_string();
        let no = DeleteOptions::default();
        let force = DeleteOptions {
            force: true,
            noprune: false,
        };
        // By name, the last tag: refused without force.
        let e = svc.delete("bb", &no).unwrap_err().to_string();
        assert_eq!(e, format!("conflict: unable to remove repository reference \"bb\" (must force) - container abcdef123456 is using its referenced image {short}"));
        // By ID, running: a hard conflict, even forced.
        for o in [&no, &force] {
            let e = svc.delete(&short, o).unwrap_err();
            assert!(matches!(e, EngineError::Conflict(_)));
            assert_eq!(e.to_string(), format!("conflict: unable to delete {short} (cannot be forced) - image is being used by running container abcdef123456"));
        }
        // Prune leaves used images alone.
        let f = Filters::parse(r#"{"dangling":{"false":true}}"#).unwrap();
        assert!(svc.prune(&f).unwrap().images_deleted.is_none());
        // Forced by name while running: only untagged; the image stays.
        let out = svc.delete("bb", &force).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].untagged.as_deref(), Some("bb:latest"));
        assert!(svc.get(&img.id).is_some());
        // Stopped: a soft conflict that force overrides.
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        let e = svc.delete(&short, &no).unwrap_err().to_string();
        assert_eq!(e, format!("conflict: unable to delete {short} (must be forced) - image is being used by stopped container abcdef123456"));
        // Forced, by ID: refused, as berth keeps an image while any
        // container uses it (Docker would delete it and keep its layers).
        let e = svc.delete(&short, &force).unwrap_err().to_string();
        assert_eq!(e, format!("conflict: unable to delete {short} (cannot be forced) - image is being used by stopped container abcdef123456"));
        assert!(svc.get(&img.id).is_some());
        // Once no container uses it, it goes.
        exists.store(false, std::sync::atomic::Ordering::Relaxed);
        let out = svc.delete(&short, &no).unwrap();
        assert_eq!(out[0].deleted.as_deref(), Some(img.id.as_str()));
        assert!(svc.get(&img.id).is_none());
        assert!(svc.content.list().unwrap().is_empty());
    }

    #[test]
    fn references_resolve_and_short_ids_must_be_unambiguous() {
        let d = tempfile::tempdir().unwrap();
        let svc = service(d.path());
        let img = svc
            .import(std::io::Cursor::new(tiny_tar()), &ImportOptions::default())
            .unwrap();
        let hex = &img.id[7..];
        for s in [
            &img.id[..],
            hex,
            &hex[..12],
            &hex[..1],
            &format!("sha256:{}", &hex[..5]),
        ] {
            assert_eq!(svc.resolve(s).unwrap().id, img.id, "{s}");
        }
        assert_eq!(
            svc.resolve("busybox").unwrap_err().to_string(),
            "No such image: busybox:latest"
        );
        // Two images whose IDs share a prefix make that prefix ambiguous.
        let mut n = 0u32;
        loop {
            n += 1;
            let other = svc
                .import(
                    std::io::Cursor::new(tiny_tar()),
                    &ImportOptions {
                        message: format!("m{n}"),
                        ..Default::default()
                    },
                )
                .unwrap();
            if other.id.as_bytes()[7] == img.id.as_bytes()[7] {
                let e = svc.resolve(&hex[..1]).unwrap_err();
                assert!(matches!(e, EngineError::InvalidParameter(_)), "{e}");
                assert!(e.to_string().contains("ambiguous"));
                break;
            }
        }
        // Layers are shared: every import used the same one.
        assert_eq!(svc.layers.all().len(), 1);
        assert_eq!(svc.layer_refcount(&img.chain_ids[0]), n as usize + 1);
        let bad = svc.lower_dirs(&img.id).unwrap();
        assert_eq!(bad.len(), 1);
        assert!(bad[0].join("hi").is_file());
        let shorts = svc.lower_short_names(&img.id).unwrap();
        assert!(svc.short_links_dir().join(&shorts[0]).join("hi").is_file());
    }
}
