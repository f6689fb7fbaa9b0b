//! What a container looks like from outside: inspect, the `ps` summary
//! with its status text, `top`, and the counts `/info` shows.

use berth_api::duration;

use super::*;

impl Containers {
    pub fn inspect_container(&self, key: &str, size: bool) -> Result<ContainerInspectResponse> {
        let c = self.find(key)?;
        let r = c.snapshot();
        let p = self.paths(&r.id);
        let s = &r.state;
        let (size_rw, size_root) = if size {
            let rw = dir_size(&p.rw.upper);
            let img = self.images.get(&r.image_id).map(|i| i.size).unwrap_or(0);
            (Some(rw), Some(rw + img))
        } else {
            (None, None)
        };
        let mut gd = HashMap::new();
        if let Ok(l) = self.images.lower_dirs(&r.image_id) {
            gd.insert(
                "LowerDir".to_string(),
                l.iter()
                    .map(|x| x.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            );
        }
        gd.insert("UpperDir".into(), p.rw.upper.display().to_string());
        gd.insert("WorkDir".into(), p.rw.work.display().to_string());
        gd.insert("MergedDir".into(), p.rw.merged.display().to_string());
        // A container in another's network namespace uses that one's files.
        let files = r
            .host_config
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
            .and_then(|other| self.find(other).ok())
            .map(|o| self.paths(&o.id))
            .unwrap_or_else(|| self.paths(&r.id));
        let execs: Vec<String> = self
            .execs
            .read()
            .unwrap_or_else(|x| x.into_inner())
            .values()
            .filter(|e| e.container_id == r.id)
            .map(|e| e.id.clone())
            .collect();
        Ok(ContainerInspectResponse {
            id: Some(r.id.clone()),
            created: Some(r.created.clone()),
            path: Some(r.path.clone()),
            args: Some(r.args.clone()),
            state: Some(ContainerState {
                status: Some(match s.status {
                    Status::Created => ContainerStateStatusEnum::CREATED,
                    Status::Running => ContainerStateStatusEnum::RUNNING,
                    Status::Paused => ContainerStateStatusEnum::PAUSED,
                    Status::Restarting => ContainerStateStatusEnum::RESTARTING,
                    Status::Removing => ContainerStateStatusEnum::REMOVING,
                    Status::Exited => ContainerStateStatusEnum::EXITED,
                    Status::Dead => ContainerStateStatusEnum::DEAD,
                }),
                running: Some(s.status.is_running()),
                paused: Some(s.status == Status::Paused),
                restarting: Some(s.status == Status::Restarting),
                oom_killed: Some(s.oom_killed),
                dead: Some(s.status == Status::Dead),
                pid: Some(s.pid),
                exit_code: Some(s.exit_code),
                error: Some(s.error.clone()),
                started_at: Some(s.started_at.clone().unwrap_or_else(|| ZERO_TIME.into())),
                finished_at: Some(s.finished_at.clone().unwrap_or_else(|| ZERO_TIME.into())),
                health: r.health.clone(),
            }),
            image: Some(r.image_id.clone()),
            resolv_conf_path: Some(files.resolv.display().to_string()),
            hostname_path: Some(files.hostname.display().to_string()),
            hosts_path: Some(files.hosts.display().to_string()),
            log_path: Some(self.log_path(&r, &p.log)),
            name: Some(format!("/{}", r.name)),
            restart_count: Some(r.restart_count),
            driver: Some("overlay2".into()),
            platform: Some(r.platform.clone()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: if execs.is_empty() { None } else { Some(execs) },
            host_config: Some(HostConfig {
                // The registered links, in dockerd's form, not the request's.
                links: self.inspect_links(&r),
                ulimits: super::ulimits::merged(
                    r.host_config.ulimits.as_ref(),
                    &self.live.get().default_ulimits,
                ),
                ..reported_host_config(&r.host_config)
            }),
            graph_driver: Some(DriverData {
                name: "overlay2".into(),
                data: gd,
            }),
            size_rw,
            size_root_fs: size_root,
            mounts: Some(mounts::mount_points(&r)),
            config: Some(r.config.clone()),
            network_settings: Some(self.network_settings(&r)),
            ..Default::default()
        })
    }

    pub fn network_settings(&self, r: &Record) -> NetworkSettings {
        let running = r.state.status.is_running();
        let mut ports: HashMap<String, Option<Vec<berth_api::models::PortBinding>>> =
            HashMap::new();
        // dockerd reads the map from the live sandbox: `{}` unless running.
        if running {
            for k in r.config.exposed_ports.clone().unwrap_or_default().keys() {
                ports.insert(k.clone(), None);
            }
            for (k, v) in r.ports.clone().unwrap_or_default() {
                ports.insert(k, v);
            }
        }
        // The legacy top-level fields describe the default bridge only.
        let b = r.endpoints.get("bridge").cloned().unwrap_or_default();
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        NetworkSettings {
            bridge: Some(String::new()),
            sandbox_id: Some(if running { r.id.clone() } else { String::new() }),
            sandbox_key: Some(if running {
                self.paths(&r.id).netns.display().to_string()
            } else {
                String::new()
            }),
            hairpin_mode: Some(false),
            link_local_ipv6_address: Some(String::new()),
            link_local_ipv6_prefix_len: Some(0),
            ports: Some(ports),
            secondary_ip_addresses: None,
            secondary_ipv6_addresses: None,
            endpoint_id: Some(s(&b.endpoint_id)),
            gateway: Some(s(&b.gateway)),
            global_ipv6_address: Some(String::new()),
            global_ipv6_prefix_len: Some(0),
            ip_address: Some(s(&b.ip_address)),
            ip_prefix_len: Some(b.ip_prefix_len.unwrap_or(0)),
            ipv6_gateway: Some(String::new()),
            mac_address: Some(s(&b.mac_address)),
            networks: Some(
                r.endpoints
                    .iter()
                    .map(|(k, v)| (k.clone(), (**v).clone()))
                    .collect(),
            ),
        }
    }

    pub fn summary(&self, r: &Record, size: bool) -> ContainerSummary {
        // dockerd quotes arguments holding a space: `sh -c 'exit 3'`.
        let mut command = r.path.clone();
        for a in &r.args {
            command.push(' ');
            if a.contains(' ') {
                command.push_str(&format!("'{a}'"));
            } else {
                command.push_str(a);
            }
        }
        let created = parse_time(&r.created).map(|t| t.timestamp()).unwrap_or(0);
        let (size_rw, size_root) = if size {
            let rw = dir_size(&self.paths(&r.id).rw.upper);
            let img = self.images.get(&r.image_id).map(|i| i.size).unwrap_or(0);
            (Some(rw), Some(rw + img))
        } else {
            (None, None)
        };
        ContainerSummary {
            id: Some(r.id.clone()),
            names: Some(vec![format!("/{}", r.name)]),
            image: Some(r.config.image.clone().unwrap_or_default()),
            image_id: Some(r.image_id.clone()),
            command: Some(command),
            created: Some(created),
            ports: Some(summary_ports(r)),
            size_rw,
            size_root_fs: size_root,
            labels: Some(r.config.labels.clone().unwrap_or_default()),
            state: Some(match r.state.status {
                Status::Created => ContainerSummaryStateEnum::CREATED,
                Status::Running => ContainerSummaryStateEnum::RUNNING,
                Status::Paused => ContainerSummaryStateEnum::PAUSED,
                Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
                Status::Removing => ContainerSummaryStateEnum::REMOVING,
                Status::Exited => ContainerSummaryStateEnum::EXITED,
                Status::Dead => ContainerSummaryStateEnum::DEAD,
            }),
            status: Some(status_text(r)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: r.host_config.network_mode.clone(),
                annotations: r.host_config.annotations.clone(),
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(
                    r.endpoints
                        .iter()
                        .map(|(n, ep)| (n.clone(), listed_endpoint(ep)))
                        .collect(),
                ),
            }),
            mounts: Some(mounts::mount_points(r)),
            ..Default::default()
        }
    }

    pub fn top(&self, key: &str, ps_args: &str) -> Result<ContainerTopResponse> {
        let c = self.find(key)?;
        let r = c.snapshot();
        if !r.state.status.is_running() {
            return Err(super::state::not_running(&r.id));
        }
        let pids = crate::engine::cgroups::pids(&r.id);
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| EngineError::internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(EngineError::internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or("");
        let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
        let pid_col = titles
            .iter()
            .position(|t| t == "PID")
            .ok_or_else(|| EngineError::internal("Couldn't find PID field in ps output"))?;
        let mut procs = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < titles.len() {
                continue;
            }
            let Ok(pid) = fields[pid_col].parse::<i64>() else {
                continue;
            };
            if !pids.contains(&pid) {
                continue;
            }
            // The last column keeps its spaces (the command line).
            let mut row: Vec<String> = fields[..titles.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect();
            row.push(fields[titles.len() - 1..].join(" "));
            procs.push(row);
        }
        Ok(ContainerTopResponse {
            titles: Some(titles),
            processes: Some(procs),
        })
    }

    /// Counts for `/info`.
    pub fn container_counts(&self) -> (i64, i64, i64) {
        let mut total = 0;
        let mut running = 0;
        let mut paused = 0;
        for c in self.all() {
            total += 1;
            match c.status() {
                Status::Running | Status::Restarting => running += 1,
                Status::Paused => paused += 1,
                _ => {}
            }
        }
        (total, running, paused)
    }
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.to_utc())
}

fn since(t: &Option<String>) -> i64 {
    t.as_deref()
        .and_then(parse_time)
        .map(|t| (chrono::Utc::now() - t).num_seconds())
        .unwrap_or(0)
}

/// The `Status` column text, built by the daemon as Docker does.
pub fn status_text(r: &Record) -> String {
    let s = &r.state;
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => match health::status_suffix(r.health.as_ref()) {
            Some(h) => format!("Up {} {h}", duration::human(since(&s.started_at))),
            None => format!("Up {}", duration::human(since(&s.started_at))),
        },
        Status::Paused => format!("Up {} (Paused)", duration::human(since(&s.started_at))),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            duration::human(since(&s.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => {
            if s.finished_at.is_none() {
                "Exited".into()
            } else {
                format!(
                    "Exited ({}) {} ago",
                    s.exit_code,
                    duration::human(since(&s.finished_at))
                )
            }
        }
    }
}

/// `ps`'s Ports: published bindings while running, exposed ports otherwise.
fn summary_ports(r: &Record) -> Vec<berth_api::models::Port> {
    use berth_api::models::{Port, PortTypeEnum};
    let mut out = Vec::new();
    let running = r.state.status.is_running();
    // Ports exist while the container has its network (dockerd lists
    // none for created or stopped containers, exposed or not).
    if !running {
        return out;
    }
    let published = r.ports.clone().unwrap_or_default();
    let mut keys: Vec<String> = r
        .config
        .exposed_ports
        .clone()
        .unwrap_or_default()
        .keys()
        .cloned()
        .collect();
    for k in published.keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys.sort();
    for k in keys {
        let (p, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
        let Ok(private) = p.parse::<u16>() else {
            continue;
        };
        let typ = match proto {
            "udp" => PortTypeEnum::UDP,
            "sctp" => PortTypeEnum::SCTP,
            _ => PortTypeEnum::TCP,
        };
        match published.get(&k).cloned().flatten() {
            Some(binds) if !binds.is_empty() => {
                for b in binds {
                    out.push(Port {
                        ip: b.host_ip.clone(),
                        private_port: private,
                        public_port: b.host_port.as_deref().and_then(|x| x.parse().ok()),
                        typ: Some(typ),
                    });
                }
            }
            _ => out.push(Port {
                ip: None,
                private_port: private,
                public_port: None,
                typ: Some(typ),
            }),
        }
    }
    out
}

/// An endpoint as container lists show it: dockerd copies the addresses and
/// the IPAM config into its list view, not the aliases, links or options.
fn listed_endpoint(
    ep: &berth_api::models::EndpointSettings,
) -> berth_api::models::EndpointSettings {
    berth_api::models::EndpointSettings {
        ipam_config: ep.ipam_config.clone(),
        network_id: ep.network_id.clone(),
        endpoint_id: ep.endpoint_id.clone(),
        gateway: ep.gateway.clone(),
        ip_address: ep.ip_address.clone(),
        ip_prefix_len: ep.ip_prefix_len,
        ipv6_gateway: ep.ipv6_gateway.clone(),
        global_ipv6_address: ep.global_ipv6_address.clone(),
        global_ipv6_prefix_len: ep.global_ipv6_prefix_len,
        mac_address: ep.mac_address.clone(),
        gw_priority: ep.gw_priority,
        ..Default::default()
    }
}

/// The `HostConfig` dockerd reports: what was asked, plus the values its
/// create fills in (runtime, default masked and read-only paths) and its
/// "unset" spelling (`null`) for swappiness and the pids limit.
fn reported_host_config(hc: &HostConfig) -> HostConfig {
    let mut hc = hc.clone();
    if hc.runtime.as_deref().unwrap_or("").is_empty() {
        hc.runtime = Some("runc".into());
    }
    if hc.memory_swappiness == Some(-1) {
        hc.memory_swappiness = None;
    }
    // moby's create defaults it on Linux.
    hc.oom_kill_disable.get_or_insert(false);
    // A fixed-size Go array: always `[h, w]`.
    hc.console_size.get_or_insert_with(|| vec![0, 0]);
    if hc.pids_limit.is_some_and(|p| p <= 0) {
        hc.pids_limit = None;
    }
    let unconfined = hc.privileged == Some(true)
        || hc
            .security_opt
            .iter()
            .flatten()
            .any(|o| o.replace(':', "=") == "systempaths=unconfined");
    if !unconfined && (hc.masked_paths.is_none() || hc.readonly_paths.is_none()) {
        let (masked, readonly) = berth_runtime::default_path_lists();
        hc.masked_paths.get_or_insert(masked);
        hc.readonly_paths.get_or_insert(readonly);
    }
    hc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_endpoints_carry_addresses_not_aliases() {
        let ep = berth_api::models::EndpointSettings {
            aliases: Some(vec!["a".into()]),
            ip_address: Some("10.0.0.2".into()),
            network_id: Some("n".into()),
            dns_names: Some(vec!["x".into()]),
            ..Default::default()
        };
        let l = super::listed_endpoint(&ep);
        assert_eq!(l.aliases, None);
        assert_eq!(l.dns_names, None);
        assert_eq!(l.ip_address.as_deref(), Some("10.0.0.2"));
        assert_eq!(l.network_id.as_deref(), Some("n"));
    }

    #[test]
    fn status_text_matches_docker() {
        let mut r = Record::default();
        assert_eq!(status_text(&r), "Created");
        r.state.status = Status::Exited;
        r.state.exit_code = 3;
        r.state.finished_at = Some(now());
        assert_eq!(status_text(&r), "Exited (3) Less than a second ago");
        r.state.status = Status::Running;
        r.state.started_at =
            Some((chrono::Utc::now() - chrono::Duration::seconds(36)).to_rfc3339());
        assert_eq!(status_text(&r), "Up 36 seconds");
    }

    #[test]
    fn reported_host_config_has_dockerds_filled_values() {
        let asked = HostConfig {
            memory_swappiness: Some(-1),
            pids_limit: Some(0),
            ..Default::default()
        };
        let hc = super::reported_host_config(&asked);
        assert_eq!(hc.runtime.as_deref(), Some("runc"));
        assert_eq!(hc.memory_swappiness, None);
        assert_eq!(hc.pids_limit, None);
        assert!(hc
            .masked_paths
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(hc
            .readonly_paths
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        let privileged = HostConfig {
            privileged: Some(true),
            runtime: Some("io.containerd.runc.v2".into()),
            pids_limit: Some(50),
            ..Default::default()
        };
        let hc = super::reported_host_config(&privileged);
        assert_eq!(hc.runtime.as_deref(), Some("io.containerd.runc.v2"));
        assert_eq!(hc.pids_limit, Some(50));
        assert_eq!(hc.masked_paths, None);
    }
}
