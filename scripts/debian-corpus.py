#!/usr/bin/env python3
"""Build a route-eval corpus from the Debian package lists this machine's apt knows.

    apt-cache dumpavail | scripts/debian-corpus.py > debian.jsonl          # short descriptions
    apt-cache dumpavail | scripts/debian-corpus.py --long > debian-long.jsonl
    apt-cache dumpavail | scripts/debian-corpus.py --facet use > debian-use.jsonl

One JSON line per package: {"id": "debian/<section>/<package>", "label": <section>, "text": ...},
the section without its archive area ("contrib/net" is "net"), the text the package's short
description (the first line of Description), with --long also the long description.
With --facet F the label is instead the package's one debtag of facet F ("use" labels
"use::editing" as "editing"); packages with none or several such tags are left out.
Packages are taken in the order of the lists, the first of each name only, at most --max
(default 500) per label. Reads stdin, writes stdout.
"""
import json
import sys


def packages(lines):
    rec = {}
    field = None
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            if rec:
                yield rec
            rec, field = {}, None
        elif line[0] in " \t":
            if field:
                rec[field] += "\n" + line[1:]
        elif ":" in line:
            field, _, value = line.partition(":")
            rec[field] = value.strip()
    if rec:
        yield rec


def main():
    long_ = "--long" in sys.argv
    cap = 500
    facet = None
    if "--facet" in sys.argv:
        facet = sys.argv[sys.argv.index("--facet") + 1] + "::"
    if "--max" in sys.argv:
        cap = int(sys.argv[sys.argv.index("--max") + 1])
    seen = set()
    per = {}
    for p in packages(sys.stdin):
        name, sec, desc = p.get("Package"), p.get("Section"), p.get("Description")
        if not name or not sec or not desc or name in seen:
            continue
        seen.add(name)
        sec = sec.split("/")[-1]
        if facet:
            tags = [t.strip() for t in p.get("Tag", "").replace("\n", " ").split(",")]
            tags = [t[len(facet):] for t in tags if t.startswith(facet)]
            if len(tags) != 1:
                continue
            sec = tags[0]
        if per.get(sec, 0) >= cap:
            continue
        per[sec] = per.get(sec, 0) + 1
        text = desc if long_ else desc.split("\n")[0]
        text = "\n".join("" if l.strip() == "." else l for l in text.split("\n"))
        print(json.dumps({"id": f"debian/{sec}/{name}", "label": sec, "text": text}))


main()
