use super::*;

#[test]
fn networks_create_inspect_list_connect_disconnect_remove_prune() {
    let d = daemon();
    rt().block_on(async {
        let docker = client(&d).await;
        let created = docker
            .create_network(NetworkCreateRequest {
                name: "sdknet".into(),
                driver: Some("bridge".into()),
                attachable: Some(true),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![IpamConfig {
                        subnet: Some("192.168.237.0/24".into()),
                        gateway: Some("192.168.237.1".into()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                labels: Some(labels(&[("sdk", "net")])),
                ..Default::default()
            })
            .await
            .expect("create network");
        assert!(is_hex_id(&created.id), "{created:?}");
        let err = docker
            .create_network(NetworkCreateRequest {
                name: "sdknet".into(),
                ..Default::default()
            })
            .await
            .expect_err("duplicate name");
        assert_eq!(status_of(&err), 409, "{err:?}");

        let n = docker
            .inspect_network("sdknet", None::<InspectNetworkOptions>)
            .await
            .expect("inspect");
        assert_eq!(n.id.as_deref(), Some(created.id.as_str()));
        assert_eq!(n.name.as_deref(), Some("sdknet"));
        assert_eq!(n.driver.as_deref(), Some("bridge"));
        assert_eq!(n.scope.as_deref(), Some("local"));
        assert_eq!(n.attachable, Some(true));
        assert_eq!(n.internal, Some(false));
        let ipam = n.ipam.expect("ipam").config.expect("ipam config");
        assert_eq!(ipam[0].subnet.as_deref(), Some("192.168.237.0/24"));
        assert_eq!(ipam[0].gateway.as_deref(), Some("192.168.237.1"));
        assert_eq!(
            n.labels.and_then(|l| l.get("sdk").cloned()).as_deref(),
            Some("net")
        );
        assert!(n.containers.unwrap_or_default().is_empty());

        for f in [
            ("name", "sdknet"),
            ("label", "sdk=net"),
            ("driver", "bridge"),
            ("type", "custom"),
        ] {
            let l = docker
                .list_networks(Some(
                    ListNetworksOptionsBuilder::new()
                        .filters(&filters(&[f]))
                        .build(),
                ))
                .await
                .expect("list");
            let names: Vec<_> = l.iter().filter_map(|n| n.name.clone()).collect();
            if f.0 == "driver" {
                assert!(
                    names.contains(&"sdknet".to_string()) && names.contains(&"bridge".to_string()),
                    "{f:?}: {names:?}"
                );
            } else {
                assert_eq!(names, strings(&["sdknet"]), "{f:?}");
            }
        }
        let all = docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .expect("list");
        let mut names: Vec<_> = all.iter().filter_map(|n| n.name.clone()).collect();
        names.sort();
        assert_eq!(names, strings(&["bridge", "host", "none", "sdknet"]));

        // connect with a fixed address and an alias; a peer resolves the alias.
        let a = run_sleeper(&docker, "neta", Default::default()).await;
        docker
            .connect_network(
                "sdknet",
                NetworkConnectRequest {
                    container: Some(a.clone()),
                    endpoint_config: Some(EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some("192.168.237.50".into()),
                            ..Default::default()
                        }),
                        aliases: Some(strings(&["alias-a"])),
                        ..Default::default()
                    }),
                },
            )
            .await
            .expect("connect");
        let n = docker
            .inspect_network("sdknet", None::<InspectNetworkOptions>)
            .await
            .expect("inspect");
        let members = n.containers.expect("containers");
        let m = members.get(&a).expect("a is a member");
        assert_eq!(m.name.as_deref(), Some("neta"));
        assert_eq!(m.ipv4_address.as_deref(), Some("192.168.237.50/24"));
        let ep = docker
            .inspect_container(&a, None::<InspectContainerOptions>)
            .await
            .expect("inspect a")
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|n| n.get("sdknet").cloned())
            .expect("a's endpoint on sdknet");
        assert_eq!(ep.ip_address.as_deref(), Some("192.168.237.50"));
        assert_eq!(ep.gateway.as_deref(), Some("192.168.237.1"));
        assert_eq!(ep.ip_prefix_len, Some(24));
        assert_eq!(ep.network_id.as_deref(), Some(created.id.as_str()));
        assert!(ep
            .aliases
            .unwrap_or_default()
            .contains(&"alias-a".to_string()));

        let mut net_cfg = HashMap::new();
        net_cfg.insert("sdknet".to_string(), EndpointSettings::default());
        let b = run_sleeper(
            &docker,
            "netb",
            ContainerCreateBody {
                host_config: Some(HostConfig {
                    network_mode: Some("sdknet".into()),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(net_cfg),
                }),
                ..Default::default()
            },
        )
        .await;
        let (out, _, code) = exec(&docker, &b, &["nslookup", "alias-a"]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("192.168.237.50"), "{out}");
        let (_, _, code) = exec(&docker, &b, &["ping", "-c", "1", "-W", "2", "neta"]).await;
        assert_eq!(code, 0, "netb pings neta by name");

        // A network in use cannot go.
        let err = docker.remove_network("sdknet").await.expect_err("in use");
        assert_eq!(status_of(&err), 403, "{err:?}");

        docker
            .disconnect_network(
                "sdknet",
                NetworkDisconnectRequest {
                    container: Some(a.clone()),
                    force: Some(false),
                },
            )
            .await
            .expect("disconnect");
        let nets = docker
            .inspect_container(&a, None::<InspectContainerOptions>)
            .await
            .expect("inspect a")
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default();
        assert!(!nets.contains_key("sdknet"), "{nets:?}");
        let (_, _, code) = exec(&docker, &b, &["nslookup", "alias-a"]).await;
        assert_ne!(code, 0, "the alias is gone with the endpoint");

        for c in [&a, &b] {
            docker
                .remove_container(
                    c,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await
                .expect("rm");
        }
        docker.remove_network("sdknet").await.expect("rm network");
        let err = docker
            .inspect_network("sdknet", None::<InspectNetworkOptions>)
            .await
            .expect_err("gone");
        assert_eq!(status_of(&err), 404, "{err:?}");

        // prune: unused networks matching the filter.
        for name in ["prune1", "prune2", "keep1"] {
            docker
                .create_network(NetworkCreateRequest {
                    name: name.into(),
                    labels: Some(labels(&[(
                        "gen",
                        if name.starts_with("prune") {
                            "old"
                        } else {
                            "new"
                        },
                    )])),
                    ..Default::default()
                })
                .await
                .expect("create");
        }
        let p = docker
            .prune_networks(Some(
                PruneNetworksOptionsBuilder::new()
                    .filters(&filters(&[("label", "gen=old")]))
                    .build(),
            ))
            .await
            .expect("prune");
        let mut deleted = p.networks_deleted.expect("networks deleted");
        deleted.sort();
        assert_eq!(deleted, strings(&["prune1", "prune2"]));
        docker.remove_network("keep1").await.expect("rm keep1");
    });
}
