#!/usr/bin/env bash
# The main job on the embedded demo model: build, convert, generate, benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build -c release
mkdir -p out
.build/release/sparrow convert Models/tiny-qwen3moe -o out/tiny-qwen3moe.spw --force
.build/release/sparrow run -m out/tiny-qwen3moe.spw -p "def fibonacci(n):" -n 48 --greedy --stats
.build/release/sparrow bench -m out/tiny-qwen3moe.spw --prompt-len 128 -n 64
# The same model held to a memory budget: experts stream from storage into a cache, cold start.
.build/release/sparrow bench -m out/tiny-qwen3moe.spw --prompt-len 128 -n 64 --budget 60MiB --cold
