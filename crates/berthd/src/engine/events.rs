//! The event bus: every object reports here; `/events` subscribers get a
//! replay of the recent past (for `since`) followed by the live feed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use berth_api::events::{Actor, Event};
use berth_api::filters::Filters;
use tokio::sync::broadcast;

/// How many past events are kept for `since` replays (moby keeps 256).
const HISTORY: usize = 1024;

pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    history: Mutex<VecDeque<Arc<Event>>>,
    listeners: AtomicI64,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// A live subscription; dropping it unregisters the listener.
pub struct Subscription<'a> {
    pub past: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    bus: &'a EventBus,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        self.bus.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            listeners: AtomicI64::new(0),
        }
    }

    pub fn listeners(&self) -> i64 {
        self.listeners.load(Ordering::Relaxed)
    }

    /// Records and broadcasts one event.
    pub fn publish(&self, typ: &str, action: &str, id: &str, attributes: HashMap<String, String>) {
        let nanos = now_nanos();
        let legacy = matches!(typ, "container" | "image");
        let ev = Arc::new(Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if typ == "container" {
                attributes.get("image").cloned()
            } else {
                None
            },
            typ: typ.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        });
        tracing::debug!(typ, action, id, "event");
        crate::engine::metrics::get().event();
        // Under the history lock so a concurrent subscriber sees each event
        // exactly once: either in its replay or on its live feed.
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(ev.clone());
        let _ = self.tx.send(ev);
    }

    /// Past events at or after `since_nanos` (if given), then the live feed.
    pub fn subscribe(&self, since_nanos: Option<i64>) -> Subscription<'_> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.tx.subscribe();
        let past = match since_nanos {
            Some(s) => h.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => Vec::new(),
        };
        drop(h);
        self.listeners.fetch_add(1, Ordering::Relaxed);
        Subscription {
            past,
            live,
            bus: self,
        }
    }
}

pub const FILTER_KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// moby's events filter semantics.
pub fn matches(f: &Filters, ev: &Event) -> bool {
    let action_base = ev.action.split(':').next().unwrap_or("");
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    let by_id_or_name = |key: &str, typ: &str| -> bool {
        if !f.contains(key) {
            return true;
        }
        if ev.typ != typ {
            // container=x also selects image events? No: only objects of that type.
            return false;
        }
        f.get(key)
            .any(|v| v == ev.actor.id || ev.actor.id.starts_with(v) || v == attr("name"))
    };
    let image_ok = if f.contains("image") {
        f.get("image").any(|v| {
            let img = if ev.typ == "image" {
                ev.actor.id.as_str()
            } else {
                attr("image")
            };
            let name = attr("name");
            v == img
                || v == name
                || img.strip_suffix(":latest") == Some(v)
                || img
                    .trim_start_matches("sha256:")
                    .starts_with(v.trim_start_matches("sha256:"))
        })
    } else {
        true
    };
    (f.exact_match("event", &ev.action) || f.exact_match("event", action_base))
        && f.exact_match("type", &ev.typ)
        && f.exact_match("scope", &ev.scope)
        && by_id_or_name("container", "container")
        && by_id_or_name("network", "network")
        && by_id_or_name("volume", "volume")
        && by_id_or_name("daemon", "daemon")
        && by_id_or_name("plugin", "plugin")
        && image_ok
        && f.match_labels("label", Some(&ev.actor.attributes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replays_since_and_streams_live() {
        let bus = EventBus::new();
        bus.publish(
            "container",
            "create",
            "abc",
            attrs(&[("name", "web"), ("image", "busybox")]),
        );
        let mut sub = bus.subscribe(Some(0));
        assert_eq!(sub.past.len(), 1);
        assert_eq!(sub.past[0].from.as_deref(), Some("busybox"));
        bus.publish("volume", "create", "v1", HashMap::new());
        let ev = sub.live.try_recv().unwrap();
        assert_eq!((ev.typ.as_str(), ev.action.as_str()), ("volume", "create"));
        assert!(ev.status.is_none());
        assert_eq!(bus.listeners(), 1);
        drop(sub);
        assert_eq!(bus.listeners(), 0);
    }

    #[test]
    fn filters_like_moby() {
        let bus = EventBus::new();
        bus.publish(
            "container",
            "exec_start: sh",
            "abcdef",
            attrs(&[("name", "web"), ("image", "busybox"), ("a", "b")]),
        );
        let ev = bus.subscribe(Some(0)).past.remove(0);
        let f = |s: &str| Filters::parse(s).unwrap();
        assert!(matches(&f(r#"{"type":{"container":true}}"#), &ev));
        assert!(!matches(&f(r#"{"type":{"image":true}}"#), &ev));
        assert!(matches(&f(r#"{"event":{"exec_start":true}}"#), &ev));
        assert!(matches(&f(r#"{"container":{"web":true}}"#), &ev));
        assert!(matches(&f(r#"{"container":{"abc":true}}"#), &ev));
        assert!(!matches(&f(r#"{"container":{"db":true}}"#), &ev));
        assert!(matches(&f(r#"{"image":{"busybox":true}}"#), &ev));
        assert!(matches(&f(r#"{"label":{"a=b":true}}"#), &ev));
        assert!(!matches(&f(r#"{"label":{"a=c":true}}"#), &ev));
        assert!(!matches(&f(r#"{"volume":{"x":true}}"#), &ev));
    }
}
