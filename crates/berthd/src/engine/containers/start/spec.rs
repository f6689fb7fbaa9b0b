//! Stage 4 of a start: the OCI runtime spec, built from the stages before
//! it and the container's mounts, with its seccomp filter compiled to BPF
//! once per profile; written as the bundle's `config.json`.

use std::path::PathBuf;
use std::sync::Arc;

use berth_runtime::{SeccompChoice, SpecInput};

use super::super::{Paths, Record};
use super::etc_files::write_file;
use super::namespaces::Network;
use super::process::Process;
use crate::engine::cgroups;
use crate::engine::{containers::Containers, EngineError, Result};

/// What the shim must know of the spec it runs.
pub(in crate::engine::containers) struct Written {
    /// The seccomp filter as BPF, for exec'd processes (and the init).
    pub bpf_file: Option<PathBuf>,
    /// Docker's default profile: the shim installs it in the init.
    pub default_profile: bool,
    /// Capabilities lent to the init to install the filter.
    pub lent_caps: Vec<String>,
}

impl Containers {
    pub(in crate::engine::containers) async fn write_spec(
        self: &Arc<Self>,
        r: &Record,
        p: &Paths,
        net: Network,
        proc: Process,
        lap: impl Fn(&str),
    ) -> Result<Written> {
        // The daemon's default ulimits, on a copy (the record keeps what
        // was asked).
        let settings = self.live.get();
        let defaults = &settings.default_ulimits;
        let with_defaults;
        let hc = if defaults.is_empty() {
            &r.host_config
        } else {
            with_defaults = berth_api::models::HostConfig {
                ulimits: super::super::ulimits::merged(r.host_config.ulimits.as_ref(), defaults),
                ..r.host_config.clone()
            };
            &with_defaults
        };
        let (seccomp, nnp) = seccomp_choice(r)?;
        let (ipc, pid) = self.shared_namespaces(r)?;
        let extra_mounts = self.prepare_mounts(r, &p.rw.merged).await?;
        let input = SpecInput {
            id: &r.id,
            config: &r.config,
            host_config: hc,
            rootfs: p.rw.merged.clone(),
            args: proc.args,
            env: proc.env,
            cwd: proc.cwd,
            user: proc.user,
            hostname: net.hostname,
            domainname: net.domainname,
            files: net.files,
            netns: net.netns,
            ipc,
            pid,
            uts_host: hc.uts_mode.as_deref() == Some("host"),
            cgroups_path: cgroups::path(&r.id),
            cgroups: cgroups::enabled(),
            extra_mounts,
            init_binary: proc.init,
            seccomp,
            no_new_privileges: nnp,
        };
        let mut spec = berth_runtime::build_spec(&input).map_err(|e| match e {
            berth_runtime::SpecError::Invalid(m) => EngineError::invalid(m),
            other => EngineError::internal(other.to_string()),
        })?;
        lap("build");
        // The filter, compiled once per profile: loaded as BPF into exec'd
        // processes, and (for Docker's default profile) into the init too,
        // sparing libseccomp's per-container compile (tens of ms).
        let default_profile = matches!(input.seccomp, SeccompChoice::Default);
        let mut bpf_file = None;
        if let Some(l) = spec.linux_mut() {
            if let Some(sc) = l.seccomp() {
                bpf_file = Some(self.bpf.file(sc)?);
                if default_profile {
                    // The shim installs it; libcontainer must not.
                    l.set_seccomp(None);
                }
            }
        }
        let have_bpf = bpf_file.is_some();
        let mut spec_json = serde_json::to_value(&spec)?;
        let mut lent_caps = Vec::new();
        if have_bpf && default_profile {
            lent_caps = lend_caps(&mut spec_json);
        }
        swap_masked_eq(&mut spec_json);
        std::fs::create_dir_all(&p.bundle)?;
        write_file(
            &p.bundle.join("config.json"),
            &serde_json::to_string(&spec_json)?,
        )?;
        Ok(Written {
            bpf_file,
            default_profile,
            lent_caps,
        })
    }
}

/// libcontainer 0.7.0 reads the operands of `SCMP_CMP_MASKED_EQ` swapped
/// (`valueTwo` as the mask) relative to the OCI spec and runc. Swap them in
/// the spec we hand it so Docker's `clone` flag rule means what it says.
pub(super) fn swap_masked_eq(spec: &mut serde_json::Value) {
    let Some(rules) = spec
        .pointer_mut("/linux/seccomp/syscalls")
        .and_then(|v| v.as_array_mut())
    else {
        return;
    };
    for rule in rules {
        if let Some(args) = rule.get_mut("args").and_then(|a| a.as_array_mut()) {
            for a in args {
                if a.get("op").and_then(|o| o.as_str()) == Some("SCMP_CMP_MASKED_EQ") {
                    let v = a
                        .get("value")
                        .cloned()
                        .unwrap_or(serde_json::Value::from(0));
                    let v2 = a
                        .get("valueTwo")
                        .cloned()
                        .unwrap_or(serde_json::Value::from(0));
                    a["value"] = v2;
                    a["valueTwo"] = v;
                }
            }
        }
    }
}

/// Gives the init the capabilities it needs to install a seccomp program
/// (CAP_SYS_ADMIN) and to give them back (CAP_SETPCAP); returns the ones
/// it did not have, which the shim's executor drops before exec.
pub(super) fn lend_caps(spec: &mut serde_json::Value) -> Vec<String> {
    let mut lent = Vec::new();
    for cap in ["CAP_SYS_ADMIN", "CAP_SETPCAP"] {
        let Some(caps) = spec.pointer_mut("/process/capabilities") else {
            continue;
        };
        let missing = caps
            .get("effective")
            .and_then(|e| e.as_array())
            .is_none_or(|e| !e.iter().any(|c| c == cap));
        if !missing {
            continue;
        }
        for set in ["bounding", "effective", "permitted"] {
            match caps.get_mut(set).and_then(|s| s.as_array_mut()) {
                Some(a) => a.push(serde_json::Value::from(cap)),
                None => caps[set] = serde_json::json!([cap]),
            }
        }
        lent.push(cap.to_string());
    }
    lent
}

pub(super) fn seccomp_choice(r: &Record) -> Result<(SeccompChoice, bool)> {
    let mut choice = SeccompChoice::Default;
    let mut nnp = false;
    for opt in r.host_config.security_opt.clone().unwrap_or_default() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match k {
            "seccomp" => {
                choice = match v {
                    "unconfined" => SeccompChoice::Unconfined,
                    "" => return Err(EngineError::invalid("seccomp profile must be specified")),
                    // The CLI sends the file's contents, not its path.
                    json => SeccompChoice::Custom(json.to_string()),
                }
            }
            "no-new-privileges" => nnp = v.is_empty() || v == "true",
            "apparmor" | "label" | "systempaths" => {}
            _ => {
                return Err(EngineError::invalid(format!(
                    "invalid --security-opt: {opt:?}"
                )))
            }
        }
    }
    Ok((choice, nnp))
}
