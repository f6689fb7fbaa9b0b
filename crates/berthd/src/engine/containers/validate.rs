//! Checks a container's resources, port bindings and health check the way
//! dockerd does at create (and `update`) time, with its messages, so bad
//! values are a 400 rather than a failure at start.

use std::collections::BTreeSet;

use berth_api::models::{HealthConfig, PortMap};

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
