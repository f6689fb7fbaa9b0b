#!/usr/bin/env python3
"""A legacy volume plugin for the e2e tests (stdlib only).

    volplugin.py SOCKET STATE_DIR [MODE]

Serves Docker's volume plugin protocol on the unix socket SOCKET. Volumes
are directories under STATE_DIR/volumes; every call is appended to
STATE_DIR/calls as one JSON line ({"method": ..., "body": ...}) so that a
test can see what the daemon asked. MODE:

- ok (default): a plain, correct driver (scope `global`, a `Status` in
  Get).
- garbage: `Plugin.Activate` is answered, every VolumeDriver call gets
  bytes that are not JSON.
- hang: `Plugin.Activate` is answered, every VolumeDriver call is never
  answered.
"""

import http.server
import json
import os
import socketserver
import sys
import threading
import time

SOCKET, STATE = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "ok"
VOLUMES = os.path.join(STATE, "volumes")
LOCK = threading.Lock()
# name -> {"opts": {...}, "mounts": [ids]}
VOLS = {}


def record(method, body):
    with LOCK, open(os.path.join(STATE, "calls"), "a") as f:
        f.write(json.dumps({"method": method, "body": body}) + "\n")


def vol_dir(name):
    return os.path.join(VOLUMES, name)


def handle(method, body):
    """The answer (a dict) to one call, or an error message."""
    name = body.get("Name", "") if isinstance(body, dict) else ""
    if method == "/Plugin.Activate":
        return {"Implements": ["VolumeDriver"]}
    if method == "/VolumeDriver.Capabilities":
        return {"Capabilities": {"Scope": "global"}}
    if method == "/VolumeDriver.Create":
        opts = body.get("Opts") or {}
        if "fail" in opts:
            return "refused: " + opts["fail"]
        with LOCK:
            VOLS.setdefault(name, {"opts": opts, "mounts": []})
        os.makedirs(vol_dir(name), exist_ok=True)
        return {}
    if method == "/VolumeDriver.List":
        with LOCK:
            names = sorted(VOLS)
        return {"Volumes": [{"Name": n, "Mountpoint": vol_dir(n)} for n in names]}
    with LOCK:
        v = VOLS.get(name)
        if v is None:
            return "no such volume: " + name
        if method == "/VolumeDriver.Get":
            return {
                "Volume": {
                    "Name": name,
                    "Mountpoint": vol_dir(name),
                    "Status": {"mounts": len(v["mounts"]), "opts": v["opts"]},
                }
            }
        if method == "/VolumeDriver.Path":
            return {"Mountpoint": vol_dir(name)}
        if method == "/VolumeDriver.Mount":
            v["mounts"].append(body.get("ID", ""))
            return {"Mountpoint": vol_dir(name)}
        if method == "/VolumeDriver.Unmount":
            i = body.get("ID", "")
            if i not in v["mounts"]:
                return "not mounted for " + i
            v["mounts"].remove(i)
            return {}
        if method == "/VolumeDriver.Remove":
            if v["mounts"]:
                return "volume is mounted"
            del VOLS[name]
            return {}
    return "unknown method " + method


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = {}
        record(self.path, body)
        if self.path != "/Plugin.Activate" and MODE == "hang":
            time.sleep(3600)
            return
        if self.path != "/Plugin.Activate" and MODE == "garbage":
            out, status = b"\x00this is not json{{", 200
        else:
            ans = handle(self.path, body)
            if isinstance(ans, str):
                out, status = json.dumps({"Err": ans}).encode(), 500
            else:
                out, status = json.dumps(ans).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    os.makedirs(VOLUMES, exist_ok=True)
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)
    with Server(SOCKET, Handler) as s:
        s.serve_forever()


if __name__ == "__main__":
    main()
