//! `berth build`: the classic builder's client side, as the docker CLI does
//! it with BuildKit off: the context directory is archived (minus what
//! `.dockerignore` excludes), sent to `POST /build`, and the JSON-message
//! stream printed; `errorDetail.code` becomes the exit status.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_api::dockerignore::Matcher;

use crate::client::Conn;
use crate::raw::query;
use crate::ExitCode;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Set metadata for an image
    #[arg(long = "label")]
    label: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    network: String,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    force_rm: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// PATH | URL | -
    context: String,
}

/// A tar archive (possibly gzip-compressed) rather than a Dockerfile.
fn looks_like_archive(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
        || b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (b.len() >= 262 && &b[257..262] == b"ustar")
}

fn header_for(md: &std::fs::Metadata) -> tar::Header {
    use std::os::unix::fs::MetadataExt;
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// Archives `dir`, leaving out what `m` excludes (but never the files in
/// `always`). An `extra` Dockerfile (from stdin or outside the context)
/// is added under its random name and listed in `.dockerignore`, as the
/// docker CLI does, so the daemon drops it from what COPY sees.
fn archive_dir(
    dir: &Path,
    m: &Matcher,
    always: &[String],
    extra: Option<(&str, &[u8])>,
) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let add_file = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(data.len() as u64);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        b.append_data(&mut h, name, data)?;
        Ok(())
    };
    fn walk(
        b: &mut tar::Builder<Vec<u8>>,
        root: &Path,
        rel: &str,
        m: &Matcher,
        always: &[String],
        skip_ignore: bool,
    ) -> anyhow::Result<()> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let p = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if skip_ignore && p == ".dockerignore" {
                continue;
            }
            let full = root.join(&p);
            let md = std::fs::symlink_metadata(&full)?;
            let excluded = m.excludes(&p) && !always.contains(&p);
            if md.is_dir() {
                if excluded && !m.may_include_under(&p) {
                    continue;
                }
                if !excluded {
                    let mut h = header_for(&md);
                    h.set_entry_type(tar::EntryType::Directory);
                    b.append_data(&mut h, &p, std::io::empty())?;
                }
                walk(b, root, &p, m, always, skip_ignore)?;
                continue;
            }
            if excluded {
                continue;
            }
            let mut h = header_for(&md);
            if md.file_type().is_symlink() {
                h.set_entry_type(tar::EntryType::Symlink);
                let target = std::fs::read_link(&full)?;
                b.append_link(&mut h, &p, target)?;
            } else if md.is_file() {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(md.len());
                let f = std::fs::File::open(&full)
                    .with_context(|| format!("reading {}", full.display()))?;
                b.append_data(&mut h, &p, f)?;
            }
        }
        Ok(())
    }
    let skip_ignore = extra.is_some();
    walk(&mut b, dir, "", m, always, skip_ignore)?;
    if let Some((name, data)) = extra {
        add_file(&mut b, name, data)?;
        let mut ignore = std::fs::read_to_string(dir.join(".dockerignore"))
            .unwrap_or_else(|_| ".dockerignore".to_string());
        ignore.push_str(&format!("\n{name}\n"));
        add_file(&mut b, ".dockerignore", ignore.as_bytes())?;
    }
    Ok(b.into_inner()?)
}

fn one_file_tar(name: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data)?;
    Ok(b.into_inner()?)
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut v = Vec::new();
    std::io::stdin().read_to_end(&mut v)?;
    Ok(v)
}

/// The context tar and the `dockerfile` parameter.
fn make_context(a: &BuildArgs) -> anyhow::Result<(Vec<u8>, String)> {
    if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        if std::io::stdin().is_terminal() {
            bail!("requested build context from stdin, but stdin is a terminal");
        }
        let data = read_stdin()?;
        if looks_like_archive(&data) {
            return Ok((data, a.file.clone().unwrap_or_default()));
        }
        return Ok((one_file_tar("Dockerfile", &data)?, "Dockerfile".into()));
    }
    if a.context.contains("://") || a.context.starts_with("git@") {
        bail!("remote build contexts are not supported by berth: use a directory or -");
    }
    let dir = PathBuf::from(&a.context);
    let md = std::fs::metadata(&dir)
        .with_context(|| format!("unable to prepare context: path {:?} not found", a.context))?;
    if !md.is_dir() {
        bail!(
            "unable to prepare context: context must be a directory: {}",
            a.context
        );
    }
    let abs_dir = std::fs::canonicalize(&dir)?;
    let ignore = std::fs::read_to_string(abs_dir.join(".dockerignore")).unwrap_or_default();
    let m = Matcher::parse(&ignore);
    // The Dockerfile: in the context (sent under its path), from stdin or
    // outside the context (sent under a random name).
    let (extra, name): (Option<(String, Vec<u8>)>, String) = match a.file.as_deref() {
        Some("-") => {
            let n = format!(".dockerfile.{}", random_hex());
            (Some((n.clone(), read_stdin()?)), n)
        }
        Some(f) => {
            let p = std::fs::canonicalize(f).with_context(|| {
                format!("unable to prepare context: Dockerfile {f:?} not found")
            })?;
            match p.strip_prefix(&abs_dir) {
                Ok(rel) => (None, rel.to_string_lossy().into_owned()),
                Err(_) => {
                    let n = format!(".dockerfile.{}", random_hex());
                    (Some((n.clone(), std::fs::read(&p)?)), n)
                }
            }
        }
        None => {
            if !abs_dir.join("Dockerfile").exists() && abs_dir.join("dockerfile").exists() {
                (None, "dockerfile".into())
            } else {
                (None, "Dockerfile".into())
            }
        }
    };
    if extra.is_none() && !abs_dir.join(&name).is_file() {
        bail!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
            abs_dir.join(&name).display()
        );
    }
    let always = vec![name.clone(), ".dockerignore".to_string()];
    let tar = archive_dir(
        &abs_dir,
        &m,
        &always,
        extra.as_ref().map(|(n, d)| (n.as_str(), d.as_slice())),
    )?;
    Ok((tar, name))
}

pub async fn build(conn: &Conn, a: BuildArgs) -> anyhow::Result<()> {
    let (tar, dockerfile) = make_context(&a)?;
    if let Some(f) = &a.iidfile {
        let _ = std::fs::remove_file(f);
    }
    let d = conn.connect().await?;
    let raw = conn.raw(&d);
    let mut q: Vec<(&str, String)> = Vec::new();
    for t in &a.tag {
        q.push(("t", t.clone()));
    }
    if !dockerfile.is_empty() {
        q.push(("dockerfile", dockerfile));
    }
    if a.quiet {
        q.push(("q", "1".into()));
    }
    if a.no_cache {
        q.push(("nocache", "1".into()));
    }
    if a.pull {
        q.push(("pull", "1".into()));
    }
    if !a.rm {
        q.push(("rm", "0".into()));
    }
    if a.force_rm {
        q.push(("forcerm", "1".into()));
    }
    if a.network != "default" && !a.network.is_empty() {
        q.push(("networkmode", a.network.clone()));
    }
    let mut args: BTreeMap<String, Option<String>> = BTreeMap::new();
    for b in &a.build_arg {
        match b.split_once('=') {
            Some((k, v)) => args.insert(k.to_string(), Some(v.to_string())),
            None => args.insert(b.clone(), std::env::var(b).ok()),
        };
    }
    if !args.is_empty() {
        q.push(("buildargs", serde_json::to_string(&args)?));
    }
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    if !labels.is_empty() {
        q.push(("labels", serde_json::to_string(&labels)?));
    }
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    q.push(("version", "1".into()));
    if !a.quiet {
        println!(
            "Sending build context to the daemon  {}",
            berth_api::units::human_size(tar.len() as f64)
        );
    }
    let resp = raw
        .send(
            "POST",
            &format!("/build?{}", query(&q)),
            Some(("application/x-tar", tar)),
            false,
        )
        .await?;
    if resp.status >= 400 {
        return Err(resp.error().await.into());
    }
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut id: Option<String> = None;
    let mut out = std::io::stdout();
    loop {
        let chunk = body.chunk().await?;
        let done = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c);
        }
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let Ok(m) = serde_json::from_str::<berth_api::jsonmessage::JsonMessage>(text) else {
                continue;
            };
            if let Some(e) = &m.error_detail {
                let _ = out.flush();
                eprintln!("{}", e.message);
                let code = e.code.filter(|c| *c != 0).unwrap_or(1);
                return Err(ExitCode(code as i32).into());
            }
            if let Some(aux) = &m.aux {
                if let Some(i) = aux.get("ID").and_then(|v| v.as_str()) {
                    id = Some(i.to_string());
                }
            }
            if let Some(s) = &m.stream {
                if a.quiet && s.trim().starts_with("sha256:") {
                    id = Some(s.trim().to_string());
                }
                out.write_all(s.as_bytes())?;
                out.flush()?;
            }
        }
        if done {
            break;
        }
    }
    if let (Some(f), Some(i)) = (&a.iidfile, &id) {
        std::fs::write(f, i).with_context(|| format!("writing image ID file {}", f.display()))?;
    }
    Ok(())
}
