//! berth's own CLI for networks, ports, stats, update, export, diff and
//! commit: scenarios of `networks.rs` and `operations.rs` (there through
//! the docker CLI) through `berth`, compared with the docker CLI's output
//! against the same daemon where that output is deterministic. Traffic
//! goes only to loopback and to the containers the tests create.

use std::io::Read;
use std::process::Output;
use std::time::{Duration, Instant};

use berth_tests::cli::{berth, berth_inspect_format, berth_ok, docker};
use berth_tests::net::curl;
use berth_tests::pty::Pty;
use berth_tests::*;

/// berth and docker give the same stdout, stderr and exit status.
fn same_as_docker(d: &Daemon, args: &[&str]) -> Output {
    let b = berth(d, args);
    let k = docker(d, args);
    assert_eq!(
        (stdout(&b), b.status.code()),
        (stdout(&k), k.status.code()),
        "berth and docker differ on {args:?}; stderr: {} | {}",
        stderr(&b),
        stderr(&k)
    );
    assert_eq!(stderr(&b), stderr(&k), "stderr of {args:?}");
    b
}

#[test]
fn berth_network_create_ls_inspect_connect_disconnect_rm_prune() {
    let d = daemon();
    let id = berth_ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.213.9.0/24",
            "--gateway",
            "10.213.9.1",
            "--label",
            "team=a",
            "--internal",
            "backnet",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    berth_ok(&d, &["network", "create", "frontnet"]);
    // The same name again is a conflict, reported as docker does.
    let o = berth(&d, &["network", "create", "frontnet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("Error response from daemon: "),
        "{}",
        stderr(&o)
    );
    // A gateway outside every subnet is refused before anything is sent.
    let o = berth(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.213.10.0/24",
            "--gateway",
            "10.9.9.1",
            "x1",
        ],
    );
    assert_eq!(stderr(&o).trim(), "no matching subnet for gateway 10.9.9.1");
    // Listing, as docker prints it.
    let ls = same_as_docker(&d, &["network", "ls"]);
    let header: Vec<String> = stdout(&ls)
        .lines()
        .next()
        .unwrap_or("")
        .split("   ")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(header, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    for name in ["backnet", "bridge", "frontnet", "host", "none"] {
        assert!(
            stdout(&ls)
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(name)),
            "{name} missing:\n{}",
            stdout(&ls)
        );
    }
    same_as_docker(&d, &["network", "ls", "-q", "--no-trunc"]);
    same_as_docker(&d, &["network", "ls", "--format", "json"]);
    same_as_docker(
        &d,
        &[
            "network",
            "ls",
            "--filter",
            "label=team=a",
            "--format",
            "{{.Name}} {{.Internal}} {{.Labels}}",
        ],
    );
    let f = berth_ok(&d, &["network", "ls", "-f", "name=backnet", "-q"]);
    assert_eq!(f.trim(), &id[..12]);
    // Inspect prints the daemon's body, as docker; misses exit 1.
    same_as_docker(&d, &["network", "inspect", "backnet", "frontnet"]);
    let o = same_as_docker(&d, &["network", "inspect", "backnet", "nonet"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        berth_ok(
            &d,
            &[
                "network",
                "inspect",
                "-f",
                "{{.Internal}} {{.Labels.team}}",
                "backnet"
            ]
        )
        .trim(),
        "true a"
    );
    // connect with an alias and a fixed address, then disconnect.
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "member",
            "--network",
            "frontnet",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let o = berth(
        &d,
        &[
            "network",
            "connect",
            "--alias",
            "db",
            "--ip",
            "10.213.9.50",
            "backnet",
            "member",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        berth_inspect_format(&d, "member",
            "{{.NetworkSettings.Networks.backnet.IPAddress}} {{json .NetworkSettings.Networks.backnet.Aliases}}"
        ),
        "10.213.9.50 [\"db\"]"
    );
    let ip = berth_ok(
        &d,
        &[
            "exec",
            "member",
            "sh",
            "-c",
            "ip -4 addr | grep 10.213.9.50",
        ],
    );
    assert!(ip.contains("10.213.9.50/24"), "{ip}");
    let members = berth_ok(
        &d,
        &[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
            "backnet",
        ],
    );
    assert_eq!(members.trim(), "member 10.213.9.50/24");
    // A second connect fails as docker's does.
    same_as_docker(&d, &["network", "connect", "backnet", "member"]);
    berth_ok(&d, &["network", "disconnect", "backnet", "member"]);
    assert_eq!(
        berth_inspect_format(
            &d,
            "member",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}"
        ),
        "frontnet"
    );
    let o = same_as_docker(&d, &["network", "disconnect", "backnet", "member"]);
    assert_eq!(o.status.code(), Some(1));
    // rm: several at once; the one in use fails (status 1), the rest go.
    berth_ok(&d, &["network", "create", "spare"]);
    let o = berth(&d, &["network", "rm", "frontnet", "spare", "nonet"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "spare\n");
    let err = stderr(&o);
    assert!(err.contains("has active endpoints"), "{err}");
    assert!(
        err.contains("Error response from daemon: network nonet not found"),
        "{err}"
    );
    // -f: a missing network is not an error.
    let o = berth(&d, &["network", "rm", "-f", "nonet"]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), String::new()));
    // prune removes the unused network only.
    berth_ok(&d, &["network", "create", "unused"]);
    let out = berth_ok(&d, &["network", "prune", "-f"]);
    let mut deleted: Vec<&str> = out.lines().skip(1).filter(|l| !l.is_empty()).collect();
    deleted.sort();
    assert_eq!(out.lines().next(), Some("Deleted Networks:"), "{out}");
    assert_eq!(deleted, ["backnet", "unused"], "{out}");
    assert_eq!(berth_ok(&d, &["network", "prune", "-f"]), "");
    let names = berth_ok(&d, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names, "bridge\nfrontnet\nhost\nnone\n");
    berth_ok(&d, &["rm", "-f", "member"]);
    assert_eq!(berth_ok(&d, &["network", "rm", "frontnet"]), "frontnet\n");
}

#[test]
fn berth_port_lists_the_published_ports() {
    let d = daemon();
    let port = free_port();
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "pub",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "busybox",
            "sh",
            "-c",
            "mkdir -p /www && echo hello-pub > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    );
    assert!(retry(
        || curl(&format!("http://127.0.0.1:{port}/")) == "hello-pub\n"
    ));
    let all = same_as_docker(&d, &["port", "pub"]);
    assert_eq!(stdout(&all), format!("80/tcp -> 127.0.0.1:{port}\n"));
    assert_eq!(
        stdout(&same_as_docker(&d, &["port", "pub", "80/tcp"])),
        format!("127.0.0.1:{port}\n")
    );
    assert_eq!(
        berth_ok(&d, &["container", "port", "pub", "80"]),
        format!("127.0.0.1:{port}\n")
    );
    let o = same_as_docker(&d, &["port", "pub", "81"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "Error: No public port '81' published for pub\n");
    assert_eq!(
        same_as_docker(&d, &["port", "nothere"]).status.code(),
        Some(1)
    );
    // Stopped: nothing published, nothing printed.
    berth_ok(&d, &["stop", "-t", "1", "pub"]);
    assert_eq!(stdout(&same_as_docker(&d, &["port", "pub"])), "");
}

/// The `CPU %` and `MEM USAGE` of `name` in `berth stats --no-stream`.
fn cpu_and_mem(d: &Daemon, name: &str) -> (f64, String) {
    let out = berth_ok(
        d,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}",
        ],
    );
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name}|")))
        .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
    let f: Vec<&str> = line.split('|').collect();
    // `--` when the daemon took over 2s for the sample (docker's timeout).
    let cpu = f[1].trim_end_matches('%').parse().unwrap_or(-1.0);
    (cpu, format!("{} pids={}", f[2], f[3]))
}

#[test]
fn berth_stats_shows_a_busy_containers_cpu_and_memory() {
    let d = daemon();
    berth_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "busy",
            "busybox",
            "sh",
            "-c",
            "x=$(seq 1 20000); while true; do :; done",
        ],
    );
    berth_ok(
        &d,
        &["run", "-d", "--name", "idle", "busybox", "sleep", "300"],
    );
    std::thread::sleep(Duration::from_millis(700));
    // A loaded machine may miss one sample; a few tries.
    let mut seen = (0.0, String::new());
    for _ in 0..3 {
        seen = cpu_and_mem(&d, "busy");
        if seen.0 > 1.0 {
            break;
        }
    }
    assert!(seen.0 > 1.0, "cpu of busy: {seen:?}");
    let mem = &seen.1;
    assert!(!mem.starts_with("0B /") && !mem.starts_with("--"), "{mem}");
    assert!(mem.contains("iB / ") && mem.ends_with("pids=1"), "{mem}");
    // docker's table: the same columns, the same containers in order.
    let b = berth_ok(&d, &["stats", "--no-stream"]);
    let k = d.docker_ok(&["stats", "--no-stream"]);
    let titles = |s: &str| -> Vec<String> {
        s.lines()
            .next()
            .unwrap_or("")
            .split("   ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(titles(&b), titles(&k));
    assert_eq!(
        titles(&b),
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ]
    );
    let ids = |s: &str| -> Vec<String> {
        s.lines()
            .skip(1)
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(ids(&b), ids(&k));
    assert_eq!(ids(&b).len(), 2, "{b}");
    // Named containers; a missing one fails the command as docker's.
    let out = berth_ok(
        &d,
        &[
            "container",
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}}",
            "idle",
        ],
    );
    assert_eq!(out, "idle 1\n");
    let o = same_as_docker(&d, &["stats", "--no-stream", "nothere", "idle"]);
    assert_eq!(o.status.code(), Some(1));
    // -a includes stopped containers.
    berth_ok(&d, &["stop", "-t", "1", "idle"]);
    let out = berth_ok(&d, &["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert_eq!(out, "busy\n");
    let out = berth_ok(&d, &["stats", "-a", "--no-stream", "--format", "{{.Name}}"]);
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(names, ["busy", "idle"]);
    // On a terminal the table is redrawn in place until interrupted.
    let mut cmd = d.berth_cmd();
    cmd.args(["stats", "busy"]);
    let mut p = Pty::spawn(cmd, 24, 120);
    assert!(
        p.expect("CPU %", Duration::from_secs(20)),
        "no table: {}",
        p.text()
    );
    let frames = |p: &Pty| p.text().matches("\x1b[H").count();
    let start = Instant::now();
    while frames(&p) < 3 && start.elapsed() < Duration::from_secs(20) {
        p.expect("\x1b[J", Duration::from_millis(200));
    }
    assert!(frames(&p) >= 3, "not refreshed: {:?}", p.text());
    assert!(p.text().contains("\x1b[K"), "{:?}", p.text());
    assert!(p.child.try_wait().expect("try_wait").is_none(), "exited");
    let _ = p.child.kill();
    let _ = p.child.wait();
}

#[test]
fn berth_update_changes_the_limits() {
    let d = daemon();
    berth_ok(
        &d,
        &[
            "run", "-d", "--name", "lim", "-m", "32m", "busybox", "sleep", "300",
        ],
    );
    let out = berth_ok(
        &d,
        &[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "40",
            "--restart",
            "on-failure:2",
            "lim",
        ],
    );
    assert_eq!(out, "lim\n");
    assert_eq!(
        berth_inspect_format(&d, "lim",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        format!("{} {} 500000000 40 on-failure:2", 64u64 << 20, 128u64 << 20)
    );
    // The limit reached the container's cgroup (v1 or v2).
    let id = berth_inspect_format(&d, "lim", "{{.Id}}");
    let parent = d.cgroup_parent();
    let limit = [
        format!("/sys/fs/cgroup/memory{parent}/{id}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup{parent}/{id}/memory.max"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .unwrap_or_else(|| panic!("no memory cgroup for {id}"));
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    // As docker: no flags, bad sizes, missing containers.
    let o = same_as_docker(&d, &["update", "lim"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "you must provide one or more flags when using this command\n"
    );
    let o = berth(&d, &["update", "-m", "1x", "lim"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o)
            .starts_with("invalid argument \"1x\" for \"-m, --memory\" flag: invalid suffix: 'x'"),
        "{}",
        stderr(&o)
    );
    let o = same_as_docker(&d, &["update", "--cpu-shares", "512", "lim", "nothere"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "lim\n");
    assert_eq!(
        berth_inspect_format(&d, "lim", "{{.HostConfig.CpuShares}}"),
        "512"
    );
}

#[test]
fn berth_export_diff_and_commit_see_the_rw_layer() {
    let d = daemon();
    berth_ok(
        &d,
        &[
            "run",
            "--name",
            "work",
            "busybox",
            "sh",
            "-c",
            "echo made > /newfile; rm /bin/ls; touch /tmp/t",
        ],
    );
    let diff = same_as_docker(&d, &["diff", "work"]);
    let diff = stdout(&diff);
    for want in ["A /newfile", "D /bin/ls", "C /bin", "C /tmp", "A /tmp/t"] {
        assert!(
            diff.lines().any(|l| l == want),
            "{want} missing in:\n{diff}"
        );
    }
    assert!(diff
        .lines()
        .all(|l| ["A ", "C ", "D "].iter().any(|p| l.starts_with(p))));
    assert_eq!(
        same_as_docker(&d, &["diff", "nothere"]).status.code(),
        Some(1)
    );
    // export -o: a tar of the container's file system, mode 0600.
    let dir = scratch();
    let tar_path = dir.path().join("work.tar");
    let tar_s = tar_path.display().to_string();
    assert_eq!(berth_ok(&d, &["export", "-o", &tar_s, "work"]), "");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tar_path)
            .expect("tar")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut ar = tar::Archive::new(std::fs::File::open(&tar_path).expect("open tar"));
    let mut names = Vec::new();
    let mut newfile = String::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let p = e.path().expect("path").display().to_string();
        if p == "newfile" {
            e.read_to_string(&mut newfile).expect("read");
        }
        names.push(p);
    }
    assert_eq!(newfile, "made\n");
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "bin/ls"),
        "deleted file exported"
    );
    // To stdout it is the same archive; a missing container leaves no file.
    let o = berth(&d, &["container", "export", "work"]);
    assert!(o.status.success());
    assert_eq!(
        o.stdout.len() as u64,
        std::fs::metadata(&tar_path).expect("tar").len()
    );
    let missing = dir.path().join("none.tar");
    let o = berth(
        &d,
        &["export", "-o", &missing.display().to_string(), "nothere"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Error response from daemon: No such container: nothere\n"
    );
    assert!(!missing.exists());
    // commit: the new image has the file and the changed CMD.
    let id = berth_ok(
        &d,
        &[
            "commit",
            "-m",
            "added a file",
            "-a",
            "tester",
            "-c",
            "CMD [\"cat\", \"/newfile\"]",
            "work",
            "committed:1",
        ],
    );
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(
        berth_ok(
            &d,
            &[
                "image",
                "inspect",
                "-f",
                "{{.Id}} {{.Author}}",
                "committed:1"
            ]
        )
        .trim(),
        format!("{id} tester")
    );
    assert_eq!(berth_ok(&d, &["run", "--rm", "committed:1"]), "made\n");
    let o = berth(&d, &["run", "--rm", "committed:1", "ls", "/"]);
    assert_eq!(o.status.code(), Some(127), "ls was deleted");
    let hist = berth_ok(&d, &["history", "--format", "{{.Comment}}", "committed:1"]);
    assert_eq!(hist.lines().next(), Some("added a file"));
    // Without a name: a dangling image; a bad name is refused by the client.
    let bare = berth_ok(&d, &["container", "commit", "--pause=false", "work"]);
    assert!(bare.trim().starts_with("sha256:"), "{bare}");
    let o = same_as_docker(&d, &["commit", "work", "Bad:1"]);
    assert_eq!(
        stderr(&o),
        "invalid reference format: repository name (library/Bad) must be lowercase\n"
    );
}
