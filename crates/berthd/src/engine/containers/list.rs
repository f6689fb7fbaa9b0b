//! `GET /containers/json`: which containers a list shows, with dockerd's
//! filters (and its messages for bad filter values), newest first.

use std::collections::HashSet;
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::models::ContainerSummary;

use super::{Container, Record, Status};
use crate::engine::{containers::Containers, EngineError, Result};

const KEYS: &[&str] = &[
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "before",
    "since",
    "network",
    "volume",
    "health",
    "isolation",
    "publish",
    "expose",
    "is-task",
];

const STATES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

const HEALTH: &[&str] = &["starting", "healthy", "unhealthy", "none"];

/// The filters, checked and resolved once per request.
struct Query<'a> {
    f: &'a Filters,
    names: Vec<regex::Regex>,
    exited: Vec<i64>,
    ancestors: Option<HashSet<String>>,
    before: Option<String>,
    since: Option<String>,
    publish: Option<HashSet<String>>,
    expose: Option<HashSet<String>>,
    is_task: Option<bool>,
}

/// Go's `strconv.ParseUint(s, 10, 16)` error text, which dockerd passes on.
fn go_u16(s: &str) -> std::result::Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse::<u16>()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// `port[/proto]` or `a-b[/proto]` → every `port/proto` it names.
fn port_set(kind: &str, values: Vec<&str>) -> Result<Option<HashSet<String>>> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut out = HashSet::new();
    for v in values {
        let (range, proto) = v.split_once('/').unwrap_or((v, "tcp"));
        let bad = |why: String| {
            EngineError::internal(format!("error while looking up for {kind} {v}: {why}"))
        };
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (go_u16(a).map_err(bad)?, go_u16(b).map_err(bad)?),
            None => {
                let p = go_u16(range).map_err(bad)?;
                (p, p)
            }
        };
        if b < a {
            return Err(bad(format!(
                "Invalid range specified for the Port: {range}"
            )));
        }
        for p in a..=b {
            out.insert(format!("{p}/{proto}"));
        }
    }
    Ok(Some(out))
}

impl<'a> Query<'a> {
    fn new(engine: &Containers, f: &'a Filters) -> Result<Self> {
        f.validate(KEYS)?;
        for st in f.get("status") {
            if !STATES.contains(&st) {
                return Err(EngineError::invalid(format!(
                    "invalid filter 'status={st}'"
                )));
            }
        }
        for h in f.get("health") {
            if !HEALTH.contains(&h) {
                return Err(EngineError::invalid(format!(
                    "Unrecognised filter value for health: {h}"
                )));
            }
        }
        let exited = f
            .get("exited")
            .map(|e| {
                e.parse::<i64>().map_err(|_| {
                    EngineError::internal(format!("strconv.Atoi: parsing {e:?}: invalid syntax"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let is_task = if f.contains("is-task") {
            let vals: Vec<&str> = f.get("is-task").collect();
            let b = vals
                .iter()
                .find_map(|v| match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => Some(true),
                    "false" | "0" => Some(false),
                    _ => None,
                });
            Some(b.ok_or_else(|| {
                EngineError::invalid(format!("invalid filter 'is-task=[{}]'", vals.join(" ")))
            })?)
        } else {
            None
        };
        // dockerd answers an unknown container here with a 500.
        let created_of = |key: &str| -> Result<String> {
            engine
                .find(key)
                .map(|c| c.snapshot().created)
                .map_err(|_| EngineError::internal(format!("no such container {key}")))
        };
        let before = f.get("before").last().map(created_of).transpose()?;
        let since = f.get("since").last().map(created_of).transpose()?;
        // An image and every image built on it; unknown names match nothing.
        let ancestors = f.contains("ancestor").then(|| {
            let mut set = HashSet::new();
            let mut todo: Vec<String> = f
                .get("ancestor")
                .filter_map(|a| engine.images.resolve(a).ok().map(|i| i.id.clone()))
                .collect();
            while let Some(id) = todo.pop() {
                if set.insert(id.clone()) {
                    todo.extend(engine.images.children(&id));
                }
            }
            set
        });
        Ok(Self {
            f,
            // Not a valid expression: matches only by equality (as dockerd).
            names: f
                .get("name")
                .filter_map(|n| regex::Regex::new(n).ok())
                .collect(),
            exited,
            ancestors,
            before,
            since,
            publish: port_set("publish", f.get("publish").collect())?,
            expose: port_set("expose", f.get("expose").collect())?,
            is_task,
        })
    }

    fn name_matches(&self, name: &str) -> bool {
        if !self.f.contains("name") {
            return true;
        }
        let slashed = format!("/{name}");
        [name, slashed.as_str()].iter().any(|n| {
            self.f.get("name").any(|v| v == *n) || self.names.iter().any(|re| re.is_match(n))
        })
    }

    fn matches(&self, r: &Record) -> bool {
        let f = self.f;
        if !f.prefix_match("id", &r.id)
            || !self.name_matches(&r.name)
            || !f.match_labels("label", r.config.labels.as_ref())
            || !f.exact_match("status", r.state.status.as_str())
        {
            return false;
        }
        if !self.exited.is_empty() {
            // Only containers that ran and stopped have an exit code.
            let stopped = r.state.status != Status::Created && !r.state.status.is_running();
            if !stopped || !self.exited.contains(&r.state.exit_code) {
                return false;
            }
        }
        if self.is_task == Some(true) {
            // berth runs no swarm tasks.
            return false;
        }
        if let Some(a) = &self.ancestors {
            if !a.contains(&r.image_id) {
                return false;
            }
        }
        if let Some(b) = &self.before {
            if &r.created >= b {
                return false;
            }
        }
        if let Some(s) = &self.since {
            if &r.created <= s {
                return false;
            }
        }
        if f.contains("volume")
            && !f.get("volume").any(|v| {
                r.mounts.iter().any(|m| {
                    (!m.name.is_empty() && m.name == v) || m.destination == v || m.source == v
                })
            })
        {
            return false;
        }
        if f.contains("network")
            && !f.get("network").any(|v| {
                r.endpoints.iter().any(|(name, ep)| {
                    name == v
                        || ep
                            .network_id
                            .as_deref()
                            .is_some_and(|id| !id.is_empty() && id.starts_with(v))
                })
            })
        {
            return false;
        }
        if f.contains("health") {
            let h = r
                .health
                .as_ref()
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "none".into());
            if !f.get("health").any(|v| v == h) {
                return false;
            }
        }
        // Ports count while the container has its network (as dockerd's
        // `NetworkSettings.Ports`).
        if self.publish.is_some() || self.expose.is_some() {
            let running = r.state.status.is_running();
            let ports = r.ports.clone().unwrap_or_default();
            if let Some(want) = &self.publish {
                let hit = running
                    && ports.iter().any(|(k, binds)| {
                        let proto = k.split_once('/').map(|(_, p)| p).unwrap_or("tcp");
                        binds.iter().flatten().any(|b| {
                            b.host_port
                                .as_deref()
                                .is_some_and(|hp| want.contains(&format!("{hp}/{proto}")))
                        })
                    });
                if !hit {
                    return false;
                }
            }
            if let Some(want) = &self.expose {
                let exposed = r.config.exposed_ports.clone().unwrap_or_default();
                let hit = running
                    && (ports.keys().any(|k| want.contains(k))
                        || exposed.keys().any(|k| want.contains(k)));
                if !hit {
                    return false;
                }
            }
        }
        true
    }
}

impl Containers {
    pub fn list_containers(
        &self,
        all: bool,
        limit: Option<i64>,
        size: bool,
        filters: &Filters,
    ) -> Result<Vec<ContainerSummary>> {
        let q = Query::new(self, filters)?;
        let limit = limit.filter(|l| *l > 0);
        // A status filter or a limit lists stopped containers too.
        let all = all || filters.contains("status") || limit.is_some();
        // Each record is read under its lock, not cloned: a list of a
        // thousand containers cloned a thousand records (their configs,
        // host configs, mounts) to read a few fields of each.
        let mut cs: Vec<(String, Arc<Container>)> = self
            .all()
            .into_iter()
            .map(|c| {
                let created = c.lock().created.clone();
                (created, c)
            })
            .collect();
        cs.sort_by(|(ca, a), (cb, b)| cb.cmp(ca).then(b.id.cmp(&a.id)));
        let link_names = self.link_names(cs.iter().map(|(_, c)| c));
        // At its final size: grown by doubling, it copied the summaries
        // made so far at each step (~1 ms of a list of a thousand).
        let cap = limit.map_or(cs.len(), |l| cs.len().min(l as usize));
        let mut out = Vec::with_capacity(cap);
        for (_, c) in cs {
            let r = c.lock();
            if !all && !r.state.status.is_running() {
                continue;
            }
            if !q.matches(&r) {
                continue;
            }
            // Sizes are walked on disk: not under the record's lock.
            let mut s = if size {
                let snap = r.clone();
                drop(r);
                self.summary(&snap, true)
            } else {
                let s = self.summary(&r, false);
                drop(r);
                s
            };
            if let (Some(names), Some(more)) = (s.names.as_mut(), link_names.get(&c.id)) {
                // dockerd lists a container's link names too, all sorted.
                names.extend(more.iter().cloned());
                names.sort();
            }
            out.push(s);
            if limit.is_some_and(|l| out.len() as i64 >= l) {
                break;
            }
        }
        Ok(out)
    }
}
