#!/bin/sh
# Runs one fuzz target with libFuzzer without needing cargo-fuzz: builds it with the nightly
# toolchain and the coverage flags `cargo fuzz` would pass, then fuzzes for SECONDS.
# Usage: fuzz/run.sh TARGET [SECONDS]   (targets: the [[bin]] names in fuzz/Cargo.toml)
# Crashes are written to fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/.
# With cargo-fuzz installed, `cargo +nightly fuzz run TARGET` does the same.
set -eu
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-60}
cd "$(dirname "$0")"
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo +nightly build --release --bin "$target" --target "$triple"
mkdir -p "corpus/$target" "artifacts/$target"
exec "target/$triple/release/$target" -max_total_time="$seconds" -rss_limit_mb=1024 \
    -artifact_prefix="artifacts/$target/" "corpus/$target"
