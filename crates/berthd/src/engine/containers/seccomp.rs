//! Seccomp filters compiled once per profile, for `docker exec`.
//!
//! libseccomp needs tens of milliseconds to compile Docker's profile (its
//! rule database is copied per rule). libcontainer compiles it inside each
//! container's init, which we cannot avoid; for exec'd processes the daemon
//! compiles each distinct profile once, and the shim loads the ready BPF
//! program into every exec with one `prctl`. (For Docker's default profile
//! the shim loads it into the init too, see `lifecycle.rs`.)

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::sync::Mutex;

use berth_runtime::oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompOperator as O,
};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext,
    ScmpSyscall,
};
use sha2::{Digest, Sha256};

use crate::engine::{EngineError, Result};

/// Compiled filters by profile, each in one file under `dir` that every
/// container with that profile shares (written once, read by its shim).
pub struct BpfCache {
    dir: PathBuf,
    files: Mutex<HashMap<String, PathBuf>>,
}

fn action(a: A, errno: Option<u32>) -> ScmpAction {
    let e = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(e),
        A::ScmpActTrace => ScmpAction::Trace(e as u16),
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActNotify => ScmpAction::Notify,
    }
}

fn arch(a: &berth_runtime::oci_spec::runtime::Arch) -> Option<ScmpArch> {
    use berth_runtime::oci_spec::runtime::Arch as R;
    Some(match a {
        R::ScmpArchX86 => ScmpArch::X86,
        R::ScmpArchX86_64 => ScmpArch::X8664,
        R::ScmpArchX32 => ScmpArch::X32,
        R::ScmpArchArm => ScmpArch::Arm,
        R::ScmpArchAarch64 => ScmpArch::Aarch64,
        R::ScmpArchS390 => ScmpArch::S390,
        R::ScmpArchS390x => ScmpArch::S390X,
        R::ScmpArchRiscv64 => ScmpArch::Riscv64,
        R::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        _ => return None,
    })
}

/// Compiles a profile with the OCI meaning of every operand (for
/// `SCMP_CMP_MASKED_EQ`, `value` is the mask and `valueTwo` the datum).
fn compile(s: &LinuxSeccomp) -> std::result::Result<Vec<u8>, String> {
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| e.to_string())?;
    for a in s
        .architectures()
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(arch)
    {
        let _ = ctx.add_arch(a);
    }
    ctx.set_ctl_nnp(false).map_err(|e| e.to_string())?;
    // A binary tree of syscall numbers instead of one comparison after
    // another (libseccomp 2.5+; same decisions). Loading the filter is
    // what it speeds up most: the kernel emulates the program for every
    // syscall number of each arch to build its allow-cache, which costs
    // O(rules) per number on the linear layout and O(log rules) here.
    // An older libseccomp refuses the attribute and keeps the layout.
    let _ = ctx.set_filter_attr(ScmpFilterAttr::CtlOptimize, 2);
    for rule in s.syscalls().clone().unwrap_or_default() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue;
        }
        let args: Vec<ScmpArgCompare> = rule
            .args()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let op = match a.op() {
                    O::ScmpCmpNe => ScmpCompareOp::NotEqual,
                    O::ScmpCmpLt => ScmpCompareOp::Less,
                    O::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                    O::ScmpCmpEq => ScmpCompareOp::Equal,
                    O::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                    O::ScmpCmpGt => ScmpCompareOp::Greater,
                    O::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value()),
                };
                let datum = if a.op() == O::ScmpCmpMaskedEq {
                    a.value_two().unwrap_or(0)
                } else {
                    a.value()
                };
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        let mut indexes: Vec<u32> = rule
            .args()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|a| a.index() as u32)
            .collect();
        indexes.sort();
        let dup = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let r = if args.is_empty() {
                ctx.add_rule(act, sc)
            } else if dup {
                // Conditions on one argument are alternatives.
                args.iter()
                    .try_for_each(|c| {
                        ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                            .map(|_| ())
                    })
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &args)
            };
            r.map_err(|e| format!("seccomp rule for {name}: {e}"))?;
        }
    }
    let fd = nix::sys::memfd::memfd_create(
        c"berth-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    let mut f = std::fs::File::from(fd);
    ctx.export_bpf(&f).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

impl BpfCache {
    pub fn new(dir: PathBuf) -> Self {
        // A write that a crash cut off leaves its temporary file; whole
        // `.bpf` files stay, since live shims may still load them.
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Self {
            dir,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// The file holding `s` compiled to BPF (compiled on first use; the
    /// lock is held meanwhile, so concurrent first starts compile once).
    pub fn file(&self, s: &LinuxSeccomp) -> Result<PathBuf> {
        let key = hex::encode(Sha256::digest(serde_json::to_vec(s)?));
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&key) {
            return Ok(f.clone());
        }
        let bpf =
            compile(s).map_err(|e| EngineError::internal(format!("compiling seccomp: {e}")))?;
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{key}.bpf"));
        // Atomically: a shim may be reading an earlier daemon's copy.
        let tmp = self.dir.join(format!("{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bpf)?;
        std::fs::rename(&tmp, &path)?;
        files.insert(key, path.clone());
        Ok(path)
    }
}
