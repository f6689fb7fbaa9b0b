//! The classic builder (`POST /build`, `DOCKER_BUILDKIT=0 docker build`):
//! a Dockerfile and a context tar in, an image out, with moby's output
//! stream (`Step N/M : …`, ` ---> Running in …`, ` ---> <id>`,
//! `Successfully built/tagged`).
//!
//! Every step gives an image whose parent is the previous step's, as in
//! moby: metadata-only steps (ENV, CMD, LABEL, …) add a history entry with
//! `empty_layer`, RUN runs a real container from the previous image and
//! commits its rw layer, COPY/ADD (and WORKDIR, when it has to create the
//! directory) write into an overlay of the previous image and commit that.
//! Each step is recorded in the build cache (see `cache.rs`).

mod backend;
pub mod cache;
mod cache_from;
pub mod context;
mod copy;
mod dispatch;
pub mod dockerfile;
mod fetch;
mod run;
pub mod shell;
mod state;

pub use backend::{Backend, Started, StepConfig};
use dispatch::human_list;
use run::step_container;
use run::StepContainer;
use state::host_arch;
pub use state::Extras;
use state::State;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::jsonmessage::JsonMessage;
use berth_api::models::{HealthConfig, ImageConfig};
use tokio::sync::mpsc;

use super::fs::snapshot::{RwLayer, Upper};
use super::images::reference::Reference;
use super::images::{ImageService, LayerInfo};
use super::registry::{AuthConfig, Platform, Progress, PullRequest};
use super::store::Store;
use super::{EngineError, Result};
use dockerfile::{Args, Command, Instruction};

/// The build args Docker lets through without an `ARG`.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Commits a step's rw layer as a layer on top of `parent`; `None` when
/// nothing changed.
fn commit_step(
    images: &ImageService,
    rw: &RwLayer,
    kind: Upper,
    parent: Option<&str>,
) -> Result<Option<LayerInfo>> {
    let store = |r| images.create_layer(parent, r);
    rw.commit(kind, store).map_err(|e| match e {
        EngineError::Internal(m) => EngineError::Internal(format!("build: {m}")),
        other => other,
    })
}

pub use crate::engine::clock::now;

/// The classic builder: builds, and the build cache with its `df` and
/// prune. What it needs of containers and the registry comes per build
/// as a `Backend`.
pub struct Builder {
    images: Arc<ImageService>,
    cache: cache::Cache,
    /// Scratch space of builds in flight (contexts, roots, downloads).
    dir: PathBuf,
}

impl Builder {
    pub fn open(data_root: &Path, store: Arc<Store>, images: Arc<ImageService>) -> Result<Self> {
        let dir = data_root.join("builder");
        // Whatever an interrupted build left (mounts first).
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let rw = RwLayer::at(&e.path());
                rw.unmount();
                if !rw.is_mounted() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            images,
            cache: cache::Cache::open(store)?,
            dir,
        })
    }

    /// A fresh directory name under the builder's scratch space (removed
    /// at start-up if a build leaves it behind).
    pub fn scratch_dir(&self, what: &str) -> PathBuf {
        self.dir
            .join(format!("{what}-{}", super::ids::random_hex(8)))
    }
}

/// `POST /build` parameters.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    pub quiet: bool,
    pub no_cache: bool,
    pub pull: bool,
    pub rm: bool,
    pub force_rm: bool,
    pub network_mode: String,
    /// `extrahosts` (`name:ip`) and `shmsize` for RUN containers.
    pub extra_hosts: Vec<String>,
    pub shm_size: Option<i64>,
    /// `cachefrom`: images that may stand for steps (see `cache_from.rs`).
    pub cache_from: Vec<String>,
    /// `None` values: given without a value and not set in the client's
    /// environment (the default applies).
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: String,
    pub platform: String,
    pub remote: String,
    /// `X-Registry-Config`: credentials by registry domain, for FROM pulls.
    pub registry_auth: HashMap<String, AuthConfig>,
}

/// Where a build's context comes from.
pub enum Source {
    /// `POST /build`'s body: a tar (plain, gzip or zstd).
    Tar(Box<dyn std::io::Read + Send>),
    /// A context already received into `root` (BuildKit's DiffCopy), which
    /// the build owns from here on (removed at its end), and the
    /// Dockerfile's text.
    Dir {
        root: PathBuf,
        dockerfile: String,
        extras: Extras,
    },
}

/// Why a build stopped.
enum Fail {
    Engine(EngineError),
    /// A RUN exited non-zero: the message and its code.
    Run(String, i64),
    /// The client went away.
    Gone,
}

impl From<berth_api::reference::ReferenceError> for Fail {
    fn from(e: berth_api::reference::ReferenceError) -> Self {
        Fail::Engine(e.into())
    }
}

impl From<EngineError> for Fail {
    fn from(e: EngineError) -> Self {
        Fail::Engine(e)
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail::Engine(e.into())
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail::Engine(e.into())
    }
}

type Step<T = ()> = std::result::Result<T, Fail>;

fn invalid(m: impl Into<String>) -> Fail {
    Fail::Engine(EngineError::invalid(m))
}

struct Out {
    tx: mpsc::Sender<JsonMessage>,
    quiet: bool,
    /// Quiet mode's progress, shown only if the build fails (as dockerd).
    held: std::sync::Mutex<Vec<String>>,
}

impl Out {
    async fn send(&self, m: JsonMessage) -> Step {
        self.tx.send(m).await.map_err(|_| Fail::Gone)
    }

    /// A progress line (held back in quiet mode).
    async fn say(&self, s: impl Into<String>) -> Step {
        if self.quiet {
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(s.into());
            return Ok(());
        }
        self.send(JsonMessage::stream(s)).await
    }

    /// Before a failure's error: what quiet mode held back.
    async fn release(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner()));
        for s in held {
            if self.send(JsonMessage::stream(s)).await.is_err() {
                return;
            }
        }
    }
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// A stage of the Dockerfile: its FROM and what follows.
struct StagePlan {
    from: Instruction,
    body: Vec<Instruction>,
}

/// A finished stage, for `FROM <stage>` and `COPY --from=<stage>`.
struct Done {
    name: Option<String>,
    state: State,
}

/// An overlay of an image with a private upper directory, where COPY,
/// ADD and WORKDIR write; unmounted and removed on drop.
struct Scratch {
    dir: PathBuf,
    rw: RwLayer,
}

impl Scratch {
    fn mount(backend: &dyn Backend, image_id: &str, dir: PathBuf) -> Result<Self> {
        let rw = RwLayer::at(&dir);
        let s = Scratch { dir, rw };
        backend.mount_scratch(&s.rw, image_id)?;
        Ok(s)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.rw.unmount();
        if !self.rw.is_mounted() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `/bin/sh -c #(nop)  ENV A=1` → `["/bin/sh", "-c", "#(nop) ", "ENV A=1"]`
/// (moby's comment for metadata steps); `/bin/sh -c #(nop) COPY …` →
/// `["/bin/sh", "-c", "#(nop) COPY …"]` (COPY, ADD, WORKDIR).
fn comment_cmd(created_by: &str) -> Vec<String> {
    let rest = created_by.strip_prefix("/bin/sh -c ").unwrap_or(created_by);
    let mut v = vec!["/bin/sh".to_string(), "-c".to_string()];
    match rest.strip_prefix("#(nop)  ") {
        Some(desc) => {
            v.push("#(nop) ".into());
            v.push(desc.into());
        }
        None => v.push(rest.into()),
    }
    v
}

impl Builder {
    /// Runs a build: reads the context from `body`, streams progress to
    /// `tx`, and ends the stream with the result or an `errorDetail`.
    /// A failure before any progress went out is returned through `ready`
    /// instead, so that it can be the HTTP status (as dockerd does while
    /// its output is unflushed).
    pub async fn build(
        &self,
        backend: Arc<dyn Backend>,
        body: Box<dyn std::io::Read + Send>,
        opts: BuildOptions,
        tx: mpsc::Sender<JsonMessage>,
        ready: tokio::sync::oneshot::Sender<Result<()>>,
    ) {
        self.build_from(backend, Source::Tar(body), opts, tx, ready)
            .await
    }

    /// As `build`, from either kind of context.
    pub async fn build_from(
        &self,
        backend: Arc<dyn Backend>,
        source: Source,
        opts: BuildOptions,
        tx: mpsc::Sender<JsonMessage>,
        ready: tokio::sync::oneshot::Sender<Result<()>>,
    ) {
        let out = Out {
            tx,
            quiet: opts.quiet,
            held: Default::default(),
        };
        let mut ready = Some(ready);
        match self
            .build_inner(backend, source, &opts, &out, &mut ready)
            .await
        {
            Ok(()) => {}
            Err(Fail::Gone) => tracing::info!("build: the client went away"),
            Err(Fail::Run(m, code)) => {
                out.release().await;
                let _ = out.send(JsonMessage::error(m, Some(code))).await;
            }
            Err(Fail::Engine(e)) => match ready.take() {
                // Not started yet: the request itself fails.
                Some(r) => {
                    let _ = r.send(Err(e));
                }
                None => {
                    out.release().await;
                    let _ = out.send(JsonMessage::error(e.to_string(), None)).await;
                }
            },
        }
    }

    async fn build_inner(
        &self,
        backend: Arc<dyn Backend>,
        source: Source,
        opts: &BuildOptions,
        out: &Out,
        ready: &mut Option<tokio::sync::oneshot::Sender<Result<()>>>,
    ) -> Step {
        if !opts.remote.is_empty() {
            return Err(invalid(format!(
                "remote build contexts are not supported ({}): send the context as the request body",
                opts.remote
            )));
        }
        if let Some(p) = Some(opts.platform.as_str()).filter(|p| !p.is_empty()) {
            check_platform(p)?;
        }
        let body = match source {
            Source::Tar(body) => body,
            Source::Dir {
                root,
                dockerfile,
                extras,
            } => {
                let ctx = context::Context { root };
                return self
                    .build_context(backend, ctx, (dockerfile, extras), opts, out, ready)
                    .await;
            }
        };
        let dir = self.scratch_dir("context");
        let dockerfile_name = opts.dockerfile.clone();
        let (ctx, text) = tokio::task::spawn_blocking(move || {
            let mut body = body;
            let r = context::Context::receive(&mut body, dir).and_then(|c| {
                let t = c.take_dockerfile(&dockerfile_name)?;
                Ok((c, t))
            });
            if r.is_err() {
                // Read the rest so the uploading client sees the answer.
                let _ = std::io::copy(&mut body, &mut std::io::sink());
            }
            r
        })
        .await
        .map_err(|e| EngineError::internal(format!("build worker: {e}")))??;
        self.build_context(backend, ctx, (text, Extras::default()), opts, out, ready)
            .await
    }

    /// The build proper, once the context is in place.
    async fn build_context(
        &self,
        backend: Arc<dyn Backend>,
        ctx: context::Context,
        (text, extras): (String, Extras),
        opts: &BuildOptions,
        out: &Out,
        ready: &mut Option<tokio::sync::oneshot::Sender<Result<()>>>,
    ) -> Step {
        let df = dockerfile::parse(&text).map_err(|e| invalid(e.to_string()))?;
        if df.instructions.is_empty() {
            let name = if opts.dockerfile.is_empty() {
                "Dockerfile"
            } else {
                opts.dockerfile.as_str()
            };
            return Err(invalid(format!("the Dockerfile ({name}) cannot be empty")));
        }
        // The context is in and the Dockerfile parses: the response (a
        // stream) starts; errors before this are the request's own.
        if let Some(r) = ready.take() {
            if r.send(Ok(())).is_err() {
                return Err(Fail::Gone);
            }
        }
        for w in &df.warnings {
            out.say(format!("{w}\n")).await?;
        }
        // Meta ARGs, then stages.
        let mut meta: Vec<Instruction> = Vec::new();
        let mut stages: Vec<StagePlan> = Vec::new();
        for ins in df.instructions {
            match (&ins.command, stages.last_mut()) {
                (Command::From { .. }, _) => stages.push(StagePlan {
                    from: ins,
                    body: vec![],
                }),
                (_, Some(s)) => s.body.push(ins),
                (Command::Arg(_), None) => meta.push(ins),
                (_, None) => {
                    return Err(invalid(format!(
                        "dockerfile parse error on line {}: {} before FROM: only ARG may come before the first FROM",
                        ins.line,
                        ins.command.keyword()
                    )))
                }
            }
        }
        if stages.is_empty() {
            return Err(invalid(
                "the Dockerfile has no FROM: no build stage in current context",
            ));
        }
        if !opts.target.is_empty() {
            let t = opts.target.to_ascii_lowercase();
            let ix = stages
                .iter()
                .position(
                    |s| matches!(&s.from.command, Command::From { name: Some(n), .. } if *n == t),
                )
                .ok_or_else(|| {
                    invalid(format!(
                        "failed to reach build target {} in Dockerfile",
                        opts.target
                    ))
                })?;
            stages.truncate(ix + 1);
        }
        // `labels`: as dockerd's classic builder, one LABEL step per label
        // (sorted) at the end of the last stage.
        if let Some(last) = stages.last_mut() {
            for (k, v) in &opts.labels {
                last.body.push(Instruction {
                    line: 0,
                    original: format!("LABEL {k}={v}"),
                    command: Command::Label(vec![(serde_json::to_string(k)?, format!("'{v}'"))]),
                });
            }
        }
        let total = meta.len() + stages.iter().map(|s| 1 + s.body.len()).sum::<usize>();
        let mut b = Run {
            builder: self,
            backend,
            opts,
            out,
            ctx_root: ctx.root.clone(),
            escape: df.escape,
            step: 0,
            total,
            consumed: HashSet::new(),
            meta: BTreeMap::new(),
            done: Vec::new(),
            extras,
            stage_no_cache: false,
        };
        for ins in &meta {
            b.next_step(ins).await?;
            let Command::Arg(list) = &ins.command else {
                continue;
            };
            for (k, default) in list {
                let given = opts.build_args.get(k).cloned().flatten();
                if opts.build_args.contains_key(k) {
                    b.consumed.insert(k.clone());
                }
                let v = match given {
                    Some(v) => Some(v),
                    None => match default {
                        Some(d) => Some(b.expand_meta(d)?),
                        None => None,
                    },
                };
                b.meta.insert(k.clone(), v);
            }
        }
        for stage in &stages {
            let st = b.run_stage(stage).await?;
            let name = match &stage.from.command {
                Command::From { name, .. } => name.clone(),
                _ => None,
            };
            b.done.push(Done { name, state: st });
        }
        if let Some(mut d) = b.done.pop() {
            b.apply_image_labels(&mut d.state)?;
            b.done.push(d);
        }
        drop(ctx);
        let last = b.done.last().map(|d| d.state.clone());
        let Some(last) = last.filter(|s| !s.image_id.is_empty()) else {
            return Err(invalid("No image was generated. Is your Dockerfile empty?"));
        };
        let unused: Vec<String> = opts
            .build_args
            .keys()
            .filter(|k| !b.consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect();
        if !unused.is_empty() {
            out.say(format!(
                "[Warning] One or more build-args {} were not consumed\n",
                human_list(&unused)
            ))
            .await?;
        }
        let id = last.image_id.clone();
        if opts.quiet {
            out.send(JsonMessage::stream(format!("{id}\n"))).await?;
        } else {
            out.send(JsonMessage::aux(serde_json::json!({ "ID": id })))
                .await?;
            out.say(format!("Successfully built {}\n", short(&id)))
                .await?;
        }
        for t in &opts.tags {
            let tag = t.tag.clone().unwrap_or_else(|| "latest".into());
            self.images.tag(&id, &t.name(), &tag)?;
            out.say(format!(
                "Successfully tagged {}\n",
                t.clone().with_default_tag().familiar()
            ))
            .await?;
        }
        Ok(())
    }
}

fn check_platform(p: &str) -> Result<()> {
    let mut it = p.split('/');
    let os = it.next().unwrap_or("");
    let arch = it.next().unwrap_or("");
    if os != "linux" || (!arch.is_empty() && arch != host_arch()) {
        return Err(EngineError::invalid(format!(
            "platform {p} is not supported by this daemon (it builds for linux/{})",
            host_arch()
        )));
    }
    Ok(())
}

/// One build in progress.
struct Run<'a> {
    builder: &'a Builder,
    backend: Arc<dyn Backend>,
    opts: &'a BuildOptions,
    out: &'a Out,
    ctx_root: PathBuf,
    escape: char,
    step: usize,
    total: usize,
    /// Build args something declared.
    consumed: HashSet<String>,
    /// Values of the ARGs before the first FROM.
    meta: BTreeMap<String, Option<String>>,
    done: Vec<Done>,
    extras: Extras,
    /// The current stage is in `extras.no_cache_stages`.
    stage_no_cache: bool,
}

impl Run<'_> {
    async fn next_step(&mut self, ins: &Instruction) -> Step {
        self.step += 1;
        self.out
            .say(format!(
                "Step {}/{} : {}\n",
                self.step, self.total, ins.original
            ))
            .await
    }

    fn expand_meta(&self, w: &str) -> Step<String> {
        let lookup = |k: &str| self.meta.get(k).cloned().flatten();
        shell::expand(w, self.escape, &lookup).map_err(invalid)
    }

    fn expand(&self, st: &State, w: &str) -> Step<String> {
        let lookup = |k: &str| st.var(k);
        shell::expand(w, self.escape, &lookup).map_err(invalid)
    }

    async fn run_stage(&mut self, stage: &StagePlan) -> Step<State> {
        self.next_step(&stage.from).await?;
        let Command::From {
            image,
            platform,
            name,
        } = &stage.from.command
        else {
            return Err(invalid("a stage must begin with FROM"));
        };
        self.stage_no_cache = name
            .as_ref()
            .is_some_and(|n| self.extras.no_cache_stages.contains(n));
        let image = self.expand_meta(image)?;
        let platform = match platform {
            Some(p) => self.expand_meta(p)?,
            None => self.opts.platform.clone(),
        };
        if !platform.is_empty() {
            check_platform(&platform)?;
        }
        let lower = image.to_ascii_lowercase();
        let mut st = if let Some(d) = self
            .done
            .iter()
            .rev()
            .find(|d| d.name.as_deref() == Some(lower.as_str()))
        {
            let mut s = d.state.clone();
            s.args.clear();
            s.cmd_set = false;
            s
        } else if lower == "scratch" || self.extras.named_for(&image) == Some("scratch") {
            State::scratch()
        } else {
            let img = self.base_image(&image).await?;
            State::of_image(&img)?
        };
        if !st.image_id.is_empty() {
            self.out
                .say(format!(" ---> {}\n", short(&st.image_id)))
                .await?;
        }
        // As moby's `setDefaultPath`: every stage has a PATH.
        if st.env_get("PATH").is_none() {
            st.set_env("PATH", berth_runtime::DEFAULT_PATH);
        }
        // ONBUILD triggers of the base image run first.
        let triggers = st.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            self.out
                .say(format!(
                    "# Executing {} build trigger{}\n",
                    triggers.len(),
                    if triggers.len() == 1 { "" } else { "s" }
                ))
                .await?;
            for t in triggers {
                let command = dockerfile::parse_instruction(&t, self.escape, true)
                    .map_err(|e| invalid(format!("invalid ONBUILD trigger {t:?}: {e}")))?;
                let ins = Instruction {
                    line: 0,
                    original: t.clone(),
                    command,
                };
                self.dispatch(&mut st, &ins).await?;
            }
        }
        for ins in &stage.body {
            self.next_step(ins).await?;
            self.dispatch(&mut st, ins).await?;
        }
        Ok(st)
    }

    /// The base image of a FROM: local, else pulled (always pulled with
    /// `--pull`), its progress shown in the build output as Docker's
    /// classic builder does.
    async fn base_image(&self, name: &str) -> Step<Arc<super::images::Image>> {
        // A named context: another image, or a local directory's (an ID).
        let name = self.extras.named_for(name).unwrap_or(name);
        if let Some(img) = name
            .strip_prefix("sha256:")
            .and_then(|_| self.builder.images.get(name))
        {
            return Ok(img);
        }
        if !self.opts.pull {
            match self.builder.images.resolve(name) {
                Ok(img) => return Ok(img),
                Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut reference = Reference::parse(name)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some("latest".into());
        }
        let platform = match self.opts.platform.as_str() {
            "" => None,
            p => Some(Platform::parse(p)?),
        };
        let creds = self
            .opts
            .registry_auth
            .get(&reference.domain)
            .cloned()
            .unwrap_or_default();
        let req = PullRequest {
            reference: reference.clone(),
            platform,
            creds,
        };
        let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(64);
        let pull = tokio::spawn(self.backend.clone().pull_image(req, Progress(tx)));
        while let Some(line) = rx.recv().await {
            if self.out.quiet {
                continue;
            }
            if let Ok(m) = serde_json::from_slice::<JsonMessage>(&line) {
                self.out.send(m).await?;
            }
        }
        pull.await
            .map_err(|e| Fail::Engine(EngineError::internal(format!("pull task: {e}"))))??;
        Ok(self.builder.images.resolve(&reference.to_string())?)
    }

    /// Looks a step up in the cache; on a hit moves the state to it.
    async fn try_cache(&self, st: &mut State, key: &str, created_by: &str) -> Step<bool> {
        if self.opts.no_cache || self.stage_no_cache {
            return Ok(false);
        }
        let local = self.builder.cache.get(key).and_then(|e| {
            let img = self.builder.images.get(&e.image);
            if img.is_none() {
                // Its image was removed (rmi, image prune): a stale entry.
                let _ = self.builder.cache.remove(&[key.to_string()]);
            }
            img
        });
        // With `cachefrom`, a local hit counts only on a source's own line
        // (as dockerd's).
        let local =
            local.filter(|img| self.opts.cache_from.is_empty() || self.is_source_ancestor(&img.id));
        let img = match local {
            Some(img) => img,
            None => match self.cache_source_hit(st, key, created_by).await? {
                Some(img) => img,
                None => return Ok(false),
            },
        };
        let args = std::mem::take(&mut st.args);
        let cmd_set = st.cmd_set;
        *st = State::of_image(&img)?;
        st.args = args;
        st.cmd_set = cmd_set;
        self.builder.cache.touch(key);
        self.out.say(" ---> Using cache\n").await?;
        self.out.say(format!(" ---> {}\n", short(&img.id))).await?;
        Ok(true)
    }

    /// Whether `id` is a `cachefrom` image or one of their parents.
    fn is_source_ancestor(&self, id: &str) -> bool {
        self.opts.cache_from.iter().any(|r| {
            let mut cur = self.builder.images.resolve(r).ok().map(|i| i.id.clone());
            // Parent chains are short; the bound guards against a cycle.
            for _ in 0..1000 {
                match cur {
                    Some(c) if c == id => return true,
                    Some(c) => cur = self.builder.images.get(&c).and_then(|i| i.parent.clone()),
                    None => return false,
                }
            }
            false
        })
    }

    /// A `cachefrom` image for this step, kept in the local cache too.
    async fn cache_source_hit(
        &self,
        st: &State,
        key: &str,
        created_by: &str,
    ) -> Step<Option<Arc<super::images::Image>>> {
        if self.opts.cache_from.is_empty() {
            return Ok(None);
        }
        let sources: Vec<String> = self
            .opts
            .cache_from
            .iter()
            .filter_map(|r| self.builder.images.resolve(r).ok().map(|i| i.id.clone()))
            .collect();
        let parent_id = Some(st.image_id.as_str()).filter(|p| !p.is_empty());
        let parent = parent_id.map(|_| &st.spec);
        let config = serde_json::to_value(&st.config)?;
        let Some(id) = cache_from::lookup(
            &self.builder.images,
            &sources,
            parent_id,
            parent,
            created_by,
            &config,
        )?
        else {
            return Ok(None);
        };
        let Some(img) = self.builder.images.get(&id) else {
            return Ok(None);
        };
        let t = now();
        self.builder.cache.put(
            key,
            cache::Entry {
                image: img.id.clone(),
                parent: st.image_id.clone(),
                description: created_by.to_string(),
                size: 0,
                created: t.clone(),
                last_used: t,
                usage: 0,
            },
        )?;
        Ok(Some(img))
    }

    /// Makes the step's image from the state's config (and a layer).
    async fn commit(
        &self,
        st: &mut State,
        created_by: &str,
        key: &str,
        layer: Option<LayerInfo>,
        ran: StepContainer,
    ) -> Step {
        let mut spec = st.spec.clone();
        let (container, container_config) = step_container(st, created_by, ran)?;
        let created = now();
        spec["config"] = serde_json::to_value(&st.config)?;
        spec["created"] = serde_json::Value::String(created.clone());
        if let Some(o) = spec.as_object_mut() {
            o.remove("container");
            o.remove("container_config");
            o.remove("parent");
            o.remove("id");
            o.remove("comment");
            // moby writes its own version there; berth is not docker.
            o.remove("docker_version");
        }
        spec["container"] = serde_json::Value::String(container);
        spec["container_config"] = container_config;
        let mut h = serde_json::json!({"created": created, "created_by": created_by});
        if let Some(l) = &layer {
            match spec["rootfs"]["diff_ids"].as_array_mut() {
                Some(d) => d.push(serde_json::Value::String(l.diff_id.clone())),
                None => {
                    spec["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [l.diff_id]})
                }
            }
        } else {
            h["empty_layer"] = serde_json::Value::Bool(true);
        }
        match spec["history"].as_array_mut() {
            Some(hist) => hist.push(h),
            None => spec["history"] = serde_json::json!([h]),
        }
        let bytes = serde_json::to_vec(&spec)?;
        let parent = Some(st.image_id.as_str()).filter(|p| !p.is_empty());
        let img = self
            .builder
            .images
            .create_child_image(&bytes, &[], parent)?;
        let size = layer.as_ref().map(|l| l.size as i64).unwrap_or(0);
        let t = now();
        self.builder.cache.put(
            key,
            cache::Entry {
                image: img.id.clone(),
                parent: st.image_id.clone(),
                description: created_by.to_string(),
                size,
                created: t.clone(),
                last_used: t,
                usage: 0,
            },
        )?;
        st.image_id = img.id.clone();
        st.spec = serde_json::from_str(&img.raw_config)?;
        Ok(())
    }

    async fn say_id(&self, st: &State) -> Step {
        self.out
            .say(format!(" ---> {}\n", short(&st.image_id)))
            .await
    }

    async fn copy(&mut self, st: &mut State, c: &dockerfile::CopySpec, add: bool) -> Step {
        let what = if add { "ADD" } else { "COPY" };
        let mut srcs = Vec::new();
        for s in &c.srcs {
            srcs.push(self.expand(st, s)?);
        }
        let dest_word = self.expand(st, &c.dest)?;
        let workdir = st.config.working_dir.clone().unwrap_or_default();
        let mut dest = if dest_word.starts_with('/') {
            dest_word.clone()
        } else {
            format!("/{}/{}", workdir.trim_matches('/'), dest_word)
        };
        let trailing = dest_word.ends_with('/') || dest_word == "." || dest_word.ends_with("/.");
        dest = berth_api::dockerignore::clean(&dest);
        if trailing && !dest.ends_with('/') {
            dest.push('/');
        }
        let chown = match &c.chown {
            Some(x) => Some(self.expand(st, x)?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(x) => Some(copy::parse_chmod(&self.expand(st, x)?)?),
            None => None,
        };
        // The source root: the context, or another stage's or image's root.
        let from = match &c.from {
            Some(f) => Some(self.expand(st, f)?),
            None => None,
        };
        let from_image: Option<String> = match &from {
            None => None,
            Some(f) => {
                let lf = f.to_ascii_lowercase();
                if let Some(d) = self
                    .done
                    .iter()
                    .find(|d| d.name.as_deref() == Some(lf.as_str()))
                {
                    Some(d.state.image_id.clone())
                } else if let Some(d) = f.parse::<usize>().ok().and_then(|i| self.done.get(i)) {
                    Some(d.state.image_id.clone())
                } else {
                    Some(self.base_image(f).await?.id.clone())
                }
            }
        };
        // URLs (ADD only) are downloaded first.
        let mut downloads = Vec::new();
        let mut local = Vec::new();
        for s in srcs {
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                downloads.push(s);
            } else {
                local.push(s);
            }
        }
        let dl_dir = self.builder.scratch_dir("download");
        let _dl_guard = DirGuard(dl_dir.clone());
        let mut fetched = Vec::new();
        for (i, url) in downloads.iter().enumerate() {
            std::fs::create_dir_all(&dl_dir)?;
            let file = dl_dir.join(format!("{i}"));
            let got = fetch::download(url, &file).await?;
            fetched.push(copy::Source {
                path: file,
                name: got.name,
                may_extract: false,
                mode: Some(0o600),
                mtime: got.mtime,
            });
        }
        let backend = self.backend.clone();
        let ctx_root = self.ctx_root.clone();
        let src_dir = self.builder.scratch_dir("from");
        let what_s = what.to_string();
        let from_id = from_image.clone();
        // Sources and their hash (mounting the source image when --from).
        let (hash, plan) = blocking(move || {
            let src_scratch = match &from_id {
                Some(id) => Some(Scratch::mount(&*backend, id, src_dir)?),
                None => None,
            };
            let root = match &src_scratch {
                Some(s) => s.rw.merged.clone(),
                None => ctx_root,
            };
            let mut sources = copy::collect(
                &root,
                &local,
                src_scratch.is_some(),
                &what_s,
                add && from_id.is_none(),
            )?;
            sources.extend(fetched);
            let h = copy::hash(&sources)?;
            Ok((h, (sources, src_scratch)))
        })
        .await?;
        let kind = if plan.0.len() == 1 && plan.0[0].path.is_dir() {
            "dir"
        } else {
            "file"
        };
        let mut created_by = format!("/bin/sh -c #(nop) {what} {kind}:{hash} in {dest} ");
        if let Some(f) = &from {
            created_by = format!("/bin/sh -c #(nop) {what} --from={f} {kind}:{hash} in {dest} ");
        }
        let extra = format!("{chown:?}\n{chmod:?}\n{}", downloads.join(" "));
        let key = step_key(st, &created_by, &extra)?;
        if self.try_cache(st, &key, &created_by).await? {
            // Unmounts the --from root off the async threads.
            let _ = tokio::task::spawn_blocking(move || drop(plan)).await;
            return Ok(());
        }
        let backend = self.backend.clone();
        let images = self.builder.images.clone();
        let image = st.image_id.clone();
        let parent = st.top_chain();
        let dir = self.builder.scratch_dir("copy");
        let what_s = what.to_string();
        let layer = blocking(move || {
            let (sources, src_scratch) = plan;
            let s = Scratch::mount(&*backend, &image, dir)?;
            let owner = match &chown {
                Some(spec) => copy::parse_chown(&s.rw.merged, spec)?,
                None => (0, 0),
            };
            copy::apply(
                &sources,
                &copy::Dest {
                    root: &s.rw.merged,
                    path: &dest,
                    owner,
                    chmod,
                },
                &what_s,
            )?;
            drop(src_scratch);
            s.rw.unmount();
            commit_step(&images, &s.rw, Upper::Scratch, parent.as_deref())
        })
        .await?;
        self.commit(st, &created_by, &key, layer, StepContainer::None)
            .await?;
        self.say_id(st).await
    }
}

/// A step's cache key: the parent image, the step, and the config the
/// stage carries (which the parent's ID alone does not pin: the default
/// PATH, cleared ONBUILD triggers).
fn step_key(st: &State, step: &str, extra: &str) -> Step<String> {
    let config = serde_json::to_value(&st.config)?.to_string();
    Ok(cache::key(
        &st.image_id,
        step,
        &format!("{extra}\n{config}"),
    ))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Step<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Fail::Engine(EngineError::internal(format!("build worker: {e}"))))?
        .map_err(Fail::Engine)
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Builder {
    /// Images the build cache shares with something else (a tag, a
    /// container, or a tagged descendant): pruning them frees nothing.
    fn kept_images(&self) -> HashSet<String> {
        let mut kept = HashSet::new();
        for img in self.images.images() {
            let tagged = !img.repo_tags.is_empty() || !img.repo_digests.is_empty();
            if !tagged && self.images.users(&img.id).is_empty() {
                continue;
            }
            let mut cur = Some(img.id.clone());
            while let Some(id) = cur {
                if !kept.insert(id.clone()) {
                    break;
                }
                cur = self.images.get(&id).and_then(|i| i.parent.clone());
            }
        }
        kept
    }

    /// `/system/df`'s `BuildCache`.
    pub fn build_cache_usage(&self) -> Vec<berth_api::models::BuildCache> {
        let kept = self.kept_images();
        self.cache.items(
            |e| self.images.get(&e.image).is_some(),
            |e| kept.contains(&e.image),
        )
    }

    /// `POST /build/prune`: drops cache entries (all, or those older than
    /// `until`); the images they point at are left alone.
    pub async fn prune_build_cache(
        &self,
        filters: &berth_api::filters::Filters,
    ) -> Result<berth_api::models::BuildPruneResponse> {
        filters.validate(&[
            "until",
            "id",
            "parent",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ])?;
        let until = match filters.get("until").next() {
            Some(u) => Some(
                chrono::DateTime::from_timestamp(super::images::parse_until(u)?, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                    .unwrap_or_default(),
            ),
            None => None,
        };
        let ids: Vec<&str> = filters.get("id").collect();
        let all = self.cache.all();
        let gone: Vec<_> = all
            .into_iter()
            .filter(|(k, e)| {
                until.as_ref().is_none_or(|u| e.created < *u)
                    && (ids.is_empty() || ids.iter().any(|i| k.starts_with(i)))
            })
            .collect();
        let keys: Vec<String> = gone.iter().map(|(k, _)| k.clone()).collect();
        self.cache.remove(&keys)?;
        // The step images stay: as with dockerd's classic builder, they are
        // ordinary images (a build's untagged result is a dangling image
        // for `image prune`; intermediate ones go with their last child).
        let reclaimed = 0;
        Ok(berth_api::models::BuildPruneResponse {
            caches_deleted: if keys.is_empty() { None } else { Some(keys) },
            space_reclaimed: Some(reclaimed),
        })
    }
}

#[cfg(test)]
mod tests;
