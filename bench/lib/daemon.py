"""The daemons under test (berthd, dockerd or a baseline berthd), each in its
own network namespace and directories, and the paired timing of samples."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH_BIN = os.environ.get("BERTH_BIN_DIR", os.path.join(ROOT, "target", "release"))

# The bound on one docker CLI call: a wedged daemon fails the row, it does
# not hang the bench.
CLI_TIMEOUT = 600


def rm_timeout(count):
    """The bound on one `docker rm -f` of count containers: dockerd takes
    ~0.1 s a container here, so minutes mean a wedged daemon, whose
    containers are then cleaned up from outside (`Daemon.close`)."""
    return 60 + 1.0 * count


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


def _status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return _status_kib(pid, "VmRSS:")


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


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


def cmdlines():
    """(pid, command line) of every process there is."""
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/cmdline", "rb") as f:
                yield int(e), f.read().decode(errors="replace")
        except OSError:
            continue


def shim_pids(dm):
    """The per-container shims of a daemon: berth-shim, or containerd's."""
    # Shims name their daemon's exec root (berth-shim's container
    # directory, containerd's socket under dockerd's), not its scratch dir.
    return [pid for pid, cmd in cmdlines()
            if dm.exec_root in cmd and ("berth-shim" in cmd or "containerd-shim" in cmd)]


class Daemon:
    """One engine (berthd or dockerd) in its own netns and directories."""

    def __init__(self, kind, base, bin_dir=BERTH_BIN, label=None):
        self.kind = kind
        self.bin_dir = bin_dir
        self.label = label or kind
        self.dir = os.path.join(base, self.label)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "api.sock")
        # Exec roots on tmpfs for both engines, as their defaults are
        # (/run/berth, /var/run/docker): on disk, file creation costs ext4's
        # inode search and would be measured as the engine's.
        self.exec_root = tempfile.mkdtemp(prefix=f"bench-{self.label}-", dir="/run")
        self.netns = f"bench-{self.label}-{os.getpid()}"
        self.proc = None
        self.wedged = False
        self.log = open(os.path.join(self.dir, "daemon.log"), "ab")
        # Its own (not dockerd's default /docker): what is left under it
        # after the daemon stopped is this bench's, and is removed.
        self.cgroup_parent = f"/{'docker' if kind == 'dockerd' else 'berth'}-bench-{self.label}-{os.getpid()}"
        sh(["ip", "netns", "add", self.netns])
        sh(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"])

    @property
    def host(self):
        return "unix://" + self.sock

    def argv(self):
        data, exe = os.path.join(self.dir, "data"), self.exec_root
        cfg = os.path.join(self.dir, "daemon.json")
        with open(cfg, "w") as f:
            f.write("{}")
        if self.kind == "berthd":
            return [os.path.join(self.bin_dir, "berthd"), "-H", self.host, "--data-root", data,
                    "--exec-root", exe, "--pidfile", os.path.join(self.dir, "berthd.pid"),
                    "--config-file", cfg, "--cgroup-parent", self.cgroup_parent]
        return ["dockerd", "-H", self.host, "--data-root", data, "--exec-root", exe,
                "--pidfile", os.path.join(self.dir, "dockerd.pid"), "--config-file", cfg,
                "--iptables=false", "--ip6tables=false", "--cgroup-parent", self.cgroup_parent]

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

    def helper_pids(self):
        """The daemon's long-lived helpers counted with it: dockerd's
        containerd (berthd has none; its shims are counted apart)."""
        return [p for p in children(self.daemon_pid()) if comm(p) == "containerd"]

    def env(self, **extra):
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_CLI_HINTS="false", **extra)
        env.pop("DOCKER_API_VERSION", None)
        return env

    def docker(self, *args, check=True, input=None, timeout=CLI_TIMEOUT, stdout=subprocess.PIPE, env=None,
               cwd=None):
        return subprocess.run(["docker", *args], env=env or self.env(), check=check, input=input,
                              stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, cwd=cwd)

    def berth_cli(self, *args, check=True, timeout=CLI_TIMEOUT):
        """The berth CLI of this daemon's build (only for a berthd)."""
        return subprocess.run([os.path.join(self.bin_dir, "berth"), *args], env=self.env(), check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                cleanup_containers(self)
            except Exception as e:
                print(f"{self.label}: removing its containers failed ({e}); "
                      "they are removed from outside once it stopped", file=sys.stderr)
        self.stop()
        self.reap_leftovers()
        sh(["ip", "netns", "del", self.netns], check=False)
        shutil.rmtree(self.exec_root, ignore_errors=True)

    def reap_leftovers(self):
        """What a stopped daemon left (nothing, unless it stopped answering
        before its containers were removed): shims and container processes
        are killed, mounts under its directories unmounted, its cgroups
        removed. Every process and path is this run's own: the cgroup
        parent and the directories are unique to it."""
        # Per hierarchy on cgroup v1 (and hybrid); at the root on v2.
        parents = (glob.glob(f"/sys/fs/cgroup/*{self.cgroup_parent}")
                   + glob.glob(f"/sys/fs/cgroup{self.cgroup_parent}"))
        victims = set(processes_naming(self.exec_root))
        for parent in parents:
            for root, _dirs, files in os.walk(parent):
                if "cgroup.procs" in files:
                    try:
                        with open(os.path.join(root, "cgroup.procs")) as f:
                            victims.update(int(x) for x in f.read().split())
                    except OSError:
                        pass
        # 0 stands for a task of another PID namespace; never ourselves.
        victims = {p for p in victims if p > 1 and p != os.getpid()}
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while victims and time.monotonic() < deadline:
            victims = {p for p in victims if os.path.exists(f"/proc/{p}") and comm(p) and not _zombie(p)}
            time.sleep(0.05)
        if victims:
            print(f"{self.label}: {len(victims)} processes survived SIGKILL", file=sys.stderr)
        mine = (self.dir + "/", self.exec_root + "/")
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith(mine)), key=len, reverse=True):
            sh(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)
        # Leaves first; the parent goes last.
        for parent in parents:
            for root, _dirs, _files in os.walk(parent, topdown=False):
                try:
                    os.rmdir(root)
                except OSError:
                    pass


def processes_naming(exec_root):
    """Processes whose command line names this run's exec root: shims,
    and dockerd's containerd if dockerd died before it."""
    return [pid for pid, cmd in cmdlines() if exec_root in cmd]


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def rm_batches(dm, ids, batch=100, check=False):
    """`docker rm -f` of ids, at most `batch` per call (argv stays short)."""
    for i in range(0, len(ids), batch):
        chunk = ids[i:i + batch]
        try:
            dm.docker("rm", "-f", *chunk, check=check, timeout=rm_timeout(len(chunk)))
        except subprocess.TimeoutExpired:
            # Wedged: no more removals are asked of it; its containers
            # go from outside once it is stopped (`Daemon.close`).
            dm.wedged = True
            raise


def cleanup_containers(dm):
    if dm.wedged:
        return
    ids = dm.docker("ps", "-aq", "--no-trunc", timeout=60).stdout.decode().split()
    rm_batches(dm, ids)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# Pause before every sample: a daemon's work goes on after its client
# returns (dockerd's containerd shim exits and cleans up, the kernel tears
# down namespaces), and on 2 cores that trailing work would be billed to
# whichever daemon is measured next. Back to back (`--back-to-back`, or
# BENCH_SETTLE=0) there is none: what users running containers in a loop see.
# A loop on one engine runs after that engine's own previous run, never
# after the other engine's, so back to back each timed sample follows an
# untimed lead run of the same engine (A A B B ...), which absorbs the other
# engine's tail. BENCH_B2B_INTERLEAVED=1 times every run instead (A B A B),
# as this bench did before: each sample then pays the other's tail.
DEFAULT_SETTLE = 0.2
_settle = [float(os.environ.get("BENCH_SETTLE", str(DEFAULT_SETTLE)))]
_interleaved = os.environ.get("BENCH_B2B_INTERLEAVED", "") not in ("", "0")
# Set for the back-to-back pass of a modal row (not for the long stream
# rows, measured once, whose runs would double).
_lead = [False]


def set_lead(on):
    _lead[0] = on


def set_settle(seconds):
    _settle[0] = seconds


def settle():
    return _settle[0]


def paired(a, b, fa, fb, runs, warmup=1):
    """A B A B ... after a warm-up of each, each sample after the settling
    pause; back to back, each sample after an untimed run of the same
    daemon (see above). Returns (samples_a, samples_b)."""
    # What earlier rows wrote (image imports) is flushed now, not during
    # the first samples of this one.
    os.sync()
    for _ in range(warmup):
        fa()
        fb()
    lead = _lead[0] and not _settle[0] and not _interleaved
    xa, xb = [], []
    for _ in range(runs):
        if _settle[0]:
            time.sleep(_settle[0])
        if lead:
            fa()
        xa.append(fa())
        if _settle[0]:
            time.sleep(_settle[0])
        if lead:
            fb()
        xb.append(fb())
    return xa, xb
