//! bollard's own typed API against berthd, one test per endpoint group:
//! every call goes through bollard's typed method (not a raw request), and
//! what comes back is deserialized into bollard's models and checked field
//! by field. A model that fails to deserialize, or an unexpected status,
//! fails the test: that is exactly a client-fidelity gap.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_tests::fixtures::busybox_rootfs_tar;
use berth_tests::*;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::*;
use bollard::query_parameters::*;
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

async fn client(d: &Daemon) -> Docker {
    d.bollard()
        .negotiate_version()
        .await
        .expect("version negotiation")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    m
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The HTTP status of a bollard error from the daemon (0 for other errors).
fn status_of(e: &BollardError) -> u16 {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => *status_code,
        _ => 0,
    }
}

/// stdout and stderr of a multiplexed stream, separately.
async fn split_output(
    mut s: impl futures_util::Stream<Item = Result<LogOutput, BollardError>> + Unpin,
) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(item) = timeout(LIMIT, s.next()).await.expect("output in time") {
        match item.expect("output frame") {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                out.push_str(&String::from_utf8_lossy(&message))
            }
            LogOutput::StdErr { message } => err.push_str(&String::from_utf8_lossy(&message)),
            LogOutput::StdIn { .. } => {}
        }
    }
    (out, err)
}

/// Runs a command in a container, attached; returns (stdout, stderr, exit code).
async fn exec(docker: &Docker, id: &str, cmd: &[&str]) -> (String, String, i64) {
    let e = docker
        .create_exec(
            id,
            ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(strings(cmd)),
                ..Default::default()
            },
        )
        .await
        .expect("exec create");
    let StartExecResults::Attached { output, .. } =
        docker.start_exec(&e.id, None).await.expect("exec start")
    else {
        panic!("exec started detached")
    };
    let (out, err) = split_output(output).await;
    let code = docker
        .inspect_exec(&e.id)
        .await
        .expect("exec inspect")
        .exit_code
        .expect("exit code");
    (out, err, code)
}

/// The files of a tar stream: path → contents.
fn tar_files(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(bytes);
    let mut m = HashMap::new();
    for e in a.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let path = e.path().expect("entry path").display().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).expect("entry body");
        m.insert(path.trim_start_matches("./").to_string(), b);
    }
    m
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *body).expect("tar append");
    }
    b.into_inner().expect("tar finish")
}

async fn collect_bytes(
    s: impl futures_util::Stream<Item = Result<impl AsRef<[u8]>, BollardError>>,
) -> Vec<u8> {
    let chunks: Vec<_> = timeout(LIMIT, s.try_collect::<Vec<_>>())
        .await
        .expect("stream in time")
        .expect("stream");
    chunks.iter().flat_map(|c| c.as_ref().to_vec()).collect()
}

async fn run_sleeper(docker: &Docker, name: &str, extra: ContainerCreateBody) -> String {
    let body = ContainerCreateBody {
        image: Some("busybox:latest".into()),
        cmd: Some(strings(&["sleep", "3600"])),
        stop_signal: Some("SIGKILL".into()),
        ..extra
    };
    let id = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(name).build()),
            body,
        )
        .await
        .expect("create")
        .id;
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .expect("start");
    id
}

#[test]
fn system_ping_version_info_df_and_filtered_events() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        assert_eq!(docker.ping().await.expect("ping"), "OK");

        let v = docker.version().await.expect("version");
        assert_eq!(v.api_version.as_deref(), Some("1.50"));
        assert_eq!(v.min_api_version.as_deref(), Some("1.24"));
        assert_eq!(v.os.as_deref(), Some("linux"));
        assert_eq!(v.arch.as_deref(), Some("amd64"));
        let engine = v
            .components
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.name == "Engine"))
            .expect("an Engine component");
        assert!(!engine.version.is_empty());
        assert!(v.kernel_version.as_deref().is_some_and(|k| !k.is_empty()));

        let t0 = now();
        let c = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name("sysbox").build()),
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&["true"])),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
        docker
            .create_volume(VolumeCreateOptions {
                name: Some("sysvol".into()),
                ..Default::default()
            })
            .await
            .expect("volume");

        let info = docker.info().await.expect("info");
        assert_eq!(info.containers, Some(1));
        assert_eq!(info.containers_stopped, Some(1));
        assert_eq!(info.containers_running, Some(0));
        assert_eq!(info.images, Some(1));
        assert_eq!(info.driver.as_deref(), Some("overlay2"));
        assert_eq!(info.os_type.as_deref(), Some("linux"));
        assert!(info.ncpu.unwrap_or(0) > 0);
        assert!(info.mem_total.unwrap_or(0) > 0);
        assert_eq!(
            info.docker_root_dir.as_deref(),
            Some(d.data_root.to_str().expect("utf-8 path"))
        );
        assert_eq!(info.server_version, Some(engine.version.clone()));

        let df = docker
            .df(None::<DataUsageOptions>)
            .await
            .expect("system df");
        let images = df.images.expect("df images");
        assert_eq!(images.len(), 1);
        assert!(images[0].size > 0);
        assert_eq!(images[0].containers, 1);
        let containers = df.containers.expect("df containers");
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0].id.as_deref(), Some(c.id.as_str()));
        let vols = df.volumes.expect("df volumes");
        assert_eq!(vols.len(), 1);
        assert_eq!(vols[0].name, "sysvol");
        let usage = vols[0].usage_data.as_ref().expect("volume usage data");
        assert_eq!(usage.ref_count, 0);

        // A bounded window (since/until): only container events pass the
        // type filter; the stream ends at `until`.
        let past = docker.events(Some(EventsOptions {
            since: Some(t0.to_string()),
            until: Some((now() + 1).to_string()),
            filters: Some(filters(&[("type", "container")])),
        }));
        let past: Vec<EventMessage> = timeout(LIMIT, past.try_collect())
            .await
            .expect("a bounded event stream ends")
            .expect("events");
        assert!(
            past.iter()
                .all(|e| e.typ == Some(EventMessageTypeEnum::CONTAINER)),
            "{past:#?}"
        );
        let create = past
            .iter()
            .find(|e| e.action.as_deref() == Some("create"))
            .expect("the create event");
        let actor = create.actor.as_ref().expect("actor");
        assert_eq!(actor.id.as_deref(), Some(c.id.as_str()));
        assert_eq!(
            actor.attributes.as_ref().and_then(|a| a.get("name")),
            Some(&"sysbox".to_string())
        );
        assert!(create.time.unwrap_or(0) >= t0);
        assert!(create.time_nano.unwrap_or(0) / 1_000_000_000 >= t0);
        assert_eq!(create.scope, Some(EventMessageScopeEnum::LOCAL));

        // A live stream, filtered to volume creations: a network made first
        // does not show, the volume does.
        // bollard's streams are lazy: a task polls this one (sending the
        // request) while the events are produced.
        let live = docker.events(Some(EventsOptions {
            since: None,
            until: None,
            filters: Some(filters(&[("type", "volume"), ("event", "create")])),
        }));
        let first = tokio::spawn(async move {
            let mut live = Box::pin(live);
            timeout(LIMIT, live.next()).await
        });
        // The subscription starts some time after the task first polls:
        // produce a network and a volume per round until an event comes.
        let mut first = first;
        let mut made = Vec::new();
        let mut got = None;
        for i in 0..30 {
            docker
                .create_network(NetworkCreateRequest {
                    name: format!("sysnet{i}"),
                    ..Default::default()
                })
                .await
                .expect("network");
            docker
                .create_volume(VolumeCreateOptions {
                    name: Some(format!("sysvol2-{i}")),
                    ..Default::default()
                })
                .await
                .expect("volume");
            made.push(i);
            if let Ok(r) = timeout(Duration::from_millis(300), &mut first).await {
                got = Some(r);
                break;
            }
        }
        let ev = got
            .expect("an event within 30 rounds")
            .expect("event task")
            .expect("an event in time")
            .expect("stream open")
            .expect("event");
        assert_eq!(ev.typ, Some(EventMessageTypeEnum::VOLUME));
        assert_eq!(ev.action.as_deref(), Some("create"));
        let actor = ev.actor.and_then(|a| a.id).unwrap_or_default();
        assert!(
            actor.starts_with("sysvol2-"),
            "a volume of ours, not a network: {actor}"
        );

        for i in made {
            docker
                .remove_network(&format!("sysnet{i}"))
                .await
                .expect("rm network");
            docker
                .remove_volume(&format!("sysvol2-{i}"), None::<RemoveVolumeOptions>)
                .await
                .expect("rm volume");
        }
        docker
            .remove_volume("sysvol", None::<RemoveVolumeOptions>)
            .await
            .expect("rm volume");
        docker
            .remove_container(&c.id, None::<RemoveContainerOptions>)
            .await
            .expect("rm container");
    });
}

#[test]
fn images_import_list_inspect_history_tag_build_save_load_remove_prune() {
    let d = Daemon::start();
    rt().block_on(async {
        let docker = client(&d).await;

        // Import (POST /images/create?fromSrc=-) from the busybox tar.
        let tar = std::fs::read(busybox_rootfs_tar()).expect("busybox tar");
        let progress: Vec<CreateImageInfo> = timeout(
            LIMIT,
            docker
                .create_image(
                    Some(
                        CreateImageOptionsBuilder::new()
                            .from_src("-")
                            .repo("sdk/busybox")
                            .tag("v1")
                            .message("from bollard")
                            .changes(strings(&["CMD [\"/bin/sh\"]", "ENV SDK=1"]))
                            .build(),
                    ),
                    Some(bollard::body_full(tar.into())),
                    None,
                )
                .try_collect(),
        )
        .await
        .expect("import in time")
        .expect("import");
        let imported = progress
            .iter()
            .filter_map(|p| p.status.as_deref())
            .find(|s| s.starts_with("sha256:"))
            .expect("the import reports the image ID")
            .to_string();

        let list = docker
            .list_images(Some(
                ListImagesOptionsBuilder::new()
                    .filters(&filters(&[("reference", "sdk/busybox")]))
                    .build(),
            ))
            .await
            .expect("list images");
        assert_eq!(list.len(), 1, "{list:#?}");
        assert_eq!(list[0].id, imported);
        assert_eq!(list[0].repo_tags, strings(&["sdk/busybox:v1"]));
        assert!(list[0].size > 0);
        assert!(list[0].created > 0);

        let img = docker.inspect_image("sdk/busybox:v1").await.expect("inspect");
        assert_eq!(img.id.as_deref(), Some(imported.as_str()));
        assert_eq!(img.os.as_deref(), Some("linux"));
        assert_eq!(img.architecture.as_deref(), Some("amd64"));
        assert_eq!(img.comment.as_deref(), Some("from bollard"));
        let cfg = img.config.as_ref().expect("config");
        assert_eq!(cfg.cmd, Some(strings(&["/bin/sh"])));
        assert!(cfg.env.as_ref().is_some_and(|e| e.contains(&"SDK=1".to_string())));
        let rootfs = img.root_fs.as_ref().expect("rootfs");
        assert_eq!(rootfs.typ, "layers");
        assert_eq!(rootfs.layers.as_ref().map(|l| l.len()), Some(1));

        let hist = docker.image_history("sdk/busybox:v1").await.expect("history");
        assert_eq!(hist.len(), 1, "{hist:#?}");
        assert_eq!(hist[0].id, imported);
        assert_eq!(hist[0].tags, strings(&["sdk/busybox:v1"]));
        assert_eq!(hist[0].comment, "from bollard");
        assert!(hist[0].size > 0);

        docker
            .tag_image(
                "sdk/busybox:v1",
                Some(TagImageOptionsBuilder::new().repo("sdk/copy").tag("t2").build()),
            )
            .await
            .expect("tag");
        let copy = docker.inspect_image("sdk/copy:t2").await.expect("inspect copy");
        assert_eq!(copy.id.as_deref(), Some(imported.as_str()));
        assert_eq!(
            copy.repo_tags.map(|mut t| {
                t.sort();
                t
            }),
            Some(strings(&["sdk/busybox:v1", "sdk/copy:t2"]))
        );

        // Build (classic builder) from a tar context.
        let context = tar_of(&[
            (
                "Dockerfile",
                b"FROM sdk/busybox:v1\nARG WHO=nobody\nRUN echo built-by-$WHO > /built\nLABEL sdk.built=yes\nENV BUILT=1\n" as &[u8],
            ),
            ("extra.txt", b"context file\n"),
        ]);
        let build: Vec<BuildInfo> = timeout(
            Duration::from_secs(120),
            docker
                .build_image(
                    BuildImageOptionsBuilder::new()
                        .dockerfile("Dockerfile")
                        .t("sdk/built:1")
                        .buildargs(&labels(&[("WHO", "bollard")]))
                        .rm(true)
                        .build(),
                    None,
                    Some(bollard::body_full(context.into())),
                )
                .try_collect(),
        )
        .await
        .expect("build in time")
        .expect("build");
        let text: String = build.iter().filter_map(|b| b.stream.clone()).collect();
        assert!(text.contains("Successfully tagged sdk/built:1"), "{text}");
        let built_id = build
            .iter()
            .find_map(|b| b.aux.as_ref().and_then(|a| a.id.clone()))
            .expect("the build reports the image ID (aux)");
        let built = docker.inspect_image("sdk/built:1").await.expect("inspect built");
        assert_eq!(built.id.as_deref(), Some(built_id.as_str()));
        let bcfg = built.config.as_ref().expect("config");
        assert_eq!(
            bcfg.labels.as_ref().and_then(|l| l.get("sdk.built")).map(String::as_str),
            Some("yes")
        );
        assert!(bcfg.env.as_ref().is_some_and(|e| e.contains(&"BUILT=1".to_string())));
        assert_eq!(built.root_fs.and_then(|r| r.layers).map(|l| l.len()), Some(2));
        let bhist = docker.image_history("sdk/built:1").await.expect("history");
        assert!(
            bhist.iter().any(|h| h.created_by.contains("echo built-by-$WHO")),
            "{bhist:#?}"
        );

        // Save (GET /images/{name}/get) → a docker-archive with our tag.
        let saved = collect_bytes(docker.export_image("sdk/built:1")).await;
        let files = tar_files(&saved);
        let manifest: serde_json::Value =
            serde_json::from_slice(files.get("manifest.json").expect("manifest.json"))
                .expect("manifest JSON");
        assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["sdk/built:1"]));
        let both = collect_bytes(docker.export_images(&["sdk/built:1", "sdk/copy:t2"])).await;
        let manifest: serde_json::Value = serde_json::from_slice(
            tar_files(&both).get("manifest.json").expect("manifest.json"),
        )
        .expect("manifest JSON");
        assert_eq!(manifest.as_array().map(|a| a.len()), Some(2));

        // Remove, then load (POST /images/load) the saved archive back.
        let del = docker
            .remove_image("sdk/built:1", None::<RemoveImageOptions>, None)
            .await
            .expect("rmi built");
        assert_eq!(del[0].untagged.as_deref(), Some("sdk/built:1"));
        assert!(
            del.iter().any(|r| r.deleted.as_deref() == Some(built_id.as_str())),
            "{del:#?}"
        );
        let err = docker.inspect_image("sdk/built:1").await.expect_err("gone");
        assert_eq!(status_of(&err), 404, "{err:?}");
        let loaded: Vec<BuildInfo> = timeout(
            LIMIT,
            docker
                .import_image(
                    ImportImageOptionsBuilder::new().quiet(false).build(),
                    bollard::body_full(saved.into()),
                    None,
                )
                .try_collect(),
        )
        .await
        .expect("load in time")
        .expect("load");
        let text: String = loaded.iter().filter_map(|b| b.stream.clone()).collect();
        assert!(text.contains("Loaded image: sdk/built:1"), "{loaded:#?}");
        let back = docker.inspect_image("sdk/built:1").await.expect("loaded");
        assert_eq!(back.id.as_deref(), Some(built_id.as_str()));

        // Removing one of two tags only untags.
        let del = docker
            .remove_image("sdk/copy:t2", None::<RemoveImageOptions>, None)
            .await
            .expect("rmi copy");
        assert_eq!(del.len(), 1, "{del:#?}");
        assert_eq!(del[0].untagged.as_deref(), Some("sdk/copy:t2"));
        let err = docker
            .remove_image("sdk/nope:1", None::<RemoveImageOptions>, None)
            .await
            .expect_err("no such image");
        assert_eq!(status_of(&err), 404, "{err:?}");

        // Prune: nothing dangling yet; then every unused image.
        let p = docker
            .prune_images(None::<PruneImagesOptions>)
            .await
            .expect("prune dangling");
        assert!(p.images_deleted.unwrap_or_default().is_empty());
        let p = docker
            .prune_images(Some(
                PruneImagesOptionsBuilder::new()
                    .filters(&filters(&[("dangling", "false")]))
                    .build(),
            ))
            .await
            .expect("prune all");
        let deleted = p.images_deleted.expect("images deleted");
        assert!(
            deleted.iter().any(|r| r.deleted.as_deref() == Some(imported.as_str())),
            "{deleted:#?}"
        );
        assert!(p.space_reclaimed.unwrap_or(0) > 0);
        let left = docker
            .list_images(None::<ListImagesOptions>)
            .await
            .expect("list");
        assert!(left.is_empty(), "{left:#?}");
    });
}

#[test]
fn containers_through_their_whole_life() {
    let d = daemon();
    let hostdir = scratch();
    std::fs::write(hostdir.path().join("from-host.txt"), "host file\n").expect("host file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    rt().block_on(async {
        let docker = client(&d).await;
        let mut exposed = HashMap::new();
        exposed.insert("80/tcp".to_string(), HashMap::new());
        let mut bindings = HashMap::new();
        bindings.insert(
            "80/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(port.to_string()),
            }]),
        );
        let script = "echo out-line; echo err-line >&2; mkdir -p /www; echo hi > /www/index.html; exec httpd -f -p 80 -h /www";
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name("sdkbox").build()),
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&["sh", "-c", script])),
                    hostname: Some("sdkhost".into()),
                    domainname: Some("example.test".into()),
                    env: Some(strings(&["SDK_A=1", "SDK_B=two words"])),
                    labels: Some(labels(&[("sdk", "yes"), ("role", "web")])),
                    working_dir: Some("/work".into()),
                    exposed_ports: Some(exposed),
                    stop_signal: Some("SIGTERM".into()),
                    stop_timeout: Some(2),
                    host_config: Some(HostConfig {
                        memory: Some(64 * 1024 * 1024),
                        cpu_shares: Some(512),
                        pids_limit: Some(100),
                        binds: Some(vec![format!("{}:/hostdir:ro", hostdir.path().display())]),
                        mounts: Some(vec![Mount {
                            target: Some("/vol".into()),
                            source: Some("sdkdata".into()),
                            typ: Some(MountTypeEnum::VOLUME),
                            ..Default::default()
                        }]),
                        port_bindings: Some(bindings),
                        restart_policy: Some(RestartPolicy {
                            name: Some(RestartPolicyNameEnum::ON_FAILURE),
                            maximum_retry_count: Some(2),
                        }),
                        cap_add: Some(strings(&["NET_ADMIN"])),
                        extra_hosts: Some(strings(&["myhost:10.1.2.3"])),
                        tmpfs: Some(labels(&[("/scratch", "size=1m")])),
                        ulimits: Some(vec![ResourcesUlimits {
                            name: Some("nofile".into()),
                            soft: Some(1024),
                            hard: Some(2048),
                        }]),
                        log_config: Some(HostConfigLogConfig {
                            typ: Some("json-file".into()),
                            config: Some(labels(&[("max-size", "1m")])),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
        assert!(is_hex_id(&created.id), "{created:?}");
        assert!(created.warnings.is_empty(), "{created:?}");
        let id = created.id.clone();
        docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .expect("start");

        let c = docker
            .inspect_container("sdkbox", None::<InspectContainerOptions>)
            .await
            .expect("inspect");
        assert_eq!(c.id.as_deref(), Some(id.as_str()));
        assert_eq!(c.name.as_deref(), Some("/sdkbox"));
        let st = c.state.as_ref().expect("state");
        assert_eq!(st.status, Some(ContainerStateStatusEnum::RUNNING));
        assert_eq!(st.running, Some(true));
        assert!(st.pid.unwrap_or(0) > 0);
        let cfg = c.config.as_ref().expect("config");
        assert_eq!(cfg.hostname.as_deref(), Some("sdkhost"));
        assert_eq!(cfg.domainname.as_deref(), Some("example.test"));
        assert_eq!(cfg.working_dir.as_deref(), Some("/work"));
        let env = cfg.env.clone().unwrap_or_default();
        assert!(env.contains(&"SDK_B=two words".to_string()), "{env:?}");
        assert_eq!(cfg.labels.as_ref().and_then(|l| l.get("role")).map(String::as_str), Some("web"));
        assert_eq!(cfg.stop_timeout, Some(2));
        let hc = c.host_config.as_ref().expect("host config");
        assert_eq!(hc.memory, Some(64 * 1024 * 1024));
        assert_eq!(hc.cpu_shares, Some(512));
        assert_eq!(hc.pids_limit, Some(100));
        assert_eq!(
            hc.restart_policy.as_ref().and_then(|r| r.name),
            Some(RestartPolicyNameEnum::ON_FAILURE)
        );
        assert_eq!(hc.cap_add, Some(strings(&["NET_ADMIN"])));
        let mounts = c.mounts.clone().unwrap_or_default();
        // HostConfig.Tmpfs mounts are not mount points (dockerd lists none).
        assert_eq!(mounts.len(), 2, "bind and volume: {mounts:#?}");
        let vol = mounts
            .iter()
            .find(|m| m.destination.as_deref() == Some("/vol"))
            .expect("the volume mount");
        assert_eq!(vol.name.as_deref(), Some("sdkdata"));
        assert_eq!(vol.typ, Some(MountPointTypeEnum::VOLUME));
        let bind = mounts
            .iter()
            .find(|m| m.destination.as_deref() == Some("/hostdir"))
            .expect("the bind mount");
        assert_eq!(bind.rw, Some(false));
        let ports = c
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.clone())
            .expect("ports");
        let b = ports.get("80/tcp").cloned().flatten().expect("80/tcp bound");
        assert_eq!(b[0].host_port.as_deref(), Some(port.to_string().as_str()));

        // The options took effect inside the container.
        let (out, _, _) = exec(&docker, &id, &["sh", "-c", "pwd; hostname; grep myhost /etc/hosts; ulimit -n; cat /hostdir/from-host.txt; mount | grep ' /scratch '"]).await;
        assert!(out.starts_with("/work\nsdkhost\n"), "{out}");
        assert!(out.contains("10.1.2.3"), "{out}");
        assert!(out.contains("\n1024\n"), "{out}");
        assert!(out.contains("host file"), "{out}");
        assert!(out.contains("tmpfs"), "{out}");

        // logs: stdout and stderr, demultiplexed.
        let mut logs = (String::new(), String::new());
        for _ in 0..50 {
            logs = split_output(docker.logs(
                &id,
                Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
            ))
            .await;
            if logs.1.contains("err-line") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(logs, ("out-line\n".to_string(), "err-line\n".to_string()));
        let (ts, _) = split_output(docker.logs(
            &id,
            Some(LogsOptionsBuilder::new().stdout(true).timestamps(true).build()),
        ))
        .await;
        assert!(ts.ends_with("Z out-line\n"), "{ts}");
        assert_eq!(ts.lines().count(), 1, "{ts}");

        // list with filters.
        let running = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .filters(&filters(&[("label", "sdk=yes"), ("status", "running")]))
                    .build(),
            ))
            .await
            .expect("list");
        assert_eq!(running.len(), 1, "{running:#?}");
        let s = &running[0];
        assert_eq!(s.id.as_deref(), Some(id.as_str()));
        assert_eq!(s.names, Some(strings(&["/sdkbox"])));
        assert_eq!(s.image.as_deref(), Some("busybox:latest"));
        assert_eq!(s.state, Some(ContainerSummaryStateEnum::RUNNING));
        assert!(s.status.as_deref().is_some_and(|t| t.starts_with("Up")));
        let p = s.ports.clone().unwrap_or_default();
        assert!(
            p.iter().any(|p| p.private_port == 80 && p.public_port == Some(port)),
            "{p:#?}"
        );
        let exited = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters(&[("status", "exited")]))
                    .build(),
            ))
            .await
            .expect("list exited");
        assert!(exited.is_empty(), "{exited:#?}");

        // top
        let top = docker
            .top_processes(&id, Some(TopOptionsBuilder::new().ps_args("-ef").build()))
            .await
            .expect("top");
        let titles = top.titles.expect("titles");
        assert!(titles.contains(&"PID".to_string()) && titles.contains(&"CMD".to_string()), "{titles:?}");
        let cmd_col = titles.iter().position(|t| t == "CMD").expect("CMD column");
        let procs = top.processes.expect("processes");
        assert!(procs.iter().any(|p| p[cmd_col].contains("httpd")), "{procs:?}");

        // stats: one shot, then two streamed samples.
        let one = timeout(
            LIMIT,
            docker
                .stats(&id, Some(StatsOptionsBuilder::new().stream(false).one_shot(true).build()))
                .try_collect::<Vec<_>>(),
        )
        .await
        .expect("stats in time")
        .expect("stats");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name.as_deref(), Some("/sdkbox"));
        assert_eq!(one[0].id.as_deref(), Some(id.as_str()));
        assert!(one[0].pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0) >= 1);
        let mem = one[0].memory_stats.as_ref().expect("memory stats");
        assert!(mem.usage.unwrap_or(0) > 0);
        assert_eq!(mem.limit, Some(64 * 1024 * 1024));
        let streamed: Vec<ContainerStatsResponse> = timeout(
            LIMIT,
            docker
                .stats(&id, Some(StatsOptionsBuilder::new().stream(true).build()))
                .take(2)
                .try_collect(),
        )
        .await
        .expect("streamed stats in time")
        .expect("streamed stats");
        assert_eq!(streamed.len(), 2);
        let cpu = streamed[1].cpu_stats.as_ref().expect("cpu stats");
        assert!(cpu.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0) > 0);
        let pre = streamed[1].precpu_stats.as_ref().expect("precpu stats");
        assert!(pre.system_cpu_usage.unwrap_or(0) > 0, "the second sample has a previous one");

        // The published port answers.
        let body = {
            use std::io::Write;
            let mut got = String::new();
            for _ in 0..50 {
                if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
                    let _ = s.read_to_string(&mut got);
                    if got.contains("hi") {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            got
        };
        assert!(body.ends_with("\r\n\r\nhi\n"), "{body}");

        // changes
        let changes = docker.container_changes(&id).await.expect("changes").unwrap_or_default();
        let www = changes.iter().find(|c| c.path == "/www").expect("/www in the changes");
        assert_eq!(www.kind, ChangeType::_1, "added");

        // archive: get a file, put a tar, read it back.
        let got = collect_bytes(docker.download_from_container(
            &id,
            Some(DownloadFromContainerOptionsBuilder::new().path("/www/index.html").build()),
        ))
        .await;
        assert_eq!(tar_files(&got).get("index.html").map(Vec::as_slice), Some(&b"hi\n"[..]));
        docker
            .upload_to_container(
                &id,
                Some(UploadToContainerOptionsBuilder::new().path("/tmp").build()),
                bollard::body_full(tar_of(&[("uploaded.txt", b"put by bollard\n")]).into()),
            )
            .await
            .expect("put archive");
        let (out, _, code) = exec(&docker, &id, &["cat", "/tmp/uploaded.txt"]).await;
        assert_eq!((out.as_str(), code), ("put by bollard\n", 0));
        let err = collect_bytes_err(docker.download_from_container(
            &id,
            Some(DownloadFromContainerOptionsBuilder::new().path("/no/such").build()),
        ))
        .await;
        assert_eq!(status_of(&err), 404, "{err:?}");

        // export
        let exported = tar_files(&collect_bytes(docker.export_container(&id)).await);
        assert!(exported.contains_key("bin/busybox"), "export lacks bin/busybox");
        assert_eq!(exported.get("www/index.html").map(Vec::as_slice), Some(&b"hi\n"[..]));

        // pause / unpause
        docker.pause_container(&id).await.expect("pause");
        let st = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .expect("inspect")
            .state
            .expect("state");
        assert_eq!((st.status, st.paused), (Some(ContainerStateStatusEnum::PAUSED), Some(true)));
        let paused = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .filters(&filters(&[("status", "paused")]))
                    .build(),
            ))
            .await
            .expect("list paused");
        assert_eq!(paused.len(), 1);
        docker.unpause_container(&id).await.expect("unpause");

        // restart: a new process, a new start time.
        let before = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .expect("inspect")
            .state
            .expect("state");
        docker
            .restart_container(&id, Some(RestartContainerOptionsBuilder::new().t(1).build()))
            .await
            .expect("restart");
        let after = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .expect("inspect")
            .state
            .expect("state");
        assert_eq!(after.running, Some(true));
        assert_ne!(after.pid, before.pid);
        assert_ne!(after.started_at, before.started_at);

        // rename
        docker
            .rename_container(&id, RenameContainerOptionsBuilder::new().name("sdkbox2").build())
            .await
            .expect("rename");
        let c = docker
            .inspect_container("sdkbox2", None::<InspectContainerOptions>)
            .await
            .expect("inspect renamed");
        assert_eq!(c.name.as_deref(), Some("/sdkbox2"));

        // update: resources and the restart policy, read back and in the cgroup.
        docker
            .update_container(
                &id,
                ContainerUpdateBody {
                    memory: Some(128 * 1024 * 1024),
                    memory_swap: Some(256 * 1024 * 1024),
                    cpu_shares: Some(256),
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                        maximum_retry_count: None,
                    }),
                    ..Default::default()
                },
            )
            .await
            .expect("update");
        let hc = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .expect("inspect")
            .host_config
            .expect("host config");
        assert_eq!(hc.memory, Some(128 * 1024 * 1024));
        assert_eq!(hc.cpu_shares, Some(256));
        assert_eq!(
            hc.restart_policy.and_then(|r| r.name),
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        // cgroup v2, or v1's memory controller.
        let (out, _, _) = exec(
            &docker,
            &id,
            &["sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"],
        )
        .await;
        assert_eq!(out.trim(), (128 * 1024 * 1024).to_string());

        // Back to no restart policy (a kill under one is its own test).
        docker
            .update_container(
                &id,
                ContainerUpdateBody {
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::NO),
                        maximum_retry_count: None,
                    }),
                    ..Default::default()
                },
            )
            .await
            .expect("update");

        // kill
        docker
            .kill_container(&id, Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()))
            .await
            .expect("kill");
        let waited: Vec<_> = timeout(
            LIMIT,
            docker
                .wait_container(&id, Some(WaitContainerOptionsBuilder::new().condition("not-running").build()))
                .collect(),
        )
        .await
        .expect("wait in time");
        match waited.first() {
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => assert_eq!(*code, 137),
            other => panic!("wait after SIGKILL: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let st = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .expect("inspect")
            .state
            .expect("state");
        assert_eq!(st.status, Some(ContainerStateStatusEnum::EXITED), "{st:?}");
        assert_eq!(st.exit_code, Some(137));
        assert!(st.finished_at.as_deref().is_some_and(|f| !f.starts_with("0001")));

        // attach: stdin in, stdout back.
        let cat = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name("sdkcat").build()),
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&["cat"])),
                    open_stdin: Some(true),
                    stdin_once: Some(true),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("create cat")
            .id;
        let AttachContainerResults { output, mut input } = docker
            .attach_container(
                &cat,
                Some(
                    AttachContainerOptionsBuilder::new()
                        .stdin(true)
                        .stdout(true)
                        .stderr(true)
                        .stream(true)
                        .build(),
                ),
            )
            .await
            .expect("attach");
        docker
            .start_container(&cat, None::<StartContainerOptions>)
            .await
            .expect("start cat");
        input.write_all(b"through attach\n").await.expect("stdin");
        input.shutdown().await.expect("close stdin");
        let (out, _) = split_output(output).await;
        assert_eq!(out, "through attach\n");
        let waited: Vec<_> = timeout(
            LIMIT,
            docker.wait_container(&cat, None::<WaitContainerOptions>).try_collect(),
        )
        .await
        .expect("wait in time")
        .expect("cat exits 0");
        assert_eq!(waited[0].status_code, 0);

        // wait reports a non-zero exit.
        let failing = docker
            .create_container(
                None::<CreateContainerOptions>,
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&["sh", "-c", "exit 3"])),
                    labels: Some(labels(&[("prune", "me")])),
                    ..Default::default()
                },
            )
            .await
            .expect("create failing")
            .id;
        let mut w = docker.wait_container(&failing, None::<WaitContainerOptions>);
        docker
            .start_container(&failing, None::<StartContainerOptions>)
            .await
            .expect("start failing");
        match timeout(LIMIT, w.next()).await.expect("wait in time") {
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => assert_eq!(code, 3),
            other => panic!("wait: {other:?}"),
        }

        // remove: a running container needs force.
        let running = run_sleeper(&docker, "sdkrunning", Default::default()).await;
        let err = docker
            .remove_container(&running, None::<RemoveContainerOptions>)
            .await
            .expect_err("running");
        assert_eq!(status_of(&err), 409, "{err:?}");
        docker
            .remove_container(&running, Some(RemoveContainerOptionsBuilder::new().force(true).build()))
            .await
            .expect("force remove");
        let err = docker
            .inspect_container(&running, None::<InspectContainerOptions>)
            .await
            .expect_err("gone");
        assert_eq!(status_of(&err), 404, "{err:?}");

        // prune: only the stopped containers matching the filter.
        let p = docker
            .prune_containers(Some(
                PruneContainersOptionsBuilder::new()
                    .filters(&filters(&[("label", "prune=me")]))
                    .build(),
            ))
            .await
            .expect("prune");
        assert_eq!(p.containers_deleted, Some(vec![failing.clone()]));
        let left: Vec<String> = docker
            .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
            .await
            .expect("list")
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        assert!(left.contains(&id) && left.contains(&cat) && !left.contains(&failing));
        for c in [&id, &cat] {
            docker
                .remove_container(c, Some(RemoveContainerOptionsBuilder::new().v(true).build()))
                .await
                .expect("remove");
        }
        docker
            .remove_volume("sdkdata", None::<RemoveVolumeOptions>)
            .await
            .expect("rm volume");
    });
}

#[test]
fn a_kill_is_a_manual_stop_for_the_restart_policy() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        for policy in [
            RestartPolicyNameEnum::UNLESS_STOPPED,
            RestartPolicyNameEnum::ALWAYS,
        ] {
            let id = run_sleeper(
                &docker,
                &format!("killed-{policy}"),
                ContainerCreateBody {
                    host_config: Some(HostConfig {
                        restart_policy: Some(RestartPolicy {
                            name: Some(policy),
                            maximum_retry_count: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await;
            docker
                .kill_container(
                    &id,
                    Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()),
                )
                .await
                .expect("kill");
            let _ = timeout(
                LIMIT,
                docker
                    .wait_container(
                        &id,
                        Some(
                            WaitContainerOptionsBuilder::new()
                                .condition("not-running")
                                .build(),
                        ),
                    )
                    .collect::<Vec<_>>(),
            )
            .await;
            // Longer than the first restart back-off (100ms).
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let c = docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
                .expect("inspect");
            let st = c.state.expect("state");
            assert_eq!(
                st.status,
                Some(ContainerStateStatusEnum::EXITED),
                "{policy}: {st:?}"
            );
            assert_eq!(st.exit_code, Some(137));
            assert_eq!(c.restart_count, Some(0), "{policy}");
        }
    });
}

/// The error that ends a byte stream that must fail.
async fn collect_bytes_err(
    s: impl futures_util::Stream<Item = Result<impl AsRef<[u8]>, BollardError>>,
) -> BollardError {
    timeout(LIMIT, s.try_collect::<Vec<_>>())
        .await
        .expect("stream in time")
        .err()
        .expect("the stream fails")
}

#[test]
fn exec_attached_detached_stdin_tty_resize_and_inspect() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let id = run_sleeper(&docker, "execbox", Default::default()).await;

        // Attached, with env, working dir and user; both streams and the code.
        let e = docker
            .create_exec(
                &id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    env: Some(strings(&["EXEC_VAR=from-exec"])),
                    working_dir: Some("/tmp".into()),
                    user: Some("nobody".into()),
                    cmd: Some(strings(&[
                        "sh",
                        "-c",
                        "echo $EXEC_VAR $(pwd) $(id -u); echo to-err >&2; exit 4",
                    ])),
                    ..Default::default()
                },
            )
            .await
            .expect("exec create");
        assert!(is_hex_id(&e.id));
        let before = docker.inspect_exec(&e.id).await.expect("inspect");
        assert_eq!(before.running, Some(false));
        assert_eq!(before.container_id.as_deref(), Some(id.as_str()));
        let StartExecResults::Attached { output, .. } =
            docker.start_exec(&e.id, None).await.expect("start")
        else {
            panic!("detached")
        };
        let (out, err) = split_output(output).await;
        assert_eq!(out, "from-exec /tmp 65534\n");
        assert_eq!(err, "to-err\n");
        let ins = docker.inspect_exec(&e.id).await.expect("inspect");
        assert_eq!(ins.exit_code, Some(4));
        assert_eq!(ins.running, Some(false));
        assert_eq!(ins.open_stdout, Some(true));
        assert_eq!(ins.open_stdin, Some(false));
        let pc = ins.process_config.expect("process config");
        assert_eq!(pc.entrypoint.as_deref(), Some("sh"));
        assert_eq!(pc.user.as_deref(), Some("nobody"));
        assert_eq!(pc.tty, Some(false));
        assert_eq!(pc.arguments.map(|a| a.len()), Some(2));

        // stdin: what goes in comes out.
        let e = docker
            .create_exec(
                &id,
                ExecConfig {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(strings(&["sh", "-c", "tr a-z A-Z"])),
                    ..Default::default()
                },
            )
            .await
            .expect("exec create");
        let StartExecResults::Attached { output, mut input } =
            docker.start_exec(&e.id, None).await.expect("start")
        else {
            panic!("detached")
        };
        input.write_all(b"shout\n").await.expect("stdin");
        input.shutdown().await.expect("close stdin");
        let (out, _) = split_output(output).await;
        assert_eq!(out, "SHOUT\n");

        // Detached: runs on its own; inspect shows it finish.
        let e = docker
            .create_exec(
                &id,
                ExecConfig {
                    cmd: Some(strings(&[
                        "sh",
                        "-c",
                        "sleep 0.3; echo done > /tmp/detached",
                    ])),
                    ..Default::default()
                },
            )
            .await
            .expect("exec create");
        let r = docker
            .start_exec(
                &e.id,
                Some(StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
            .expect("start detached");
        assert!(matches!(r, StartExecResults::Detached));
        let mut finished = None;
        for _ in 0..100 {
            let ins = docker.inspect_exec(&e.id).await.expect("inspect");
            if ins.running == Some(false) && ins.exit_code.is_some() {
                finished = Some(ins);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let finished = finished.expect("the detached exec finishes");
        assert_eq!(finished.exit_code, Some(0));
        let (out, _, _) = exec(&docker, &id, &["cat", "/tmp/detached"]).await;
        assert_eq!(out, "done\n");

        // TTY + resize: the new size is what the process sees.
        let e = docker
            .create_exec(
                &id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    // Polls until the resize lands (bounded), then reports.
                    cmd: Some(strings(&[
                        "sh",
                        "-c",
                        "for i in $(seq 100); do s=$(stty size 2>/dev/null); [ \"$s\" = \"33 101\" ] && break; sleep 0.1; done; echo $s",
                    ])),
                    ..Default::default()
                },
            )
            .await
            .expect("exec create");
        let StartExecResults::Attached { output, .. } = docker
            .start_exec(
                &e.id,
                Some(StartExecOptions {
                    tty: true,
                    ..Default::default()
                }),
            )
            .await
            .expect("start")
        else {
            panic!("detached")
        };
        // The stream is handed over before the process starts (dockerd
        // too): wait until inspect shows it running with its pid.
        let mut running = None;
        for _ in 0..100 {
            let ins = docker.inspect_exec(&e.id).await.expect("inspect");
            if ins.pid.unwrap_or(0) > 0 {
                running = Some(ins);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let running = running.expect("the exec runs with a pid");
        assert_eq!(running.running, Some(true));
        let asked = std::time::Instant::now();
        docker
            .resize_exec(&e.id, ResizeExecOptionsBuilder::new().h(33).w(101).build())
            .await
            .expect("resize");
        // A running exec is resized at once (not after a wait for a start
        // that already happened).
        assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
        let (out, _) = split_output(output).await;
        assert_eq!(out.trim(), "33 101");

        // An exec on a stopped container is refused with 409.
        docker
            .kill_container(&id, None::<KillContainerOptions>)
            .await
            .expect("kill");
        let _ = timeout(
            LIMIT,
            docker
                .wait_container(&id, None::<WaitContainerOptions>)
                .collect::<Vec<_>>(),
        )
        .await;
        let err = docker
            .create_exec(
                &id,
                ExecConfig {
                    cmd: Some(strings(&["true"])),
                    ..Default::default()
                },
            )
            .await
            .expect_err("not running");
        assert_eq!(status_of(&err), 409, "{err:?}");
        let err = docker
            .inspect_exec("nosuchexec")
            .await
            .expect_err("no such exec");
        assert_eq!(status_of(&err), 404, "{err:?}");
    });
}

#[test]
fn networks_create_inspect_list_connect_disconnect_remove_prune() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let created = docker
            .create_network(NetworkCreateRequest {
                name: "sdknet".into(),
                driver: Some("bridge".into()),
                attachable: Some(true),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![IpamConfig {
                        subnet: Some("192.168.237.0/24".into()),
                        gateway: Some("192.168.237.1".into()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                labels: Some(labels(&[("sdk", "net")])),
                ..Default::default()
            })
            .await
            .expect("create network");
        assert!(is_hex_id(&created.id), "{created:?}");
        let err = docker
            .create_network(NetworkCreateRequest {
                name: "sdknet".into(),
                ..Default::default()
            })
            .await
            .expect_err("duplicate name");
        assert_eq!(status_of(&err), 409, "{err:?}");

        let n = docker
            .inspect_network("sdknet", None::<InspectNetworkOptions>)
            .await
            .expect("inspect");
        assert_eq!(n.id.as_deref(), Some(created.id.as_str()));
        assert_eq!(n.name.as_deref(), Some("sdknet"));
        assert_eq!(n.driver.as_deref(), Some("bridge"));
        assert_eq!(n.scope.as_deref(), Some("local"));
        assert_eq!(n.attachable, Some(true));
        assert_eq!(n.internal, Some(false));
        let ipam = n.ipam.expect("ipam").config.expect("ipam config");
        assert_eq!(ipam[0].subnet.as_deref(), Some("192.168.237.0/24"));
        assert_eq!(ipam[0].gateway.as_deref(), Some("192.168.237.1"));
        assert_eq!(
            n.labels.and_then(|l| l.get("sdk").cloned()).as_deref(),
            Some("net")
        );
        assert!(n.containers.unwrap_or_default().is_empty());

        for f in [
            ("name", "sdknet"),
            ("label", "sdk=net"),
            ("driver", "bridge"),
            ("type", "custom"),
        ] {
            let l = docker
                .list_networks(Some(
                    ListNetworksOptionsBuilder::new()
                        .filters(&filters(&[f]))
                        .build(),
                ))
                .await
                .expect("list");
            let names: Vec<_> = l.iter().filter_map(|n| n.name.clone()).collect();
            if f.0 == "driver" {
                assert!(
                    names.contains(&"sdknet".to_string()) && names.contains(&"bridge".to_string()),
                    "{f:?}: {names:?}"
                );
            } else {
                assert_eq!(names, strings(&["sdknet"]), "{f:?}");
            }
        }
        let all = docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .expect("list");
        let mut names: Vec<_> = all.iter().filter_map(|n| n.name.clone()).collect();
        names.sort();
        assert_eq!(names, strings(&["bridge", "host", "none", "sdknet"]));

        // connect with a fixed address and an alias; a peer resolves the alias.
        let a = run_sleeper(&docker, "neta", Default::default()).await;
        docker
            .connect_network(
                "sdknet",
                NetworkConnectRequest {
                    container: Some(a.clone()),
                    endpoint_config: Some(EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some("192.168.237.50".into()),
                            ..Default::default()
                        }),
                        aliases: Some(strings(&["alias-a"])),
                        ..Default::default()
                    }),
                },
            )
            .await
            .expect("connect");
        let n = docker
            .inspect_network("sdknet", None::<InspectNetworkOptions>)
            .await
            .expect("inspect");
        let members = n.containers.expect("containers");
        let m = members.get(&a).expect("a is a member");
        assert_eq!(m.name.as_deref(), Some("neta"));
        assert_eq!(m.ipv4_address.as_deref(), Some("192.168.237.50/24"));
        let ep = docker
            .inspect_container(&a, None::<InspectContainerOptions>)
            .await
            .expect("inspect a")
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|n| n.get("sdknet").cloned())
            .expect("a's endpoint on sdknet");
        assert_eq!(ep.ip_address.as_deref(), Some("192.168.237.50"));
        assert_eq!(ep.gateway.as_deref(), Some("192.168.237.1"));
        assert_eq!(ep.ip_prefix_len, Some(24));
        assert_eq!(ep.network_id.as_deref(), Some(created.id.as_str()));
        assert!(ep
            .aliases
            .unwrap_or_default()
            .contains(&"alias-a".to_string()));

        let mut net_cfg = HashMap::new();
        net_cfg.insert("sdknet".to_string(), EndpointSettings::default());
        let b = run_sleeper(
            &docker,
            "netb",
            ContainerCreateBody {
                host_config: Some(HostConfig {
                    network_mode: Some("sdknet".into()),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(net_cfg),
                }),
                ..Default::default()
            },
        )
        .await;
        let (out, _, code) = exec(&docker, &b, &["nslookup", "alias-a"]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("192.168.237.50"), "{out}");
        let (_, _, code) = exec(&docker, &b, &["ping", "-c", "1", "-W", "2", "neta"]).await;
        assert_eq!(code, 0, "netb pings neta by name");

        // A network in use cannot go.
        let err = docker.remove_network("sdknet").await.expect_err("in use");
        assert_eq!(status_of(&err), 403, "{err:?}");

        docker
            .disconnect_network(
                "sdknet",
                NetworkDisconnectRequest {
                    container: Some(a.clone()),
                    force: Some(false),
                },
            )
            .await
            .expect("disconnect");
        let nets = docker
            .inspect_container(&a, None::<InspectContainerOptions>)
            .await
            .expect("inspect a")
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default();
        assert!(!nets.contains_key("sdknet"), "{nets:?}");
        let (_, _, code) = exec(&docker, &b, &["nslookup", "alias-a"]).await;
        assert_ne!(code, 0, "the alias is gone with the endpoint");

        for c in [&a, &b] {
            docker
                .remove_container(
                    c,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await
                .expect("rm");
        }
        docker.remove_network("sdknet").await.expect("rm network");
        let err = docker
            .inspect_network("sdknet", None::<InspectNetworkOptions>)
            .await
            .expect_err("gone");
        assert_eq!(status_of(&err), 404, "{err:?}");

        // prune: unused networks matching the filter.
        for name in ["prune1", "prune2", "keep1"] {
            docker
                .create_network(NetworkCreateRequest {
                    name: name.into(),
                    labels: Some(labels(&[(
                        "gen",
                        if name.starts_with("prune") {
                            "old"
                        } else {
                            "new"
                        },
                    )])),
                    ..Default::default()
                })
                .await
                .expect("create");
        }
        let p = docker
            .prune_networks(Some(
                PruneNetworksOptionsBuilder::new()
                    .filters(&filters(&[("label", "gen=old")]))
                    .build(),
            ))
            .await
            .expect("prune");
        let mut deleted = p.networks_deleted.expect("networks deleted");
        deleted.sort();
        assert_eq!(deleted, strings(&["prune1", "prune2"]));
        docker.remove_network("keep1").await.expect("rm keep1");
    });
}

#[test]
fn volumes_create_inspect_list_remove_prune() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let v = docker
            .create_volume(VolumeCreateOptions {
                name: Some("sdkvol".into()),
                driver: Some("local".into()),
                labels: Some(labels(&[("sdk", "vol")])),
                ..Default::default()
            })
            .await
            .expect("create");
        assert_eq!(v.name, "sdkvol");
        assert_eq!(v.driver, "local");
        assert_eq!(v.scope, Some(VolumeScopeEnum::LOCAL));
        assert_eq!(v.labels.get("sdk").map(String::as_str), Some("vol"));
        assert!(
            v.mountpoint
                .starts_with(d.data_root.to_str().expect("utf-8")),
            "{}",
            v.mountpoint
        );
        assert!(v.created_at.as_deref().is_some_and(|t| t.contains('T')));
        let again = docker
            .create_volume(VolumeCreateOptions {
                name: Some("sdkvol".into()),
                ..Default::default()
            })
            .await
            .expect("creating an existing volume returns it");
        assert_eq!(again.mountpoint, v.mountpoint);

        let ins = docker.inspect_volume("sdkvol").await.expect("inspect");
        assert_eq!(ins.name, v.name);
        assert_eq!(ins.mountpoint, v.mountpoint);
        assert_eq!(ins.labels, v.labels);
        let err = docker.inspect_volume("nosuchvol").await.expect_err("none");
        assert_eq!(status_of(&err), 404, "{err:?}");

        // Anonymous volume: a generated 64-hex name.
        let anon = docker
            .create_volume(VolumeCreateOptions::default())
            .await
            .expect("anonymous");
        assert!(is_hex_id(&anon.name), "{}", anon.name);

        let l = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new()
                    .filters(&filters(&[("label", "sdk=vol")]))
                    .build(),
            ))
            .await
            .expect("list");
        let names: Vec<_> = l
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names, strings(&["sdkvol"]));
        assert!(l.warnings.unwrap_or_default().is_empty());

        // In use: data written through a container; removal refused.
        let c = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name("volbox").build()),
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&["sh", "-c", "echo kept > /v/data"])),
                    host_config: Some(HostConfig {
                        binds: Some(strings(&["sdkvol:/v"])),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .expect("create")
            .id;
        docker
            .start_container(&c, None::<StartContainerOptions>)
            .await
            .expect("start");
        let w: Vec<_> = timeout(
            LIMIT,
            docker
                .wait_container(&c, None::<WaitContainerOptions>)
                .try_collect(),
        )
        .await
        .expect("wait in time")
        .expect("exit 0");
        assert_eq!(w[0].status_code, 0);
        assert_eq!(
            std::fs::read_to_string(std::path::Path::new(&v.mountpoint).join("data"))
                .ok()
                .as_deref(),
            Some("kept\n")
        );
        let dangling = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new()
                    .filters(&filters(&[("dangling", "true")]))
                    .build(),
            ))
            .await
            .expect("list dangling");
        let names: Vec<_> = dangling
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names, vec![anon.name.clone()], "sdkvol is used by volbox");
        let err = docker
            .remove_volume("sdkvol", None::<RemoveVolumeOptions>)
            .await
            .expect_err("in use");
        assert_eq!(status_of(&err), 409, "{err:?}");
        docker
            .remove_container(&c, None::<RemoveContainerOptions>)
            .await
            .expect("rm container");
        docker
            .remove_volume("sdkvol", None::<RemoveVolumeOptions>)
            .await
            .expect("rm volume");
        let err = docker.inspect_volume("sdkvol").await.expect_err("gone");
        assert_eq!(status_of(&err), 404, "{err:?}");

        // prune (API ≥ 1.42): anonymous volumes only, unless all=true.
        docker
            .create_volume(VolumeCreateOptions {
                name: Some("named-keep".into()),
                ..Default::default()
            })
            .await
            .expect("create named");
        let p = docker
            .prune_volumes(None::<PruneVolumesOptions>)
            .await
            .expect("prune");
        assert_eq!(p.volumes_deleted, Some(vec![anon.name.clone()]));
        docker
            .inspect_volume("named-keep")
            .await
            .expect("a named volume survives");
        let p = docker
            .prune_volumes(Some(
                PruneVolumesOptionsBuilder::new()
                    .filters(&filters(&[("all", "true")]))
                    .build(),
            ))
            .await
            .expect("prune all");
        assert_eq!(p.volumes_deleted, Some(strings(&["named-keep"])));
        let l = docker
            .list_volumes(None::<ListVolumesOptions>)
            .await
            .expect("list");
        assert!(l.volumes.unwrap_or_default().is_empty());
    });
}

#[test]
fn containers_stop_resize_wait_conditions_follow_logs_and_sizes() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;

        // stop with a timeout: a TERM-ignoring PID 1 is killed after it.
        let id = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name("stopper").build()),
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&[
                        "sh",
                        "-c",
                        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
                    ])),
                    tty: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("create")
            .id;
        docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .expect("start");

        // resize the container's terminal: the process sees the new size.
        docker
            .resize_container_tty(
                &id,
                ResizeContainerTTYOptionsBuilder::new().h(21).w(77).build(),
            )
            .await
            .expect("resize");
        let (out, _, _) = exec(&docker, &id, &["sh", "-c", "stty size < /proc/1/fd/0"]).await;
        assert_eq!(out.trim(), "21 77");

        // logs follow: the stream goes on until the container stops.
        let follow = docker.logs(
            &id,
            Some(LogsOptionsBuilder::new().stdout(true).follow(true).build()),
        );
        let follower = tokio::spawn(async move {
            let mut s = Box::pin(follow);
            let mut text = String::new();
            while let Some(item) = timeout(LIMIT, s.next()).await.expect("follow in time") {
                text.push_str(&item.expect("log frame").to_string());
            }
            text
        });
        let t = std::time::Instant::now();
        docker
            .stop_container(&id, Some(StopContainerOptionsBuilder::new().t(1).build()))
            .await
            .expect("stop");
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "waited for the timeout"
        );
        let followed = timeout(LIMIT, follower)
            .await
            .expect("follow ends")
            .expect("task");
        assert!(followed.contains("ready"), "{followed:?}");
        let st = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .expect("inspect")
            .state
            .expect("state");
        assert_eq!(st.exit_code, Some(137));
        // Already stopped: dockerd's 304, which bollard takes as success.
        docker
            .stop_container(&id, None::<StopContainerOptions>)
            .await
            .expect("a second stop is not an error");

        // wait next-exit: only the exit after the wait began counts.
        let mut next = Box::pin(
            docker.wait_container(
                &id,
                Some(
                    WaitContainerOptionsBuilder::new()
                        .condition("next-exit")
                        .build(),
                ),
            ),
        );
        let early = timeout(Duration::from_millis(500), next.next()).await;
        assert!(
            early.is_err(),
            "next-exit answered before any exit: {early:?}"
        );
        docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .expect("start again");
        docker
            .kill_container(&id, None::<KillContainerOptions>)
            .await
            .expect("kill");
        match timeout(LIMIT, next.next())
            .await
            .expect("next-exit in time")
        {
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => assert_eq!(code, 137),
            other => panic!("next-exit: {other:?}"),
        }

        // wait removed: answers once the container is gone.
        let mut removed = Box::pin(
            docker.wait_container(
                &id,
                Some(
                    WaitContainerOptionsBuilder::new()
                        .condition("removed")
                        .build(),
                ),
            ),
        );
        let early = timeout(Duration::from_millis(300), removed.next()).await;
        assert!(
            early.is_err(),
            "removed answered before the removal: {early:?}"
        );
        docker
            .remove_container(&id, None::<RemoveContainerOptions>)
            .await
            .expect("rm");
        match timeout(LIMIT, removed.next())
            .await
            .expect("removed in time")
        {
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => assert_eq!(code, 137),
            other => panic!("removed: {other:?}"),
        }

        // Sizes: a container's own layer and its whole root file system.
        let c = run_sleeper(&docker, "sized", Default::default()).await;
        let (_, _, code) = exec(
            &docker,
            &c,
            &["sh", "-c", "head -c 100000 /dev/zero > /big"],
        )
        .await;
        assert_eq!(code, 0);
        let ins = docker
            .inspect_container(
                &c,
                Some(InspectContainerOptionsBuilder::new().size(true).build()),
            )
            .await
            .expect("inspect size");
        let rw = ins.size_rw.expect("SizeRw");
        assert!(rw >= 100_000, "{rw}");
        assert!(ins.size_root_fs.expect("SizeRootFs") > rw);
        let listed = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .size(true)
                    .limit(1)
                    .build(),
            ))
            .await
            .expect("list size");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size_rw, Some(rw));

        // logs since/until: a window in time.
        let (_, _, _) = exec(&docker, &c, &["true"]).await;
        let logger = docker
            .create_container(
                None::<CreateContainerOptions>,
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&["sh", "-c", "echo early; sleep 2; echo late"])),
                    ..Default::default()
                },
            )
            .await
            .expect("create logger")
            .id;
        docker
            .start_container(&logger, None::<StartContainerOptions>)
            .await
            .expect("start logger");
        let _ = timeout(
            LIMIT,
            docker
                .wait_container(&logger, None::<WaitContainerOptions>)
                .collect::<Vec<_>>(),
        )
        .await
        .expect("logger exits");
        let all = split_output(
            docker.logs(
                &logger,
                Some(
                    LogsOptionsBuilder::new()
                        .stdout(true)
                        .timestamps(true)
                        .build(),
                ),
            ),
        )
        .await
        .0;
        let late_at = all
            .lines()
            .find(|l| l.ends_with(" late"))
            .and_then(|l| l.split(' ').next())
            .expect("late line");
        // `since` with a fractional second, as the CLI sends it.
        let secs = late_at.split('.').next().unwrap_or_default();
        let since = timeout(LIMIT, async {
            let (out, _) = split_output(docker.logs(
                &logger,
                Some(LogsOptions {
                    stdout: true,
                    since: rfc3339_secs(secs) as i32,
                    ..Default::default()
                }),
            ))
            .await;
            out
        })
        .await
        .expect("logs in time");
        assert_eq!(since, "late\n");

        docker
            .remove_container(
                &c,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
            .expect("rm");
        docker
            .remove_container(&logger, None::<RemoveContainerOptions>)
            .await
            .expect("rm logger");

        // The classic builder keeps no cache to prune; the answer is typed.
        let p = docker
            .prune_build(None::<PruneBuildOptions>)
            .await
            .expect("build prune");
        assert!(p.space_reclaimed.is_some(), "{p:?}");
    });
}

#[test]
fn commit_makes_an_image_from_the_changes_and_a_config() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let c = run_sleeper(&docker, "tocommit", Default::default()).await;
        let (_, _, code) = exec(
            &docker,
            &c,
            &["sh", "-c", "head -c 100000 /dev/zero > /big"],
        )
        .await;
        assert_eq!(code, 0);
        let committed = docker
            .commit_container(
                CommitContainerOptionsBuilder::new()
                    .container(&c)
                    .repo("sdk/committed")
                    .tag("v1")
                    .comment("from bollard")
                    .author("sdk test")
                    .build(),
                ContainerConfig {
                    cmd: Some(strings(&["cat", "/big"])),
                    labels: Some(labels(&[("committed", "yes")])),
                    ..Default::default()
                },
            )
            .await
            .expect("commit");
        let img = docker
            .inspect_image("sdk/committed:v1")
            .await
            .expect("inspect");
        assert_eq!(img.id, Some(committed.id));
        assert_eq!(img.comment.as_deref(), Some("from bollard"));
        assert_eq!(img.author.as_deref(), Some("sdk test"));
        let cfg = img.config.expect("config");
        assert_eq!(cfg.cmd, Some(strings(&["cat", "/big"])));
        assert_eq!(
            cfg.labels
                .and_then(|l| l.get("committed").cloned())
                .as_deref(),
            Some("yes")
        );
        assert_eq!(img.root_fs.and_then(|r| r.layers).map(|l| l.len()), Some(2));

        docker
            .remove_container(
                &c,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
            .expect("rm");
        docker
            .remove_image("sdk/committed:v1", None::<RemoveImageOptions>, None)
            .await
            .expect("rmi");
    });
}

#[test]
fn images_push_pull_and_distribution_through_a_local_registry() {
    let d = daemon();
    let reg = scratch();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let cfg = reg.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            reg.path().join("data").display()
        ),
    )
    .expect("registry config");
    let mut registry = std::process::Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry is installed (scripts/deps.sh)");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "docker-registry did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let repo = format!("127.0.0.1:{port}/sdk/pushed");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt().block_on(async {
            let docker = client(&d).await;
            docker
                .tag_image(
                    "busybox:latest",
                    Some(TagImageOptionsBuilder::new().repo(&repo).tag("v1").build()),
                )
                .await
                .expect("tag");
            let pushed: Vec<PushImageInfo> = timeout(
                Duration::from_secs(60),
                docker
                    .push_image(
                        &repo,
                        Some(PushImageOptionsBuilder::new().tag("v1").build()),
                        None,
                    )
                    .try_collect(),
            )
            .await
            .expect("push in time")
            .expect("push");
            let digest_line = pushed
                .iter()
                .filter_map(|p| p.status.as_deref())
                .find(|s| s.contains("digest: sha256:"))
                .unwrap_or_else(|| panic!("a digest line: {pushed:#?}"))
                .to_string();
            let digest = digest_line
                .split_whitespace()
                .find(|w| w.starts_with("sha256:"))
                .expect("digest")
                .to_string();

            let dist = docker
                .inspect_registry_image(&format!("{repo}:v1"), None)
                .await
                .expect("distribution inspect");
            assert_eq!(dist.descriptor.digest.as_deref(), Some(digest.as_str()));
            assert!(dist.descriptor.size.unwrap_or(0) > 0);
            assert!(
                dist.platforms
                    .iter()
                    .any(|p| p.architecture.as_deref() == Some("amd64")),
                "{dist:#?}"
            );

            let err = docker
                .inspect_registry_image(&format!("{repo}:nope"), None)
                .await
                .expect_err("no such tag");
            assert_eq!(status_of(&err), 404, "{err:?}");
            assert!(
                matches!(&err, BollardError::DockerResponseServerError { message, .. } if message == "manifest unknown: manifest unknown"),
                "{err:?}"
            );

            // Gone locally, then pulled back by tag: same digest, same image.
            let local = docker
                .inspect_image("busybox:latest")
                .await
                .expect("inspect");
            docker
                .remove_image(&format!("{repo}:v1"), None::<RemoveImageOptions>, None)
                .await
                .expect("untag");
            let pulled: Vec<CreateImageInfo> = timeout(
                Duration::from_secs(60),
                docker
                    .create_image(
                        Some(
                            CreateImageOptionsBuilder::new()
                                .from_image(&repo)
                                .tag("v1")
                                .build(),
                        ),
                        None,
                        None,
                    )
                    .try_collect(),
            )
            .await
            .expect("pull in time")
            .expect("pull");
            let text: Vec<&str> = pulled.iter().filter_map(|p| p.status.as_deref()).collect();
            assert!(
                text.iter()
                    .any(|s| s.contains(&format!("Digest: {digest}"))),
                "{text:?}"
            );
            assert!(
                text.iter().any(|s| s
                    .contains(&format!("Status: Downloaded newer image for {repo}:v1"))
                    || s.contains(&format!("Status: Image is up to date for {repo}:v1"))),
                "{text:?}"
            );
            let img = docker
                .inspect_image(&format!("{repo}:v1"))
                .await
                .expect("pulled");
            assert_eq!(img.id, local.id);
            assert!(
                img.repo_digests
                    .unwrap_or_default()
                    .contains(&format!("{repo}@{digest}")),
                "RepoDigests"
            );

            // A pull of a missing tag is a typed error (404 from the daemon).
            let err = timeout(
                Duration::from_secs(60),
                docker
                    .create_image(
                        Some(
                            CreateImageOptionsBuilder::new()
                                .from_image(&repo)
                                .tag("nope")
                                .build(),
                        ),
                        None,
                        None,
                    )
                    .try_collect::<Vec<_>>(),
            )
            .await
            .expect("pull in time")
            .expect_err("no such tag");
            assert_eq!(status_of(&err), 404, "{err:?}");
            docker
                .remove_image(&format!("{repo}:v1"), None::<RemoveImageOptions>, None)
                .await
                .expect("rmi");
        })
    }));
    let _ = registry.kill();
    let _ = registry.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn filters_options_and_replays_across_groups() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let t0 = now();

        // A volume of the local driver with mount options: a tmpfs.
        let v = docker
            .create_volume(VolumeCreateOptions {
                name: Some("tmpvol".into()),
                driver_opts: Some(labels(&[
                    ("type", "tmpfs"),
                    ("device", "tmpfs"),
                    ("o", "size=2m"),
                ])),
                ..Default::default()
            })
            .await
            .expect("tmpfs volume");
        assert_eq!(v.options.get("type").map(String::as_str), Some("tmpfs"));
        let c = run_sleeper(
            &docker,
            "optbox",
            ContainerCreateBody {
                labels: Some(labels(&[("probe", "misc")])),
                healthcheck: Some(HealthConfig {
                    test: Some(strings(&["CMD", "true"])),
                    interval: Some(200_000_000),
                    ..Default::default()
                }),
                host_config: Some(HostConfig {
                    binds: Some(strings(&["tmpvol:/t"])),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
        let (out, _, _) = exec(&docker, &c, &["sh", "-c", "grep ' /t ' /proc/mounts"]).await;
        assert!(out.starts_with("tmpfs /t tmpfs"), "{out}");
        assert!(out.contains("size=2048k"), "{out}");

        // Health shows in inspect.
        let mut health = None;
        for _ in 0..50 {
            let st = docker
                .inspect_container(&c, None::<InspectContainerOptions>)
                .await
                .expect("inspect")
                .state
                .expect("state");
            if st.health.as_ref().and_then(|h| h.status) == Some(HealthStatusEnum::HEALTHY) {
                health = st.health;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let health = health.expect("healthy");
        assert_eq!(health.failing_streak, Some(0));
        assert!(!health.log.unwrap_or_default().is_empty());

        // An exec created with a console size starts with it.
        let e = docker
            .create_exec(
                &c,
                ExecConfig {
                    attach_stdout: Some(true),
                    tty: Some(true),
                    console_size: Some(vec![17, 61]),
                    cmd: Some(strings(&["stty", "size"])),
                    ..Default::default()
                },
            )
            .await
            .expect("exec");
        let StartExecResults::Attached { output, .. } = docker
            .start_exec(
                &e.id,
                Some(StartExecOptions {
                    tty: true,
                    ..Default::default()
                }),
            )
            .await
            .expect("start")
        else {
            panic!("detached")
        };
        assert_eq!(split_output(output).await.0.trim(), "17 61");

        // images: filters and flags.
        let dangling = docker
            .list_images(Some(
                ListImagesOptionsBuilder::new()
                    .filters(&filters(&[("dangling", "true")]))
                    .build(),
            ))
            .await
            .expect("dangling");
        assert!(dangling.is_empty());
        let listed = docker
            .list_images(Some(
                ListImagesOptionsBuilder::new()
                    .all(true)
                    .digests(true)
                    .shared_size(true)
                    .build(),
            ))
            .await
            .expect("list all");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].shared_size, 0);

        // events: a label filter on containers, an image filter.
        let evs: Vec<EventMessage> = timeout(
            LIMIT,
            docker
                .events(Some(EventsOptions {
                    since: Some(t0.to_string()),
                    until: Some((now() + 1).to_string()),
                    filters: Some(filters(&[("label", "probe=misc"), ("event", "start")])),
                }))
                .try_collect(),
        )
        .await
        .expect("events in time")
        .expect("events");
        assert_eq!(evs.len(), 1, "{evs:#?}");
        assert_eq!(
            evs[0].actor.as_ref().and_then(|a| a.id.as_deref()),
            Some(c.as_str())
        );
        let exec_evs: Vec<EventMessage> = timeout(
            LIMIT,
            docker
                .events(Some(EventsOptions {
                    since: Some(t0.to_string()),
                    until: Some((now() + 1).to_string()),
                    filters: Some(filters(&[
                        ("container", "optbox"),
                        ("event", "exec_create"),
                    ])),
                }))
                .try_collect(),
        )
        .await
        .expect("events in time")
        .expect("events");
        assert!(!exec_evs.is_empty());
        assert!(exec_evs.iter().all(|e| e
            .action
            .as_deref()
            .is_some_and(|a| a.starts_with("exec_create"))));

        // networks: verbose inspect and the dangling filter.
        docker
            .create_network(NetworkCreateRequest {
                name: "unused".into(),
                ..Default::default()
            })
            .await
            .expect("network");
        let n = docker
            .inspect_network(
                "unused",
                Some(InspectNetworkOptionsBuilder::new().verbose(true).build()),
            )
            .await
            .expect("verbose inspect");
        assert_eq!(n.name.as_deref(), Some("unused"));
        let l = docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::new()
                    .filters(&filters(&[("dangling", "true")]))
                    .build(),
            ))
            .await
            .expect("dangling networks");
        let names: Vec<_> = l.into_iter().filter_map(|n| n.name).collect();
        assert_eq!(names, strings(&["unused"]));

        docker.remove_network("unused").await.expect("rm net");
        for id in [&c] {
            docker
                .remove_container(
                    id,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await
                .expect("rm");
        }
        docker
            .remove_volume("tmpvol", None::<RemoveVolumeOptions>)
            .await
            .expect("rm vol");
    });
}

#[test]
fn attach_with_logs_replays_a_stopped_containers_output() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let said = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name("said").build()),
                ContainerCreateBody {
                    image: Some("busybox:latest".into()),
                    cmd: Some(strings(&["sh", "-c", "echo to-out; echo to-err >&2"])),
                    ..Default::default()
                },
            )
            .await
            .expect("create")
            .id;
        docker
            .start_container(&said, None::<StartContainerOptions>)
            .await
            .expect("start");
        let _ = timeout(
            LIMIT,
            docker
                .wait_container(&said, None::<WaitContainerOptions>)
                .collect::<Vec<_>>(),
        )
        .await;
        let AttachContainerResults { output, .. } = docker
            .attach_container(
                &said,
                Some(
                    AttachContainerOptionsBuilder::new()
                        .logs(true)
                        .stdout(true)
                        .stderr(true)
                        .build(),
                ),
            )
            .await
            .expect("attach logs");
        assert_eq!(
            split_output(output).await,
            ("to-out\n".to_string(), "to-err\n".to_string())
        );

        docker
            .remove_container(&said, None::<RemoveContainerOptions>)
            .await
            .expect("rm");
    });
}

#[test]
fn image_list_leaves_the_container_count_to_system_df() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let c = run_sleeper(&docker, "user", Default::default()).await;
        let listed = docker
            .list_images(None::<ListImagesOptions>)
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].containers, -1, "not computed by /images/json");
        assert_eq!(listed[0].shared_size, -1, "not asked for");
        let df = docker.df(None::<DataUsageOptions>).await.expect("df");
        assert_eq!(df.images.expect("images")[0].containers, 1);
        docker
            .remove_container(
                &c,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
            .expect("rm");
    });
}

/// Seconds since the epoch of an RFC 3339 UTC time without fraction
/// (`2026-12-06T08:21:35`).
fn rfc3339_secs(t: &str) -> i64 {
    let num = |s: &str| s.parse::<i64>().expect("a number");
    let (date, time) = t.split_once('T').expect("a T");
    let d: Vec<i64> = date.split('-').map(num).collect();
    let h: Vec<i64> = time.trim_end_matches('Z').split(':').map(num).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + h[0] * 3600 + h[1] * 60 + h[2]
}
