//! Managed-plugin fixtures: one of the python test plugins in
//! `tests/plugins/` packaged as a plugin directory (`config.json` +
//! `rootfs/`) for `docker plugin create`, run by the host's python bound
//! into its root read-only.

use std::path::{Path, PathBuf};

/// `<parent>/<name>/` for a managed plugin running `tests/plugins/<script>`
/// with `args`, listening on `/run/docker/plugins/<name>.sock`, of the
/// interface `types` (e.g. `docker.logdriver/1.0`). `store` (a host
/// directory) is bound read-write at `/store` for what the plugin records.
pub fn python_plugin_dir(
    parent: &Path,
    name: &str,
    script: &str,
    args: &[&str],
    types: &[&str],
    store: &Path,
) -> PathBuf {
    let dir = parent.join(name);
    let root = dir.join("rootfs");
    for sub in ["plugin", "usr", "etc", "tmp", "store"] {
        std::fs::create_dir_all(root.join(sub)).expect("plugin rootfs");
    }
    std::fs::create_dir_all(store).expect("plugin store");
    for l in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l)).expect("plugin rootfs link");
    }
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("plugins")
            .join(script),
        root.join("plugin").join(script),
    )
    .expect("test plugin script");
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
        .expect("plugin passwd");
    let mut entrypoint = vec!["/usr/bin/python3".to_string(), format!("/plugin/{script}")];
    entrypoint.extend(args.iter().map(|a| a.to_string()));
    let config = serde_json::json!({
        "description": format!("a test plugin ({script})"),
        "documentation": "https://example.invalid/test-plugin",
        "entrypoint": entrypoint,
        "interface": {"socket": format!("{name}.sock"), "types": types},
        "mounts": [
            {"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind", "options": ["rbind", "ro"]},
            {"name": "store", "source": store.display().to_string(), "destination": "/store", "type": "bind", "options": ["rbind", "rw"]}
        ],
        "network": {"type": "host"}
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&config).expect("plugin config"),
    )
    .expect("plugin config.json");
    dir
}
