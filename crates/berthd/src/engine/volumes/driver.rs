//! The volume driver seam, in the shape of Docker's volume plugin protocol
//! (`POST /VolumeDriver.<Op>` with JSON bodies): the built-in `local`
//! driver is one implementation, and a remote plugin can be another that
//! sends these requests over its socket. Requests and answers serialise
//! with the protocol's field names; the `Err` every answer may carry is the
//! error side of a `Result` here ([`Reply`] turns one into the other).
//!
//! The calls are synchronous: the local driver's work is blocking file
//! system work, and its callers already run off the async workers where
//! that matters (a start's mounts, `cp`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

/// `/VolumeDriver.Create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    pub name: String,
    #[serde(default)]
    pub opts: HashMap<String, String>,
}

/// `/VolumeDriver.Remove`, `.Path` and `.Get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameRequest {
    pub name: String,
}

/// `/VolumeDriver.Mount` and `.Unmount`: `ID` names the holder (a
/// container, or a `cp` session), so that the driver can count them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountRequest {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "ID")]
    pub id: String,
}

/// The answer to `Mount` and to `Path`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountResponse {
    #[serde(default)]
    pub mountpoint: String,
}

/// One volume as `Get` and `List` describe it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    pub name: String,
    #[serde(default)]
    pub mountpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub status: HashMap<String, serde_json::Value>,
}

/// The answer to `Get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResponse {
    pub volume: VolumeInfo,
}

/// The answer to `List`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResponse {
    #[serde(default)]
    pub volumes: Vec<VolumeInfo>,
}

/// `Scope`: `local` (volumes of this host) or `global` (of a cluster).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capability {
    #[serde(default)]
    pub scope: String,
}

/// The answer to `Capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapabilitiesResponse {
    #[serde(default)]
    pub capabilities: Capability,
}

/// A plugin's answer as it comes over the wire: the body, or `Err`.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply<T> {
    #[serde(flatten)]
    pub body: T,
    #[serde(rename = "Err", default)]
    pub err: String,
}

impl<T> Reply<T> {
    /// A non-empty `Err` is the driver's error, worded as the driver put it.
    pub fn into_result(self) -> Result<T> {
        if self.err.is_empty() {
            Ok(self.body)
        } else {
            Err(EngineError::internal(self.err))
        }
    }
}

/// A volume driver: what the daemon asks of the driver that a volume's
/// record names. Each method is one call of the plugin protocol.
pub trait VolumeDriver: Send + Sync {
    /// The name volumes record as their `Driver`.
    fn name(&self) -> &str;
    /// Makes the volume (validating its options); an existing one is the
    /// caller's business, not the driver's.
    fn create(&self, req: &CreateRequest) -> Result<()>;
    /// Deletes the volume and its data; nothing uses it any more.
    fn remove(&self, req: &NameRequest) -> Result<()>;
    /// Makes the volume usable for holder `ID` and says where it is; a
    /// driver that must mount something does it on its first holder.
    fn mount(&self, req: &MountRequest) -> Result<MountResponse>;
    /// Holder `ID` no longer uses the volume; the last one's release
    /// undoes what `mount` did.
    fn unmount(&self, req: &MountRequest) -> Result<()>;
    /// Where the volume's content is (mounted or not).
    fn path(&self, req: &NameRequest) -> Result<MountResponse>;
    fn get(&self, req: &NameRequest) -> Result<GetResponse>;
    fn list(&self) -> Result<ListResponse>;
    fn capabilities(&self) -> CapabilitiesResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_use_the_protocols_names() {
        let m = MountRequest {
            name: "v".into(),
            id: "c1".into(),
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"Name": "v", "ID": "c1"})
        );
        let c: CreateRequest =
            serde_json::from_str(r#"{"Name":"v","Opts":{"type":"tmpfs"}}"#).unwrap();
        assert_eq!(c.opts["type"], "tmpfs");
        let r: Reply<GetResponse> = serde_json::from_str(
            r#"{"Volume":{"Name":"v","Mountpoint":"/m","Status":{"a":1}},"Err":""}"#,
        )
        .unwrap();
        let g = r.into_result().unwrap();
        assert_eq!(g.volume.mountpoint, "/m");
        let r: Reply<MountResponse> =
            serde_json::from_str(r#"{"Mountpoint":"","Err":"no such volume"}"#).unwrap();
        assert_eq!(r.into_result().unwrap_err().to_string(), "no such volume");
        let caps: CapabilitiesResponse =
            serde_json::from_str(r#"{"Capabilities":{"Scope":"global"}}"#).unwrap();
        assert_eq!(caps.capabilities.scope, "global");
    }
}
