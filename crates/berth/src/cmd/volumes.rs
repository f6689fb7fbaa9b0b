//! `volume create|ls|inspect|rm|prune`.

use std::collections::HashMap;

use bollard::models::{Volume, VolumeCreateOptions};
use bollard::query_parameters::{ListVolumesOptions, PruneVolumesOptions, RemoveVolumeOptions};
use serde_json::{json, Value};

use super::common::{confirm, filters_of, print_inspect};
use crate::client::Conn;
use crate::format::{human_size4, Tmpl};

#[derive(clap::Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(name = "ls", visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(name = "rm", visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long)]
    name: Option<String>,
    /// VOLUME
    volume: Option<String>,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    volumes: Vec<String>,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// `k=v` flags into a map (a bare `k` maps to "").
fn kv(flags: &[String]) -> HashMap<String, String> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (f.clone(), String::new()),
        })
        .collect()
}

pub async fn create(conn: &Conn, a: CreateArgs) -> anyhow::Result<()> {
    let name = match (&a.name, &a.volume) {
        (Some(n), Some(v)) if n != v => anyhow::bail!(
            "conflicting options: cannot specify a volume-name through both --name and as a positional arg"
        ),
        (Some(n), _) => n.clone(),
        (None, Some(v)) => v.clone(),
        (None, None) => String::new(),
    };
    let d = conn.connect().await?;
    let v = d
        .create_volume(VolumeCreateOptions {
            name: Some(name),
            driver: Some(a.driver),
            driver_opts: Some(kv(&a.opt)),
            labels: Some(kv(&a.label)),
            ..Default::default()
        })
        .await?;
    println!("{}", v.name);
    Ok(())
}

fn row(v: &Volume) -> Value {
    let mut labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let usage = v.usage_data.as_ref();
    json!({
        "Driver": v.driver,
        "Name": v.name,
        "Mountpoint": v.mountpoint,
        "Scope": v.scope.map(|s| s.to_string()).unwrap_or_default(),
        "Labels": labels.join(","),
        "CreatedAt": v.created_at.clone().unwrap_or_default(),
        "Links": usage.map(|u| u.ref_count.to_string()).unwrap_or_else(|| "N/A".into()),
        "Size": usage.map(|u| human_size4(u.size)).unwrap_or_else(|| "N/A".into()),
    })
}

pub async fn ls(conn: &Conn, a: LsArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let filters = filters_of(&a.filter)?;
    let r = d
        .list_volumes(Some(ListVolumesOptions {
            filters: (!filters.is_empty()).then_some(filters),
        }))
        .await?;
    let mut vols = r.volumes.unwrap_or_default();
    vols.sort_by(|x, y| x.name.cmp(&y.name));
    let rows: Vec<Value> = vols.iter().map(row).collect();
    let fmt = if a.quiet {
        "{{.Name}}".to_string()
    } else {
        a.format
            .unwrap_or_else(|| "table {{.Driver}}\t{{.Name}}".into())
    };
    let t = Tmpl::parse(
        &fmt,
        &[
            ("Driver", "DRIVER"),
            ("Name", "VOLUME NAME"),
            ("Mountpoint", "MOUNTPOINT"),
            ("Scope", "SCOPE"),
            ("Labels", "LABELS"),
            ("CreatedAt", "CREATED"),
            ("Links", "LINKS"),
            ("Size", "SIZE"),
        ],
    )?;
    print!("{}", t.render_all(&rows)?);
    Ok(())
}

pub async fn inspect(conn: &Conn, a: InspectArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &a.volumes {
        match d.inspect_volume(name).await {
            Ok(v) => found.push(serde_json::to_value(v)?),
            Err(e) => missing.push(super::error_text(&e.into())),
        }
    }
    print_inspect(found, missing, a.format.as_deref())
}

pub async fn rm(conn: &Conn, a: RmArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let mut failed = false;
    for name in &a.volumes {
        match d
            .remove_volume(name, Some(RemoveVolumeOptions { force: a.force }))
            .await
        {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", super::error_text(&e.into()));
                failed = true;
            }
        }
    }
    if failed {
        return Err(crate::ExitCode(1).into());
    }
    Ok(())
}

pub async fn prune(conn: &Conn, a: PruneArgs) -> anyhow::Result<()> {
    let mut filters = filters_of(&a.filter)?;
    let warning = if a.all {
        filters.insert("all".into(), vec!["true".into()]);
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !a.force && !confirm(warning) {
        return Ok(());
    }
    let d = conn.connect().await?;
    let r = d
        .prune_volumes(Some(PruneVolumesOptions {
            filters: (!filters.is_empty()).then_some(filters),
        }))
        .await?;
    let deleted = r.volumes_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for v in deleted {
            println!("{v}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size4(r.space_reclaimed.unwrap_or(0))
    );
    Ok(())
}

pub async fn volume(conn: &Conn, c: VolumeCmd) -> anyhow::Result<()> {
    match c {
        VolumeCmd::Create(a) => create(conn, a).await,
        VolumeCmd::Ls(a) => ls(conn, a).await,
        VolumeCmd::Inspect(a) => inspect(conn, a).await,
        VolumeCmd::Rm(a) => rm(conn, a).await,
        VolumeCmd::Prune(a) => prune(conn, a).await,
    }
}
