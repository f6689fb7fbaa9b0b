//! A metrics scrape: what is read at its instant (container states, event
//! subscribers, the host, the shims and their memory) is set into
//! `engine::metrics`, then the whole registry is encoded. The cost is
//! bounded: one walk of the container index and one of `/proc`.

use crate::engine::containers::release::shim_of;
use crate::engine::metrics::{self, EngineInfo};
use crate::engine::{host, Engine};

impl Engine {
    /// `GET /metrics`: the Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        let m = metrics::get();
        let (total, running, paused) = self.containers.container_counts();
        for (state, n) in [
            ("running", running),
            ("paused", paused),
            ("stopped", total - running - paused),
        ] {
            m.container_states.get_or_create(&[("state", state)]).set(n);
        }
        m.events_subscribers.set(self.events.listeners());
        m.cpus.set(host::ncpu());
        m.memory.set(host::mem_total());
        let info = EngineInfo {
            version: super::VERSION.into(),
            commit: env!("BERTH_GIT_COMMIT").into(),
            architecture: host::architecture(),
            graphdriver: super::fs::driver::current().name().into(),
            kernel: host::kernel_version(),
            os: host::operating_system(),
            os_type: "linux".into(),
            os_version: host::os_version(),
            daemon_id: self.id.clone(),
        };
        m.engine_info.get_or_create(&info).set(1);
        let (count, rss) = shims(&self.config.exec_root.join("containers"));
        m.shims.set(count);
        m.shim_memory.set(rss);
        m.encode()
    }
}

/// This daemon's shims (by their command line, as reconciliation finds
/// them) and their resident memory summed, from `/proc/<pid>/statm`.
fn shims(bundles: &std::path::Path) -> (i64, i64) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let page = host_page_size();
    let mut count = 0;
    let mut rss = 0;
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if shim_of(pid, bundles).is_none() {
            continue;
        }
        count += 1;
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/statm")) {
            let pages: i64 = s
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            rss += pages * page;
        }
    }
    (count, rss)
}

fn host_page_size() -> i64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p
    } else {
        4096
    }
}
