//! One Dockerfile instruction applied to a stage: the metadata-only ones
//! (ENV, LABEL, CMD, EXPOSE, HEALTHCHECK, …) as config changes with a
//! history entry, the others handed to `run.rs` and `copy.rs`.

use super::*;

impl Run<'_> {
    pub(super) async fn dispatch(&mut self, st: &mut State, ins: &Instruction) -> Step {
        match &ins.command {
            Command::From { .. } => Err(invalid("FROM inside a stage")),
            Command::Env(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k)?;
                    let v = self.expand(st, v)?;
                    if k.is_empty() {
                        return Err(invalid("ENV names can not be blank"));
                    }
                    st.set_env(&k, &v);
                    shown.push(format!("{k}={v}"));
                }
                self.meta_step(st, &format!("ENV {}", shown.join(" ")))
                    .await
            }
            Command::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k)?;
                    let v = self.expand(st, v)?;
                    if k.is_empty() {
                        return Err(invalid("LABEL names can not be blank"));
                    }
                    st.config
                        .labels
                        .get_or_insert_with(HashMap::new)
                        .insert(k.clone(), v.clone());
                    shown.push(format!("{k}={v}"));
                }
                shown.sort();
                self.meta_step(st, &format!("LABEL {}", shown.join(" ")))
                    .await
            }
            Command::Arg(list) => {
                let mut shown = Vec::new();
                for (k, default) in list {
                    if self.opts.build_args.contains_key(k) {
                        self.consumed.insert(k.clone());
                    }
                    let given = self.opts.build_args.get(k).cloned().flatten();
                    let v = match (given, default) {
                        (Some(v), _) => Some(v),
                        (None, Some(d)) => Some(self.expand(st, d)?),
                        (None, None) => self.meta.get(k).cloned().flatten(),
                    };
                    st.args.insert(k.clone(), v);
                    shown.push(match default {
                        Some(d) => format!("{k}={d}"),
                        None => k.clone(),
                    });
                }
                self.meta_step(st, &format!("ARG {}", shown.join(" ")))
                    .await
            }
            Command::Cmd(a) => {
                let v = match a {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut v = st.shell();
                        v.push(s.clone());
                        v
                    }
                };
                st.config.cmd = Some(v.clone());
                st.cmd_set = true;
                self.meta_step(st, &format!("CMD {}", serde_json::to_string(&v)?))
                    .await
            }
            Command::Entrypoint(a) => {
                let v = match a {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut v = st.shell();
                        v.push(s.clone());
                        v
                    }
                };
                st.config.entrypoint = Some(v.clone());
                if !st.cmd_set {
                    st.config.cmd = None;
                }
                self.meta_step(st, &format!("ENTRYPOINT {}", serde_json::to_string(&v)?))
                    .await
            }
            Command::Shell(v) => {
                st.config.shell = Some(v.clone());
                self.meta_step(st, &format!("SHELL {}", serde_json::to_string(v)?))
                    .await
            }
            Command::Expose(ports) => {
                let mut shown = Vec::new();
                for p in ports {
                    let p = self.expand(st, p)?;
                    for k in expand_port(&p)? {
                        st.config
                            .exposed_ports
                            .get_or_insert_with(HashMap::new)
                            .insert(k, HashMap::new());
                    }
                    // moby's comment shows the ports as written.
                    shown.push(p);
                }
                self.meta_step(st, &format!("EXPOSE {}", shown.join(" ")))
                    .await
            }
            Command::User(u) => {
                let u = self.expand(st, u)?;
                st.config.user = Some(u.clone());
                self.meta_step(st, &format!("USER {u}")).await
            }
            Command::Volume(list) => {
                let mut shown = Vec::new();
                for v in list {
                    let v = self.expand(st, v)?;
                    if v.trim().is_empty() {
                        return Err(invalid("VOLUME specified can not be an empty string"));
                    }
                    st.config
                        .volumes
                        .get_or_insert_with(HashMap::new)
                        .insert(v.clone(), HashMap::new());
                    shown.push(v);
                }
                self.meta_step(st, &format!("VOLUME {}", human_list(&shown)))
                    .await
            }
            Command::StopSignal(s) => {
                let s = self.expand(st, s)?;
                crate::engine::signal::parse_signal(&s)?;
                st.config.stop_signal = Some(s.clone());
                self.meta_step(st, &format!("STOPSIGNAL {s}")).await
            }
            Command::Maintainer(m) => {
                let m = self.expand(st, m)?;
                st.spec["author"] = serde_json::Value::String(m.clone());
                self.meta_step(st, &format!("MAINTAINER {m}")).await
            }
            Command::Onbuild(t) => {
                st.config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(t.clone());
                self.meta_step(st, &format!("ONBUILD {t}")).await
            }
            Command::Healthcheck(h) => {
                let hc = health_config(h)?;
                let shown = serde_json::to_string(&hc)?;
                st.config.healthcheck = Some(hc);
                self.meta_step(st, &format!("HEALTHCHECK {shown}")).await
            }
            Command::Workdir(w) => self.workdir(st, w).await,
            Command::Run(a) => self.run(st, a).await,
            Command::Copy(c) => self.copy(st, c, false).await,
            Command::Add(c) => self.copy(st, c, true).await,
        }
    }

    pub(super) async fn workdir(&mut self, st: &mut State, w: &str) -> Step {
        let w = self.expand(st, w)?;
        let base = st.config.working_dir.clone().unwrap_or_default();
        let joined = if w.starts_with('/') {
            w.clone()
        } else {
            format!("/{}/{}", base.trim_matches('/'), w)
        };
        let path = berth_api::dockerignore::clean(&joined);
        st.config.working_dir = Some(path.clone());
        let created_by = format!("/bin/sh -c #(nop) WORKDIR {path}");
        let key = step_key(st, &created_by, "")?;
        if self.try_cache(st, &key, &created_by).await? {
            return Ok(());
        }
        // The directory is created (root-owned) when missing: a layer.
        let backend = self.backend.clone();
        let images = self.builder.images.clone();
        let image = st.image_id.clone();
        let parent = st.top_chain();
        let dir = self.builder.scratch_dir("workdir");
        let layer = blocking(move || {
            let s = Scratch::mount(&*backend, &image, dir)?;
            context::mkdir_all_in_root(&s.rw.merged, &path, (0, 0))?;
            s.rw.unmount();
            commit_step(&images, &s.rw, Upper::Scratch, parent.as_deref())
        })
        .await?;
        self.commit(st, &created_by, &key, layer, StepContainer::Created)
            .await?;
        self.say_id(st).await
    }

    /// BuildKit's `label:*` on the final image: a config change with no
    /// step and no history entry, as BuildKit's Dockerfile frontend does
    /// (the classic `labels` stay a visible LABEL step, as dockerd's).
    pub(super) fn apply_image_labels(&self, st: &mut State) -> Step {
        if self.extras.image_labels.is_empty() || st.image_id.is_empty() {
            return Ok(());
        }
        let labels = st.config.labels.get_or_insert_with(HashMap::new);
        for (k, v) in &self.extras.image_labels {
            labels.insert(k.clone(), v.clone());
        }
        let mut spec = st.spec.clone();
        spec["config"] = serde_json::to_value(&st.config)?;
        let bytes = serde_json::to_vec(&spec)?;
        // It stands in for the last step's image (the same layers and
        // history), so it takes that image's parent: the history's IDs,
        // found by walking parents, stay on their entries.
        let parent = self
            .builder
            .images
            .get(&st.image_id)
            .and_then(|i| i.parent.clone());
        let img = self
            .builder
            .images
            .create_child_image(&bytes, &[], parent.as_deref())?;
        st.image_id = img.id.clone();
        st.spec = serde_json::from_str(&img.raw_config)?;
        Ok(())
    }

    /// A metadata-only step: cache or a new config-only image.
    pub(super) async fn meta_step(&self, st: &mut State, desc: &str) -> Step {
        let created_by = format!("/bin/sh -c #(nop)  {desc}");
        let key = step_key(st, &created_by, "")?;
        if self.try_cache(st, &key, &created_by).await? {
            return Ok(());
        }
        self.commit(st, &created_by, &key, None, StepContainer::Created)
            .await?;
        self.say_id(st).await
    }
}

pub(super) fn health_config(h: &dockerfile::Health) -> Step<HealthConfig> {
    let test = match &h.cmd {
        None => vec!["NONE".to_string()],
        Some(Args::Exec(v)) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v.iter().cloned());
            t
        }
        Some(Args::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let dur = |name: &str, v: &Option<String>| -> Step<Option<i64>> {
        match v {
            None => Ok(None),
            Some(s) => {
                let ns = berth_api::duration::parse(s).map_err(|e| invalid(e.to_string()))?;
                if ns != 0 && ns < 1_000_000 {
                    return Err(invalid(format!("{name} {s:?} cannot be less than 1ms")));
                }
                Ok(Some(ns))
            }
        }
    };
    let retries = match &h.retries {
        None => None,
        Some(r) => Some(
            r.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| invalid(format!("invalid value for --retries: {r:?}")))?,
        ),
    };
    Ok(HealthConfig {
        test: Some(test),
        interval: dur("Interval", &h.interval)?,
        timeout: dur("Timeout", &h.timeout)?,
        start_period: dur("StartPeriod", &h.start_period)?,
        start_interval: dur("StartInterval", &h.start_interval)?,
        retries,
    })
}

/// `"80"`, `"80/udp"`, `"8000-8002"` → `80/tcp`, `80/udp`, `8000/tcp`…
pub(super) fn expand_port(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(EngineError::invalid(format!("invalid proto: {proto}")));
    }
    let bad = || EngineError::invalid(format!("invalid containerPort: {ports}"));
    let (a, b) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if b < a {
        return Err(bad());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

pub(super) fn human_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_expand() {
        assert_eq!(expand_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expand_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            expand_port("8000-8002").unwrap(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expand_port("x").is_err());
        assert!(expand_port("80/foo").is_err());
    }
}
