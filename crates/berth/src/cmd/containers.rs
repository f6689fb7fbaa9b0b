//! `ps`, `inspect`, `logs`, `stop`, `kill`, `restart`, `rm`, `wait`,
//! `pause`, `unpause`, `top`, `rename`, `container prune`, and the
//! `container` command group.

use std::collections::BTreeSet;
use std::future::Future;

use berth_api::reference::Reference;
use serde_json::{json, Value};

use super::common::{ellipsis, filters_of, print_raw_inspect, short_id, since, status_of};
use crate::client::Conn;
use crate::format::{human_size, human_size4, parse_time, tabwrite_min, Tmpl};
use crate::raw;
use crate::stream::{write_frame, write_stdout, Demux, Waiter};
use crate::ExitCode;

#[derive(clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_negative_numbers = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    size: bool,
    /// Only inspect objects of the given type
    #[arg(long = "type", value_name = "string")]
    typ: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    until: Option<String>,
    container: String,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        value_name = "int",
        allow_negative_numbers = true
    )]
    timeout: Option<i32>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove the specified link
    #[arg(short, long)]
    link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct TopArgs {
    container: String,
    /// [ps OPTIONS]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(clap::Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\x07' => o.push_str("\\a"),
            '\x08' => o.push_str("\\b"),
            '\x0c' => o.push_str("\\f"),
            '\x0b' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// docker's `DisplayablePorts`: consecutive ports grouped into ranges.
fn displayable_ports(ports: &[Value]) -> String {
    struct P {
        ip: String,
        private: u32,
        public: u32,
        typ: String,
    }
    let mut ps: Vec<P> = ports
        .iter()
        .map(|p| P {
            ip: p["IP"].as_str().unwrap_or("").to_string(),
            private: p["PrivatePort"].as_u64().unwrap_or(0) as u32,
            public: p["PublicPort"].as_u64().unwrap_or(0) as u32,
            typ: p["Type"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    ps.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.typ).cmp(&(b.private, &b.ip, b.public, &b.typ))
    });
    let form = |key: &str, first: u32, last: u32| {
        let (ip, typ) = match key.rsplit_once('/') {
            Some((ip, t)) => (ip, t),
            None => ("", key),
        };
        let mut g = first.to_string();
        if first != last {
            g = format!("{g}-{last}");
        }
        if !ip.is_empty() {
            g = format!("{ip}:{g}->{g}");
        }
        format!("{g}/{typ}")
    };
    let mut groups: Vec<(String, u32, u32)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in &ps {
        let mut key = p.typ.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                let host = if p.ip.contains(':') {
                    format!("[{}]:{}", p.ip, p.public)
                } else {
                    format!("{}:{}", p.ip, p.public)
                };
                mappings.push(format!("{host}->{}/{}", p.private, p.typ));
                continue;
            }
            key = format!("{}/{}", p.ip, p.typ);
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2 + 1 => g.2 = p.private,
            Some(g) => {
                result.push(form(&g.0, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    for g in &groups {
        result.push(form(&g.0, g.1, g.2));
    }
    result.extend(mappings);
    result.join(", ")
}

/// The IMAGE column: short IDs, digests dropped, as docker's formatter.
fn image_column(image: &str, image_id: &str, trunc: bool) -> String {
    if image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return image.to_string();
    }
    if image.starts_with("sha256:") || short_id(image_id) == short_id(image) {
        return short_id(image);
    }
    // Docker's formatter: the familiar form without the digest (cut off
    // textually, so a digest berth cannot check still goes), or the name as
    // it is when it does not parse.
    let named = image.split('@').next().unwrap_or(image);
    match Reference::parse(named) {
        Ok(r) => r.familiar(),
        Err(_) => named.to_string(),
    }
}

fn ps_row(c: &Value, trunc: bool) -> Value {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    let id = if trunc {
        s("Id").chars().take(12).collect()
    } else {
        s("Id")
    };
    let names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    // Truncated: the container's own name, not its link aliases (`a/b`).
    let names = match (trunc, names.iter().find(|n| !n.contains('/'))) {
        (true, Some(n)) => n.clone(),
        _ => names.join(","),
    };
    let command = if trunc {
        ellipsis(&s("Command"), 20)
    } else {
        s("Command")
    };
    let created = c["Created"].as_i64().unwrap_or(0);
    let mut labels: Vec<String> = c["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let n = m["Name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or_else(|| m["Source"].as_str())
                .unwrap_or("");
            if trunc {
                ellipsis(n, 15)
            } else {
                n.to_string()
            }
        })
        .collect();
    let local_volumes = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Driver"] == "local")
        .count();
    let networks: BTreeSet<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let size = {
        let rw = c["SizeRw"].as_i64().unwrap_or(0);
        let root = c["SizeRootFs"].as_i64().unwrap_or(0);
        if root > 0 {
            format!("{} (virtual {})", human_size(rw), human_size(root))
        } else {
            human_size(rw)
        }
    };
    json!({
        "ID": id,
        "Image": image_column(&s("Image"), &s("ImageID"), trunc),
        "Command": go_quote(&command),
        "CreatedAt": chrono::DateTime::from_timestamp(created, 0)
            .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %z %Z").to_string())
            .unwrap_or_default(),
        "RunningFor": since(created),
        "Ports": displayable_ports(c["Ports"].as_array().map(Vec::as_slice).unwrap_or(&[])),
        "State": s("State"),
        "Status": s("Status"),
        "Size": size,
        "Names": names,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.into_iter().collect::<Vec<_>>().join(","),
        "LocalVolumes": local_volumes.to_string(),
    })
}

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

pub async fn ps(conn: &Conn, a: PsArgs) -> anyhow::Result<()> {
    let fmt = if a.quiet {
        "{{.ID}}".to_string()
    } else if let Some(f) = a.format.clone().filter(|f| !f.is_empty()) {
        f
    } else if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}".into()
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".into()
    };
    let t = Tmpl::parse(&fmt, PS_HEADERS)?;
    let filters = filters_of(&a.filter)?;
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".to_string()));
    }
    let limit = if a.latest && a.last == -1 { 1 } else { a.last };
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    // As docker: a template showing sizes asks for them.
    if a.size || (!a.quiet && fmt.contains(".Size")) {
        q.push(("size", "1".to_string()));
    }
    if !filters.is_empty() {
        let m: serde_json::Map<String, Value> = filters
            .iter()
            .map(|(k, vs)| {
                (
                    k.clone(),
                    Value::Object(vs.iter().map(|v| (v.clone(), json!(true))).collect()),
                )
            })
            .collect();
        q.push(("filters", Value::Object(m).to_string()));
    }
    let path = if q.is_empty() {
        "/containers/json".to_string()
    } else {
        format!("/containers/json?{}", raw::query(&q))
    };
    let list: Vec<Value> = serde_json::from_slice(&raw.call("GET", &path, None).await?)?;
    let rows: Vec<Value> = list.iter().map(|c| ps_row(c, !a.no_trunc)).collect();
    print!("{}", t.render_all(&rows)?);
    Ok(())
}

/// A miss the untyped inspect may skip, as docker's: not found, or not
/// supported here.
fn skippable(e: &anyhow::Error) -> bool {
    let msg = super::error_text(e);
    matches!(status_of(e), Some(404) | Some(501))
        || msg.contains("not supported")
        || msg.contains("invalid reference format")
}

/// `inspect [--type T] NAME...`; `typ` fixed for `container inspect`.
pub async fn inspect(conn: &Conn, a: InspectArgs, typ: Option<&str>) -> anyhow::Result<()> {
    let typ = typ.map(str::to_string).or(a.typ.clone());
    let kinds: Vec<&str> = match typ.as_deref() {
        None => vec!["container", "image", "network", "volume"],
        Some(t @ ("container" | "image" | "network" | "volume")) => vec![t],
        Some(t) => anyhow::bail!("\"{t}\" is not a valid value for --type"),
    };
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    'names: for name in &a.names {
        for kind in &kinds {
            let path = match *kind {
                "container" if a.size => format!("/containers/{}/json?size=1", raw::seg(name)),
                "container" => format!("/containers/{}/json", raw::seg(name)),
                "image" => format!("/images/{}/json", raw::seg(name)),
                "network" => format!("/networks/{}", raw::seg(name)),
                _ => format!("/volumes/{}", raw::seg(name)),
            };
            match raw.get_raw(&path).await {
                Ok(body) => {
                    found.push(body);
                    continue 'names;
                }
                Err(e) if kinds.len() > 1 && skippable(&e) => continue,
                Err(e) => {
                    missing.push(super::error_text(&e));
                    continue 'names;
                }
            }
        }
        missing.push(format!("Error: No such object: {name}"));
    }
    print_raw_inspect(&found, &missing, a.format.as_deref())
}

pub async fn logs(conn: &Conn, a: LogsArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let info: Value = serde_json::from_str(
        &raw.get_raw(&format!("/containers/{}/json", raw::seg(&a.container)))
            .await?,
    )?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    let now = chrono::Utc::now();
    let mut q = vec![
        ("stderr", "1".to_string()),
        ("stdout", "1".to_string()),
        ("tail", a.tail.clone()),
    ];
    if let Some(s) = &a.since {
        q.push(("since", parse_time(s, now)?));
    }
    if let Some(u) = &a.until {
        q.push(("until", parse_time(u, now)?));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    let path = format!("/containers/{}/logs?{}", raw::seg(&id), raw::query(&q));
    let r = raw.send("GET", &path, None, false).await?;
    if r.status >= 400 {
        return Err(r.error().await.into());
    }
    let mut body = r.into_body();
    let mut demux = Demux::default();
    while let Some(chunk) = body.chunk().await? {
        if tty {
            write_stdout(&chunk)?;
        } else {
            demux.feed(&chunk, write_frame)?;
        }
    }
    Ok(())
}

/// Runs `f` on every name at once (as docker does) and reports in order:
/// successes print via `ok`, failures are listed on stderr at the end,
/// and any failure makes the exit status 1.
async fn each<T, F, Fut>(
    names: &[String],
    f: F,
    ok: impl Fn(&str, T),
    tolerate: impl Fn(&anyhow::Error) -> bool,
) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let results = futures_util::future::join_all(names.iter().map(|n| f(n.clone()))).await;
    let mut errs = Vec::new();
    for (name, r) in names.iter().zip(results) {
        match r {
            Ok(v) => ok(name, v),
            Err(e) if tolerate(&e) => eprintln!("{}", super::error_text(&e)),
            Err(e) => errs.push(super::error_text(&e)),
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    for e in errs {
        eprintln!("{e}");
    }
    Err(ExitCode(1).into())
}

fn print_name(name: &str, _: ()) {
    println!("{name}");
}

fn never(_: &anyhow::Error) -> bool {
    false
}

pub async fn stop(conn: &Conn, a: StopArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let opts = bollard::query_parameters::StopContainerOptions {
        signal: a.signal.clone(),
        t: a.timeout,
    };
    each(
        &a.containers,
        |n| {
            let (d, o) = (d.clone(), opts.clone());
            async move { Ok(d.stop_container(&n, Some(o)).await?) }
        },
        print_name,
        never,
    )
    .await
}

pub async fn restart(conn: &Conn, a: StopArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let opts = bollard::query_parameters::RestartContainerOptions {
        signal: a.signal.clone(),
        t: a.timeout,
    };
    each(
        &a.containers,
        |n| {
            let (d, o) = (d.clone(), opts.clone());
            async move { Ok(d.restart_container(&n, Some(o)).await?) }
        },
        print_name,
        never,
    )
    .await
}

pub async fn kill(conn: &Conn, a: KillArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    // No signal parameter means SIGKILL to the daemon, as docker sends it.
    let q = a
        .signal
        .as_ref()
        .map(|s| format!("?{}", raw::query(&[("signal", s.clone())])))
        .unwrap_or_default();
    each(
        &a.containers,
        |n| {
            let (raw, q) = (raw.clone(), q.clone());
            async move {
                raw.call(
                    "POST",
                    &format!("/containers/{}/kill{q}", raw::seg(&n)),
                    None,
                )
                .await?;
                Ok(())
            }
        },
        print_name,
        never,
    )
    .await
}

pub async fn rm(conn: &Conn, a: RmArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let opts = bollard::query_parameters::RemoveContainerOptions {
        v: a.volumes,
        force: a.force,
        link: a.link,
    };
    let force = a.force;
    each(
        &a.containers,
        |n| {
            let (d, o) = (d.clone(), opts.clone());
            async move {
                let n = n.trim_matches('/').to_string();
                if n.is_empty() {
                    anyhow::bail!("Container name cannot be empty");
                }
                Ok(d.remove_container(&n, Some(o)).await?)
            }
        },
        print_name,
        // `rm -f` of a missing container is not a failure.
        |e| force && status_of(e) == Some(404),
    )
    .await
}

pub async fn wait(conn: &Conn, a: NamesArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    each(
        &a.containers,
        |n| {
            let raw = raw.clone();
            async move { Waiter::start(&raw, &n, "").await?.status().await }
        },
        |_, code| println!("{code}"),
        never,
    )
    .await
}

pub async fn pause(conn: &Conn, a: NamesArgs, on: bool) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    each(
        &a.containers,
        |n| {
            let d = d.clone();
            async move {
                if on {
                    d.pause_container(&n).await?;
                } else {
                    d.unpause_container(&n).await?;
                }
                Ok(())
            }
        },
        print_name,
        never,
    )
    .await
}

pub async fn top(conn: &Conn, a: TopArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut path = format!("/containers/{}/top", raw::seg(&a.container));
    if !a.ps_args.is_empty() {
        path.push_str(&format!(
            "?{}",
            raw::query(&[("ps_args", a.ps_args.join(" "))])
        ));
    }
    let v: Value = serde_json::from_slice(&raw.call("GET", &path, None).await?)?;
    let join = |row: &Value| {
        row.as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\t")
    };
    let mut lines = vec![join(&v["Titles"])];
    for p in v["Processes"].as_array().into_iter().flatten() {
        lines.push(join(p));
    }
    print!("{}", tabwrite_min(&lines, 20));
    Ok(())
}

pub async fn rename(conn: &Conn, a: RenameArgs) -> anyhow::Result<()> {
    let (old, new) = (a.container.trim(), a.new_name.trim());
    if old.is_empty() || new.is_empty() {
        anyhow::bail!("Error: Neither old nor new names may be empty");
    }
    let d = conn.connect().await?;
    if let Err(e) = d
        .rename_container(
            old,
            bollard::query_parameters::RenameContainerOptions {
                name: new.to_string(),
            },
        )
        .await
    {
        eprintln!("{}", super::error_text(&e.into()));
        anyhow::bail!("Error: failed to rename container named {old}");
    }
    Ok(())
}

pub async fn prune(conn: &Conn, a: PruneArgs) -> anyhow::Result<()> {
    let filters = filters_of(&a.filter)?;
    if !a.force && !super::common::confirm("WARNING! This will remove all stopped containers.") {
        // docker treats the refusal as a cancellation: no message, status 0.
        return Ok(());
    }
    let d = conn.connect().await?;
    let r = d
        .prune_containers(Some(bollard::query_parameters::PruneContainersOptions {
            filters: (!filters.is_empty()).then_some(filters),
        }))
        .await?;
    let deleted = r.containers_deleted.unwrap_or_default();
    let mut space = 0;
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Containers:\n");
        for id in &deleted {
            out.push_str(id);
            out.push('\n');
        }
        println!("{out}");
        space = r.space_reclaimed.unwrap_or(0);
    }
    println!("Total reclaimed space: {}", human_size4(space));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_columns_format_like_docker() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (image, want) in [
            ("docker.io/library/busybox:1", "busybox:1"),
            (&*format!("myrepo/bb@{digest}"), "myrepo/bb"),
            ("host:5000/a/b", "host:5000/a/b"),
            ("Bad/Name", "Bad/Name"),
            ("docker.io/library/a/b", "library/a/b"),
        ] {
            assert_eq!(image_column(image, "", true), want, "{image}");
        }
        assert_eq!(image_column("busybox", "", false), "busybox");
        let c = json!({
            "Id": "0123456789abcdef0123456789abcdef",
            "Names": ["/web", "/other/alias"],
            "Image": "docker.io/library/busybox:latest@sha256:abc",
            "ImageID": "sha256:ffff",
            "Command": "sh -c 'while true; do echo tick; done'",
            "Created": chrono::Utc::now().timestamp() - 130,
            "Ports": [
                {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"PrivatePort": 443, "Type": "tcp"},
                {"PrivatePort": 444, "Type": "tcp"},
            ],
            "State": "running",
            "Status": "Up 2 minutes",
            "Labels": {"b": "2", "a": "1"},
        });
        let r = ps_row(&c, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Image"], "busybox:latest");
        assert_eq!(r["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(r["RunningFor"], "2 minutes ago");
        assert_eq!(r["Ports"], "443-444/tcp, 0.0.0.0:8080->80/tcp");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(go_quote("a\"b\\\n\x01"), "\"a\\\"b\\\\\\n\\x01\"");
        let ports = [
            json!({"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"}),
            json!({"IP": "::", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"}),
        ];
        assert_eq!(
            displayable_ports(&ports),
            "0.0.0.0:80->80/tcp, :::80->80/tcp"
        );
    }
}
