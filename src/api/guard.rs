//! Which network addresses the client may connect to. Invariants: link-local and cloud
//! metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254) are never connected to,
//! whatever the URL or the allow list says; a host name that is neither the API's nor
//! listed exactly in `media_allowed_hosts` (a wildcard match, a redirect target) is never
//! connected to on a private, loopback or unique-local address, even when its DNS points
//! there (DNS rebinding). IP literals are judged by [`blocked_ip`] at each hop, names by
//! [`GuardedResolver`] when they are resolved.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

/// AWS's IPv6 instance metadata endpoint (the IPv4 one is inside 169.254.0.0/16).
const EC2_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Never connected to: link-local (where cloud metadata services live) and the EC2 IPv6
/// metadata address, also when written as an IPv4-mapped IPv6 address.
pub(crate) fn blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => v6 == EC2_METADATA_V6 || (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// Private, loopback, shared (CGNAT), unspecified or unique-local: inside someone's
/// network. Reached only through a name or literal that is configured explicitly.
pub(crate) fn private_ip(ip: IpAddr) -> bool {
    fn v4(ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        ip.is_private()
            || ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || (a == 100 && (64..128).contains(&b))
            || a == 0
    }
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => v4(mapped),
            None => {
                ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xfe00) == 0xfc00
            }
        },
    }
}

/// The IP of a URL host written as a literal, if it is one.
pub(crate) fn literal_ip(host: &Host<&str>) -> Option<IpAddr> {
    match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
        Host::Domain(_) => None,
    }
}

/// The system resolver with the address rules above applied to its answers.
#[derive(Debug)]
pub(crate) struct GuardedResolver {
    /// Lowercase names that may resolve to private addresses: the API host and the
    /// exact (non-wildcard) entries of `media_allowed_hosts`, plus `localhost`.
    /// Shared with each lookup's future (cloned per DNS lookup).
    trusted: Arc<HashSet<String>>,
}

impl GuardedResolver {
    pub(crate) fn new(trusted: impl IntoIterator<Item = String>) -> Arc<Self> {
        let mut trusted: HashSet<String> = trusted
            .into_iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        trusted.insert("localhost".into());
        Arc::new(GuardedResolver {
            trusted: Arc::new(trusted),
        })
    }

    /// Keeps the addresses `name` may use; an error when none is left.
    pub(crate) fn filter(
        &self,
        name: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, GuardError> {
        let trusted = self
            .trusted
            .contains(&name.trim_end_matches('.').to_ascii_lowercase());
        let mut refused = false;
        let kept: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| {
                let ok = !blocked_ip(a.ip()) && (trusted || !private_ip(a.ip()));
                refused |= !ok;
                ok
            })
            .collect();
        if kept.is_empty() && refused {
            return Err(GuardError {
                name: name.to_owned(),
            });
        }
        Ok(kept)
    }
}

/// A name that resolves only to addresses the rules forbid.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{name}` resolves only to link-local, metadata or (for a host not listed exactly) private addresses; not connecting"
)]
pub(crate) struct GuardError {
    name: String,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let this = GuardedResolver {
            trusted: Arc::clone(&self.trusted),
        };
        Box::pin(async move {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError { Box::new(e) })?;
            let kept = this
                .filter(&host, found)
                .map_err(|e| -> BoxError { Box::new(e) })?;
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok::<Addrs, BoxError>(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn metadata_and_link_local_are_blocked_in_every_spelling() {
        for s in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "fe80::1",
        ] {
            assert!(blocked_ip(ip(s)), "{s}");
        }
        for s in ["10.0.0.1", "127.0.0.1", "8.8.8.8", "fd00:ec2::253", "::1"] {
            assert!(!blocked_ip(ip(s)), "{s}");
        }
    }

    #[test]
    fn private_ranges() {
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(private_ip(ip(s)), "{s}");
        }
        for s in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1"] {
            assert!(!private_ip(ip(s)), "{s}");
        }
    }

    #[test]
    fn resolver_drops_forbidden_answers_and_refuses_when_none_is_left() {
        let r = GuardedResolver::new(["api.titan.example".to_string(), "Minio.Local".into()]);
        let sa = |s: &str| SocketAddr::new(ip(s), 0);
        // A wildcard-matched CDN name that DNS points at the metadata service or a
        // private address: refused.
        for bad in ["169.254.169.254", "10.0.0.7", "fd00:ec2::254"] {
            let err = r.filter("x.cdn.example", [sa(bad)]).expect_err(bad);
            assert!(
                err.to_string().starts_with("`x.cdn.example` resolves only"),
                "{err}"
            );
        }
        // Mixed answers keep only the public ones.
        assert_eq!(
            r.filter("x.cdn.example", [sa("10.0.0.7"), sa("93.184.216.34")])
                .expect("public one left"),
            [sa("93.184.216.34")]
        );
        // Names configured exactly may be private, never link-local.
        assert_eq!(
            r.filter("minio.local.", [sa("10.0.0.7")]).expect("listed"),
            [sa("10.0.0.7")]
        );
        assert!(
            r.filter("api.titan.example", [sa("169.254.169.254")])
                .is_err()
        );
        assert_eq!(
            r.filter("localhost", [sa("127.0.0.1")]).expect("loopback"),
            [sa("127.0.0.1")]
        );
    }
}
