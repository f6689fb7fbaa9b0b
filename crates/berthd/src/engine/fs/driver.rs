//! The storage driver: how a root's layers are joined into one view.
//! `overlay2` mounts the kernel's overlayfs; `fuse-overlayfs` runs the
//! userspace `fuse-overlayfs` (rootless mode on kernels whose overlayfs
//! cannot be mounted in a user namespace). Both read the same layers
//! (`user.overlay.opaque` / `trusted.overlay.opaque`, 0/0 whiteouts); the
//! packer also reads fuse-overlayfs's own markers. Chosen once at engine
//! open, like the storage mode (`xattr::set_userns`).

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::engine::{EngineError, Result};

/// Where `fuse-overlayfs` is looked for (Debian's package puts it there).
pub const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Overlay2,
    FuseOverlayfs,
}

impl Driver {
    /// The names `--storage-driver` accepts.
    pub const NAMES: &'static [&'static str] = &["overlay2", "fuse-overlayfs"];

    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay2 => "overlay2",
            Driver::FuseOverlayfs => "fuse-overlayfs",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "overlay2" => Some(Driver::Overlay2),
            "fuse-overlayfs" => Some(Driver::FuseOverlayfs),
            _ => None,
        }
    }
}

static DRIVER: AtomicU8 = AtomicU8::new(0);

/// Sets the driver of this engine (at open).
pub fn set(d: Driver) {
    DRIVER.store(
        match d {
            Driver::Overlay2 => 0,
            Driver::FuseOverlayfs => 1,
        },
        Ordering::Relaxed,
    );
}

/// The driver of this engine (`overlay2` until `set`).
pub fn current() -> Driver {
    match DRIVER.load(Ordering::Relaxed) {
        1 => Driver::FuseOverlayfs,
        _ => Driver::Overlay2,
    }
}

/// Chooses the driver: the one asked for, else `overlay2`, except that a
/// rootless engine whose overlay `probe` fails falls back to
/// fuse-overlayfs when `fuse_binary` exists (and refuses to start, naming
/// the fix, when it does not). An explicit `overlay2` is probed too, so a
/// rootless daemon never starts on storage it cannot mount.
pub fn choose(
    requested: Option<&str>,
    rootless: bool,
    probe: impl FnOnce() -> Result<()>,
    fuse_binary: &Path,
) -> Result<Driver> {
    let asked = match requested {
        Some(n) => Some(Driver::parse(n).ok_or_else(|| {
            EngineError::invalid(format!(
                "error initializing graphdriver: driver not supported: {n}"
            ))
        })?),
        None => None,
    };
    let fuse_missing = || {
        EngineError::internal(format!(
            "the fuse-overlayfs storage driver needs {} (install the fuse-overlayfs package)",
            fuse_binary.display()
        ))
    };
    match asked {
        Some(Driver::FuseOverlayfs) => {
            if fuse_binary.exists() {
                Ok(Driver::FuseOverlayfs)
            } else {
                Err(fuse_missing())
            }
        }
        Some(Driver::Overlay2) => {
            if rootless {
                probe()?;
            }
            Ok(Driver::Overlay2)
        }
        None if !rootless => Ok(Driver::Overlay2),
        None => match probe() {
            Ok(()) => Ok(Driver::Overlay2),
            Err(e) if fuse_binary.exists() => {
                tracing::warn!(
                    reason = %e,
                    "overlayfs cannot be mounted in the user namespace: using the fuse-overlayfs storage driver"
                );
                Ok(Driver::FuseOverlayfs)
            }
            Err(e) => Err(EngineError::internal(format!(
                "{e}; install fuse-overlayfs ({}) for the fuse-overlayfs storage driver, \
                 or use Linux 5.11 or later",
                fuse_binary.display()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Result<()> {
        Err(EngineError::internal("mounting a test overlay: EPERM"))
    }

    #[test]
    fn rootless_probe_failure_falls_back_to_fuse_overlayfs_when_installed() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fuse-overlayfs");
        std::fs::write(&bin, "").unwrap();
        assert_eq!(
            choose(None, true, fail, &bin).unwrap(),
            Driver::FuseOverlayfs
        );
        assert_eq!(
            choose(None, true, || Ok(()), &bin).unwrap(),
            Driver::Overlay2
        );
        // Rootful never probes, never falls back.
        let probed = std::cell::Cell::new(false);
        let p = || {
            probed.set(true);
            fail()
        };
        assert_eq!(choose(None, false, p, &bin).unwrap(), Driver::Overlay2);
        assert!(!probed.get());
        assert_eq!(
            choose(Some("fuse-overlayfs"), false, fail, &bin).unwrap(),
            Driver::FuseOverlayfs
        );
    }

    #[test]
    fn rootless_probe_failure_without_the_binary_refuses_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fuse-overlayfs");
        let e = choose(None, true, fail, &bin).unwrap_err().to_string();
        assert!(e.contains("EPERM"), "{e}");
        assert!(e.contains("install fuse-overlayfs"), "{e}");
        let e = choose(Some("fuse-overlayfs"), true, || Ok(()), &bin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("install the fuse-overlayfs package"), "{e}");
        // An explicit overlay2 that cannot mount is refused, not replaced.
        std::fs::write(&bin, "").unwrap();
        assert!(choose(Some("overlay2"), true, fail, &bin).is_err());
        let e = choose(Some("zfs"), true, fail, &bin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("driver not supported: zfs"), "{e}");
    }
}
