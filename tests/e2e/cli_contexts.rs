//! The berth CLI's contexts, CLI plugins, completions, man pages and prune
//! commands, against the docker CLI 28 on the same store and daemon: a
//! context made by one CLI is used by the other, `use` switches both,
//! export/import round-trips, `berth compose` runs Compose v2 through the
//! plugin protocol, and the prune commands print what docker prints. Every
//! CLI here runs with a temporary `DOCKER_CONFIG`, never `~/.docker`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_tests::cli::{berth, bounded, docker};
use berth_tests::*;

/// A CLI (`docker` or berth) on the config dir `cfg` only: no
/// `DOCKER_HOST`, no `DOCKER_CONTEXT`, so the context store decides.
fn on_store(prog: &Path, cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(prog);
    c.args(args)
        .env("DOCKER_CONFIG", cfg)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    bounded(c)
}

fn dk(cfg: &Path, args: &[&str]) -> Output {
    on_store(Path::new("docker"), cfg, args, &[])
}

fn bt(cfg: &Path, args: &[&str]) -> Output {
    on_store(&bin("berth"), cfg, args, &[])
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Both CLIs give the same stdout, stderr and status.
fn same(b: &Output, k: &Output, what: &str) {
    assert_eq!(
        (stdout(b), stderr(b), b.status.code()),
        (stdout(k), stderr(k), k.status.code()),
        "berth and docker differ on {what}"
    );
}

#[test]
fn contexts_are_shared_with_the_docker_cli() {
    let d = Daemon::start();
    let tmp = scratch();
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg).expect("cfg");
    std::fs::write(
        cfg.join("config.json"),
        r#"{"auths":{},"psFormat":"table {{.ID}}","x-berth-test":{"k":[1,2]}}"#,
    )
    .expect("config.json");
    let host = d.host();
    let ep = format!("host={host}");

    // One made by each CLI, each used by the other.
    ok(
        dk(
            &cfg,
            &[
                "context",
                "create",
                "dk",
                "--description",
                "by docker",
                "--docker",
                &ep,
            ],
        ),
        "docker context create",
    );
    let c = bt(
        &cfg,
        &[
            "context",
            "create",
            "bk",
            "--description",
            "by berth",
            "--docker",
            &ep,
        ],
    );
    assert_eq!(stdout(&c), "bk\n");
    assert_eq!(stderr(&c), "Successfully created context \"bk\"\n");
    assert!(ok(
        bt(&cfg, &["--context", "dk", "ps"]),
        "berth --context dk ps"
    )
    .starts_with("CONTAINER ID"));
    assert!(ok(
        dk(&cfg, &["--context", "bk", "ps"]),
        "docker --context bk ps"
    )
    .starts_with("CONTAINER ID"));
    assert!(ok(bt(&cfg, &["-c", "bk", "version"]), "berth -c bk version").contains("Server"));
    // The same files: `inspect` prints the same for both contexts.
    for name in ["bk", "dk", "default"] {
        let args = ["context", "inspect", name];
        let e = [("DOCKER_HOST", host.as_str())];
        same(
            &on_store(&bin("berth"), &cfg, &args, &e),
            &on_store(Path::new("docker"), &cfg, &args, &e),
            &format!("context inspect {name}"),
        );
    }
    // With DOCKER_HOST set, both list the same table (default starred).
    for args in [
        &["context", "ls"][..],
        &["context", "ls", "-q"],
        &["context", "ls", "--format", "json"],
        &["context", "ls", "--format", "{{.Name}}\t{{.Current}}"],
        &["context", "show"],
    ] {
        let e = [("DOCKER_HOST", host.as_str())];
        same(
            &on_store(&bin("berth"), &cfg, args, &e),
            &on_store(Path::new("docker"), &cfg, args, &e),
            &format!("{args:?}"),
        );
    }

    // `use` by berth switches the docker CLI too, and keeps config.json's
    // other keys.
    let u = bt(&cfg, &["context", "use", "dk"]);
    assert_eq!(
        (stdout(&u), stderr(&u)),
        ("dk\n".into(), "Current context is now \"dk\"\n".into())
    );
    let conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.join("config.json")).expect("read"))
            .expect("json");
    assert_eq!(conf["currentContext"], "dk");
    assert_eq!(conf["psFormat"], "table {{.ID}}");
    assert_eq!(conf["x-berth-test"]["k"], serde_json::json!([1, 2]));
    assert_eq!(
        ok(dk(&cfg, &["context", "show"]), "docker context show"),
        "dk\n"
    );
    ok(dk(&cfg, &["ps"]), "docker ps on berth's current context");
    let ls = ok(bt(&cfg, &["context", "ls"]), "berth context ls");
    assert!(ls.lines().any(|l| l.starts_with("dk *")), "{ls}");
    // … and the reverse.
    ok(dk(&cfg, &["context", "use", "bk"]), "docker context use");
    assert_eq!(
        ok(bt(&cfg, &["context", "show"]), "berth context show"),
        "bk\n"
    );
    ok(bt(&cfg, &["ps"]), "berth ps on docker's current context");

    // Removing the current context is refused, as docker refuses it.
    same(
        &bt(&cfg, &["context", "rm", "bk"]),
        &dk(&cfg, &["context", "rm", "bk"]),
        "context rm of the current context",
    );
    same(
        &bt(&cfg, &["context", "rm", "nope"]),
        &dk(&cfg, &["context", "rm", "nope"]),
        "context rm of a missing context",
    );
    same(
        &bt(&cfg, &["context", "create", "default"]),
        &dk(&cfg, &["context", "create", "default"]),
        "context create default",
    );
    same(
        &bt(&cfg, &["context", "create", "bad name"]),
        &dk(&cfg, &["context", "create", "bad name"]),
        "context create with a bad name",
    );

    // Precedence: --host > --context > DOCKER_HOST > DOCKER_CONTEXT > current.
    let both = bt(&cfg, &["-H", &host, "--context", "dk", "ps"]);
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("conflicting options"),
        "{}",
        stderr(&both)
    );
    let bad = on_store(&bin("berth"), &cfg, &["ps"], &[("DOCKER_CONTEXT", "nope")]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("context \"nope\": context not found"),
        "{}",
        stderr(&bad)
    );
    let e = [("DOCKER_CONTEXT", "nope"), ("DOCKER_HOST", host.as_str())];
    ok(
        on_store(&bin("berth"), &cfg, &["ps"], &e),
        "DOCKER_HOST over DOCKER_CONTEXT",
    );
    let e = [("DOCKER_HOST", "unix:///nonexistent.sock")];
    ok(
        on_store(&bin("berth"), &cfg, &["--context", "dk", "ps"], &e),
        "--context over DOCKER_HOST",
    );
    let e = [("DOCKER_CONTEXT", "dk")];
    ok(
        on_store(&bin("berth"), &cfg, &["-H", &host, "ps"], &e),
        "--host over DOCKER_CONTEXT",
    );

    // Export by one, import by the other, both ways.
    let f1 = tmp.path().join("bk.dockercontext");
    let f1s = f1.to_string_lossy().into_owned();
    let x = bt(&cfg, &["context", "export", "bk", &f1s]);
    assert_eq!(stderr(&x), format!("Written file \"{f1s}\"\n"));
    ok(
        dk(&cfg, &["context", "import", "bk2", &f1s]),
        "docker context import",
    );
    ok(
        dk(&cfg, &["--context", "bk2", "ps"]),
        "docker on berth's export",
    );
    let f2 = tmp.path().join("dk.dockercontext");
    let f2s = f2.to_string_lossy().into_owned();
    ok(
        dk(&cfg, &["context", "export", "dk", &f2s]),
        "docker context export",
    );
    let i = bt(&cfg, &["context", "import", "dk2", &f2s]);
    assert_eq!(stderr(&i), "Successfully imported context \"dk2\"\n");
    ok(
        bt(&cfg, &["--context", "dk2", "ps"]),
        "berth on docker's export",
    );
    same(
        &bt(
            &cfg,
            &[
                "context",
                "inspect",
                "dk2",
                "--format",
                "{{.Name}} {{.Endpoints.docker.Host}}",
            ],
        ),
        &dk(
            &cfg,
            &[
                "context",
                "inspect",
                "dk2",
                "--format",
                "{{.Name}} {{.Endpoints.docker.Host}}",
            ],
        ),
        "inspect of an imported context",
    );
    let list = |f: &Path| {
        let o = Command::new("tar").arg("tvf").arg(f).output().expect("tar");
        stdout(&o)
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                format!("{} {}", w[0], w[w.len() - 1])
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(&f1),
        list(&f2),
        "export archives list the same entries"
    );

    // TLS material lands where docker keeps it, and update changes it.
    let pem = tmp.path().join("ca.pem");
    std::fs::write(&pem, "not really a certificate\n").expect("pem");
    let tls_ep = format!(
        "host=tcp://127.0.0.1:1,ca={},cert={},key={}",
        pem.display(),
        pem.display(),
        pem.display()
    );
    ok(
        bt(&cfg, &["context", "create", "tls", "--docker", &tls_ep]),
        "create with TLS",
    );
    same(
        &bt(&cfg, &["context", "inspect", "tls"]),
        &dk(&cfg, &["context", "inspect", "tls"]),
        "inspect of a TLS context",
    );
    ok(
        bt(&cfg, &["context", "update", "tls", "--description", "new"]),
        "context update",
    );
    let ls = ok(
        dk(
            &cfg,
            &["context", "ls", "--format", "{{.Name}}:{{.Description}}"],
        ),
        "ls",
    );
    assert!(ls.lines().any(|l| l == "tls:new"), "{ls}");
    let r = bt(&cfg, &["context", "rm", "-f", "bk", "tls", "bk2", "dk2"]);
    assert_eq!(stdout(&r), "bk\ntls\nbk2\ndk2\n");
    assert_eq!(
        ok(dk(&cfg, &["context", "show"]), "show after rm -f"),
        "default\n"
    );
    let conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.join("config.json")).expect("read"))
            .expect("json");
    assert!(conf.get("currentContext").is_none(), "{conf}");
}

const FAKE_PLUGIN: &str = r#"#!/bin/sh
if [ "$1" = docker-cli-plugin-metadata ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"berth tests","Version":"1.2","ShortDescription":"Say hello"}'
  exit 0
fi
if [ "$2" = wait ]; then
  sleep 20 &
  trap 'kill $!; echo got TERM; exit 42' TERM
  wait
  exit 1
fi
echo "argv0: $(basename "$0")"
echo "argv: $*"
echo "host: ${DOCKER_HOST:-}"
echo "orig: ${DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND:-}"
echo "socket: ${DOCKER_CLI_PLUGIN_SOCKET:-}"
exit 7
"#;

#[test]
fn cli_plugins_run_through_the_docker_plugin_protocol() {
    use std::os::unix::fs::PermissionsExt;
    let d = daemon();
    let tmp = scratch();
    let cfg = tmp.path().join("cfg");
    let plugins = cfg.join("cli-plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    for (name, text) in [
        ("docker-hello", FAKE_PLUGIN.to_string()),
        // Not a plugin: no Vendor.
        (
            "docker-novendor",
            FAKE_PLUGIN.replace(r#""Vendor":"berth tests","#, ""),
        ),
    ] {
        let p = plugins.join(name);
        std::fs::write(&p, text).expect("plugin");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    // The default context: the plugin is told where berthd is.
    let o = on_store(&bin("berth"), &cfg, &["hello", "a", "--b"], &[]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("argv0: docker-hello\n"), "{out}");
    assert!(out.contains("argv: hello a --b\n"), "{out}");
    assert!(
        out.contains("host: unix:///run/berth/berth.sock\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("orig: {}\n", bin("berth").display())),
        "{out}"
    );
    assert!(out.contains("socket: @docker_cli_"), "{out}");
    // Global flags reach the plugin as the docker CLI passes them.
    ok(
        dk(
            &cfg,
            &[
                "context",
                "create",
                "there",
                "--docker",
                &format!("host={}", d.host()),
            ],
        ),
        "docker context create",
    );
    let o = on_store(
        &bin("berth"),
        &cfg,
        &["--context", "there", "hello", "x"],
        &[],
    );
    let out = stdout(&o);
    assert!(out.contains("argv: --context there hello x\n"), "{out}");
    assert!(
        out.contains("host: \n"),
        "a context is not turned into DOCKER_HOST: {out}"
    );
    // The docker CLI runs it the same way.
    let k = dk(&cfg, &["--context", "there", "hello", "x"]);
    assert_eq!(k.status.code(), Some(7));
    assert!(stdout(&k).contains("argv: --context there hello x\n"));

    // A SIGTERM to berth reaches the plugin; berth exits with its status.
    let mut c = Command::new(bin("berth"));
    c.args(["hello", "wait"])
        .env("DOCKER_CONFIG", &cfg)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("berth hello wait");
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = finish(child, Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(42), "{} {}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "got TERM\n");

    let o = on_store(&bin("berth"), &cfg, &["novendor"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown command: berth novendor"),
        "{}",
        stderr(&o)
    );
    let help = ok(
        on_store(&bin("berth"), &cfg, &["--help"], &[]),
        "berth --help",
    );
    assert!(
        help.contains("hello*") && help.contains("Say hello (berth tests, 1.2)"),
        "{help}"
    );
    assert!(!help.contains("novendor"), "{help}");

    // Compose v2, the real plugin, through berth against this daemon.
    let proj = tmp.path().join("proj");
    std::fs::create_dir_all(&proj).expect("proj");
    std::fs::write(
        proj.join("compose.yaml"),
        "services:\n  app:\n    image: busybox:latest\n    command: [\"sleep\", \"300\"]\n    stop_grace_period: 1s\n",
    )
    .expect("compose.yaml");
    let compose = |args: &[&str]| {
        let mut c = d.berth_cmd();
        c.current_dir(&proj)
            .arg("compose")
            .args(["-p", "berthplug"])
            .args(args)
            .env("DOCKER_CONFIG", &cfg)
            .env("COMPOSE_ANSI", "never")
            .env("COMPOSE_PROGRESS", "plain")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(c.spawn().expect("berth compose"), Duration::from_secs(120))
    };
    ok(compose(&["up", "-d"]), "berth compose up -d");
    let ps = ok(
        compose(&["ps", "--format", "{{.Service}} {{.State}}"]),
        "berth compose ps",
    );
    assert_eq!(ps, "app running\n");
    let names = ok(berth(&d, &["ps", "--format", "{{.Names}}"]), "berth ps");
    assert_eq!(names.trim(), "berthplug-app-1");
    ok(compose(&["down"]), "berth compose down");
    assert_eq!(ok(berth(&d, &["ps", "-aq"]), "berth ps -aq"), "");
}

#[test]
fn completions_load_and_every_command_has_a_man_page() {
    let tmp = scratch();
    let bash = ok(
        Command::new(bin("berth"))
            .args(["completion", "bash"])
            .output()
            .expect("berth"),
        "completion bash",
    );
    let script = tmp.path().join("berth.bash");
    std::fs::write(&script, bash).expect("script");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(berth con) && COMP_CWORD=1 && COMP_LINE='berth con' && COMP_POINT=9 && _berth berth con berth && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .expect("bash");
    let got = ok(o, "bash completion");
    let words: Vec<&str> = got.lines().map(str::trim).collect();
    assert!(
        words.contains(&"container") && words.contains(&"context"),
        "{got}"
    );
    for shell in ["zsh", "fish"] {
        let s = ok(
            Command::new(bin("berth"))
                .args(["completion", shell])
                .output()
                .expect("berth"),
            shell,
        );
        assert!(s.contains("context"), "{shell}");
    }

    let man = tmp.path().join("man");
    ok(
        Command::new(bin("berth"))
            .arg("__man")
            .arg(&man)
            .output()
            .expect("berth"),
        "__man",
    );
    // Every command `berth --help` lists, and every subcommand of the groups.
    let help = ok(
        Command::new(bin("berth"))
            .arg("--help")
            .env("DOCKER_CONFIG", tmp.path())
            .output()
            .expect("help"),
        "help",
    );
    let mut commands = Vec::new();
    let mut in_list = false;
    for l in help.lines() {
        if l.starts_with("Commands:") {
            in_list = true;
            continue;
        }
        if in_list {
            match l.split_whitespace().next() {
                Some(c) if l.starts_with("  ") => commands.push(c.to_string()),
                _ => break,
            }
        }
    }
    assert!(commands.len() > 40, "{help}");
    assert!(man.join("berth.1").is_file());
    for c in &commands {
        assert!(
            man.join(format!("berth-{c}.1")).is_file(),
            "no man page for {c}"
        );
    }
    for page in [
        "berth-container-ls.1",
        "berth-context-create.1",
        "berth-system-prune.1",
        "berth-builder-prune.1",
        "berth-image-prune.1",
    ] {
        assert!(man.join(page).is_file(), "no {page}");
    }
    let text = std::fs::read_to_string(man.join("berth-context-create.1")).expect("page");
    assert!(
        text.contains(".TH") && text.contains("description"),
        "{text}"
    );
    let n = std::fs::read_dir(&man).expect("man dir").count();
    assert!(n > 100, "only {n} pages");
}

/// 64-hex IDs replaced, for outputs of two runs on different objects (a
/// re-imported busybox has a new image ID: its import time differs).
fn ids_out(s: &str) -> String {
    s.split('\n')
        .map(|l| {
            let (pre, id) = l.rsplit_once(':').unwrap_or(("", l));
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("{pre}<id>")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn prune_commands_prompt_and_print_as_docker_does() {
    let d = daemon();
    // Refused at the prompt (stdin is empty): the same question, nothing
    // removed, status 0.
    for args in [
        &["system", "prune"][..],
        &["system", "prune", "-a", "--volumes"],
        &[
            "system",
            "prune",
            "--filter",
            "label=a=b",
            "--filter",
            "until=1h",
        ],
        &["container", "prune"],
        &["image", "prune"],
        &["image", "prune", "-a"],
        &["volume", "prune"],
        &["volume", "prune", "-a"],
        &["network", "prune"],
        &["builder", "prune"],
        &["builder", "prune", "-a"],
    ] {
        let (b, k) = (berth(&d, args), docker(&d, args));
        if args[0] == "builder" {
            // docker adds the legacy builder's deprecation notice on stderr.
            assert_eq!(
                (stdout(&b), b.status.code()),
                (stdout(&k), k.status.code()),
                "{args:?} refused"
            );
        } else {
            same(&b, &k, &format!("{args:?} refused"));
        }
    }
    same(
        &berth(
            &d,
            &["system", "prune", "--volumes", "--filter", "until=1h"],
        ),
        &docker(
            &d,
            &["system", "prune", "--volumes", "--filter", "until=1h"],
        ),
        "system prune --volumes with until",
    );

    // Pruning for real: the same objects made twice, pruned by each CLI.
    let make = || {
        if !docker(&d, &["image", "inspect", "busybox:latest"])
            .status
            .success()
        {
            fixtures::import_busybox(&d, "busybox:latest");
        }
        for i in 0..2 {
            d.docker_ok(&["create", "--name", &format!("pr{i}"), "busybox", "true"]);
        }
        d.docker_ok(&["network", "create", "prunenet"]);
        d.docker_ok(&["volume", "create", "prunevol"]);
    };
    for args in [
        &["system", "prune", "-f"][..],
        &["system", "prune", "-f", "--volumes", "-a"],
    ] {
        make();
        let b = berth(&d, args);
        make();
        let k = docker(&d, args);
        assert_eq!(
            (ids_out(&stdout(&b)), stderr(&b), b.status.code()),
            (ids_out(&stdout(&k)), stderr(&k), k.status.code()),
            "{args:?}"
        );
        assert!(
            stdout(&b).contains("Deleted Containers:\n"),
            "{}",
            stdout(&b)
        );
        assert!(
            stdout(&b).contains("Deleted Networks:\nprunenet\n"),
            "{}",
            stdout(&b)
        );
        assert!(
            stdout(&b).contains("Total reclaimed space: "),
            "{}",
            stdout(&b)
        );
        d.docker_ok(&["volume", "rm", "-f", "prunevol"]);
    }
    let (b, k) = (
        berth(&d, &["builder", "prune", "-f"]),
        docker(&d, &["builder", "prune", "-f"]),
    );
    assert_eq!(
        (stdout(&b), b.status.code()),
        (stdout(&k), k.status.code()),
        "builder prune -f"
    );
}
