//! Records the compiler and git commit for `/version`.
use std::process::Command;

fn out(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rv = out(&rustc, &["--version"]).unwrap_or_else(|| "rustc".into());
    let rv = rv.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    println!("cargo:rustc-env=BERTH_RUSTC_VERSION={rv}");
    let commit =
        out("git", &["rev-parse", "--short=7", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
}
