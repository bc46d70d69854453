//! Our own client (A1): "When a client posts a message, it has the effect of adding the
//! message to the pool and retrieving related messages that are either already in the pool
//! or that are posted later by other clients."
//!
//! [`post`] composes a new message (one header line: a time from the state file's clock and
//! the client's address), adds it to the cache through the router as a local client message
//! (same transaction: cache, ID index and forwards), and returns the related cached messages.
//! [`search`] returns related messages without posting.

use super::{accept, load_settings, matching, plan, Decision, Outcome, RouteOptions, Transport};
use crate::exit::Failure;
use crate::state::{cache, clock, log as dlog, State};
use crate::wire::{self, Message};
use serde::Serialize;

/// A related cached message, for people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct Related {
    pub cache_id: i64,
    /// Lower = closer.
    pub score: f64,
    /// The creator line: `timestamp address`.
    pub message_id: String,
    pub origin: String,
    pub sender: String,
    pub arrived: String,
    pub body_bytes: usize,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
}

/// What `cmr-post` did.
#[derive(Debug, Clone, Serialize)]
pub struct Posted {
    /// The new message's ID (its only header line), None for a search.
    pub message_id: Option<String>,
    pub cache_id: Option<i64>,
    pub related: Vec<Related>,
    pub decision: Option<Decision>,
}

/// Options for [`post`].
#[derive(Debug, Clone, Default)]
pub struct PostOptions {
    /// The creator address; default the `client_address` setting, else our first address.
    pub client_address: Option<String>,
    /// Related messages to return; default the `related_k` setting.
    pub k: Option<usize>,
    pub dry_run: bool,
}

fn describe(conn: &rusqlite::Connection, hits: &[(i64, f64)]) -> Result<Vec<Related>, Failure> {
    let mut out = Vec::with_capacity(hits.len());
    for &(id, score) in hits {
        let Some(row) = cache::get(conn, id)? else {
            continue;
        };
        let m = row.message()?;
        out.push(Related {
            cache_id: id,
            score,
            message_id: String::from_utf8_lossy(&m.origin().line()).into_owned(),
            origin: row.origin.clone(),
            sender: row.sender.clone(),
            arrived: row.arrived.clone(),
            body_bytes: m.body().len(),
            body: String::from_utf8_lossy(m.body()).into_owned(),
        });
    }
    Ok(out)
}

/// Related cached messages for `body`, closest first, without posting anything.
pub fn search(state: &State, body: &[u8], k: Option<usize>) -> Result<Vec<Related>, Failure> {
    let settings = crate::state::settings::Settings::load(state.conn())?;
    let matcher = matching::from_settings(&settings)?;
    let k = k.unwrap_or(settings.related_k as usize);
    let hits = matcher.related(state.conn(), body, k)?;
    describe(state.conn(), &hits)
}

/// Compose a message from `body`, add it to the pool and queue its deliveries; return the
/// related messages already in the pool.
pub fn post(state: &mut State, body: &[u8], opts: &PostOptions) -> Result<Posted, Failure> {
    let settings = load_settings(state)?;
    let client = opts
        .client_address
        .clone()
        .or_else(|| settings.client_address.clone())
        .or_else(|| settings.primary_address().map(str::to_string))
        .ok_or_else(|| Failure::config("no client address"))?;
    if client.is_empty() || client.contains(['\r', '\n']) {
        return Err(Failure::usage(format!(
            "bad client address '{}'",
            client.escape_debug()
        )));
    }
    if body.len() as u64 > settings.max_body_bytes {
        return Err(Failure::data(format!(
            "body of {} bytes exceeds max_body_bytes {}",
            body.len(),
            settings.max_body_bytes
        )));
    }
    let matcher = matching::from_settings(&settings)?;
    let k = opts.k.unwrap_or(settings.related_k as usize);
    let related = matcher.related(state.conn(), body, k)?;
    // The routing plan needs only the body and the header's addresses: compose with a
    // provisional time, the real one comes from the clock under the lock.
    let rules = wire::Rules::unchecked_time();
    let provisional =
        Message::compose(&[(wire::Timestamp::now(), client.as_bytes())], body, &rules)
            .map_err(|e| Failure::data(format!("cannot compose the message: {e}")))?;
    let p = plan(state, &settings, matcher.as_ref(), &provisional)?;
    let ropts = RouteOptions {
        dry_run: opts.dry_run,
        ..RouteOptions::default()
    };
    let mut d = Decision {
        via: Some(Transport::Local),
        verified: true,
        matcher: Some(matcher.name()),
        ..Decision::default()
    };
    let (msg_id, cache_id) = super::commit(state, &ropts, |tx| {
        let t = clock::next(tx, None)?;
        let msg = Message::compose(&[(t, client.as_bytes())], body, &rules)
            .map_err(|e| Failure::data(format!("cannot compose the message: {e}")))?;
        d.describe(&msg);
        let id = accept(
            tx,
            &settings,
            matcher.as_ref(),
            &msg,
            &client,
            Transport::Local,
            true,
            &p,
            &mut d,
        )?;
        d.outcome = Outcome::Posted;
        let key = msg.origin().key();
        super::log_decision(tx, &d, Some(&key))?;
        dlog::bump(tx, "via:local", "posted", 1)?;
        Ok((
            String::from_utf8_lossy(&msg.origin().line()).into_owned(),
            id,
        ))
    })?;
    Ok(Posted {
        message_id: Some(msg_id),
        cache_id: Some(cache_id),
        related: describe(state.conn(), &related)?,
        decision: Some(d),
    })
}

/// A message that arrived after one of our client's posts and matched it.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    /// The post it answers (its ID and cache row).
    pub post_id: String,
    pub post_cache_id: i64,
    pub message: Related,
}

/// Messages matched to our clients' posts since they were posted (A1 "posted later by
/// other clients"), oldest first. `all`: include those already shown; `mark`: mark the
/// returned ones as shown.
pub fn replies(state: &State, all: bool, mark: bool) -> Result<Vec<Reply>, Failure> {
    let rows: Vec<(i64, i64, i64, f64)> = {
        let mut st = state
            .conn()
            .prepare(
                "SELECT id, post_id, cache_id, score FROM client_inbox
                 WHERE seen = 0 OR ?1 ORDER BY id",
            )
            .map_err(crate::state::db_failure)?;
        let r = st
            .query_map([all], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(crate::state::db_failure)?;
        r.collect::<Result<_, _>>()
            .map_err(crate::state::db_failure)?
    };
    let mut out = Vec::new();
    for &(_, post, cid, score) in &rows {
        let Some(p) = cache::get(state.conn(), post)? else {
            continue;
        };
        let pm = p.message()?;
        if let Some(m) = describe(state.conn(), &[(cid, score)])?.pop() {
            out.push(Reply {
                post_id: String::from_utf8_lossy(&pm.origin().line()).into_owned(),
                post_cache_id: post,
                message: m,
            });
        }
    }
    if mark && !rows.is_empty() {
        let max = rows.iter().map(|r| r.0).max().unwrap_or(0);
        state.write(|tx| {
            tx.execute(
                "UPDATE client_inbox SET seen = 1 WHERE id <= ?1 AND seen = 0",
                [max],
            )
            .map_err(crate::state::db_failure)?;
            Ok(())
        })?;
    }
    Ok(out)
}
