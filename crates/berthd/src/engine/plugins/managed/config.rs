//! A managed plugin as the API shows it (moby's `types.Plugin`): its
//! `config.json` (`Config`), what `docker plugin set` changed (`Settings`),
//! and the rules of `set` and of the privileges an install is granted.
//!
//! Written by hand rather than taken from the generated models: the wire
//! differs from the spec (`Interface.Types` are strings such as
//! `docker.volumedriver/1.0`; a mount's `Source`, a device's `Path` and an
//! env's `Value` may be `null`), and `config.json` is read as Go reads it,
//! with keys matched case-insensitively (`entrypoint`, `propagatedMount`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::{AUTHZ, IPAM, LOG, NETWORK, VOLUME};
use crate::engine::{EngineError, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginObj {
    #[serde(rename = "Config")]
    pub config: Config,
    #[serde(rename = "Enabled")]
    pub enabled: bool,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(
        rename = "PluginReference",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub plugin_reference: String,
    #[serde(rename = "Settings")]
    pub settings: Settings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(rename = "Args")]
    pub args: Args,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "DockerVersion", skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    #[serde(rename = "Documentation")]
    pub documentation: String,
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Env")]
    pub env: Option<Vec<Env>>,
    #[serde(rename = "Interface")]
    pub interface: Interface,
    #[serde(rename = "IpcHost")]
    pub ipc_host: bool,
    #[serde(rename = "Linux")]
    pub linux: Linux,
    #[serde(rename = "Mounts")]
    pub mounts: Option<Vec<Mount>>,
    #[serde(rename = "Network")]
    pub network: Network,
    #[serde(rename = "PidHost")]
    pub pid_host: bool,
    #[serde(rename = "PropagatedMount")]
    pub propagated_mount: String,
    #[serde(rename = "User")]
    pub user: User,
    #[serde(rename = "WorkDir")]
    pub work_dir: String,
    #[serde(rename = "rootfs", skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Args {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Settable")]
    pub settable: Option<Vec<String>>,
    #[serde(rename = "Value")]
    pub value: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Interface {
    #[serde(rename = "ProtocolScheme", skip_serializing_if = "String::is_empty")]
    pub protocol_scheme: String,
    #[serde(rename = "Socket")]
    pub socket: String,
    /// `prefix.capability/version`, e.g. `docker.volumedriver/1.0`.
    #[serde(rename = "Types")]
    pub types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Linux {
    #[serde(rename = "AllowAllDevices")]
    pub allow_all_devices: bool,
    #[serde(rename = "Capabilities")]
    pub capabilities: Option<Vec<String>>,
    #[serde(rename = "Devices")]
    pub devices: Option<Vec<Device>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    #[serde(rename = "Type")]
    pub typ: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(rename = "GID", skip_serializing_if = "is_zero")]
    pub gid: u32,
    #[serde(rename = "UID", skip_serializing_if = "is_zero")]
    pub uid: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootFs {
    #[serde(rename = "diff_ids")]
    pub diff_ids: Option<Vec<String>>,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub typ: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Options")]
    pub options: Option<Vec<String>>,
    #[serde(rename = "Settable")]
    pub settable: Option<Vec<String>>,
    #[serde(rename = "Source")]
    pub source: Option<String>,
    #[serde(rename = "Type")]
    pub typ: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Path")]
    pub path: Option<String>,
    #[serde(rename = "Settable")]
    pub settable: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Env {
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Settable")]
    pub settable: Option<Vec<String>>,
    #[serde(rename = "Value")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(rename = "Args", default)]
    pub args: Vec<String>,
    #[serde(rename = "Devices", default)]
    pub devices: Vec<Device>,
    #[serde(rename = "Env", default)]
    pub env: Vec<String>,
    #[serde(rename = "Mounts", default)]
    pub mounts: Vec<Mount>,
}

/// One privilege an install asks for (`GET /plugins/privileges`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privilege {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Description", default)]
    pub description: String,
    #[serde(rename = "Value", default)]
    pub value: Option<Vec<String>>,
}

/// Every key `config.json` may spell, in the API's case: Go's decoder
/// matches keys case-insensitively, so `entrypoint` is `Entrypoint`.
const KEYS: &[&str] = &[
    "Args",
    "Description",
    "DockerVersion",
    "Documentation",
    "Entrypoint",
    "Env",
    "Interface",
    "IpcHost",
    "Linux",
    "Mounts",
    "Network",
    "PidHost",
    "PropagatedMount",
    "User",
    "WorkDir",
    "Name",
    "Settable",
    "Value",
    "ProtocolScheme",
    "Socket",
    "Types",
    "AllowAllDevices",
    "Capabilities",
    "Devices",
    "Type",
    "GID",
    "UID",
    "Destination",
    "Options",
    "Source",
    "Path",
];

fn canonical_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let key = if lower == "rootfs" {
                        // Its own keys are lower case (`diff_ids`, `type`).
                        return ("rootfs".to_string(), v);
                    } else {
                        KEYS.iter()
                            .find(|c| c.eq_ignore_ascii_case(&k))
                            .map(|c| c.to_string())
                            .unwrap_or(k)
                    };
                    (key, canonical_keys(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(canonical_keys).collect()),
        v => v,
    }
}

impl Config {
    /// Parses a plugin's `config.json`, refusing one berth could not run.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        let bad =
            |e: serde_json::Error| EngineError::invalid(format!("failed to parse config: {e}"));
        let v: Value = serde_json::from_slice(raw).map_err(bad)?;
        if !v.is_object() {
            return Err(EngineError::invalid(
                "failed to parse config: not a JSON object",
            ));
        }
        let c: Config = serde_json::from_value(canonical_keys(v)).map_err(bad)?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::invalid(format!("invalid plugin config: {m}")));
        let types = self.interface.types.as_deref().unwrap_or_default();
        if types.is_empty() {
            return bad("Interface.Types is empty".into());
        }
        if self.interface.socket.is_empty() {
            return bad("Interface.Socket is empty".into());
        }
        if self.interface.socket.contains('/') || self.interface.socket == ".." {
            return bad(format!(
                "Interface.Socket {:?} must be a file name",
                self.interface.socket
            ));
        }
        if self.entrypoint.as_deref().unwrap_or_default().is_empty() {
            return bad("Entrypoint is empty".into());
        }
        if !self.propagated_mount.is_empty() && !self.propagated_mount.starts_with('/') {
            return bad(format!(
                "PropagatedMount {:?} is not an absolute path",
                self.propagated_mount
            ));
        }
        for m in self.mounts.iter().flatten() {
            if !m.destination.starts_with('/') {
                return bad(format!(
                    "mount destination {:?} is not an absolute path",
                    m.destination
                ));
            }
        }
        Ok(())
    }

    /// The interfaces the plugin serves, as the plugin core names them
    /// (`docker.volumedriver/1.0` → `VolumeDriver`); unknown ones are kept
    /// as they are written.
    pub fn interfaces(&self) -> Vec<String> {
        self.capabilities()
            .into_iter()
            .map(|c| match c.as_str() {
                "volumedriver" => VOLUME.to_string(),
                "networkdriver" => NETWORK.to_string(),
                "ipamdriver" => IPAM.to_string(),
                "logdriver" => LOG.to_string(),
                "authz" => AUTHZ.to_string(),
                _ => c,
            })
            .collect()
    }

    /// The `capability` of each `docker.<capability>/<version>` type.
    pub fn capabilities(&self) -> Vec<String> {
        self.interface
            .types
            .iter()
            .flatten()
            .filter_map(|t| {
                let fq = t.split_once('/').map(|(a, _)| a).unwrap_or(t);
                let (prefix, cap) = fq.rsplit_once('.')?;
                (prefix == "docker").then(|| cap.to_ascii_lowercase())
            })
            .collect()
    }

    /// What installing this plugin grants (moby's `computePrivileges`).
    pub fn privileges(&self) -> Vec<Privilege> {
        let p = |name: &str, description: &str, value: Vec<String>| Privilege {
            name: name.into(),
            description: description.into(),
            value: Some(value),
        };
        let mut out = Vec::new();
        if !matches!(self.network.typ.as_str(), "" | "null" | "bridge") {
            out.push(p(
                "network",
                "permissions to access a network",
                vec![self.network.typ.clone()],
            ));
        }
        if self.ipc_host {
            out.push(p(
                "host ipc namespace",
                "allow access to host ipc namespace",
                vec!["true".into()],
            ));
        }
        if self.pid_host {
            out.push(p(
                "host pid namespace",
                "allow access to host pid namespace",
                vec!["true".into()],
            ));
        }
        for m in self.mounts.iter().flatten() {
            if let Some(s) = &m.source {
                out.push(p("mount", "host path to mount", vec![s.clone()]));
            }
        }
        for d in self.linux.devices.iter().flatten() {
            if let Some(path) = &d.path {
                out.push(p("device", "host device to access", vec![path.clone()]));
            }
        }
        if self.linux.allow_all_devices {
            out.push(p(
                "allow-all-devices",
                "allow 'rwm' access to all devices",
                vec!["true".into()],
            ));
        }
        let caps = self.linux.capabilities.clone().unwrap_or_default();
        if !caps.is_empty() {
            out.push(p(
                "capabilities",
                "list of additional capabilities required",
                caps,
            ));
        }
        out
    }
}

/// Privileges compared regardless of order.
pub fn same_privileges(a: &[Privilege], b: &[Privilege]) -> bool {
    let norm = |v: &[Privilege]| {
        let mut v: Vec<(String, Vec<String>)> = v
            .iter()
            .map(|p| {
                let mut vals = p.value.clone().unwrap_or_default();
                vals.sort();
                (p.name.clone(), vals)
            })
            .collect();
        v.sort();
        v
    };
    norm(a) == norm(b)
}

impl Settings {
    /// A new plugin's settings: its config's defaults (moby's
    /// `InitEmptySettings`).
    pub fn defaults(c: &Config) -> Self {
        Self {
            mounts: c.mounts.clone().unwrap_or_default(),
            devices: c.linux.devices.clone().unwrap_or_default(),
            env: c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value.as_ref().map(|v| format!("{}={v}", e.name)))
                .collect(),
            args: c.args.value.clone().unwrap_or_default(),
        }
    }
}

/// One `name[.field][=value]` of `docker plugin set`.
struct Settable {
    name: String,
    field: String,
    value: String,
}

impl Settable {
    fn parse(arg: &str) -> Result<Self> {
        let (name, value) = match arg.find('=') {
            Some(0) => {
                return Err(EngineError::invalid(
                    "invalid format, must be <name>[.<field>][=<value>]",
                ))
            }
            Some(i) => (&arg[..i], &arg[i + 1..]),
            None => (arg, ""),
        };
        let (name, field) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
            _ => (name, ""),
        };
        Ok(Self {
            name: name.into(),
            field: field.into(),
            value: value.into(),
        })
    }

    fn shown(&self) -> String {
        if self.field.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.name, self.field)
        }
    }

    /// Whether the field may be set: the config lists it as settable and
    /// it is the one field of its kind that may be (`value`, `source`, `path`).
    fn check(&mut self, allowed: &str, settable: Option<&Vec<String>>) -> Result<()> {
        let settable = settable.map(Vec::as_slice).unwrap_or_default();
        if self.field.is_empty() {
            match settable {
                [one] => self.field = one.clone(),
                [] => {}
                _ => {
                    return Err(EngineError::invalid(
                        "multiple fields are settable, one must be specified",
                    ))
                }
            }
        }
        if self.field == allowed && settable.contains(&self.field) {
            Ok(())
        } else {
            Err(EngineError::invalid(format!(
                "{:?} is not settable",
                self.shown()
            )))
        }
    }
}

/// Applies `docker plugin set` arguments to a disabled plugin.
pub fn apply_settings(p: &mut PluginObj, args: &[String]) -> Result<()> {
    if p.enabled {
        return Err(EngineError::invalid(
            "cannot set on an active plugin, disable plugin before setting",
        ));
    }
    let sets = args
        .iter()
        .map(|a| Settable::parse(a))
        .collect::<Result<Vec<_>>>()?;
    for mut s in sets {
        if let Some(env) = p.config.env.iter().flatten().find(|e| e.name == s.name) {
            s.check("value", env.settable.as_ref())?;
            let entry = format!("{}={}", s.name, s.value);
            match p
                .settings
                .env
                .iter_mut()
                .find(|e| e.split_once('=').map(|(n, _)| n).unwrap_or(e) == s.name)
            {
                Some(e) => *e = entry,
                None => p.settings.env.push(entry),
            }
        } else if let Some(i) = p
            .config
            .mounts
            .iter()
            .flatten()
            .position(|m| m.name == s.name)
        {
            let m = &p
                .config
                .mounts
                .as_ref()
                .map(|v| v[i].clone())
                .unwrap_or_default();
            s.check("source", m.settable.as_ref())?;
            if m.source.is_none() {
                return Err(EngineError::invalid("plugin config has no mount source"));
            }
            if let Some(sm) = p.settings.mounts.iter_mut().find(|x| x.name == s.name) {
                sm.source = Some(s.value.clone());
            }
        } else if let Some(d) = p
            .config
            .linux
            .devices
            .iter()
            .flatten()
            .find(|d| d.name == s.name)
            .cloned()
        {
            s.check("path", d.settable.as_ref())?;
            if d.path.is_none() {
                return Err(EngineError::invalid("plugin config has no device path"));
            }
            if let Some(sd) = p.settings.devices.iter_mut().find(|x| x.name == s.name) {
                sd.path = Some(s.value.clone());
            }
        } else if !p.config.args.name.is_empty() && p.config.args.name == s.name {
            s.check("value", p.config.args.settable.as_ref())?;
            p.settings.args = s.value.split(' ').map(str::to_string).collect();
        } else {
            return Err(EngineError::invalid(format!(
                "setting {:?} not found in the plugin configuration",
                s.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RCLONE: &str = r#"{
      "description": "Rclone volume plugin",
      "documentation": "https://rclone.org/docker/",
      "interface": {"socket": "rclone.sock", "types": ["docker.volumedriver/1.0"]},
      "entrypoint": ["rclone", "serve", "docker"],
      "env": [{"name": "RCLONE_VERBOSE", "value": "0", "settable": ["value"]},
              {"name": "HTTP_PROXY", "settable": ["value"]}],
      "args": {"name": "args", "value": [], "settable": ["value"]},
      "mounts": [{"name": "config", "source": "/var/lib/docker-plugins/rclone/config",
                  "destination": "/data/config", "type": "bind", "options": ["rbind"],
                  "settable": ["source"]}],
      "network": {"type": "host"},
      "propagatedMount": "/mnt",
      "linux": {"capabilities": ["CAP_SYS_ADMIN"],
                "devices": [{"path": "/dev/fuse"}]}
    }"#;

    #[test]
    fn a_config_is_read_as_go_reads_it_and_written_as_docker_writes_it() {
        let c = Config::parse(RCLONE.as_bytes()).unwrap();
        assert_eq!(c.propagated_mount, "/mnt");
        assert_eq!(c.interfaces(), [VOLUME]);
        assert_eq!(c.capabilities(), ["volumedriver"]);
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["Interface"]["Types"][0], "docker.volumedriver/1.0");
        assert_eq!(j["Env"][1]["Value"], Value::Null);
        assert_eq!(j["Linux"]["Devices"][0]["Settable"], Value::Null);
        assert_eq!(j["User"], serde_json::json!({}));
        assert_eq!(j["WorkDir"], "");
        assert!(j.get("rootfs").is_none());
        let s = Settings::defaults(&c);
        assert_eq!(s.env, ["RCLONE_VERBOSE=0"]);
        let names: Vec<_> = c.privileges().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["network", "mount", "device", "capabilities"]);
    }

    #[test]
    fn a_bad_config_is_refused() {
        for (raw, want) in [
            ("{", "failed to parse config"),
            ("[]", "failed to parse config: not a JSON object"),
            (r#"{"entrypoint":["x"]}"#, "Interface.Types is empty"),
            (
                r#"{"entrypoint":["x"],"interface":{"types":["docker.authz/1.0"],"socket":"../a"}}"#,
                "must be a file name",
            ),
            (
                r#"{"interface":{"types":["docker.authz/1.0"],"socket":"a.sock"}}"#,
                "Entrypoint is empty",
            ),
        ] {
            let e = Config::parse(raw.as_bytes()).unwrap_err();
            assert!(matches!(e, EngineError::InvalidParameter(_)), "{raw}");
            assert!(e.to_string().contains(want), "{raw}: {e}");
        }
    }

    #[test]
    fn set_changes_only_what_is_settable() {
        let c = Config::parse(RCLONE.as_bytes()).unwrap();
        let mut p = PluginObj {
            settings: Settings::defaults(&c),
            config: c,
            ..Default::default()
        };
        apply_settings(
            &mut p,
            &[
                "RCLONE_VERBOSE=2".into(),
                "HTTP_PROXY=http://p".into(),
                "config.source=/srv/cfg".into(),
                "args=-v --x".into(),
            ],
        )
        .unwrap();
        assert_eq!(p.settings.env, ["RCLONE_VERBOSE=2", "HTTP_PROXY=http://p"]);
        assert_eq!(p.settings.mounts[0].source.as_deref(), Some("/srv/cfg"));
        assert_eq!(p.settings.args, ["-v", "--x"]);
        // The config keeps its defaults.
        assert_eq!(
            p.config.mounts.as_ref().unwrap()[0].source.as_deref(),
            Some("/var/lib/docker-plugins/rclone/config")
        );
        let e = apply_settings(&mut p, &["config.destination=/x".into()]).unwrap_err();
        assert_eq!(e.to_string(), "\"config.destination\" is not settable");
        let e = apply_settings(&mut p, &["nope=1".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "setting \"nope\" not found in the plugin configuration"
        );
        p.enabled = true;
        let e = apply_settings(&mut p, &["RCLONE_VERBOSE=1".into()]).unwrap_err();
        assert!(e.to_string().starts_with("cannot set on an active plugin"));
    }
}
