//! A [`Store`] in memory: one peer's view, for tests and for trying the protocol without a
//! state file.

use super::exchange::{Pending, Store};
use super::rsa::KeyPair;
use super::Derive;
use crate::exit::Failure;
use crate::sign::{Key, Scheme};
use crate::wire::Timestamp;
use std::collections::BTreeMap;

/// One peer's key-exchange state in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub address: String,
    pub keys: BTreeMap<String, (Scheme, Key)>,
    pub derive: BTreeMap<String, Derive>,
    pub pending: BTreeMap<String, Pending>,
    /// Queued messages: (dest, bytes).
    pub outbox: Vec<(String, Vec<u8>)>,
    pub held: Vec<(String, Vec<u8>, Vec<u8>)>,
    pub spare: Vec<KeyPair>,
    pub clock: i64,
    pub ttl: i64,
    pub clear_min: usize,
    pub groups: BTreeMap<[u8; 32], bool>,
}

impl MemoryStore {
    pub fn new(address: &str) -> MemoryStore {
        MemoryStore {
            address: address.into(),
            clock: 1_700_000_000,
            ttl: super::exchange::DEFAULT_PENDING_TTL,
            clear_min: super::exchange::DEFAULT_CLEAR_MIN_BYTES,
            ..Default::default()
        }
    }
    /// Take every queued message.
    pub fn drain(&mut self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }
}

impl Store for MemoryStore {
    fn local_address(&self, _peer: &str) -> Result<String, Failure> {
        Ok(self.address.clone())
    }
    fn key(&self, peer: &str) -> Result<Option<(Scheme, Key)>, Failure> {
        Ok(self.keys.get(peer).cloned())
    }
    fn set_key(&mut self, peer: &str, key: &Key) -> Result<(), Failure> {
        let scheme = self.keys.get(peer).map(|k| k.0).unwrap_or_default();
        self.keys.insert(peer.into(), (scheme, key.clone()));
        Ok(())
    }
    fn derive_mode(&self, peer: &str) -> Result<Derive, Failure> {
        Ok(self.derive.get(peer).copied().unwrap_or_default())
    }
    fn pending(&self, peer: &str) -> Result<Option<Pending>, Failure> {
        Ok(self.pending.get(peer).cloned())
    }
    fn put_pending(&mut self, peer: &str, p: &Pending) -> Result<(), Failure> {
        self.pending.insert(peer.into(), p.clone());
        Ok(())
    }
    fn delete_pending(&mut self, peer: &str) -> Result<(), Failure> {
        self.pending.remove(peer);
        Ok(())
    }
    fn next_timestamp(&mut self) -> Result<Timestamp, Failure> {
        self.clock += 1;
        Ok(Timestamp::from_unix(self.clock, 0, 0))
    }
    fn now(&self) -> i64 {
        self.clock
    }
    fn pending_ttl(&self) -> Result<i64, Failure> {
        Ok(self.ttl)
    }
    fn clear_min_bytes(&self) -> Result<usize, Failure> {
        Ok(self.clear_min)
    }
    fn enqueue(&mut self, peer: &str, bytes: &[u8], _msg_key: &[u8]) -> Result<(), Failure> {
        self.outbox.push((peer.into(), bytes.to_vec()));
        Ok(())
    }
    fn hold(&mut self, peer: &str, payload: &[u8], msg_key: &[u8]) -> Result<(), Failure> {
        self.held
            .push((peer.into(), payload.to_vec(), msg_key.to_vec()));
        Ok(())
    }
    fn take_held(&mut self, peer: &str) -> Result<Vec<super::exchange::Held>, Failure> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.0 == peer);
        self.held = rest;
        Ok(mine.into_iter().map(|h| (h.1, h.2)).collect())
    }
    fn group_checked(&self, digest: &[u8; 32]) -> Result<Option<bool>, Failure> {
        Ok(self.groups.get(digest).copied())
    }
    fn remember_group(&mut self, digest: &[u8; 32], ok: bool) -> Result<(), Failure> {
        self.groups.insert(*digest, ok);
        Ok(())
    }
    fn take_spare_rsa(&mut self) -> Result<Option<KeyPair>, Failure> {
        Ok(self.spare.pop())
    }
}
