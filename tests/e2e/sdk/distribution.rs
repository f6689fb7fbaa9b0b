use super::*;

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
