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

pub mod cache;
mod cache_from;
pub mod context;
mod copy;
pub mod dockerfile;
mod fetch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::jsonmessage::JsonMessage;
use berth_api::models::{ContainerCreateBody, HealthConfig, HostConfig, ImageConfig};
use tokio::sync::mpsc;

use super::fs::snapshot::{RwLayer, Upper};
use super::images::reference::Reference;
use super::images::LayerInfo;
use super::registry::{self, AuthConfig, Platform, Progress, PullRequest};
use super::store::Store;
use super::{Engine, EngineError, Result};
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
    engine: &Engine,
    rw: &RwLayer,
    kind: Upper,
    parent: Option<&str>,
) -> Result<Option<LayerInfo>> {
    let store = |r| engine.images.create_layer(parent, r);
    rw.commit(kind, store).map_err(|e| match e {
        EngineError::Internal(m) => EngineError::Internal(format!("build: {m}")),
        other => other,
    })
}

pub fn now() -> String {
    super::images::now_rfc3339()
}

/// The builder's state kept by the engine.
pub struct Builder {
    pub cache: cache::Cache,
    dir: PathBuf,
}

impl Builder {
    pub fn open(data_root: &Path, store: Arc<Store>) -> Result<Self> {
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
            cache: cache::Cache::open(store)?,
            dir,
        })
    }

    fn scratch_dir(&self, what: &str) -> PathBuf {
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

/// Why a build stopped.
enum Fail {
    Engine(EngineError),
    /// A RUN exited non-zero: the message and its code.
    Run(String, i64),
    /// The client went away.
    Gone,
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

/// The image a stage stands on, and the config it is building.
#[derive(Clone)]
struct State {
    /// Empty for `FROM scratch` before the first step.
    image_id: String,
    /// The image config (JSON) the next step derives from.
    spec: serde_json::Value,
    config: ImageConfig,
    /// This stage's `ARG`s and their values.
    args: BTreeMap<String, Option<String>>,
    cmd_set: bool,
}

impl State {
    fn scratch() -> Self {
        Self {
            image_id: String::new(),
            spec: serde_json::json!({
                "architecture": host_arch(),
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }),
            config: ImageConfig::default(),
            args: BTreeMap::new(),
            cmd_set: false,
        }
    }

    fn of_image(img: &super::images::Image) -> Result<Self> {
        let spec: serde_json::Value = serde_json::from_str(&img.raw_config)?;
        Ok(Self {
            image_id: img.id.clone(),
            spec,
            config: img.config.config.clone().unwrap_or_default(),
            args: BTreeMap::new(),
            cmd_set: false,
        })
    }

    fn env_get(&self, k: &str) -> Option<String> {
        self.config
            .env
            .as_ref()?
            .iter()
            .rev()
            .find_map(|e| match e.split_once('=') {
                Some((a, b)) if a == k => Some(b.to_string()),
                None if e == k => Some(String::new()),
                _ => None,
            })
    }

    /// A variable for substitution: ENV first, then this stage's ARGs.
    fn var(&self, k: &str) -> Option<String> {
        self.env_get(k)
            .or_else(|| self.args.get(k).cloned().flatten())
    }

    fn set_env(&mut self, k: &str, v: &str) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let item = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(a, _)| a) == Some(k) || e.as_str() == k)
        {
            Some(e) => *e = item,
            None => env.push(item),
        }
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn top_chain(&self) -> Option<String> {
        let diffs: Vec<String> = self.spec["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        super::images::spec::chain_ids(&diffs).last().cloned()
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "x86" => "386",
        other => other,
    }
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
    fn mount(engine: &Engine, image_id: &str, dir: PathBuf) -> Result<Self> {
        let rw = RwLayer::at(&dir);
        let s = Scratch { dir, rw };
        // A build step's upper dir is read into a layer, then dropped.
        engine.mount_rw(&s.rw, image_id, true)?;
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

/// The container behind a step's image, as moby records it (`Container`,
/// `ContainerConfig`; the Cmd is the step's `#(nop)` comment unless it ran).
enum StepContainer {
    /// RUN: the step's container, with the Cmd moby saves (no entrypoint).
    Ran(String, Vec<String>),
    /// Metadata steps and WORKDIR: moby creates a container that never
    /// runs; creation completes its config (hostname, labels). Berth makes
    /// none, so its ID is made up.
    Created,
    /// COPY/ADD: moby makes no container at all.
    None,
}

fn step_container(
    st: &State,
    created_by: &str,
    ran: StepContainer,
) -> Result<(String, serde_json::Value)> {
    let mut cc: berth_api::models::ContainerConfig =
        serde_json::from_value(serde_json::to_value(&st.config)?)?;
    cc.image = Some(st.image_id.clone());
    let id = match ran {
        StepContainer::Ran(id, cmd) => {
            cc.cmd = Some(cmd);
            cc.entrypoint = None;
            id
        }
        StepContainer::None => {
            cc.cmd = Some(comment_cmd(created_by));
            String::new()
        }
        StepContainer::Created => {
            let id = super::ids::new_object_id();
            cc.hostname = Some(id[..12].to_string());
            cc.cmd = Some(comment_cmd(created_by));
            cc.labels.get_or_insert_with(HashMap::new);
            id
        }
    };
    Ok((id, serde_json::to_value(&cc)?))
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

fn human_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// `"80"`, `"80/udp"`, `"8000-8002"` → `80/tcp`, `80/udp`, `8000/tcp`…
fn expand_port(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(EngineError::invalid(format!("invalid proto: {proto}")));
    }
    let bad = || EngineError::invalid(format!("invalid containerPort: {ports}"));
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if b < a {
        return Err(bad());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

impl Engine {
    /// Runs a build: reads the context from `body`, streams progress to
    /// `tx`, and ends the stream with the result or an `errorDetail`.
    /// Runs a build, sending its progress to `tx`. A failure before any
    /// progress went out is returned instead, so that it can be the HTTP
    /// status (as dockerd does while its output is unflushed); later ones
    /// end the stream as an `errorDetail` message.
    pub async fn build(
        self: &Arc<Self>,
        body: Box<dyn std::io::Read + Send>,
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
        match self.build_inner(body, &opts, &out, &mut ready).await {
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
        self: &Arc<Self>,
        body: Box<dyn std::io::Read + Send>,
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
        let dir = self.builder.scratch_dir("context");
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
        if !opts.labels.is_empty() {
            let mut line = String::from("LABEL");
            let mut pairs = Vec::new();
            for (k, v) in &opts.labels {
                line.push_str(&format!(" {}='{}'", serde_json::to_string(k)?, v));
                pairs.push((serde_json::to_string(k)?, format!("'{v}'")));
            }
            if let Some(last) = stages.last_mut() {
                last.body.push(Instruction {
                    line: 0,
                    original: line,
                    command: Command::Label(pairs),
                });
            }
        }
        let total = meta.len() + stages.iter().map(|s| 1 + s.body.len()).sum::<usize>();
        let mut b = Run {
            engine: self.clone(),
            opts,
            out,
            ctx_root: ctx.root.clone(),
            escape: df.escape,
            step: 0,
            total,
            consumed: HashSet::new(),
            meta: BTreeMap::new(),
            done: Vec::new(),
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
    engine: Arc<Engine>,
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
        dockerfile::expand(w, self.escape, &lookup).map_err(invalid)
    }

    fn expand(&self, st: &State, w: &str) -> Step<String> {
        let lookup = |k: &str| st.var(k);
        dockerfile::expand(w, self.escape, &lookup).map_err(invalid)
    }

    async fn run_stage(&mut self, stage: &StagePlan) -> Step<State> {
        self.next_step(&stage.from).await?;
        let Command::From {
            image, platform, ..
        } = &stage.from.command
        else {
            return Err(invalid("a stage must begin with FROM"));
        };
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
        } else if lower == "scratch" {
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
            st.set_env("PATH", super::containers::DEFAULT_PATH);
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
        if !self.opts.pull {
            match self.engine.images.resolve(name) {
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
        let prepared = registry::pull::prepare(
            &self.engine,
            PullRequest {
                reference: reference.clone(),
                platform,
                creds,
            },
        )
        .await?;
        let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(64);
        let engine = self.engine.clone();
        let pull = tokio::spawn(async move { prepared.run(engine, Progress(tx)).await });
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
        Ok(self.engine.images.resolve(&reference.to_string())?)
    }

    /// Looks a step up in the cache; on a hit moves the state to it.
    async fn try_cache(&self, st: &mut State, key: &str, created_by: &str) -> Step<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let local = self.engine.builder.cache.get(key).and_then(|e| {
            let img = self.engine.images.get(&e.image);
            if img.is_none() {
                // Its image was removed (rmi, image prune): a stale entry.
                let _ = self.engine.builder.cache.remove(&[key.to_string()]);
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
        self.engine.builder.cache.touch(key);
        self.out.say(" ---> Using cache\n").await?;
        self.out.say(format!(" ---> {}\n", short(&img.id))).await?;
        Ok(true)
    }

    /// Whether `id` is a `cachefrom` image or one of their parents.
    fn is_source_ancestor(&self, id: &str) -> bool {
        self.opts.cache_from.iter().any(|r| {
            let mut cur = self.engine.images.resolve(r).ok().map(|i| i.id.clone());
            // Parent chains are short; the bound guards against a cycle.
            for _ in 0..1000 {
                match cur {
                    Some(c) if c == id => return true,
                    Some(c) => cur = self.engine.images.get(&c).and_then(|i| i.parent.clone()),
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
            .filter_map(|r| self.engine.images.resolve(r).ok().map(|i| i.id.clone()))
            .collect();
        let parent_id = Some(st.image_id.as_str()).filter(|p| !p.is_empty());
        let parent = parent_id.map(|_| &st.spec);
        let config = serde_json::to_value(&st.config)?;
        let Some(id) = cache_from::lookup(
            &self.engine.images,
            &sources,
            parent_id,
            parent,
            created_by,
            &config,
        )?
        else {
            return Ok(None);
        };
        let Some(img) = self.engine.images.get(&id) else {
            return Ok(None);
        };
        let t = now();
        self.engine.builder.cache.put(
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
        let img = self.engine.images.create_child_image(&bytes, &[], parent)?;
        let size = layer.as_ref().map(|l| l.size as i64).unwrap_or(0);
        let t = now();
        self.engine.builder.cache.put(
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

    /// A metadata-only step: cache or a new config-only image.
    async fn meta_step(&self, st: &mut State, desc: &str) -> Step {
        let created_by = format!("/bin/sh -c #(nop)  {desc}");
        let key = step_key(st, &created_by, "")?;
        if self.try_cache(st, &key, &created_by).await? {
            return Ok(());
        }
        self.commit(st, &created_by, &key, None, StepContainer::Created)
            .await?;
        self.say_id(st).await
    }

    async fn dispatch(&mut self, st: &mut State, ins: &Instruction) -> Step {
        match &ins.command {
            Command::From { .. } => Err(invalid("FROM inside a stage")),
            Command::Env(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k)?;
                    let v = self.expand(st, v)?;
                    if k.is_empty() {
                        return Err(invalid("ENV names can not be blank"));
                    }
                    st.set_env(&k, &v);
                    shown.push(format!("{k}={v}"));
                }
                self.meta_step(st, &format!("ENV {}", shown.join(" ")))
                    .await
            }
            Command::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k)?;
                    let v = self.expand(st, v)?;
                    if k.is_empty() {
                        return Err(invalid("LABEL names can not be blank"));
                    }
                    st.config
                        .labels
                        .get_or_insert_with(HashMap::new)
                        .insert(k.clone(), v.clone());
                    shown.push(format!("{k}={v}"));
                }
                shown.sort();
                self.meta_step(st, &format!("LABEL {}", shown.join(" ")))
                    .await
            }
            Command::Arg(list) => {
                let mut shown = Vec::new();
                for (k, default) in list {
                    if self.opts.build_args.contains_key(k) {
                        self.consumed.insert(k.clone());
                    }
                    let given = self.opts.build_args.get(k).cloned().flatten();
                    let v = match (given, default) {
                        (Some(v), _) => Some(v),
                        (None, Some(d)) => Some(self.expand(st, d)?),
                        (None, None) => self.meta.get(k).cloned().flatten(),
                    };
                    st.args.insert(k.clone(), v);
                    shown.push(match default {
                        Some(d) => format!("{k}={d}"),
                        None => k.clone(),
                    });
                }
                self.meta_step(st, &format!("ARG {}", shown.join(" ")))
                    .await
            }
            Command::Cmd(a) => {
                let v = match a {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut v = st.shell();
                        v.push(s.clone());
                        v
                    }
                };
                st.config.cmd = Some(v.clone());
                st.cmd_set = true;
                self.meta_step(st, &format!("CMD {}", serde_json::to_string(&v)?))
                    .await
            }
            Command::Entrypoint(a) => {
                let v = match a {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut v = st.shell();
                        v.push(s.clone());
                        v
                    }
                };
                st.config.entrypoint = Some(v.clone());
                if !st.cmd_set {
                    st.config.cmd = None;
                }
                self.meta_step(st, &format!("ENTRYPOINT {}", serde_json::to_string(&v)?))
                    .await
            }
            Command::Shell(v) => {
                st.config.shell = Some(v.clone());
                self.meta_step(st, &format!("SHELL {}", serde_json::to_string(v)?))
                    .await
            }
            Command::Expose(ports) => {
                let mut shown = Vec::new();
                for p in ports {
                    let p = self.expand(st, p)?;
                    for k in expand_port(&p)? {
                        st.config
                            .exposed_ports
                            .get_or_insert_with(HashMap::new)
                            .insert(k, HashMap::new());
                    }
                    // moby's comment shows the ports as written.
                    shown.push(p);
                }
                self.meta_step(st, &format!("EXPOSE {}", shown.join(" ")))
                    .await
            }
            Command::User(u) => {
                let u = self.expand(st, u)?;
                st.config.user = Some(u.clone());
                self.meta_step(st, &format!("USER {u}")).await
            }
            Command::Volume(list) => {
                let mut shown = Vec::new();
                for v in list {
                    let v = self.expand(st, v)?;
                    if v.trim().is_empty() {
                        return Err(invalid("VOLUME specified can not be an empty string"));
                    }
                    st.config
                        .volumes
                        .get_or_insert_with(HashMap::new)
                        .insert(v.clone(), HashMap::new());
                    shown.push(v);
                }
                self.meta_step(st, &format!("VOLUME {}", human_list(&shown)))
                    .await
            }
            Command::StopSignal(s) => {
                let s = self.expand(st, s)?;
                super::containers::parse_signal(&s)?;
                st.config.stop_signal = Some(s.clone());
                self.meta_step(st, &format!("STOPSIGNAL {s}")).await
            }
            Command::Maintainer(m) => {
                let m = self.expand(st, m)?;
                st.spec["author"] = serde_json::Value::String(m.clone());
                self.meta_step(st, &format!("MAINTAINER {m}")).await
            }
            Command::Onbuild(t) => {
                st.config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(t.clone());
                self.meta_step(st, &format!("ONBUILD {t}")).await
            }
            Command::Healthcheck(h) => {
                let hc = health_config(h)?;
                let shown = serde_json::to_string(&hc)?;
                st.config.healthcheck = Some(hc);
                self.meta_step(st, &format!("HEALTHCHECK {shown}")).await
            }
            Command::Workdir(w) => self.workdir(st, w).await,
            Command::Run(a) => self.run(st, a).await,
            Command::Copy(c) => self.copy(st, c, false).await,
            Command::Add(c) => self.copy(st, c, true).await,
        }
    }

    async fn workdir(&mut self, st: &mut State, w: &str) -> Step {
        let w = self.expand(st, w)?;
        let base = st.config.working_dir.clone().unwrap_or_default();
        let joined = if w.starts_with('/') {
            w.clone()
        } else {
            format!("/{}/{}", base.trim_matches('/'), w)
        };
        let path = berth_api::dockerignore::clean(&joined);
        st.config.working_dir = Some(path.clone());
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {path}");
        let key = step_key(st, &created_by, "")?;
        if self.try_cache(st, &key, &created_by).await? {
            return Ok(());
        }
        // The directory is created (root-owned) when missing: a layer.
        let engine = self.engine.clone();
        let image = st.image_id.clone();
        let parent = st.top_chain();
        let dir = self.engine.builder.scratch_dir("workdir");
        let layer = blocking(move || {
            let s = Scratch::mount(&engine, &image, dir)?;
            context::mkdir_all_in_root(&s.rw.merged, &path, (0, 0))?;
            s.rw.unmount();
            commit_step(&engine, &s.rw, Upper::Scratch, parent.as_deref())
        })
        .await?;
        self.commit(st, &created_by, &key, layer, StepContainer::Created)
            .await?;
        self.say_id(st).await
    }

    /// The environment a RUN sees: the config's, plus build args.
    fn run_env(&self, st: &State) -> (Vec<String>, Vec<String>) {
        let mut env = st.config.env.clone().unwrap_or_default();
        let mut shown = Vec::new();
        for (k, v) in &st.args {
            let Some(v) = v else { continue };
            if st.env_get(k).is_some() {
                continue;
            }
            env.push(format!("{k}={v}"));
            shown.push(format!("{k}={v}"));
        }
        for p in PROXY_ARGS {
            if st.args.contains_key(*p) {
                continue;
            }
            if let Some(Some(v)) = self.opts.build_args.get(*p) {
                env.push(format!("{p}={v}"));
            }
        }
        shown.sort();
        (env, shown)
    }

    async fn run(&mut self, st: &mut State, a: &Args) -> Step {
        let argv = match a {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let mut v = st.shell();
                v.push(s.clone());
                v
            }
        };
        let (env, shown_args) = self.run_env(st);
        let mut created_by = argv.join(" ");
        // The Cmd dockerd records for the step (`ContainerConfig.Cmd`).
        let mut saved_cmd = argv.clone();
        if !shown_args.is_empty() {
            saved_cmd = std::iter::once(format!("|{}", shown_args.len()))
                .chain(shown_args.iter().cloned())
                .chain(argv.iter().cloned())
                .collect();
            created_by = format!(
                "|{} {} {created_by}",
                shown_args.len(),
                shown_args.join(" ")
            );
        }
        let key = step_key(
            st,
            &format!("RUN {}", serde_json::to_string(&argv)?),
            &shown_args.join("\n"),
        )?;
        if self.try_cache(st, &key, &created_by).await? {
            return Ok(());
        }
        if st.image_id.is_empty() {
            return Err(invalid(
                "RUN needs a base image with a shell: this stage is FROM scratch with nothing in it",
            ));
        }
        let body = ContainerCreateBody {
            image: Some(st.image_id.clone()),
            entrypoint: Some(argv.clone()),
            env: Some(env),
            user: st.config.user.clone(),
            working_dir: st.config.working_dir.clone(),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            healthcheck: Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            labels: Some(HashMap::new()),
            host_config: Some(HostConfig {
                network_mode: Some(match self.opts.network_mode.as_str() {
                    "" => "default".into(),
                    m => m.to_string(),
                }),
                extra_hosts: Some(self.opts.extra_hosts.clone()).filter(|h| !h.is_empty()),
                shm_size: self.opts.shm_size,
                ..Default::default()
            }),
            ..Default::default()
        };
        let engine = self.engine.clone();
        let (id, _) = engine.create_container(
            super::containers::CreateOptions {
                name: None,
                platform: None,
            },
            body,
        )?;
        // Removes the container on any early return (errors, the client
        // going away); a failed RUN keeps it unless --force-rm, as Docker.
        let mut guard = ContainerGuard {
            engine: engine.clone(),
            id: id.clone(),
            remove: true,
        };
        self.out
            .say(format!(" ---> Running in {}\n", short(&id)))
            .await?;
        let code = self.run_container(&id).await?;
        if code != 0 {
            guard.remove = false;
            if self.opts.force_rm {
                let _ = engine.remove_container(&id, true, true).await;
                self.out
                    .say(format!("Removing intermediate container {}\n", short(&id)))
                    .await?;
            }
            return Err(Fail::Run(
                format!(
                    "The command '{}' returned a non-zero code: {code}",
                    argv.join(" ")
                ),
                code,
            ));
        }
        let rw = engine.paths(&id).rw;
        let parent = st.top_chain();
        let e2 = engine.clone();
        let layer =
            blocking(move || commit_step(&e2, &rw, Upper::Container, parent.as_deref())).await?;
        let result = self
            .commit(
                st,
                &created_by,
                &key,
                layer,
                StepContainer::Ran(id.clone(), saved_cmd),
            )
            .await;
        guard.remove = false;
        if self.opts.rm || self.opts.force_rm {
            if let Err(e) = engine.remove_container(&id, true, true).await {
                tracing::warn!(id = %id, error = %e, "build: removing an intermediate container");
            }
            self.out
                .say(format!("Removing intermediate container {}\n", short(&id)))
                .await?;
        }
        result?;
        self.say_id(st).await
    }

    /// Starts the container with its output streamed, waits for its exit.
    async fn run_container(&self, id: &str) -> Step<i64> {
        use tokio::io::AsyncReadExt;
        let engine = &self.engine;
        let session = engine.attach_container(
            id,
            super::containers::attach::AttachOptions {
                stdin: false,
                stdout: true,
                stderr: true,
                detach_keys: None,
                logs: false,
                stream: true,
            },
        )?;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let attach = tokio::spawn(session.run(theirs));
        // The attach must be waiting before the start, or output is lost.
        let c = engine.containers.find(id)?;
        for _ in 0..500 {
            if !c
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let waiter =
            engine.wait_container(id, super::containers::lifecycle::WaitCondition::NextExit)?;
        engine.start_container(id).await?;
        let mut ours = ours;
        let mut pending: Vec<u8> = Vec::new();
        let mut in_err = false;
        let mut header = [0u8; 8];
        let pump = async {
            loop {
                if ours.read_exact(&mut header).await.is_err() {
                    break;
                }
                let n = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                let mut buf = vec![0u8; n];
                if ours.read_exact(&mut buf).await.is_err() {
                    break;
                }
                let is_err = header[0] == 2;
                if is_err != in_err && !pending.is_empty() {
                    // A stream switch: flush what is left of the other one.
                    let text = String::from_utf8_lossy(&pending).into_owned();
                    pending.clear();
                    self.out.say(colour(in_err, text)).await?;
                }
                in_err = is_err;
                pending.extend_from_slice(&buf);
                let valid = match std::str::from_utf8(&pending) {
                    Ok(_) => pending.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => pending.len(),
                };
                if valid > 0 {
                    let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
                    pending.drain(..valid);
                    self.out.say(colour(in_err, text)).await?;
                }
            }
            if !pending.is_empty() {
                self.out
                    .say(colour(
                        in_err,
                        String::from_utf8_lossy(&pending).into_owned(),
                    ))
                    .await?;
            }
            Ok::<(), Fail>(())
        };
        // The output ends with the process.
        let pumped = pump.await;
        attach.abort();
        pumped?;
        Ok(waiter.wait().await)
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
        let dl_dir = self.engine.builder.scratch_dir("download");
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
        let engine = self.engine.clone();
        let ctx_root = self.ctx_root.clone();
        let src_dir = self.engine.builder.scratch_dir("from");
        let what_s = what.to_string();
        let from_id = from_image.clone();
        // Sources and their hash (mounting the source image when --from).
        let (hash, plan) = blocking(move || {
            let src_scratch = match &from_id {
                Some(id) => Some(Scratch::mount(&engine, id, src_dir)?),
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
        let engine = self.engine.clone();
        let image = st.image_id.clone();
        let parent = st.top_chain();
        let dir = self.engine.builder.scratch_dir("copy");
        let what_s = what.to_string();
        let layer = blocking(move || {
            let (sources, src_scratch) = plan;
            let s = Scratch::mount(&engine, &image, dir)?;
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
            commit_step(&engine, &s.rw, Upper::Scratch, parent.as_deref())
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

/// A RUN's stderr, shown in red as dockerd's classic builder does.
fn colour(stderr: bool, text: String) -> String {
    if stderr {
        format!("\x1b[91m{text}\x1b[0m")
    } else {
        text
    }
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes a RUN's container unless told to keep it (a failed RUN without
/// `--force-rm`), also when the build is dropped midway.
struct ContainerGuard {
    engine: Arc<Engine>,
    id: String,
    remove: bool,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.remove {
            return;
        }
        let engine = self.engine.clone();
        let id = self.id.clone();
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = engine.remove_container(&id, true, true).await;
            });
        }
    }
}

fn health_config(h: &dockerfile::Health) -> Step<HealthConfig> {
    let test = match &h.cmd {
        None => vec!["NONE".to_string()],
        Some(Args::Exec(v)) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v.iter().cloned());
            t
        }
        Some(Args::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let dur = |name: &str, v: &Option<String>| -> Step<Option<i64>> {
        match v {
            None => Ok(None),
            Some(s) => {
                let ns = dockerfile::parse_duration(s).map_err(invalid)?;
                if ns != 0 && ns < 1_000_000 {
                    return Err(invalid(format!("{name} {s:?} cannot be less than 1ms")));
                }
                Ok(Some(ns))
            }
        }
    };
    let retries = match &h.retries {
        None => None,
        Some(r) => Some(
            r.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| invalid(format!("invalid value for --retries: {r:?}")))?,
        ),
    };
    Ok(HealthConfig {
        test: Some(test),
        interval: dur("Interval", &h.interval)?,
        timeout: dur("Timeout", &h.timeout)?,
        start_period: dur("StartPeriod", &h.start_period)?,
        start_interval: dur("StartInterval", &h.start_interval)?,
        retries,
    })
}

impl Engine {
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
        self.builder.cache.items(
            |e| self.images.get(&e.image).is_some(),
            |e| kept.contains(&e.image),
        )
    }

    /// `POST /build/prune`: drops cache entries (all, or those older than
    /// `until`); the images they point at are left alone.
    pub async fn prune_build_cache(
        self: &Arc<Self>,
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
        let all = self.builder.cache.all();
        let gone: Vec<_> = all
            .into_iter()
            .filter(|(k, e)| {
                until.as_ref().is_none_or(|u| e.created < *u)
                    && (ids.is_empty() || ids.iter().any(|i| k.starts_with(i)))
            })
            .collect();
        let keys: Vec<String> = gone.iter().map(|(k, _)| k.clone()).collect();
        self.builder.cache.remove(&keys)?;
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
mod tests {
    use super::*;

    #[test]
    fn step_comment_cmds() {
        assert_eq!(
            comment_cmd("/bin/sh -c #(nop)  ENV A=1"),
            ["/bin/sh", "-c", "#(nop) ", "ENV A=1"]
        );
        assert_eq!(
            comment_cmd("/bin/sh -c #(nop) WORKDIR /w"),
            ["/bin/sh", "-c", "#(nop) WORKDIR /w"]
        );
    }

    #[test]
    fn ports_expand() {
        assert_eq!(expand_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expand_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            expand_port("8000-8002").unwrap(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expand_port("x").is_err());
        assert!(expand_port("80/foo").is_err());
    }

    #[test]
    fn state_env_and_vars() {
        let mut st = State::scratch();
        st.args.insert("A".into(), Some("arg".into()));
        st.args.insert("B".into(), Some("argb".into()));
        st.set_env("A", "env");
        st.set_env("C", "1");
        st.set_env("C", "2");
        assert_eq!(st.var("A").as_deref(), Some("env"));
        assert_eq!(st.var("B").as_deref(), Some("argb"));
        assert_eq!(st.config.env.clone().unwrap(), vec!["A=env", "C=2"]);
    }
}
