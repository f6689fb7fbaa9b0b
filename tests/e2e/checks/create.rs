//! A. Create-time validation, and what create and update echo.

use super::*;

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
    assert!(wait_for_polling(POLL, Duration::from_secs(10), || d
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
