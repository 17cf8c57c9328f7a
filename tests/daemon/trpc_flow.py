"""Drives a shoal daemon with the transmission-rpc library: add, list, stop, start, change wanted
files, session totals, a magnet link waiting for its metadata, remove with data.
Usage: trpc_flow.py PORT TORRENT_FILE DOWNLOAD_DIR. Prints 'flow ok'."""
import sys
import time

from transmission_rpc import Client

port, torrent_file, download_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = Client(host="127.0.0.1", port=port, timeout=20)
assert c.get_session().rpc_version >= 15, c.get_session().rpc_version

with open(torrent_file, "rb") as f:
    added = c.add_torrent(f, download_dir=download_dir, paused=True)
torrents = c.get_torrents()
assert [t.name for t in torrents] == ["python-pack"], torrents
tid = added.id
assert c.get_torrent(tid).status == "stopped", c.get_torrent(tid).status

c.start_torrent(tid)
assert c.get_torrent(tid).status != "stopped"
c.stop_torrent(tid)
assert c.get_torrent(tid).status == "stopped"

c.change_torrent(tid, files_unwanted=[2], priority_high=[0])
files = c.get_torrent(tid).get_files()
assert [f.selected for f in files] == [True, True, False], files
assert files[0].priority == 1, files  # high

stats = c.session_stats()
assert stats.torrent_count == 1, stats
assert stats.current_stats.files_added == 1, stats.current_stats.fields
assert stats.current_stats.session_count == 1, stats.current_stats.fields
assert stats.cumulative_stats.session_count >= 1, stats.cumulative_stats.fields

# A magnet link no peer serves yet: listed at once, named from dn, metadata not there yet.
link = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=waiting-for-metadata"
m = c.add_torrent(link)
t = c.get_torrent(m.id)
assert t.name == "waiting-for-metadata", t.name
assert t.metadata_percent_complete < 1.0, t.metadata_percent_complete
c.remove_torrent(m.id)

c.remove_torrent(tid, delete_data=True)
for _ in range(20):
    if not c.get_torrents():
        break
    time.sleep(0.1)
assert not c.get_torrents()
print("flow ok")
