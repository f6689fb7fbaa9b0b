//! Linux capabilities: Docker's default set and `--cap-add`/`--cap-drop`
//! handling (moby `oci/caps`).

use std::collections::HashSet;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};

use crate::SpecError;

/// Every capability berth knows, in kernel bit order (as `capability.h`).
const KNOWN: &[(&str, Capability)] = &[
    ("CAP_CHOWN", Capability::Chown),
    ("CAP_DAC_OVERRIDE", Capability::DacOverride),
    ("CAP_DAC_READ_SEARCH", Capability::DacReadSearch),
    ("CAP_FOWNER", Capability::Fowner),
    ("CAP_FSETID", Capability::Fsetid),
    ("CAP_KILL", Capability::Kill),
    ("CAP_SETGID", Capability::Setgid),
    ("CAP_SETUID", Capability::Setuid),
    ("CAP_SETPCAP", Capability::Setpcap),
    ("CAP_LINUX_IMMUTABLE", Capability::LinuxImmutable),
    ("CAP_NET_BIND_SERVICE", Capability::NetBindService),
    ("CAP_NET_BROADCAST", Capability::NetBroadcast),
    ("CAP_NET_ADMIN", Capability::NetAdmin),
    ("CAP_NET_RAW", Capability::NetRaw),
    ("CAP_IPC_LOCK", Capability::IpcLock),
    ("CAP_IPC_OWNER", Capability::IpcOwner),
    ("CAP_SYS_MODULE", Capability::SysModule),
    ("CAP_SYS_RAWIO", Capability::SysRawio),
    ("CAP_SYS_CHROOT", Capability::SysChroot),
    ("CAP_SYS_PTRACE", Capability::SysPtrace),
    ("CAP_SYS_PACCT", Capability::SysPacct),
    ("CAP_SYS_ADMIN", Capability::SysAdmin),
    ("CAP_SYS_BOOT", Capability::SysBoot),
    ("CAP_SYS_NICE", Capability::SysNice),
    ("CAP_SYS_RESOURCE", Capability::SysResource),
    ("CAP_SYS_TIME", Capability::SysTime),
    ("CAP_SYS_TTY_CONFIG", Capability::SysTtyConfig),
    ("CAP_MKNOD", Capability::Mknod),
    ("CAP_LEASE", Capability::Lease),
    ("CAP_AUDIT_WRITE", Capability::AuditWrite),
    ("CAP_AUDIT_CONTROL", Capability::AuditControl),
    ("CAP_SETFCAP", Capability::Setfcap),
    ("CAP_MAC_OVERRIDE", Capability::MacOverride),
    ("CAP_MAC_ADMIN", Capability::MacAdmin),
    ("CAP_SYSLOG", Capability::Syslog),
    ("CAP_WAKE_ALARM", Capability::WakeAlarm),
    ("CAP_BLOCK_SUSPEND", Capability::BlockSuspend),
    ("CAP_AUDIT_READ", Capability::AuditRead),
    ("CAP_PERFMON", Capability::Perfmon),
    ("CAP_BPF", Capability::Bpf),
    ("CAP_CHECKPOINT_RESTORE", Capability::CheckpointRestore),
];

/// Docker's default capability set (moby `caps.DefaultCapabilities`), in its order.
const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub(crate) fn default_capabilities() -> Vec<String> {
    DEFAULT.iter().map(|s| s.to_string()).collect()
}

/// Capabilities usable here: known to berth, to the running kernel and held
/// by this process (moby likewise limits "ALL" to the daemon's own set, so
/// the runtime is never asked for a capability it cannot grant).
pub(crate) fn available_capabilities(host: &crate::host::HostInfo) -> Vec<String> {
    KNOWN
        .iter()
        .enumerate()
        .filter(|(bit, _)| host.cap_available(*bit as u32))
        .map(|(_, (name, _))| name.to_string())
        .collect()
}

/// Every capability berth knows, whatever the host.
#[cfg(test)]
pub(crate) fn known_capabilities() -> Vec<String> {
    KNOWN.iter().map(|(name, _)| name.to_string()).collect()
}

/// The first name in `list` that is no capability at all (as `CAP_X`), as
/// dockerd checks `CapAdd`/`CapDrop` at create.
pub fn first_unknown(list: &[String]) -> Option<String> {
    list.iter().find_map(|raw| {
        let mut c = raw.to_uppercase();
        if c == "ALL" {
            return None;
        }
        if !c.starts_with("CAP_") {
            c = format!("CAP_{c}");
        }
        (!KNOWN.iter().any(|(name, _)| *name == c)).then_some(c)
    })
}

fn normalize(list: &[String], available: &[String]) -> Result<Vec<String>, SpecError> {
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let mut c = raw.to_uppercase();
        if c == "ALL" {
            out.push(c);
            continue;
        }
        if !c.starts_with("CAP_") {
            c = format!("CAP_{c}");
        }
        if !KNOWN.iter().any(|(name, _)| *name == c) {
            return Err(SpecError::Invalid(format!("unknown capability: {c:?}")));
        }
        if !available.contains(&c) {
            return Err(SpecError::Invalid(format!(
                "capability not supported by your kernel or not available in the current environment: {c:?}"
            )));
        }
        out.push(c);
    }
    Ok(out)
}

/// The container's capability list (moby `caps.TweakCapabilities`).
pub(crate) fn tweak(
    adds: &[String],
    drops: &[String],
    privileged: bool,
    available: &[String],
) -> Result<Vec<String>, SpecError> {
    if privileged {
        return Ok(available.to_vec());
    }
    if adds.is_empty() && drops.is_empty() {
        return Ok(default_capabilities());
    }
    let drops = normalize(drops, available)?;
    let adds = normalize(adds, available)?;
    let all = "ALL".to_string();
    let mut caps: Vec<String> = if adds.contains(&all) {
        available
            .iter()
            .filter(|c| !drops.contains(c))
            .cloned()
            .collect()
    } else if drops.contains(&all) {
        adds
    } else {
        let mut caps: Vec<String> = default_capabilities()
            .into_iter()
            .filter(|c| !drops.contains(c))
            .collect();
        caps.extend(adds);
        caps
    };
    // Duplicates are harmless to moby but pointless in a set.
    let mut seen = HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

/// bounding = effective = permitted, inheritable and ambient empty (Docker ≥ 23).
/// The kernel clears effective/permitted itself when a non-root user execs.
pub(crate) fn to_oci(caps: &[String]) -> Result<LinuxCapabilities, SpecError> {
    let set: Capabilities = caps
        .iter()
        .filter_map(|c| {
            KNOWN
                .iter()
                .find(|(name, _)| name == c)
                .map(|(_, cap)| *cap)
        })
        .collect();
    let mut oci = LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .build()
        .map_err(|e| SpecError::Build(e.to_string()))?;
    // The builder's defaults fill these with a non-empty set; Docker leaves them out.
    oci.set_inheritable(None);
    oci.set_ambient(None);
    Ok(oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn all() -> Vec<String> {
        known_capabilities()
    }

    #[test]
    fn default_set_is_dockers_capeff() {
        let mut mask = 0u64;
        for c in default_capabilities() {
            let bit = KNOWN.iter().position(|(n, _)| *n == c).unwrap();
            mask |= 1 << bit;
        }
        assert_eq!(format!("{mask:016x}"), "00000000a80425fb");
    }

    #[test]
    fn known_table_is_in_bit_order_and_complete() {
        assert_eq!(KNOWN.len(), 41);
        assert_eq!(KNOWN[21].0, "CAP_SYS_ADMIN");
        assert_eq!(KNOWN[40].0, "CAP_CHECKPOINT_RESTORE");
        // The table agrees with oci-spec's own naming of each variant.
        for (name, cap) in KNOWN {
            let json = serde_json::to_string(cap).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
    }

    #[test]
    fn add_and_drop_accept_any_spelling() {
        let caps = tweak(
            &s(&["sys_admin", "CAP_NET_ADMIN"]),
            &s(&["mknod", "Cap_Kill"]),
            false,
            &all(),
        )
        .unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".into()));
        assert!(caps.contains(&"CAP_NET_ADMIN".into()));
        assert!(!caps.contains(&"CAP_MKNOD".into()));
        assert!(!caps.contains(&"CAP_KILL".into()));
        assert_eq!(caps.len(), 14);
    }

    #[test]
    fn all_keywords() {
        assert_eq!(tweak(&s(&["ALL"]), &[], false, &all()).unwrap(), all());
        let caps = tweak(&s(&["all"]), &s(&["SYS_ADMIN"]), false, &all()).unwrap();
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&"CAP_SYS_ADMIN".into()));
        assert_eq!(
            tweak(&s(&["NET_ADMIN", "chown"]), &s(&["ALL"]), false, &all()).unwrap(),
            s(&["CAP_NET_ADMIN", "CAP_CHOWN"])
        );
        assert!(tweak(&[], &s(&["all"]), false, &all()).unwrap().is_empty());
        assert_eq!(tweak(&[], &[], true, &all()).unwrap(), all());
    }

    #[test]
    fn unknown_and_unavailable() {
        let err = tweak(&s(&["FOO"]), &[], false, &all()).unwrap_err();
        assert_eq!(err.to_string(), "unknown capability: \"CAP_FOO\"");
        let avail: Vec<String> = all()
            .into_iter()
            .filter(|c| c != "CAP_SYS_RESOURCE")
            .collect();
        let err = tweak(&s(&["sys_resource"]), &[], false, &avail).unwrap_err();
        assert!(err.to_string().contains("not available"), "{err}");
    }

    #[test]
    fn oci_sets() {
        let oci = to_oci(&default_capabilities()).unwrap();
        assert_eq!(oci.bounding().as_ref().unwrap().len(), 14);
        assert_eq!(oci.effective(), oci.bounding());
        assert_eq!(oci.permitted(), oci.bounding());
        assert!(oci.inheritable().is_none());
        assert!(oci.ambient().is_none());
    }
}
