//! Who a router may send to: the relay policy.
//!
//! A3: "For each message Y matched to X, it should forward X to zero or more addresses that
//! appear in the header of Y, and forward Y to zero or more addresses that appear in the
//! header of X." A router can verify only the immediate sender; every other header line
//! is a claim anyone can write. Section 4: peers "must have an incentive to prevent their
//! peers from being exploited by forwarding malicious traffic". So the "zero or more" is
//! decided here, for every send the router queues (forwards, compensatory replies, and
//! the key-exchange replies and requests of first contact):
//!
//! 1. **Restricted addresses.** A literal loopback, private, link-local, unique-local,
//!    multicast or unspecified address is refused unless `send_allow` lists it
//!    ([`crate::netaddr`]); names are checked after resolution when sent.
//! 2. **Relationships.** A destination is *known* when it is a peer we share a key with, a
//!    peer the operator configured (`cmr-route peer add`, an alias), or the verified
//!    immediate sender of the message being routed. Sends to known destinations are
//!    never limited here (the router's own fan-out caps still apply).
//! 3. **First contact.** Any other destination is a stranger. A message whose sender did
//!    not verify may not make us write to a stranger named in a header: only a reply to
//!    its immediate sender is allowed (that is how a new router joins, 3.1). Every send to
//!    a stranger spends budget: `contact_budget_source` per source (the verified sender
//!    that caused it, `local` for our own client, and one shared source `unverified` for
//!    every unverified sender, since their addresses cost nothing to invent) and
//!    `contact_budget_global` over all. Past either, the send is refused.
//!
//! Every refusal is returned with a stable code and a reason; the router puts it in its
//! decision (`--explain`, `--json`, the log) and counts it (`counters`, scope `relay`).

use crate::exit::Failure;
use crate::netaddr;
use crate::state::{self, db_failure, settings::Settings};
use rusqlite::{params, Transaction};

/// What caused a send.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    /// The immediate sender of the message being handled (as its header says).
    pub sender: &'a str,
    /// Its signature verified (or the transport authenticated it).
    pub verified: bool,
    /// Our own client's post (cmr-post).
    pub client: bool,
}

impl Cause<'_> {
    /// The budget this cause spends from.
    fn source(&self) -> &str {
        if self.client {
            "local"
        } else if self.verified {
            self.sender
        } else {
            "unverified"
        }
    }
}

/// A send the policy refused: a stable code and the reason for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// `restricted-address`, `relay-unverified`, `contact-budget-source`,
    /// `contact-budget-global`.
    pub code: &'static str,
    pub reason: String,
}

/// A send the policy allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A keyed or configured peer, or the verified sender: nothing spent.
    Known,
    /// A stranger: one unit of budget was spent (recorded in this transaction).
    Stranger,
}

/// Whether `dest` is a keyed or operator-configured peer (under any of its addresses). A
/// provisional key (from an exchange nobody authenticated, not yet confirmed by a verified
/// message: keyx) does not make a relationship: a forger may hold it.
pub fn is_known_peer(
    tx: &rusqlite::Connection,
    settings: &Settings,
    dest: &str,
) -> Result<bool, Failure> {
    let peer = settings.peer_of(dest);
    if peer != dest {
        return Ok(true); // an alias: the operator configured it
    }
    let mut st = tx
        .prepare_cached(
            "SELECT 1 FROM peers WHERE address = ?1 AND (configured = 1 OR (key IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM keyx_provisional WHERE peer = ?1)))",
        )
        .map_err(db_failure)?;
    st.exists([dest]).map_err(db_failure)
}

/// Decide one send to `dest` (`what`: `x`, `y`, `z`, `keyx`), spending budget when it
/// goes to a stranger. Call inside the write transaction that queues the send.
pub fn admit(
    tx: &Transaction,
    settings: &Settings,
    dest: &str,
    what: &str,
    cause: &Cause,
) -> Result<Result<Admitted, Refusal>, Failure> {
    // Restricted addresses, whoever asks (a keyed peer on a LAN needs send_allow too).
    if let Err(r) = netaddr::check_literal(dest, &settings.send_allow) {
        return Ok(Err(Refusal {
            code: "restricted-address",
            reason: format!("{dest}: {r}"),
        }));
    }
    let same_peer = settings.peer_of(dest) == settings.peer_of(cause.sender);
    if (same_peer && cause.verified) || is_known_peer(tx, settings, dest)? {
        return Ok(Ok(Admitted::Known));
    }
    if !cause.verified && !cause.client && !same_peer {
        return Ok(Err(Refusal {
            code: "relay-unverified",
            reason: format!(
                "{dest} is neither a keyed nor a configured peer, and is named only in a \
                 header of an unverified message (from {}): no first contact on a stranger's \
                 word",
                cause.sender
            ),
        }));
    }
    let source = cause.source();
    if let Some(r) = refuse_over_budget(tx, settings, source)? {
        return Ok(Err(r));
    }
    let (_, now) = state::now();
    tx.prepare_cached(
        "INSERT INTO contact_spend(at_unix, source, dest, what) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db_failure)?
    .execute(params![now, source, dest, what])
    .map_err(db_failure)?;
    Ok(Ok(Admitted::Stranger))
}

/// Would a send to a stranger caused by `cause` be over budget? (Checked before work that
/// would end in such a send, e.g. answering a key-exchange request; spend with [`admit`].)
pub fn over_budget(
    tx: &Transaction,
    settings: &Settings,
    cause: &Cause,
) -> Result<Option<Refusal>, Failure> {
    refuse_over_budget(tx, settings, cause.source())
}

fn refuse_over_budget(
    tx: &Transaction,
    settings: &Settings,
    source: &str,
) -> Result<Option<Refusal>, Failure> {
    let (_, now) = state::now();
    prune(tx, settings, now)?;
    let windows = [
        (
            settings.contact_budget_source,
            Some(source),
            "contact-budget-source",
            "contact_budget_source",
        ),
        (
            settings.contact_budget_global,
            None,
            "contact-budget-global",
            "contact_budget_global",
        ),
    ];
    for (rate, scope, code, key) in windows {
        let Some(r) = rate else { continue };
        let n = spent(tx, scope, now - r.secs as f64)?;
        if n >= r.count {
            let whose = scope.map_or(String::new(), |s| format!(" of source {s}"));
            return Ok(Some(Refusal {
                code,
                reason: format!(
                    "first-contact budget{whose} spent: {n} sends to strangers in the last {} s \
                     ({key} {}/{})",
                    r.secs, r.count, r.secs
                ),
            }));
        }
    }
    Ok(None)
}

/// Sends to strangers since `since`: by one source, or by all.
fn spent(tx: &Transaction, source: Option<&str>, since: f64) -> Result<u64, Failure> {
    match source {
        Some(s) => tx
            .prepare_cached("SELECT count(*) FROM contact_spend WHERE source = ?1 AND at_unix > ?2")
            .map_err(db_failure)?
            .query_row(params![s, since], |r| r.get(0)),
        None => tx
            .prepare_cached("SELECT count(*) FROM contact_spend WHERE at_unix > ?1")
            .map_err(db_failure)?
            .query_row(params![since], |r| r.get(0)),
    }
    .map_err(db_failure)
}

/// Forget spends older than the longest window (kept small: one row per stranger send).
fn prune(tx: &Transaction, settings: &Settings, now: f64) -> Result<(), Failure> {
    let longest = [
        settings.contact_budget_source,
        settings.contact_budget_global,
    ]
    .iter()
    .flatten()
    .map(|r| r.secs)
    .max()
    .unwrap_or(0);
    tx.prepare_cached("DELETE FROM contact_spend WHERE at_unix <= ?1")
        .map_err(db_failure)?
        .execute([now - longest as f64])
        .map_err(db_failure)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{peers, settings, State};

    fn setup() -> (tempfile::TempDir, State) {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(Some(&d.path().join("s"))).unwrap();
        st.write(|tx| settings::add_own_address(tx, "http://me.test/cmr").map(|_| ()))
            .unwrap();
        (d, st)
    }

    fn decide(st: &State, dest: &str, cause: Cause) -> Result<Admitted, Refusal> {
        st.write(|tx| {
            let s = Settings::load(tx)?;
            admit(tx, &s, dest, "x", &cause)
        })
        .unwrap()
    }

    const UNVERIFIED: Cause = Cause {
        sender: "mailto:stranger@evil.test",
        verified: false,
        client: false,
    };
    const VERIFIED: Cause = Cause {
        sender: "http://friend.test/cmr",
        verified: true,
        client: false,
    };

    #[test]
    fn unverified_messages_reach_no_header_named_stranger() {
        let (_d, st) = setup();
        let r = decide(&st, "mailto:victim@example.org", UNVERIFIED).unwrap_err();
        assert_eq!(r.code, "relay-unverified");
        // A reply to the (unverified) immediate sender spends the shared budget.
        assert_eq!(
            decide(&st, UNVERIFIED.sender, UNVERIFIED),
            Ok(Admitted::Stranger)
        );
        // Configured and keyed peers are known whoever asks.
        st.write(|tx| peers::set_options(tx, "http://conf.test/cmr", None))
            .unwrap();
        assert_eq!(
            decide(&st, "http://conf.test/cmr", UNVERIFIED),
            Ok(Admitted::Known)
        );
    }

    #[test]
    fn strangers_cost_budget_per_source_and_overall() {
        let (_d, st) = setup();
        st.write(|tx| {
            settings::set(tx, "contact_budget_source", "2/3600")?;
            settings::set(tx, "contact_budget_global", "3/3600").map(|_| ())
        })
        .unwrap();
        assert_eq!(
            decide(&st, "http://a.test/", VERIFIED),
            Ok(Admitted::Stranger)
        );
        assert_eq!(
            decide(&st, "http://b.test/", VERIFIED),
            Ok(Admitted::Stranger)
        );
        let r = decide(&st, "http://c.test/", VERIFIED).unwrap_err();
        assert_eq!(r.code, "contact-budget-source");
        // The verified sender itself is known: no budget.
        assert_eq!(decide(&st, VERIFIED.sender, VERIFIED), Ok(Admitted::Known));
        let other = Cause {
            sender: "http://other.test/cmr",
            ..VERIFIED
        };
        assert_eq!(decide(&st, "http://c.test/", other), Ok(Admitted::Stranger));
        let r = decide(&st, "http://d.test/", other).unwrap_err();
        assert_eq!(r.code, "contact-budget-global");
        st.write(|tx| settings::set(tx, "contact_budget_global", "off").map(|_| ()))
            .unwrap();
        assert_eq!(decide(&st, "http://d.test/", other), Ok(Admitted::Stranger));
    }

    #[test]
    fn restricted_literals_are_refused_unless_allowed() {
        let (_d, st) = setup();
        for dest in [
            "http://127.0.0.1:6379/",
            "http://169.254.169.254/latest/meta-data/",
            "udp://10.0.0.1:53/x",
            "https://[::1]/cmr",
        ] {
            let r = decide(&st, dest, VERIFIED).unwrap_err();
            assert_eq!(r.code, "restricted-address", "{dest}");
            assert!(r.reason.contains("send_allow"), "{}", r.reason);
        }
        st.write(|tx| settings::set(tx, "send_allow", "127.0.0.0/8").map(|_| ()))
            .unwrap();
        assert!(decide(&st, "http://127.0.0.1:6379/", VERIFIED).is_ok());
        assert!(decide(&st, "udp://10.0.0.1:53/x", VERIFIED).is_err());
    }
}
