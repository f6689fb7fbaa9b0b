//! `plugin create|enable|disable|inspect|install|ls|push|rm|set|upgrade`,
//! with the docker CLI's flags, prompts and output. bollard has no plugin
//! calls, so these go through the raw client.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use berth_api::reference::Reference;

use super::common::{ellipsis, filters_of, print_raw_inspect, short_id, show_stream};
use crate::client::Conn;
use crate::creds;
use crate::format::Tmpl;
use crate::raw::{self, Raw};
use crate::ExitCode;

#[derive(clap::Subcommand)]
pub enum PluginCmd {
    /// Create a plugin from a rootfs and configuration. Plugin data directory must contain config.json and rootfs directory.
    Create(CreateArgs),
    /// Disable a plugin
    Disable(DisableArgs),
    /// Enable a plugin
    Enable(EnableArgs),
    /// Display detailed information on one or more plugins
    Inspect(InspectArgs),
    /// Install a plugin
    Install(InstallArgs),
    /// List plugins
    #[command(name = "ls", visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Push a plugin to a registry
    Push(PushArgs),
    /// Remove one or more plugins
    #[command(name = "rm", visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Change settings for a plugin
    Set(SetArgs),
    /// Upgrade an existing plugin
    Upgrade(UpgradeArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Compress the context using gzip
    #[arg(long)]
    compress: bool,
    /// PLUGIN
    plugin: String,
    /// PLUGIN-DATA-DIR
    dir: String,
}

#[derive(clap::Args)]
pub struct DisableArgs {
    /// Force the disable of an active plugin
    #[arg(short, long)]
    force: bool,
    plugin: String,
}

#[derive(clap::Args)]
pub struct EnableArgs {
    /// HTTP client timeout (in seconds)
    #[arg(long, default_value_t = 30, allow_negative_numbers = true)]
    timeout: i64,
    plugin: String,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    plugins: Vec<String>,
}

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Local name for plugin
    #[arg(long)]
    alias: Option<String>,
    /// Do not enable the plugin on install
    #[arg(long)]
    disable: bool,
    /// Grant all permissions necessary to run the plugin
    #[arg(long)]
    grant_all_permissions: bool,
    /// Skip image verification (accepted for compatibility)
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    disable_content_trust: Option<String>,
    /// PLUGIN
    plugin: String,
    /// KEY=VALUE settings
    args: Vec<String>,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "enabled=true")
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only display plugin IDs
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// Skip image signing (accepted for compatibility)
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    disable_content_trust: Option<String>,
    /// PLUGIN[:TAG]
    plugin: String,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Force the removal of an active plugin
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    plugins: Vec<String>,
}

#[derive(clap::Args)]
pub struct SetArgs {
    plugin: String,
    /// KEY=VALUE settings
    #[arg(required = true)]
    args: Vec<String>,
}

#[derive(clap::Args)]
pub struct UpgradeArgs {
    /// Do not enable the plugin after upgrade
    #[arg(long)]
    disable: bool,
    /// Grant all permissions necessary to run the plugin
    #[arg(long)]
    grant_all_permissions: bool,
    /// Do not check if specified remote plugin matches existing plugin image
    #[arg(long)]
    skip_remote_check: bool,
    /// Skip image verification (accepted for compatibility)
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    disable_content_trust: Option<String>,
    plugin: String,
    /// REMOTE
    remote: Option<String>,
}

pub async fn plugin(conn: &Conn, c: PluginCmd) -> anyhow::Result<()> {
    match c {
        PluginCmd::Create(a) => create(conn, a).await,
        PluginCmd::Disable(a) => disable(conn, a).await,
        PluginCmd::Enable(a) => enable(conn, a).await,
        PluginCmd::Inspect(a) => inspect(conn, a).await,
        PluginCmd::Install(a) => install(conn, a).await,
        PluginCmd::Ls(a) => ls(conn, a).await,
        PluginCmd::Push(a) => push(conn, a).await,
        PluginCmd::Rm(a) => rm(conn, a).await,
        PluginCmd::Set(a) => set(conn, a).await,
        PluginCmd::Upgrade(a) => upgrade(conn, a).await,
    }
}

async fn rawc(conn: &Conn) -> anyhow::Result<Raw> {
    let d = conn.connect().await?;
    Ok(conn.raw(&d))
}

/// A plugin reference as the docker CLI normalises it: tagged `latest`
/// when untagged, and refused with a digest.
fn tagged(name: &str) -> anyhow::Result<Reference> {
    let r = Reference::parse(name)?;
    if r.digest.is_some() {
        bail!("invalid name: {name}");
    }
    Ok(r.with_default_tag())
}

/// The context as the docker CLI checks it: a directory holding
/// `config.json` and a `rootfs` directory.
fn validate_dir(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("context must be a directory");
    }
    if !dir.join("config.json").is_file() {
        bail!("config.json is missing or not a file in {}", dir.display());
    }
    if !dir.join("rootfs").is_dir() {
        bail!("rootfs is missing or not a directory in {}", dir.display());
    }
    Ok(())
}

/// The data directory as a tar (symlinks kept as links), gzipped on ask.
fn pack(dir: &Path, compress: bool) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", dir)
        .with_context(|| format!("archiving {}", dir.display()))?;
    let data = b.into_inner()?;
    if !compress {
        return Ok(data);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&data)?;
    Ok(gz.finish()?)
}

pub async fn create(conn: &Conn, a: CreateArgs) -> anyhow::Result<()> {
    let r = tagged(&a.plugin)?;
    let dir = std::path::absolute(&a.dir)?;
    validate_dir(&dir)?;
    let ctype = if a.compress {
        "application/x-gzip"
    } else {
        "application/x-tar"
    };
    let body = pack(&dir, a.compress)?;
    let path = format!("/plugins/create?{}", raw::query(&[("name", r.familiar())]));
    rawc(conn)
        .await?
        .call("POST", &path, Some((ctype, body)))
        .await?;
    println!("{}", a.plugin);
    Ok(())
}

pub async fn enable(conn: &Conn, a: EnableArgs) -> anyhow::Result<()> {
    if a.timeout < 0 {
        bail!("negative timeout {} is invalid", a.timeout);
    }
    let path = format!(
        "/plugins/{}/enable?{}",
        raw::seg(&a.plugin),
        raw::query(&[("timeout", a.timeout.to_string())])
    );
    rawc(conn).await?.call("POST", &path, None).await?;
    println!("{}", a.plugin);
    Ok(())
}

pub async fn disable(conn: &Conn, a: DisableArgs) -> anyhow::Result<()> {
    let mut path = format!("/plugins/{}/disable", raw::seg(&a.plugin));
    if a.force {
        path.push_str("?force=1");
    }
    rawc(conn).await?.call("POST", &path, None).await?;
    println!("{}", a.plugin);
    Ok(())
}

pub async fn rm(conn: &Conn, a: RmArgs) -> anyhow::Result<()> {
    let c = rawc(conn).await?;
    let mut failed = false;
    for name in &a.plugins {
        let mut path = format!("/plugins/{}", raw::seg(name));
        if a.force {
            path.push_str("?force=1");
        }
        match c.call("DELETE", &path, None).await {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", super::error_text(&e));
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode(1).into());
    }
    Ok(())
}

pub async fn set(conn: &Conn, a: SetArgs) -> anyhow::Result<()> {
    let path = format!("/plugins/{}/set", raw::seg(&a.plugin));
    let body = serde_json::to_vec(&a.args)?;
    rawc(conn)
        .await?
        .call("POST", &path, Some(("application/json", body)))
        .await?;
    Ok(())
}

pub async fn inspect(conn: &Conn, a: InspectArgs) -> anyhow::Result<()> {
    let c = rawc(conn).await?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &a.plugins {
        match c
            .get_raw(&format!("/plugins/{}/json", raw::seg(name)))
            .await
        {
            Ok(body) => found.push(body),
            Err(e) => missing.push(super::error_text(&e)),
        }
    }
    print_raw_inspect(&found, &missing, a.format.as_deref())
}

/// One row of `plugin ls`, with the docker CLI's field names.
fn row(p: &Value, trunc: bool) -> Value {
    let id = p["Id"].as_str().unwrap_or_default();
    let desc = p["Config"]["Description"]
        .as_str()
        .unwrap_or_default()
        .replace(['\n', '\r'], "");
    json!({
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Name": p["Name"].as_str().unwrap_or_default(),
        "Description": if trunc { ellipsis(&desc, 45) } else { desc },
        "Enabled": if p["Enabled"].as_bool() == Some(true) { "true" } else { "false" },
        "PluginReference": p["PluginReference"].as_str().unwrap_or_default(),
    })
}

pub async fn ls(conn: &Conn, a: LsArgs) -> anyhow::Result<()> {
    let filters = filters_of(&a.filter)?;
    let mut path = "/plugins".to_string();
    if !filters.is_empty() {
        path.push_str(&format!(
            "?{}",
            raw::query(&[("filters", serde_json::to_string(&filters)?)])
        ));
    }
    let body = rawc(conn).await?.call("GET", &path, None).await?;
    let list: Vec<Value> = serde_json::from_slice(&body).context("reading the plugin list")?;
    let rows: Vec<Value> = list.iter().map(|p| row(p, !a.no_trunc)).collect();
    let fmt = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format
            .unwrap_or_else(|| "table {{.ID}}\t{{.Name}}\t{{.Description}}\t{{.Enabled}}".into())
    };
    let t = Tmpl::parse(
        &fmt,
        &[
            ("ID", "ID"),
            ("Name", "NAME"),
            ("Description", "DESCRIPTION"),
            ("Enabled", "ENABLED"),
            ("PluginReference", "PLUGIN REFERENCE"),
        ],
    )?;
    print!("{}", t.render_all(&rows)?);
    Ok(())
}

/// Asks for the privileges a remote plugin needs; with `grant_all` they
/// are accepted without a prompt, as `--grant-all-permissions` does.
async fn privileges(c: &Raw, r: &Reference, grant_all: bool) -> anyhow::Result<Value> {
    let path = format!(
        "/plugins/privileges?{}",
        raw::query(&[("remote", r.familiar())])
    );
    let resp = super::common::send_with_auth(c, "GET", &path, &r.domain).await?;
    let privs: Value = serde_json::from_slice(&resp.body().await?)?;
    let list = privs.as_array().cloned().unwrap_or_default();
    if grant_all || list.is_empty() {
        return Ok(Value::Array(list));
    }
    println!(
        "Plugin \"{}\" is requesting the following privileges:",
        r.familiar()
    );
    for p in &list {
        let values: Vec<String> = p["Value"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            " - {}: [{}]",
            p["Name"].as_str().unwrap_or_default(),
            values.join(" ")
        );
    }
    print!("Do you grant the above permissions? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        bail!("permission denied while installing plugin {}", r.familiar());
    }
    Ok(Value::Array(list))
}

/// Posts `privs` with the registry credentials and shows the progress.
async fn pull_like(
    c: &Raw,
    path: &str,
    r: &Reference,
    privs: &Value,
) -> anyhow::Result<raw::Response> {
    let auth = creds::registry_auth_header(&r.domain);
    let resp = c
        .send_with(
            "POST",
            path,
            Some(("application/json", serde_json::to_vec(privs)?)),
            false,
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    if resp.status >= 400 {
        return Err(resp.error().await.into());
    }
    Ok(resp)
}

pub async fn install(conn: &Conn, a: InstallArgs) -> anyhow::Result<()> {
    let remote = tagged(&a.plugin)?;
    let local = match &a.alias {
        Some(alias) => {
            let r = Reference::parse(alias)?;
            if r.digest.is_some() {
                bail!("invalid name: {alias}");
            }
            r.with_default_tag().familiar()
        }
        None => String::new(),
    };
    let c = rawc(conn).await?;
    let privs = privileges(&c, &remote, a.grant_all_permissions).await?;
    let path = format!(
        "/plugins/pull?{}",
        raw::query(&[("remote", remote.familiar()), ("name", local)])
    );
    let resp = pull_like(&c, &path, &remote, &privs).await?;
    let name = resp
        .header("docker-plugin-name")
        .map(String::from)
        .unwrap_or_else(|| remote.familiar());
    let is_term = std::io::stdout().is_terminal();
    show_stream(resp, &mut std::io::stdout(), is_term, false, &mut |_| {}).await?;
    if !a.args.is_empty() {
        c.call(
            "POST",
            &format!("/plugins/{}/set", raw::seg(&name)),
            Some(("application/json", serde_json::to_vec(&a.args)?)),
        )
        .await?;
    }
    if !a.disable {
        c.call(
            "POST",
            &format!("/plugins/{}/enable?timeout=0", raw::seg(&name)),
            None,
        )
        .await?;
    }
    println!("Installed plugin {}", a.plugin);
    Ok(())
}

pub async fn push(conn: &Conn, a: PushArgs) -> anyhow::Result<()> {
    let r = tagged(&a.plugin)?;
    let c = rawc(conn).await?;
    let auth = creds::registry_auth_header(&r.domain);
    let resp = c
        .send_with(
            "POST",
            &format!("/plugins/{}/push", raw::seg(&r.familiar())),
            None,
            false,
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    if resp.status >= 400 {
        return Err(resp.error().await.into());
    }
    let is_term = std::io::stdout().is_terminal();
    show_stream(resp, &mut std::io::stdout(), is_term, false, &mut |_| {}).await
}

pub async fn upgrade(conn: &Conn, a: UpgradeArgs) -> anyhow::Result<()> {
    let c = rawc(conn).await?;
    let body = c
        .call(
            "GET",
            &format!("/plugins/{}/json", raw::seg(&a.plugin)),
            None,
        )
        .await
        .context("error reading plugin data")?;
    let p: Value = serde_json::from_slice(&body)?;
    if p["Enabled"].as_bool() == Some(true) {
        bail!("the plugin must be disabled before upgrading");
    }
    let old_ref = p["PluginReference"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let remote = a.remote.clone().unwrap_or_else(|| old_ref.clone());
    let old = tagged(&old_ref).context("error parsing plugin reference")?;
    let new = tagged(&remote).context("error parsing remote upgrade image reference")?;
    if !a.skip_remote_check && old.name() != new.name() {
        print!(
            "Remote reference {} does not match existing plugin reference {}.\nProceeding could leave the plugin in an inconsistent state. Do you want to continue? [y/N] ",
            new.familiar(),
            old.familiar()
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            bail!("canceling upgrade request");
        }
    }
    let name = p["Name"].as_str().unwrap_or(&a.plugin).to_string();
    println!(
        "Upgrading plugin {name} from {} to {}",
        old.familiar(),
        new.familiar()
    );
    let privs = privileges(&c, &new, a.grant_all_permissions).await?;
    let path = format!(
        "/plugins/{}/upgrade?{}",
        raw::seg(&name),
        raw::query(&[("remote", new.familiar())])
    );
    let resp = pull_like(&c, &path, &new, &privs).await?;
    let is_term = std::io::stdout().is_terminal();
    show_stream(resp, &mut std::io::stdout(), is_term, false, &mut |_| {}).await?;
    if !a.disable {
        c.call(
            "POST",
            &format!("/plugins/{}/enable?timeout=0", raw::seg(&name)),
            None,
        )
        .await?;
    }
    println!("Upgraded plugin {} to {}", a.plugin, remote);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_truncate_as_the_docker_cli() {
        let p = json!({
            "Id": "0123456789abcdef0123",
            "Name": "rclone:latest",
            "Enabled": true,
            "Config": {"Description": "Rclone volume plugin\nfor Docker, with a description that is long"},
            "PluginReference": "localhost:5000/rclone:latest",
        });
        let r = row(&p, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Enabled"], "true");
        assert_eq!(
            r["Description"],
            "Rclone volume pluginfor Docker, with a descr…"
        );
        let r = row(&p, false);
        assert_eq!(r["ID"], "0123456789abcdef0123");
        assert_eq!(
            r["Description"],
            "Rclone volume pluginfor Docker, with a description that is long"
        );
    }

    #[test]
    fn references_are_tagged_and_digests_refused() {
        assert_eq!(tagged("rclone").unwrap().familiar(), "rclone:latest");
        assert_eq!(
            tagged("localhost:5000/x/y:v2").unwrap().familiar(),
            "localhost:5000/x/y:v2"
        );
        assert!(tagged(&format!("x@sha256:{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn a_data_dir_needs_config_and_rootfs_and_keeps_links() {
        let t = tempfile::tempdir().unwrap();
        assert!(validate_dir(t.path()).is_err());
        std::fs::write(t.path().join("config.json"), "{}").unwrap();
        assert!(validate_dir(t.path()).is_err());
        std::fs::create_dir(t.path().join("rootfs")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("rootfs/link")).unwrap();
        validate_dir(t.path()).unwrap();
        let data = pack(t.path(), false).unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        let mut saw_link = false;
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            if e.path().unwrap().ends_with("rootfs/link") {
                assert_eq!(e.header().entry_type(), tar::EntryType::Symlink);
                saw_link = true;
            }
        }
        assert!(saw_link);
    }
}
