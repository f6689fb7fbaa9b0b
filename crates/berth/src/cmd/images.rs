//! `images`, `image ls|inspect|history|tag|rm|prune|import|load|save`, and
//! the top-level `history`, `tag`, `rmi`, `import`, `load`, `save`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use bollard::query_parameters::{
    CreateImageOptions, ImportImageOptions, ListImagesOptions, PruneImagesOptions,
    RemoveImageOptions, TagImageOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::common::{confirm, ellipsis, filters_of, print_inspect, short_id, since};
use crate::client::Conn;
use crate::format::{human_size, human_size4, Tmpl};

#[derive(clap::Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// REPOSITORY[:TAG]
    repository: Option<String>,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

#[derive(clap::Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(clap::Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// file|URL|- : the tarball
    file: String,
    /// REPOSITORY[:TAG]
    repository: Option<String>,
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    #[arg(required = true)]
    images: Vec<String>,
}

/// Splits `name:tag`/`name@digest` the way the docker CLI's image
/// formatter does, to familiar repository + tag/digest.
fn repo_and_rest(r: &str, sep: char) -> (String, String) {
    let last_slash = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[last_slash..].rfind(sep) {
        Some(i) => (
            r[..last_slash + i].to_string(),
            r[last_slash + i + 1..].to_string(),
        ),
        None => (r.to_string(), String::new()),
    }
}

pub async fn images(conn: &Conn, a: ImagesArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let mut filters = filters_of(&a.filter)?;
    if let Some(r) = &a.repository {
        filters
            .entry("reference".into())
            .or_default()
            .push(r.clone());
    }
    let list = d
        .list_images(Some(ListImagesOptions {
            all: a.all,
            filters: (!filters.is_empty()).then_some(filters),
            ..Default::default()
        }))
        .await?;
    let mut rows: Vec<Value> = Vec::new();
    for img in &list {
        let id = if a.no_trunc {
            img.id.clone()
        } else {
            short_id(&img.id)
        };
        let mut row = |repo: &str, tag: &str, digest: &str| {
            rows.push(json!({
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "ID": id,
                "CreatedSince": since(img.created),
                "CreatedAt": chrono::DateTime::from_timestamp(img.created, 0)
                    .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %z %Z").to_string())
                    .unwrap_or_default(),
                "Size": human_size(img.size),
                "Containers": if img.containers < 0 { "N/A".to_string() } else { img.containers.to_string() },
            }));
        };
        if img.repo_tags.is_empty() && img.repo_digests.is_empty() {
            row("<none>", "<none>", "<none>");
            continue;
        }
        // Repositories in a stable order; tags in the daemon's order.
        let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in &img.repo_tags {
            let (repo, tag) = repo_and_rest(t, ':');
            tags.entry(repo).or_default().push(tag);
        }
        for t in &img.repo_digests {
            let (repo, dg) = repo_and_rest(t, '@');
            digests.entry(repo).or_default().push(dg);
        }
        for (repo, ts) in &tags {
            let ds = digests.remove(repo).unwrap_or_default();
            for t in ts {
                if !a.digests || ds.is_empty() {
                    row(repo, t, "<none>");
                } else {
                    for dg in &ds {
                        row(repo, t, dg);
                    }
                }
            }
        }
        for (repo, ds) in &digests {
            if a.digests {
                for dg in ds {
                    row(repo, "<none>", dg);
                }
            } else {
                row(repo, "<none>", "");
            }
        }
    }
    let fmt = if a.quiet {
        "{{.ID}}".to_string()
    } else if let Some(f) = a.format {
        f
    } else if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into()
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into()
    };
    let t = Tmpl::parse(
        &fmt,
        &[
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("Digest", "DIGEST"),
            ("ID", "IMAGE ID"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("Size", "SIZE"),
            ("Containers", "CONTAINERS"),
        ],
    )?;
    print!("{}", t.render_all(&rows)?);
    Ok(())
}

pub async fn inspect(conn: &Conn, a: InspectArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &a.images {
        match d.inspect_image(name).await {
            Ok(i) => found.push(serde_json::to_value(i)?),
            Err(e) => missing.push(super::error_text(&e.into())),
        }
    }
    print_inspect(found, missing, a.format.as_deref())
}

pub async fn history(conn: &Conn, a: HistoryArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let h = d.image_history(&a.image).await?;
    let rows: Vec<Value> = h
        .iter()
        .map(|e| {
            let id = if a.no_trunc || e.id == "<missing>" {
                e.id.clone()
            } else {
                short_id(&e.id)
            };
            let created_by = e.created_by.replace('\t', " ");
            json!({
                "ID": id,
                "CreatedSince": if a.human { since(e.created) } else {
                    chrono::DateTime::from_timestamp(e.created, 0)
                        .map(|t| t.with_timezone(&chrono::Local).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default()
                },
                "CreatedAt": chrono::DateTime::from_timestamp(e.created, 0)
                    .map(|t| t.with_timezone(&chrono::Local).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                "CreatedBy": if a.no_trunc { created_by } else { ellipsis(&created_by, 45) },
                "Size": if a.human { human_size(e.size) } else { e.size.to_string() },
                "Comment": e.comment,
            })
        })
        .collect();
    let fmt = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format.unwrap_or_else(|| {
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into()
        })
    };
    let t = Tmpl::parse(
        &fmt,
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
    )?;
    print!("{}", t.render_all(&rows)?);
    Ok(())
}

pub async fn tag(conn: &Conn, a: TagArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    // The docker CLI sends the repository fully qualified.
    let (repo, tag) = repo_and_rest(&a.target, ':');
    let repo = berth_api::reference::normalize_name(&repo);
    d.tag_image(
        &a.source,
        Some(TagImageOptions {
            repo: Some(repo),
            tag: Some(tag),
        }),
    )
    .await?;
    Ok(())
}

pub async fn rmi(conn: &Conn, a: RmiArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let mut failed = false;
    for name in &a.images {
        match d
            .remove_image(
                name,
                Some(RemoveImageOptions {
                    force: a.force,
                    noprune: a.no_prune,
                }),
                None,
            )
            .await
        {
            Ok(items) => {
                for it in items {
                    if let Some(u) = it.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(dl) = it.deleted {
                        println!("Deleted: {dl}");
                    }
                }
            }
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
        filters.insert("dangling".into(), vec!["false".into()]);
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        filters.insert("dangling".into(), vec!["true".into()]);
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning) {
        return Ok(());
    }
    let d = conn.connect().await?;
    let r = d
        .prune_images(Some(PruneImagesOptions {
            filters: Some(filters),
        }))
        .await?;
    let deleted = r.images_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Images:\n");
        for it in deleted {
            if let Some(u) = it.untagged.filter(|u| !u.is_empty()) {
                out.push_str(&format!("untagged: {u}\n"));
            } else if let Some(dl) = it.deleted {
                out.push_str(&format!("deleted: {dl}\n"));
            }
        }
        println!("{out}");
    }
    println!(
        "Total reclaimed space: {}",
        human_size4(r.space_reclaimed.unwrap_or(0))
    );
    Ok(())
}

/// A file (or stdin for `-`) as a body stream of 1 MiB chunks.
fn file_stream(
    path: &str,
) -> anyhow::Result<impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send> {
    use tokio::io::AsyncReadExt;
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if path == "-" {
        Box::new(tokio::io::stdin())
    } else {
        let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("open {path}: {e}"))?;
        Box::new(tokio::fs::File::from_std(f))
    };
    Ok(futures_util::stream::unfold(Some(reader), |r| async move {
        let mut r = r?;
        let mut buf = vec![0u8; 1 << 20];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(r)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}

pub async fn import(conn: &Conn, a: ImportArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    if a.file.contains("://") {
        anyhow::bail!("importing from a URL is not supported; download the file first");
    }
    let body = bollard::body_try_stream(file_stream(&a.file)?);
    let mut stream = d.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: a.repository.clone(),
            message: a.message.clone(),
            changes: a.change.clone(),
            platform: a.platform.clone().unwrap_or_default(),
            ..Default::default()
        }),
        Some(body),
        None,
    );
    while let Some(m) = stream.next().await {
        let m = m?;
        if let Some(e) = m.error_detail.and_then(|e| e.message) {
            anyhow::bail!("{e}");
        }
        if let Some(st) = m.status {
            println!("{st}");
        }
    }
    Ok(())
}

pub async fn load(conn: &Conn, a: LoadArgs) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let path = a.input.clone().unwrap_or_else(|| "-".into());
    if path == "-" && std::io::stdin().is_terminal() {
        anyhow::bail!("requested load from stdin, but stdin is empty");
    }
    // As the docker CLI: quiet unless a terminal will show the progress.
    let quiet = a.quiet || !std::io::stdout().is_terminal();
    let body = bollard::body_try_stream(file_stream(&path)?);
    let mut stream = d.import_image(
        ImportImageOptions {
            quiet,
            ..Default::default()
        },
        body,
        None,
    );
    while let Some(m) = stream.next().await {
        let m = m?;
        if let Some(e) = m.error_detail.and_then(|e| e.message) {
            anyhow::bail!("{e}");
        }
        if let Some(st) = m.stream {
            print!("{st}");
        } else if let (Some(st), Some(id)) = (m.status, m.id) {
            let p = m.progress_detail.unwrap_or_default();
            match (p.current, p.total) {
                (Some(c), Some(t)) => println!("{id}: {st} {}/{}", human_size(c), human_size(t)),
                _ => println!("{id}: {st}"),
            }
        }
    }
    Ok(())
}

pub async fn save(conn: &Conn, a: SaveArgs) -> anyhow::Result<()> {
    let d: Docker = conn.connect().await?;
    if a.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let names: Vec<&str> = a.images.iter().map(String::as_str).collect();
    let mut stream = d.export_images(&names);
    match &a.output {
        Some(path) => {
            // Write beside the target and rename, so a failure leaves no
            // truncated archive behind.
            let tmp = format!("{path}.berth-tmp-{}", std::process::id());
            let mut f = std::fs::File::create(&tmp)?;
            let r: anyhow::Result<()> = async {
                while let Some(chunk) = stream.next().await {
                    f.write_all(&chunk?)?;
                }
                f.sync_all()?;
                Ok(())
            }
            .await;
            if let Err(e) = r {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, path)?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?)?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split() {
        assert_eq!(
            repo_and_rest("busybox:latest", ':'),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            repo_and_rest("host:5000/a/b:1", ':'),
            ("host:5000/a/b".into(), "1".into())
        );
        assert_eq!(
            repo_and_rest("host:5000/a/b", ':'),
            ("host:5000/a/b".into(), "".into())
        );
    }
}
