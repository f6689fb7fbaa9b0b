use super::*;

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
