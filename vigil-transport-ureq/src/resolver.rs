//! Name resolution without a thread per request.
//!
//! ureq resolves the host before every request, pooled connection or not,
//! and with a timeout set its default resolver does so on a new thread: one
//! thread spawned per export request. Here an IP literal is used as it is,
//! and a name is resolved through ureq's resolver (its timeout kept) once,
//! then again only after [`TTL`] or when its connection failed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::Error;

/// How long a resolved name is reused.
pub(crate) const TTL: Duration = Duration::from_secs(60);

/// `host:port`, when it was resolved, and to what.
type Cached = Option<(String, Instant, ResolvedSocketAddrs)>;

/// Clones share their cache: the agent resolves through one, the transport
/// keeps another to [`CachingResolver::forget`] a name that failed.
#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    inner: DefaultResolver,
    cached: Arc<Mutex<Cached>>,
}

impl Clone for CachingResolver {
    fn clone(&self) -> Self {
        CachingResolver {
            inner: DefaultResolver::default(),
            cached: self.cached.clone(),
        }
    }
}

impl CachingResolver {
    /// Forgets the cached name, so the next request resolves it again (its
    /// address may have moved).
    pub(crate) fn forget(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return self.inner.resolve(uri, config, timeout);
        };
        let Some(key) = DefaultResolver::host_and_port(scheme, authority) else {
            return self.inner.resolve(uri, config, timeout);
        };
        if let Ok(addr) = key.parse::<SocketAddr>() {
            let mut addrs = self.empty();
            addrs.push(addr);
            return Ok(addrs);
        }
        if let Ok(cached) = self.cached.lock() {
            if let Some((name, at, addrs)) = &*cached {
                if *name == key && at.elapsed() < TTL {
                    return Ok(addrs.clone());
                }
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((key, Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &CachingResolver, url: &str) -> Result<Vec<SocketAddr>, Error> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        let timeout = NextTimeout {
            after: std::time::Duration::from_secs(5).into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        r.resolve(&uri, &config, timeout)
            .map(|a| a.iter().copied().collect())
    }

    #[test]
    fn literals_need_no_lookup_and_names_are_looked_up_once() {
        let r = CachingResolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8080/v1/traces").unwrap(),
            ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/v1/traces").unwrap(),
            ["[::1]:443".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            r.cached.lock().unwrap().is_none(),
            "literals are not cached"
        );

        let first = resolve(&r, "http://localhost:9/x").unwrap();
        assert!(first.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        let cached = r.cached.lock().unwrap().clone().expect("cached");
        assert_eq!(cached.0, "localhost:9");
        assert_eq!(resolve(&r, "http://localhost:9/y").unwrap(), first);
        assert_eq!(
            r.cached.lock().unwrap().as_ref().unwrap().1,
            cached.1,
            "served from the cache, not looked up again"
        );
        r.forget();
        assert!(r.cached.lock().unwrap().is_none());
        assert!(resolve(&r, "http://name.invalid/x").is_err());
    }
}
