"""Container rows: run, exec, the same over the API, ps, shims, stats."""

import json
import os
import shutil
import subprocess
import time

from lib.catalog import Target, ms, row
from lib.daemon import api, cleanup_containers, paired, pss_kib, sh, shim_pids, timed

BUSYBOX = "busybox:latest"


def busybox_tar(base):
    """A busybox rootfs tar from Debian's busybox-static, made once."""
    path = os.path.join(base, "busybox-rootfs.tar")
    if os.path.exists(path):
        return path
    root = os.path.join(base, "busybox-rootfs")
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin/busybox"))
    applets = subprocess.run(["/bin/busybox", "--list"], stdout=subprocess.PIPE, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", a))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\n")
    sh(["tar", "-C", root, "-cf", path, "."])
    return path


def ensure_busybox(*daemons):
    for dm in daemons:
        if not dm.docker("image", "inspect", BUSYBOX, check=False).returncode == 0:
            dm.docker("import", busybox_tar(os.path.dirname(dm.dir)), BUSYBOX)


@row("docker run --rm --network none busybox true", target=Target("<=", 0.12, mode="b2b"))
def r_run_none(b, d, ctx):
    ensure_busybox(b, d)
    run = lambda dm: timed(lambda: dm.docker("run", "--rm", "--network", "none", BUSYBOX, "true"))
    return ms(*paired(b, d, lambda: run(b), lambda: run(d), ctx.runs))


@row("berth run --rm --network none busybox true (berth CLI; dockerd side: docker CLI)",
     target=Target("<=", 15, on="abs"))
def r_berth_run(b, d, ctx):
    ensure_busybox(b, d)
    argv = ("run", "--rm", "--network", "none", BUSYBOX, "true")
    # A baseline berthd is driven by its own build's berth CLI, dockerd by
    # the docker CLI (the berth CLI is not made for dockerd).
    other = (lambda: d.berth_cli(*argv)) if d.kind == "berthd" else (lambda: d.docker(*argv))
    return ms(*paired(b, d, lambda: timed(lambda: b.berth_cli(*argv)), lambda: timed(other), ctx.runs))


@row("docker run --rm busybox true (default bridge)", target=Target("<=", 0.12, mode="b2b"))
def r_run_bridge(b, d, ctx):
    ensure_busybox(b, d)
    run = lambda dm: timed(lambda: dm.docker("run", "--rm", BUSYBOX, "true"))
    return ms(*paired(b, d, lambda: run(b), lambda: run(d), ctx.runs))


def paired_on_sleeper(b, d, runs, name, fn):
    """Pairs fn(daemon) runs against a running `sleep` container `name` on
    each daemon, removed afterwards."""
    ensure_busybox(b, d)
    for dm in (b, d):
        dm.docker("rm", "-f", name, check=False)
        dm.docker("run", "-d", "--name", name, "--network", "none", BUSYBOX, "sleep", "3600")
    try:
        return ms(*paired(b, d, lambda: timed(lambda: fn(b)), lambda: timed(lambda: fn(d)), runs))
    finally:
        for dm in (b, d):
            dm.docker("rm", "-f", name, check=False)


@row("docker exec <running> true")
def r_exec(b, d, ctx):
    return paired_on_sleeper(b, d, ctx.runs, "bench-exec", lambda dm: dm.docker("exec", "bench-exec", "true"))


# -- the same work over the API, without the docker CLI's own start-up
# (~20 ms of every CLI row above): what the daemon itself costs.

def api_run(dm):
    st, b = api(dm.sock, "POST", "/v1.41/containers/create",
                {"Image": BUSYBOX, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
    if st != 201:
        raise RuntimeError(f"create: {st} {b[:200]!r}")
    cid = json.loads(b)["Id"]
    st, b = api(dm.sock, "POST", f"/v1.41/containers/{cid}/start")
    if st != 204:
        raise RuntimeError(f"start: {st} {b[:200]!r}")
    api(dm.sock, "POST", f"/v1.41/containers/{cid}/wait")
    api(dm.sock, "DELETE", f"/v1.41/containers/{cid}")


@row("API: create+start+wait+delete busybox true, network none (no CLI)", target=Target("<=", 12, on="abs"))
def r_api_run(b, d, ctx):
    ensure_busybox(b, d)
    return ms(*paired(b, d, lambda: timed(lambda: api_run(b)), lambda: timed(lambda: api_run(d)), ctx.runs))


def api_create(dm):
    st, b = api(dm.sock, "POST", "/v1.41/containers/create",
                {"Image": BUSYBOX, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
    if st != 201:
        raise RuntimeError(f"create: {st} {b[:200]!r}")
    return json.loads(b)["Id"]


def api_start_later(dm):
    """The start alone of a container created 50 ms before (as `docker
    create` then `docker start`, Compose, or a client that copies files in
    between): the time the daemon had to prepare it is not counted."""
    cid = api_create(dm)
    time.sleep(0.05)
    t = timed(lambda: api(dm.sock, "POST", f"/v1.41/containers/{cid}/start"))
    api(dm.sock, "POST", f"/v1.41/containers/{cid}/wait")
    api(dm.sock, "DELETE", f"/v1.41/containers/{cid}")
    return t


@row("API: start of a container created 50 ms before (no CLI)")
def r_api_start_later(b, d, ctx):
    ensure_busybox(b, d)
    return ms(*paired(b, d, lambda: api_start_later(b), lambda: api_start_later(d), ctx.runs))


def api_exec(dm, name):
    st, b = api(dm.sock, "POST", f"/v1.41/containers/{name}/exec",
                {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})
    if st != 201:
        raise RuntimeError(f"exec create: {st} {b[:200]!r}")
    eid = json.loads(b)["Id"]
    api(dm.sock, "POST", f"/v1.41/exec/{eid}/start", {"Detach": False, "Tty": False})
    st, b = api(dm.sock, "GET", f"/v1.41/exec/{eid}/json")
    if json.loads(b).get("ExitCode") != 0:
        raise RuntimeError(f"exec inspect: {b[:200]!r}")


@row("API: exec create+start+inspect true (no CLI)", target=Target("<=", 4, on="abs"))
def r_api_exec(b, d, ctx):
    return paired_on_sleeper(b, d, ctx.runs, "bench-apiexec", lambda dm: api_exec(dm, "bench-apiexec"))


@row("docker ps -a with 200 containers")
def r_ps(b, d, ctx):
    ensure_busybox(b, d)
    for dm in (b, d):
        cleanup_containers(dm)
        for i in range(200):
            dm.docker("create", "--network", "none", BUSYBOX, "true")
    ps = lambda dm: timed(lambda: dm.docker("ps", "-a"))
    try:
        return ms(*paired(b, d, lambda: ps(b), lambda: ps(d), ctx.runs))
    finally:
        for dm in (b, d):
            cleanup_containers(dm)


@row("per-container shim PSS, 50 running sleeps", modal=False)
def r_shim_pss(b, d, ctx):
    ensure_busybox(b, d)
    res = []
    for dm in (b, d):
        cleanup_containers(dm)
        try:
            for i in range(50):
                dm.docker("run", "-d", "--network", "none", BUSYBOX, "sleep", "3600")
            time.sleep(2)
            pids = shim_pids(dm)
            if len(pids) < 50:
                raise RuntimeError(f"{dm.label}: {len(pids)} shims found for 50 running containers")
            res.append(sum(pss_kib(p) for p in pids) / len(pids) / 1024)
        finally:
            cleanup_containers(dm)
    return res[0], res[1], "MiB"


@row("docker stats --no-stream, 20 running containers")
def r_stats(b, d, ctx):
    ensure_busybox(b, d)
    for dm in (b, d):
        cleanup_containers(dm)
        for i in range(20):
            dm.docker("run", "-d", "--network", "none", BUSYBOX, "sleep", "3600")
    st = lambda dm: timed(lambda: dm.docker("stats", "--no-stream"))
    try:
        return ms(*paired(b, d, lambda: st(b), lambda: st(d), max(3, ctx.runs // 4)))
    finally:
        for dm in (b, d):
            cleanup_containers(dm)
