//! `POST /containers/create`: the request checked and completed with the
//! image's config and dockerd's effective defaults, the record made, the
//! name reserved, the mount plan made, the endpoints chosen.

use super::*;
use crate::engine::signal::parse_signal;

pub struct CreateOptions {
    pub name: Option<String>,
    pub platform: Option<String>,
}

impl Containers {
    pub fn create_container(
        &self,
        opts: CreateOptions,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>)> {
        let t0 = std::time::Instant::now();
        let image_ref = body.image.clone().unwrap_or_default();
        if image_ref.is_empty() {
            return Err(EngineError::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        let image = self.images.resolve(&image_ref)?;
        if let Some(p) = opts.platform.as_deref().filter(|p| !p.is_empty()) {
            let want: Vec<&str> = p.split('/').collect();
            let (os, arch) = (
                want.first().copied().unwrap_or(""),
                want.get(1).copied().unwrap_or(""),
            );
            if os != image.config.os || (!arch.is_empty() && arch != image.config.architecture) {
                return Err(EngineError::not_found(format!(
                    "image with reference {image_ref} was found but its platform ({}/{}) does not match the specified platform ({p})",
                    image.config.os, image.config.architecture
                )));
            }
        }
        let mut host_config = body.host_config.clone().unwrap_or_default();
        let mut config = ContainerConfig {
            hostname: body.hostname.clone(),
            domainname: body.domainname.clone(),
            user: body.user.clone(),
            attach_stdin: body.attach_stdin,
            attach_stdout: body.attach_stdout,
            attach_stderr: body.attach_stderr,
            exposed_ports: body.exposed_ports.clone(),
            tty: body.tty,
            open_stdin: body.open_stdin,
            stdin_once: body.stdin_once,
            env: body.env.clone(),
            cmd: body.cmd.clone(),
            healthcheck: body.healthcheck.clone(),
            args_escaped: body.args_escaped,
            image: Some(image_ref.clone()),
            volumes: body.volumes.clone(),
            working_dir: body.working_dir.clone(),
            entrypoint: body.entrypoint.clone(),
            network_disabled: body.network_disabled,
            mac_address: body.mac_address.clone(),
            on_build: body.on_build.clone(),
            labels: body.labels.clone(),
            stop_signal: body.stop_signal.clone(),
            stop_timeout: body.stop_timeout,
            shell: body.shell.clone(),
        };
        merge_image_config(&mut config, image.config.config.as_ref());
        if config
            .entrypoint
            .as_ref()
            .is_some_and(|e| e.len() == 1 && e[0].is_empty())
        {
            config.entrypoint = Some(vec![]);
        }
        // moby's merge makes `Labels` a map; `Env` and `Volumes` stay nil
        // (`null`) when neither the request nor the image has any.
        config.labels.get_or_insert_with(HashMap::new);
        if config.volumes.as_ref().is_some_and(|v| v.is_empty()) {
            config.volumes = None;
        }
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(EngineError::invalid("No command specified"));
        }
        links::check_mode(&host_config)?;
        validate::network_mode(&body, &host_config)?;
        validate::env(body.env.as_deref())?;
        self.validate_host_config(&mut host_config, &config)?;
        let warnings = fill_effective_defaults(
            &mut host_config,
            crate::engine::host::cgroup_version(),
            crate::engine::host::swap_limit_supported(),
        );
        let links = self.register_links(&host_config)?;
        let endpoints = self.initial_endpoints(
            host_config.network_mode.as_deref().unwrap_or("default"),
            &body
                .networking_config
                .as_ref()
                .and_then(|n| n.endpoints_config.clone())
                .unwrap_or_default(),
            body.mac_address.as_deref(),
        )?;

        let id = crate::engine::ids::new_object_id();
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            // Docker uses the short ID unless the network mode shares a UTS.
            if host_config.network_mode.as_deref() != Some("host") {
                config.hostname = Some(id[..12].to_string());
            }
        }
        let rec_base = Record {
            id: id.clone(),
            name: String::new(),
            created: now(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config,
            image_id: image.id.clone(),
            platform: "linux".into(),
            state: RunState {
                status: Status::Created,
                ..Default::default()
            },
            restart_count: 0,
            has_been_started: false,
            endpoints,
            ports: None,
            manually_stopped: false,
            health: None,
            mounts: vec![],
            links,
            paused_for_commit: false,
        };
        // Reserve the name and insert under one index lock.
        let c = {
            let mut idx = self.write();
            let name = match &opts.name {
                Some(n) if !n.is_empty() => {
                    let n = names::validate(n)?;
                    if let Some(other) = idx.names.get(&n) {
                        return Err(EngineError::conflict(format!(
                            "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                        )));
                    }
                    n
                }
                _ => {
                    let mut n = names::generate(0);
                    let mut retry = 0;
                    while idx.names.contains_key(&n) {
                        retry += 1;
                        n = names::generate(retry);
                    }
                    n
                }
            };
            let mut rec = rec_base;
            rec.name = name.clone();
            let c = Container::new(rec);
            idx.names.insert(name, id.clone());
            idx.by_id.insert(id.clone(), c.clone());
            c
        };
        let paths = self.paths(&id);
        let lap = |what: &str| super::start::lap("create", &id, t0, what);
        lap("checked");
        let made = (|| -> Result<()> {
            std::fs::create_dir_all(&paths.dir)?;
            paths.rw.prepare()?;
            self.plan_mounts(&c)?;
            lap("prepared");
            self.persist(&c)
        })();
        if let Err(e) = made {
            {
                let mut idx = self.write();
                idx.by_id.remove(&id);
                idx.names.retain(|_, v| v != &id);
            }
            self.remove_anonymous_volumes(&c.snapshot());
            let _ = std::fs::remove_dir_all(&paths.dir);
            return Err(e);
        }
        lap("recorded");
        self.container_event(&c.snapshot(), "create", &[]);
        crate::engine::metrics::get().container_action("create", t0.elapsed());
        Ok((id, warnings))
    }

    fn validate_host_config(&self, hc: &mut HostConfig, cfg: &ContainerConfig) -> Result<()> {
        let mode = hc.network_mode.clone().unwrap_or_default();
        match mode.as_str() {
            "" | "default" | "none" | "host" => {}
            m if m.starts_with("container:") => {
                let other = &m["container:".len()..];
                self.find(other)
                    .map_err(|_| EngineError::not_found(format!("No such container: {other}")))?;
            }
            other => {
                self.networks.find(other)?;
            }
        }
        if hc.network_mode.is_none() {
            hc.network_mode = Some("default".into());
        }
        // The daemon's default driver (and, for that driver, its options)
        // where the container names none, as dockerd merges them.
        let named = hc.log_config.as_ref().and_then(|l| l.typ.clone());
        let named = named.filter(|n| !n.is_empty());
        let log_driver = named
            .clone()
            .unwrap_or_else(|| self.config.log_driver.clone());
        let mut log_opts = hc.log_config.as_ref().and_then(|l| l.config.clone());
        let merge = log_driver == self.config.log_driver && !self.config.log_opts.is_empty();
        if merge {
            let opts = log_opts.get_or_insert_with(HashMap::new);
            for (k, v) in &self.config.log_opts {
                opts.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let driver = crate::engine::logging::lookup(&log_driver, &self.plugins)?;
        driver.validate_options(log_opts.as_ref().unwrap_or(&HashMap::new()))?;
        if named.is_none() || merge {
            hc.log_config = Some(HostConfigLogConfig {
                typ: Some(driver.name().into()),
                config: Some(log_opts.unwrap_or_default()),
            })
        }
        if let Some(sig) = cfg.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            parse_signal(sig)?;
        }
        validate::resources(&validate::Limits {
            memory: hc.memory,
            memory_reservation: hc.memory_reservation,
            memory_swap: hc.memory_swap,
            nano_cpus: hc.nano_cpus,
            cpuset_cpus: hc.cpuset_cpus.as_deref(),
            cpuset_mems: hc.cpuset_mems.as_deref(),
            blkio_weight: hc.blkio_weight,
            oom_score_adj: hc.oom_score_adj,
        })?;
        if let Some(p) = &hc.port_bindings {
            validate::port_bindings(p)?;
        }
        if let Some(h) = &cfg.healthcheck {
            validate::healthcheck(h)?;
        }
        if hc.init == Some(true) && self.init_binary().is_none() {
            return Err(EngineError::invalid(
                "--init: berth-init was not found next to berthd",
            ));
        }
        if hc.restart_policy.is_none() {
            hc.restart_policy = Some(berth_api::models::RestartPolicy {
                name: Some(berth_api::models::RestartPolicyNameEnum::NO),
                maximum_retry_count: Some(0),
            });
        }
        validate::restart_policy(hc)?;
        // Namespaces joined from another container: it must exist now.
        for mode in [hc.pid_mode.as_deref(), hc.ipc_mode.as_deref()] {
            if let Some(other) = mode.and_then(|m| m.strip_prefix("container:")) {
                self.find(other)
                    .map_err(|_| EngineError::invalid(format!("No such container: {other}")))?;
            }
        }
        validate::create_settings(hc, cfg.working_dir.as_deref())?;
        match hc.runtime.as_deref().unwrap_or("") {
            "" => hc.runtime = Some(validate::DEFAULT_RUNTIME.into()),
            r => {
                let listed: Vec<String> =
                    super::RUNTIMES.iter().map(|(n, _)| n.to_string()).collect();
                if !validate::runtime_known(r, &listed) {
                    return Err(EngineError::invalid(format!(
                        "Unknown runtime specified {r}"
                    )));
                }
            }
        }
        // Docker stores the effective default.
        if hc.shm_size.unwrap_or(0) == 0 {
            hc.shm_size = Some(64 * 1024 * 1024);
        }
        Ok(())
    }
}

/// Merges the image's config under the user's, as Docker does at create.
fn merge_image_config(cfg: &mut ContainerConfig, img: Option<&berth_api::models::ImageConfig>) {
    let Some(img) = img else { return };
    if cfg.user.as_deref().unwrap_or("").is_empty() {
        cfg.user = img.user.clone();
    }
    if let Some(ip) = &img.exposed_ports {
        let e = cfg.exposed_ports.get_or_insert_with(HashMap::new);
        for (k, v) in ip {
            e.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // Image env first; the container's entries override by key.
    let mut env: Vec<String> = img.env.clone().unwrap_or_default();
    for e in cfg.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    // moby: no env of the container's own means the image's, nil included.
    cfg.env = if env.is_empty() {
        img.env.clone()
    } else {
        Some(env)
    };
    if cfg.labels.as_ref().is_none_or(|l| l.is_empty()) {
        cfg.labels = img.labels.clone();
    } else if let Some(il) = &img.labels {
        let l = cfg.labels.get_or_insert_with(HashMap::new);
        for (k, v) in il {
            l.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // `--entrypoint ""` arrives as `[""]`: no entrypoint at all, not the image's.
    if cfg
        .entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        cfg.entrypoint = Some(vec![]);
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            cfg.cmd = img.cmd.clone();
        }
    } else if cfg.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        cfg.entrypoint = img.entrypoint.clone();
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            cfg.cmd = img.cmd.clone();
        }
    }
    if cfg.working_dir.as_deref().unwrap_or("").is_empty() {
        cfg.working_dir = img.working_dir.clone();
    }
    if let Some(iv) = &img.volumes {
        let v = cfg.volumes.get_or_insert_with(HashMap::new);
        for (k, x) in iv {
            v.entry(k.clone()).or_insert_with(|| x.clone());
        }
    }
    if cfg.stop_signal.as_deref().unwrap_or("").is_empty() {
        cfg.stop_signal = img.stop_signal.clone();
    }
    if cfg.healthcheck.is_none() {
        cfg.healthcheck = img.healthcheck.clone();
    }
    if cfg.on_build.is_none() {
        cfg.on_build = img.on_build.clone();
    }
    if cfg.shell.is_none() {
        cfg.shell = img.shell.clone();
    }
}

/// The defaults dockerd's create stores in `HostConfig` (so inspect shows
/// them), which the start then applies as stored; returns the create's
/// warnings.
fn fill_effective_defaults(
    hc: &mut HostConfig,
    cgroup: crate::engine::host::CgroupVersion,
    swap_limit: bool,
) -> Vec<String> {
    use crate::engine::host::CgroupVersion;
    use berth_api::models::HostConfigCgroupnsModeEnum as Cg;
    let mut warnings = Vec::new();
    // dockerd's default-ipc-mode.
    if hc.ipc_mode.as_deref().unwrap_or("").is_empty() {
        hc.ipc_mode = Some("private".into());
    }
    // dockerd's default-cgroupns-mode: private only on a pure cgroup v2 host.
    if matches!(hc.cgroupns_mode, None | Some(Cg::EMPTY)) {
        hc.cgroupns_mode = Some(match cgroup {
            CgroupVersion::V2 => Cg::PRIVATE,
            CgroupVersion::V1 => Cg::HOST,
        });
    }
    // A memory limit alone allows as much swap again.
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        if hc.memory_swap.unwrap_or(0) == 0 {
            hc.memory_swap = Some(m.saturating_mul(2));
        }
        if hc.memory_swap.unwrap_or(0) > 0 && !swap_limit {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
            hc.memory_swap = Some(-1);
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    #[test]
    fn create_fills_dockerds_effective_defaults() {
        use crate::engine::host::CgroupVersion;
        use berth_api::models::{HostConfig, HostConfigCgroupnsModeEnum as Cg};
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            ..Default::default()
        };
        assert!(super::fill_effective_defaults(&mut hc, CgroupVersion::V1, true).is_empty());
        assert_eq!(hc.memory_swap, Some(128 << 20));
        assert_eq!(hc.ipc_mode.as_deref(), Some("private"));
        assert_eq!(hc.cgroupns_mode, Some(Cg::HOST));

        // Asked values stay; v2 defaults to a private cgroup namespace.
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            ipc_mode: Some("host".into()),
            ..Default::default()
        };
        super::fill_effective_defaults(&mut hc, CgroupVersion::V2, true);
        assert_eq!(hc.memory_swap, Some(-1));
        assert_eq!(hc.ipc_mode.as_deref(), Some("host"));
        assert_eq!(hc.cgroupns_mode, Some(Cg::PRIVATE));

        // Without swap accounting: no swap limit, and dockerd's warning.
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            ..Default::default()
        };
        let w = super::fill_effective_defaults(&mut hc, CgroupVersion::V1, false);
        assert_eq!(hc.memory_swap, Some(-1));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("Your kernel does not support swap limit"));

        // No memory limit: no swap limit either.
        let mut hc = HostConfig::default();
        super::fill_effective_defaults(&mut hc, CgroupVersion::V1, false);
        assert_eq!(hc.memory_swap, None);
    }
}
