//! `cp`: copy files between a container and the local file system, with
//! the docker CLI's rules for where a copy lands (`archive.CopyTo`,
//! `PrepareArchiveCopy`): into an existing directory under the source's
//! name, or as the destination's name in its parent.

use std::io::{IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::client::{Conn, DEFAULT_HOST};
use crate::format::human_size;

#[derive(clap::Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy (automatic without a terminal)
    #[arg(short, long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH, or a local path (`-` reads a tar from stdin)
    src: String,
    /// CONTAINER:DEST_PATH, or a local path (`-` writes a tar to stdout)
    dst: String,
}

/// `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, Deserialize)]
struct PathStat {
    #[serde(default)]
    mode: u32,
    #[serde(default, rename = "linkTarget")]
    link_target: String,
}

const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

impl PathStat {
    fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }
    fn is_symlink(&self) -> bool {
        self.mode & MODE_SYMLINK != 0
    }
}

/// docker's `splitCpArg`: `container:path`, or a local path (absolute,
/// starting with `.`, or without a colon).
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

/// Go's `filepath.Base` (a path ending in `/.` has base `.`).
fn base(p: &str) -> String {
    if p.ends_with("/.") || p == "." {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Go's `filepath.Dir` of a container path.
fn parent(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => t[..i].to_string(),
        None => ".".into(),
    }
}

fn join(dir: &str, rel: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{rel}")
    } else {
        format!("{dir}/{rel}")
    }
}

/// docker's `GetRebaseName`: the resolved path with the original's
/// trailing `/` or `/.`, and the name entries get if the bases differ.
fn rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut r = resolved.to_string();
    if path.ends_with("/.") && !r.ends_with("/.") {
        r.push_str("/.");
    } else if path.ends_with('/') && !r.ends_with('/') {
        r.push('/');
    }
    let (a, b) = (base(path), base(&r));
    (r, (a != b).then_some(a))
}

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `HEAD /containers/{id}/archive` over a plain connection.
fn raw_head<S: Read + Write>(
    mut s: S,
    container: &str,
    path: &str,
) -> anyhow::Result<Option<PathStat>> {
    let req = format!(
        "HEAD /containers/{}/archive?path={} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: berth\r\nConnection: close\r\n\r\n",
        pct(container),
        pct(path)
    );
    s.write_all(req.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("bad response from the daemon")?;
    match status {
        404 => return Ok(None),
        200 => {}
        other => bail!("Error response from daemon: stat {path}: status {other}"),
    }
    let value = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("X-Docker-Container-Path-Stat")
                .then(|| v.trim().to_string())
        })
        .context("unable to decode container path stat header")?;
    decode_stat(&value).map(Some)
}

fn decode_stat(v: &str) -> anyhow::Result<PathStat> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(v)
        .context("unable to decode container path stat header")?;
    Ok(serde_json::from_slice(&json)?)
}

/// The first header of the path's archive, for connections `raw_head`
/// cannot make (TLS): enough to tell a directory and a symlink's target.
async fn stat_by_get(d: &Docker, container: &str, path: &str) -> anyhow::Result<Option<PathStat>> {
    let mut s = d.download_from_container(
        container,
        Some(DownloadFromContainerOptions { path: path.into() }),
    );
    let mut buf = Vec::new();
    while buf.len() < 16 << 10 {
        match s.next().await {
            Some(Ok(b)) => buf.extend_from_slice(&b),
            Some(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })) => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    let mut ar = tar::Archive::new(std::io::Cursor::new(buf));
    let mut entries = ar.entries()?;
    let Some(e) = entries.next() else {
        return Ok(None);
    };
    let e = e?;
    let kind = e.header().entry_type();
    let mut mode = e.header().mode().unwrap_or(0) & 0o777;
    let mut link_target = String::new();
    if kind.is_dir() {
        mode |= MODE_DIR;
    } else if kind.is_symlink() {
        mode |= MODE_SYMLINK;
        link_target = e
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
    }
    Ok(Some(PathStat { mode, link_target }))
}

async fn stat(
    conn: &Conn,
    d: &Docker,
    container: &str,
    path: &str,
) -> anyhow::Result<Option<PathStat>> {
    let host = conn.host.clone().unwrap_or_else(|| DEFAULT_HOST.into());
    let tls = conn.tls || conn.tlsverify.unwrap_or(false);
    let (c, p) = (container.to_string(), path.to_string());
    if let Some(sock) = host.strip_prefix("unix://") {
        let sock = sock.to_string();
        return tokio::task::spawn_blocking(move || {
            raw_head(std::os::unix::net::UnixStream::connect(&sock)?, &c, &p)
        })
        .await?;
    }
    if let (Some(addr), false) = (host.strip_prefix("tcp://"), tls) {
        let addr = addr.to_string();
        return tokio::task::spawn_blocking(move || {
            raw_head(std::net::TcpStream::connect(&addr)?, &c, &p)
        })
        .await?;
    }
    stat_by_get(d, container, path).await
}

/// A tar entry name with the top `old` replaced by `new` (docker's
/// `RebaseArchiveEntries`; the root `/` prefixes every name).
fn rename(name: &str, old: &str, new: &str) -> String {
    if old == "/" {
        return format!("{new}{name}");
    }
    if name == old {
        return new.to_string();
    }
    match name.strip_prefix(old) {
        Some(rest) if rest.starts_with('/') => format!("{new}{rest}"),
        _ => name.to_string(),
    }
}

/// A relative path under the extraction directory, or an error for an
/// entry that would leave it.
fn safe_rel(name: &str) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => bail!("invalid archive entry {name:?}: it leaves the destination"),
        }
    }
    Ok(out)
}

/// A blocking reader over chunks sent from the async side.
struct ChanReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

/// Extracts a container's archive locally with docker's placement rules.
fn extract_local(
    reader: impl Read,
    rebase: Option<String>,
    dst: &str,
    keep_owners: bool,
) -> anyhow::Result<()> {
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(keep_owners);
    ar.set_unpack_xattrs(keep_owners);
    ar.set_overwrite(true);
    let mut plan: Option<(PathBuf, String, String)> = None;
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    for e in ar.entries()? {
        let mut e = e?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let kind = e.header().entry_type();
        if plan.is_none() {
            let top = if name == "/" {
                "/".to_string()
            } else {
                name.trim_end_matches('/').to_string()
            };
            let src_base = rebase.clone().unwrap_or_else(|| top.clone());
            let md = std::fs::metadata(dst);
            plan = Some(match md {
                Ok(m) if m.is_dir() => (PathBuf::from(dst), top, src_base),
                Ok(_) if kind.is_dir() => {
                    bail!("cannot copy a directory to a file: {dst}")
                }
                Ok(_) => (PathBuf::from(parent(dst)), top, base(dst)),
                Err(_) if dst.ends_with('/') => {
                    bail!("destination directory {dst} does not exist")
                }
                Err(_) => {
                    let p = parent(dst);
                    if !Path::new(&p).is_dir() {
                        bail!("destination directory {p} does not exist");
                    }
                    (PathBuf::from(p), top, base(dst))
                }
            });
        }
        let Some((dir, old, new)) = plan.as_ref() else {
            continue;
        };
        let canon = std::fs::canonicalize(dir)?;
        let rel = safe_rel(&rename(&name, old, new))?;
        let target = canon.join(&rel);
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p)?;
            if !std::fs::canonicalize(p)?.starts_with(&canon) {
                bail!("invalid archive entry {name:?}: it leaves the destination");
            }
        }
        if kind.is_dir() {
            // Created open now, given its mode at the end (a read-only
            // directory must still take its entries).
            if !target.is_dir() {
                let _ = std::fs::remove_file(&target);
                std::fs::create_dir_all(&target)?;
            }
            if keep_owners {
                let (uid, gid) = (e.header().uid()?, e.header().gid()?);
                std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))?;
            }
            dirs.push((target, e.header().mode()?));
            continue;
        }
        if kind == tar::EntryType::Link {
            let l = e
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let src = canon.join(safe_rel(&rename(&l, old, new))?);
            let _ = std::fs::remove_file(&target);
            std::fs::hard_link(&src, &target)
                .with_context(|| format!("linking {}", target.display()))?;
            continue;
        }
        e.unpack(&target)
            .with_context(|| format!("extracting {}", target.display()))?;
    }
    for (d, mode) in dirs.iter().rev() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

async fn from_container(conn: &Conn, a: &CpArgs, container: &str, src: &str) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let mut src_path = src.to_string();
    let mut rebase = None;
    if a.follow_link {
        if let Some(st) = stat(conn, &d, container, src).await? {
            if st.is_symlink() {
                let mut target = st.link_target.clone();
                if !target.starts_with('/') {
                    target = join(&parent(src), &target);
                }
                (src_path, rebase) = rebase_name(src, &target);
            }
        }
    }
    let mut stream = d.download_from_container(
        container,
        Some(DownloadFromContainerOptions {
            path: src_path.clone(),
        }),
    );
    let first = match stream.next().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(e.into()),
        None => Bytes::new(),
    };
    let mut copied = first.len();
    if a.dst == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(&first)?;
        while let Some(b) = stream.next().await {
            out.write_all(&b?)?;
        }
        out.flush()?;
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(16);
    let (dst, keep) = (a.dst.clone(), a.archive);
    let job = tokio::task::spawn_blocking(move || {
        extract_local(
            ChanReader {
                rx,
                cur: Bytes::new(),
            },
            rebase,
            &dst,
            keep,
        )
    });
    let mut failed = None;
    if tx.send(first).is_ok() {
        while let Some(b) = stream.next().await {
            match b {
                Ok(b) => {
                    copied += b.len();
                    if tx.send(b).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    drop(tx);
    job.await??;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "Successfully copied {} to {}",
            human_size(copied as i64),
            a.dst
        );
    }
    Ok(())
}

type Chunk = Result<Bytes, std::io::Error>;

/// A blocking writer feeding the upload body.
struct ChanWriter(tokio::sync::mpsc::Sender<Chunk>);

impl Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(b)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload ended"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn to_container(conn: &Conn, a: &CpArgs, container: &str, dst: &str) -> anyhow::Result<()> {
    let d = conn.connect().await?;
    let mut dst_path = dst.to_string();
    let mut dst_stat = stat(conn, &d, container, &dst_path).await?;
    if let Some(st) = dst_stat.clone().filter(PathStat::is_symlink) {
        let mut target = st.link_target;
        if !target.starts_with('/') {
            target = join(&parent(dst), &target);
        }
        dst_path = target;
        dst_stat = stat(conn, &d, container, &dst_path).await?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(16);
    let extract_to;
    let producer = if a.src == "-" {
        if !dst_stat.as_ref().is_some_and(PathStat::is_dir) {
            bail!("destination \"{container}:{dst}\" must be a directory");
        }
        extract_to = dst_path.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut w = ChanWriter(tx);
            std::io::copy(&mut std::io::stdin().lock(), &mut w)?;
            Ok(())
        })
    } else {
        let mut src = a.src.clone();
        let mut src_base = base(&src);
        if a.follow_link {
            let resolved = std::fs::canonicalize(&src)
                .with_context(|| format!("could not find the file {src}"))?;
            let (r, rb) = rebase_name(&src, &resolved.display().to_string());
            src = r;
            if let Some(rb) = rb {
                src_base = rb;
            }
        }
        let md = std::fs::symlink_metadata(&src)
            .with_context(|| format!("lstat {src}: no such file or directory"))?;
        let top = match &dst_stat {
            Some(st) if st.is_dir() => {
                extract_to = dst_path.clone();
                src_base
            }
            Some(_) if md.is_dir() => bail!("cannot copy a directory to a file: {container}:{dst}"),
            Some(_) => {
                extract_to = parent(&dst_path);
                base(&dst_path)
            }
            None if dst_path.ends_with('/') => {
                bail!("destination \"{container}:{dst}\" does not exist as a directory")
            }
            None => {
                extract_to = parent(&dst_path);
                base(&dst_path)
            }
        };
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut b =
                tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, ChanWriter(tx)));
            b.follow_symlinks(false);
            let path = Path::new(&src);
            if md.is_dir() {
                b.append_dir_all(&top, path)?;
            } else {
                b.append_path_with_name(path, &top)?;
            }
            b.into_inner()?.flush()?;
            Ok(())
        })
    };
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let copied = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = copied.clone();
    let body = body.inspect(move |c| {
        if let Ok(b) = c {
            counter.fetch_add(b.len(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    let up = d
        .upload_to_container(
            container,
            Some(UploadToContainerOptions {
                path: extract_to,
                no_overwrite_dir_non_dir: Some("true".into()),
                copy_uidgid: a.archive.then(|| "true".into()),
            }),
            bollard::body_try_stream(body),
        )
        .await;
    let produced = producer.await?;
    up?;
    produced?;
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "Successfully copied {} to {container}:{dst}",
            human_size(copied.load(std::sync::atomic::Ordering::Relaxed) as i64)
        );
    }
    Ok(())
}

pub async fn cp(conn: &Conn, a: CpArgs) -> anyhow::Result<()> {
    let (sc, sp) = split_arg(&a.src);
    let (dc, dp) = split_arg(&a.dst);
    match (sc, dc) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some(c), None) => {
            if sp.is_empty() {
                bail!("source can not be empty");
            }
            let (c, sp) = (c.to_string(), sp.to_string());
            from_container(conn, &a, &c, &sp).await
        }
        (None, Some(c)) => {
            if dp.is_empty() {
                bail!("destination can not be empty");
            }
            let (c, dp) = (c.to_string(), dp.to_string());
            to_container(conn, &a, &c, &dp).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_names_split_like_docker() {
        assert_eq!(split_arg("c:/x"), (Some("c"), "/x"));
        assert_eq!(split_arg("/abs:x"), (None, "/abs:x"));
        assert_eq!(split_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_arg("file"), (None, "file"));
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(base("/a/."), ".");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("a"), ".");
        assert_eq!(rename("d/x", "d", "e"), "e/x");
        assert_eq!(rename("dd/x", "d", "e"), "dd/x");
        assert_eq!(rename("/bin", "/", "out"), "out/bin");
        assert_eq!(
            rebase_name("/l", "/real/t"),
            ("/real/t".to_string(), Some("l".to_string()))
        );
        assert!(safe_rel("../x").is_err());
        assert_eq!(safe_rel("/a/./b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn extracts_with_dockers_placement() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o555);
        h.set_size(0);
        b.append_data(&mut h, "src", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(2);
        b.append_data(&mut h, "src/f", &b"hi"[..]).unwrap();
        let t = b.into_inner().unwrap();
        // Into an existing directory: under the source's name.
        let dst = d.path().display().to_string();
        extract_local(std::io::Cursor::new(&t), None, &dst, false).unwrap();
        assert_eq!(std::fs::read(d.path().join("src/f")).unwrap(), b"hi");
        // To a new name: renamed.
        let dst = d.path().join("new").display().to_string();
        extract_local(std::io::Cursor::new(&t), None, &dst, false).unwrap();
        assert_eq!(std::fs::read(d.path().join("new/f")).unwrap(), b"hi");
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(d.path().join("new")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o555);
        for p in ["src", "new"] {
            std::fs::set_permissions(d.path().join(p), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
    }
}
