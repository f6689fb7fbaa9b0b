//! Preparing the start of a container that was just created.
//!
//! `docker run` creates a container, then spends milliseconds of its own
//! (it attaches, asks to wait) before it asks for the start. In that gap
//! berthd does the part of the start that depends on the configuration
//! alone: it mounts the root file system, creates the empty network
//! namespace, writes the runtime spec and `/etc` files and starts a shim,
//! which loads, creates the container (its init waits to be started) and
//! then waits for the word (see `Containers::prepare_start`). The start
//! then only has the networks, `/etc/hosts` and the word left to do.
//!
//! A preparation is used only by the container's first start, and only if
//! its configuration is unchanged by then; otherwise it is dropped and the
//! start prepares afresh. One that no start claims within `UNCLAIMED` is
//! dropped too: its shim deletes the container and exits, its root file
//! system is unmounted and its network namespace removed.
//! Containers with volumes, links, a logging plugin or namespaces shared with another
//! container are not prepared ahead (those steps have effects elsewhere or
//! depend on the other container's state at start), and at most `MAX_AHEAD` preparations
//! exist at once (a burst of `docker create` does not become a burst of
//! mounts and shims).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::super::{Container, Paths, Record, Status};
use super::Prepared;
use crate::engine::containers::Containers;

/// How long a preparation waits for its start.
const UNCLAIMED: Duration = Duration::from_secs(2);

/// How many preparations may exist at once.
const MAX_AHEAD: usize = 8;

static AHEAD: AtomicUsize = AtomicUsize::new(0);

/// One of the `MAX_AHEAD` places, given back when dropped.
struct Place;

impl Place {
    fn take() -> Option<Place> {
        AHEAD
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_AHEAD).then_some(n + 1)
            })
            .ok()
            .map(|_| Place)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        AHEAD.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Staged {
    prep: Prepared,
    key: u64,
    _place: Place,
    /// Dropped with the preparation: its task then ends at once instead of
    /// sleeping out `UNCLAIMED` (a burst of runs keeps fewer tasks alive).
    _claimed: tokio::sync::oneshot::Sender<()>,
}

fn eligible(r: &Record) -> bool {
    let shares = |m: &Option<String>| m.as_deref().is_some_and(|m| m.starts_with("container:"));
    let hc = &r.host_config;
    r.state.status == Status::Created
        && !r.has_been_started
        && r.mounts.is_empty()
        && r.links.is_empty()
        // A logging plugin's StartLogging waits for the start itself.
        && crate::engine::logging::is_builtin(
            hc.log_config.as_ref().and_then(|l| l.typ.as_deref()),
        )
        && !shares(&hc.network_mode)
        && !shares(&hc.ipc_mode)
        && !shares(&hc.pid_mode)
}

/// Whether the shim may create the container before the start: not when
/// a sysctl names an interface (it exists only once the networks are
/// joined at start) or with a terminal (see the shim).
fn create_early(r: &Record) -> bool {
    let per_interface = |k: &String| {
        [
            "net.ipv4.conf.",
            "net.ipv6.conf.",
            "net.ipv4.neigh.",
            "net.ipv6.neigh.",
        ]
        .iter()
        .any(|p| k.starts_with(p))
    };
    !r.config.tty.unwrap_or(false)
        && !r
            .host_config
            .sysctls
            .iter()
            .flatten()
            .any(|(k, _)| per_interface(k))
}

/// What a preparation depends on.
fn key(r: &Record) -> u64 {
    let nets: Vec<&String> = r.endpoints.keys().collect();
    let bytes = serde_json::to_vec(&(&r.config, &r.host_config, &r.image_id, nets, &r.name))
        .unwrap_or_default();
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The container's preparation, if it still fits `r` and its root file
/// system is still mounted (a `docker cp` into the created container may
/// have unmounted it); one that does not is dropped, after its shim has
/// exited, so that it cannot race a new shim for the socket.
pub(super) async fn take(c: &Container, r: &Record, p: &Paths) -> Option<Prepared> {
    let staged = c.staged_slot().take()?;
    if staged.key == key(r) && p.rw.is_mounted() {
        return Some(staged.prep);
    }
    staged.prep.abandon().await;
    None
}

/// Undoes a preparation's host state (after its shim has gone).
fn undo(p: &Paths) {
    p.rw.unmount();
    crate::engine::networks::netns::remove(&p.netns);
}

/// Drops a preparation at once (the container is being removed): its shim
/// exits; a network namespace still being made is removed once it is.
pub(crate) fn drop_now(c: &Container, p: &Paths) {
    let Some(staged) = c.staged_slot().take() else {
        return;
    };
    if let (Some(n), Ok(rt)) = (staged.prep.netns, tokio::runtime::Handle::try_current()) {
        let path = p.netns.clone();
        rt.spawn(async move {
            let _ = n.ready().await;
            crate::engine::networks::netns::remove(&path);
        });
    }
}

impl Containers {
    /// Prepares the start of the just-created container `id` in the
    /// background.
    pub fn prepare_ahead(self: &Arc<Self>, id: &str) {
        let Ok(c) = self.find(id) else {
            return;
        };
        if !eligible(&c.snapshot()) {
            return;
        }
        let Some(place) = Place::take() else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let p = me.paths(&c.id);
            let (claimed_tx, claimed) = tokio::sync::oneshot::channel();
            {
                // A start waits for this (and then finds the preparation).
                let _op = c.op.lock().await;
                let r = c.snapshot();
                if !eligible(&r) || me.find(&c.id).is_err() {
                    return;
                }
                // Boxed: this task outlives the preparation by up to
                // `UNCLAIMED`, and need not keep its state's room meanwhile.
                match Box::pin(me.prepare_start(&r, &p, create_early(&r))).await {
                    Ok(prep) => {
                        *c.staged_slot() = Some(Staged {
                            prep,
                            key: key(&r),
                            _place: place,
                            _claimed: claimed_tx,
                        });
                    }
                    Err(e) => {
                        tracing::debug!(id = %c.id, error = %e, "preparing ahead");
                        undo(&p);
                        return;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(UNCLAIMED) => {}
                // The preparation was taken (by a start) or dropped.
                _ = claimed => return,
            }
            let _op = c.op.lock().await;
            let unclaimed = c.staged_slot().take();
            if let Some(s) = unclaimed {
                s.prep.abandon().await;
                if c.status() == Status::Created {
                    undo(&p);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_ahead_places_and_each_comes_back() {
        let held: Vec<Place> = std::iter::from_fn(Place::take).take(100).collect();
        assert_eq!(held.len(), MAX_AHEAD);
        assert!(Place::take().is_none());
        drop(held);
        assert!(Place::take().is_some());
    }
}
