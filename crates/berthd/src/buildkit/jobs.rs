//! Solves in flight, keyed by the client's Ref: `Status` and the LLBBridge
//! calls may reach us before `Solve` registers its job, so lookups wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::proto::moby::buildkit::v1::StatusResponse;

/// How long a finished job stays findable, for a late `Status`.
const LINGER: Duration = Duration::from_secs(30);

/// What `LLBBridge.Return` hands the waiting `Control.Solve`: the image
/// the client's build returned (none for an internal build), or its error.
pub type Returned = Result<Option<String>, Status>;

/// A job's progress: every message kept, so that a `Status` call arriving
/// late still sees it all, then the end.
#[derive(Default)]
pub struct StatusLog {
    state: Mutex<(Vec<StatusResponse>, bool)>,
    bump: watch::Sender<u64>,
}

impl StatusLog {
    pub fn push(&self, m: StatusResponse) {
        self.lock().0.push(m);
        self.bump.send_modify(|n| *n += 1);
    }

    /// Ends the log: followers finish their streams (with OK).
    pub fn close(&self) {
        self.lock().1 = true;
        self.bump.send_modify(|n| *n += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<StatusResponse>, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream of the log from its start until it closes or the reader
    /// goes away.
    pub fn follow(self: Arc<Self>) -> ReceiverStream<Result<StatusResponse, Status>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let mut changed = self.bump.subscribe();
        tokio::spawn(async move {
            let mut next = 0;
            loop {
                let (batch, closed) = {
                    let s = self.lock();
                    (s.0[next.min(s.0.len())..].to_vec(), s.1)
                };
                next += batch.len();
                for m in batch {
                    if tx.send(Ok(m)).await.is_err() {
                        return;
                    }
                }
                if closed {
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }
}

/// One `Control.Solve`.
pub struct Job {
    pub id: String,
    /// The session (UUID) that serves this job's context and credentials.
    pub session: String,
    pub log: Arc<StatusLog>,
    /// Results of `LLBBridge.Solve`: our ref ID → image ID.
    results: Mutex<HashMap<String, String>>,
    returned: Mutex<Option<oneshot::Sender<Returned>>>,
    vertices: AtomicU64,
}

impl Job {
    pub fn keep_result(&self, image: &str) -> String {
        let r = crate::engine::ids::random_hex(12);
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(r.clone(), image.to_string());
        r
    }

    pub fn result(&self, ref_id: &str) -> Option<String> {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ref_id)
            .cloned()
    }

    /// `LLBBridge.Return`: wakes the `Control.Solve` waiting for it (once).
    pub fn finish(&self, r: Returned) -> bool {
        match self
            .returned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(tx) => tx.send(r).is_ok(),
            None => false,
        }
    }

    /// A fresh number for a vertex digest.
    pub fn next_vertex(&self) -> u64 {
        self.vertices.fetch_add(1, Ordering::Relaxed)
    }
}

/// The registry of jobs.
#[derive(Default)]
pub struct Jobs {
    map: Mutex<HashMap<String, Arc<Job>>>,
    bump: watch::Sender<u64>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a Solve; the receiver gets what `Return` says.
    pub fn create(
        &self,
        id: &str,
        session: &str,
    ) -> Result<(Arc<Job>, oneshot::Receiver<Returned>), Status> {
        let (tx, rx) = oneshot::channel();
        let job = Arc::new(Job {
            id: id.to_string(),
            session: session.to_string(),
            log: Arc::default(),
            results: Mutex::default(),
            returned: Mutex::new(Some(tx)),
            vertices: AtomicU64::new(0),
        });
        {
            let mut m = self.lock();
            if m.contains_key(id) {
                return Err(Status::already_exists(format!("job {id} already exists")));
            }
            m.insert(id.to_string(), job.clone());
        }
        self.bump.send_modify(|n| *n += 1);
        Ok((job, rx))
    }

    /// Forgets a finished job after a while (its log is closed already).
    pub fn retire(self: &Arc<Self>, id: &str) {
        let me = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER).await;
            me.lock().remove(&id);
        });
    }

    /// The job `id`, waiting up to `patience` for its Solve to arrive.
    pub async fn wait(&self, id: &str, patience: Duration) -> Option<Arc<Job>> {
        let mut changed = self.bump.subscribe();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(j) = self.lock().get(id).cloned() {
                return Some(j);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}
