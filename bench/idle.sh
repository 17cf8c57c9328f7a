#!/usr/bin/env bash
# Idle-cost benchmark (issue 6, case d): RSS per idle torrent and idle CPU of `shoal daemon` with
# 1,000 small complete torrents loaded, against transmission-daemon with the same torrents. See
# bench/idle.py for the method. Not a test; not run in CI.
#
# Usage: bench/idle.sh [--clients shoal,transmission] [--count N] [--window S] [--settle S]
#        Builds shoal in release mode first, unless SHOAL_BIN names a release binary.
#        Writes bench/out/idle/.
set -euo pipefail

cd "$(dirname "$0")/.."
for tool in /usr/bin/python3 transmission-daemon; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see .ci/install-deps)" >&2; exit 1; }
done
if [[ -n ${SHOAL_BIN:-} ]]; then
    SHOAL=$SHOAL_BIN
else
    cargo build --release -p shoal-cli >&2
    SHOAL=$PWD/target/release/shoal
fi
exec /usr/bin/python3 bench/idle.py --shoal "$SHOAL" "$@"
