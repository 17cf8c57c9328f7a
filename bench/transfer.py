#!/usr/bin/python3
"""Transfer benchmark: shoal against reference BitTorrent clients on loopback (issues 3 and 6).

Run through `bench/transfer.sh` (which builds shoal in release mode) or directly with Debian's
`/usr/bin/python3` (it imports nothing beyond the standard library; libtorrent runs in
`tests/interop/lt.py`). Cases:

  leech-file  one file of --size MiB, 1 MiB pieces, from a libtorrent seeder, leeched by shoal,
              libtorrent, qBittorrent, aria2 and Transmission
  leech-tree  the same bytes as a tree of 1,000 files
  seed        a libtorrent leecher fed by shoal, libtorrent, rtorrent and aria2 as seeders
  s2s         shoal seeding to shoal against libtorrent seeding to libtorrent

Each (case, client) runs --runs times (default 3); the table shows medians. Figures:
  MB/s        10^6 payload bytes per second of transfer (leech: from the leecher's start, or for
              daemons from the moment the torrent is added, to "complete and verified"; lt.py
              reports its own transfer time, which leaves out Python's start-up; shoal's ends
              at its "done:" line, before the data is synced to disk at exit)
  CPU s/GiB   user + system CPU seconds of the measured side (leecher, or seeder in `seed`),
              per GiB moved; start-up included, and for seeders the transfer only (from /proc);
              shoal as leecher up to its "done:" line (the per-run lines also show its whole
              process, which adds the fsync of the data at exit)
  peak RSS    GNU time's maximum resident set (or VmHWM from /proc for daemons), MiB
  peak anon   highest RssAnon sampled every 50 ms, MiB: compare this for libtorrent-based
              clients, which map files into memory
  ratio       MB/s over the best reference client's MB/s in the same case (shoal: the target);
              "CPU vs lt" is CPU s/GiB over libtorrent's

Everything runs on 127.0.0.x (Transmission inside a network namespace at 10.99.0.x, as it
never dials loopback peers from a tracker). Data and logs go to bench/out/transfer (git-ignored).
Page cache warm: the seed data is read once before the first run. Not a test, not run in CI.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LT = os.path.join(REPO, "tests/interop/lt.py")
TRACKER = os.path.join(REPO, "tests/interop/peer_tracker.py")
PY = "/usr/bin/python3"
MiB = 1 << 20
PIECE = MiB
TICK = os.sysconf("SC_CLK_TCK")

LEECHERS = ["shoal", "libtorrent", "qbittorrent", "aria2", "transmission"]
SEEDERS = ["shoal", "libtorrent", "rtorrent", "aria2"]


# ---------------------------------------------------------------------------------------------
# processes


def free_port(ip="127.0.0.1"):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """utime + stime of pid and its reaped children, seconds; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / TICK
    except (OSError, IndexError):
        return None


def proc_status(pid, key):
    """A kB figure from /proc/PID/status in MiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Proc:
    """A started program, optionally under `/usr/bin/time -v`, with its RssAnon sampled."""

    def __init__(self, name, argv, log_dir, timed=False, netns=None, env=None):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.time_path = os.path.join(log_dir, f"{name}.time") if timed else None
        prefix = ["ip", "netns", "exec", netns] if netns else []
        if timed:
            prefix += ["/usr/bin/time", "-v", "-o", self.time_path]
        self.argv = prefix + argv
        self.log = open(self.log_path, "w")
        self.popen = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)
        self.started = time.monotonic()
        self.peak_anon = 0.0
        self.target = None
        self._stop = False
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def pid(self):
        """The client's pid (the child of `time`, when timed)."""
        if self.target is None:
            if self.time_path:
                kids = children(self.popen.pid)
                self.target = kids[0] if kids else None
            else:
                self.target = self.popen.pid
        return self.target

    def _sample(self):
        while not self._stop and self.popen.poll() is None:
            pid = self.pid()
            if pid:
                anon = proc_status(pid, "RssAnon")
                if anon:
                    self.peak_anon = max(self.peak_anon, anon)
            time.sleep(0.05)

    def wait_line(self, prefix, timeout, poll=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                for line in f:
                    if line.startswith(prefix) or prefix in line:
                        return line.strip()
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.popen.returncode}:\n{self.tail()}")
            time.sleep(poll)
        raise RuntimeError(f"{self.name}: no {prefix!r} after {timeout}s:\n{self.tail()}")

    def wait_line_seconds(self, prefix, timeout):
        """Seconds from the start until a line with `prefix` appeared (polled every 10 ms)."""
        self.wait_line(prefix, timeout, poll=0.01)
        return time.monotonic() - self.started

    def wait_exit(self, timeout):
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.name} still running after {timeout}s:\n{self.tail()}")
        self._stop = True
        if rc != 0:
            raise RuntimeError(f"{self.name} exited {rc}:\n{self.tail()}")
        return time.monotonic() - self.started

    def gnu_time(self):
        """(cpu seconds, max RSS MiB) from `time -v`."""
        fields = {}
        with open(self.time_path) as f:
            for line in f:
                key, _, value = line.strip().rpartition(": ")
                fields[key] = value
        cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
        return cpu, int(fields["Maximum resident set size (kbytes)"]) / 1024

    def tail(self, n=25):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        self._stop = True
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


def wait_port(ip, port, timeout, netns=None, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if netns:
            ok = subprocess.run(["ip", "netns", "exec", netns, "bash", "-c",
                                 f"exec 3<>/dev/tcp/{ip}/{port}"],
                                capture_output=True).returncode == 0
        else:
            with socket.socket() as s:
                ok = s.connect_ex((ip, port)) == 0
        if ok:
            return
        if proc and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {ip}:{port}")


def wait_file_line(path, text, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return
        except OSError:
            pass
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: no {text!r} in {path} after {timeout}s")


def wait_cpu_idle(pid, quiet=0.6, timeout=120):
    """Waits until pid has used < 5% CPU over `quiet` seconds (a seeder done checking)."""
    deadline = time.monotonic() + timeout
    last = proc_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = proc_cpu(pid)
        if now is None or last is None or now - last < 0.05 * quiet:
            return
        last = now


def curl(args, netns=None):
    prefix = ["ip", "netns", "exec", netns] if netns else []
    out = subprocess.run(prefix + ["curl", "-sS", "--fail", "--max-time", "10"] + args,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"curl {args}: {out.stderr}")
    return out.stdout


class Netns:
    def __init__(self, hosts):
        self.name = f"shoal-bench-{os.getpid()}"
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.ips = [f"10.99.0.{i + 1}" for i in range(hosts)]
        for ip in self.ips:
            subprocess.run(["ip", "-n", self.name, "addr", "add", f"{ip}/32", "dev", "lo"],
                           check=True)

    def close(self):
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)


# ---------------------------------------------------------------------------------------------
# data


def make_data(root, size, tree):
    """A single file `big.bin` or a folder `tree/` of 1,000 files totalling `size` bytes."""
    marker = os.path.join(root, ".complete")
    if os.path.exists(marker):
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    rng = random.Random(7)
    if not tree:
        with open(os.path.join(root, "big.bin"), "wb") as f:
            left = size
            while left:
                n = min(left, 16 * MiB)
                f.write(rng.randbytes(n))
                left -= n
    else:
        count = 1000
        each, extra = divmod(size, count)
        for i in range(count):
            folder = os.path.join(root, "tree", f"d{i // 100:02}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"f{i:04}.bin"), "wb") as f:
                f.write(rng.randbytes(each + (extra if i == count - 1 else 0)))
    open(marker, "w").close()


def make_torrent(data_root, name, out):
    if os.path.exists(out):
        return
    subprocess.run([PY, LT, "make-torrent", os.path.join(data_root, name), "--out", out,
                    "--piece-size", str(PIECE)], check=True, capture_output=True)


def warm(path):
    subprocess.run(["bash", "-c", f"find {path} -type f -print0 | xargs -0 cat > /dev/null"],
                   check=True)


# ---------------------------------------------------------------------------------------------
# clients


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = args.out
        # "shoal" and each --variant LABEL=BIN ("shoal-LABEL"): compared in the same run.
        self.bins = {"shoal": args.shoal}
        for v in args.variant:
            label, _, path = v.partition("=")
            self.bins[f"shoal-{label}"] = os.path.abspath(path)
        self.seq = 0

    def run_dir(self, label):
        self.seq += 1
        d = os.path.join(self.out, "runs", f"{self.seq:03}-{label}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    # --- seeders: return (Proc, ip, port) once serving -------------------------------------

    def seed(self, kind, torrent, data, ip, log_dir, netns=None):
        port = free_port(ip) if not netns else 40000 + random.randrange(10000)
        if kind == "libtorrent":
            p = Proc("seed-lt", [PY, LT, "seed", "--torrent", torrent, "--save", data,
                                 "--listen", f"{ip}:{port}", "--timeout", "600"],
                     log_dir, netns=netns)
            p.wait_line("READY", 300)
        elif kind in self.bins:
            state = os.path.join(log_dir, "seed-state")
            p = Proc("seed-shoal", [self.bins[kind], "seed", torrent, data, "--listen", f"{ip}:{port}",
                                    "--no-dht", "--state-dir", state],
                     log_dir, netns=netns, env=dict(os.environ, RUST_LOG="info"))
            p.wait_line("seeding ", 300)
        elif kind == "aria2":
            p = Proc("seed-aria2", ["aria2c", f"--dir={data}", f"--listen-port={port}",
                                    f"--interface={ip}"] + ARIA2_FLAGS +
                     ["--bt-seed-unverified=true", "--seed-ratio=0.0", torrent],
                     log_dir, netns=netns)
            wait_port(ip, port, 60, netns, p)
        elif kind == "rtorrent":
            p = self.rtorrent_seed(torrent, data, ip, port, log_dir)
            wait_port(ip, port, 60, netns, p)
            # It hashes the data at a gentle pace (CPU looks idle meanwhile): wait for the line
            # it logs once the check is done.
            wait_file_line(os.path.join(log_dir, "rtorrent-info.log"),
                           "Setting new baseline on start", 600, p)
        else:
            raise ValueError(kind)
        return p, ip, port

    def rtorrent_seed(self, torrent, data, ip, port, log_dir):
        session = os.path.join(log_dir, "rtorrent-session")
        os.makedirs(session, exist_ok=True)
        rc = os.path.join(log_dir, "rtorrent.rc")
        # rtorrent refuses a torrent without a tracker ("Could not find any trackers"): give it a
        # copy with an unreachable one (outside the info dict, so the infohash is the same).
        with open(torrent, "rb") as f:
            raw = f.read()
        url = f"http://{ip}:9/announce".encode()
        torrent = os.path.join(log_dir, "rtorrent.torrent")
        with open(torrent, "wb") as f:
            f.write(b"d8:announce%d:%s" % (len(url), url) + raw[1:])
        with open(rc, "w") as f:
            f.write("\n".join([
                f"directory.default.set = {data}",
                f"session.path.set = {session}",
                f"network.port_range.set = {port}-{port}",
                "network.port_random.set = no",
                f"network.bind_address.set = {ip}",
                "dht.mode.set = disable",
                "protocol.pex.set = no",
                "trackers.use_udp.set = no",
                "protocol.encryption.set = allow_incoming,try_outgoing,enable_retry",
                "throttle.max_uploads.set = 100",
                "throttle.max_uploads.global.set = 100",
                "throttle.global_up.max_rate.set = 0",
                "system.daemon.set = true",
                f'log.open_file = "info", {os.path.join(log_dir, "rtorrent-info.log")}',
                'log.add_output = "debug", "info"',
                f"load.start_verbose = {torrent}",
                "",
            ]))
        return Proc("seed-rtorrent", ["rtorrent", "-n", "-o", f"import={rc}"], log_dir)

    # --- leechers: return dict of figures ---------------------------------------------------

    def leech(self, kind, torrent, size, seeder, out, log_dir, netns=None, ip="127.0.0.2"):
        _, sip, sport = seeder
        peer = f"{sip}:{sport}"
        port = free_port(ip) if not netns else 40000 + random.randrange(10000)
        if kind in self.bins:
            state = os.path.join(log_dir, "state")
            p = Proc("leech-shoal", [self.bins[kind], "download", torrent, "-o", out, "--peer", peer,
                                     "--listen", f"{ip}:{port}", "--no-dht", "--state-dir", state],
                     log_dir, timed=True, netns=netns, env=dict(os.environ, RUST_LOG="warn"))
            # Until it says "done:" (complete and verified). Its exit then syncs the data to
            # disk (fsync, so a crash cannot lose what the resume file calls verified): the
            # kernel's writeback work runs in shoal's process there, while the other clients
            # leave it to the kernel's flusher threads. So time and CPU stop at "done:"; the
            # whole process's CPU is kept as cpu_total.
            seconds = p.wait_line_seconds("done: ", self.args.timeout)
            cpu_done = proc_cpu(p.pid())
            p.wait_exit(self.args.timeout)
            cpu, rss = p.gnu_time()
            r = figures(size, seconds, cpu if cpu_done is None else cpu_done, rss, p.peak_anon)
            r["cpu_total_per_gib"] = cpu / (size / 2**30)
            return r
        if kind == "libtorrent":
            p = Proc("leech-lt", [PY, LT, "leech", "--torrent", torrent, "--save", out,
                                  "--peer", peer, "--listen", f"{ip}:{port}",
                                  "--timeout", str(self.args.timeout)] + LT_PLAIN,
                     log_dir, timed=True, netns=netns)
            p.wait_exit(self.args.timeout + 30)
            done = lt_done(p)
            cpu, rss = p.gnu_time()
            return figures(size, done["seconds"], cpu, rss, p.peak_anon)
        if kind == "aria2":
            tracker = self.peer_tracker(peer, ip, log_dir, netns)
            try:
                p = Proc("leech-aria2", ["aria2c", f"--dir={out}", f"--listen-port={port}",
                                         f"--interface={ip}"] + ARIA2_FLAGS +
                         ["--seed-time=0", f"--bt-tracker={tracker[1]}", torrent],
                         log_dir, timed=True, netns=netns)
                seconds = p.wait_exit(self.args.timeout)
            finally:
                tracker[0].stop()
            cpu, rss = p.gnu_time()
            return figures(size, seconds, cpu, rss, p.peak_anon)
        if kind == "qbittorrent":
            return self.qbittorrent_leech(torrent, size, peer, out, ip, port, log_dir)
        if kind == "transmission":
            return self.transmission_leech(torrent, size, peer, out, ip, port, log_dir, netns)
        raise ValueError(kind)

    def peer_tracker(self, peer, ip, log_dir, netns):
        tport = free_port(ip) if not netns else 30000 + random.randrange(10000)
        t = Proc("tracker", [PY, TRACKER, "--listen", f"{ip}:{tport}", "--peer", peer],
                 log_dir, netns=netns)
        t.wait_line("READY", 20)
        return t, f"http://{ip}:{tport}/announce"

    def qbittorrent_leech(self, torrent, size, peer, out, ip, port, log_dir):
        webui = free_port()
        profile = os.path.join(log_dir, "qbt")
        conf_dir = os.path.join(profile, "qBittorrent/config")
        os.makedirs(conf_dir)
        with open(os.path.join(conf_dir, "qBittorrent.conf"), "w") as f:
            f.write(QBT_CONF.format(port=port, ip=ip, save=out, webui=webui))
        p = Proc("leech-qbt", ["qbittorrent-nox", f"--profile={profile}"], log_dir)
        api = f"http://127.0.0.1:{webui}/api/v2"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    curl([f"{api}/app/version"])
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            cpu0 = proc_cpu(p.pid())
            start = time.monotonic()
            curl(["-F", f"torrents=@{torrent}", "-F", f"savepath={out}", f"{api}/torrents/add"])
            last_peers = 0.0
            while True:
                info = json.loads(curl([f"{api}/torrents/info"]) or "[]")
                t = info[0] if info else None
                if t and t["progress"] == 1.0 and t["state"] in (
                        "uploading", "stalledUP", "queuedUP", "forcedUP", "pausedUP"):
                    break
                now = time.monotonic()
                if t and t["num_seeds"] == 0 and now - last_peers > 2.0:
                    curl(["--data-urlencode", f"hashes={t['hash']}",
                          "--data-urlencode", f"peers={peer}", f"{api}/torrents/addPeers"])
                    last_peers = now
                if now - start > self.args.timeout:
                    raise RuntimeError(f"qbittorrent not done: {t}")
                time.sleep(0.05)
            seconds = time.monotonic() - start
            cpu = proc_cpu(p.pid()) - cpu0
            rss = proc_status(p.pid(), "VmHWM")
            return figures(size, seconds, cpu, rss, p.peak_anon)
        finally:
            p.stop()

    def transmission_leech(self, torrent, size, peer, out, ip, port, log_dir, netns):
        rpc = 20000 + random.randrange(10000)
        config = os.path.join(log_dir, "transmission")
        os.makedirs(config)
        with open(os.path.join(config, "settings.json"), "w") as f:
            json.dump(transmission_settings(ip, port, rpc, out), f)
        tracker = self.peer_tracker(peer, ip, log_dir, netns)
        p = Proc("leech-transmission", ["transmission-daemon", "-f", "-g", config], log_dir,
                 netns=netns)

        def remote(*args):
            r = subprocess.run(["ip", "netns", "exec", netns, "transmission-remote",
                                f"127.0.0.1:{rpc}"] + list(args), capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"transmission-remote {args}: {r.stdout}{r.stderr}")
            return r.stdout

        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    remote("-l")
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            cpu0 = proc_cpu(p.pid())
            start = time.monotonic()
            remote("-a", torrent, "-w", out)
            remote("-t", "all", "--tracker-add", tracker[1])
            while True:
                info = remote("-t", "all", "-i")
                fields = {k.strip(): v.strip() for k, _, v in
                          (l.partition(": ") for l in info.splitlines())}
                if fields.get("Percent Done") == "100%" and fields.get("State") in (
                        "Seeding", "Idle", "Finished"):
                    break
                if time.monotonic() - start > self.args.timeout:
                    raise RuntimeError(f"transmission not done: {fields}")
                time.sleep(0.1)
            seconds = time.monotonic() - start
            cpu = proc_cpu(p.pid()) - cpu0
            rss = proc_status(p.pid(), "VmHWM")
            return figures(size, seconds, cpu, rss, p.peak_anon)
        finally:
            p.stop()
            tracker[0].stop()


# Leechers open with the plain BitTorrent handshake where they can be told to (libtorrent,
# qBittorrent, Transmission): the figures are about moving data, not negotiating MSE/PE, which
# shoal does not speak (a leecher that tries MSE first loses about 1 s on the retry) and which
# libtorrent otherwise turns into RC4 on every byte between two libtorrents. aria2 always tries
# MSE first; its seeder here (libtorrent, "enabled") accepts it.
LT_PLAIN = ["--encryption", "disabled"]

ARIA2_FLAGS = [
    "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
    "--enable-peer-exchange=false", "--bt-require-crypto=false", "--disable-ipv6=true",
    "--file-allocation=none", "--summary-interval=0", "--console-log-level=notice",
    "--bt-exclude-tracker=*", "--follow-torrent=mem", "--allow-overwrite=true",
    "--auto-file-renaming=false", "--bt-max-peers=0",
]

QBT_CONF = """[LegalNotice]
Accepted=true

[BitTorrent]
Session\\Port={port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress={ip}
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\MultiConnectionsPerIp=true
Session\\Encryption=2
Session\\QueueingSystemEnabled=false
Session\\GlobalMaxRatio=-1
Session\\DefaultSavePath={save}
Session\\TempPathEnabled=false
Session\\AddExtensionToIncompleteFiles=false
Session\\BTProtocol=TCP
Session\\TorrentContentLayout=Original
Session\\IgnoreLimitsOnLAN=true

[Preferences]
Connection\\PortRangeMin={port}
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
General\\Locale=en
WebUI\\Enabled=true
WebUI\\Address=127.0.0.1
WebUI\\Port={webui}
WebUI\\LocalHostAuth=false
WebUI\\CSRFProtection=false
WebUI\\HostHeaderValidation=false
WebUI\\UseUPnP=false

[Network]
PortForwardingEnabled=false
"""


def transmission_settings(ip, port, rpc, out):
    return {
        "bind-address-ipv4": ip, "bind-address-ipv6": "::1", "peer-port": port,
        "peer-port-random-on-start": False, "port-forwarding-enabled": False,
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
        "encryption": 0, "rpc-enabled": True, "rpc-bind-address": "127.0.0.1", "rpc-port": rpc,
        "rpc-authentication-required": False, "rpc-whitelist-enabled": True,
        "rpc-whitelist": "127.0.0.1", "rpc-host-whitelist-enabled": False,
        "download-dir": out, "incomplete-dir-enabled": False, "rename-partial-files": False,
        "start-added-torrents": True, "speed-limit-up-enabled": False,
        "speed-limit-down-enabled": False, "alt-speed-enabled": False,
        "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
        "download-queue-enabled": False, "seed-queue-enabled": False,
        "queue-stalled-enabled": False, "watch-dir-enabled": False,
        "blocklist-enabled": False, "message-level": 1, "cache-size-mb": 4,
    }


def lt_done(p):
    with open(p.log_path) as f:
        for line in f:
            if line.startswith("{"):
                obj = json.loads(line)
                if obj.get("event") == "done":
                    return obj
    raise RuntimeError(f"{p.name}: no done line:\n{p.tail()}")


def figures(size, seconds, cpu, rss, anon):
    return {"mbps": size / seconds / 1e6, "seconds": seconds, "cpu_per_gib": cpu / (size / 2**30),
            "rss": rss, "anon": anon}


# ---------------------------------------------------------------------------------------------
# cases


def check_tree(reference, copy):
    """Same file names and sizes (every client verified the piece hashes already)."""
    def listing(root):
        out = {}
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                out[os.path.relpath(path, root)] = os.path.getsize(path)
        return out
    a, b = listing(reference), listing(copy)
    if a != b:
        missing = sorted(set(a) ^ set(b))[:5]
        raise RuntimeError(f"download differs from the source under {copy}: {missing}")


def leech_case(bench, name, data_root, payload, torrent, size, clients, runs):
    results = {c: [] for c in clients}
    log = bench.run_dir(f"{name}-seeder")
    seeder = bench.seed("libtorrent", torrent, data_root, "127.0.0.1", log)
    try:
        for run in range(runs):
            for client in clients:
                if client == "transmission":
                    continue
                d = bench.run_dir(f"{name}-{client}")
                out = os.path.join(d, "download")
                os.makedirs(out)
                r = bench.leech(client, torrent, size, seeder, out, d)
                check_tree(os.path.join(data_root, payload), os.path.join(out, payload))
                shutil.rmtree(out)
                report_run(name, client, run, r)
                results[client].append(r)
    finally:
        seeder[0].stop()
    if "transmission" in clients:
        ns = Netns(2)
        try:
            log = bench.run_dir(f"{name}-tr-seeder")
            seeder = bench.seed("libtorrent", torrent, data_root, ns.ips[0], log, netns=ns.name)
            try:
                for run in range(runs):
                    d = bench.run_dir(f"{name}-transmission")
                    out = os.path.join(d, "download")
                    os.makedirs(out)
                    r = bench.leech("transmission", torrent, size, seeder, out, d,
                                    netns=ns.name, ip=ns.ips[1])
                    check_tree(os.path.join(data_root, payload), os.path.join(out, payload))
                    shutil.rmtree(out)
                    report_run(name, "transmission", run, r)
                    results["transmission"].append(r)
            finally:
                seeder[0].stop()
        finally:
            ns.close()
    return results


def seed_case(bench, data_root, payload, torrent, size, clients, runs):
    """Seeder side measured: CPU from /proc over the transfer, throughput from the leecher."""
    results = {c: [] for c in clients}
    for run in range(runs):
        for client in clients:
            d = bench.run_dir(f"seed-{client}")
            ip = "127.0.0.5" if client == "rtorrent" else "127.0.0.1"
            seeder = bench.seed(client, torrent, data_root, ip, d)
            try:
                pid = seeder[0].pid()
                wait_cpu_idle(pid, quiet=0.3)
                cpu0 = proc_cpu(pid)
                seeder[0].peak_anon = 0.0
                out = os.path.join(d, "download")
                os.makedirs(out)
                listen = f"127.0.0.2:{free_port('127.0.0.2')}"
                leech = Proc("leech-lt", [PY, LT, "leech", "--torrent", torrent, "--save", out,
                                          "--peer", f"{seeder[1]}:{seeder[2]}", "--listen", listen,
                                          "--timeout", str(bench.args.timeout)] + LT_PLAIN
                             + [f"--setting={x}" for x in bench.args.leecher_setting], d,
                             timed=True)
                leech.wait_exit(bench.args.timeout + 30)
                cpu = proc_cpu(pid) - cpu0
                rss = proc_status(pid, "VmHWM")
                done = lt_done(leech)
                check_tree(os.path.join(data_root, payload), os.path.join(out, payload))
                shutil.rmtree(out)
                r = figures(size, done["seconds"], cpu, rss, seeder[0].peak_anon)
                # What the seeder's sending pattern costs the other side.
                r["leecher_cpu_per_gib"] = leech.gnu_time()[0] / (size / 2**30)
            finally:
                seeder[0].stop()
            report_run("seed", client, run, r)
            results[client].append(r)
    return results


def s2s_case(bench, data_root, payload, torrent, size, runs):
    results = {c: [] for c in list(bench.bins) + ["libtorrent"]}
    for run in range(runs):
        for client in results:
            d = bench.run_dir(f"s2s-{client}")
            seeder = bench.seed(client, torrent, data_root, "127.0.0.1", d)
            try:
                out = os.path.join(d, "download")
                os.makedirs(out)
                r = bench.leech(client, torrent, size, seeder, out, d)
                check_tree(os.path.join(data_root, payload), os.path.join(out, payload))
                shutil.rmtree(out)
            finally:
                seeder[0].stop()
            report_run("s2s", client, run, r)
            results[client].append(r)
    return results


def report_run(case, client, run, r):
    print(f"  {case:<10} {client:<13} run {run + 1}: {r['mbps']:7.1f} MB/s  "
          f"{r['cpu_per_gib']:5.2f} CPU s/GiB  RSS {r['rss']:6.1f} MiB  anon {r['anon']:6.1f} MiB"
          + (f" (whole process {r['cpu_total_per_gib']:.2f})" if "cpu_total_per_gib" in r else "")
          + (f" (leecher {r['leecher_cpu_per_gib']:.2f})" if "leecher_cpu_per_gib" in r else "")
          + f"  load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)


def table(title, results, measured):
    med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for c, rs in results.items() if rs}
    refs = [c for c in med if not c.startswith("shoal")]
    best = max((med[c]["mbps"] for c in refs), default=None)
    lt = med.get("libtorrent", {}).get("cpu_per_gib")
    lines = [f"### {title}", "",
             f"| {measured} | MB/s | CPU s/GiB | peak RSS MiB | peak anon MiB | MB/s vs best ref "
             f"| CPU vs lt | runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c, m in sorted(med.items(), key=lambda kv: -kv[1]["mbps"]):
        ratio = f"{m['mbps'] / best:.2f}" if best else "-"
        cpu_ratio = f"{m['cpu_per_gib'] / lt:.2f}" if lt else "-"
        lines.append(f"| {c} | {m['mbps']:.0f} | {m['cpu_per_gib']:.2f} | {m['rss']:.0f} "
                     f"| {m['anon']:.0f} | {ratio} | {cpu_ratio} | {len(results[c])} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shoal", required=True, help="release `shoal` binary")
    parser.add_argument("--out", default=os.path.join(REPO, "bench/out/transfer"))
    parser.add_argument("--size", type=int, default=1024, help="MiB of payload (default 1024)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="256 MiB, 1 run")
    parser.add_argument("--cases", default="leech-file,leech-tree,seed,s2s")
    parser.add_argument("--leechers", default=",".join(LEECHERS))
    parser.add_argument("--seeders", default=",".join(SEEDERS))
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=BIN",
                        help="another shoal binary, run as client shoal-LABEL wherever shoal runs")
    parser.add_argument("--leecher-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a libtorrent setting for the seed case's leecher, the same for "
                             "every seeder (e.g. max_queued_disk_bytes=16777216)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per transfer")
    args = parser.parse_args()
    if args.quick:
        args.size, args.runs = 256, 1
    size = args.size * MiB
    cases = args.cases.split(",")
    variants = [f"shoal-{v.partition('=')[0]}" for v in args.variant]
    leechers = [c for c in args.leechers.split(",") if c]
    seeders = [c for c in args.seeders.split(",") if c]
    if "shoal" in leechers:
        leechers[leechers.index("shoal") + 1:0] = variants
    if "shoal" in seeders:
        seeders[seeders.index("shoal") + 1:0] = variants
    for c in list(leechers) + list(seeders):
        tool = {"aria2": "aria2c", "qbittorrent": "qbittorrent-nox",
                "transmission": "transmission-daemon", "rtorrent": "rtorrent"}.get(c)
        if tool and not shutil.which(tool):
            print(f"missing {tool}: {c} left out", file=sys.stderr)
            leechers = [x for x in leechers if x != c]
            seeders = [x for x in seeders if x != c]
    os.makedirs(args.out, exist_ok=True)
    bench = Bench(args)
    single = os.path.join(args.out, f"data-file-{args.size}")
    tree = os.path.join(args.out, f"data-tree-{args.size}")
    report = [f"## shoal transfer benchmark: {args.size} MiB, 1 MiB pieces, loopback, "
              f"median of {args.runs}", "",
              f"Command: `{' '.join(sys.argv)}`", "",
              f"Load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", ""]
    if any(c in cases for c in ("leech-file", "seed", "s2s")):
        make_data(single, size, tree=False)
        make_torrent(single, "big.bin", single + ".torrent")
        warm(single)
    if "leech-file" in cases:
        r = leech_case(bench, "leech-file", single, "big.bin", single + ".torrent", size,
                       leechers, args.runs)
        report.append(table("(a) leech: single file from a libtorrent seeder", r, "leecher"))
    if "leech-tree" in cases:
        make_data(tree, size, tree=True)
        make_torrent(tree, "tree", tree + ".torrent")
        warm(tree)
        r = leech_case(bench, "leech-tree", tree, "tree", tree + ".torrent", size, leechers,
                       args.runs)
        report.append(table("(a) leech: 1,000-file tree from a libtorrent seeder", r, "leecher"))
    if "seed" in cases:
        warm(single)
        r = seed_case(bench, single, "big.bin", single + ".torrent", size, seeders, args.runs)
        report.append(table("(b) seed: to a libtorrent leecher (seeder's CPU and memory)", r,
                            "seeder"))
    if "s2s" in cases:
        warm(single)
        r = s2s_case(bench, single, "big.bin", single + ".torrent", size, args.runs)
        report.append(table("(c) same client on both ends (leecher's figures)", r, "pair"))
    report.append(f"Load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    text = "\n".join(report)
    print(text)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
