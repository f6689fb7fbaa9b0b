#!/usr/bin/env python3
"""Differential conformance: berthd against dockerd 20.10 (API 1.41).

Live (default): starts dockerd and berthd side by side, each in its own
network namespace, replays the scripted scenario (scenarios.py) on both and
compares status codes, key paths and value types, Content-Type, stream
framing, the headers clients read, normalised error messages, selected
values and event sequences. Prints a per-endpoint score and every
difference; exits non-zero on a difference not in conformance/intended.json.

  --record   also writes dockerd's answers to conformance/golden/v1.41/
  --golden   runs berthd alone against those fixtures (no dockerd), and
             checks the /v1.50/ answers against the type-derived shapes in
             conformance/golden/v1.50/; differences listed in
             conformance/known-gaps.json are reported as known gaps.
  --sock S   (golden mode) use the already-running daemon at S.

Needs root (namespaces) unless --sock is given. Standard library only.
"""

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import shape  # noqa: E402
import v150  # noqa: E402
from client import request  # noqa: E402
from daemons import Spawned, Target, ensure_dockerd  # noqa: E402
from report import Report, listed  # noqa: E402
from scenarios import Step, scenario  # noqa: E402

ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden", "v1.41")
VERSION = "1.41"


def expand(t, s):
    for k, v in t.vars.items():
        s = s.replace("{" + k + "}", str(v))
    return s


STAT = "X-Docker-Container-Path-Stat"


def decode_stat(value):
    """The archive endpoints' path stat: base64 of a JSON object."""
    try:
        return json.loads(base64.b64decode(value or ""))
    except ValueError:
        return None


def url(case, version):
    if case.raw or case.path.startswith("/v1."):
        return case.path
    return f"/v{version}{case.path}"


def run_case(t, case, version=VERSION):
    """Sends one case; returns (record, parsed body)."""
    path = expand(t, url(case, version))
    r = request(t.sock, case.method, path, body=case.body, headers=case.headers,
                timeout=case.timeout, half_close=case.half_close)
    if case.jsonlines or case.events:
        data = shape.events_json(r.body) if r.status < 400 else r.json()
    else:
        data = r.json()
    if t.dump_dir:
        with open(os.path.join(t.dump_dir, f"{case.name}.v{version}.{t.kind}"), "wb") as f:
            f.write(r.body)
    rec = shape.observe(case, r, data)
    rec["path"] = url(case, version)
    for h in case.extra_headers:
        # Headers whose value matters to clients: compared as they are.
        rec["headers"][h] = r.header(h)
    if case.stat_header:
        rec["headers"][STAT] = "present" if r.header(STAT) else None
        stat = decode_stat(r.header(STAT))
        if stat is not None:
            rec["paths"] = shape.key_paths(stat)
    if case.capture:
        case.capture(t, data)
    return rec, data


def play(t, on_case, log, version=VERSION, only=()):
    """Runs the scenario on target t; on_case(case, record, data). With
    `only` (case name prefixes), the other cases are skipped (the set-up
    steps still run)."""
    t.api_version = version
    t.vars = {}
    t.cleanup()
    t.ensure_busybox()
    for item in scenario():
        t0 = time.monotonic()
        if isinstance(item, Step):
            item.fn(t)
        elif only and not item.name.startswith(tuple(only)):
            continue
        else:
            try:
                rec, data = run_case(t, item, version)
            except Exception as e:  # a broken case is a difference, not a crash
                rec, data = {"case": item.name, "status": 0, "error": f"harness: {e}"}, None
            on_case(item, rec, data)
        dt = time.monotonic() - t0
        if dt > 2:
            log(f"  {t.kind}: {item.name} took {dt:.1f}s")


def load_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


WHY = {
    "missing": "berthd omits this key",
    "extra": "berthd sends a key dockerd does not",
    "type": "another JSON type",
}


def gap_reason(d, detail):
    """A first reason for a new known gap: what differs (want != got)."""
    kind = d.split(": ", 1)[1].split(" ", 1)[0] if ": " in d else ""
    why = WHY.get(kind, "")
    if detail:
        why = f"{why}: {detail}" if why else detail
    return why or "differs"


def live(args, out, log):
    ensure_dockerd()
    base = tempfile.mkdtemp(prefix="cf", dir="/tmp")
    daemons = [Spawned("dockerd", base, args.bin_dir), Spawned("berthd", base, args.bin_dir)]
    targets = []
    try:
        for d in daemons:
            d.start()
            targets.append(Target(d.kind, d.sock, d.dir, dump_dir=args.dump))
        answers = {}
        for t in targets:
            answers[t.kind] = OrderedDict()
            t0 = time.monotonic()
            keep = lambda c, rec, data, t=t: answers[t.kind].__setitem__(c.name, (c, rec))
            play(t, keep, log, only=args.only)
            log(f"  {t.kind}: scenario done in {time.monotonic() - t0:.1f}s")
        rep = Report()
        for name, (case, want) in answers["dockerd"].items():
            rep.add(case, want, answers["berthd"][name][1])
        if args.record:
            os.makedirs(args.golden_dir, exist_ok=True)
            for name, (case, rec) in answers["dockerd"].items():
                with open(os.path.join(args.golden_dir, f"{name}.json"), "w") as f:
                    json.dump(rec, f, indent=1, sort_keys=True)
                    f.write("\n")
            log(f"recorded {len(answers['dockerd'])} fixtures in {args.golden_dir}")
        intended = load_json(os.path.join(HERE, "intended.json"), {})
        new = rep.print(out, intended, {}, "berthd vs dockerd 20.10 (API 1.41), live")
        for t in targets:
            t.cleanup()
        return 1 if new else 0
    finally:
        for d in daemons:
            d.close()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def golden(args, out, log):
    base = tempfile.mkdtemp(prefix="cf", dir="/tmp")
    spawned = None
    try:
        if args.sock:
            t = Target("berthd", args.sock, base, args.docker_config, dump_dir=args.dump)
        else:
            spawned = Spawned("berthd", base, args.bin_dir)
            spawned.start()
            t = Target("berthd", spawned.sock, base, dump_dir=args.dump)
        shapes = v150.load(args.types_dir)
        rep, rep150 = Report(), Report()
        missing, status141 = [], {}

        def on_case(case, got, data):
            want = load_json(os.path.join(args.golden_dir, f"{case.name}.json"), None)
            if want is None:
                missing.append(case.name)
                return
            status141[case.name] = want["status"]
            rep.add(case, want, got)

        def on_case150(case, got, data):
            if not case.raw and not case.path.startswith("/v1."):
                v150.check(case, got, status141.get(case.name), shapes, rep150)

        t0 = time.monotonic()
        try:
            play(t, on_case, log, only=args.only)
            log(f"  golden v1.41 pass done in {time.monotonic() - t0:.1f}s")
            if shapes:
                play(t, on_case150, log, "1.50", only=args.only)
                log(f"  v1.50 pass done in {time.monotonic() - t0:.1f}s")
        finally:
            t.cleanup()
        intended = load_json(os.path.join(HERE, "intended.json"), {})
        known = load_json(args.known_gaps, {})
        new = rep.print(out, intended, known, "berthd vs golden v1.41 fixtures (dockerd 20.10)")
        if missing:
            out(f"\ncases without a fixture (run --record): {', '.join(missing)}")
        if shapes:
            new += rep150.print(out, intended, known, "berthd /v1.50/ vs type-derived shapes")
        else:
            out(f"\nv1.50 shape check skipped: no type fixtures in {args.types_dir}")
        seen = rep.diffs + rep150.diffs
        # Wildcard entries cover answers that vary from run to run: one run
        # not hitting them says nothing.
        stale = [k for k in known
                 if not k.endswith("*") and not any(listed(d, {k: 1}) for d in seen)]
        if stale and not args.only:
            out(f"\nknown gaps no longer seen ({len(stale)}; remove them from known-gaps.json):")
            for k in stale:
                out(f"  {k}")
        if args.write_known_gaps:
            gaps = {k: v for k, v in known.items() if k.endswith("*")}
            details = {**rep.details, **rep150.details}
            for d in rep.diffs + rep150.diffs:
                if not listed(d, intended) and not listed(d, gaps):
                    gaps[d] = known.get(d) or gap_reason(d, details.get(d))
            with open(args.known_gaps, "w") as f:
                json.dump(gaps, f, indent=1, sort_keys=True)
                f.write("\n")
            log(f"wrote {len(gaps)} known gaps")
            return 0
        return 1 if new else 0
    finally:
        if spawned:
            spawned.close()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "debug"))
    ap.add_argument("--record", action="store_true",
                    help="write dockerd's answers as golden fixtures")
    ap.add_argument("--golden", action="store_true", help="berthd alone against the fixtures")
    ap.add_argument("--sock", help="golden mode: an already-running daemon's socket")
    ap.add_argument("--docker-config", help="DOCKER_CONFIG dir for the CLI (with --sock)")
    ap.add_argument("--golden-dir", default=GOLDEN, help="the v1.41 fixtures")
    ap.add_argument("--known-gaps", default=os.path.join(HERE, "known-gaps.json"),
                    help="differences tolerated in golden mode")
    ap.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], default=[],
                    help="comma-separated case name prefixes to run (set-up always runs)")
    ap.add_argument("--types-dir", default=os.path.join(HERE, "golden", "v1.50"),
                    help="type-derived v1.50 shapes")
    ap.add_argument("--write-known-gaps", action="store_true",
                    help="golden mode: write every difference to known-gaps.json")
    ap.add_argument("--output", help="also write the report to this file")
    ap.add_argument("--dump", help="write every raw answer body to this directory")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
    if os.geteuid() != 0 and not args.sock:
        sys.exit("conformance needs root (network namespaces), or --golden --sock")
    lines = []

    def out(s):
        print(s)
        lines.append(s)

    def log(s):
        print(s, file=sys.stderr, flush=True)

    rc = golden(args, out, log) if args.golden else live(args, out, log)
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")
    sys.exit(rc)


if __name__ == "__main__":
    main()
