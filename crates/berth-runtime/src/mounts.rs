//! Mount list in Docker's order (moby `DefaultLinuxSpec` + `withMounts`).

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder};

use crate::SpecError;

/// In-container path of the `--init` binary.
pub(crate) const INIT_PATH: &str = "/sbin/docker-init";
/// Docker's default `/dev/shm` size (64 MiB).
pub(crate) const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

pub(crate) struct MountPlan<'a> {
    pub shm_size: i64,
    /// `--ipc none`: no `/dev/shm` at all.
    pub ipc_none: bool,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    pub writable_cgroups: bool,
    /// (destination, host source) of the per-container files, in moby's order.
    pub files: Vec<(&'static str, &'a Path)>,
    pub init_binary: Option<&'a Path>,
    pub extra: &'a [Mount],
}

fn build_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Build(e.to_string())
}

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, SpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(build_err)
}

/// `/a/b/../c/` → `/a/c`, so destinations compare as moby's `filepath.Clean` would.
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn depth(m: &Mount) -> usize {
    clean(m.destination()).components().count()
}

fn defaults(plan: &MountPlan<'_>) -> Result<Vec<Mount>, SpecError> {
    let shm_size = format!("size={}", plan.shm_size);
    let mut v = vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        // On cgroup v1 libcontainer expands this into one mount per controller.
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            Path::new("cgroup"),
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    if !plan.ipc_none {
        v.push(mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        )?);
    }
    Ok(v)
}

fn remove_opt(m: &mut Mount, opt: &str) {
    if let Some(opts) = m.options().clone() {
        m.set_options(Some(opts.into_iter().filter(|o| o != opt).collect()));
    }
}

pub(crate) fn build(plan: &MountPlan<'_>) -> Result<Vec<Mount>, SpecError> {
    // "User" mounts: the per-container files (unless the user mounts over
    // them) and the daemon's volumes/binds/tmpfs.
    let extra_dests: Vec<PathBuf> = plan.extra.iter().map(|m| clean(m.destination())).collect();
    let rw_or_ro = if plan.readonly_rootfs { "ro" } else { "rw" };
    let mut user: Vec<Mount> = Vec::new();
    for (dest, source) in &plan.files {
        if extra_dests.contains(&PathBuf::from(dest)) {
            continue;
        }
        let mut opts = vec!["rbind", "rprivate"];
        if plan.readonly_rootfs {
            opts.insert(1, rw_or_ro);
        }
        user.push(mount(dest, "bind", source, &opts)?);
    }
    user.extend(plan.extra.iter().cloned());
    // Parents before children so nothing is shadowed (moby `sortMounts`);
    // stable, so the daemon's order holds within a depth.
    user.sort_by_key(depth);
    let user_dests: Vec<PathBuf> = user.iter().map(|m| clean(m.destination())).collect();
    let user_dev = user_dests.iter().any(|d| d == Path::new("/dev"));

    let mut out: Vec<Mount> = defaults(plan)?
        .into_iter()
        .filter(|m| {
            let d = clean(m.destination());
            let overridden = user_dests.contains(&d) || (user_dev && d.starts_with("/dev"));
            !overridden
        })
        .collect();
    if let Some(init) = plan.init_binary {
        if !user_dests.contains(&PathBuf::from(INIT_PATH)) {
            out.push(mount(INIT_PATH, "bind", init, &["bind", "ro"])?);
        }
    }

    if plan.readonly_rootfs {
        // Docker makes the remaining default mounts read-only too, except the
        // ones a process needs to write to.
        for m in out.iter_mut() {
            let d = clean(m.destination());
            if ["/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"]
                .iter()
                .any(|p| d == Path::new(p))
            {
                continue;
            }
            let has_ro = m
                .options()
                .as_ref()
                .is_some_and(|o| o.iter().any(|x| x == "ro"));
            if !has_ro {
                let mut opts = m.options().clone().unwrap_or_default();
                opts.push("ro".into());
                m.set_options(Some(opts));
            }
        }
    }
    for m in out.iter_mut() {
        if plan.privileged && clean(m.destination()) == Path::new("/sys") {
            remove_opt(m, "ro");
        }
        if plan.writable_cgroups && m.typ().as_deref() == Some("cgroup") {
            remove_opt(m, "ro");
        }
    }
    out.extend(user);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(extra: &'a [Mount]) -> MountPlan<'a> {
        MountPlan {
            shm_size: DEFAULT_SHM_SIZE,
            ipc_none: false,
            readonly_rootfs: false,
            privileged: false,
            writable_cgroups: false,
            files: vec![
                ("/etc/resolv.conf", Path::new("/c/resolv.conf")),
                ("/etc/hostname", Path::new("/c/hostname")),
                ("/etc/hosts", Path::new("/c/hosts")),
            ],
            init_binary: None,
            extra,
        }
    }

    fn dests(ms: &[Mount]) -> Vec<String> {
        ms.iter()
            .map(|m| m.destination().display().to_string())
            .collect()
    }

    fn opts(ms: &[Mount], dest: &str) -> Vec<String> {
        ms.iter()
            .find(|m| m.destination() == Path::new(dest))
            .and_then(|m| m.options().clone())
            .unwrap()
    }

    #[test]
    fn docker_order_and_options() {
        let ms = build(&plan(&[])).unwrap();
        assert_eq!(
            dests(&ms),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/etc/hosts"
            ]
        );
        assert_eq!(
            opts(&ms, "/dev/shm"),
            ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
        );
        assert_eq!(opts(&ms, "/etc/hosts"), ["rbind", "rprivate"]);
        assert_eq!(ms[7].typ().as_deref(), Some("bind"));
    }

    #[test]
    fn user_mounts_replace_defaults_and_sort_by_depth() {
        let extra = vec![
            mount("/data/sub", "bind", Path::new("/h/sub"), &["rbind"]).unwrap(),
            mount("/dev/shm", "tmpfs", Path::new("tmpfs"), &["size=1g"]).unwrap(),
            mount("/etc/hosts", "bind", Path::new("/mine"), &["rbind", "ro"]).unwrap(),
            mount("/data", "bind", Path::new("/h/data"), &["rbind"]).unwrap(),
        ];
        let mut p = plan(&extra);
        p.init_binary = Some(Path::new("/usr/libexec/berth-init"));
        let ms = build(&p).unwrap();
        assert_eq!(
            dests(&ms),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/sbin/docker-init",
                "/data",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/data/sub",
                "/dev/shm",
                "/etc/hosts"
            ]
        );
        assert_eq!(opts(&ms, "/sbin/docker-init"), ["bind", "ro"]);
        assert_eq!(opts(&ms, "/etc/hosts"), ["rbind", "ro"]);
    }

    #[test]
    fn user_dev_drops_dev_submounts() {
        let extra = vec![mount("/dev", "bind", Path::new("/dev"), &["rbind"]).unwrap()];
        let ms = build(&plan(&extra)).unwrap();
        assert_eq!(
            dests(&ms),
            [
                "/proc",
                "/sys",
                "/sys/fs/cgroup",
                "/dev",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/etc/hosts"
            ]
        );
    }

    #[test]
    fn readonly_privileged_and_ipc_none() {
        let mut p = plan(&[]);
        p.readonly_rootfs = true;
        p.ipc_none = true;
        p.shm_size = 1;
        let ms = build(&p).unwrap();
        assert!(!dests(&ms).contains(&"/dev/shm".to_string()));
        assert_eq!(opts(&ms, "/etc/resolv.conf"), ["rbind", "ro", "rprivate"]);
        assert_eq!(opts(&ms, "/sys"), ["nosuid", "noexec", "nodev", "ro"]);
        assert_eq!(opts(&ms, "/proc"), ["nosuid", "noexec", "nodev"]);

        p.privileged = true;
        p.writable_cgroups = true;
        let ms = build(&p).unwrap();
        assert_eq!(opts(&ms, "/sys"), ["nosuid", "noexec", "nodev"]);
        assert_eq!(opts(&ms, "/sys/fs/cgroup"), ["nosuid", "noexec", "nodev"]);
    }
}
