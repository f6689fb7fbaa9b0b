//! Where a rootless daemon keeps its files: the XDG base directories of the
//! user, as rootless Docker does (`$XDG_RUNTIME_DIR/docker.sock`,
//! `~/.local/share/docker`, `~/.config/docker/daemon.json`).

use std::path::PathBuf;

use super::RootlessError;

/// `$XDG_RUNTIME_DIR`: it must be set (rootless Docker refuses without it).
pub fn runtime_dir() -> Result<PathBuf, RootlessError> {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() && PathBuf::from(&d).is_absolute() => Ok(PathBuf::from(d)),
        _ => Err(RootlessError::Missing(
            "$XDG_RUNTIME_DIR needs to be set to a directory of this user (e.g. /run/user/$(id -u))"
                .into(),
        )),
    }
}

fn home() -> Result<PathBuf, RootlessError> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() && PathBuf::from(&h).is_absolute() => Ok(PathBuf::from(h)),
        _ => Err(RootlessError::Missing("$HOME needs to be set".into())),
    }
}

fn data_home() -> Result<PathBuf, RootlessError> {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if PathBuf::from(&d).is_absolute() => Ok(PathBuf::from(d)),
        _ => Ok(home()?.join(".local/share")),
    }
}

fn config_home() -> Result<PathBuf, RootlessError> {
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if PathBuf::from(&d).is_absolute() => Ok(PathBuf::from(d)),
        _ => Ok(home()?.join(".config")),
    }
}

/// The daemon's defaults in rootless mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub config_file: PathBuf,
    pub certs_dir: PathBuf,
}

pub fn defaults() -> Result<Defaults, RootlessError> {
    let run = runtime_dir()?;
    Ok(Defaults {
        socket: run.join("berth.sock"),
        data_root: data_home()?.join("berth"),
        exec_root: run.join("berth"),
        config_file: config_home()?.join("berth/daemon.json"),
        certs_dir: config_home()?.join("berth/certs.d"),
    })
}

/// The directory of the namespace holder and slirp4netns (pid files, the
/// slirp4netns API socket): `<exec-root>/rootless`, which is
/// `$XDG_RUNTIME_DIR/berth/rootless` with the default exec root. Under the
/// exec root so that two daemons of one user (tests) have a holder each.
pub fn state_dir(exec_root: &std::path::Path) -> PathBuf {
    exec_root.join("rootless")
}

/// Where a rootless daemon looks for legacy plugins, as rootless Docker
/// does: sockets in `$XDG_RUNTIME_DIR/docker/plugins`, specs in
/// `$XDG_CONFIG_HOME/{berth,docker}/plugins` and `~/.local/lib/docker/plugins`
/// (the system's `/run/docker/plugins` and `/etc/docker/plugins` are root's).
pub fn plugin_dirs() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let sockets = runtime_dir()
        .map(|r| vec![r.join("docker/plugins")])
        .unwrap_or_default();
    let mut specs = Vec::new();
    if let Ok(c) = config_home() {
        specs.push(c.join("berth/plugins"));
        specs.push(c.join("docker/plugins"));
    }
    if let Ok(h) = home() {
        specs.push(h.join(".local/lib/docker/plugins"));
    }
    (sockets, specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_is_under_the_exec_root() {
        assert_eq!(
            state_dir(std::path::Path::new("/run/user/7/berth")),
            PathBuf::from("/run/user/7/berth/rootless")
        );
    }
}
