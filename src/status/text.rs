//! `cmr-route status` for people: the report as text, a section per function.

use super::*;

/// 90 s, 25 min, 3 h 10 min, 2 d 4 h.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 if s % 3600 < 60 => format!("{} h", s / 3600),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=9999 => format!("{n} bytes"),
        10_000..=9_999_999 => format!("{} KiB", n / 1024),
        _ => format!("{} MiB", n / (1024 * 1024)),
    }
}

/// The report for people: the Nagios line first, then one section per line.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    headline(&mut s, r);
    state_and_addresses(&mut s, r);
    peer_lines(&mut s, r);
    outbox_lines(&mut s, r);
    refusal_lines(&mut s, r);
    setting_lines(&mut s, r);
    wiring_lines(&mut s, r);
    s
}

/// The Nagios line: status, reasons (or a summary when there are none), performance data.
fn headline(s: &mut String, r: &Report) {
    let headline = if r.reasons.is_empty() {
        format!(
            "{} peer(s), {} cached, outbox {} due",
            r.peers.len(),
            r.cache,
            r.outbox.due
        )
    } else {
        r.reasons.join("; ")
    };
    let _ = writeln!(
        s,
        "CMR {}: {headline} | cache={} peers={} outbox_due={} outbox_dead={} state_bytes={}",
        r.status.word(),
        r.cache,
        r.peers.len(),
        r.outbox.due,
        r.outbox.dead,
        r.state_bytes
    );
}

/// The state file's path and sizes, and our addresses.
fn state_and_addresses(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "state file   {} ({}, WAL {})",
        r.state.display(),
        bytes(r.state_bytes),
        bytes(r.wal_bytes)
    );
    let _ = writeln!(
        s,
        "addresses    {}",
        if r.addresses.is_empty() {
            "none".to_string()
        } else {
            r.addresses.join(", ")
        }
    );
}

/// The peer count, then a line per peer: its key, held messages, when it was last seen.
fn peer_lines(s: &mut String, r: &Report) {
    let _ = writeln!(s, "peers        {}", r.peers.len());
    for p in &r.peers {
        let key = match (&p.key_pending, p.has_key) {
            (Some(m), _) => format!(
                "key {}, {m} exchange pending since {}{}",
                if p.has_key { "yes" } else { "no" },
                p.key_pending_since.as_deref().unwrap_or("?"),
                if p.key_pending_expired {
                    ", EXPIRED"
                } else {
                    ""
                }
            ),
            (None, true) => "key yes".into(),
            (None, false) => "key no".into(),
        };
        let _ = writeln!(
            s,
            "  {}  {key}{}, last seen {}{}",
            p.address,
            if p.held > 0 {
                format!(", {} held", p.held)
            } else {
                String::new()
            },
            p.last_seen.as_deref().unwrap_or("never"),
            if p.configured {
                ""
            } else {
                " (not configured)"
            }
        );
    }
}

/// The outbox by state, and when it was last drained.
fn outbox_lines(s: &mut String, r: &Report) {
    let o = &r.outbox;
    let _ = writeln!(
        s,
        "outbox       {} due, {} deferred, {} sending, {} dead{}",
        o.due,
        o.deferred,
        o.sending,
        o.dead,
        o.oldest_age_secs
            .map(|a| format!("; oldest row {} old", duration(a)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "last drain   {}",
        match (&r.last_drain, r.last_drain_age_secs) {
            (Some(t), Some(a)) => format!("{t} ({} ago)", duration(a)),
            _ => "never (cmr-send --outbox has not run on this state file)".into(),
        }
    );
}

/// Messages refused in the window by reason, and forwards the relay policy refused.
fn refusal_lines(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "refusals     {} in the last {}{}",
        r.refusals.iter().map(|x| x.1).sum::<i64>(),
        duration(r.window_secs as f64),
        if r.refusals.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                r.refusals
                    .iter()
                    .map(|(w, n)| format!("{w} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    if !r.relay_refusals.is_empty() {
        let _ = writeln!(
            s,
            "relay        {} forwards refused in the last {}: {}",
            r.relay_refusals.iter().map(|x| x.1).sum::<i64>(),
            duration(r.window_secs as f64),
            r.relay_refusals
                .iter()
                .map(|(w, n)| format!("{w} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// Settings changed from their defaults, one a line.
fn setting_lines(s: &mut String, r: &Report) {
    if r.settings.is_empty() {
        let _ = writeln!(s, "settings     all defaults");
    }
    for (i, c) in r.settings.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}{} = {} ({})",
            if i == 0 {
                "settings     "
            } else {
                "             "
            },
            c.key,
            c.value,
            match &c.default {
                Some(d) if d.is_empty() => "default: unset".to_string(),
                Some(d) => format!("default {d}"),
                None => "not a known setting".to_string(),
            }
        );
    }
}

/// The wiring found for each role, or that none was seen.
fn wiring_lines(s: &mut String, r: &Report) {
    let mut first = true;
    for w in Wiring::ALL {
        let found: Vec<&Found> = r.wiring.iter().filter(|f| f.kind == w).collect();
        let lead = if first {
            "wiring       "
        } else {
            "             "
        };
        first = false;
        if found.is_empty() {
            let _ = writeln!(s, "{lead}{}: none seen", w.word());
        }
        for (i, f) in found.iter().enumerate() {
            let lead = if i == 0 { lead } else { "             " };
            let _ = writeln!(s, "{lead}{}: {}:{}: {}", w.word(), f.file, f.line, f.text);
        }
    }
}
