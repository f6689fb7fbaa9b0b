//! BuildKit's progress (`Status`) from the classic builder's output: one
//! vertex per `Step N/M : …` line, `Using cache` as cached, the step's
//! output (RUN) as its logs, and the error on the vertex it stopped at.

use std::sync::Arc;
use std::time::SystemTime;

use berth_api::jsonmessage::JsonMessage;
use sha2::{Digest, Sha256};

use super::jobs::Job;
use super::proto::moby::buildkit::v1::{
    StatusResponse, Timestamp, Vertex, VertexLog, VertexStatus,
};

pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A vertex on the job's log; the whole vertex is sent again on every
/// change, as buildkitd does.
pub struct Vtx {
    job: Arc<Job>,
    v: Vertex,
}

impl Vtx {
    /// Announces a vertex and starts it.
    pub fn start(job: &Arc<Job>, name: &str) -> Self {
        let n = job.next_vertex();
        // Any unique digest will do; clients only match logs to it.
        let digest = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{}/{n}/{name}", job.id)))
        );
        let mut me = Vtx {
            job: job.clone(),
            v: Vertex {
                digest,
                name: name.to_string(),
                ..Default::default()
            },
        };
        me.send();
        me.v.started = Some(now());
        me.send();
        me
    }

    fn send(&self) {
        self.job.log.push(StatusResponse {
            vertexes: vec![self.v.clone()],
            ..Default::default()
        });
    }

    pub fn cached(&mut self) {
        self.v.cached = true;
        self.send();
    }

    /// Output lines: `stream` 1 for stdout, 2 for stderr.
    pub fn log(&self, stream: i64, msg: &[u8]) {
        if msg.is_empty() {
            return;
        }
        self.job.log.push(StatusResponse {
            logs: vec![VertexLog {
                vertex: self.v.digest.clone(),
                timestamp: Some(now()),
                stream,
                msg: msg.to_vec(),
            }],
            ..Default::default()
        });
    }

    /// A finished sub-step line (`transferring context:` with its bytes,
    /// `naming to …`).
    pub fn status(&self, id: &str, current: i64) {
        let t = now();
        self.job.log.push(StatusResponse {
            statuses: vec![VertexStatus {
                id: id.to_string(),
                vertex: self.v.digest.clone(),
                current,
                timestamp: Some(t),
                started: Some(t),
                completed: Some(t),
                ..Default::default()
            }],
            ..Default::default()
        });
    }

    pub fn done(mut self) {
        self.v.completed = Some(now());
        self.send();
    }

    pub fn fail(mut self, msg: &str) {
        self.v.error = msg.to_string();
        self.v.completed = Some(now());
        self.send();
    }
}

/// Turns the builder's JSON messages into vertices, and keeps its result.
pub struct Translate {
    job: Arc<Job>,
    cur: Option<Vtx>,
    pub image: Option<String>,
    pub error: Option<String>,
}

impl Translate {
    pub fn new(job: Arc<Job>) -> Self {
        Self {
            job,
            cur: None,
            image: None,
            error: None,
        }
    }

    pub fn feed(&mut self, m: JsonMessage) {
        if let Some(e) = m.error_detail.map(|d| d.message).or(m.error) {
            if let Some(v) = self.cur.take() {
                v.fail(&e);
            }
            self.error = Some(e);
            return;
        }
        if let Some(id) = m
            .aux
            .as_ref()
            .and_then(|a| a.get("ID"))
            .and_then(|v| v.as_str())
        {
            self.image = Some(id.to_string());
            return;
        }
        if let Some(text) = m.stream {
            self.text(&text);
            return;
        }
        // A FROM pull's progress: its lines without the bars.
        if let (Some(s), None) = (m.status, m.progress_detail.filter(|d| d.total.is_some())) {
            let line = match m.id {
                Some(id) => format!("{id}: {s}\n"),
                None => format!("{s}\n"),
            };
            if let Some(v) = &self.cur {
                v.log(1, line.as_bytes());
            }
        }
    }

    fn text(&mut self, text: &str) {
        if let Some((n, ins)) = text.strip_prefix("Step ").and_then(|r| r.split_once(" : ")) {
            if let Some(v) = self.cur.take() {
                v.done();
            }
            self.cur = Some(Vtx::start(&self.job, &format!("[{n}] {}", ins.trim_end())));
            return;
        }
        if text == " ---> Using cache\n" {
            if let Some(v) = &mut self.cur {
                v.cached();
            }
            return;
        }
        // The classic builder's own bookkeeping has no BuildKit counterpart.
        if text.starts_with(" ---> ")
            || text.starts_with("Removing intermediate container ")
            || text.starts_with("Successfully ")
        {
            return;
        }
        let Some(v) = &self.cur else {
            return;
        };
        // The builder colours stderr as the classic CLI shows it.
        match text.strip_prefix("\x1b[91m") {
            Some(e) => v.log(2, e.strip_suffix("\x1b[0m").unwrap_or(e).as_bytes()),
            None => v.log(1, text.as_bytes()),
        }
    }

    /// The build ended: completes the last vertex (unless it failed).
    pub fn finish(&mut self) {
        if let Some(v) = self.cur.take() {
            match &self.error {
                Some(e) => v.fail(e),
                None => v.done(),
            }
        }
    }
}
