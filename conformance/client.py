"""A minimal HTTP/1.1 client over a unix socket: one request per
connection (`Connection: close`), the body read to EOF, so streams that end
(logs without follow, stats?stream=0, events with `until`, hijacked exec
and attach of commands that exit) come back whole."""

import json
import socket
import time


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers  # lower-cased name -> value
        self.body = body
        self.elapsed = elapsed
        self.timed_out = False

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _dechunk(data):
    out = bytearray()
    while data:
        line, _, rest = data.partition(b"\r\n")
        try:
            n = int(line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return bytes(out) + data  # not chunked after all
        if n == 0:
            break
        out += rest[:n]
        data = rest[n + 2:]
    return bytes(out)


def request(sock, method, path, body=None, headers=None, timeout=60, half_close=False):
    """Sends one request; `body` is bytes, or any other value sent as JSON.
    `half_close` shuts the sending side after the request, as a client
    does when its stdin ends on a hijacked stream."""
    hdrs = {"Host": "docker", "User-Agent": "berth-conformance"}
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    hdrs["Connection"] = "close"
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)  # per read: a stream that stalls this long is cut
    t0 = time.monotonic()
    s.connect(sock)
    try:
        s.sendall(head.encode() + (body or b""))
        if half_close:
            s.shutdown(socket.SHUT_WR)
        raw = bytearray()
        timed_out = False
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                # A stream that should have ended did not: keep what came.
                timed_out = True
                break
            if not c:
                break
            raw += c
            if method == "HEAD" and b"\r\n\r\n" in raw:
                break
    finally:
        s.close()
    elapsed = time.monotonic() - t0
    head, _, data = bytes(raw).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{method} {path}: no HTTP answer ({bytes(raw[:200])!r})")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = _dechunk(data)
    r = Response(status, headers, data, elapsed)
    r.timed_out = timed_out
    return r
