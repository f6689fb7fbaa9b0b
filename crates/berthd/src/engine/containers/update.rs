//! `POST /containers/{id}/update`: new limits written straight into the
//! running container's cgroup (v1 or v2), and the restart policy. Plain
//! file writes rather than libcgroups: libcontainer's crates stay in the
//! single-threaded shim (ARCHITECTURE.md), and an update is a few writes.

use berth_api::models::ContainerUpdateBody;

use super::Status;
use crate::engine::cgroups::{self, path as cgroups_path};
use crate::engine::{containers::Containers, EngineError, Result};

fn write(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| EngineError::internal(format!("writing {path}: {e}")))
}

fn apply_v1(rel: &str, u: &ContainerUpdateBody) -> Result<()> {
    let m = cgroups::v1_dir("memory", rel);
    if let Some(mem) = u.memory.filter(|m| *m > 0) {
        let swap = u.memory_swap;
        let cur_memsw: i64 = std::fs::read_to_string(format!("{m}/memory.memsw.limit_in_bytes"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(i64::MAX);
        // memsw must stay >= memory: raise it first when growing.
        let new_sw = match swap {
            Some(-1) => Some(-1),
            Some(s) if s > 0 => Some(s),
            _ => None,
        };
        let memsw = format!("{m}/memory.memsw.limit_in_bytes");
        if std::path::Path::new(&memsw).exists() && (mem > cur_memsw || new_sw.is_some()) {
            let target = new_sw.unwrap_or(mem.max(cur_memsw));
            if target == -1 || target >= mem {
                // Best effort: the final write below settles it.
                let _ = write(&memsw, &target.to_string());
            }
        }
        write(&format!("{m}/memory.limit_in_bytes"), &mem.to_string())?;
        if let Some(s) = new_sw {
            write(&format!("{m}/memory.memsw.limit_in_bytes"), &s.to_string())?;
        }
    }
    if let Some(r) = u.memory_reservation.filter(|m| *m > 0) {
        write(&format!("{m}/memory.soft_limit_in_bytes"), &r.to_string())?;
    }
    let cpu = cgroups::v1_dir("cpu", rel);
    if let Some(s) = u.cpu_shares.filter(|s| *s > 0) {
        write(&format!("{cpu}/cpu.shares"), &s.to_string())?;
    }
    if let Some(n) = u.nano_cpus.filter(|n| *n > 0) {
        write(&format!("{cpu}/cpu.cfs_period_us"), "100000")?;
        write(
            &format!("{cpu}/cpu.cfs_quota_us"),
            &(n * 100_000 / 1_000_000_000).to_string(),
        )?;
    }
    if let Some(p) = u.cpu_period.filter(|p| *p > 0) {
        write(&format!("{cpu}/cpu.cfs_period_us"), &p.to_string())?;
    }
    if let Some(q) = u.cpu_quota.filter(|q| *q != 0) {
        write(&format!("{cpu}/cpu.cfs_quota_us"), &q.to_string())?;
    }
    let cs = cgroups::v1_dir("cpuset", rel);
    if let Some(c) = u.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        write(&format!("{cs}/cpuset.cpus"), c)?;
    }
    if let Some(c) = u.cpuset_mems.as_deref().filter(|c| !c.is_empty()) {
        write(&format!("{cs}/cpuset.mems"), c)?;
    }
    if let Some(p) = u.pids_limit.filter(|p| *p != 0) {
        let v = if p < 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        write(&format!("{}/pids.max", cgroups::v1_dir("pids", rel)), &v)?;
    }
    if let Some(w) = u.blkio_weight.filter(|w| *w > 0) {
        let p = format!("{}/blkio.weight", cgroups::v1_dir("blkio", rel));
        if std::path::Path::new(&p).exists() {
            write(&p, &w.to_string())?;
        }
    }
    Ok(())
}

fn apply_v2(d: &str, u: &ContainerUpdateBody) -> Result<()> {
    if let Some(mem) = u.memory.filter(|m| *m > 0) {
        write(&format!("{d}/memory.max"), &mem.to_string())?;
        if let Some(sw) = u.memory_swap {
            let v = if sw < 0 {
                "max".to_string()
            } else {
                (sw - mem).max(0).to_string()
            };
            write(&format!("{d}/memory.swap.max"), &v)?;
        }
    }
    if let Some(r) = u.memory_reservation.filter(|m| *m > 0) {
        write(&format!("{d}/memory.low"), &r.to_string())?;
    }
    if let Some(s) = u.cpu_shares.filter(|s| *s > 0) {
        // Docker's conversion of shares to weight.
        let w = 1 + ((s - 2) * 9999) / 262142;
        write(&format!("{d}/cpu.weight"), &w.to_string())?;
    }
    if let Some(n) = u.nano_cpus.filter(|n| *n > 0) {
        write(
            &format!("{d}/cpu.max"),
            &format!("{} 100000", n * 100_000 / 1_000_000_000),
        )?;
    }
    if let Some(p) = u.pids_limit.filter(|p| *p != 0) {
        let v = if p < 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        write(&format!("{d}/pids.max"), &v)?;
    }
    if u.cpu_quota.is_some() || u.cpu_period.is_some() {
        // cpu.max is "QUOTA PERIOD"; a quota of 0 or less means no limit.
        let period = u.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
        let quota = match u.cpu_quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        write(&format!("{d}/cpu.max"), &format!("{quota} {period}"))?;
    }
    if let Some(c) = u.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        write(&format!("{d}/cpuset.cpus"), c)?;
    }
    if let Some(m) = u.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        write(&format!("{d}/cpuset.mems"), m)?;
    }
    if let Some(w) = u.blkio_weight.filter(|w| *w > 0) {
        // As runc: blkio weight 10..1000 maps onto io.weight 1..10000.
        let w = 1 + (i64::from(w) - 10) * 9999 / 990;
        write(&format!("{d}/io.weight"), &format!("default {w}"))?;
    }
    Ok(())
}

impl Containers {
    pub async fn update_container(&self, key: &str, u: ContainerUpdateBody) -> Result<Vec<String>> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        super::validate::restart_policy(&berth_api::models::HostConfig {
            restart_policy: u.restart_policy.clone(),
            ..Default::default()
        })?;
        super::validate::cpu(u.nano_cpus, u.cpu_period, u.cpu_quota)?;
        cgroups::refuse_update(&u)?;
        if r.host_config.auto_remove == Some(true)
            && u.restart_policy
                .as_ref()
                .and_then(|p| p.name)
                .is_some_and(|n| {
                    !matches!(
                        n,
                        berth_api::models::RestartPolicyNameEnum::NO
                            | berth_api::models::RestartPolicyNameEnum::EMPTY
                    )
                })
        {
            return Err(EngineError::conflict(format!(
                "Cannot update container {}: Restart policy cannot be updated because AutoRemove is enabled for the container",
                r.id
            )));
        }
        // dockerd's rule: a new memory limit above the stored swap limit
        // (0 when none was set) needs a new swap limit with it.
        if u.memory.unwrap_or(0) != 0
            && u.memory_swap.unwrap_or(0) == 0
            && u.memory.unwrap_or(0) > r.host_config.memory_swap.unwrap_or(0)
        {
            return Err(EngineError::conflict(format!(
                "Cannot update container {}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
                r.id
            )));
        }
        super::validate::resources(&super::validate::Limits {
            memory: u.memory,
            memory_reservation: u.memory_reservation,
            memory_swap: u.memory_swap,
            nano_cpus: u.nano_cpus,
            cpuset_cpus: u.cpuset_cpus.as_deref(),
            cpuset_mems: u.cpuset_mems.as_deref(),
            blkio_weight: u.blkio_weight,
            oom_score_adj: None,
        })?;
        if r.state.status.is_running() && r.state.status != Status::Restarting {
            let rel = cgroups_path(&r.id);
            match cgroups::v2_dir(&rel) {
                Some(d) => apply_v2(&d, &u)?,
                None => apply_v1(&rel, &u)?,
            }
        }
        {
            let mut rec = c.lock();
            let hc = &mut rec.host_config;
            macro_rules! set {
                ($f:ident) => {
                    if u.$f.is_some() {
                        hc.$f = u.$f.clone();
                    }
                };
            }
            set!(cpu_shares);
            set!(memory);
            set!(memory_swap);
            set!(memory_reservation);
            set!(nano_cpus);
            set!(cpu_period);
            set!(cpu_quota);
            set!(cpuset_cpus);
            set!(cpuset_mems);
            set!(pids_limit);
            set!(blkio_weight);
            set!(restart_policy);
        }
        self.persist(&c)?;
        self.container_event(&c.snapshot(), "update", &[]);
        Ok(vec![])
    }
}
