#!/bin/sh
# Reproduce the routing results of docs/routing.md: route-eval (corpus README protocol)
# for every compressor x metric, the end-to-end run through cmr-route, and the plot.
#
#   scripts/route-eval-all.sh                      # open corpus, seeds 1,2,3
#   CORPUS=/path/other.jsonl SEEDS=1 scripts/route-eval-all.sh
#
# Writes docs/routing-results.jsonl (one JSON line per run) and docs/routing.svg.
# xz over 18 peer contexts of 32 KB takes minutes per seed; set COMPRESSORS to skip it.
# The cold-start curve (route-eval --train N beside the tf-idf centroid) is
# scripts/route-eval-curve.sh [debian].
set -eu
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-1,2,3}
COMPRESSORS=${COMPRESSORS:-model deflate xz}
OUT=${OUT:-docs/routing-results.jsonl}
PLOT=${PLOT:-docs/routing.svg}
set -- --seed "$SEEDS" --json
if [ -n "${CORPUS:-}" ]; then set -- "$@" --corpus "$CORPUS"; fi

: > "$OUT"
for c in $COMPRESSORS; do
    extra=--no-recall
    # the shortlist's recall does not depend on the compressor: measure it once
    [ "$c" = model ] && extra=
    cargo bench -q --bench route_eval -- "$@" --compressor "$c" --metric d,d-rel,cond,ncd $extra \
        | tee /dev/stderr | grep '^{' >> "$OUT"
done
# the default setting end to end: every query in a fresh cmr-route process
cargo bench -q --bench route_eval -- "$@" --e2e --no-recall | tee /dev/stderr | grep '^{' \
    | sed 's/^{/{"run":"e2e",/' >> "$OUT"
grep -v '"run":"e2e"' "$OUT" > "$OUT.plot"
python3 scripts/routing-plot.py "$OUT.plot" "$PLOT"
rm -f "$OUT.plot"
echo "wrote $OUT and $PLOT"
