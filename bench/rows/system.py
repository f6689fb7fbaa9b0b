"""The daemon itself: a round trip, cold start, idle memory."""

import statistics
import time

from lib.catalog import Target, ms, row
from lib.daemon import children, paired, rss_kib, timed


@row("docker version round trip")
def r_version(b, d, ctx):
    return ms(*paired(b, d, lambda: timed(lambda: b.docker("version")),
                      lambda: timed(lambda: d.docker("version")), ctx.runs))


@row("daemon cold start to /_ping", target=Target("<=", 15, on="abs"), modal=False)
def r_cold(b, d, ctx):
    xa, xb = [], []
    for _ in range(max(3, ctx.runs // 4)):
        b.stop()
        xa.append(b.start())
        d.stop()
        xb.append(d.start())
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


@row("idle daemon RSS", target=Target("<=", 12, on="abs"), modal=False)
def r_rss(b, d, ctx):
    time.sleep(2)
    return rss_kib(b.daemon_pid()) / 1024, rss_kib(d.daemon_pid()) / 1024, "MiB"


@row("idle RSS incl. helpers (containerd/shims)", modal=False)
def r_rss_all(b, d, ctx):
    def total(p):
        return sum(rss_kib(x) for x in [p] + children(p))
    return total(b.daemon_pid()) / 1024, total(d.daemon_pid()) / 1024, "MiB"
