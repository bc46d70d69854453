//! Exploration while contexts form.
//!
//! A network starts cold: with empty caches every peer scores near 1.0, and 3.3 ("if there
//! is no good match then the message is discarded") would keep an expert's knowledge where
//! it was posted. 3.1: "The originator of the message serves as a link to other peers whose
//! semantic regions overlaps", and "A client may also post a message to several peers to
//! improve the expected number of responses."
//!
//! The rule, bounded on every side:
//! - only a message that matched nothing in our cache (we have no answer to give) and for
//!   which no peer scores within `distance_threshold` (routing has nowhere to send it);
//! - only while the message has travelled fewer than `explore_hops` hops (its header lines);
//! - to at most `explore_fanout` more neighbours (configured peers and peers we scored,
//!   never one in the message's header), the best-scored first, ties broken by a hash of
//!   the message and the peer, so different messages explore different neighbours;
//! - only while our cache holds fewer than `explore_until` messages, when that is set.
//!
//! It fades by itself as contexts form: once a peer scores within the threshold, the
//! message is routed (3.2) instead of explored. The forwards still pass the router's
//! `max_forwards` cap and its never-twice rule.

use super::Decision;
use crate::exit::Failure;
use crate::state::{cache, peers, settings::Settings};
use crate::wire::Message;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The neighbours `msg` explores to (with the reason to log), best first; empty when the
/// rule does not apply. `scores`: the routing scores (best first); `matched`: whether the
/// message matched a cached message here; `client`: our own client's post; `already`:
/// destinations decided before.
pub fn targets(
    conn: &rusqlite::Connection,
    settings: &Settings,
    msg: &Message,
    scores: &[(String, f64)],
    matched: bool,
    client: bool,
    already: &[String],
) -> Result<Vec<(String, String)>, Failure> {
    let fanout = settings.explore_fanout as usize;
    let hops = msg.ids().len() as u64;
    // `post_routing threshold` holds our own client's posts to the threshold: no
    // exploration either.
    let held = client && !settings.post_to_best;
    if fanout == 0 || matched || held || hops >= settings.explore_hops {
        return Ok(Vec::new());
    }
    if scores
        .first()
        .is_some_and(|(_, s)| *s <= settings.distance_threshold)
    {
        return Ok(Vec::new());
    }
    if settings.explore_until > 0 && cache::count(conn)? as u64 >= settings.explore_until {
        return Ok(Vec::new());
    }
    Ok(ranked_neighbours(conn, settings, msg, scores, already)?
        .into_iter()
        .take(fanout)
        .map(|(p, s)| {
            let why = if s.is_finite() {
                format!("3.1 exploration: nothing matched, best peer above distance_threshold; {hops} hop(s) travelled, score {s:.4}")
            } else {
                format!("3.1 exploration: nothing matched, no peer within distance_threshold; {hops} hop(s) travelled, neighbour not scored yet")
            };
            (p, why)
        })
        .collect())
}

/// The peers `msg` may go on to, best first: the scored peers by their routing scores
/// (`scores`), then the configured neighbours never scored (nothing received from them
/// yet; score infinity), ties broken by a hash of the message and the peer, so different
/// messages go to different neighbours. Never us, our client, a peer in the message's
/// header or one of `already`.
pub fn ranked_neighbours(
    conn: &rusqlite::Connection,
    settings: &Settings,
    msg: &Message,
    scores: &[(String, f64)],
    already: &[String],
) -> Result<Vec<(String, f64)>, Failure> {
    let mut cands: Vec<(String, f64)> = scores.to_vec();
    for p in configured_peers(conn, settings)? {
        if !cands.iter().any(|(c, _)| *c == p) {
            cands.push((p, f64::INFINITY));
        }
    }
    let tie = tie_breaker(msg);
    cands.retain(|(p, _)| eligible(settings, msg, already, p));
    cands.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| tie(&a.0).cmp(&tie(&b.0))));
    Ok(cands)
}

/// The peers the operator configured (every neighbour of a network), as peers (an alias
/// counts as its peer), in address order.
fn configured_peers(
    conn: &rusqlite::Connection,
    settings: &Settings,
) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = Vec::new();
    for a in peers::configured(conn)? {
        let p = settings.peer_of(&a).to_string();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// An order of peers drawn from `msg`'s ID: different messages go to different peers.
fn tie_breaker(msg: &Message) -> impl Fn(&str) -> u64 {
    let key = msg.origin().key();
    move |p: &str| {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        p.hash(&mut h);
        h.finish()
    }
}

/// A peer `msg` may be sent on to: not us, not our client, not in its header, not among
/// the destinations decided before (`already`).
fn eligible(settings: &Settings, msg: &Message, already: &[String], p: &str) -> bool {
    !settings.is_own(p.as_bytes())
        && settings.client_address.as_deref() != Some(p)
        && !settings.peer_in_header(msg, p)
        && !already.iter().any(|a| settings.peer_of(a) == p)
}

/// 3.1 spread (`spread_fanout`): a message that came straight from its creator's router
/// (one header line, our client's posts aside) and is below the hop limit also goes to
/// `spread_fanout` more neighbours, in an order drawn from the message rather than from
/// the routing scores: the search takes one step into parts of the network that the
/// scores would not choose. Off by default: docs/network.md measures what it buys and
/// what it costs.
pub fn spread_targets(
    conn: &rusqlite::Connection,
    settings: &Settings,
    msg: &Message,
    client: bool,
    already: &[String],
) -> Result<Vec<String>, Failure> {
    let lines = msg.ids().len() as u64;
    let below_limit = settings.max_hops == 0 || lines < settings.max_hops;
    if settings.spread_fanout == 0 || client || lines != 1 || !below_limit {
        return Ok(Vec::new());
    }
    let tie = tie_breaker(msg);
    let mut cands: Vec<String> = configured_peers(conn, settings)?
        .into_iter()
        .filter(|p| eligible(settings, msg, already, p))
        .collect();
    cands.sort_by_key(|p| tie(p));
    cands.truncate(settings.spread_fanout as usize);
    Ok(cands)
}

/// 3.3 flow control: "a ratio of output to input greater than 1 could lead to an
/// exponential explosion of messages. To compensate, peers should ... establish a distance
/// threshold or other criteria such that if there is no good match then the message is
/// discarded." Every message a router accepts is matched and may be forwarded, replies
/// included, so without a bound one post sets off a cascade that ends only when every
/// router holds it. The bound: a message whose header already has `max_hops` lines (it
/// passed that many routers) is cached and matched (our clients still get it) but
/// forwarded to no one; with `last_hop_answers` it is still answered: the messages it
/// matched go back along its header (3.1: "sending those responses back to the
/// originator"), so the last router a search reaches is not reached in vain. The routers
/// on the way send such an answer on along the path only (`answers_return`).
pub fn forward_cap(settings: &Settings, msg: &Message, d: &mut Decision) -> Cap {
    let lines = msg.ids().len() as u64;
    let max = settings.max_forwards as usize;
    if settings.max_hops > 0 && lines >= settings.max_hops {
        if settings.last_hop_answers {
            d.notes.push(format!(
                "3.3: the header has {lines} lines (max_hops {}): answered, not forwarded",
                settings.max_hops
            ));
            return Cap {
                max,
                answers_only: true,
            };
        }
        d.notes.push(format!(
            "3.3: the header has {lines} lines (max_hops {}): cached, not forwarded",
            settings.max_hops
        ));
        return Cap {
            max: 0,
            answers_only: false,
        };
    }
    Cap {
        max,
        answers_only: false,
    }
}

/// What a message may cause ([`forward_cap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// At most this many sends.
    pub max: usize,
    /// Only answers: matched messages back along the header (A3 `y`), nothing else.
    pub answers_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Scheme;
    use crate::state::{peers, settings, State};
    use crate::wire::{Rules, Timestamp};

    /// A message whose header names `addrs`, newest first, one second apart.
    fn msg(addrs: &[&str], body: &str) -> Message {
        let t0 = Timestamp::now().unix_secs();
        let ids: Vec<(Timestamp, &[u8])> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let t = Timestamp::from_unix(t0 - 10 - i as i64, 0, 6);
                (t, a.as_bytes())
            })
            .collect();
        Message::compose(&ids, body.as_bytes(), &Rules::unchecked_time()).unwrap()
    }

    fn state(neighbours: &[&str], set: &[(&str, &str)]) -> (tempfile::TempDir, State) {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(Some(&d.path().join("s"))).unwrap();
        st.write(|tx| {
            settings::add_own_address(tx, "http://me.test/")?;
            for n in neighbours {
                peers::add(tx, n, Scheme::HmacSha256, None)?;
            }
            for (k, v) in set {
                settings::set(tx, k, v)?;
            }
            Ok(())
        })
        .unwrap();
        (d, st)
    }

    #[test]
    fn the_hop_limit_stops_forwarding_at_max_hops_lines() {
        let (_d, st) = state(
            &[],
            &[
                ("max_hops", "3"),
                ("max_forwards", "8"),
                ("last_hop_answers", "0"),
            ],
        );
        let s = Settings::load(st.conn()).unwrap();
        let mut d = Decision::default();
        assert_eq!(
            forward_cap(&s, &msg(&["http://a/", "http://b/"], "x"), &mut d).max,
            8
        );
        assert!(d.notes.is_empty());
        let three = msg(&["http://a/", "http://b/", "http://c/"], "x");
        assert_eq!(forward_cap(&s, &three, &mut d).max, 0);
        assert!(d.notes[0].contains("max_hops 3"), "{:?}", d.notes);
        let (_d, st) = state(&[], &[("max_hops", "0"), ("max_forwards", "8")]);
        let s = Settings::load(st.conn()).unwrap();
        assert_eq!(forward_cap(&s, &three, &mut Decision::default()).max, 8);
        let (_d, st) = state(
            &[],
            &[
                ("max_hops", "3"),
                ("max_forwards", "8"),
                ("last_hop_answers", "1"),
            ],
        );
        let s = Settings::load(st.conn()).unwrap();
        let mut d = Decision::default();
        let cap = forward_cap(&s, &three, &mut d);
        assert_eq!((cap.max, cap.answers_only), (8, true));
        assert!(
            d.notes[0].contains("answered, not forwarded"),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn exploration_goes_to_a_few_neighbours_only_when_nothing_places_the_message() {
        let ns = ["http://n1/", "http://n2/", "http://n3/", "http://n4/"];
        let (_d, st) = state(&ns, &[("explore_fanout", "2"), ("explore_hops", "3")]);
        let s = Settings::load(st.conn()).unwrap();
        let m = msg(&["http://n1/"], "a question nobody here can place");
        let far = [("http://n2/".to_string(), 0.99)];
        let t = targets(st.conn(), &s, &m, &far, false, false, &[]).unwrap();
        assert_eq!(t.len(), 2, "{t:?}");
        // Never back into the header, the scored peer first, then unscored neighbours.
        assert!(t.iter().all(|(p, _)| p != "http://n1/"), "{t:?}");
        assert_eq!(t[0].0, "http://n2/");
        // Not when it matched here, not when a peer is within the threshold, not once it
        // has travelled explore_hops hops, not to a destination already decided.
        assert!(targets(st.conn(), &s, &m, &far, true, false, &[])
            .unwrap()
            .is_empty());
        let near = [("http://n2/".to_string(), 0.5)];
        assert!(targets(st.conn(), &s, &m, &near, false, false, &[])
            .unwrap()
            .is_empty());
        let travelled = msg(&["http://n1/", "http://x/", "http://y/"], "far");
        assert!(targets(st.conn(), &s, &travelled, &far, false, false, &[])
            .unwrap()
            .is_empty());
        let decided = ["http://n2/".to_string(), "http://n3/".to_string()];
        let t = targets(st.conn(), &s, &m, &far, false, false, &decided).unwrap();
        assert_eq!(
            t.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["http://n4/"]
        );
        // `post_routing threshold` holds our own client's posts: no exploration.
        let (_d, st) = state(&ns, &[("post_routing", "threshold")]);
        let s = Settings::load(st.conn()).unwrap();
        assert!(targets(st.conn(), &s, &m, &far, false, true, &[])
            .unwrap()
            .is_empty());
        assert!(!targets(st.conn(), &s, &m, &far, false, false, &[])
            .unwrap()
            .is_empty());
    }
}
