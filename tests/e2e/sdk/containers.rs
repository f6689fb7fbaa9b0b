use super::*;

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
