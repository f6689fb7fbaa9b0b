//! Device nodes and the device cgroup (moby `DefaultLinuxSpec`,
//! `WithDevices`, `oci.DevicesFromPath`, `AppendDevicePermissionsFromCgroupRules`).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};

use crate::SpecError;

fn build_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Build(e.to_string())
}

/// glibc's `major()`/`minor()` for a 64-bit `dev_t`.
pub(crate) fn split_dev(dev: u64) -> (i64, i64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as i64, minor as i64)
}

/// Major/minor of the device at `path` (for blkio limits), following symlinks as stat(2).
pub(crate) fn device_numbers(path: &str) -> Result<(i64, i64), SpecError> {
    let md = fs::metadata(path).map_err(|e| SpecError::Invalid(format!("stat {path}: {e}")))?;
    Ok(split_dev(md.rdev()))
}

fn device(
    path: impl Into<PathBuf>,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<LinuxDevice, SpecError> {
    LinuxDeviceBuilder::default()
        .path(path)
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(mode)
        .uid(uid)
        .gid(gid)
        .build()
        .map_err(build_err)
}

/// The nodes every container gets (the OCI "default devices").
pub(crate) fn default_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    use LinuxDeviceType::C;
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, maj, min)| device(p, C, maj, min, 0o666, 0, 0))
    .collect()
}

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access.to_string());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().map_err(build_err)
}

/// Docker's device cgroup: deny everything, then allow the default nodes,
/// mknod of anything, ptys, ptmx and tun; fuse stays denied. (The runtime
/// adds the same allow rules itself; listing them keeps the spec explicit.)
pub(crate) fn default_rules() -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    use LinuxDeviceType::{B, C};
    let c = Some(C);
    Ok(vec![
        rule(false, None, None, None, "rwm")?,
        rule(true, c, Some(1), Some(5), "rwm")?,     // zero
        rule(true, c, Some(1), Some(3), "rwm")?,     // null
        rule(true, c, Some(1), Some(9), "rwm")?,     // urandom
        rule(true, c, Some(1), Some(8), "rwm")?,     // random
        rule(true, c, Some(5), Some(0), "rwm")?,     // tty
        rule(true, c, Some(5), Some(1), "rwm")?,     // console
        rule(true, c, None, None, "m")?,             // mknod any char device
        rule(true, Some(B), None, None, "m")?,       // mknod any block device
        rule(true, c, Some(136), None, "rwm")?,      // /dev/pts/*
        rule(true, c, Some(5), Some(2), "rwm")?,     // ptmx
        rule(true, c, Some(10), Some(200), "rwm")?,  // tun
        rule(false, c, Some(10), Some(229), "rwm")?, // fuse
    ])
}

/// `--privileged`: every device allowed.
pub(crate) fn allow_all_rules() -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    Ok(vec![rule(true, None, None, None, "rwm")?])
}

/// The device at `path` (not following symlinks), or `None` if it is not a
/// character or block device.
fn device_at(path: &Path, container_path: &Path) -> io::Result<Option<LinuxDevice>> {
    let md = fs::symlink_metadata(path)?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let (major, minor) = split_dev(md.rdev());
    device(
        container_path,
        typ,
        major,
        minor,
        md.mode() & 0o7777,
        md.uid(),
        md.gid(),
    )
    .map(Some)
    .map_err(|e| io::Error::other(e.to_string()))
}

fn cgroup_rule_for(d: &LinuxDevice, access: &str) -> Result<LinuxDeviceCgroup, SpecError> {
    rule(
        true,
        Some(d.typ()),
        Some(d.major()),
        Some(d.minor()),
        access,
    )
}

/// `--device HOST[:CONTAINER[:PERMS]]`: one node, or every node under a directory.
pub(crate) fn devices_from_path(
    host: &str,
    container: &str,
    access: &str,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let fail = |e: &dyn std::fmt::Display| {
        SpecError::Invalid(format!(
            "error gathering device information while adding custom device {host:?}: {e}"
        ))
    };
    // A symlink (e.g. /dev/disk/by-id/...) names the device it points to.
    let resolved = fs::canonicalize(host).unwrap_or_else(|_| PathBuf::from(host));
    let mut devs = Vec::new();
    match device_at(&resolved, Path::new(container)) {
        Ok(Some(d)) => devs.push(d),
        Ok(None) if resolved.is_dir() => {
            walk(&resolved, Path::new(container), &[], &mut devs).map_err(|e| fail(&e))?;
        }
        Ok(None) => return Err(fail(&"not a device node")),
        Err(e) => return Err(fail(&e)),
    }
    if devs.is_empty() {
        return Err(fail(&"no device nodes found"));
    }
    let rules = devs
        .iter()
        .map(|d| cgroup_rule_for(d, access))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((devs, rules))
}

/// Depth-first walk collecting device nodes, mapping `dir` onto `target`.
fn walk(dir: &Path, target: &Path, skip: &[&str], out: &mut Vec<LinuxDevice>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name_str = name.to_string_lossy();
        let path = e.path();
        let dest = target.join(&name);
        let ft = e.file_type()?;
        if ft.is_dir() {
            if skip.contains(&name_str.as_ref()) {
                continue;
            }
            walk(&path, &dest, skip, out)?;
            continue;
        }
        if !skip.is_empty() && name_str == "console" {
            continue;
        }
        match device_at(&path, &dest) {
            Ok(Some(d)) => out.push(d),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every device node under the host's `/dev` (`--privileged`), skipping the
/// pseudo-filesystems and the console as containerd's `HostDevices` does.
pub(crate) fn host_devices(dev: &Path) -> Result<Vec<LinuxDevice>, SpecError> {
    const SKIP: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    let mut out = Vec::new();
    walk(dev, Path::new("/dev"), SKIP, &mut out)
        .map_err(|e| SpecError::Build(format!("listing host devices: {e}")))?;
    Ok(out)
}

/// `--device-cgroup-rule 'c 13:* rwm'`. A `*` is left unset, which the OCI
/// spec (and libcontainer) read as "any".
pub(crate) fn parse_cgroup_rule(text: &str) -> Result<LinuxDeviceCgroup, SpecError> {
    let invalid = || SpecError::Invalid(format!("invalid device cgroup rule format: '{text}'"));
    let mut parts = text.split(' ');
    let (Some(t), Some(nums), Some(access), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let typ = match t {
        "a" => LinuxDeviceType::A,
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        _ => return Err(invalid()),
    };
    let (maj, min) = nums.split_once(':').ok_or_else(invalid)?;
    let num = |s: &str| -> Result<Option<i64>, SpecError> {
        if s == "*" {
            Ok(None)
        } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map(Some).map_err(|_| invalid())
        } else {
            Err(invalid())
        }
    };
    let (major, minor) = (num(maj)?, num(min)?);
    if access.is_empty() || access.len() > 3 || !access.bytes().all(|b| b"rwm".contains(&b)) {
        return Err(invalid());
    }
    rule(true, Some(typ), major, minor, access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers() {
        assert_eq!(split_dev(0x0103), (1, 3));
        assert_eq!(split_dev(0x8800), (136, 0));
        // /dev/null on this machine.
        assert_eq!(device_numbers("/dev/null").unwrap(), (1, 3));
        assert!(device_numbers("/nonexistent").is_err());
    }

    #[test]
    fn custom_device_mapping() {
        let (devs, rules) = devices_from_path("/dev/null", "/dev/mynull", "rw").unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].path(), Path::new("/dev/mynull"));
        assert_eq!(
            (devs[0].typ(), devs[0].major(), devs[0].minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert_eq!(rules[0].to_string(), "c 1:3 rw");
        let err = devices_from_path("/etc/hostname", "/dev/x", "rwm").unwrap_err();
        assert!(err
            .to_string()
            .contains("error gathering device information"));
    }

    #[test]
    fn cgroup_rules() {
        assert_eq!(
            parse_cgroup_rule("c 13:* rwm").unwrap().to_string(),
            "c 13:* rwm"
        );
        assert_eq!(parse_cgroup_rule("b 8:0 r").unwrap().to_string(), "b 8:0 r");
        assert_eq!(parse_cgroup_rule("a *:* m").unwrap().to_string(), "a *:* m");
        for bad in [
            "c 13 rwm",
            "x 1:1 r",
            "c 1:1 rwx",
            "c 1:1",
            "c a:1 r",
            "c 1:1 rwmr",
        ] {
            assert!(parse_cgroup_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults() {
        let rules: Vec<String> = default_rules()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(rules[0], "a *:* rwm");
        assert!(!default_rules().unwrap()[0].allow());
        assert_eq!(rules.last().unwrap(), "c 10:229 rwm");
        assert_eq!(default_devices().unwrap().len(), 6);
    }

    #[test]
    fn host_dev_listing() {
        let devs = host_devices(Path::new("/dev")).unwrap();
        assert!(devs.iter().any(|d| d.path() == Path::new("/dev/null")));
        assert!(!devs.iter().any(|d| d.path() == Path::new("/dev/console")));
        assert!(!devs.iter().any(|d| d.path().starts_with("/dev/pts")));
    }
}
