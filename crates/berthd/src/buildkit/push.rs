//! `push=true` on the `moby`/`image` exporter: once the result is tagged,
//! each of the exporter's names goes to its registry through berth's own
//! push, with the credentials the client's session serves (its Auth
//! service: the docker config and credential helpers), as BuildKit's
//! image exporter pushes with the session's. (buildx with the docker
//! driver also pushes by itself afterwards, through `POST
//! /images/{name}/push`: the second push finds every blob there.)

use std::sync::Arc;
use std::time::Duration;

use berth_api::jsonmessage::JsonMessage;
use tokio::sync::mpsc;

use super::jobs::Job;
use super::progress::Vtx;
use super::proto::moby::buildkit::v1 as pb;
use super::{BuildKit, BuildKitError};
use crate::engine::images::reference::Reference;
use crate::engine::registry::{Progress, PushRequest};

/// How long a push waits for the session that serves its credentials.
const SESSION_WAIT: Duration = Duration::from_secs(10);

/// Whether the exporter asks for a push (Go's `strconv.ParseBool`).
pub(super) fn wants_push(e: &pb::Exporter) -> bool {
    matches!(
        e.attrs.get("push").map(String::as_str),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// The exporter's names, normalised, each with a tag.
fn names(e: &pb::Exporter) -> Result<Vec<Reference>, BuildKitError> {
    let list = e.attrs.get("name").map(String::as_str).unwrap_or("");
    let mut out = Vec::new();
    for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        out.push(Reference::parse(n)?.with_default_tag());
    }
    if out.is_empty() {
        return Err(BuildKitError::Invalid(
            "push needs the image's name: the exporter has no name".into(),
        ));
    }
    Ok(out)
}

impl BuildKit {
    /// Pushes each name of the exporter; its vertex shows the layers.
    pub(super) async fn push_names(
        &self,
        job: &Arc<Job>,
        e: &pb::Exporter,
    ) -> Result<(), BuildKitError> {
        let refs = names(e)?;
        // A session that is gone fails the push; one never opened means
        // no credentials.
        let session = match job.session.as_str() {
            "" => None,
            id => match self.sessions.wait(id, SESSION_WAIT).await {
                Ok(s) => Some(s),
                Err(e @ BuildKitError::SessionGone(..)) => return Err(e),
                Err(_) => None,
            },
        };
        for r in refs {
            let v = Vtx::start(job, &format!("pushing {r}"));
            let creds = match &session {
                Some(s) => s.credentials_for(&r.domain).await.unwrap_or_default(),
                None => Default::default(),
            };
            match self.push_one(&v, r.clone(), creds).await {
                Ok(digest) => {
                    v.status("pushing layers", 0);
                    v.status(&format!("pushing manifest for {r}@{digest}"), 0);
                    v.done();
                }
                Err(err) => {
                    v.fail(&err.to_string());
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// One push; its lines become the vertex's logs. The manifest digest.
    async fn push_one(
        &self,
        v: &Vtx,
        reference: Reference,
        creds: crate::engine::registry::AuthConfig,
    ) -> Result<String, BuildKitError> {
        let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(64);
        let registries = self.engine.registries.clone();
        let task = tokio::spawn(async move {
            registries
                .push(PushRequest { reference, creds }, Progress(tx))
                .await
        });
        let mut digest = String::new();
        let mut failed = None;
        while let Some(line) = rx.recv().await {
            let Ok(m) = serde_json::from_slice::<JsonMessage>(&line) else {
                continue;
            };
            if let Some(d) = m
                .aux
                .as_ref()
                .and_then(|a| a.get("Digest"))
                .and_then(|d| d.as_str())
            {
                digest = d.to_string();
            }
            if let Some(e) = m.error_detail.map(|d| d.message).or(m.error) {
                failed = Some(e);
                continue;
            }
            // The per-layer lines without their progress bars.
            if m.progress_detail
                .as_ref()
                .is_some_and(|d| d.total.is_some())
            {
                continue;
            }
            if let Some(s) = m.status {
                let line = match m.id {
                    Some(id) => format!("{id}: {s}\n"),
                    None => format!("{s}\n"),
                };
                v.log(1, line.as_bytes());
            }
        }
        task.await
            .map_err(|e| BuildKitError::Build(format!("push task: {e}")))??;
        if let Some(e) = failed {
            return Err(BuildKitError::Build(e));
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter(kv: &[(&str, &str)]) -> pb::Exporter {
        pb::Exporter {
            r#type: "moby".into(),
            attrs: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn push_attribute_and_names() {
        assert!(wants_push(&exporter(&[("push", "true")])));
        assert!(wants_push(&exporter(&[("push", "1")])));
        assert!(!wants_push(&exporter(&[("push", "false")])));
        assert!(!wants_push(&exporter(&[])));
        let n = names(&exporter(&[("name", "localhost:5000/a/b:1, c")])).unwrap();
        assert_eq!(n[0].to_string(), "localhost:5000/a/b:1");
        assert_eq!(n[1].to_string(), "docker.io/library/c:latest");
        assert!(names(&exporter(&[("push", "true")])).is_err());
    }
}
