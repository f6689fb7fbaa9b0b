//! Issue 6: volumes and mounts, and `docker cp`, through the real docker
//! CLI (and raw API calls where the CLI cannot make the request).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::fixtures::{self};
use berth_tests::*;
use serde_json::Value;

mod berth_cli;
mod copy;
mod lifecycle;
mod mounts;

fn volume_names(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn mountpoint(d: &Daemon, vol: &str) -> PathBuf {
    PathBuf::from(
        d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", vol])
            .trim(),
    )
}

/// busybox plus a layer with `/data` (owned 1000:1000, mode 0750) holding
/// `hello` and a symlink, and `VOLUME /data` in the config.
fn load_image_with_data(d: &Daemon, tag: &str) {
    let base = std::fs::read(fixtures::busybox_rootfs_tar()).expect("busybox tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    b.append_data(&mut h, "data/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o640);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h.set_size(6);
    b.append_data(&mut h, "data/hello", &b"image\n"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "data/link", "hello").unwrap();
    let layer = b.into_inner().unwrap();
    let (tar, _) = fixtures::docker_archive(
        &[base, layer],
        &[tag],
        serde_json::json!({"config": {"Cmd": ["sh"], "Volumes": {"/data": {}}}}),
    );
    let dir = scratch();
    let f = fixtures::write_file(dir.path(), "img.tar", &tar);
    d.docker_ok(&["load", "-i", &f.display().to_string()]);
}
