#!/usr/bin/env python3
"""What one router recognises when it holds every expert's messages.

    scripts/recognition-ceiling.py [--corpus FILE] [--train N] [--queries Q] [--seed S]

Puts N items of every label (default 40: cmr-sim's 2 experts x 20 training posts) into one
fresh state file with cmr-post (each label posted by its own client address), then asks
`cmr-post --search -k 20` for Q held-out items (default 200) and prints, for k = 1, 3, 5,
10 and 20, the share of queries with at least one item of their label among the k related
messages. That is the best a client of a cmr network can expect from k answers chosen by
the matcher when routing is perfect: the recognition ceiling that docs/network.md compares
cmr-sim's success with.

The binaries are taken from $CMR_BIN (a directory), else target/release, else target/debug.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary(name):
    for d in (os.environ.get("CMR_BIN"), f"{root}/target/release", f"{root}/target/debug"):
        if d and os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    sys.exit(f"recognition-ceiling: no {name}: build first (cargo build --release)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=f"{root}/../shared/corpus/fortunes_topics.jsonl")
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    post, route = binary("cmr-post"), binary("cmr-route")
    items = [json.loads(l) for l in open(a.corpus) if l.strip()]
    rnd = random.Random(a.seed)
    by = {}
    for it in items:
        by.setdefault(it["label"], []).append(it)
    train, held = [], []
    for label in sorted(by):
        v = by[label]
        rnd.shuffle(v)
        n = min(a.train, len(v) * 3 // 4)
        train += v[:n]
        held += v[n:]
    rnd.shuffle(held)
    held = held[: a.queries]
    ks = [1, 3, 5, 10, 20]
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, CMR_STATE=os.path.join(d, "state.sqlite"))
        run = lambda args, body=b"": subprocess.run(
            args, input=body, env=env, capture_output=True, check=True
        ).stdout
        run([route, "init", "--address", "http://ceiling.invalid/cmr"])
        label_of = {}
        for it in train:
            who = "mailto:" + "".join(c if c.isalnum() else "_" for c in it["label"]) + "@x.invalid"
            run([post, "--from", who, "-k", "0"], it["text"].encode())
            label_of[it["text"].strip()] = it["label"]
        hits = dict.fromkeys(ks, 0)
        for q in held:
            out = json.loads(run([post, "--search", "-k", "20", "--json"], q["text"].encode()))
            related = out["related"] if isinstance(out, dict) else out
            labels = [label_of.get(r["body"].strip()) for r in related]
            for k in ks:
                hits[k] += q["label"] in labels[:k]
    print(f"corpus {a.corpus}: {len(by)} labels, {len(train)} items posted, {len(held)} queries")
    for k in ks:
        print(f"k={k:<3} at least one related message of the query's label: {hits[k] / len(held):.3f}")


if __name__ == "__main__":
    main()
