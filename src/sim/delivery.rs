//! The network of real routers and the delivery of their outboxes in rounds.
//!
//! Each router is a state file of its own, set up as an operator would: `cmr-route init
//! --address` ([`settings::add_own_address`]), `cmr-route policy` for the settings under
//! test, and `cmr-route peer add ADDRESS --key-hex` for every link (one random HMAC-SHA-256
//! key per link, the same on both ends, as `cmr-keyx set` would leave it). Routers start
//! knowing only their neighbours.
//!
//! Posts go through [`crate::route::post::post`] (what `cmr-post` does). A round drains
//! every router's due outbox rows with [`outbox::drain`] into a buffer per destination
//! (what `cmr-send --outbox --print` writes), then hands each buffer to the destination's
//! [`crate::route::receive_stream`] (what `cmr-route` reads from the pipe). A row for a
//! router that is down fails as a transient send error, so the outbox defers it with its
//! own backoff and it is retried in a later round. The client inbox is read with
//! [`crate::route::post::replies`] (what `cmr-post --replies` prints).
//!
//! Durability is off: each state file runs with `PRAGMA synchronous=OFF` (a crash of the
//! simulator loses the run, nothing else), on tmpfs (/dev/shm) when there is one.

use crate::exit::Failure;
use crate::route::post::{self, PostOptions, Posted, Reply};
use crate::route::{self, Decision, RouteOptions, Transport};
use crate::sign::{Key, Scheme};
use crate::state::{peers, settings, State};
use crate::transport::{outbox, Address, SendError};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One router: its address and state file.
pub struct Router {
    pub addr: String,
    pub state: State,
    policy: outbox::Policy,
}

/// A message handed to a router in a round.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub from: usize,
    pub to: usize,
    pub bytes: Vec<u8>,
}

/// The routers, by index, and where their state files are.
pub struct Net {
    pub routers: Vec<Router>,
    /// Messages cached and not forwarded as bulk (`bulk_resemblance`): (router, cache row).
    pub held_as_bulk: Vec<(usize, i64)>,
    index: HashMap<String, usize>,
    pub dir: PathBuf,
    _tmp: Option<TempDir>,
}

/// A directory of our own, removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    fn new(base: &Path, rng: &mut impl Rng) -> Result<TempDir, Failure> {
        for _ in 0..16 {
            let p = base.join(format!(
                "cmr-sim.{}.{:08x}",
                std::process::id(),
                rng.gen::<u32>()
            ));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Failure::from(e).context(p.display())),
            }
        }
        Err(Failure::temp(format!(
            "no fresh directory in {}",
            base.display()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Router i's address.
pub fn address(i: usize) -> String {
    format!("http://r{i}.cmr-sim.invalid/cmr")
}

fn pragma(st: &State, sql: &str) -> Result<(), Failure> {
    st.conn()
        .execute_batch(sql)
        .map_err(crate::state::db_failure)
}

impl Net {
    /// Create `n` routers with `settings` (key, value) and a keyed link per edge. `dir`:
    /// where the state files go (default: a new directory in /dev/shm, else in $TMPDIR).
    pub fn build(
        n: usize,
        edges: &[(usize, usize)],
        router_settings: &[(String, String)],
        dir: Option<&Path>,
        rng: &mut impl Rng,
    ) -> Result<Net, Failure> {
        let (dir, tmp) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| Failure::from(e).context(d.display()))?;
                (d.to_path_buf(), None)
            }
            None => {
                let shm = Path::new("/dev/shm");
                let base = if shm.is_dir() {
                    shm.to_path_buf()
                } else {
                    std::env::temp_dir()
                };
                let t = TempDir::new(&base, rng)?;
                (t.0.clone(), Some(t))
            }
        };
        let mut routers = Vec::with_capacity(n);
        let mut index = HashMap::new();
        for i in 0..n {
            let path = dir.join(format!("r{i}.sqlite"));
            let st = State::open(Some(&path))?;
            // Durability off (see the module comment); a small page cache per router.
            pragma(&st, "PRAGMA synchronous=OFF; PRAGMA cache_size=-512;")?;
            let addr = address(i);
            st.write(|tx| {
                settings::add_own_address(tx, &addr)?;
                for (k, v) in router_settings {
                    if settings::spec(k).is_some() {
                        settings::set(tx, k, v)?;
                    } else {
                        settings::set_raw(tx, k, v)?;
                    }
                }
                Ok(())
            })?;
            // The retries' jitter drawn from the router's index, not from the process's
            // random source: a run depends only on its options and seed.
            let policy = outbox::Policy {
                jitter_seed: Some((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ..outbox::Policy::from_settings(st.conn())?
            };
            let canon = Address::parse(&addr)
                .map_err(|e| Failure::software(e.to_string()))?
                .to_string();
            index.insert(canon, i);
            routers.push(Router {
                addr,
                state: st,
                policy,
            });
        }
        for &(a, b) in edges {
            let key = Key::new(rng.gen::<[u8; 32]>().to_vec());
            let (aa, ba) = (routers[a].addr.clone(), routers[b].addr.clone());
            routers[a]
                .state
                .write(|tx| peers::add(tx, &ba, Scheme::HmacSha256, Some(&key)))?;
            routers[b]
                .state
                .write(|tx| peers::add(tx, &aa, Scheme::HmacSha256, Some(&key)))?;
        }
        Ok(Net {
            routers,
            held_as_bulk: Vec::new(),
            index,
            dir,
            _tmp: tmp,
        })
    }

    /// The router with this address.
    pub fn router_of(&self, addr: &str) -> Option<usize> {
        self.index.get(addr).copied().or_else(|| {
            Address::parse(addr)
                .ok()
                .and_then(|a| self.index.get(&a.to_string()).copied())
        })
    }

    /// A client at router `r` posts `body` (cmr-post).
    pub fn post(&mut self, r: usize, body: &[u8]) -> Result<Posted, Failure> {
        let p = post::post(&mut self.routers[r].state, body, &PostOptions::default())?;
        if let Some(d) = &p.decision {
            self.note_bulk(r, d);
        }
        Ok(p)
    }

    fn note_bulk(&mut self, r: usize, d: &Decision) {
        if let (Some(_), Some(row)) = (d.near_duplicate_of, d.cache_id) {
            self.held_as_bulk.push((r, row));
        }
    }

    /// Our client's post (cache row `post`) at router `r` widened (cmr-post --widen).
    pub fn widen(&mut self, r: usize, post: i64) -> Result<crate::route::widen::Widened, Failure> {
        crate::route::widen::widen(
            &mut self.routers[r].state,
            &post.to_string(),
            &crate::route::RouteOptions::default(),
        )
    }

    /// New replies in router `r`'s client inbox, marked shown (cmr-post --replies).
    pub fn replies(&self, r: usize) -> Result<Vec<Reply>, Failure> {
        post::replies(&self.routers[r].state, false, true)
    }

    /// Has router `r` a row due or being retried?
    fn has_queued(&self, r: usize) -> Result<bool, Failure> {
        self.routers[r]
            .state
            .conn()
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM outbox WHERE state IN ('queued', 'sending'))",
                [],
                |x| x.get(0),
            )
            .map_err(crate::state::db_failure)
    }

    /// Are any rows left in any outbox (down routers included)?
    pub fn pending(&self) -> Result<bool, Failure> {
        for r in 0..self.routers.len() {
            if self.has_queued(r)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Drain every router that is up (cmr-send --outbox --print): the messages to hand over
    /// this round. Rows for a router in `down` are deferred by the outbox's backoff; rows for
    /// an address that is no router are dead-lettered.
    pub fn drain(&self, down: &HashSet<usize>) -> Result<Vec<Delivery>, Failure> {
        let mut out = Vec::new();
        for (i, r) in self.routers.iter().enumerate() {
            if down.contains(&i) || !self.has_queued(i)? {
                continue;
            }
            outbox::drain(&r.state, &r.policy, false, &mut |a, b| {
                let to = self
                    .index
                    .get(&a.to_string())
                    .copied()
                    .ok_or_else(|| SendError::Permanent(format!("{a}: no such router")))?;
                if down.contains(&to) {
                    return Err(SendError::Transient(format!("{a}: router down")));
                }
                out.push(Delivery {
                    from: i,
                    to,
                    bytes: b.to_vec(),
                });
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// Hand each router its messages as one stream (cmr-route reading the pipe).
    pub fn deliver(&mut self, batch: &[Delivery]) -> Result<Vec<(usize, Decision)>, Failure> {
        let mut by_dest: Vec<Vec<u8>> = vec![Vec::new(); self.routers.len()];
        for d in batch {
            by_dest[d.to].extend_from_slice(&d.bytes);
        }
        let mut out = Vec::new();
        for (to, bytes) in by_dest.into_iter().enumerate() {
            if bytes.is_empty() {
                continue;
            }
            let ds = route::receive_stream(
                &mut self.routers[to].state,
                std::io::Cursor::new(bytes),
                Transport::Pipe,
                &RouteOptions::default(),
            )?;
            for d in &ds {
                self.note_bulk(to, d);
            }
            out.extend(ds.into_iter().map(|d| (to, d)));
        }
        Ok(out)
    }

    /// Messages cached at router `r`.
    pub fn cache_size(&self, r: usize) -> Result<i64, Failure> {
        crate::state::cache::count(self.routers[r].state.conn())
    }

    /// The bodies of every message router `r` caches.
    pub fn cached_bodies(&self, r: usize) -> Result<Vec<Vec<u8>>, Failure> {
        let conn = self.routers[r].state.conn();
        let mut st = conn
            .prepare("SELECT id FROM cache ORDER BY id")
            .map_err(crate::state::db_failure)?;
        let ids: Vec<i64> = st
            .query_map([], |x| x.get(0))
            .map_err(crate::state::db_failure)?
            .collect::<Result<_, _>>()
            .map_err(crate::state::db_failure)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = crate::state::cache::get(conn, id)? {
                out.push(row.body().to_vec());
            }
        }
        Ok(out)
    }
}
