#!/usr/bin/env python3
"""Plot the cold-start curve (JSON lines of `cargo bench --bench route_eval -- --train N
--json`, e.g. the $OUT of scripts/route-eval-curve.sh) as an SVG: top-1 accuracy against
training messages per peer (log scale; "all" at the right), the engine beside the tf-idf
centroid of the same split, one colour per corpus. Standard library only.

    scripts/routing-curve-plot.py OUT.svg NAME=FILE.jsonl [NAME=FILE.jsonl ...]

A NAME ending in "(before)" draws only its engine curve, dotted (an earlier engine).
"""
import json
import math
import sys

W, H = 720, 440
L, R, T, B = 70, 230, 40, 60
COLORS = ["#1b7837", "#2166ac", "#b2182b", "#762a83", "#e08214"]


def series(path):
    pts = []
    for line in open(path):
        if line.startswith("{"):
            r = json.loads(line)
            n = r.get("train_per_peer")
            pts.append((n, r["top1"][0], r["tfidf_top1"], r["train"] / r["labels"]))
    return pts


def main():
    out, specs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    data = [(name, series(path)) for name, path in specs]
    ns = sorted({n for _, s in data for n, *_ in s if n is not None})
    xs = ns + ["all"]
    lo, hi = math.log(ns[0]), math.log(ns[-1]) + math.log(4)  # "all" one step right

    def x(n):
        v = hi if n is None else math.log(n)
        return L + (v - lo) / (hi - lo) * (W - L - R)

    def y(a):
        return T + (1 - a / 0.8) * (H - T - B)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="20" font-size="14">Cold start: top-1 accuracy against training '
           f'messages per peer</text>']
    for a in [0, 0.2, 0.4, 0.6, 0.8]:
        svg.append(f'<line x1="{L}" x2="{W - R}" y1="{y(a):.1f}" y2="{y(a):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{L - 8}" y="{y(a) + 4:.1f}" text-anchor="end">{a:.1f}</text>')
    for n in xs:
        xv = x(None if n == "all" else n)
        svg.append(f'<text x="{xv:.1f}" y="{H - B + 18}" text-anchor="middle">{n}</text>')
    svg.append(f'<text x="{(L + W - R) / 2}" y="{H - 15}" text-anchor="middle">'
               f'training messages per peer (its most recent)</text>')
    svg.append(f'<text x="18" y="{(T + H - B) / 2}" transform="rotate(-90 18 {(T + H - B) / 2})" '
               f'text-anchor="middle">top-1</text>')
    legend = []
    ci = 0
    for name, pts in data:
        before = name.endswith("(before)")
        if not before:
            c = COLORS[ci % len(COLORS)]
            ci += 1
        pts = sorted(pts, key=lambda p: math.inf if p[0] is None else p[0])
        curves = [("engine", 1, "" if not before else "2,3")]
        if not before:
            curves.append(("tf-idf centroid", 2, "6,4"))
        for label, k, dash in curves:
            path = " ".join(f"{x(p[0]):.1f},{y(p[k]):.1f}" for p in pts)
            svg.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2" '
                       f'stroke-dasharray="{dash}"/>')
            for p in pts:
                svg.append(f'<circle cx="{x(p[0]):.1f}" cy="{y(p[k]):.1f}" r="3" fill="{c}"/>')
            legend.append((f"{name}: {label}" if not before else name, c, dash))
    for i, (text, c, dash) in enumerate(legend):
        ly = T + 10 + i * 20
        svg.append(f'<line x1="{W - R + 15}" x2="{W - R + 45}" y1="{ly}" y2="{ly}" stroke="{c}" '
                   f'stroke-width="2" stroke-dasharray="{dash}"/>')
        svg.append(f'<text x="{W - R + 50}" y="{ly + 4}">{text}</text>')
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg) + "\n")


main()
