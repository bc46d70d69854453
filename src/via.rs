//! How a message reached us: the transport tag of the cache's and the log's `via`, and of
//! the key exchange's secure-channel rule (A5.3). At the bottom of the library, with `wire`.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// How a message reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Mail,
    Http,
    Https,
    Udp,
    Ssh,
    /// A local shell pipe.
    Pipe,
    /// Our own client (cmr-post).
    Local,
}

impl Transport {
    /// True when the channel itself is confidential and authenticated (A5.3 clear keys).
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
    pub const ALL: [Transport; 7] = [
        Transport::Mail,
        Transport::Http,
        Transport::Https,
        Transport::Udp,
        Transport::Ssh,
        Transport::Pipe,
        Transport::Local,
    ];
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase();
        Transport::ALL
            .iter()
            .find(|t| t.as_str() == l || (l == "smtp" && **t == Transport::Mail))
            .copied()
            .ok_or_else(|| {
                format!(
                    "unknown transport '{s}' (expected mail, http, https, udp, ssh, pipe or local)"
                )
            })
    }
}

impl Serialize for Transport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_round_trip() {
        for t in Transport::ALL {
            assert_eq!(t.as_str().parse::<Transport>().unwrap(), t);
        }
        assert_eq!("SMTP".parse::<Transport>().unwrap(), Transport::Mail);
        assert!("carrier-pigeon".parse::<Transport>().is_err());
        assert!(Transport::Https.is_secure() && Transport::Ssh.is_secure());
        assert!(!Transport::Http.is_secure() && !Transport::Mail.is_secure());
    }
}
