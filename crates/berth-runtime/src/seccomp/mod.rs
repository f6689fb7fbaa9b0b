//! Seccomp: Docker's default profile and Docker-format custom profiles,
//! resolved for one container the way moby's `setupSeccomp` does.
//!
//! Both sources become a [`Profile`] (rules still carrying their
//! conditions); [`resolve`] then keeps the rules that apply to the
//! container's capabilities, the host architecture and kernel.

mod default_profile;

use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
    LinuxSyscallBuilder,
};
use serde::Deserialize;

use crate::host::{HostInfo, KernelVersion};
use crate::SpecError;

// ---------------------------------------------------------------------------
// Const representation used by the built-in tables.

#[derive(Debug, Clone, Copy)]
pub(crate) enum ActionDef {
    Allow,
    Errno(u32),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum OpDef {
    Eq,
    Ne,
    /// Matches when `arg & value == 0` (the OCI `value` is the mask, `valueTwo` 0).
    MaskedEq,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ArgDef {
    index: u32,
    op: OpDef,
    value: u64,
}

#[derive(Debug, Clone, Copy)]
struct CondDef {
    caps: &'static [&'static str],
    arches: &'static [&'static str],
    min_kernel: Option<KernelVersion>,
}

const NO_COND: CondDef = CondDef {
    caps: &[],
    arches: &[],
    min_kernel: None,
};

/// One rule of a built-in profile. `includes` must all hold for the rule to
/// apply; any one `excludes` condition drops it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleDef {
    names: &'static [&'static str],
    action: ActionDef,
    args: &'static [ArgDef],
    includes: CondDef,
    excludes: CondDef,
}

impl RuleDef {
    const fn new(names: &'static [&'static str], action: ActionDef) -> Self {
        RuleDef {
            names,
            action,
            args: &[],
            includes: NO_COND,
            excludes: NO_COND,
        }
    }
    const fn args(mut self, args: &'static [ArgDef]) -> Self {
        self.args = args;
        self
    }
    const fn with_caps(mut self, caps: &'static [&'static str]) -> Self {
        self.includes.caps = caps;
        self
    }
    const fn without_caps(mut self, caps: &'static [&'static str]) -> Self {
        self.excludes.caps = caps;
        self
    }
    const fn on_arches(mut self, arches: &'static [&'static str]) -> Self {
        self.includes.arches = arches;
        self
    }
    const fn not_on_arches(mut self, arches: &'static [&'static str]) -> Self {
        self.excludes.arches = arches;
        self
    }
    const fn min_kernel(mut self, kernel: u64, major: u64) -> Self {
        self.includes.min_kernel = Some((kernel, major));
        self
    }
}

// ---------------------------------------------------------------------------
// Owned, conditional profile (both sources end up here).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cond {
    pub caps: Vec<String>,
    pub arches: Vec<String>,
    pub min_kernel: Option<KernelVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub names: Vec<String>,
    pub action: LinuxSeccompAction,
    pub errno_ret: Option<u32>,
    pub args: Vec<LinuxSeccompArg>,
    pub includes: Cond,
    pub excludes: Cond,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    pub default_action: Option<LinuxSeccompAction>,
    pub default_errno_ret: Option<u32>,
    pub architectures: Vec<Arch>,
    pub arch_map: Vec<(Arch, Vec<Arch>)>,
    pub flags: Vec<LinuxSeccompFilterFlag>,
    pub listener_path: Option<PathBuf>,
    pub listener_metadata: Option<String>,
    pub rules: Vec<Rule>,
}

fn build_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Build(e.to_string())
}

fn make_arg(
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
) -> Result<LinuxSeccompArg, SpecError> {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index as usize)
        .op(op)
        .value(value);
    if value_two != 0 {
        b = b.value_two(value_two);
    }
    b.build().map_err(build_err)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn cond_from_def(c: &CondDef) -> Cond {
    Cond {
        caps: strings(c.caps),
        arches: strings(c.arches),
        min_kernel: c.min_kernel,
    }
}

/// Docker's default profile.
pub(crate) fn default_profile() -> Result<Profile, SpecError> {
    let mut rules = Vec::with_capacity(default_profile::RULES.len());
    for def in default_profile::RULES {
        let (action, errno_ret) = match def.action {
            ActionDef::Allow => (LinuxSeccompAction::ScmpActAllow, None),
            ActionDef::Errno(e) => (LinuxSeccompAction::ScmpActErrno, Some(e)),
        };
        let args = def
            .args
            .iter()
            .map(|a| {
                let op = match a.op {
                    OpDef::Eq => LinuxSeccompOperator::ScmpCmpEq,
                    OpDef::Ne => LinuxSeccompOperator::ScmpCmpNe,
                    OpDef::MaskedEq => LinuxSeccompOperator::ScmpCmpMaskedEq,
                };
                make_arg(a.index, op, a.value, 0)
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(Rule {
            names: strings(def.names),
            action,
            errno_ret,
            args,
            includes: cond_from_def(&def.includes),
            excludes: cond_from_def(&def.excludes),
        });
    }
    Ok(Profile {
        default_action: Some(LinuxSeccompAction::ScmpActErrno),
        default_errno_ret: Some(default_profile::DEFAULT_ERRNO),
        arch_map: default_profile::ARCH_FAMILIES
            .iter()
            .map(|(a, subs)| (*a, subs.to_vec()))
            .collect(),
        rules,
        ..Profile::default()
    })
}

// ---------------------------------------------------------------------------
// Docker's JSON profile format (`--security-opt seccomp=FILE`).

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonProfile {
    #[serde(default)]
    default_action: Option<String>,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    #[serde(default)]
    arch_map: Option<Vec<JsonArch>>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    listener_path: Option<PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<JsonSyscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArch {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSyscall {
    /// Legacy single-name form.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<JsonArg>>,
    #[serde(default)]
    includes: Option<JsonFilter>,
    #[serde(default)]
    excludes: Option<JsonFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: LinuxSeccompOperator,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

fn decode_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Invalid(format!("Decoding seccomp profile failed: {e}"))
}

/// "<kernel>.<major>", each 0–255, not both 0 (moby `KernelVersion.UnmarshalJSON`).
fn parse_min_kernel(v: &str) -> Result<Option<KernelVersion>, SpecError> {
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        decode_err(format!(
            "invalid kernel version: {v:?}, expected \"<kernel>.<major>\""
        ))
    };
    let (k, m) = v.split_once('.').ok_or_else(bad)?;
    let k: u8 = k.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    if k == 0 && m == 0 {
        return Err(bad());
    }
    Ok(Some((u64::from(k), u64::from(m))))
}

fn cond_from_json(f: Option<JsonFilter>) -> Result<Cond, SpecError> {
    let Some(f) = f else {
        return Ok(Cond::default());
    };
    Ok(Cond {
        caps: f.caps.unwrap_or_default(),
        arches: f.arches.unwrap_or_default(),
        min_kernel: match f.min_kernel {
            Some(v) => parse_min_kernel(&v)?,
            None => None,
        },
    })
}

/// Parses a profile in Docker's format.
pub(crate) fn parse_docker_profile(json: &str) -> Result<Profile, SpecError> {
    let p: JsonProfile = serde_json::from_str(json).map_err(decode_err)?;
    let default_action = match p.default_action.as_deref() {
        None | Some("") => None,
        Some(a) => Some(
            serde_json::from_value(serde_json::Value::String(a.to_string())).map_err(decode_err)?,
        ),
    };
    let mut rules = Vec::new();
    for s in p.syscalls.unwrap_or_default() {
        let names = match (s.name.filter(|n| !n.is_empty()), s.names) {
            (Some(_), Some(names)) if !names.is_empty() => {
                return Err(SpecError::Invalid(
                    "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'".into(),
                ))
            }
            (Some(name), _) => vec![name],
            (None, names) => names.unwrap_or_default(),
        };
        let args = s
            .args
            .unwrap_or_default()
            .into_iter()
            .map(|a| make_arg(a.index, a.op, a.value, a.value_two))
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(Rule {
            names,
            action: s.action,
            errno_ret: s.errno_ret,
            args,
            includes: cond_from_json(s.includes)?,
            excludes: cond_from_json(s.excludes)?,
        });
    }
    Ok(Profile {
        default_action,
        default_errno_ret: p.default_errno_ret,
        architectures: p.architectures.unwrap_or_default(),
        arch_map: p
            .arch_map
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.architecture, a.sub_architectures.unwrap_or_default()))
            .collect(),
        flags: p.flags.unwrap_or_default(),
        listener_path: p.listener_path,
        listener_metadata: p.listener_metadata,
        rules,
    })
}

// ---------------------------------------------------------------------------
// Resolution for one container.

/// Go-style arch name → libseccomp arch (moby `nativeToSeccomp`).
fn seccomp_arch(native: &str) -> Option<Arch> {
    Some(match native {
        "x86" => Arch::ScmpArchX86,
        "amd64" => Arch::ScmpArchX86_64,
        "arm" => Arch::ScmpArchArm,
        "arm64" => Arch::ScmpArchAarch64,
        "mips64" => Arch::ScmpArchMips64,
        "mips64n32" => Arch::ScmpArchMips64n32,
        "mipsel64" => Arch::ScmpArchMipsel64,
        "mips3l64n32" => Arch::ScmpArchMipsel64n32,
        "mipsle" => Arch::ScmpArchMipsel,
        "ppc" => Arch::ScmpArchPpc,
        "ppc64" => Arch::ScmpArchPpc64,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390" => Arch::ScmpArchS390,
        "s390x" => Arch::ScmpArchS390x,
        _ => return None,
    })
}

fn kernel_at_least(host: &HostInfo, min: KernelVersion) -> Result<bool, SpecError> {
    let kv = host
        .kernel
        .ok_or_else(|| SpecError::Build("failed to parse the kernel version".into()))?;
    Ok(kv >= min)
}

fn applies(rule: &Rule, bounding: &[String], host: &HostInfo) -> Result<bool, SpecError> {
    let has = |c: &String| bounding.contains(c);
    let ex = &rule.excludes;
    if ex.arches.iter().any(|a| a == host.arch) || ex.caps.iter().any(has) {
        return Ok(false);
    }
    if let Some(min) = ex.min_kernel {
        if kernel_at_least(host, min)? {
            return Ok(false);
        }
    }
    let inc = &rule.includes;
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.arch) {
        return Ok(false);
    }
    if !inc.caps.iter().all(has) {
        return Ok(false);
    }
    if let Some(min) = inc.min_kernel {
        if !kernel_at_least(host, min)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The OCI seccomp section for a container whose bounding set is `bounding`;
/// `None` when the profile disables seccomp (no default action, no rules).
pub(crate) fn resolve(
    profile: &Profile,
    bounding: &[String],
    host: &HostInfo,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    if profile.default_action.is_none() && profile.rules.is_empty() {
        return Ok(None);
    }
    let default_action = profile.default_action.ok_or_else(|| {
        SpecError::Invalid("the seccomp profile has syscall rules but no defaultAction".into())
    })?;
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(SpecError::Invalid(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
        ));
    }

    let mut architectures = profile.architectures.clone();
    if let Some(native) = seccomp_arch(host.arch) {
        if let Some((arch, subs)) = profile.arch_map.iter().find(|(a, _)| *a == native) {
            architectures.push(*arch);
            architectures.extend(subs.iter().copied());
        }
    }

    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    for rule in &profile.rules {
        if !applies(rule, bounding, host)? {
            continue;
        }
        let mut b = LinuxSyscallBuilder::default()
            .names(rule.names.clone())
            .action(rule.action);
        if let Some(e) = rule.errno_ret {
            b = b.errno_ret(e);
        }
        if !rule.args.is_empty() {
            b = b.args(rule.args.clone());
        }
        syscalls.push(b.build().map_err(build_err)?);
    }

    let mut b = LinuxSeccompBuilder::default().default_action(default_action);
    if let Some(e) = profile.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    if !architectures.is_empty() {
        b = b.architectures(architectures);
    }
    if !profile.flags.is_empty() {
        b = b.flags(profile.flags.clone());
    }
    if let Some(p) = &profile.listener_path {
        b = b.listener_path(p.clone());
    }
    if let Some(m) = &profile.listener_metadata {
        b = b.listener_metadata(m.clone());
    }
    if !syscalls.is_empty() {
        b = b.syscalls(syscalls);
    }
    b.build().map(Some).map_err(build_err)
}

#[cfg(test)]
mod tests;
