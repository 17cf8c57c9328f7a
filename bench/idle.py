#!/usr/bin/python3
"""Idle-cost benchmark, issue 6 case (d): what 1,000 loaded, idle, seeding torrents cost a daemon.

Run through `bench/idle.sh` (which builds shoal in release mode) or directly with Debian's
`/usr/bin/python3` (standard library only). Steps, for each daemon:

  1. generate --count small torrents (one file of --file-kib KiB each, 16 KiB pieces, no
     trackers) and their complete data (once; kept in bench/out/idle/data);
  2. start the daemon empty (DHT, LSD and PEX off where configurable, peer port on 127.0.0.1),
     let it settle, and sample RSS_0 (VmRSS) and its CPU over --window seconds;
  3. add every torrent through the daemon's own API (shoal: POST /api/v1/torrents;
     Transmission: RPC torrent-add), wait until all of them are seeding (data checked), let it
     settle, then sample VmRSS, VmHWM and CPU over --window seconds.

Figures: per-torrent RSS = (RSS_N - RSS_0) / N in KiB; idle CPU = (utime + stime) over the
window as a share of one core; VmHWM is the peak over the whole life (loading included).
Targets (issue 6): <= 100 KiB per idle torrent and < 1 % of a core. Not a test, not in CI.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
PIECE = 16 * 1024


# ---------------------------------------------------------------------------------------------
# torrents


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(type(v))


def make_set(root, count, size):
    """`count` single-file torrents `idle-NNNN.bin` of `size` bytes each, data in root/data."""
    marker = os.path.join(root, f".complete-{count}-{size}")
    data = os.path.join(root, "data")
    torrents = os.path.join(root, "torrents")
    if not os.path.exists(marker):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(data)
        os.makedirs(torrents)
        for i in range(count):
            name = f"idle-{i:04}.bin"
            payload = hashlib.sha256(b"shoal idle %d" % i).digest() * (size // 32 + 1)
            payload = payload[:size]
            with open(os.path.join(data, name), "wb") as f:
                f.write(payload)
            pieces = b"".join(hashlib.sha1(payload[o:o + PIECE]).digest()
                              for o in range(0, size, PIECE))
            info = {"name": name, "length": size, "piece length": PIECE, "pieces": pieces}
            with open(os.path.join(torrents, f"{i:04}.torrent"), "wb") as f:
                f.write(bencode({"info": info, "created by": "shoal bench/idle.py"}))
        open(marker, "w").close()
    return data, sorted(os.path.join(torrents, t) for t in os.listdir(torrents))


# ---------------------------------------------------------------------------------------------
# processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def measure(pid, window):
    """CPU share of one core over `window` seconds, then VmRSS / VmHWM in KiB."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return {"cpu": (c1 - c0) / (t1 - t0), "rss": status_kib(pid, "VmRSS"),
            "hwm": status_kib(pid, "VmHWM"), "threads": threads(pid)}


def wait_until(what, check, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the daemon exited ({proc.returncode})")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not after {timeout} s")


def http(url, body=None, headers=None, method=None):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


# ---------------------------------------------------------------------------------------------
# daemons: start(dir) -> Popen; add(torrent bytes, data dir); seeding() -> count


class Shoal:
    name = "shoal"

    def __init__(self, binary, out, data):
        self.binary, self.out, self.data = binary, out, data
        self.base = f"http://127.0.0.1:{free_port()}"
        self.token = None

    def start(self):
        state = os.path.join(self.out, "shoal-state")
        shutil.rmtree(state, ignore_errors=True)
        self.log = open(os.path.join(self.out, "shoal.log"), "w")
        self.proc = subprocess.Popen(
            [self.binary, "daemon", "--no-dht", "--state-dir", state,
             "--download-dir", self.data, "--http-addr", self.base[7:],
             "--peer-addr", f"127.0.0.1:{free_port()}"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, RUST_LOG="warn"))
        wait_until("shoal API up", self._fetch_token, 60, self.proc)
        return self.proc

    def _fetch_token(self):
        self.token = json.loads(http(self.base + "/api/v1/token"))["token"]
        return True

    def add(self, metainfo):
        body = json.dumps({"source": {"metainfo": base64.b64encode(metainfo).decode()},
                           "download_dir": self.data}).encode()
        http(self.base + "/api/v1/torrents", body, method="POST",
             headers={"Content-Type": "application/json", "X-Shoal-Token": self.token})

    def seeding(self):
        views = json.loads(http(self.base + "/api/v1/torrents"))
        return sum(1 for v in views if v["state"] == "seeding" and v["left_bytes"] == 0)


class Transmission:
    name = "transmission"

    def __init__(self, out, data):
        self.out, self.data = out, data
        self.rpc = free_port()
        self.url = f"http://127.0.0.1:{self.rpc}/transmission/rpc"
        self.sid = ""

    def start(self):
        conf = os.path.join(self.out, "transmission-conf")
        shutil.rmtree(conf, ignore_errors=True)
        os.makedirs(conf)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from transfer import transmission_settings
        settings = transmission_settings("127.0.0.1", free_port(), self.rpc, self.data)
        settings["cache-size-mb"] = 4
        with open(os.path.join(conf, "settings.json"), "w") as f:
            json.dump(settings, f)
        self.log = open(os.path.join(self.out, "transmission.log"), "w")
        self.proc = subprocess.Popen(["transmission-daemon", "-f", "-g", conf],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_until("transmission RPC up", lambda: self.call("session-get") is not None, 60,
                   self.proc)
        return self.proc

    def call(self, method, arguments=None):
        body = json.dumps({"method": method, "arguments": arguments or {}}).encode()
        for _ in range(2):
            try:
                return json.loads(http(self.url, body, {"X-Transmission-Session-Id": self.sid}))
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise
                self.sid = e.headers["X-Transmission-Session-Id"]
        raise RuntimeError("transmission: no session id")

    def add(self, metainfo):
        r = self.call("torrent-add", {"metainfo": base64.b64encode(metainfo).decode(),
                                      "download-dir": self.data})
        if r.get("result") != "success":
            raise RuntimeError(f"transmission torrent-add: {r}")

    def seeding(self):
        r = self.call("torrent-get", {"fields": ["status", "leftUntilDone"]})
        return sum(1 for t in r["arguments"]["torrents"]
                   if t["status"] == 6 and t["leftUntilDone"] == 0)


def run(daemon, torrents, args):
    proc = daemon.start()
    try:
        time.sleep(args.settle)
        empty = measure(proc.pid, args.window)
        t0 = time.monotonic()
        for path in torrents:
            with open(path, "rb") as f:
                daemon.add(f.read())
        added = time.monotonic() - t0
        wait_until(f"{daemon.name}: all seeding", lambda: daemon.seeding() == len(torrents),
                   args.timeout, proc)
        ready = time.monotonic() - t0
        time.sleep(args.settle)
        loaded = measure(proc.pid, args.window)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    n = len(torrents)
    return {"client": daemon.name, "n": n, "add_s": added, "ready_s": ready,
            "rss0": empty["rss"], "cpu0": empty["cpu"], "rss": loaded["rss"],
            "hwm": loaded["hwm"], "cpu": loaded["cpu"], "threads": loaded["threads"],
            "per_torrent": (loaded["rss"] - empty["rss"]) / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shoal", default=os.path.join(REPO, "target/release/shoal"))
    ap.add_argument("--clients", default="shoal,transmission")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--file-kib", type=int, default=64)
    ap.add_argument("--window", type=float, default=60.0, help="seconds of each CPU sample")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds to wait before sampling")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", default=os.path.join(REPO, "bench/out/idle"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    data, torrents = make_set(os.path.join(args.out, "set"), args.count, args.file_kib * 1024)
    torrents = torrents[:args.count]
    rows = []
    for name in args.clients.split(","):
        if name == "shoal":
            daemon = Shoal(os.path.abspath(args.shoal), args.out, data)
        elif name == "transmission":
            daemon = Transmission(args.out, data)
        else:
            raise SystemExit(f"unknown client {name}")
        r = run(daemon, torrents, args)
        print(json.dumps(r), file=sys.stderr, flush=True)
        rows.append(r)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"\n`{' '.join(sys.argv)}` (load {load}; {args.count} torrents of {args.file_kib} KiB, "
          f"{args.window:.0f} s windows)\n")
    print("| client | RSS empty MiB | RSS loaded MiB | VmHWM MiB | KiB / torrent | idle CPU "
          "(% core) empty | idle CPU (% core) loaded | threads | all seeding after s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['client']} | {r['rss0'] / 1024:.1f} | {r['rss'] / 1024:.1f} | "
              f"{r['hwm'] / 1024:.1f} | {r['per_torrent']:.1f} | {100 * r['cpu0']:.2f} | "
              f"{100 * r['cpu']:.2f} | {r['threads']} | {r['ready_s']:.1f} |")


if __name__ == "__main__":
    main()
