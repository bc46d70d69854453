//! Where the native model's statistics live: the state file (`engine_*` tables) or memory.
//!
//! Tables (SQLite):
//! - `engine_global(id = 1, docs, total, distinct_terms)`
//! - `engine_peers(idx, address, messages, total, distinct_terms, n1, n2, n3, n4, bits)`
//! - `engine_terms(hash, df, counts, recent)`: one row per word, keyed by its 64-bit hash;
//!   `counts` = varints (peer idx delta, count), `recent` = the most recent messages
//!   containing the word (zigzag varint id delta, varint peer idx). A message is scored by
//!   looking up only the rows of its own words.
//! - `engine_docs(id, peer, bits, terms)`: per cached message (id = cache id) its peer, its
//!   code length when learned, and its word hashes (8 bytes each, little endian), for exact
//!   scoring of shortlisted related messages and for forgetting the message.

use super::model::{Global, PeerStats, TermRow};
use crate::exit::Failure;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// The SQL creating the engine's tables (one migration of the state file).
pub use crate::state::schema::ENGINE_TABLES as SCHEMA;

/// A cached message as the engine remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub peer: u32,
    /// its code length under its peer's model when it was learned (bits)
    pub bits: f64,
    /// the hashes of its distinct words
    pub terms: Vec<u64>,
}

/// Storage of the model's statistics.
pub trait Store {
    fn global(&mut self) -> Result<Global, Failure>;
    fn set_global(&mut self, g: &Global) -> Result<(), Failure>;
    fn peer_index(&mut self, address: &str) -> Result<Option<u32>, Failure>;
    fn add_peer(&mut self, address: &str) -> Result<u32, Failure>;
    fn peer(&mut self, idx: u32) -> Result<PeerStats, Failure>;
    fn set_peer(&mut self, p: &PeerStats) -> Result<(), Failure>;
    fn all_peers(&mut self) -> Result<Vec<PeerStats>, Failure>;
    fn term(&mut self, hash: u64) -> Result<Option<TermRow>, Failure>;
    /// A word's document frequency (0: unknown), without its counts and recent list.
    fn df(&mut self, hash: u64) -> Result<u64, Failure> {
        Ok(self.term(hash)?.map_or(0, |r| r.df))
    }
    fn set_term(&mut self, hash: u64, row: &TermRow) -> Result<(), Failure>;
    fn doc(&mut self, id: i64) -> Result<Option<Doc>, Failure>;
    fn add_doc(&mut self, id: i64, doc: &Doc) -> Result<(), Failure>;
    fn delete_doc(&mut self, id: i64) -> Result<(), Failure>;
    fn delete_term(&mut self, hash: u64) -> Result<(), Failure>;
    /// Every remembered message (for exhaustive matching, in benchmarks and checks).
    fn for_each_doc(&mut self, f: &mut dyn FnMut(i64, &Doc)) -> Result<(), Failure>;
}

fn peer_stats_default(idx: u32, address: &str) -> PeerStats {
    PeerStats {
        idx,
        address: address.to_string(),
        ..Default::default()
    }
}

/// Statistics in memory (tests, experiments).
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    pub g: Global,
    pub peers: Vec<PeerStats>,
    pub terms: HashMap<u64, TermRow>,
    pub docs: std::collections::BTreeMap<i64, Doc>,
}

impl Store for MemStore {
    fn global(&mut self) -> Result<Global, Failure> {
        Ok(self.g)
    }
    fn set_global(&mut self, g: &Global) -> Result<(), Failure> {
        self.g = *g;
        Ok(())
    }
    fn peer_index(&mut self, address: &str) -> Result<Option<u32>, Failure> {
        Ok(self
            .peers
            .iter()
            .position(|p| p.address == address)
            .map(|i| i as u32))
    }
    fn add_peer(&mut self, address: &str) -> Result<u32, Failure> {
        let idx = self.peers.len() as u32;
        self.peers.push(peer_stats_default(idx, address));
        Ok(idx)
    }
    fn peer(&mut self, idx: u32) -> Result<PeerStats, Failure> {
        self.peers
            .get(idx as usize)
            .cloned()
            .ok_or_else(|| Failure::software(format!("engine: no peer {idx}")))
    }
    fn set_peer(&mut self, p: &PeerStats) -> Result<(), Failure> {
        self.peers[p.idx as usize] = p.clone();
        Ok(())
    }
    fn all_peers(&mut self) -> Result<Vec<PeerStats>, Failure> {
        Ok(self.peers.clone())
    }
    fn term(&mut self, hash: u64) -> Result<Option<TermRow>, Failure> {
        Ok(self.terms.get(&hash).cloned())
    }
    fn set_term(&mut self, hash: u64, row: &TermRow) -> Result<(), Failure> {
        self.terms.insert(hash, row.clone());
        Ok(())
    }
    fn doc(&mut self, id: i64) -> Result<Option<Doc>, Failure> {
        Ok(self.docs.get(&id).cloned())
    }
    fn add_doc(&mut self, id: i64, doc: &Doc) -> Result<(), Failure> {
        self.docs.insert(id, doc.clone());
        Ok(())
    }
    fn delete_doc(&mut self, id: i64) -> Result<(), Failure> {
        self.docs.remove(&id);
        Ok(())
    }
    fn delete_term(&mut self, hash: u64) -> Result<(), Failure> {
        self.terms.remove(&hash);
        Ok(())
    }
    fn for_each_doc(&mut self, f: &mut dyn FnMut(i64, &Doc)) -> Result<(), Failure> {
        for (id, d) in &self.docs {
            f(*id, d);
        }
        Ok(())
    }
}

/// Map an SQLite error: busy/locked/full/io trouble is transient (75), the rest internal.
pub fn db_failure(e: rusqlite::Error) -> Failure {
    use rusqlite::ErrorCode::*;
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if matches!(
            f.code,
            DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen
        ) {
            return Failure::temp(format!("state file: {e}"));
        }
    }
    Failure::software(format!("state file: {e}"))
}

/// Statistics in the state file. Writes must run inside the caller's transaction.
pub struct SqlStore<'c> {
    conn: &'c Connection,
    /// Word rows known to be current (read in this state of the file), each served once
    /// instead of read again.
    primed: super::FastMap<u64, Option<TermRow>>,
}

impl<'c> SqlStore<'c> {
    pub fn new(conn: &'c Connection) -> SqlStore<'c> {
        SqlStore {
            conn,
            primed: Default::default(),
        }
    }

    /// A store that answers `term` for these words from `rows` (which the caller knows to
    /// be what the file holds now) instead of reading them again.
    pub fn primed(
        conn: &'c Connection,
        rows: impl IntoIterator<Item = (u64, Option<TermRow>)>,
    ) -> SqlStore<'c> {
        SqlStore {
            conn,
            primed: rows.into_iter().collect(),
        }
    }
    /// Create the engine's tables if they are missing.
    pub fn create(conn: &Connection) -> Result<(), Failure> {
        conn.execute_batch(SCHEMA).map_err(db_failure)
    }
}

fn corrupt(what: &str) -> Failure {
    Failure::software(format!("state file: corrupt engine row ({what})"))
}

fn peer_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PeerStats> {
    Ok(PeerStats {
        idx: r.get::<_, i64>(0)? as u32,
        address: r.get(1)?,
        messages: r.get::<_, i64>(2)? as u64,
        total: r.get::<_, i64>(3)? as u64,
        distinct: r.get::<_, i64>(4)? as u64,
        nk: [
            r.get::<_, i64>(5)? as u64,
            r.get::<_, i64>(6)? as u64,
            r.get::<_, i64>(7)? as u64,
            r.get::<_, i64>(8)? as u64,
        ],
        bits: r.get(9)?,
    })
}

const PEER_COLS: &str = "idx, address, messages, total, distinct_terms, n1, n2, n3, n4, bits";

fn decode_doc(peer: i64, bits: f64, b: &[u8]) -> Doc {
    Doc {
        peer: peer as u32,
        bits,
        terms: b
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
    }
}

impl Store for SqlStore<'_> {
    fn global(&mut self) -> Result<Global, Failure> {
        let r = self
            .conn
            .prepare_cached("SELECT docs, total, distinct_terms FROM engine_global WHERE id = 1")
            .and_then(|mut s| {
                s.query_row([], |r| {
                    Ok(Global {
                        docs: r.get::<_, i64>(0)? as u64,
                        total: r.get::<_, i64>(1)? as u64,
                        distinct: r.get::<_, i64>(2)? as u64,
                    })
                })
                .optional()
            })
            .map_err(db_failure)?;
        Ok(r.unwrap_or_default())
    }
    fn set_global(&mut self, g: &Global) -> Result<(), Failure> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO engine_global(id, docs, total, distinct_terms)
                 VALUES (1, ?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![g.docs as i64, g.total as i64, g.distinct as i64]))
            .map_err(db_failure)?;
        Ok(())
    }
    fn peer_index(&mut self, address: &str) -> Result<Option<u32>, Failure> {
        self.conn
            .prepare_cached("SELECT idx FROM engine_peers WHERE address = ?1")
            .and_then(|mut s| s.query_row([address], |r| r.get::<_, i64>(0)).optional())
            .map(|o| o.map(|i| i as u32))
            .map_err(db_failure)
    }
    fn add_peer(&mut self, address: &str) -> Result<u32, Failure> {
        let idx: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(idx) + 1, 0) FROM engine_peers")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db_failure)?;
        self.conn
            .prepare_cached(
                "INSERT INTO engine_peers(idx, address, messages, total, distinct_terms, n1, n2,
                 n3, n4, bits) VALUES (?1, ?2, 0, 0, 0, 0, 0, 0, 0, 0.0)",
            )
            .and_then(|mut s| s.execute(params![idx, address]))
            .map_err(db_failure)?;
        Ok(idx as u32)
    }
    fn peer(&mut self, idx: u32) -> Result<PeerStats, Failure> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {PEER_COLS} FROM engine_peers WHERE idx = ?1"
            ))
            .and_then(|mut s| s.query_row([idx as i64], peer_from_row))
            .map_err(db_failure)
    }
    fn set_peer(&mut self, p: &PeerStats) -> Result<(), Failure> {
        self.conn
            .prepare_cached(
                "UPDATE engine_peers SET messages = ?2, total = ?3, distinct_terms = ?4, n1 = ?5,
                 n2 = ?6, n3 = ?7, n4 = ?8, bits = ?9 WHERE idx = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    p.idx as i64,
                    p.messages as i64,
                    p.total as i64,
                    p.distinct as i64,
                    p.nk[0] as i64,
                    p.nk[1] as i64,
                    p.nk[2] as i64,
                    p.nk[3] as i64,
                    p.bits
                ])
            })
            .map_err(db_failure)?;
        Ok(())
    }
    fn all_peers(&mut self) -> Result<Vec<PeerStats>, Failure> {
        let mut s = self
            .conn
            .prepare_cached(&format!(
                "SELECT {PEER_COLS} FROM engine_peers ORDER BY idx"
            ))
            .map_err(db_failure)?;
        let rows = s.query_map([], peer_from_row).map_err(db_failure)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
    }
    fn df(&mut self, hash: u64) -> Result<u64, Failure> {
        if let Some(row) = self.primed.get(&hash) {
            return Ok(row.as_ref().map_or(0, |r| r.df));
        }
        let mut s = self
            .conn
            .prepare_cached("SELECT df FROM engine_terms WHERE hash = ?1")
            .map_err(db_failure)?;
        let mut rows = s.query([hash as i64]).map_err(db_failure)?;
        match rows.next().map_err(db_failure)? {
            Some(r) => Ok(r.get::<_, i64>(0).map_err(db_failure)? as u64),
            None => Ok(0),
        }
    }
    fn term(&mut self, hash: u64) -> Result<Option<TermRow>, Failure> {
        if let Some(row) = self.primed.remove(&hash) {
            return Ok(row);
        }
        let mut s = self
            .conn
            .prepare_cached("SELECT df, counts, recent FROM engine_terms WHERE hash = ?1")
            .map_err(db_failure)?;
        let mut rows = s.query([hash as i64]).map_err(db_failure)?;
        let Some(r) = rows.next().map_err(db_failure)? else {
            return Ok(None);
        };
        let df: i64 = r.get(0).map_err(db_failure)?;
        let counts = r
            .get_ref(1)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(db_failure)?;
        let counts = TermRow::decode_counts(counts).ok_or_else(|| corrupt("counts"))?;
        let recent = r
            .get_ref(2)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(db_failure)?;
        let recent = TermRow::decode_recent(recent).ok_or_else(|| corrupt("recent"))?;
        Ok(Some(TermRow {
            df: df as u64,
            counts,
            recent,
        }))
    }
    fn set_term(&mut self, hash: u64, row: &TermRow) -> Result<(), Failure> {
        self.primed.remove(&hash);
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO engine_terms(hash, df, counts, recent) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    hash as i64,
                    row.df as i64,
                    row.encode_counts(),
                    row.encode_recent()
                ])
            })
            .map_err(db_failure)?;
        Ok(())
    }
    fn doc(&mut self, id: i64) -> Result<Option<Doc>, Failure> {
        self.conn
            .prepare_cached("SELECT peer, bits, terms FROM engine_docs WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    let b = r.get_ref(2)?.as_blob()?;
                    Ok(decode_doc(r.get(0)?, r.get(1)?, b))
                })
                .optional()
            })
            .map_err(db_failure)
    }
    fn add_doc(&mut self, id: i64, doc: &Doc) -> Result<(), Failure> {
        let mut b = Vec::with_capacity(doc.terms.len() * 8);
        for &h in &doc.terms {
            b.extend_from_slice(&h.to_le_bytes());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO engine_docs(id, peer, bits, terms) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![id, doc.peer as i64, doc.bits, b]))
            .map_err(db_failure)?;
        Ok(())
    }
    fn delete_doc(&mut self, id: i64) -> Result<(), Failure> {
        self.conn
            .prepare_cached("DELETE FROM engine_docs WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(db_failure)?;
        Ok(())
    }
    fn delete_term(&mut self, hash: u64) -> Result<(), Failure> {
        self.primed.remove(&hash);
        self.conn
            .prepare_cached("DELETE FROM engine_terms WHERE hash = ?1")
            .and_then(|mut s| s.execute([hash as i64]))
            .map_err(db_failure)?;
        Ok(())
    }
    fn for_each_doc(&mut self, f: &mut dyn FnMut(i64, &Doc)) -> Result<(), Failure> {
        let mut s = self
            .conn
            .prepare_cached("SELECT id, peer, bits, terms FROM engine_docs")
            .map_err(db_failure)?;
        let mut rows = s.query([]).map_err(db_failure)?;
        while let Some(r) = rows.next().map_err(db_failure)? {
            let id: i64 = r.get(0).map_err(db_failure)?;
            let peer: i64 = r.get(1).map_err(db_failure)?;
            let bits: f64 = r.get(2).map_err(db_failure)?;
            let b = r
                .get_ref(3)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(db_failure)?;
            f(id, &decode_doc(peer, bits, b));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{learn, score, terms};
    use super::*;

    #[test]
    fn sqlite_store_matches_memory_store() {
        let conn = Connection::open_in_memory().unwrap();
        SqlStore::create(&conn).unwrap();
        let mut sql = SqlStore::new(&conn);
        let mut mem = MemStore::default();
        let msgs = [
            ("http://a/", "The cat sat on the mat."),
            ("http://b/", "Perl regular expressions match strings."),
            ("http://a/", "A cat and a dog: the cat won."),
            ("mailto:c@x", "Ballet, opera and the theatre. caf\u{e9}"),
        ];
        for (i, (p, m)) in msgs.iter().enumerate() {
            learn(&mut sql, 100 + i as i64, p, m.as_bytes()).unwrap();
            learn(&mut mem, 100 + i as i64, p, m.as_bytes()).unwrap();
        }
        assert_eq!(sql.global().unwrap(), mem.global().unwrap());
        assert_eq!(sql.all_peers().unwrap(), mem.all_peers().unwrap());
        for (h, row) in &mem.terms {
            assert_eq!(sql.term(*h).unwrap().as_ref(), Some(row));
        }
        for (id, d) in mem.docs.clone() {
            assert_eq!(sql.doc(id).unwrap(), Some(d));
        }
        let mut n = 0;
        sql.for_each_doc(&mut |_, _| n += 1).unwrap();
        assert_eq!(n, msgs.len());
        let g = sql.global().unwrap();
        let peers = sql.all_peers().unwrap();
        let x = terms(b"the cat and the opera");
        let a = score(&mut sql, &g, &x, &peers).unwrap();
        let b = score(&mut mem, &g, &x, &peers).unwrap();
        assert_eq!(a.cond, b.cond);
        assert_eq!(a.cx, b.cx);
    }
}
