//! Placeholder for the A3 router (the real one is on the `route` branch): only the agreed
//! interface, with a minimal receive that parses, drops duplicates and caches.

use crate::exit::Failure;
use crate::state::{db_failure, State};
use crate::wire;
use rusqlite::OptionalExtension;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, Default)]
pub struct RouteOptions {}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub accepted: bool,
    pub reason: String,
}

pub fn receive(
    state: &mut State,
    raw: &[u8],
    via: Transport,
    _opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let msg = match wire::parse(raw, &wire::Rules::default()) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Decision {
                accepted: false,
                reason: format!("malformed: {e}"),
            })
        }
    };
    state.write(|tx| {
        for id in msg.ids() {
            let seen: Option<i64> = tx
                .query_row("SELECT cache_id FROM ids WHERE key=?1", [id.key()], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db_failure)?;
            if seen.is_some() {
                return Ok(Decision {
                    accepted: false,
                    reason: "duplicate message ID".into(),
                });
            }
        }
        let mut canon = b"0\r\n".to_vec();
        canon.extend_from_slice(msg.payload());
        tx.execute(
            "INSERT INTO cache(bytes, arrived, sender, via, client) VALUES(?1, ?2, ?3, ?4, 0)",
            rusqlite::params![
                canon,
                wire::Timestamp::now().to_string(),
                msg.sender().address_str().into_owned(),
                via.as_str()
            ],
        )
        .map_err(db_failure)?;
        let cid = tx.last_insert_rowid();
        for id in msg.ids() {
            tx.execute(
                "INSERT OR IGNORE INTO ids(key, cache_id) VALUES(?1, ?2)",
                rusqlite::params![id.key(), cid],
            )
            .map_err(db_failure)?;
        }
        Ok(Decision {
            accepted: true,
            reason: String::new(),
        })
    })
}
