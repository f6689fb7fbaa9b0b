//! The `dockerfile.v0` frontend: the Dockerfile and the context come from
//! the client's session (DiffCopy), the build is berth's own builder, and
//! its progress becomes the job's vertices.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::dockerignore::Matcher;
use berth_api::jsonmessage::JsonMessage;
use tokio::sync::{mpsc, oneshot};

use super::diffcopy::{self, Filter};
use super::jobs::Job;
use super::progress::{Translate, Vtx};
use super::session::Session;
use super::{BuildKit, BuildKitError};
use crate::engine::builder::context::resolve_in_root;
use crate::engine::builder::dockerfile::{self, Command};
use crate::engine::builder::{Backend, BuildOptions, Extras, Source};
use crate::engine::images::reference::Reference;
use crate::engine::registry::AuthConfig;

/// How long a build waits for its session: buildx opens it right after
/// Solve, but a slow client must not hang a job forever.
const SESSION_WAIT: Duration = Duration::from_secs(60);

/// A scratch directory removed on drop unless handed over.
pub(super) struct Scratch(Option<PathBuf>);

impl Scratch {
    pub(super) fn new(p: PathBuf) -> Self {
        Scratch(Some(p))
    }

    pub(super) fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new("/nonexistent"))
    }

    fn take(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

pub(super) fn read_in(root: &Path, name: &str) -> Option<String> {
    let p = resolve_in_root(root, name, true).ok()?;
    std::fs::read(p)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A `.dockerignore`'s patterns as DiffCopy's `exclude-patterns`.
pub(super) fn excludes(ignore: &str) -> Vec<String> {
    Matcher::parse(ignore)
        .patterns
        .iter()
        .map(|p| {
            if p.exclusion {
                format!("!{}", p.text)
            } else {
                p.text.clone()
            }
        })
        .collect()
}

/// The builder's options from the frontend's attributes (buildx's keys).
/// Named contexts are only checked here (`named::parse`); they are
/// loaded with the session.
pub fn options(attrs: &HashMap<String, String>) -> Result<(BuildOptions, Extras), BuildKitError> {
    let get = |k: &str| attrs.get(k).map(String::as_str).unwrap_or("");
    super::named::parse(attrs)?;
    let mut o = BuildOptions {
        rm: true,
        force_rm: true,
        target: get("target").to_string(),
        platform: super::syntax::platform(get("platform"))?,
        // `no-cache` is "" for every stage, or a list of stage names.
        no_cache: attrs.get("no-cache").is_some_and(|v| v.is_empty()),
        pull: get("image-resolve-mode") == "pull",
        network_mode: get("force-network-mode").to_string(),
        // buildx writes `host=ip`; the builder takes `host:ip`.
        extra_hosts: get("add-hosts")
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
        shm_size: match get("shm-size") {
            "" => None,
            s => Some(
                s.parse::<i64>()
                    .map_err(|_| BuildKitError::Invalid(format!("invalid shm-size {s:?}")))?,
            )
            .filter(|n| *n > 0),
        },
        ..Default::default()
    };
    let mut x = Extras {
        no_cache_stages: get("no-cache")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
        ..Default::default()
    };
    for (k, v) in attrs {
        if let Some(a) = k.strip_prefix("build-arg:") {
            // BuildKit's own switches (BUILDKIT_INLINE_CACHE, …) are not
            // the Dockerfile's args.
            if !a.starts_with("BUILDKIT_") {
                o.build_args.insert(a.to_string(), Some(v.clone()));
            }
        } else if let Some(l) = k.strip_prefix("label:") {
            x.image_labels.insert(l.to_string(), v.clone());
        }
    }
    Ok((o, x))
}

/// Credentials for the registries of the FROM images, from the client's
/// Auth service (its docker config and credential helpers), asked once
/// per registry before the build, since the builder pulls with a map.
/// `extra`: more image references (named contexts) pulled from
/// registries.
pub(super) async fn credentials(
    session: &Session,
    text: &str,
    extra: &[String],
) -> HashMap<String, AuthConfig> {
    let mut out = HashMap::new();
    if !session.serves("/moby.filesync.v1.Auth/Credentials") {
        return out;
    }
    let Ok(df) = dockerfile::parse(text) else {
        return out;
    };
    let mut stages = HashSet::new();
    let mut asked = HashSet::new();
    let mut refs = Vec::new();
    for ins in &df.instructions {
        let Command::From { image, name, .. } = &ins.command else {
            continue;
        };
        let lower = image.to_ascii_lowercase();
        // Stage names, scratch and ARG-made names need no registry here.
        let plain = !image.contains('$') && lower != "scratch" && !stages.contains(&lower);
        if let Some(n) = name {
            stages.insert(n.to_ascii_lowercase());
        }
        if plain {
            refs.push(image.clone());
        }
    }
    refs.extend(extra.iter().cloned());
    for image in &refs {
        let Some(r) = Reference::parse(image).ok() else {
            continue;
        };
        if !asked.insert(r.domain.clone()) {
            continue;
        }
        if let Some(a) = session.credentials_for(&r.domain).await {
            out.insert(r.domain.clone(), a);
        }
    }
    out
}

impl BuildKit {
    /// Runs a Dockerfile build for `job`; the image ID.
    pub(super) async fn build_dockerfile(
        &self,
        job: &Arc<Job>,
        attrs: &HashMap<String, String>,
    ) -> Result<String, BuildKitError> {
        self.build_session_context(job, attrs, options(attrs)?)
            .await
    }

    /// As `build_dockerfile`, with the builder's options given (`POST
    /// /build?version=2` with the `client-session` remote); `attrs` name
    /// the Dockerfile and the session's directories.
    pub(super) async fn build_session_context(
        &self,
        job: &Arc<Job>,
        attrs: &HashMap<String, String>,
        (opts, extras): (BuildOptions, Extras),
    ) -> Result<String, BuildKitError> {
        let session = self.sessions.wait(&job.session, SESSION_WAIT).await?;
        let get = |k: &str, d: &'static str| {
            attrs
                .get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| d.to_string())
        };
        let filename = get("filename", "Dockerfile");
        let df_key = get("dockerfilekey", "dockerfile");
        let ctx_key = get("contextkey", "context");
        let builder = &self.engine.builder;

        let v = Vtx::start(
            job,
            &format!("[internal] load build definition from {filename}"),
        );
        let df_dir = Scratch::new(builder.scratch_dir("bk-dockerfile"));
        let ignore_name = format!("{filename}.dockerignore");
        let filter = Filter {
            follow: vec![filename.clone(), ignore_name.clone(), "dockerfile".into()],
            ..Default::default()
        };
        let n = match diffcopy::fetch(&session, &df_key, &filter, df_dir.path()).await {
            Ok(n) => n,
            Err(e) => {
                v.fail(&e.to_string());
                return Err(e);
            }
        };
        v.status("transferring dockerfile:", n as i64);
        let text = read_in(df_dir.path(), &filename).or_else(|| {
            (filename == "Dockerfile")
                .then(|| read_in(df_dir.path(), "dockerfile"))
                .flatten()
        });
        let Some(text) = text else {
            let m =
                format!("failed to read dockerfile: open {filename}: no such file or directory");
            v.fail(&m);
            return Err(BuildKitError::Build(m));
        };
        v.done();
        // The frontend asked for, before anything else is done.
        let syntax_arg = attrs
            .get("build-arg:BUILDKIT_SYNTAX")
            .map(String::as_str)
            .or_else(|| {
                opts.build_args
                    .get("BUILDKIT_SYNTAX")
                    .and_then(|v| v.as_deref())
            });
        super::syntax::check(job, &text, syntax_arg)?;

        // A Dockerfile-specific ignore file wins over the context's.
        let v = Vtx::start(job, "[internal] load .dockerignore");
        let ignore = match read_in(df_dir.path(), &ignore_name) {
            Some(t) => t,
            None => {
                let dir = Scratch::new(builder.scratch_dir("bk-ignore"));
                let f = Filter {
                    follow: vec![".dockerignore".into()],
                    ..Default::default()
                };
                let n = diffcopy::fetch(&session, &ctx_key, &f, dir.path()).await?;
                v.status("transferring context:", n as i64);
                read_in(dir.path(), ".dockerignore").unwrap_or_default()
            }
        };
        v.done();
        drop(df_dir);

        let v = Vtx::start(job, "[internal] load build context");
        let exclude = excludes(&ignore);
        let ctx_dir = Scratch::new(builder.scratch_dir("context"));
        let f = Filter {
            exclude,
            ..Default::default()
        };
        let n = match diffcopy::fetch(&session, &ctx_key, &f, ctx_dir.path()).await {
            Ok(n) => n,
            Err(e) => {
                v.fail(&e.to_string());
                return Err(e);
            }
        };
        v.status("transferring context:", n as i64);
        v.done();
        let named = super::named::parse(attrs)?;
        let pulled: Vec<String> = named
            .iter()
            .filter_map(|(_, n)| match n {
                super::named::Named::Image(r) => Some(r.clone()),
                super::named::Named::Local(_) => None,
            })
            .collect();
        let mut extras = extras;
        extras.named = self.load_named(job, attrs, &session, named).await?;
        let mut opts = opts;
        opts.registry_auth = credentials(&session, &text, &pulled).await;
        self.run_builder(job, ctx_dir.take(), text, (opts, extras))
            .await
    }

    pub(super) async fn run_builder(
        &self,
        job: &Arc<Job>,
        root: PathBuf,
        dockerfile: String,
        (opts, mut extras): (BuildOptions, Extras),
    ) -> Result<String, BuildKitError> {
        extras.buildkit_words = true;
        let (tx, mut rx) = mpsc::channel::<JsonMessage>(64);
        let (ready_tx, ready_rx) = oneshot::channel();
        let engine = self.engine.clone();
        let task = tokio::spawn(async move {
            let backend: Arc<dyn Backend> = engine.containers.clone();
            engine
                .builder
                .build_from(
                    backend,
                    Source::Dir {
                        root,
                        dockerfile,
                        extras,
                    },
                    opts,
                    tx,
                    ready_tx,
                )
                .await
        });
        let mut tr = Translate::new(job.clone());
        while let Some(m) = rx.recv().await {
            tr.feed(m);
        }
        // A failure before the first step comes through `ready` instead.
        if let Ok(Err(e)) = ready_rx.await {
            tr.error = Some(e.to_string());
        }
        tr.finish();
        let _ = task.await;
        if let Some(e) = tr.error {
            return Err(BuildKitError::Build(e));
        }
        tr.image
            .ok_or_else(|| BuildKitError::Build("the build produced no image".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_attributes_become_build_options() {
        let attrs: HashMap<String, String> = [
            ("filename", "Dockerfile"),
            ("target", "final"),
            ("build-arg:GREETING", "hi"),
            ("build-arg:BUILDKIT_INLINE_CACHE", "1"),
            ("label:org.example", "x"),
            ("no-cache", ""),
            ("add-hosts", "a=1.2.3.4,b=5.6.7.8"),
            ("shm-size", "1048576"),
            ("force-network-mode", "host"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (o, x) = options(&attrs).unwrap();
        assert_eq!(o.target, "final");
        assert_eq!(o.build_args.get("GREETING"), Some(&Some("hi".to_string())));
        assert!(!o.build_args.contains_key("BUILDKIT_INLINE_CACHE"));
        assert_eq!(
            x.image_labels.get("org.example").map(String::as_str),
            Some("x")
        );
        assert!(o.labels.is_empty());
        assert!(o.no_cache);
        let mut some = attrs.clone();
        some.insert("no-cache".into(), "base,Final".into());
        let (o, x) = options(&some).unwrap();
        assert!(!o.no_cache);
        assert_eq!(x.no_cache_stages.len(), 2);
        assert!(x.no_cache_stages.contains("final"));
        assert_eq!(o.extra_hosts, vec!["a:1.2.3.4", "b:5.6.7.8"]);
        assert_eq!(o.shm_size, Some(1 << 20));
        assert_eq!(o.network_mode, "host");
        let mut named = attrs.clone();
        named.insert("context:base".into(), "docker-image://alpine".into());
        assert!(options(&named).is_ok());
        named.insert("context:other".into(), "target:x".into());
        assert!(options(&named).is_err());
        let mut plat = attrs.clone();
        plat.insert("platform".into(), "linux/amd64,linux/arm64".into());
        let e = options(&plat).unwrap_err().to_string();
        assert!(e.starts_with("berthd builds only for linux/"), "{e}");
    }
}
