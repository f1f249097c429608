//! Resolving a media value from a result row (URL or bare media id) to what
//! may be fetched, under the media security rules. Invariants: only a URL on
//! the API origin is marked for the token; another host must match
//! `media_allowed_hosts`; nothing here ever formats a URL's query string.

use url::{Host, Url};

use super::{ApiError, guard};

/// Longest bare media id accepted (ids are opaque; UUIDs are 36).
const MAX_MEDIA_ID: usize = 256;
/// How much of an unusable value an error quotes.
const PREVIEW_CHARS: usize = 80;

/// Where a media value points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MediaTarget {
    /// A media id: the execution's `media/:id/download` route.
    Id(String),
    /// An absolute URL on the API origin: fetched with the token.
    ApiOrigin(Url),
    /// A URL on an allowed host: fetched without the token.
    Foreign(Url),
}

/// The allow list and the plain-http rule, validated once.
#[derive(Debug, Clone)]
pub(crate) struct MediaPolicy {
    allowed: Vec<HostPattern>,
    allow_insecure_http: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    /// The host itself (domain, IPv4 or `[IPv6]`).
    Exact(Host<String>),
    /// `*.example.com`: any host ending in `.example.com`, not `example.com` itself.
    Subdomains(String),
}

impl HostPattern {
    fn parse(entry: &str) -> Result<Self, ApiError> {
        let bad = |reason: &str| ApiError::InvalidConfig {
            field: "media_allowed_hosts",
            reason: format!("entry `{entry}` {reason}"),
        };
        let trimmed = entry.trim().trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(bad("is empty"));
        }
        let (wildcard, host) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if host.contains('*') {
            return Err(bad("may only use a leading `*.` wildcard"));
        }
        let host = Host::parse(host).map_err(|_| {
            bad("is not a host name (no scheme, port or path; `*.` prefix allowed)")
        })?;
        match (wildcard, host) {
            (false, host) => Ok(HostPattern::Exact(host)),
            (true, Host::Domain(d)) if d.contains('.') => Ok(HostPattern::Subdomains(d)),
            (true, Host::Domain(_)) => Err(bad("is too broad: a wildcard needs a dotted suffix")),
            (true, _) => Err(bad("puts a wildcard on an IP address")),
        }
    }

    fn matches(&self, host: &Host<&str>) -> bool {
        match (self, host) {
            (HostPattern::Exact(want), host) => *want == host.to_owned(),
            (HostPattern::Subdomains(suffix), Host::Domain(d)) => d
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostPattern::Subdomains(_), _) => false,
        }
    }
}

impl MediaPolicy {
    pub(crate) fn new(
        allowed_hosts: &[String],
        allow_insecure_http: bool,
    ) -> Result<Self, ApiError> {
        Ok(MediaPolicy {
            allowed: allowed_hosts
                .iter()
                .map(|h| HostPattern::parse(h))
                .collect::<Result<_, _>>()?,
            allow_insecure_http,
        })
    }

    /// Classifies `value` against the API base URL. A root-relative value
    /// (`/media/…`) is joined onto the API origin; a bare id must be one
    /// path-safe segment.
    pub(crate) fn resolve(&self, base: &Url, value: &str) -> Result<MediaTarget, ApiError> {
        let value = value.trim();
        let invalid = |reason: String| ApiError::InvalidMediaValue {
            value: preview(value),
            reason,
        };
        let mut url = match Url::parse(value) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) if value.starts_with('/') => base
                .join(value)
                .map_err(|e| invalid(format!("is not a valid URL path ({e})")))?,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                return media_id(value).map(|id| MediaTarget::Id(id.to_owned()));
            }
            Err(e) => return Err(invalid(format!("is not a valid URL ({e})"))),
        };
        let invalid = |url: &Url, reason: String| ApiError::InvalidMediaValue {
            value: url_preview(url),
            reason,
        };
        if !matches!(url.scheme(), "http" | "https") {
            let reason = format!(
                "has scheme `{}`; only http(s) media URLs are fetched",
                url.scheme()
            );
            return Err(invalid(&url, reason));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(&url, "carries credentials in the URL".into()));
        }
        url.set_fragment(None);
        if url.origin() == base.origin() {
            return Ok(MediaTarget::ApiOrigin(url));
        }
        self.check_foreign(&url)?;
        Ok(MediaTarget::Foreign(url))
    }

    /// A URL on another origin than the API's, as a media value or as a redirect hop of a
    /// media fetch: its host must be listed, it must not be a link-local or metadata
    /// address (even when listed), and plain http needs loopback or `allow_insecure_http`.
    pub(crate) fn check_foreign(&self, url: &Url) -> Result<(), ApiError> {
        let Some(host) = url.host() else {
            return Err(ApiError::InvalidMediaValue {
                value: url_preview(url),
                reason: "has no host".into(),
            });
        };
        if guard::literal_ip(&host).is_some_and(guard::blocked_ip) {
            return Err(ApiError::BlockedAddress {
                host: host.to_string(),
            });
        }
        if !self.allowed.iter().any(|p| p.matches(&host)) {
            return Err(ApiError::MediaHostNotAllowed {
                host: host.to_string(),
            });
        }
        if url.scheme() == "http" && !is_loopback(&host) && !self.allow_insecure_http {
            return Err(ApiError::InsecureMediaUrl {
                origin: url.origin().ascii_serialization(),
            });
        }
        Ok(())
    }

    /// Exact (non-wildcard) domain entries of the allow list: names that may resolve to
    /// private addresses (see [`guard::GuardedResolver`]).
    pub(crate) fn exact_domains(&self) -> impl Iterator<Item = String> + '_ {
        self.allowed.iter().filter_map(|p| match p {
            HostPattern::Exact(Host::Domain(d)) => Some(d.clone()),
            _ => None,
        })
    }
}

/// A URL on the API origin fetched as media (a row's value, or a redirect hop of a media
/// fetch) carries the token, so it may only name a media route of its own execution:
/// `<base>/api/v1/executions/<execution_id>/media/<id>/download`, or the CDN form
/// `/media/…` (token in the query). Any other API path (`/api/v1/tasks`, another
/// execution's results) is refused before anything is sent.
pub(crate) fn check_media_route(base: &Url, url: &Url, execution_id: &str) -> Result<(), ApiError> {
    let refused = || ApiError::InvalidMediaValue {
        value: url_preview(url),
        reason: format!("names an API route that is not a media route of execution {execution_id}"),
    };
    let path = url.path();
    let prefix = base.path().trim_end_matches('/');
    let Some(rest) = path.strip_prefix(prefix) else {
        return Err(refused());
    };
    if rest.starts_with("/media/") || path.starts_with("/media/") {
        return Ok(());
    }
    let mut own = base.clone();
    own.path_segments_mut()
        .map_err(|()| refused())?
        .pop_if_empty()
        .extend(["api", "v1", "executions", execution_id, "media"]);
    let tail = path
        .strip_prefix(own.path())
        .and_then(|t| t.strip_prefix('/'))
        .and_then(|t| t.strip_suffix("/download"));
    match tail {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(()),
        _ => Err(refused()),
    }
}

/// A bare media id becomes one path segment: visible ASCII without `/ \ ? # %`,
/// not `.`/`..`, at most `MAX_MEDIA_ID` bytes.
fn media_id(value: &str) -> Result<&str, ApiError> {
    let invalid = |reason: &str| ApiError::InvalidMediaValue {
        value: preview(value),
        reason: reason.into(),
    };
    if value.is_empty() {
        return Err(invalid("is empty"));
    }
    if value == "." || value == ".." {
        return Err(invalid("is not a usable media id"));
    }
    if value.len() > MAX_MEDIA_ID {
        return Err(invalid("is too long for a media id"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"/\\?#%".contains(&b))
    {
        return Err(invalid(
            "is neither an http(s) URL nor a media id (visible ASCII without / \\ ? # %)",
        ));
    }
    Ok(value)
}

/// Loopback hosts may use plain http (tests, the simulator, local proxies).
pub(crate) fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// `scheme://host[:port]/path`: what errors and logs may show of a URL
/// (no credentials, no query, no fragment).
pub(crate) fn display_url(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// A short, query-free quote of an unusable value for an error message.
fn preview(value: &str) -> String {
    let head = value.split(['?', '#']).next().unwrap_or_default();
    truncated(head, head.len() < value.len())
}

/// A parsed URL quoted without credentials, query or fragment.
fn url_preview(url: &Url) -> String {
    match url.host_str() {
        Some(host) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let shown = format!("{}://{host}{port}{}", url.scheme(), url.path());
            truncated(&shown, url.query().is_some())
        }
        None => format!("{}:…", url.scheme()),
    }
}

fn truncated(text: &str, cut: bool) -> String {
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if cut || out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Cuts the query string out of every URL-like word of server-provided text
/// (`…/media/x?token=abc` → `…/media/x?***`): signed tokens live there. A word
/// is redacted when a `?` in it is followed by a `key=value` pair.
pub(crate) fn redact_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        match word.find('?') {
            Some(q) if word[q + 1..].contains('=') => {
                out.push_str(&word[..=q]);
                out.push_str("***");
                // Keep closing punctuation that likely is not part of the URL.
                let kept = word.trim_end_matches(['"', '\'', ')', ']', '>', ',']);
                out.push_str(&word[kept.len()..]);
            }
            _ => out.push_str(word),
        }
        let space_end = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..space_end]);
        rest = &tail[space_end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.titan.example").expect("url")
    }

    fn policy(hosts: &[&str]) -> MediaPolicy {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        MediaPolicy::new(&hosts, false).expect("valid allow list")
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn values_resolve_to_the_right_branch() {
        let p = policy(&["cdn.titan.example", "*.media.example.com"]);
        let table: &[(&str, MediaTarget)] = &[
            ("m-123", MediaTarget::Id("m-123".into())),
            (" m-123\n", MediaTarget::Id("m-123".into())),
            (
                "https://api.titan.example/api/v1/executions/e1/media/m1/download",
                MediaTarget::ApiOrigin(url(
                    "https://api.titan.example/api/v1/executions/e1/media/m1/download",
                )),
            ),
            (
                "https://API.titan.example:443/media/a.png?token=s#frag",
                MediaTarget::ApiOrigin(url("https://api.titan.example/media/a.png?token=s")),
            ),
            (
                "/media/a.png?token=s",
                MediaTarget::ApiOrigin(url("https://api.titan.example/media/a.png?token=s")),
            ),
            (
                "https://cdn.titan.example/media/a.png?token=s",
                MediaTarget::Foreign(url("https://cdn.titan.example/media/a.png?token=s")),
            ),
            (
                "https://eu.media.example.com/x.jpg",
                MediaTarget::Foreign(url("https://eu.media.example.com/x.jpg")),
            ),
            (
                "https://a.b.media.example.com/x.jpg",
                MediaTarget::Foreign(url("https://a.b.media.example.com/x.jpg")),
            ),
            (
                "//cdn.titan.example/x.jpg",
                MediaTarget::Foreign(url("https://cdn.titan.example/x.jpg")),
            ),
        ];
        for (value, want) in table {
            assert_eq!(p.resolve(&base(), value).expect(value), *want, "{value}");
        }
    }

    #[test]
    fn other_hosts_and_origins_need_the_allow_list() {
        let p = policy(&["cdn.titan.example", "*.media.example.com"]);
        // (value, host reported)
        let table = [
            ("https://evil.example/x?token=s", "evil.example"),
            ("https://media.example.com/x", "media.example.com"),
            ("https://xmedia.example.com/x", "xmedia.example.com"),
            (
                "https://cdn.titan.example.evil.net/x",
                "cdn.titan.example.evil.net",
            ),
            // Same host, other port or scheme: another origin.
            ("https://api.titan.example:8443/x", "api.titan.example"),
            ("http://api.titan.example/x", "api.titan.example"),
            ("https://10.0.0.1/x", "10.0.0.1"),
        ];
        for (value, host) in table {
            match p.resolve(&base(), value) {
                Err(ApiError::MediaHostNotAllowed { host: h }) => assert_eq!(h, host, "{value}"),
                other => panic!("{value}: expected MediaHostNotAllowed, got {other:?}"),
            }
        }
        let err = policy(&[])
            .resolve(&base(), "https://cdn.titan.example/x?token=sig")
            .expect_err("empty allow list");
        assert_eq!(
            err.to_string(),
            "media host `cdn.titan.example` is not in media_allowed_hosts"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn plain_http_media_only_to_loopback_unless_allowed() {
        let p = policy(&["cdn.titan.example", "127.0.0.1", "localhost"]);
        match p.resolve(&base(), "http://cdn.titan.example/x?token=s") {
            Err(ApiError::InsecureMediaUrl { origin }) => {
                assert_eq!(origin, "http://cdn.titan.example")
            }
            other => panic!("expected InsecureMediaUrl, got {other:?}"),
        }
        for ok in ["http://127.0.0.1:9000/x", "http://localhost:9000/x"] {
            assert!(matches!(
                p.resolve(&base(), ok),
                Ok(MediaTarget::Foreign(_))
            ));
        }
        let lax = MediaPolicy::new(&["cdn.titan.example".into()], true).expect("valid");
        assert!(matches!(
            lax.resolve(&base(), "http://cdn.titan.example/x"),
            Ok(MediaTarget::Foreign(_))
        ));
    }

    #[test]
    fn unusable_values_are_refused_without_quoting_queries() {
        let p = policy(&["cdn.titan.example"]);
        for value in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a?token=secret",
            "ftp://cdn.titan.example/x?token=secret",
            "file:///etc/passwd",
            "data:image/png;base64,AAAA",
            "https://user:secret@cdn.titan.example/x",
            "https://[::1/x?token=secret",
        ] {
            let err = p.resolve(&base(), value).expect_err(value);
            assert!(
                matches!(err, ApiError::InvalidMediaValue { .. }),
                "{value}: {err:?}"
            );
            let text = format!("{err} {err:?}");
            assert!(!text.contains("secret"), "{value}: {text}");
        }
        let long = "x".repeat(MAX_MEDIA_ID + 1);
        let err = p.resolve(&base(), &long).expect_err("too long");
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn allow_list_entries_are_validated() {
        for bad in [
            "",
            "*",
            "*.com",
            "*.10.0.0.1",
            "cdn.example.com:443",
            "https://cdn.example.com",
            "cdn.example.com/path",
        ] {
            match MediaPolicy::new(&[bad.to_string()], false) {
                Err(ApiError::InvalidConfig { field, .. }) => {
                    assert_eq!(field, "media_allowed_hosts", "{bad}")
                }
                other => panic!("{bad}: expected InvalidConfig, got {other:?}"),
            }
        }
        let p = policy(&["CDN.Example.com.", "[::1]", "*.Media.Example.com"]);
        assert_eq!(
            p.allowed,
            [
                HostPattern::Exact(Host::Domain("cdn.example.com".into())),
                HostPattern::Exact(Host::Ipv6(std::net::Ipv6Addr::LOCALHOST)),
                HostPattern::Subdomains("media.example.com".into()),
            ]
        );
        assert!(matches!(
            p.resolve(&base(), "http://[::1]:9000/x"),
            Ok(MediaTarget::Foreign(_))
        ));
    }

    #[test]
    fn same_origin_values_may_only_name_their_executions_media_routes() {
        let b = base();
        let ok = [
            "https://api.titan.example/api/v1/executions/e1/media/m1/download",
            "https://api.titan.example/api/v1/executions/e1/media/m1/download?x=1",
            "https://api.titan.example/media/e1/m1?token=sig",
        ];
        for v in ok {
            assert_eq!(
                check_media_route(&b, &url(v), "e1").map_err(|e| e.to_string()),
                Ok(()),
                "{v}"
            );
        }
        let refused = [
            "https://api.titan.example/api/v1/tasks",
            "https://api.titan.example/api/v1/executions/e1",
            "https://api.titan.example/api/v1/executions/e1/results/export",
            "https://api.titan.example/api/v1/executions/e2/media/m1/download",
            "https://api.titan.example/api/v1/executions/e1/media/m1/download/x",
            "https://api.titan.example/api/v1/executions/e1/media//download",
            "https://api.titan.example/api/v1/executions/e1/media/a/b/download",
            "https://api.titan.example/api/v1/executions/e1/media/../../../tasks",
            "https://api.titan.example/",
        ];
        for v in refused {
            let err = check_media_route(&b, &url(v), "e1").expect_err(v);
            assert_eq!(err.kind(), crate::api::ApiErrorKind::Refused, "{v}");
            assert!(
                err.to_string()
                    .ends_with("names an API route that is not a media route of execution e1"),
                "{err}"
            );
        }
        // Behind a path prefix (reverse proxy), routes sit under the prefix.
        let proxied = url("https://gw.example/titan/");
        assert!(
            check_media_route(
                &proxied,
                &url("https://gw.example/titan/api/v1/executions/e1/media/m/download"),
                "e1"
            )
            .is_ok()
        );
        assert!(
            check_media_route(
                &proxied,
                &url("https://gw.example/titan/api/v1/tasks"),
                "e1"
            )
            .is_err()
        );
    }

    #[test]
    fn metadata_addresses_are_refused_even_when_listed() {
        let p = policy(&["169.254.169.254", "[fd00:ec2::254]", "10.0.0.5"]);
        for v in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest",
            "https://169.254.1.1/x",
        ] {
            match p.resolve(&base(), v) {
                Err(ApiError::BlockedAddress { host }) => {
                    assert!(v.contains(host.trim_matches(['[', ']'])), "{v} {host}")
                }
                other => panic!("{v}: expected BlockedAddress, got {other:?}"),
            }
        }
        // A private address is fetched only when listed.
        assert!(matches!(
            p.resolve(&base(), "https://10.0.0.5/x"),
            Ok(MediaTarget::Foreign(_))
        ));
        assert!(matches!(
            p.resolve(&base(), "https://10.0.0.6/x"),
            Err(ApiError::MediaHostNotAllowed { .. })
        ));
    }

    #[test]
    fn display_url_drops_query_credentials_and_fragment() {
        let u = url("https://u:p@cdn.example.com:8443/media/a.png?token=sig#f");
        assert_eq!(display_url(&u), "https://cdn.example.com:8443/media/a.png");
    }

    #[test]
    fn queries_are_redacted_from_server_text() {
        let table = [
            (
                "token expired for https://cdn.x/media/a.png?token=abc&exp=1",
                "token expired for https://cdn.x/media/a.png?***",
            ),
            (
                "bad url \"/media/a?sig=zzz\", retry",
                "bad url \"/media/a?***\", retry",
            ),
            ("Is this ok? yes", "Is this ok? yes"),
            ("what?  a=b", "what?  a=b"),
            ("no queries here", "no queries here"),
            ("", ""),
            ("  lead\tand trail  ", "  lead\tand trail  "),
        ];
        for (input, want) in table {
            assert_eq!(redact_queries(input), want, "{input:?}");
        }
    }
}
