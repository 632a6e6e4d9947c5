"""The comparison under memory limits as one SVG: decode tokens/s against the limit (% of the Q4_0
GGUF) for llama.cpp, Sparrow's defaults and Sparrow on demand, with Sparrow's I/O ceiling as a
dashed line; a log axis where the values span more than 20×; ticks at round numbers."""
import math

SERIES = [
    ("llama_decode", "llama.cpp (mmap, memory cgroup)", "#c0392b", ""),
    ("on_demand_decode", "Sparrow on demand (best of LRU/LFU)", "#7f8c8d", ""),
    ("sparrow_decode", "Sparrow, defaults (only --budget)", "#2471a3", ""),
    ("io_ceiling", "Sparrow's I/O ceiling (bandwidth ÷ bytes read per token)", "#2471a3", "6,4"),
]


def round_ticks(lo, hi, log):
    """Ticks at 1, 2, 5 × 10^k (log) or at a round step (linear) covering lo…hi."""
    if log:
        ticks = []
        for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
            for m in (1, 2, 5):
                v = m * 10.0 ** k
                if lo <= v <= hi:
                    ticks.append(v)
        return ticks
    span = hi - lo
    step = 10 ** (math.floor(math.log10(span)) - 1) if span > 0 else 1
    for m in (1, 2, 5, 10):
        if span / (step * m) <= 6:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def label(v):
    return f"{v:g}" if v >= 1 else f"{v:.2g}"


def plot(rows, title, width=760, height=440):
    points = {key: [(r["percent"], r[key]) for r in rows if r.get(key)] for key, *_ in SERIES}
    values = [v for pts in points.values() for _, v in pts]
    if not values:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='400' height='40'><text x='10' y='25'>no data</text></svg>"
    lo, hi = min(values), max(values)
    log = hi / lo > 20
    if log:
        lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
    else:
        lo, hi = 0, hi * 1.1
    left, right, top, bottom = 70, 20, 40, 110
    pw, ph = width - left - right, height - top - bottom
    xmax = max(100, max(r["percent"] for r in rows))

    def x(p):
        return left + pw * p / xmax

    def y(v):
        f = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) if log else (v - lo) / (hi - lo)
        return top + ph * (1 - f)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
           f"font-size='12'>", f"<text x='{left}' y='22' font-size='14'>{title}</text>"]
    for t in round_ticks(lo, hi, log):
        out.append(f"<line x1='{left}' x2='{left + pw}' y1='{y(t):.1f}' y2='{y(t):.1f}' stroke='#e5e5e5'/>")
        out.append(f"<text x='{left - 6}' y='{y(t) + 4:.1f}' text-anchor='end'>{label(t)}</text>")
    for t in round_ticks(0, xmax, False):
        out.append(f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top}' y2='{top + ph}' stroke='#f0f0f0'/>")
        out.append(f"<text x='{x(t):.1f}' y='{top + ph + 16}' text-anchor='middle'>{label(t)} %</text>")
    out.append(f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#888'/>")
    out.append(f"<text x='{left + pw / 2}' y='{top + ph + 34}' text-anchor='middle'>memory limit (% of the Q4_0 GGUF)</text>")
    out.append(f"<text transform='translate(18,{top + ph / 2}) rotate(-90)' text-anchor='middle'>decode tokens/s"
               f"{' (log scale)' if log else ''}</text>")
    for i, (key, name, color, dash) in enumerate(SERIES):
        pts = sorted(points[key])
        if not pts:
            continue
        d = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in pts)
        out.append(f"<polyline points='{d}' fill='none' stroke='{color}' stroke-width='2'"
                   f"{f' stroke-dasharray={chr(39)}{dash}{chr(39)}' if dash else ''}/>")
        if not dash:
            for p, v in pts:
                out.append(f"<circle cx='{x(p):.1f}' cy='{y(v):.1f}' r='3.5' fill='{color}'>"
                           f"<title>{name}: {v:.2f} tok/s at {p:.0f} %</title></circle>")
        ly = top + ph + 52 + 14 * i
        out.append(f"<line x1='{left}' x2='{left + 24}' y1='{ly - 4}' y2='{ly - 4}' stroke='{color}' stroke-width='2'"
                   f"{f' stroke-dasharray={chr(39)}{dash}{chr(39)}' if dash else ''}/>")
        out.append(f"<text x='{left + 30}' y='{ly}'>{name}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
