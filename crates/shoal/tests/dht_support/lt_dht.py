"""A libtorrent DHT node on 127.0.0.1 driven over stdin/stdout by the shoal DHT interop tests.

Usage: lt_dht.py PORT NODE_HOST:PORT  (the node is added with add_dht_node)
Prints `ready PORT` once listening. Commands, one a line:
  announce HEX        -> adds the torrent (magnet), which libtorrent announces on the DHT
                         with its listen port; prints `announced PORT`
  get_peers HEX       -> dht_get_peers; prints `peers ip:port ...` when the lookup ends, then `done`
  nodes               -> prints `nodes N` (routing table size)
  quit
Only loopback addresses are used; LSD, UPnP and NAT-PMP are off.
"""
import os
import sys
import tempfile
import time

import libtorrent as lt

DEBUG = os.environ.get("LT_DHT_LOG") == "1"


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    port = int(sys.argv[1])
    boot = sys.argv[2]
    host, bport = boot.rsplit(":", 1)
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # Not a router: libtorrent keeps router nodes out of its routing table.
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        "dht_read_only": False,
        "alert_mask": (lt.alert.category_t.dht_log_notification if DEBUG else 0)
        | lt.alert.category_t.dht_notification
        | lt.alert.category_t.dht_operation_notification
        | lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
    }
    ses = lt.session(settings)
    ses.add_dht_node((host, int(bport)))
    out("ready %d" % ses.listen_port())
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "nodes":
            out("nodes %d" % ses.status().dht_nodes)
        elif words[0] == "announce":
            # The Python binding cannot build dht_announce's flags, so add the torrent as a
            # magnet: libtorrent then announces it on the DHT with its own listen port.
            params = lt.add_torrent_params()
            params.info_hash = lt.sha1_hash(bytes.fromhex(words[1]))
            params.save_path = tempfile.mkdtemp(prefix="lt_dht_")
            params.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
            handle = ses.add_torrent(params)
            handle.force_dht_announce()
            out("announced %d" % ses.listen_port())
        elif words[0] == "get_peers":
            ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(words[1])))
            deadline = time.time() + 30
            finished = False
            while time.time() < deadline and not finished:
                ses.wait_for_alert(200)
                for alert in ses.pop_alerts():
                    if DEBUG:
                        sys.stderr.write("lt %d: %s\n" % (port, alert.message()[:300]))
                    if isinstance(alert, lt.dht_get_peers_reply_alert):
                        peers = ["%s:%d" % (ip, p) for ip, p in alert.peers()]
                        out("peers " + " ".join(peers))
                        finished = True
            out("done")
    ses.pause()


main()
