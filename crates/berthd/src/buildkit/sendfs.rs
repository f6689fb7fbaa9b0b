//! The sending end of fsutil's DiffCopy, for the `local` exporter: we
//! walk a directory and send one STAT per entry (parents first, names in
//! byte order), then an empty STAT; the client asks for regular files by
//! ID (the index of their STAT), we answer with DATA chunks and an empty
//! DATA per file; its FIN is answered with ours, which ends the call.
//! Hard links go as separate files, devices, pipes and sockets not at all.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::proto::fsutil::types::{packet::PacketType, Packet, Stat};

/// File data per DATA packet.
const DATA_CHUNK: usize = 32 * 1024;

// Go's os.FileMode bits, as fsutil puts them in `Stat.mode`.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_STICKY: u32 = 1 << 20;

/// The Go file mode of `m`; `None` for what is not sent.
fn go_mode(m: &std::fs::Metadata) -> Option<u32> {
    let ft = m.file_type();
    let p = m.permissions().mode();
    let mut mode = p & 0o777;
    if p & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if p & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if p & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    if ft.is_dir() {
        Some(mode | MODE_DIR)
    } else if ft.is_symlink() {
        Some(mode | MODE_SYMLINK)
    } else if ft.is_file() {
        Some(mode)
    } else {
        None
    }
}

/// Every entry under `root` in walk order, as STATs; the regular files'
/// paths by the STAT's index.
pub(super) fn walk(root: &Path) -> std::io::Result<(Vec<Stat>, Vec<Option<PathBuf>>)> {
    let (mut stats, mut files) = (Vec::new(), Vec::new());
    walk_into(root, "", &mut stats, &mut files)?;
    Ok((stats, files))
}

/// Depth first, each directory's children sorted, a directory's subtree
/// right after it.
fn walk_into(
    dir: &Path,
    rel: &str,
    stats: &mut Vec<Stat>,
    files: &mut Vec<Option<PathBuf>>,
) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let r = if rel.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", name.to_string_lossy())
        };
        let m = std::fs::symlink_metadata(&path)?;
        let Some(mode) = go_mode(&m) else { continue };
        let linkname = if m.file_type().is_symlink() {
            std::fs::read_link(&path)?.to_string_lossy().into_owned()
        } else {
            String::new()
        };
        stats.push(Stat {
            path: r.clone(),
            mode,
            uid: m.uid(),
            gid: m.gid(),
            size: if m.is_file() { m.len() as i64 } else { 0 },
            mod_time: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            linkname,
            ..Default::default()
        });
        files.push(m.is_file().then(|| path.clone()));
        if m.is_dir() {
            walk_into(&path, &r, stats, files)?;
        }
    }
    Ok(())
}

fn packet(t: PacketType, id: u32, data: Vec<u8>) -> Packet {
    Packet {
        r#type: t as i32,
        stat: None,
        id,
        data,
    }
}

/// Serves `root` to a receiver: packets in, answers out, until its FIN.
pub(super) fn serve(
    root: &Path,
    mut input: mpsc::Receiver<Packet>,
    out: mpsc::Sender<Packet>,
) -> Result<(), String> {
    let (stats, files) = walk(root).map_err(|e| format!("walking the result: {e}"))?;
    let send = |p: Packet| {
        out.blocking_send(p)
            .map_err(|_| "the client closed the stream".to_string())
    };
    for s in stats {
        send(Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(s),
            id: 0,
            data: Vec::new(),
        })?;
    }
    send(packet(PacketType::PacketStat, 0, Vec::new()))?;
    while let Some(p) = input.blocking_recv() {
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketReq) => {
                let path = files
                    .get(p.id as usize)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| format!("the client asked for file {}, not one sent", p.id))?;
                let mut f = std::fs::File::open(path).map_err(|e| format!("{e}"))?;
                loop {
                    let mut buf = vec![0u8; DATA_CHUNK];
                    let n = f.read(&mut buf).map_err(|e| format!("{e}"))?;
                    if n == 0 {
                        break;
                    }
                    buf.truncate(n);
                    send(packet(PacketType::PacketData, p.id, buf))?;
                }
                send(packet(PacketType::PacketData, p.id, Vec::new()))?;
            }
            Ok(PacketType::PacketFin) => {
                send(packet(PacketType::PacketFin, 0, Vec::new()))?;
                return Ok(());
            }
            Ok(PacketType::PacketErr) => {
                return Err(format!(
                    "the client failed: {}",
                    String::from_utf8_lossy(&p.data)
                ))
            }
            _ => return Err(format!("unexpected packet type {}", p.r#type)),
        }
    }
    // The client ended without FIN (bollard closes after its own FIN).
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_sent_and_files_served_by_index() {
        let dir = std::env::temp_dir().join(format!("bke-sendfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f.txt"), vec![7u8; DATA_CHUNK + 5]).unwrap();
        std::fs::write(dir.join("z.txt"), b"z").unwrap();
        std::os::unix::fs::symlink("z.txt", dir.join("l")).unwrap();
        let (stats, files) = walk(&dir).unwrap();
        let paths: Vec<_> = stats.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/f.txt", "l", "z.txt"]);
        assert_eq!(stats[3].linkname, "z.txt");
        assert!(stats[0].mode & MODE_DIR != 0 && stats[3].mode & MODE_SYMLINK != 0);
        assert!(files[2].is_some() && files[3].is_none());

        let (in_tx, in_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(64);
        let d2 = dir.clone();
        let t = std::thread::spawn(move || serve(&d2, in_rx, out_tx));
        let mut got = Vec::new();
        // Five STATs and the empty one.
        for _ in 0..6 {
            got.push(out_rx.blocking_recv().unwrap());
        }
        assert!(got[5].stat.is_none());
        in_tx
            .blocking_send(packet(PacketType::PacketReq, 2, Vec::new()))
            .unwrap();
        let mut data = Vec::new();
        loop {
            let p = out_rx.blocking_recv().unwrap();
            assert_eq!((p.r#type, p.id), (PacketType::PacketData as i32, 2));
            if p.data.is_empty() {
                break;
            }
            data.extend(p.data);
        }
        assert_eq!(data.len(), DATA_CHUNK + 5);
        in_tx
            .blocking_send(packet(PacketType::PacketFin, 0, Vec::new()))
            .unwrap();
        let fin = out_rx.blocking_recv().unwrap();
        assert_eq!(fin.r#type, PacketType::PacketFin as i32);
        t.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
