#!/usr/bin/env python3
"""Plot route-eval results (JSON lines from `cargo bench --bench route_eval -- --json`) as an
SVG: top-1 accuracy against milliseconds per routing decision (log scale), one point per
compressor x metric. Standard library only.

    scripts/routing-plot.py docs/routing-results.jsonl docs/routing.svg
"""
import json
import math
import sys

W, H = 720, 440
L, R, T, B = 70, 170, 40, 60  # margins
COLORS = {"model": "#1b7837", "deflate": "#2166ac", "xz": "#b2182b"}
SHAPES = {"d": "square", "d-rel": "diamond", "cond": "circle", "ncd": "triangle"}


def points(path):
    pts = []
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        times = r.get("decide_cpu_ms") or r["decide_ms"]
        for m, acc, ms in zip(r["metric"], r["top1"], times):
            pts.append((r["compressor"], m, acc, ms))
    return pts


def marker(shape, x, y, color):
    s = 6
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{s}" fill="{color}"/>'
    if shape == "square":
        return f'<rect x="{x-s:.1f}" y="{y-s:.1f}" width="{2*s}" height="{2*s}" fill="{color}"/>'
    if shape == "diamond":
        p = f"{x},{y-s-2} {x+s+2},{y} {x},{y+s+2} {x-s-2},{y}"
        return f'<polygon points="{p}" fill="{color}"/>'
    p = f"{x},{y-s-1} {x+s+1},{y+s} {x-s-1},{y+s}"
    return f'<polygon points="{p}" fill="{color}"/>'


def main():
    src, dst = sys.argv[1], sys.argv[2]
    pts = points(src)
    lo = 10 ** math.floor(math.log10(min(p[3] for p in pts)))
    hi = 10 ** math.ceil(math.log10(max(p[3] for p in pts)))
    pw, ph = W - L - R, H - T - B

    def px(ms):
        return L + pw * (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    def py(acc):
        return T + ph * (1 - acc / 0.6)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{L}" y="22" font-size="14">route-eval, open corpus (18 peers): '
        f"top-1 accuracy against time per routing decision</text>",
    ]
    # grid and axes
    e = int(math.log10(lo))
    while 10 ** e <= hi:
        x = px(10 ** e)
        out.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T+ph}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{T+ph+18}" text-anchor="middle">{10**e:g}</text>')
        e += 1
    for k in range(0, 7):
        a = k / 10
        y = py(a)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L+pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L-8}" y="{y+4:.1f}" text-anchor="end">{a:.1f}</text>')
    y = py(1 / 18)
    out.append(
        f'<line x1="{L}" y1="{y:.1f}" x2="{L+pw}" y2="{y:.1f}" stroke="#888" stroke-dasharray="4 3"/>'
    )
    out.append(f'<text x="{L+pw-4}" y="{y-5:.1f}" text-anchor="end" fill="#666">chance</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(
        f'<text x="{L+pw/2}" y="{H-18}" text-anchor="middle">ms per routing decision '
        f"(CPU, peer scores in the library; log scale)</text>"
    )
    out.append(
        f'<text x="18" y="{T+ph/2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {T+ph/2})">top-1 accuracy</text>'
    )
    for c, m, acc, ms in pts:
        out.append(marker(SHAPES.get(m, "circle"), px(ms), py(acc), COLORS.get(c, "#555")))
    # legend
    lx, ly = L + pw + 20, T + 10
    for i, (c, col) in enumerate(COLORS.items()):
        out.append(f'<rect x="{lx}" y="{ly+i*20-9}" width="12" height="12" fill="{col}"/>')
        out.append(f'<text x="{lx+18}" y="{ly+i*20+1}">{c}</text>')
    ly += 80
    for i, (m, sh) in enumerate(SHAPES.items()):
        out.append(marker(sh, lx + 6, ly + i * 20 - 3, "#555"))
        out.append(f'<text x="{lx+18}" y="{ly+i*20+1}">{m}</text>')
    out.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
