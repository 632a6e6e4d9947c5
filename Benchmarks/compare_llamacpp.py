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
    # The sdist through pip (by name, as the package was installed); only its Python files are used.
    import glob
    d = tempfile.mkdtemp()
    sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-python",
        "llama-cpp-python==0.3.36", "-d", d])
    tgz = glob.glob(os.path.join(d, "*.tar.gz"))[0]
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


def make_spw(sparrow, hf, work, dense, calibration=None, calibration_tokens=4000):
    """The .spw file; with a calibration text, its expert profile too (what `--token-precision auto`,
    the default under a budget, derives its thresholds from: `sparrow profile`, one step per model)."""
    path = os.path.join(work, f"model-dense-{dense}.spw")
    if not os.path.exists(path):
        sh([sparrow, "convert", hf, "-o", path, "--expert-levels", "2,4,8", "--group-size", "64", "--dense", dense],
           stdout=subprocess.DEVNULL)
    if calibration and not os.path.exists(path + ".profile.json"):
        sh([sparrow, "profile", "-m", path, "--text", calibration, "--tokens", str(calibration_tokens)],
           stdout=subprocess.DEVNULL)
    return path


LLAMA_RUN = r"""
import json, os, sys, time
import numpy as np
import llama_cpp.llama_cpp as lc
if os.environ.get("LLAMA_NO_REPACK"):
    # llama.cpp's --repack 0: keep Q4_0 weights in the mapped file instead of repacking them into
    # anonymous memory (which a memory cgroup below the file size kills).
    _defaults = lc.llama_model_default_params
    def _no_repack():
        p = _defaults()
        p.use_extra_bufts = False
        return p
    lc.llama_model_default_params = _no_repack
from llama_cpp import Llama
path, threads, plen, n, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
text = sys.argv[6] if len(sys.argv) > 6 else ""
llm = Llama(model_path=path, n_ctx=plen + n + 16, n_threads=threads, n_threads_batch=threads, n_batch=plen + n + 16,
            n_ubatch=plen, logits_all=False, verbose=False)
forced = None
if text:
    # Teacher forcing on held-out text, as Sparrow's `bench --prompt-file`: the prompt is the text's
    # start and each decode step is fed the text's next token.
    ids = llm.tokenize(open(text, "rb").read(), add_bos=False, special=True)
    if len(ids) < plen + n:
        raise SystemExit(f"{text}: {len(ids)} tokens, fewer than {plen + n}")
    prompt, forced = ids[:plen], ids[plen:plen + n]
else:
    rng = np.random.default_rng(1)
    prompt = [int(t) for t in rng.integers(1, min(vocab, llm.n_vocab()), plen)]
llm.eval(prompt[:8]); llm.reset()
t0 = time.perf_counter(); llm.eval(prompt); t1 = time.perf_counter()
lat = []
for i in range(n):
    tok = forced[i] if forced else int(np.argmax(llm.scores[llm.n_tokens - 1]))
    s = time.perf_counter(); llm.eval([tok]); lat.append(time.perf_counter() - s)
print(json.dumps({"prefill": plen / (t1 - t0), "decode": n / sum(lat)}))
"""


def run_llama(path, a, vocab, limit=None, plen=None, n=None, text=None):
    cmd = [sys.executable, "-c", LLAMA_RUN, path, str(a.threads), str(plen or a.prompt_len), str(n or a.n), str(vocab)]
    if text:
        cmd.append(text)
    if limit is None:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    r = in_cgroup(cmd, limit, env={**os.environ, "LLAMA_NO_REPACK": "1"})
    if r is None:
        return None
    if r.returncode != 0:
        return {"error": "killed by the memory cgroup (OOM)" if r.returncode in (-9, 137) else r.stderr.strip()[-300:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


CGROUP_ROOT = "/sys/fs/cgroup/memory"


def cgroup_available():
    return os.access(os.path.join(CGROUP_ROOT, "cgroup.procs"), os.W_OK)


def in_cgroup(cmd, limit, env=None):
    """Runs cmd inside a fresh cgroup-v1 memory cgroup limited to `limit` bytes (page cache of
    mapped files included, as the kernel charges it); None where cgroups are unavailable."""
    if not cgroup_available():
        return None
    path = os.path.join(CGROUP_ROOT, f"sparrow-compare-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    try:
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit))
        wrapper = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path] + cmd
        return subprocess.run(wrapper, capture_output=True, text=True, env=env)
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


def evict(path):
    """Drops the file from the page cache: a cold start."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def sparrow_env(a):
    """Sparrow's environment: SPARROW_ISA=a.isa when both engines are pinned to one ISA."""
    return {**os.environ, "SPARROW_ISA": a.isa} if a.isa else None


def run_sparrow(sparrow, path, bits, a, budget=None, plen=None, n=None, extra=None, text=None):
    """Sparrow's bench; under a budget, cold and in a memory cgroup of the same size. `extra`: the
    scheduler flags of this configuration (None: --cache-policy and --sparrow-args as given). A budget
    too small for `bits` runs again at the level Sparrow itself chooses there (its default: the
    highest stored level that fits), and the result says which (`bits`)."""
    cmd = [sparrow, "bench", "-m", path, "--prompt-len", str(plen or a.prompt_len), "-n", str(n or a.n),
           "--threads", str(a.threads), "--json"] + (["--expert-bits", str(bits)] if bits else [])
    if text:
        cmd += ["--prompt-file", text]
    if budget is None:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=sparrow_env(a)).stdout
    else:
        cmd += ["--budget", str(budget), "--cold"]
        cmd += (["--cache-policy", a.cache_policy] + a.sparrow_args.split()) if extra is None else extra
        # Inside the same cgroup as llama.cpp when there is one: the budget must hold there too.
        r = (in_cgroup(cmd, budget, env=sparrow_env(a)) if cgroup_available()
             else subprocess.run(cmd, capture_output=True, text=True, env=sparrow_env(a)))
        if r.returncode != 0:
            if bits and "memory budget too small" in r.stderr:
                return run_sparrow(sparrow, path, None, a, budget, plen, n, extra, text)
            return {"error": "killed by the memory cgroup (OOM)" if r.returncode in (-9, 137) else r.stderr.strip()[-300:]}
        out = r.stdout
    r = json.loads(out)
    return {"prefill": r["prefillTokensPerSecond"], "decode": r["decodeTokensPerSecond"], "peak_rss": r["peakRSS"],
            "bits": r.get("expertBits"),
            "cache": r.get("cache"), "isa": r.get("isa"), "ceiling": r.get("ioCeilingTokensPerSecond"),
            "read_per_token": r.get("decodeBytesReadPerToken"), "disk": r.get("diskBytesPerSecond"),
            "compute_ceiling": r.get("computeCeilingTokensPerSecond")}


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


def print_resident(results, pairs, summary):
    """Medians of the fully resident runs, and medians of the per-round ratios."""
    print(f"\n{'pair':<16} {'llama prefill':>14} {'sparrow prefill':>16} {'ratio':>6} {'llama decode':>13} {'sparrow decode':>15} {'ratio':>6}")
    for label, *_ in pairs:
        med = {e: {k: statistics.median(r[k] for r in results[label][e]) for k in ("prefill", "decode")}
               for e in ("llama", "sparrow")}
        # Ratios: medians of the per-round ratios (the two engines of a round ran back to back, so a
        # round shares the machine's state; the VM drifts between rounds).
        rounds = list(zip(results[label]["sparrow"], results[label]["llama"]))
        row = {"pair": label, **{f"{e}_{k}": med[e][k] for e in med for k in med[e]},
               "prefill_ratio": statistics.median(s["prefill"] / l["prefill"] for s, l in rounds),
               "decode_ratio": statistics.median(s["decode"] / l["decode"] for s, l in rounds)}
        summary["rows"].append(row)
        print(f"{label:<16} {med['llama']['prefill']:>14.1f} {med['sparrow']['prefill']:>16.1f} {row['prefill_ratio']:>6.2f} "
              f"{med['llama']['decode']:>13.1f} {med['sparrow']['decode']:>15.1f} {row['decode_ratio']:>6.2f}")


def parse_size(text, reference):
    t = text.strip()
    if t.endswith("%"):
        return int(reference * float(t[:-1]) / 100)
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}
    for u, m in units.items():
        if t.endswith(u):
            return int(float(t[:-len(u)]) * m)
    return int(t)


# Sparrow's configurations under a limit: its defaults (only --budget), and the on-demand loader
# with LRU and with LFU (no prefetch, no token precision, no plan): the baseline is the better of
# the two in each round.
SPARROW_CONFIGS = {
    "default": [],
    "on-demand lru": ["--cache-policy", "lru", "--no-plan", "--prefetch", "0", "--token-precision", "off"],
    "on-demand lfu": ["--cache-policy", "lfu", "--no-plan", "--prefetch", "0", "--token-precision", "off"],
}


def budget_comparison(a, gguf, pairs, vocab):
    """The 4-bit pair under each memory limit, cold, `--budget-reps` alternated rounds: llama.cpp
    (mmap, no repack) in a memory cgroup of that size, Sparrow with --budget of the same size (in
    the same kind of cgroup) with its defaults and on demand; both teacher-forced on --prompt-file
    when given. Medians, and ratios as medians of per-round ratios."""
    four = [p for p in pairs if p[3] == 4]
    if not four:
        raise SystemExit("--budgets needs Q4_0 in --quants")
    label, g, spw, bits = four[0]
    reference = os.path.getsize(g)
    if not cgroup_available():
        print(f"\nno writable cgroup-v1 memory controller at {CGROUP_ROOT}: llama.cpp runs without a limit "
              "(its figures are then an upper bound); run as root on a cgroup-v1 host for the real comparison",
              file=sys.stderr)
    configs = SPARROW_CONFIGS if a.sparrow_args == "" else {**SPARROW_CONFIGS, "default": a.sparrow_args.split()}
    rows = []
    print(f"\nunder memory limits (cold, prompt {a.budget_prompt_len}, {a.budget_n} tokens"
          f"{', teacher-forced on ' + os.path.basename(a.prompt_file) if a.prompt_file else ''}, {a.budget_reps} rounds, "
          f"limits relative to {os.path.basename(g)} = {reference / 2**20:.0f} MiB)")
    print(f"{'limit':<16} {'llama prefill':>13} {'sparrow':>8} {'ratio':>6} {'llama decode':>12} {'sparrow':>8} "
          f"{'ratio':>6} {'on-demand':>9} {'× it':>5} {'I/O ceiling':>11} {'of it':>6} {'peak RSS':>9}")
    for text in a.budgets.split(","):
        limit = parse_size(text, reference)
        rounds = []
        for rep in range(a.budget_reps):
            r = {}
            order = ["llama"] + list(configs) if rep % 2 == 0 else list(configs) + ["llama"]
            for who in order:
                if who == "llama":
                    evict(g)
                    r["llama"] = run_llama(g, a, vocab, limit=limit, plen=a.budget_prompt_len, n=a.budget_n,
                                           text=a.prompt_file)
                    if r["llama"] is None:  # no cgroup: unlimited, an upper bound
                        evict(g)
                        r["llama"] = run_llama(g, a, vocab, plen=a.budget_prompt_len, n=a.budget_n, text=a.prompt_file)
                        r["llama"]["unlimited"] = True
                else:
                    r[who] = run_sparrow(a.sparrow, spw, bits, a, budget=limit, plen=a.budget_prompt_len, n=a.budget_n,
                                         extra=configs[who], text=a.prompt_file)
            rounds.append(r)
            print(f"  {text} round {rep + 1}: " + ", ".join(f"{k} {v.get('decode', v.get('error'))}" for k, v in r.items()),
                  file=sys.stderr, flush=True)
        rows.append(summarize_limit(text, limit, rounds))
        rows[-1]["percent"] = 100 * limit / reference
        print_limit(rows[-1])
    return rows


def summarize_limit(text, limit, rounds):
    """Medians over the rounds of one limit, and medians of the per-round ratios."""
    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def get(r, who, key):
        return r.get(who, {}).get(key)

    def on_demand(r, key):
        vals = [get(r, c, key) for c in ("on-demand lru", "on-demand lfu") if get(r, c, key) is not None]
        return max(vals) if vals else None

    def ratio(r, num, den):
        return num / den if num and den else None

    row = {"limit_text": text, "limit": limit, "rounds": rounds}
    for key in ("prefill", "decode"):
        row[f"llama_{key}"] = med(get(r, "llama", key) for r in rounds)
        row[f"sparrow_{key}"] = med(get(r, "default", key) for r in rounds)
        row[f"on_demand_{key}"] = med(on_demand(r, key) for r in rounds)
        row[f"{key}_ratio"] = med(ratio(r, get(r, "default", key), get(r, "llama", key)) for r in rounds)
    row["over_on_demand"] = med(ratio(r, get(r, "default", "decode"), on_demand(r, "decode")) for r in rounds)
    row["io_ceiling"] = med(get(r, "default", "ceiling") for r in rounds)
    # Each round's decode over the ceiling its own run measured (the disk moves between runs).
    row["of_ceiling"] = med(ratio(r, get(r, "default", "decode"), get(r, "default", "ceiling")) for r in rounds)
    row["peak_rss"] = max((get(r, "default", "peak_rss") or 0) for r in rounds)
    row["sparrow_bits"] = sorted({get(r, who, "bits") for r in rounds for who in r if who != "llama"} - {None})
    row["errors"] = sorted({f"{who}: {v['error']}" for r in rounds for who, v in r.items() if "error" in v})
    return row


def print_limit(row):
    def f(v, spec):
        return format(v, spec) if v is not None else "-"
    print(f"{row['limit_text'] + ' (' + str(row['limit'] // 2**20) + ' MiB)':<16} {f(row['llama_prefill'], '.1f'):>13} "
          f"{f(row['sparrow_prefill'], '.1f'):>8} {f(row['prefill_ratio'], '.2f'):>6} {f(row['llama_decode'], '.2f'):>12} "
          f"{f(row['sparrow_decode'], '.2f'):>8} {f(row['decode_ratio'], '.2f'):>6} {f(row['on_demand_decode'], '.2f'):>9} "
          f"{f(row['over_on_demand'], '.2f'):>5} {f(row['io_ceiling'], '.1f'):>11} {f(row['of_ceiling'], '.2f'):>6} "
          f"{row['peak_rss'] / 2**20:>6.0f} MiB"
          f"  (Sparrow's experts at {'/'.join(str(b) for b in row['sparrow_bits']) or '-'} bits)", flush=True)
    for e in row["errors"]:
        print(f"    {e}", flush=True)


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
    p.add_argument("--budgets", help="also compare the 4-bit pair under memory limits, e.g. 60%%,40%%,25%% "
                   "(of the Q4_0 GGUF's size) or 300MiB: llama.cpp in a memory cgroup, Sparrow with --budget, cold starts")
    p.add_argument("--budget-prompt-len", type=int, default=64)
    p.add_argument("--budget-n", type=int, default=32)
    p.add_argument("--cache-policy", default="score")
    p.add_argument("--isa", default=None, help="pin Sparrow to this kernel path (SPARROW_ISA); the wrapper picks the "
                   "llama.cpp build for the same ISA")
    p.add_argument("--sparrow-args", default="", help="Sparrow's configuration under --budgets instead of its "
                   "defaults, e.g. '--prefetch 1 --token-precision 0.6,0.9'")
    p.add_argument("--prompt-file", help="held-out text: under --budgets both engines are teacher-forced on it")
    p.add_argument("--budget-reps", type=int, default=3, help="alternated rounds per limit")
    p.add_argument("--calibration-file", help="text for `sparrow profile` (disjoint from --prompt-file's start): "
                   "the profile Sparrow's default token-level precision takes its thresholds from")
    p.add_argument("--plot", help="with --budgets: an SVG of decode tokens/s against the limit")
    a = p.parse_args()
    work = a.work or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".work", os.path.basename(os.path.normpath(a.hf)))
    os.makedirs(work, exist_ok=True)
    vocab = json.load(open(os.path.join(a.hf, "config.json")))["vocab_size"]
    quants = a.quants.split(",")
    gguf = make_gguf(a.hf, work, quants)
    pairs = []  # (label, llama gguf, sparrow file, sparrow bits)
    for q in quants:
        if q == "Q8_0":
            pairs.append(("8-bit vs Q8_0", gguf[q], make_spw(a.sparrow, a.hf, work, "q8", a.calibration_file), 8))
        elif q == "Q4_0":
            pairs.append(("4-bit vs Q4_0", gguf[q], make_spw(a.sparrow, a.hf, work, "q4", a.calibration_file), 4))
    results = {label: {"llama": [], "sparrow": []} for label, *_ in pairs}
    # One untimed run of each first: both models sit in the page cache before timing, so neither
    # engine pays for the disk (the fully resident comparison; cold starts are the budget issue's).
    for label, g, s, bits in pairs if a.reps > 0 else []:
        run_llama(g, a, vocab)
        run_sparrow(a.sparrow, s, bits, a)
    for rep in range(a.reps):
        for label, g, s, bits in pairs:
            results[label]["llama"].append(run_llama(g, a, vocab))
            results[label]["sparrow"].append(run_sparrow(a.sparrow, s, bits, a))
            print(f"rep {rep + 1}: {label}: llama {results[label]['llama'][-1]}, sparrow {results[label]['sparrow'][-1]}",
                  file=sys.stderr)
    import llama_cpp
    llama_info = llama_cpp.llama_print_system_info().decode()
    print(f"llama.cpp: {llama_info.strip()}", file=sys.stderr)
    summary = {"date": time.strftime("%Y-%m-%d"), "checkpoint": a.hf, "threads": a.threads,
               "prompt_len": a.prompt_len, "n": a.n, "reps": a.reps, "isa": a.isa, "llama_system_info": llama_info,
               "rows": []}
    if a.reps > 0:
        print_resident(results, pairs, summary)
    if a.budgets:
        summary["budget_rows"] = budget_comparison(a, gguf, pairs, vocab)
        if a.plot:
            from budget_plot import plot
            with open(a.plot, "w") as f:
                f.write(plot(summary["budget_rows"], title=f"{os.path.basename(os.path.normpath(a.hf))}: decode under a "
                             f"memory limit (cold{', teacher-forced' if a.prompt_file else ''})"))
            print(f"wrote {a.plot}")
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
