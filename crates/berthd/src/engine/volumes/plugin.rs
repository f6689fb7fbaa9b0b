//! A volume driver that is a plugin (legacy or managed): each method of
//! [`VolumeDriver`] is one `POST /VolumeDriver.<Op>` to it. The plugin is
//! looked up per use through `Plugins`, so that a managed plugin disabled
//! and enabled again is reached at its new address; only its scope
//! (`Capabilities`) is remembered, as Docker does, and only once it
//! answered.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::driver::{
    CapabilitiesResponse, Capability, CreateRequest, GetResponse, ListResponse, MountRequest,
    MountResponse, NameRequest, Reply, VolumeDriver,
};
use crate::engine::plugins::Plugin;
use crate::engine::{EngineError, Result};

/// Scopes answered so far, by plugin name (shared by every adapter the
/// `Volumes` service makes).
pub type Scopes = Arc<RwLock<HashMap<String, String>>>;

pub struct PluginDriver {
    plugin: Arc<Plugin>,
    scopes: Scopes,
}

/// An answer that carries only `Err`.
#[derive(Debug, Default, Deserialize)]
struct Nothing {}

impl PluginDriver {
    pub fn new(plugin: Arc<Plugin>, scopes: Scopes) -> Self {
        Self { plugin, scopes }
    }

    /// Calls `VolumeDriver.<op>`; an `Err` in a 200 answer is the plugin's
    /// error as much as one in a 500.
    fn call<B: Serialize + ?Sized, T: DeserializeOwned>(&self, op: &str, body: &B) -> Result<T> {
        let method = format!("VolumeDriver.{op}");
        let reply: Reply<T> = self.plugin.call(&method, body)?;
        reply
            .into_result()
            .map_err(|e| EngineError::internal(format!("{method}: {e}")))
    }
}

impl VolumeDriver for PluginDriver {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        self.call::<_, Nothing>("Create", req).map(|_| ())
    }

    fn remove(&self, req: &NameRequest) -> Result<()> {
        self.call::<_, Nothing>("Remove", req).map(|_| ())
    }

    fn mount(&self, req: &MountRequest) -> Result<MountResponse> {
        let m: MountResponse = self.call("Mount", req)?;
        if m.mountpoint.is_empty() {
            return Err(EngineError::internal(format!(
                "VolumeDriver.Mount: plugin {:?} gave no mountpoint for volume {}",
                self.plugin.name(),
                req.name
            )));
        }
        Ok(m)
    }

    fn unmount(&self, req: &MountRequest) -> Result<()> {
        self.call::<_, Nothing>("Unmount", req).map(|_| ())
    }

    fn path(&self, req: &NameRequest) -> Result<MountResponse> {
        self.call("Path", req)
    }

    fn get(&self, req: &NameRequest) -> Result<GetResponse> {
        let g: GetResponse = self.call("Get", req)?;
        // A plugin may answer no volume and no error.
        if g.volume.name.is_empty() {
            return Err(EngineError::not_found(format!(
                "get {}: no such volume",
                req.name
            )));
        }
        Ok(g)
    }

    fn list(&self) -> Result<ListResponse> {
        self.call("List", &serde_json::json!({}))
    }

    /// `local` unless the plugin says `global`; a plugin that fails to
    /// answer (or answers something else) is `local` too, and asked again
    /// next time.
    fn capabilities(&self) -> CapabilitiesResponse {
        let name = self.plugin.name().to_string();
        let known = self
            .scopes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .cloned();
        let scope = match known {
            Some(s) => s,
            None => {
                match self.call::<_, CapabilitiesResponse>("Capabilities", &serde_json::json!({})) {
                    Ok(c) => {
                        let s = match c.capabilities.scope.to_lowercase().as_str() {
                            "global" => "global".to_string(),
                            _ => "local".to_string(),
                        };
                        self.scopes
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name, s.clone());
                        s
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %name, error = %e, "volume plugin capabilities");
                        "local".to_string()
                    }
                }
            }
        };
        CapabilitiesResponse {
            capabilities: Capability { scope },
        }
    }
}
