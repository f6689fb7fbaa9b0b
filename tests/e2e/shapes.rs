//! Issue 15: berthd's JSON answers carry every key dockerd emits, in the
//! shape of the negotiated API version (1.41 as dockerd 20.10 answers it,
//! 1.50 as moby 28's types give it) — checked through raw HTTP at both
//! versions and through bollard's typed API.

use berth_tests::fixtures::import_busybox;
use berth_tests::*;
use serde_json::{json, Value};

const VERSIONS: [&str; 2] = ["1.41", "1.50"];

/// Every key of an endpoint in `NetworkSettings.Networks` at 1.41.
const ENDPOINT_KEYS: &[&str] = &[
    "IPAMConfig",
    "Links",
    "Aliases",
    "NetworkID",
    "EndpointID",
    "Gateway",
    "IPAddress",
    "IPPrefixLen",
    "IPv6Gateway",
    "GlobalIPv6Address",
    "GlobalIPv6PrefixLen",
    "MacAddress",
    "DriverOpts",
];

fn get(d: &Daemon, path: &str) -> Value {
    let (status, _, body) = d.raw("GET", path, None);
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The value at a dotted key path (`HostConfig.Runtime`); keys only.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.as_object()?.get(k))
}

#[track_caller]
fn has<'a>(v: &'a Value, path: &str) -> &'a Value {
    at(v, path).unwrap_or_else(|| panic!("key {path} missing in {v:#}"))
}

#[track_caller]
fn lacks(v: &Value, path: &str) {
    assert!(at(v, path).is_none(), "key {path} should be absent: {v:#}");
}

#[track_caller]
fn eq(v: &Value, path: &str, want: Value) {
    assert_eq!(has(v, path), &want, "at {path}");
}

/// A user-defined network, a running container on it and on `bridge`, an
/// exited one on the default network.
fn scene(d: &Daemon) -> (String, String) {
    import_busybox(d, "busybox:latest");
    let net = d
        .docker_ok(&["network", "create", "shp"])
        .trim()
        .to_string();
    let web = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "shp",
            "--network-alias",
            "webalias",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    d.docker_ok(&["network", "connect", "bridge", "web"]);
    d.docker_ok(&["run", "--name", "ex", "busybox", "true"]);
    (net, web)
}

#[test]
fn container_inspect_has_every_key_in_each_versions_shape() {
    let d = Daemon::start();
    let (_, web) = scene(&d);
    for v in VERSIONS {
        for name in ["web", "ex"] {
            let c = get(&d, &format!("/v{v}/containers/{name}/json"));
            eq(&c, "HostConfig.Runtime", json!("runc"));
            for k in [
                "CpuRealtimePeriod",
                "CpuRealtimeRuntime",
                "OomScoreAdj",
                "ShmSize",
            ] {
                assert!(has(&c, &format!("HostConfig.{k}")).is_number(), "{k}");
            }
            for k in [
                "Links",
                "VolumesFrom",
                "CapAdd",
                "ExtraHosts",
                "DeviceRequests",
            ] {
                eq(&c, &format!("HostConfig.{k}"), Value::Null);
            }
            eq(&c, "HostConfig.MemorySwappiness", Value::Null);
            eq(&c, "HostConfig.OomKillDisable", json!(false));
            assert!(has(&c, "HostConfig.MaskedPaths")
                .as_array()
                .is_some_and(|m| m.contains(&json!("/proc/kcore"))));
            assert!(has(&c, "HostConfig.ReadonlyPaths").is_array());
            for (k, zero) in [
                ("Domainname", json!("")),
                ("User", json!("")),
                ("WorkingDir", json!("")),
                ("Entrypoint", Value::Null),
                ("OnBuild", Value::Null),
                ("Volumes", Value::Null),
            ] {
                eq(&c, &format!("Config.{k}"), zero);
            }
            eq(&c, "NetworkSettings.SecondaryIPAddresses", Value::Null);
            eq(&c, "NetworkSettings.HairpinMode", json!(false));
            eq(&c, "ExecIDs", Value::Null);
            eq(&c, "State.Error", json!(""));
            // KernelMemory: always sent by 20.10, omitted when unset from 1.42.
            if v == "1.41" {
                eq(&c, "HostConfig.KernelMemory", json!(0));
            } else {
                lacks(&c, "HostConfig.KernelMemory");
            }
        }
        let c = get(&d, &format!("/v{v}/containers/web/json"));
        let nets = has(&c, "NetworkSettings.Networks").as_object().unwrap();
        assert_eq!(nets.len(), 2, "{nets:?}");
        for ep in nets.values() {
            for k in ENDPOINT_KEYS {
                has(ep, k);
            }
            assert!(!has(ep, "IPAddress").as_str().unwrap().is_empty());
            // DNSNames came with 1.44, GwPriority with 1.48.
            if v == "1.41" {
                lacks(ep, "DNSNames");
                lacks(ep, "GwPriority");
            } else {
                has(ep, "DNSNames");
                eq(ep, "GwPriority", json!(0));
            }
        }
        // Before 1.45 a user-defined network's aliases also name the short
        // ID and the hostname; from 1.45 they are exactly what was asked.
        let aliases = has(&nets["shp"], "Aliases");
        if v == "1.41" {
            assert_eq!(aliases, &json!(["webalias", &web[..12]]));
        } else {
            assert_eq!(aliases, &json!(["webalias"]));
        }
    }
    // The typed client sees the same.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let docker = d.bollard().negotiate_version().await.unwrap();
        let c = docker
            .inspect_container(
                "web",
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .unwrap();
        let hc = c.host_config.unwrap();
        assert_eq!(hc.runtime.as_deref(), Some("runc"));
        assert_eq!(hc.cpu_realtime_period, Some(0));
        let cfg = c.config.unwrap();
        assert_eq!(cfg.domainname.as_deref(), Some(""));
        assert_eq!(cfg.working_dir.as_deref(), Some(""));
        let nets = c.network_settings.unwrap().networks.unwrap();
        assert_eq!(nets["shp"].aliases, Some(vec!["webalias".to_string()]));
        assert!(nets["bridge"]
            .ip_address
            .as_deref()
            .is_some_and(|a| !a.is_empty()));
    });
}

#[test]
fn container_list_and_df_show_every_network_with_endpoint_settings() {
    let d = Daemon::start();
    let (net, _) = scene(&d);
    let bridge_id = has(&get(&d, "/networks/bridge"), "Id").clone();
    for v in VERSIONS {
        let list = get(&d, &format!("/v{v}/containers/json?all=1"));
        let df = get(&d, &format!("/v{v}/system/df"));
        for (what, items) in [("list", &list), ("df", has(&df, "Containers"))] {
            let items = items.as_array().unwrap();
            let web = items
                .iter()
                .find(|c| c["Names"] == json!(["/web"]))
                .unwrap_or_else(|| panic!("{what}: no web in {items:?}"));
            let nets = has(web, "NetworkSettings.Networks").as_object().unwrap();
            assert_eq!(
                nets.keys().collect::<Vec<_>>(),
                ["bridge", "shp"],
                "{what} at {v}"
            );
            for ep in nets.values() {
                for k in ENDPOINT_KEYS {
                    has(ep, k);
                }
                assert!(!has(ep, "IPAddress").as_str().unwrap().is_empty());
                assert!(!has(ep, "MacAddress").as_str().unwrap().is_empty());
            }
            eq(&nets["shp"], "NetworkID", json!(net));
            eq(&nets["bridge"], "NetworkID", bridge_id.clone());
            for c in items {
                for k in [
                    "Id", "Names", "Image", "ImageID", "Command", "Created", "Ports",
                ] {
                    has(c, k);
                }
                for k in ["Labels", "State", "Status", "HostConfig", "Mounts"] {
                    has(c, k);
                }
            }
        }
        // dockerd's list view carries addresses, not aliases.
        let web = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Names"] == json!(["/web"]))
            .unwrap();
        eq(web, "NetworkSettings.Networks.shp.Aliases", Value::Null);
        if v == "1.41" {
            eq(&df, "BuilderSize", json!(0));
        } else {
            lacks(&df, "BuilderSize");
        }
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let docker = d.bollard().negotiate_version().await.unwrap();
        let list = docker
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::new()
                    .all(true)
                    .build(),
            ))
            .await
            .unwrap();
        let web = list
            .iter()
            .find(|c| c.names == Some(vec!["/web".to_string()]))
            .unwrap();
        let nets = web
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.clone())
            .unwrap();
        assert_eq!(nets.len(), 2);
        assert_eq!(nets["shp"].network_id.as_deref(), Some(net.as_str()));
        assert!(nets["shp"]
            .gateway
            .as_deref()
            .is_some_and(|g| !g.is_empty()));
    });
}

#[test]
fn image_inspect_config_follows_the_version() {
    let d = daemon();
    let old = get(&d, "/v1.41/images/busybox/json");
    for k in [
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "Tty",
        "Env",
        "Cmd",
        "Image",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "OnBuild",
        "Labels",
    ] {
        has(&old, &format!("Config.{k}"));
        has(&old, &format!("ContainerConfig.{k}"));
    }
    eq(&old, "Config.Entrypoint", Value::Null);
    eq(&old, "Container", json!(""));
    assert_eq!(has(&old, "VirtualSize"), has(&old, "Size"));
    eq(&old, "GraphDriver.Name", json!("overlay2"));
    has(&old, "Metadata.LastTagTime");
    let new = get(&d, "/v1.50/images/busybox/json");
    for k in [
        "Hostname",
        "Domainname",
        "AttachStdin",
        "Tty",
        "Image",
        "Entrypoint",
    ] {
        lacks(&new, &format!("Config.{k}"));
    }
    for k in ["ContainerConfig", "Container", "VirtualSize"] {
        lacks(&new, k);
    }
    eq(&new, "RepoDigests", json!([]));
    for v in VERSIONS {
        for item in get(&d, &format!("/v{v}/images/json")).as_array().unwrap() {
            for k in [
                "Containers",
                "Created",
                "Id",
                "Labels",
                "ParentId",
                "RepoTags",
            ] {
                has(item, k);
            }
            assert_eq!(at(item, "VirtualSize").is_some(), v == "1.41");
        }
        for h in get(&d, &format!("/v{v}/images/busybox/history"))
            .as_array()
            .unwrap()
        {
            for k in ["Comment", "Created", "CreatedBy", "Id", "Size", "Tags"] {
                has(h, k);
            }
        }
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let docker = d.bollard().negotiate_version().await.unwrap();
        let i = docker.inspect_image("busybox").await.unwrap();
        assert_eq!(i.repo_digests, Some(vec![]));
        assert!(i.config.is_some());
        assert_eq!(i.graph_driver.map(|g| g.name), Some("overlay2".to_string()));
    });
}

#[test]
fn info_version_networks_volumes_and_execs_carry_dockerds_keys() {
    let d = daemon();
    d.docker_ok(&["volume", "create", "vol1"]);
    d.docker_ok(&["run", "-d", "--name", "ec", "busybox", "sleep", "1000"]);
    let (st, _, b) = d.raw(
        "POST",
        "/v1.41/containers/ec/exec",
        Some(br#"{"Cmd":["true"],"AttachStdout":true}"#),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
    let exec: Value = serde_json::from_slice(&b).unwrap();
    let exec = exec["Id"].as_str().unwrap().to_string();
    for v in VERSIONS {
        let i = get(&d, &format!("/v{v}/info"));
        eq(&i, "DefaultRuntime", json!("runc"));
        has(&i, "Runtimes.runc");
        eq(&i, "GenericResources", Value::Null);
        eq(&i, "Swarm.RemoteManagers", Value::Null);
        let hub = &i["RegistryConfig"]["IndexConfigs"]["docker.io"];
        assert_eq!(hub["Official"], json!(true), "{i:#}");
        assert_eq!(hub["Secure"], json!(true));
        if v == "1.41" {
            eq(&i, "BridgeNfIptables", json!(false));
            eq(
                &i,
                "ContainerdCommit.Expected",
                has(&i, "ContainerdCommit.ID").clone(),
            );
            eq(
                &i,
                "RegistryConfig.AllowNondistributableArtifactsCIDRs",
                json!([]),
            );
            lacks(&i, "CDISpecDirs");
        } else {
            lacks(&i, "BridgeNfIptables");
            lacks(&i, "ContainerdCommit.Expected");
            lacks(&i, "RegistryConfig.AllowNondistributableArtifactsCIDRs");
            eq(&i, "CDISpecDirs", json!([]));
        }
        let ver = get(&d, &format!("/v{v}/version"));
        for k in [
            "Platform.Name",
            "Version",
            "ApiVersion",
            "GitCommit",
            "GoVersion",
            "Os",
            "Arch",
        ] {
            has(&ver, k);
        }
        // The default bridge: no IPAM options were ever given.
        let net = get(&d, &format!("/v{v}/networks/bridge"));
        eq(&net, "IPAM.Options", Value::Null);
        eq(&net, "ConfigFrom.Network", json!(""));
        eq(&net, "ConfigOnly", json!(false));
        assert_eq!(at(&net, "EnableIPv4").is_some(), v == "1.50");
        for net in get(&d, &format!("/v{v}/networks")).as_array().unwrap() {
            for k in [
                "Name",
                "Id",
                "Created",
                "Scope",
                "Driver",
                "EnableIPv6",
                "IPAM",
                "Internal",
            ] {
                has(net, k);
            }
        }
        let vol = get(&d, &format!("/v{v}/volumes/vol1"));
        eq(&vol, "Labels", Value::Null);
        eq(&vol, "Options", Value::Null);
        eq(&vol, "Scope", json!("local"));
        let vols = get(&d, &format!("/v{v}/volumes"));
        eq(&vols, "Warnings", Value::Null);
        let e = get(&d, &format!("/v{v}/exec/{exec}/json"));
        eq(&e, "ExitCode", Value::Null);
        eq(&e, "ProcessConfig.privileged", json!(false));
        lacks(&e, "ProcessConfig.user");
        for k in [
            "ID",
            "Running",
            "OpenStdin",
            "CanRemove",
            "ContainerID",
            "DetachKeys",
            "Pid",
        ] {
            has(&e, k);
        }
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let docker = d.bollard().negotiate_version().await.unwrap();
        let i = docker.info().await.unwrap();
        assert_eq!(i.default_runtime.as_deref(), Some("runc"));
        let reg = i.registry_config.unwrap();
        assert_eq!(reg.index_configs.unwrap()["docker.io"].official, Some(true));
        let e = docker.inspect_exec(&exec).await.unwrap();
        assert_eq!(e.exit_code, None);
        assert_eq!(e.running, Some(false));
    });
}

fn post(d: &Daemon, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, _, b) = d.raw("POST", path, body.map(str::as_bytes));
    let v = if b.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&b)
            .unwrap_or_else(|e| panic!("POST {path}: {e}: {}", String::from_utf8_lossy(&b)))
    };
    (status, v)
}

#[test]
fn operation_answers_prunes_and_events_carry_dockerds_keys() {
    let d = daemon();
    for v in VERSIONS {
        d.docker_ok(&["volume", "create", "named"]);
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (st, c) = post(
            &d,
            &format!("/v{v}/containers/create?name=op"),
            Some(r#"{"Image":"busybox","Cmd":["sleep","1000"]}"#),
        );
        assert_eq!(st, 201, "{c}");
        assert_eq!(c["Warnings"], json!([]), "{c}");
        let id = c["Id"].as_str().unwrap().to_string();
        // A bare API create: dockerd's create fills these in.
        let i = get(&d, &format!("/v{v}/containers/op/json"));
        eq(&i, "HostConfig.OomKillDisable", json!(false));
        eq(&i, "HostConfig.Runtime", json!("runc"));
        eq(&i, "HostConfig.NetworkMode", json!("default"));
        eq(&i, "Config.Env", Value::Null);
        eq(&i, "Config.Labels", json!({}));
        eq(&i, "HostConfig.ConsoleSize", json!([0, 0]));
        assert_eq!(post(&d, &format!("/v{v}/containers/op/start"), None).0, 204);
        // A one-shot sample has no previous one: moby's zero CPU stats.
        let st = get(
            &d,
            &format!("/v{v}/containers/op/stats?stream=0&one-shot=1"),
        );
        for k in [
            "cpu_usage.total_usage",
            "cpu_usage.usage_in_kernelmode",
            "cpu_usage.usage_in_usermode",
            "throttling_data.periods",
            "throttling_data.throttled_periods",
            "throttling_data.throttled_time",
        ] {
            eq(&st, &format!("precpu_stats.{k}"), json!(0));
            has(&st, &format!("cpu_stats.{k}"));
        }
        for k in [
            "read",
            "preread",
            "name",
            "id",
            "pids_stats",
            "blkio_stats",
            "memory_stats",
        ] {
            has(&st, k);
        }
        let top = get(&d, &format!("/v{v}/containers/op/top"));
        assert!(has(&top, "Titles").is_array() && has(&top, "Processes").is_array());
        let (st, u) = post(
            &d,
            &format!("/v{v}/containers/op/update"),
            Some(r#"{"CpuShares":512}"#),
        );
        assert_eq!(st, 200, "{u}");
        eq(&u, "Warnings", Value::Null);
        assert_eq!(post(&d, &format!("/v{v}/containers/op/kill"), None).0, 204);
        let (st, w) = post(&d, &format!("/v{v}/containers/op/wait"), None);
        assert_eq!(st, 200);
        eq(&w, "StatusCode", json!(137));
        // 20.10 sent `"Error": null`; moby 23+ (1.42) omits it when unset.
        if v == "1.41" {
            eq(&w, "Error", Value::Null);
        } else {
            lacks(&w, "Error");
        }
        for ch in get(&d, &format!("/v{v}/containers/op/changes"))
            .as_array()
            .into_iter()
            .flatten()
        {
            has(ch, "Path");
            has(ch, "Kind");
        }
        let (_, p) = post(&d, &format!("/v{v}/containers/prune"), None);
        eq(&p, "ContainersDeleted", json!([id]));
        eq(&p, "SpaceReclaimed", json!(0));
        let (_, p) = post(&d, &format!("/v{v}/containers/prune"), None);
        eq(&p, "ContainersDeleted", Value::Null);
        let (_, p) = post(&d, &format!("/v{v}/images/prune"), None);
        eq(&p, "ImagesDeleted", Value::Null);
        has(&p, "SpaceReclaimed");
        let (_, p) = post(&d, &format!("/v{v}/networks/prune"), None);
        eq(&p, "NetworksDeleted", Value::Null);
        // Before 1.42 a volume prune also takes named volumes.
        let (_, p) = post(&d, &format!("/v{v}/volumes/prune"), None);
        if v == "1.41" {
            eq(&p, "VolumesDeleted", json!(["named"]));
        } else {
            eq(&p, "VolumesDeleted", json!([]));
            d.docker_ok(&["volume", "rm", "named"]);
        }
        // A bounded replay: `until` is at most two seconds ahead.
        let (st, _, body) = d.raw(
            "GET",
            &format!("/v{v}/events?since={since}&until={}", since + 2),
            None,
        );
        assert_eq!(st, 200);
        let events: Vec<Value> = String::from_utf8_lossy(&body)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let create = events
            .iter()
            .find(|e| e["Type"] == "container" && e["Action"] == "create")
            .unwrap_or_else(|| panic!("no create event in {events:?}"));
        for k in [
            "status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano",
        ] {
            has(create, k);
        }
        eq(create, "Actor.ID", json!(id));
        eq(create, "Actor.Attributes.image", json!("busybox"));
        let connect = events
            .iter()
            .find(|e| e["Type"] == "network" && e["Action"] == "connect")
            .unwrap_or_else(|| panic!("no connect event in {events:?}"));
        for k in ["status", "id", "from"] {
            lacks(connect, k);
        }
        has(connect, "Actor.Attributes.container");
    }
}
