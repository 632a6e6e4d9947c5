#!/usr/bin/env bash
# The main job on the embedded demo model: build, convert, generate, benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build -c release
mkdir -p out
.build/release/sparrow convert Models/tiny-qwen3moe -o out/tiny-qwen3moe.spw --force
# The demo model was trained on the Python standard library's source: prompt it with the start of a
# class there, sampled (seeded, so the output is the same every time).
.build/release/sparrow run -m out/tiny-qwen3moe.spw -p $'class Chunk:\n    def __init__(self, file, align=True):\n        ' \
    -n 64 --temp 0.6 --top-p 0.9 --repeat-penalty 1.1 --seed 3 --stats
.build/release/sparrow bench -m out/tiny-qwen3moe.spw --prompt-len 128 -n 64
# The same model held to a memory budget: experts stream from storage into a cache, cold start,
# teacher-forced on held-out text (real routing), about 26 of the 64 experts fitting; the last line is
# the I/O roofline.
.build/release/sparrow bench -m out/tiny-qwen3moe.spw --prompt-len 128 -n 64 --budget 36MiB --cold \
    --prompt-file Models/tiny-qwen3moe/eval-text.txt
