"""Image rows: docker load / save of a ~200 MB multi-layer archive, and
docker pull of one from a registry in each daemon's namespace."""

import os
import subprocess
import time

from lib.catalog import Target, mbps, row
from lib.daemon import paired, sh, timed

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


@row("docker load ~200 MB, 5 layers (MB/s, higher is better)", target=Target(">=", 3))
def r_load(b, d, ctx):
    path, size = bench_archive(b)
    n = max(3, min(ctx.runs, 8))
    return mbps(size, *paired(b, d, lambda: _load(b, path), lambda: _load(d, path), n))


@row("docker save ~200 MB, 5 layers (MB/s, higher is better)")
def r_save(b, d, ctx):
    path, size = bench_archive(b)
    for daemon in (b, d):
        daemon.docker("rmi", "-f", BENCH_IMAGE, check=False)
        daemon.docker("load", "-i", path)
    out = os.path.join(os.path.dirname(b.dir), "bench-save.tar")

    def save(daemon):
        t = timed(lambda: daemon.docker("save", "-o", out, BENCH_IMAGE))
        os.unlink(out)
        return t
    n = max(3, min(ctx.runs, 8))
    return mbps(size, *paired(b, d, lambda: save(b), lambda: save(d), n))


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


@row("registry: docker pull ~200 MB, 5 gzip layers (MB/s, higher is better)", target=Target(">=", 3))
def r_pull(b, d, ctx):
    layout = os.path.join(os.path.dirname(b.dir), "bench-oci")
    size = make_oci_layout(layout)
    regs = [NsRegistry(b, layout), NsRegistry(d, layout)]
    try:
        def pull(daemon):
            daemon.docker("rmi", "-f", REG_IMAGE, check=False)
            return timed(lambda: daemon.docker("pull", REG_IMAGE))
        n = max(3, min(ctx.runs, 8))
        return mbps(size, *paired(b, d, lambda: pull(b), lambda: pull(d), n))
    finally:
        for r in regs:
            r.close()

