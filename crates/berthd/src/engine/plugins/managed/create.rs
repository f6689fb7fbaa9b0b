//! `POST /plugins/create?name=`: a plugin from a tar of a directory holding
//! `config.json` and `rootfs/` (what `docker plugin create <name> <dir>`
//! sends, plain or compressed).

use std::io::Read;
use std::path::Path;

use super::config::{Config, PluginObj, RootFs, Settings};
use super::{io, normalize_name, Manager};
use crate::engine::fs::{self, UnpackOptions};
use crate::engine::{ids, EngineError, Result};

/// A `config.json` larger than this is not one.
const MAX_CONFIG: u64 = 1 << 20;

impl Manager {
    pub fn create(&self, name: &str, tar: impl Read) -> Result<PluginObj> {
        let name = normalize_name(name)?;
        self.add(&name, |staging| self.create_in(&name, tar, staging))
    }

    /// Unpacks into `staging` and moves the root into the plugin's own
    /// directory; returns the record to save and that directory.
    fn create_in(
        &self,
        name: &str,
        tar: impl Read,
        staging: &Path,
    ) -> Result<(PluginObj, std::path::PathBuf)> {
        let (_, plain) = fs::decompress(tar)
            .map_err(|e| EngineError::invalid(format!("reading the plugin archive: {e}")))?;
        fs::unpack(plain, staging, &UnpackOptions::default()).map_err(|e| {
            let m = format!("the plugin archive is not valid: {e}");
            match e {
                fs::ArchiveError::Io(_) => EngineError::internal(m),
                _ => EngineError::invalid(m),
            }
        })?;
        let config = read_config(&staging.join("config.json"))?;
        self.adopt_root(name, config, &staging.join("rootfs"), name)
    }

    /// Moves an unpacked root into a new plugin's directory; returns the
    /// record to save and that directory.
    pub(super) fn adopt_root(
        &self,
        name: &str,
        mut config: Config,
        rootfs: &Path,
        reference: &str,
    ) -> Result<(PluginObj, std::path::PathBuf)> {
        if !std::fs::symlink_metadata(rootfs).is_ok_and(|m| m.is_dir()) {
            return Err(EngineError::invalid("no rootfs found"));
        }
        let id = ids::new_object_id();
        let dir = self.dir_of(&id);
        std::fs::create_dir(&dir).map_err(io("creating", &dir))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        if let Err(e) = std::fs::rename(rootfs, dir.join("rootfs")) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(io("moving", rootfs)(e));
        }
        if config.rootfs.is_none() {
            config.rootfs = Some(RootFs {
                diff_ids: Some(Vec::new()),
                typ: "layers".into(),
            });
        }
        let p = PluginObj {
            settings: Settings::defaults(&config),
            config,
            enabled: false,
            id,
            name: name.to_string(),
            plugin_reference: reference.to_string(),
        };
        Ok((p, dir))
    }

    /// Saves a new plugin made by `make` in a staging directory, unless
    /// its name was taken meanwhile; nothing is left on failure.
    pub(super) fn add(
        &self,
        name: &str,
        make: impl FnOnce(&Path) -> Result<(PluginObj, std::path::PathBuf)>,
    ) -> Result<PluginObj> {
        let exists = || EngineError::conflict(format!("plugin {name} already exists"));
        if self.read().values().any(|p| p.name == name) {
            return Err(exists());
        }
        let staging = self.root.join(format!("tmp-{}", ids::random_hex(8)));
        std::fs::create_dir(&staging).map_err(io("creating", &staging))?;
        let made = make(&staging);
        let _ = std::fs::remove_dir_all(&staging);
        let (p, dir) = made?;
        let _one = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if self.read().values().any(|p| p.name == name) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(exists());
        }
        if let Err(e) = self.save(&p) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.event(&p, "create");
        Ok(p)
    }
}

/// Reads `config.json` from an unpacked archive: a regular file (never
/// through a link), of a sane size.
fn read_config(path: &Path) -> Result<Config> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EngineError::invalid("config not found"))
        }
        Err(_) => return Err(EngineError::invalid("config.json is not a regular file")),
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(EngineError::invalid("config.json is not a regular file"));
    }
    let mut raw = Vec::new();
    f.take(MAX_CONFIG + 1)
        .read_to_end(&mut raw)
        .map_err(io("reading", path))?;
    if raw.len() as u64 > MAX_CONFIG {
        return Err(EngineError::invalid("config.json is too large"));
    }
    Config::parse(&raw)
}
