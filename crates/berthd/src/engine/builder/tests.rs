//! Builds against a fake `Backend` and a real image store in a temporary
//! directory: the builder's seam to containers and the registry.

use std::sync::Mutex;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use super::*;
use crate::engine::events::EventBus;

const STEP_ID: &str = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f";

/// RUN steps "run" by writing a file into their rw layer and printing a
/// line on each stream; scratch roots are plain directories (the images
/// built here have no layers under the one being written).
struct Fake {
    dir: PathBuf,
    exit: i64,
    created: Mutex<Vec<StepConfig>>,
    removed: Mutex<Vec<String>>,
    pulled: Mutex<Vec<String>>,
}

impl Fake {
    fn new(dir: &Path, exit: i64) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.join("fake"),
            exit,
            created: Mutex::default(),
            removed: Mutex::default(),
            pulled: Mutex::default(),
        })
    }
}

fn frame(kind: u8, text: &str) -> Vec<u8> {
    let mut f = vec![kind, 0, 0, 0];
    f.extend((text.len() as u32).to_be_bytes());
    f.extend(text.as_bytes());
    f
}

impl Backend for Fake {
    fn pull_image(
        self: Arc<Self>,
        req: PullRequest,
        _progress: Progress,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            self.pulled.lock().unwrap().push(req.reference.to_string());
            Err(EngineError::not_found("no registry in this test"))
        })
    }

    fn create_step(&self, cfg: StepConfig) -> Result<String> {
        self.created.lock().unwrap().push(cfg);
        let rw = self.step_layer(STEP_ID);
        std::fs::create_dir_all(&rw.upper)?;
        std::fs::write(rw.upper.join("ran"), "yes")?;
        Ok(STEP_ID.into())
    }

    fn start_step(self: Arc<Self>, _id: String) -> BoxFuture<'static, Result<Started>> {
        let mut out = frame(1, "hi\n");
        out.extend(frame(2, "oops\n"));
        let code = self.exit;
        Box::pin(async move {
            Ok(Started {
                output: Box::new(std::io::Cursor::new(out)),
                exit: Box::pin(async move { code }),
            })
        })
    }

    fn remove_step<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.removed.lock().unwrap().push(id.to_string());
        Box::pin(async { Ok(()) })
    }

    fn step_layer(&self, id: &str) -> RwLayer {
        RwLayer::at(&self.dir.join(id))
    }

    fn mount_scratch(&self, rw: &RwLayer, _image_id: &str) -> Result<()> {
        rw.prepare()?;
        std::fs::remove_dir(&rw.merged)?;
        std::os::unix::fs::symlink("diff", &rw.merged)?;
        Ok(())
    }
}

fn open(dir: &Path) -> Builder {
    let store = Arc::new(Store::open(dir).unwrap());
    let images =
        Arc::new(ImageService::open(dir, store.clone(), Arc::new(EventBus::new())).unwrap());
    Builder::open(dir, store, images).unwrap()
}

fn context(files: &[(&str, &str)]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    t.into_inner().unwrap()
}

/// Runs a build; its stream text (step IDs as `<id>`) and messages.
async fn build(
    b: &Builder,
    backend: Arc<Fake>,
    ctx: Vec<u8>,
    opts: BuildOptions,
) -> (String, Vec<JsonMessage>) {
    let (tx, mut rx) = mpsc::channel(64);
    let (ready, started) = oneshot::channel();
    let collect = async {
        let mut v = Vec::new();
        while let Some(m) = rx.recv().await {
            v.push(m);
        }
        v
    };
    let body = Box::new(std::io::Cursor::new(ctx));
    let ((), msgs) = tokio::join!(b.build(backend, body, opts, tx, ready), collect);
    started.await.unwrap().unwrap();
    let text: String = msgs.iter().filter_map(|m| m.stream.clone()).collect();
    let ids = |l: &str| match l.strip_prefix(" ---> ") {
        Some(id) if id.len() == 12 && id.bytes().all(|c| c.is_ascii_hexdigit()) => {
            " ---> <id>".to_string()
        }
        _ => l.to_string(),
    };
    let text = text.lines().map(ids).collect::<Vec<_>>().join("\n");
    (text, msgs)
}

const DOCKERFILE: &str = "FROM scratch\nENV A=1\nLABEL x=y\nRUN echo hi\nCOPY f.txt /f.txt\n";

fn opts() -> BuildOptions {
    BuildOptions {
        tags: vec![Reference::parse("t").unwrap()],
        rm: true,
        ..Default::default()
    }
}

fn built_id(msgs: &[JsonMessage]) -> String {
    msgs.iter()
        .find_map(|m| m.aux.as_ref()?["ID"].as_str().map(String::from))
        .unwrap()
}

#[tokio::test]
async fn a_build_runs_its_steps_through_the_backend_then_hits_the_cache() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path());
    let fake = Fake::new(d.path(), 0);
    let ctx = context(&[("Dockerfile", DOCKERFILE), ("f.txt", "copied")]);

    let (text, msgs) = build(&b, fake.clone(), ctx.clone(), opts()).await;
    assert_eq!(
        text,
        "Step 1/5 : FROM scratch\n\
         Step 2/5 : ENV A=1\n \
         ---> <id>\n\
         Step 3/5 : LABEL x=y\n \
         ---> <id>\n\
         Step 4/5 : RUN echo hi\n \
         ---> Running in 5e1f5e1f5e1f\n\
         hi\n\
         \x1b[91moops\n\
         \x1b[0mRemoving intermediate container 5e1f5e1f5e1f\n \
         ---> <id>\n\
         Step 5/5 : COPY f.txt /f.txt\n \
         ---> <id>\n\
         Successfully built <id>\n\
         Successfully tagged t:latest"
            .replace("Successfully built <id>", &{
                let id = built_id(&msgs);
                format!("Successfully built {}", short(&id))
            })
    );
    let created = fake.created.lock().unwrap().clone();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].argv, ["/bin/sh", "-c", "echo hi"]);
    assert!(created[0].env.contains(&"A=1".to_string()));
    assert!(created[0]
        .env
        .contains(&format!("PATH={}", berth_runtime::DEFAULT_PATH)));
    assert_eq!(*fake.removed.lock().unwrap(), [STEP_ID]);

    let id = built_id(&msgs);
    let img = b.images.resolve("t").unwrap();
    assert_eq!(img.id, id);
    let config = img.config.config.clone().unwrap();
    assert!(config.env.unwrap().contains(&"A=1".to_string()));
    assert_eq!(config.labels.unwrap()["x"], "y");
    // RUN's and COPY's layers; ENV and LABEL are empty layers.
    let spec: serde_json::Value = serde_json::from_str(&img.raw_config).unwrap();
    assert_eq!(spec["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(spec["history"].as_array().unwrap().len(), 4);
    assert_eq!(b.build_cache_usage().len(), 4);

    // Again: every step from the cache, nothing run.
    let (text, msgs) = build(&b, fake.clone(), ctx, opts()).await;
    assert_eq!(built_id(&msgs), id);
    assert_eq!(text.matches(" ---> Using cache").count(), 4);
    assert!(!text.contains("Running in"));
    assert_eq!(fake.created.lock().unwrap().len(), 1);

    let pruned = b
        .prune_build_cache(&berth_api::filters::Filters::new())
        .await
        .unwrap();
    assert_eq!(pruned.caches_deleted.map(|c| c.len()), Some(4));
    assert!(b.build_cache_usage().is_empty());
}

#[tokio::test]
async fn a_failed_run_keeps_its_container_and_a_missing_base_is_pulled() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path());
    let fake = Fake::new(d.path(), 3);
    let ctx = context(&[("Dockerfile", "FROM scratch\nENV A=1\nRUN false\n")]);
    let (_, msgs) = build(&b, fake.clone(), ctx, opts()).await;
    let err = msgs.last().unwrap().error_detail.clone().unwrap();
    assert_eq!(
        (err.message.as_str(), err.code),
        (
            "The command '/bin/sh -c false' returned a non-zero code: 3",
            Some(3)
        )
    );
    // Kept for inspection, as Docker without --force-rm.
    assert!(fake.removed.lock().unwrap().is_empty());

    let ctx = context(&[("Dockerfile", "FROM nothere\n")]);
    let (_, msgs) = build(&b, fake.clone(), ctx, opts()).await;
    assert_eq!(
        *fake.pulled.lock().unwrap(),
        ["docker.io/library/nothere:latest"]
    );
    let err = msgs.last().unwrap().error_detail.clone().unwrap();
    assert_eq!(err.message, "no registry in this test");
}

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

/// A build of `dockerfile` from a context directory (BuildKit's way in);
/// its stream text and messages.
async fn build_dir(
    b: &Builder,
    backend: Arc<Fake>,
    dockerfile: &str,
    opts: BuildOptions,
    extras: Extras,
) -> (String, Vec<JsonMessage>) {
    let root = b.scratch_dir("test-ctx");
    std::fs::create_dir_all(&root).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let (ready, started) = oneshot::channel();
    let collect = async {
        let mut v = Vec::new();
        while let Some(m) = rx.recv().await {
            v.push(m);
        }
        v
    };
    let src = Source::Dir {
        root,
        dockerfile: dockerfile.to_string(),
        extras,
    };
    let ((), msgs) = tokio::join!(b.build_from(backend, src, opts, tx, ready), collect);
    started.await.unwrap().unwrap();
    let text: String = msgs.iter().filter_map(|m| m.stream.clone()).collect();
    (text, msgs)
}

#[tokio::test]
async fn labels_classic_steps_buildkit_config_and_no_cache_per_stage() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path());
    let fake = Fake::new(d.path(), 0);
    let df = "FROM scratch AS one\nENV A=1\nFROM one AS two\nENV B=2\n";
    // `POST /build`'s labels: one LABEL step each, sorted (dockerd 20.10).
    let mut o = opts();
    o.labels.insert("b.key".into(), "2".into());
    o.labels.insert("a.key".into(), "1".into());
    let (text, _) = build_dir(&b, fake.clone(), df, o, Extras::default()).await;
    assert!(text.contains("Step 5/6 : LABEL a.key=1\n"), "{text}");
    assert!(text.contains("Step 6/6 : LABEL b.key=2\n"), "{text}");

    // BuildKit's label:*: in the config, no step, no history entry; the
    // same image again from the cache.
    let x = Extras {
        image_labels: [("org.k".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    let (text, msgs) = build_dir(&b, fake.clone(), df, opts(), x.clone()).await;
    assert!(!text.contains("LABEL"), "{text}");
    assert!(text.contains("Step 4/4 : ENV B=2"), "{text}");
    let id = built_id(&msgs);
    let img = b.images.resolve("t").unwrap();
    assert_eq!(img.id, id);
    assert_eq!(
        img.config.config.clone().unwrap().labels.unwrap()["org.k"],
        "v"
    );
    assert!(!img.raw_config.contains("LABEL"), "{}", img.raw_config);
    // It stands in for the last step (ENV B=2): that step's parent is its.
    let parent = b.images.get(img.parent.as_deref().unwrap()).unwrap();
    let env = parent.config.config.clone().unwrap().env.unwrap();
    assert!(env.contains(&"A=1".to_string()), "{env:?}");
    assert!(!env.contains(&"B=2".to_string()), "{env:?}");
    let (_, msgs) = build_dir(&b, fake.clone(), df, opts(), x).await;
    assert_eq!(built_id(&msgs), id);

    // no-cache=two: stage one from the cache, stage two built anew.
    let x = Extras {
        no_cache_stages: ["two".to_string()].into(),
        ..Default::default()
    };
    let (text, _) = build_dir(&b, fake.clone(), df, opts(), x).await;
    assert_eq!(text.matches(" ---> Using cache").count(), 1, "{text}");
}

/// What BuildKit's frontend hands the builder: named contexts (an image
/// reference or ID, `scratch`), and its own wording of a failed RUN.
#[tokio::test]
async fn named_contexts_and_buildkit_wording() {
    let d = tempfile::tempdir().unwrap();
    let b = open(d.path());
    let fake = Fake::new(d.path(), 3);
    let (_, msgs) = build_dir(
        &b,
        fake.clone(),
        "FROM scratch\nENV A=1\n",
        opts(),
        Extras::default(),
    )
    .await;
    let base = built_id(&msgs);
    let named = |kv: &[(&str, &str)]| Extras {
        named: kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        buildkit_words: true,
        ..Default::default()
    };
    // FROM and COPY --from a name (any case) stand on the named image.
    let x = named(&[("base", &base), ("empty", "scratch")]);
    let (text, msgs) = build_dir(&b, fake.clone(), "FROM Base\nENV B=2\n", opts(), x.clone()).await;
    let id = built_id(&msgs);
    let img = b.images.get(&id).unwrap();
    assert_eq!(img.parent.as_deref(), Some(base.as_str()), "{text}");
    let env = img.config.config.clone().unwrap().env.unwrap();
    assert!(env.contains(&"A=1".to_string()) && env.contains(&"B=2".to_string()));
    let (text, msgs) =
        build_dir(&b, fake.clone(), "FROM empty\nENV C=3\n", opts(), x.clone()).await;
    let img = b.images.get(&built_id(&msgs)).unwrap();
    assert!(img.parent.is_none(), "{text}");
    assert!(fake.pulled.lock().unwrap().is_empty());
    // Without the name, the same FROM is a pull.
    let (_, _) = build_dir(&b, fake.clone(), "FROM base\n", opts(), Extras::default()).await;
    assert_eq!(
        *fake.pulled.lock().unwrap(),
        ["docker.io/library/base:latest"]
    );
    // A failed RUN, in BuildKit's words.
    let (_, msgs) = build_dir(&b, fake.clone(), "FROM base\nRUN exit 3\n", opts(), x).await;
    let err = msgs.last().unwrap().error_detail.clone().unwrap();
    assert_eq!(
        (err.message.as_str(), err.code),
        (
            r#"process "/bin/sh -c exit 3" did not complete successfully: exit code: 3"#,
            Some(3)
        )
    );
}
