use super::*;

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
        let output = start_attached_tty(&docker, &e.id).await;
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
