"""The daemons under test and the client-side helpers a scenario uses:
dockerd and berthd each in their own network namespace with their own
socket, data root and exec root (as bench/bench.py runs them), or an
already-running daemon reached by its socket."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from client import request

NOT_READY = (OSError, RuntimeError)


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, **kw)


def ensure_dockerd():
    if shutil.which("dockerd"):
        return
    print("installing docker.io (for dockerd) ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh(["apt-get", "update", "-qq"], env=env)
    sh(["apt-get", "install", "-y", "-qq", "docker.io"], env=env)


class Spawned:
    """berthd or dockerd started here, in a network namespace of its own."""

    def __init__(self, kind, base, bin_dir):
        self.kind, self.bin_dir = kind, bin_dir
        self.dir = os.path.join(base, kind)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "api.sock")
        self.netns = f"conf-{kind}-{os.getpid()}"
        self.proc = self.log = None
        sh(["ip", "netns", "add", self.netns])
        sh(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"])

    def argv(self):
        cfg = os.path.join(self.dir, "daemon.json")
        with open(cfg, "w") as f:
            f.write("{}")
        common = ["-H", "unix://" + self.sock, "--data-root", os.path.join(self.dir, "data"),
                  "--exec-root", os.path.join(self.dir, "exec"),
                  "--pidfile", os.path.join(self.dir, "d.pid"), "--config-file", cfg]
        if self.kind == "berthd":
            return [os.path.join(self.bin_dir, "berthd")] + common
        return ["dockerd"] + common + ["--iptables=false", "--ip6tables=false"]

    def start(self, timeout=60):
        self.log = open(os.path.join(self.dir, "daemon.log"), "ab")
        log = self.log
        # nsenter --net, not `ip netns exec`: the latter remounts /sys and
        # hides the cgroup mounts dockerd needs.
        ns = ["nsenter", f"--net=/run/netns/{self.netns}", "--"]
        self.proc = subprocess.Popen(ns + self.argv(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if request(self.sock, "GET", "/_ping", timeout=2).status == 200:
                    return
            except NOT_READY:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited; see {self.dir}/daemon.log")
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not answer /_ping in {timeout}s")

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
        sh(["ip", "netns", "del", self.netns], check=False)


def busybox_tar(base):
    """A busybox rootfs tar from Debian's busybox-static (as tests/src/fixtures.rs)."""
    path = os.path.join(base, "busybox-rootfs.tar")
    if os.path.exists(path):
        return path
    root = os.path.join(base, "busybox-rootfs")
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin/busybox"))
    applets = subprocess.run(["/bin/busybox", "--list"], stdout=subprocess.PIPE,
                             text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", a))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\n")
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    sh(["tar", "--numeric-owner", "--owner=0", "--group=0", "--sort=name",
        "-C", root, "-cf", path, "."])
    return path


class Target:
    """One daemon as the scenario sees it: its socket, the docker CLI
    pinned to API 1.41, and the variables cases capture (exec ids, times)."""

    def __init__(self, kind, sock, scratch, docker_config=None, dump_dir=None):
        self.kind, self.sock, self.scratch = kind, sock, scratch
        self.dump_dir = dump_dir
        self.vars = {}
        self.api_version = "1.41"  # what the docker CLI is pinned to
        self.docker_config = docker_config or os.path.join(scratch, f"docker-config-{kind}")
        os.makedirs(self.docker_config, exist_ok=True)
        self.bind_dir = os.path.join(scratch, "bind")
        os.makedirs(self.bind_dir, exist_ok=True)
        self.imported_busybox = False

    def env(self):
        env = dict(os.environ, DOCKER_HOST="unix://" + self.sock,
                   DOCKER_API_VERSION=self.api_version, DOCKER_CONFIG=self.docker_config,
                   DOCKER_CLI_HINTS="false", DOCKER_BUILDKIT="0")
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(self, *args, check=True, input=None):
        p = subprocess.run(["docker", *args], env=self.env(), input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError(f"{self.kind}: docker {' '.join(args)}: {p.stderr.decode().strip()}")
        return p.stdout.decode()

    def build(self, tag, dockerfile):
        ctx = tempfile.mkdtemp(dir=self.scratch)
        with open(os.path.join(ctx, "Dockerfile"), "wb") as f:
            f.write(dockerfile)
        self.docker("build", "-q", "-t", tag, ctx)

    def inspect(self, name):
        return json.loads(self.docker("inspect", "--type", "container", name))[0]

    def wait_for(self, cond, what, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind}: timed out waiting for {what}")

    def ensure_busybox(self):
        if self.docker("image", "inspect", "busybox:latest", check=False).strip() in ("", "[]"):
            self.docker("import", busybox_tar(self.scratch), "busybox:latest")
            self.imported_busybox = True

    def cleanup(self):
        """Removes everything the scenario made (by label and by name)."""
        lbl = ["--filter", "label=conformance=1"]
        ids = self.docker("ps", "-aq", *lbl, check=False).split()
        if ids:
            self.docker("rm", "-f", "-v", *ids, check=False)
        for kind in ("network", "volume"):
            names = self.docker(kind, "ls", "-q", *lbl, check=False).split()
            if names:
                self.docker(kind, "rm", *names, check=False)
        tags = ["cf-build:latest", "cf-dangle:latest", "cf-commit:v1", "cf-import:v1",
                "cf-load:v1", "127.0.0.1:1/cf-push:v1",
                "cf-api-build:latest", "cf-tag:v1"]
        self.docker("rmi", "-f", *tags, check=False)
        self.docker("image", "prune", "-f", *lbl, check=False)
        if self.imported_busybox:
            self.docker("rmi", "-f", "busybox:latest", check=False)
