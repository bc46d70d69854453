//! Interim stand-in for the A3 router (the route branch owns the real one; this file is
//! replaced wholesale when it lands). It parses, drops duplicates and caches: enough for
//! the transports to hand messages over.

use crate::exit::Failure;
use crate::state::{db_failure, State};
use crate::wire;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Transport {
    Mail,
    Http,
    Https,
    Udp,
    Ssh,
    Pipe,
    Local,
}

impl Transport {
    pub fn is_secure(&self) -> bool {
        matches!(self, Transport::Https | Transport::Ssh)
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Mail => "mail",
            Transport::Http => "http",
            Transport::Https => "https",
            Transport::Udp => "udp",
            Transport::Ssh => "ssh",
            Transport::Pipe => "pipe",
            Transport::Local => "local",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "mail" => Transport::Mail,
            "http" => Transport::Http,
            "https" => Transport::Https,
            "udp" => Transport::Udp,
            "ssh" => Transport::Ssh,
            "pipe" => Transport::Pipe,
            "local" => Transport::Local,
            _ => return Err(format!("unknown transport {s:?}")),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    pub dry_run: bool,
    /// The transport authenticated the sender as this address (SSH forced command).
    pub authenticated_sender: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub accepted: bool,
    pub reason: Option<String>,
}

pub fn receive(
    state: &mut State,
    raw: &[u8],
    via: Transport,
    _opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let m = match wire::parse(raw, &wire::Rules::default()) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Decision {
                accepted: false,
                reason: Some(format!("malformed: {e}")),
            })
        }
    };
    state.write(|tx| {
        for id in m.ids() {
            let dup: Option<i64> = tx
                .query_row("SELECT cache_id FROM ids WHERE key = ?1", [id.key()], |r| {
                    r.get(0)
                })
                .ok();
            if dup.is_some() {
                return Ok(Decision {
                    accepted: false,
                    reason: Some("duplicate".into()),
                });
            }
        }
        let mut canon = b"0\r\n".to_vec();
        canon.extend_from_slice(m.payload());
        tx.execute(
            "INSERT INTO cache(bytes, arrived, sender, via, client) VALUES (?1, datetime('now'), ?2, ?3, 0)",
            rusqlite::params![canon, m.sender().address_str().as_ref(), via.as_str()],
        )
        .map_err(db_failure)?;
        let cid = tx.last_insert_rowid();
        for id in m.ids() {
            tx.execute(
                "INSERT OR IGNORE INTO ids(key, cache_id) VALUES (?1, ?2)",
                rusqlite::params![id.key(), cid],
            )
            .map_err(db_failure)?;
        }
        Ok(Decision {
            accepted: true,
            reason: None,
        })
    })
}
