#!/usr/bin/env bash
# libFuzzer on Sparrow's parsers of untrusted bytes (Fuzz/, built with -sanitize=fuzzer,address).
# `-Xswiftc -sanitize=fuzzer` instruments the Sparrow modules too: SwiftPM's --sanitize=fuzzer
# alone instruments only the fuzz package's own targets, leaving libFuzzer blind (no coverage of
# the parsers: ~4.7 k counters instead of ~36 k, the seeds judged uninteresting and dropped).
#   Scripts/fuzz.sh TARGET [libFuzzer options]      default options: -max_total_time=60
#   TARGET: spw safetensors config tokenizer-json tokenize profile, or all
# Seeds: the committed Fuzz/Corpus/TARGET, plus (spw) two whole small models converted from test
# fixtures (uniform levels; the MXFP4 level). New inputs go to .build/fuzz/corpus/TARGET (not committed); a crash leaves its input in
# .build/fuzz/ and fails the script — turn it into a regression test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: Scripts/fuzz.sh TARGET|all [libFuzzer options]" >&2; exit 2; }
target="$1"
shift
options=("$@")
[ ${#options[@]} -gt 0 ] || options=(-max_total_time=60)
all=(spw safetensors config tokenizer-json tokenize profile)
if [ "$target" = all ]; then
    for t in "${all[@]}"; do "$0" "$t" "${options[@]}"; done
    exit 0
fi
case "$target" in
    spw) product=FuzzSPW ;;
    safetensors) product=FuzzSafetensors ;;
    config) product=FuzzConfig ;;
    tokenizer-json) product=FuzzTokenizerJSON ;;
    tokenize) product=FuzzTokenize ;;
    profile) product=FuzzProfile ;;
    *) echo "fuzz.sh: unknown target '$target' (one of: ${all[*]} all)" >&2; exit 2 ;;
esac
work="$root/.build/fuzz"
mkdir -p "$work/corpus/$target" "$work/seeds/$target" "$work/tmp"
# (A failed build must fail the script: an old binary would fuzz old code.)
built=0
# SwiftPM caches the parent package's file list in Fuzz/.build: a source file added since the last
# fuzz build is missing from it ("cannot find type") until the manifest is seen to change.
touch "$root/Fuzz/Package.swift"
log=$(cd "$root/Fuzz" && swift build -c debug --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer --product "$product" 2>&1) || built=$?
grep -E "error|warning: unre|Compiling Fuzz" <<<"$log" || true
binary="$root/Fuzz/.build/debug/$product"
[ "$built" -eq 0 ] && [ -x "$binary" ] || { echo "fuzz.sh: $product did not build" >&2; exit 1; }
if [ "$target" = spw ] && [ ! -s "$work/seeds/spw/gpt_oss_mxfp4.spw" ]; then
    (cd "$root" && swift build -c release --product sparrow >/dev/null &&
        .build/release/sparrow convert Tests/SparrowTests/Fixtures/qwen2_moe -o "$work/seeds/spw/qwen2_moe.spw" \
            --expert-levels 2,4 --force >/dev/null &&
        .build/release/sparrow convert Tests/SparrowTests/Fixtures/variants/gpt_oss_mxfp4 \
            -o "$work/seeds/spw/gpt_oss_mxfp4.spw" --force >/dev/null)  # the MXFP4 level's layout
fi
echo "fuzz.sh: $target ${options[*]}"
cd "$work"
set +e
TMPDIR="$work/tmp" LSAN_OPTIONS="suppressions=$root/Fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" "$binary" -rss_limit_mb=4096 -timeout=20 -max_len=4194304 -print_final_stats=1 \
    -artifact_prefix="$work/$target-" "${options[@]}" "$work/corpus/$target" "$root/Fuzz/Corpus/$target" \
    "$work/seeds/$target" > "$work/$target.log" 2>&1
status=$?
set -e
grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|Test unit written|leak" "$work/$target.log" || true
rm -f "$work/tmp"/sparrow-fuzz-* 2>/dev/null || true
[ "$status" -eq 0 ] || { echo "fuzz.sh: $target FAILED (log $work/$target.log, input under $work/$target-*)" >&2; exit 1; }
echo "fuzz.sh: $target clean"
