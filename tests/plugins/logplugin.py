#!/usr/bin/env python3
"""A logging plugin for the tests (Docker's LogDriver protocol, stdlib only).

    logplugin.py SOCKET STORE [--no-read-logs] [--stall]

Serves HTTP on the unix socket SOCKET. StartLogging appends its Info to
STORE/info.jsonl and reads the FIFO it is given: each framed LogEntry
(4-byte big-endian length, then the protobuf message, decoded by hand here)
becomes one JSON line of STORE/<container id>.jsonl. StopLogging waits for
the FIFO's end and appends {"stopped": file} to STORE/events.jsonl.
ReadLogs answers with the stored entries framed again (Since, Until, Tail,
and Follow until that container's logging stops). A StartLogging whose
Info.Config has `fail` answers that as its Err. With --stall the FIFOs are
never read.
"""

import base64
import http.server
import json
import os
import socketserver
import struct
import sys
import threading
import time

SOCKET, STORE = sys.argv[1], sys.argv[2]
READ_LOGS = "--no-read-logs" not in sys.argv[3:]
# Never reads a FIFO: a plugin that hangs.
STALL = "--stall" in sys.argv[3:]
LOCK = threading.Lock()
READERS = {}  # fifo path -> (thread, container id)
STOPPED = set()  # container ids whose logging stopped (for Follow)


def varint(b, i):
    shift = value = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def fields(b):
    """(field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % wt)
        yield num, wt, v


def signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def decode(msg):
    e = {"source": "", "time_nano": 0, "line": "", "partial": False}
    for num, _, v in fields(msg):
        if num == 1:
            e["source"] = v.decode()
        elif num == 2:
            e["time_nano"] = signed(v)
        elif num == 3:
            e["line_b64"] = base64.b64encode(v).decode()
            e["line"] = v.decode("utf-8", "replace")
        elif num == 4:
            e["partial"] = bool(v)
        elif num == 5:
            meta = {"last": False, "id": "", "ordinal": 0}
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    meta["last"] = bool(v2)
                elif n2 == 2:
                    meta["id"] = v2.decode()
                elif n2 == 3:
                    meta["ordinal"] = signed(v2)
            e["meta"] = meta
    return e


def enc_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def encode(e):
    line = base64.b64decode(e.get("line_b64", ""))
    m = bytearray()
    src = e["source"].encode()
    m += b"\x0a" + enc_varint(len(src)) + src
    m += b"\x10" + enc_varint(e["time_nano"])
    m += b"\x1a" + enc_varint(len(line)) + line
    if e.get("partial"):
        m += b"\x20\x01"
        meta = e.get("meta") or {}
        sub = bytearray()
        if meta.get("last"):
            sub += b"\x08\x01"
        mid = meta.get("id", "").encode()
        sub += b"\x12" + enc_varint(len(mid)) + mid
        sub += b"\x18" + enc_varint(meta.get("ordinal", 0))
        m += b"\x2a" + enc_varint(len(sub)) + bytes(sub)
    return struct.pack(">I", len(m)) + bytes(m)


def append(path, obj):
    with LOCK, open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")


def read_fifo(path, cid):
    out = os.path.join(STORE, cid + ".jsonl")
    # Blocks until the shim opens its end (or StopLogging opens one).
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if len(head) < 4:
                return
            (n,) = struct.unpack(">I", head)
            msg = f.read(n)
            if len(msg) < n:
                append(os.path.join(STORE, "events.jsonl"), {"short": path})
                return
            append(out, decode(msg))


def go_time(s):
    """Nanoseconds of a Go time.Time in JSON (RFC 3339); None for zero."""
    if not s or s.startswith("0001-01-01"):
        return None
    date, _, rest = s.partition("T")
    tz = rest[-1] == "Z" and "Z" or rest[-6:]
    clock = rest[:-1] if tz == "Z" else rest[:-6]
    hms, _, frac = clock.partition(".")
    y, mo, d = (int(x) for x in date.split("-"))
    h, mi, sec = (int(x) for x in hms.split(":"))
    import calendar
    secs = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 10**9 + int((frac + "000000000")[:9])


def entries(cid):
    try:
        with LOCK, open(os.path.join(STORE, cid + ".jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"

    def answer(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        req = json.loads(raw) if raw.strip() else {}
        p = self.path
        if p == "/Plugin.Activate":
            return self.answer({"Implements": ["LogDriver"]})
        if p == "/LogDriver.Capabilities":
            return self.answer({"Cap": {"ReadLogs": READ_LOGS}})
        if p == "/LogDriver.StartLogging":
            info = req.get("Info") or {}
            append(os.path.join(STORE, "info.jsonl"), {"File": req.get("File"), "Info": info})
            if "fail" in (info.get("Config") or {}):
                return self.answer({"Err": "refused: " + info["Config"]["fail"]})
            cid = info.get("ContainerID", "")
            with LOCK:
                STOPPED.discard(cid)
            if STALL:
                with LOCK:
                    READERS[req["File"]] = (None, cid)
                return self.answer({"Err": ""})
            t = threading.Thread(target=read_fifo, args=(req["File"], cid), daemon=True)
            t.start()
            with LOCK:
                READERS[req["File"]] = (t, cid)
            return self.answer({"Err": ""})
        if p == "/LogDriver.StopLogging":
            f = req.get("File", "")
            with LOCK:
                t, cid = READERS.pop(f, (None, ""))
            if t is not None:
                t.join(10)
                if t.is_alive():
                    # Never opened by a writer: release the reader's open.
                    try:
                        os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
                    except OSError:
                        pass
                    t.join(5)
            with LOCK:
                STOPPED.add(cid)
            append(os.path.join(STORE, "events.jsonl"), {"stopped": f, "id": cid})
            return self.answer({"Err": ""})
        if p == "/LogDriver.ReadLogs":
            return self.read_logs(req)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def read_logs(self, req):
        if not READ_LOGS:
            return self.answer({"Err": "no ReadLogs here"})
        cid = (req.get("Info") or {}).get("ContainerID", "")
        cfg = req.get("Config") or {}
        append(os.path.join(STORE, "events.jsonl"),
               {"readlogs": cid, "config": cfg, "info": req.get("Info")})
        since, until = go_time(cfg.get("Since")), go_time(cfg.get("Until"))
        tail, follow = cfg.get("Tail", -1), cfg.get("Follow", False)

        def keep(e):
            t = e["time_nano"]
            return (since is None or t >= since) and (until is None or t <= until)

        self.send_response(200)
        self.send_header("Content-Type", "application/x-json-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        got = entries(cid)
        sel = [e for e in got if keep(e)]
        if tail is not None and tail >= 0:
            sel = sel[len(sel) - tail:] if tail else []
        try:
            for e in sel:
                self.wfile.write(encode(e))
            self.wfile.flush()
            seen = len(got)
            deadline = time.time() + 120
            while follow and time.time() < deadline:
                with LOCK:
                    done = cid in STOPPED
                now = entries(cid)
                for e in now[seen:]:
                    if keep(e):
                        self.wfile.write(encode(e))
                self.wfile.flush()
                seen = len(now)
                if done:
                    break
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    os.makedirs(STORE, exist_ok=True)
    try:
        os.unlink(SOCKET)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(SOCKET), exist_ok=True)
    srv = Server(SOCKET, Handler)
    srv.serve_forever()
