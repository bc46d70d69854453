//! Administration of the state file: init, policy, peers, cache, outbox, stats, log.

use super::*;
use crate::sign::{Key, Scheme};
use crate::state::{cache, log as dlog, outbox, peers};

pub(super) fn init(st: &State, addresses: &[String], json: bool) -> Result<u8, Failure> {
    let added = st.write(|tx| {
        let mut n = Vec::new();
        for a in addresses {
            if settings::add_own_address(tx, a)? {
                n.push(a.clone());
            }
        }
        Ok(n)
    })?;
    let all = settings::own_addresses(st.conn())?;
    if json {
        emit_json(&serde_json::json!({"state": st.path(), "addresses": all, "added": added}))?;
    } else {
        let mut s = format!("state file {}\n", st.path().display());
        for (i, a) in all.iter().enumerate() {
            s.push_str(&format!(
                "  {} {a}{}\n",
                if i == 0 { "primary" } else { "also   " },
                if added.contains(a) { "  (added)" } else { "" }
            ));
        }
        emit(&s)?;
    }
    Ok(exit::OK)
}

pub(super) fn policy(
    st: &State,
    key: Option<String>,
    value: Option<String>,
    unset: bool,
    json: bool,
) -> Result<u8, Failure> {
    match (key, value) {
        (None, _) => policy_list(st, json)?,
        (Some(k), None) if unset => policy_unset(st, &k)?,
        (Some(k), None) => policy_show(st, &k, json)?,
        (Some(k), Some(v)) => policy_set(st, &k, &v, unset, json)?,
    }
    Ok(exit::OK)
}

/// Every policy setting: its value, its help, and whether it is the default.
fn policy_list(st: &State, json: bool) -> Result<(), Failure> {
    let mut rows = Vec::new();
    for s in settings::SPECS {
        let stored = settings::get(st.conn(), s.key)?;
        rows.push((s, stored));
    }
    if json {
        let v: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(s, v)| {
                (
                    s.key.to_string(),
                    serde_json::json!({
                        "value": v.clone().unwrap_or_else(|| s.default.to_string()),
                        "default": s.default, "set": v.is_some(), "help": s.help
                    }),
                )
            })
            .collect();
        emit_json(&v)?;
    } else {
        let mut s = String::new();
        for (sp, v) in rows {
            let shown = v.clone().unwrap_or_else(|| sp.default.to_string());
            let shown = if shown.is_empty() {
                "(unset)".to_string()
            } else {
                shown
            };
            s.push_str(&format!(
                "{:<20} {:<14} {}{}\n",
                sp.key,
                shown,
                sp.help,
                if v.is_some() { "" } else { " [default]" }
            ));
        }
        emit(&s)?;
    }
    Ok(())
}

/// Reset setting `k` to its default.
fn policy_unset(st: &State, k: &str) -> Result<(), Failure> {
    settings::validate(k, settings::spec(k).map(|s| s.default).unwrap_or(""))?;
    st.write(|tx| settings::unset(tx, k))?;
    emit(&format!("{k} reset to its default\n"))?;
    Ok(())
}

/// The value of setting `k`.
fn policy_show(st: &State, k: &str, json: bool) -> Result<(), Failure> {
    let sp = settings::spec(k).ok_or_else(|| {
        settings::validate(k, "")
            .err()
            .unwrap_or_else(|| Failure::usage(format!("unknown policy setting '{k}'")))
    })?;
    let v = settings::get(st.conn(), k)?.unwrap_or_else(|| sp.default.to_string());
    if json {
        emit_json(&serde_json::json!({ k: v }))?;
    } else {
        emit(&format!("{v}\n"))?;
    }
    Ok(())
}

/// Set `k` to `v`, then check that the whole set of settings still loads.
fn policy_set(st: &State, k: &str, v: &str, unset: bool, json: bool) -> Result<(), Failure> {
    if unset {
        return Err(Failure::usage("--unset takes a KEY only"));
    }
    let v = st.write(|tx| settings::set(tx, k, v))?;
    // Check that the whole set of settings still loads.
    settings::Settings::load(st.conn())?;
    if !json {
        emit(&format!("{k} = {v}\n"))?;
    } else {
        emit_json(&serde_json::json!({ k: v }))?;
    }
    Ok(())
}

pub(super) fn read_key_hex(h: &str) -> Result<Key, Failure> {
    let text = if h == "-" {
        let b = crate::cli::read_input("-")?;
        String::from_utf8_lossy(&b).trim().to_string()
    } else {
        h.to_string()
    };
    Key::from_hex(&text).map_err(|e| Failure::usage(format!("--key-hex: {e}")))
}

pub(super) fn peer(st: &State, cmd: PeerCmd, json: bool) -> Result<u8, Failure> {
    match cmd {
        PeerCmd::Add {
            address,
            scheme,
            key_hex,
            options,
        } => peer_add(st, &address, &scheme, key_hex.as_deref(), options, json)?,
        PeerCmd::Alias {
            alias,
            peer,
            remove: _,
        } => peer_alias(st, &alias, peer.as_deref(), json)?,
        PeerCmd::List => peer_list(st, json)?,
        PeerCmd::Remove { address } => peer_remove(st, &address, json)?,
        PeerCmd::Reputation { address, value } => peer_reputation(st, &address, value, json)?,
    }
    Ok(exit::OK)
}

/// Add or update the peer at `address`: its signature scheme, key and HTTP options.
fn peer_add(
    st: &State,
    address: &str,
    scheme: &str,
    key_hex: Option<&str>,
    options: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let scheme: Scheme = scheme.parse().map_err(Failure::usage)?;
    let key = key_hex.map(read_key_hex).transpose()?;
    let options = options.map(|o| o.trim().to_string());
    if let Some(o) = options.as_deref().filter(|o| !o.is_empty()) {
        let lower = address.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(Failure::usage(format!(
                "--options: {address}: options apply to http:// and https:// peers"
            )));
        }
        crate::transport::http::PeerOptions::default()
            .with_options(o, None)
            .map_err(|e| Failure::usage(format!("--options: {e}")))?;
    }
    st.write(|tx| {
        peers::add(tx, address, scheme, key.as_ref())?;
        match options.as_deref() {
            Some("") => peers::set_options(tx, address, None),
            Some(o) => peers::set_options(tx, address, Some(o)),
            None => Ok(()),
        }
    })?;
    let p = peers::get(st.conn(), address)?;
    if json {
        emit_json(&p)?;
    } else {
        emit(&format!(
            "peer {address}: scheme {scheme}, {}\n",
            if p.map(|p| p.has_key).unwrap_or(false) {
                "key set"
            } else {
                "no key"
            }
        ))?;
    }
    Ok(())
}

/// Make `alias` an address of `peer` (None: a peer of its own again); the messages it sent
/// so far move to the context they now belong to.
fn peer_alias(st: &State, alias: &str, peer: Option<&str>, json: bool) -> Result<(), Failure> {
    let settings = settings::Settings::load(st.conn())?;
    for a in std::iter::once(alias).chain(peer) {
        if settings.is_own(a.as_bytes()) {
            return Err(Failure::usage(format!("{a} is one of our own addresses")));
        }
    }
    // The messages ALIAS sent so far move to the context they now belong to.
    let moved = st.write(|tx| {
        peers::set_alias(tx, alias, peer)?;
        crate::compress::matcher::relearn_sender(tx, alias, peer.unwrap_or(alias))
    })?;
    if json {
        emit_json(&serde_json::json!({ "alias": alias, "peer": peer, "relearned": moved }))?;
    } else {
        match peer {
            Some(p) => emit(&format!(
                "{alias} is an address of {p} ({moved} cached message(s) from it now in {p}'s context)\n"
            ))?,
            None => emit(&format!(
                "{alias} is a peer of its own ({moved} cached message(s) back in its own context)\n"
            ))?,
        }
    }
    Ok(())
}

/// Every peer with its counts, and the aliases that have sent nothing yet.
fn peer_list(st: &State, json: bool) -> Result<(), Failure> {
    let all = peers::list(st.conn())?;
    let aliases = settings::aliases(st.conn())?;
    let alias_of = |a: &str| aliases.iter().find(|(x, _)| x == a).map(|(_, p)| p.clone());
    // aliases that sent nothing yet have no row of their own
    let bare: Vec<&(String, String)> = aliases
        .iter()
        .filter(|(a, _)| !all.iter().any(|p| &p.address == a))
        .collect();
    if json {
        let mut v = Vec::new();
        for p in &all {
            let mut o = serde_json::to_value(p).map_err(|e| Failure::software(e.to_string()))?;
            o["alias_of"] = alias_of(&p.address).into();
            v.push(o);
        }
        for (a, p) in bare {
            v.push(serde_json::json!({ "address": a, "alias_of": p }));
        }
        emit_json(&v)?;
    } else {
        let mut s = String::new();
        for p in all {
            s.push_str(&format!(
                "{}  scheme={} key={} reputation={} accepted={} rejected={} forwarded={}{}{}{}\n",
                p.address,
                p.scheme,
                if p.has_key { "yes" } else { "no" },
                p.reputation,
                p.accepted,
                p.rejected,
                p.forwarded,
                p.options
                    .as_deref()
                    .map(|o| format!(" options=\"{o}\""))
                    .unwrap_or_default(),
                alias_of(&p.address)
                    .map(|a| format!(" alias-of={a}"))
                    .unwrap_or_default(),
                if p.configured { "" } else { " (seen)" }
            ));
        }
        for (a, p) in bare {
            s.push_str(&format!("{a}  alias-of={p}\n"));
        }
        emit(&s)?;
    }
    Ok(())
}

/// Remove the peer at `address`.
fn peer_remove(st: &State, address: &str, json: bool) -> Result<(), Failure> {
    if !st.write(|tx| peers::remove(tx, address))? {
        return Err(Failure::no_input(format!("no peer {address}")));
    }
    if !json {
        emit(&format!("removed peer {address}\n"))?;
    }
    Ok(())
}

/// Set the reputation of the peer at `address`.
fn peer_reputation(st: &State, address: &str, value: f64, json: bool) -> Result<(), Failure> {
    if !value.is_finite() {
        return Err(Failure::usage("reputation must be a finite number"));
    }
    if !st.write(|tx| peers::set_reputation(tx, address, value))? {
        return Err(Failure::no_input(format!("no peer {address}")));
    }
    if !json {
        emit(&format!("peer {address}: reputation {value}\n"))?;
    }
    Ok(())
}

pub(super) fn first_line(b: &[u8], max: usize) -> String {
    let t = String::from_utf8_lossy(b);
    let l = t.lines().next().unwrap_or("");
    if l.chars().count() > max {
        format!("{}...", l.chars().take(max).collect::<String>())
    } else {
        l.to_string()
    }
}

pub(super) fn cache_cmd(st: &State, cmd: CacheCmd, json: bool) -> Result<u8, Failure> {
    match cmd {
        CacheCmd::List { limit } => cache_list(st, limit, json)?,
        CacheCmd::Prune { keep } => cache_prune(st, keep, json)?,
        CacheCmd::Reindex => cache_reindex(st, json)?,
        CacheCmd::Show { id, raw } => cache_show(st, &id, raw, json)?,
    }
    Ok(exit::OK)
}

/// Up to `limit` cached messages, newest first, one a line.
fn cache_list(st: &State, limit: usize, json: bool) -> Result<(), Failure> {
    let rows = cache::list(st.conn(), limit)?;
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "arrived": c.arrived, "sender": c.sender, "origin": c.origin,
                    "via": c.via, "client": c.client, "signed": c.signed,
                    "body_bytes": c.body().len(),
                    "message_id": c.message().ok().map(|m| String::from_utf8_lossy(&m.origin().line()).into_owned()),
                })
            })
            .collect();
        emit_json(&v)?;
    } else {
        let mut s = String::new();
        for c in rows {
            s.push_str(&format!(
                "{:>6}  {}  from {}  by {}  {}\n",
                c.id,
                c.arrived,
                c.sender,
                c.origin,
                first_line(c.body(), 60)
            ));
        }
        emit(&s)?;
    }
    Ok(())
}

/// Remove all but the `keep` most recent cached messages, and what the matcher learned of
/// them (their IDs stay in the index).
fn cache_prune(st: &State, keep: usize, json: bool) -> Result<(), Failure> {
    let settings = settings::Settings::load(st.conn())?;
    let matcher = route::matching::from_settings(&settings)?;
    let ids = cache::prune_candidates(st.conn(), keep)?;
    let n = st.write(|tx| {
        let mut n = 0;
        for &id in &ids {
            if cache::remove(tx, id)? {
                matcher.forget(tx, id)?;
                n += 1;
            }
        }
        Ok(n)
    })?;
    if json {
        emit_json(&serde_json::json!({ "removed": n }))?;
    } else {
        emit(&format!("removed {n} cached message(s)\n"))?;
    }
    Ok(())
}

/// Bring the routing engine up to date with the cache: learn the cached messages it does not
/// hold yet, and rebuild the full-text index when a baseline uses it.
fn cache_reindex(st: &State, json: bool) -> Result<(), Failure> {
    let n = st.write(|tx| {
        let n = crate::compress::matcher::reindex(tx)?;
        let compressor = settings::Settings::load(tx)?.compressor;
        crate::compress::matcher::sync_fts(tx, &compressor, true)?;
        Ok(n)
    })?;
    if json {
        emit_json(&serde_json::json!({ "learned": n }))?;
    } else {
        emit(&format!("learned {n} cached message(s)\n"))?;
    }
    Ok(())
}

/// One cached message, by row number or message ID: raw, as JSON, or header and body.
fn cache_show(st: &State, id: &str, raw: bool, json: bool) -> Result<(), Failure> {
    let row = match id.parse::<i64>() {
        Ok(n) => cache::get(st.conn(), n)?,
        Err(_) => cache::by_message_id(st.conn(), id)?,
    }
    .ok_or_else(|| Failure::no_input(format!("no cached message {id}")))?;
    if raw {
        emit_bytes(&row.bytes)?;
    } else if json {
        let m = row.message()?;
        let v = serde_json::json!({
            "id": row.id, "arrived": row.arrived, "sender": row.sender,
            "origin": row.origin, "via": row.via, "client": row.client, "signed": row.signed,
            "header": m.ids().map(|i| String::from_utf8_lossy(&i.line()).into_owned()).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(m.body()),
        });
        emit_json(&v)?;
    } else {
        let m = row.message()?;
        let mut s = format!(
            "row {}  arrived {}  via {}  from {}{}\n",
            row.id,
            row.arrived,
            row.via,
            row.sender,
            if row.client { " (our client)" } else { "" }
        );
        for i in m.ids() {
            s.push_str(&format!("  {}\n", String::from_utf8_lossy(&i.line())));
        }
        s.push('\n');
        s.push_str(&String::from_utf8_lossy(m.body()));
        if !s.ends_with('\n') {
            s.push('\n');
        }
        emit(&s)?;
    }
    Ok(())
}

pub(super) fn outbox_cmd(st: &State, json: bool) -> Result<u8, Failure> {
    let rows = outbox::list(st.conn())?;
    if json {
        emit_json(&rows)?;
    } else {
        let mut s = String::new();
        for r in rows {
            s.push_str(&format!(
                "{:>6}  {:<7} {}  -> {}  ({} bytes, {} attempt(s){})\n",
                r.id,
                r.state,
                String::from_utf8_lossy(&r.msg_key),
                r.dest,
                r.bytes.len(),
                r.attempts,
                r.last_error
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            ));
        }
        emit(&s)?;
    }
    Ok(exit::OK)
}

pub(super) fn stats(st: &State, json: bool) -> Result<u8, Failure> {
    let c = st.conn();
    let n = |sql: &str| -> Result<i64, Failure> {
        c.query_row(sql, [], |r| r.get(0))
            .map_err(state::db_failure)
    };
    let mut by_state = serde_json::Map::new();
    {
        let mut q = c
            .prepare("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")
            .map_err(state::db_failure)?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(state::db_failure)?;
        for r in rows {
            let (k, v) = r.map_err(state::db_failure)?;
            by_state.insert(k, v.into());
        }
    }
    let counters = dlog::counters(c)?;
    let v = serde_json::json!({
        "state": st.path(),
        "addresses": settings::own_addresses(c)?,
        "cache": n("SELECT count(*) FROM cache")?,
        "cache_bytes": n("SELECT coalesce(sum(length(bytes)), 0) FROM cache")?,
        "ids": n("SELECT count(*) FROM ids")?,
        "peers": n("SELECT count(*) FROM peers")?,
        "peers_with_key": n("SELECT count(*) FROM peers WHERE key IS NOT NULL")?,
        "outbox": by_state,
        "delivered": n("SELECT count(*) FROM delivered")?,
        "log": n("SELECT count(*) FROM log")?,
        "clock": state::clock::last(c)?.map(|t| t.to_string()),
        "counters": counters.iter().map(|(s, k, v)| serde_json::json!({"scope": s, "name": k, "value": v})).collect::<Vec<_>>(),
    });
    if json {
        emit_json(&v)?;
    } else {
        let mut s = format!("state file   {}\n", st.path().display());
        s.push_str(&format!(
            "addresses    {}\n",
            settings::own_addresses(c)?.join(", ")
        ));
        for k in [
            "cache",
            "cache_bytes",
            "ids",
            "peers",
            "peers_with_key",
            "delivered",
            "log",
        ] {
            s.push_str(&format!("{k:<12} {}\n", v[k]));
        }
        s.push_str(&format!(
            "outbox       {}\n",
            if by_state.is_empty() {
                "empty".to_string()
            } else {
                by_state
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        s.push_str(&format!(
            "clock        {}\n",
            v["clock"].as_str().unwrap_or("(unused)")
        ));
        for (scope, name, val) in counters {
            s.push_str(&format!("counter      {scope} {name} {val}\n"));
        }
        emit(&s)?;
    }
    Ok(exit::OK)
}

pub(super) fn log_cmd(st: &State, limit: usize, json: bool) -> Result<u8, Failure> {
    let rows = dlog::recent(st.conn(), limit)?;
    if json {
        emit_json(&rows)?;
    } else {
        let mut s = String::new();
        for r in rows {
            s.push_str(&format!(
                "{}  {:<12} {}  via {}  {}\n",
                r.at,
                r.outcome,
                r.sender.as_deref().unwrap_or("-"),
                r.via.as_deref().unwrap_or("-"),
                r.reason.as_deref().unwrap_or("")
            ));
        }
        emit(&s)?;
    }
    Ok(exit::OK)
}
