//! The daemon's metrics: dockerd's `engine_daemon_*` families that apply to
//! berth, and berth's own (`berth_*`), kept in one process-wide registry
//! (`prometheus-client`) and encoded in Prometheus' text format on a scrape.
//!
//! Recording is the hot path: a counter is one atomic add; a histogram
//! observation takes its family's read lock for the lookup (labels are
//! `&'static str`, nothing is allocated) and never across an `.await`.
//! What is read at scrape time (container states, shims) is set by
//! `engine::scrape`; nothing here knows the engine's services.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Prometheus' default buckets, which dockerd's timers use.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

/// berth's own request timer: most API requests take well under the 5 ms
/// of Prometheus' first default bucket, so these start at 100 µs.
const REQUEST_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

type Action = [(&'static str, &'static str); 1];

/// One API request's labels: the route template (bounded), the method and
/// the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub code: u16,
}

/// `engine_daemon_engine_info`'s labels, as dockerd names them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet, Default)]
pub struct EngineInfo {
    pub version: String,
    pub commit: String,
    pub architecture: String,
    pub graphdriver: String,
    pub kernel: String,
    pub os: String,
    pub os_type: String,
    pub os_version: String,
    pub daemon_id: String,
}

pub struct Metrics {
    registry: Registry,
    container_actions: Family<Action, Histogram, fn() -> Histogram>,
    network_actions: Family<Action, Histogram, fn() -> Histogram>,
    pub(crate) container_states: Family<Action, Gauge>,
    events: Counter,
    pub(crate) events_subscribers: Gauge,
    pub(crate) engine_info: Family<EngineInfo, Gauge>,
    pub(crate) cpus: Gauge,
    pub(crate) memory: Gauge,
    health_checks: Counter,
    health_checks_failed: Counter,
    container_start: Histogram,
    pub(crate) shims: Gauge,
    pub(crate) shim_memory: Gauge<i64, std::sync::atomic::AtomicI64>,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pull_bytes: Counter<u64, AtomicU64>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics (built on first use).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            container_actions: Family::new_with_constructor(histogram),
            network_actions: Family::new_with_constructor(histogram),
            container_states: Family::default(),
            events: Counter::default(),
            events_subscribers: Gauge::default(),
            engine_info: Family::default(),
            cpus: Gauge::default(),
            memory: Gauge::default(),
            health_checks: Counter::default(),
            health_checks_failed: Counter::default(),
            // A start takes tens of milliseconds: finer steps there.
            container_start: Histogram::new([
                0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0,
            ]),
            shims: Gauge::default(),
            shim_memory: Gauge::default(),
            requests: Family::new_with_constructor(request_histogram),
            pull_bytes: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "engine_daemon_container_actions_seconds",
            "The number of seconds it takes to process each container action",
            m.container_actions.clone(),
        );
        r.register(
            "engine_daemon_network_actions_seconds",
            "The number of seconds it takes to process each network action",
            m.network_actions.clone(),
        );
        r.register(
            "engine_daemon_container_states_containers",
            "The count of containers in various states",
            m.container_states.clone(),
        );
        // prometheus-client appends `_total` to counters.
        r.register(
            "engine_daemon_events",
            "The number of events logged",
            m.events.clone(),
        );
        r.register(
            "engine_daemon_events_subscribers_total",
            "The number of current subscribers to events",
            m.events_subscribers.clone(),
        );
        r.register(
            "engine_daemon_engine_info",
            "The information related to the engine and the OS it is running on",
            m.engine_info.clone(),
        );
        r.register(
            "engine_daemon_engine_cpus_cpus",
            "The number of cpus that the host system of the engine has",
            m.cpus.clone(),
        );
        r.register(
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has",
            m.memory.clone(),
        );
        r.register(
            "engine_daemon_health_checks",
            "The total number of health checks",
            m.health_checks.clone(),
        );
        r.register(
            "engine_daemon_health_checks_failed",
            "The total number of failed health checks",
            m.health_checks_failed.clone(),
        );
        r.register(
            "berth_container_start_seconds",
            "Seconds from a container's creation to its first running state",
            m.container_start.clone(),
        );
        r.register(
            "berth_shims",
            "The number of running berth-shim processes",
            m.shims.clone(),
        );
        r.register(
            "berth_shim_memory_bytes",
            "Resident memory of the running berth-shim processes, summed",
            m.shim_memory.clone(),
        );
        r.register(
            "berth_api_request_duration_seconds",
            "Seconds taken to answer an API request, by route template, method and status code",
            m.requests.clone(),
        );
        r.register(
            "berth_image_pull_bytes",
            "Bytes of image layers downloaded from registries",
            m.pull_bytes.clone(),
        );
        m
    }

    /// A container action (`create`, `start`, `delete`, …) took `d`.
    pub fn container_action(&self, action: &'static str, d: Duration) {
        self.container_actions
            .get_or_create(&[("action", action)])
            .observe(d.as_secs_f64());
    }

    /// A network action (`create`, `delete`, `connect`, `disconnect`) took `d`.
    pub fn network_action(&self, action: &'static str, d: Duration) {
        self.network_actions
            .get_or_create(&[("action", action)])
            .observe(d.as_secs_f64());
    }

    pub fn event(&self) {
        self.events.inc();
    }

    pub fn health_check(&self, failed: bool) {
        self.health_checks.inc();
        if failed {
            self.health_checks_failed.inc();
        }
    }

    /// A container reached running `d` after it was created.
    pub fn container_started(&self, d: Duration) {
        self.container_start.observe(d.as_secs_f64());
    }

    pub fn request(&self, labels: &RequestLabels, d: Duration) {
        self.requests.get_or_create(labels).observe(d.as_secs_f64());
    }

    pub fn pull_bytes(&self, n: u64) {
        self.pull_bytes.inc_by(n);
    }

    /// The registry in Prometheus' text format (0.0.4).
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(16 << 10);
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry)
        {
            tracing::warn!(error = %e, "encoding metrics");
        }
        s
    }
}

/// Times one action: `done` records it (an action that failed is not
/// recorded, as dockerd records only completed ones).
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn container(self, action: &'static str) {
        get().container_action(action, self.0.elapsed());
    }

    pub fn network(self, action: &'static str) {
        get().network_action(action, self.0.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_with_dockerd_names() {
        let m = Metrics::new();
        m.container_action("start", Duration::from_millis(20));
        m.event();
        m.request(
            &RequestLabels {
                route: "/containers/{id}/start",
                method: "POST",
                code: 204,
            },
            Duration::from_millis(3),
        );
        m.pull_bytes(10);
        let t = m.encode();
        for want in [
            "engine_daemon_container_actions_seconds_count{action=\"start\"} 1",
            "engine_daemon_events_total 1",
            "berth_api_request_duration_seconds_count{route=\"/containers/{id}/start\",method=\"POST\",code=\"204\"} 1",
            "berth_image_pull_bytes_total 10",
            "# TYPE engine_daemon_container_actions_seconds histogram",
        ] {
            assert!(t.contains(want), "{want} missing from:\n{t}");
        }
    }
}
