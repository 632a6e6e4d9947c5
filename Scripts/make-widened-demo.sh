#!/usr/bin/env bash
# The widened demo: Models/tiny-qwen3moe with every expert widened FACTOR-fold (default 32: expert
# intermediate 256 → 8 192, about 0.8 GB of bf16 experts) by Scripts/reference/widen_experts.py —
# the demo's trained routing at a realistic expert size, for every out-of-core and scheduler
# benchmark. Never committed (too big); made here in about a minute.
#   Scripts/make-widened-demo.sh [FACTOR]   → out/tiny-qwen3moe-xFACTOR/ and out/tiny-qwen3moe-xFACTOR.spw
set -euo pipefail
cd "$(dirname "$0")/.."
factor="${1:-32}"
dir="out/tiny-qwen3moe-x$factor"
python=python3
python3 -c "import numpy" 2>/dev/null || python=/usr/bin/python3
if [ ! -s "$dir/model.safetensors" ]; then
    rm -rf "$dir.tmp"
    "$python" Scripts/reference/widen_experts.py Models/tiny-qwen3moe "$dir.tmp" --factor "$factor" --seed 1
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
fi
[ -x .build/release/sparrow ] || swift build -c release --product sparrow
.build/release/sparrow convert "$dir" -o "$dir.spw" --force
