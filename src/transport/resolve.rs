//! Send-time address policy for the HTTP(S) client (POSTs and the A4.5 fetch): resolve a
//! peer's host once, refuse it when any address it resolves to is restricted
//! ([`crate::netaddr`]), and hand the client exactly the addresses that were checked, so
//! the connection cannot go elsewhere (DNS rebinding between check and connect).

use crate::netaddr::{self, Allow, ResolveError};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// ureq's resolver with the address policy applied to what it returns.
#[derive(Debug)]
pub struct CheckedResolver {
    allow: Allow,
    inner: DefaultResolver,
}

impl CheckedResolver {
    pub fn new(allow: Allow) -> CheckedResolver {
        CheckedResolver {
            allow,
            inner: DefaultResolver::default(),
        }
    }
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or("");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = self.inner.resolve(uri, config, timeout)?;
        for a in addrs.iter() {
            if let Err(r) = netaddr::check(bare, a.ip(), &self.allow) {
                return Err(ureq::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    ResolveError::Refused(r),
                )));
            }
        }
        Ok(addrs)
    }
}

/// Whether a client error is the address policy's refusal (permanent as it stands).
pub fn is_refusal(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(io) if io.get_ref().is_some_and(|x| x.is::<ResolveError>()))
}
