use super::*;

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
        let output = start_attached_tty(&docker, &e.id).await;
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
        wait_exited(&docker, &id).await;
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
        wait_exited(&docker, &said).await;
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
