//! The router's decision for people: one line per message, or the whole of it
//! (`--explain`).

use super::*;
use std::fmt::Write as _;

pub(super) fn outcome_word(d: &Decision) -> &'static str {
    match d.outcome {
        Outcome::Accepted => "accepted",
        Outcome::Duplicate => "duplicate",
        Outcome::Rejected => "rejected",
        Outcome::KeyExchange => "key-exchange",
        Outcome::Posted => "posted",
    }
}

/// One line per message.
pub fn summary(d: &Decision) -> String {
    let id = d.message_id.as_deref().unwrap_or("-");
    match d.outcome {
        Outcome::Rejected => format!(
            "rejected {id}: {}\n",
            d.reason.as_deref().unwrap_or("(no reason)")
        ),
        Outcome::Duplicate => format!(
            "duplicate {id}: already cached (row {})\n",
            d.duplicate_of.unwrap_or(0)
        ),
        _ => format!(
            "{} {id} from {}: cache row {}, {} matched, {} forward(s) queued\n",
            outcome_word(d),
            d.sender.as_deref().unwrap_or("-"),
            d.cache_id
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            d.matched.len(),
            d.forwards.len()
        ),
    }
}

/// The decision for people (--explain).
pub fn explain(d: &Decision) -> String {
    let mut s = String::new();
    let routed = matches!(d.outcome, Outcome::Accepted | Outcome::Posted);
    message_lines(&mut s, d);
    score_lines(&mut s, d, routed);
    forward_lines(&mut s, d, routed);
    for n in &d.notes {
        let _ = writeln!(s, "note:       {n}");
    }
    s.push('\n');
    s
}

/// The decision, then the message: its ID and size, who sent it and how, why it was refused,
/// where it was cached.
fn message_lines(s: &mut String, d: &Decision) {
    let _ = writeln!(s, "decision:   {}", outcome_word(d));
    if let Some(id) = &d.message_id {
        let _ = writeln!(
            s,
            "message:    {id} ({} header line(s), {} body bytes)",
            d.header_lines, d.body_bytes
        );
    }
    if let Some(x) = &d.sender {
        let _ = writeln!(
            s,
            "sender:     {x} via {}, {}",
            d.via.map(|v| v.as_str()).unwrap_or("-"),
            match (d.signed, d.verified) {
                (_, true) => "signature verified",
                (true, false) => "signed, not verified (no key)",
                (false, false) => "unsigned",
            }
        );
    }
    if let Some(r) = &d.reason {
        let _ = writeln!(
            s,
            "reason:     {r} [{}]",
            d.reason_code.as_deref().unwrap_or("")
        );
    }
    if let Some(c) = d.cache_id {
        let _ = writeln!(s, "cached:     row {c}");
    }
}

/// The matcher, each peer's score and the cached messages matched; `routed`: the message was
/// routed, so empty lists are said to be empty.
fn score_lines(s: &mut String, d: &Decision, routed: bool) {
    if let Some(m) = &d.matcher {
        if routed {
            let _ = writeln!(s, "matcher:    {m}");
        }
    }
    if !d.scores.is_empty() {
        let _ = writeln!(s, "peer scores (lower = closer):");
        for p in &d.scores {
            let best = if d.best_peer.as_deref() == Some(&p.peer) {
                "  <- best"
            } else {
                ""
            };
            let _ = writeln!(s, "  {:>8.4}  {}{best}", p.score, p.peer);
        }
    } else if routed {
        let _ = writeln!(s, "peer scores: none (no peer has cached messages)");
    }
    if !d.matched.is_empty() {
        let _ = writeln!(s, "matched cached messages:");
        for m in &d.matched {
            let _ = writeln!(
                s,
                "  {:>8.4}  row {}  {} (from {})",
                m.score, m.cache_id, m.origin, m.sender
            );
        }
    }
}

/// The forwards queued, and those the relay policy refused; `routed` as for [`score_lines`].
fn forward_lines(s: &mut String, d: &Decision, routed: bool) {
    if !d.forwards.is_empty() {
        let _ = writeln!(s, "forwards queued:");
        for f in &d.forwards {
            let _ = writeln!(
                s,
                "  {}: {} (row {}) -> {}  [{}{}] {}",
                f.outbox_id
                    .map(|i| format!("outbox {i}"))
                    .unwrap_or_else(|| "held for key exchange".into()),
                f.what.to_uppercase(),
                f.cache_id,
                f.dest,
                if f.signed { "signed" } else { "unsigned" },
                f.timestamp
                    .as_deref()
                    .map(|t| format!(", T={t}"))
                    .unwrap_or_default(),
                f.why
            );
        }
    } else if routed {
        let _ = writeln!(s, "forwards queued: none");
    }
    if !d.refused.is_empty() {
        let _ = writeln!(s, "forwards refused by the relay policy:");
        for r in &d.refused {
            let _ = writeln!(
                s,
                "  {} (row {}) -> {}  [{}] {}",
                r.what.to_uppercase(),
                r.cache_id,
                r.dest,
                r.code,
                r.reason
            );
        }
    }
}
