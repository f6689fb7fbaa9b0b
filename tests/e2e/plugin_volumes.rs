//! Issue 19, volume plugins: a real third-party plugin (Debian's `rclone
//! serve docker`) and a test plugin (`tests/plugins/volplugin.py`, which
//! records every call it gets) as legacy plugins on sockets in the
//! daemon's plugins directory, driven by the real docker CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::fixtures;
use berth_tests::*;
use serde_json::Value;

/// A plugin process of the test's, killed (and waited for) on drop.
struct Proc {
    child: Option<Child>,
    sock: PathBuf,
    /// Where FUSE mounts of it may be left (unmounted on drop).
    mounts_under: Option<PathBuf>,
}

impl Proc {
    fn wait_socket(self) -> Self {
        assert!(
            wait_for(Duration::from_secs(10), || self.sock.exists()),
            "plugin socket {} never appeared",
            self.sock.display()
        );
        self
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// SIGTERM, then SIGKILL after 10 s; whether it exited.
    fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if let Some(dir) = &self.mounts_under {
            for p in mounts_under(dir) {
                let c = std::ffi::CString::new(p).unwrap_or_default();
                // SAFETY: umount2 on a NUL-terminated path we own.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Mount points under `dir` (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<String> {
    let root = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| p.starts_with(&root))
        .collect()
}

fn plugins_dir(d: &Daemon) -> PathBuf {
    let dir = d.exec_root.join("plugins");
    std::fs::create_dir_all(&dir).expect("plugins dir");
    dir
}

/// The test plugin `name` in `mode` (`ok`, `garbage`, `hang`), its state
/// in `state`.
fn test_plugin(d: &Daemon, name: &str, mode: &str, state: &Path) -> Proc {
    std::fs::create_dir_all(state).expect("plugin state dir");
    let sock = plugins_dir(d).join(format!("{name}.sock"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/volplugin.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(&sock)
        .arg(state)
        .arg(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    Proc {
        child: Some(child),
        sock,
        mounts_under: None,
    }
    .wait_socket()
}

/// What the test plugin was asked: (method, body), in order.
fn calls(state: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(state.join("calls"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["method"].as_str().unwrap_or("").to_string(),
                v["body"].clone(),
            )
        })
        .collect()
}

/// How many `method` calls carried `Name` = `vol` (and `ID` = `id`, if given).
fn count(state: &Path, method: &str, vol: &str, id: Option<&str>) -> usize {
    calls(state)
        .iter()
        .filter(|(m, b)| {
            m == method && b["Name"] == vol && id.is_none_or(|id| b["ID"].as_str() == Some(id))
        })
        .count()
}

fn inspect_volume(d: &Daemon, name: &str) -> Value {
    let out = d.docker_ok(&["volume", "inspect", name]);
    let v: Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

fn volume_lines(d: &Daemon) -> Vec<String> {
    d.docker_ok(&[
        "volume",
        "ls",
        "--format",
        "{{.Driver}} {{.Name}} {{.Scope}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// Runs docker with a deadline; (output, how long it took).
fn timed(d: &Daemon, args: &[&str], limit: Duration) -> (std::process::Output, Duration) {
    let start = Instant::now();
    let child = d
        .docker_cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker runs");
    let o = finish(child, limit);
    (o, start.elapsed())
}

fn container_id(d: &Daemon, name: &str) -> String {
    d.docker_ok(&["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn rclone_serves_a_volume_to_containers_across_a_daemon_restart() {
    let mut d = daemon();
    let s = scratch();
    let (base, data) = (s.path().join("base"), s.path().join("remote"));
    for dir in [&base, &data, &s.path().join("cache")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(s.path().join("rclone.conf"), "").unwrap();
    let sock = plugins_dir(&d).join("rclone.sock");
    let child = Command::new("rclone")
        .arg("serve")
        .arg("docker")
        .arg("--socket-addr")
        .arg(&sock)
        .arg("--base-dir")
        .arg(&base)
        .arg("--config")
        .arg(s.path().join("rclone.conf"))
        .arg("--cache-dir")
        .arg(s.path().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rclone is installed (Debian's rclone)");
    let mut rclone = Proc {
        child: Some(child),
        sock,
        mounts_under: Some(s.path().to_path_buf()),
    }
    .wait_socket();

    let path_opt = format!("path={}", data.display());
    let out = d.docker_ok(&[
        "volume",
        "create",
        "-d",
        "rclone",
        "-o",
        "type=local",
        "-o",
        &path_opt,
        "rvol",
    ]);
    assert_eq!(out.trim(), "rvol");
    assert!(
        volume_lines(&d).contains(&"rclone rvol local".to_string()),
        "{:?}",
        volume_lines(&d)
    );
    let v = inspect_volume(&d, "rvol");
    assert_eq!(v["Driver"], "rclone");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Mountpoint"], base.join("rvol").display().to_string());
    assert!(v["Status"].get("Mounts").is_some(), "Status from Get: {v}");
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(info.trim(), r#"["local","rclone"]"#);

    // Two containers, one through -v, one through --mount with the driver.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "rvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f",
    ]);
    // Written through rclone to its remote.
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "hello\n");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=rvol,dst=/d,volume-driver=rclone",
        "busybox",
        "cat",
        "/d/f",
    ]);
    assert_eq!(out, "hello\n");
    // Each stop sent Unmount: rclone unmounted its FUSE mount.
    assert!(
        wait_for(Duration::from_secs(10), || mounts_under(&base).is_empty()),
        "still mounted: {:?}",
        mounts_under(&base)
    );

    // A daemon restart: the record and the plugin are found again.
    d.restart().expect("berthd restarts");
    assert!(volume_lines(&d).contains(&"rclone rvol local".to_string()));
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "rvol:/data",
        "busybox",
        "sh",
        "-c",
        "cat /data/f && echo again > /data/g",
    ]);
    assert_eq!(out, "hello\n");
    assert_eq!(std::fs::read_to_string(data.join("g")).unwrap(), "again\n");
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(info.trim(), r#"["local","rclone"]"#);

    d.docker_ok(&["volume", "rm", "rvol"]);
    assert!(!volume_lines(&d).iter().any(|l| l.contains("rvol")));
    let o = d.docker(&["volume", "inspect", "rvol"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no such volume"), "{}", stderr(&o));
    // rclone's remote keeps the data (its `Remove` forgets the volume).
    assert!(data.join("f").exists());

    assert!(rclone.stop(), "rclone stops on SIGTERM");
    assert!(
        mounts_under(s.path()).is_empty(),
        "{:?}",
        mounts_under(s.path())
    );
    // The daemon still answers with the plugin gone.
    d.docker_ok(&["ps"]);
}

#[test]
fn a_plugin_volume_is_created_mounted_per_container_and_listed() {
    let d = daemon();
    let s = scratch();
    let state = s.path().join("tp");
    let _tp = test_plugin(&d, "tp", "ok", &state);

    // --volume-driver makes the -v volume through the plugin.
    d.docker_ok(&[
        "create",
        "--name",
        "c1",
        "--volume-driver",
        "tp",
        "-v",
        "pv:/data",
        "busybox",
        "sh",
        "-c",
        "echo x > /data/y",
    ]);
    let id = container_id(&d, "c1");
    assert_eq!(count(&state, "/VolumeDriver.Create", "pv", None), 1);
    d.docker_ok(&["start", "-a", "c1"]);
    assert_eq!(
        std::fs::read_to_string(state.join("volumes/pv/y")).unwrap(),
        "x\n"
    );
    assert_eq!(count(&state, "/VolumeDriver.Mount", "pv", Some(&id)), 1);
    assert!(
        wait_for(Duration::from_secs(10), || {
            count(&state, "/VolumeDriver.Unmount", "pv", Some(&id)) == 1
        }),
        "{:?}",
        calls(&state)
    );
    let v = inspect_volume(&d, "pv");
    assert_eq!(v["Driver"], "tp");
    assert_eq!(v["Scope"], "global");
    assert_eq!(v["Status"]["mounts"], 0);
    assert_eq!(
        v["Mountpoint"],
        state.join("volumes/pv").display().to_string()
    );
    let info = d.docker_ok(&["info", "--format", "{{json .Plugins.Volume}}"]);
    assert_eq!(info.trim(), r#"["local","tp"]"#);
    // A name taken by another driver; df walks `local` volumes only.
    d.docker_ok(&["volume", "create", "lv"]);
    let o = d.docker(&["volume", "create", "-d", "tp", "lv"]);
    assert!(
        stderr(&o).contains(
            "create lv: driver 'local' already has volume 'lv': volume name must be unique"
        ),
        "{}",
        stderr(&o)
    );
    let (st, _, body) = d.raw("GET", "/system/df", None);
    assert_eq!(st, 200);
    let df: Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = df["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["Name"].as_str())
        .collect();
    assert_eq!(names, ["lv"]);
    d.docker_ok(&["volume", "rm", "lv"]);

    // A volume the plugin has and berth has no record of shows too, and
    // can be inspected and removed.
    let (st, _, _) = raw_request(
        &_tp.sock,
        "POST",
        "/VolumeDriver.Create",
        Some(br#"{"Name":"behind","Opts":{}}"#),
    )
    .unwrap();
    assert_eq!(st, 200);
    let lines = volume_lines(&d);
    assert!(lines.contains(&"tp behind global".to_string()), "{lines:?}");
    assert!(lines.contains(&"tp pv global".to_string()), "{lines:?}");
    let v = inspect_volume(&d, "behind");
    assert_eq!(v["Driver"], "tp");
    let out = d.docker_ok(&["volume", "ls", "-q", "--filter", "driver=local"]);
    assert!(!out.contains("behind") && !out.contains("pv"), "{out}");
    d.docker_ok(&["volume", "rm", "behind"]);
    assert_eq!(count(&state, "/VolumeDriver.Remove", "behind", None), 1);

    // A recorded volume its plugin no longer has does not show (as in
    // moby); its plugin refuses to remove it, and -f drops the record.
    d.docker_ok(&["volume", "create", "-d", "tp", "gone"]);
    let (st, _, _) = raw_request(
        &_tp.sock,
        "POST",
        "/VolumeDriver.Remove",
        Some(br#"{"Name":"gone"}"#),
    )
    .unwrap();
    assert_eq!(st, 200);
    assert!(!volume_lines(&d).iter().any(|l| l.contains("gone")));
    let o = d.docker(&["volume", "rm", "gone"]);
    assert!(
        stderr(&o).contains("remove gone: VolumeDriver.Remove: no such volume: gone"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["volume", "rm", "-f", "gone"]);
    let o = d.docker(&["volume", "inspect", "gone"]);
    assert!(
        stderr(&o).contains("get gone: no such volume"),
        "{}",
        stderr(&o)
    );

    // Prune leaves plugin volumes alone (Docker prunes `local` ones).
    d.docker_ok(&["rm", "c1"]);
    d.docker_ok(&["volume", "prune", "-a", "-f"]);
    assert!(volume_lines(&d).contains(&"tp pv global".to_string()));

    // In use: refused; then removed through the plugin.
    d.docker_ok(&[
        "create", "--name", "c2", "-v", "pv:/data", "busybox", "true",
    ]);
    let o = d.docker(&["volume", "rm", "pv"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("volume is in use"), "{}", stderr(&o));
    assert_eq!(count(&state, "/VolumeDriver.Remove", "pv", None), 0);
    d.docker_ok(&["rm", "c2"]);
    d.docker_ok(&["volume", "rm", "pv"]);
    assert_eq!(count(&state, "/VolumeDriver.Remove", "pv", None), 1);
    assert!(!volume_lines(&d).iter().any(|l| l.contains(" pv ")));

    // The plugin's refusal, worded as Docker words it; nothing recorded.
    let o = d.docker(&["volume", "create", "-d", "tp", "-o", "fail=nope", "bad"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("create bad: VolumeDriver.Create: refused: nope"),
        "{}",
        stderr(&o)
    );
    assert!(!volume_lines(&d).iter().any(|l| l.contains("bad")));

    // A create that fails after its first volume was made undoes it
    // through the plugin: nothing is left half-made.
    let o = d.docker(&[
        "create",
        // A 404 on create makes the CLI try a pull otherwise.
        "--pull",
        "never",
        "--volume-driver",
        "tp",
        "-v",
        "nv1:/d",
        "--mount",
        "type=volume,src=nv2,dst=/e,volume-driver=nosuch",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(r#"error looking up volume plugin nosuch: plugin "nosuch" not found"#),
        "{}",
        stderr(&o)
    );
    assert_eq!(count(&state, "/VolumeDriver.Create", "nv1", None), 1);
    assert_eq!(count(&state, "/VolumeDriver.Remove", "nv1", None), 1);
    assert!(!volume_lines(&d).iter().any(|l| l.contains("nv1")));
    assert_eq!(d.docker_ok(&["ps", "-a", "-q"]).trim(), "");

    // An unknown driver: Docker's 404.
    let o = d.docker(&["volume", "create", "-d", "nosuch", "x"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(r#"error looking up volume plugin nosuch: plugin "nosuch" not found"#),
        "{}",
        stderr(&o)
    );
    let (st, _, body) = d.raw(
        "POST",
        "/volumes/create",
        Some(br#"{"Name":"x","Driver":"nosuch"}"#),
    );
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&body));

    // Every Mount was matched by one Unmount with the same ID.
    let c = calls(&state);
    let mounts = c.iter().filter(|(m, _)| m == "/VolumeDriver.Mount").count();
    let unmounts = c
        .iter()
        .filter(|(m, _)| m == "/VolumeDriver.Unmount")
        .count();
    assert_eq!((mounts, unmounts), (1, 1), "{c:?}");
}

#[test]
fn after_a_daemon_crash_unmount_reaches_the_plugin_for_stopped_containers_only() {
    let mut d = daemon();
    let s = scratch();
    let state = s.path().join("tp");
    let _tp = test_plugin(&d, "tp", "ok", &state);
    for v in ["pa", "pb"] {
        d.docker_ok(&["volume", "create", "-d", "tp", v]);
    }
    d.docker_ok(&[
        "run", "-d", "--name", "ca", "-v", "pa:/d", "busybox", "sleep", "1000",
    ]);
    d.docker_ok(&[
        "run", "-d", "--name", "cb", "-v", "pb:/d", "busybox", "sleep", "1000",
    ]);
    let (a, b) = (container_id(&d, "ca"), container_id(&d, "cb"));
    let b_pid: i32 = d
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", "cb"])
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(count(&state, "/VolumeDriver.Mount", "pa", Some(&a)), 1);
    assert_eq!(count(&state, "/VolumeDriver.Mount", "pb", Some(&b)), 1);

    // The daemon dies; b's process dies while it is down, a's lives on.
    d.kill9();
    // SAFETY: kill(2) on the pid of b's process, which we just read.
    unsafe { libc::kill(b_pid, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{b_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{b_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    }));
    assert_eq!(count(&state, "/VolumeDriver.Unmount", "pb", None), 0);
    d.restart().expect("berthd starts again");

    assert!(
        wait_for(Duration::from_secs(10), || {
            count(&state, "/VolumeDriver.Unmount", "pb", Some(&b)) == 1
        }),
        "b's volume was not unmounted: {:?}",
        calls(&state)
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "cb"])
            .trim(),
        "false"
    );
    // a still runs (live restore): its volume stays mounted.
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "ca"])
            .trim(),
        "true"
    );
    assert_eq!(count(&state, "/VolumeDriver.Unmount", "pa", None), 0);
    assert_eq!(inspect_volume(&d, "pa")["Status"]["mounts"], 1);
    assert_eq!(inspect_volume(&d, "pb")["Status"]["mounts"], 0);

    // A second restart sends nothing more; a's stop unmounts its volume.
    d.restart().expect("berthd restarts");
    d.docker_ok(&["stop", "-t", "1", "ca"]);
    assert_eq!(count(&state, "/VolumeDriver.Unmount", "pa", Some(&a)), 1);
    assert_eq!(count(&state, "/VolumeDriver.Unmount", "pb", Some(&b)), 1);
    assert_eq!(inspect_volume(&d, "pa")["Status"]["mounts"], 0);

    // Stopped but mounted: a `cp` into the stopped container holds its
    // volume while the archive comes (a writer that stalls mid-file) when
    // the daemon dies.
    let mut cp = d
        .docker_cmd()
        .args(["cp", "-", "cb:/d"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker cp runs");
    let mut h = tar::Header::new_gnu();
    h.set_path("big").unwrap();
    h.set_size(1 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let mut stdin = cp.stdin.take().expect("cp's stdin");
    std::io::Write::write_all(&mut stdin, h.as_bytes()).unwrap();
    std::io::Write::write_all(&mut stdin, &[7u8; 4096]).unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    // The cp holder mounted and not unmounted (the CLI's stat before the
    // copy has its own holder, mounted and unmounted).
    let held_cp = || {
        let c = calls(&state);
        c.iter().find_map(|(m, b)| {
            let id = b["ID"].as_str().unwrap_or("");
            let open = m == "/VolumeDriver.Mount"
                && b["Name"] == "pb"
                && id.starts_with("cp:")
                && !c
                    .iter()
                    .any(|(m2, b2)| m2 == "/VolumeDriver.Unmount" && b2["ID"] == id);
            open.then(|| id.to_string())
        })
    };
    // The same holder, held over 300 ms (the stat's is let go at once).
    let mut holder = String::new();
    assert!(
        wait_for(Duration::from_secs(20), || {
            let first = held_cp();
            std::thread::sleep(Duration::from_millis(300));
            match (first, held_cp()) {
                (Some(a), Some(b)) if a == b => {
                    holder = a;
                    true
                }
                _ => false,
            }
        }),
        "{:?}",
        calls(&state)
    );
    d.kill9();
    drop(stdin);
    let _ = cp.kill();
    let _ = cp.wait();
    d.restart().expect("berthd starts again");
    assert!(
        wait_for(Duration::from_secs(10), || {
            count(&state, "/VolumeDriver.Unmount", "pb", Some(&holder)) == 1
        }),
        "the cp's volume was not unmounted: {:?}",
        calls(&state)
    );
    assert_eq!(inspect_volume(&d, "pb")["Status"]["mounts"], 0);
    assert!(!state.join("volumes/pb/big").exists());

    d.docker_ok(&["rm", "-f", "ca", "cb"]);
    d.docker_ok(&["volume", "rm", "pa", "pb"]);
}

#[test]
fn plugins_that_answer_garbage_hang_or_vanish_get_clear_errors_in_time() {
    let d = Daemon::start_with(&["--plugin-timeout", "2"]).expect("berthd starts");
    fixtures::import_busybox(&d, "busybox:latest");
    let s = scratch();
    let limit = Duration::from_secs(30);

    // Garbage.
    let _gp = test_plugin(&d, "gp", "garbage", &s.path().join("gp"));
    let (o, took) = timed(&d, &["volume", "create", "-d", "gp", "gv"], limit);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("create gv: VolumeDriver.Create: bad answer from plugin"),
        "{e}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(!d.docker(&["volume", "inspect", "gv"]).status.success());

    // A hang: the call gives up after the plugin timeout.
    let _hp = test_plugin(&d, "hp", "hang", &s.path().join("hp"));
    let (o, took) = timed(&d, &["volume", "create", "-d", "hp", "hv"], limit);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("create hv: VolumeDriver.Create"), "{e}");
    assert!(e.contains("did not answer within 2s"), "{e}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "{took:?}"
    );
    // No container is left from a run whose volume could not be made.
    let (o, took) = timed(
        &d,
        &[
            "run",
            "--name",
            "hung",
            "--volume-driver",
            "hp",
            "-v",
            "xv:/d",
            "busybox",
            "true",
        ],
        limit,
    );
    assert!(
        !o.status.success(),
        "{}{}\n{}",
        stdout(&o),
        stderr(&o),
        tail(&d.log_text(), 20)
    );
    assert!(
        stderr(&o).contains("did not answer within 2s"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(d.docker_ok(&["ps", "-a", "-q"]).trim(), "");
    // ls warns about each and still answers within one timeout: the
    // plugins are asked at once (three that hang would take 6 s in turn).
    let _hp2 = test_plugin(&d, "hp2", "hang", &s.path().join("hp2"));
    let _hp3 = test_plugin(&d, "hp3", "hang", &s.path().join("hp3"));
    let start = Instant::now();
    let (st, _, body) = d.raw("GET", "/volumes", None);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(st, 200);
    let ls: Value = serde_json::from_slice(&body).unwrap();
    let warnings = ls["Warnings"].to_string();
    assert!(
        warnings.contains("list gp: VolumeDriver.List"),
        "{warnings}"
    );
    for p in ["hp", "hp2", "hp3"] {
        assert!(
            warnings.contains(&format!(
                "list {p}: VolumeDriver.List: plugin did not answer"
            )),
            "{warnings}"
        );
    }
    assert_eq!(ls["Volumes"], serde_json::json!([]));

    // A plugin that vanishes after its volume was made.
    let mut dp = test_plugin(&d, "dp", "ok", &s.path().join("dp"));
    d.docker_ok(&["volume", "create", "-d", "dp", "dv"]);
    d.docker_ok(&["create", "--name", "user", "-v", "dv:/d", "busybox", "true"]);
    assert!(dp.pid() > 0);
    dp.kill9();
    std::fs::remove_file(&dp.sock).unwrap();
    let (o, took) = timed(&d, &["start", "user"], limit);
    assert!(!o.status.success());
    let e = stderr(&o);
    let at = s.path().join("dp/volumes/dv");
    assert!(
        e.contains(&format!("error while mounting volume '{}'", at.display())),
        "{e}"
    );
    assert!(
        e.contains(r#"plugin "dp" is not running or not answering"#),
        "{e}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "user"])
            .trim(),
        "false"
    );
    d.docker_ok(&["rm", "user"]);
    let o = d.docker(&["volume", "rm", "dv"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("remove dv:"), "{}", stderr(&o));
    assert!(volume_lines(&d).iter().any(|l| l.contains(" dv ")));
    // -f purges the record of a volume its plugin cannot remove.
    d.docker_ok(&["volume", "rm", "-f", "dv"]);
    assert!(!volume_lines(&d).iter().any(|l| l.contains(" dv ")));

    // The daemon is still up and serving.
    d.docker_ok(&["ps"]);
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
}
