#!/usr/bin/env python3
"""Side-by-side benchmarks: berthd vs dockerd on this machine.

Each daemon runs on its own socket, data root and exec root, inside its own
network namespace (so neither touches the host's networks). Measurements are
paired (A B A B ...) and the table shows medians and the berthd/dockerd ratio
(< 1 means berthd is faster or smaller).

Usage: bench/bench.py [--runs N] [--only ROW[,ROW...]] [--keep] [--baseline BIN_DIR]
Needs root. Installs docker.io if dockerd is absent. Not part of CI.

--baseline BIN_DIR pairs this build's berthd against another build's (e.g.
a release build of an earlier commit) instead of dockerd: a before/after
check of a change, measured the same way.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH_BIN = os.environ.get("BERTH_BIN_DIR", os.path.join(ROOT, "target", "release"))


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, **kw)


def ensure_dockerd():
    if shutil.which("dockerd"):
        return
    print("installing docker.io (for dockerd) ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh("apt-get update -qq", env=env)
    sh("apt-get install -y -qq docker.io", env=env)


def ping(sock, timeout=0.5):
    """HEAD /_ping over the unix socket; True on 200."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall(b"HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(64)
        s.close()
        return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    """All descendants. `children` is per thread: a Go daemon forks from
    whichever thread runs, so every task's list is read."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                for c in f.read().split():
                    if int(c) not in out:
                        out.append(int(c))
                        out.extend(children(int(c)))
        except OSError:
            pass
    return out


class Daemon:
    """One engine (berthd or dockerd) in its own netns and directories."""

    def __init__(self, kind, base, bin_dir=BERTH_BIN, label=None):
        self.kind = kind
        self.bin_dir = bin_dir
        self.label = label or kind
        self.dir = os.path.join(base, self.label)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "api.sock")
        self.netns = f"bench-{self.label}-{os.getpid()}"
        self.proc = None
        self.log = open(os.path.join(self.dir, "daemon.log"), "ab")
        sh(["ip", "netns", "add", self.netns])
        sh(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"])

    @property
    def host(self):
        return "unix://" + self.sock

    def argv(self):
        data, exe = os.path.join(self.dir, "data"), os.path.join(self.dir, "exec")
        if self.kind == "berthd":
            cfg = os.path.join(self.dir, "daemon.json")
            with open(cfg, "w") as f:
                f.write("{}")
            return [os.path.join(self.bin_dir, "berthd"), "-H", self.host, "--data-root", data,
                    "--exec-root", exe, "--pidfile", os.path.join(self.dir, "berthd.pid"),
                    "--config-file", cfg, "--cgroup-parent", f"/berth-bench-{self.label}"]
        cfg = os.path.join(self.dir, "daemon.json")
        with open(cfg, "w") as f:
            f.write("{}")
        return ["dockerd", "-H", self.host, "--data-root", data, "--exec-root", exe,
                "--pidfile", os.path.join(self.dir, "dockerd.pid"), "--config-file", cfg,
                "--iptables=false", "--ip6tables=false"]

    def start(self, timeout=60):
        t0 = time.perf_counter()
        # nsenter --net, not `ip netns exec`: the latter remounts /sys in a
        # new mount namespace, which hides the cgroup mounts (dockerd then
        # fails with "Devices cgroup isn't mounted").
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", "--"] + self.argv(),
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if ping(self.sock):
                return time.perf_counter() - t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited; see {self.dir}/daemon.log")
            time.sleep(0.002)
        raise RuntimeError(f"{self.kind} did not answer /_ping in {timeout}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pid(self):
        return self.proc.pid if self.proc else None

    def daemon_pid(self):
        # nsenter execs the daemon, so the child PID is the daemon.
        return self.pid()

    def docker(self, *args, check=True, input=None):
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_CLI_HINTS="false")
        env.pop("DOCKER_API_VERSION", None)
        return subprocess.run(["docker", *args], env=env, check=check, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                cleanup_containers(self)
            except Exception:
                pass
        self.stop()
        sh(["ip", "netns", "del", self.netns], check=False)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# Pause before every sample: a daemon's work goes on after its client
# returns (dockerd's containerd shim exits and cleans up, the kernel tears
# down namespaces), and on 2 cores that trailing work would be billed to
# whichever daemon is measured next.
SETTLE = float(os.environ.get("BENCH_SETTLE", "0.2"))


def paired(a, b, fa, fb, runs, warmup=1):
    """A B A B ... after a warm-up of each, each sample on a settled
    machine; returns (samples_a, samples_b)."""
    # What earlier rows wrote (image imports) is flushed now, not during
    # the first samples of this one.
    os.sync()
    for _ in range(warmup):
        fa()
        fb()
    xa, xb = [], []
    for _ in range(runs):
        time.sleep(SETTLE)
        xa.append(fa())
        time.sleep(SETTLE)
        xb.append(fb())
    return xa, xb


# Each row: name -> function(berth, docker, runs) -> (berth_value, docker_value, unit)
ROWS = {}


def row(name):
    def deco(fn):
        ROWS[name] = fn
        return fn
    return deco


@row("docker version round trip")
def r_version(b, d, runs):
    xa, xb = paired(b, d, lambda: timed(lambda: b.docker("version")),
                    lambda: timed(lambda: d.docker("version")), runs)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


@row("daemon cold start to /_ping")
def r_cold(b, d, runs):
    xa, xb = [], []
    for _ in range(max(3, runs // 4)):
        b.stop()
        xa.append(b.start())
        d.stop()
        xb.append(d.start())
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


@row("idle daemon RSS")
def r_rss(b, d, runs):
    time.sleep(2)
    rb = rss_kib(b.daemon_pid())
    rd = rss_kib(d.daemon_pid())
    return rb / 1024, rd / 1024, "MiB"


@row("idle RSS incl. helpers (containerd/shims)")
def r_rss_all(b, d, runs):
    def total(p):
        return sum(rss_kib(x) for x in [p] + children(p))
    return total(b.daemon_pid()) / 1024, total(d.daemon_pid()) / 1024, "MiB"


# -- images: docker load / docker save of a ~200 MB multi-layer image ------

IMAGE_LAYERS = 5
IMAGE_LAYER_MB = 40
BENCH_IMAGE = "berth-bench/big:latest"


def _tar_bytes(files):
    """An uncompressed tar of (name, bytes) regular files, root-owned."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1_700_000_000
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_image_archive(path):
    """A docker-archive (Docker 25+ layout) of IMAGE_LAYERS layers of random,
    incompressible data; returns its size in bytes."""
    import hashlib
    import io
    import json
    import tarfile
    layers = []
    for i in range(IMAGE_LAYERS):
        files = [(f"layer{i}/blob{j}.bin", os.urandom(IMAGE_LAYER_MB // 4 * 1024 * 1024)) for j in range(4)]
        layers.append(_tar_bytes(files))
    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench"} for _ in layers],
    }).encode()
    cid = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{
        "Config": f"blobs/sha256/{cid}",
        "RepoTags": [BENCH_IMAGE],
        "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids],
    }]).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name, data in [(f"blobs/sha256/{d[7:]}", l) for d, l in zip(diff_ids, layers)] + [
                (f"blobs/sha256/{cid}", config), ("manifest.json", manifest)]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    return os.path.getsize(path)


_ARCHIVE = {}


def bench_archive(d):
    if "path" not in _ARCHIVE:
        path = os.path.join(os.path.dirname(d.dir), "bench-image.tar")
        _ARCHIVE["size"] = make_image_archive(path)
        _ARCHIVE["path"] = path
    return _ARCHIVE["path"], _ARCHIVE["size"]


def _load(daemon, path):
    daemon.docker("rmi", "-f", BENCH_IMAGE, check=False)
    return timed(lambda: daemon.docker("load", "-i", path))


@row("docker load ~200 MB, 5 layers (MB/s, higher is better)")
def r_load(b, d, runs):
    path, size = bench_archive(b)
    n = max(3, min(runs, 8))
    xa, xb = paired(b, d, lambda: _load(b, path), lambda: _load(d, path), n)
    mb = size / 1e6
    return mb / statistics.median(xa), mb / statistics.median(xb), "MB/s"


@row("docker save ~200 MB, 5 layers (MB/s, higher is better)")
def r_save(b, d, runs):
    path, size = bench_archive(b)
    for daemon in (b, d):
        daemon.docker("rmi", "-f", BENCH_IMAGE, check=False)
        daemon.docker("load", "-i", path)
    out = os.path.join(os.path.dirname(b.dir), "bench-save.tar")

    def save(daemon):
        t = timed(lambda: daemon.docker("save", "-o", out, BENCH_IMAGE))
        os.unlink(out)
        return t
    n = max(3, min(runs, 8))
    xa, xb = paired(b, d, lambda: save(b), lambda: save(d), n)
    mb = size / 1e6
    return mb / statistics.median(xa), mb / statistics.median(xb), "MB/s"


# ---- containers -------------------------------------------------------------

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


def cleanup_containers(dm):
    ids = dm.docker("ps", "-aq").stdout.decode().split()
    for i in range(0, len(ids), 50):
        dm.docker("rm", "-f", *ids[i:i + 50], check=False)


@row("docker run --rm --network none busybox true")
def r_run_none(b, d, runs):
    ensure_busybox(b, d)
    run = lambda dm: timed(lambda: dm.docker("run", "--rm", "--network", "none", BUSYBOX, "true"))
    xa, xb = paired(b, d, lambda: run(b), lambda: run(d), runs)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


@row("docker run --rm busybox true (default bridge)")
def r_run_bridge(b, d, runs):
    ensure_busybox(b, d)
    run = lambda dm: timed(lambda: dm.docker("run", "--rm", BUSYBOX, "true"))
    xa, xb = paired(b, d, lambda: run(b), lambda: run(d), runs)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


def paired_on_sleeper(b, d, runs, name, fn):
    """Pairs fn(daemon) runs against a running `sleep` container `name` on
    each daemon, removed afterwards."""
    ensure_busybox(b, d)
    for dm in (b, d):
        dm.docker("rm", "-f", name, check=False)
        dm.docker("run", "-d", "--name", name, "--network", "none", BUSYBOX, "sleep", "3600")
    try:
        xa, xb = paired(b, d, lambda: timed(lambda: fn(b)), lambda: timed(lambda: fn(d)), runs)
    finally:
        for dm in (b, d):
            dm.docker("rm", "-f", name, check=False)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


@row("docker exec <running> true")
def r_exec(b, d, runs):
    return paired_on_sleeper(b, d, runs, "bench-exec", lambda dm: dm.docker("exec", "bench-exec", "true"))


# -- the same work over the API, without the docker CLI's own start-up
# (~20 ms of every CLI row above): what the daemon itself costs.

def api(sock, method, path, body=None, timeout=30):
    """One HTTP/1.1 request over the unix socket; returns (status, body).
    Reads to EOF (Connection: close), which also drains an exec stream."""
    import json as _json
    data = b"" if body is None else _json.dumps(body).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
    s.sendall(head.encode() + data)
    chunks = []
    while True:
        c = s.recv(65536)
        if not c:
            break
        chunks.append(c)
    s.close()
    raw = b"".join(chunks)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
    return status, raw.split(b"\r\n\r\n", 1)[-1]


def api_run(dm):
    import json as _json
    st, b = api(dm.sock, "POST", "/v1.41/containers/create",
                {"Image": BUSYBOX, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
    if st != 201:
        raise RuntimeError(f"create: {st} {b[:200]!r}")
    cid = _json.loads(b)["Id"]
    st, b = api(dm.sock, "POST", f"/v1.41/containers/{cid}/start")
    if st != 204:
        raise RuntimeError(f"start: {st} {b[:200]!r}")
    api(dm.sock, "POST", f"/v1.41/containers/{cid}/wait")
    api(dm.sock, "DELETE", f"/v1.41/containers/{cid}")


@row("API: create+start+wait+delete busybox true, network none (no CLI)")
def r_api_run(b, d, runs):
    ensure_busybox(b, d)
    xa, xb = paired(b, d, lambda: timed(lambda: api_run(b)), lambda: timed(lambda: api_run(d)), runs)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


def api_exec(dm, name):
    import json as _json
    st, b = api(dm.sock, "POST", f"/v1.41/containers/{name}/exec",
                {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})
    if st != 201:
        raise RuntimeError(f"exec create: {st} {b[:200]!r}")
    eid = _json.loads(b)["Id"]
    api(dm.sock, "POST", f"/v1.41/exec/{eid}/start", {"Detach": False, "Tty": False})
    st, b = api(dm.sock, "GET", f"/v1.41/exec/{eid}/json")
    if _json.loads(b).get("ExitCode") != 0:
        raise RuntimeError(f"exec inspect: {b[:200]!r}")


@row("API: exec create+start+inspect true (no CLI)")
def r_api_exec(b, d, runs):
    return paired_on_sleeper(b, d, runs, "bench-apiexec", lambda dm: api_exec(dm, "bench-apiexec"))


@row("docker ps -a with 200 containers")
def r_ps(b, d, runs):
    ensure_busybox(b, d)
    for dm in (b, d):
        cleanup_containers(dm)
        for i in range(200):
            dm.docker("create", "--network", "none", BUSYBOX, "true")
    ps = lambda dm: timed(lambda: dm.docker("ps", "-a"))
    try:
        xa, xb = paired(b, d, lambda: ps(b), lambda: ps(d), runs)
    finally:
        for dm in (b, d):
            cleanup_containers(dm)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def shim_pids(dm):
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if dm.dir in cmd and ("berth-shim" in cmd or "containerd-shim" in cmd):
            out.append(int(e))
    return out


@row("per-container shim PSS, 50 running sleeps")
def r_shim_pss(b, d, runs):
    ensure_busybox(b, d)
    res = []
    for dm in (b, d):
        cleanup_containers(dm)
        for i in range(50):
            dm.docker("run", "-d", "--network", "none", BUSYBOX, "sleep", "3600")
        time.sleep(2)
        pids = shim_pids(dm)
        total = sum(pss_kib(p) for p in pids)
        res.append(total / max(1, len(pids)) / 1024)
        cleanup_containers(dm)
    return res[0], res[1], "MiB"


@row("docker stats --no-stream, 20 running containers")
def r_stats(b, d, runs):
    ensure_busybox(b, d)
    for dm in (b, d):
        cleanup_containers(dm)
        for i in range(20):
            dm.docker("run", "-d", "--network", "none", BUSYBOX, "sleep", "3600")
    st = lambda dm: timed(lambda: dm.docker("stats", "--no-stream"))
    try:
        xa, xb = paired(b, d, lambda: st(b), lambda: st(d), max(3, runs // 4))
    finally:
        for dm in (b, d):
            cleanup_containers(dm)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


# -- registry: docker pull of a ~200 MB multi-layer image from a local registry

REG_LAYERS = 5
REG_LAYER_MB = 40
REG_IMAGE = "127.0.0.1:5000/bench/pull:latest"


def make_oci_layout(path):
    """An OCI image layout of REG_LAYERS gzip layers, each a third random
    bytes, a third base64 text and a third log-like lines (so it compresses
    like real images do); returns the uncompressed size in bytes."""
    import base64
    import gzip
    import hashlib
    import json
    import random
    rnd = random.Random(42)
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return "sha256:" + d, len(data)

    third = REG_LAYER_MB * 1024 * 1024 // 3
    layers, diff_ids, total = [], [], 0
    for i in range(REG_LAYERS):
        logs = b"".join(b"%08d INFO handled GET /api/v1/items/%d status=200 in %dms\n"
                        % (n, rnd.randrange(10**6), rnd.randrange(500)) for n in range(third // 56))
        files = []
        for j in range(4):
            q = third // 4
            files.append((f"layer{i}/rand{j}.bin", os.urandom(q)))
            files.append((f"layer{i}/text{j}.b64", base64.b64encode(os.urandom(q * 3 // 4))))
            files.append((f"layer{i}/log{j}.log", logs[j * q:(j + 1) * q]))
        tar = _tar_bytes(files)
        total += len(tar)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        layers.append(put(gzip.compress(tar, compresslevel=6, mtime=0)))
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    cdig, csize = put(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}
                   for d, n in layers],
    }).encode()
    mdig, msize = put(manifest)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
    return total


class NsRegistry:
    """docker-registry on 127.0.0.1:5000 inside a daemon's network namespace
    (loopback only), holding the bench image."""

    def __init__(self, daemon, layout):
        self.daemon = daemon
        self.dir = os.path.join(daemon.dir, "registry")
        os.makedirs(self.dir, exist_ok=True)
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                    "http:\n  addr: 127.0.0.1:5000\n")
        self.ns = ["nsenter", f"--net=/run/netns/{daemon.netns}", "--"]
        self.log = open(os.path.join(self.dir, "registry.log"), "ab")
        self.proc = subprocess.Popen(self.ns + ["docker-registry", "serve", cfg],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while sh(self.ns + ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:5000/v2/"],
                 check=False).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"registry did not start; see {self.dir}/registry.log")
            time.sleep(0.05)
        sh(self.ns + ["skopeo", "copy", "-q", "--dest-tls-verify=false",
                      f"oci:{layout}:latest", f"docker://{REG_IMAGE}"], stdout=subprocess.DEVNULL)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@row("registry: docker pull ~200 MB, 5 gzip layers (MB/s, higher is better)")
def r_pull(b, d, runs):
    layout = os.path.join(os.path.dirname(b.dir), "bench-oci")
    size = make_oci_layout(layout)
    regs = [NsRegistry(b, layout), NsRegistry(d, layout)]
    try:
        def pull(daemon):
            daemon.docker("rmi", "-f", REG_IMAGE, check=False)
            return timed(lambda: daemon.docker("pull", REG_IMAGE))
        n = max(3, min(runs, 8))
        xa, xb = paired(b, d, lambda: pull(b), lambda: pull(d), n)
        mb = size / 1e6
        tb, td = mb / statistics.median(xa), mb / statistics.median(xb)
        print(f"    registry pull: berthd {tb:.1f} MB/s, dockerd {td:.1f} MB/s, "
              f"throughput ratio berthd/dockerd = {tb / td:.2f}x", file=sys.stderr)
        return tb, td, "MB/s"
    finally:
        for r in regs:
            r.close()


# -- docker compose build through each daemon's BuildKit ---------------------

# Ten instructions; the build arg NONCE changes every sample and is used by
# the first RUN, so no step after FROM can come from the cache.
COMPOSE_DOCKERFILE = """FROM busybox:latest
ARG NONCE
RUN echo "$NONCE" > /nonce
WORKDIR /app
COPY a.txt ./
ENV GREETING=hello
RUN cat a.txt /nonce > both.txt
COPY b.txt ./
RUN wc -c both.txt b.txt > sizes.txt
LABEL bench=compose-build
"""
COMPOSE_YAML = """services:
  app:
    build:
      context: .
      args:
        NONCE: ${NONCE:-0}
"""


def compose_project(base):
    path = os.path.join(base, "compose-build")
    if os.path.exists(path):
        return path
    os.makedirs(path)
    for name, text in (("Dockerfile", COMPOSE_DOCKERFILE), ("compose.yaml", COMPOSE_YAML),
                       ("a.txt", "a" * 4096 + "\n"), ("b.txt", "b" * 65536 + "\n")):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return path


def compose_build(dm, path, nonce):
    """`docker compose build` as a user runs it: no DOCKER_BUILDKIT, no
    COMPOSE_BAKE, so Compose uses the daemon's BuildKit (docker driver)."""
    env = dict(os.environ, DOCKER_HOST=dm.host, DOCKER_CLI_HINTS="false", NONCE=str(nonce),
               DOCKER_CONFIG=os.path.join(dm.dir, "docker-config"), COMPOSE_ANSI="never")
    for k in ("DOCKER_API_VERSION", "DOCKER_BUILDKIT", "COMPOSE_BAKE", "BUILDX_BUILDER",
              "DOCKER_CONTEXT", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME"):
        env.pop(k, None)
    r = subprocess.run(["docker", "compose", "-p", "benchbuild", "--progress", "plain", "build"],
                       cwd=path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        raise RuntimeError(f"{dm.label}: docker compose build failed:\n{out[-2000:]}")
    return out


@row("docker compose build, 10 steps, BuildKit (uncached)")
def r_compose_build(b, d, runs):
    ensure_busybox(b, d)
    path = compose_project(os.path.dirname(b.dir))
    nonce = [0]

    def once(dm):
        nonce[0] += 1
        t0 = time.perf_counter()
        out = compose_build(dm, path, nonce[0])
        t = time.perf_counter() - t0
        # Through the daemon's own BuildKit, every step built anew (the
        # FROM of a local image may show as CACHED).
        if "instance using docker driver" not in out or out.count("CACHED") > 1:
            raise RuntimeError(f"{dm.label}: not an uncached docker-driver build:\n{out[-2000:]}")
        return t

    try:
        xa, xb = paired(b, d, lambda: once(b), lambda: once(d), runs)
    finally:
        for dm in (b, d):
            dm.docker("rmi", "-f", "benchbuild-app", check=False)
            dm.docker("builder", "prune", "-af", check=False)
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--baseline", default="", help="pair against this bin dir's berthd, not dockerd")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root (namespaces, mounts)")
    if not os.path.exists(os.path.join(BERTH_BIN, "berthd")):
        print("building berth (release) ...", file=sys.stderr)
        sh(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT)
    if not args.baseline:
        ensure_dockerd()
    # Short: containerd's shim sockets live under the exec root (sun_path).
    base = tempfile.mkdtemp(prefix="bb", dir="/tmp")
    b = Daemon("berthd", base)
    d = (Daemon("berthd", base, bin_dir=args.baseline, label="baseline")
         if args.baseline else Daemon("dockerd", base))
    results = []
    try:
        b.start()
        d.start()
        only = [x.strip() for x in args.only.split(",") if x.strip()]
        for name, fn in ROWS.items():
            if only and not any(o in name for o in only):
                continue
            print(f"  measuring: {name} ...", file=sys.stderr)
            try:
                vb, vd, unit = fn(b, d, args.runs)
                results.append((name, vb, vd, unit))
            except Exception as e:  # a failed row is reported, not fatal
                detail = getattr(e, "stderr", None) or b""
                if isinstance(detail, bytes):
                    detail = detail.decode(errors="replace")
                results.append((name, None, None, f"error: {e} {detail.strip()}"))
    finally:
        b.close()
        d.close()
        if not args.keep:
            for root, dirs, _ in os.walk(base, topdown=False):
                for x in dirs:
                    p = os.path.join(root, x)
                    if os.path.ismount(p):
                        sh(["umount", "-l", p], check=False)
            shutil.rmtree(base, ignore_errors=True)
    w = max(len(r[0]) for r in results) + 2
    print(f"\n{'benchmark':<{w}}{b.label:>12}{d.label:>12}  {'unit':<6}{'ratio':>8}")
    print("-" * (w + 40))
    for name, vb, vd, unit in results:
        if vb is None:
            print(f"{name:<{w}}{unit}")
            continue
        ratio = vb / vd if vd else float("nan")
        print(f"{name:<{w}}{vb:>12.2f}{vd:>12.2f}  {unit:<6}{ratio:>8.3f}")
    print(f"\nratio = {b.label} / {d.label} (median of paired runs; lower is better, except MB/s rows)")


if __name__ == "__main__":
    main()
