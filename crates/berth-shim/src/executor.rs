//! The last step before the workload runs: Docker-style executable lookup
//! errors, and a clean signal state (the shim's Rust runtime ignores
//! SIGPIPE; an ignored disposition survives `execve`).

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_api::shim::ErrorKind;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;

#[derive(Clone, Default)]
pub struct BerthExecutor {
    /// A compiled seccomp program to install right before exec.
    pub bpf: Option<std::sync::Arc<Vec<u8>>>,
    /// Capability numbers lent for installing it, dropped right after.
    pub lent: Vec<u32>,
}

const CAP_SETPCAP: u32 = 8;
const CAP_SYS_ADMIN: u32 = 21;

pub fn cap_number(name: &str) -> Option<u32> {
    match name {
        "CAP_SETPCAP" => Some(CAP_SETPCAP),
        "CAP_SYS_ADMIN" => Some(CAP_SYS_ADMIN),
        _ => None,
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Gives back lent capabilities: the bounding set first (that needs
/// CAP_SETPCAP, so it goes last), then effective/permitted/inheritable.
pub fn drop_lent(lent: &[u32]) -> Result<(), String> {
    let mut order: Vec<u32> = lent.to_vec();
    order.sort_by_key(|c| *c == CAP_SETPCAP);
    for c in &order {
        // SAFETY: plain prctl calls.
        unsafe {
            if libc::prctl(libc::PR_CAPBSET_DROP, *c as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(format!(
                    "dropping capability {c}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_LOWER as libc::c_ulong,
                *c as libc::c_ulong,
                0,
                0,
            );
        }
    }
    let mut hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data words.
    unsafe {
        if libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        ) != 0
        {
            return Err(format!("capget: {}", std::io::Error::last_os_error()));
        }
        for c in lent {
            let (w, b) = ((*c / 32) as usize, 1u32 << (c % 32));
            data[w].effective &= !b;
            data[w].permitted &= !b;
            data[w].inheritable &= !b;
        }
        if libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) != 0 {
            return Err(format!("capset: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// A command that cannot be executed: its kind and Docker's wording.
#[derive(Debug)]
pub struct LookupError {
    pub kind: ErrorKind,
    pub msg: String,
}

/// Finds `arg0` on `path_var` as Go's `exec.LookPath` does.
pub fn lookup(arg0: &str, path_var: &str) -> Result<String, LookupError> {
    let check = |p: &Path| -> Result<(), LookupError> {
        let meta = std::fs::metadata(p).map_err(|_| LookupError {
            kind: ErrorKind::NotFound,
            msg: format!(
                "exec: \"{arg0}\": stat {}: no such file or directory",
                p.display()
            ),
        })?;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            return Err(LookupError {
                kind: ErrorKind::PermissionDenied,
                msg: format!("exec: \"{arg0}\": permission denied"),
            });
        }
        Ok(())
    };
    if arg0.contains('/') {
        check(Path::new(arg0))?;
        return Ok(arg0.to_string());
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(cand.display().to_string());
            }
        }
    }
    Err(LookupError {
        kind: ErrorKind::NotFound,
        msg: format!("exec: \"{arg0}\": executable file not found in $PATH"),
    })
}

/// Unblocks every signal and restores default dispositions.
pub fn reset_signals() {
    // SAFETY: plain libc calls on a process about to exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // The raw syscall: glibc's wrappers refuse its reserved signals
        // (32, 33), which could otherwise stay ignored across execve.
        #[repr(C)]
        struct KSigaction {
            handler: usize,
            flags: u64,
            restorer: usize,
            mask: u64,
        }
        let act = KSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &act as *const KSigaction,
                    std::ptr::null_mut::<KSigaction>(),
                    8usize,
                );
            }
        }
    }
}

fn args_of(spec: &Spec) -> Option<&Vec<String>> {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .filter(|a| !a.is_empty())
}

impl Executor for BerthExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = args_of(spec).ok_or(ExecutorError::InvalidArg)?;
        let path = std::env::var("PATH").unwrap_or_default();
        let exe = lookup(&args[0], &path).map_err(|e| ExecutorError::Other(e.msg))?;
        let exe = CString::new(exe).map_err(|_| ExecutorError::InvalidArg)?;
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| ExecutorError::InvalidArg))
            .collect::<Result<_, _>>()?;
        if let Some(prog) = &self.bpf {
            crate::exec::load_bpf(prog)
                .map_err(|e| ExecutorError::Other(format!("seccomp: {e}")))?;
        }
        // The spec's environment, in its order: libcontainer sets it from a
        // hash map, and a program sees `environ` in the order dockerd gives.
        let envp: Vec<CString> = spec
            .process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default()
            .iter()
            .map(|e| CString::new(e.as_bytes()).map_err(|_| ExecutorError::InvalidArg))
            .collect::<Result<_, _>>()?;
        drop_lent(&self.lent).map_err(ExecutorError::Other)?;
        reset_signals();
        let err = nix::unistd::execve(&exe, &argv, &envp).err();
        Err(ExecutorError::Other(format!(
            "exec: \"{}\": {}",
            args[0],
            err.map(|e| e.desc().to_lowercase()).unwrap_or_default()
        )))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let args = args_of(spec).ok_or_else(|| {
            ExecutorValidationError::ArgValidationError("no command specified".into())
        })?;
        let env = spec
            .process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default();
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(berth_runtime::DEFAULT_PATH);
        lookup(&args[0], path)
            .map(|_| ())
            .map_err(|e| ExecutorValidationError::ArgValidationError(e.msg))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lookup_errors_use_dockers_words_and_kinds() {
        use berth_api::shim::ErrorKind;
        assert!(super::lookup("sh", "/bin:/usr/bin").is_ok());
        let e = super::lookup("no-such-cmd", "/bin").unwrap_err();
        assert_eq!(
            (e.kind, e.msg.as_str()),
            (
                ErrorKind::NotFound,
                "exec: \"no-such-cmd\": executable file not found in $PATH"
            )
        );
        let e = super::lookup("/no/such", "/bin").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.msg.contains("no such file or directory"));
        let e = super::lookup("/etc", "/bin").unwrap_err();
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert!(e.msg.contains("permission denied"));
        // What the daemon records for each, read back from the message as
        // the runtime passes it on.
        for (msg, code) in [
            ("exec: \"x\": executable file not found in $PATH", 127),
            ("exec: \"/x\": stat /x: no such file or directory", 127),
            ("exec: \"/etc\": permission denied", 126),
            ("cgroup: device or resource busy", 128),
        ] {
            assert_eq!(ErrorKind::of_runtime_error(msg).exit_code(), code, "{msg}");
        }
    }
}
