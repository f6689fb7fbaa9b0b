//! Issue 15: what dockerd 20.10 checks and answers, through real clients:
//! create-time validation (status and message as dockerd's), the classic
//! builder's parameters, and `GET /containers/json` with every filter.
//!
//! The expected statuses and messages are dockerd 20.10's own answers to
//! the same requests (recorded against a reference dockerd, which CI does
//! not run), except `invalid filter '…'`, which berth words in lower case
//! as later dockerd releases do.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::*;

fn message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["message"].as_str().unwrap_or("").to_string()
}

/// `POST /v1.41/containers/create` with `body`: (status, message or Id).
fn create(d: &Daemon, body: serde_json::Value) -> (u16, String) {
    let (code, _, b) = d.raw(
        "POST",
        "/v1.41/containers/create",
        Some(body.to_string().as_bytes()),
    );
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
    let out = v["Id"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| message(&b));
    (code, out)
}

fn with_hc(hc: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": hc})
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn rm_all(d: &Daemon) {
    let ids = d.docker_ok(&["ps", "-aq"]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        d.docker_ok(&args);
    }
}

// ---- A. create-time validation ------------------------------------------

#[test]
fn create_refuses_what_dockerd_refuses_with_its_messages() {
    let d = daemon();
    let bad: Vec<(serde_json::Value, u16, &str)> = vec![
        (
            with_hc(serde_json::json!({"AutoRemove": true, "RestartPolicy": {"Name": "always"}})),
            400,
            "can't create 'AutoRemove' container with restart policy",
        ),
        (
            with_hc(serde_json::json!({"AutoRemove": true, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})),
            400,
            "can't create 'AutoRemove' container with restart policy",
        ),
        (
            with_hc(serde_json::json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}})),
            400,
            "maximum retry count cannot be used with restart policy 'always'",
        ),
        (
            with_hc(serde_json::json!({"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 1}})),
            400,
            "maximum retry count cannot be used with restart policy 'unless-stopped'",
        ),
        (
            with_hc(serde_json::json!({"RestartPolicy": {"Name": "no", "MaximumRetryCount": 3}})),
            400,
            "maximum retry count cannot be used with restart policy 'no'",
        ),
        (
            with_hc(serde_json::json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}})),
            400,
            "maximum retry count cannot be negative",
        ),
        (
            with_hc(serde_json::json!({"RestartPolicy": {"Name": "nope"}})),
            400,
            "invalid restart policy 'nope'",
        ),
        (
            with_hc(serde_json::json!({"LogConfig": {"Type": "nope"}})),
            400,
            "error looking up logging plugin nope: plugin \"nope\" not found",
        ),
        (
            with_hc(serde_json::json!({"LogConfig": {"Type": "json-file", "Config": {"nope": "1"}}})),
            400,
            "unknown log opt 'nope' for json-file log driver",
        ),
        (
            with_hc(serde_json::json!({"Runtime": "nope"})),
            400,
            "Unknown runtime specified nope",
        ),
        (
            serde_json::json!({"Image": "busybox", "Cmd": ["true"], "WorkingDir": "rel/dir"}),
            400,
            "the working directory 'rel/dir' is invalid, it needs to be an absolute path",
        ),
        (
            with_hc(serde_json::json!({"ShmSize": -1})),
            400,
            "SHM size can not be less than 0",
        ),
        (
            with_hc(serde_json::json!({"CpuPeriod": 10})),
            400,
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            with_hc(serde_json::json!({"CpuQuota": 10})),
            400,
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ),
        (
            with_hc(serde_json::json!({"NanoCpus": 1_000_000_000i64, "CpuPeriod": 100000})),
            400,
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            with_hc(serde_json::json!({"NanoCpus": 1_000_000_000i64, "CpuQuota": 100000})),
            400,
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            with_hc(serde_json::json!({"MemorySwappiness": 200})),
            400,
            "Invalid value: 200, valid memory swappiness range is 0-100",
        ),
        (
            with_hc(serde_json::json!({"MemorySwap": 1_000_000_000i64})),
            400,
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (
            with_hc(serde_json::json!({"Isolation": "hyperv"})),
            400,
            "Invalid isolation: \"hyperv\" - linux only supports 'default'",
        ),
        (
            with_hc(serde_json::json!({"CgroupnsMode": "bogus"})),
            400,
            "invalid cgroup namespace mode: bogus",
        ),
        (
            with_hc(serde_json::json!({"CapAdd": ["NOPE"]})),
            400,
            "invalid CapAdd: unknown capability: \"CAP_NOPE\"",
        ),
        (
            with_hc(serde_json::json!({"CapDrop": ["nope"]})),
            400,
            "invalid CapDrop: unknown capability: \"CAP_NOPE\"",
        ),
        (
            with_hc(serde_json::json!({"ExtraHosts": ["nohost"]})),
            400,
            "bad format for add-host: \"nohost\"",
        ),
        (
            with_hc(serde_json::json!({"ExtraHosts": ["foo:notip"]})),
            400,
            "invalid IP address in add-host: \"notip\"",
        ),
        (
            with_hc(serde_json::json!({"Tmpfs": {"rel": ""}})),
            400,
            "invalid mount path: 'rel' mount path must be absolute",
        ),
        (
            serde_json::json!({"Image": "busybox", "Cmd": ["true"], "MacAddress": "02:42:ac:11:00:99", "HostConfig": {"NetworkMode": "host"}}),
            400,
            "conflicting options: mac-address and the network mode",
        ),
        (
            serde_json::json!({"Image": "busybox", "Cmd": ["true"], "Hostname": "h", "HostConfig": {"NetworkMode": "container:abc"}}),
            400,
            "conflicting options: hostname and the network mode",
        ),
        (
            with_hc(serde_json::json!({"NetworkMode": "container:abc", "Dns": ["1.1.1.1"]})),
            400,
            "conflicting options: dns and the network mode",
        ),
        (
            with_hc(serde_json::json!({"NetworkMode": "container:abc", "ExtraHosts": ["a:1.2.3.4"]})),
            400,
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            with_hc(serde_json::json!({"NetworkMode": "container:abc", "PublishAllPorts": true})),
            400,
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            serde_json::json!({"Image": "busybox", "Cmd": ["true"], "ExposedPorts": {"80/tcp": {}}, "HostConfig": {"NetworkMode": "container:abc"}}),
            400,
            "conflicting options: port exposing and the container type network mode",
        ),
        (
            with_hc(serde_json::json!({"NetworkMode": "container:abc", "Links": ["a:b"]})),
            400,
            "conflicting options: container type network can't be used with links. This would result in undefined behavior",
        ),
        (
            with_hc(serde_json::json!({"NetworkMode": "host", "Links": ["a:b"]})),
            400,
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ),
        (
            with_hc(serde_json::json!({"NetworkMode": "container:"})),
            400,
            "Invalid network mode: invalid container format container:<name|id>",
        ),
        (
            serde_json::json!({"Image": "busybox", "Cmd": ["true"], "NetworkingConfig": {"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "nope"}}}}}),
            400,
            "invalid IPv4 address: nope",
        ),
        (
            serde_json::json!({"Image": "busybox", "Cmd": ["true"], "NetworkingConfig": {"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv6Address": "nope"}}}}}),
            400,
            "invalid IPv6 address: nope",
        ),
        (
            serde_json::json!({"Image": "busybox", "Cmd": ["true"], "Env": ["=x"]}),
            400,
            "invalid environment variable: =x",
        ),
        (
            with_hc(serde_json::json!({"Memory": 10_000_000, "MemoryReservation": 20_000_000})),
            400,
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            with_hc(serde_json::json!({"PidMode": "container:nope"})),
            400,
            "No such container: nope",
        ),
        (
            with_hc(serde_json::json!({"IpcMode": "container:nope"})),
            400,
            "No such container: nope",
        ),
        (
            serde_json::json!({"Image": "busybox"}),
            400,
            "No command specified",
        ),
    ];
    for (body, code, msg) in bad {
        assert_eq!(create(&d, body.clone()), (code, msg.to_string()), "{body}");
    }
    // Before API 1.44 a create takes one endpoint (dockerd lists them in
    // map order; berth in name order).
    let (code, msg) = create(
        &d,
        serde_json::json!({"Image": "busybox", "Cmd": ["true"], "NetworkingConfig": {"EndpointsConfig": {"bridge": {}, "none": {}}}}),
    );
    assert_eq!(code, 400);
    assert_eq!(
        msg,
        "Container cannot be connected to network endpoints: bridge, none"
    );
    // Nothing was half-made.
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");

    // What dockerd accepts.
    let good = vec![
        with_hc(serde_json::json!({"AutoRemove": true, "RestartPolicy": {"Name": "no"}})),
        with_hc(serde_json::json!({"RestartPolicy": {"Name": "", "MaximumRetryCount": 3}})),
        with_hc(
            serde_json::json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 0}}),
        ),
        with_hc(serde_json::json!({"LogConfig": {"Type": "none", "Config": {"max-size": "1k"}}})),
        with_hc(
            serde_json::json!({"LogConfig": {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2", "compress": "true", "labels": "a", "env": "b", "tag": "x"}}}),
        ),
        with_hc(serde_json::json!({"Runtime": "runc"})),
        with_hc(serde_json::json!({"Isolation": "default"})),
        with_hc(serde_json::json!({"CapAdd": ["net_admin", "all"]})),
        with_hc(serde_json::json!({"ExtraHosts": ["foo:host-gateway", "bar:::1"]})),
        with_hc(serde_json::json!({"MemorySwap": -1, "MemorySwappiness": -1, "CpuQuota": -1})),
    ];
    for body in good {
        let (code, id) = create(&d, body.clone());
        assert_eq!(code, 201, "{body}: {id}");
    }

    // The docker CLI shows the daemon's words.
    let o = d.docker(&["create", "--log-driver", "nope", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "Error response from daemon: error looking up logging plugin nope: plugin \"nope\" not found"
        ),
        "{}",
        stderr(&o)
    );
    let o = d.docker(&["create", "--runtime", "nope", "busybox", "true"]);
    assert!(
        stderr(&o).contains("Error response from daemon: Unknown runtime specified nope"),
        "{}",
        stderr(&o)
    );
    // bollard: the same 400 and message.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(d.bollard().create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some("busybox".into()),
                cmd: Some(vec!["true".into()]),
                host_config: Some(bollard::models::HostConfig {
                    restart_policy: Some(bollard::models::RestartPolicy {
                        name: Some(bollard::models::RestartPolicyNameEnum::ALWAYS),
                        maximum_retry_count: Some(2),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .unwrap_err();
    match err {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            assert_eq!(status_code, 400);
            assert_eq!(
                message,
                "maximum retry count cannot be used with restart policy 'always'"
            );
        }
        e => panic!("{e:?}"),
    }
    rm_all(&d);
}

#[test]
fn runtime_is_echoed_and_config_mac_address_reaches_eth0() {
    let d = daemon();
    let id = d
        .docker_ok(&["create", "busybox", "true"])
        .trim()
        .to_string();
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", &id])
            .trim(),
        "runc"
    );
    let id2 = d
        .docker_ok(&["create", "--runtime", "runc", "busybox", "true"])
        .trim()
        .to_string();
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", &id2])
            .trim(),
        "runc"
    );
    // A runtime /info lists is accepted and echoed.
    let info = d.docker_ok(&["info", "--format", "{{json .Runtimes}}"]);
    let runtimes: HashMap<String, serde_json::Value> = serde_json::from_str(info.trim()).unwrap();
    for name in runtimes.keys() {
        let (code, cid) = create(&d, with_hc(serde_json::json!({"Runtime": name})));
        assert_eq!(code, 201, "{name}: {cid}");
        assert_eq!(
            d.docker_ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", &cid])
                .trim(),
            name
        );
    }

    // Config.MacAddress (API < 1.44): the default network's endpoint.
    let mac = "02:42:ac:11:ee:42";
    let (code, cid) = create(
        &d,
        serde_json::json!({"Image": "busybox", "Cmd": ["sh", "-c", "cat /sys/class/net/eth0/address; sleep 30"], "MacAddress": mac}),
    );
    assert_eq!(code, 201, "{cid}");
    d.docker_ok(&["start", &cid]);
    assert!(wait_for(Duration::from_secs(10), || d
        .docker_ok(&["logs", &cid])
        .contains(mac)));
    assert_eq!(d.docker_ok(&["logs", &cid]).trim(), mac);
    let (_, _, b) = d.raw("GET", &format!("/v1.41/containers/{cid}/json"), None);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["Config"]["MacAddress"], mac);
    assert_eq!(v["NetworkSettings"]["MacAddress"], mac);
    assert_eq!(
        v["NetworkSettings"]["Networks"]["bridge"]["MacAddress"],
        mac
    );
    // (The docker CLI 28 sends `--mac-address` per endpoint only, so it
    // is raw HTTP that exercises the pre-1.44 field.)
    rm_all(&d);
}

#[test]
fn update_checks_restart_policy_and_cpu_as_dockerd() {
    let d = daemon();
    let auto = d
        .docker_ok(&["create", "--rm", "busybox", "true"])
        .trim()
        .to_string();
    let plain = d
        .docker_ok(&["create", "busybox", "true"])
        .trim()
        .to_string();
    let update = |id: &str, body: serde_json::Value| -> (u16, String) {
        let (code, _, b) = d.raw(
            "POST",
            &format!("/v1.41/containers/{id}/update"),
            Some(body.to_string().as_bytes()),
        );
        (code, message(&b))
    };
    assert_eq!(
        update(&auto, serde_json::json!({"RestartPolicy": {"Name": "always"}})),
        (
            409,
            format!("Cannot update container {auto}: Restart policy cannot be updated because AutoRemove is enabled for the container")
        )
    );
    for id in [&auto, &plain] {
        for (body, msg) in [
            (
                serde_json::json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}),
                "maximum retry count cannot be used with restart policy 'always'",
            ),
            (
                serde_json::json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -2}}),
                "maximum retry count cannot be negative",
            ),
            (
                serde_json::json!({"RestartPolicy": {"Name": "nope"}}),
                "invalid restart policy 'nope'",
            ),
            (
                serde_json::json!({"CpuPeriod": 10}),
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ),
            (
                serde_json::json!({"NanoCpus": 1_000_000_000i64, "CpuPeriod": 100000}),
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ),
        ] {
            assert_eq!(update(id, body.clone()), (400, msg.to_string()), "{body}");
        }
    }
    assert_eq!(
        update(
            &plain,
            serde_json::json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
        )
        .0,
        200
    );
    assert_eq!(
        d.docker_ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            &plain
        ])
        .trim(),
        "on-failure:2"
    );
    let o = d.docker(&["update", "--restart", "always", &auto]);
    assert!(
        stderr(&o).contains(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        ),
        "{}",
        stderr(&o)
    );
    rm_all(&d);
}

// ---- B. the classic builder -----------------------------------------------

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
        wait_for(Duration::from_secs(20), || {
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

// ---- C. GET /containers/json -----------------------------------------------

fn ps(d: &Daemon, args: &[&str]) -> Vec<String> {
    let mut a = vec!["ps", "--format", "{{.Names}}"];
    a.extend_from_slice(args);
    d.docker_ok(&a)
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The raw list for a filters JSON: (status, names or message).
fn list(d: &Daemon, filters: &str) -> (u16, Result<Vec<String>, String>) {
    let q = format!(
        "/v1.41/containers/json?all=1&filters={}",
        filters
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            })
            .collect::<String>()
    );
    let (code, _, b) = d.raw("GET", &q, None);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
    match v.as_array() {
        Some(a) => (
            code,
            Ok(a.iter()
                .map(|c| {
                    c["Names"][0]
                        .as_str()
                        .unwrap_or("")
                        .trim_start_matches('/')
                        .to_string()
                })
                .collect()),
        ),
        None => (code, Err(message(&b))),
    }
}

#[test]
fn list_filters_as_dockerd() {
    let d = daemon();
    let pause = Duration::from_millis(1100);
    d.docker_ok(&["network", "create", "chknet"]);
    d.docker_ok(&["volume", "create", "chkvol"]);
    let host_dir = scratch();
    let bind = format!("{}:/hostmnt", host_dir.path().display());
    d.docker_ok(&[
        "create",
        "--name",
        "c-created",
        "-l",
        "a=1",
        "--expose",
        "80",
        "busybox",
        "true",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-run",
        "-l",
        "a=2",
        "-l",
        "b",
        "-p",
        "127.0.0.1::80",
        "-v",
        "chkvol:/data",
        "--network",
        "chknet",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    let _ = d.docker(&["run", "--name", "c-exit3", "busybox", "sh", "-c", "exit 3"]);
    std::thread::sleep(pause);
    d.docker_ok(&["run", "--name", "c-exit0", "-v", &bind, "busybox", "true"]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-paused",
        "--expose",
        "7000-7002/udp",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["pause", "c-paused"]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-healthy",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-unhealthy",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-starting",
        "--health-cmd",
        "true",
        "--health-interval",
        "60s",
        "busybox",
        "sleep",
        "300",
    ]);
    std::thread::sleep(pause);
    d.docker_ok(&["tag", "busybox", "chk/derived:1"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "c-derived",
        "-p",
        "127.0.0.1::9000-9001",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(wait_for(Duration::from_secs(15), || {
        ps(&d, &["--filter", "health=healthy"]) == names(&["c-healthy"])
            && ps(&d, &["--filter", "health=unhealthy"]) == names(&["c-unhealthy"])
    }));
    let run_port = d.docker_ok(&["port", "c-run", "80"]);
    let run_port = run_port.trim().rsplit(':').next().unwrap().to_string();
    let derived_port = d.docker_ok(&["port", "c-derived", "9001"]);
    let derived_port = derived_port.trim().rsplit(':').next().unwrap().to_string();

    let running = [
        "c-derived",
        "c-starting",
        "c-unhealthy",
        "c-healthy",
        "c-paused",
        "c-run",
    ];
    let everyone = [
        "c-derived",
        "c-starting",
        "c-unhealthy",
        "c-healthy",
        "c-paused",
        "c-exit0",
        "c-exit3",
        "c-run",
        "c-created",
    ];
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![], running.to_vec()),
        (names(&["-a"]), everyone.to_vec()),
        (names(&["-n", "2"]), vec!["c-derived", "c-starting"]),
        (
            names(&["-a", "-n", "3"]),
            vec!["c-derived", "c-starting", "c-unhealthy"],
        ),
        (names(&["-l"]), vec!["c-derived"]),
        (
            names(&["--filter", "status=exited"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (names(&["--filter", "status=created"]), vec!["c-created"]),
        (names(&["--filter", "status=paused"]), vec!["c-paused"]),
        (
            names(&["--filter", "status=running"]),
            vec![
                "c-derived",
                "c-starting",
                "c-unhealthy",
                "c-healthy",
                "c-run",
            ],
        ),
        (
            names(&["--filter", "status=exited", "--filter", "status=paused"]),
            vec!["c-paused", "c-exit0", "c-exit3"],
        ),
        // exited alone does not list stopped containers (dockerd: only status does).
        (names(&["--filter", "exited=3"]), vec![]),
        (names(&["-a", "--filter", "exited=3"]), vec!["c-exit3"]),
        (names(&["-a", "--filter", "exited=0"]), vec!["c-exit0"]),
        (names(&["--filter", "label=a"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "label=a"]),
            vec!["c-run", "c-created"],
        ),
        (names(&["-a", "--filter", "label=a=1"]), vec!["c-created"]),
        (names(&["-a", "--filter", "label=b"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "name=c-ex"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=^/c-ex"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=^c-ex"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=exit.$"]),
            vec!["c-exit0", "c-exit3"],
        ),
        (
            names(&["-a", "--filter", "name=run", "--filter", "name=paused"]),
            vec!["c-paused", "c-run"],
        ),
        (
            names(&["-a", "--filter", "ancestor=busybox"]),
            everyone.to_vec(),
        ),
        (
            names(&["-a", "--filter", "ancestor=chk/derived:1"]),
            everyone.to_vec(),
        ),
        (names(&["-a", "--filter", "ancestor=nosuchimage"]), vec![]),
        (names(&["-a", "--filter", "volume=chkvol"]), vec!["c-run"]),
        (names(&["-a", "--filter", "volume=/data"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "volume=/hostmnt"]),
            vec!["c-exit0"],
        ),
        (names(&["-a", "--filter", "network=chknet"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "network=bridge"]),
            vec![
                "c-derived",
                "c-starting",
                "c-unhealthy",
                "c-healthy",
                "c-paused",
                "c-exit0",
                "c-exit3",
                "c-created",
            ],
        ),
        (names(&["-a", "--filter", "network=nosuchnet"]), vec![]),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={run_port}"),
            ],
            vec!["c-run"],
        ),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={run_port}/tcp"),
            ],
            vec!["c-run"],
        ),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={run_port}/udp"),
            ],
            vec![],
        ),
        (
            vec![
                "-a".into(),
                "--filter".into(),
                format!("publish={derived_port}"),
            ],
            vec!["c-derived"],
        ),
        (names(&["-a", "--filter", "expose=80"]), vec!["c-run"]),
        (names(&["-a", "--filter", "expose=80/tcp"]), vec!["c-run"]),
        (
            names(&["-a", "--filter", "expose=7001/udp"]),
            vec!["c-paused"],
        ),
        (
            names(&["-a", "--filter", "expose=7000-7002/udp"]),
            vec!["c-paused"],
        ),
        (
            names(&["-a", "--filter", "expose=9000-9001"]),
            vec!["c-derived"],
        ),
        (
            names(&["-a", "--filter", "health=healthy"]),
            vec!["c-healthy"],
        ),
        (
            names(&["-a", "--filter", "health=unhealthy"]),
            vec!["c-unhealthy"],
        ),
        (
            names(&["-a", "--filter", "health=starting"]),
            vec!["c-starting"],
        ),
        (
            names(&["-a", "--filter", "health=none"]),
            vec![
                "c-derived",
                "c-paused",
                "c-exit0",
                "c-exit3",
                "c-run",
                "c-created",
            ],
        ),
        (
            names(&["-a", "--filter", "isolation=default"]),
            everyone.to_vec(),
        ),
        (names(&["-a", "--filter", "is-task=true"]), vec![]),
        (
            names(&["-a", "--filter", "is-task=false"]),
            everyone.to_vec(),
        ),
        (
            names(&["-a", "--filter", "before=c-exit3"]),
            vec!["c-run", "c-created"],
        ),
        (
            names(&["-a", "--filter", "since=c-exit3"]),
            vec![
                "c-derived",
                "c-starting",
                "c-unhealthy",
                "c-healthy",
                "c-paused",
                "c-exit0",
            ],
        ),
        (
            names(&[
                "-a",
                "--filter",
                "before=c-exit3",
                "--filter",
                "since=c-created",
            ]),
            vec!["c-run"],
        ),
        (names(&["-a", "--filter", "id=nope"]), vec![]),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(ps(&d, &a), names(&want), "docker ps {args:?}");
    }
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "c-exit3"]);
    assert_eq!(
        ps(&d, &["-a", "--filter", &format!("id={}", &id.trim()[..10])]),
        names(&["c-exit3"])
    );

    // ancestor: images built on the named one count too; an ID prefix names it.
    let child_ctx = scratch();
    std::fs::write(
        child_ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN touch /x\n",
    )
    .unwrap();
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "chk/child"])
        .arg(child_ctx.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    d.docker_ok(&["create", "--name", "c-child", "chk/child", "true"]);
    let mut with_child = vec!["c-child"];
    with_child.extend(everyone);
    assert_eq!(
        ps(&d, &["-a", "--filter", "ancestor=busybox"]),
        names(&with_child)
    );
    let bb = d.docker_ok(&["inspect", "-f", "{{.Id}}", "busybox"]);
    let bb_short = &bb.trim()[7..19];
    assert_eq!(
        ps(&d, &["-a", "--filter", &format!("ancestor={bb_short}")]),
        names(&with_child)
    );
    assert_eq!(
        ps(&d, &["-a", "--filter", "ancestor=chk/child"]),
        names(&["c-child"])
    );
    d.docker_ok(&["rm", "c-child"]);
    d.docker_ok(&["rmi", "chk/child"]);

    // The columns dockerd fills: quoted arguments, networks, and ports
    // only while the container has its network.
    let rows = d.docker_ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}|{{.Command}}|{{.Networks}}|{{.Ports}}",
    ]);
    for want in [
        "c-exit3|\"sh -c 'exit 3'\"|bridge|".to_string(),
        "c-created|\"true\"|bridge|".to_string(),
        format!("c-run|\"sleep 300\"|chknet|127.0.0.1:{run_port}->80/tcp"),
        "c-paused|\"sleep 300\"|bridge|7000-7002/udp".to_string(),
    ] {
        assert!(rows.lines().any(|l| l == want), "{want} not in\n{rows}");
    }

    // Bad filters: dockerd's status and words.
    let errors = [
        (r#"{"bogus":{"1":true}}"#, 400, "invalid filter 'bogus'"),
        (r#"{"status":{"bogus":true}}"#, 400, "invalid filter 'status=bogus'"),
        (r#"{"health":{"bogus":true}}"#, 400, "Unrecognised filter value for health: bogus"),
        (r#"{"is-task":{"maybe":true}}"#, 400, "invalid filter 'is-task=[maybe]'"),
        (r#"{"exited":{"abc":true}}"#, 500, "strconv.Atoi: parsing \"abc\": invalid syntax"),
        (r#"{"before":{"nope":true}}"#, 500, "no such container nope"),
        (r#"{"since":{"nope":true}}"#, 500, "no such container nope"),
        (r#"{"publish":{"abc":true}}"#, 500, "error while looking up for publish abc: strconv.ParseUint: parsing \"abc\": invalid syntax"),
        (r#"{"expose":{"abc/xyz":true}}"#, 500, "error while looking up for expose abc/xyz: strconv.ParseUint: parsing \"abc\": invalid syntax"),
        (r#"{"publish":{"2-1":true}}"#, 500, "error while looking up for publish 2-1: Invalid range specified for the Port: 2-1"),
    ];
    for (f, code, msg) in errors {
        assert_eq!(list(&d, f), (code, Err(msg.to_string())), "{f}");
    }
    // The legacy list form of filters, and a bad regex matching nothing.
    assert_eq!(
        list(&d, r#"{"label":["a=2"]}"#),
        (200, Ok(names(&["c-run"])))
    );
    assert_eq!(list(&d, r#"{"name":{"[":true}}"#), (200, Ok(vec![])));

    // size: SizeRw counts what the container wrote; SizeRootFs adds the image.
    d.docker_ok(&[
        "exec",
        "c-run",
        "dd",
        "if=/dev/zero",
        "of=/blob",
        "bs=1024",
        "count=100",
    ]);
    let (_, _, b) = d.raw(
        "GET",
        "/v1.41/containers/json?size=1&filters=%7B%22name%22%3A%7B%22c-run%22%3Atrue%7D%7D",
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let rw = v[0]["SizeRw"].as_i64().unwrap();
    let root = v[0]["SizeRootFs"].as_i64().unwrap();
    assert!(rw >= 100 * 1024, "{v}");
    assert!(root > rw, "{v}");
    let (_, _, b) = d.raw("GET", "/v1.41/containers/json", None);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(
        v[0].get("SizeRw").is_none() || v[0]["SizeRw"].is_null(),
        "{v}"
    );

    d.docker_ok(&["unpause", "c-paused"]);
    rm_all(&d);
    d.docker_ok(&["network", "rm", "chknet"]);
    d.docker_ok(&["volume", "rm", "chkvol"]);
    d.docker_ok(&["rmi", "chk/derived:1"]);
    let _ = Path::new("/");
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
