//! [`ContainerFlags`] → the create body: Config, HostConfig and
//! NetworkingConfig, each field as the docker CLI fills it.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use berth_api::units::ram_in_bytes;
use serde_json::{json, Map, Value};

use super::files::{kv_map, read_env, read_labels};
use super::values::*;
use super::{set, set_list, set_opt, ContainerFlags, CreateSpec};

impl ContainerFlags {
    /// The create body for `IMAGE [COMMAND] [ARG...]`. `detach` is `run -d`
    /// (nothing attached).
    pub fn build(&self, argv: &[String], detach: bool) -> anyhow::Result<CreateSpec> {
        let (image, cmd) = argv
            .split_first()
            .ok_or_else(|| anyhow!("requires at least 1 argument"))?;
        if image.is_empty() {
            bail!("invalid reference format");
        }
        let mut attach = [false; 3];
        for a in &self.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => attach[0] = true,
                "stdout" => attach[1] = true,
                "stderr" => attach[2] = true,
                _ => bail!("invalid argument {a:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"),
            }
        }
        if self.interactive {
            attach[0] = true;
        }
        if self.attach.is_empty() {
            attach[1] = true;
            attach[2] = true;
        }
        if detach {
            if !self.attach.is_empty() {
                bail!("Conflicting options: -a and -d");
            }
            attach = [false; 3];
        }
        let mut body = self.config(image, cmd)?;
        set(&mut body, "AttachStdin", attach[0]);
        set(&mut body, "AttachStdout", attach[1]);
        set(&mut body, "AttachStderr", attach[2]);
        // As docker: stdin closes when the attached client's input ends.
        set(&mut body, "StdinOnce", self.interactive && attach[0]);
        let mut hc = self.host_config()?;
        if self.tty {
            if let Some((h, w)) = crate::term::console_size() {
                set(&mut hc, "ConsoleSize", vec![h, w]);
            }
        }
        let network = self.network.clone().unwrap_or_else(|| "default".into());
        set(&mut hc, "NetworkMode", network.clone());
        set(&mut body, "HostConfig", hc);
        set(&mut body, "NetworkingConfig", self.networking(&network)?);
        Ok(CreateSpec {
            body: Value::Object(body),
            name: self.name.clone(),
            platform: self.platform.clone(),
            image: image.clone(),
            attach_stdin: attach[0],
            attach_stdout: attach[1],
            attach_stderr: attach[2],
        })
    }

    /// The `Config` part (top level of the create body).
    fn config(&self, image: &str, cmd: &[String]) -> anyhow::Result<Map<String, Value>> {
        let mut c = Map::new();
        set(&mut c, "Image", image);
        set_opt(&mut c, "Hostname", self.hostname.clone());
        set_opt(&mut c, "Domainname", self.domainname.clone());
        set_opt(&mut c, "User", self.user.clone());
        set(&mut c, "Tty", self.tty);
        set(&mut c, "OpenStdin", self.interactive);
        let env = read_env(&self.env_file, &self.env)?;
        set_list(&mut c, "Env", &env);
        if !cmd.is_empty() {
            set(&mut c, "Cmd", cmd.to_vec());
        }
        // `--entrypoint ""` resets the image's entrypoint.
        if let Some(e) = self.entrypoint.as_deref() {
            set(&mut c, "Entrypoint", vec![e.to_string()]);
        }
        set_opt(&mut c, "WorkingDir", self.workdir.clone());
        let labels = read_labels(&self.label_file, &self.label)?;
        if !labels.is_empty() {
            set(&mut c, "Labels", json!(labels));
        }
        set_opt(&mut c, "StopSignal", self.stop_signal.clone());
        set_opt(&mut c, "StopTimeout", self.stop_timeout);
        set_opt(&mut c, "MacAddress", self.mac_address.clone());
        let mut exposed = Map::new();
        for e in &self.expose {
            for p in parse_expose(e)? {
                exposed.insert(p, json!({}));
            }
        }
        for p in &self.publish {
            for (port, _) in parse_publish(p)? {
                exposed.insert(port, json!({}));
            }
        }
        if !exposed.is_empty() {
            set(&mut c, "ExposedPorts", exposed);
        }
        let mut volumes = Map::new();
        for v in &self.volume {
            if parse_volume(v)?.is_none() {
                volumes.insert(v.clone(), json!({}));
            }
        }
        if !volumes.is_empty() {
            set(&mut c, "Volumes", volumes);
        }
        if let Some(h) = self.healthcheck()? {
            set(&mut c, "Healthcheck", h);
        }
        Ok(c)
    }

    fn healthcheck(&self) -> anyhow::Result<Option<Value>> {
        let dur = |name: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    let n = berth_api::duration::parse(s)?;
                    if n < 0 {
                        bail!("--{name} cannot be negative");
                    }
                    Ok(n)
                })
                .transpose()
        };
        let interval = dur("health-interval", &self.health_interval)?;
        let timeout = dur("health-timeout", &self.health_timeout)?;
        let start_period = dur("health-start-period", &self.health_start_period)?;
        let start_interval = dur("health-start-interval", &self.health_start_interval)?;
        let any = self.health_cmd.is_some()
            || interval.is_some()
            || timeout.is_some()
            || start_period.is_some()
            || start_interval.is_some()
            || self.health_retries.is_some();
        if self.no_healthcheck {
            if any {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if !any {
            return Ok(None);
        }
        if self.health_retries.is_some_and(|r| r < 0) {
            bail!("--health-retries cannot be negative");
        }
        let mut h = Map::new();
        if let Some(cmd) = &self.health_cmd {
            set(&mut h, "Test", vec!["CMD-SHELL".to_string(), cmd.clone()]);
        }
        set_opt(&mut h, "Interval", interval);
        set_opt(&mut h, "Timeout", timeout);
        set_opt(&mut h, "StartPeriod", start_period);
        set_opt(&mut h, "StartInterval", start_interval);
        set_opt(&mut h, "Retries", self.health_retries);
        Ok(Some(Value::Object(h)))
    }

    /// `HostConfig`, resources included (they sit at its top level).
    fn host_config(&self) -> anyhow::Result<Map<String, Value>> {
        let mut hc = Map::new();
        // Binds and anonymous volumes.
        let mut binds = Vec::new();
        for v in &self.volume {
            if let Some(b) = parse_volume(v)? {
                binds.push(b);
            }
        }
        set_list(&mut hc, "Binds", &binds);
        let mounts = self
            .mount
            .iter()
            .map(|m| parse_mount(m))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !mounts.is_empty() {
            set(&mut hc, "Mounts", mounts);
        }
        let mut tmpfs = Map::new();
        for t in &self.tmpfs {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            tmpfs.insert(path.to_string(), json!(opts));
        }
        if !tmpfs.is_empty() {
            set(&mut hc, "Tmpfs", tmpfs);
        }
        set_list(&mut hc, "VolumesFrom", &self.volumes_from);
        if let Some(d) = self.volume_driver.as_ref().filter(|d| !d.is_empty()) {
            set(&mut hc, "VolumeDriver", d.as_str());
        }
        // Ports.
        let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in &self.publish {
            for (port, b) in parse_publish(p)? {
                bindings.entry(port).or_default().push(b);
            }
        }
        if !bindings.is_empty() {
            set(&mut hc, "PortBindings", json!(bindings));
        }
        if self.publish_all {
            set(&mut hc, "PublishAllPorts", true);
        }
        // DNS and hosts (docker always sends the DNS lists).
        set(&mut hc, "Dns", self.dns.clone());
        set(&mut hc, "DnsSearch", self.dns_search.clone());
        set(&mut hc, "DnsOptions", self.dns_option.clone());
        let hosts = self
            .add_host
            .iter()
            .map(|h| parse_extra_host(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        set_list(&mut hc, "ExtraHosts", &hosts);
        set_list(&mut hc, "Links", &self.link);
        // Lifecycle.
        if self.rm {
            set(&mut hc, "AutoRemove", true);
        }
        if let Some(r) = &self.restart {
            let policy = parse_restart(r)?;
            if self.rm && policy["Name"] != "no" && policy["Name"] != "" {
                bail!("Conflicting options: --restart and --rm");
            }
            set(&mut hc, "RestartPolicy", policy);
        }
        if self.init {
            set(&mut hc, "Init", true);
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            let driver = self.log_driver.clone().unwrap_or_default();
            if driver == "none" && !self.log_opt.is_empty() {
                bail!("invalid logging opts for driver none");
            }
            set(
                &mut hc,
                "LogConfig",
                json!({"Type": driver, "Config": kv_map(&self.log_opt)}),
            );
        }
        // Security.
        set_list(&mut hc, "CapAdd", &self.cap_add);
        set_list(&mut hc, "CapDrop", &self.cap_drop);
        if self.privileged {
            set(&mut hc, "Privileged", true);
        }
        let mut secopts = Vec::new();
        for o in &self.security_opt {
            if o == "systempaths=unconfined" {
                // Handled on the client, as docker does.
                set(&mut hc, "MaskedPaths", Vec::<String>::new());
                set(&mut hc, "ReadonlyPaths", Vec::<String>::new());
                continue;
            }
            secopts.push(parse_security_opt(o)?);
        }
        set_list(&mut hc, "SecurityOpt", &secopts);
        if self.read_only {
            set(&mut hc, "ReadonlyRootfs", true);
        }
        set_list(&mut hc, "GroupAdd", &self.group_add);
        set_opt(&mut hc, "UsernsMode", self.userns.clone());
        set_opt(&mut hc, "PidMode", self.pid.clone());
        set_opt(&mut hc, "IpcMode", self.ipc.clone());
        set_opt(&mut hc, "UTSMode", self.uts.clone());
        if let Some(c) = &self.cgroupns {
            if !matches!(c.as_str(), "" | "host" | "private") {
                bail!("--cgroupns: invalid CGROUP mode");
            }
            set(&mut hc, "CgroupnsMode", c.clone());
        }
        set_opt(&mut hc, "CgroupParent", self.cgroup_parent.clone());
        if !self.sysctl.is_empty() {
            set(&mut hc, "Sysctls", json!(kv_map(&self.sysctl)));
        }
        set_opt(&mut hc, "Runtime", self.runtime.clone());
        // Resources.
        set_opt(
            &mut hc,
            "Memory",
            self.memory.as_deref().map(ram_in_bytes).transpose()?,
        );
        if let Some(s) = &self.memory_swap {
            let v = if s == "-1" { -1 } else { ram_in_bytes(s)? };
            set(&mut hc, "MemorySwap", v);
        }
        set_opt(
            &mut hc,
            "MemoryReservation",
            self.memory_reservation
                .as_deref()
                .map(ram_in_bytes)
                .transpose()?,
        );
        if let Some(s) = self.memory_swappiness {
            if s != -1 && !(0..=100).contains(&s) {
                bail!("invalid value: {s}. Valid memory swappiness range is 0-100");
            }
            set(&mut hc, "MemorySwappiness", s);
        }
        if self.oom_kill_disable {
            set(&mut hc, "OomKillDisable", true);
        }
        set_opt(&mut hc, "OomScoreAdj", self.oom_score_adj);
        set_opt(
            &mut hc,
            "NanoCpus",
            self.cpus.as_deref().map(parse_cpus).transpose()?,
        );
        set_opt(&mut hc, "CpuShares", self.cpu_shares);
        set_opt(&mut hc, "CpuPeriod", self.cpu_period);
        set_opt(&mut hc, "CpuQuota", self.cpu_quota);
        set_opt(&mut hc, "CpusetCpus", self.cpuset_cpus.clone());
        set_opt(&mut hc, "CpusetMems", self.cpuset_mems.clone());
        set_opt(&mut hc, "PidsLimit", self.pids_limit);
        let ulimits = self
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !ulimits.is_empty() {
            set(&mut hc, "Ulimits", ulimits);
        }
        set_opt(
            &mut hc,
            "ShmSize",
            self.shm_size.as_deref().map(ram_in_bytes).transpose()?,
        );
        let devices = self
            .device
            .iter()
            .map(|d| parse_device(d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !devices.is_empty() {
            set(&mut hc, "Devices", devices);
        }
        Ok(hc)
    }

    fn networking(&self, network: &str) -> anyhow::Result<Value> {
        let mut ep = Map::new();
        if !self.network_alias.is_empty() {
            if matches!(network, "default" | "bridge" | "host" | "none")
                || network.starts_with("container:")
            {
                bail!("network-scoped aliases are only supported for user-defined networks");
            }
            set(&mut ep, "Aliases", self.network_alias.clone());
        }
        // On a user-defined network a link is an alias for the network's
        // DNS, so docker also sends it with the endpoint.
        if !self.link.is_empty()
            && !matches!(network, "default" | "bridge" | "host" | "none")
            && !network.starts_with("container:")
        {
            set(&mut ep, "Links", self.link.clone());
        }
        if self.ip.is_some() || self.ip6.is_some() {
            let mut ipam = Map::new();
            set_opt(&mut ipam, "IPv4Address", self.ip.clone());
            set_opt(&mut ipam, "IPv6Address", self.ip6.clone());
            set(&mut ep, "IPAMConfig", ipam);
        }
        let mut eps = Map::new();
        if network != "none" {
            eps.insert(network.to_string(), Value::Object(ep));
        }
        Ok(json!({ "EndpointsConfig": eps }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut ContainerFlags)) -> ContainerFlags {
        let mut c = ContainerFlags {
            pull: "missing".into(),
            ..Default::default()
        };
        f(&mut c);
        c
    }

    #[test]
    fn run_flags_map_to_the_create_body() {
        let argv = vec!["busybox".to_string(), "echo".into(), "hi".into()];
        let spec = flags(|c| {
            c.interactive = true;
            c.env = vec!["A=1".into()];
            c.label = vec!["x=y".into(), "z".into()];
            c.memory = Some("512m".into());
            c.cpus = Some("1.5".into());
            c.publish = vec!["127.0.0.1:8080:80".into(), "9000-9001:9000-9001/udp".into()];
            c.restart = Some("on-failure:3".into());
            c.ulimit = vec!["nofile=1024:2048".into()];
            c.volume = vec!["/data".into(), "/h:/c:ro".into()];
            c.entrypoint = Some(String::new());
            c.add_host = vec!["db=10.0.0.2".into()];
            c.health_cmd = Some("true".into());
            c.health_interval = Some("5s".into());
            c.volume_driver = Some("rclone".into());
            c.log_driver = Some("myplugin:latest".into());
        })
        .build(&argv, false)
        .unwrap();
        let b = &spec.body;
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Labels"], json!({"x": "y", "z": ""}));
        assert_eq!(
            (
                b["OpenStdin"].clone(),
                b["StdinOnce"].clone(),
                b["AttachStdin"].clone()
            ),
            (json!(true), json!(true), json!(true))
        );
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64})
        );
        let hc = &b["HostConfig"];
        assert_eq!(hc["Memory"], 512 * 1024 * 1024);
        assert_eq!(hc["NanoCpus"], 1_500_000_000i64);
        assert_eq!(hc["Binds"], json!(["/h:/c:ro"]));
        assert_eq!(hc["VolumeDriver"], "rclone");
        assert_eq!(
            hc["LogConfig"],
            json!({"Type": "myplugin:latest", "Config": {}})
        );
        assert_eq!(
            hc["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(
            hc["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
        );
        assert_eq!(hc["ExtraHosts"], json!(["db:10.0.0.2"]));
        assert_eq!(hc["NetworkMode"], "default");
        assert_eq!(
            hc["PortBindings"]["80/tcp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
        );
        assert_eq!(
            hc["PortBindings"]["9001/udp"],
            json!([{"HostIp": "", "HostPort": "9001"}])
        );
        assert_eq!(b["ExposedPorts"]["80/tcp"], json!({}));
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"default": {}}})
        );
    }

    #[test]
    fn detach_and_conflicts() {
        let argv = vec!["busybox".to_string()];
        let s = flags(|c| c.interactive = true).build(&argv, true).unwrap();
        assert_eq!(
            (s.attach_stdin, s.attach_stdout, s.body["StdinOnce"].clone()),
            (false, false, json!(false))
        );
        assert!(flags(|c| c.attach = vec!["stdout".into()])
            .build(&argv, true)
            .is_err());
        assert!(flags(|c| {
            c.rm = true;
            c.restart = Some("always".into());
        })
        .build(&argv, false)
        .is_err());
        let s = flags(|c| c.attach = vec!["STDERR".into()])
            .build(&argv, false)
            .unwrap();
        assert_eq!((s.attach_stdout, s.attach_stderr), (false, true));
        let s = flags(|c| c.network = Some("none".into()))
            .build(&argv, false)
            .unwrap();
        assert_eq!(s.body["NetworkingConfig"], json!({"EndpointsConfig": {}}));
    }
}
