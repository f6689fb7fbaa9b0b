//! Docker CLI plugins: `berth <name> …` for a command berth does not have
//! runs `docker-<name>` from the docker CLI's plugin directories, after
//! `docker-<name> docker-cli-plugin-metadata` says it is one, with the
//! docker CLI's protocol: argv `docker-<name> <berth's own arguments>`
//! (global flags included), `DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND`, and a
//! `DOCKER_CLI_PLUGIN_SOCKET` that closes when the plugin should stop.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::ctxstore;

const META_CMD: &str = "docker-cli-plugin-metadata";

/// The docker CLI's search path, in its order of preference.
pub fn dirs() -> Vec<PathBuf> {
    let cfg = ctxstore::config_dir();
    let mut out = vec![cfg.join("cli-plugins")];
    if let Ok(data) = std::fs::read(cfg.join("config.json")) {
        if let Ok(v) = serde_json::from_slice::<Value>(&data) {
            if let Some(extra) = v["cliPluginsExtraDirs"].as_array() {
                out.extend(extra.iter().filter_map(|d| d.as_str()).map(PathBuf::from));
            }
        }
    }
    out.extend(
        [
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
        ]
        .map(PathBuf::from),
    );
    out
}

/// The docker CLI's `^[a-z][a-z0-9]*$`.
fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|c| c.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A plugin's metadata, if it answers as one (SchemaVersion 0.x or 1.x,
/// a Vendor).
fn metadata(path: &Path) -> Option<Value> {
    let out = Command::new(path)
        .arg(META_CMD)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let schema = v["SchemaVersion"].as_str()?;
    let parts: Vec<&str> = schema.split('.').collect();
    let major_ok = parts.len() == 3
        && parts.iter().all(|p| p.parse::<u32>().is_ok())
        && parts[0].parse::<u32>().ok()? < 2;
    (major_ok && !v["Vendor"].as_str().unwrap_or_default().is_empty()).then_some(v)
}

/// The first valid `docker-<name>` on the search path.
pub fn find(name: &str) -> Option<PathBuf> {
    if !valid_name(name) {
        return None;
    }
    let exe = format!("docker-{name}");
    for d in dirs() {
        let p = d.join(&exe);
        if p.exists() {
            // As the docker CLI: the first one found decides.
            return metadata(&p).map(|_| p);
        }
    }
    None
}

/// Installed plugins for `berth --help`: (name, description).
pub fn list() -> Vec<(String, String)> {
    let mut seen = std::collections::BTreeMap::new();
    for d in dirs() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            let Some(name) = f.strip_prefix("docker-") else {
                continue;
            };
            if !valid_name(name) || seen.contains_key(name) {
                continue;
            }
            if let Some(m) = metadata(&e.path()) {
                let desc = format!(
                    "{} ({}, {})",
                    m["ShortDescription"].as_str().unwrap_or_default(),
                    m["Vendor"].as_str().unwrap_or_default(),
                    m["Version"].as_str().unwrap_or_default()
                );
                seen.insert(name.to_string(), desc);
            }
        }
    }
    seen.into_iter().collect()
}

/// Text appended to `berth --help`.
pub fn help_text() -> Option<String> {
    let l = list();
    if l.is_empty() {
        return None;
    }
    let w = l.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 1;
    let mut s = String::from("CLI plugins:\n");
    for (n, d) in l {
        s.push_str(&format!("  {:<w$}  {d}\n", format!("{n}*")));
    }
    Some(s)
}

/// Runs the plugin with berth's own arguments and returns its exit status.
/// `host` is set as `DOCKER_HOST` when the default context is in force
/// without one (berth's default socket is not the docker CLI's).
pub fn run(path: &Path, host: Option<&str>) -> anyhow::Result<i32> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let mut cmd = Command::new(path);
    cmd.args(&args)
        .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", argv0);
    if let Some(h) = host {
        cmd.env("DOCKER_HOST", h);
    }
    // Signals arrive at a thread that passes them on: blocked here before
    // any thread starts (threads inherit the mask), unblocked in the child.
    let set = signal_set();
    // SAFETY: `set` is an initialised sigset_t; blocking signals in this
    // thread (and threads it starts) only defers their delivery.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
    let sock_name = format!("docker_cli_{}", random_hex());
    if let Ok(l) = SocketAddr::from_abstract_name(sock_name.as_bytes())
        .and_then(|a| UnixListener::bind_addr(&a))
    {
        cmd.env("DOCKER_CLI_PLUGIN_SOCKET", format!("@{sock_name}"));
        let conns = conns.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                if let Ok(mut v) = conns.lock() {
                    v.push(c);
                }
            }
        });
    }
    // SAFETY: only sigprocmask(2), async-signal-safe, runs between fork
    // and exec: the plugin starts with no signal blocked.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let tty = crate::term::is_tty(1);
    std::thread::spawn(move || {
        let mut count = 0;
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is initialised and `sig` a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            // A terminal's ^C reaches the plugin through the process group.
            if tty && sig == libc::SIGINT {
                continue;
            }
            if let Ok(mut v) = conns.lock() {
                for c in v.drain(..) {
                    let _ = c.shutdown(std::net::Shutdown::Both);
                }
            }
            count += 1;
            let sig = if count >= 3 { libc::SIGKILL } else { sig };
            // SAFETY: kill(2) on our own child's pid, reaped only by `wait`
            // below.
            unsafe { libc::kill(pid, sig) };
        }
    });
    let status = child.wait()?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn plugin_names_are_docker_s() {
        assert!(super::valid_name("compose"));
        assert!(super::valid_name("buildx2"));
        assert!(!super::valid_name("Compose"));
        assert!(!super::valid_name("2x"));
        assert!(!super::valid_name("a-b"));
    }
}
