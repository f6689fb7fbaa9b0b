//! `-u USER[:GROUP]` and `--group-add`, resolved against the container's
//! own `/etc/passwd` and `/etc/group` (as Docker does), never the host's.
//! A leaf: containers (process user, `exec -u`, `cp` ownership) and the
//! builder (`COPY --chown`) both use it.

use std::path::Path;

use berth_runtime::ResolvedUser;

use crate::engine::{EngineError, Result};

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads a file inside `root` without following a symlink out of it.
fn read_in_root(root: &Path, rel: &str) -> String {
    let mut p = root.to_path_buf();
    for comp in rel.trim_start_matches('/').split('/') {
        p.push(comp);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return String::new(),
            Ok(_) => {}
            Err(_) => return String::new(),
        }
    }
    std::fs::read_to_string(p).unwrap_or_default()
}

fn passwd(root: &Path) -> Vec<Passwd> {
    read_in_root(root, "etc/passwd")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(Passwd {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn groups(root: &Path) -> Vec<Group> {
    read_in_root(root, "etc/group")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The resolved user plus its home directory (for `HOME`).
pub fn resolve(root: &Path, spec: &str, group_add: &[String]) -> Result<(ResolvedUser, String)> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users = passwd(root);
    let grps = groups(root);
    let (uid, mut gid, name, home) = if user_part.is_empty() {
        (0, 0, Some("root".to_string()), "/root".to_string())
    } else if let Ok(n) = user_part.parse::<u32>() {
        match users.iter().find(|u| u.uid == n) {
            Some(u) => (u.uid, u.gid, Some(u.name.clone()), u.home.clone()),
            None => (n, 0, None, "/".to_string()),
        }
    } else {
        let u = users.iter().find(|u| u.name == user_part).ok_or_else(|| {
            EngineError::invalid(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            ))
        })?;
        (u.uid, u.gid, Some(u.name.clone()), u.home.clone())
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => grps
                .iter()
                .find(|x| x.name == g)
                .map(|x| x.gid)
                .ok_or_else(|| {
                    EngineError::invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut additional: Vec<u32> = Vec::new();
    if let Some(n) = &name {
        for g in &grps {
            if g.members.iter().any(|m| m == n) && !additional.contains(&g.gid) {
                additional.push(g.gid);
            }
        }
    }
    for g in group_add {
        let id = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => grps
                .iter()
                .find(|x| &x.name == g)
                .map(|x| x.gid)
                .ok_or_else(|| {
                    EngineError::invalid(format!(
                        "Unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
        if !additional.contains(&id) {
            additional.push(id);
        }
    }
    let home = if home.is_empty() {
        "/".to_string()
    } else {
        home
    };
    Ok((
        ResolvedUser {
            uid,
            gid,
            additional_gids: additional,
        },
        home,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_ids_and_groups() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nstaff:x:50:www\n",
        )
        .unwrap();
        let (u, home) = resolve(d.path(), "www", &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone(), home.as_str()),
            (33, 33, vec![50], "/var/www")
        );
        let (u, _) = resolve(d.path(), "1000:staff", &["root".into()]).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (1000, 50, vec![0]));
        assert!(resolve(d.path(), "nobody", &[])
            .unwrap_err()
            .to_string()
            .contains("no matching entries in passwd file"));
        let (u, home) = resolve(d.path(), "", &[]).unwrap();
        assert_eq!((u.uid, home.as_str()), (0, "/root"));
    }
}
