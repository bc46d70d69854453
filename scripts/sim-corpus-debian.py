#!/usr/bin/env python3
"""The Debian package descriptions corpus of docs/routing.md, in the route-eval JSONL shape:
the one-line descriptions of `apt-cache dumpavail`, labelled by section (without the
area prefix, e.g. contrib/), at most PER (500) per section; with LABELS=N, only the N
largest sections (cmr-sim uses 18, as many as the open corpus has).

    apt-cache dumpavail | scripts/sim-corpus-debian.py > debian.jsonl
"""
import json, os, sys, collections

per = int(os.environ.get("PER", "500"))
labels = int(os.environ.get("LABELS", "0"))
by = collections.OrderedDict()
pkg = sec = desc = None
def flush():
    if pkg and sec and desc:
        s = sec.split("/")[-1]
        by.setdefault(s, [])
        if len(by[s]) < per:
            by[s].append((pkg, desc))
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        flush(); pkg = sec = desc = None
    elif line.startswith("Package: "):
        pkg = line[9:]
    elif line.startswith("Section: "):
        sec = line[9:]
    elif line.startswith("Description: "):
        desc = line[13:]
flush()
keep = sorted(by, key=lambda s: (-len(by[s]), s))
if labels:
    keep = keep[:labels]
for s in sorted(keep):
    for p, d in by[s]:
        print(json.dumps({"id": f"debian/{s}/{p}", "label": s, "text": d}))
