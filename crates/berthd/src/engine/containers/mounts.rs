//! A container's mounts: `-v` (`HostConfig.Binds`), `--mount`
//! (`HostConfig.Mounts`), `--volumes-from`, the image's and the config's
//! `VOLUME`s, and `--tmpfs` (`HostConfig.Tmpfs`).
//!
//! At create they become the container's mount plan (`Record::mounts`,
//! moby's `MountPoints`): named volumes are created when missing, anonymous
//! ones are made, and every conflict is refused with Docker's messages. At
//! start the plan becomes OCI mounts (after copy-up into empty volumes);
//! inspect and `ps` show it as `Mounts`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use berth_api::models::{
    Mount, MountBindOptionsPropagationEnum, MountPoint, MountPointTypeEnum, MountTypeEnum,
};
use berth_runtime::Mount as OciMount;
use serde::{Deserialize, Serialize};

use super::{Container, Record};
use crate::engine::fs::{self, Root};
use crate::engine::{containers::Containers, EngineError, Result};

pub const BIND: &str = "bind";
pub const VOLUME: &str = "volume";
pub const TMPFS: &str = "tmpfs";

/// Propagation of binds when none is given.
pub const DEFAULT_PROPAGATION: &str = "rprivate";
const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// One entry of a container's mount plan (moby's `MountPoint`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountRec {
    /// `bind`, `volume` or `tmpfs`.
    pub typ: String,
    /// The volume's name.
    pub name: String,
    /// Host path: a bind's source, a volume's `_data`; empty for tmpfs.
    pub source: String,
    pub destination: String,
    pub driver: String,
    /// The mode as given with `-v` (`ro`, `z`, `rshared`, ...).
    pub mode: String,
    pub rw: bool,
    pub propagation: String,
    /// Fill an empty volume from the image at start (not with `nocopy`).
    pub copy_data: bool,
    /// `bind-nonrecursive`.
    pub non_recursive: bool,
    /// `-v /missing:/x` creates the host directory; `--mount` refuses it.
    pub create_source: bool,
    /// A volume made for this mount without a name (`rm -v` removes it).
    pub anonymous: bool,
    /// `--mount type=tmpfs` options, as `size=…,mode=…`.
    pub tmpfs_options: String,
}

/// What `create` needs to make a volume a mount names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeWant {
    /// The volume driver (`local` when empty).
    pub driver: String,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
}

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

fn mount_config(typ: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::invalid(format!("invalid mount config for type \"{typ}\": {why}"))
}

fn validate_target(p: &str) -> std::result::Result<(), String> {
    if fs::clean(p) == "/" && p.starts_with('/') {
        return Err("invalid specification: destination can't be '/'".into());
    }
    if !p.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{p}' mount path must be absolute"
        ));
    }
    Ok(())
}

/// moby's `linuxValidMountMode`: at most one of each kind.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0; 5];
    for o in mode.split(',') {
        let i = match o {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            o if PROPAGATIONS.contains(&o) => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return false,
        };
        counts[i] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

fn mode_has(mode: &str, opt: &str) -> bool {
    mode.split(',').any(|o| o == opt)
}

fn mode_propagation(mode: &str) -> Option<&str> {
    mode.split(',').find(|o| PROPAGATIONS.contains(o))
}

/// Parses one `-v` / `Binds` entry (moby's `ParseMountRaw`). A volume
/// mount's `name` is empty for an anonymous volume.
pub fn parse_bind(raw: &str) -> Result<MountRec> {
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(EngineError::invalid(invalid_spec(raw)));
    }
    let (source, target, mode) = match arr.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => {
            if valid_mode(t) {
                return Err(EngineError::invalid(invalid_spec(raw)));
            }
            (*s, *t, "")
        }
        [s, t, m] => (*s, *t, *m),
        _ => return Err(EngineError::invalid(invalid_spec(raw))),
    };
    if !valid_mode(mode) {
        return Err(EngineError::invalid(format!("invalid mode: {mode}")));
    }
    let typ = if source.starts_with('/') {
        BIND
    } else {
        VOLUME
    };
    let wrap = |why: String| {
        EngineError::invalid(format!(
            "{}: invalid mount config for type \"{typ}\": {why}",
            invalid_spec(raw)
        ))
    };
    validate_target(target).map_err(wrap)?;
    if typ == BIND && mode_has(mode, "nocopy") {
        return Err(wrap("field VolumeOptions must not be specified".into()));
    }
    if typ == VOLUME && mode_propagation(mode).is_some() {
        return Err(wrap("field BindOptions must not be specified".into()));
    }
    let rw = !mode_has(mode, "ro");
    Ok(MountRec {
        typ: typ.into(),
        name: if typ == VOLUME {
            source.to_string()
        } else {
            String::new()
        },
        source: if typ == BIND {
            fs::clean(source)
        } else {
            String::new()
        },
        destination: fs::clean(target),
        driver: String::new(),
        mode: mode.to_string(),
        rw,
        propagation: if typ == BIND {
            mode_propagation(mode)
                .unwrap_or(DEFAULT_PROPAGATION)
                .to_string()
        } else {
            String::new()
        },
        copy_data: typ == VOLUME && !mode_has(mode, "nocopy"),
        non_recursive: false,
        create_source: typ == BIND,
        anonymous: typ == VOLUME && source.is_empty(),
        tmpfs_options: String::new(),
    })
}

/// Size with the largest unit that divides it (moby's tmpfs conversion).
fn tmpfs_size(n: i64) -> String {
    for (suffix, div) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if n % div == 0 {
            return format!("{}{suffix}", n / div);
        }
    }
    n.to_string()
}

/// Parses one `--mount` / `Mounts` entry (moby's `ParseMountSpec`).
pub fn parse_mount(m: &Mount) -> Result<(MountRec, VolumeWant)> {
    let typ = m.typ.unwrap_or(MountTypeEnum::EMPTY);
    let tname = typ.to_string();
    let err = |why: &str| mount_config(&tname, why);
    let target = m.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(err("field Target must not be empty"));
    }
    validate_target(&target).map_err(|w| err(&w))?;
    let source = m.source.clone().unwrap_or_default();
    let read_only = m.read_only.unwrap_or(false);
    let mut rec = MountRec {
        typ: tname.clone(),
        destination: fs::clean(&target),
        rw: !read_only,
        ..Default::default()
    };
    let mut want = VolumeWant::default();
    match typ {
        MountTypeEnum::BIND => {
            if source.is_empty() {
                return Err(err("field Source must not be empty"));
            }
            if m.volume_options.is_some() {
                return Err(err("field VolumeOptions must not be specified"));
            }
            if !source.starts_with('/') {
                return Err(err(&format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let bo = m.bind_options.clone().unwrap_or_default();
            let create = bo.create_mountpoint.unwrap_or(false);
            if !create && std::fs::metadata(&source).is_err() {
                return Err(err(&format!("bind source path does not exist: {source}")));
            }
            rec.source = fs::clean(&source);
            rec.propagation = match bo.propagation {
                None | Some(MountBindOptionsPropagationEnum::EMPTY) => DEFAULT_PROPAGATION.into(),
                Some(p) => p.to_string(),
            };
            rec.non_recursive = bo.non_recursive.unwrap_or(false);
            rec.create_source = create;
        }
        MountTypeEnum::VOLUME => {
            if m.bind_options.is_some() {
                return Err(err("field BindOptions must not be specified"));
            }
            let vo = m.volume_options.clone().unwrap_or_default();
            if vo.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(err("volume subpaths are not supported by berth"));
            }
            if read_only && source.is_empty() {
                return Err(err(
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            if let Some(d) = &vo.driver_config {
                // Looked up by the caller, which knows the drivers.
                want.driver = d.name.clone().unwrap_or_default();
                want.options = d.options.clone().unwrap_or_default();
            }
            want.labels = vo.labels.clone().unwrap_or_default();
            rec.name = source.clone();
            rec.anonymous = source.is_empty();
            rec.copy_data = !vo.no_copy.unwrap_or(false);
        }
        MountTypeEnum::TMPFS => {
            if m.bind_options.is_some() {
                return Err(err("field BindOptions must not be specified"));
            }
            if !source.is_empty() {
                return Err(err("field Source must not be specified"));
            }
            let mut opts: Vec<String> = Vec::new();
            if read_only {
                opts.push("ro".into());
            }
            if let Some(t) = &m.tmpfs_options {
                if let Some(mode) = t.mode.filter(|m| *m != 0) {
                    opts.push(format!("mode={mode:o}"));
                }
                if let Some(size) = t.size_bytes.filter(|s| *s != 0) {
                    if size < 0 {
                        return Err(err("invalid tmpfs size"));
                    }
                    opts.push(format!("size={}", tmpfs_size(size)));
                }
                for o in t.options.clone().unwrap_or_default() {
                    if o.is_empty() || o.len() > 2 {
                        return Err(err("invalid option array length"));
                    }
                    if o[0] != "exec" && o[0] != "noexec" {
                        return Err(err(&format!("invalid option: {}", o[0])));
                    }
                    opts.push(o.join("="));
                }
            }
            rec.tmpfs_options = opts.join(",");
        }
        MountTypeEnum::EMPTY => return Err(err("mount type unknown")),
        other => {
            return Err(mount_config(
                other.as_ref(),
                format!("mount type {other} is not supported by berth"),
            ))
        }
    }
    Ok((rec, want))
}

/// `--volumes-from ID[:ro|rw]` → (container, mode).
pub fn parse_volumes_from(spec: &str) -> Result<(String, String)> {
    if spec.is_empty() {
        return Err(EngineError::invalid(
            "volumes-from specification cannot be an empty string",
        ));
    }
    let (id, mode) = spec.split_once(':').unwrap_or((spec, ""));
    if mode.is_empty() {
        return Ok((id.to_string(), "rw".into()));
    }
    if !valid_mode(mode) || mode_propagation(mode).is_some() || mode_has(mode, "nocopy") {
        return Err(EngineError::invalid(format!("invalid mode: {mode}")));
    }
    Ok((id.to_string(), mode.to_string()))
}

/// Mount flags that take no value, by the flag they set or clear (moby's
/// `MergeTmpfsOptions` treats a flag and its negation as one key; every
/// propagation mode shares one key).
fn tmpfs_flag_key(o: &str) -> Option<&'static str> {
    Some(match o {
        "ro" | "rw" => "ro",
        "suid" | "nosuid" => "suid",
        "dev" | "nodev" => "dev",
        "exec" | "noexec" => "exec",
        "sync" | "async" => "sync",
        "dirsync" => "dirsync",
        "remount" => "remount",
        "mand" | "nomand" => "mand",
        "atime" | "noatime" => "atime",
        "diratime" | "nodiratime" => "diratime",
        "bind" | "rbind" => "bind",
        "relatime" | "norelatime" => "relatime",
        "strictatime" | "nostrictatime" => "strictatime",
        "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
        | "runbindable" => "propagation",
        _ => return None,
    })
}

/// Docker's tmpfs options: defaults first, later options win per key.
pub fn merge_tmpfs_options(options: &[String]) -> Result<Vec<String>> {
    let mut seen: Vec<String> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for o in options.iter().rev() {
        if o == "defaults" || o.is_empty() {
            continue;
        }
        let key = match tmpfs_flag_key(o) {
            Some(k) => k.to_string(),
            None => {
                let (k, _) = o.split_once('=').ok_or_else(|| {
                    EngineError::invalid(format!("invalid tmpfs option [\"{o}\"]"))
                })?;
                if ![
                    "size",
                    "mode",
                    "uid",
                    "gid",
                    "nr_inodes",
                    "nr_blocks",
                    "mpol",
                ]
                .contains(&k)
                {
                    return Err(EngineError::invalid(format!(
                        "invalid tmpfs option [\"{k}\"]"
                    )));
                }
                format!("{k}=")
            }
        };
        if !seen.contains(&key) {
            seen.push(key);
            out.insert(0, o.clone());
        }
    }
    Ok(out)
}

fn tmpfs_mount(dest: &str, user_opts: &str, propagation: bool) -> Result<OciMount> {
    let mut opts: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    if propagation {
        opts.push(DEFAULT_PROPAGATION.into());
    }
    opts.extend(
        user_opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(String::from),
    );
    let merged = merge_tmpfs_options(&opts)?;
    Ok(oci_mount(dest, TMPFS, "tmpfs", merged))
}

fn oci_mount(dest: &str, typ: &str, source: &str, options: Vec<String>) -> OciMount {
    let mut m = OciMount::default();
    m.set_destination(dest.into());
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options));
    m
}

/// `\040`-style escapes of `/proc/self/mountinfo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// moby's `ensureShared` / `ensureSharedOrSlave` for bind propagation.
fn check_propagation(source: &str, prop: &str) -> Result<()> {
    let shared_needed = matches!(prop, "shared" | "rshared");
    let slave_ok = matches!(prop, "slave" | "rslave");
    if !shared_needed && !slave_ok {
        return Ok(());
    }
    let canon = std::fs::canonicalize(source)
        .map_err(|e| EngineError::invalid(format!("bind source {source}: {e}")))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut best: Option<(String, Vec<String>)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let point = unescape(f[4]);
        if !canon.starts_with(&point) {
            continue;
        }
        let optional: Vec<String> = f[6..]
            .iter()
            .take_while(|x| **x != "-")
            .map(|x| x.to_string())
            .collect();
        // Later lines are later mounts: on an equal mount point they win.
        if best.as_ref().is_none_or(|(p, _)| point.len() >= p.len()) {
            best = Some((point, optional));
        }
    }
    let (point, optional) = best.unwrap_or_else(|| ("/".into(), vec![]));
    let shared = optional.iter().any(|o| o.starts_with("shared:"));
    let slave = optional.iter().any(|o| o.starts_with("master:"));
    if shared_needed && !shared {
        return Err(EngineError::invalid(format!(
            "path {source} is mounted on {point} but it is not a shared mount"
        )));
    }
    if slave_ok && !shared && !slave {
        return Err(EngineError::invalid(format!(
            "path {source} is mounted on {point} but it is not a shared or slave mount"
        )));
    }
    Ok(())
}

/// `Mounts` for inspect and `ps`, sorted by destination.
pub fn mount_points(r: &Record) -> Vec<MountPoint> {
    let mut v: Vec<MountPoint> = r
        .mounts
        .iter()
        .map(|m| {
            let volume = m.typ == VOLUME;
            MountPoint {
                typ: Some(match m.typ.as_str() {
                    BIND => MountPointTypeEnum::BIND,
                    VOLUME => MountPointTypeEnum::VOLUME,
                    TMPFS => MountPointTypeEnum::TMPFS,
                    _ => MountPointTypeEnum::EMPTY,
                }),
                name: volume.then(|| m.name.clone()),
                source: Some(m.source.clone()),
                destination: Some(m.destination.clone()),
                driver: volume.then(|| m.driver.clone()),
                mode: Some(m.mode.clone()),
                rw: Some(m.rw),
                propagation: Some(m.propagation.clone()),
            }
        })
        .collect();
    v.sort_by(|a, b| a.destination.cmp(&b.destination));
    v
}

fn depth(dest: &str) -> usize {
    fs::components(dest).len()
}

impl Containers {
    /// Builds the container's mount plan into its record (at create, with
    /// the container already in the index but not yet persisted). Volumes
    /// it had to create are removed again when planning fails.
    pub(crate) fn plan_mounts(&self, c: &Container) -> Result<()> {
        let r = c.snapshot();
        let _g = self.volumes.guard();
        let mut made: Vec<String> = Vec::new();
        match self.plan_locked(&r, &mut made) {
            Ok(points) => {
                c.lock().mounts = points;
                Ok(())
            }
            Err(e) => {
                for v in made {
                    if let Err(e) = self.remove_volume_unused_locked(&v) {
                        tracing::warn!(volume = %v, error = %e, "undoing a volume");
                    }
                }
                Err(e)
            }
        }
    }

    fn remove_volume_unused_locked(&self, name: &str) -> Result<()> {
        if self.volumes.users_of(name).is_empty() && self.volumes.get(name).is_some() {
            // The guard is already held.
            return self.volumes.remove_volume_locked(name);
        }
        Ok(())
    }

    fn volume_for(
        &self,
        mut rec: MountRec,
        want: VolumeWant,
        made: &mut Vec<String>,
    ) -> Result<MountRec> {
        let (v, now) = self.volumes.create_volume_locked(
            &rec.name,
            &want.driver,
            want.labels,
            want.options,
        )?;
        if now {
            made.push(v.name.clone());
        }
        rec.source = self.volumes.mountpoint(&v).display().to_string();
        rec.driver = v.driver;
        rec.name = v.name;
        Ok(rec)
    }

    fn plan_locked(&self, r: &Record, made: &mut Vec<String>) -> Result<Vec<MountRec>> {
        let hc = &r.host_config;
        let mut points: BTreeMap<String, MountRec> = BTreeMap::new();
        // `--volume-driver`: for the `-v` and image volumes.
        let driver = hc.volume_driver.clone().unwrap_or_default();
        self.volumes.driver(&driver)?;
        let want = || VolumeWant {
            driver: driver.clone(),
            ..Default::default()
        };
        for spec in hc.volumes_from.clone().unwrap_or_default() {
            let (id, mode) = parse_volumes_from(&spec)?;
            let other = self.find(&id)?;
            if other.id == r.id {
                return Err(EngineError::invalid(
                    "cannot mount volumes from the container itself",
                ));
            }
            for m in other.lock().mounts.clone() {
                let mut cp = m.clone();
                cp.rw = m.rw && !mode_has(&mode, "ro");
                cp.copy_data = false;
                cp.mode = String::new();
                points.insert(cp.destination.clone(), cp);
            }
        }
        let tmpfs: Vec<String> = hc
            .tmpfs
            .clone()
            .unwrap_or_default()
            .keys()
            .map(|d| {
                // dockerd words `--tmpfs` errors without the mount-config prefix.
                validate_target(d)
                    .map(|_| fs::clean(d))
                    .map_err(EngineError::invalid)
            })
            .collect::<Result<_>>()?;
        let mut bound: Vec<String> = Vec::new();
        for raw in hc.binds.clone().unwrap_or_default() {
            let mut rec = parse_bind(&raw)?;
            if bound.contains(&rec.destination) || tmpfs.contains(&rec.destination) {
                return Err(EngineError::invalid(format!(
                    "Duplicate mount point: {}",
                    rec.destination
                )));
            }
            if rec.typ == VOLUME {
                rec = self.volume_for(rec, want(), made)?;
                if rec.mode.is_empty() {
                    rec.mode = "z".into();
                }
            }
            bound.push(rec.destination.clone());
            points.insert(rec.destination.clone(), rec);
        }
        for m in hc.mounts.clone().unwrap_or_default() {
            let (mut rec, wanted) = parse_mount(&m)?;
            if rec.typ == VOLUME {
                self.volumes.driver(&wanted.driver)?;
            }
            if bound.contains(&rec.destination) || tmpfs.contains(&rec.destination) {
                return Err(EngineError::invalid(format!(
                    "Duplicate mount point: {}",
                    m.target.clone().unwrap_or_default()
                )));
            }
            if rec.typ == VOLUME {
                rec = self.volume_for(rec, wanted, made)?;
            }
            bound.push(rec.destination.clone());
            points.insert(rec.destination.clone(), rec);
        }
        // The image's and the config's VOLUMEs not covered by anything else.
        let mut anon: Vec<String> = r
            .config
            .volumes
            .clone()
            .unwrap_or_default()
            .keys()
            .filter(|d| d.starts_with('/'))
            .map(|d| fs::clean(d))
            .filter(|d| d != "/")
            .collect();
        anon.sort();
        anon.dedup();
        for dest in anon {
            if points.contains_key(&dest) || tmpfs.contains(&dest) {
                continue;
            }
            let rec = MountRec {
                typ: VOLUME.into(),
                destination: dest.clone(),
                rw: true,
                copy_data: true,
                anonymous: true,
                ..Default::default()
            };
            let rec = self.volume_for(rec, want(), made)?;
            points.insert(dest, rec);
        }
        Ok(points.into_values().collect())
    }

    /// The OCI mounts of a starting container, its rootfs mounted at
    /// `merged`: device volumes mounted, empty volumes filled from the
    /// image, missing `-v` bind sources created, propagation checked.
    pub(crate) fn container_mounts(&self, r: &Record, merged: &Path) -> Result<Vec<OciMount>> {
        let root = Root::open(merged)
            .map_err(|e| EngineError::internal(format!("opening {}: {e}", merged.display())))?;
        let mut plan = r.mounts.clone();
        // Parents first, so copy-up reads the image, not another volume.
        plan.sort_by_key(|m| depth(&m.destination));
        let mut out = Vec::new();
        for m in &plan {
            match m.typ.as_str() {
                VOLUME => {
                    if self.volumes.get(&m.name).is_none() {
                        // Its record went missing (it cannot be removed while
                        // used): make it again rather than fail the start.
                        let _g = self.volumes.guard();
                        self.volumes.create_volume_locked(
                            &m.name,
                            &m.driver,
                            HashMap::new(),
                            HashMap::new(),
                        )?;
                    }
                    let data = self.volumes.activate_volume(&m.name, &r.id, &m.source)?;
                    if m.copy_data {
                        crate::engine::volumes::copyup::populate(&root, &m.destination, &data)?;
                    }
                    let mut opts = vec!["rbind".to_string()];
                    if !m.rw {
                        opts.push("ro".into());
                    }
                    opts.push(DEFAULT_PROPAGATION.into());
                    out.push(oci_mount(
                        &m.destination,
                        BIND,
                        &data.display().to_string(),
                        opts,
                    ));
                    self.volumes.volume_event(
                        "mount",
                        &m.name,
                        &[
                            ("container", r.id.clone()),
                            ("destination", m.destination.clone()),
                            ("read/write", m.rw.to_string()),
                            ("propagation", m.propagation.clone()),
                        ],
                    );
                }
                BIND => {
                    if std::fs::metadata(&m.source).is_err() {
                        if m.create_source {
                            std::fs::create_dir_all(&m.source).map_err(|e| {
                                EngineError::internal(format!(
                                    "error while creating mount source path '{}': {e}",
                                    m.source
                                ))
                            })?;
                        } else {
                            return Err(mount_config(
                                BIND,
                                format!("bind source path does not exist: {}", m.source),
                            ));
                        }
                    }
                    check_propagation(&m.source, &m.propagation)?;
                    let mut opts = vec![if m.non_recursive { "bind" } else { "rbind" }.to_string()];
                    if !m.rw {
                        opts.push("ro".into());
                    }
                    opts.push(if m.propagation.is_empty() {
                        DEFAULT_PROPAGATION.into()
                    } else {
                        m.propagation.clone()
                    });
                    out.push(oci_mount(&m.destination, BIND, &m.source, opts));
                }
                TMPFS => out.push(tmpfs_mount(&m.destination, &m.tmpfs_options, false)?),
                other => return Err(EngineError::internal(format!("unknown mount type {other}"))),
            }
        }
        let mut tmpfs: Vec<(String, String)> = r
            .host_config
            .tmpfs
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        tmpfs.sort();
        for (dest, data) in tmpfs {
            out.push(tmpfs_mount(&fs::clean(&dest), &data, true)?);
        }
        Ok(out)
    }

    /// `container_mounts` off the async workers (copy-up may copy a lot).
    pub(crate) async fn prepare_mounts(
        self: &std::sync::Arc<Self>,
        r: &Record,
        merged: &Path,
    ) -> Result<Vec<OciMount>> {
        let (me, r, merged) = (self.clone(), r.clone(), merged.to_path_buf());
        tokio::task::spawn_blocking(move || me.container_mounts(&r, &merged))
            .await
            .map_err(|e| EngineError::internal(format!("preparing mounts: {e}")))?
    }

    /// After a container stopped (or failed to start): `unmount` events and
    /// device volumes released.
    pub(crate) fn unmount_volumes(&self, c: &Container) {
        let r = c.snapshot();
        for m in r.mounts.iter().filter(|m| m.typ == VOLUME) {
            self.volumes.deactivate_volume(&m.name, &r.id);
            self.volumes
                .volume_event("unmount", &m.name, &[("container", r.id.clone())]);
        }
    }

    /// `rm -v` and `--rm`: the container's anonymous volumes go, unless
    /// another container still uses them; named volumes always stay.
    pub(crate) fn remove_anonymous_volumes(&self, r: &Record) {
        let _g = self.volumes.guard();
        for m in r.mounts.iter().filter(|m| m.typ == VOLUME && m.anonymous) {
            if let Err(e) = self.remove_volume_unused_locked(&m.name) {
                tracing::warn!(volume = %m.name, error = %e, "removing an anonymous volume");
            }
        }
    }
}

/// The container side's answer to "who uses this volume": read from the
/// mount plans in the container index.
pub struct VolumeUse(pub Arc<RwLock<super::Index>>);

impl crate::engine::volumes::VolumeUsers for VolumeUse {
    fn refs(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for c in self.0.read().unwrap_or_else(|p| p.into_inner()).all() {
            let r = c.lock();
            for m in r.mounts.iter().filter(|m| m.typ == VOLUME) {
                let ids = out.entry(m.name.clone()).or_default();
                if !ids.contains(&r.id) {
                    ids.push(r.id.clone());
                }
            }
        }
        for ids in out.values_mut() {
            ids.sort();
        }
        out
    }

    fn used_by_running(&self, name: &str, except: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .all()
            .iter()
            .any(|c| {
                let r = c.lock();
                r.id != except
                    && r.state.status.is_running()
                    && r.mounts.iter().any(|m| m.typ == VOLUME && m.name == name)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_like_docker() {
        let m = parse_bind("data:/data").unwrap();
        assert_eq!((m.typ.as_str(), m.name.as_str()), (VOLUME, "data"));
        assert!(m.rw && m.copy_data && !m.anonymous);
        let m = parse_bind("/host/x/:/ctr:ro,rshared").unwrap();
        assert_eq!(m.typ, BIND);
        assert_eq!(m.source, "/host/x");
        assert_eq!(m.propagation, "rshared");
        assert!(!m.rw);
        assert_eq!(m.mode, "ro,rshared");
        let m = parse_bind("/anon").unwrap();
        assert!(m.anonymous && m.typ == VOLUME);
        let m = parse_bind("v:/x:nocopy").unwrap();
        assert!(!m.copy_data);
        let e = |s: &str| parse_bind(s).unwrap_err().to_string();
        assert_eq!(e("/foo:ro"), "invalid volume specification: '/foo:ro'");
        assert_eq!(e("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(e("v:/x:bogus"), "invalid mode: bogus");
        assert_eq!(e("v:/x:ro,rw"), "invalid mode: ro,rw");
        assert!(
            e("v:rel").contains("mount path must be absolute"),
            "{}",
            e("v:rel")
        );
        assert!(e("/h:/").contains("destination can't be '/'"));
    }

    #[test]
    fn mounts_parse_like_docker() {
        let m = Mount {
            typ: Some(MountTypeEnum::BIND),
            source: Some("/definitely/not/here".into()),
            target: Some("/x".into()),
            ..Default::default()
        };
        assert_eq!(
            parse_mount(&m).unwrap_err().to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /definitely/not/here"
        );
        let m = Mount {
            typ: Some(MountTypeEnum::TMPFS),
            target: Some("/t".into()),
            tmpfs_options: Some(berth_api::models::MountTmpfsOptions {
                size_bytes: Some(1 << 20),
                mode: Some(0o1777),
                options: None,
            }),
            ..Default::default()
        };
        let (r, _) = parse_mount(&m).unwrap();
        assert_eq!(r.tmpfs_options, "mode=1777,size=1m");
        let m = Mount {
            typ: Some(MountTypeEnum::VOLUME),
            target: Some("/v".into()),
            read_only: Some(true),
            ..Default::default()
        };
        assert!(parse_mount(&m)
            .unwrap_err()
            .to_string()
            .contains("anonymous volumes"));
    }

    #[test]
    fn tmpfs_options_merge() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            merge_tmpfs_options(&o(&[
                "noexec", "nosuid", "nodev", "rprivate", "size=1m", "exec"
            ]))
            .unwrap(),
            o(&["nosuid", "nodev", "rprivate", "size=1m", "exec"])
        );
        assert!(merge_tmpfs_options(&o(&["bogus"])).is_err());
    }

    #[test]
    fn volumes_from_modes() {
        assert_eq!(
            parse_volumes_from("a:ro").unwrap(),
            ("a".to_string(), "ro".to_string())
        );
        assert_eq!(parse_volumes_from("a").unwrap().1, "rw");
        assert!(parse_volumes_from("a:rshared").is_err());
        assert!(parse_volumes_from("a:nocopy").is_err());
    }

    #[test]
    fn mountinfo_unescapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
