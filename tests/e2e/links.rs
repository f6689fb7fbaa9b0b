//! Legacy links (`--link name:alias`), through the real docker CLI, bollard
//! and raw HTTP. The expected environment, `/etc/hosts` lines, statuses and
//! messages are what dockerd 20.10.24 answered to the same commands
//! (`{IP}`, `{HOSTNAME}` stand for what differs from run to run).

use std::time::Duration;

use berth_tests::*;

/// dockerd's `docker run --rm --name app --link web:db -e X=1 busybox env`
/// for `web` run with `--expose 80/tcp --expose 53/udp -e FOO=bar -e HOME=/x
/// -e PATH=/bin`.
const DOCKERD_ENV_DB: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOSTNAME={HOSTNAME}
DB_PORT=udp://{IP}:53
DB_PORT_53_UDP=udp://{IP}:53
DB_PORT_53_UDP_ADDR={IP}
DB_PORT_53_UDP_PORT=53
DB_PORT_53_UDP_PROTO=udp
DB_PORT_80_TCP=tcp://{IP}:80
DB_PORT_80_TCP_ADDR={IP}
DB_PORT_80_TCP_PORT=80
DB_PORT_80_TCP_PROTO=tcp
DB_NAME=/app/db
DB_ENV_FOO=bar
X=1
HOME=/root
";

/// dockerd's `docker run --rm --name app2 --link web2:w2 busybox env` for
/// `web2` run with `--expose 8000-8002 --expose 9000/tcp -e HOSTNAME=foo
/// -e A=has=eq -e EMPTY=`.
const DOCKERD_ENV_RANGE: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOSTNAME={HOSTNAME}
W2_PORT=tcp://{IP}:8000
W2_PORT_8000_TCP_START=tcp://{IP}:8000
W2_PORT_8000_TCP_ADDR={IP}
W2_PORT_8000_TCP_PROTO=tcp
W2_PORT_8000_TCP_PORT_START=8000
W2_PORT_8000_TCP_END=tcp://{IP}:8002
W2_PORT_8000_TCP_PORT_END=8002
W2_PORT_8000_TCP=tcp://{IP}:8000
W2_PORT_8000_TCP_PORT=8000
W2_PORT_8001_TCP=tcp://{IP}:8001
W2_PORT_8001_TCP_ADDR={IP}
W2_PORT_8001_TCP_PORT=8001
W2_PORT_8001_TCP_PROTO=tcp
W2_PORT_8002_TCP=tcp://{IP}:8002
W2_PORT_8002_TCP_ADDR={IP}
W2_PORT_8002_TCP_PORT=8002
W2_PORT_8002_TCP_PROTO=tcp
W2_PORT_9000_TCP=tcp://{IP}:9000
W2_PORT_9000_TCP_ADDR={IP}
W2_PORT_9000_TCP_PORT=9000
W2_PORT_9000_TCP_PROTO=tcp
W2_NAME=/app2/w2
W2_ENV_HOSTNAME=foo
W2_ENV_A=has=eq
W2_ENV_EMPTY=
HOME=/root
";

/// The start of dockerd's /etc/hosts on the default bridge.
const DOCKERD_HOSTS_BLOCK: &str = "127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
";

/// `(status, message)` of a raw request's error body.
fn raw_err(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let (st, _, b) = d.raw(method, path, body.map(|b| b.as_bytes()));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null);
    (st, v["message"].as_str().unwrap_or("").to_string())
}

fn sleeper(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sleep", "600"]);
    d.docker_ok(&args).trim().to_string()
}

fn create(d: &Daemon, name: &str, body: &str) -> (u16, String) {
    let (st, _, b) = d.raw(
        "POST",
        &format!("/containers/create?name={name}"),
        Some(body.as_bytes()),
    );
    (st, String::from_utf8_lossy(&b).into_owned())
}

#[test]
fn a_link_on_the_default_bridge_gives_dockerds_variables_and_hosts_lines() {
    let d = daemon();
    sleeper(
        &d,
        "web",
        &[
            "-h",
            "webhost",
            "--expose",
            "80/tcp",
            "--expose",
            "53/udp",
            "-e",
            "FOO=bar",
            "-e",
            "HOME=/x",
            "-e",
            "PATH=/bin",
        ],
    );
    let ip = d.ip_on("web", "bridge");
    assert!(!ip.is_empty());
    let out = d.docker_ok(&[
        "run", "--name", "app", "--link", "web:db", "-e", "X=1", "busybox", "env",
    ]);
    let host = d.docker_ok(&["inspect", "-f", "{{.Config.Hostname}}", "app"]);
    let want = DOCKERD_ENV_DB
        .replace("{IP}", &ip)
        .replace("{HOSTNAME}", host.trim());
    assert_eq!(out, want);
    d.docker_ok(&["rm", "app"]);

    // /etc/hosts: `ip alias hostname name` after the standard block, before
    // the container's own line; the name is left out when it is the alias.
    let hosts = d.docker_ok(&[
        "run",
        "--rm",
        "--link",
        "web:db",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    let lines: Vec<&str> = hosts.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("{ip}\tdb webhost web"))
        .unwrap_or_else(|| panic!("no link line in\n{hosts}"));
    assert_eq!(
        lines[..at],
        DOCKERD_HOSTS_BLOCK.lines().collect::<Vec<_>>()[..]
    );
    assert_eq!(
        lines.len(),
        at + 2,
        "the container's own line comes last:\n{hosts}"
    );
    let hosts = d.docker_ok(&[
        "run",
        "--rm",
        "--link",
        "web",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts.lines().any(|l| l == format!("{ip}\tweb webhost")),
        "{hosts}"
    );
    // `--link web`: the alias is the name.
    let env = d.docker_ok(&["run", "--rm", "--link", "web", "busybox", "env"]);
    assert!(env.lines().any(|l| l == "WEB_ENV_FOO=bar"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("WEB_NAME=/")), "{env}");

    // Port ranges, odd values, a target's HOSTNAME (only HOME and PATH are
    // left out).
    sleeper(
        &d,
        "web2",
        &[
            "--expose",
            "8000-8002",
            "--expose",
            "9000/tcp",
            "-e",
            "HOSTNAME=foo",
            "-e",
            "A=has=eq",
            "-e",
            "EMPTY=",
        ],
    );
    let ip2 = d.ip_on("web2", "bridge");
    let out = d.docker_ok(&[
        "run", "--name", "app2", "--link", "web2:w2", "busybox", "env",
    ]);
    let host = d.docker_ok(&["inspect", "-f", "{{.Config.Hostname}}", "app2"]);
    let want = DOCKERD_ENV_RANGE
        .replace("{IP}", &ip2)
        .replace("{HOSTNAME}", host.trim());
    // The docker CLI sends `-e` values in no fixed order, so the target's
    // own variables come in its order: compare them as a set.
    let split = |s: &str| {
        let mut lines: Vec<String> = s.lines().map(String::from).collect();
        let envs: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("W2_ENV_"))
            .cloned()
            .collect();
        let at = lines.iter().position(|l| l.starts_with("W2_ENV_"));
        lines.retain(|l| !l.starts_with("W2_ENV_"));
        let mut sorted = envs;
        sorted.sort();
        (lines, at, sorted)
    };
    assert_eq!(split(&out), split(&want), "{out}");

    // berth's own CLI takes --link too.
    let o = d.berth(&["run", "--rm", "--link", "web:db", "busybox", "env"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).lines().any(|l| l == "DB_ENV_FOO=bar"),
        "{}",
        stdout(&o)
    );
    let o = d.berth(&["run", "--rm", "--link", "a:b:c", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("bad format for links: a:b:c"),
        "{}",
        stderr(&o)
    );

    d.docker_ok(&["rm", "-f", "app2", "web", "web2"]);
}

#[test]
fn inspect_ps_and_link_names_show_links_as_dockerd() {
    let d = daemon();
    let web = sleeper(&d, "web", &[]);
    d.docker_ok(&[
        "create", "--name", "app", "--link", "web:db", "busybox", "sh",
    ]);
    let app = d.inspect_json("app");
    assert_eq!(
        app["HostConfig"]["Links"],
        serde_json::json!(["/web:/app/db"])
    );
    assert_eq!(
        app["NetworkSettings"]["Networks"]["bridge"]["Links"],
        serde_json::Value::Null
    );
    // The form inspect shows is accepted back, and normalised to this parent.
    let (st, body) = create(
        &d,
        "norm",
        r#"{"Image":"busybox","Cmd":["sh"],"HostConfig":{"Links":["/web:/other/db"]}}"#,
    );
    assert_eq!(st, 201, "{body}");
    // bollard sees the same.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let links = rt
        .block_on(d.bollard().inspect_container(
            "norm",
            None::<bollard::query_parameters::InspectContainerOptions>,
        ))
        .unwrap()
        .host_config
        .unwrap()
        .links;
    assert_eq!(links, Some(vec!["/web:/norm/db".to_string()]));
    // A link to a container in another's namespace links to the owner.
    sleeper(&d, "guest", &["--network", "container:web"]);
    d.docker_ok(&[
        "create", "--name", "viaguest", "--link", "guest:g", "busybox", "sh",
    ]);
    assert_eq!(
        d.inspect_json("viaguest")["HostConfig"]["Links"],
        serde_json::json!(["/web:/viaguest/g"])
    );
    d.docker_ok(&["rm", "-f", "viaguest", "guest"]);
    // No links: null.
    d.docker_ok(&["create", "--name", "plain", "busybox", "sh"]);
    assert_eq!(
        d.inspect_json("plain")["HostConfig"]["Links"],
        serde_json::Value::Null
    );

    // The target is also listed under its link names, all sorted.
    let names = d.docker_ok(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("id={web}"),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(names.trim(), "app/db,norm/db,web");
    // A link name resolves to the target.
    let (st, _, b) = d.raw("GET", "/containers/app/db/json", None);
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["Id"], serde_json::json!(web));

    // Renames show through: the links follow both containers.
    d.docker_ok(&["rename", "app", "app9"]);
    d.docker_ok(&["rename", "web", "web9"]);
    assert_eq!(
        d.inspect_json("app9")["HostConfig"]["Links"],
        serde_json::json!(["/web9:/app9/db"])
    );
    let names = d.docker_ok(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("id={web}"),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(names.trim(), "app9/db,norm/db,web9");
    d.docker_ok(&["rename", "app9", "app"]);
    d.docker_ok(&["rename", "web9", "web"]);

    // `docker rm --link`: the link goes, the target stays.
    let out = d.docker_ok(&["rm", "--link", "/app/db"]);
    assert_eq!(out.trim(), "/app/db");
    assert_eq!(
        d.inspect_json("app")["HostConfig"]["Links"],
        serde_json::Value::Null
    );
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "web"])
            .trim(),
        "true"
    );
    // berth's CLI too.
    let o = d.berth(&["rm", "--link", "/norm/db"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        d.inspect_json("norm")["HostConfig"]["Links"],
        serde_json::Value::Null
    );
    // dockerd's answers for a container's own name (but a 409 where
    // dockerd gives a 500: the request is at fault) and a missing link.
    assert_eq!(
        raw_err(&d, "DELETE", "/containers/web?link=1", None),
        (
            409,
            "Conflict, cannot remove the default link name of the container".into()
        )
    );
    assert_eq!(
        raw_err(&d, "DELETE", "/containers/app/db?link=1", None),
        (404, "No such container: app/db".into())
    );
    let o = d.docker(&["rm", "--link", "/app/nope"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("No such container: app/nope"),
        "{}",
        stderr(&o)
    );
    d.docker_ok(&["rm", "-f", "app", "norm", "plain", "web"]);
}

#[test]
fn bad_links_get_dockerds_statuses_and_messages() {
    let d = daemon();
    sleeper(&d, "web", &[]);
    let body = |hc: &str| format!(r#"{{"Image":"busybox","Cmd":["sh"],"HostConfig":{hc}}}"#);
    let cases: &[(&str, u16, &str)] = &[
        (
            r#"{"Links":["nope:db"]}"#,
            400,
            "could not get container for nope: No such container: nope",
        ),
        (r#"{"Links":["a:b:c"]}"#, 500, "bad format for links: a:b:c"),
        (r#"{"Links":[""]}"#, 500, "empty string specified for links"),
        (
            r#"{"NetworkMode":"host","Links":["web:db"]}"#,
            400,
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ),
        (
            r#"{"NetworkMode":"container:web","Links":["web:db"]}"#,
            400,
            "conflicting options: container type network can't be used with links. This would result in undefined behavior",
        ),
    ];
    for (hc, st, msg) in cases {
        let got = raw_err(&d, "POST", "/containers/create", Some(&body(hc)));
        assert_eq!(got, (*st, msg.to_string()), "{hc}");
    }
    // Nothing was half-made.
    let all = d.docker_ok(&["ps", "-aq"]);
    assert_eq!(all.lines().count(), 1, "{all}");
    // `none` takes links (and ignores them at start).
    let (st, b) = create(
        &d,
        "lonely",
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none","Links":["web:db"]}}"#,
    );
    assert_eq!(st, 201, "{b}");
    d.docker_ok(&["start", "lonely"]);
    // A link to a host-network container is the same conflict.
    sleeper(&d, "hosty", &["--network", "host"]);
    assert_eq!(
        raw_err(
            &d,
            "POST",
            "/containers/create",
            Some(&body(r#"{"Links":["hosty:h"]}"#))
        )
        .0,
        400
    );
    // The CLI's own check, before any request.
    let o = d.docker(&["run", "--rm", "--link", "a:b:c", "busybox", "true"]);
    assert!(
        stderr(&o).contains("bad format for links: a:b:c"),
        "{}",
        stderr(&o)
    );

    // A target that is not running: the start fails, the container stays
    // created with the error recorded.
    d.docker_ok(&["create", "--name", "stopped", "busybox", "sh"]);
    d.docker_ok(&[
        "create",
        "--name",
        "linker",
        "--link",
        "stopped:s",
        "busybox",
        "sh",
    ]);
    assert_eq!(
        raw_err(&d, "POST", "/containers/linker/start", None),
        (
            500,
            "Cannot link to a non running container: /stopped AS /linker/s".into()
        )
    );
    let st = d.inspect_json("linker")["State"].clone();
    assert_eq!(st["Status"], "created");
    assert_eq!(
        st["Error"],
        "Cannot link to a non running container: /stopped AS /linker/s"
    );
    // A target off the default bridge.
    d.docker_ok(&["network", "create", "elsewhere"]);
    sleeper(&d, "away", &["--network", "elsewhere"]);
    d.docker_ok(&[
        "create", "--name", "linker2", "--link", "away:a", "busybox", "sh",
    ]);
    assert_eq!(
        raw_err(&d, "POST", "/containers/linker2/start", None),
        (
            500,
            "Cannot link to /away, as it does not belong to the default network".into()
        )
    );
    // dockerd lets a linked target go; the parent still shows the link and
    // cannot start.
    d.docker_ok(&["rm", "stopped"]);
    assert_eq!(
        d.inspect_json("linker")["HostConfig"]["Links"],
        serde_json::json!(["/stopped:/linker/s"])
    );
    assert_eq!(raw_err(&d, "POST", "/containers/linker/start", None).0, 500);
    // A bad endpoint link is refused when the endpoint joins.
    let (st, b) = create(
        &d,
        "epbad",
        r#"{"Image":"busybox","Cmd":["sleep","60"],"HostConfig":{"NetworkMode":"elsewhere"},"NetworkingConfig":{"EndpointsConfig":{"elsewhere":{"Links":["a:b:c"]}}}}"#,
    );
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        raw_err(&d, "POST", "/containers/epbad/start", None),
        (500, "bad format for links: a:b:c".into())
    );
    d.docker_ok(&[
        "rm", "-f", "web", "lonely", "hosty", "linker", "linker2", "away", "epbad",
    ]);
    d.docker_ok(&["network", "rm", "elsewhere"]);
}

/// `nslookup NAME` through the embedded DNS from container `c`.
fn resolves(d: &Daemon, c: &str, name: &str) -> Option<String> {
    let o = d.docker(&["exec", c, "nslookup", name, "127.0.0.11"]);
    let out = stdout(&o);
    // The answer follows the server's own `Address:` line.
    let addrs: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Address: "))
        .collect();
    (o.status.success() && !addrs.is_empty()).then(|| addrs.join(","))
}

#[test]
fn on_a_user_network_a_link_is_a_dns_alias_of_the_linking_container_only() {
    let d = daemon();
    d.docker_ok(&["network", "create", "appnet"]);
    sleeper(
        &d,
        "t1",
        &["--network", "appnet", "-e", "FOO=bar", "--expose", "80"],
    );
    let t1_ip = d
        .docker_ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.appnet.IPAddress}}",
            "t1",
        ])
        .trim()
        .to_string();
    sleeper(&d, "u1", &["--network", "appnet", "--link", "t1:al"]);
    // Names it does not know go to loopback, not to the host's resolvers.
    sleeper(&d, "other", &["--network", "appnet", "--dns", "127.0.0.1"]);
    let u1 = d.inspect_json("u1");
    // As dockerd: HostConfig.Links are not registered on a user network.
    assert_eq!(u1["HostConfig"]["Links"], serde_json::Value::Null);
    assert_eq!(
        u1["NetworkSettings"]["Networks"]["appnet"]["Links"],
        serde_json::json!(["t1:al"])
    );
    assert_eq!(resolves(&d, "u1", "al").as_deref(), Some(t1_ip.as_str()));
    assert_eq!(
        resolves(&d, "u1", "al.appnet").as_deref(),
        Some(t1_ip.as_str())
    );
    assert_eq!(resolves(&d, "other", "al"), None);
    let ping = d.docker(&["exec", "u1", "ping", "-c1", "-W2", "al"]);
    assert!(ping.status.success(), "{}", stdout(&ping));
    // No variables, no hosts line.
    let env = d.docker_ok(&["exec", "u1", "env"]);
    assert!(!env.contains("AL_"), "{env}");
    let hosts = d.docker_ok(&["exec", "u1", "cat", "/etc/hosts"]);
    assert!(!hosts.contains(" al") && !hosts.contains("\tal"), "{hosts}");

    // `network connect` with links, through bollard.
    d.docker_ok(&["network", "create", "second"]);
    sleeper(&d, "t2", &["--network", "second", "--dns", "127.0.0.1"]);
    let t2_ip = d
        .docker_ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.second.IPAddress}}",
            "t2",
        ])
        .trim()
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(d.bollard().connect_network(
        "second",
        bollard::models::NetworkConnectRequest {
            container: Some("other".into()),
            endpoint_config: Some(bollard::models::EndpointSettings {
                links: Some(vec!["t2:zz".into()]),
                ..Default::default()
            }),
        },
    ))
    .unwrap();
    assert_eq!(
        d.inspect_json("other")["NetworkSettings"]["Networks"]["second"]["Links"],
        serde_json::json!(["t2:zz"])
    );
    assert_eq!(resolves(&d, "other", "zz").as_deref(), Some(t2_ip.as_str()));
    assert_eq!(resolves(&d, "t2", "zz"), None);
    d.docker_ok(&["rm", "-f", "t1", "u1", "other", "t2"]);
    d.docker_ok(&["network", "rm", "appnet", "second"]);
}

#[test]
fn links_survive_container_and_daemon_restarts() {
    let mut d = daemon();
    sleeper(&d, "web", &["-h", "webhost", "-e", "FOO=bar"]);
    sleeper(&d, "app", &["--link", "web:db"]);
    let link_line = |d: &Daemon| -> String {
        let hosts = d.docker_ok(&["exec", "app", "cat", "/etc/hosts"]);
        hosts
            .lines()
            .find(|l| l.ends_with("\tdb webhost web"))
            .unwrap_or_else(|| panic!("no link line:\n{hosts}"))
            .to_string()
    };
    assert_eq!(
        link_line(&d),
        format!("{}\tdb webhost web", d.ip_on("web", "bridge"))
    );

    // The target comes back on another address: the running parent's
    // /etc/hosts follows (as libnetwork's parent update).
    d.docker_ok(&["stop", "-t", "0", "web"]);
    sleeper(&d, "thief", &[]);
    d.docker_ok(&["start", "web"]);
    let new_ip = d.ip_on("web", "bridge");
    assert_ne!(new_ip, d.ip_on("thief", "bridge"));
    assert_eq!(link_line(&d), format!("{new_ip}\tdb webhost web"));
    // A process run in the parent gets the variables worked out anew, in
    // dockerd's order (its own `-e` after the links'); none while the
    // target is down.
    let env = d.docker_ok(&["exec", "-e", "Y=2", "app", "env"]);
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            &format!(
                "HOSTNAME={}",
                d.docker_ok(&["inspect", "-f", "{{.Config.Hostname}}", "app"])
                    .trim()
            ),
            "DB_NAME=/app/db"
        ]
    );
    assert_eq!(lines[3..], ["DB_ENV_FOO=bar", "Y=2", "HOME=/root"]);
    d.docker_ok(&["stop", "-t", "0", "web"]);
    assert_eq!(
        raw_err(
            &d,
            "POST",
            "/containers/app/exec",
            Some(r#"{"Cmd":["env"]}"#)
        ),
        (
            500,
            "Cannot link to a non running container: /web AS /app/db".into()
        )
    );
    d.docker_ok(&["start", "web"]);

    // A restarted parent keeps its link.
    d.docker_ok(&["restart", "-t", "0", "app"]);
    let env = d.docker_ok(&["exec", "app", "env"]);
    assert!(env.lines().any(|l| l == "DB_NAME=/app/db"), "{env}");
    assert!(env.lines().any(|l| l == "DB_ENV_FOO=bar"), "{env}");

    // A link whose target was removed stays until the daemon restarts
    // (dockerd registers links by name at start, and finds none then).
    d.docker_ok(&["create", "--name", "s2", "busybox", "sh"]);
    d.docker_ok(&[
        "create", "--name", "l2", "--link", "s2:s", "busybox", "true",
    ]);
    d.docker_ok(&["rm", "s2"]);
    assert_eq!(
        d.inspect_json("l2")["HostConfig"]["Links"],
        serde_json::json!(["/s2:/l2/s"])
    );

    // So does a restarted daemon.
    d.restart().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.docker(&["version"]).status.code() != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        d.inspect_json("app")["HostConfig"]["Links"],
        serde_json::json!(["/web:/app/db"])
    );
    assert_eq!(
        d.inspect_json("l2")["HostConfig"]["Links"],
        serde_json::Value::Null
    );
    d.docker_ok(&["start", "l2"]);
    d.docker_ok(&["stop", "-t", "0", "app"]);
    d.docker_ok(&["start", "app"]);
    let env = d.docker_ok(&["exec", "app", "env"]);
    assert!(env.lines().any(|l| l == "DB_NAME=/app/db"), "{env}");
    assert_eq!(
        link_line(&d),
        format!("{}\tdb webhost web", d.ip_on("web", "bridge"))
    );
    // `rm --link` takes the running parent's line away too.
    d.docker_ok(&["rm", "--link", "/app/db"]);
    let hosts = d.docker_ok(&["exec", "app", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("\tdb "), "{hosts}");
    let env = d.docker_ok(&["exec", "app", "env"]);
    assert!(!env.contains("DB_"), "{env}");
    d.docker_ok(&["rm", "-f", "app", "web", "thief", "l2"]);
}
