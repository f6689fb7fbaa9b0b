//! `stats`: containers' resource usage, computed from the daemon's samples
//! with the docker CLI's formulas, printed once (`--no-stream`) or as a
//! table redrawn in place every half second.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use berth_api::units::{bytes_size, human_size_with_precision};

use crate::client::Conn;
use crate::format::Tmpl;
use crate::raw::{self, Body, Raw};
use crate::ExitCode;

/// docker's collector gives up on a container (and shows `--`) when no
/// sample came for this long.
const STALE: Duration = Duration::from_secs(2);
const REFRESH: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// One sample, reduced to what the table shows (docker's `StatsEntry`).
#[derive(Default, Clone, Debug, PartialEq)]
struct Entry {
    name: String,
    id: String,
    cpu: f64,
    mem: f64,
    mem_limit: f64,
    mem_perc: f64,
    net_rx: f64,
    net_tx: f64,
    blk_read: f64,
    blk_write: f64,
    pids: u64,
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// docker's `calculateCPUPercentUnix`: the container's share of the host's
/// CPU time between the two samples, times the online CPUs.
fn cpu_percent(pre: &Value, cur: &Value) -> f64 {
    let cpu_delta = num(&cur["cpu_usage"]["total_usage"]) - num(&pre["cpu_usage"]["total_usage"]);
    let system_delta = num(&cur["system_cpu_usage"]) - num(&pre["system_cpu_usage"]);
    let mut online = num(&cur["online_cpus"]);
    if online == 0.0 {
        online = cur["cpu_usage"]["percpu_usage"]
            .as_array()
            .map_or(0, Vec::len) as f64;
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

/// docker's `calculateMemUsageUnixNoCache`: usage without the inactive
/// page cache (`total_inactive_file` on cgroup v1, `inactive_file` on v2).
fn mem_usage(m: &Value) -> f64 {
    let usage = m["usage"].as_u64().unwrap_or(0);
    if let Some(v) = m["stats"]["total_inactive_file"].as_u64() {
        if v < usage {
            return (usage - v) as f64;
        }
    }
    let v = m["stats"]["inactive_file"].as_u64().unwrap_or(0);
    if v < usage {
        return (usage - v) as f64;
    }
    usage as f64
}

fn entry_of(v: &Value) -> Entry {
    let mem = mem_usage(&v["memory_stats"]);
    let mem_limit = num(&v["memory_stats"]["limit"]);
    let (mut net_rx, mut net_tx) = (0.0, 0.0);
    for n in v["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        net_rx += num(&n["rx_bytes"]);
        net_tx += num(&n["tx_bytes"]);
    }
    let (mut blk_read, mut blk_write) = (0.0, 0.0);
    for e in v["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().and_then(|o| o.bytes().next()) {
            Some(b'r' | b'R') => blk_read += num(&e["value"]),
            Some(b'w' | b'W') => blk_write += num(&e["value"]),
            _ => {}
        }
    }
    Entry {
        name: v["name"].as_str().unwrap_or("").to_string(),
        id: v["id"].as_str().unwrap_or("").to_string(),
        cpu: cpu_percent(&v["precpu_stats"], &v["cpu_stats"]),
        mem,
        mem_limit,
        mem_perc: if mem_limit != 0.0 {
            mem / mem_limit * 100.0
        } else {
            0.0
        },
        net_rx,
        net_tx,
        blk_read,
        blk_write,
        pids: v["pids_stats"]["current"].as_u64().unwrap_or(0),
    }
}

/// A row of the table: one container being watched.
struct Slot {
    /// What the daemon is asked for: a name as given, or a 12-char ID.
    key: String,
    /// Tells this slot's collector apart from an older one for the same key.
    generation: u64,
    entry: Entry,
    started: Instant,
    last: Option<Instant>,
    err: Option<String>,
}

impl Slot {
    /// Settled for the first print: a sample, an error, or given up on.
    fn settled(&self, now: Instant) -> bool {
        self.last.is_some() || self.err.is_some() || now - self.started >= STALE
    }

    /// docker's `IsInvalid`: failed, or no sample for a while.
    fn invalid(&self, now: Instant) -> bool {
        self.err.is_some() || now - self.last.unwrap_or(self.started) >= STALE
    }
}

#[derive(Default)]
struct Board {
    slots: Vec<Slot>,
    generations: u64,
}

type Shared = Arc<Mutex<Board>>;

fn lock(b: &Shared) -> MutexGuard<'_, Board> {
    // A panicking collector can't leave the table half-updated in a way
    // that matters for printing it.
    b.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts watching `key` unless it is already on the board.
fn add(board: &Shared, raw: &Raw, key: &str, stream: bool) {
    let generation = {
        let mut b = lock(board);
        if b.slots.iter().any(|s| s.key == key) {
            return;
        }
        b.generations += 1;
        let generation = b.generations;
        b.slots.push(Slot {
            key: key.to_string(),
            generation,
            entry: Entry::default(),
            started: Instant::now(),
            last: None,
            err: None,
        });
        generation
    };
    tokio::spawn(collect(
        raw.clone(),
        board.clone(),
        key.to_string(),
        generation,
        stream,
    ));
}

fn remove(board: &Shared, key: &str) {
    lock(board).slots.retain(|s| s.key != key);
}

/// Applies `f` to this collector's slot; false once the slot is gone.
fn with_slot(board: &Shared, key: &str, generation: u64, f: impl FnOnce(&mut Slot)) -> bool {
    let mut b = lock(board);
    match b
        .slots
        .iter_mut()
        .find(|s| s.key == key && s.generation == generation)
    {
        Some(s) => {
            f(s);
            true
        }
        None => false,
    }
}

/// JSON values as they arrive in a body, whatever the chunking.
struct JsonLines {
    body: Body,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<Value>,
}

impl JsonLines {
    fn new(body: Body) -> Self {
        Self {
            body,
            buf: Vec::new(),
            ready: Default::default(),
        }
    }

    /// The next value; `None` at the end of the body.
    async fn next(&mut self) -> anyhow::Result<Option<Value>> {
        loop {
            if let Some(v) = self.ready.pop_front() {
                return Ok(Some(v));
            }
            let Some(chunk) = self.body.chunk().await? else {
                return Ok(None);
            };
            self.buf.extend_from_slice(&chunk);
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            let mut used = 0;
            loop {
                match it.next() {
                    Some(Ok(v)) => {
                        used = it.byte_offset();
                        self.ready.push_back(v);
                    }
                    // Incomplete: wait for the rest.
                    Some(Err(e)) if e.is_eof() => break,
                    // Garbage: drop it and resynchronise on what follows.
                    Some(Err(_)) => {
                        used = self.buf.len();
                        break;
                    }
                    None => {
                        used = self.buf.len();
                        break;
                    }
                }
            }
            self.buf.drain(..used);
        }
    }
}

/// Reads one container's samples into its slot until the stream ends or
/// the slot is removed.
async fn collect(raw: Raw, board: Shared, key: String, generation: u64, stream: bool) {
    let fail = |e: &anyhow::Error| {
        let msg = super::error_text(e);
        with_slot(&board, &key, generation, |s| s.err = Some(msg));
    };
    let path = format!(
        "/containers/{}/stats?{}",
        raw::seg(&key),
        raw::query(&[("stream", if stream { "1" } else { "0" }.to_string())])
    );
    let r = match raw.send("GET", &path, None, false).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if r.status >= 400 {
        return fail(&r.error().await.into());
    }
    let mut samples = JsonLines::new(r.into_body());
    loop {
        match samples.next().await {
            Ok(Some(v)) => {
                let e = entry_of(&v);
                let alive = with_slot(&board, &key, generation, |s| {
                    s.entry = e;
                    s.last = Some(Instant::now());
                    s.err = None;
                });
                if !alive || !stream {
                    return;
                }
            }
            // Stopped: the row goes stale and shows `--`, as docker's.
            Ok(None) => return,
            Err(e) => return fail(&e),
        }
    }
}

/// Follows container events (docker's handlers): a started container is
/// added, a created one too with `-a`, a dead one dropped without `-a`.
async fn watch_events(
    body: Body,
    raw: Raw,
    board: Shared,
    all: bool,
    stream: bool,
) -> anyhow::Result<()> {
    let mut events = JsonLines::new(body);
    while let Some(e) = events.next().await? {
        let id: String = e["Actor"]["ID"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(12)
            .collect();
        if id.is_empty() {
            continue;
        }
        match e["Action"].as_str().unwrap_or("") {
            "start" => add(&board, &raw, &id, stream),
            "create" if all => add(&board, &raw, &id, stream),
            "die" if !all => remove(&board, &id),
            _ => {}
        }
    }
    Ok(())
}

const HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("ID", "CONTAINER ID"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// The row docker's `statsContext` renders.
fn row(key: &str, e: &Entry, invalid: bool, trunc: bool) -> Value {
    let dash = |s: String| if invalid { "--".to_string() } else { s };
    let name = match e.name.get(1..) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "--".to_string(),
    };
    let id = if trunc {
        let hex = e.id.split_once(':').map_or(e.id.as_str(), |(_, h)| h);
        hex.chars().take(12).collect()
    } else {
        e.id.clone()
    };
    let pair = |a: String, b: String| format!("{a} / {b}");
    json!({
        "Container": key,
        "Name": name,
        "ID": id,
        "CPUPerc": dash(format!("{:.2}%", e.cpu)),
        "MemUsage": if invalid {
            "-- / --".to_string()
        } else {
            pair(bytes_size(e.mem), bytes_size(e.mem_limit))
        },
        "MemPerc": dash(format!("{:.2}%", e.mem_perc)),
        "NetIO": dash(pair(human_size_with_precision(e.net_rx, 3), human_size_with_precision(e.net_tx, 3))),
        "BlockIO": dash(pair(human_size_with_precision(e.blk_read, 3), human_size_with_precision(e.blk_write, 3))),
        "PIDs": dash(e.pids.to_string()),
    })
}

fn render(t: &Tmpl, board: &Shared, trunc: bool) -> anyhow::Result<String> {
    let now = Instant::now();
    let rows: Vec<Value> = lock(board)
        .slots
        .iter()
        .map(|s| row(&s.key, &s.entry, s.invalid(now), trunc))
        .collect();
    t.render_all(&rows)
}

/// A frame drawn over the previous one: home, each line then
/// erase-to-end-of-line, then erase below (docker's escapes).
fn in_place(text: &str) -> String {
    let mut f = String::from("\x1b[H");
    for line in text.split('\n') {
        f.push_str(line);
        f.push_str("\x1b[K\n");
    }
    f.push_str("\x1b[J");
    f
}

pub async fn stats(conn: &Conn, a: StatsArgs) -> anyhow::Result<()> {
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => DEFAULT_FORMAT,
        Some(f) => f,
    };
    let t = Tmpl::parse(format, HEADERS)?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let board = Shared::default();
    let stream = !a.no_stream;
    let show_all = a.containers.is_empty();
    let mut events = None;
    if show_all {
        // Events first, so a container started while we list is not missed.
        let q = raw::query(&[("filters", r#"{"type":{"container":true}}"#.to_string())]);
        let r = raw
            .send("GET", &format!("/events?{q}"), None, false)
            .await?;
        if r.status >= 400 {
            return Err(r.error().await.into());
        }
        events = Some(tokio::spawn(watch_events(
            r.into_body(),
            raw.clone(),
            board.clone(),
            a.all,
            stream,
        )));
        let path = if a.all {
            "/containers/json?all=1"
        } else {
            "/containers/json"
        };
        let list: Vec<Value> = serde_json::from_slice(&raw.call("GET", path, None).await?)?;
        for c in &list {
            let id: String = c["Id"].as_str().unwrap_or("").chars().take(12).collect();
            add(&board, &raw, &id, stream);
        }
    } else {
        for name in &a.containers {
            add(&board, &raw, name, stream);
        }
    }
    // Every container's first sample (or its failure) before the first print.
    while !lock(&board).slots.iter().all(|s| s.settled(Instant::now())) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !show_all {
        let errs: Vec<String> = lock(&board)
            .slots
            .iter()
            .filter_map(|s| s.err.clone())
            .collect();
        if !errs.is_empty() {
            eprintln!("{}", errs.join("\n"));
            return Err(ExitCode(1).into());
        }
    }
    if !stream {
        crate::stream::write_stdout(render(&t, &board, !a.no_trunc)?.as_bytes())?;
        return Ok(());
    }
    // On a terminal the table is redrawn in place; into a pipe or a file,
    // each refresh is a plain table after the last.
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let text = render(&t, &board, !a.no_trunc)?;
        let frame = if tty { in_place(&text) } else { text };
        crate::stream::write_stdout(frame.as_bytes())?;
        if let Some(ev) = events.as_mut().filter(|e| e.is_finished()) {
            // The daemon ended the event stream (e.g. it is shutting down).
            return match ev.await {
                Ok(r) => r,
                Err(e) => Err(e.into()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "name": "/busy", "id": "0123456789abcdef0123",
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000u64}, "system_cpu_usage": 20_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000u64}, "system_cpu_usage": 18_000_000_000u64},
            "memory_stats": {"usage": 10_485_760u64, "limit": 1_073_741_824u64,
                "stats": {"total_inactive_file": 2_097_152u64, "inactive_file": 1}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 700}, "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 1_000_000},
                {"major": 8, "minor": 0, "op": "Total", "value": 1_004_096}]},
            "pids_stats": {"current": 3},
        })
    }

    #[test]
    fn samples_compute_as_docker() {
        let e = entry_of(&sample());
        // 1s of 2s host time on 2 CPUs: 100%.
        assert_eq!(e.cpu, 100.0);
        assert_eq!(e.mem, 8_388_608.0);
        let r = row("busy", &e, false, true);
        assert_eq!(
            r,
            json!({"Container": "busy", "Name": "busy", "ID": "0123456789ab",
                "CPUPerc": "100.00%", "MemUsage": "8MiB / 1GiB", "MemPerc": "0.78%",
                "NetIO": "2kB / 700B", "BlockIO": "4.1kB / 1MB", "PIDs": "3"})
        );
        let r = row("busy", &e, true, true);
        assert_eq!(r["MemUsage"], "-- / --");
        assert_eq!(r["CPUPerc"], "--");
        assert_eq!(r["Name"], "busy");
        assert_eq!(row("x", &Entry::default(), false, true)["Name"], "--");
        // v2: inactive_file; no previous sample and no online_cpus count.
        let v2 = json!({"memory_stats": {"usage": 100, "stats": {"inactive_file": 40}},
            "cpu_stats": {"cpu_usage": {"total_usage": 10, "percpu_usage": [5, 5]}, "system_cpu_usage": 100},
            "precpu_stats": {}});
        let e = entry_of(&v2);
        assert_eq!(e.mem, 60.0);
        assert_eq!(e.cpu, 20.0);
        assert_eq!(entry_of(&json!({})), Entry::default());
    }

    #[test]
    fn the_default_table_has_dockers_columns() {
        let t = Tmpl::parse(DEFAULT_FORMAT, HEADERS).unwrap();
        let out = t
            .render_all(&[row("busy", &entry_of(&sample()), false, true)])
            .unwrap();
        assert_eq!(
            out.lines().next().unwrap(),
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O      BLOCK I/O     PIDS"
        );
        assert_eq!(in_place("a\nb\n"), "\x1b[Ha\x1b[K\nb\x1b[K\n\x1b[K\n\x1b[J");
    }
}
