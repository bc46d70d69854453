#!/bin/sh
# The cold-start curve of docs/routing.md: route-eval with at most N training messages per
# peer (its most recent), N = 5, 10, 20, 40, 80 and all, the engine beside the tf-idf
# centroid on the same split; a Markdown table on stdout, the JSON lines in $OUT.
#
#   scripts/route-eval-curve.sh                  # open corpus, seeds 1,2,3
#   scripts/route-eval-curve.sh debian           # Debian package descriptions by section
#   scripts/route-eval-curve.sh debian-use       # the same labelled by their debtag use::
#   CORPUS=/path/other.jsonl SEEDS=4,5,6 scripts/route-eval-curve.sh
#   EXTRA='--topic-weight 1' scripts/route-eval-curve.sh    # more route-eval options
#
# "debian" and "debian-use" build their corpus from the package lists apt knows
# (apt-cache dumpavail, scripts/debian-corpus.py) into target/, once.
set -eu
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-1,2,3}
TRAIN=${TRAIN:-5 10 20 40 80 all}
case "${1:-}" in
debian) CORPUS=${CORPUS:-target/debian-descriptions.jsonl}; BUILD= ;;
debian-use) CORPUS=${CORPUS:-target/debian-use.jsonl}; BUILD="--facet use" ;;
esac
if [ -n "${1:-}" ] && [ ! -s "$CORPUS" ]; then
    mkdir -p "$(dirname "$CORPUS")"
    # shellcheck disable=SC2086
    apt-cache dumpavail | python3 scripts/debian-corpus.py $BUILD > "$CORPUS.tmp"
    mv "$CORPUS.tmp" "$CORPUS"
fi
CORPUS=${CORPUS:-../shared/corpus/fortunes_topics.jsonl}
OUT=${OUT:-/dev/null}
echo "corpus $CORPUS ($(wc -l < "$CORPUS") items), seeds $SEEDS"
echo "| N per peer | training messages | engine top-1 | tf-idf centroid top-1 | difference |"
echo "|-----------|-------------------|--------------|-----------------------|------------|"
for n in $TRAIN; do
    set -- --corpus "$CORPUS" --seed "$SEEDS" --no-recall --json
    [ "$n" = all ] || set -- "$@" --train "$n"
    # shellcheck disable=SC2086
    set -- "$@" ${EXTRA:-}
    cargo bench -q --bench route_eval -- "$@" | grep '^{' | tee -a "$OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
e, t = d["top1"][0], d["tfidf_top1"]
print("| %s | %d | %.4f | %.4f | %+.4f |" % (sys.argv[1], d["train"], e, t, e - t))' "$n"
done
