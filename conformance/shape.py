"""What an answer looks like, independent of its data: key paths and value
types, stream framing, the headers clients read, a normalised error
message. `observe` turns one HTTP answer into that record (the golden
fixture format); `compare` lists the differences between two records."""

import json
import re
import struct

# Objects whose keys are data, not schema: their entries merge into `{}`.
# Matched against the end of the key path (by whole components).
DYNAMIC = [
    "Labels", "Networks", "Ports", "ExposedPorts", "Volumes", "Options",
    "DriverOpts", "GraphDriver.Data", "PortBindings", "Tmpfs", "Sysctls",
    "LogConfig.Config", "IndexConfigs", "Runtimes", "Attributes", "networks",
    "StorageOpt", "Status", "Containers", "Annotations", "annotations",
    "Details", "AuxiliaryAddresses", "Services", "Info", "options", "status",
    # cgroup counters: which ones exist depends on the kernel
    "memory_stats.stats",
]
_DYN = [tuple(p.split(".")) for p in DYNAMIC]


def _is_dynamic(parts):
    return any(tuple(parts[-len(d):]) == d for d in _DYN)


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _join(prefix, k):
    if k == "[]":
        return prefix + "[]"
    return f"{prefix}.{k}" if prefix else k


def key_paths(value):
    """{path: type} of every key (a value null, "", 0, [] or {} counts);
    array elements merge under `[]`, dynamic map entries under `{}`. Several
    types at one path are joined with `|` (sorted). The root is `$`."""
    out = {}

    def add(p, v):
        t = json_type(v)
        old = out.get(p)
        if old:
            t = "|".join(sorted(set(old.split("|")) | {t}))
        out[p] = t

    def walk(prefix, parts, v):
        if isinstance(v, dict):
            dyn = _is_dynamic(parts)
            for k, x in v.items():
                name = "{}" if dyn else k
                p = _join(prefix, name)
                add(p, x)
                walk(p, parts + [name], x)
        elif isinstance(v, list):
            for x in v:
                p = _join(prefix, "[]")
                add(p, x)
                walk(p, parts + ["[]"], x)

    add("$", value)
    walk("", [], value)
    return out


def framing(body):
    """`multiplexed` if the body is a whole sequence of 8-byte-header
    frames (stream 0-2), `raw` otherwise, `empty` for no bytes; with the
    payload (frames joined) for value checks."""
    if not body:
        return "empty", b""
    i, payload = 0, bytearray()
    while i + 8 <= len(body):
        st, z1, z2, z3, n = struct.unpack(">BBBBI", body[i:i + 8])
        if st > 2 or (z1, z2, z3) != (0, 0, 0) or i + 8 + n > len(body):
            break
        payload += body[i + 8:i + 8 + n]
        i += 8 + n
    if i == len(body):
        return "multiplexed", bytes(payload)
    return "raw", body


_HEX = re.compile(r"\b(sha256:)?[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
_NUM = re.compile(r"\d+(\.\d+)*")


def norm_text(s, names=()):
    """A message with ids, numbers in versions and object names made
    comparable across daemons."""
    s = _HEX.sub("<id>", s)
    s = re.sub(r"API version is \d+\.\d+", "API version is <ver>", s)
    return s.strip()


def norm_value(v):
    """Ids inside values become <id> (the daemons make different ones)."""
    if isinstance(v, str):
        return norm_text(v)
    if isinstance(v, list):
        return [norm_value(x) for x in v]
    if isinstance(v, dict):
        return {k: norm_value(x) for k, x in v.items()}
    return v


def leaves(prefix, v):
    """{path: value} of the scalars and arrays under an object."""
    if not isinstance(v, dict):
        return {prefix: norm_value(v)}
    out = {}
    for k, x in v.items():
        out.update(leaves(f"{prefix}.{k}", x))
    return out


def get_path(v, path):
    for k in path.split("."):
        if isinstance(v, dict):
            v = v.get(k)
        elif isinstance(v, list) and k.isdigit() and int(k) < len(v):
            v = v[int(k)]
        else:
            return None
    return v


HEADERS = ["Api-Version", "Ostype", "Docker-Experimental", "Server"]


def observe(case, resp, body_json=None):
    """The record of one answer (what a golden fixture holds)."""
    ct = resp.header("content-type")
    rec = {
        "case": case.name, "method": case.method, "path": case.path,
        "status": resp.status, "content_type": ct,
    }
    hdr = {}
    for h in HEADERS:
        v = resp.header(h)
        if v is None:
            hdr[h] = None
        elif h == "Api-Version" or (h == "Server" and not case.server):
            hdr[h] = "present"
        elif h == "Server":
            hdr[h] = _NUM.sub("N", v)
        else:
            hdr[h] = v
    rec["headers"] = hdr
    data = body_json if body_json is not None else resp.json()
    is_json = ct is not None and "json" in ct and data is not None
    if case.stream:
        kind, payload = framing(resp.body)
        rec["framing"] = kind
        rec["ends"] = not resp.timed_out
        if case.payload:
            rec["payload"] = payload.decode(errors="replace")
    elif is_json or (data is not None and resp.status >= 400):
        rec["paths"] = key_paths(data)
    if resp.status >= 400:
        msg = data.get("message") if isinstance(data, dict) else None
        rec["error"] = norm_text(msg) if isinstance(msg, str) else None
    else:
        rec["error"] = None
    if case.values and isinstance(data, (dict, list)):
        rec["values"] = {}
        for p in case.values:
            if "[]." in p:  # every element's value, sorted
                head, tail = p.split("[].", 1)
                items = get_path(data, head) if head else data
                got = [norm_value(get_path(x, tail)) for x in items or []]
                rec["values"][p] = sorted(got, key=json.dumps)
            elif p.endswith(".*"):  # every leaf under p, one value each
                rec["values"].update(leaves(p[:-2], get_path(data, p[:-2])))
            else:
                rec["values"][p] = norm_value(get_path(data, p))
    if case.events and isinstance(data, list):
        rec["events"] = [f"{e.get('Type')} {e.get('Action')}" for e in data]
    return rec


def events_json(body):
    """An events stream is concatenated JSON objects, one per line."""
    out = []
    for ln in body.decode(errors="replace").splitlines():
        ln = ln.strip()
        if ln:
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
    return out


def compare(want, got):
    """Differences of `got` against `want`: (kind, key, detail); kind and
    key make the difference's stable id, detail shows the values. Kinds:
    status, content-type, header, missing, extra, type, error, framing,
    payload, value, events."""
    diffs = []
    if want["status"] != got["status"]:
        diffs.append(("status", "", f"{want['status']} != {got['status']}"))
    if want.get("content_type") != got.get("content_type"):
        wc, gc = want.get("content_type"), got.get("content_type")
        diffs.append(("content-type", "", f"{wc!r} != {gc!r}"))
    for h, v in (want.get("headers") or {}).items():
        g = (got.get("headers") or {}).get(h)
        if v != g:
            diffs.append(("header", h, f"{v!r} != {g!r}"))
    wp, gp = want.get("paths"), got.get("paths")
    if wp is not None or gp is not None:
        wp, gp = wp or {}, gp or {}
        for p in sorted(wp):
            if p not in gp:
                diffs.append(("missing", p, ""))
            elif not _types_ok(wp[p], gp[p]):
                diffs.append(("type", p, f"{wp[p]} != {gp[p]}"))
        for p in sorted(gp):
            if p not in wp:
                diffs.append(("extra", p, ""))
    if want.get("error") != got.get("error"):
        diffs.append(("error", "", f"{want.get('error')!r} != {got.get('error')!r}"))
    for k in ("framing", "ends", "payload"):
        if k in want and want[k] != got.get(k):
            diffs.append((k, "", f"{want[k]!r} != {got.get(k)!r}"))
    for p, v in (want.get("values") or {}).items():
        g = (got.get("values") or {}).get(p)
        if v != g:
            diffs.append(("value", p, f"{json.dumps(v)} != {json.dumps(g)}"))
    if "events" in want and want["events"] != got.get("events"):
        diffs.append(("events", "", f"{want['events']} != {got.get('events')}"))
    return diffs


def _types_ok(want, got):
    # A merged type (`string|null` over array elements) matches when the
    # sets are equal; nothing looser, so a null where dockerd sends [] shows.
    return set(want.split("|")) == set(got.split("|"))


def path_score(want, got):
    """(matched, total): dockerd's key paths present with the same type."""
    wp, gp = want.get("paths") or {}, got.get("paths") or {}
    ok = sum(1 for p, t in wp.items() if p in gp and _types_ok(t, gp[p]))
    return ok, len(wp)
