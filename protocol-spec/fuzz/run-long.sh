#!/usr/bin/env bash
# A long fuzzing run (not part of CI, which only builds the targets): every target
# for RUNS executions (default 10^7), seeded with seeds/<target> (valid messages
# from ../vectors) and dict/<target>.dict where present. Prints one line per
# target: executions, coverage (libFuzzer's `cov:` edges and `ft:` features),
# corpus size, crashes (libFuzzer's crash-, oom-, timeout- and leak- artifacts;
# `slow-unit-` files are counted apart: a unit that took over 10 s, which a
# paused or starved process also produces; rerun one to see its time).
# Usage: ./run-long.sh [target ...]   (RUNS=N to change).
#
# No cargo-fuzz needed: the targets are built with the coverage instrumentation
# cargo-fuzz passes (SanitizerCoverage with inline 8-bit counters, PC table and
# comparison tracing, `--cfg fuzzing`), which stable rustc accepts, without
# AddressSanitizer (the crate forbids unsafe code; overflow and debug assertions
# stay on). libfuzzer-sys compiles libFuzzer with the system C++ compiler.
set -euo pipefail
cd "$(dirname "$0")"
RUNS="${RUNS:-10000000}"
OUT="${OUT:-../../target/fuzz-long}"
mkdir -p "$OUT"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
TARGET_DIR="../../target/fuzz-build"
# An explicit --target keeps RUSTFLAGS (the instrumentation) off build scripts
# and proc macros, as cargo-fuzz does.
HOST="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --target "$HOST" --target-dir "$TARGET_DIR" --bins
BIN_DIR="$TARGET_DIR/$HOST/release"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v traceless-protocol-fuzz)
fi
printf '%-16s %12s %8s %8s %8s %8s %6s\n' target execs cov ft corpus crashes slow
for t in "${targets[@]}"; do
    work="$OUT/corpus-$t"
    mkdir -p "$work" "$OUT/artifacts-$t"
    [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "$work"/ 2>/dev/null || true
    dict=()
    [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
    log="$OUT/$t.log"
    set +e
    "$BIN_DIR/$t" "$work" "${dict[@]}" -runs="$RUNS" -max_len=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts-$t/" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    crashes=$(find "$OUT/artifacts-$t" -type f \( -name 'crash-*' -o -name 'oom-*' \
        -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    slow=$(find "$OUT/artifacts-$t" -type f -name 'slow-unit-*' | wc -l)
    printf '%-16s %12s %8s %8s %8s %8s %6s%s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
        "${corpus:-?}" "$crashes" "$slow" "$([ $rc -ne 0 ] && echo "  (exit $rc, see $log)")"
done
