use super::*;

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
