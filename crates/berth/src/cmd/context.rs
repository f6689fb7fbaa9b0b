//! `berth context …`: the docker CLI's context commands, on its own store
//! (`crate::ctxstore`), so that a context made by one CLI works in the other.

use std::io::{Read, Write};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};

use crate::client::Conn;
use crate::ctxstore::{self as store, DEFAULT};
use crate::format::{tabwrite, Tmpl};

#[derive(clap::Subcommand)]
pub enum ContextCmd {
    /// Create a context
    Create(CreateArgs),
    /// List contexts
    #[command(name = "ls", visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Set the current docker context
    Use(NameArg),
    /// Display detailed information on one or more contexts
    Inspect(InspectArgs),
    /// Remove one or more contexts
    #[command(name = "rm", visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Export a context to a tar archive FILE or a tar stream on STDOUT
    Export(ExportArgs),
    /// Import a context from a tar or zip file
    Import(ImportArgs),
    /// Update a context
    Update(UpdateArgs),
    /// Print the name of the current context
    Show,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    name: String,
    /// Description of the context
    #[arg(long, default_value = "")]
    description: String,
    /// set the docker endpoint
    #[arg(long, value_name = "stringToString")]
    docker: Option<String>,
    /// create context from a named context
    #[arg(long)]
    from: Option<String>,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    name: String,
    /// Description of the context
    #[arg(long)]
    description: Option<String>,
    /// set the docker endpoint
    #[arg(long, value_name = "stringToString")]
    docker: Option<String>,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Only show context names
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct NameArg {
    name: String,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    names: Vec<String>,
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// Force the removal of a context in use
    #[arg(short, long)]
    force: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    name: String,
    /// FILE, or `-` for STDOUT (default: NAME.dockercontext)
    file: Option<String>,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    name: String,
    /// FILE, or `-` for STDIN
    file: String,
}

pub fn context(conn: &Conn, c: ContextCmd) -> anyhow::Result<()> {
    match c {
        ContextCmd::Create(a) => create(a),
        ContextCmd::Ls(a) => ls(conn, a),
        ContextCmd::Use(a) => use_(a),
        ContextCmd::Inspect(a) => inspect(conn, a),
        ContextCmd::Rm(a) => rm(conn, a),
        ContextCmd::Export(a) => export(a),
        ContextCmd::Import(a) => import(a),
        ContextCmd::Update(a) => update(a),
        ContextCmd::Show => {
            println!("{}", current(conn));
            Ok(())
        }
    }
}

fn current(conn: &Conn) -> String {
    store::current_name(conn.context.as_deref(), conn.host.is_some())
}

/// A context's metadata, the built-in `default` one included.
fn meta_of(host: Option<&str>, name: &str) -> anyhow::Result<Value> {
    if name == DEFAULT {
        let host = host.map(String::from).unwrap_or_else(store::default_host);
        return Ok(json!({
            "Name": DEFAULT,
            "Metadata": {"Description": "Current DOCKER_HOST based configuration"},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
        }));
    }
    store::read_meta(name)
}

/// `--docker host=…,ca=…,cert=…,key=…,skip-tls-verify=…,from=…`: the
/// endpoint and its TLS files.
fn docker_endpoint(conn_default: &Value, spec: &str) -> anyhow::Result<(Value, TlsFiles)> {
    let mut host = None;
    let mut skip = false;
    let mut files = Vec::new();
    let mut from = None;
    for kv in spec.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid argument {spec:?} for \"--docker\" flag: {kv} must be formatted as key=value"))?;
        match k {
            "host" => host = Some(v.to_string()),
            "skip-tls-verify" => {
                skip = super::common::parse_go_bool(v)
                    .map_err(|e| anyhow!("unable to create docker endpoint config: {e}"))?
            }
            "ca" | "cert" | "key" => {
                let data = std::fs::read(v).map_err(|e| {
                    anyhow!(
                        "unable to create docker endpoint config: open {v}: {}",
                        go_err(&e)
                    )
                })?;
                files.push((format!("{k}.pem"), data));
            }
            "from" => from = Some(v.to_string()),
            _ => bail!("unable to create docker endpoint config: unrecognized config key: {k}"),
        }
    }
    if let Some(from) = from {
        let (meta, tls) = from_context(conn_default, &from)?;
        return Ok((meta["Endpoints"]["docker"].clone(), tls));
    }
    let host = host.unwrap_or_else(store::default_host);
    Ok((json!({"Host": host, "SkipTLSVerify": skip}), files))
}

type TlsFiles = Vec<(String, Vec<u8>)>;

fn from_context(default_meta: &Value, name: &str) -> anyhow::Result<(Value, TlsFiles)> {
    if name == DEFAULT {
        return Ok((default_meta.clone(), Vec::new()));
    }
    Ok((store::read_meta(name)?, store::read_tls(name)))
}

fn go_err(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn create(a: CreateArgs) -> anyhow::Result<()> {
    store::validate_name(&a.name)?;
    if store::exists(&a.name) {
        bail!("context {:?} already exists", a.name);
    }
    let default_meta = meta_of(None, DEFAULT)?;
    let (endpoint, tls) = match (&a.docker, &a.from) {
        (Some(spec), _) => docker_endpoint(&default_meta, spec)?,
        (None, Some(from)) => {
            let (meta, tls) = from_context(&default_meta, from)?;
            (meta["Endpoints"]["docker"].clone(), tls)
        }
        (None, None) => {
            let (meta, tls) = from_context(&default_meta, &store::current_name(None, false))?;
            (meta["Endpoints"]["docker"].clone(), tls)
        }
    };
    let mut metadata = serde_json::Map::new();
    if !a.description.is_empty() {
        metadata.insert("Description".into(), json!(a.description));
    }
    let meta = json!({
        "Name": a.name,
        "Metadata": metadata,
        "Endpoints": {"docker": endpoint},
    });
    store::write_meta(&meta)?;
    store::write_tls(&a.name, &tls)?;
    println!("{}", a.name);
    eprintln!("Successfully created context {:?}", a.name);
    Ok(())
}

fn update(a: UpdateArgs) -> anyhow::Result<()> {
    if a.name == DEFAULT {
        bail!("context \"default\" cannot be updated");
    }
    let mut meta = store::read_meta(&a.name)?;
    if let Some(d) = a.description {
        if !meta["Metadata"].is_object() {
            meta["Metadata"] = json!({});
        }
        meta["Metadata"]["Description"] = json!(d);
    }
    if let Some(spec) = a.docker {
        let default_meta = meta_of(None, DEFAULT)?;
        let (endpoint, tls) = docker_endpoint(&default_meta, &spec)?;
        if !meta["Endpoints"].is_object() {
            meta["Endpoints"] = json!({});
        }
        meta["Endpoints"]["docker"] = endpoint;
        store::write_tls(&a.name, &tls)?;
    }
    store::write_meta(&meta)?;
    println!("{}", a.name);
    eprintln!("Successfully updated context {:?}", a.name);
    Ok(())
}

fn ls(conn: &Conn, a: LsArgs) -> anyhow::Result<()> {
    let cur = current(conn);
    let mut rows =
        vec![meta_of(conn.host.as_deref(), DEFAULT)
            .map_err(|e| (DEFAULT.to_string(), e.to_string()))];
    rows.extend(store::list());
    let mut items: Vec<Value> = rows
        .into_iter()
        .map(|r| match r {
            Ok(meta) => {
                let name = meta["Name"].as_str().unwrap_or_default().to_string();
                let (host, _) = store::endpoint(&meta);
                json!({
                    "Current": name == cur,
                    "Description": meta["Metadata"]["Description"].as_str().unwrap_or_default(),
                    "DockerEndpoint": host,
                    "Error": "",
                    "Name": name,
                })
            }
            Err((name, err)) => json!({
                "Current": false, "Description": "", "DockerEndpoint": "",
                "Error": err, "Name": name,
            }),
        })
        .collect();
    // docker sorts them all by name, `default` included.
    items.sort_by(|x, y| {
        crate::format::natural_cmp(
            x["Name"].as_str().unwrap_or_default(),
            y["Name"].as_str().unwrap_or_default(),
        )
    });
    if a.quiet {
        for it in &items {
            println!("{}", it["Name"].as_str().unwrap_or_default());
        }
        warn_docker_host();
        return Ok(());
    }
    match a.format.as_deref() {
        None | Some("table") => {
            let mut lines = vec!["NAME\tDESCRIPTION\tDOCKER ENDPOINT\tERROR".to_string()];
            for it in &items {
                let star = if it["Current"] == json!(true) {
                    " *"
                } else {
                    ""
                };
                lines.push(format!(
                    "{}{star}\t{}\t{}\t{}",
                    it["Name"].as_str().unwrap_or_default(),
                    it["Description"].as_str().unwrap_or_default(),
                    it["DockerEndpoint"].as_str().unwrap_or_default(),
                    it["Error"].as_str().unwrap_or_default(),
                ));
            }
            print!("{}", tabwrite(&lines));
        }
        Some(f) => {
            let t = Tmpl::parse(
                f,
                &[
                    ("Name", "NAME"),
                    ("Description", "DESCRIPTION"),
                    ("DockerEndpoint", "DOCKER ENDPOINT"),
                    ("Current", "CURRENT"),
                    ("Error", "ERROR"),
                ],
            )?;
            print!("{}", t.render_all(&items)?);
        }
    }
    warn_docker_host();
    Ok(())
}

fn warn_docker_host() {
    if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
        eprintln!("Warning: DOCKER_HOST environment variable overrides the active context. To use a context, either set the global --context flag, or unset DOCKER_HOST environment variable.");
    }
}

fn use_(a: NameArg) -> anyhow::Result<()> {
    if a.name != DEFAULT {
        store::read_meta(&a.name)?;
    }
    store::set_current(&a.name)?;
    println!("{}", a.name);
    eprintln!("Current context is now {:?}", a.name);
    if a.name != DEFAULT && std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
        eprintln!("Warning: DOCKER_HOST environment variable overrides the active context. To use {:?}, either set the global --context flag, or unset DOCKER_HOST environment variable.", a.name);
    }
    Ok(())
}

fn inspect(conn: &Conn, a: InspectArgs) -> anyhow::Result<()> {
    let names = if a.names.is_empty() {
        vec![current(conn)]
    } else {
        a.names
    };
    let mut out = Vec::new();
    for name in &names {
        let mut meta = meta_of(conn.host.as_deref(), name)?;
        if name == DEFAULT {
            meta["Metadata"] = json!({});
        }
        let mut tls = serde_json::Map::new();
        let files: Vec<String> = store::read_tls(name).into_iter().map(|f| f.0).collect();
        if !files.is_empty() {
            tls.insert("docker".into(), json!(files));
        }
        let (mp, tp) = if name == DEFAULT {
            ("<IN MEMORY>".to_string(), "<IN MEMORY>".to_string())
        } else {
            (
                store::meta_dir(name).display().to_string(),
                store::tls_dir(name).display().to_string(),
            )
        };
        out.push(Inspected {
            name: meta["Name"].clone(),
            metadata: meta["Metadata"].clone(),
            endpoints: meta["Endpoints"].clone(),
            tls_material: tls,
            storage: Storage {
                metadata_path: mp,
                tls_path: tp,
            },
        });
    }
    match a.format {
        Some(f) => {
            let t = Tmpl::parse(&f, &[])?;
            for o in &out {
                println!("{}", t.render(&serde_json::to_value(o)?)?);
            }
        }
        None => {
            // Go's json encoder escapes <, > and & in strings.
            let text = super::common::pretty(&out)?
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026");
            println!("{text}");
        }
    }
    Ok(())
}

/// `context inspect`'s object, in the docker CLI's key order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    name: Value,
    metadata: Value,
    endpoints: Value,
    #[serde(rename = "TLSMaterial")]
    tls_material: serde_json::Map<String, Value>,
    storage: Storage,
}

#[derive(serde::Serialize)]
struct Storage {
    #[serde(rename = "MetadataPath")]
    metadata_path: String,
    #[serde(rename = "TLSPath")]
    tls_path: String,
}

fn rm(conn: &Conn, a: RmArgs) -> anyhow::Result<()> {
    let cur = current(conn);
    let mut errs = Vec::new();
    for name in &a.names {
        let r = if name == DEFAULT {
            Err(anyhow!("context \"default\" cannot be removed"))
        } else if *name == cur && !a.force {
            Err(anyhow!(
                "context {name:?} is in use, set -f flag to force remove"
            ))
        } else if !a.force && !store::exists(name) {
            Err(anyhow!("context {name:?} does not exist"))
        } else {
            // As docker: the current one falls back to the default, and
            // with -f a missing one is no error.
            let fallback = if *name == cur {
                store::set_current(DEFAULT)
            } else {
                Ok(())
            };
            fallback.and_then(|()| match store::exists(name) {
                true => store::remove(name),
                false => Ok(()),
            })
        };
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    if !errs.is_empty() {
        bail!("{}", errs.join("\n"));
    }
    Ok(())
}

/// docker's export: `meta.json`, then `tls/` and `tls/docker/<file>`.
fn export(a: ExportArgs) -> anyhow::Result<()> {
    let meta = if a.name == DEFAULT {
        meta_of(None, DEFAULT)?
    } else {
        store::read_meta(&a.name)?
    };
    let tls = store::read_tls(&a.name);
    let mut b = tar::Builder::new(Vec::new());
    let entry = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode, data: &[u8], dir: bool| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        b.append_data(&mut h, path, data)
    };
    let meta_bytes = serde_json::to_vec(&store::Ordered::of(&meta))?;
    entry(&mut b, "meta.json", 0o644, &meta_bytes, false)?;
    entry(&mut b, "tls", 0o700, &[], true)?;
    if !tls.is_empty() {
        entry(&mut b, "tls/docker", 0o700, &[], true)?;
        for (f, data) in &tls {
            entry(&mut b, &format!("tls/docker/{f}"), 0o600, data, false)?;
        }
    }
    let data = b.into_inner()?;
    let file = a
        .file
        .unwrap_or_else(|| format!("{}.dockercontext", a.name));
    if file == "-" {
        std::io::stdout().write_all(&data)?;
    } else {
        std::fs::write(&file, &data).with_context(|| format!("writing {file}"))?;
        eprintln!("Written file {file:?}");
    }
    Ok(())
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    store::validate_name(&a.name)?;
    if store::exists(&a.name) {
        bail!("context {:?} already exists", a.name);
    }
    let mut data = Vec::new();
    if a.file == "-" {
        std::io::stdin().read_to_end(&mut data)?;
    } else {
        data = std::fs::read(&a.file).map_err(|e| anyhow!("open {}: {}", a.file, go_err(&e)))?;
    }
    let mut meta = None;
    let mut tls = Vec::new();
    let mut ar = tar::Archive::new(&data[..]);
    for e in ar.entries()? {
        let mut e = e?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = e.path()?.to_string_lossy().into_owned();
        let mut body = Vec::new();
        e.read_to_end(&mut body)?;
        if path == "meta.json" {
            let mut m: Value = serde_json::from_slice(&body)
                .map_err(|e| anyhow!("parsing context metadata: {e}"))?;
            m["Name"] = json!(a.name);
            meta = Some(m);
        } else if let Some(f) = path.strip_prefix("tls/docker/") {
            if f.contains('/') || f.contains('\\') || f == ".." || f.is_empty() {
                bail!("{path}: unexpected path format");
            }
            tls.push((f.to_string(), body));
        } else if !path.starts_with("tls/") {
            bail!("{path}: unexpected context file");
        }
    }
    let meta = meta.ok_or_else(|| anyhow!("invalid context: no metadata found"))?;
    store::write_meta(&meta)?;
    store::write_tls(&a.name, &tls)?;
    println!("{}", a.name);
    eprintln!("Successfully imported context {:?}", a.name);
    Ok(())
}
