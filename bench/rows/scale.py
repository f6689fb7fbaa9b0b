"""The scale rows (`--scale N`, default 1000): N `sleep` containers started
by 8 parallel clients, the daemon's RSS and the shims' PSS with N running,
`docker ps -a` at N/10, N/2 and N, and `docker rm -f` of all N.

Both daemons ramp up together, stage by stage (N/10, N/2, N; the start
times of the stages add up), so that `docker ps -a` is paired A B A B at
each stage. Every wait is bounded; on any failure every container of both
daemons is removed (`rm -f` in batches, or from outside once a daemon that
stopped answering is stopped) before the error is reported; a failure of
the removals alone costs only their row."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from lib.catalog import Result, Target, ms, row
from lib.daemon import api, cleanup_containers, paired, pss_kib, rm_batches, rss_kib, shim_pids, timed
from rows.containers import BUSYBOX, ensure_busybox

CLIENTS = 8
RM_BATCH = 100

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


@row("scale: {n} sleep containers, 8 parallel clients (start, RSS, PSS, ps -a, rm -f)", modal=False,
     names=NAMES)
def r_scale(b, d, ctx):
    n = ctx.scale
    ensure_busybox(b, d)
    daemons = (b, d)
    ids = {dm.label: [] for dm in daemons}
    started = {dm.label: 0.0 for dm in daemons}
    ps_at, list_at = [], []
    # Generous, but a bound: dockerd needs ~0.15 s a container here.
    deadline = time.monotonic() + 300 + 2.0 * n
    try:
        for dm in daemons:
            cleanup_containers(dm)
        # Each stage is reached in chunks that alternate between the
        # daemons (A B A B): every container's overlay and netns pin are in
        # the host's mount table, which each new container copies, so the
        # daemon that started its whole stage second paid for the first's
        # (an A/A run of one build against itself: 16.8 s / 19.3 s).
        chunk = max(1, n // 20)
        for stage in stages(n):
            while any(len(ids[dm.label]) < stage for dm in daemons):
                for dm in daemons:
                    k = min(chunk, stage - len(ids[dm.label]))
                    if k > 0:
                        started[dm.label] += start_many(dm, k, ids[dm.label], deadline)
            ps = lambda dm: timed(lambda: dm.docker("ps", "-a"))
            ps_at.append((stage, ms(*paired(b, d, lambda: ps(b), lambda: ps(d), ctx.runs))))
            ls = lambda dm: timed(lambda: api_list(dm))
            list_at.append((stage, ms(*paired(b, d, lambda: ls(b), lambda: ls(d), ctx.runs))))
            print(f"    {stage} running: started in {started[b.label]:.1f} s / {started[d.label]:.1f} s",
                  file=sys.stderr)
        time.sleep(2)
        rss = [(rss_kib(dm.daemon_pid()) + sum(rss_kib(p) for p in dm.helper_pids())) / 1024 for dm in daemons]
        pss = []
        for dm in daemons:
            pids = shim_pids(dm)
            # A shim per container: finding fewer means the search is wrong,
            # and a sum over too few would read as a met target.
            if len(pids) < n:
                raise RuntimeError(f"{dm.label}: {len(pids)} shims found for {n} running containers")
            pss.append(sum(pss_kib(p) for p in pids) / n / 1024)
        # Batches alternate between the daemons (A B A B), as paired rows
        # do: removing all of one first would time it against the other's
        # full mount table (each container's overlay and netns pin are in
        # the host's), and the second against a table half as long.
        # The order flips each round, so neither always removes from the
        # longer table.
        # A daemon that fails the removals (dockerd 20.10 has hung in its
        # first batch here) costs the removal row only: the rows above are
        # measured, and every container is removed below or from outside.
        batches = [[] for _ in daemons]
        removed, rm_error = None, None
        try:
            for r, i in enumerate(range(0, max(len(ids[dm.label]) for dm in daemons), RM_BATCH)):
                for k in ((0, 1) if r % 2 == 0 else (1, 0)):
                    dm = daemons[k]
                    chunk = ids[dm.label][i:i + RM_BATCH]
                    if chunk:
                        batches[k].append(timed(lambda: rm_chunk(dm, chunk)))
            for dm in daemons:
                left = dm.docker("ps", "-aq", timeout=60).stdout.split()
                if left:
                    raise RuntimeError(f"{dm.label}: {len(left)} containers left after rm -f")
            removed = [sum(each) for each in batches]
        except (RuntimeError, subprocess.SubprocessError) as e:
            rm_error = str(e)
            for dm in daemons:
                try:
                    cleanup_containers(dm)
                except Exception:
                    pass
    except BaseException:
        for dm in daemons:
            try:
                cleanup_containers(dm)
            except Exception:
                pass
        raise
    out = [
        Result(f"{n} sleep containers started by 8 parallel clients (docker run -d)",
               started[b.label], started[d.label], "s", T_START),
        Result(f"daemon RSS with {n} running (dockerd: + containerd)", rss[0], rss[1], "MiB", T_RSS),
        Result(f"shim PSS each, {n} running (sum of shims' PSS / {n})", pss[0], pss[1], "MiB", T_PSS),
    ]
    # The docker CLI's own decoding and formatting grows with the list
    # (~0.3 ms a container here, against a server that answers at once),
    # so the API line shows what the daemon itself costs.
    for title, at in (("docker ps -a", ps_at), ("API: GET /containers/json?all=1", list_at)):
        for stage, (vb, vd, unit) in at:
            out.append(Result(f"{title} with {stage} running containers", vb, vd, unit,
                              T_PS if stage == n and title.startswith("docker") else None))
        if len(at) == 3:
            pts = [[(s, v[i]) for s, v in at] for i in (0, 1)]
            gb, gd = growth(pts[0]), growth(pts[1])
            name = f"{title} growth at {n}: measured / linear from {at[0][0]} and {at[1][0]}"
            out.append(Result(name, gb[0], gd[0], "x", T_GROWTH,
                              note=f"linear would be {gb[1]:.1f} ms (berth), {gd[1]:.1f} ms (other)"))
    name = f"docker rm -f of {n} (batches of {RM_BATCH})"
    if removed is None:
        out.append(Result(name, None, None, f"error: {rm_error}", T_RM))
    else:
        out.append(Result(name, removed[0], removed[1], "s", T_RM,
                          note="first / last batch, s: " + "; ".join(
                              f"{dm.label} {x[0]:.2f} / {x[-1]:.2f}" for dm, x in zip(daemons, batches))))
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
