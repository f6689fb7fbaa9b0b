//! A measurement, not a CI test (`#[ignore]`; `bench/ui_paint.sh` runs it):
//! the dashboard's first paint and memory with many containers, and how
//! long the page takes to show a burst of 50 state changes.
//!
//! `BERTH_UI_PAINT_N` containers (300; `--network none`), running `sleep` unless
//! `BERTH_UI_PAINT_RUNNING=0` (then created only); `BERTH_UI_PAINT_LOADS`
//! page loads (7), each from `about:blank` with the browser's cache
//! cleared. Per load: first-contentful-paint and the time until
//! `body[data-ready="1"]` (a MutationObserver installed before the page's
//! own scripts, through CDP), both from the navigation's start. Then the
//! RSS of `berth ui` and the tab's JS heap (`performance.memory`); then 50
//! more containers are started at once through the API and the time until
//! all 50 show `running`; the page's longest main-thread stall (a 10 ms
//! timer's worst delay) idle, during that burst, and with the rows in
//! view (the newest, those 50 among them) showing live stats.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::browser::{self, Browser};
use super::dashboard::Ui;
use berth_tests::{daemon, raw_request, Daemon};
use serde_json::{json, Value};

fn env_num(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` over `items` on `threads` threads.
fn parallel(items: &[String], threads: usize, f: impl Fn(&str) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(it) = items.get(i) else { break };
                f(it);
            });
        }
    });
}

fn create(d: &Daemon, n: usize, prefix: &str) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}")).collect();
    let ids = std::sync::Mutex::new(Vec::new());
    let sock = d.sock.clone();
    parallel(&names, 4, |name| {
        // No network: a test daemon's bridge is a /24.
        let body = json!({"Image": "busybox", "Cmd": ["sleep", "3600"], "StopTimeout": 1,
                          "HostConfig": {"NetworkMode": "none"}});
        let (st, _, b) = raw_request(
            &sock,
            "POST",
            &format!("/containers/create?name={name}"),
            Some(body.to_string().as_bytes()),
        )
        .expect("create");
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
        let id = berth_tests::body_json(&b)["Id"]
            .as_str()
            .expect("id")
            .to_string();
        ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    });
    ids.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn start_all(d: &Daemon, ids: &[String]) {
    let sock = d.sock.clone();
    parallel(ids, 4, |id| {
        let (st, _, b) =
            raw_request(&sock, "POST", &format!("/containers/{id}/start"), None).expect("start");
        assert!(st == 204 || st == 304, "{}", String::from_utf8_lossy(&b));
    });
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

const READY_HOOK: &str = "
new MutationObserver((_, o) => {
  if (document.body && document.body.dataset.ready === '1' && !window.__berthReadyAt) {
    window.__berthReadyAt = performance.now();
    o.disconnect();
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-ready']});
";

#[test]
#[ignore = "a measurement: bench/ui_paint.sh"]
fn first_paint_and_memory_with_many_containers() {
    let Some(drv) = browser::driver() else { return };
    let n = env_num("BERTH_UI_PAINT_N", 300);
    let loads = env_num("BERTH_UI_PAINT_LOADS", 7).max(1);
    let run = env_num("BERTH_UI_PAINT_RUNNING", 1) != 0;
    let d = daemon();
    let t = Instant::now();
    let ids = create(&d, n, "paint");
    if run {
        start_all(&d, &ids);
    }
    let later = create(&d, 50, "burst");
    eprintln!(
        "{n} containers ({}) + 50 created in {:.1} s",
        if run { "running" } else { "created" },
        t.elapsed().as_secs_f64()
    );

    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    b.cdp("Page.enable", json!({}));
    b.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": READY_HOOK }),
    );
    let (mut fcps, mut readys) = (Vec::new(), Vec::new());
    for i in 0..loads {
        b.goto("about:blank");
        b.cdp("Network.clearBrowserCache", json!({}));
        b.goto(&ui.url);
        b.wait_js(
            "data-ready",
            Duration::from_secs(60),
            "return window.__berthReadyAt || 0;",
        );
        let m = b.js(
            "const f = performance.getEntriesByName('first-contentful-paint')[0];
             return [f ? f.startTime : -1, window.__berthReadyAt,
                     document.querySelectorAll('[data-testid=\"container-row\"]').length];",
        );
        let (fcp, ready) = (m[0].as_f64().unwrap_or(-1.0), m[1].as_f64().unwrap_or(-1.0));
        eprintln!("load {i}: first-contentful-paint {fcp:.0} ms, data-ready {ready:.0} ms, rows in DOM {}", m[2]);
        fcps.push(fcp);
        readys.push(ready);
    }
    let heap = b.js(
        "return performance.memory ? [performance.memory.usedJSHeapSize, performance.memory.totalJSHeapSize] : null;",
    );
    let (rss, hwm) = rss_kib(ui.pid());
    if std::env::var_os("BERTH_UI_PAINT_SHOT").is_some() {
        b.screenshot(&format!("paint-{n}"));
    }

    // Every row in the DOM (they render in slices after the first), then
    // the page's longest main-thread stall: idle for 2 s, during 50 state
    // changes at once, and for 5 s with the rows in view showing live stats.
    let t_rows = Instant::now();
    b.wait_js(
        "every row in the DOM",
        Duration::from_secs(60),
        &format!(
            "return document.querySelectorAll('[data-testid=\"container-row\"]').length >= {};",
            n + 50
        ),
    );
    eprintln!(
        "all {} rows in the DOM {:.0} ms after data-ready was read",
        n + 50,
        t_rows.elapsed().as_secs_f64() * 1000.0
    );
    let lag_probe = "window.__berthLag = 0; let last = performance.now();
          clearInterval(window.__berthLagTimer);
          window.__berthLagTimer = setInterval(() => {
            const now = performance.now();
            window.__berthLag = Math.max(window.__berthLag, now - last - 10);
            last = now;
          }, 10); return true;";
    let lag_read = "clearInterval(window.__berthLagTimer); return window.__berthLag;";
    b.js(lag_probe);
    std::thread::sleep(Duration::from_secs(2));
    let idle_lag = b.js(lag_read);
    b.js(lag_probe);
    let sel: Vec<String> = later
        .iter()
        .map(|id| format!("[data-testid=\"container-row\"][data-id=\"{id}\"] [data-testid=\"container-state\"]"))
        .collect();
    let sel = serde_json::to_string(&sel).expect("json");
    let t = Instant::now();
    start_all(&d, &later);
    let started = t.elapsed();
    b.wait_js(
        "50 rows running",
        Duration::from_secs(60),
        &format!(
            "return {sel}.every(s => {{ const e = document.querySelector(s); return !e || e.textContent.trim() === 'running'; }})
               && {sel}.some(s => document.querySelector(s));"
        ),
    );
    let shown = t.elapsed();
    let lag = b.js(lag_read);
    b.js(lag_probe);
    std::thread::sleep(Duration::from_secs(5));
    let live_lag = b.js(lag_read);

    let mib = |v: &Value| v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    eprintln!(
        "==== berth ui, {n} containers ({}) ====",
        if run { "running" } else { "created" }
    );
    eprintln!(
        "first-contentful-paint: median {:.0} ms of {loads} loads {fcps:.0?}",
        median(fcps.clone())
    );
    eprintln!(
        "data-ready:             median {:.0} ms of {loads} loads {readys:.0?}",
        median(readys.clone())
    );
    eprintln!(
        "berth ui RSS: {:.1} MiB now, {:.1} MiB peak",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    match heap.as_array() {
        Some(h) => eprintln!(
            "tab JS heap: {:.1} MiB used, {:.1} MiB total",
            mib(&h[0]),
            mib(&h[1])
        ),
        None => eprintln!("tab JS heap: performance.memory unavailable"),
    }
    eprintln!(
        "50 starts: API done in {:.0} ms, all shown running {:.0} ms after the last; longest main-thread stall {:.0} ms",
        started.as_secs_f64() * 1000.0,
        (shown - started).as_secs_f64() * 1000.0,
        lag.as_f64().unwrap_or(-1.0)
    );
    eprintln!(
        "longest main-thread stall: idle {:.0} ms; with live stats of the rows in view (5 s) {:.0} ms",
        idle_lag.as_f64().unwrap_or(-1.0),
        live_lag.as_f64().unwrap_or(-1.0)
    );

    drop(b);
    drop(ui);
    let all: Vec<String> = ids.into_iter().chain(later).collect();
    let sock = Arc::new(d.sock.clone());
    parallel(&all, 4, |id| {
        let _ = raw_request(&sock, "DELETE", &format!("/containers/{id}?force=1"), None);
    });
}
