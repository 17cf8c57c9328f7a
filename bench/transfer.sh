#!/usr/bin/env bash
# Transfer benchmark (issues 3 and 6, cases a-c): shoal against libtorrent, qBittorrent, aria2,
# Transmission and rtorrent on loopback, page cache warm, medians of 3 runs, ratio to the best
# reference. See bench/transfer.py for what each figure means. Not a test; not run in CI.
#
# Usage: bench/transfer.sh [--quick] [--runs N] [--size MiB] [--cases leech-file,leech-tree,seed,s2s]
#                          [--leechers shoal,libtorrent,...] [--seeders shoal,libtorrent,...]
#        Builds shoal in release mode first, unless SHOAL_BIN names a release binary. Needs root
#        for the Transmission case (it runs in a network namespace). Writes bench/out/transfer/.
set -euo pipefail

cd "$(dirname "$0")/.."
for tool in /usr/bin/time /usr/bin/python3 aria2c qbittorrent-nox transmission-daemon curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/install-deps)" >&2; exit 1; }
done
if [[ -n ${SHOAL_BIN:-} ]]; then
    SHOAL=$SHOAL_BIN
else
    cargo build --release -p shoal-cli >&2
    SHOAL=$PWD/target/release/shoal
fi
exec /usr/bin/python3 bench/transfer.py --shoal "$SHOAL" "$@"
