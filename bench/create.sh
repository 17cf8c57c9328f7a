#!/usr/bin/env bash
# Benchmark: `shoal create` against `mktorrent -t 2` and `transmission-create` on the same data.
#
# Makes (once) a 2 GiB folder of mixed file sizes under bench/out/create-data (override with
# SHOAL_BENCH_DIR), warms the page cache, then runs each tool RUNS times (default 3) with the
# same piece size (2 MiB, the automatic choice for 2 GiB) and prints the medians as a markdown
# table: throughput (MB/s, 10^6 bytes per wall-clock second), CPU seconds (user + system), peak
# RSS. Measured with GNU time (`/usr/bin/time -v`, Debian package `time`). Not a test.
#
# Usage: bench/create.sh   (from anywhere; builds shoal in release mode first, unless SHOAL_BIN
#        names a release binary to use)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=${RUNS:-3}
BENCH_DIR=${SHOAL_BENCH_DIR:-$REPO/bench/out/create-data}
DATA=$BENCH_DIR/data
OUT=$BENCH_DIR/torrents
PIECE_LOG2=21 # 2 MiB

for tool in mktorrent transmission-create /usr/bin/time; do
    if ! command -v "$tool" >/dev/null; then
        echo "missing $tool (Debian packages: mktorrent, transmission-cli, time)" >&2
        exit 1
    fi
done

if [[ -n ${SHOAL_BIN:-} ]]; then
    SHOAL=$SHOAL_BIN # a release build made elsewhere
else
    cargo build --release -p shoal-cli >&2
    SHOAL=$REPO/target/release/shoal
fi

# --- data: 2 GiB exactly, mixed sizes, deterministic (seeded) pseudo-random bytes -------------
if [[ ! -f $BENCH_DIR/.complete ]]; then
    echo "generating 2 GiB of test data in $DATA ..." >&2
    rm -rf "$DATA"
    mkdir -p "$DATA"
    /usr/bin/python3 - "$DATA" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
MiB = 1 << 20
layout = [(1, 1024 * MiB, "large"), (3, 128 * MiB, "medium"), (40, 8 * MiB, "small"),
          (400, 512 * 1024, "tiny/a"), (2000, 48 * 1024, "tiny/b")]
total = 0
for count, size, folder in layout:
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    for i in range(count):
        with open(os.path.join(root, folder, f"f{i:05}.bin"), "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MiB)
                f.write(rng.randbytes(n))
                left -= n
        total += size
rest = 2048 * MiB - total
with open(os.path.join(root, "rest.bin"), "wb") as f:
    f.write(rng.randbytes(rest))
PY
    touch "$BENCH_DIR/.complete"
fi
mkdir -p "$OUT"
BYTES=$(find "$DATA" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }')

warm() { find "$DATA" -type f -print0 | xargs -0 cat >/dev/null; }

# Runs "$@" under GNU time; prints "wall_seconds cpu_seconds max_rss_kib".
measure() {
    local log
    log=$(mktemp)
    /usr/bin/time -v -o "$log" "$@" >/dev/null 2>&1
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); wall = 0; for (i = 1; i <= n; i++) wall = wall * 60 + t[i] }
        /User time/ { user = $2 } /System time/ { sys = $2 } /Maximum resident/ { rss = $2 }
        END { printf "%.3f %.3f %d\n", wall, user + sys, rss }' "$log"
    rm -f "$log"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Output files are named ${tool%-create}.torrent (the rm above and the infohash list rely on it).
declare -A COMMANDS=(
    [shoal]="$SHOAL create $DATA --piece-size 2M --no-date --force -o $OUT/shoal.torrent"
    [mktorrent]="mktorrent -t 2 -l $PIECE_LOG2 -a http://127.0.0.1:1/announce -o $OUT/mktorrent.torrent $DATA"
    [transmission-create]="transmission-create -s 2048 -o $OUT/transmission.torrent $DATA"
)
ORDER=(shoal mktorrent transmission-create)

echo "| tool | MB/s | CPU s | peak RSS MiB | runs |"
echo "|------|-----:|------:|-------------:|-----:|"
for tool in "${ORDER[@]}"; do
    walls=() cpus=() rsss=()
    warm
    for _ in $(seq "$RUNS"); do
        rm -f "$OUT/${tool%-create}.torrent" # mktorrent and transmission-create refuse to overwrite
        read -r wall cpu rss < <(measure ${COMMANDS[$tool]})
        walls+=("$wall") cpus+=("$cpu") rsss+=("$rss")
    done
    wall=$(printf '%s\n' "${walls[@]}" | median)
    cpu=$(printf '%s\n' "${cpus[@]}" | median)
    rss=$(printf '%s\n' "${rsss[@]}" | median)
    awk -v t="$tool" -v b="$BYTES" -v w="$wall" -v c="$cpu" -v r="$rss" -v n="$RUNS" \
        'BEGIN { printf "| %s | %.0f | %.2f | %.1f | %d |\n", t, b / w / 1e6, c, r / 1024, n }'
done

echo
echo "Data: $BYTES bytes in $(find "$DATA" -type f | wc -l) files ($DATA), page cache warm, $(nproc) cores,"
echo "piece size 2 MiB, median of $RUNS runs each. Reproduce: bench/create.sh. Commands:"
for tool in "${ORDER[@]}"; do
    echo "    /usr/bin/time -v ${COMMANDS[$tool]}"
done
echo "Infohashes (the same data; equal when the tools list files in the same order):"
for tool in "${ORDER[@]}"; do
    file=$OUT/${tool%-create}.torrent
    echo "    $tool: $(transmission-show "$file" | awk '/Hash:/ { print $2 }')"
done
