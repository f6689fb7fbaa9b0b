//! `GET /containers/{id}/stats`: Docker's JSON shape, read from the
//! container's cgroup (v1 or v2) and its network namespace.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::Status;
use crate::engine::cgroups::{self, path as cgroups_path};
use crate::engine::{containers::Containers, Result};

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn num(p: &str) -> Option<u64> {
    read(p)?.trim().parse().ok()
}

fn kv(p: &str) -> HashMap<String, u64> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Host CPU time in nanoseconds, as Docker computes `system_cpu_usage`.
fn system_cpu() -> u64 {
    let stat = read("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

fn networks(pid: i64) -> Value {
    let mut out = Map::new();
    if pid <= 0 {
        return Value::Object(out);
    }
    for l in read(&format!("/proc/{pid}/net/dev"))
        .unwrap_or_default()
        .lines()
        .skip(2)
    {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
            }),
        );
    }
    Value::Object(out)
}

/// cgroup v1 block I/O, as moby reads it: one list per stat file (empty,
/// not null, when the file is absent — CFQ files often are).
fn blkio_v1(rel: &str) -> Value {
    let dir = cgroups::v1_dir("blkio", rel);
    // Lines are `maj:min op value`, or `maj:min value` for time and sectors.
    let entries = |files: &[&str]| -> Vec<Value> {
        let text = files
            .iter()
            .find_map(|f| read(&format!("{dir}/{f}")))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (dev, op, value) = match f.as_slice() {
                    [dev, op, value] => (*dev, op.to_lowercase(), *value),
                    [dev, value] => (*dev, String::new(), *value),
                    _ => return None,
                };
                let (maj, min) = dev.split_once(':')?;
                Some(json!({"major": maj.parse::<u64>().unwrap_or(0), "minor": min.parse::<u64>().unwrap_or(0), "op": op, "value": value.parse::<u64>().unwrap_or(0)}))
            })
            .collect()
    };
    json!({
        "io_service_bytes_recursive": entries(&["blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"]),
        "io_serviced_recursive": entries(&["blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced"]),
        "io_queue_recursive": entries(&["blkio.io_queued_recursive"]),
        "io_service_time_recursive": entries(&["blkio.io_service_time_recursive"]),
        "io_wait_time_recursive": entries(&["blkio.io_wait_time_recursive"]),
        "io_merged_recursive": entries(&["blkio.io_merged_recursive"]),
        "io_time_recursive": entries(&["blkio.time_recursive"]),
        "sectors_recursive": entries(&["blkio.sectors_recursive"]),
    })
}

/// One sample: (cpu_stats, memory_stats, pids_stats, blkio_stats).
fn sample(id: &str, ncpu: u64) -> (Value, Value, Value, Value) {
    let sys = system_cpu();
    if cgroups::driver() == cgroups::Driver::None {
        return proc_sample(id, ncpu, sys);
    }
    let rel = cgroups_path(id);
    if let Some(d) = cgroups::v2_dir(&rel) {
        let cpu = kv(&format!("{d}/cpu.stat"));
        let usage = cpu.get("usage_usec").copied().unwrap_or(0) * 1000;
        let cpu_stats = json!({
            "cpu_usage": {"total_usage": usage, "usage_in_kernelmode": cpu.get("system_usec").copied().unwrap_or(0) * 1000, "usage_in_usermode": cpu.get("user_usec").copied().unwrap_or(0) * 1000},
            "system_cpu_usage": sys, "online_cpus": ncpu,
            "throttling_data": {"periods": cpu.get("nr_periods").copied().unwrap_or(0), "throttled_periods": cpu.get("nr_throttled").copied().unwrap_or(0), "throttled_time": cpu.get("throttled_usec").copied().unwrap_or(0) * 1000},
        });
        let limit = read(&format!("{d}/memory.max"))
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(crate::engine::host::mem_total_u64);
        let mem = json!({
            "usage": num(&format!("{d}/memory.current")).unwrap_or(0),
            "stats": kv(&format!("{d}/memory.stat")),
            "limit": limit,
        });
        let pids = json!({"current": num(&format!("{d}/pids.current")).unwrap_or(0), "limit": num(&format!("{d}/pids.max")).unwrap_or(0)});
        return (
            cpu_stats,
            mem,
            pids,
            json!({"io_service_bytes_recursive": null}),
        );
    }
    let acct = cgroups::v1_dir("cpuacct", &rel);
    let per_cpu: Vec<u64> = read(&format!("{acct}/cpuacct.usage_percpu"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let st = kv(&format!("{acct}/cpuacct.stat"));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let thr = kv(&format!("{}/cpu.stat", cgroups::v1_dir("cpu", &rel)));
    let cpu_stats = json!({
        "cpu_usage": {
            "total_usage": num(&format!("{acct}/cpuacct.usage")).unwrap_or(0),
            "percpu_usage": per_cpu,
            "usage_in_kernelmode": st.get("system").copied().unwrap_or(0) * (1_000_000_000 / hz),
            "usage_in_usermode": st.get("user").copied().unwrap_or(0) * (1_000_000_000 / hz),
        },
        "system_cpu_usage": sys, "online_cpus": ncpu,
        "throttling_data": {"periods": thr.get("nr_periods").copied().unwrap_or(0), "throttled_periods": thr.get("nr_throttled").copied().unwrap_or(0), "throttled_time": thr.get("throttled_time").copied().unwrap_or(0)},
    });
    let m = cgroups::v1_dir("memory", &rel);
    let mem = json!({
        "usage": num(&format!("{m}/memory.usage_in_bytes")).unwrap_or(0),
        "max_usage": num(&format!("{m}/memory.max_usage_in_bytes")).unwrap_or(0),
        "failcnt": num(&format!("{m}/memory.failcnt")).unwrap_or(0),
        "stats": kv(&format!("{m}/memory.stat")),
        "limit": num(&format!("{m}/memory.limit_in_bytes")).unwrap_or(0).min(crate::engine::host::mem_total_u64()),
    });
    let p = cgroups::v1_dir("pids", &rel);
    let limit = read(&format!("{p}/pids.max"))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let pids = json!({"current": num(&format!("{p}/pids.current")).unwrap_or(0), "limit": limit});
    (cpu_stats, mem, pids, blkio_v1(&rel))
}

/// Without cgroups (rootless, driver `none`): the container's processes as
/// `/proc` shows them (CPU time, resident memory against the host's, their
/// number); no block I/O. dockerd shows zeros there (its stats fail); the
/// difference is in ARCHITECTURE.md.
fn proc_sample(id: &str, ncpu: u64, sys: u64) -> (Value, Value, Value, Value) {
    let u = cgroups::proc_usage(id);
    let cpu_stats = json!({
        "cpu_usage": {"total_usage": u.user_ns + u.system_ns, "usage_in_kernelmode": u.system_ns, "usage_in_usermode": u.user_ns},
        "system_cpu_usage": sys, "online_cpus": ncpu,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    });
    let mem = json!({"usage": u.rss, "stats": {}, "limit": crate::engine::host::mem_total_u64()});
    let pids = json!({"current": u.count, "limit": 0});
    (
        cpu_stats,
        mem,
        pids,
        json!({"io_service_bytes_recursive": null}),
    )
}

const ZERO: &str = "0001-01-01T00:00:00Z";

impl Containers {
    /// Streams stats lines (one a second), or a single one. With `stream`
    /// false and not `one_shot`, the answer waits a second so that
    /// `precpu_stats` is a real previous sample, as Docker does.
    pub fn container_stats(
        self: &Arc<Self>,
        key: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<mpsc::Receiver<Bytes>> {
        let c = self.find(key)?;
        let (tx, rx) = mpsc::channel(4);
        let me = self.clone();
        tokio::spawn(async move {
            let ncpu = crate::engine::host::ncpu() as u64;
            let mut prev: Option<(Value, String)> = None;
            let mut shutdown = me.shutdown_signal();
            loop {
                let r = c.snapshot();
                let running = r.state.status.is_running() && r.state.status != Status::Restarting;
                let line = if running {
                    let (cpu, mut mem, mut pids, blkio) = sample(&r.id, ncpu);
                    // moby's `omitempty` counters: absent when zero.
                    drop_zero(&mut mem, "failcnt");
                    drop_zero(&mut pids, "limit");
                    let read = super::now();
                    let (precpu, preread) =
                        prev.clone().unwrap_or((zero_cpu_stats(), ZERO.to_string()));
                    let v = json!({
                        "read": read, "preread": preread,
                        "pids_stats": pids, "blkio_stats": blkio,
                        "num_procs": 0, "storage_stats": {},
                        "cpu_stats": cpu, "precpu_stats": precpu,
                        "memory_stats": mem,
                        "name": format!("/{}", r.name), "id": r.id,
                        "networks": networks(r.state.pid),
                    });
                    prev = Some((v["cpu_stats"].clone(), read));
                    v
                } else {
                    json!({
                        "read": ZERO, "preread": ZERO, "pids_stats": {},
                        "blkio_stats": {"io_service_bytes_recursive": null, "io_serviced_recursive": null, "io_queue_recursive": null, "io_service_time_recursive": null, "io_wait_time_recursive": null, "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null},
                        "num_procs": 0, "storage_stats": {}, "cpu_stats": zero_cpu_stats(),
                        "precpu_stats": zero_cpu_stats(), "memory_stats": {},
                        "name": format!("/{}", r.name), "id": r.id,
                    })
                };
                let first_of_pair = !stream && !one_shot && running && line["preread"] == ZERO;
                if !first_of_pair {
                    let mut b = serde_json::to_vec(&line).unwrap_or_default();
                    b.push(b'\n');
                    if tx.send(Bytes::from(b)).await.is_err() {
                        return;
                    }
                    if !stream {
                        return;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tx.closed() => return,
                    _ = shutdown.changed() => return,
                }
            }
        });
        Ok(rx)
    }
}

/// CPU stats with no sample: moby's zero `CPUStats` (its always-emitted
/// fields at zero).
fn zero_cpu_stats() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

fn drop_zero(v: &mut Value, key: &str) {
    if let Some(m) = v.as_object_mut() {
        if m.get(key).and_then(Value::as_u64) == Some(0) {
            m.remove(key);
        }
    }
}
