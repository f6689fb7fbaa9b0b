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

/// `Get`'s answer as plugins give it: the volume may be missing or `null`.
#[derive(Debug, Default, Deserialize)]
struct MaybeVolume {
    #[serde(rename = "Volume", default)]
    volume: Option<super::driver::VolumeInfo>,
}

/// An answer that carries only `Err`.
#[derive(Debug, Default, Deserialize)]
struct Nothing {}

impl PluginDriver {
    pub fn new(plugin: Arc<Plugin>, scopes: Scopes) -> Self {
        Self { plugin, scopes }
    }

    /// A mountpoint the plugin answered, as the host sees it (a managed
    /// plugin's paths are in its own root or propagated mount).
    fn scoped(&self, path: &str) -> String {
        if path.is_empty() {
            return String::new();
        }
        self.plugin.scoped_path(path).display().to_string()
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
        let mut m: MountResponse = self.call("Mount", req)?;
        if m.mountpoint.is_empty() {
            return Err(EngineError::internal(format!(
                "VolumeDriver.Mount: plugin {:?} gave no mountpoint for volume {}",
                self.plugin.name(),
                req.name
            )));
        }
        m.mountpoint = self.scoped(&m.mountpoint);
        Ok(m)
    }

    fn unmount(&self, req: &MountRequest) -> Result<()> {
        self.call::<_, Nothing>("Unmount", req).map(|_| ())
    }

    fn path(&self, req: &NameRequest) -> Result<MountResponse> {
        let mut m: MountResponse = self.call("Path", req)?;
        m.mountpoint = self.scoped(&m.mountpoint);
        Ok(m)
    }

    fn get(&self, req: &NameRequest) -> Result<GetResponse> {
        let g: MaybeVolume = self.call("Get", req)?;
        // A plugin may answer no volume (or `null`) and no error.
        match g.volume {
            Some(mut volume) if !volume.name.is_empty() => {
                volume.mountpoint = self.scoped(&volume.mountpoint);
                Ok(GetResponse { volume })
            }
            _ => Err(EngineError::not_found(format!(
                "get {}: no such volume",
                req.name
            ))),
        }
    }

    fn list(&self) -> Result<ListResponse> {
        let mut l: ListResponse = self.call("List", &serde_json::json!({}))?;
        for v in &mut l.volumes {
            v.mountpoint = self.scoped(&v.mountpoint);
        }
        Ok(l)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plugins::client::{Addr, Client};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A plugin answering each method from `answers` (method → status,
    /// body), recording the methods asked, for `calls` connections.
    fn fake(
        dir: &std::path::Path,
        answers: &'static [(&'static str, u16, &'static str)],
        calls: usize,
    ) -> (PluginDriver, Arc<Mutex<Vec<String>>>) {
        let sock = dir.join("p.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        std::thread::spawn(move || {
            for _ in 0..calls {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut b = [0u8; 4096];
                let n = s.read(&mut b).unwrap_or(0);
                let req = String::from_utf8_lossy(&b[..n]).to_string();
                let method = req.split(' ').nth(1).unwrap_or("").to_string();
                seen.lock().unwrap().push(method.clone());
                let (status, body) = answers
                    .iter()
                    .find(|(m, _, _)| *m == method)
                    .map(|(_, s, b)| (*s, *b))
                    .unwrap_or((404, "404 page not found"));
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let client = Client::new(Addr::Unix(sock), Duration::from_millis(500));
        let p = Arc::new(Plugin::new("p", vec!["VolumeDriver".into()], client, None));
        (PluginDriver::new(p, Scopes::default()), asked)
    }

    #[test]
    fn calls_map_to_the_protocol_and_errors_name_the_method() {
        let t = tempfile::tempdir().unwrap();
        let (d, asked) = fake(
            t.path(),
            &[
                ("/VolumeDriver.Create", 200, r#"{"Err":"bad option"}"#),
                ("/VolumeDriver.Mount", 200, r#"{"Mountpoint":""}"#),
                ("/VolumeDriver.Get", 200, r#"{"Volume":null,"Err":""}"#),
                ("/VolumeDriver.Remove", 500, r#"{"Err":"busy"}"#),
                (
                    "/VolumeDriver.List",
                    200,
                    r#"{"Volumes":[{"Name":"a","Mountpoint":"/m/a"}]}"#,
                ),
                (
                    "/VolumeDriver.Capabilities",
                    200,
                    r#"{"Capabilities":{"Scope":"GLOBAL"}}"#,
                ),
            ],
            6,
        );
        let e = d
            .create(&CreateRequest {
                name: "v".into(),
                opts: Default::default(),
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "VolumeDriver.Create: bad option");
        let e = d
            .mount(&MountRequest {
                name: "v".into(),
                id: "c".into(),
            })
            .unwrap_err();
        assert!(e.to_string().contains("gave no mountpoint"), "{e}");
        let e = d.get(&NameRequest { name: "v".into() }).unwrap_err();
        assert!(matches!(e, EngineError::NotFound(_)), "{e}");
        let e = d.remove(&NameRequest { name: "v".into() }).unwrap_err();
        assert_eq!(e.to_string(), "VolumeDriver.Remove: busy");
        assert_eq!(d.list().unwrap().volumes[0].mountpoint, "/m/a");
        // The scope is normalised and asked once.
        assert_eq!(d.capabilities().capabilities.scope, "global");
        assert_eq!(d.capabilities().capabilities.scope, "global");
        assert_eq!(
            asked.lock().unwrap().as_slice(),
            [
                "/VolumeDriver.Create",
                "/VolumeDriver.Mount",
                "/VolumeDriver.Get",
                "/VolumeDriver.Remove",
                "/VolumeDriver.List",
                "/VolumeDriver.Capabilities"
            ]
        );
    }

    #[test]
    fn a_plugin_without_capabilities_is_local() {
        let t = tempfile::tempdir().unwrap();
        let (d, _) = fake(t.path(), &[], 2);
        assert_eq!(d.capabilities().capabilities.scope, "local");
    }
}
