#!/usr/bin/env python3
"""A legacy network + IPAM plugin for berth's tests (stdlib only).

It serves Docker's remote driver and IPAM protocols on a unix socket. It
owns one Linux bridge (its own name), makes a veth pair per endpoint (the
host end on its bridge, the other end handed to the daemon in `Join`),
and hands out addresses from its own pools. Every call is appended to a
log file as one JSON line: {"method": ..., "body": ...}. It implements
neither ProgramExternalConnectivity nor RevokeExternalConnectivity (404):
they are optional.

usage: netplugin.py SOCKET BRIDGE TAG LOG [--mode MODE]

TAG (a few hex digits) names its veths: h<TAG><n> on the bridge, c<TAG><n>
for the daemon. MODE makes it misbehave for the bad-input tests:
  ipam-garbage   RequestPool answers something that is not JSON
  ipam-err       RequestPool answers {"Err": ...}
  ipam-nopool    RequestPool answers a pool that is not a CIDR
  join-err       Join answers {"Err": ...}
  join-noiface   Join names an interface that does not exist
  hang-join      Join never answers (within the test's timeouts)
"""

import argparse
import ipaddress
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

ARGS = None
LOCK = threading.Lock()
POOLS = {}  # pool ID -> {"net": IPv4Network, "used": set of addresses}
ENDPOINTS = {}  # endpoint ID -> (host veth, peer veth, address)
COUNTER = [0]
DEFAULT_POOL = "10.219.0.0/24"
DEFAULT_POOL6 = "fd00:219::/64"


def ip(*args):
    subprocess.run(["ip", *args], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def log_call(method, body):
    with LOCK:
        with open(ARGS.log, "a") as f:
            f.write(json.dumps({"method": method, "body": body}) + "\n")


def request_pool(body):
    if ARGS.mode == "ipam-garbage":
        return b"this is not json {"
    if ARGS.mode == "ipam-err":
        return {"Err": "the test plugin has no pool for you"}
    if ARGS.mode == "ipam-nopool":
        return {"PoolID": "p", "Pool": "not-a-cidr", "Data": {}}
    default = DEFAULT_POOL6 if body.get("V6") else DEFAULT_POOL
    net = ipaddress.ip_network(body.get("Pool") or default, strict=False)
    pid = "plocal/" + str(net)
    with LOCK:
        if pid in POOLS:
            return {"Err": "pool %s is in use" % net}
        POOLS[pid] = {"net": net, "used": set()}
    return {"PoolID": pid, "Pool": str(net), "Data": {}}


def request_address(body):
    pid = body.get("PoolID", "")
    with LOCK:
        pool = POOLS.get(pid)
        if pool is None:
            return {"Err": "no pool %s" % pid}
        net = pool["net"]
        want = body.get("Address") or ""
        if want:
            a = ipaddress.ip_address(want)
            if a in pool["used"]:
                return {"Err": "address %s is in use" % a}
        else:
            a = next((h for h in net.hosts() if h not in pool["used"]), None)
            if a is None:
                return {"Err": "pool %s is full" % net}
        pool["used"].add(a)
    return {"Address": "%s/%d" % (a, net.prefixlen), "Data": {}}


def release_address(body):
    with LOCK:
        pool = POOLS.get(body.get("PoolID", ""))
        if pool is not None and body.get("Address"):
            pool["used"].discard(ipaddress.ip_address(body["Address"]))
    return {}


def release_pool(body):
    with LOCK:
        POOLS.pop(body.get("PoolID", ""), None)
    return {}


def create_network(body):
    ip("link", "add", ARGS.bridge, "type", "bridge")
    ip("link", "set", ARGS.bridge, "up")
    return {}


def delete_network(body):
    ip("link", "del", ARGS.bridge)
    return {}


def create_endpoint(body):
    with LOCK:
        n = COUNTER[0]
        COUNTER[0] += 1
    host, peer = "h%s%d" % (ARGS.tag, n), "c%s%d" % (ARGS.tag, n)
    ip("link", "add", host, "type", "veth", "peer", "name", peer)
    ip("link", "set", host, "master", ARGS.bridge)
    ip("link", "set", host, "up")
    addr = (body.get("Interface") or {}).get("Address", "")
    addr6 = (body.get("Interface") or {}).get("AddressIPv6", "")
    with LOCK:
        ENDPOINTS[body["EndpointID"]] = (host, peer, addr, addr6)
    out = {}
    iface = body.get("Interface") or {}
    if not iface.get("MacAddress") and addr:
        # The plugin's own MAC: 02:50 and the IPv4 address.
        octets = ipaddress.ip_interface(addr).ip.packed
        out["Interface"] = {"MacAddress": "02:50:" + ":".join("%02x" % o for o in octets)}
    return out


def delete_endpoint(body):
    with LOCK:
        ep = ENDPOINTS.pop(body.get("EndpointID", ""), None)
    if ep:
        ip("link", "del", ep[0])
    return {}


def join(body):
    if ARGS.mode == "join-err":
        return {"Err": "the test plugin refuses to join"}
    if ARGS.mode == "hang-join":
        time.sleep(60)
    with LOCK:
        ep = ENDPOINTS.get(body.get("EndpointID", ""))
    if ep is None:
        return {"Err": "no such endpoint"}
    src = ep[1] if ARGS.mode != "join-noiface" else "nosuchlink0"
    out = {"InterfaceName": {"SrcName": src, "DstPrefix": "eth"}}
    if ep[2]:
        net = ipaddress.ip_interface(ep[2]).network
        out["Gateway"] = str(next(net.hosts()))
        # A connected route the container should get.
        out["StaticRoutes"] = [{"Destination": "10.218.99.0/24", "RouteType": 1}]
    if ep[3]:
        out["GatewayIPv6"] = str(next(ipaddress.ip_interface(ep[3]).network.hosts()))
    return out


HANDLERS = {
    "Plugin.Activate": lambda b: {"Implements": ["NetworkDriver", "IpamDriver"]},
    "NetworkDriver.GetCapabilities": lambda b: {"Scope": "local", "ConnectivityScope": "local"},
    "NetworkDriver.CreateNetwork": create_network,
    "NetworkDriver.DeleteNetwork": delete_network,
    "NetworkDriver.CreateEndpoint": create_endpoint,
    "NetworkDriver.EndpointOperInfo": lambda b: {"Value": {}},
    "NetworkDriver.DeleteEndpoint": delete_endpoint,
    "NetworkDriver.Join": join,
    "NetworkDriver.Leave": lambda b: {},
    "NetworkDriver.DiscoverNew": lambda b: {},
    "NetworkDriver.DiscoverDelete": lambda b: {},
    # ProgramExternalConnectivity and RevokeExternalConnectivity are left
    # out on purpose: they are optional (a 404 is no error).
    "IpamDriver.GetCapabilities": lambda b: {"RequiresMACAddress": False},
    "IpamDriver.GetDefaultAddressSpaces": lambda b: {
        "LocalDefaultAddressSpace": "plocal", "GlobalDefaultAddressSpace": "pglobal"},
    "IpamDriver.RequestPool": request_pool,
    "IpamDriver.ReleasePool": release_pool,
    "IpamDriver.RequestAddress": request_address,
    "IpamDriver.ReleaseAddress": release_address,
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        method = self.path.lstrip("/")
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = {}
        if body is None:
            body = {}
        log_call(method, body)
        h = HANDLERS.get(method)
        if h is None:
            status, out = 404, {"Err": "unknown method " + method}
        else:
            status, out = 200, h(body)
        data = out if isinstance(out, bytes) else json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("socket")
    p.add_argument("bridge")
    p.add_argument("tag")
    p.add_argument("log")
    p.add_argument("--mode", default="")
    ARGS = p.parse_args()
    if os.path.exists(ARGS.socket):
        os.unlink(ARGS.socket)
    srv = Server(ARGS.socket, Handler)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
