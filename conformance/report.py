"""The result of a run: per-endpoint scores and differences, each with a
stable id (`<case>: <kind> <key>`) that intended.json and known-gaps.json
list, and the detail of what differs."""

from collections import OrderedDict

import shape


def diff_id(case, kind, key):
    return f"{case}: {kind} {key}".rstrip()


def listed(d, entries):
    """d is in entries, exactly or by an entry `<prefix>*` (for a case
    whose answer varies from run to run, e.g. `events_lifecycle: *`)."""
    return d in entries or any(k.endswith("*") and d.startswith(k[:-1]) for k in entries)


class Report:
    def __init__(self):
        self.scores = OrderedDict()  # endpoint -> [paths ok, paths, status ok, cases]
        self.diffs = []  # stable ids
        self.details = {}  # id -> what differs

    def add(self, case, want, got):
        s = self.scores.setdefault(case.endpoint, [0, 0, 0, 0])
        ok, n = shape.path_score(want, got)
        s[0] += ok
        s[1] += n
        s[2] += want.get("status") == got.get("status")
        s[3] += 1
        for kind, key, detail in shape.compare(want, got):
            self.add_diff(case.name, kind, key, detail)

    def add_diff(self, case, kind, key, detail):
        i = diff_id(case, kind, key)
        self.diffs.append(i)
        if detail:
            self.details[i] = detail

    def print(self, out, intended, known, title):
        w = max([len(e) for e in self.scores] + [10]) + 2
        out(f"\n{title}\n{'endpoint':<{w}}{'key paths':>14}{'status':>10}")
        out("-" * (w + 24))
        tp = tn = ts = tc = 0
        for ep, (ok, n, st, c) in self.scores.items():
            out(f"{ep:<{w}}{f'{ok}/{n}':>14}{f'{st}/{c}':>10}")
            tp, tn, ts, tc = tp + ok, tn + n, ts + st, tc + c
        out("-" * (w + 24))
        out(f"{'total':<{w}}{f'{tp}/{tn}':>14}{f'{ts}/{tc}':>10}")
        new = [d for d in self.diffs if not listed(d, intended) and not listed(d, known)]
        out(f"\ndifferences: {len(self.diffs)} ({len(new)} new, "
            f"{sum(listed(d, known) for d in self.diffs)} known gaps, "
            f"{sum(listed(d, intended) for d in self.diffs)} intended)")
        for d in self.diffs:
            tag = "intended" if listed(d, intended) else "known gap" if listed(d, known) else "DIFF"
            more = f": {self.details[d]}" if d in self.details else ""
            out(f"  [{tag}] {d}{more}")
        return new
