#!/usr/bin/env python3
"""A managed volume plugin for the e2e tests (stdlib only).

Runs inside its plugin container (the host's /usr is bound into it
read-only, so the host's python runs it):

    managed_vol.py [MODE]

Serves Docker's volume plugin protocol on
/run/docker/plugins/$SOCKET_NAME (default `pyvol.sock`). A volume is a
tmpfs that the plugin mounts at <PropagatedMount>/<name> on its first
Mount and unmounts at the last Unmount, so that the mount shows on the
host only if the propagated mount works. $GREETING (a settable env) is
written in each volume as `greeting`. MODE:

- ok (default): the driver above.
- exit: exits at once (a plugin that dies before its socket exists).
"""

import ctypes
import http.server
import json
import os
import socketserver
import sys
import threading

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
ROOT = os.environ.get("VOL_ROOT", "/data")
SOCKET = os.path.join("/run/docker/plugins", os.environ.get("SOCKET_NAME", "pyvol.sock"))
LOCK = threading.Lock()
VOLS = {}  # name -> set of mount IDs
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


def mount_tmpfs(path):
    os.makedirs(path, exist_ok=True)
    if LIBC.mount(b"pyvol", path.encode(), b"tmpfs", 0, b"size=4m") != 0:
        raise OSError(ctypes.get_errno(), "mount " + path)
    with open(os.path.join(path, "greeting"), "w") as f:
        f.write(os.environ.get("GREETING", ""))


def umount(path):
    LIBC.umount2(path.encode(), 2)  # MNT_DETACH


def handle(method, body):
    name = body.get("Name", "") if isinstance(body, dict) else ""
    path = os.path.join(ROOT, name)
    if method == "/Plugin.Activate":
        return {"Implements": ["VolumeDriver"]}
    if method == "/VolumeDriver.Capabilities":
        return {"Capabilities": {"Scope": "local"}}
    if method == "/VolumeDriver.Create":
        with LOCK:
            VOLS.setdefault(name, set())
        return {}
    if method == "/VolumeDriver.List":
        with LOCK:
            return {"Volumes": [{"Name": n, "Mountpoint": os.path.join(ROOT, n)} for n in sorted(VOLS)]}
    with LOCK:
        if name not in VOLS:
            return "no such volume: " + name
        if method == "/VolumeDriver.Get":
            return {"Volume": {"Name": name, "Mountpoint": path}}
        if method == "/VolumeDriver.Path":
            return {"Mountpoint": path}
        if method == "/VolumeDriver.Mount":
            if not VOLS[name]:
                mount_tmpfs(path)
            VOLS[name].add(body.get("ID", ""))
            return {"Mountpoint": path}
        if method == "/VolumeDriver.Unmount":
            VOLS[name].discard(body.get("ID", ""))
            if not VOLS[name]:
                umount(path)
            return {}
        if method == "/VolumeDriver.Remove":
            if VOLS[name]:
                return "volume is in use"
            del VOLS[name]
            return {}
    return "unknown method " + method


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = {}
        try:
            out = handle(self.path, body)
        except OSError as e:
            out = str(e)
        if isinstance(out, str):
            out = {"Err": out}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    if MODE == "exit":
        sys.exit(3)
    try:
        os.unlink(SOCKET)
    except FileNotFoundError:
        pass
    print("serving on", SOCKET, flush=True)
    Server(SOCKET, Handler).serve_forever()
