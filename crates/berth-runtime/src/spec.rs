//! Assembles the spec (moby `createSpec`).

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{
    BoxBuilder, LinuxBuilder, LinuxDevice, LinuxDeviceCgroup, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use crate::host::HostInfo;
use crate::mounts::{MountPlan, DEFAULT_SHM_SIZE};
use crate::{caps, devices, mounts, resources, seccomp};
use crate::{NetNs, NsMode, SeccompChoice, SpecError, SpecInput};

/// Runtime-spec version Docker 28 writes.
const OCI_VERSION: &str = "1.2.1";

const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn build_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Build(e.to_string())
}

/// The `--security-opt` values that shape the spec itself (seccomp and
/// no-new-privileges arrive already resolved in `SpecInput`).
#[derive(Default)]
struct SecurityOpts {
    unconfined_systempaths: bool,
    writable_cgroups: Option<bool>,
}

impl SecurityOpts {
    fn parse(opts: Option<&Vec<String>>) -> Result<Self, SpecError> {
        let mut out = SecurityOpts::default();
        for opt in opts.into_iter().flatten() {
            let (k, v) = match opt.split_once(['=', ':']) {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            };
            match (k, v) {
                ("systempaths", Some("unconfined")) => out.unconfined_systempaths = true,
                ("writable-cgroups", None) => out.writable_cgroups = Some(true),
                ("writable-cgroups", Some(b)) => {
                    out.writable_cgroups = Some(b.parse().map_err(|_| {
                        SpecError::Invalid(format!("invalid --security-opt 2: {opt:?}"))
                    })?)
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> Result<LinuxNamespace, SpecError> {
    let mut b = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(p) = path {
        b = b.path(p);
    }
    b.build().map_err(build_err)
}

/// Docker's order: mount, network, uts, pid, ipc, then cgroup.
fn namespaces(input: &SpecInput<'_>, host: &HostInfo) -> Result<Vec<LinuxNamespace>, SpecError> {
    use LinuxNamespaceType as T;
    let mut ns = vec![namespace(T::Mount, None)?];
    if let NetNs::Path(p) = &input.netns {
        ns.push(namespace(T::Network, Some(p))?);
    }
    if !input.uts_host {
        ns.push(namespace(T::Uts, None)?);
    }
    for (typ, mode) in [(T::Pid, &input.pid), (T::Ipc, &input.ipc)] {
        match mode {
            // Another container's that is the daemon's own: nothing to join
            // (setns into it needs privilege over the host's user namespace).
            NsMode::Path(_) if typ == T::Pid && host.in_userns && shares_daemon_pidns(mode) => {}
            NsMode::Private => ns.push(namespace(typ, None)?),
            NsMode::Path(p) => ns.push(namespace(typ, Some(p))?),
            NsMode::Host => {}
        }
    }
    use bollard_stubs::models::HostConfigCgroupnsModeEnum as Cg;
    let private_cgroupns = match input.host_config.cgroupns_mode {
        Some(Cg::PRIVATE) => true,
        Some(Cg::HOST) => false,
        // Docker's default: private on cgroup v2 (even when privileged), host on v1.
        Some(Cg::EMPTY) | None => host.cgroup_v2,
    };
    if private_cgroupns {
        ns.push(namespace(T::Cgroup, None)?);
    }
    Ok(ns)
}

fn rlimits(input: &SpecInput<'_>) -> Result<Vec<PosixRlimit>, SpecError> {
    let mut out = Vec::new();
    for ul in input.host_config.ulimits.iter().flatten() {
        let name = ul.name.as_deref().unwrap_or_default();
        let typ: PosixRlimitType = format!("RLIMIT_{}", name.to_uppercase())
            .parse()
            .map_err(|_| SpecError::Invalid(format!("invalid ulimit type: {name}")))?;
        let (soft, hard) = (ul.soft.unwrap_or(0), ul.hard.unwrap_or(0));
        if soft >= 0 && hard >= 0 && soft > hard {
            return Err(SpecError::Invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        out.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                // -1 (unlimited) wraps to RLIM_INFINITY, as in moby.
                .soft(soft as u64)
                .hard(hard as u64)
                .build()
                .map_err(build_err)?,
        );
    }
    Ok(out)
}

fn process(
    input: &SpecInput<'_>,
    cap_list: &[String],
) -> Result<oci_spec::runtime::Process, SpecError> {
    let hc = input.host_config;
    let tty = input.config.tty.unwrap_or(false);

    // Docker lists the primary group first among the supplementary groups.
    let mut gids = vec![input.user.gid];
    gids.extend(
        input
            .user
            .additional_gids
            .iter()
            .filter(|g| **g != input.user.gid),
    );
    let user = UserBuilder::default()
        .uid(input.user.uid)
        .gid(input.user.gid)
        .additional_gids(gids)
        .build()
        .map_err(build_err)?;

    let oom = hc.oom_score_adj.unwrap_or(0);
    let oom = i32::try_from(oom)
        .ok()
        .filter(|v| (-1000..=1000).contains(v))
        .ok_or_else(|| {
            SpecError::Invalid(format!(
                "Invalid value {oom}, range for oom score adj is [-1000, 1000]"
            ))
        })?;

    let mut p = ProcessBuilder::default()
        .terminal(tty)
        .user(user)
        .args(input.args.clone())
        .env(input.env.clone())
        .cwd(if input.cwd.is_empty() {
            "/"
        } else {
            input.cwd.as_str()
        })
        .capabilities(caps::to_oci(cap_list)?)
        .oom_score_adj(oom)
        .build()
        .map_err(build_err)?;

    // The builder starts from oci-spec's defaults; override every field
    // Docker leaves unset.
    let rl = rlimits(input)?;
    p.set_rlimits((!rl.is_empty()).then_some(rl));
    p.set_no_new_privileges(input.no_new_privileges.then_some(true));
    p.set_console_size(None);
    if tty {
        if let Some([h, w]) = hc.console_size.as_deref() {
            if *h > 0 || *w > 0 {
                let size = BoxBuilder::default()
                    .height(*h as u64)
                    .width(*w as u64)
                    .build()
                    .map_err(build_err)?;
                p.set_console_size(Some(size));
            }
        }
    }
    Ok(p)
}

fn valid_access(access: &str) -> bool {
    !access.is_empty() && access.len() <= 3 && access.bytes().all(|b| b"rwm".contains(&b))
}

/// Replaces any node already at the same path (two nodes at one path would
/// make the runtime's mknod fail).
fn add_devices(into: &mut Vec<LinuxDevice>, new: Vec<LinuxDevice>) {
    for d in new {
        into.retain(|x| x.path() != d.path());
        into.push(d);
    }
}

fn devices(
    input: &SpecInput<'_>,
    privileged: bool,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let hc = input.host_config;
    let mappings = hc.devices.iter().flatten();
    let mut devs = Vec::new();
    if privileged {
        add_devices(&mut devs, devices::host_devices(Path::new("/dev"))?);
        for d in devices::default_devices()? {
            if !devs.iter().any(|x| x.path() == d.path()) {
                devs.push(d);
            }
        }
        for m in mappings {
            let host_path = m.path_on_host.as_deref().unwrap_or_default();
            let ctr_path = m
                .path_in_container
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or(host_path);
            // Already there via the host's /dev.
            if host_path == ctr_path {
                continue;
            }
            let (d, _) = devices::devices_from_path(host_path, ctr_path, "rwm")?;
            add_devices(&mut devs, d);
        }
        return Ok((devs, devices::allow_all_rules()?));
    }

    devs = devices::default_devices()?;
    let mut rules = devices::default_rules()?;
    for m in mappings {
        let host_path = m.path_on_host.as_deref().unwrap_or_default();
        let ctr_path = m
            .path_in_container
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(host_path);
        let access = m
            .cgroup_permissions
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        if !valid_access(access) {
            return Err(SpecError::Invalid(format!("invalid device mode: {access}")));
        }
        let (d, r) = devices::devices_from_path(host_path, ctr_path, access)?;
        add_devices(&mut devs, d);
        rules.extend(r);
    }
    for r in hc.device_cgroup_rules.iter().flatten() {
        rules.push(devices::parse_cgroup_rule(r)?);
    }
    Ok((devs, rules))
}

fn sysctls(input: &SpecInput<'_>, host: &HostInfo) -> HashMap<String, String> {
    let mut out = HashMap::new();
    // Only for a namespace of the container's own (not host, not another container's).
    let shares_netns = input
        .host_config
        .network_mode
        .as_deref()
        .is_some_and(|m| m.starts_with("container:"));
    if matches!(input.netns, NetNs::Path(_)) && !shares_netns {
        // Unprivileged ping, and binding low ports without NET_BIND_SERVICE.
        if host.has_ping_group_range && !host.in_userns {
            out.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
        }
        if host.has_unprivileged_port_start {
            out.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        }
    }
    for (k, v) in input.host_config.sysctls.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

pub(crate) fn default_path_lists(host: &HostInfo) -> (Vec<String>, Vec<String>) {
    let mut m: Vec<String> = DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect();
    m.extend(host.thermal_throttle.iter().cloned());
    (
        m,
        DEFAULT_READONLY_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
}

fn path_lists(
    input: &SpecInput<'_>,
    host: &HostInfo,
    privileged: bool,
    sec: &SecurityOpts,
) -> (Vec<String>, Vec<String>) {
    let (mut masked, mut readonly) = if privileged || sec.unconfined_systempaths {
        (Vec::new(), Vec::new())
    } else {
        default_path_lists(host)
    };
    // Explicit lists win, even over --privileged (as moby applies them last).
    if let Some(m) = &input.host_config.masked_paths {
        masked = m.clone();
    }
    if let Some(r) = &input.host_config.readonly_paths {
        readonly = r.clone();
    }
    (masked, readonly)
}

/// Whether the container's PID namespace is the daemon's own (`--pid host`,
/// or another container's that is): in a user namespace that does not own
/// it, a new proc cannot be mounted (moby's rootless `isHostNS`).
fn shares_daemon_pidns(mode: &NsMode) -> bool {
    match mode {
        NsMode::Private => false,
        NsMode::Host => true,
        NsMode::Path(p) => match (
            std::fs::read_link(p),
            std::fs::read_link("/proc/self/ns/pid"),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
    }
}

/// Rootless `--pid host`: the daemon's `/proc` bound recursively instead of
/// a new proc mount (moby's `bindMountHostProcfs`, after podman). The
/// masked paths stay masked; the read-only ones under `/proc` go, as in
/// moby (their remount would drop the flags locked in the user namespace).
fn bind_host_proc(
    mounts: &mut [oci_spec::runtime::Mount],
    readonly: &mut Vec<String>,
) -> Result<(), SpecError> {
    for m in mounts.iter_mut() {
        if m.destination() == Path::new("/proc") {
            *m = oci_spec::runtime::MountBuilder::default()
                .destination("/proc")
                .typ("bind")
                .source("/proc")
                .options(
                    ["rbind", "nosuid", "noexec", "nodev"]
                        .map(String::from)
                        .to_vec(),
                )
                .build()
                .map_err(build_err)?;
        }
    }
    readonly.retain(|p| !p.starts_with("/proc/"));
    Ok(())
}

/// moby keeps the rootfs shared/slave when a bind mount needs that propagation.
/// moby writes `rslave`, which runc takes; libcontainer knows only `slave`
/// (and makes `/` a slave recursively either way).
fn rootfs_propagation(extra: &[oci_spec::runtime::Mount]) -> Option<&'static str> {
    let opts: Vec<&str> = extra
        .iter()
        .flat_map(|m| m.options().iter().flatten())
        .map(String::as_str)
        .collect();
    if opts.iter().any(|o| *o == "shared" || *o == "rshared") {
        Some("shared")
    } else if opts.iter().any(|o| *o == "slave" || *o == "rslave") {
        Some("slave")
    } else {
        None
    }
}

pub(crate) fn build(input: &SpecInput<'_>, host: &HostInfo) -> Result<Spec, SpecError> {
    let hc = input.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let readonly_rootfs = hc.readonly_rootfs.unwrap_or(false);
    let sec = SecurityOpts::parse(hc.security_opt.as_ref())?;

    let cap_list = caps::tweak(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        privileged,
        &caps::available_capabilities(host),
    )?;

    let seccomp = match (&input.seccomp, privileged) {
        (SeccompChoice::Unconfined, _) | (SeccompChoice::Default, true) => None,
        (SeccompChoice::Default, false) => {
            seccomp::resolve(&seccomp::default_profile()?, &cap_list, host)?
        }
        // moby applies an explicit profile even to privileged containers.
        (SeccompChoice::Custom(json), _) => {
            seccomp::resolve(&seccomp::parse_docker_profile(json)?, &cap_list, host)?
        }
    };

    let mut files: Vec<(&'static str, &Path)> = Vec::new();
    if let Some(p) = &input.files.resolv_conf {
        files.push(("/etc/resolv.conf", p));
    }
    if let Some(p) = &input.files.hostname {
        files.push(("/etc/hostname", p));
    }
    if let Some(p) = &input.files.hosts {
        files.push(("/etc/hosts", p));
    }
    let mut mount_list = mounts::build(&MountPlan {
        shm_size: hc.shm_size.filter(|s| *s > 0).unwrap_or(DEFAULT_SHM_SIZE),
        ipc_none: hc.ipc_mode.as_deref() == Some("none"),
        readonly_rootfs,
        privileged,
        writable_cgroups: sec.writable_cgroups.unwrap_or(privileged),
        files,
        init_binary: input.init_binary.as_deref(),
        extra: &input.extra_mounts,
    })?;

    let (mut devs, dev_rules) = devices(input, privileged)?;
    if host.in_userns {
        // In a user namespace libcontainer bind-mounts devices, and a bind
        // at /dev/ptmx breaks its /dev/ptmx → pts/ptmx link (runc skips
        // /dev/ptmx in its device list always).
        devs.retain(|d| d.path() != Path::new("/dev/ptmx"));
    }
    let mut res = LinuxResourcesBuilder::default().devices(dev_rules);
    if let Some(m) = resources::memory(hc)? {
        res = res.memory(m);
    }
    if let Some(c) = resources::cpu(hc)? {
        res = res.cpu(c);
    }
    if let Some(p) = resources::pids(hc)? {
        res = res.pids(p);
    }
    if let Some(b) = resources::block_io(hc)? {
        res = res.block_io(b);
    }
    let res = res.build().map_err(build_err)?;

    let (masked, mut readonly) = path_lists(input, host, privileged, &sec);
    if host.in_userns && shares_daemon_pidns(&input.pid) {
        bind_host_proc(&mut mount_list, &mut readonly)?;
    }
    let sysctl = sysctls(input, host);

    let mut linux = LinuxBuilder::default()
        .resources(res)
        .cgroups_path(input.cgroups_path.clone())
        .namespaces(namespaces(input, host)?)
        .devices(devs)
        .build()
        .map_err(build_err)?;
    linux.set_masked_paths((!masked.is_empty()).then_some(masked));
    linux.set_readonly_paths((!readonly.is_empty()).then_some(readonly));
    linux.set_sysctl((!sysctl.is_empty()).then_some(sysctl));
    linux.set_seccomp(seccomp);
    linux.set_rootfs_propagation(rootfs_propagation(&input.extra_mounts).map(String::from));
    if input.cgroups_path.is_empty() || !input.cgroups {
        linux.set_cgroups_path(None);
    }
    if !input.cgroups {
        linux.set_resources(None);
    }

    let root = RootBuilder::default()
        .path(input.rootfs.clone())
        .build()
        .map_err(build_err)?;
    let mut root = root;
    root.set_readonly(readonly_rootfs.then_some(true));

    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .root(root)
        .mounts(mount_list)
        .process(process(input, &cap_list)?)
        .linux(linux)
        .build()
        .map_err(build_err)?;
    // No hostname in the host's UTS namespace: the runtime would set the host's.
    let uts_private = !input.uts_host;
    spec.set_hostname((uts_private && !input.hostname.is_empty()).then(|| input.hostname.clone()));
    spec.set_domainname(
        (uts_private && !input.domainname.is_empty()).then(|| input.domainname.clone()),
    );
    spec.set_annotations(hc.annotations.clone().filter(|a| !a.is_empty()));
    Ok(spec)
}

#[cfg(test)]
mod tests;
