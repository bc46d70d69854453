//! The state file's schema as an ordered list of migrations.
//!
//! `PRAGMA user_version` holds how many entries of [`MIGRATIONS`] have been applied. A new
//! table or column is a NEW entry appended at the end; an entry that has shipped is never
//! edited. Tables that are not core carry their owner's prefix (`keyx_*`, `handshake_*`,
//! `engine_*`).

/// Migrations, oldest first. Entry `i` moves the file from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: core tables.
    r#"
CREATE TABLE settings(
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Our own addresses, first = primary (lowest position).
CREATE TABLE own_addresses(
    address  TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);

-- Peers: every immediate sender we accepted a message from, and every peer an operator or
-- the key exchange configured. Counters and reputation change only for messages whose
-- signature verified (Section 4: downgrade only the verified neighbour).
CREATE TABLE peers(
    address        TEXT PRIMARY KEY,
    scheme         TEXT NOT NULL DEFAULT 'hmac-sha256',
    key            BLOB,
    transport      TEXT,
    options        TEXT,
    configured     INTEGER NOT NULL DEFAULT 0,
    received       INTEGER NOT NULL DEFAULT 0,
    accepted       INTEGER NOT NULL DEFAULT 0,
    rejected       INTEGER NOT NULL DEFAULT 0,
    forwarded      INTEGER NOT NULL DEFAULT 0,
    reputation     REAL NOT NULL DEFAULT 0,
    first_seen     TEXT,
    last_seen      TEXT,
    last_id        INTEGER
);
CREATE INDEX peers_last_id ON peers(last_id);

-- The cache (A1 "a store of messages"). bytes = "0\r\n" + payload: the canonical unsigned
-- form (signatures are hop by hop, A3 "removes the signature line").
CREATE TABLE cache(
    id           INTEGER PRIMARY KEY,
    bytes        BLOB NOT NULL,
    body_offset  INTEGER NOT NULL,
    arrived      TEXT NOT NULL,
    arrived_unix REAL NOT NULL,
    sender       TEXT NOT NULL,
    origin       TEXT NOT NULL,
    via          TEXT NOT NULL,
    client       INTEGER NOT NULL DEFAULT 0,
    signed       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX cache_sender ON cache(sender, id);
CREATE INDEX cache_arrived ON cache(arrived_unix);
CREATE INDEX cache_sender_arrived ON cache(sender, arrived_unix);

-- Every message ID of every cached message, canonical (wire::MessageId::key): the A3
-- duplicate check is one primary-key lookup per header line.
CREATE TABLE ids(
    key      BLOB PRIMARY KEY,
    cache_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ids_cache ON ids(cache_id);

-- Forwards waiting for delivery. (dest, msg_key) is never queued twice.
CREATE TABLE outbox(
    id           INTEGER PRIMARY KEY,
    dest         TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    msg_key      BLOB NOT NULL,
    created      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt TEXT NOT NULL,
    last_error   TEXT,
    state        TEXT NOT NULL DEFAULT 'queued',
    claimed_at   TEXT,
    cache_id     INTEGER,
    UNIQUE(dest, msg_key)
);
CREATE INDEX outbox_due ON outbox(state, next_attempt);

-- Deliveries confirmed by a transport (the outbox row is gone): keeps "never the same
-- (destination, message) twice" true after the outbox row is removed.
CREATE TABLE delivered(
    dest    TEXT NOT NULL,
    msg_key BLOB NOT NULL,
    at      TEXT NOT NULL,
    PRIMARY KEY(dest, msg_key)
) WITHOUT ROWID;

-- The forward clock (A3 "each forwarded message has a different value of T").
CREATE TABLE clock(
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last TEXT NOT NULL
);

-- Decisions: what was done with each message and why.
CREATE TABLE log(
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    reason   TEXT,
    sender   TEXT,
    via      TEXT,
    msg_key  BLOB,
    cache_id INTEGER,
    detail   TEXT
);

-- Counters that belong to no verified peer: failed signatures (counted against the
-- transport they came in on, never against the address a forger used), unverified traffic.
CREATE TABLE counters(
    scope TEXT NOT NULL,
    name  TEXT NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(scope, name)
) WITHOUT ROWID;
"#,
    // 2: full-text index of cache bodies (the related-message shortlist).
    r#"
CREATE VIRTUAL TABLE cache_fts USING fts5(body, content='', contentless_delete=1);
"#,
    // 3: replies for our own clients (A1: related messages "posted later by other
    // clients"): a new message matched to a message one of our clients posted.
    r#"
CREATE TABLE client_inbox(
    id       INTEGER PRIMARY KEY,
    post_id  INTEGER NOT NULL,
    cache_id INTEGER NOT NULL,
    score    REAL NOT NULL,
    at       TEXT NOT NULL,
    seen     INTEGER NOT NULL DEFAULT 0,
    UNIQUE(post_id, cache_id)
);
CREATE INDEX client_inbox_unseen ON client_inbox(seen, id);
"#,
    // 4: key exchange (keyx_*): pending requests, per-peer derivation, held first-contact
    // messages, checked DH groups, replaced keys in their grace period, spare RSA key pairs.
    r#"
-- Key exchange (A5). Our requests waiting for a reply; data holds the one-time secret
-- (RSA private key or DH exponent) as JSON and is deleted once the reply is handled.
CREATE TABLE keyx_pending(
    peer    TEXT PRIMARY KEY,
    method  TEXT NOT NULL,
    created INTEGER NOT NULL,
    data    TEXT NOT NULL
);
-- Per-peer key derivation (NULL: setting keyx_derive) and the last completed exchange.
CREATE TABLE keyx_peers(
    peer          TEXT PRIMARY KEY,
    derive        TEXT,
    last_method   TEXT,
    last_exchange TEXT,
    exchanges     INTEGER NOT NULL DEFAULT 0
);
-- First contact: messages waiting for a key, released signed into the outbox.
CREATE TABLE keyx_held(
    id      INTEGER PRIMARY KEY,
    dest    TEXT NOT NULL,
    payload BLOB NOT NULL,
    msg_key BLOB NOT NULL,
    created TEXT NOT NULL,
    UNIQUE(dest, msg_key)
);
-- Custom DH groups whose safe-prime test ran (digest of g and p).
CREATE TABLE keyx_groups(
    digest  BLOB PRIMARY KEY,
    ok      INTEGER NOT NULL,
    checked TEXT NOT NULL
) WITHOUT ROWID;
-- Keys replaced by an exchange, kept for a grace period (messages still in flight).
CREATE TABLE keyx_retired(
    peer   TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    key    BLOB NOT NULL,
    until  INTEGER NOT NULL
);
-- One-time RSA key pairs generated ahead of time (cmr-keyx spare).
CREATE TABLE keyx_spare(
    id      INTEGER PRIMARY KEY,
    bits    INTEGER NOT NULL,
    data    TEXT NOT NULL,
    created TEXT NOT NULL
);
"#,
    // 5: the outbox claim token of the `cmr-send --outbox` run sending a row.
    "ALTER TABLE outbox ADD COLUMN claim_token TEXT;",
    // 6: A4.5 handshake: messages waiting to be fetched once with `?reply=SECRET`
    // (transport::handshake).
    "
CREATE TABLE handshake_reply(
    secret  TEXT PRIMARY KEY,
    dest    TEXT NOT NULL,
    bytes   BLOB NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX handshake_reply_expires ON handshake_reply(expires);
",
    // 7: the routing engine's word model (engine_*; compress::store).
    ENGINE_TABLES,
    // 8: the full-text index of migration 2 is kept only while a baseline compressor is
    // selected (state::fts::sync_fts, run by State::migrate after this entry); the
    // (sender, id) index repeats what (sender, arrived_unix) gives.
    "DROP TABLE IF EXISTS cache_fts; DROP INDEX IF EXISTS cache_sender;",
    // 9: a peer's other addresses (`cmr-route peer alias`): one peer to the router.
    "CREATE TABLE peer_aliases(alias TEXT PRIMARY KEY, peer TEXT NOT NULL) WITHOUT ROWID;",
    // 10: sends to strangers, the first-contact budget's memory (crate::contact).
    r#"
CREATE TABLE contact_spend(
    id      INTEGER PRIMARY KEY,
    at_unix REAL NOT NULL,
    source  TEXT NOT NULL,
    dest    TEXT NOT NULL,
    what    TEXT NOT NULL
);
CREATE INDEX contact_spend_source ON contact_spend(source, at_unix);
CREATE INDEX contact_spend_at ON contact_spend(at_unix);
"#,
    // 11: keys from an unauthenticated exchange, until a verified signature confirms them
    // (keyx).
    r#"
-- Keys set by an exchange nobody authenticated (unsigned, over a transport that does not
-- authenticate the peer), until a message signed with them verifies; only while `key` is
-- still the peer's key. secret: our request's
-- one-time secret (JSON) when we were the initiator, for further replies to that request.
CREATE TABLE keyx_provisional(
    peer   TEXT PRIMARY KEY,
    key    BLOB NOT NULL,
    since  INTEGER NOT NULL,
    secret TEXT
);
"#,
    // 12: our clients' posts, newest first, without a scan of the cache (route::accept's
    // replies ranked from the post's side).
    r#"
CREATE INDEX cache_client_posts ON cache(arrived_unix) WHERE client = 1;
"#,
    // 13: whether we sent a message to anyone lately (route::select's answers).
    r#"
CREATE INDEX delivered_key ON delivered(msg_key, at);
CREATE INDEX outbox_key ON outbox(msg_key);
"#,
    // 14: a creator's recent messages (route::bulk).
    r#"
CREATE INDEX cache_origin ON cache(origin, id);
"#,
    // 15: our clients' posts widened (route::widen): each at most once.
    r#"
CREATE TABLE widened(
    cache_id INTEGER PRIMARY KEY REFERENCES cache(id) ON DELETE CASCADE,
    at_unix  REAL NOT NULL
);
"#,
];

/// The routing engine's tables (compress::store; also created on their own for an engine
/// kept in memory).
pub const ENGINE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS engine_global(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  docs INTEGER NOT NULL, total INTEGER NOT NULL, distinct_terms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS engine_peers(
  idx INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE,
  messages INTEGER NOT NULL, total INTEGER NOT NULL, distinct_terms INTEGER NOT NULL,
  n1 INTEGER NOT NULL, n2 INTEGER NOT NULL, n3 INTEGER NOT NULL, n4 INTEGER NOT NULL,
  bits REAL NOT NULL);
CREATE TABLE IF NOT EXISTS engine_terms(
  hash INTEGER PRIMARY KEY, df INTEGER NOT NULL, counts BLOB NOT NULL, recent BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS engine_docs(
  id INTEGER PRIMARY KEY, peer INTEGER NOT NULL, bits REAL NOT NULL, terms BLOB NOT NULL);
";

/// The migration after which [`super::fts::sync_fts`] runs.
pub const FTS_ON_DEMAND: usize = 8;
