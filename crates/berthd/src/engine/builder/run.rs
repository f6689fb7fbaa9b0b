//! `RUN`: each step runs a real container from the previous step's image
//! (with the build's variables and the stage's shell), streams its output
//! and commits its rw layer as the next step's image.

use super::*;

/// The container behind a step's image, as moby records it (`Container`,
/// `ContainerConfig`; the Cmd is the step's `#(nop)` comment unless it ran).
pub(super) enum StepContainer {
    /// RUN: the step's container, with the Cmd moby saves (no entrypoint).
    Ran(String, Vec<String>),
    /// Metadata steps and WORKDIR: moby creates a container that never
    /// runs; creation completes its config (hostname, labels). Berth makes
    /// none, so its ID is made up.
    Created,
    /// COPY/ADD: moby makes no container at all.
    None,
}

pub(super) fn step_container(
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
            let id = crate::engine::ids::new_object_id();
            cc.hostname = Some(id[..12].to_string());
            cc.cmd = Some(comment_cmd(created_by));
            cc.labels.get_or_insert_with(HashMap::new);
            id
        }
    };
    Ok((id, serde_json::to_value(&cc)?))
}

/// Removes a RUN's container unless told to keep it (a failed RUN without
/// `--force-rm`), also when the build is dropped midway.
pub(super) struct ContainerGuard {
    backend: Arc<dyn Backend>,
    id: String,
    remove: bool,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.remove {
            return;
        }
        let backend = self.backend.clone();
        let id = self.id.clone();
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = backend.remove_step(&id).await;
            });
        }
    }
}

/// A RUN's stderr, shown in red as dockerd's classic builder does.
pub(super) fn colour(stderr: bool, text: String) -> String {
    if stderr {
        format!("\x1b[91m{text}\x1b[0m")
    } else {
        text
    }
}

impl Run<'_> {
    /// The environment a RUN sees: the config's, plus build args.
    pub(super) fn run_env(&self, st: &State) -> (Vec<String>, Vec<String>) {
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

    pub(super) async fn run(&mut self, st: &mut State, a: &Args) -> Step {
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
        let backend = self.backend.clone();
        let id = backend.create_step(StepConfig {
            image: st.image_id.clone(),
            argv: argv.clone(),
            env,
            user: st.config.user.clone(),
            working_dir: st.config.working_dir.clone(),
            network_mode: self.opts.network_mode.clone(),
            extra_hosts: self.opts.extra_hosts.clone(),
            shm_size: self.opts.shm_size,
        })?;
        // Removes the container on any early return (errors, the client
        // going away); a failed RUN keeps it unless --force-rm, as Docker.
        let mut guard = ContainerGuard {
            backend: backend.clone(),
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
                let _ = backend.remove_step(&id).await;
                self.out
                    .say(format!("Removing intermediate container {}\n", short(&id)))
                    .await?;
            }
            return Err(Fail::Run(
                run_failed(&argv, code, self.extras.buildkit_words),
                code,
            ));
        }
        let rw = backend.step_layer(&id);
        let parent = st.top_chain();
        let images = self.builder.images.clone();
        let layer =
            blocking(move || commit_step(&images, &rw, Upper::Container, parent.as_deref()))
                .await?;
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
            if let Err(e) = backend.remove_step(&id).await {
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
    pub(super) async fn run_container(&self, id: &str) -> Step<i64> {
        use tokio::io::AsyncReadExt;
        let Started { output, exit } = self.backend.clone().start_step(id.to_string()).await?;
        let mut ours = output;
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
        // Ends the attach, as the output has ended.
        drop(ours);
        pumped?;
        Ok(exit.await)
    }
}

/// A failed RUN's message: the classic builder's, or BuildKit's (the
/// argv joined with spaces, quoted as Go's `%q` does).
pub(super) fn run_failed(argv: &[String], code: i64, buildkit: bool) -> String {
    let cmd = argv.join(" ");
    if buildkit {
        let quoted = serde_json::to_string(&cmd).unwrap_or_else(|_| format!("\"{cmd}\""));
        format!("process {quoted} did not complete successfully: exit code: {code}")
    } else {
        format!("The command '{cmd}' returned a non-zero code: {code}")
    }
}

#[cfg(test)]
mod wording {
    use super::run_failed;

    #[test]
    fn a_failed_run_is_worded_per_builder() {
        let shell: Vec<String> = ["/bin/sh", "-c", "echo \"a\" && exit 3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            run_failed(&shell, 3, true),
            r#"process "/bin/sh -c echo \"a\" && exit 3" did not complete successfully: exit code: 3"#
        );
        assert_eq!(
            run_failed(&shell, 3, false),
            "The command '/bin/sh -c echo \"a\" && exit 3' returned a non-zero code: 3"
        );
        let exec = vec!["false".to_string()];
        assert_eq!(
            run_failed(&exec, 1, true),
            r#"process "false" did not complete successfully: exit code: 1"#
        );
    }
}
