#!/usr/bin/python3
"""libtorrent (python3-libtorrent 2.0.8) as the reference for `shoal create` / `shoal info` tests.

Run with Debian's interpreter, `/usr/bin/python3`; the pyenv `python3` on PATH has no libtorrent.

Subcommands, each printing one JSON object on stdout:
  make PATH OUT [--piece-size BYTES] [--hybrid]
      create OUT from PATH with libtorrent's create_torrent (v1-only unless --hybrid, which
      writes a v1+v2 torrent with pad files) -> {"info_hash": hex v1}
  show TORRENT...
      -> {"torrents": [{"info_hash", "num_pieces", "piece_length", "total_size", "num_files"}]}
  check TORRENT SAVE_PATH
      add the torrent over existing data (save_path = the folder that holds the torrent's file
      or top folder), let libtorrent check every piece, and report
      -> {"info_hash", "num_pieces", "pieces_ok", "state"}
Any failure prints {"error": message} and exits 2.
"""

import argparse
import json
import os
import sys
import time

import libtorrent as lt


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def fail(message):
    emit({"error": message})
    sys.exit(2)


def v1_hex(ti):
    return str(ti.info_hashes().v1)


def cmd_make(args):
    fs = lt.file_storage()
    lt.add_files(fs, args.path)
    if fs.num_files() == 0:
        fail(f"libtorrent found no files under {args.path}")
    flags = 0 if args.hybrid else lt.create_torrent.v1_only
    ct = lt.create_torrent(fs, args.piece_size, flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(args.path)))
    data = lt.bencode(ct.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    emit({"info_hash": v1_hex(lt.torrent_info(args.out))})


def cmd_show(args):
    out = []
    for path in args.torrents:
        ti = lt.torrent_info(path)
        out.append({
            "info_hash": v1_hex(ti),
            "num_pieces": ti.num_pieces(),
            "piece_length": ti.piece_length(),
            "total_size": ti.total_size(),
            "num_files": ti.num_files(),
        })
    emit({"torrents": out})


def cmd_check(args):
    session = lt.session({
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "listen_interfaces": "127.0.0.1:0",
        "alert_mask": 0,
    })
    ti = lt.torrent_info(args.torrent)
    params = lt.add_torrent_params()
    params.ti = ti
    params.save_path = args.save_path
    # Not auto-managed and not paused: libtorrent checks the files at once. Upload mode keeps it
    # from trying to download anything that fails the check.
    params.flags = lt.torrent_flags.upload_mode
    handle = session.add_torrent(params)
    deadline = time.time() + args.timeout
    checking = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
    while True:
        status = handle.status()
        if status.errc.value() != 0:
            fail(f"libtorrent error: {status.errc.message()}")
        if status.state not in checking and status.has_metadata:
            break
        if time.time() > deadline:
            fail(f"check did not finish in {args.timeout} s (state {status.state})")
        time.sleep(0.05)
    status = handle.status()
    emit({
        "info_hash": v1_hex(ti),
        "num_pieces": ti.num_pieces(),
        "pieces_ok": status.num_pieces,
        "state": str(status.state),
    })


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    make = sub.add_parser("make")
    make.add_argument("path")
    make.add_argument("out")
    make.add_argument("--piece-size", type=int, default=0)
    make.add_argument("--hybrid", action="store_true")
    show = sub.add_parser("show")
    show.add_argument("torrents", nargs="+")
    check = sub.add_parser("check")
    check.add_argument("torrent")
    check.add_argument("save_path")
    check.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    try:
        {"make": cmd_make, "show": cmd_show, "check": cmd_check}[args.cmd](args)
    except SystemExit:
        raise
    except Exception as exc:  # report libtorrent's errors in the JSON contract
        fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
