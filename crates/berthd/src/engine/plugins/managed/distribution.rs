//! A plugin to and from a registry (`docker plugin push|install`): the
//! manager packs its root as one gzip layer with its config (the registry
//! service moves the blobs), and installs what was pulled, checking the
//! privileges the client granted against those the config asks for.

use std::io::Write;

use bytes::Bytes;
use sha2::Digest;

use super::config::{same_privileges, Config, PluginObj, Privilege, RootFs};
use super::{io, normalize_name, Manager};
use crate::engine::fs::{self, PackOptions, UnpackOptions};
use crate::engine::registry::plugin::PluginBlobs;
use crate::engine::{EngineError, Result};

impl Manager {
    /// The plugin `name` as a registry keeps it: its root packed (one
    /// gzip layer) and its config naming that layer's diff ID.
    pub fn export(&self, name: &str) -> Result<(PluginObj, PluginBlobs)> {
        let p = self.get(name)?;
        let rootfs = self.dir_of(&p.id).join("rootfs");
        let tar = fs::pack(&rootfs, Vec::new(), &PackOptions::default())
            .map_err(|e| EngineError::internal(format!("packing the plugin: {e}")))?;
        let diff_id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar)));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar)
            .and_then(|()| gz.try_finish())
            .map_err(io("compressing", &rootfs))?;
        drop(tar);
        let layer = gz.finish().map_err(io("compressing", &rootfs))?;
        let mut config = p.config.clone();
        config.rootfs = Some(RootFs {
            diff_ids: Some(vec![diff_id]),
            typ: "layers".into(),
        });
        let config = serde_json::to_vec(&config)?;
        Ok((
            p,
            PluginBlobs {
                config: Bytes::from(config),
                layers: vec![Bytes::from(layer)],
            },
        ))
    }

    /// Installs a pulled plugin as `name` (`remote` when empty), once the
    /// privileges granted are exactly those its config asks for.
    pub fn install(
        &self,
        name: &str,
        remote: &str,
        blobs: PluginBlobs,
        granted: &[Privilege],
    ) -> Result<PluginObj> {
        let name = normalize_name(if name.is_empty() { remote } else { name })?;
        let reference = normalize_name(remote)?;
        let config = Config::parse(&blobs.config)?;
        if !same_privileges(&config.privileges(), granted) {
            return Err(EngineError::invalid("incorrect privileges"));
        }
        self.add(&name, |staging| {
            let rootfs = staging.join("rootfs");
            std::fs::create_dir(&rootfs).map_err(io("creating", &rootfs))?;
            for l in &blobs.layers {
                let (_, plain) = fs::decompress(&l[..]).map_err(|e| {
                    EngineError::invalid(format!("reading the plugin's layer: {e}"))
                })?;
                fs::unpack(plain, &rootfs, &UnpackOptions::default()).map_err(|e| {
                    EngineError::invalid(format!("the plugin's layer is not valid: {e}"))
                })?;
            }
            self.adopt_root(&name, config, &rootfs, &reference)
        })
    }
}

impl Manager {
    /// `POST /plugins/{name}/upgrade`: a disabled plugin gets the root and
    /// config pulled from `remote`; its settings stay. The old root is
    /// kept until the new one is in place, and put back on failure.
    pub fn upgrade(
        &self,
        name: &str,
        blobs: PluginBlobs,
        granted: &[Privilege],
    ) -> Result<PluginObj> {
        let _one = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.get(name)?;
        if p.enabled {
            return Err(EngineError::conflict(format!(
                "plugin must be disabled before upgrading: plugin {} is enabled",
                p.name
            )));
        }
        let config = Config::parse(&blobs.config)?;
        if !same_privileges(&config.privileges(), granted) {
            return Err(EngineError::invalid("incorrect privileges"));
        }
        let dir = self.dir_of(&p.id);
        let staging = dir.join("rootfs-new");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(io("creating", &staging))?;
        let unpacked = blobs.layers.iter().try_for_each(|l| {
            let (_, plain) = fs::decompress(&l[..])
                .map_err(|e| EngineError::invalid(format!("reading the plugin's layer: {e}")))?;
            fs::unpack(plain, &staging, &UnpackOptions::default())
                .map(|_| ())
                .map_err(|e| EngineError::invalid(format!("the plugin's layer is not valid: {e}")))
        });
        if let Err(e) = unpacked {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        let (orig, backup) = (dir.join("rootfs"), dir.join("rootfs-old"));
        crate::engine::mountinfo::unmount_under(&orig);
        let _ = std::fs::remove_dir_all(&backup);
        std::fs::rename(&orig, &backup).map_err(io("moving", &orig))?;
        if let Err(e) = std::fs::rename(&staging, &orig) {
            let _ = std::fs::rename(&backup, &orig);
            let _ = std::fs::remove_dir_all(&staging);
            return Err(io("moving", &staging)(e));
        }
        let old = std::mem::replace(&mut p.config, config);
        if let Err(e) = self.save(&p) {
            let _ = std::fs::remove_dir_all(&orig);
            let _ = std::fs::rename(&backup, &orig);
            p.config = old;
            return Err(e);
        }
        let _ = std::fs::remove_dir_all(&backup);
        self.event(&p, "upgrade");
        Ok(p)
    }
}
