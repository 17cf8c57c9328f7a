#!/usr/bin/python3
"""A fixed-answer HTTP tracker: tells every announcer about the peers given on its command line.

Some reference clients cannot be told "connect to IP:PORT" (aria2c has no such option, and
Transmission's RPC has no add-peer call), so the harness hands them this tracker instead. It
answers every `/announce` (any infohash) with a compact (BEP 23) list of the `--peer` addresses
plus everyone who announced before (so two clients can find each other through it too), with
`interval` 5 s. It binds to `--listen IP:PORT` (port 0: any), prints `READY port=N`, and logs one
line per announce to stdout.

Run it with `/usr/bin/python3` (stdlib only).
"""

import argparse
import http.server
import ipaddress
import socket
import struct
import sys
import threading
import urllib.parse

PEERS = []
LOCK = threading.Lock()


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, str):
        return bencode(value.encode())
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(value))


def compact(peers):
    out = b""
    for ip, port in peers:
        out += ipaddress.IPv4Address(ip).packed + struct.pack(">H", port)
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/announce":
            self.send_error(404)
            return
        query = urllib.parse.parse_qs(url.query)
        announcer = None
        if "port" in query:
            try:
                announcer = (self.client_address[0], int(query["port"][0]))
            except ValueError:
                announcer = None
        with LOCK:
            answer = [p for p in PEERS if p != announcer]
            if announcer and announcer not in PEERS and query.get("event", [""])[0] != "stopped":
                PEERS.append(announcer)
        body = bencode({"interval": 5, "min interval": 5, "complete": len(answer),
                        "incomplete": 0, "peers": compact(answer)})
        print(f"announce from {announcer} event={query.get('event', [''])[0]} "
              f"-> {answer}", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--peer", action="append", default=[], help="IPv4:PORT (repeatable)")
    args = parser.parse_args()
    for text in args.peer:
        host, _, port = text.rpartition(":")
        PEERS.append((host, int(port)))
    host, _, port = args.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    print(f"READY port={server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
