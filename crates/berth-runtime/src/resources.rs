//! cgroup resource limits from `HostConfig` (moby `WithResources`,
//! `getMemoryResources`, `getCPUResources`, `getPidsLimit`, blkio helpers).
//! Only what the user set is written; nothing is zero-limited.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxBlockIoBuilder, LinuxCpu, LinuxCpuBuilder, LinuxMemory, LinuxMemoryBuilder,
    LinuxPids, LinuxPidsBuilder, LinuxThrottleDevice, LinuxThrottleDeviceBuilder,
    LinuxWeightDevice, LinuxWeightDeviceBuilder,
};

use crate::devices::device_numbers;
use crate::{HostConfig, SpecError};

fn build_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Build(e.to_string())
}

fn positive(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v > 0)
}

pub(crate) fn memory(hc: &HostConfig) -> Result<Option<LinuxMemory>, SpecError> {
    let limit = positive(hc.memory);
    // Docker's create-time default: swap = 2 × memory when only memory is set.
    let swap = match (limit, hc.memory_swap) {
        (_, Some(-1)) => Some(-1),
        (_, Some(s)) if s > 0 => Some(s),
        (Some(m), None | Some(0)) => Some(m.saturating_mul(2)),
        _ => None,
    };
    if let (Some(l), Some(s)) = (limit, swap) {
        if s > 0 && s < l {
            return Err(SpecError::Invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
            ));
        }
    }
    let swappiness = match hc.memory_swappiness {
        Some(s) if s > 100 => {
            return Err(SpecError::Invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )))
        }
        // -1 is the API's "not set".
        Some(s) if s >= 0 => Some(s as u64),
        _ => None,
    };
    let reservation = positive(hc.memory_reservation);
    let kernel_tcp = hc.kernel_memory_tcp.filter(|v| *v != 0);
    let oom = hc.oom_kill_disable;

    if limit.is_none()
        && swap.is_none()
        && swappiness.is_none()
        && reservation.is_none()
        && kernel_tcp.is_none()
        && oom.is_none()
    {
        return Ok(None);
    }
    let mut b = LinuxMemoryBuilder::default();
    if let Some(v) = limit {
        b = b.limit(v);
    }
    if let Some(v) = swap {
        b = b.swap(v);
    }
    if let Some(v) = reservation {
        b = b.reservation(v);
    }
    if let Some(v) = swappiness {
        b = b.swappiness(v);
    }
    if let Some(v) = kernel_tcp {
        b = b.kernel_tcp(v);
    }
    if let Some(v) = oom {
        b = b.disable_oom_killer(v);
    }
    b.build().map(Some).map_err(build_err)
}

pub(crate) fn cpu(hc: &HostConfig) -> Result<Option<LinuxCpu>, SpecError> {
    let nano = positive(hc.nano_cpus);
    let period = hc.cpu_period.filter(|v| *v != 0);
    let quota = hc.cpu_quota.filter(|v| *v != 0);
    if nano.is_some() && period.is_some() {
        return Err(SpecError::Invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    if nano.is_some() && quota.is_some() {
        return Err(SpecError::Invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
        ));
    }
    let mut any = false;
    let mut b = LinuxCpuBuilder::default();
    if let Some(shares) = hc.cpu_shares.filter(|v| *v != 0) {
        if shares < 0 {
            return Err(SpecError::Invalid(format!(
                "invalid CPU shares ({shares}): value must be a positive integer"
            )));
        }
        b = b.shares(shares as u64);
        any = true;
    }
    if let Some(c) = hc.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
        b = b.cpus(c.clone());
        any = true;
    }
    if let Some(m) = hc.cpuset_mems.as_ref().filter(|s| !s.is_empty()) {
        b = b.mems(m.clone());
        any = true;
    }
    if let Some(n) = nano {
        // --cpus: a quota per 100ms period.
        const PERIOD_US: i64 = 100_000;
        b = b
            .period(PERIOD_US as u64)
            .quota(n / 1_000_000_000 * PERIOD_US + n % 1_000_000_000 * PERIOD_US / 1_000_000_000);
        any = true;
    }
    if let Some(p) = period {
        b = b.period(p as u64);
        any = true;
    }
    if let Some(q) = quota {
        b = b.quota(q);
        any = true;
    }
    if let Some(p) = hc.cpu_realtime_period.filter(|v| *v != 0) {
        b = b.realtime_period(p as u64);
        any = true;
    }
    if let Some(r) = hc.cpu_realtime_runtime.filter(|v| *v != 0) {
        b = b.realtime_runtime(r);
        any = true;
    }
    if !any {
        return Ok(None);
    }
    b.build().map(Some).map_err(build_err)
}

/// `--pids-limit`: 0 or negative means unlimited (-1 for the runtime).
pub(crate) fn pids(hc: &HostConfig) -> Result<Option<LinuxPids>, SpecError> {
    let Some(l) = hc.pids_limit else {
        return Ok(None);
    };
    let limit = if l <= 0 { -1 } else { l };
    LinuxPidsBuilder::default()
        .limit(limit)
        .build()
        .map(Some)
        .map_err(build_err)
}

fn throttle(
    list: &Option<Vec<bollard_stubs::models::ThrottleDevice>>,
) -> Result<Vec<LinuxThrottleDevice>, SpecError> {
    let mut out = Vec::new();
    for d in list.iter().flatten() {
        let path = d.path.as_deref().unwrap_or_default();
        let (major, minor) = device_numbers(path)?;
        let rate = d.rate.unwrap_or(0).max(0) as u64;
        out.push(
            LinuxThrottleDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .rate(rate)
                .build()
                .map_err(build_err)?,
        );
    }
    Ok(out)
}

pub(crate) fn block_io(hc: &HostConfig) -> Result<Option<LinuxBlockIo>, SpecError> {
    let mut weights: Vec<LinuxWeightDevice> = Vec::new();
    for d in hc.blkio_weight_device.iter().flatten() {
        let path = d.path.as_deref().unwrap_or_default();
        let (major, minor) = device_numbers(path)?;
        let w = u16::try_from(d.weight.unwrap_or(0))
            .map_err(|_| SpecError::Invalid(format!("invalid blkio weight for {path}")))?;
        weights.push(
            LinuxWeightDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .weight(w)
                .build()
                .map_err(build_err)?,
        );
    }
    let read_bps = throttle(&hc.blkio_device_read_bps)?;
    let write_bps = throttle(&hc.blkio_device_write_bps)?;
    let read_iops = throttle(&hc.blkio_device_read_iops)?;
    let write_iops = throttle(&hc.blkio_device_write_iops)?;
    let weight = hc.blkio_weight.filter(|w| *w != 0);

    if weight.is_none()
        && weights.is_empty()
        && read_bps.is_empty()
        && write_bps.is_empty()
        && read_iops.is_empty()
        && write_iops.is_empty()
    {
        return Ok(None);
    }
    let mut b = LinuxBlockIoBuilder::default();
    if let Some(w) = weight {
        b = b.weight(w);
    }
    if !weights.is_empty() {
        b = b.weight_device(weights);
    }
    if !read_bps.is_empty() {
        b = b.throttle_read_bps_device(read_bps);
    }
    if !write_bps.is_empty() {
        b = b.throttle_write_bps_device(write_bps);
    }
    if !read_iops.is_empty() {
        b = b.throttle_read_iops_device(read_iops);
    }
    if !write_iops.is_empty() {
        b = b.throttle_write_iops_device(write_iops);
    }
    b.build().map(Some).map_err(build_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{ResourcesBlkioWeightDevice, ThrottleDevice};

    #[test]
    fn nothing_set_nothing_written() {
        let hc = HostConfig::default();
        assert!(memory(&hc).unwrap().is_none());
        assert!(cpu(&hc).unwrap().is_none());
        assert!(pids(&hc).unwrap().is_none());
        assert!(block_io(&hc).unwrap().is_none());
    }

    #[test]
    fn memory_limits() {
        let hc = HostConfig {
            memory: Some(100 << 20),
            memory_reservation: Some(50 << 20),
            memory_swappiness: Some(10),
            oom_kill_disable: Some(true),
            kernel_memory_tcp: Some(1 << 20),
            ..Default::default()
        };
        let m = memory(&hc).unwrap().unwrap();
        assert_eq!(m.limit(), Some(100 << 20));
        assert_eq!(m.swap(), Some(200 << 20));
        assert_eq!(m.reservation(), Some(50 << 20));
        assert_eq!(m.swappiness(), Some(10));
        assert_eq!(m.disable_oom_killer(), Some(true));
        assert_eq!(m.kernel_tcp(), Some(1 << 20));

        let hc = HostConfig {
            memory: Some(100),
            memory_swap: Some(-1),
            ..Default::default()
        };
        assert_eq!(memory(&hc).unwrap().unwrap().swap(), Some(-1));
        let hc = HostConfig {
            memory: Some(100),
            memory_swap: Some(50),
            ..Default::default()
        };
        assert!(memory(&hc).is_err());
        let hc = HostConfig {
            memory_swappiness: Some(-1),
            ..Default::default()
        };
        assert!(memory(&hc).unwrap().is_none());
    }

    #[test]
    fn cpu_limits() {
        let hc = HostConfig {
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".into()),
            ..Default::default()
        };
        let c = cpu(&hc).unwrap().unwrap();
        assert_eq!(
            (c.period(), c.quota(), c.shares()),
            (Some(100_000), Some(150_000), Some(512))
        );
        assert_eq!(c.cpus().as_deref(), Some("0-1"));
        let hc = HostConfig {
            cpu_period: Some(50_000),
            cpu_quota: Some(25_000),
            cpu_realtime_runtime: Some(950),
            ..Default::default()
        };
        let c = cpu(&hc).unwrap().unwrap();
        assert_eq!(
            (c.period(), c.quota(), c.realtime_runtime()),
            (Some(50_000), Some(25_000), Some(950))
        );
        let hc = HostConfig {
            nano_cpus: Some(1),
            cpu_period: Some(1),
            ..Default::default()
        };
        assert!(cpu(&hc).is_err());
    }

    #[test]
    fn pids_and_blkio() {
        let hc = HostConfig {
            pids_limit: Some(0),
            ..Default::default()
        };
        assert_eq!(pids(&hc).unwrap().unwrap().limit(), -1);
        let hc = HostConfig {
            pids_limit: Some(100),
            ..Default::default()
        };
        assert_eq!(pids(&hc).unwrap().unwrap().limit(), 100);

        let hc = HostConfig {
            blkio_weight: Some(300),
            blkio_weight_device: Some(vec![ResourcesBlkioWeightDevice {
                path: Some("/dev/null".into()),
                weight: Some(200),
            }]),
            blkio_device_read_bps: Some(vec![ThrottleDevice {
                path: Some("/dev/zero".into()),
                rate: Some(1024),
            }]),
            ..Default::default()
        };
        let b = block_io(&hc).unwrap().unwrap();
        assert_eq!(b.weight(), Some(300));
        let wd = &b.weight_device().as_ref().unwrap()[0];
        assert_eq!((wd.major(), wd.minor(), wd.weight()), (1, 3, Some(200)));
        let t = &b.throttle_read_bps_device().as_ref().unwrap()[0];
        assert_eq!((t.major(), t.minor(), t.rate()), (1, 5, 1024));

        let hc = HostConfig {
            blkio_device_write_iops: Some(vec![ThrottleDevice {
                path: Some("/nope".into()),
                rate: Some(1),
            }]),
            ..Default::default()
        };
        assert!(block_io(&hc).is_err());
    }
}
