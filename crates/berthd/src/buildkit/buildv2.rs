//! `POST /build?version=2`: the BuildKit build of the Engine API, as
//! bollard and the pre-buildx docker CLIs (≤ 22) use it. The context is
//! the request's body (bollard), or the client's session (`remote` =
//! `client-session`, the old CLI's FileSync); the session also serves
//! registry credentials. Progress goes back as dockerd's builder-next
//! writes it: one `{"id":"moby.buildkit.trace","aux":"<base64
//! StatusResponse>"}` line per status message, then
//! `{"id":"moby.image.id","aux":{"ID":…}}`, or an error line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use berth_api::jsonmessage::JsonMessage;
use bytes::Bytes;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt as _;

use super::jobs::Job;
use super::progress::Vtx;
use super::proto::moby::buildkit::v1 as pb;
use super::{BuildKit, BuildKitError};
use crate::engine::builder::context::Context;
use crate::engine::builder::{BuildOptions, Extras};

/// The `remote` of a context served by the session's FileSync.
const CLIENT_SESSION: &str = "client-session";

/// How long a body-context build waits for its session's credentials:
/// bollard opens the session while it uploads, but the session is only
/// needed for private registries.
const AUTH_WAIT: Duration = Duration::from_secs(5);

/// A `POST /build?version=2` request, parsed by the HTTP layer.
pub struct BuildV2 {
    /// The classic parameters; `tags` become the exporter's names.
    pub opts: BuildOptions,
    /// `session`: the client's session UUID (may be empty).
    pub session: String,
    /// `buildid`: the job's ID (random when absent).
    pub build_id: String,
    /// `remote`: empty (the body) or `client-session`.
    pub remote: String,
    /// `outputs`: the default (an image), or one `docker`, `oci` or `tar`
    /// archive or `local` tree sent to the session's FileSend.
    pub outputs: String,
    /// The body, the context tar when `remote` is empty.
    pub body: Box<dyn std::io::Read + Send>,
}

/// The `outputs` parameter (`[{"type":"tar","attrs":{…}}]`, keys in any
/// case as Go reads them): `None` for the default, an image in the store.
fn output(outputs: &str) -> Result<Option<pb::Exporter>, BuildKitError> {
    let outputs = outputs.trim();
    if outputs.is_empty() || outputs == "null" {
        return Ok(None);
    }
    let bad = |e: String| BuildKitError::Invalid(format!("invalid outputs: {e}"));
    let list: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(outputs).map_err(|e| bad(e.to_string()))?;
    if list.len() > 1 {
        return Err(BuildKitError::Unsupported(
            "multiple outputs are not supported by berthd".into(),
        ));
    }
    let Some(o) = list.into_iter().next() else {
        return Ok(None);
    };
    let field = |k: &str| {
        o.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    let kind = field("type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("an output without a type".into()))?
        .to_string();
    let mut attrs = HashMap::new();
    if let Some(serde_json::Value::Object(a)) = field("attrs") {
        for (k, v) in a {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            attrs.insert(k.clone(), v);
        }
    }
    match kind.as_str() {
        // The default unless it asks for more (a push, its own names).
        "moby" | "image" if attrs.is_empty() => Ok(None),
        "moby" | "image" => Ok(Some(pb::Exporter { r#type: kind, attrs })),
        k if super::export::to_client(k) => Ok(Some(pb::Exporter { r#type: kind, attrs })),
        k => Err(BuildKitError::Unsupported(format!(
            "output type {k:?} is not supported by berthd: use docker, oci, tar, local or the default (an image)"
        ))),
    }
}

/// `{"id":"moby.buildkit.trace","aux":"<base64>"}`.
fn trace_line(m: &pb::StatusResponse) -> Bytes {
    let aux = base64::engine::general_purpose::STANDARD.encode(m.encode_to_vec());
    let line = JsonMessage {
        id: Some("moby.buildkit.trace".into()),
        aux: Some(serde_json::Value::String(aux)),
        ..Default::default()
    };
    Bytes::from(line.to_line())
}

impl BuildKit {
    /// Starts the build; the response body's lines. Refusals that dockerd
    /// gives before any output are errors here.
    pub async fn build_v2(
        self: Arc<Self>,
        mut req: BuildV2,
    ) -> Result<mpsc::Receiver<Bytes>, BuildKitError> {
        req.opts.platform = super::syntax::platform(&req.opts.platform)?;
        match req.remote.as_str() {
            "" | CLIENT_SESSION => {}
            r if r.starts_with("upload-request:") => {
                return Err(BuildKitError::Unsupported(
                    "a context uploaded through the session (upload-request) is not supported by berthd: send it as the request body".into(),
                ))
            }
            r => {
                return Err(BuildKitError::Unsupported(format!(
                    "remote context {r:?} is not supported by berthd's BuildKit builder"
                )))
            }
        }
        if req.remote == CLIENT_SESSION && req.session.is_empty() {
            return Err(BuildKitError::Invalid(
                "a client-session context needs a session".into(),
            ));
        }
        let exporter = output(&req.outputs)?;
        let id = if req.build_id.is_empty() {
            crate::engine::ids::random_hex(16)
        } else {
            req.build_id.clone()
        };
        let (job, _returned) = self.jobs.create(&id, &req.session)?;
        let quiet = req.opts.quiet;
        let (res_tx, res_rx) = oneshot::channel();
        let me = self.clone();
        let job2 = job.clone();
        let build = tokio::spawn(async move {
            let r = me.run_v2(&job2, req, exporter).await;
            // Status followers (and our stream) end now, then the result.
            job2.log.close();
            me.jobs.retire(&job2.id);
            let _ = res_tx.send(r);
        });
        let (tx, rx) = mpsc::channel(64);
        let jobs = self.jobs.clone();
        tokio::spawn(async move {
            let mut log = job.log.clone().follow();
            loop {
                let here = tokio::select! {
                    m = log.next() => match m {
                        Some(Ok(m)) if !quiet => tx.send(trace_line(&m)).await.is_ok(),
                        Some(Ok(_)) => true,
                        _ => break,
                    },
                    () = tx.closed() => false,
                };
                if !here {
                    // The client left: the build stops (its builder sees
                    // its output dropped), as a classic one does.
                    build.abort();
                    job.log.close();
                    jobs.retire(&job.id);
                    return;
                }
            }
            let last = match res_rx.await {
                Ok(Ok(None)) => return,
                Ok(Ok(Some(image))) => {
                    if quiet {
                        let _ = tx
                            .send(Bytes::from(
                                JsonMessage::stream(format!("{image}\n")).to_line(),
                            ))
                            .await;
                    }
                    let mut m = JsonMessage::aux(serde_json::json!({ "ID": image }));
                    m.id = Some("moby.image.id".into());
                    m
                }
                Ok(Err(e)) => JsonMessage::error(e.to_string(), None),
                Err(_) => JsonMessage::error("the build ended without a result", None),
            };
            let _ = tx.send(Bytes::from(last.to_line())).await;
        });
        Ok(rx)
    }

    /// The build proper: the context, the builder, the export (tags).
    async fn run_v2(
        &self,
        job: &Arc<Job>,
        req: BuildV2,
        exporter: Option<pb::Exporter>,
    ) -> Result<Option<String>, BuildKitError> {
        let BuildV2 {
            mut opts,
            session,
            remote,
            body,
            ..
        } = req;
        let tags = std::mem::take(&mut opts.tags);
        opts.quiet = false;
        // BuildKit's switch, not an argument of the Dockerfile.
        let syntax_arg = opts.build_args.remove("BUILDKIT_SYNTAX").flatten();
        let image = if remote == CLIENT_SESSION {
            drop(body);
            let mut attrs = HashMap::new();
            if !opts.dockerfile.is_empty() {
                attrs.insert("filename".to_string(), opts.dockerfile.clone());
            }
            if let Some(s) = syntax_arg {
                attrs.insert("build-arg:BUILDKIT_SYNTAX".to_string(), s);
            }
            self.build_session_context(job, &attrs, (opts, Extras::default()))
                .await?
        } else {
            self.body_build(job, &session, body, opts, syntax_arg.as_deref())
                .await?
        };
        let names = tags
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if let Some(mut e) = exporter {
            if !names.is_empty() && !e.attrs.contains_key("name") {
                e.attrs.insert("name".into(), names);
            }
            if !super::export::to_client(&e.r#type) {
                self.export(job, &image, &e)?;
                if super::push::wants_push(&e) {
                    self.push_names(job, &e).await?;
                }
                return Ok(Some(image));
            }
            let resp = self.export_archive(job, &image, &e).await?;
            // dockerd's `moby.image.id` is the exporter's image digest.
            return Ok(resp.get("containerimage.digest").cloned());
        }
        let exporter = pb::Exporter {
            r#type: "moby".into(),
            attrs: [("name".to_string(), names)].into_iter().collect(),
        };
        self.export(job, &image, &exporter)?;
        Ok(Some(image))
    }

    /// A build whose context is the request's body (bollard).
    async fn body_build(
        &self,
        job: &Arc<Job>,
        session: &str,
        body: Box<dyn std::io::Read + Send>,
        opts: BuildOptions,
        syntax_arg: Option<&str>,
    ) -> Result<String, BuildKitError> {
        let v = Vtx::start(job, "[internal] load build context");
        let dir = self.engine.builder.scratch_dir("context");
        let name = opts.dockerfile.clone();
        let received = tokio::task::spawn_blocking(move || {
            let mut body = body;
            let r = Context::receive(&mut body, dir).and_then(|c| {
                let t = c.take_dockerfile(&name)?;
                c.apply_ignore()?;
                Ok((c, t))
            });
            if r.is_err() {
                // Read the rest so the uploading client sees the answer.
                let _ = std::io::copy(&mut body, &mut std::io::sink());
            }
            r
        })
        .await
        .map_err(|e| BuildKitError::Build(format!("build worker: {e}")));
        let (ctx, text) = match received {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                v.fail(&e.to_string());
                return Err(e.into());
            }
            Err(e) => {
                v.fail(&e.to_string());
                return Err(e);
            }
        };
        v.done();
        super::syntax::check(job, &text, syntax_arg)?;
        let mut opts = opts;
        if !session.is_empty() {
            match self.sessions.wait(session, AUTH_WAIT).await {
                Ok(s) => opts.registry_auth = super::frontend::credentials(&s, &text, &[]).await,
                Err(e) => tracing::debug!(error = %e, "build without the session's credentials"),
            }
        }
        self.run_builder(job, ctx.into_root(), text, (opts, Extras::default()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::output;

    #[test]
    fn outputs_parameter() {
        assert!(output("").unwrap().is_none());
        assert!(output("[]").unwrap().is_none());
        assert!(output(r#"[{"type":"moby"}]"#).unwrap().is_none());
        let e = output(r#"[{"type":"image","attrs":{"push":true,"name":"r:5000/a:1"}}]"#)
            .unwrap()
            .unwrap();
        assert_eq!(e.r#type, "image");
        assert_eq!(e.attrs["push"], "true");
        let e = output(r#"[{"type": "tar"}]"#).unwrap().unwrap();
        assert_eq!(e.r#type, "tar");
        let e = output(r#"[{"Type":"docker","Attrs":{"name":"a:b"}}]"#)
            .unwrap()
            .unwrap();
        assert_eq!(e.r#type, "docker");
        assert_eq!(e.attrs["name"], "a:b");
        assert_eq!(
            output(r#"[{"type":"local"}]"#).unwrap().unwrap().r#type,
            "local"
        );
        assert!(output(r#"[{"type":"registry"}]"#).is_err());
        assert!(output(r#"[{"type":"tar"},{"type":"oci"}]"#).is_err());
        assert!(output("{").is_err());
    }
}
