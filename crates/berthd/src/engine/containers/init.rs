//! `--init`: berth-init (a minimal init, built statically by the build
//! script and embedded in berthd), installed in the data root at start and
//! bind-mounted as `/sbin/docker-init`.

use std::path::{Path, PathBuf};

use crate::engine::{containers::Containers, Result};

/// berth-init, built statically by the build script and embedded here.
const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

impl Containers {
    /// The host path of berth's init (for `--init`), written at start-up.
    pub fn init_binary(&self) -> Option<PathBuf> {
        let p = init_path(&self.config.data_root);
        p.exists().then_some(p)
    }
}

pub fn init_path(data_root: &Path) -> PathBuf {
    data_root.join("bin").join("berth-init")
}

/// Installs the embedded init under the data root (atomically, if changed).
pub fn install_init(data_root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = init_path(data_root);
    if std::fs::read(&p).map(|b| b == INIT_BINARY).unwrap_or(false) {
        return Ok(());
    }
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, INIT_BINARY)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}
