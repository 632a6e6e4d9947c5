#!/usr/bin/env python3
"""Sparrow vs llama.cpp on one checkpoint, same machine, same run (see compare-llamacpp)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np


def sh(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def converter_script(work):
    """convert_hf_to_gguf.py and gguf-py from the llama-cpp-python sdist (the same llama.cpp commit)."""
    dest = os.path.join(work, "llama.cpp-src")
    script = os.path.join(dest, "convert_hf_to_gguf.py")
    if os.path.exists(script):
        return script, os.path.join(dest, "gguf-py")
    # The sdist straight from the package index (pip download would build its build dependencies).
    import re
    import urllib.parse
    import urllib.request
    index = "https://pypi.org/simple/llama-cpp-python/"
    page = urllib.request.urlopen(index).read().decode()
    href = re.search(r'href="([^"]*llama_cpp_python-0\.3\.36\.tar\.gz[^"]*)"', page).group(1)
    url = urllib.parse.urljoin(index, href.split("#")[0])
    tgz = os.path.join(tempfile.mkdtemp(), "llama-cpp-python.tar.gz")
    print("+ download", url, file=sys.stderr)
    urllib.request.urlretrieve(url, tgz)
    with tarfile.open(tgz) as t:
        members = [m for m in t.getmembers() if "/vendor/llama.cpp/" in m.name and
                   (m.name.endswith(".py") or "/gguf-py/" in m.name or "/conversion/" in m.name)]
        for m in members:
            m.name = m.name.split("/vendor/llama.cpp/", 1)[1]
            t.extract(m, dest)
    return script, os.path.join(dest, "gguf-py")


def make_gguf(hf, work, quants):
    script, gguf_py = converter_script(work)
    f16 = os.path.join(work, "model-F16.gguf")
    if not os.path.exists(f16):
        # Our checkpoints' tokenizers are not in llama.cpp's table of known pre-tokenizer hashes; their
        # split regex is Qwen2's, so an unknown hash is mapped to "qwen2".
        wrapper = (
            "import runpy, sys\n"
            f"sys.path[:0] = [{os.path.dirname(script)!r}, {gguf_py!r}]\n"
            "import conversion.base as b\n"
            "orig = b.TextModel.get_vocab_base_pre\n"
            "def pre(self, tok):\n"
            "    try:\n        return orig(self, tok)\n"
            "    except NotImplementedError:\n        return 'qwen2'\n"
            "b.TextModel.get_vocab_base_pre = pre\n"
            f"sys.argv = [{script!r}] + sys.argv[1:]\n"
            f"runpy.run_path({script!r}, run_name='__main__')\n")
        sh([sys.executable, "-c", wrapper, hf, "--outtype", "f16", "--outfile", f16])
    import llama_cpp
    out = {"F16": f16}
    ftypes = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}
    for q in quants:
        if q == "F16":
            continue
        path = os.path.join(work, f"model-{q}.gguf")
        if not os.path.exists(path):
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftypes[q]
            rc = llama_cpp.llama_model_quantize(f16.encode(), path.encode(), params)
            if rc != 0:
                raise SystemExit(f"llama_model_quantize {q} failed: {rc}")
        out[q] = path
    return out


def make_spw(sparrow, hf, work, dense):
    path = os.path.join(work, f"model-dense-{dense}.spw")
    if not os.path.exists(path):
        sh([sparrow, "convert", hf, "-o", path, "--expert-levels", "2,4,8", "--group-size", "64", "--dense", dense],
           stdout=subprocess.DEVNULL)
    return path


LLAMA_RUN = r"""
import json, sys, time
import numpy as np
from llama_cpp import Llama
path, threads, plen, n, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = Llama(model_path=path, n_ctx=plen + n + 16, n_threads=threads, n_threads_batch=threads, n_batch=plen + n + 16,
            n_ubatch=plen, logits_all=False, verbose=False)
rng = np.random.default_rng(1)
prompt = [int(t) for t in rng.integers(1, min(vocab, llm.n_vocab()), plen)]
llm.eval(prompt[:8]); llm.reset()
t0 = time.perf_counter(); llm.eval(prompt); t1 = time.perf_counter()
lat = []
for _ in range(n):
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    s = time.perf_counter(); llm.eval([tok]); lat.append(time.perf_counter() - s)
print(json.dumps({"prefill": plen / (t1 - t0), "decode": n / sum(lat)}))
"""


def run_llama(path, a, vocab):
    out = subprocess.run([sys.executable, "-c", LLAMA_RUN, path, str(a.threads), str(a.prompt_len), str(a.n), str(vocab)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_sparrow(sparrow, path, bits, a):
    out = subprocess.run([sparrow, "bench", "-m", path, "--prompt-len", str(a.prompt_len), "-n", str(a.n),
                          "--threads", str(a.threads), "--expert-bits", str(bits), "--json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return {"prefill": r["prefillTokensPerSecond"], "decode": r["decodeTokensPerSecond"]}


def llama_perplexity(path, tokens, window, windows, threads):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=window, n_threads=threads, n_batch=window, n_ubatch=window,
                logits_all=True, verbose=False)
    nll, count = 0.0, 0
    for w in range(windows):
        ids = [int(t) for t in tokens[w * window:(w + 1) * window]]
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[:window], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nll -= sum(logp[t, ids[t + 1]] for t in range(window - 1))
        count += window - 1
    return float(np.exp(nll / count))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("hf")
    p.add_argument("--sparrow", required=True)
    p.add_argument("--work", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quants", default="Q8_0,Q4_0")
    p.add_argument("--ppl-tokens", help=".npy of eval token ids: also compare perplexity")
    p.add_argument("--ppl-windows", type=int, default=96)
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    work = a.work or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".work", os.path.basename(os.path.normpath(a.hf)))
    os.makedirs(work, exist_ok=True)
    vocab = json.load(open(os.path.join(a.hf, "config.json")))["vocab_size"]
    quants = a.quants.split(",")
    gguf = make_gguf(a.hf, work, quants)
    pairs = []  # (label, llama gguf, sparrow file, sparrow bits)
    for q in quants:
        if q == "Q8_0":
            pairs.append(("8-bit vs Q8_0", gguf[q], make_spw(a.sparrow, a.hf, work, "q8"), 8))
        elif q == "Q4_0":
            pairs.append(("4-bit vs Q4_0", gguf[q], make_spw(a.sparrow, a.hf, work, "q4"), 4))
    results = {label: {"llama": [], "sparrow": []} for label, *_ in pairs}
    # One untimed run of each first: both models sit in the page cache before timing, so neither
    # engine pays for the disk (the fully resident comparison; cold starts are the budget issue's).
    for label, g, s, bits in pairs:
        run_llama(g, a, vocab)
        run_sparrow(a.sparrow, s, bits, a)
    for rep in range(a.reps):
        for label, g, s, bits in pairs:
            results[label]["llama"].append(run_llama(g, a, vocab))
            results[label]["sparrow"].append(run_sparrow(a.sparrow, s, bits, a))
            print(f"rep {rep + 1}: {label}: llama {results[label]['llama'][-1]}, sparrow {results[label]['sparrow'][-1]}",
                  file=sys.stderr)
    summary = {"date": time.strftime("%Y-%m-%d"), "checkpoint": a.hf, "threads": a.threads,
               "prompt_len": a.prompt_len, "n": a.n, "reps": a.reps, "rows": []}
    print(f"\n{'pair':<16} {'llama prefill':>14} {'sparrow prefill':>16} {'ratio':>6} {'llama decode':>13} {'sparrow decode':>15} {'ratio':>6}")
    for label, *_ in pairs:
        med = {e: {k: statistics.median(r[k] for r in results[label][e]) for k in ("prefill", "decode")}
               for e in ("llama", "sparrow")}
        row = {"pair": label, **{f"{e}_{k}": med[e][k] for e in med for k in med[e]},
               "prefill_ratio": med["sparrow"]["prefill"] / med["llama"]["prefill"],
               "decode_ratio": med["sparrow"]["decode"] / med["llama"]["decode"]}
        summary["rows"].append(row)
        print(f"{label:<16} {med['llama']['prefill']:>14.1f} {med['sparrow']['prefill']:>16.1f} {row['prefill_ratio']:>6.2f} "
              f"{med['llama']['decode']:>13.1f} {med['sparrow']['decode']:>15.1f} {row['decode_ratio']:>6.2f}")
    if a.ppl_tokens:
        tokens = np.load(a.ppl_tokens)
        summary["perplexity"] = {}
        for q in ["F16"] + quants:
            summary["perplexity"]["llama " + q] = llama_perplexity(gguf[q], tokens, 256, a.ppl_windows, a.threads)
        print("\nperplexity (first %d windows of 256):" % a.ppl_windows)
        for k, v in summary["perplexity"].items():
            print(f"  {k:<14} {v:.4f}")
    if a.json:
        json.dump(summary, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
