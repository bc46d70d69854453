#!/bin/bash
# Every figure of docs/network.md: cmr-sim runs on the open corpus and the Debian package
# descriptions, written as one JSON file per run under docs/network/ (and the plot
# docs/network.svg). Runs go N at a time (JOBS, default 3).
#
#   scripts/sim-runs.sh            # everything (hours on a loaded 2-core machine)
#   scripts/sim-runs.sh current    # one group: current (the current defaults: the figures
#                                  # docs/network.md leads with), prev (the defaults before
#                                  # the bulk check), wide (wider settings on the
#                                  # current defaults), widen (clients that widen
#                                  # unanswered posts), tried (changes tried on
#                                  # them), spam (how far spam spreads), frontier (success
#                                  # against traffic), origin (answers_to origin),
#                                  # replies (replies_from_asked 1),
#                                  # returns (answers_return 1),
#                                  # answers (the defaults before answers returned), loss (where the failed
#                                  # queries are lost, and what was tried), scale, accept, sweep, seeds,
#                                  # faults, debian, relay (earlier code and defaults)
#
# Needs the shared corpus ($CMR_SHARED, else ../shared) and, for the Debian corpus,
# apt-cache. The relay group needs PRERELAY_BIN: a cmr-sim built before the relay policy
# (issue 14) was merged, e.g. from commit 22dbc66.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin cmr-sim
SIM=target/release/cmr-sim
OUT=docs/network
mkdir -p "$OUT"
JOBS=${JOBS:-3}
export CMR_SHARED=${CMR_SHARED:-../shared}
DEB=${DEB:-$OUT/debian18.jsonl.tmp}
if [ ! -s "$DEB" ] && command -v apt-cache >/dev/null; then
    apt-cache dumpavail | LABELS=18 scripts/sim-corpus-debian.py > "$DEB"
fi

# The defaults before the bulk check, exploration only while the cache is small and
# replies from the router asked (bulk_resemblance 0.5, explore_until 25,
# replies_from_asked 1): every group but current adds them.
PREV="--set explore_until=0 --set bulk_resemblance=off --set replies_from_asked=0"
# answers_return 1: answers return along the whole path, also where the answerer sent them
# along it already (the returns group).
RET1="$PREV --set answers_return=1"
# The defaults before answers returned along the path (the answers and loss groups).
OLD="$PREV --set answers_return=0 --set last_hop_answers=0 --set max_hops=3 --set max_forwards=5"

run() { # NAME ARGS...: one run, its JSON in $OUT/NAME.json
    local name=$1; shift
    echo "cmr-sim $* --json > $OUT/$name.json" >&2
    "${BIN:-$SIM}" "$@" --json > "$OUT/$name.json.part" && mv "$OUT/$name.json.part" "$OUT/$name.json"
}
wait_jobs() { while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 2; done; }
defaults_set() { # PREFIX SETTINGS...: the acceptance run, seeds 2 and 3, the faults, Debian,
    # 1,000 routers, with these settings, in files PREFIX-*.
    local p=$1; shift
    wait_jobs; run "$p-scale-1000" "$@" --routers 1000 --seed 1 --queries 100 &
    wait_jobs; run "$p-accept" "$@" --routers 100 --seed 1 &
    for seed in 2 3; do wait_jobs; run "$p-seed-$seed" "$@" --routers 100 --seed $seed & done
    wait_jobs; run "$p-spam" "$@" --routers 100 --seed 1 --spam 10 &
    wait_jobs; run "$p-churn" "$@" --routers 100 --seed 1 --churn 0.1 &
    wait_jobs; run "$p-forger" "$@" --routers 100 --seed 1 --forger 10 &
    wait_jobs; run "$p-debian" "$@" --routers 100 --seed 1 --corpus "$DEB" &
}

group=${1:-all}
if [ "$group" = all ] || [ "$group" = current ]; then
    # The current defaults (bulk_resemblance 0.5, explore_until 25, replies_from_asked 1,
    # answers_return 2, last_hop_answers 1, max_hops 2, max_forwards 6): the acceptance
    # run, three seeds, the faults (the spammer on three seeds, and one junk message only),
    # Debian, 1,000 routers; and each of the new defaults taken back alone.
    wait_jobs; run bk-scale-1000 --routers 1000 --seed 1 --queries 100 &
    wait_jobs; run bk-accept --routers 100 --seed 1 --plot docs/network.svg &
    for seed in 2 3; do wait_jobs; run "bk-seed-$seed" --routers 100 --seed $seed & done
    for seed in 1 2 3; do
        wait_jobs; run "bk-spam-seed-$seed" --routers 100 --seed $seed --spam 10 &
        wait_jobs; run "bk-spam-once-seed-$seed" --routers 100 --seed $seed --spam 10 --spam-limit 1 &
        wait_jobs; run "bk-bulk-off-seed-$seed" --routers 100 --seed $seed --set bulk_resemblance=off &
        wait_jobs; run "bk-bulk-off-spam-seed-$seed" --routers 100 --seed $seed --spam 10 --set bulk_resemblance=off &
        wait_jobs; run "bk-explore-always-spam-seed-$seed" --routers 100 --seed $seed --spam 10 --set explore_until=0 &
        wait_jobs; run "bk-explore-always-seed-$seed" --routers 100 --seed $seed --set explore_until=0 &
    done
    for k in 2 30; do wait_jobs; run "bk-spam-$k" --routers 100 --seed 1 --spam $k & done
    wait_jobs; run bk-churn --routers 100 --seed 1 --churn 0.1 &
    wait_jobs; run bk-forger --routers 100 --seed 1 --forger 10 &
    wait_jobs; run bk-debian --routers 100 --seed 1 --corpus "$DEB" &
    wait_jobs; run bk-spam-scale-1000 --routers 1000 --seed 1 --queries 100 --spam 10 &
    for seed in 1 2 3; do
        wait_jobs; run "bk-replies-asked-off-seed-$seed" --routers 100 --seed $seed --set replies_from_asked=0 &
        # What the relay policy's first-contact budgets cost on these defaults.
        wait_jobs; run "bk-budgets-off-seed-$seed" --routers 100 --seed $seed --set contact_budget_source=off --set contact_budget_global=off &
    done
    for x in "bulk_resemblance=off" "explore_until=0" "replies_from_asked=0"; do
        wait_jobs; run "bk-scale-1000-${x%%=*}-off" --routers 1000 --seed 1 --queries 100 --set "$x" &
        wait_jobs; run "bk-debian-${x%%=*}-off" --routers 100 --seed 1 --corpus "$DEB" --set "$x" &
    done
    # What spreads the spam now (forwards_by_reason, under CMR_SIM_DIAG).
    wait_jobs; CMR_SIM_DIAG=1 run bk-spam-diag --routers 100 --seed 1 --spam 10 2> /dev/null &
fi
if [ "$group" = all ] || [ "$group" = wide ]; then
    # On the current defaults: answers to the originator only with the wider first step, a
    # wider post and more of what arrives shown as replies; with the spammer, and with one
    # junk message only; three seeds each.
    WIDE="--set answers_to=origin --set spread_fanout=1 --set post_fanout=2 --set answer_depth=50"
    for seed in 1 2 3; do
        wait_jobs; run "wd-seed-$seed" --routers 100 --seed $seed $WIDE &
        wait_jobs; run "wd-spam-seed-$seed" --routers 100 --seed $seed --spam 10 $WIDE &
        wait_jobs; run "wd-spam-once-seed-$seed" --routers 100 --seed $seed --spam 10 --spam-limit 1 $WIDE &
    done
fi
if [ "$group" = all ] || [ "$group" = widen ]; then
    # Clients that widen unanswered posts (cmr-post --widen, --widen-after 2) on the current
    # defaults: three seeds, the spammer (whose clients widen every post) and one junk
    # message only, churn, Debian, 1,000 routers; widening one round earlier and wider;
    # and with the wider settings of the wide group.
    WIDE="--set answers_to=origin --set spread_fanout=1 --set post_fanout=2 --set answer_depth=50"
    for seed in 1 2 3; do
        wait_jobs; run "wn-seed-$seed" --routers 100 --seed $seed --widen-after 2 &
        wait_jobs; run "wn-spam-seed-$seed" --routers 100 --seed $seed --widen-after 2 --spam 10 &
        wait_jobs; run "wn-spam-once-seed-$seed" --routers 100 --seed $seed --widen-after 2 --spam 10 --spam-limit 1 &
        wait_jobs; run "wn-wide-seed-$seed" --routers 100 --seed $seed --widen-after 2 $WIDE &
        wait_jobs; run "wn-wide-spam-seed-$seed" --routers 100 --seed $seed --widen-after 2 --spam 10 $WIDE &
    done
    wait_jobs; run wn-churn --routers 100 --seed 1 --widen-after 2 --churn 0.1 &
    wait_jobs; run wn-forger --routers 100 --seed 1 --widen-after 2 --forger 10 &
    wait_jobs; run wn-debian --routers 100 --seed 1 --widen-after 2 --corpus "$DEB" &
    wait_jobs; run wn-scale-1000 --routers 1000 --seed 1 --queries 100 --widen-after 2 &
    wait_jobs; run wn-after-1 --routers 100 --seed 1 --widen-after 1 &
    wait_jobs; run wn-fanout-3 --routers 100 --seed 1 --widen-after 2 --set widen_fanout=3 &
    # Widening to every neighbour (widen_fanout 6 on a graph of degree 6), after two rounds
    # and after one; widening one round earlier on seeds 2 and 3; three seeds each.
    for seed in 1 2 3; do
        wait_jobs; run "wn-fanout-6-seed-$seed" --routers 100 --seed $seed --widen-after 2 --set widen_fanout=6 &
        wait_jobs; run "wn-fanout-6-after-1-seed-$seed" --routers 100 --seed $seed --widen-after 1 --set widen_fanout=6 &
    done
    for seed in 2 3; do wait_jobs; run "wn-after-1-seed-$seed" --routers 100 --seed $seed --widen-after 1 & done
fi
if [ "$group" = all ] || [ "$group" = prev ]; then
    # The defaults before the bulk check ($PREV).
    defaults_set cur $PREV
fi
if [ "$group" = all ] || [ "$group" = tried ]; then
    # Tried on the current defaults, seed 1: a walk past the hop limit (walk_hops), answers
    # recognised among fewer cached messages (answer_depth), no first-contact budgets; the
    # spammer at 2 and 30 times the normal rate; where the failed queries are lost.
    for w in 4 6; do wait_jobs; run "tried-walk-$w" $PREV --routers 100 --seed 1 --set walk_hops=$w & done
    for a in 3 5 80; do wait_jobs; run "tried-answer-depth-$a" $PREV --routers 100 --seed 1 --set answer_depth=$a & done
    wait_jobs; run tried-budgets-off $PREV --routers 100 --seed 1 --set contact_budget_source=off --set contact_budget_global=off &
    for f in 4 6; do wait_jobs; run "tried-explore-fanout-$f" $PREV --routers 100 --seed 1 --set explore_fanout=$f & done
    for t in 0.98 1.0; do wait_jobs; run "tried-distance-threshold-$t" $PREV --routers 100 --seed 1 --set distance_threshold=$t & done
    wait_jobs; run tried-max-hops-3-budgets-off $PREV --routers 100 --seed 1 --set max_hops=3 --set contact_budget_source=off --set contact_budget_global=off &
    for k in 2 30; do wait_jobs; run "tried-spam-$k" $PREV --routers 100 --seed 1 --spam $k & done
    wait_jobs; run tried-explore-off $PREV --routers 100 --seed 1 --set explore_fanout=0 &
    wait_jobs; CMR_SIM_DIAG=1 "${BIN:-$SIM}" $PREV --routers 100 --seed 1 2> "$OUT/cur-diag.txt" > /dev/null &
fi
if [ "$group" = all ] || [ "$group" = spam ]; then
    # How far spam spreads on the current defaults: the spammer at 10 times the normal rate
    # on seeds 2 and 3 (seed 1: cur-spam) and on 1,000 routers, one junk message only (--spam-limit 1) on seeds
    # 1 to 3, and narrower exploration (explore_fanout 2) or exploration only while the cache
    # holds fewer than 30 messages (explore_until 30), with and without the spammer.
    for seed in 2 3; do wait_jobs; run "spam-seed-$seed" $PREV --routers 100 --seed $seed --spam 10 & done
    wait_jobs; run spam-scale-1000 $PREV --routers 1000 --seed 1 --queries 100 --spam 10 &
    for seed in 1 2 3; do
        wait_jobs; run "spam-once-seed-$seed" $PREV --routers 100 --seed $seed --spam 10 --spam-limit 1 &
        wait_jobs; run "spam-explore-fanout-2-seed-$seed" $PREV --routers 100 --seed $seed --spam 10 --set explore_fanout=2 &
        wait_jobs; run "explore-fanout-2-seed-$seed" $PREV --routers 100 --seed $seed --set explore_fanout=2 &
        wait_jobs; run "spam-explore-until-30-seed-$seed" $PREV --routers 100 --seed $seed --spam 10 --set explore_until=30 &
        wait_jobs; run "explore-until-30-seed-$seed" $PREV --routers 100 --seed $seed --set explore_until=30 &
    done
    # What spreads the spam when exploration stops at 30 cached messages: the forwards of
    # spam by rule (forwards_by_reason, under CMR_SIM_DIAG).
    wait_jobs; CMR_SIM_DIAG=1 run spam-explore-until-30-diag $PREV --routers 100 --seed 1 --spam 10 --set explore_until=30 2> /dev/null &
fi
if [ "$group" = all ] || [ "$group" = frontier ]; then
    # Success against traffic: a step of the search into neighbours the scores do not
    # choose (spread_fanout), with fewer answers per router (max_forwards 4), and clients
    # that search their router's pool before they post (--search-first); three seeds each.
    for seed in 1 2 3; do
        wait_jobs; run "fr-spread-1-seed-$seed" $PREV --routers 100 --seed $seed --set spread_fanout=1 &
        wait_jobs; run "fr-spread-1-mf4-seed-$seed" $PREV --routers 100 --seed $seed --set spread_fanout=1 --set max_forwards=4 &
        wait_jobs; run "fr-search-first-seed-$seed" $PREV --routers 100 --seed $seed --search-first &
        wait_jobs; run "fr-search-first-spread-1-seed-$seed" $PREV --routers 100 --seed $seed --search-first --set spread_fanout=1 &
    done
    wait_jobs; run fr-search-first-spread-2 $PREV --routers 100 --seed 1 --search-first --set spread_fanout=2 &
    wait_jobs; run fr-spread-1-spam $PREV --routers 100 --seed 1 --spam 10 --set spread_fanout=1 &
    wait_jobs; run fr-spread-1-debian $PREV --routers 100 --seed 1 --corpus "$DEB" --set spread_fanout=1 &
    wait_jobs; run fr-search-first-debian $PREV --routers 100 --seed 1 --corpus "$DEB" --search-first &
    wait_jobs; CMR_SIM_DIAG=1 "${BIN:-$SIM}" $PREV --routers 100 --seed 1 --set spread_fanout=1 2> "$OUT/fr-spread-1-diag.txt" > /dev/null &
fi
if [ "$group" = all ] || [ "$group" = origin ]; then
    # Answers to the originator only (answers_to origin), alone and with a wider first step
    # (spread_fanout 1), and with a wider post (post_fanout 2) and more of what arrives
    # shown as replies (answer_depth 50); what each does to spam, churn and Debian.
    ORIGIN="--set answers_to=origin --set spread_fanout=1"
    WIDE="$ORIGIN --set post_fanout=2 --set answer_depth=50"
    for seed in 1 2 3; do
        wait_jobs; run "or-origin-seed-$seed" $PREV --routers 100 --seed $seed --set answers_to=origin &
        wait_jobs; run "or-spread-seed-$seed" $PREV --routers 100 --seed $seed $ORIGIN &
        wait_jobs; run "or-wide-seed-$seed" $PREV --routers 100 --seed $seed $WIDE &
        wait_jobs; run "or-depth-50-seed-$seed" $PREV --routers 100 --seed $seed --set answer_depth=50 &
        wait_jobs; run "or-spread-spam-seed-$seed" $PREV --routers 100 --seed $seed --spam 10 $ORIGIN &
    done
    wait_jobs; run or-wide-spam $PREV --routers 100 --seed 1 --spam 10 $WIDE &
    wait_jobs; run or-spread-churn $PREV --routers 100 --seed 1 --churn 0.1 $ORIGIN &
    wait_jobs; run or-spread-debian $PREV --routers 100 --seed 1 --corpus "$DEB" $ORIGIN &
    wait_jobs; run or-spread-scale-1000 $PREV --routers 1000 --seed 1 --queries 100 $ORIGIN &
    wait_jobs; CMR_SIM_DIAG=1 "${BIN:-$SIM}" $PREV --routers 100 --seed 1 $ORIGIN 2> "$OUT/or-spread-diag.txt" > /dev/null &
    # What spreads the spam (forwards_by_reason, under CMR_SIM_DIAG).
    wait_jobs; CMR_SIM_DIAG=1 run or-spread-spam-diag $PREV --routers 100 --seed 1 --spam 10 $ORIGIN 2> /dev/null &
fi
if [ "$group" = all ] || [ "$group" = replies ]; then
    # What the router our client's post was sent to sends back is a reply, however it
    # ranks (replies_from_asked 1): three seeds, Debian, 1,000 routers.
    for seed in 1 2 3; do
        wait_jobs; run "rep-asked-seed-$seed" $PREV --routers 100 --seed $seed --set replies_from_asked=1 &
    done
    wait_jobs; run rep-asked-debian $PREV --routers 100 --seed 1 --corpus "$DEB" --set replies_from_asked=1 &
    wait_jobs; run rep-asked-scale-1000 $PREV --routers 1000 --seed 1 --queries 100 --set replies_from_asked=1 &
fi
if [ "$group" = all ] || [ "$group" = returns ]; then
    # The defaults before answers_return 2 (answers return along the whole path:
    # answers_return 1, last_hop_answers 1, max_hops 2, max_forwards 6): the acceptance
    # run, three seeds, the faults, Debian, 1,000 routers, and each of the three taken back.
    defaults_set ret $RET1
    for seed in 1 2 3; do
        n=ret-answers-only; [ $seed = 1 ] || n=ret-answers-only-seed-$seed
        wait_jobs; run $n $RET1 --routers 100 --seed $seed --set last_hop_answers=0 --set max_hops=3 &
        n=ret-match_k-4; [ $seed = 1 ] || n=ret-match_k-4-seed-$seed
        wait_jobs; run $n $RET1 --routers 100 --seed $seed --set match_k=4 &
    done
    wait_jobs; run ret-no-return $PREV --routers 100 --seed 1 --set answers_return=0 &
fi
if [ "$group" = all ] || [ "$group" = answers ]; then
    # The current defaults (answers matched along the path, replies ranked from the post's
    # side, related_k 10, max_forwards 5, contact budgets 60/3600 and 600/3600), the
    # faults, three seeds, Debian, 1,000 routers, and each change taken back alone. Those
    # were the defaults before answers returned along the path: $OLD sets them again.
    wait_jobs; run ans-accept $OLD --routers 100 --seed 1 &
    for seed in 2 3; do wait_jobs; run "ans-seed-$seed" $OLD --routers 100 --seed $seed & done
    wait_jobs; run ans-spam $OLD --routers 100 --seed 1 --spam 10 &
    wait_jobs; run ans-spam-e22 $OLD --routers 100 --seed 1 --spam 10 --set explore_fanout=2 --set explore_hops=2 &
    for seed in 1 2 3; do
        n=ans-e22; [ $seed = 1 ] || n=ans-e22-seed-$seed
        wait_jobs; run $n $OLD --routers 100 --seed $seed --set explore_fanout=2 --set explore_hops=2 &
    done
    wait_jobs; run ans-churn $OLD --routers 100 --seed 1 --churn 0.1 &
    wait_jobs; run ans-forger $OLD --routers 100 --seed 1 --forger 10 &
    wait_jobs; run ans-debian $OLD --routers 100 --seed 1 --corpus "$DEB" &
    wait_jobs; run ans-scale-1000 $OLD --routers 1000 --seed 1 --queries 100 &
    wait_jobs; run ans-old-defaults $OLD --routers 100 --seed 1 --set answer_depth=0 --set reply_window=0 \
        --set related_k=5 --set max_forwards=8 --set contact_budget_source=8/3600 \
        --set contact_budget_global=64/3600 &
    wait_jobs; run ans-no-answer-depth $OLD --routers 100 --seed 1 --set answer_depth=0 &
    wait_jobs; run ans-no-reply-window $OLD --routers 100 --seed 1 --set reply_window=0 &
    wait_jobs; run ans-related_k-5 $OLD --routers 100 --seed 1 --set related_k=5 &
    wait_jobs; run ans-budgets-8 $OLD --routers 100 --seed 1 --set contact_budget_source=8/3600 \
        --set contact_budget_global=64/3600 &
    wait_jobs; run ans-budgets-off $OLD --routers 100 --seed 1 --set contact_budget_source=off \
        --set contact_budget_global=off &
    wait_jobs; run ans-max_forwards-8 $OLD --routers 100 --seed 1 --set max_forwards=8 &
    wait_jobs; run ans-post_fanout-3 $OLD --routers 100 --seed 1 --set post_fanout=3 &
fi
if [ "$group" = all ] || [ "$group" = loss ]; then
    # Where the failed queries of the acceptance run are lost (CMR_SIM_DIAG=1, stderr), and
    # the changes tried against it: answers at the hop limit, every neighbour for a post,
    # exploration only while the cache is small (with and without the spammer); on the
    # defaults before answers returned along the path ($OLD).
    CMR_SIM_DIAG=1 "${BIN:-$SIM}" $OLD --routers 100 --seed 1 2> "$OUT/loss-diag.txt" > /dev/null &
    for seed in 1 2 3; do
        wait_jobs; run "loss-last-hop-answers-seed-$seed" $OLD --routers 100 --seed $seed --set last_hop_answers=1 &
        wait_jobs; run "loss-explore-until-25-seed-$seed" $OLD --routers 100 --seed $seed --set explore_until=25 &
    done
    wait_jobs; run loss-post_fanout-6 $OLD --routers 100 --seed 1 --set post_fanout=6 &
    for k in 4 5; do wait_jobs; run "loss-match_k-$k" $OLD --routers 100 --seed 1 --set match_k=$k & done
    wait_jobs; run loss-explore-until-25-spam $OLD --routers 100 --seed 1 --spam 10 --set explore_until=25 &
fi
if [ "$group" = all ] || [ "$group" = scale ]; then
    wait_jobs; run scale-1000 --routers 1000 --seed 1 --queries 100 &
    for n in 30 300; do wait_jobs; run "scale-$n" --routers $n --seed 1 --queries 100 & done
fi
if [ "$group" = all ] || [ "$group" = accept ]; then
    wait_jobs; run accept --routers 100 --seed 1 &
fi
if [ "$group" = all ] || [ "$group" = sweep ]; then
    # The fan-out settings, one change at a time from the chosen defaults (100 queries).
    for s in "max_hops=0" "max_hops=5" "max_forwards=4" "max_forwards=6" \
             "match_k=1" "match_k=5" "forwards_per_match=2" "explore_fanout=0" \
             "explore_fanout=2" "explore_hops=4" "distance_threshold=0.9" \
             "distance_threshold=0.98" "margin=0" "margin=0.05" "match_threshold=0.6"; do
        wait_jobs; run "sweep-${s/=/-}" --routers 100 --seed 1 --queries 100 --set "$s" &
    done
    wait_jobs; run sweep-defaults --routers 100 --seed 1 --queries 100 &
fi
if [ "$group" = all ] || [ "$group" = seeds ]; then
    # The choice of explore_fanout and forwards_per_match, over three seeds.
    for seed in 1 2 3; do
        wait_jobs; run "seeds-new-$seed" --routers 100 --seed $seed --queries 100 &
        wait_jobs; run "seeds-old-$seed" --routers 100 --seed $seed --queries 100 \
            --set explore_fanout=2 --set forwards_per_match=2 &
        wait_jobs; run "seeds-ef3mf5-$seed" --routers 100 --seed $seed --queries 100 \
            --set forwards_per_match=2 --set max_forwards=5 &
        wait_jobs; run "seeds-eh2-$seed" --routers 100 --seed $seed --queries 100 \
            --set explore_hops=2 &
    done
fi
if [ "$group" = all ] || [ "$group" = faults ]; then
    wait_jobs; run churn --routers 100 --seed 1 --churn 0.1 &
    wait_jobs; run spam --routers 100 --seed 1 --spam 10 &
    wait_jobs; run spam100 --routers 100 --seed 1 --spam 100 &
    wait_jobs; run forger --routers 100 --seed 1 --forger 10 &
    wait_jobs; run spam-explore_until --routers 100 --seed 1 --spam 10 --set explore_until=100 &
    wait_jobs; run explore_until --routers 100 --seed 1 --set explore_until=100 &
    wait_jobs; run spam-explore_hops-2 --routers 100 --seed 1 --spam 10 --set explore_hops=2 &
    wait_jobs; run explore_hops-2 --routers 100 --seed 1 --set explore_hops=2 &
fi
if [ "$group" = all ] || [ "$group" = debian ]; then
    wait_jobs; run debian --routers 100 --seed 1 --corpus "$DEB" &
fi
if [ "$group" = all ] || [ "$group" = relay ]; then
    if [ -n "${PRERELAY_BIN:-}" ]; then
        wait_jobs; BIN=$PRERELAY_BIN run prerelay --routers 100 --seed 1 --set max_hops=3 \
            --set explore_fanout=3 --set forwards_per_match=1 &
    fi
    wait_jobs; run relay-budgets-off --routers 100 --seed 1 --set contact_budget_source=off --set contact_budget_global=off &
fi
wait
