#!/usr/bin/env python3
"""What each nested expert level costs in perplexity on a fixture's own text.

A random-init model is near-uniform on real text, so its perplexity there says nothing about
quantization; on text the float model sampled itself (temperature 1: `samples.npy` of the newer
fixtures, or --samples) every perturbation shows. Converts the fixture float and with the given
level lists and group sizes, scores the samples teacher-forced with `sparrow logits`, prints the
cost of each level.

  python3 Benchmarks/level_costs.py Tests/SparrowTests/Fixtures/gpt_oss --levels 2,4,8 --groups 16,32
  python3 Benchmarks/level_costs.py Tests/SparrowTests/Fixtures/gpt_oss --levels mxfp4

A trained model of the same architecture (Scripts/reference/train_tiny.py) is scored on held-out
text instead: --samples OUT/held-out.npy --window 512.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def perplexity(sparrow, model, tokens, out, extra=(), window=None):
    """exp of the mean next-token loss, scored in independent windows of `window` tokens (all at
    once without one); a 2-D `tokens` is scored a row at a time."""
    if tokens.ndim == 1:
        window = window or len(tokens)
        chunks = [tokens[s:s + window + 1] for s in range(0, len(tokens) - 1, window)]
    else:
        chunks = list(tokens)
    total, count = 0.0, 0
    for chunk in chunks:
        if len(chunk) < 2:
            break
        subprocess.run([sparrow, "logits", "-m", model, "--tokens", ",".join(map(str, chunk)), "--out", out, *extra],
                       check=True, capture_output=True)
        logits = np.load(out).astype(np.float64)[:-1]
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        total -= logp[np.arange(len(chunk) - 1), chunk[1:]].sum()
        count += len(chunk) - 1
    return float(np.exp(total / count))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fixture")
    ap.add_argument("--samples", help="token ids (.npy); default FIXTURE/samples.npy")
    ap.add_argument("--levels", default="2,4,8")
    ap.add_argument("--groups", default="32")
    ap.add_argument("--window", type=int, help="score in independent windows of this many tokens "
                    "(the held-out text of a trained model; default: the samples in one piece)")
    ap.add_argument("--sparrow", default=".build/release/sparrow")
    a = ap.parse_args()
    tokens = np.load(a.samples or os.path.join(a.fixture, "samples.npy")).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        spw, out = os.path.join(tmp, "m.spw"), os.path.join(tmp, "l.npy")

        def convert(*args):
            subprocess.run([a.sparrow, "convert", a.fixture, "-o", spw, "--force", *args], check=True,
                           capture_output=True)

        convert("--expert-levels", "none")
        base = perplexity(a.sparrow, spw, tokens, out, window=a.window)
        print(f"{os.path.basename(a.fixture.rstrip('/'))}: {tokens.size} tokens, float perplexity {base:.4f}")
        mxfp4 = a.levels == "mxfp4"  # E2M1 codes kept as they are: levels 2,4, groups of 32 or 64
        for g in a.groups.split(","):
            convert("--expert-levels", a.levels, "--group-size", g)
            for bits in ["2", "4"] if mxfp4 else a.levels.split(","):
                p = perplexity(a.sparrow, spw, tokens, out, ("--expert-bits", bits), a.window)
                print(f"  group {g:>3}  {bits}-bit  {p:.4f}  {100 * (p / base - 1):+.3f} %")


if __name__ == "__main__":
    sys.exit(main())
