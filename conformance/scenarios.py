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

    def __init__(self, name, method, path, endpoint, body=None, headers=None,
                 values=(), stream=False, payload=False, events=False,
                 jsonlines=False, raw=False, capture=None, extra_headers=(),
                 timeout=60, server=False, stat_header=False, ct150=None):
        self.name, self.method, self.path = name, method, path
        self.endpoint = endpoint
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
             "busybox:latest", "sh", "-c", "echo out; echo err >&2; echo x > /made; exec sleep 3600")
    t.docker(*run, "--name", "cf-link", "--link", "cf-base:base", "busybox:latest", "sleep", "3600")
    t.docker(*run, "-t", "--name", "cf-tty", "busybox:latest", "sh", "-c", "echo tty; exec sleep 3600")
    t.docker(*run, "--name", "cf-paused", "busybox:latest", "sleep", "3600")
    t.docker("pause", "cf-paused")
    t.docker(*run, "--name", "cf-exited", "busybox:latest", "sh", "-c", "echo bye; exit 3")
    t.docker("wait", "cf-exited", check=False)
    t.docker("create", "--label", LABEL, "--name", "cf-created", "busybox:latest", "true")
    t.docker(*run, "--name", "cf-restart", "--restart", "always", "busybox:latest", "sh", "-c", "exit 1")
    t.docker("create", "--label", LABEL, "--label", "cf-prune=1", "--name", "cf-prunable",
             "busybox:latest", "true")
    t.docker("network", "create", "--label", LABEL, "--label", "cf-prune=1", "cf-net-prune")
    t.docker("volume", "create", "--label", LABEL, "--label", "cf-prune=1", "cf-vol-prune")
    t.wait_for(lambda: t.inspect("cf-run")["State"].get("Health", {}).get("Status") == "healthy",
               "cf-run healthy", 30)


def lifecycle(t):
    """A scripted lifecycle whose events are read back with since/until."""
    t.vars["t0"] = int(time.time()) - 1
    for args in (["create", "--label", LABEL, "--name", "cf-evt", "busybox:latest", "sleep", "3600"],
                 ["start", "cf-evt"], ["pause", "cf-evt"], ["unpause", "cf-evt"],
                 ["kill", "cf-evt"], ["start", "cf-evt"], ["stop", "-t", "1", "cf-evt"],
                 ["rm", "cf-evt"]):
        t.docker(*args)
    time.sleep(1.1)
    t.vars["t1"] = int(time.time())


# -- cases --------------------------------------------------------------

STATE = ["State.Status", "State.Running", "State.Paused", "State.ExitCode", "Name",
         "HostConfig.NetworkMode", "Config.Tty", "RestartCount"]


# What the set-up asked for, as each container's inspect must show it.
ASKED = {
    "cf-run": ["HostConfig.Tmpfs", "HostConfig.PortBindings", "Config.ExposedPorts",
               "NetworkSettings.Networks.cf-net.Aliases", "State.Health.Status",
               "Config.Healthcheck", "Config.Labels"],
    "cf-link": ["HostConfig.Links", "NetworkSettings.Networks.bridge.Aliases"],
    "cf-tty": ["Config.Tty", "Config.OpenStdin"],
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
        C("ping", "GET", "/_ping", "GET /_ping", raw=True, stream=True, payload=True, server=True,
          extra_headers=PING_HEADERS),
        C("ping_head", "HEAD", "/_ping", "HEAD /_ping", raw=True, extra_headers=PING_HEADERS),
        C("ping_v141", "GET", "/_ping", "GET /_ping", stream=True, payload=True),
        C("version", "GET", "/version", "GET /version", values=["Os", "Arch"], server=True),
        C("version_unversioned", "GET", "/version", "GET /version", raw=True),
        C("version_too_new", "GET", "/v1.99/version", "GET /version", raw=True),
        C("unknown_route", "GET", "/nope", "unknown route"),
        C("plugins", "GET", "/plugins", "GET /plugins"),
        C("plugin_inspect_missing", "GET", "/plugins/nope/json", "GET /plugins/{name}/json"),
        C("swarm_inspect", "GET", "/swarm", "GET /swarm"),
        S("objects", setup_objects),
        C("info", "GET", "/info", "GET /info",
          values=["OSType", "Containers", "ContainersPaused"]),
        C("system_df", "GET", "/system/df", "GET /system/df"),
        # -- containers: list
        C("containers_list", "GET", "/containers/json", "GET /containers/json"),
        C("containers_list_all", "GET", "/containers/json?all=1", "GET /containers/json"),
        C("containers_list_size", "GET", "/containers/json?all=1&size=1", "GET /containers/json"),
        C("containers_list_limit", "GET", "/containers/json?all=1&limit=2", "GET /containers/json"),
        C("containers_list_name", "GET", "/containers/json?all=1&filters=" + q({"name": ["cf-exited"]}),
          "GET /containers/json", values=["0.Names", "0.State", "0.Command", "0.Image"]),
        C("containers_list_paused", "GET", "/containers/json?filters=" + q({"status": ["paused"]}),
          "GET /containers/json", values=["0.Names", "0.State"]),
        C("containers_list_label", "GET", "/containers/json?filters=" + q({"label": ["role=web"]}),
          "GET /containers/json", values=["0.Names", "0.State", "0.Labels"]),
        C("containers_list_network", "GET", "/containers/json?filters=" + q({"network": ["cf-net"]}),
          "GET /containers/json", values=["0.Names"]),
        C("containers_list_bad_filters", "GET", "/containers/json?filters=notjson", "GET /containers/json"),
        C("containers_list_unknown_filter", "GET", "/containers/json?filters=" + q({"nope": ["x"]}),
          "GET /containers/json"),
        # -- containers: inspect in every state
        inspect_case("container_inspect_running", "cf-run"),
        inspect_case("container_inspect_running_size", "cf-run", "?size=1"),
        inspect_case("container_inspect_link", "cf-link"),
        inspect_case("container_inspect_tty", "cf-tty"),
        inspect_case("container_inspect_paused", "cf-paused"),
        inspect_case("container_inspect_exited", "cf-exited"),
        inspect_case("container_inspect_created", "cf-created"),
        C("container_inspect_restarting", "GET", "/containers/cf-restart/json",
          "GET /containers/{id}/json", values=["Name", "HostConfig.RestartPolicy"]),
        C("container_inspect_missing", "GET", "/containers/nope/json", "GET /containers/{id}/json"),
        C("container_top", "GET", "/containers/cf-run/top", "GET /containers/{id}/top", values=["Titles"]),
        C("container_top_stopped", "GET", "/containers/cf-exited/top", "GET /containers/{id}/top"),
        C("container_changes", "GET", "/containers/cf-run/changes", "GET /containers/{id}/changes"),
        C("container_changes_created", "GET", "/containers/cf-created/changes",
          "GET /containers/{id}/changes"),
        C("container_stats", "GET", "/containers/cf-run/stats?stream=0", "GET /containers/{id}/stats"),
        C("container_stats_missing", "GET", "/containers/nope/stats?stream=0", "GET /containers/{id}/stats"),
        # -- streams
        C("logs_stdout", "GET", "/containers/cf-run/logs?stdout=1", "GET /containers/{id}/logs",
          stream=True, payload=True, ct150=MUX),
        C("logs_both", "GET", "/containers/cf-run/logs?stdout=1&stderr=1&tail=all",
          "GET /containers/{id}/logs", stream=True, ct150=MUX),
        C("logs_tty", "GET", "/containers/cf-tty/logs?stdout=1&stderr=1", "GET /containers/{id}/logs",
          stream=True, payload=True, ct150=RAW),
        C("logs_timestamps", "GET", "/containers/cf-exited/logs?stdout=1&timestamps=1&tail=1",
          "GET /containers/{id}/logs", stream=True, ct150=MUX),
        C("logs_no_stream", "GET", "/containers/cf-run/logs", "GET /containers/{id}/logs"),
        C("logs_missing", "GET", "/containers/nope/logs?stdout=1", "GET /containers/{id}/logs"),
        C("attach_logs", "POST", "/containers/cf-exited/attach?logs=1&stream=0&stdout=1&stderr=1",
          "POST /containers/{id}/attach", headers=UPGRADE, stream=True, payload=True, timeout=5, ct150=MUX),
        C("attach_logs_tty", "POST", "/containers/cf-tty/attach?logs=1&stream=0&stdout=1",
          "POST /containers/{id}/attach", headers=UPGRADE, stream=True, payload=True, timeout=5, ct150=RAW),
        C("exec_create", "POST", "/containers/cf-run/exec", "POST /containers/{id}/exec",
          body=dict(ex, Cmd=["sh", "-c", "echo hi"]), capture=capture_id("exec")),
        C("exec_start", "POST", "/exec/{exec}/start", "POST /exec/{id}/start",
          body={"Detach": False, "Tty": False}, headers=UPGRADE, stream=True, payload=True, timeout=10, ct150=MUX),
        C("exec_inspect", "GET", "/exec/{exec}/json", "GET /exec/{id}/json",
          values=["ExitCode", "Running", "OpenStdout", "ProcessConfig"]),
        C("exec_create_tty", "POST", "/containers/cf-run/exec", "POST /containers/{id}/exec",
          body=dict(ex, Tty=True, Cmd=["echo", "tty"]), capture=capture_id("exec_tty")),
        C("exec_start_tty", "POST", "/exec/{exec_tty}/start", "POST /exec/{id}/start",
          body={"Detach": False, "Tty": True}, headers=UPGRADE, stream=True, payload=True, timeout=10, ct150=RAW),
        C("exec_create_detached", "POST", "/containers/cf-run/exec", "POST /containers/{id}/exec",
          body={"Cmd": ["sleep", "0"]}, capture=capture_id("exec_d")),
        C("exec_start_detached", "POST", "/exec/{exec_d}/start", "POST /exec/{id}/start",
          body={"Detach": True}),
        C("exec_resize_missing", "POST", "/exec/nope/resize?h=10&w=10", "POST /exec/{id}/resize"),
        C("exec_inspect_missing", "GET", "/exec/nope/json", "GET /exec/{id}/json"),
        C("exec_create_stopped", "POST", "/containers/cf-exited/exec", "POST /containers/{id}/exec",
          body=dict(ex, Cmd=["true"])),
        C("exec_create_paused", "POST", "/containers/cf-paused/exec", "POST /containers/{id}/exec",
          body=dict(ex, Cmd=["true"])),
        # -- archive, export
        C("archive_head", "HEAD", "/containers/cf-run/archive?path=/etc/passwd",
          "HEAD /containers/{id}/archive", stat_header=True),
        C("archive_get", "GET", "/containers/cf-run/archive?path=/etc/passwd",
          "GET /containers/{id}/archive", stream=True, stat_header=True),
        C("archive_get_missing", "GET", "/containers/cf-run/archive?path=/nope",
          "GET /containers/{id}/archive"),
        C("archive_put", "PUT", "/containers/cf-run/archive?path=/tmp", "PUT /containers/{id}/archive",
          body=tar_of({"put.txt": b"hello\n"}), headers={"Content-Type": "application/x-tar"}),
        C("export", "GET", "/containers/cf-created/export", "GET /containers/{id}/export", stream=True),
        # -- images
        C("images_list", "GET", "/images/json", "GET /images/json"),
        C("images_list_all", "GET", "/images/json?all=1", "GET /images/json"),
        C("images_list_dangling", "GET", "/images/json?filters=" + q({"dangling": ["true"]}),
          "GET /images/json", values=["0.RepoTags", "0.RepoDigests"]),
        C("images_list_reference", "GET", "/images/json?filters=" + q({"reference": ["cf-build"]}),
          "GET /images/json", values=["0.RepoTags", "0.Labels"]),
        C("images_list_unknown_filter", "GET", "/images/json?filters=" + q({"nope": ["x"]}),
          "GET /images/json"),
        C("image_inspect_busybox", "GET", "/images/busybox:latest/json", "GET /images/{name}/json",
          values=["RepoTags", "Os", "Architecture", "RootFS.Type"]),
        C("image_inspect_built", "GET", "/images/cf-build:latest/json", "GET /images/{name}/json",
          values=["RepoTags", "Config.Labels", "Config.ExposedPorts", "Config.Volumes",
                  "Config.WorkingDir", "Config.Cmd"]),
        C("image_inspect_missing", "GET", "/images/nope:latest/json", "GET /images/{name}/json"),
        C("image_history", "GET", "/images/cf-build:latest/history", "GET /images/{name}/history"),
        C("image_history_missing", "GET", "/images/nope/history", "GET /images/{name}/history"),
        C("image_tag", "POST", "/images/busybox:latest/tag?repo=cf-tag&tag=v1", "POST /images/{name}/tag"),
        C("image_tag_missing", "POST", "/images/nope/tag?repo=cf-tag&tag=v2", "POST /images/{name}/tag"),
        C("image_delete_tag", "DELETE", "/images/cf-tag:v1", "DELETE /images/{name}",
          values=["0.Untagged"]),
        C("image_delete_missing", "DELETE", "/images/nope:latest", "DELETE /images/{name}"),
        C("image_delete_in_use", "DELETE", "/images/busybox:latest", "DELETE /images/{name}"),
        C("image_save", "GET", "/images/cf-build:latest/get", "GET /images/{name}/get", stream=True),
        C("commit", "POST", "/commit?container=cf-exited&repo=cf-commit&tag=v1&comment=c",
          "POST /commit", body={}),
        C("commit_missing", "POST", "/commit?container=nope&repo=cf-commit&tag=v2", "POST /commit",
          body={}),
        C("image_import", "POST", "/images/create?fromSrc=-&repo=cf-import&tag=v1",
          "POST /images/create", body=tar_of({"hello.txt": b"hi\n"}),
          headers={"Content-Type": "application/x-tar"}, jsonlines=True),
        C("build", "POST", "/build?t=cf-api-build:latest&rm=1&labels=" + q({"conformance": "1"}),
          "POST /build", body=tar_of({"Dockerfile": b"FROM busybox:latest\nRUN true\n"}),
          headers={"Content-Type": "application/x-tar"}, jsonlines=True),
        C("build_bad_dockerfile", "POST", "/build?t=cf-bad", "POST /build",
          body=tar_of({"Dockerfile": b"FROMM busybox\n"}),
          headers={"Content-Type": "application/x-tar"}, jsonlines=True),
        C("build_prune", "POST", "/build/prune", "POST /build/prune"),
        # -- networks
        C("networks_list", "GET", "/networks", "GET /networks"),
        C("networks_list_name", "GET", "/networks?filters=" + q({"name": ["cf-net"]}), "GET /networks",
          values=["0.Name", "0.Driver", "0.Scope", "0.Internal", "0.Attachable"]),
        C("network_inspect_user", "GET", "/networks/cf-net", "GET /networks/{id}",
          values=["Name", "Driver", "Scope", "Internal", "EnableIPv6", "Labels"]),
        C("network_inspect_bridge", "GET", "/networks/bridge", "GET /networks/{id}",
          values=["Name", "Driver"]),
        C("network_inspect_none", "GET", "/networks/none", "GET /networks/{id}", values=["Name", "Driver"]),
        C("network_inspect_missing", "GET", "/networks/nope", "GET /networks/{id}"),
        C("network_create", "POST", "/networks/create", "POST /networks/create",
          body={"Name": "cf-net2", "Labels": {"conformance": "1"}}),
        C("network_create_dup", "POST", "/networks/create", "POST /networks/create",
          body={"Name": "cf-net", "CheckDuplicate": True}),
        C("network_connect", "POST", "/networks/cf-net2/connect", "POST /networks/{id}/connect",
          body={"Container": "cf-base", "EndpointConfig": {"Aliases": ["b2"]}}),
        C("network_connect_missing", "POST", "/networks/cf-net2/connect", "POST /networks/{id}/connect",
          body={"Container": "nope"}),
        C("network_disconnect", "POST", "/networks/cf-net2/disconnect", "POST /networks/{id}/disconnect",
          body={"Container": "cf-base"}),
        C("network_delete", "DELETE", "/networks/cf-net2", "DELETE /networks/{id}"),
        C("network_delete_missing", "DELETE", "/networks/nope", "DELETE /networks/{id}"),
        C("networks_prune", "POST", "/networks/prune?filters=" + q({"label": ["cf-prune=1"]}),
          "POST /networks/prune", values=["NetworksDeleted"]),
        # -- volumes
        C("volumes_list", "GET", "/volumes", "GET /volumes"),
        C("volumes_list_filter", "GET", "/volumes?filters=" + q({"name": ["cf-vol"]}), "GET /volumes"),
        C("volume_inspect", "GET", "/volumes/cf-vol", "GET /volumes/{name}",
          values=["Name", "Driver", "Scope", "Labels", "Options"]),
        C("volume_inspect_missing", "GET", "/volumes/nope", "GET /volumes/{name}"),
        C("volume_create", "POST", "/volumes/create", "POST /volumes/create",
          body={"Name": "cf-vol2", "Labels": {"conformance": "1"}}, values=["Name", "Driver", "Scope"]),
        C("volume_delete", "DELETE", "/volumes/cf-vol2", "DELETE /volumes/{name}"),
        C("volume_delete_in_use", "DELETE", "/volumes/cf-vol", "DELETE /volumes/{name}"),
        C("volume_delete_missing", "DELETE", "/volumes/nope", "DELETE /volumes/{name}"),
        C("volumes_prune", "POST", "/volumes/prune?filters=" + q({"label": ["cf-prune=1"]}),
          "POST /volumes/prune", values=["VolumesDeleted"]),
        # -- container lifecycle over the API, with its errors
        C("container_create", "POST", "/containers/create?name=cf-api", "POST /containers/create",
          body={"Image": "busybox:latest", "Cmd": ["sleep", "3600"], "Labels": {"conformance": "1"}},
          values=["Warnings"]),
        C("container_create_conflict", "POST", "/containers/create?name=cf-run", "POST /containers/create",
          body={"Image": "busybox:latest", "Cmd": ["true"]}),
        C("container_create_no_image", "POST", "/containers/create?name=cf-noimg",
          "POST /containers/create", body={"Image": "nope:latest"}),
        C("container_create_bad_json", "POST", "/containers/create", "POST /containers/create",
          body=b"{", headers={"Content-Type": "application/json"}),
        C("container_start", "POST", "/containers/cf-api/start", "POST /containers/{id}/start"),
        C("container_start_running", "POST", "/containers/cf-api/start", "POST /containers/{id}/start"),
        C("container_start_missing", "POST", "/containers/nope/start", "POST /containers/{id}/start"),
        C("container_update", "POST", "/containers/cf-api/update", "POST /containers/{id}/update",
          body={"CpuShares": 512}, values=["Warnings"]),
        C("container_resize_notty", "POST", "/containers/cf-api/resize?h=40&w=80",
          "POST /containers/{id}/resize"),
        C("container_resize_tty", "POST", "/containers/cf-tty/resize?h=40&w=80",
          "POST /containers/{id}/resize"),
        C("container_rename", "POST", "/containers/cf-api/rename?name=cf-api2", "POST /containers/{id}/rename"),
        C("container_rename_conflict", "POST", "/containers/cf-api2/rename?name=cf-run",
          "POST /containers/{id}/rename"),
        C("container_pause", "POST", "/containers/cf-api2/pause", "POST /containers/{id}/pause"),
        C("container_pause_paused", "POST", "/containers/cf-api2/pause", "POST /containers/{id}/pause"),
        C("container_start_paused", "POST", "/containers/cf-api2/start", "POST /containers/{id}/start"),
        C("container_unpause", "POST", "/containers/cf-api2/unpause", "POST /containers/{id}/unpause"),
        C("container_unpause_running", "POST", "/containers/cf-api2/unpause",
          "POST /containers/{id}/unpause"),
        C("container_restart", "POST", "/containers/cf-api2/restart?t=0", "POST /containers/{id}/restart"),
        C("container_kill", "POST", "/containers/cf-api2/kill?signal=SIGKILL", "POST /containers/{id}/kill"),
        C("container_wait", "POST", "/containers/cf-api2/wait", "POST /containers/{id}/wait",
          values=["StatusCode", "Error"]),
        C("container_kill_stopped", "POST", "/containers/cf-api2/kill", "POST /containers/{id}/kill"),
        C("container_stop_stopped", "POST", "/containers/cf-api2/stop", "POST /containers/{id}/stop"),
        C("container_stop_missing", "POST", "/containers/nope/stop", "POST /containers/{id}/stop"),
        C("container_wait_exited", "POST", "/containers/cf-exited/wait", "POST /containers/{id}/wait",
          values=["StatusCode", "Error"]),
        C("container_delete_running", "DELETE", "/containers/cf-run", "DELETE /containers/{id}"),
        C("container_delete", "DELETE", "/containers/cf-api2", "DELETE /containers/{id}"),
        C("container_delete_missing", "DELETE", "/containers/nope", "DELETE /containers/{id}"),
        C("containers_prune", "POST", "/containers/prune?filters=" + q({"label": ["cf-prune=1"]}),
          "POST /containers/prune", values=["ContainersDeleted"]),
        C("images_prune", "POST", "/images/prune?filters=" + q({"label": ["cf-prune=1"]}),
          "POST /images/prune"),
        # -- events of a scripted lifecycle
        S("lifecycle", lifecycle),
        C("events_lifecycle", "GET", "/events?since={t0}&until={t1}&filters=" + q({"container": ["cf-evt"]}),
          "GET /events", events=True),
        C("events_bad_filter", "GET", "/events?since={t0}&until={t1}&filters=notjson", "GET /events"),
    ]
