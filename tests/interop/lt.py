#!/usr/bin/python3
"""libtorrent as a scriptable reference peer for shoal's interop tests.

Run with Debian's interpreter (`/usr/bin/python3`, which has python3-libtorrent 2.0.8), never the
pyenv `python3` on PATH.

Subcommands:
  seed          seed a torrent from existing data until killed
  leech         download a torrent (or magnet) and exit 0 once every piece is checked
  make-torrent  create a .torrent from a file or folder
  check         recheck data against a torrent; exit 0 only when every piece passes

Output contract (one JSON object per line on stdout, flushed at once):
  READY port=N                       the session listens on N (and, for `seed`, the data is checked)
  {"event": "progress", ...}         about every 0.5 s while leeching
  {"event": "done", "bytes": ..., "seconds": ..., ...}   the final summary (leech and check)
  {"event": "error", "message": ...} then a non-zero exit

Every session turns off DHT, LSD, UPnP and NAT-PMP, allows several connections from one IP (all
loopback peers share an address), and by default speaks TCP only (`--utp` turns uTP on) so a peer
that has no uTP costs no fallback delay. Trackers listed in the torrent are dropped unless
`--tracker-ok`; `--tracker URL` adds one at run time.

DHT (for discovery tests on loopback; never the public routers): `--dht` turns libtorrent's DHT
on with its loopback restrictions off, and `--dht-node IP:PORT` (repeatable) puts a node in its
routing table with `add_dht_node` (nodes in `dht_bootstrap_nodes` count as routers and never
enter the table). A DHT session prints `{"event": "dht_announce" | "dht_get_peers",
"info_hash", "from"}` for every announce or lookup it *receives*, so a test can watch what a peer
sends to the DHT; `seed --dht` re-announces every few seconds and prints `{"event":
"dht_announced"}` after each announce it sent got replies. `dht-node` runs a DHT-only session
(no torrent) that prints `READY port=N` and those events until killed. `--log-peers` prints
`{"event": "peer_connected", "addr"}` for every peer connection (with `"direction": "in"` for
one the peer opened; libtorrent's Python binding does not tell the direction of the other
line). `--no-outgoing` makes a session that only accepts connections, so every peer it talks
to found it by some other means (a seeder that dials peers it hears of through PEX would blur
who found whom).
"""

import argparse
import json
import os
import sys
import time

import libtorrent as lt


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def fail(message, code=2):
    emit({"event": "error", "message": message})
    sys.exit(code)


def split_addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        fail(f"bad address {text!r}, expected IP:PORT")
    return host.strip("[]"), int(port)


def parse_setting(text):
    """NAME=VALUE for any libtorrent setting; the value's type is the default's."""
    name, sep, value = text.partition("=")
    defaults = lt.default_settings()
    if not sep or name not in defaults:
        fail(f"bad --setting {text!r}: expected NAME=VALUE with a libtorrent setting name")
    kind = type(defaults[name])
    if kind is bool:
        return name, value.lower() in ("1", "true", "yes")
    try:
        return name, kind(value)
    except ValueError:
        fail(f"bad --setting {text!r}: {name} takes a {kind.__name__}")


def make_session(args):
    host, port = split_addr(args.listen)
    settings = {
        "listen_interfaces": f"{host}:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_incoming_utp": args.utp,
        "enable_outgoing_utp": args.utp,
        "enable_incoming_tcp": True,
        "enable_outgoing_tcp": True,
        "user_agent": "shoal-interop-libtorrent/" + lt.__version__,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification
        | lt.alert.category_t.peer_notification
        | lt.alert.category_t.tracker_notification,
        "upload_rate_limit": args.upload_limit,
        "download_rate_limit": args.download_limit,
        # Seed as fast as the wire allows: no choking of the few peers a test has.
        "unchoke_slots_limit": -1,
        "out_enc_policy": ENC[args.encryption],
        "in_enc_policy": ENC[args.encryption],
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
    }
    if getattr(args, "dht", False):
        settings.update(DHT_SETTINGS)
        settings["alert_mask"] |= (lt.alert.category_t.dht_notification
                                   | lt.alert.category_t.dht_operation_notification
                                   | lt.alert.category_t.connect_notification)
    if getattr(args, "log_peers", False):
        settings["alert_mask"] |= lt.alert.category_t.connect_notification
    if host not in ("0.0.0.0", "::"):
        # Make outgoing connections come from our own address: Transmission drops peers whose
        # source address equals its own.
        settings["outgoing_interfaces"] = host
    if getattr(args, "no_outgoing", False):
        # Accept peers, never dial one: whoever this session talks to found it themselves.
        settings["enable_outgoing_tcp"] = False
        settings["enable_outgoing_utp"] = False
    for item in getattr(args, "setting", []):
        name, value = parse_setting(item)
        settings[name] = value
    ses = lt.session(settings)
    for node in getattr(args, "dht_node", []):
        ses.add_dht_node(split_addr(node))
    if args.upload_limit or args.download_limit:
        # Loopback and private peers sit in the unlimited local class; put everyone in the global
        # class so the limits above really apply.
        everyone = lt.ip_filter()
        everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(everyone)
    return ses


# A DHT on loopback: no public routers, and none of the checks that drop 127.0.0.0/8 nodes,
# several nodes on one IP, or node ids not derived from the IP.
DHT_SETTINGS = {
    "enable_dht": True,
    "dht_bootstrap_nodes": "",
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_prefer_verified_node_ids": False,
    "dht_enforce_node_id": False,
    "dht_ignore_dark_internet": False,
    "dht_read_only": False,
}


ENC = {
    "enabled": lt.enc_policy.enabled,
    "forced": lt.enc_policy.forced,
    "disabled": lt.enc_policy.disabled,
}


def add_params(args, save):
    if getattr(args, "magnet", None):
        params = lt.parse_magnet_uri(args.magnet)
    else:
        info = lt.torrent_info(args.torrent)
        params = lt.add_torrent_params()
        params.ti = info
    params.save_path = save
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return params


def add_torrent(ses, args, save):
    handle = ses.add_torrent(add_params(args, save))
    if not args.tracker_ok and handle.torrent_file() is not None:
        handle.replace_trackers([])
    for url in args.tracker:
        handle.add_tracker({"url": url, "tier": 0})
    return handle


def connect_peers(handle, peers):
    for peer in peers:
        handle.connect_peer(split_addr(peer))


class Alerts:
    """The one place alerts are popped, so no wait loop swallows what another waits for.

    Remembers the TCP listen port, whether the torrent was checked, and the first tracker
    reply; a fatal torrent or file error ends the program.
    """

    def __init__(self, ses):
        self.ses = ses
        self.port = None
        self.checked = False
        self.announced = False
        self.tracker_errors = []
        self.dht_announced = False

    def pump(self, wait_ms=200):
        self.ses.wait_for_alert(wait_ms)
        for a in self.ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert) and a.socket_type == lt.socket_type_t.tcp:
                self.port = a.port
            elif isinstance(a, lt.listen_failed_alert):
                fail(f"listen failed: {a.message()}")
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert,
                                lt.metadata_failed_alert)):
                fail(a.message())
            elif isinstance(a, lt.torrent_checked_alert):
                self.checked = True
            elif isinstance(a, lt.tracker_reply_alert):
                self.announced = True
                emit({"event": "announced", "url": a.url, "peers": a.num_peers})
            elif isinstance(a, (lt.tracker_error_alert, lt.tracker_warning_alert)):
                self.tracker_errors.append(a.message())
                emit({"event": "tracker_error", "message": a.message()})
            elif isinstance(a, lt.tracker_announce_alert):
                emit({"event": "announcing", "url": a.url})
            elif isinstance(a, lt.dht_announce_alert):
                emit({"event": "dht_announce", "info_hash": str(a.info_hash),
                      "from": f"{a.ip}:{a.port}"})
            elif isinstance(a, lt.dht_get_peers_alert):
                emit({"event": "dht_get_peers", "info_hash": str(a.info_hash)})
            elif isinstance(a, lt.dht_reply_alert):
                self.dht_announced = True
                emit({"event": "dht_announced", "peers": a.num_peers})
            elif isinstance(a, lt.peer_connect_alert):
                ip, port = a.endpoint
                emit({"event": "peer_connected", "addr": f"{ip}:{port}"})
            elif isinstance(a, lt.incoming_connection_alert):
                ip, port = a.endpoint
                emit({"event": "peer_connected", "addr": f"{ip}:{port}", "direction": "in"})

    def wait(self, what, condition, timeout):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                fail(f"{what} did not happen within {timeout:.0f}s "
                     f"(tracker errors: {self.tracker_errors[-3:]})")
            self.pump()


def cmd_seed(args):
    ses = make_session(args)
    alerts = Alerts(ses)
    alerts.wait("listening", lambda: alerts.port is not None, 10.0)
    handle = add_torrent(ses, args, args.save)
    # libtorrent checks every torrent added without resume data.
    alerts.wait("data check", lambda: alerts.checked, args.timeout)
    st = handle.status()
    if st.progress < 1.0:
        fail(f"seed: data in {args.save} does not match the torrent "
             f"({st.num_pieces} of {handle.torrent_file().num_pieces()} pieces good)")
    if args.tracker:
        # READY promises that a leecher started now can find us: wait for the first announce.
        alerts.wait("first tracker reply", lambda: alerts.announced, args.timeout)
    print(f"READY port={alerts.port}", flush=True)
    connect_peers(handle, args.peer)
    last_peers = 0.0
    last_dht = 0.0
    seen = None
    while True:
        alerts.pump(500)
        now = time.monotonic()
        if args.dht and now - last_dht > 3.0:
            # Announce early and often: a test waits for its DHT node to hold our address.
            handle.force_dht_announce()
            last_dht = now
        if args.peer and now - last_peers > 5.0:
            # A leecher started after us may not have been listening yet: keep knocking.
            connect_peers(handle, args.peer)
            last_peers = now
        st = handle.status()
        now_seen = (st.total_payload_upload, st.num_peers)
        if now_seen != seen:
            emit({"event": "seeding", "uploaded": st.total_payload_upload, "peers": st.num_peers})
            seen = now_seen


def cmd_leech(args):
    os.makedirs(args.save, exist_ok=True)
    ses = make_session(args)
    alerts = Alerts(ses)
    alerts.wait("listening", lambda: alerts.port is not None, 10.0)
    handle = add_torrent(ses, args, args.save)
    print(f"READY port={alerts.port}", flush=True)
    start = time.monotonic()
    connect_peers(handle, args.peer)
    last_peers = start
    last_report = 0.0
    while True:
        alerts.pump()
        now = time.monotonic()
        st = handle.status()
        if st.has_metadata and st.is_finished and st.progress >= 1.0 \
                and st.state in (lt.torrent_status.seeding, lt.torrent_status.finished):
            break
        if now - last_report >= 0.5:
            emit({"event": "progress", "progress": round(st.progress, 4), "peers": st.num_peers,
                  "downloaded": st.total_payload_download, "state": str(st.state)})
            last_report = now
        if args.peer and now - last_peers > 3.0 and st.num_peers == 0:
            connect_peers(handle, args.peer)
            last_peers = now
        if now - start > args.timeout:
            fail(f"leech: not complete after {args.timeout}s (progress {st.progress:.3f}, "
                 f"{st.num_peers} peers)", code=3)
    seconds = time.monotonic() - start
    st = handle.status()
    handle.flush_cache()
    ses.pause()
    info = handle.torrent_file()
    emit({"event": "done", "bytes": info.total_size(), "seconds": round(seconds, 3),
          "payload_downloaded": st.total_payload_download, "pieces": info.num_pieces(),
          "infohash": str(info.info_hash())})


def cmd_dht_node(args):
    args.dht = True
    args.utp = False
    args.encryption = "enabled"
    args.upload_limit = args.download_limit = 0
    ses = make_session(args)
    alerts = Alerts(ses)
    alerts.wait("listening", lambda: alerts.port is not None, 10.0)
    print(f"READY port={alerts.port}", flush=True)
    last = None
    while True:
        alerts.pump(500)
        nodes = ses.status().dht_nodes
        if nodes != last:
            emit({"event": "dht_nodes", "nodes": nodes})
            last = nodes


def cmd_check(args):
    args.listen = "127.0.0.1:0"
    args.tracker_ok = False
    args.tracker = []
    ses = make_session(args)
    start = time.monotonic()
    alerts = Alerts(ses)
    handle = add_torrent(ses, args, args.save)
    alerts.wait("data check", lambda: alerts.checked, args.timeout)
    st = handle.status()
    info = handle.torrent_file()
    good = st.num_pieces
    emit({"event": "done", "bytes": info.total_size(), "seconds": round(time.monotonic() - start, 3),
          "pieces": info.num_pieces(), "good_pieces": good})
    sys.exit(0 if good == info.num_pieces() else 1)


def cmd_make_torrent(args):
    fs = lt.file_storage()
    lt.add_files(fs, os.path.abspath(args.path))
    if fs.num_files() == 0:
        fail(f"make-torrent: no files under {args.path}")
    flags = 0 if args.v2 else lt.create_torrent.v1_only
    ct = lt.create_torrent(fs, args.piece_size, flags=flags)
    for url in args.tracker:
        ct.add_tracker(url)
    if args.private:
        ct.set_priv(True)
    ct.set_creator("shoal interop lt.py")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(args.path)))
    data = lt.bencode(ct.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    info = lt.torrent_info(args.out)
    emit({"event": "done", "infohash": str(info.info_hash()), "bytes": info.total_size(),
          "pieces": info.num_pieces(), "piece_size": info.piece_length(),
          "magnet": lt.make_magnet_uri(info)})


def session_args(p):
    p.add_argument("--listen", default="127.0.0.1:0", help="IP:PORT to listen on (port 0: any)")
    p.add_argument("--peer", action="append", default=[], help="IP:PORT to connect to (repeatable)")
    p.add_argument("--tracker", action="append", default=[], help="announce URL to add")
    p.add_argument("--tracker-ok", action="store_true", help="keep the torrent's own trackers")
    p.add_argument("--utp", action="store_true", help="enable uTP (off by default)")
    p.add_argument("--encryption", choices=sorted(ENC), default="enabled")
    p.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--download-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds")
    dht_args(p)
    p.add_argument("--log-peers", action="store_true", help="print every peer connection")
    p.add_argument("--no-outgoing", action="store_true", help="never dial peers, only accept")
    p.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                   help="any libtorrent setting, after the ones above (repeatable)")


def dht_args(p):
    p.add_argument("--dht", action="store_true", help="DHT on (loopback nodes only)")
    p.add_argument("--dht-node", action="append", default=[],
                   help="IP:PORT of a DHT node to add to the routing table (repeatable)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    seed = sub.add_parser("seed")
    seed.add_argument("--torrent", required=True)
    seed.add_argument("--save", required=True, help="folder holding the torrent's data")
    session_args(seed)
    leech = sub.add_parser("leech")
    src = leech.add_mutually_exclusive_group(required=True)
    src.add_argument("--torrent")
    src.add_argument("--magnet")
    leech.add_argument("--save", required=True)
    session_args(leech)
    check = sub.add_parser("check")
    check.add_argument("--torrent", required=True)
    check.add_argument("--save", required=True)
    check.add_argument("--utp", action="store_true")
    check.add_argument("--encryption", choices=sorted(ENC), default="enabled")
    check.add_argument("--upload-limit", type=int, default=0)
    check.add_argument("--download-limit", type=int, default=0)
    check.add_argument("--timeout", type=float, default=120.0)
    make = sub.add_parser("make-torrent")
    make.add_argument("path", help="file or folder; the torrent's name is its last component")
    make.add_argument("--out", required=True)
    make.add_argument("--piece-size", type=int, default=16384)
    make.add_argument("--tracker", action="append", default=[])
    make.add_argument("--private", action="store_true")
    make.add_argument("--v2", action="store_true", help="hybrid v1+v2 (default: v1 only)")
    node = sub.add_parser("dht-node", help="a DHT-only node that reports what it receives")
    node.add_argument("--listen", default="127.0.0.1:0")
    node.add_argument("--dht-node", action="append", default=[])
    args = parser.parse_args()
    {"seed": cmd_seed, "leech": cmd_leech, "check": cmd_check, "dht-node": cmd_dht_node,
     "make-torrent": cmd_make_torrent}[args.cmd](args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
