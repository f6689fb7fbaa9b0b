"""API 1.50 shape check: the scenario replayed with a /v1.50/ prefix, each
answer checked against the type-derived fixtures (golden/v1.50/<Type>.json,
derived from moby v28's Go types). Every always-emitted path must be
present with a compatible type; a path applies only where its parent is
present and not null (conditional paths of omitempty parents)."""

import glob
import json
import os
import re

_USED_BY = re.compile(r"^(GET|POST|PUT|DELETE|HEAD) (\S+)(?: \((.*)\))?$")
ERRORS = "errors"  # key of the fixtures every error body must match


def _norm_ep(method, path):
    """`GET /containers/{id}/json?x=1` -> `GET /containers/{}/json`."""
    path = re.sub(r"^/v1\.\d+", "", path.split("?")[0])
    return f"{method} " + re.sub(r"\{[^}]*\}", "{}", path)


def _prefix(note):
    """Where the type sits in the answer, from a used_by note:
    "each array element" -> `[]`, "Containers[] elements" -> `Containers[]`,
    one JSON object per line (parsed into a list) -> `[]`."""
    if not note:
        return ""
    if "each array element" in note or "newline-delimited" in note:
        return "[]"
    m = re.match(r"(\S+\[\]) elements", note)
    return m.group(1) if m else ""


def load(types_dir):
    """{endpoint: [(type name, {path: type})]} from every fixture's
    used_by; error bodies under ERRORS."""
    by_ep = {}
    for f in sorted(glob.glob(os.path.join(types_dir or "", "*.json"))):
        with open(f) as fh:
            fx = json.load(fh)
        if not isinstance(fx, dict) or "paths" not in fx:
            continue  # e.g. version-gates.json
        for use in fx.get("used_by", []):
            if "error body" in use:
                by_ep.setdefault(ERRORS, []).append((fx["type"], fx["paths"]))
                continue
            if "X-Docker-Container-Path-Stat" in use:
                use = "HEAD /containers/{id}/archive"  # the stat header's JSON
            m = _USED_BY.match(use.strip())
            if not m:
                continue  # e.g. a header's content: not a body shape
            pre = _prefix(m.group(3))
            paths = {_under(pre, p): t for p, t in fx["paths"].items()}
            by_ep.setdefault(_norm_ep(m.group(1), m.group(2)), []).append((fx["type"], paths))
    return by_ep


def _under(prefix, p):
    if not prefix:
        return p
    return prefix + ("" if p.startswith("[]") else ".") + p


def _compatible(want, got):
    w, g = set(want.split("|")), set(got.split("|"))
    return "any" in w or g <= w


def _parent(p):
    """The key path one level up (`$` for the root's children)."""
    if p.endswith("[]"):
        return p[:-2] or "$"
    return p.rsplit(".", 1)[0] if "." in p else "$"


def check_paths(want, got):
    """(kind, key, detail) for every always-emitted path absent or mistyped."""
    diffs = []
    for p, t in want.items():
        if p in got:
            if not _compatible(t, got[p]):
                diffs.append(("type", p, f"{t} != {got[p]}"))
            continue
        if p.endswith(("{}", "[]")):
            continue  # an empty map or array has no entries to show
        parent = _parent(p)
        pt = got.get(parent)
        if pt is None or pt == "null":
            continue  # the parent is absent or null
        diffs.append(("missing", p, ""))
    return diffs


def check(case, rec, want_status, shapes, report):
    """Checks one /v1.50/ answer (its record) and scores it in report;
    the status is scored against 1.41's (dockerd's) but not diffed."""
    if rec.get("status", 0) >= 400:
        fixtures = shapes.get(ERRORS, []) if rec.get("paths") else []
    else:
        fixtures = shapes.get(_norm_ep(case.method, case.endpoint.split(" ", 1)[-1]), [])
    s = report.scores.setdefault(case.endpoint, [0, 0, 0, 0])
    s[3] += 1
    s[2] += rec.get("status") == want_status
    if case.ct150 and rec.get("content_type") != case.ct150:
        report.add_diff(f"{case.name}@v1.50", "content-type", "",
                        f"{case.ct150!r} != {rec.get('content_type')!r}")
    got = rec.get("paths") or {}
    for name, want in fixtures:
        diffs = check_paths(want, got)
        s[0] += len(want) - len(diffs)
        s[1] += len(want)
        for kind, key, detail in diffs:
            report.add_diff(f"{case.name}@v1.50 ({name})", kind, key, detail)
