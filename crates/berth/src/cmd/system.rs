//! `version`, `info`, `events`, `system df|info|events`.

use std::collections::BTreeMap;

use bollard::Docker;
use futures_util::StreamExt;
use serde_json::{json, Value};

use berth_api::units::bytes_size;

use crate::client::Conn;
use crate::format::{human_size4, parse_time, Tmpl};

#[derive(clap::Args)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
}

#[derive(clap::Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    }
}

pub async fn version(conn: &Conn, a: VersionArgs) -> anyhow::Result<()> {
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": bollard::API_DEFAULT_VERSION.to_string(),
        "APIVersion": bollard::API_DEFAULT_VERSION.to_string(),
        "Os": "linux",
        "Arch": go_arch(),
        "Context": "default",
    });
    let server = match conn.connect().await {
        Ok(d) => {
            let client_ver = d.client_version().to_string();
            let v = d.version().await?;
            let mut sv = serde_json::to_value(&v)?;
            sv["APIVersion"] = sv["ApiVersion"].clone();
            Some((client_ver, sv))
        }
        Err(e) => {
            if a.format.is_none() {
                print_client_version(&client, None);
            }
            return Err(e);
        }
    };
    let (negotiated, sv) = server
        .map(|(c, s)| (Some(c), Some(s)))
        .unwrap_or((None, None));
    if let Some(f) = a.format {
        let mut c = client.clone();
        if let Some(n) = &negotiated {
            c["APIVersion"] = json!(n);
            c["ApiVersion"] = json!(n);
        }
        let t = Tmpl::parse(&f, &[])?;
        println!("{}", t.render(&json!({"Client": c, "Server": sv}))?);
        return Ok(());
    }
    print_client_version(&client, negotiated.as_deref());
    if let Some(sv) = sv {
        println!();
        println!("Server: {}", s(&sv["Platform"]["Name"]));
        for comp in sv["Components"].as_array().cloned().unwrap_or_default() {
            println!(" {}:", s(&comp["Name"]));
            println!("  Version:          {}", s(&comp["Version"]));
            let d = &comp["Details"];
            if comp["Name"] == "Engine" {
                println!(
                    "  API version:      {} (minimum version {})",
                    s(&d["ApiVersion"]),
                    s(&d["MinAPIVersion"])
                );
                println!("  Go version:       {}", s(&d["GoVersion"]));
                println!("  Git commit:       {}", s(&d["GitCommit"]));
                println!("  Built:            {}", s(&d["BuildTime"]));
                println!("  OS/Arch:          {}/{}", s(&d["Os"]), s(&d["Arch"]));
                println!("  Experimental:     {}", s(&d["Experimental"]));
            } else if let Some(obj) = d.as_object() {
                let sorted: BTreeMap<_, _> = obj.iter().collect();
                for (k, v) in sorted {
                    println!("  {:<18}{}", format!("{k}:"), s(v));
                }
            }
        }
    }
    Ok(())
}

fn print_client_version(client: &Value, negotiated: Option<&str>) {
    println!("Client:");
    println!(" Version:           {}", s(&client["Version"]));
    let own = s(&client["APIVersion"]);
    match negotiated {
        Some(n) if n != own => println!(" API version:       {n} (downgraded from {own})"),
        _ => println!(" API version:       {own}"),
    }
    println!(
        " OS/Arch:           {}/{}",
        s(&client["Os"]),
        s(&client["Arch"])
    );
    println!(" Context:           default");
}

pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn info(conn: &Conn, a: InfoArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let info = serde_json::to_value(d.info().await?)?;
    if let Some(f) = a.format {
        println!("{}", Tmpl::parse(&f, &[])?.render(&info)?);
        return Ok(());
    }
    print_info(&info);
    Ok(())
}

fn print_info(i: &Value) {
    let b = |v: &Value| v.as_bool().unwrap_or(false);
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default");
    println!(" Debug Mode: false");
    println!();
    println!("Server:");
    println!(" Containers: {}", i["Containers"]);
    println!("  Running: {}", i["ContainersRunning"]);
    println!("  Paused: {}", i["ContainersPaused"]);
    println!("  Stopped: {}", i["ContainersStopped"]);
    println!(" Images: {}", i["Images"]);
    println!(" Server Version: {}", s(&i["ServerVersion"]));
    println!(" Storage Driver: {}", s(&i["Driver"]));
    for pair in i["DriverStatus"].as_array().cloned().unwrap_or_default() {
        println!("  {}: {}", s(&pair[0]), s(&pair[1]));
    }
    println!(" Logging Driver: {}", s(&i["LoggingDriver"]));
    println!(" Cgroup Driver: {}", s(&i["CgroupDriver"]));
    println!(" Cgroup Version: {}", s(&i["CgroupVersion"]));
    println!(" Plugins:");
    let join = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    println!("  Volume: {}", join(&i["Plugins"]["Volume"]));
    println!("  Network: {}", join(&i["Plugins"]["Network"]));
    println!("  Log: {}", join(&i["Plugins"]["Log"]));
    println!(" Swarm: {}", s(&i["Swarm"]["LocalNodeState"]));
    if let Some(rt) = i["Runtimes"].as_object() {
        println!(
            " Runtimes: {}",
            rt.keys().cloned().collect::<Vec<_>>().join(" ")
        );
    }
    println!(" Default Runtime: {}", s(&i["DefaultRuntime"]));
    println!(" Init Binary: {}", s(&i["InitBinary"]));
    println!(" Security Options:");
    for o in i["SecurityOptions"].as_array().cloned().unwrap_or_default() {
        let o = s(&o);
        let mut parts = o.split(',');
        if let Some(name) = parts.next() {
            println!("  {}", name.trim_start_matches("name="));
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    let mut k = k.to_string();
                    if let Some(f) = k.get_mut(0..1) {
                        f.make_ascii_uppercase();
                    }
                    println!("   {k}: {v}");
                }
            }
        }
    }
    println!(" Kernel Version: {}", s(&i["KernelVersion"]));
    println!(" Operating System: {}", s(&i["OperatingSystem"]));
    println!(" OSType: {}", s(&i["OSType"]));
    println!(" Architecture: {}", s(&i["Architecture"]));
    println!(" CPUs: {}", i["NCPU"]);
    println!(
        " Total Memory: {}",
        bytes_size(i["MemTotal"].as_i64().unwrap_or(0) as f64)
    );
    println!(" Name: {}", s(&i["Name"]));
    println!(" ID: {}", s(&i["ID"]));
    println!(" Docker Root Dir: {}", s(&i["DockerRootDir"]));
    println!(" Debug Mode: {}", b(&i["Debug"]));
    println!(" Experimental: {}", b(&i["ExperimentalBuild"]));
    if let Some(cidrs) = i["RegistryConfig"]["InsecureRegistryCIDRs"].as_array() {
        println!(" Insecure Registries:");
        for c in cidrs {
            println!("  {}", s(c));
        }
    }
    if let Some(m) = i["RegistryConfig"]["Mirrors"]
        .as_array()
        .filter(|m| !m.is_empty())
    {
        println!(" Registry Mirrors:");
        for c in m {
            println!("  {}", s(c));
        }
    }
    println!(" Live Restore Enabled: {}", b(&i["LiveRestoreEnabled"]));
    if let Some(pools) = i["DefaultAddressPools"]
        .as_array()
        .filter(|p| !p.is_empty())
    {
        println!(" Default Address Pools:");
        for p in pools {
            println!("   Base: {}, Size: {}", s(&p["Base"]), p["Size"]);
        }
    }
    println!();
    for w in i["Warnings"].as_array().cloned().unwrap_or_default() {
        eprintln!("{}", s(&w));
    }
}

fn events_query(a: &EventsArgs) -> anyhow::Result<bollard::query_parameters::EventsOptions> {
    let now = chrono::Utc::now();
    let mut filters: std::collections::HashMap<String, Vec<String>> = Default::default();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        filters
            .entry(k.to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    let mut b = bollard::query_parameters::EventsOptionsBuilder::new();
    if let Some(since) = &a.since {
        b = b.since(&parse_time(since, now)?);
    }
    if let Some(until) = &a.until {
        b = b.until(&parse_time(until, now)?);
    }
    if !filters.is_empty() {
        b = b.filters(&filters);
    }
    Ok(b.build())
}

pub async fn events(conn: &Conn, a: EventsArgs) -> anyhow::Result<()> {
    let d: Docker = conn.connect().await?;
    let tmpl = a
        .format
        .as_deref()
        .map(|f| Tmpl::parse(f, &[]))
        .transpose()?;
    let mut stream = d.events(Some(events_query(&a)?));
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        let mut v = serde_json::to_value(&ev)?;
        match &tmpl {
            Some(t) => {
                // Go field names for templates.
                for (go, wire) in [
                    ("Time", "time"),
                    ("TimeNano", "timeNano"),
                    ("Scope", "scope"),
                ] {
                    v[go] = v[wire].clone();
                }
                println!("{}", t.render(&v)?);
            }
            None => {
                let nanos = ev.time_nano.unwrap_or(ev.time.unwrap_or(0) * 1_000_000_000);
                let t = chrono::DateTime::from_timestamp(
                    nanos / 1_000_000_000,
                    (nanos % 1_000_000_000) as u32,
                )
                .unwrap_or_default()
                .with_timezone(&chrono::Local);
                let actor = ev.actor.unwrap_or_default();
                let mut attrs: Vec<(String, String)> =
                    actor.attributes.unwrap_or_default().into_iter().collect();
                attrs.sort();
                let attrs = attrs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let typ = v["Type"].as_str().unwrap_or("").to_string();
                let action = v["Action"].as_str().unwrap_or("").to_string();
                let mut line = format!(
                    "{} {typ} {action} {}",
                    t.format("%Y-%m-%dT%H:%M:%S%.9f%:z"),
                    actor.id.unwrap_or_default()
                );
                if !attrs.is_empty() {
                    line.push_str(&format!(" ({attrs})"));
                }
                println!("{line}");
            }
        }
    }
    Ok(())
}

pub async fn df(conn: &Conn, a: DfArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let usage = serde_json::to_value(
        d.df(None::<bollard::query_parameters::DataUsageOptions>)
            .await?,
    )?;
    let arr = |k: &str| usage[k].as_array().cloned().unwrap_or_default();
    let n = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
    let images = arr("Images");
    let containers = arr("Containers");
    let volumes = arr("Volumes");
    let cache = arr("BuildCache");
    let pct = |reclaim: i64, total: i64| {
        if total > 0 {
            format!("{} ({}%)", human_size4(reclaim), reclaim * 100 / total)
        } else {
            human_size4(reclaim)
        }
    };
    let img_total = n(&usage, "LayersSize");
    let img_used: i64 = images
        .iter()
        .filter(|i| n(i, "Containers") > 0)
        .map(|i| n(i, "Size") - n(i, "SharedSize").max(0))
        .sum();
    let ctr_total: i64 = containers.iter().map(|c| n(c, "SizeRw")).sum();
    let ctr_reclaim: i64 = containers
        .iter()
        .filter(|c| c["State"] != "running")
        .map(|c| n(c, "SizeRw"))
        .sum();
    let vsize = |v: &Value| v["UsageData"]["Size"].as_i64().unwrap_or(0).max(0);
    let vol_total: i64 = volumes.iter().map(vsize).sum();
    let vol_reclaim: i64 = volumes
        .iter()
        .filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .map(vsize)
        .sum();
    let bc_total: i64 = cache.iter().map(|c| n(c, "Size")).sum();
    let bc_reclaim: i64 = cache
        .iter()
        .filter(|c| {
            !c["InUse"].as_bool().unwrap_or(false) && !c["Shared"].as_bool().unwrap_or(false)
        })
        .map(|c| n(c, "Size"))
        .sum();
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len(), "Active": images.iter().filter(|i| n(i, "Containers") > 0).count(), "Size": human_size4(img_total), "Reclaimable": pct(img_total - img_used, img_total)}),
        json!({"Type": "Containers", "TotalCount": containers.len(), "Active": containers.iter().filter(|c| c["State"] == "running").count(), "Size": human_size4(ctr_total), "Reclaimable": pct(ctr_reclaim, ctr_total)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len(), "Active": volumes.iter().filter(|v| v["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0).count(), "Size": human_size4(vol_total), "Reclaimable": pct(vol_reclaim, vol_total)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len(), "Active": cache.iter().filter(|c| c["InUse"].as_bool().unwrap_or(false)).count(), "Size": human_size4(bc_total), "Reclaimable": human_size4(bc_reclaim)}),
    ];
    let fmt = a.format.unwrap_or_else(|| {
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".into()
    });
    let t = Tmpl::parse(
        &fmt,
        &[
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ],
    )?;
    print!("{}", t.render_all(&rows)?);
    if a.verbose {
        println!("\nImages space usage:\n");
        let lines: Vec<String> =
            std::iter::once("REPOSITORY\tTAG\tIMAGE ID\tSIZE\tCONTAINERS".to_string())
                .chain(images.iter().map(|i| {
                    let tag = i["RepoTags"][0].as_str().unwrap_or("<none>:<none>");
                    let (repo, tag) = tag.rsplit_once(':').unwrap_or((tag, "<none>"));
                    let id = s(&i["Id"])
                        .trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>();
                    format!(
                        "{repo}\t{tag}\t{id}\t{}\t{}",
                        crate::format::human_size(n(i, "Size")),
                        n(i, "Containers")
                    )
                }))
                .collect();
        print!("{}", crate::format::tabwrite(&lines));
        println!("\nContainers space usage:\n");
        let lines: Vec<String> =
            std::iter::once("CONTAINER ID\tIMAGE\tCOMMAND\tSIZE\tSTATUS\tNAMES".to_string())
                .chain(containers.iter().map(|c| {
                    let id: String = s(&c["Id"]).chars().take(12).collect();
                    let name = s(&c["Names"][0]).trim_start_matches('/').to_string();
                    format!(
                        "{id}\t{}\t\"{}\"\t{}\t{}\t{name}",
                        s(&c["Image"]),
                        s(&c["Command"]),
                        crate::format::human_size(n(c, "SizeRw")),
                        s(&c["Status"])
                    )
                }))
                .collect();
        print!("{}", crate::format::tabwrite(&lines));
        println!("\nLocal Volumes space usage:\n");
        let lines: Vec<String> = std::iter::once("VOLUME NAME\tLINKS\tSIZE".to_string())
            .chain(volumes.iter().map(|v| {
                format!(
                    "{}\t{}\t{}",
                    s(&v["Name"]),
                    v["UsageData"]["RefCount"],
                    crate::format::human_size(vsize(v))
                )
            }))
            .collect();
        print!("{}", crate::format::tabwrite(&lines));
    }
    Ok(())
}
