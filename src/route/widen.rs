//! 3.1: "A client may also post a message to several peers to improve the expected number
//! of responses." A client whose post has not been answered asks its router to send the
//! post to more neighbours (`cmr-post --widen ID`): the search widens only for the posts
//! that need it, as an expanding-ring search does (Lv et al., "Search and replication in
//! unstructured peer-to-peer networks", 2002), where the requester is the one who knows
//! whether it was answered.
//!
//! The post goes, as our client's post went, to the best-scored peers it has not been
//! sent to yet, then to configured neighbours never scored
//! ([`super::explore::ranked_neighbours`]); each send passes the relay policy and the
//! outbox's never-twice rule, and they commit in one transaction with the decision's log
//! row. A post is widened once, while it is open (`reply_window`), and never when it is
//! one of a series (Section 4: reach is what a bulk poster wants).

use super::accept::Queuer;
use super::{load_settings, matching, peer_scores, Decision, Outcome, RouteOptions, Transport};
use crate::exit::Failure;
use crate::state::{cache, log as dlog, State};
use serde::Serialize;

/// What `cmr-post --widen` did.
#[derive(Debug, Clone, Serialize)]
pub struct Widened {
    /// The post's ID (its creator line) and cache row.
    pub message_id: String,
    pub cache_id: i64,
    /// False when the router declined (the reason says why); nothing was queued then.
    pub widened: bool,
    pub reason: Option<String>,
    /// The sends queued (and the relay policy's refusals), as for a post.
    pub decision: Decision,
}

/// Send our client's post `post` (its message ID, `timestamp address`, or its cache row)
/// to `widen_fanout` more neighbours: once per post, while the post is open (within
/// `reply_window`), never a post of a series ([`series`]; Section 4, [`super::bulk`]).
pub fn widen(state: &mut State, post: &str, opts: &RouteOptions) -> Result<Widened, Failure> {
    let settings = load_settings(state)?;
    let fanout = settings.widen_fanout as usize;
    if fanout == 0 {
        return Err(Failure::config(
            "widening is off: widen_fanout is 0 (cmr-route policy widen_fanout 2)",
        ));
    }
    let row = match post.trim().parse::<i64>() {
        Ok(id) => cache::get(state.conn(), id)?,
        Err(_) => cache::by_message_id(state.conn(), post.trim())?,
    }
    .ok_or_else(|| Failure::no_input(format!("no cached message '{}'", post.escape_debug())))?;
    if !row.client {
        return Err(Failure::data(format!(
            "cache row {} (created by {}) is not a post of our client: only our own posts are widened",
            row.id, row.origin
        )));
    }
    let msg = row.message()?;
    let matcher = matching::from_settings(&settings)?;
    let key = msg.origin().key();
    let mut d = Decision {
        outcome: Outcome::Posted,
        accepted: true,
        via: Some(Transport::Local),
        verified: true,
        matcher: Some(matcher.name()),
        ..Decision::default()
    };
    d.describe(&msg);
    d.cache_id = Some(row.id);
    let widened = |d: Decision, reason: Option<String>| Widened {
        message_id: String::from_utf8_lossy(&msg.origin().line()).into_owned(),
        cache_id: row.id,
        widened: reason.is_none(),
        reason,
        decision: d,
    };
    // Declined already (the common case of a bulk poster's later posts): no scoring. The
    // check is repeated under the write lock, where it cannot race another widening.
    if let Some(why) = declined(state.conn(), &settings, &msg, row.id)? {
        d.notes.push(format!("3.1 widen declined: {why}"));
        return Ok(widened(d, Some(why)));
    }
    // Only the routing scores: the post was matched and planned when it was posted.
    let scores = peer_scores(state.conn(), &settings, matcher.as_ref(), msg.body())?;
    let client = row.origin.clone();
    let reason = super::commit(state, opts, |tx| {
        if let Some(why) = declined(tx, &settings, &msg, row.id)? {
            d.notes.push(format!("3.1 widen declined: {why}"));
            return Ok(Some(why));
        }
        ask_more(tx, &settings, &msg, row.id, &client, &scores, &mut d)?;
        if d.forwards.is_empty() {
            // Not spent: a peer added later may still be asked.
            let why = "every peer we know was asked already".to_string();
            d.notes.push(format!("3.1 widen: {why}"));
            return Ok(Some(why));
        }
        let (_, now) = crate::state::now();
        tx.execute(
            "INSERT INTO widened(cache_id, at_unix) VALUES (?1, ?2)",
            rusqlite::params![row.id, now],
        )
        .map_err(crate::state::db_failure)?;
        super::log_decision(tx, &d, Some(&key))?;
        dlog::bump(tx, "via:local", "widened", 1)?;
        Ok(None)
    })?;
    Ok(widened(d, reason))
}

/// Queue `msg` (cache row `id`, our client `client`'s post) to `widen_fanout` peers it was
/// not sent to, the best scored first, through the relay policy.
fn ask_more(
    tx: &rusqlite::Transaction,
    settings: &crate::state::settings::Settings,
    msg: &crate::wire::Message,
    id: i64,
    client: &str,
    scores: &[(String, f64)],
    d: &mut Decision,
) -> Result<(), Failure> {
    let fanout = settings.widen_fanout as usize;
    let q = Queuer {
        tx,
        settings,
        max: fanout,
        answers_only: false,
        cause: crate::contact::Cause {
            sender: client,
            verified: true,
            client: true,
        },
    };
    for (peer, score) in super::explore::ranked_neighbours(tx, settings, msg, scores, &[])? {
        if d.forwards.len() >= fanout {
            break;
        }
        // A peer the post was sent to before is skipped by the queue (never the same
        // message to the same peer twice): the next one is tried.
        let why = if score.is_finite() {
            format!("3.1 widened by our client: a peer not asked yet (score {score:.4})")
        } else {
            "3.1 widened by our client: a neighbour not asked yet, not scored yet".to_string()
        };
        q.queue(d, "x", msg, id, &peer, why)?;
    }
    Ok(())
}

/// Widening is for a new question (Section 4: reach is what a bulk poster wants): a post
/// that resembles a recent message of its creator at half `bulk_resemblance` or more is
/// one of a series, and is not widened.
fn series(
    tx: &rusqlite::Connection,
    settings: &crate::state::settings::Settings,
    msg: &crate::wire::Message,
    id: i64,
) -> Result<Option<(i64, f64)>, Failure> {
    match settings.bulk_resemblance {
        Some(bar) => super::bulk::resembling(tx, msg, bar / 2.0, id),
        None => Ok(None),
    }
}

/// Why the post (cache row `id`) is not widened, if it is not: widened before, no longer
/// open, or one of a series ([`series`]).
fn declined(
    tx: &rusqlite::Connection,
    settings: &crate::state::settings::Settings,
    msg: &crate::wire::Message,
    id: i64,
) -> Result<Option<String>, Failure> {
    let (before, arrived): (bool, Option<f64>) = tx
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM widened WHERE cache_id = ?1),
                    (SELECT arrived_unix FROM cache WHERE id = ?1)",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(crate::state::db_failure)?;
    let (_, now) = crate::state::now();
    let Some(arrived) = arrived else {
        return Ok(Some("the post has left the cache".to_string()));
    };
    Ok(if before {
        Some("the post was widened before (once per post)".to_string())
    } else if now - arrived > settings.reply_window as f64 {
        Some(format!(
            "the post is older than reply_window ({} s): it is no longer open",
            settings.reply_window
        ))
    } else if let Some((row, r)) = series(tx, settings, msg, id)? {
        Some(format!(
            "Section 4 bulk posting: the post resembles cache row {row} from the same creator (resemblance {r:.3}): one of a series, not a new question"
        ))
    } else {
        None
    })
}
