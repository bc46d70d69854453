//! Settings: our own addresses and the routing policy, in the state file.
//!
//! Every policy key has a default, a validator and a one-line description
//! (`cmr-route policy` lists them). Values are stored as text, normalised on write.

use super::db_failure;
use crate::exit::Failure;
use rusqlite::{Connection, OptionalExtension, Transaction};
use serde::Serialize;

/// What a setting's value must look like.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// A non-negative integer.
    Count,
    /// A non-negative number.
    Number,
    /// A number, or `off`.
    NumberOrOff,
    /// A share above 0 and at most 1, or `off`.
    ShareOrOff,
    /// `N/SECONDS` (at most N accepted messages in any window of SECONDS), or `off`.
    Rate,
    /// Any text without CR or LF (an address).
    Address,
    /// Address ranges and host names (`crate::netaddr::Allow`), comma-separated.
    AllowList,
}

/// One known setting.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub key: &'static str,
    pub default: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// Every setting the tools read. Other modules may read keys of their own through
/// [`get`]/[`set_raw`]; `cmr-route policy` validates only the keys listed here.
pub const SPECS: &[Spec] = &[
    Spec {
        key: "unsigned",
        default: "accept",
        kind: Kind::Choice(&["accept", "reject"]),
        help: "unsigned messages from senders we hold no key for",
    },
    Spec {
        key: "unknown_signed",
        default: "accept",
        kind: Kind::Choice(&["accept", "reject"]),
        help: "signed messages from senders we hold no key for (cannot be verified)",
    },
    Spec {
        key: "rate_peer",
        default: "120/60",
        kind: Kind::Rate,
        help: "per-peer rate window: at most N accepted messages per SECONDS, e.g. 60/60",
    },
    Spec {
        key: "rate_global",
        default: "1200/60",
        kind: Kind::Rate,
        help: "global rate window over all senders, e.g. 1000/60",
    },
    Spec {
        key: "send_allow",
        default: "",
        kind: Kind::AllowList,
        help: "loopback/private/link-local ranges and host names we may send to anyway, e.g. 127.0.0.0/8,::1,peer.lan (default: none)",
    },
    Spec {
        key: "contact_budget_source",
        default: "60/3600",
        kind: Kind::Rate,
        help: "sends to addresses that are neither keyed nor configured peers, per source (the verified sender that caused them; all unverified senders share one source)",
    },
    Spec {
        key: "contact_budget_global",
        default: "600/3600",
        kind: Kind::Rate,
        help: "sends to addresses that are neither keyed nor configured peers, over all sources",
    },
    Spec {
        key: "max_body_bytes",
        default: "1048576",
        kind: Kind::Count,
        help: "size cap on a message body",
    },
    Spec {
        key: "max_header_lines",
        default: "256",
        kind: Kind::Count,
        help: "most message IDs accepted in a routing header",
    },
    Spec {
        key: "reputation_floor",
        default: "off",
        kind: Kind::NumberOrOff,
        help: "reject messages from peers whose reputation is below this",
    },
    Spec {
        key: "bulk_resemblance",
        default: "0.5",
        kind: Kind::ShareOrOff,
        help: "Section 4 bulk posting: a message whose words resemble those of a recent cached message from the same creator at least this much (above 0, at most 1: shared words over all words, numbers ignored) is cached but not forwarded (off: no check)",
    },
    Spec {
        key: "clock_skew_secs",
        default: "0",
        kind: Kind::Count,
        help: "allowance for peers whose clocks run ahead of ours",
    },
    Spec {
        key: "matcher",
        default: "compression",
        kind: Kind::Choice(&["compression"]),
        help: "matching engine",
    },
    Spec {
        key: "metric",
        default: "conditional",
        kind: Kind::Choice(&["conditional", "spec", "relative", "ncd"]),
        help: "routing metric: conditional = C(Y X)-C(Y), spec = D(X,Y), relative = D(X,Y)-C(Y), ncd = normalised compression distance",
    },
    Spec {
        key: "compressor",
        default: "model",
        kind: Kind::Choice(&["model", "deflate", "xz"]),
        help: "compressor behind the metric: model = word model kept in the state file (fast, most accurate; docs/routing.md), deflate or xz over each peer's recent bodies",
    },
    Spec {
        key: "related_rank",
        default: "compression",
        kind: Kind::Choice(&["compression", "bm25"]),
        help: "rank related messages by compression distance, or by the full-text index alone",
    },
    Spec {
        key: "context_bytes",
        default: "32768",
        kind: Kind::Count,
        help: "bytes of each peer's most recent cached bodies used as its context",
    },
    Spec {
        key: "max_peers_scored",
        default: "64",
        kind: Kind::Count,
        help: "peers scored per message (the most recently active)",
    },
    Spec {
        key: "distance_threshold",
        default: "0.95",
        kind: Kind::Number,
        help: "3.3: no peer is sent a message unless its score is at most this",
    },
    Spec {
        key: "post_routing",
        default: "best",
        kind: Kind::Choice(&["best", "threshold"]),
        help: "3.1: our own client's post goes to the best peer even above distance_threshold (best), or only within it (threshold)",
    },
    Spec {
        key: "post_fanout",
        default: "1",
        kind: Kind::Count,
        help: "3.1: with post_routing best, our own client's post goes to at least this many peers, the best scored first, whatever their scores",
    },
    Spec {
        key: "widen_fanout",
        default: "2",
        kind: Kind::Count,
        help: "3.1: cmr-post --widen sends our client's post, once and within reply_window, to this many more peers not asked yet; never a post of a series (0: off)",
    },
    Spec {
        key: "margin",
        default: "0.02",
        kind: Kind::Number,
        help: "3.3: peers whose score is within this of the best also get the message",
    },
    Spec {
        key: "match_k",
        default: "3",
        kind: Kind::Count,
        help: "A3: most cached messages a new message is matched to",
    },
    Spec {
        key: "match_threshold",
        default: "0.9",
        kind: Kind::Number,
        help: "A3: a cached message matches only if its score is at most this",
    },
    Spec {
        key: "forwards_per_match",
        default: "1",
        kind: Kind::Count,
        help: "addresses of a matched message's header the new message is sent to",
    },
    Spec {
        key: "max_forwards",
        default: "6",
        kind: Kind::Count,
        help: "3.3: cap on forwards queued per incoming message",
    },
    Spec {
        key: "related_k",
        default: "10",
        kind: Kind::Count,
        help: "related messages cmr-post prints",
    },
    Spec {
        key: "client_address",
        default: "",
        kind: Kind::Address,
        help: "address cmr-post writes as creator (default: our first address)",
    },
    Spec {
        key: "log_keep",
        default: "10000",
        kind: Kind::Count,
        help: "decision log: newest rows kept (pruned every 100 rows); 0 keeps every row",
    },
    Spec {
        key: "log_keep_days",
        default: "30",
        kind: Kind::Count,
        help: "decision log: rows older than this many days are pruned; 0 keeps them",
    },
    Spec {
        key: "busy_timeout_ms",
        default: "10000",
        kind: Kind::Count,
        help: "how long to wait for another writer before giving up with 75",
    },
    Spec {
        key: "max_hops",
        default: "2",
        kind: Kind::Count,
        help: "3.3: a message whose header has this many lines (routers passed) is cached and matched but not forwarded (0: no limit)",
    },
    Spec {
        key: "answers_return",
        default: "2",
        kind: Kind::Count,
        help: "3.1: 0, every message is routed alike; 1, a message older than one that passed through us lately, and close to it, is an answer on its way back: it goes on along that message's header and is routed no further; 2, the same, but an answer whose signature verified from a peer we sent that message to stops here (A3 sent it along the whole header from there)",
    },
    Spec {
        key: "last_hop_answers",
        default: "1",
        kind: Kind::Count,
        help: "A3 at max_hops: 1, a message forwarded no further is still answered (its matches go back along its header); 0, nothing is sent",
    },
    Spec {
        key: "answers_to",
        default: "path",
        kind: Kind::Choice(&["path", "origin"]),
        help: "A3: what a message matched goes to every address of its header (path), or to its originator only, and not at all when the router it came from holds it (origin)",
    },
    Spec {
        key: "explore_fanout",
        default: "3",
        kind: Kind::Count,
        help: "3.1 exploration: a message that matched nothing here and has no peer within distance_threshold goes to this many more neighbours (0: never)",
    },
    Spec {
        key: "explore_hops",
        default: "3",
        kind: Kind::Count,
        help: "3.1 exploration: only messages whose header has fewer lines than this (hops travelled) are explored",
    },
    Spec {
        key: "walk_hops",
        default: "0",
        kind: Kind::Count,
        help: "3.1 walk: past max_hops, a message that is not an answer on its way back goes on to one neighbour, the best scored not in its header, until its header has this many lines (0: off)",
    },
    Spec {
        key: "spread_fanout",
        default: "0",
        kind: Kind::Count,
        help: "3.1 spread: a message that came straight from its creator's router (one header line) and is below max_hops also goes to this many more neighbours, in an order drawn from the message, not from the scores (0: off)",
    },
    Spec {
        key: "explore_until",
        default: "25",
        kind: Kind::Count,
        help: "3.1 exploration stops once the cache holds this many messages (0: it never stops; it fades as peers come within distance_threshold)",
    },
    Spec {
        key: "reply_window",
        default: "86400",
        kind: Kind::Count,
        help: "A1 replies: for this many seconds after a client's post, a message that arrives and ranks among the post's related_k related messages is one of its replies (0: only the messages that match the post)",
    },
    Spec {
        key: "answer_depth",
        default: "20",
        kind: Kind::Count,
        help: "3.1 answers: a message from a peer is also matched to the message we sent that peer within reply_window that ranks highest among its this many closest cached messages (0: off)",
    },
    Spec {
        key: "reply_watch",
        default: "16",
        kind: Kind::Count,
        help: "A1 replies: the most recent client posts within reply_window that each arriving message is ranked for",
    },
    Spec {
        key: "replies_from_asked",
        default: "1",
        kind: Kind::Count,
        help: "A1 replies: 1, a message older than our client's open post that arrives from a router the post was sent to is among its replies, however it ranks (the router asked answered); 0, only messages ranked close to the post are",
    },
];

/// The spec of a known key.
pub fn spec(key: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.key == key)
}

/// Check and normalise a value for a known key. Unknown key: 64; bad value: 78.
pub fn validate(key: &str, value: &str) -> Result<String, Failure> {
    let s = spec(key).ok_or_else(|| {
        Failure::usage(format!(
            "unknown policy setting '{key}' (known: {})",
            SPECS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let v = value.trim();
    let bad = |want: &str| Failure::config(format!("{key}: '{value}' is not {want}"));
    match s.kind {
        Kind::Choice(words) => {
            let l = v.to_ascii_lowercase();
            if words.contains(&l.as_str()) {
                Ok(l)
            } else {
                Err(bad(&format!("one of {}", words.join(", "))))
            }
        }
        Kind::Count => v
            .parse::<u64>()
            .map(|n| n.to_string())
            .map_err(|_| bad("a whole number")),
        Kind::Number => match v.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(v.to_string()),
            _ => Err(bad("a non-negative number")),
        },
        Kind::NumberOrOff => {
            if v.eq_ignore_ascii_case("off") {
                return Ok("off".into());
            }
            match v.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(v.to_string()),
                _ => Err(bad("a number or 'off'")),
            }
        }
        Kind::ShareOrOff => {
            if v.eq_ignore_ascii_case("off") {
                return Ok("off".into());
            }
            match v.parse::<f64>() {
                Ok(n) if n > 0.0 && n <= 1.0 => Ok(v.to_string()),
                _ => Err(bad("a share above 0 and at most 1 (e.g. 0.5), or 'off'")),
            }
        }
        Kind::Rate => {
            if v.eq_ignore_ascii_case("off") {
                return Ok("off".into());
            }
            parse_rate(v)
                .map(|(n, s)| format!("{n}/{s}"))
                .ok_or_else(|| bad("N/SECONDS (e.g. 60/60) or 'off'"))
        }
        Kind::Address => {
            if v.contains(['\r', '\n']) {
                Err(bad("an address (no CR or LF)"))
            } else {
                Ok(v.to_string())
            }
        }
        Kind::AllowList => crate::netaddr::Allow::parse(v)
            .map(|a| a.to_text())
            .map_err(|e| bad(&format!("a list of address ranges and host names: {e}"))),
    }
}

fn parse_rate(v: &str) -> Option<(u64, u64)> {
    let (n, s) = v.split_once('/')?;
    let n = n.trim().parse().ok()?;
    let s: u64 = s.trim().parse().ok()?;
    (s > 0).then_some((n, s))
}

/// The stored value of a key, None when unset.
pub fn get(conn: &Connection, key: &str) -> Result<Option<String>, Failure> {
    conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")
        .map_err(db_failure)?
        .query_row([key], |r| r.get(0))
        .optional()
        .map_err(db_failure)
}

/// The value of a known key, its default when unset.
pub fn get_or_default(conn: &Connection, key: &str) -> Result<String, Failure> {
    Ok(match get(conn, key)? {
        Some(v) => v,
        None => spec(key).map(|s| s.default.to_string()).unwrap_or_default(),
    })
}

/// Set a known key after validation.
pub fn set(tx: &Transaction, key: &str, value: &str) -> Result<String, Failure> {
    let v = validate(key, value)?;
    set_raw(tx, key, &v)?;
    if key == "compressor" {
        super::fts::sync_fts(tx, &v, false)?;
    }
    Ok(v)
}

/// Set any key without validation (for modules' own settings).
pub fn set_raw(tx: &Transaction, key: &str, value: &str) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO settings(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// Remove a key (back to its default).
pub fn unset(tx: &Transaction, key: &str) -> Result<bool, Failure> {
    let gone = tx
        .execute("DELETE FROM settings WHERE key = ?1", [key])
        .map_err(db_failure)?
        > 0;
    if key == "compressor" {
        super::fts::sync_fts(tx, &get_or_default(tx, "compressor")?, false)?;
    }
    Ok(gone)
}

/// Every alias, as (alias, peer).
pub fn aliases(conn: &Connection) -> Result<Vec<(String, String)>, Failure> {
    let mut st = conn
        .prepare_cached("SELECT alias, peer FROM peer_aliases ORDER BY alias")
        .map_err(db_failure)?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_failure)?;
    rows.collect::<Result<_, _>>().map_err(db_failure)
}

/// Our own addresses, primary first.
pub fn own_addresses(conn: &Connection) -> Result<Vec<String>, Failure> {
    let mut st = conn
        .prepare_cached("SELECT address FROM own_addresses ORDER BY position, address")
        .map_err(db_failure)?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// Add one of our own addresses (appended after the existing ones). False if present.
pub fn add_own_address(tx: &Transaction, address: &str) -> Result<bool, Failure> {
    check_own_address(address)?;
    let n = tx
        .execute(
            "INSERT OR IGNORE INTO own_addresses(address, position)
             VALUES (?1, (SELECT coalesce(max(position), -1) + 1 FROM own_addresses))",
            [address],
        )
        .map_err(db_failure)?;
    Ok(n > 0)
}

/// An address of ours must be non-empty, without CR or LF (A2); 64 otherwise.
pub fn check_own_address(address: &str) -> Result<(), Failure> {
    if address.is_empty() || address.contains(['\r', '\n']) {
        return Err(Failure::usage(format!(
            "bad address '{}': it must be non-empty, without CR or LF",
            address.escape_debug()
        )));
    }
    Ok(())
}

/// A rate window: at most `count` accepted messages per `secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub count: u64,
    pub secs: u64,
}

/// The routing policy and matching parameters, read once per message.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub own_addresses: Vec<String>,
    pub accept_unsigned: bool,
    pub accept_unknown_signed: bool,
    pub rate_peer: Option<Rate>,
    pub rate_global: Option<Rate>,
    /// Restricted addresses we may send to anyway (`send_allow`).
    pub send_allow: crate::netaddr::Allow,
    /// Sends to addresses without a relationship, per source and over all sources.
    pub contact_budget_source: Option<Rate>,
    pub contact_budget_global: Option<Rate>,
    pub max_body_bytes: u64,
    pub max_header_lines: u64,
    pub reputation_floor: Option<f64>,
    /// Section 4 bulk posting: a near-duplicate of a cached message from the same creator
    /// (at least this resemblance) is cached, not forwarded (`route::bulk`).
    pub bulk_resemblance: Option<f64>,
    pub clock_skew_secs: u64,
    pub matcher: String,
    pub metric: String,
    pub compressor: String,
    pub related_rank: String,
    pub context_bytes: u64,
    pub max_peers_scored: u64,
    pub distance_threshold: f64,
    /// A client's post reaches at least the best peer, whatever its score.
    pub post_to_best: bool,
    pub margin: f64,
    pub match_k: u64,
    pub match_threshold: f64,
    pub forwards_per_match: u64,
    pub max_forwards: u64,
    pub related_k: u64,
    /// 3.1: the fewest peers our client's post goes to (with `post_to_best`).
    pub post_fanout: u64,
    pub widen_fanout: u64,
    pub client_address: Option<String>,
    /// (alias, peer): a peer's other addresses (`cmr-route peer alias`).
    pub aliases: Vec<(String, String)>,
    /// 3.1 exploration while contexts form (`route::explore`).
    pub explore_fanout: u64,
    pub explore_hops: u64,
    pub explore_until: u64,
    /// 3.1 walk past the hop limit (`route::accept`).
    pub walk_hops: u64,
    /// 3.1 spread at the first relay (`route::explore::spread_targets`).
    pub spread_fanout: u64,
    /// A1 replies to our clients' open posts (`route::accept`).
    pub reply_window: u64,
    pub reply_watch: u64,
    /// A1: a message from a router our client's post was sent to, older than the post, is
    /// one of its replies (`route::accept::answer_open_posts`).
    pub replies_from_asked: bool,
    pub answer_depth: u64,
    /// 3.3: forward nothing once a header has this many lines (0: no limit).
    pub max_hops: u64,
    /// At `max_hops`, still send the matches back along the header (A3's second half).
    pub last_hop_answers: bool,
    /// 3.1: answers go back along the path of what they answer, and no further.
    /// 0 off, 1 answers return along the path, 2 and stop where the answerer reached the
    /// whole path itself.
    pub answers_return: u64,
    /// A3 `answers_to origin`: a match goes to the originator only (see `route::accept`).
    pub answers_to_origin: bool,
}

impl Settings {
    /// Read every setting (defaults for the unset ones). A stored value that does not
    /// validate (edited by hand) is a configuration error (78) naming the key.
    pub fn load(conn: &Connection) -> Result<Settings, Failure> {
        let mut map = std::collections::HashMap::new();
        {
            let mut st = conn
                .prepare_cached("SELECT key, value FROM settings")
                .map_err(db_failure)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_failure)?;
            for r in rows {
                let (k, v) = r.map_err(db_failure)?;
                map.insert(k, v);
            }
        }
        let val = |key: &str| -> Result<String, Failure> {
            let raw = map
                .get(key)
                .cloned()
                .unwrap_or_else(|| spec(key).map(|s| s.default).unwrap_or("").to_string());
            validate(key, &raw)
                .map_err(|f| Failure::config(f.message).context("state file setting"))
        };
        let count = |key: &str| -> Result<u64, Failure> { Ok(val(key)?.parse().unwrap_or(0)) };
        let num = |key: &str| -> Result<f64, Failure> { Ok(val(key)?.parse().unwrap_or(0.0)) };
        let rate = |key: &str| -> Result<Option<Rate>, Failure> {
            Ok(parse_rate(&val(key)?).map(|(count, secs)| Rate { count, secs }))
        };
        let client = val("client_address")?;
        Ok(Settings {
            own_addresses: own_addresses(conn)?,
            accept_unsigned: val("unsigned")? == "accept",
            accept_unknown_signed: val("unknown_signed")? == "accept",
            rate_peer: rate("rate_peer")?,
            rate_global: rate("rate_global")?,
            send_allow: crate::netaddr::Allow::parse(&val("send_allow")?)
                .map_err(|e| Failure::config(format!("setting send_allow: {e}")))?,
            contact_budget_source: rate("contact_budget_source")?,
            contact_budget_global: rate("contact_budget_global")?,
            max_body_bytes: count("max_body_bytes")?,
            max_header_lines: count("max_header_lines")?,
            reputation_floor: val("reputation_floor")?.parse().ok(),
            bulk_resemblance: val("bulk_resemblance")?.parse().ok(),
            clock_skew_secs: count("clock_skew_secs")?,
            matcher: val("matcher")?,
            metric: val("metric")?,
            compressor: val("compressor")?,
            related_rank: val("related_rank")?,
            context_bytes: count("context_bytes")?,
            max_peers_scored: count("max_peers_scored")?,
            distance_threshold: num("distance_threshold")?,
            post_to_best: val("post_routing")? == "best",
            post_fanout: count("post_fanout")?,
            widen_fanout: count("widen_fanout")?,
            margin: num("margin")?,
            match_k: count("match_k")?,
            match_threshold: num("match_threshold")?,
            forwards_per_match: count("forwards_per_match")?,
            max_forwards: count("max_forwards")?,
            related_k: count("related_k")?,
            client_address: (!client.is_empty()).then_some(client),
            aliases: aliases(conn)?,
            explore_fanout: count("explore_fanout")?,
            explore_hops: count("explore_hops")?,
            explore_until: count("explore_until")?,
            walk_hops: count("walk_hops")?,
            spread_fanout: count("spread_fanout")?,
            reply_window: count("reply_window")?,
            reply_watch: count("reply_watch")?,
            replies_from_asked: count("replies_from_asked")? > 0,
            answer_depth: count("answer_depth")?,
            max_hops: count("max_hops")?,
            last_hop_answers: count("last_hop_answers")? > 0,
            answers_return: count("answers_return")?,
            answers_to_origin: val("answers_to")? == "origin",
        })
    }

    /// The peer an address belongs to: the address an alias names, else the address itself.
    pub fn peer_of<'a>(&'a self, addr: &'a str) -> &'a str {
        self.aliases
            .iter()
            .find(|(a, _)| a == addr)
            .map_or(addr, |(_, p)| p.as_str())
    }

    /// Whether `dest`'s peer is in `m`'s header under any of its addresses (A3: never forward
    /// a message to an address, or here a peer, already in its header; 3.2: a peer is "one
    /// of the senders of X" under any of its addresses).
    pub fn peer_in_header(&self, m: &crate::wire::Message, dest: &str) -> bool {
        if m.has_address(dest.as_bytes()) {
            return true;
        }
        if self.aliases.is_empty() {
            return false;
        }
        let peer = self.peer_of(dest);
        m.ids().any(|id| self.peer_of(&id.address_str()) == peer)
    }

    /// Which of our addresses goes on a message to `dest`: the first of ours whose scheme
    /// (`mailto:`, `http:`, `udp:`, ...) is the destination's, else our primary address.
    /// The router's forwards and the key exchange name us alike.
    pub fn our_address_for(&self, dest: &str) -> Option<&str> {
        let scheme = |a: &str| a.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        let want = scheme(dest);
        self.own_addresses
            .iter()
            .find(|a| want.is_some() && scheme(a) == want)
            .or(self.own_addresses.first())
            .map(String::as_str)
    }

    /// Our primary address, if the state file was initialised.
    pub fn primary_address(&self) -> Option<&str> {
        self.own_addresses.first().map(String::as_str)
    }

    /// Is `addr` one of ours?
    pub fn is_own(&self, addr: &[u8]) -> bool {
        self.own_addresses.iter().any(|a| a.as_bytes() == addr)
    }

    /// The wire rules incoming messages are checked against.
    pub fn rules(&self) -> crate::wire::Rules {
        let mut r = crate::wire::Rules::default();
        r.limits.max_header_lines = self.max_header_lines as usize;
        // A body far over the cap is refused at its length line, before it is read: the
        // size policy (max_body_bytes, exit 77) judges bodies up to 1 MiB over it, the
        // parser's limit (exit 65) anything larger.
        r.limits.max_message_bytes = (self.max_body_bytes as usize).saturating_add(1 << 20);
        r.skew_secs = self.clock_skew_secs.min(u32::MAX as u64) as u32;
        r.own_addresses = self
            .own_addresses
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(validate("unsigned", "REJECT").unwrap(), "reject");
        assert_eq!(validate("unsigned", "maybe").unwrap_err().code, 78);
        assert_eq!(validate("nonsense", "1").unwrap_err().code, 64);
        assert_eq!(validate("rate_peer", "10/60").unwrap(), "10/60");
        assert_eq!(validate("rate_peer", "10/0").unwrap_err().code, 78);
        assert_eq!(validate("reputation_floor", "-2").unwrap(), "-2");
        assert_eq!(validate("margin", "-1").unwrap_err().code, 78);
        for s in SPECS {
            validate(s.key, s.default).unwrap();
        }
    }
}
