//! Matching and the choice of peers (A3 "match X to zero or more cached messages", 3.2,
//! 3.3), worked out on a read snapshot before the write lock is taken.

use super::matching::Matcher;
use crate::exit::Failure;
use crate::state::{cache, peers, settings::Settings, State};
use crate::wire::Message;

/// What the read-only phase worked out: the exact scoring, done before the write lock.
#[derive(Default)]
pub(crate) struct Plan {
    pub related: Vec<(i64, f64)>,
    pub scores: Vec<(String, f64)>,
    /// 3.2 compensatory reply candidates per peer (cache rows, best first).
    pub compensation: Vec<(String, Vec<i64>)>,
    /// With `answers_return`: the message that passed through us which this one, older
    /// and close to it, answers on its way back ([`returns_along`]).
    pub answers: Option<i64>,
    /// The sender of this answer is a peer we sent [`Plan::answers`] to ([`answered`]).
    pub answers_our_forward: bool,
    /// With `bulk_resemblance`: the cached message from the same creator that this one
    /// nearly duplicates, and their resemblance ([`super::bulk::near_duplicate`]).
    pub near_duplicate: Option<(i64, f64)>,
}

/// The read-only part of matching and routing for `msg` (no write lock held).
pub(crate) fn plan(
    state: &State,
    settings: &Settings,
    matcher: &dyn Matcher,
    msg: &Message,
) -> Result<Plan, Failure> {
    let conn = state.conn();
    let body = msg.body();
    let k = settings.match_k as usize;
    // The longer list only when the message may be an answer (from a peer, not our client).
    let answerer = answer_sender(settings, msg);
    let depth = if answerer.is_some() {
        k.max(settings.answer_depth as usize)
    } else {
        k
    };
    let long = matcher.related(conn, body, depth)?;
    let mut p = Plan {
        related: long
            .iter()
            .take(k)
            .filter(|(_, s)| *s <= settings.match_threshold)
            .copied()
            .collect(),
        ..Plan::default()
    };
    if let Some(sender) = answerer {
        plan_answer(conn, settings, msg, &sender, &long, &mut p)?;
    }
    // An answer on its way back goes along the path it answers whatever it resembles
    // (route::accept): the bulk check only for what may be routed.
    if p.answers.is_none() {
        p.near_duplicate = super::bulk::near_duplicate(conn, settings, msg, i64::MAX)?;
    }
    p.scores = peer_scores(conn, settings, matcher, body)?;
    // 3.2: a selected peer that is one of X's senders gets a compensatory reply instead.
    for (peer, _) in selected_peers(settings, &p.scores) {
        if settings.peer_in_header(msg, &peer) {
            let c = compensation_candidates(conn, settings, matcher, msg, &peer)?;
            p.compensation.push((peer, c));
        }
    }
    Ok(p)
}

/// 3.2: the routing scores of `body` for the `max_peers_scored` most recently active peers
/// (not us, not our client), best first.
pub(crate) fn peer_scores(
    conn: &rusqlite::Connection,
    settings: &Settings,
    matcher: &dyn Matcher,
    body: &[u8],
) -> Result<Vec<(String, f64)>, Failure> {
    // One candidate per peer: an alias's messages are its peer's context.
    let mut candidates: Vec<String> = Vec::new();
    for a in peers::recent(conn, settings.max_peers_scored as usize)? {
        let p = settings.peer_of(&a).to_string();
        if !settings.is_own(p.as_bytes())
            && settings.client_address.as_deref() != Some(&p)
            && !candidates.contains(&p)
        {
            candidates.push(p);
        }
    }
    let mut scores = matcher.peer_scores(conn, body, &candidates)?;
    scores.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(scores)
}

/// The answer part of [`plan`] for a message from peer `sender` (`long`: its
/// `answer_depth` closest cached messages): what it answers ([`answered`],
/// [`returns_along`]), added to `p.related`.
fn plan_answer(
    conn: &rusqlite::Connection,
    settings: &Settings,
    msg: &Message,
    sender: &str,
    long: &[(i64, f64)],
    p: &mut Plan,
) -> Result<(), Failure> {
    let direct = answered(conn, settings, sender, long, &p.related)?;
    if let Some(a) = direct {
        p.related.push(a);
    }
    if settings.answers_return == 0 {
        return Ok(());
    }
    let back = returns_along(conn, settings, msg, long)?;
    p.answers = match direct {
        Some((x, _)) if older_than(conn, msg, x)? => Some(x),
        _ => back.along,
    };
    // A1: it answers our client's open post too (its path ends here): matched to it, so
    // it is among the post's replies, whatever message it returns along.
    for post in back.posts {
        if !p.related.iter().any(|(t, _)| *t == post.0) {
            p.related.push(post);
        }
    }
    if let (Some(x), true) = (p.answers, settings.answers_return >= 2) {
        p.answers_our_forward = match direct {
            Some((d, _)) if d == x => true,
            _ => first_sent_to(conn, settings, sender, [x])?.is_some(),
        };
    }
    if let Some(x) = p.answers {
        if !p.related.iter().any(|(t, _)| *t == x) {
            let s = long.iter().find(|(t, _)| *t == x).map_or(0.0, |(_, s)| *s);
            p.related.push((x, s));
        }
    }
    Ok(())
}

/// What [`returns_along`] found: the message an answer returns along, and our clients'
/// open posts it answers.
struct Returns {
    along: Option<i64>,
    posts: Vec<(i64, f64)>,
}

/// 3.1: "routing X to the peers that hold messages close to it, and sending those responses
/// back to the originator as well as any peers through which X was routed." A message Y
/// from peer S may be S's answer to a message X we sent S. Then X is matched to Y although
/// other cached messages may be closer to Y: of the `answer_depth` cached messages closest
/// to Y, the closest that we sent to S within `reply_window` (and within
/// `match_threshold`). A3 then forwards Y along X's header: back along the path X came,
/// or, when X is our own client's post, into its replies.
fn answered(
    conn: &rusqlite::Connection,
    settings: &Settings,
    sender: &str,
    long: &[(i64, f64)],
    taken: &[(i64, f64)],
) -> Result<Option<(i64, f64)>, Failure> {
    let candidates: Vec<(i64, f64)> = long
        .iter()
        .take_while(|(_, s)| *s <= settings.match_threshold)
        .filter(|(id, _)| !taken.iter().any(|(t, _)| t == id))
        .copied()
        .collect();
    let first = first_sent_to(conn, settings, sender, candidates.iter().map(|(id, _)| *id))?;
    Ok(first.and_then(|x| candidates.into_iter().find(|(id, _)| *id == x)))
}

/// The first of the cache rows `ids` that we sent to `sender`'s peer (under any of its
/// addresses) within `reply_window`.
fn first_sent_to(
    conn: &rusqlite::Connection,
    settings: &Settings,
    sender: &str,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Option<i64>, Failure> {
    let peer = settings.peer_of(sender).to_string();
    let mut dests = vec![peer.clone()];
    dests.extend(
        settings
            .aliases
            .iter()
            .filter(|(_, p)| *p == peer)
            .map(|(a, _)| a.clone()),
    );
    let now = crate::wire::Timestamp::now();
    let since = crate::wire::Timestamp::from_unix(
        now.unix_secs().saturating_sub(settings.reply_window as i64),
        0,
        0,
    )
    .to_string();
    let mut st = conn
        .prepare_cached(
            // By the message's IDs: one primary-key or unique-index probe each.
            "SELECT 1 FROM ids i WHERE i.cache_id = ?2 AND (
               EXISTS (SELECT 1 FROM delivered d
                       WHERE d.dest = ?1 AND d.msg_key = i.key AND d.at >= ?3)
               OR EXISTS (SELECT 1 FROM outbox o
                          WHERE o.dest = ?1 AND o.msg_key = i.key AND o.created >= ?3))
             LIMIT 1",
        )
        .map_err(crate::state::db_failure)?;
    for id in ids {
        for d in &dests {
            if st
                .exists(rusqlite::params![d, id, since])
                .map_err(crate::state::db_failure)?
            {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

/// Whether `msg` was created before cache row `x` (its origin's timestamp is earlier).
fn older_than(conn: &rusqlite::Connection, msg: &Message, x: i64) -> Result<bool, Failure> {
    Ok(match cache::get(conn, x)? {
        Some(row) => msg.origin().time() < row.message()?.origin().time(),
        None => false,
    })
}

/// 3.1: "sending those responses back to the originator as well as any peers through
/// which X was routed." A message Y is an answer on its way back, rather than a new
/// message, when it is older than a message X that passed through us lately (our client's
/// post, or a message we sent anyone within `reply_window`) and X is among Y's
/// `answer_depth` closest (within `match_threshold`): Y was cached somewhere before X
/// was posted, so it came to us because of X. A3 sends a match Y "to zero or more
/// addresses that appear in the header of" X; this is the one distinction the header
/// gives (A2 timestamps), and the router uses it to send Y on along X's path only
/// ([`crate::route`]'s `answers_return`). Returns X, the closest such, and every one of
/// our clients' open posts among them (the answer belongs in their replies as well, A1).
fn returns_along(
    conn: &rusqlite::Connection,
    settings: &Settings,
    msg: &Message,
    long: &[(i64, f64)],
) -> Result<Returns, Failure> {
    let now = crate::wire::Timestamp::now();
    let since_unix = now.unix_secs().saturating_sub(settings.reply_window as i64);
    let since = crate::wire::Timestamp::from_unix(since_unix, 0, 0).to_string();
    let mut sent = conn
        .prepare_cached(
            // By the message's IDs: one probe of delivered_key or outbox_key each.
            "SELECT 1 FROM ids i WHERE i.cache_id = ?1 AND (
               EXISTS (SELECT 1 FROM delivered d WHERE d.msg_key = i.key AND d.at >= ?2)
               OR EXISTS (SELECT 1 FROM outbox o WHERE o.msg_key = i.key AND o.created >= ?2))
             LIMIT 1",
        )
        .map_err(crate::state::db_failure)?;
    let t = msg.origin().time();
    let (mut along, mut posts) = (None, Vec::new());
    for &(id, score) in long {
        if score > settings.match_threshold {
            break;
        }
        let Some(x) = cache::get(conn, id)? else {
            continue;
        };
        if along.is_some() && !x.client {
            continue; // only our clients' posts are still looked for: no parse
        }
        let xt = x.message()?.origin().time();
        if t >= xt {
            continue;
        }
        if x.client && xt.unix_secs() >= since_unix {
            // Our client's open post: the answer's path ends here.
            along.get_or_insert(id);
            posts.push((id, score));
        } else if along.is_none()
            && sent
                .exists(rusqlite::params![id, since])
                .map_err(crate::state::db_failure)?
        {
            along = Some(id);
        }
    }
    Ok(Returns { along, posts })
}

/// The sender whose answer `msg` may be ([`answered`]): a peer, not us or our client; None
/// when `answer_depth` or `reply_window` is 0.
fn answer_sender(settings: &Settings, msg: &Message) -> Option<String> {
    if settings.answer_depth == 0 || settings.reply_window == 0 || msg.ids().len() == 0 {
        return None;
    }
    let sender = msg.sender().address_str().into_owned();
    let ours = settings.is_own(sender.as_bytes())
        || settings.client_address.as_deref() == Some(sender.as_str());
    (!ours).then_some(sender)
}

/// 3.2/3.3: the best peer, and the others within `margin` of it, if the best is within
/// `distance_threshold`.
pub(crate) fn selected_peers(settings: &Settings, scores: &[(String, f64)]) -> Vec<(String, f64)> {
    let Some((_, best)) = scores.first() else {
        return Vec::new();
    };
    if *best > settings.distance_threshold {
        return Vec::new();
    }
    scores
        .iter()
        .filter(|(_, s)| *s <= best + settings.margin && *s <= settings.distance_threshold)
        .cloned()
        .collect()
}

/// 3.2 compensatory reply: "for each message Zj in Alice's cache where Bob is not one of
/// the senders, Alice computes Dj = D(Zj, Z_{i≠j}) - D(X, Zj) and reply with Zj that
/// maximizes Dj."
///
/// Bounded approximation: the candidates are the shortlist of cached messages related to X
/// (at most 16), without Bob in their headers. D(Zj, rest of cache) (what Zj costs Alice to
/// keep, as it is not redundant with her cache) is approximated by C(Zj), and D(X, Zj) by
/// the cost of Zj given Bob's context ("Alice can concatenate other messages from Bob to
/// X"): Dj ≈ C(Zj) - C(Zj | Bob), what Bob saves on Zj ([`Matcher::reply_gains`]: his
/// peer model for the native engine, his most recent 8 KB followed by X for the
/// general-purpose compressors). Best first.
fn compensation_candidates(
    conn: &rusqlite::Connection,
    settings: &Settings,
    matcher: &dyn Matcher,
    x: &Message,
    peer: &str,
) -> Result<Vec<i64>, Failure> {
    let short = matcher.related(conn, x.body(), 16)?;
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    for (id, _) in short {
        let Some(z) = cache::get(conn, id)? else {
            continue;
        };
        let zm = z.message()?;
        if settings.peer_in_header(&zm, peer) {
            continue; // Bob is one of its senders
        }
        ids.push(id);
        bodies.push(zm.body().to_vec());
    }
    let zs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    let gains = matcher.reply_gains(conn, peer, x.body(), &zs)?;
    let mut scored: Vec<(i64, f64)> = ids.into_iter().zip(gains).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(scored.into_iter().map(|(i, _)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[test]
    fn peers_within_the_margin_of_a_good_enough_best() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(Some(&d.path().join("s"))).unwrap();
        let mut s = Settings::load(st.conn()).unwrap();
        s.distance_threshold = 0.9;
        s.margin = 0.05;
        let sc = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
            v.iter().map(|(p, x)| (p.to_string(), *x)).collect()
        };
        let pick = |v: Vec<(String, f64)>| -> Vec<String> {
            selected_peers(&s, &v).into_iter().map(|(p, _)| p).collect()
        };
        assert_eq!(
            pick(sc(&[("a", 0.5), ("b", 0.54), ("c", 0.56)])),
            ["a", "b"]
        );
        assert_eq!(
            pick(sc(&[("a", 0.88), ("b", 0.92)])),
            ["a"],
            "never above the threshold"
        );
        assert!(pick(sc(&[("a", 0.91)])).is_empty());
        assert!(pick(Vec::new()).is_empty());
    }
}
