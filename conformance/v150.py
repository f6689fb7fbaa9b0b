"""API 1.50 shape check: the same read-only cases asked with a /v1.50/
prefix, checked against type-derived fixtures (golden/v1.50/<Type>.json,
written from moby v28's Go types). Every always-emitted path must be
present with a compatible type; inner paths only where the parent is
present and not null."""

import glob
import json
import os
import re

import shape


def load(types_dir):
    """{endpoint: [fixture]} from every <Type>.json's "used_by"."""
    by_ep = {}
    for f in sorted(glob.glob(os.path.join(types_dir or "", "*.json"))):
        with open(f) as fh:
            fx = json.load(fh)
        for ep in fx.get("used_by", []):
            by_ep.setdefault(_norm_ep(ep), []).append(fx)
    return by_ep


def _norm_ep(ep):
    """`GET /containers/{id}/json` and `GET /v1.50/containers/{name}/json`
    compare equal: the version prefix goes, every {param} becomes {}."""
    ep = re.sub(r"/v1\.\d+", "", ep.strip())
    return re.sub(r"\{[^}]*\}", "{}", ep)


def _compatible(want, got):
    w, g = set(want.split("|")), set(got.split("|"))
    if "any" in w:
        return True
    return g <= w


def _parent(p):
    """The key path one level up (`$` for the root's children)."""
    if p.endswith("[]"):
        return p[:-2] or "$"
    return p.rsplit(".", 1)[0] if "." in p else "$"


def check_paths(want, got):
    """(kind, detail) for every always-emitted path absent or mistyped."""
    diffs = []
    for p, t in sorted(want.items()):
        if p in got:
            if not _compatible(t, got[p]):
                diffs.append(("v1.50 type", f"{p}: {t} != {got[p]}"))
            continue
        parent = _parent(p)
        pt = got.get(parent)
        if pt is None or pt == "null" or pt == "array":
            continue  # the parent is absent, null or an empty array
        diffs.append(("v1.50 missing", p))
    return diffs


def check(t, case, shapes, report):
    """Asks case under /v1.50/ and records differences in report."""
    from conformance import run_case
    fixtures = shapes.get(_norm_ep(case.endpoint))
    if not fixtures:
        return
    rec, data = run_case(t, case, "1.50")
    got = rec.get("paths") or {}
    total = ok = 0
    for fx in fixtures:
        want = fx["paths"]
        if isinstance(data, list) and not any(k.startswith("[]") for k in want):
            want = {("[]" if k == "$" else "[]." + k): v for k, v in want.items()}
        diffs = check_paths(want, got)
        total += len(want)
        ok += len(want) - len(diffs)
        for kind, detail in diffs:
            report.diffs.append(f"{case.name}@v1.50 ({fx.get('type')}): {kind} {detail}")
    s = report.scores.setdefault(case.endpoint, [0, 0, 0, 0])
    s[0] += ok
    s[1] += total
    s[2] += rec["status"] == 200
    s[3] += 1
