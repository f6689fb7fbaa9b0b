#!/usr/bin/env python3
"""A Docker authorization plugin for the tests (stdlib only).

    authz.py SOCKET RECORD [--deny-privileged] [--deny-uri TEXT]
             [--deny-answer-uri TEXT] [--hang] [--garbage]

Serves Docker's plugin protocol on the unix socket SOCKET and appends each
call it gets to RECORD, one JSON object a line: {"call": "AuthZReq" or
"AuthZRes", "req": <what the daemon sent>}.

  --deny-privileged  refuse `POST /containers/create` whose (base64) JSON
                     body asks for HostConfig.Privileged
  --deny-uri TEXT    refuse any request whose RequestUri contains TEXT
  --deny-answer-uri TEXT
                     refuse the answer (AuthZRes) to any request whose
                     RequestUri contains TEXT
  --hang             never answer AuthZReq (the daemon must time out)
  --garbage          answer AuthZReq with something that is not JSON
Everything else is allowed.
"""

import base64
import json
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

MEDIA = "application/vnd.docker.plugins.v1.2+json"


def parse_args(argv):
    opts = {
        "deny_privileged": False,
        "deny_uri": None,
        "deny_answer_uri": None,
        "hang": False,
        "garbage": False,
    }
    sock, record = argv[0], argv[1]
    rest = argv[2:]
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--deny-privileged":
            opts["deny_privileged"] = True
        elif a == "--deny-uri":
            i += 1
            opts["deny_uri"] = rest[i]
        elif a == "--deny-answer-uri":
            i += 1
            opts["deny_answer_uri"] = rest[i]
        elif a == "--hang":
            opts["hang"] = True
        elif a == "--garbage":
            opts["garbage"] = True
        else:
            raise SystemExit("unknown option " + a)
        i += 1
    return sock, record, opts


SOCK, RECORD, OPTS = parse_args(sys.argv[1:])
LOCK = threading.Lock()


def record(call, req):
    with LOCK:
        with open(RECORD, "a") as f:
            f.write(json.dumps({"call": call, "req": req}) + "\n")
            f.flush()


def privileged(req):
    if req.get("RequestMethod") != "POST":
        return False
    if "/containers/create" not in req.get("RequestUri", ""):
        return False
    body = req.get("RequestBody")
    if not body:
        return False
    try:
        cfg = json.loads(base64.b64decode(body))
    except ValueError:
        return False
    return bool((cfg.get("HostConfig") or {}).get("Privileged"))


def decide(req):
    if OPTS["deny_privileged"] and privileged(req):
        return {"Allow": False, "Msg": "privileged containers are not allowed"}
    text = OPTS["deny_uri"]
    if text and text in req.get("RequestUri", ""):
        return {"Allow": False, "Msg": "no " + text + " here"}
    return {"Allow": True}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, obj, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", MEDIA)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            req = json.loads(raw) if raw.strip() else {}
        except ValueError:
            req = {"unparsed": raw.decode("utf-8", "replace")}
        if self.path == "/Plugin.Activate":
            self.answer({"Implements": ["authz"]})
        elif self.path == "/AuthZPlugin.AuthZReq":
            record("AuthZReq", req)
            if OPTS["hang"]:
                time.sleep(600)
                return
            if OPTS["garbage"]:
                self.answer(None, raw=b"<html>not json</html>")
                return
            self.answer(decide(req))
        elif self.path == "/AuthZPlugin.AuthZRes":
            record("AuthZRes", req)
            text = OPTS["deny_answer_uri"]
            if text and text in req.get("RequestUri", ""):
                self.answer({"Allow": False, "Msg": "answer of " + text + " withheld"})
            else:
                self.answer({"Allow": True})
        else:
            self.send_response(404)
            self.end_headers()


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    srv = Server(SOCK, Handler)
    srv.serve_forever()
