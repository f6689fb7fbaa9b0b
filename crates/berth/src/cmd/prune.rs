//! `berth system prune` and `berth builder prune`, with the docker CLI's
//! warnings, order (containers, networks, volumes, images, build cache)
//! and output. A refusal at the prompt is a cancellation: nothing printed
//! after it, status 0, as the docker CLI does.

use serde_json::Value;

use super::common::{confirm, confirm_message, filters_json};
use crate::client::Conn;
use crate::format::human_size4;
use crate::raw::{self, Raw};

#[derive(clap::Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
}

#[derive(clap::Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Amount of disk space to keep for cache
    #[arg(long = "keep-storage", value_name = "bytes")]
    keep_storage: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum BuilderCmd {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

async fn post(raw: &Raw, path: &str, q: Vec<(&str, String)>) -> anyhow::Result<Value> {
    let path = if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", raw::query(&q))
    };
    Ok(serde_json::from_slice(
        &raw.call("POST", &path, None).await?,
    )?)
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn listing(title: &str, items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut out = format!("{title}:\n");
    for i in items {
        out.push_str(i);
        out.push('\n');
    }
    Some(out)
}

fn filters_q(f: Option<String>) -> Vec<(&'static str, String)> {
    f.map(|f| vec![("filters", f)]).unwrap_or_default()
}

async fn build_cache(
    raw: &Raw,
    all: bool,
    filter: &[String],
    keep: Option<&str>,
) -> anyhow::Result<(i64, Option<String>)> {
    let mut q = filters_q(filters_json(filter, &[])?);
    if all {
        q.push(("all", "1".into()));
    }
    if let Some(k) = keep {
        let n = berth_api::units::ram_in_bytes(k).map_err(|e| {
            anyhow::anyhow!("invalid argument {k:?} for \"--keep-storage\" flag: {e}")
        })?;
        q.push(("keep-storage", n.to_string()));
    }
    let r = post(raw, "/build/prune", q).await?;
    Ok((
        r["SpaceReclaimed"].as_i64().unwrap_or(0),
        listing("Deleted build cache objects", &ids(&r, "CachesDeleted")),
    ))
}

pub async fn builder(conn: &Conn, c: BuilderCmd) -> anyhow::Result<()> {
    let BuilderCmd::Prune(a) = c;
    let warning = if a.all {
        "WARNING! This will remove all build cache. Are you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
    };
    if !a.force && !confirm_message(warning) {
        return Ok(());
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let (space, out) = build_cache(&raw, a.all, &a.filter, a.keep_storage.as_deref()).await?;
    if let Some(o) = out {
        println!("{o}");
    }
    println!("Total reclaimed space: {}", human_size4(space));
    Ok(())
}

/// docker's confirmation text for `system prune`.
fn system_warning(a: &SystemPruneArgs) -> String {
    let mut w = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        w.push("all anonymous volumes not used by at least one container");
    }
    w.push(if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    w.push(if a.all {
        "all build cache"
    } else {
        "unused build cache"
    });
    let mut s = String::from("WARNING! This will remove:");
    for x in w {
        s.push_str(&format!("\n  - {x}"));
    }
    let mut filters: Vec<String> = a
        .filter
        .iter()
        .filter(|f| {
            let k = f.split_once('=').map(|(k, _)| k).unwrap_or(f);
            ["label", "label!", "until"].contains(&k)
        })
        .cloned()
        .collect();
    filters.sort_by(|x, y| crate::format::natural_cmp(x, y));
    if !filters.is_empty() {
        s.push_str("\n\n  Items to be pruned will be filtered with:");
        for f in filters {
            s.push_str(&format!("\n  - {f}"));
        }
    }
    s.push('\n');
    s
}

pub async fn system(conn: &Conn, a: SystemPruneArgs) -> anyhow::Result<()> {
    if a.volumes && a.filter.iter().any(|f| f.starts_with("until=")) {
        anyhow::bail!("ERROR: The \"until\" filter is not supported with \"--volumes\"");
    }
    if !a.force && !confirm(&system_warning(&a)) {
        return Ok(());
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut space = 0i64;
    let print = |o: Option<String>| {
        if let Some(o) = o {
            println!("{o}");
        }
    };
    let r = post(
        &raw,
        "/containers/prune",
        filters_q(filters_json(&a.filter, &[])?),
    )
    .await?;
    space += r["SpaceReclaimed"].as_i64().unwrap_or(0);
    print(listing("Deleted Containers", &ids(&r, "ContainersDeleted")));
    let r = post(
        &raw,
        "/networks/prune",
        filters_q(filters_json(&a.filter, &[])?),
    )
    .await?;
    print(listing("Deleted Networks", &ids(&r, "NetworksDeleted")));
    if a.volumes {
        let r = post(
            &raw,
            "/volumes/prune",
            filters_q(filters_json(&a.filter, &[])?),
        )
        .await?;
        space += r["SpaceReclaimed"].as_i64().unwrap_or(0);
        print(listing("Deleted Volumes", &ids(&r, "VolumesDeleted")));
    }
    let dangling = if a.all { "false" } else { "true" };
    let r = post(
        &raw,
        "/images/prune",
        filters_q(filters_json(&a.filter, &[("dangling", dangling)])?),
    )
    .await?;
    space += r["SpaceReclaimed"].as_i64().unwrap_or(0);
    let mut lines = Vec::new();
    for it in r["ImagesDeleted"].as_array().into_iter().flatten() {
        if let Some(u) = it["Untagged"].as_str().filter(|u| !u.is_empty()) {
            lines.push(format!("untagged: {u}"));
        } else if let Some(dl) = it["Deleted"].as_str().filter(|u| !u.is_empty()) {
            lines.push(format!("deleted: {dl}"));
        }
    }
    print(listing("Deleted Images", &lines));
    let (s, out) = build_cache(&raw, a.all, &a.filter, None).await?;
    space += s;
    print(out);
    println!("Total reclaimed space: {}", human_size4(space));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_prune_warns_as_docker_does() {
        let a = SystemPruneArgs {
            all: false,
            filter: vec!["until=24h".into(), "label=a=b".into()],
            force: false,
            volumes: true,
        };
        assert_eq!(
            system_warning(&a),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all anonymous volumes not used by at least one container\n  - all dangling images\n  - unused build cache\n\n  Items to be pruned will be filtered with:\n  - label=a=b\n  - until=24h\n"
        );
    }
}
