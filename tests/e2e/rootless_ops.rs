//! Issue 20, "everything else works as with root": a rootless berthd driven
//! by the real docker CLI run as the unprivileged user. Push and pull
//! through a registry in the daemon's namespace, build with RUN, COPY and
//! USER, volumes and their host owners, cp, logs, exec, stats, user-defined
//! networks with the embedded DNS, `--network host` as the daemon's
//! namespace, and nothing of root's reachable (files, capabilities).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_tests::*;

fn start() -> (Daemon, rootless::User) {
    let d = Daemon::start_rootless().expect("rootless berthd starts");
    let img = fixtures::import_busybox(&d, "rl:1");
    assert!(!img.is_empty());
    let u = d.rootless_user().expect("rootless").clone();
    (d, u)
}

/// A directory under the daemon's scratch dir, owned by the user.
fn user_dir(d: &Daemon, u: &rootless::User, name: &str) -> PathBuf {
    let p = d.dir.path().join(name);
    std::fs::create_dir_all(&p).expect("mkdir");
    rootless::chown_tree(&p, u).expect("chown");
    p
}

/// The host owner of `path` inside a running container's root (seen from
/// the host through `/proc/<pid>/root`).
fn host_owner_in(d: &Daemon, name: &str, path: &str) -> u32 {
    let pid = d.inspect_format(name, "{{.State.Pid}}");
    let p = format!("/proc/{}/root{path}", pid.trim());
    std::fs::metadata(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .uid()
}

#[test]
fn push_and_pull_through_a_registry_in_the_daemon_namespace() {
    let (d, _u) = start();
    let dir = d.dir.path().join("reg");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let reg = LocalRegistry::start_in_netns_of(&d, &dir).expect("registry in the daemon's netns");
    let r = format!("127.0.0.1:{}/rl/pushed:1", reg.port);
    d.docker_ok(&["tag", "rl:1", &r]);
    let out = d.docker_ok(&["push", &r]);
    assert!(out.contains("digest: sha256:"), "{out}");
    // Nothing of the image is left locally, so the pull really fetches.
    d.docker_ok(&["rmi", &r, "rl:1"]);
    assert!(d.docker_ok(&["images", "-q"]).trim().is_empty());
    let out = d.docker_ok(&["pull", &r]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", &r, "echo", "pulled-runs"])
            .trim(),
        "pulled-runs"
    );
}

const DOCKERFILE: &str = "FROM rl:1
RUN mkdir -p /data && echo made > /data/f && chown 1000:1000 /data/f && mkdir -m 1777 -p /scratch
COPY a.txt /a.txt
COPY --chown=1000:1000 a.txt /b.txt
USER 1000
RUN id -u > /scratch/who
CMD [\"sleep\", \"300\"]
";

fn build_context(d: &Daemon, u: &rootless::User) -> PathBuf {
    let ctx = user_dir(d, u, "ctx");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    std::fs::write(ctx.join("a.txt"), "copied\n").expect("a.txt");
    rootless::chown_tree(&ctx, u).expect("chown");
    ctx
}

/// The built image's owners inside and, for a running container, on the
/// host: root is the user, 1000 is subuid start + 999.
fn check_built(d: &Daemon, u: &rootless::User, img: &str, name: &str) {
    let out = d.docker_ok(&[
        "run",
        "--rm",
        img,
        "sh",
        "-c",
        "stat -c '%n %u' /data/f /a.txt /b.txt; id -u; cat /scratch/who /a.txt",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "/data/f 1000",
            "/a.txt 0",
            "/b.txt 1000",
            "1000",
            "1000",
            "copied"
        ],
        "{out}"
    );
    d.docker_ok(&["run", "-d", "--name", name, img]);
    let pid = d.inspect_format(name, "{{.State.Pid}}");
    assert_eq!(
        rootless::host_uid(&pid),
        u.subuid + 999,
        "USER 1000 on the host"
    );
    assert_eq!(host_owner_in(d, name, "/data/f"), u.subuid + 999);
    assert_eq!(host_owner_in(d, name, "/b.txt"), u.subuid + 999);
    assert_eq!(host_owner_in(d, name, "/a.txt"), u.uid);
    d.docker_ok(&["rm", "-f", name]);
}

#[test]
fn classic_build_with_run_copy_user_and_chown() {
    let (d, u) = start();
    let ctx = build_context(&d, &u);
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "rl-built:1"])
        .arg(&ctx)
        .output()
        .expect("docker build");
    assert!(
        o.status.success(),
        "build: {}{}\n{}",
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 30)
    );
    check_built(&d, &u, "rl-built:1", "b1");
}

/// BuildKit through the docker CLI's only BuildKit client here: Compose v2
/// (its built-in buildx, docker driver; the buildx plugin is absent).
#[test]
fn buildkit_build_through_compose() {
    let (d, u) = start();
    let ctx = build_context(&d, &u);
    std::fs::write(
        ctx.join("compose.yaml"),
        "services:\n  app:\n    build: .\n    image: rl-bk:1\n",
    )
    .expect("compose.yaml");
    rootless::chown_tree(&ctx, &u).expect("chown");
    let mut c = d.docker_cmd();
    c.current_dir(&ctx)
        .args(["compose", "-p", "rlbk", "build"])
        .env("COMPOSE_ANSI", "never")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let o = finish(c.spawn().expect("docker compose"), Duration::from_secs(180));
    assert!(
        o.status.success(),
        "compose build: {}{}\n{}",
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 30)
    );
    check_built(&d, &u, "rl-bk:1", "b2");
}

#[test]
fn volumes_cp_logs_exec_and_stats() {
    let (d, u) = start();
    // A named volume written by container root and by uid 1000.
    d.docker_ok(&["volume", "create", "rv"]);
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "rv:/v",
        "rl:1",
        "sh",
        "-c",
        "echo r > /v/root-file && mkdir /v/u && chown 1000 /v/u",
    ]);
    d.docker_ok(&[
        "run",
        "--rm",
        "--user",
        "1000",
        "-v",
        "rv:/v",
        "rl:1",
        "sh",
        "-c",
        "echo u > /v/u/user-file",
    ]);
    let mp = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "rv"]);
    let mp = Path::new(mp.trim());
    let owner = |p: &str| std::fs::metadata(mp.join(p)).expect(p).uid();
    assert_eq!(
        owner("root-file"),
        u.uid,
        "container root writes as the user"
    );
    assert_eq!(owner("u/user-file"), u.subuid + 999, "uid 1000 on the host");

    // cp in and out.
    d.docker_ok(&["run", "-d", "--name", "cc", "rl:1", "sleep", "300"]);
    let io = user_dir(&d, &u, "io");
    std::fs::write(io.join("in.txt"), "into-container\n").expect("in.txt");
    rootless::chown_tree(&io, &u).expect("chown");
    d.docker_ok(&["cp", &io.join("in.txt").display().to_string(), "cc:/in.txt"]);
    assert_eq!(
        d.docker_ok(&["exec", "cc", "cat", "/in.txt"]),
        "into-container\n"
    );
    d.docker_ok(&["exec", "cc", "sh", "-c", "echo out-of-container > /out.txt"]);
    d.docker_ok(&["cp", "cc:/out.txt", &io.display().to_string()]);
    let out = io.join("out.txt");
    assert_eq!(
        std::fs::read_to_string(&out).expect("copied out"),
        "out-of-container\n"
    );
    assert_eq!(std::fs::metadata(&out).expect("out").uid(), u.uid);

    // exec with a non-zero exit code.
    let o = d.docker(&["exec", "cc", "sh", "-c", "echo to-err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim(), "to-err");

    // logs, and logs -f ending when the container exits.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "rl:1",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 2; echo three",
    ]);
    let mut f = d.docker_cmd();
    f.args(["logs", "-f", "lg"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let o = finish(f.spawn().expect("docker logs -f"), Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "one\nthree\n");
    assert_eq!(stderr(&o), "two\n");
    assert_eq!(d.inspect_format("lg", "{{.State.Running}}").trim(), "false");

    // stats answers once (what the kernel allows without cgroups).
    let mut s = d.docker_cmd();
    s.args([
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}} {{.CPUPerc}} {{.NetIO}}",
        "cc",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let o = finish(s.spawn().expect("docker stats"), Duration::from_secs(60));
    assert!(o.status.success(), "stats: {}", stderr(&o));
    assert!(stdout(&o).starts_with("cc "), "{}", stdout(&o));
    eprintln!("rootless stats: {}", stdout(&o).trim());
    // The daemon is still there.
    d.docker_ok(&["rm", "-f", "cc", "lg"]);
    d.docker_ok(&["volume", "rm", "rv"]);
}

#[test]
fn user_network_names_resolve_and_bridge_gets_a_usable_resolver() {
    let (d, _u) = start();
    d.docker_ok(&["network", "create", "rln"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "alpha",
        "--network",
        "rln",
        "rl:1",
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "beta",
        "--network",
        "rln",
        "rl:1",
        "sleep",
        "300",
    ]);
    let alpha_ip = d.inspect_format("alpha", "{{.NetworkSettings.Networks.rln.IPAddress}}");
    let alpha_ip = alpha_ip.trim();
    assert!(!alpha_ip.is_empty());
    assert_eq!(
        d.docker_ok(&["exec", "beta", "cat", "/etc/resolv.conf"])
            .lines()
            .next(),
        Some("nameserver 127.0.0.11")
    );
    let out = d.docker_ok(&["exec", "beta", "nslookup", "alpha"]);
    assert!(out.contains(alpha_ip), "beta resolves alpha: {out}");
    d.docker_ok(&["exec", "beta", "ping", "-c1", "-W5", "alpha"]);
    d.docker_ok(&["exec", "alpha", "ping", "-c1", "-W5", "beta"]);
    // The default bridge: no embedded DNS; a resolver reachable from the
    // daemon's namespace (never a loopback one, slirp's 10.0.2.3 when the
    // host has only those).
    let rc = d.docker_ok(&["run", "--rm", "rl:1", "cat", "/etc/resolv.conf"]);
    let servers: Vec<&str> = rc
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    let loopback = |s: &str| s.starts_with("127.") || s == "::1";
    assert!(!servers.is_empty(), "{rc}");
    assert!(servers.iter().all(|s| !loopback(s)), "{rc}");
    let host_rc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_servers: Vec<&str> = host_rc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver "))
        .map(str::trim)
        .collect();
    if host_servers.iter().all(|s| loopback(s)) {
        // Only loopback resolvers on the host: slirp's forwarder, for the
        // bridge and for `--network host` alike.
        assert_eq!(servers, ["10.0.2.3"], "{rc}");
        let rc = d.docker_ok(&[
            "run",
            "--rm",
            "--network",
            "host",
            "rl:1",
            "cat",
            "/etc/resolv.conf",
        ]);
        assert!(rc.contains("nameserver 10.0.2.3\n"), "{rc}");
    }
    // Names outside resolve (the embedded DNS's upstream, and the default
    // bridge directly, both through slirp) whenever the host resolves them.
    let name = "deb.debian.org";
    let host_resolves = std::process::Command::new("getent")
        .args(["hosts", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if host_resolves {
        for net in ["rln", "bridge"] {
            let o = d.docker(&["run", "--rm", "--network", net, "rl:1", "nslookup", name]);
            assert!(o.status.success(), "{net}: {}{}", stdout(&o), stderr(&o));
        }
    } else {
        eprintln!("the host does not resolve {name}: outside names not checked");
    }
    d.docker_ok(&["rm", "-f", "alpha", "beta"]);
    d.docker_ok(&["network", "rm", "rln"]);
}

#[test]
fn commit_diff_export_and_cp_of_a_stopped_container() {
    let (d, u) = start();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cm",
        "rl:1",
        "sh",
        "-c",
        "echo kept > /kept.txt && exec sleep 300",
    ]);
    assert!(wait_for_polling(
        Duration::from_millis(100),
        Duration::from_secs(10),
        || d.docker(&["exec", "cm", "test", "-f", "/kept.txt"])
            .status
            .success()
    ));
    // A running container: diff and commit.
    let diff = d.docker_ok(&["diff", "cm"]);
    assert!(diff.lines().any(|l| l == "A /kept.txt"), "{diff}");
    // Without cgroups nothing can freeze it (rootless Docker on cgroup v1
    // fails a pausing commit too): `--pause=false`.
    d.docker_ok(&["commit", "--pause=false", "cm", "rl-committed:1"]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "rl-committed:1", "cat", "/kept.txt"]),
        "kept\n"
    );
    // A stopped one: cp out and export.
    d.docker_ok(&["stop", "-t", "1", "cm"]);
    let io = user_dir(&d, &u, "io");
    d.docker_ok(&["cp", "cm:/kept.txt", &io.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(io.join("kept.txt")).expect("copied"),
        "kept\n"
    );
    let tar = io.join("export.tar");
    d.docker_ok(&["export", "-o", &tar.display().to_string(), "cm"]);
    let list = std::process::Command::new("tar")
        .arg("tf")
        .arg(&tar)
        .output()
        .expect("tar");
    assert!(
        stdout(&list).lines().any(|l| l == "kept.txt"),
        "{}",
        stdout(&list)
    );
    d.docker_ok(&["rm", "cm"]);
}

/// Names of the links the host sees.
fn host_links() -> Vec<String> {
    let o = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    link_names(&stdout(&o))
}

fn link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

#[test]
fn host_network_is_the_daemon_namespace() {
    let (d, _u) = start();
    let inside = link_names(&d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "rl:1",
        "ip",
        "-o",
        "link",
        "show",
    ]));
    assert!(
        inside.iter().any(|n| n == "tap0"),
        "slirp's tap0: {inside:?}"
    );
    let addr = d.docker_ok(&["run", "--rm", "--network", "host", "rl:1", "ip", "addr"]);
    assert!(addr.contains("inet 10.0.2.100/"), "slirp's address: {addr}");
    let host = host_links();
    assert!(!host.iter().any(|n| n == "tap0"), "{host:?}");
    // The host's own interfaces (all but lo) are not there.
    for n in host.iter().filter(|n| *n != "lo") {
        assert!(!inside.contains(n), "host link {n} seen inside: {inside:?}");
    }

    // A link made by a privileged host-network container stays in the
    // daemon's namespace.
    let name = format!("rld{}", &random_hex()[..8]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hn",
        "--privileged",
        "--network",
        "host",
        "rl:1",
        "sleep",
        "300",
    ]);
    let add = format!("ip link add {name} type dummy || ip link add {name} type bridge");
    d.docker_ok(&["exec", "hn", "sh", "-c", &add]);
    d.docker_ok(&["exec", "hn", "ip", "link", "show", &name]);
    let on_host = std::process::Command::new("ip")
        .args(["link", "show", &name])
        .output()
        .expect("ip link show");
    if on_host.status.success() {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &name])
            .status();
        panic!("{name} appeared on the host");
    }
    d.docker_ok(&["exec", "hn", "ip", "link", "del", &name]);
    d.docker_ok(&["rm", "-f", "hn"]);
}

/// A root-owned 0600 file, removed on drop.
struct Secret(PathBuf, String);

impl Secret {
    fn new(path: PathBuf) -> Secret {
        let text = format!("top-secret-{}", random_hex());
        std::fs::write(&path, &text).expect("secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown");
        Secret(path, text)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Docker's default capability set (CapEff without --privileged).
const DEFAULT_CAPS: &str = "00000000a80425fb";

fn cap(text: &str, which: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{which}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {which} in {text}"))
}

#[test]
fn nothing_of_root_is_reachable_even_privileged() {
    let (d, u) = start();
    // /root's own file: the daemon cannot even reach it.
    let s1 = Secret::new(PathBuf::from(format!(
        "/root/berth-rl-secret-{}",
        &random_hex()[..8]
    )));
    // One in a directory the user can traverse: the bind is made, the
    // read is refused.
    let open = user_dir(&d, &u, "open");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let s2 = Secret::new(open.join("secret"));
    for s in [&s1, &s2] {
        let v = format!("{}:/s", s.0.display());
        for extra in [&[][..], &["--privileged"][..]] {
            let mut args = vec!["run", "--rm"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-v", &v, "rl:1", "cat", "/s"]);
            let o = d.docker(&args);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(!o.status.success(), "{args:?} read it: {all}");
            assert!(!all.contains(&s.1), "{args:?} leaked: {all}");
        }
    }
    // The bind of the traversable one is made; the read is what fails.
    let o = d.docker(&[
        "run",
        "--rm",
        "--privileged",
        "-v",
        &format!("{}:/s", s2.0.display()),
        "rl:1",
        "cat",
        "/s",
    ]);
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));

    // Capabilities: Docker's defaults, all with --privileged, in the
    // user's namespace only.
    let st = d.docker_ok(&["run", "--rm", "rl:1", "grep", "Cap", "/proc/self/status"]);
    assert_eq!(cap(&st, "CapEff"), DEFAULT_CAPS, "{st}");
    assert_eq!(cap(&st, "CapBnd"), DEFAULT_CAPS, "{st}");
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .expect("cap_last_cap")
        .trim()
        .parse()
        .expect("number");
    let all = format!("{:016x}", (1u64 << (last + 1)) - 1);
    let st = d.docker_ok(&[
        "run",
        "--rm",
        "--privileged",
        "rl:1",
        "grep",
        "Cap",
        "/proc/self/status",
    ]);
    assert_eq!(cap(&st, "CapEff"), all, "{st}");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "priv",
        "--privileged",
        "rl:1",
        "sleep",
        "300",
    ]);
    let pid = d.inspect_format("priv", "{{.State.Pid}}");
    assert_eq!(
        rootless::host_uid(&pid),
        u.uid,
        "a privileged container is the user"
    );
    // Host-wide powers are not there: no device nodes, no global sysctls.
    let o = d.docker(&["exec", "priv", "mknod", "/tmp/sda", "b", "8", "0"]);
    assert!(!o.status.success(), "mknod in a user namespace");
    let o = d.docker(&[
        "exec",
        "priv",
        "sh",
        "-c",
        "echo 1 > /proc/sys/vm/drop_caches",
    ]);
    assert!(!o.status.success(), "a global sysctl");
    d.docker_ok(&["rm", "-f", "priv"]);
}

/// The PIDs `ps` lists in a container.
fn ps_pids(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn pid_host_binds_the_daemons_proc_with_the_masked_paths_masked() {
    let (d, _u) = start();
    let berthd = d.pid().expect("berthd pid");
    let out = d.docker_ok(&[
        "run", "--rm", "--pid", "host", "rl:1", "ps", "-o", "pid,comm",
    ]);
    assert!(
        ps_pids(&out).contains(&berthd),
        "--pid host sees berthd ({berthd}): {out}"
    );
    // Masked paths stay masked on the bound /proc: /dev/null over files,
    // an empty read-only tmpfs over directories.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "rl:1",
        "sh",
        "-c",
        "for f in timer_list interrupts; do cat /proc/$f | wc -c; done; grep -c . /proc/uptime; \
         mount | grep -c ' /proc/\\(acpi\\|interrupts\\|keys\\|timer_list\\) '",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    // Masked (the host's timer_list and interrupts are not empty), the
    // rest of the host's proc readable, the masks are mounts.
    assert_eq!(lines, ["0", "0", "1", "4"], "{out}");
    assert!(std::fs::read_to_string("/proc/interrupts").is_ok_and(|s| !s.is_empty()));
    // The container's own PID namespace still gets a proc of its own.
    let out = d.docker_ok(&["run", "--rm", "rl:1", "ps", "-o", "pid,comm"]);
    assert!(!ps_pids(&out).contains(&berthd), "{out}");
    // --pid container:<other> joins the other's namespace (the user
    // namespace owns it, so proc is mounted as usual).
    d.docker_ok(&["run", "-d", "--name", "p1", "rl:1", "sleep", "300"]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--pid",
        "container:p1",
        "rl:1",
        "ps",
        "-o",
        "pid,args",
    ]);
    assert!(out.contains("sleep 300"), "{out}");
    assert!(!ps_pids(&out).contains(&berthd), "{out}");
    assert!(ps_pids(&out).contains(&1), "{out}");
    // A container joining one that shares the host's namespace binds too.
    d.docker_ok(&[
        "run", "-d", "--name", "ph", "--pid", "host", "rl:1", "sleep", "300",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--pid",
        "container:ph",
        "rl:1",
        "ps",
        "-o",
        "pid,comm",
    ]);
    assert!(ps_pids(&out).contains(&berthd), "{out}");
    d.docker_ok(&["rm", "-f", "p1", "ph"]);
}

/// A UDP listener on `0.0.0.0:port` in the network namespace of `pid`,
/// recording the datagrams it gets, for as long as the guard lives: a thread
/// of the test joins that namespace (the busybox-static of the fixtures has
/// no UDP listener: its `nc` has no `-u`, and there is no `udpsvd`).
struct UdpSink {
    got: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpSink {
    fn start_in_netns_of(pid: &str, port: u16) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", pid.trim())).expect("netns");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = got.clone();
        let thread = std::thread::spawn(move || {
            // The network namespace is per thread: only this one moves.
            let sock = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
                .and_then(|()| std::net::UdpSocket::bind(("0.0.0.0", port)));
            let sock = match sock {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                if let Ok(n) = sock.recv(&mut buf) {
                    if let Ok(mut g) = seen.lock() {
                        g.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("listener thread answers")
            .expect("UDP listener bound in the container's namespace");
        Self {
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn has(&self, msg: &str) -> bool {
        self.got.lock().is_ok_and(|g| g.iter().any(|m| m == msg))
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One datagram from the host to 127.0.0.1:`port`.
fn udp_send(port: u16, msg: &str) {
    if let Ok(s) = std::net::UdpSocket::bind("127.0.0.1:0") {
        let _ = s.send_to(msg.as_bytes(), ("127.0.0.1", port));
    }
}

/// Whether the host's 127.0.0.1:`port`/udp is free.
fn udp_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn udp_published_ports_go_through_slirp4netns() {
    let (mut d, _u) = start();
    let port = free_port();
    assert!(udp_free(port));
    let spec = format!("127.0.0.1:{port}:5353/udp");
    d.docker_ok(&[
        "run", "-d", "--name", "udp1", "-p", &spec, "rl:1", "sleep", "300",
    ]);
    let pid = d.inspect_format("udp1", "{{.State.Pid}}");
    let sink = UdpSink::start_in_netns_of(&pid, 5353);
    // Datagrams are not acknowledged: sent again until one arrives.
    let reached = |msg: &str| {
        wait_for_polling(Duration::from_millis(200), Duration::from_secs(10), || {
            udp_send(port, msg);
            sink.has(msg)
        })
    };
    assert!(reached("one"), "127.0.0.1:{port}/udp reaches the container");
    assert!(!udp_free(port), "slirp4netns holds the host's port");
    assert_eq!(
        d.docker_ok(&["port", "udp1", "5353/udp"]).trim(),
        format!("127.0.0.1:{port}")
    );
    // Published again by a daemon killed and started again.
    d.kill9();
    d.restart().expect("restart");
    assert!(reached("two"), "after a restart");
    // Removed with the container.
    d.docker_ok(&["rm", "-f", "udp1"]);
    assert!(
        wait_for(Duration::from_secs(5), || udp_free(port)),
        "port {port}/udp is released on the host"
    );
}

#[test]
fn ipv6_host_addresses_are_refused_and_unspecified_means_ipv4() {
    let (d, _u) = start();
    let port = free_port();
    for spec in [format!("[::1]:{port}:80"), format!("[::]:{port}:80/udp")] {
        let o = d.docker(&[
            "run", "-d", "--name", "v6", "-p", &spec, "rl:1", "sleep", "30",
        ]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{spec}: {err}");
        assert!(
            err.contains("cannot expose [")
                && err.contains(&format!(
                    "]:{port} in rootless mode: slirp4netns forwards only IPv4 host addresses"
                )),
            "{spec}: {err}"
        );
        // Nothing half-done: the container did not start, no forward made.
        assert_eq!(d.inspect_format("v6", "{{.State.Running}}").trim(), "false");
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        d.docker_ok(&["rm", "-f", "v6"]);
    }
    // No host address: IPv4's 0.0.0.0, reachable on the host's loopback.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "any",
        "-p",
        &format!("{port}:80"),
        "rl:1",
        "sh",
        "-c",
        "mkdir -p /w && echo any > /w/i && httpd -f -p 80 -h /w",
    ]);
    assert_eq!(
        d.docker_ok(&["port", "any", "80"]).trim(),
        format!("0.0.0.0:{port}")
    );
    let got = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        )
        .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.write_all(b"GET /i HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())
    };
    assert!(
        wait_for_polling(Duration::from_millis(100), Duration::from_secs(10), || {
            got().as_deref() == Some("any")
        }),
        "{:?}",
        got()
    );
    d.docker_ok(&["rm", "-f", "any"]);
}
