# Regenerates libtorrent-2.0.8-seed.bin: what a libtorrent 2.0.8 seed (Debian python3-libtorrent)
# v1-only torrent sends after our handshake, our extended handshake and a ut_metadata request for piece 0.
# Run with /usr/bin/python3 (not the pyenv python3); loopback only.
import libtorrent as lt, os, socket, struct, time, sys
d='/tmp/shoal-capture/data'; os.makedirs(d, exist_ok=True)
with open(d+'/hello.bin','wb') as f: f.write(bytes(range(256))*200)  # 51200 bytes
fs=lt.file_storage(); lt.add_files(fs, d+'/hello.bin')
t=lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only); lt.set_piece_hashes(t, d)
tor=lt.bencode(t.generate()); open('/tmp/shoal-capture/t.torrent','wb').write(tor)
info=lt.torrent_info('/tmp/shoal-capture/t.torrent')
ih=info.info_hashes().v1.to_bytes()
s=lt.session({'listen_interfaces':'127.0.0.1:46881','enable_dht':False,'enable_lsd':False,'enable_upnp':False,'enable_natpmp':False,'allow_multiple_connections_per_ip':True})
h=s.add_torrent({'ti':info,'save_path':d})
for _ in range(50):
    if h.status().is_seeding: break
    time.sleep(0.1)
print('seeding', h.status().is_seeding, 'metadata size', info.metadata_size(), file=sys.stderr)
c=socket.create_connection(('127.0.0.1',46881))
res=bytearray(8); res[5]|=0x10; res[7]|=0x05
c.sendall(b'\x13BitTorrent protocol'+bytes(res)+ih+b'-SH0100-abcdefghijkl')
ext=b'd1:md11:ut_metadatai2e6:ut_pexi1ee1:pi6881e1:v5:shoale'
c.sendall(struct.pack('>IBB',len(ext)+2,20,0)+ext)
req=b'd8:msg_typei0e5:piecei0ee'
time.sleep(1.0)
buf=b''
c.settimeout(2)
try:
    while True:
        x=c.recv(65536)
        if not x: break
        buf+=x
        if len(buf)>68: break
except socket.timeout: pass
# find peer's ut_metadata id from its ext handshake later in Rust; libtorrent uses 2
c.sendall(struct.pack('>IBB',len(req)+2,20,2)+req)
time.sleep(1.0)
try:
    while True:
        x=c.recv(65536)
        if not x: break
        buf+=x
except socket.timeout: pass
open('/tmp/shoal-capture/stream.bin','wb').write(buf)
print(len(buf), buf[:200], file=sys.stderr)
