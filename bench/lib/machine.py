"""The machine's state that a measurement must not inherit from what ran
before it."""

import os
import sys
import time


def drop_caches():
    """Drops the page cache (after a sync). A removed container's memory
    cgroup lingers, dying, as long as a page of the cache is charged to it
    (the first container to read busybox holds its pages), and the
    kernel's memory-cgroup work grows with their number: with ~600 dying
    an API create+start+wait+delete took 10.3 ms here, 9.4 ms once they
    were freed. A machine that has run tests holds thousands, so the
    absolute rows would measure its history. Dropping the cache frees them;
    both engines then start from the same state."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def settle_machine(limit=60.0, idle=0.9):
    """Drops the page cache (`drop_caches`), then waits (at most `limit`
    s) until the CPUs are `idle` idle over half a second, so that a phase
    does not pay for the last one: the 1 000 memory cgroups a phase
    removes (an A/A run of one build without the drop read 0.93 for the
    second phase's starts, with 2 580 dying), and the kernel's tail of its
    removals (each removed cgroup is offlined by a kernel worker)."""
    drop_caches()
    def times():
        with open("/proc/stat") as f:
            # user … steal; guest time is counted in user already.
            v = [int(x) for x in f.readline().split()[1:9]]
        return v[3] + v[4], sum(v)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        i0, t0 = times()
        time.sleep(0.5)
        i1, t1 = times()
        if t1 > t0 and (i1 - i0) / (t1 - t0) >= idle:
            return
    print(f"    the machine did not settle in {limit:.0f} s (below {idle:.0%} idle); going on",
          file=sys.stderr)
