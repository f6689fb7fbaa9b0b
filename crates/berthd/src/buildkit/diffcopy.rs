//! The receiving end of fsutil's DiffCopy (FileSync), which brings a build
//! context from the client: the sender walks its directory and sends one
//! STAT per entry (parents first), then an empty STAT; we ask for regular
//! files by ID (the index of their STAT, counting every entry), it answers
//! with DATA chunks (several files interleaved) and an empty DATA per file;
//! then FIN both ways.
//!
//! Everything is created here, in a fresh directory, by us: paths with
//! `..`, absolute paths and paths under a received symlink are refused, so
//! nothing lands outside the context.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use super::proto::fsutil::types::{packet::PacketType, Packet, Stat};
use super::session::Session;
use super::BuildKitError;

// Go's os.FileMode bits, as fsutil puts them in `Stat.mode`.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;
const MODE_IRREGULAR: u32 = 1 << 19;
const MODE_TYPE: u32 = MODE_DIR
    | MODE_SYMLINK
    | MODE_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    File,
    /// Devices, pipes, sockets: not part of a build context here.
    Other,
}

pub fn kind_of(mode: u32) -> Kind {
    if mode & MODE_DIR != 0 {
        Kind::Dir
    } else if mode & MODE_SYMLINK != 0 {
        Kind::Symlink
    } else if mode & MODE_TYPE == 0 {
        Kind::File
    } else {
        Kind::Other
    }
}

/// The POSIX permission bits of a Go file mode.
pub fn unix_perm(mode: u32) -> u32 {
    let mut p = mode & 0o777;
    if mode & MODE_SETUID != 0 {
        p |= 0o4000;
    }
    if mode & MODE_SETGID != 0 {
        p |= 0o2000;
    }
    if mode & MODE_STICKY != 0 {
        p |= 0o1000;
    }
    p
}

/// What the client is asked to send (DiffCopy's request metadata).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow: Vec<String>,
}

fn transfer(what: &str, msg: impl Into<String>) -> BuildKitError {
    BuildKitError::Transfer {
        what: what.to_string(),
        msg: msg.into(),
    }
}

/// Repeated metadata values, one entry each; if any is not plain ASCII,
/// all are URL-escaped and `<key>-encoded: 1` says so (fsutil's rule).
fn put(md: &mut MetadataMap, key: &'static str, values: &[String]) -> Result<(), BuildKitError> {
    let plain = values
        .iter()
        .all(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)));
    for v in values {
        let v = if plain {
            v.clone()
        } else {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let val = MetadataValue::try_from(v.as_str())
            .map_err(|e| BuildKitError::Invalid(format!("{key}: {e}")))?;
        md.append(key, val);
    }
    if !plain && !values.is_empty() {
        let k = MetadataKey::from_bytes(format!("{key}-encoded").as_bytes())
            .map_err(|e| BuildKitError::Invalid(format!("{key}: {e}")))?;
        md.insert(k, MetadataValue::from_static("1"));
    }
    Ok(())
}

/// Fetches the client's directory `dir_name` into `root` (created);
/// returns the bytes of file data received.
pub async fn fetch(
    session: &Session,
    dir_name: &str,
    filter: &Filter,
    root: &Path,
) -> Result<u64, BuildKitError> {
    fetch_from(session, dir_name, filter, root)
        .await
        .map_err(|e| session.explain(e))
}

async fn fetch_from(
    session: &Session,
    dir_name: &str,
    filter: &Filter,
    root: &Path,
) -> Result<u64, BuildKitError> {
    if !session.serves("/moby.filesync.v1.FileSync/DiffCopy") {
        return Err(BuildKitError::NoLocalSources);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Packet>(128);
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    let md = req.metadata_mut();
    put(md, "dir-name", &[dir_name.to_string()])?;
    put(md, "include-patterns", &filter.include)?;
    put(md, "exclude-patterns", &filter.exclude)?;
    put(md, "followpaths", &filter.follow)?;
    let mut stream = session.file_sync().diff_copy(req).await?.into_inner();
    // The files are written on a blocking thread, fed through a bounded
    // channel; it answers the sender (REQ, FIN) itself.
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<Packet>(64);
    let root = root.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || receive(root, in_rx, tx));
    let mut failed = None;
    loop {
        let next = tokio::select! {
            m = stream.message() => m,
            // The writer stopped (an error): its result says why.
            _ = in_tx.closed() => break,
        };
        match next {
            Ok(Some(p)) => {
                if in_tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(in_tx);
    let res = writer
        .await
        .map_err(|e| transfer(dir_name, format!("writer task: {e}")))?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    res.map_err(|e| transfer(dir_name, e))
}

/// The blocking side of `fetch`: packets in, files written under `root`,
/// answers out until FIN.
fn receive(
    root: PathBuf,
    mut input: tokio::sync::mpsc::Receiver<Packet>,
    answers: tokio::sync::mpsc::Sender<Packet>,
) -> Result<u64, String> {
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut rx = Receiver::new(root);
    let mut tx = Some(answers);
    while let Some(p) = input.blocking_recv() {
        for out in rx.on_packet(p)? {
            let fin = out.r#type == PacketType::PacketFin as i32;
            if let Some(t) = &tx {
                t.blocking_send(out)
                    .map_err(|_| "the client closed the stream".to_string())?;
            }
            if fin {
                // Half-close: the sender answers FIN and ends the call.
                tx = None;
            }
        }
    }
    rx.finish()
}

struct Entry {
    rel: String,
    stat: Stat,
}

/// The packet state machine (no IO but the files it writes).
pub struct Receiver {
    root: PathBuf,
    entries: Vec<Entry>,
    symlinks: HashSet<String>,
    /// Files asked for and not finished: ID → path.
    wanted: BTreeMap<u32, PathBuf>,
    open: HashMap<u32, File>,
    walked: bool,
    fin_sent: bool,
    fin_received: bool,
    pub bytes: u64,
}

fn packet(t: PacketType, id: u32) -> Packet {
    Packet {
        r#type: t as i32,
        id,
        ..Default::default()
    }
}

impl Receiver {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            entries: Vec::new(),
            symlinks: HashSet::new(),
            wanted: BTreeMap::new(),
            open: HashMap::new(),
            walked: false,
            fin_sent: false,
            fin_received: false,
            bytes: 0,
        }
    }

    /// A relative path inside the root that no received symlink leads
    /// through.
    fn checked(&self, rel: &str) -> Result<PathBuf, String> {
        if rel.is_empty() || rel.starts_with('/') {
            return Err(format!("invalid path {rel:?}"));
        }
        let mut prefix = String::new();
        for c in rel.split('/') {
            if c.is_empty() || c == "." || c == ".." {
                return Err(format!("invalid path {rel:?}"));
            }
            if self.symlinks.contains(&prefix) {
                return Err(format!("{rel:?} is under a symlink"));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
        }
        Ok(self.root.join(rel))
    }

    /// Handles one packet from the sender; returns the packets to answer.
    pub fn on_packet(&mut self, p: Packet) -> Result<Vec<Packet>, String> {
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketStat) => self.on_stat(p.stat),
            Ok(PacketType::PacketData) => self.on_data(p.id, &p.data),
            Ok(PacketType::PacketFin) => {
                self.fin_received = true;
                Ok(vec![])
            }
            Ok(PacketType::PacketErr) => Err(String::from_utf8_lossy(&p.data).into_owned()),
            Ok(PacketType::PacketReq) | Err(_) => {
                Err(format!("unexpected packet type {}", p.r#type))
            }
        }
    }

    fn on_stat(&mut self, stat: Option<Stat>) -> Result<Vec<Packet>, String> {
        if self.walked {
            return Err("a STAT after the end of the walk".into());
        }
        let Some(stat) = stat else {
            // The end of the walk: ask for every file's data.
            self.walked = true;
            let mut out: Vec<Packet> = self
                .wanted
                .keys()
                .map(|id| packet(PacketType::PacketReq, *id))
                .collect();
            if self.wanted.is_empty() {
                self.fin_sent = true;
                out.push(packet(PacketType::PacketFin, 0));
            }
            return Ok(out);
        };
        let id = u32::try_from(self.entries.len()).map_err(|_| "too many entries".to_string())?;
        let path = self.checked(&stat.path)?;
        let io = |e: std::io::Error| format!("{}: {e}", stat.path);
        match kind_of(stat.mode) {
            Kind::Dir => match std::fs::create_dir(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
                _ => {}
            },
            Kind::Symlink => {
                std::os::unix::fs::symlink(&stat.linkname, &path).map_err(io)?;
                self.symlinks.insert(stat.path.clone());
            }
            // A hard link to an earlier file: made once the data is in.
            Kind::File if !stat.linkname.is_empty() => {
                self.checked(&stat.linkname)?;
            }
            Kind::File => {
                File::create(&path).map_err(io)?;
                self.wanted.insert(id, path);
            }
            Kind::Other => {
                tracing::debug!(path = %stat.path, mode = stat.mode, "build context: special file skipped");
            }
        }
        self.entries.push(Entry {
            rel: stat.path.clone(),
            stat,
        });
        Ok(vec![])
    }

    fn on_data(&mut self, id: u32, data: &[u8]) -> Result<Vec<Packet>, String> {
        let Some(path) = self.wanted.get(&id) else {
            return Err(format!("invalid file id {id}"));
        };
        if data.is_empty() {
            self.open.remove(&id);
            self.wanted.remove(&id);
            if self.walked && self.wanted.is_empty() && !self.fin_sent {
                self.fin_sent = true;
                return Ok(vec![packet(PacketType::PacketFin, 0)]);
            }
            return Ok(vec![]);
        }
        let f = match self.open.entry(id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
        };
        f.write_all(data)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.bytes += data.len() as u64;
        Ok(vec![])
    }

    /// After the stream: hard links, then owners, modes and times (children
    /// before their directories, whose times the children would change).
    pub fn finish(self) -> Result<u64, String> {
        if !self.walked || !self.wanted.is_empty() {
            return Err("the transfer ended early".into());
        }
        for e in &self.entries {
            if kind_of(e.stat.mode) == Kind::File && !e.stat.linkname.is_empty() {
                let to = self.root.join(&e.rel);
                std::fs::hard_link(self.root.join(&e.stat.linkname), &to)
                    .map_err(|err| format!("{}: {err}", e.rel))?;
            }
        }
        for e in self.entries.iter().rev() {
            let kind = kind_of(e.stat.mode);
            if kind == Kind::Other {
                continue;
            }
            let p = self.root.join(&e.rel);
            let io = |err: std::io::Error| format!("{}: {err}", e.rel);
            std::os::unix::fs::lchown(&p, Some(e.stat.uid), Some(e.stat.gid)).map_err(io)?;
            if kind != Kind::Symlink {
                std::fs::set_permissions(
                    &p,
                    std::fs::Permissions::from_mode(unix_perm(e.stat.mode)),
                )
                .map_err(io)?;
            }
            let t = nix::sys::time::TimeSpec::new(
                e.stat.mod_time.div_euclid(1_000_000_000),
                e.stat.mod_time.rem_euclid(1_000_000_000),
            );
            nix::sys::stat::utimensat(
                None,
                &p,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|err| format!("{}: {err}", e.rel))?;
        }
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(path: &str, mode: u32, linkname: &str) -> Packet {
        Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(Stat {
                path: path.into(),
                mode,
                linkname: linkname.into(),
                mod_time: 1_700_000_000_123_456_789,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn data(id: u32, d: &[u8]) -> Packet {
        Packet {
            r#type: PacketType::PacketData as i32,
            id,
            data: d.to_vec(),
            ..Default::default()
        }
    }

    fn kinds(v: &[Packet]) -> Vec<(i32, u32)> {
        v.iter().map(|p| (p.r#type, p.id)).collect()
    }

    #[test]
    fn go_modes_convert() {
        assert_eq!(kind_of(MODE_DIR | 0o755), Kind::Dir);
        assert_eq!(kind_of(MODE_SYMLINK | 0o777), Kind::Symlink);
        assert_eq!(kind_of(0o644), Kind::File);
        assert_eq!(kind_of(MODE_DEVICE | MODE_CHAR_DEVICE | 0o666), Kind::Other);
        assert_eq!(kind_of(MODE_PIPE), Kind::Other);
        assert_eq!(unix_perm(MODE_DIR | 0o755), 0o755);
        assert_eq!(
            unix_perm(MODE_SETUID | MODE_SETGID | MODE_STICKY | 0o711),
            0o7711
        );
    }

    #[test]
    fn files_are_asked_by_stat_index_and_demultiplexed() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Receiver::new(d.path().to_path_buf());
        // IDs count every entry: dir 0, a 1, link 2, sub/b 3, hard 4.
        for p in [
            stat("sub", MODE_DIR | 0o750, ""),
            stat("a", 0o644, ""),
            stat("link", MODE_SYMLINK | 0o777, "a"),
            stat("sub/b", 0o600, ""),
            stat("hard", 0o644, "a"),
        ] {
            assert!(r.on_packet(p).unwrap().is_empty());
        }
        let reqs = r.on_packet(Packet::default()).unwrap();
        let req = PacketType::PacketReq as i32;
        assert_eq!(kinds(&reqs), vec![(req, 1), (req, 3)]);
        // Interleaved chunks of two files.
        assert!(r.on_packet(data(3, b"bb")).unwrap().is_empty());
        assert!(r.on_packet(data(1, b"a1")).unwrap().is_empty());
        assert!(r.on_packet(data(3, b"BB")).unwrap().is_empty());
        assert!(r.on_packet(data(1, b"")).unwrap().is_empty());
        assert!(
            r.on_packet(data(2, b"x")).is_err(),
            "a symlink is not requestable"
        );
        let fin = r.on_packet(data(3, b"")).unwrap();
        assert_eq!(kinds(&fin), vec![(PacketType::PacketFin as i32, 0)]);
        r.on_packet(packet(PacketType::PacketFin, 0)).unwrap();
        assert_eq!(r.finish().unwrap(), 6);
        let root = d.path();
        assert_eq!(std::fs::read(root.join("a")).unwrap(), b"a1");
        assert_eq!(std::fs::read(root.join("sub/b")).unwrap(), b"bbBB");
        assert_eq!(std::fs::read(root.join("hard")).unwrap(), b"a1");
        assert_eq!(
            std::fs::read_link(root.join("link")).unwrap(),
            Path::new("a")
        );
        let md = std::fs::metadata(root.join("sub/b")).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o600);
        assert_eq!(
            std::fs::metadata(root.join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o750
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(md.mtime(), 1_700_000_000);
        assert_eq!(md.mtime_nsec(), 123_456_789);
    }

    #[test]
    fn an_empty_walk_finishes_at_once() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Receiver::new(d.path().to_path_buf());
        let out = r.on_packet(Packet::default()).unwrap();
        assert_eq!(kinds(&out), vec![(PacketType::PacketFin as i32, 0)]);
        assert_eq!(r.finish().unwrap(), 0);
    }

    #[test]
    fn escapes_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Receiver::new(d.path().join("ctx"));
        std::fs::create_dir(d.path().join("ctx")).unwrap();
        assert!(r.on_packet(stat("../evil", 0o644, "")).is_err());
        assert!(r.on_packet(stat("/etc/evil", 0o644, "")).is_err());
        r.on_packet(stat("etc", MODE_SYMLINK | 0o777, "/etc"))
            .unwrap();
        assert!(r.on_packet(stat("etc/passwd", 0o644, "")).is_err());
        assert!(r.on_packet(stat("h", 0o644, "../x")).is_err());
        let e = Packet {
            r#type: PacketType::PacketErr as i32,
            data: b"boom".to_vec(),
            ..Default::default()
        };
        assert_eq!(r.on_packet(e).err().unwrap(), "boom");
        assert!(!d.path().join("evil").exists());
    }

    #[test]
    fn transfers_that_end_early_fail() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Receiver::new(d.path().to_path_buf());
        r.on_packet(stat("a", 0o644, "")).unwrap();
        r.on_packet(Packet::default()).unwrap();
        assert!(r.finish().is_err());
    }
}
