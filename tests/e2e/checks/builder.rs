//! B. The classic builder.

use super::*;

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tb = tar::Builder::new(Vec::new());
    for (name, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        tb.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    tb.into_inner().unwrap()
}

/// `POST /v1.41/build?query` with a tar context: (status, stream lines or error message).
fn build(d: &Daemon, query: &str, ctx: &[u8]) -> (u16, Vec<serde_json::Value>, String) {
    let (code, _, b) = d.raw("POST", &format!("/v1.41/build?{query}"), Some(ctx));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&b)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (code, lines, message(&b))
}

fn stream_text(lines: &[serde_json::Value]) -> String {
    lines
        .iter()
        .filter_map(|l| l["stream"].as_str())
        .collect::<String>()
}

fn built_id(lines: &[serde_json::Value]) -> String {
    lines
        .iter()
        .find_map(|l| l["aux"]["ID"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no image ID in {lines:?}"))
}

#[test]
fn build_parameters_as_dockerd() {
    let d = daemon();
    let df = "FROM busybox\n\
              RUN echo out1; echo err1 >&2; echo out2\n\
              RUN grep myhost /etc/hosts; df -k /dev/shm | tail -1 | awk '{print \"shm=\" $2}'; echo nets=$(ls /sys/class/net | tr '\\n' ,)\n";
    let ctx = tar_of(&[("sub/dir/Dockerfile.x", df), ("x", df)]);
    // A Dockerfile anywhere in the context; extra hosts, /dev/shm size and
    // network mode reach RUN; stderr comes in red, in order with stdout.
    let (code, lines, _) = build(
        &d,
        "dockerfile=sub/dir/Dockerfile.x&extrahosts=myhost:1.2.3.4&shmsize=33554432&networkmode=none&labels=%7B%22a.b%22%3A%22c%22%7D&t=bp:1",
        &ctx,
    );
    assert_eq!(code, 200);
    let text = stream_text(&lines);
    assert!(text.contains("out1\n"), "{text}");
    assert!(text.contains("\u{1b}[91merr1\n\u{1b}[0m"), "{text}");
    assert!(text.contains("1.2.3.4\tmyhost\n"), "{text}");
    assert!(text.contains("shm=32768\n"), "{text}");
    assert!(text.contains("nets=lo,\n"), "{text}");
    let id = built_id(&lines);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{index .Config.Labels \"a.b\"}}", "bp:1"])
            .trim(),
        "c"
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.Id}}", "bp:1"]).trim(),
        id
    );
    // ./x and /sub/dir/... (absolute, inside the context) are the same
    // Dockerfiles: cached, same image.
    for name in ["./x", "/sub/dir/Dockerfile.x"] {
        let (code, lines, _) = build(
            &d,
            &format!("dockerfile={name}&q=1&labels=%7B%22a.b%22%3A%22c%22%7D"),
            &ctx,
        );
        assert_eq!(code, 200);
        assert_eq!(stream_text(&lines).trim(), id, "{name}");
    }
    // The default network and host network give RUN more than lo.
    let (_, lines, _) = build(&d, "dockerfile=x&nocache=1", &ctx);
    assert!(stream_text(&lines).contains("eth0"), "{lines:?}");
    let (_, lines, _) = build(&d, "dockerfile=x&nocache=1&networkmode=host", &ctx);
    let text = stream_text(&lines);
    assert!(text.contains(&d.bridge), "{text}");
    assert!(text.contains("shm=65536\n"), "{text}");

    // Refusals, with dockerd's status and words, before any output.
    assert_eq!(
        build(&d, "dockerfile=nope", &ctx),
        (
            500,
            vec![serde_json::json!({"message": "Cannot locate specified Dockerfile: nope"})],
            "Cannot locate specified Dockerfile: nope".into()
        )
    );
    let (code, _, msg) = build(&d, "dockerfile=../x", &ctx);
    assert_eq!(
        (code, msg.as_str()),
        (500, "forbidden path outside the build context: ../x ()")
    );
    let (code, _, msg) = build(&d, "squash=1", &ctx);
    assert_eq!(
        (code, msg.as_str()),
        (400, "squash is only supported with experimental mode")
    );
    let bad = tar_of(&[("Dockerfile", "FROM busybox\nBOGUS x\n")]);
    let (code, _, msg) = build(&d, "", &bad);
    assert_eq!(code, 400, "{msg}");
    // A bad extra host fails the RUN with the create check's words.
    let (code, lines, _) = build(&d, "dockerfile=x&nocache=1&extrahosts=bad", &ctx);
    assert_eq!(code, 200);
    let last = lines.last().unwrap();
    assert_eq!(
        last["error"], "bad format for add-host: \"bad\"",
        "{lines:?}"
    );

    // The docker CLI: -f into a sub directory, --add-host, --shm-size.
    let dir = scratch();
    std::fs::create_dir_all(dir.path().join("sub/dir")).unwrap();
    std::fs::write(dir.path().join("sub/dir/Dockerfile.x"), df).unwrap();
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--no-cache", "-f"])
        .arg(dir.path().join("sub/dir/Dockerfile.x"))
        .args([
            "--add-host",
            "myhost:5.6.7.8",
            "--shm-size",
            "16m",
            "-t",
            "bp:cli",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("5.6.7.8\tmyhost"), "{all}");
    assert!(all.contains("shm=16384"), "{all}");
    assert!(all.contains("err1"), "{all}");
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--squash", "-t", "bp:sq"])
        .arg(dir.path())
        .output()
        .unwrap();
    // The CLI refuses on its own, reading `experimental: false` from /_ping.
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("only supported on a Docker daemon with experimental features enabled"),
        "{}",
        stderr(&o)
    );
    rm_all(&d);
    d.docker_ok(&["rmi", "bp:1", "bp:cli"]);
}

#[test]
fn build_args_nocache_rm_forcerm_and_run_containers_in_the_list() {
    let d = daemon();
    let ctx = tar_of(&[(
        "Dockerfile",
        "FROM busybox AS base\nARG V=def\nRUN echo v=$V > /v; sleep 2\nFROM base AS second\nRUN echo second\nFROM busybox\nRUN false\n",
    )]);
    // target + buildargs; while a RUN runs its container is listed (as
    // dockerd's), and it is gone after (rm defaults to true).
    let sock = d.sock.clone();
    let handle = std::thread::spawn(move || {
        raw_request(
            &sock,
            "POST",
            "/v1.41/build?target=second&buildargs=%7B%22V%22%3A%22given%22%7D&t=ba:1",
            Some(&ctx),
        )
        .unwrap()
    });
    let mut seen = String::new();
    assert!(
        wait_for_polling(POLL, Duration::from_secs(20), || {
            seen = d.docker_ok(&["ps", "--no-trunc", "--format", "{{.Command}}"]);
            seen.contains("sleep 2")
        }),
        "the RUN container was never listed: {seen}"
    );
    let (code, _, b) = handle.join().unwrap();
    assert_eq!(code, 200);
    let text = String::from_utf8_lossy(&b).into_owned();
    assert!(text.contains("Successfully tagged ba:1"), "{text}");
    assert!(text.contains("Removing intermediate container"), "{text}");
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]).trim(),
        "",
        "intermediate containers left"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "ba:1", "cat", "/v"]).trim(),
        "v=given"
    );
    // Cached on a second build; nocache runs again.
    let ctx = tar_of(&[("Dockerfile", "FROM busybox\nRUN echo hi > /hi\n")]);
    let (_, l1, _) = build(&d, "rm=1", &ctx);
    let (_, l2, _) = build(&d, "", &ctx);
    assert!(stream_text(&l2).contains("Using cache"));
    assert_eq!(built_id(&l1), built_id(&l2));
    let (_, l3, _) = build(&d, "nocache=1", &ctx);
    assert!(!stream_text(&l3).contains("Using cache"));
    assert_ne!(built_id(&l1), built_id(&l3));
    // rm=0 keeps the intermediate container (exited, listed with -a).
    let (_, l4, _) = build(&d, "nocache=1&rm=0", &ctx);
    assert!(!stream_text(&l4).contains("Removing intermediate"));
    assert_eq!(d.docker_ok(&["ps", "-aq"]).split_whitespace().count(), 1);
    rm_all(&d);
    // A failing RUN keeps its container unless forcerm.
    let bad = tar_of(&[("Dockerfile", "FROM busybox\nRUN false\n")]);
    let (_, l5, _) = build(&d, "", &bad);
    assert_eq!(l5.last().unwrap()["errorDetail"]["code"], 1, "{l5:?}");
    assert_eq!(d.docker_ok(&["ps", "-aq"]).split_whitespace().count(), 1);
    rm_all(&d);
    // forcerm removes it; quiet mode shows what it held back on failure.
    let bad = tar_of(&[("Dockerfile", "FROM busybox\nRUN echo visible; exit 3\n")]);
    let (_, l6, _) = build(&d, "forcerm=1&q=1", &bad);
    let text = stream_text(&l6);
    assert!(text.starts_with("Step 1/2 : FROM busybox\n"), "{text}");
    assert!(text.contains("visible\n"), "{text}");
    assert!(text.contains("Removing intermediate container"), "{text}");
    assert_eq!(
        l6.last().unwrap()["error"],
        "The command '/bin/sh -c echo visible; exit 3' returned a non-zero code: 3"
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
    // q: only the ID.
    let (_, lq, _) = build(&d, "q=1", &ctx);
    assert_eq!(stream_text(&lq).trim(), built_id(&l4));
    d.docker_ok(&["rmi", "ba:1"]);
}

#[test]
fn build_cache_from_uses_a_loaded_image_as_dockerd() {
    let d = daemon();
    let dir = scratch();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox\nRUN echo hi > /hi\nENV X=1\nRUN echo two > /two\n",
    )
    .unwrap();
    let ctx = dir.path().display().to_string();
    let cli_build = |extra: &[&str], tag: &str| -> String {
        let o = d
            .docker_cmd()
            .env("DOCKER_BUILDKIT", "0")
            .arg("build")
            .args(extra)
            .args(["-t", tag, &ctx])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    cli_build(&["-q"], "cf:1");
    let id1 = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "cf:1"])
        .trim()
        .to_string();
    // As if pulled: no parent links, no local cache.
    let saved = dir.path().join("cf.tar");
    d.docker_ok(&["save", "-o", saved.to_str().unwrap(), "cf:1"]);
    d.docker_ok(&["rmi", "cf:1"]);
    d.docker_ok(&["builder", "prune", "-af"]);
    d.docker_ok(&["load", "-i", saved.to_str().unwrap()]);
    let out = cli_build(&[], "cf:2");
    assert!(!out.contains("Using cache"), "{out}");
    assert_ne!(
        d.docker_ok(&["inspect", "-f", "{{.Id}}", "cf:2"]).trim(),
        id1
    );
    // With --cache-from, every step comes from cf:1 (the local cache of
    // cf:2, not on cf:1's line, does not count) and the result is cf:1.
    let out = cli_build(&["--cache-from", "cf:1"], "cf:3");
    assert_eq!(out.matches("Using cache").count(), 3, "{out}");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.Id}}", "cf:3"]).trim(),
        id1
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "cf:3", "cat", "/hi", "/two"]),
        "hi\ntwo\n"
    );
    // The step images it made are intermediate: no dangling images show.
    let listed = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!listed.contains("<none>"), "{listed}");
    d.docker_ok(&["rmi", "cf:1", "cf:2", "cf:3"]);
}
