use super::*;

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
