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
    build_init(&rustc);
    build_protos();
}

/// BuildKit's gRPC services from our own .proto files, compiled by protox
/// (pure Rust), so that neither developers nor CI need protoc.
fn build_protos() {
    const FILES: &[&str] = &[
        "control.proto",
        "worker.proto",
        "gateway.proto",
        "filesync.proto",
        "fsutil.proto",
        "health.proto",
    ];
    for f in FILES {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let fds = match protox::compile(FILES, ["proto"]) {
        Ok(f) => f,
        Err(e) => panic!("compiling the .proto files: {e}"),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)
    {
        panic!("generating the gRPC code: {e}");
    }
}

/// berth-init must run in any image, so it is linked statically; it is
/// built here with its own flags rather than as a workspace binary, whose
/// profile (dynamic glibc, unwinding panics) suits everything else.
fn build_init(rustc: &str) {
    println!("cargo:rerun-if-changed=init/main.rs");
    let out =
        std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("berth-init");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            "berth_init",
            "-O",
            "-C",
            "panic=abort",
        ])
        .args([
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
            "-o",
        ])
        .arg(&out)
        .arg("init/main.rs")
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("building berth-init failed: {other:?}"),
    }
}
