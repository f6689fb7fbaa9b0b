"""The scripted scenario: objects set up with the docker CLI (the same
commands on every daemon), then HTTP cases replayed in order. Every name
starts with `cf-` and every object carries the label `conformance=1`, so
cleanup finds exactly what the harness made."""

import io
import json
import tarfile
import time
from urllib.parse import quote

LABEL = "conformance=1"
UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}
PING_HEADERS = ["Builder-Version", "Cache-Control", "Pragma", "Swarm"]
MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


class Case:
    """One request. `endpoint` groups cases in the score table; `values`
    are key paths whose values (not just types) must match; `stream`
    compares framing instead of key paths."""

    def __init__(self, name, method, path, endpoint=None, body=None, headers=None,
                 values=(), stream=False, payload=False, events=False,
                 jsonlines=False, raw=False, capture=None, extra_headers=(),
                 timeout=60, server=False, stat_header=False, ct150=None, half_close=False):
        self.name, self.method, self.path = name, method, path
        self.endpoint = endpoint or endpoint_of(method, path)
        self.body, self.headers = body, headers
        self.values, self.stream, self.payload = list(values), stream, payload
        self.events, self.jsonlines, self.raw = events, jsonlines, raw
        self.capture = capture
        self.extra_headers = list(extra_headers)
        # Seconds a stream may stall before it counts as not ending.
        self.timeout = timeout
        # Compare the Server header's value (normalised), not just its presence.
        self.server = server
        # Key paths come from the X-Docker-Container-Path-Stat header.
        self.stat_header = stat_header
        # The Content-Type API 1.42+ sends (streams: multiplexed or raw).
        self.ct150 = ct150
        self.half_close = half_close


# First path segments whose second one names an object (not an action).
OBJECTS = {"containers": "{id}", "exec": "{id}", "networks": "{id}", "volumes": "{name}",
           "plugins": "{name}", "images": "{name}"}
ACTIONS = {"json", "create", "prune", "load", "get", "search"}


def endpoint_of(method, path):
    """`GET /containers/cf-run/json?size=1` -> `GET /containers/{id}/json`."""
    segs = path.split("?")[0].strip("/").split("/")
    if len(segs) > 1 and segs[0] in OBJECTS and segs[1] not in ACTIONS:
        segs[1] = OBJECTS[segs[0]]
    return f"{method} /" + "/".join(segs)


class Step:
    """Set-up work between cases (docker CLI, waits)."""

    def __init__(self, name, fn):
        self.name, self.fn = name, fn


def q(obj):
    return quote(json.dumps(obj, separators=(",", ":")))


def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_700_000_000
            t.addfile(ti, io.BytesIO(data))
        end = t.offset + 1024
    # Without tarfile's record padding: dockerd stops reading at the
    # end-of-archive blocks, and unread bytes reset the connection.
    return buf.getvalue()[:end]


def docker_archive(tag):
    """A one-layer docker-archive (manifest.json layout) tagged `tag`."""
    import hashlib
    layer = tar_of({"loaded.txt": b"loaded\n"})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "conformance"}],
    }).encode()
    cfg = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg, "RepoTags": [tag], "Layers": ["layer.tar"]}])
    return tar_of({cfg: config, "layer.tar": layer, "manifest.json": manifest.encode()})


# Nothing listens there: registry calls fail at once, on loopback only.
NO_REGISTRY = "127.0.0.1:1"

# -- set-up -------------------------------------------------------------

DOCKERFILE_BUILD = b"""FROM busybox:latest
LABEL org.example.role=conformance conformance=1
ENV GREETING=hello
RUN echo built > /built.txt
EXPOSE 8080
VOLUME /data
WORKDIR /srv
CMD ["sh"]
"""


def dangle_dockerfile(n):
    return f"FROM busybox:latest\nLABEL cf-prune=1 conformance=1\nRUN echo {n} > /d\n".encode()


def setup_objects(t):
    t.docker("network", "create", "--label", LABEL, "cf-net")
    t.docker("volume", "create", "--label", LABEL, "--label", "role=data", "cf-vol")
    t.build("cf-build:latest", DOCKERFILE_BUILD)
    # Built twice under one tag: the first becomes dangling.
    t.build("cf-dangle:latest", dangle_dockerfile(1))
    t.build("cf-dangle:latest", dangle_dockerfile(2))
    run = ["run", "-d", "--label", LABEL]
    t.docker(*run, "--name", "cf-base", "busybox:latest", "sleep", "3600")
    t.docker(*run, "--name", "cf-run", "--label", "role=web", "-e", "X=1",
             "--network", "cf-net", "--network-alias", "web",
             "-v", "cf-vol:/data", "-v", f"{t.bind_dir}:/bind", "--tmpfs", "/scratch",
             "-p", "80", "-p", "127.0.0.1::81", "--expose", "9000",
             "--health-cmd", "true", "--health-interval", "1s",
             "busybox:latest", "sh", "-c",
             "echo out; echo err >&2; echo x > /made; exec sleep 3600")
    t.docker(*run, "--name", "cf-link", "--link", "cf-base:base",
             "busybox:latest", "sleep", "3600")
    t.docker(*run, "-t", "--name", "cf-tty",
             "busybox:latest", "sh", "-c", "echo tty; exec sleep 3600")
    t.docker(*run, "--name", "cf-none", "--network", "none", "busybox:latest", "sleep", "3600")
    t.docker(*run, "--name", "cf-paused", "busybox:latest", "sleep", "3600")
    t.docker("pause", "cf-paused")
    t.docker(*run, "--name", "cf-exited", "busybox:latest", "sh", "-c", "echo bye; exit 3")
    t.docker("wait", "cf-exited", check=False)
    t.docker("create", "--label", LABEL, "--name", "cf-created", "busybox:latest", "true")
    t.docker(*run, "--name", "cf-restart", "--restart", "always",
             "busybox:latest", "sh", "-c", "exit 1")
    t.docker("create", "--label", LABEL, "--label", "cf-prune=1", "--name", "cf-prunable",
             "busybox:latest", "true")
    t.docker("network", "create", "--label", LABEL, "--label", "cf-prune=1", "cf-net-prune")
    t.docker("volume", "create", "--label", LABEL, "--label", "cf-prune=1", "cf-vol-prune")
    healthy = lambda: t.inspect("cf-run")["State"].get("Health", {}).get("Status") == "healthy"
    t.wait_for(healthy, "cf-run healthy", 30)


def lifecycle(t):
    """A scripted lifecycle whose events are read back with since/until."""
    t.vars["t0"] = int(time.time()) - 1
    create = ["create", "--label", LABEL, "--name", "cf-evt", "busybox:latest", "sleep", "3600"]
    for args in (create, ["start", "cf-evt"], ["pause", "cf-evt"], ["unpause", "cf-evt"],
                 ["kill", "cf-evt"], ["start", "cf-evt"], ["stop", "-t", "1", "cf-evt"],
                 ["rm", "cf-evt"]):
        t.docker(*args)
    time.sleep(1.1)
    t.vars["t1"] = int(time.time())


def object_events(t):
    """Network, volume and image lifecycles, for their events."""
    t.vars["t2"] = int(time.time()) - 1
    t.docker("network", "create", "--label", LABEL, "cf-evtnet")
    t.docker("network", "connect", "cf-evtnet", "cf-base")
    t.docker("network", "disconnect", "cf-evtnet", "cf-base")
    t.docker("network", "rm", "cf-evtnet")
    t.docker("volume", "create", "--label", LABEL, "cf-evtvol")
    t.docker("run", "--label", LABEL, "--name", "cf-evtv", "-v", "cf-evtvol:/v",
             "busybox:latest", "true")
    t.docker("rm", "cf-evtv")
    t.docker("volume", "rm", "cf-evtvol")
    t.docker("tag", "busybox:latest", "cf-evtimg:1")
    t.docker("rmi", "cf-evtimg:1")
    time.sleep(1.1)
    t.vars["t3"] = int(time.time())


# -- cases --------------------------------------------------------------

# A create asking for much, to see it all echoed back by inspect.
RICH = {
    "Hostname": "rich", "Domainname": "example.org", "User": "nobody",
    "Env": ["A=1", "B=two"], "Cmd": ["sleep", "3600"], "WorkingDir": "/tmp",
    "Labels": {"conformance": "1", "k": "v"}, "StopSignal": "SIGUSR1", "StopTimeout": 7,
    "ExposedPorts": {"7000/tcp": {}},
    "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2000000000, "Retries": 2},
    "Image": "busybox:latest",
    "HostConfig": {
        "Memory": 67108864, "CpuShares": 256, "PidsLimit": 50,
        "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"],
        "Dns": ["10.0.0.2"], "DnsSearch": ["example.org"], "ExtraHosts": ["h:10.0.0.3"],
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
        "ShmSize": 33554432, "Init": True, "OomScoreAdj": 100, "ReadonlyRootfs": True,
        "Tmpfs": {"/run": "size=1m"}, "SecurityOpt": ["no-new-privileges"],
        "GroupAdd": ["users"], "NetworkMode": "bridge",
        "PortBindings": {"7000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
    },
}

STATE = ["State.Status", "State.Running", "State.Paused", "State.ExitCode", "Name",
         "HostConfig.NetworkMode", "Config.Tty", "RestartCount"]


# What the set-up asked for, as each container's inspect must show it.
ASKED = {
    "cf-run": ["HostConfig.Tmpfs", "HostConfig.PortBindings", "Config.ExposedPorts",
               "NetworkSettings.Networks.cf-net.Aliases", "State.Health.Status",
               "Config.Healthcheck", "Config.Labels"],
    "cf-link": ["HostConfig.Links", "NetworkSettings.Networks.bridge.Aliases"],
    "cf-tty": ["Config.Tty", "Config.OpenStdin"],
    "cf-none": ["NetworkSettings.Networks.*"],
    "cf-rich": ["Config.*", "HostConfig.*"],
}


def inspect_case(name, cid, extra=""):
    return Case(name, "GET", f"/containers/{cid}/json{extra}", "GET /containers/{id}/json",
                values=STATE + ASKED.get(cid, []))


def capture_id(var):
    def f(t, data):
        if isinstance(data, dict) and "Id" in data:
            t.vars[var] = data["Id"]
    return f


def scenario():
    """The ordered list of steps and cases."""
    C, S = Case, Step
    ex = {"AttachStdout": True, "AttachStderr": True}
    return [
        # -- system, no objects needed
        C("ping", "GET", "/_ping", raw=True, stream=True, payload=True, server=True,
          extra_headers=PING_HEADERS),
        C("ping_head", "HEAD", "/_ping", raw=True, extra_headers=PING_HEADERS),
        C("ping_v141", "GET", "/_ping", stream=True, payload=True),
        C("version", "GET", "/version", values=["Os", "Arch"], server=True),
        C("version_unversioned", "GET", "/version", raw=True),
        C("version_too_new", "GET", "/v1.99/version", endpoint="GET /version", raw=True),
        C("unknown_route", "GET", "/nope", endpoint="unknown route"),
        C("plugins", "GET", "/plugins"),
        C("plugin_inspect_missing", "GET", "/plugins/nope/json"),
        C("swarm_inspect", "GET", "/swarm"),
        C("services_list", "GET", "/services"),
        C("nodes_list", "GET", "/nodes"),
        C("auth_unreachable", "POST", "/auth",
          body={"username": "u", "password": "p", "serveraddress": NO_REGISTRY}),
        C("images_search_unreachable", "GET", f"/images/search?term={NO_REGISTRY}/busybox"),
        S("objects", setup_objects),
        C("info", "GET", "/info", values=["OSType", "Containers", "ContainersPaused"]),
        C("system_df", "GET", "/system/df"),
        # -- containers: list
        C("containers_list", "GET", "/containers/json"),
        C("containers_list_all", "GET", "/containers/json?all=1"),
        C("containers_list_size", "GET", "/containers/json?all=1&size=1"),
        C("containers_list_limit", "GET", "/containers/json?all=1&limit=2"),
        C("containers_list_name", "GET",
          "/containers/json?all=1&filters=" + q({"name": ["cf-exited"]}),
          values=["0.Names", "0.State", "0.Command", "0.Image"]),
        C("containers_list_paused", "GET", "/containers/json?filters=" + q({"status": ["paused"]}),
          values=["0.Names", "0.State"]),
        C("containers_list_label", "GET", "/containers/json?filters=" + q({"label": ["role=web"]}),
          values=["0.Names", "0.State", "0.Labels"]),
        C("containers_list_network", "GET",
          "/containers/json?filters=" + q({"network": ["cf-net"]}), values=["[].Names"]),
        C("containers_list_bad_filters", "GET", "/containers/json?filters=notjson"),
        C("containers_list_health", "GET",
          "/containers/json?filters=" + q({"health": ["healthy"]}), values=["[].Names"]),
        C("containers_list_exited", "GET",
          "/containers/json?all=1&filters=" + q({"exited": ["3"]}), values=["[].Names"]),
        C("containers_list_ancestor", "GET",
          "/containers/json?all=1&filters=" + q({"ancestor": ["busybox:latest"]}),
          values=["[].Names"]),
        C("containers_list_volume", "GET",
          "/containers/json?filters=" + q({"volume": ["cf-vol"]}), values=["[].Names"]),
        C("containers_list_publish", "GET",
          "/containers/json?filters=" + q({"publish": ["80"]}), values=["[].Names"]),
        C("containers_list_expose", "GET",
          "/containers/json?filters=" + q({"expose": ["9000"]}), values=["[].Names"]),
        C("containers_list_status_created", "GET",
          "/containers/json?all=1&filters=" + q({"status": ["created"]}), values=["[].Names"]),
        C("containers_list_unknown_filter", "GET",
          "/containers/json?filters=" + q({"nope": ["x"]})),
        # -- containers: inspect in every state
        inspect_case("container_inspect_running", "cf-run"),
        inspect_case("container_inspect_running_size", "cf-run", "?size=1"),
        inspect_case("container_inspect_link", "cf-link"),
        inspect_case("container_inspect_tty", "cf-tty"),
        inspect_case("container_inspect_paused", "cf-paused"),
        inspect_case("container_inspect_exited", "cf-exited"),
        inspect_case("container_inspect_created", "cf-created"),
        inspect_case("container_inspect_network_none", "cf-none"),
        C("container_inspect_restarting", "GET", "/containers/cf-restart/json",
          values=["Name", "HostConfig.RestartPolicy"]),
        C("container_inspect_missing", "GET", "/containers/nope/json"),
        C("container_top", "GET", "/containers/cf-run/top", values=["Titles"]),
        C("container_top_stopped", "GET", "/containers/cf-exited/top"),
        C("container_changes", "GET", "/containers/cf-run/changes"),
        C("container_changes_created", "GET", "/containers/cf-created/changes"),
        C("container_stats", "GET", "/containers/cf-run/stats?stream=0"),
        C("container_stats_stopped", "GET", "/containers/cf-exited/stats?stream=0"),
        C("container_stats_missing", "GET", "/containers/nope/stats?stream=0"),
        # -- streams
        C("logs_stdout", "GET", "/containers/cf-run/logs?stdout=1", stream=True, payload=True,
          ct150=MUX),
        C("logs_both", "GET", "/containers/cf-run/logs?stdout=1&stderr=1&tail=all", stream=True,
          ct150=MUX),
        C("logs_tty", "GET", "/containers/cf-tty/logs?stdout=1&stderr=1", stream=True, payload=True,
          ct150=RAW),
        C("logs_timestamps", "GET", "/containers/cf-exited/logs?stdout=1&timestamps=1&tail=1",
          stream=True, ct150=MUX),
        C("logs_no_stream", "GET", "/containers/cf-run/logs"),
        C("logs_missing", "GET", "/containers/nope/logs?stdout=1"),
        C("attach_logs", "POST", "/containers/cf-exited/attach?logs=1&stream=0&stdout=1&stderr=1",
          headers=UPGRADE, stream=True, payload=True, timeout=5, ct150=MUX),
        C("attach_logs_tty", "POST", "/containers/cf-tty/attach?logs=1&stream=0&stdout=1",
          headers=UPGRADE, stream=True, payload=True, timeout=5, ct150=RAW),
        C("exec_create", "POST", "/containers/cf-run/exec",
          body=dict(ex, Cmd=["sh", "-c", "echo hi"]), capture=capture_id("exec")),
        C("exec_start", "POST", "/exec/{exec}/start", body={"Detach": False, "Tty": False},
          headers=UPGRADE, stream=True, payload=True, timeout=10, ct150=MUX),
        C("exec_inspect", "GET", "/exec/{exec}/json",
          values=["ExitCode", "Running", "OpenStdout", "ProcessConfig"]),
        C("exec_create_tty", "POST", "/containers/cf-run/exec",
          body=dict(ex, Tty=True, Cmd=["echo", "tty"]), capture=capture_id("exec_tty")),
        C("exec_start_tty", "POST", "/exec/{exec_tty}/start", body={"Detach": False, "Tty": True},
          headers=UPGRADE, stream=True, payload=True, timeout=10, ct150=RAW),
        # The client shuts its sending side at once (its stdin is empty).
        C("exec_create_half_close", "POST", "/containers/cf-run/exec",
          body=dict(ex, Cmd=["echo", "hc"]), capture=capture_id("exec_hc")),
        C("exec_start_half_close", "POST", "/exec/{exec_hc}/start", body={"Detach": False},
          headers=UPGRADE, stream=True, payload=True, timeout=10, ct150=MUX, half_close=True),
        C("exec_create_detached", "POST", "/containers/cf-run/exec", body={"Cmd": ["sleep", "0"]},
          capture=capture_id("exec_d")),
        C("exec_start_detached", "POST", "/exec/{exec_d}/start", body={"Detach": True}),
        C("exec_resize_missing", "POST", "/exec/nope/resize?h=10&w=10"),
        C("exec_inspect_missing", "GET", "/exec/nope/json"),
        C("exec_create_stopped", "POST", "/containers/cf-exited/exec", body=dict(ex, Cmd=["true"])),
        C("exec_create_paused", "POST", "/containers/cf-paused/exec", body=dict(ex, Cmd=["true"])),
        # -- archive, export
        C("archive_head", "HEAD", "/containers/cf-run/archive?path=/etc/passwd", stat_header=True),
        C("archive_get", "GET", "/containers/cf-run/archive?path=/etc/passwd", stream=True,
          stat_header=True),
        C("archive_get_missing", "GET", "/containers/cf-run/archive?path=/nope"),
        C("archive_head_missing", "HEAD", "/containers/cf-run/archive?path=/nope"),
        C("archive_put", "PUT", "/containers/cf-run/archive?path=/tmp",
          body=tar_of({"put.txt": b"hello\n"}), headers={"Content-Type": "application/x-tar"}),
        C("export", "GET", "/containers/cf-created/export", stream=True),
        # -- images
        C("images_list", "GET", "/images/json"),
        C("images_list_all", "GET", "/images/json?all=1"),
        C("images_list_dangling", "GET", "/images/json?filters=" + q({"dangling": ["true"]}),
          values=["0.RepoTags", "0.RepoDigests"]),
        C("images_list_reference", "GET", "/images/json?filters=" + q({"reference": ["cf-build"]}),
          values=["0.RepoTags", "0.Labels"]),
        C("images_list_label", "GET", "/images/json?filters="
          + q({"label": ["org.example.role=conformance"]}), values=["[].RepoTags"]),
        C("images_list_not_dangling", "GET",
          "/images/json?filters=" + q({"dangling": ["false"]}), values=["[].RepoTags"]),
        C("images_list_unknown_filter", "GET", "/images/json?filters=" + q({"nope": ["x"]})),
        C("image_inspect_busybox", "GET", "/images/busybox:latest/json",
          values=["RepoTags", "Os", "Architecture", "RootFS.Type"]),
        C("image_inspect_built", "GET", "/images/cf-build:latest/json",
          values=["RepoTags", "Config.Labels", "Config.ExposedPorts", "Config.Volumes",
                  "Config.WorkingDir", "Config.Cmd"]),
        C("image_inspect_missing", "GET", "/images/nope:latest/json"),
        C("image_history", "GET", "/images/cf-build:latest/history"),
        C("image_history_imported", "GET", "/images/busybox:latest/history",
          values=["0.Comment", "0.CreatedBy", "0.Tags"]),
        C("image_history_missing", "GET", "/images/nope/history"),
        C("image_tag", "POST", "/images/busybox:latest/tag?repo=cf-tag&tag=v1"),
        C("image_tag_missing", "POST", "/images/nope/tag?repo=cf-tag&tag=v2"),
        C("image_delete_tag", "DELETE", "/images/cf-tag:v1", values=["0.Untagged"]),
        C("image_delete_missing", "DELETE", "/images/nope:latest"),
        C("image_delete_in_use", "DELETE", "/images/busybox:latest"),
        C("image_save", "GET", "/images/cf-build:latest/get", stream=True),
        C("images_save_many", "GET", "/images/get?names=cf-build:latest&names=busybox:latest",
          stream=True),
        C("images_load", "POST", "/images/load", body=docker_archive("cf-load:v1"),
          headers={"Content-Type": "application/x-tar"}, jsonlines=True, values=["[].stream"]),
        C("image_inspect_loaded", "GET", "/images/cf-load:v1/json",
          values=["RepoTags", "Created", "Config.Cmd", "RootFS.Layers"]),
        C("image_pull_unreachable", "POST", f"/images/create?fromImage={NO_REGISTRY}/nope&tag=1",
          jsonlines=True),
        C("image_tag_for_push", "POST",
          "/images/busybox:latest/tag?tag=v1&repo=" + quote(f"{NO_REGISTRY}/cf-push", safe="")),
        C("image_push_unreachable", "POST", f"/images/{NO_REGISTRY}/cf-push:v1/push",
          endpoint="POST /images/{name}/push", headers={"X-Registry-Auth": "e30="},
          jsonlines=True),
        C("commit", "POST", "/commit?container=cf-exited&repo=cf-commit&tag=v1&comment=c", body={}),
        C("commit_missing", "POST", "/commit?container=nope&repo=cf-commit&tag=v2", body={}),
        C("image_import", "POST", "/images/create?fromSrc=-&repo=cf-import&tag=v1",
          body=tar_of({"hello.txt": b"hi\n"}), headers={"Content-Type": "application/x-tar"},
          jsonlines=True),
        C("image_inspect_commit", "GET", "/images/cf-commit:v1/json",
          values=["Comment", "Container", "Parent", "Config.Cmd", "ContainerConfig.Cmd",
                  "RootFS.Layers"]),
        C("image_inspect_import", "GET", "/images/cf-import:v1/json",
          values=["Comment", "Config", "Parent", "Architecture", "Os"]),
        C("build", "POST", "/build?t=cf-api-build:latest&rm=1&labels=" + q({"conformance": "1"}),
          body=tar_of({"Dockerfile": b"FROM busybox:latest\nRUN true\n"}),
          headers={"Content-Type": "application/x-tar"}, jsonlines=True),
        C("build_bad_dockerfile", "POST", "/build?t=cf-bad",
          body=tar_of({"Dockerfile": b"FROMM busybox\n"}),
          headers={"Content-Type": "application/x-tar"}, jsonlines=True),
        C("build_prune", "POST", "/build/prune"),
        C("build_cancel_unknown", "POST", "/build/cancel?id=nope"),
        # -- networks
        C("networks_list", "GET", "/networks"),
        C("networks_list_custom", "GET", "/networks?filters=" + q({"type": ["custom"]}),
          values=["[].Name"]),
        C("networks_list_builtin", "GET", "/networks?filters=" + q({"type": ["builtin"]}),
          values=["[].Name"]),
        C("networks_list_label", "GET", "/networks?filters=" + q({"label": ["cf-prune=1"]}),
          values=["[].Name"]),
        C("networks_list_driver", "GET", "/networks?filters=" + q({"driver": ["bridge"]}),
          values=["[].Name"]),
        C("networks_list_name", "GET", "/networks?filters=" + q({"name": ["cf-net"]}),
          values=["0.Name", "0.Driver", "0.Scope", "0.Internal", "0.Attachable"]),
        C("network_inspect_user", "GET", "/networks/cf-net",
          values=["Name", "Driver", "Scope", "Internal", "EnableIPv6", "Labels"]),
        C("network_inspect_bridge", "GET", "/networks/bridge", values=["Name", "Driver"]),
        C("network_inspect_none", "GET", "/networks/none", values=["Name", "Driver"]),
        C("network_inspect_missing", "GET", "/networks/nope"),
        C("network_create", "POST", "/networks/create",
          body={"Name": "cf-net2", "Labels": {"conformance": "1"}}),
        C("network_create_dup", "POST", "/networks/create",
          body={"Name": "cf-net", "CheckDuplicate": True}),
        C("network_connect", "POST", "/networks/cf-net2/connect",
          body={"Container": "cf-base", "EndpointConfig": {"Aliases": ["b2"]}}),
        C("network_connect_missing", "POST", "/networks/cf-net2/connect",
          body={"Container": "nope"}),
        C("network_disconnect", "POST", "/networks/cf-net2/disconnect",
          body={"Container": "cf-base"}),
        C("network_delete", "DELETE", "/networks/cf-net2"),
        C("network_delete_missing", "DELETE", "/networks/nope"),
        C("networks_prune", "POST", "/networks/prune?filters=" + q({"label": ["cf-prune=1"]}),
          values=["NetworksDeleted"]),
        # -- volumes
        C("volumes_list", "GET", "/volumes"),
        C("volumes_list_filter", "GET", "/volumes?filters=" + q({"name": ["cf-vol"]})),
        C("volumes_list_dangling", "GET", "/volumes?filters=" + q({"dangling": ["true"]}),
          values=["Volumes[].Name"]),
        C("volumes_list_label", "GET", "/volumes?filters=" + q({"label": ["role=data"]}),
          values=["Volumes[].Name"]),
        C("volume_inspect", "GET", "/volumes/cf-vol",
          values=["Name", "Driver", "Scope", "Labels", "Options"]),
        C("volume_inspect_missing", "GET", "/volumes/nope"),
        C("volume_create", "POST", "/volumes/create",
          body={"Name": "cf-vol2", "Labels": {"conformance": "1"}},
          values=["Name", "Driver", "Scope"]),
        C("volume_delete", "DELETE", "/volumes/cf-vol2"),
        C("volume_delete_in_use", "DELETE", "/volumes/cf-vol"),
        C("volume_delete_missing", "DELETE", "/volumes/nope"),
        C("volumes_prune", "POST", "/volumes/prune?filters=" + q({"label": ["cf-prune=1"]}),
          values=["VolumesDeleted"]),
        # -- container lifecycle over the API, with its errors
        C("container_create", "POST", "/containers/create?name=cf-api",
          body={"Image": "busybox:latest", "Cmd": ["sleep", "3600"],
                "Labels": {"conformance": "1"}},
          values=["Warnings"]),
        C("container_create_rich", "POST", "/containers/create?name=cf-rich", body=RICH,
          values=["Warnings"]),
        inspect_case("container_inspect_rich", "cf-rich"),
        C("container_create_conflict", "POST", "/containers/create?name=cf-run",
          body={"Image": "busybox:latest", "Cmd": ["true"]}),
        C("container_create_no_image", "POST", "/containers/create?name=cf-noimg",
          body={"Image": "nope:latest"}),
        C("container_create_bad_json", "POST", "/containers/create", body=b"{",
          headers={"Content-Type": "application/json"}),
        C("container_start", "POST", "/containers/cf-api/start"),
        C("container_start_running", "POST", "/containers/cf-api/start"),
        C("container_start_missing", "POST", "/containers/nope/start"),
        C("container_update", "POST", "/containers/cf-api/update", body={"CpuShares": 512},
          values=["Warnings"]),
        C("container_resize_notty", "POST", "/containers/cf-api/resize?h=40&w=80"),
        C("container_resize_tty", "POST", "/containers/cf-tty/resize?h=40&w=80"),
        C("container_rename", "POST", "/containers/cf-api/rename?name=cf-api2"),
        C("container_rename_conflict", "POST", "/containers/cf-api2/rename?name=cf-run"),
        C("container_pause", "POST", "/containers/cf-api2/pause"),
        C("container_pause_paused", "POST", "/containers/cf-api2/pause"),
        C("container_start_paused", "POST", "/containers/cf-api2/start"),
        C("container_unpause", "POST", "/containers/cf-api2/unpause"),
        C("container_unpause_running", "POST", "/containers/cf-api2/unpause"),
        C("container_restart", "POST", "/containers/cf-api2/restart?t=0"),
        C("container_kill", "POST", "/containers/cf-api2/kill?signal=SIGKILL"),
        C("container_wait", "POST", "/containers/cf-api2/wait", values=["StatusCode", "Error"]),
        C("container_kill_stopped", "POST", "/containers/cf-api2/kill"),
        C("container_stop_stopped", "POST", "/containers/cf-api2/stop"),
        C("container_stop_missing", "POST", "/containers/nope/stop"),
        C("container_wait_exited", "POST", "/containers/cf-exited/wait",
          values=["StatusCode", "Error"]),
        C("container_delete_running", "DELETE", "/containers/cf-run"),
        C("container_delete", "DELETE", "/containers/cf-api2"),
        C("container_delete_missing", "DELETE", "/containers/nope"),
        C("containers_prune", "POST", "/containers/prune?filters=" + q({"label": ["cf-prune=1"]}),
          values=["ContainersDeleted"]),
        C("images_prune", "POST", "/images/prune?filters=" + q({"label": ["cf-prune=1"]})),
        C("container_delete_paused_force", "DELETE", "/containers/cf-paused?force=1&v=1"),
        # -- events of a scripted lifecycle
        S("lifecycle", lifecycle),
        C("events_lifecycle", "GET",
          "/events?since={t0}&until={t1}&filters=" + q({"container": ["cf-evt"]}), events=True),
        S("object events", object_events),
        C("events_network", "GET", "/events?since={t2}&until={t3}&filters="
          + q({"type": ["network"], "network": ["cf-evtnet"]}), events=True),
        C("events_volume", "GET", "/events?since={t2}&until={t3}&filters="
          + q({"type": ["volume"], "volume": ["cf-evtvol"]}), events=True),
        C("events_image", "GET", "/events?since={t2}&until={t3}&filters="
          + q({"type": ["image"], "image": ["cf-evtimg:1"]}), events=True),
        C("events_bad_filter", "GET", "/events?since={t0}&until={t1}&filters=notjson"),
    ]
