//! Named contexts (`context:<name>` frontend attributes, Compose's
//! `additional_contexts`, buildx's `--build-context`): what `FROM <name>`
//! and `COPY --from=<name>` stand on. `docker-image://<ref>` is that image
//! (pulled when absent, with the session's credentials); `local:<name>` is
//! a directory the client's session serves (FileSync, its own
//! `.dockerignore` applied), made an image of one layer with no config,
//! as BuildKit's frontend makes it a stage with no image config. The
//! other forms (`target:`, `oci-layout://`, `input:`, URLs) are refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::diffcopy::{self, Filter};
use super::frontend::{excludes, read_in, Scratch};
use super::jobs::Job;
use super::progress::Vtx;
use super::session::Session;
use super::{host_arch, BuildKit, BuildKitError};
use crate::engine::fs::{pack, PackOptions};
use crate::engine::images::reference::Reference;
use crate::engine::images::ImageService;

/// How long a local context waits for the session that serves it.
const SESSION_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A named context's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Named {
    /// `docker-image://<ref>`.
    Image(String),
    /// `local:<local name>`.
    Local(String),
}

/// The named contexts of `attrs`, by lower-case name; an error for a
/// form berthd does not serve.
pub(super) fn parse(
    attrs: &HashMap<String, String>,
) -> Result<Vec<(String, Named)>, BuildKitError> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        let Some(name) = k.strip_prefix("context:") else {
            continue;
        };
        let named = if let Some(r) = v.strip_prefix("docker-image://") {
            Reference::parse(r).map_err(|e| {
                BuildKitError::Invalid(format!("named context {name}: invalid image {r:?}: {e}"))
            })?;
            Named::Image(r.to_string())
        } else if let Some(l) = v.strip_prefix("local:") {
            Named::Local(l.to_string())
        } else {
            let form = v
                .split_once("://")
                .map(|(s, _)| s)
                .unwrap_or_else(|| v.split_once(':').map(|(s, _)| s).unwrap_or(v.as_str()));
            return Err(BuildKitError::Unsupported(format!(
                "named context {name}={v}: the {form:?} form is not supported by berthd (only docker-image:// and local directories)"
            )));
        };
        out.push((name.to_ascii_lowercase(), named));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// An image of one layer (the tree at `dir`, packed to `tar` first) and
/// no config.
fn image_of_dir(images: &ImageService, dir: &Path, tar: &Path) -> Result<String, BuildKitError> {
    let r = (|| -> Result<String, BuildKitError> {
        let f = std::fs::File::create(tar)?;
        pack(dir, f, &PackOptions::default())
            .map_err(|e| BuildKitError::Build(format!("packing a named context: {e}")))?;
        let layer = images.create_layer(None, std::fs::File::open(tar)?)?;
        // No `created`: the same files give the same image, so that the
        // steps on it are cached.
        let config = serde_json::json!({
            "architecture": host_arch(),
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        });
        let img = images.create_image(
            &serde_json::to_vec(&config).map_err(std::io::Error::other)?,
            &[],
        )?;
        drop(layer);
        Ok(img.id.clone())
    })();
    let _ = std::fs::remove_file(tar);
    r
}

impl BuildKit {
    /// Makes the named contexts ready: the builder's map from name to an
    /// image reference (pulled by the builder) or ID (a local directory's
    /// image); `main` is the build's own session.
    pub(super) async fn load_named(
        &self,
        job: &Arc<Job>,
        attrs: &HashMap<String, String>,
        main: &Arc<Session>,
        list: Vec<(String, Named)>,
    ) -> Result<HashMap<String, String>, BuildKitError> {
        let mut out = HashMap::new();
        for (name, n) in list {
            match n {
                Named::Image(r) => {
                    out.insert(name, r);
                }
                Named::Local(local) => {
                    let v = Vtx::start(job, &format!("[context {name}] load from client"));
                    match self.load_local(attrs, main, &local).await {
                        Ok((id, bytes)) => {
                            v.status("transferring context:", bytes as i64);
                            v.done();
                            out.insert(name, id);
                        }
                        Err(e) => {
                            v.fail(&e.to_string());
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// A local context's files (its `.dockerignore` applied) as an image;
    /// its ID and the bytes received.
    async fn load_local(
        &self,
        attrs: &HashMap<String, String>,
        main: &Arc<Session>,
        local: &str,
    ) -> Result<(String, u64), BuildKitError> {
        // buildx may serve a local from another session.
        let session = match attrs.get(&format!("local-sessionid:{local}")) {
            Some(id) if !id.is_empty() => self.sessions.wait(id, SESSION_WAIT).await?,
            _ => main.clone(),
        };
        let builder = &self.engine.builder;
        let ign = Scratch::new(builder.scratch_dir("bk-named-ignore"));
        let f = Filter {
            follow: vec![".dockerignore".into()],
            ..Default::default()
        };
        diffcopy::fetch(&session, local, &f, ign.path()).await?;
        let ignore = read_in(ign.path(), ".dockerignore").unwrap_or_default();
        drop(ign);
        let dir = Scratch::new(builder.scratch_dir("bk-named"));
        let f = Filter {
            exclude: excludes(&ignore),
            ..Default::default()
        };
        let n = diffcopy::fetch(&session, local, &f, dir.path()).await?;
        let images = self.engine.images.clone();
        // The layer's tar in a scratch directory of its own (what a crash
        // leaves there is removed at start-up).
        let packed = Scratch::new(builder.scratch_dir("bk-named-layer"));
        std::fs::create_dir_all(packed.path())?;
        let id = tokio::task::spawn_blocking(move || {
            image_of_dir(&images, dir.path(), &packed.path().join("layer.tar"))
        })
        .await
        .map_err(|e| BuildKitError::Build(format!("named context worker: {e}")))??;
        Ok((id, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn named_context_forms() {
        let got = parse(&attrs(&[
            ("context:Base", "docker-image://busybox:1.36"),
            ("context:files", "local:files"),
            ("filename", "Dockerfile"),
        ]))
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("base".to_string(), Named::Image("busybox:1.36".into())),
                ("files".to_string(), Named::Local("files".into())),
            ]
        );
        for (v, form) in [
            ("target:other", "\"target\""),
            ("oci-layout://store:tag@sha256:00", "\"oci-layout\""),
            ("input:x", "\"input\""),
            ("https://example.com/x.git", "\"https\""),
        ] {
            let e = parse(&attrs(&[("context:x", v)])).unwrap_err().to_string();
            assert!(e.contains(form) && e.contains("not supported"), "{v}: {e}");
        }
        assert!(parse(&attrs(&[("context:x", "docker-image://UPPER")])).is_err());
    }
}
