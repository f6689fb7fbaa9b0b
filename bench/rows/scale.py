"""The scale rows (`--scale N`, default 1000): N `sleep` containers started
by 8 parallel clients, the daemon's RSS and the shims' PSS with N running,
`docker ps -a` at N/10, N/2 and N, and `docker rm -f` of all N.

Each daemon is measured in a phase of its own, on a machine without the
other's containers: it ramps up stage by stage (N/10, N/2, N; the start
times of the stages add up), with `docker ps -a` and the list call sampled
at each stage, then its RSS and PSS, then it removes all N. The machine is
let settle before each phase. Every wait is bounded; on any failure every
container of both daemons is removed (`rm -f` in batches, or from outside
once a daemon that stopped answering is stopped) before the error is
reported; a failure of the removals alone costs only their row."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from lib.catalog import Result, Target, ms, row
from lib.daemon import api, cleanup_containers, pss_kib, rm_batches, rss_kib, settle, shim_pids, timed
from lib.machine import settle_machine
from rows.containers import BUSYBOX, ensure_busybox

CLIENTS = 8
RM_BATCH = 100
# `docker ps -a` and the list call are cheap next to a stage's starts, and
# one sample of each (`--runs 1`) read 64 and 89 ms for the same list on
# two runs: take at least five.
LIST_RUNS = 5

T_START = Target("<=", 0.10)
T_RSS = Target("<=", 40, on="abs")
T_PSS = Target("<=", 0.35, on="abs")
T_PS = Target("<=", 25, on="abs")
T_GROWTH = Target("<=", 1.25, on="abs")
T_RM = Target("<=", 0.08)

NAMES = ("{n} sleep containers started by 8 parallel clients", "daemon RSS with {n} running",
         "shim PSS each, {n} running", "docker ps -a with", "docker ps -a growth", "docker rm -f of {n}",
         "API: GET /containers/json")


def api_list(dm):
    st, body = api(dm.sock, "GET", "/v1.41/containers/json?all=1")
    if st != 200:
        raise RuntimeError(f"{dm.label}: containers/json: {st} {body[:200]!r}")


def start_many(dm, count, ids, deadline):
    """`docker run -d` count times from CLIENTS threads; returns the wall
    time until all are running (`run -d` returns once started)."""
    def one(_):
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{dm.label}: the scale rows' time budget ran out")
        r = dm.docker("run", "-d", "--network", "none", BUSYBOX, "sleep", "3600", timeout=min(120, left))
        return r.stdout.decode().strip()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
        try:
            for f in futures:
                ids.append(f.result())
        finally:
            for f in futures:
                f.cancel()
    return time.perf_counter() - t0


def stages(n):
    return sorted({max(1, n // 10), max(1, n // 2), n})


def growth(points):
    """t(N) over its linear extrapolation from t(N/10) and t(N/2) (never
    below t(N/2)): 1 is linear, above 1 faster than linear. Dividing by the
    extrapolation, not by a slope, keeps the noise of short times bounded."""
    (n1, t1), (n2, t2), (n3, t3) = points
    predicted = max(t2, t2 + (t2 - t1) * (n3 - n2) / (n2 - n1))
    return t3 / predicted, predicted


def sampled(fn, runs):
    """One untimed run, then `runs` timed ones, each after the settling
    pause (as paired rows take theirs)."""
    fn()
    out = []
    for _ in range(runs):
        if settle():
            time.sleep(settle())
        out.append(timed(fn))
    return out


def phase(dm, n, deadline, runs):
    """One daemon's ramp to n, its readings with n running, and its removal
    of all n. Returns what it measured; `rm` is None when the removal
    failed, and `rm_error` says why."""
    ids, started, ps_at, list_at = [], 0.0, [], []
    chunk = max(1, n // 20)
    for stage in stages(n):
        while len(ids) < stage:
            started += start_many(dm, min(chunk, stage - len(ids)), ids, deadline)
        ps_at.append((stage, sampled(lambda: dm.docker("ps", "-a"), runs)))
        list_at.append((stage, sampled(lambda: api_list(dm), runs)))
        print(f"    {dm.label}: {stage} running, started in {started:.1f} s", file=sys.stderr)
    time.sleep(2)
    rss = (rss_kib(dm.daemon_pid()) + sum(rss_kib(p) for p in dm.helper_pids())) / 1024
    pids = shim_pids(dm)
    # A shim per container: finding fewer means the search is wrong, and a
    # sum over too few would read as a met target.
    if len(pids) < n:
        raise RuntimeError(f"{dm.label}: {len(pids)} shims found for {n} running containers")
    pss = sum(pss_kib(p) for p in pids) / n / 1024
    batches, rm_error = [], None
    try:
        for i in range(0, len(ids), RM_BATCH):
            chunk_ids = ids[i:i + RM_BATCH]
            batches.append(timed(lambda: rm_chunk(dm, chunk_ids)))
        left = dm.docker("ps", "-aq", timeout=60).stdout.split()
        if left:
            raise RuntimeError(f"{dm.label}: {len(left)} containers left after rm -f")
    except (RuntimeError, subprocess.SubprocessError) as e:
        rm_error = str(e)
        try:
            cleanup_containers(dm)
        except Exception as e2:
            rm_error += f" (and removing the rest: {e2})"
        if dm.wedged:
            # Not beside the next phase: stopped, and what it left removed
            # from outside.
            dm.close()
    return {"started": started, "ps": ps_at, "list": list_at, "rss": rss, "pss": pss,
            "rm": None if rm_error else batches, "rm_error": rm_error}


@row("scale: {n} sleep containers, 8 parallel clients (start, RSS, PSS, ps -a, rm -f)", modal=False,
     names=NAMES)
def r_scale(b, d, ctx):
    n = ctx.scale
    ensure_busybox(b, d)
    daemons = (b, d)
    # Generous, but a bound: dockerd needs ~0.15 s a container here.
    deadline = time.monotonic() + 300 + 2.0 * n
    runs = max(ctx.runs, LIST_RUNS)
    got = {}
    try:
        for dm in daemons:
            cleanup_containers(dm)
        # One daemon at a time. Both ramping together put the other's
        # containers in the way of each start: every container's overlay
        # and netns pin are in the host's mount table, which each new
        # container's mount namespace copies; each has a sysfs superblock
        # the new one's is looked up among; and `pivot_root` walks every
        # task, where dockerd's 1 000 containerd shims are ~10 threads
        # each. Interleaved, the 1 000 starts took 26.0 s (berthd) and
        # 171.8 s (dockerd); alone, 17.1 s and 126.8 s. Starts cannot be
        # taken A B A B in one machine state without that, so the phases
        # are sequential, each after the machine has settled (an A/A run
        # reads the ratio 1 only within the VM's drift over those minutes).
        # The other daemon first: an A/A run read the second phase's starts
        # ~4 % slower, so any such bias is berthd's to pay.
        for dm in (d, b):
            settle_machine()
            # The page cache is empty: the docker CLI, busybox and the
            # daemon's own files are read in again here, not in the ramp.
            dm.docker("run", "--rm", "--network", "none", BUSYBOX, "true", timeout=120)
            got[dm.label] = phase(dm, n, deadline, runs)
    except BaseException:
        for dm in daemons:
            try:
                cleanup_containers(dm)
            except Exception:
                pass
        raise
    gb, gd = got[b.label], got[d.label]
    out = [
        Result(f"{n} sleep containers started by 8 parallel clients (docker run -d)",
               gb["started"], gd["started"], "s", T_START),
        Result(f"daemon RSS with {n} running (dockerd: + containerd)", gb["rss"], gd["rss"], "MiB", T_RSS),
        Result(f"shim PSS each, {n} running (sum of shims' PSS / {n})", gb["pss"], gd["pss"], "MiB", T_PSS),
    ]
    # The docker CLI's own decoding and formatting grows with the list
    # (~0.3 ms a container here, against a server that answers at once),
    # so the API line shows what the daemon itself costs.
    for title, key in (("docker ps -a", "ps"), ("API: GET /containers/json?all=1", "list")):
        at = [(stage, ms(xb, xd)) for (stage, xb), (_, xd) in zip(gb[key], gd[key])]
        for stage, (vb, vd, unit) in at:
            out.append(Result(f"{title} with {stage} running containers", vb, vd, unit,
                              T_PS if stage == n and title.startswith("docker") else None))
        if len(at) == 3:
            pts = [[(s, v[i]) for s, v in at] for i in (0, 1)]
            growth_b, growth_d = growth(pts[0]), growth(pts[1])
            name = f"{title} growth at {n}: measured / linear from {at[0][0]} and {at[1][0]}"
            out.append(Result(name, growth_b[0], growth_d[0], "x", T_GROWTH,
                              note=f"linear would be {growth_b[1]:.1f} ms (berth), "
                                   f"{growth_d[1]:.1f} ms (other)"))
    name = f"docker rm -f of {n} (batches of {RM_BATCH})"
    if gb["rm"] is None or gd["rm"] is None:
        why = "; ".join(g["rm_error"] for g in (gb, gd) if g["rm_error"])
        out.append(Result(name, None, None, f"error: {why}", T_RM))
    else:
        out.append(Result(name, sum(gb["rm"]), sum(gd["rm"]), "s", T_RM,
                          note="first / last batch, s: " + "; ".join(
                              f"{dm.label} {g['rm'][0]:.2f} / {g['rm'][-1]:.2f}"
                              for dm, g in ((b, gb), (d, gd)))))
    return out


def rm_chunk(dm, chunk):
    """One timed `docker rm -f` batch; a failure names the daemon, briefly
    (not the hundred IDs of the command line)."""
    try:
        rm_batches(dm, chunk, RM_BATCH, check=True)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{dm.label}: docker rm -f of {len(chunk)} containers did not return in "
                           f"{e.timeout:.0f} s") from None
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"{dm.label}: docker rm -f failed: "
                           f"{e.stderr.decode(errors='replace').strip()[:300]}") from None
