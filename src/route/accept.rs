//! A3 step 6: cache the message, let the matcher learn it, and queue its forwards (3.2
//! routing, A3 forwards of matched messages, 3.2 compensatory replies), each one through the
//! relay policy ([`crate::contact`]).

use super::matching::Matcher;
use super::select::{selected_peers, Plan};
use super::{forward, Decision, Forward, Matched, Outcome, PeerScore, RefusedForward, Transport};
use crate::exit::Failure;
use crate::state::{self, cache, log as dlog, settings::Settings};
use crate::wire::Message;

/// Cache `msg`, let the matcher learn it, and queue its forwards (A3, 3.2, 3.3), in this
/// order: cache and learn; route X to the selected peers (3.2), or a compensatory reply
/// to a selected peer that is one of X's senders; then for each matched message Y,
/// forward X to Y's header and Y to X's header (A3).
#[allow(clippy::too_many_arguments)]
pub(crate) fn accept(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    matcher: &dyn Matcher,
    msg: &Message,
    sender: &str,
    via: Transport,
    client: bool,
    plan: &Plan,
    d: &mut Decision,
) -> Result<i64, Failure> {
    let id = cache::insert(tx, msg, sender, via.as_str(), client, d.verified)?;
    // An alias's messages teach its peer's context.
    matcher.learn(tx, id, settings.peer_of(sender), msg.body())?;
    d.cache_id = Some(id);
    d.accepted = true;
    d.outcome = if client {
        Outcome::Posted
    } else {
        Outcome::Accepted
    };
    d.scores = plan
        .scores
        .iter()
        .map(|(p, s)| PeerScore {
            peer: p.clone(),
            score: *s,
        })
        .collect();
    d.best_peer = plan.scores.first().map(|(p, _)| p.clone());
    let cap = super::explore::forward_cap(settings, msg, d);
    let q = Queuer {
        tx,
        settings,
        max: cap.max,
        answers_only: cap.answers_only,
        cause: crate::contact::Cause {
            sender,
            verified: d.verified,
            client,
        },
    };
    match plan.answers {
        // Set only for a peer's message, with `answers_return` on (select::plan).
        Some(x) => {
            d.notes.push(format!(
                "3.1: older than message {x}, which passed through us, and close to it: an \
                 answer on its way back, sent along that message's path only"
            ));
            // The path it returns along bounds it, not its own header's length.
            let back = Queuer {
                max: settings.max_forwards as usize,
                answers_only: false,
                ..q
            };
            return_answer(&back, msg, id, x, plan, d)?;
        }
        // Section 4 bulk posting (`route::bulk`): cached, forwarded to no one.
        _ if plan.near_duplicate.is_some() => hold_as_bulk(settings, plan, d),
        _ => {
            route_to_peers(&q, msg, id, client, plan, d)?;
            forward_matches(&q, msg, id, client, plan, d)?;
            explore(&q, msg, id, plan, d)?;
            walk(&q, msg, id, plan, d)?;
            spread(&q, msg, id, client, d)?;
        }
    }
    if !client {
        answer_open_posts(tx, settings, matcher, id, msg)?;
    }
    if q.max > 0 && d.forwards.len() >= q.max {
        d.notes.push(format!("3.3: max_forwards {} reached", q.max));
    }
    Ok(id)
}

/// Section 4 bulk posting: a near-copy of a recent message of the same creator is cached
/// and forwarded to no one; the decision names what it copies.
fn hold_as_bulk(settings: &Settings, plan: &Plan, d: &mut Decision) {
    if let Some((row, r)) = plan.near_duplicate {
        d.near_duplicate_of = Some(row);
        d.notes.push(format!(
            "Section 4 bulk posting: nearly a copy of cache row {row} from the same creator \
             (resemblance {r:.3}, bulk_resemblance {}): cached, not forwarded",
            settings.bulk_resemblance.unwrap_or_default()
        ));
    }
}

/// Queues one forward at a time, within `max_forwards`, through the relay policy.
pub(super) struct Queuer<'a> {
    pub(super) tx: &'a rusqlite::Transaction<'a>,
    pub(super) settings: &'a Settings,
    pub(super) max: usize,
    /// Only matched messages back along the header (`y`): the hop limit (3.3).
    pub(super) answers_only: bool,
    pub(super) cause: crate::contact::Cause<'a>,
}

impl Queuer<'_> {
    /// Queue `m` (cache row `mid`; `what`: x, y or z) for `dest`. True when it was queued
    /// (or held for a key exchange); a refusal by the relay policy is recorded in `d`.
    pub(super) fn queue(
        &self,
        d: &mut Decision,
        what: &'static str,
        m: &Message,
        mid: i64,
        dest: &str,
        why: String,
    ) -> Result<bool, Failure> {
        let (tx, settings) = (self.tx, self.settings);
        if d.forwards.len() >= self.max || (self.answers_only && what != "y") {
            return Ok(false);
        }
        // Never to us, never to an address (or another address of a peer) already in the
        // forwarded message's header.
        if settings.is_own(dest.as_bytes()) || settings.peer_in_header(m, dest) {
            return Ok(false);
        }
        let (outbox_id, b) = match forward::queue(tx, settings, m, mid, dest, what, &self.cause)? {
            forward::Queued::Queued(id, b) => (Some(id), b),
            forward::Queued::Held(b) => (None, b),
            forward::Queued::Skipped => return Ok(false),
            forward::Queued::Refused(r) => {
                dlog::bump(tx, "relay", r.code, 1)?;
                d.refused.push(RefusedForward {
                    dest: dest.to_string(),
                    what,
                    cache_id: mid,
                    code: r.code,
                    reason: r.reason,
                });
                return Ok(false);
            }
        };
        d.forwards.push(Forward {
            dest: dest.to_string(),
            what,
            cache_id: mid,
            why,
            held: outbox_id.is_none(),
            outbox_id,
            timestamp: b.timestamp.map(|t| t.to_string()),
            signed: b.signed,
        });
        Ok(true)
    }
}

/// 3.2 / 3.3: route X (cache row `id`) to the best peer, and to peers within the margin of
/// it; a selected peer that is one of X's senders gets a compensatory reply instead.
fn route_to_peers(
    q: &Queuer,
    msg: &Message,
    id: i64,
    client: bool,
    plan: &Plan,
    d: &mut Decision,
) -> Result<(), Failure> {
    let settings = q.settings;
    let mut selected = selected_peers(settings, &plan.scores);
    if client && settings.post_to_best {
        // 3.1: Alice "doesn't know who might know, but knows Bob ... She asks Bob." The 3.3
        // threshold bounds what a router relays; a new post from our own client is one
        // message, and it goes at least to the `post_fanout` best peers we know.
        for best in &plan.scores {
            if selected.len() >= settings.post_fanout as usize {
                break;
            }
            if selected.iter().any(|(p, _)| p == &best.0) {
                continue;
            }
            d.notes.push(format!(
                "3.1: our client's post also goes to {} (score {:.4}, not selected by 3.2 with distance_threshold {}; post_routing best, post_fanout {})",
                best.0, best.1, settings.distance_threshold, settings.post_fanout
            ));
            selected.push(best.clone());
        }
    }
    if !plan.scores.is_empty() && selected.is_empty() {
        d.notes.push(format!(
            "3.3: best score {:.4} is above distance_threshold {}: not routed to a peer",
            plan.scores[0].1, settings.distance_threshold
        ));
    }
    for (peer, score) in &selected {
        if settings.peer_in_header(msg, peer) {
            compensatory_reply(q, peer, *score, plan, d)?;
        } else {
            let why = format!("3.2 routing: score {score:.4}");
            q.queue(d, "x", msg, id, peer, why)?;
        }
    }
    Ok(())
}

/// 3.2: "If Bob is one of the senders of X, then Alice should keep X rather than send it
/// back ... send a different message back to Bob": the best candidate not sent to him yet.
fn compensatory_reply(
    q: &Queuer,
    peer: &str,
    score: f64,
    plan: &Plan,
    d: &mut Decision,
) -> Result<(), Failure> {
    let cands = plan
        .compensation
        .iter()
        .find(|(p, _)| p == peer)
        .map(|(_, c)| c.as_slice())
        .unwrap_or(&[]);
    for &z in cands {
        let Some(row) = cache::get(q.tx, z)? else {
            continue;
        };
        let zm = row.message()?;
        let why =
            format!("3.2 compensatory reply: {peer} (score {score:.4}) is one of the senders");
        if q.queue(d, "z", &zm, z, peer, why)? {
            return Ok(());
        }
    }
    d.notes.push(format!(
        "3.2: {peer} is one of the senders; no compensatory reply left to send"
    ));
    Ok(())
}

/// A header's addresses, oldest first (the creator, then the routers it came through).
fn addresses_oldest_first(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.ids().map(|i| i.address_str().into_owned()).collect();
    v.reverse();
    v
}

/// A3: "For each message Y matched to X, it should forward X to zero or more addresses
/// that appear in the header of Y, and forward Y to zero or more addresses that appear in
/// the header of X."
fn forward_matches(
    q: &Queuer,
    msg: &Message,
    id: i64,
    client: bool,
    plan: &Plan,
    d: &mut Decision,
) -> Result<(), Failure> {
    let per_match = q.settings.forwards_per_match as usize;
    let x_addrs = addresses_oldest_first(msg);
    for &(yid, score) in &plan.related {
        let Some(y) = matched(q.tx, id, yid, score, client, d)? else {
            continue;
        };
        // X to Y's creator first (who posted the similar message), then the routers it
        // came through, oldest first.
        let mut n = 0;
        for a in &addresses_oldest_first(&y) {
            if n >= per_match {
                break;
            }
            let why = format!("A3: matched cached message {yid} (score {score:.4})");
            if q.queue(d, "x", msg, id, a, why)? {
                n += 1;
            }
        }
        // Y back along X's header: to everyone X passed (3.1 "sending those responses
        // back to the originator as well as any peers through which X was routed"), or,
        // with `answers_to origin`, to its originator only ([`answer_addresses`]).
        for a in answer_addresses(q, &y, &x_addrs)? {
            let why = format!("A3: matched by the new message (score {score:.4})");
            q.queue(d, "y", &y, yid, a, why)?;
        }
    }
    Ok(())
}

/// Where a match Y of X goes: "forward Y to zero or more addresses that appear in the
/// header of X" (A3). `answers_to path`: every address of X's header, the originator first
/// (3.1: "back to the originator as well as any peers through which X was routed").
/// `answers_to origin`: X's originator only; and, when X came through other routers, not
/// at all if X's immediate sender holds Y (it is in Y's header, or we sent Y to it): that
/// router matched X against its own cache, Y included, before it sent X on, and answered
/// the originator with what it found closest (3.3: no duplicates).
fn answer_addresses<'a>(
    q: &Queuer,
    y: &Message,
    x_addrs: &'a [String],
) -> Result<&'a [String], Failure> {
    if !q.settings.answers_to_origin || x_addrs.len() < 2 {
        return Ok(x_addrs);
    }
    let sender = q.cause.sender;
    if q.settings.peer_in_header(y, sender)
        || crate::state::outbox::seen(q.tx, sender, &y.origin().key())?
    {
        return Ok(&[]);
    }
    Ok(&x_addrs[..1])
}

/// 3.1: "sending those responses back to the originator as well as any peers through
/// which X was routed." The message just cached (row `id`) is an answer on its way back
/// to X (row `x`, `select::returns_along`): it goes on along X's header, the originator
/// first, and is routed no further (an answer that every router on its way matched and
/// forwarded again would cost a cascade of its own, 3.3). Our clients' posts among its
/// matches still get it in their replies.
fn return_answer(
    q: &Queuer,
    msg: &Message,
    id: i64,
    x: i64,
    plan: &Plan,
    d: &mut Decision,
) -> Result<(), Failure> {
    // A3 sends a match "to zero or more addresses that appear in the header of X": a peer
    // that had X from us, signed (its answer verified with the same key), had our header
    // lines too, and sent its answer to every address of it already. Sent again from
    // here, it would reach each of them twice.
    let whole_path = q.settings.answers_return >= 2 && plan.answers_our_forward && d.verified;
    for &(yid, score) in &plan.related {
        let Some(y) = matched(q.tx, id, yid, score, false, d)? else {
            continue;
        };
        if yid != x {
            continue;
        }
        if whole_path {
            d.notes.push(format!(
                "3.1 answer to message {x}: its sender had it from us, signed, and sent it along its whole header; not sent again"
            ));
            continue;
        }
        for a in &addresses_oldest_first(&y) {
            let why = format!("3.1 answer: back along the path of message {x} (score {score:.4})");
            q.queue(d, "x", msg, id, a, why)?;
        }
    }
    Ok(())
}

/// Record the match of the message just cached (row `id`, from our client when `client`)
/// to cache row `yid`, and return that message (None when the row is gone). A1: when
/// `yid` is our client's post and the new message is not, the new message is one of the
/// related messages "posted later by other clients": it goes into the post's replies.
fn matched(
    tx: &rusqlite::Transaction,
    id: i64,
    yid: i64,
    score: f64,
    client: bool,
    d: &mut Decision,
) -> Result<Option<Message>, Failure> {
    let Some(row) = cache::get(tx, yid)? else {
        return Ok(None);
    };
    let y = row.message()?;
    if row.client && !client {
        to_inbox(tx, yid, id, score)?;
    }
    d.matched.push(Matched {
        cache_id: yid,
        score,
        origin: String::from_utf8_lossy(&y.origin().line()).into_owned(),
        sender: row.sender.clone(),
    });
    Ok(Some(y))
}

/// Our clients' open posts: the `reply_watch` most recent within `reply_window`.
fn open_posts(tx: &rusqlite::Transaction, settings: &Settings) -> Result<Vec<i64>, Failure> {
    if settings.reply_window == 0 || settings.reply_watch == 0 {
        return Ok(Vec::new());
    }
    let (_, now) = state::now();
    let mut st = tx
        .prepare_cached(
            // cache_client_posts: the partial index holds only our clients' posts.
            "SELECT id FROM cache INDEXED BY cache_client_posts
             WHERE client = 1 AND arrived_unix >= ?1
             ORDER BY arrived_unix DESC LIMIT ?2",
        )
        .map_err(state::db_failure)?;
    let rows = st
        .query_map(
            rusqlite::params![
                now - settings.reply_window as f64,
                settings.reply_watch as i64
            ],
            |r| r.get(0),
        )
        .map_err(state::db_failure)?;
    rows.collect::<Result<_, _>>().map_err(state::db_failure)
}

/// Put cache row `id` in the replies of our client's post `post`.
fn to_inbox(tx: &rusqlite::Transaction, post: i64, id: i64, score: f64) -> Result<(), Failure> {
    let (now, _) = state::now();
    tx.prepare_cached(
        "INSERT OR IGNORE INTO client_inbox(post_id, cache_id, score, at) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(state::db_failure)?
    .execute(rusqlite::params![post, id, score, now])
    .map_err(state::db_failure)?;
    Ok(())
}

/// A1: a client's post retrieves related messages "either already in the pool or that are
/// posted later by other clients". The message just cached (`msg`, row `id`) is one of those for
/// each of our clients' open posts (the `reply_watch` most recent, within `reply_window`
/// seconds) that would now count it among its `related_k` related messages: ranked from
/// the post's side, as `cmr-post` ranked the pool when it was posted. (The match from the
/// new message's side, in [`forward_matches`], misses an answer whenever the answer has
/// closer relatives here than the post.) With `replies_from_asked`, also each post it
/// answers from a router the post was sent to ([`answers_our_ask`]), unranked.
fn answer_open_posts(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    matcher: &dyn Matcher,
    id: i64,
    msg: &Message,
) -> Result<(), Failure> {
    if settings.related_k == 0 {
        return Ok(());
    }
    let body = msg.body();
    for post in open_posts(tx, settings)? {
        let Some(row) = cache::get(tx, post)? else {
            continue;
        };
        if settings.replies_from_asked && answers_our_ask(tx, msg, &row.message()?)? {
            // Ranked by no one here: the score of a message that does not help.
            to_inbox(tx, post, id, 1.0)?;
            continue;
        }
        // Most arriving messages share none of a post's rarest words: no ranking needed.
        if !matcher.may_relate(tx, row.body(), id, body)? {
            continue;
        }
        let related = matcher.related(tx, row.body(), settings.related_k as usize + 1)?;
        // The post itself may rank first: it is not its own reply.
        let hit = related
            .iter()
            .filter(|(c, _)| *c != post)
            .take(settings.related_k as usize)
            .find(|(c, _)| *c == id);
        if let Some(&(_, score)) = hit {
            if score <= settings.match_threshold {
                to_inbox(tx, post, id, score)?;
            }
        }
    }
    Ok(())
}

/// `replies_from_asked`, for a message we hold already (cache row `row`; A3 rejects the
/// copy that just arrived as a duplicate, and it is not cached or routed again): when it
/// comes from a router we sent one of our clients' open posts to, and is older than the
/// post, the router we asked answered the post with it, and it goes into the post's
/// replies. The client saw the pool's `related_k` closest when it posted; a cached
/// message the router asked picked for the post may not have been among them.
pub(crate) fn duplicate_answers_our_ask(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    row: i64,
    msg: &Message,
) -> Result<usize, Failure> {
    if !settings.replies_from_asked || settings.related_k == 0 || row == 0 {
        return Ok(0);
    }
    let mut n = 0;
    for post in open_posts(tx, settings)? {
        let Some(p) = cache::get(tx, post)? else {
            continue;
        };
        if post != row && answers_our_ask(tx, msg, &p.message()?)? {
            to_inbox(tx, post, row, 1.0)?;
            n += 1;
        }
    }
    Ok(n)
}

/// `replies_from_asked`: `m` was cached before our client's post `p` was written, and
/// comes from a router we sent `p` to: the router we asked sends what it matched to `p`
/// (A3: "forward Y to zero or more addresses that appear in the header of X"), whatever
/// rank it has among the messages here.
fn answers_our_ask(tx: &rusqlite::Transaction, m: &Message, p: &Message) -> Result<bool, Failure> {
    if m.origin().time() >= p.origin().time() {
        return Ok(false);
    }
    let sender = m.sender().address_str();
    crate::state::outbox::seen(tx, &sender, &p.origin().key())
}

/// 3.1 walk past the hop limit (`walk_hops`): a message whose header has at least
/// `max_hops` and fewer than `walk_hops` lines, cached and answered here, goes on to one
/// keyed or configured neighbour, the best scored that is not in its header (one send
/// beyond `max_forwards`, which the answers here may have spent). Past the hop limit every
/// copy travels on one path, so it costs one send per hop: a walker (Lv et al. 2002) that
/// follows the routing scores. Off by default: docs/network.md measures it.
fn walk(q: &Queuer, msg: &Message, id: i64, plan: &Plan, d: &mut Decision) -> Result<(), Failure> {
    let s = q.settings;
    let lines = msg.ids().len() as u64;
    if s.walk_hops == 0 || s.max_hops == 0 || lines < s.max_hops || lines >= s.walk_hops {
        return Ok(());
    }
    let w = Queuer {
        max: d.forwards.len() + 1,
        answers_only: false,
        ..*q
    };
    for (peer, score) in &plan.scores {
        if !crate::contact::is_known_peer(q.tx, s, peer)? {
            continue;
        }
        let why = format!("3.1 walk: {lines} hop(s) travelled, best neighbour not in its header (score {score:.4})");
        if w.queue(d, "x", msg, id, peer, why)? {
            break;
        }
    }
    Ok(())
}

/// 3.1 spread at the first relay ([`super::explore::spread_targets`]): `spread_fanout`
/// more neighbours, beyond `max_forwards`.
fn spread(
    q: &Queuer,
    msg: &Message,
    id: i64,
    client: bool,
    d: &mut Decision,
) -> Result<(), Failure> {
    if q.settings.spread_fanout == 0 {
        return Ok(()); // off: nothing to look up for every message
    }
    let decided: Vec<String> = d.forwards.iter().map(|f| f.dest.clone()).collect();
    let targets = super::explore::spread_targets(q.tx, q.settings, msg, client, &decided)?;
    let w = Queuer {
        max: d.forwards.len() + targets.len(),
        answers_only: false,
        ..*q
    };
    for dest in targets {
        let why = "3.1 spread: straight from its creator's router, to a neighbour the scores did not choose".to_string();
        w.queue(d, "x", msg, id, &dest, why)?;
    }
    Ok(())
}

/// 3.1: while contexts form, a message nobody here can place explores a few neighbours
/// ([`super::explore`]).
fn explore(
    q: &Queuer,
    msg: &Message,
    id: i64,
    plan: &Plan,
    d: &mut Decision,
) -> Result<(), Failure> {
    let decided: Vec<String> = d.forwards.iter().map(|f| f.dest.clone()).collect();
    let targets = super::explore::targets(
        q.tx,
        q.settings,
        msg,
        &plan.scores,
        !plan.related.is_empty(),
        q.cause.client,
        &decided,
    )?;
    for (dest, why) in targets {
        q.queue(d, "x", msg, id, &dest, why)?;
    }
    Ok(())
}
