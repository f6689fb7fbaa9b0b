//! The berth CLI's volume, cp and run mount commands.

use super::*;

#[test]
fn the_berth_cli_manages_volumes_and_copies() {
    let d = daemon();
    let ok = |args: &[&str]| -> String {
        let o = d.berth(args);
        assert!(o.status.success(), "berth {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(ok(&["volume", "create", "--label", "k=v", "bv1"]), "bv1\n");
    ok(&["volume", "create", "bv2"]);
    let ls = ok(&["volume", "ls"]);
    assert_eq!(
        ls.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["DRIVER", "VOLUME", "NAME"]
    );
    assert_eq!(ok(&["volume", "ls", "-q", "-f", "label=k=v"]), "bv1\n");
    assert_eq!(
        ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}}",
            "bv1"
        ]),
        "bv1 local local\n"
    );
    let o = d.berth(&["volume", "inspect", "nope"]);
    assert!(!o.status.success());
    // Used by a container: refused, as docker.
    d.docker_ok(&[
        "run", "-d", "--name", "box", "-v", "bv1:/v", "busybox", "sleep", "600",
    ]);
    let o = d.berth(&["volume", "rm", "bv1"]);
    assert!(stderr(&o).contains("volume is in use"), "{}", stderr(&o));
    // cp both ways.
    let dir = scratch();
    let src = dir.path().join("in");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), "A\n").unwrap();
    std::os::unix::fs::symlink("a", src.join("l")).unwrap();
    ok(&["cp", &src.display().to_string(), "box:/v/"]);
    assert_eq!(d.docker_ok(&["exec", "box", "cat", "/v/in/l"]), "A\n");
    ok(&["cp", &src.display().to_string(), "box:/tmp/renamed"]);
    assert_eq!(
        d.docker_ok(&["exec", "box", "cat", "/tmp/renamed/a"]),
        "A\n"
    );
    let back = dir.path().join("back");
    ok(&["cp", "box:/v/in", &back.display().to_string()]);
    assert_eq!(std::fs::read_to_string(back.join("a")).unwrap(), "A\n");
    assert_eq!(std::fs::read_link(back.join("l")).unwrap(), Path::new("a"));
    let o = d.berth(&["cp", "box:/v/in/a", "-"]);
    let mut ar = tar::Archive::new(o.stdout.as_slice());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["a"]);
    // -L takes the link's target under the link's name.
    ok(&[
        "cp",
        "-L",
        "box:/v/in/l",
        &dir.path().join("deref").display().to_string(),
    ]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("deref")).unwrap(),
        "A\n"
    );
    assert!(!std::fs::symlink_metadata(dir.path().join("deref"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A tar on stdin.
    let tarball = fixtures::layer_tar(&[fixtures::Entry::File("fromstdin", b"S\n")]);
    let mut c = d
        .berth_cmd()
        .args(["cp", "-", "box:/tmp"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(&tarball).unwrap();
    assert!(c.wait().unwrap().success());
    assert_eq!(
        d.docker_ok(&["exec", "box", "cat", "/tmp/fromstdin"]),
        "S\n"
    );
    d.docker_ok(&["rm", "-f", "box"]);
    let out = ok(&["volume", "rm", "bv1"]);
    assert_eq!(out, "bv1\n");
    let out = ok(&["volume", "prune", "-a", "-f"]);
    assert!(out.contains("Deleted Volumes:\nbv2\n"), "{out}");
    assert_eq!(ok(&["volume", "ls", "-q"]), "");
}

/// `berth run` takes docker's storage flags: a named volume, a bind with
/// `--mount`, and a sized tmpfs.
#[test]
fn berth_run_mounts_volumes_binds_and_tmpfs() {
    let d = daemon();
    let host = scratch();
    std::fs::write(host.path().join("in.txt"), "from the host\n").unwrap();
    let mount = format!("type=bind,src={},dst=/h,readonly", host.path().display());
    let o = d.berth(&[
        "run",
        "--rm",
        "-v",
        "bdata:/data",
        "--mount",
        &mount,
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f && cat /h/in.txt && (touch /h/x 2>/dev/null || echo ro) \
         && df -k /scratch | tail -1 | awk '{print $2}'",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from the host\nro\n1024\n");
    let o = d.berth(&[
        "run",
        "--rm",
        "-v",
        "bdata:/data",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(stdout(&o), "kept\n", "{}", stderr(&o));
    assert!(!host.path().join("x").exists());
}
