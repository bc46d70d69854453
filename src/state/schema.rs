//! Placeholder: the ordered list of migrations (the real one is on the `route` branch).

pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE cache(id INTEGER PRIMARY KEY, bytes BLOB, arrived TEXT, sender TEXT, via TEXT, client INTEGER);
     CREATE TABLE ids(key BLOB PRIMARY KEY, cache_id INTEGER);",
    crate::transport::handshake::MIGRATION,
];
