//! Checks a container's resources, port bindings and health check the way
//! dockerd does at create (and `update`) time, with its messages, so bad
//! values are a 400 rather than a failure at start.

use std::collections::BTreeSet;

use berth_api::models::{
    ContainerCreateBody, HealthConfig, HostConfig, PortMap, RestartPolicyNameEnum,
};

use crate::engine::{EngineError, Result};

/// Docker's floor for memory limits and reservations.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The resource fields create and update have in common.
#[derive(Default)]
pub struct Limits<'a> {
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpuset_cpus: Option<&'a str>,
    pub cpuset_mems: Option<&'a str>,
    pub blkio_weight: Option<u16>,
    pub oom_score_adj: Option<i64>,
}

fn invalid(m: impl Into<String>) -> EngineError {
    EngineError::invalid(m)
}

pub fn resources(l: &Limits) -> Result<()> {
    let memory = l.memory.unwrap_or(0);
    if memory != 0 && memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    let reservation = l.memory_reservation.unwrap_or(0);
    if reservation != 0 && reservation < MIN_MEMORY {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if memory > 0 && reservation > 0 && memory < reservation {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    let swap = l.memory_swap.unwrap_or(0);
    if swap > 0 && memory > 0 && swap < memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if let Some(n) = l.nano_cpus.filter(|n| *n != 0) {
        let cpus = host_cpus();
        if n < 0 || n > cpus as i64 * 1_000_000_000 {
            return Err(invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if let Some(set) = l.cpuset_cpus.filter(|s| !s.is_empty()) {
        let ids = parse_cpuset(set)
            .ok_or_else(|| invalid(format!("Invalid value {set} for cpuset cpus")))?;
        let cpus = host_cpus();
        if ids.iter().any(|c| *c >= cpus) {
            return Err(invalid(format!(
                "Requested CPUs are not available - requested {set}, available: 0-{}",
                cpus - 1
            )));
        }
    }
    if let Some(set) = l.cpuset_mems.filter(|s| !s.is_empty()) {
        parse_cpuset(set).ok_or_else(|| invalid(format!("Invalid value {set} for cpuset mems")))?;
    }
    if let Some(w) = l.blkio_weight.filter(|w| *w != 0) {
        if !(10..=1000).contains(&w) {
            return Err(invalid("Range of blkio weight is from 10 to 1000"));
        }
    }
    if let Some(a) = l.oom_score_adj {
        if !(-1000..=1000).contains(&a) {
            return Err(invalid(format!(
                "Invalid value {a}, range for oom score adj is [-1000, 1000]"
            )));
        }
    }
    Ok(())
}

/// Asked only when a limit needs it: it reads the cgroup's CPU quota.
fn host_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// A Linux CPU list: `0-2,4`.
fn parse_cpuset(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.trim().parse().ok()?);
            }
        }
    }
    Some(out)
}

/// `PortBindings`: container ports `N[/proto]` and host ports `N` or `A-B`.
pub fn port_bindings(ports: &PortMap) -> Result<()> {
    let port_ok = |p: &str| {
        let (a, b) = p.split_once('-').unwrap_or((p, p));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(x), Ok(y)) if x <= y)
    };
    for (key, bindings) in ports {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        if !port_ok(port) {
            return Err(invalid(format!("invalid port specification: {port:?}")));
        }
        if !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(invalid(format!("invalid proto: {proto:?}")));
        }
        for b in bindings.iter().flatten() {
            let host = b.host_port.as_deref().unwrap_or("");
            if !host.is_empty() && !port_ok(host) {
                return Err(invalid(format!("invalid port specification: {host:?}")));
            }
        }
    }
    Ok(())
}

/// dockerd's health check limits (durations in nanoseconds; 0 = default).
pub fn healthcheck(h: &HealthConfig) -> Result<()> {
    const MS: i64 = 1_000_000;
    for (name, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if let Some(v) = v.filter(|v| *v != 0) {
            if v < MS {
                return Err(invalid(format!(
                    "{name} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
    }
    if h.retries.is_some_and(|r| r < 0) {
        return Err(invalid("Retries in Healthcheck cannot be negative"));
    }
    Ok(())
}

/// The runtime a container gets when it names none (what dockerd reports).
pub const DEFAULT_RUNTIME: &str = "runc";

/// Runtime names a container may ask for: dockerd's default, and those
/// `/info` lists.
pub fn runtime_known(name: &str, listed: &[String]) -> bool {
    name == DEFAULT_RUNTIME || listed.iter().any(|l| l == name)
}

/// The network mode's conflicts with the request's own settings, checked on
/// the request before the image's config is merged in (dockerd's
/// `validateNetMode`).
pub fn network_mode(body: &ContainerCreateBody, hc: &HostConfig) -> Result<()> {
    let mode = hc.network_mode.as_deref().unwrap_or("");
    let container = mode.starts_with("container:") || mode == "container";
    if container && mode.split(':').nth(1).unwrap_or("").is_empty() {
        return Err(invalid(
            "Invalid network mode: invalid container format container:<name|id>",
        ));
    }
    let some = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let conflict = |what: &str| Err(invalid(format!("conflicting options: {what}")));
    if container {
        if body.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
            return conflict("hostname and the network mode");
        }
        if some(&hc.links) {
            return conflict("container type network can't be used with links. This would result in undefined behavior");
        }
        if some(&hc.dns) {
            return conflict("dns and the network mode");
        }
        if some(&hc.extra_hosts) {
            return conflict("custom host-to-IP mapping and the network mode");
        }
    }
    if (container || mode == "host") && body.mac_address.as_deref().is_some_and(|m| !m.is_empty()) {
        return conflict("mac-address and the network mode");
    }
    if container {
        if hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || hc.publish_all_ports == Some(true)
        {
            return conflict("port publishing and the container type network mode");
        }
        if body.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()) {
            return conflict("port exposing and the container type network mode");
        }
    }
    if mode == "host" && some(&hc.links) {
        return conflict(
            "host type networking can't be used with links. This would result in undefined behavior",
        );
    }
    Ok(())
}

/// `RestartPolicy` and `AutoRemove` (dockerd's `validateRestartPolicy`).
pub fn restart_policy(hc: &HostConfig) -> Result<()> {
    let Some(p) = &hc.restart_policy else {
        return Ok(());
    };
    let name = p.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
    let retries = p.maximum_retry_count.unwrap_or(0);
    if hc.auto_remove == Some(true)
        && !matches!(
            name,
            RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY
        )
    {
        return Err(invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    match name {
        RestartPolicyNameEnum::ALWAYS
        | RestartPolicyNameEnum::UNLESS_STOPPED
        | RestartPolicyNameEnum::NO
            if retries != 0 =>
        {
            Err(invalid(format!(
                "maximum retry count cannot be used with restart policy '{name}'"
            )))
        }
        RestartPolicyNameEnum::ON_FAILURE if retries < 0 => {
            Err(invalid("maximum retry count cannot be negative"))
        }
        _ => Ok(()),
    }
}

/// Settings dockerd checks at create only (`verifyContainerSettings` and
/// `verifyPlatformContainerResources`), beyond [`resources`].
pub fn create_settings(hc: &HostConfig, working_dir: Option<&str>) -> Result<()> {
    crate::engine::cgroups::refuse_host_config(hc)?;
    if let Some(w) = working_dir.filter(|w| !w.is_empty()) {
        if !w.starts_with('/') {
            return Err(invalid(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
    }
    for h in hc.extra_hosts.iter().flatten() {
        extra_host(h)?;
    }
    if hc.memory.unwrap_or(0) == 0 && hc.memory_swap.unwrap_or(0) > 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    cpu(hc.nano_cpus, hc.cpu_period, hc.cpu_quota)?;
    if hc.shm_size.unwrap_or(0) < 0 {
        return Err(invalid("SHM size can not be less than 0"));
    }
    for (field, list) in [("CapAdd", &hc.cap_add), ("CapDrop", &hc.cap_drop)] {
        if let Some(bad) = berth_runtime::unknown_capability(list.as_deref().unwrap_or(&[])) {
            return Err(invalid(format!(
                "invalid {field}: unknown capability: {bad:?}"
            )));
        }
    }
    Ok(())
}

/// CPU period and quota, alone or against `NanoCpus` (create and update).
pub fn cpu(nano: Option<i64>, period: Option<i64>, quota: Option<i64>) -> Result<()> {
    let nano = nano.unwrap_or(0);
    let (period, quota) = (period.unwrap_or(0), quota.unwrap_or(0));
    if nano > 0 && period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if nano > 0 && quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if quota > 0 && quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    Ok(())
}

/// The request's `Env`: every entry needs a name.
pub fn env(env: Option<&[String]>) -> Result<()> {
    for e in env.unwrap_or(&[]) {
        if e.split('=').next().unwrap_or("").is_empty() {
            return Err(invalid(format!("invalid environment variable: {e}")));
        }
    }
    Ok(())
}

/// `--add-host` entries: `name:ip` (or `name:host-gateway`).
pub fn extra_host(h: &str) -> Result<()> {
    match h.split_once(':') {
        Some((name, ip)) if !name.is_empty() => {
            if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(format!("invalid IP address in add-host: {ip:?}")));
            }
            Ok(())
        }
        _ => Err(invalid(format!("bad format for add-host: {h:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_as_dockerd() {
        let bad = |l: Limits| resources(&l).unwrap_err().to_string();
        assert_eq!(
            bad(Limits {
                memory: Some(-5),
                ..Default::default()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert!(bad(Limits {
            cpuset_cpus: Some("abc"),
            ..Default::default()
        })
        .starts_with("Invalid value abc for cpuset cpus"));
        assert!(bad(Limits {
            cpuset_cpus: Some("0-4096"),
            ..Default::default()
        })
        .starts_with("Requested CPUs are not available"));
        assert!(resources(&Limits {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            cpuset_cpus: Some("0"),
            nano_cpus: Some(500_000_000),
            ..Default::default()
        })
        .is_ok());
        assert_eq!(parse_cpuset("0-2,4").unwrap().len(), 4);
        assert!(parse_cpuset("2-1").is_none());
    }
}
