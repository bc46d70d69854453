//! The A3 router: accept or reject a message, cache it, match it, queue its forwards.
//!
//! [`receive`] runs the steps of A3 in order:
//!
//! 1. strict parse with limits (our own addresses may not appear in the header: A2);
//! 2. duplicate: "reject any message with an ID that matches an ID of another message
//!    already in the cache" (nothing is done twice; logged; not an error);
//! 3. signature: "If the message is signed, then it should compute the signature and
//!    reject it if it does not match", with the immediate sender's key and scheme;
//!    unsigned messages and signed ones from senders we hold no key for are up to policy;
//! 4. policy ("It may also reject a message for any reason"): size cap, reputation
//!    floor, per-peer and global rate windows;
//! 5. key-exchange bodies go to [`crate::keyx`] and are never cached or routed (A5.1);
//! 6. otherwise the message is cached with all its IDs, matched (A3), routed (3.2, 3.3),
//!    and every forward is queued in the outbox.
//!
//! Steps 2 to 6 commit in ONE write transaction: a message is cached together with every
//! forward it causes, or not at all. The exact scoring (compression) runs before the
//! write lock is taken, on a snapshot; what it decided is re-checked under the lock.
//!
//! Failed signatures never touch the peer whose address the message claims (anyone can
//! write that address): they are counted against the transport (`counters`, scope
//! `via:<transport>`). Peer counters and reputation move only for verified messages.

mod accept;
mod bulk;
mod decision;
pub mod explore;
pub mod forward;
mod policy;
pub mod post;
mod select;
pub mod widen;
/// The matching engine the router uses (it lives below the router, in [`crate::compress`]).
pub use crate::compress::matching;
pub use crate::via::Transport;
pub(crate) use accept::accept;
pub use decision::{Decision, Forward, Matched, Outcome, PeerScore, RefusedForward, RouteOptions};
pub use policy::address_defect;
pub(crate) use select::{peer_scores, plan, Plan};

use crate::exit::{self, Failure};
use crate::state::{self, cache, log as dlog, peers, settings::Settings, State};
use crate::wire::{self, Message, ReadError};
use decision::log_decision;
use policy::{check_rates, check_signature, check_static_policy};

/// Load settings and refuse to run on a state file that was never initialised.
pub fn load_settings(state: &State) -> Result<Settings, Failure> {
    let s = Settings::load(state.conn())?;
    if s.own_addresses.is_empty() {
        return Err(Failure::config(format!(
            "state file {} has no address of ours: run cmr-route init --address ADDR",
            state.path().display()
        )));
    }
    Ok(s)
}

/// The whole A3 pipeline for one message (`raw` must hold exactly one).
pub fn receive(
    state: &mut State,
    raw: &[u8],
    via: Transport,
    opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let settings = load_settings(state)?;
    match wire::parse(raw, &settings.rules()) {
        Ok(msg) => receive_message(state, &settings, msg, via, opts),
        Err(e) => reject_malformed(state, &e, 0, via, opts),
    }
}

/// Several concatenated messages (a stream on a pipe). The stream is split with the
/// structural rules; each message is then checked against every rule (own addresses, the
/// future), so a message refused for its content does not stop the ones after it. A message
/// whose end cannot be known (broken structure) ends the stream: its decision is the last.
pub fn receive_stream(
    state: &mut State,
    input: impl std::io::BufRead,
    via: Transport,
    opts: &RouteOptions,
) -> Result<Vec<Decision>, Failure> {
    let settings = load_settings(state)?;
    let strict = settings.rules();
    let structural = wire::Rules {
        now: wire::Now::Unchecked,
        own_addresses: Vec::new(),
        ..strict.clone()
    };
    let mut reader = wire::Reader::new(input, structural);
    let mut out = Vec::new();
    loop {
        let at = reader.offset();
        match reader.next_message() {
            Ok(None) => break,
            Ok(Some(m)) => match wire::parse(&m.encode(), &strict) {
                Ok(msg) => out.push(receive_message(state, &settings, msg, via, opts)?),
                Err(e) => out.push(reject_malformed(state, &e, at, via, opts)?),
            },
            Err(ReadError::Parse(e)) => {
                out.push(reject_malformed(state, &e, 0, via, opts)?);
                break;
            }
            Err(ReadError::Io(e)) => {
                return Err(Failure::from(e).context("reading messages"));
            }
        }
    }
    // An empty stream is zero messages (a pipe with nothing due), not a malformed one.
    Ok(out)
}

/// Log a malformed message. `at`: where the message starts in a stream, when the error's
/// line and offset count from the message rather than from the stream.
fn reject_malformed(
    state: &State,
    e: &wire::ParseError,
    at: usize,
    via: Transport,
    opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let mut d = Decision {
        via: Some(via),
        ..Decision::default()
    };
    let place = if at > 0 {
        format!("message at byte {at} of the stream: ")
    } else {
        String::new()
    };
    d.reject(
        &format!("malformed:{}", e.defect.code()),
        format!("malformed message: {place}{e}"),
        exit::DATAERR,
    );
    commit(state, opts, |tx| {
        log_decision(tx, &d, None)?;
        dlog::bump(tx, &format!("via:{via}"), "malformed", 1)
    })?;
    Ok(d)
}

/// Run `f` in a write transaction, or roll it back when this is a dry run.
fn commit<T>(
    state: &State,
    opts: &RouteOptions,
    f: impl FnOnce(&rusqlite::Transaction) -> Result<T, Failure>,
) -> Result<T, Failure> {
    if !opts.dry_run {
        return state.write(f);
    }
    let tx = rusqlite::Transaction::new_unchecked(
        state.conn(),
        rusqlite::TransactionBehavior::Immediate,
    )
    .map_err(state::db_failure)?;
    let v = f(&tx)?;
    tx.rollback().map_err(state::db_failure)?;
    Ok(v)
}

/// The whole pipeline for a parsed message: the cheap checks and the exact scoring on a
/// read snapshot, then one write transaction that repeats the duplicate check and commits
/// a rejection, a key exchange or the accepted message with its forwards.
pub fn receive_message(
    state: &mut State,
    settings: &Settings,
    msg: Message,
    via: Transport,
    opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let mut d = Decision {
        via: Some(via),
        ..Decision::default()
    };
    d.describe(&msg);
    let sender = msg.sender().address_str().into_owned();
    let key = msg.origin().key();
    let matcher = matching::from_settings(settings)?;
    d.matcher = Some(matcher.name());

    // Cheap checks first, without the write lock, in one read snapshot.
    let control = crate::keyx::is_control(msg.body());
    let plan = state.read(|conn| {
        let dup = cache::find_duplicate(conn, &msg)?;
        if dup.is_none() {
            let peer = check_signature(state, settings, &msg, opts, &mut d)?;
            if d.outcome != Outcome::Rejected {
                check_static_policy(settings, &msg, peer.as_ref(), &mut d);
            }
        }
        if dup.is_none() && d.outcome != Outcome::Rejected && !control {
            plan(state, settings, matcher.as_ref(), &msg)
        } else {
            Ok(Plan::default())
        }
    })?;

    commit(state, opts, |tx| {
        // A3 duplicate, again under the lock: another process may have cached it meanwhile.
        if let Some((id, row)) = cache::find_duplicate(tx, &msg)? {
            return commit_duplicate(tx, settings, &msg, id, row, &mut d);
        }
        if d.verified && msg.signature().is_signed() {
            // Key confirmation: a provisional key that verified a message is established.
            crate::keyx::confirm(tx, &sender)?;
        }
        if d.outcome != Outcome::Rejected {
            check_rates(tx, settings, &sender, &mut d)?;
        }
        if d.outcome == Outcome::Rejected {
            return commit_rejected(tx, &key, &sender, via, &d);
        }
        if control {
            return commit_key_exchange(tx, settings, &msg, via, opts, &mut d);
        }
        let id = accept(
            tx,
            settings,
            matcher.as_ref(),
            &msg,
            &sender,
            via,
            false,
            &plan,
            &mut d,
        )?;
        if !d.verified {
            dlog::bump(tx, &format!("via:{via}"), "accepted_unverified", 1)?;
        }
        peers::note_accepted(tx, &sender, id, d.verified)?;
        log_decision(tx, &d, Some(&key))
    })?;
    if d.outcome == Outcome::Rejected {
        crate::log::info(&format!(
            "rejected message from {} via {via}: {}",
            d.sender.as_deref().unwrap_or("?"),
            d.reason.as_deref().unwrap_or("")
        ));
    }
    Ok(d)
}

/// A2/A3: "reject any message with an ID that matches an ID of another message already in
/// the cache": nothing is done twice; the decision is logged.
fn commit_duplicate(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    msg: &Message,
    id: String,
    row: i64,
    d: &mut Decision,
) -> Result<(), Failure> {
    // replies_from_asked: the router our client asked may send back what we hold.
    let replies = accept::duplicate_answers_our_ask(tx, settings, row, msg)?;
    *d = Decision {
        outcome: Outcome::Duplicate,
        reason_code: Some("duplicate".into()),
        reason: Some(if row == 0 {
            format!("message ID {id} was seen before (a key-exchange message, not kept)")
        } else {
            format!("message ID {id} is already in the cache (row {row})")
        }),
        duplicate_of: Some(row),
        verified: false,
        ..d.clone()
    };
    if replies > 0 {
        d.notes.push(format!(
            "A1: from a router one of our clients' posts was sent to, older than the post: among the replies of {replies} post(s)"
        ));
    }
    log_decision(tx, d, Some(&msg.origin().key()))
}

/// Log a rejection and count it where Section 4 says it belongs.
fn commit_rejected(
    tx: &rusqlite::Transaction,
    key: &[u8],
    sender: &str,
    via: Transport,
    d: &Decision,
) -> Result<(), Failure> {
    log_decision(tx, d, Some(key))?;
    if d.reason_code.as_deref() == Some("signature")
        || d.reason_code.as_deref() == Some("unsigned-from-keyed-peer")
    {
        // Section 4: a failed signature is not the claimed peer's doing.
        dlog::bump(tx, &format!("via:{via}"), "bad_signature", 1)
    } else if d.verified {
        peers::note_rejected_verified(tx, sender)
    } else {
        dlog::bump(tx, &format!("via:{via}"), "rejected_unverified", 1)
    }
}

/// A5: key exchange; never cached or routed. A refusal leaves nothing behind (a savepoint).
fn commit_key_exchange(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    msg: &Message,
    via: Transport,
    opts: &RouteOptions,
    d: &mut Decision,
) -> Result<(), Failure> {
    let sender = msg.sender().address_str().into_owned();
    let key = msg.origin().key();
    tx.execute_batch("SAVEPOINT keyx")
        .map_err(state::db_failure)?;
    // The transport authenticated this very peer (an SSH forced command per peer): the key
    // exchange may take an unsigned control message from a keyed peer.
    let authenticated = opts.authenticated_sender.as_deref() == Some(sender.as_str());
    // Answering a request is a send to its sender: to a stranger it spends the relay
    // policy's first-contact budget, and past it there is no answer (a forger naming third
    // parties cannot make us reflect replies at them without bound).
    if let Some(r) = keyx_reply_refused(tx, settings, msg, &sender, d.verified)? {
        tx.execute_batch("ROLLBACK TO keyx; RELEASE keyx")
            .map_err(state::db_failure)?;
        dlog::bump(tx, "relay", r.code, 1)?;
        let why = format!("key exchange request not answered: {}", r.reason);
        d.reject(r.code, why, exit::NOPERM);
        return log_decision(tx, d, Some(&key));
    }
    match crate::keyx::handle(tx, msg, &sender, via, authenticated) {
        Ok(outcome) => {
            tx.execute_batch("RELEASE keyx")
                .map_err(state::db_failure)?;
            // The body is not kept, but its IDs are (cache row 0: none), so a replay of the
            // same control message is a duplicate and does nothing.
            cache::remember_ids(tx, msg)?;
            d.outcome = Outcome::KeyExchange;
            d.accepted = true;
            d.notes.push(format!("key exchange: {outcome:?}"));
        }
        Err(f) if f.is_transient() => return Err(f),
        Err(f) => {
            tx.execute_batch("ROLLBACK TO keyx; RELEASE keyx")
                .map_err(state::db_failure)?;
            d.reject("key-exchange", f.message.clone(), f.code);
        }
    }
    log_decision(tx, d, Some(&key))
}

/// A key-exchange request asks for a reply to its sender: the relay policy decides it
/// (and spends budget when the sender is a stranger). None: the reply may be sent.
fn keyx_reply_refused(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    msg: &Message,
    sender: &str,
    verified: bool,
) -> Result<Option<crate::contact::Refusal>, Failure> {
    use crate::keyx::body::{DH_REQUEST, RSA_REQUEST};
    let body = msg.body();
    if !body.starts_with(RSA_REQUEST.as_bytes()) && !body.starts_with(DH_REQUEST.as_bytes()) {
        return Ok(None);
    }
    let cause = crate::contact::Cause {
        sender,
        verified,
        client: false,
    };
    Ok(crate::contact::admit(tx, settings, sender, "keyx", &cause)?.err())
}
