"""Stream rows: `docker logs` of a big json-file log, `docker cp` of a big
file out of a container. The size is BENCH_STREAM_MB (default 1000 MB;
100 with --quick); the data is deleted with the containers afterwards."""

import shutil
import subprocess

from lib.catalog import Target, mbps, row
from lib.daemon import paired, timed
from rows.containers import BUSYBOX, ensure_busybox

LINE = "bench log line " + "x" * 83  # 99 characters and a newline: 100 bytes


def stream_bytes(ctx):
    return int(ctx.stream_mb * 1_000_000) // 100 * 100


def check_disk(dm, need):
    free = shutil.disk_usage(dm.dir).free
    if free < need + 2_000_000_000:
        raise RuntimeError(f"needs {need / 1e9:.1f} GB free beside 2 GB spare; {free / 1e9:.1f} GB free")


def count_out(dm, *args):
    """Bytes a docker command writes to stdout (through `wc -c`, not Python)."""
    r = subprocess.run(["sh", "-c", 'docker "$@" | wc -c', "sh", *args], env=dm.env(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1200, check=True)
    return int(r.stdout.split()[0])


# The checked read (count_out) above is each row's warm-up.
def to_null(dm, *args):
    return timed(lambda: dm.docker(*args, stdout=subprocess.DEVNULL, timeout=1200))


@row("docker logs of ~{stream} MB of 100-byte lines, json-file (MB/s, higher is better)",
     target=Target(">=", 3), modal=False)
def r_logs(b, d, ctx):
    ensure_busybox(b, d)
    size = stream_bytes(ctx)
    name = "bench-logs"
    # The json-file holds each line with its stream and time: ~1.6x the bytes.
    check_disk(b, 2 * size * 2)
    try:
        for dm in (b, d):
            dm.docker("rm", "-f", name, check=False)
            dm.docker("run", "-d", "--name", name, "--network", "none", "--log-driver", "json-file",
                      BUSYBOX, "sh", "-c", f"yes '{LINE}' | head -c {size}")
            dm.docker("wait", name, timeout=1200)
            got = count_out(dm, "logs", name)
            if got != size:
                raise RuntimeError(f"{dm.label}: docker logs gave {got} bytes, not {size}")
        n = max(1, min(ctx.runs, 3))
        return mbps(size, *paired(b, d, lambda: to_null(b, "logs", name), lambda: to_null(d, "logs", name), n,
                               warmup=0))
    finally:
        for dm in (b, d):
            dm.docker("rm", "-f", name, check=False)


# Each MiB of the file is half random bytes, half text: not sparse, not
# all zeros, as real files are.
CP_SCRIPT = ("head -c 524288 /dev/urandom > /chunk && yes 'text for the copy bench' | head -c 524288 >> /chunk"
             " && i=0 && while [ $i -lt {count} ]; do cat /chunk; i=$((i+1)); done > /big && rm /chunk")


@row("docker cp of a ~{stream} MB file out of a container, to stdout (MB/s, higher is better)",
     target=Target(">=", 3), modal=False)
def r_cp(b, d, ctx):
    ensure_busybox(b, d)
    count = max(1, round(ctx.stream_mb * 1_000_000 / 2**20))
    size = count * 2**20
    name = "bench-cp"
    check_disk(b, 2 * size)
    try:
        for dm in (b, d):
            dm.docker("rm", "-f", name, check=False)
            dm.docker("run", "--name", name, "--network", "none", BUSYBOX, "sh", "-c",
                      CP_SCRIPT.format(count=count), timeout=1200)
            got = count_out(dm, "cp", f"{name}:/big", "-")
            if not size < got < size + 65536:
                raise RuntimeError(f"{dm.label}: docker cp gave a {got}-byte tar for a {size}-byte file")
        n = max(1, min(ctx.runs, 3))
        cp = lambda dm: to_null(dm, "cp", f"{name}:/big", "-")
        return mbps(size, *paired(b, d, lambda: cp(b), lambda: cp(d), n, warmup=0))
    finally:
        for dm in (b, d):
            dm.docker("rm", "-f", name, check=False)
