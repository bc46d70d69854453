//! The key exchange's settings (`cmr-keyx policy`): key in the state file's `settings`
//! table, default, allowed values, description, and their checked reading.

use crate::exit::Failure;
use crate::state::settings;
use serde::Serialize;

/// One keyx setting: key in the `settings` table, default, allowed values, description.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub default: &'static str,
    /// Allowed words, or empty for a number (checked by `min`..=`max`).
    pub choices: &'static [&'static str],
    pub min: i64,
    pub max: i64,
    pub help: &'static str,
}

/// Every keyx setting (`cmr-keyx policy` lists and sets them).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "keyx_first_contact",
        default: "unsigned",
        choices: &["unsigned", "exchange", "refuse"],
        min: 0,
        max: 0,
        help: "a message for a peer we hold no key for: send it unsigned, hold it and start a \
               key exchange (sent signed when the key is set), or refuse it",
    },
    Setting {
        key: "keyx_first_contact_method",
        default: "dh",
        choices: &["dh", "rsa"],
        min: 0,
        max: 0,
        help: "exchange started on first contact: dh, or rsa when a spare key pair is at hand \
               (cmr-keyx spare), else dh",
    },
    Setting {
        key: "keyx_dh_group",
        default: "14",
        choices: &["14", "15", "16"],
        min: 0,
        max: 0,
        help: "RFC 3526 MODP group of our DH requests (14 = 2048, 15 = 3072, 16 = 4096 bits)",
    },
    Setting {
        key: "keyx_derive",
        default: "hardened",
        choices: &["hardened", "spec"],
        min: 0,
        max: 0,
        help: "key derivation for peers without their own: hardened (HKDF-SHA-256) or spec \
               (the exchanged secret as is); both peers must agree",
    },
    Setting {
        key: "keyx_pending_ttl",
        default: "86400",
        choices: &[],
        min: 60,
        max: 365 * 86400,
        help: "seconds a request of ours waits for its reply before it is forgotten",
    },
    Setting {
        key: "keyx_retired_grace",
        default: "3600",
        choices: &[],
        min: 0,
        max: 7 * 86400,
        help: "seconds a replaced key still verifies messages signed before the peer switched \
               (never key-exchange messages); 0 keeps none",
    },
    Setting {
        key: "keyx_clear_min_bytes",
        default: "16",
        choices: &[],
        min: 1,
        max: 1024,
        help: "shortest clear key (A5.3) accepted or sent, bytes",
    },
    Setting {
        key: "keyx_dh_custom_max_bits",
        default: "4096",
        choices: &[],
        min: 2048,
        max: 8192,
        help: "largest custom (not RFC 3526) DH prime a peer may send; checking one costs \
               about a second at 4096 bits and grows with the cube of the size",
    },
];

/// The setting named `key`.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Check a value for a keyx setting; returns it normalised.
pub fn validate_setting(key: &str, value: &str) -> Result<String, Failure> {
    let s = setting(key).ok_or_else(|| {
        Failure::usage(format!(
            "unknown key exchange setting '{key}' (known: {})",
            SETTINGS
                .iter()
                .map(|s| s.key)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let v = value.trim();
    if s.choices.is_empty() {
        match v.parse::<i64>() {
            Ok(n) if (s.min..=s.max).contains(&n) => Ok(n.to_string()),
            _ => Err(Failure::usage(format!(
                "{key}: '{value}' is not a whole number from {} to {}",
                s.min, s.max
            ))),
        }
    } else if s.choices.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(Failure::usage(format!(
            "{key}: '{value}' is not one of {}",
            s.choices.join(", ")
        )))
    }
}

/// The value of a keyx setting (its default when unset or unreadable).
pub fn get_setting(conn: &rusqlite::Connection, key: &str) -> Result<String, Failure> {
    let stored = settings::get(conn, key)?;
    let def = setting(key).map(|s| s.default).unwrap_or_default();
    Ok(match stored {
        Some(v) if validate_setting(key, &v).is_ok() => v,
        _ => def.to_string(),
    })
}

pub(super) fn num_setting(conn: &rusqlite::Connection, key: &str) -> Result<i64, Failure> {
    Ok(get_setting(conn, key)?.parse().unwrap_or_default())
}
