#!/usr/bin/env bash
# The soak (Tests/Soak/soak.c): SESSIONS budgeted sessions sharing one model, one thread each,
# decoding TOKENS held-out tokens each through the C library, with an expert cache of 25 % of the
# expert bytes per session, token-level precision and prefetch (the defaults); fails unless RSS
# stays flat (±2 %), the peak stays within the budget, and descriptors and threads do not grow.
#   bash Scripts/soak.sh [TOKENS [MODEL.spw [SESSIONS]]]   default: 10000, the demo model, 4
# Needs the release build. The README's test command runs a 1 000-token version.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tokens="${1:-10000}"
model="${2:-}"
sessions="${3:-4}"
work="$root/.build/soak"
mkdir -p "$work"
bash Scripts/install-lib.sh "$work/prefix" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
cc -std=c11 -O2 -Wall -Wextra -Werror $(pkg-config --cflags sparrow) Tests/Soak/soak.c -o "$work/soak" \
    $(pkg-config --libs sparrow) -Wl,-rpath,"$work/prefix/lib" -lpthread -lm
if [ -z "$model" ]; then
    model="$work/demo.spw"
    [ -s "$model" ] || .build/release/sparrow convert Models/tiny-qwen3moe -o "$model" --force >/dev/null
fi
echo "soak: $sessions sessions × $tokens tokens on $model (expert cache 25 % of the experts each)"
"$work/soak" "$model" Models/tiny-qwen3moe/eval-text.txt "$tokens" "$sessions" 0.25 | tee "$work/soak.json"
echo "soak: passed"
