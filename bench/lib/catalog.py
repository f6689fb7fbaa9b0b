"""The rows: each a function (berth, other, ctx) -> (berth_value,
other_value, unit), or a list of Result for a group measured together (the
scale rows), with #21's target where it has one."""

import statistics

ROWS = {}


class Row:
    def __init__(self, name, fn, target=None, modal=True, names=()):
        self.name = name
        self.fn = fn
        self.target = target
        # A modal row is measured once per mode (settled, back to back);
        # the others (memory, cold start, the scale and stream rows) once.
        self.modal = modal
        # Names of the results a group row reports, for --only.
        self.names = names

    def title(self, ctx):
        return fill(self.name, ctx)

    def matches(self, ctx, patterns):
        names = [self.title(ctx)] + [fill(n, ctx) for n in self.names]
        return not patterns or any(p in n for p in patterns for n in names)


def fill(name, ctx):
    """A row's name with the run's scale ({n}) and stream size ({stream})."""
    return name.format(n=ctx.scale, stream=f"{ctx.stream_mb:g}")


def row(name, target=None, modal=True, names=()):
    def deco(fn):
        ROWS[name] = Row(name, fn, target, modal, names)
        return fn
    return deco


class Target:
    """#21's bar for a row: `op` is "<=" or ">="; `on` is "ratio" (berthd /
    dockerd, so it is only judged against dockerd) or "abs" (berthd's own
    value in the row's unit); `mode` is the mode the issue states it in
    ("b2b" for back to back), judged on that mode's value when measured."""

    def __init__(self, op, value, on="ratio", mode=None):
        self.op, self.value, self.on, self.mode = op, value, on, mode

    def label(self, unit):
        sign = "≤" if self.op == "<=" else "≥"
        v = f"{self.value:g}×" if self.on == "ratio" else f"{self.value:g} {unit}"
        return f"{sign} {v}" + (" b2b" if self.mode == "b2b" else "")

    def met(self, vb, vd, vs_dockerd):
        """True / False, or None when it cannot be judged."""
        if vb is None:
            return None
        if self.on == "ratio":
            if not vs_dockerd or not vd:
                return None
            v = vb / vd
        else:
            v = vb
        return v <= self.value if self.op == "<=" else v >= self.value


class Result:
    """One line of the table, for one mode."""

    def __init__(self, name, vb, vd, unit, target=None, note=""):
        self.name, self.vb, self.vd, self.unit = name, vb, vd, unit
        self.target, self.note = target, note


def ms(xa, xb):
    return statistics.median(xa) * 1e3, statistics.median(xb) * 1e3, "ms"


def mbps(size_bytes, xa, xb):
    mb = size_bytes / 1e6
    return mb / statistics.median(xa), mb / statistics.median(xb), "MB/s"
