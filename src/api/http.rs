//! The HTTP core under `TitanClient`: reqwest client construction, auth header,
//! redirects followed by hand, rate budget, retries, stats. Invariant: the
//! token is attached by this file only, and only to requests whose origin
//! (scheme, host, port) is the configured one — redirect hops to any other
//! origin never carry it; exactly those requests wait for the rate budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Response, StatusCode};
use serde::Serialize;
use tracing::{debug, warn};
use url::{Origin, Url};

use super::budget::RateBudget;
use super::media::MediaPolicy;
use super::retry::{self, RetryPolicy};
use super::{ApiConfig, ApiError, AuthScheme, ExportStream, Token, envelope, guard, media};

/// Redirect hops followed per request (the media route may 302 to the CDN).
const MAX_REDIRECTS: usize = 10;
/// Largest JSON body accepted; list pages and objects are far smaller.
const MAX_JSON_BODY: usize = 32 << 20;
/// How much of an error body is read to find `error.code`.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Query values at least this long are treated as secrets when scrubbing
/// server messages (signatures, tokens); shorter ones (`1`, `png`) are not.
const MIN_SECRET_LEN: usize = 8;

/// Counters for the run report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// HTTP requests sent, including retries and redirect hops.
    pub requests: u64,
    /// Attempts repeated after a retryable failure.
    pub retries: u64,
    /// 429 answers seen (retried or not).
    pub rate_limited: u64,
    /// Body bytes received: JSON bodies plus streamed bytes actually consumed.
    pub bytes_downloaded: u64,
    /// Requests that waited for the rate budget or a server hold before starting.
    pub throttled_waits: u64,
    /// Total time those requests waited, in milliseconds.
    pub throttled_ms: u64,
    /// `retries` split by what caused them (for the metrics' `cause` label).
    pub retries_by_cause: RetryCauses,
}

/// Retries counted by their cause. A plain struct of counters, so [`ClientStats`] stays
/// `Copy`; [`RetryCauses::iter`] names them as the metrics do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetryCauses {
    /// 429 answers.
    pub rate_limited: u64,
    /// 5xx answers (except 501).
    pub server_error: u64,
    /// No answer within the timeout (also a 408).
    pub timeout: u64,
    /// Connect failures, resets, bodies broken off.
    pub network: u64,
    /// Anything else that was retried.
    pub other: u64,
}

impl RetryCauses {
    /// `(cause, count)` for every cause, zeros included, in a fixed order.
    pub fn iter(&self) -> [(&'static str, u64); 5] {
        [
            ("rate_limited", self.rate_limited),
            ("server_error", self.server_error),
            ("timeout", self.timeout),
            ("network", self.network),
            ("other", self.other),
        ]
    }

    /// The cause a retry of `err` is counted under.
    pub(crate) fn index_of(err: &ApiError) -> usize {
        match err {
            ApiError::RateLimited { .. } => 0,
            ApiError::Server { .. } => 1,
            ApiError::Transport {
                timed_out: true, ..
            } => 2,
            ApiError::BadRequest { status: 408, .. } => 2,
            ApiError::Transport { .. } | ApiError::StreamBroken { .. } => 3,
            _ => 4,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    bytes: AtomicU64,
    throttled_waits: AtomicU64,
    throttled_us: AtomicU64,
    /// Indexed by [`RetryCauses::index_of`].
    retry_causes: [AtomicU64; 5],
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ClientStats {
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            bytes_downloaded: self.bytes.load(Ordering::Relaxed),
            throttled_waits: self.throttled_waits.load(Ordering::Relaxed),
            throttled_ms: self.throttled_us.load(Ordering::Relaxed) / 1000,
            retries_by_cause: {
                let c = |i: usize| self.retry_causes[i].load(Ordering::Relaxed);
                RetryCauses {
                    rate_limited: c(0),
                    server_error: c(1),
                    timeout: c(2),
                    network: c(3),
                    other: c(4),
                }
            },
        }
    }
}

/// What the redirect hops of a media fetch may reach: another origin only under the
/// media host policy, the API origin only on a media route of `execution_id`.
pub(crate) struct MediaScope<'a> {
    pub(crate) policy: &'a MediaPolicy,
    pub(crate) base: &'a Url,
    pub(crate) execution_id: &'a str,
}

impl MediaScope<'_> {
    fn check_hop(&self, url: &Url) -> Result<(), ApiError> {
        if url.origin() == self.base.origin() {
            media::check_media_route(self.base, url, self.execution_id)
        } else {
            self.policy.check_foreign(url)
        }
    }
}

/// What a 2xx answer should be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Expect {
    /// An enveloped JSON body, read whole (bounded).
    Json,
    /// A file export: any bytes except an HTML page.
    File,
    /// A media asset: any bytes, any content type.
    Media,
}

pub(crate) struct Http {
    client: reqwest::Client,
    origin: Origin,
    token: Token,
    auth: AuthScheme,
    timeout: Duration,
    body_timeout: Duration,
    retry: RetryPolicy,
    stats: Arc<Counters>,
    budget: RateBudget,
    allow_insecure_http: bool,
    max_media_bytes: Option<u64>,
}

impl Http {
    /// Builds the reqwest client: no automatic redirects (we follow them to
    /// control the auth header), connect timeout, per-chunk read timeout.
    pub(crate) fn new(
        cfg: &ApiConfig,
        budget: RateBudget,
        media: &MediaPolicy,
    ) -> Result<Self, ApiError> {
        let trusted = cfg
            .base_url
            .host_str()
            .map(str::to_owned)
            .into_iter()
            .chain(media.exact_domains());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(guard::GuardedResolver::new(trusted))
            .connect_timeout(cfg.timeout)
            .read_timeout(cfg.read_timeout)
            .user_agent(cfg.user_agent.as_str())
            .build()
            .map_err(|e| ApiError::InvalidConfig {
                field: "http client",
                reason: e.without_url().to_string(),
            })?;
        Ok(Http {
            client,
            origin: cfg.base_url.origin(),
            token: cfg.token.clone(),
            auth: cfg.auth,
            timeout: cfg.timeout,
            body_timeout: cfg.body_timeout,
            retry: cfg.retry.clone(),
            stats: Arc::default(),
            budget,
            allow_insecure_http: cfg.allow_insecure_http,
            max_media_bytes: cfg.max_media_bytes,
        })
    }

    pub(crate) fn stats(&self) -> ClientStats {
        self.stats.snapshot()
    }

    /// GET an enveloped JSON route with retries; returns the raw body of a 2xx.
    pub(crate) async fn get_json(&self, route: &str, url: &Url) -> Result<Bytes, ApiError> {
        match self.execute(route, url, Expect::Json, None).await? {
            Opened::Body(b) => Ok(b),
            Opened::Stream(_) => Err(ApiError::protocol(route, 0, "internal: expected a body")),
        }
    }

    /// GET a streamed route with retries on opening only. Media bodies are
    /// held to `max_media_bytes`, and their redirects to `scope`.
    pub(crate) async fn get_stream(
        &self,
        route: &str,
        url: &Url,
        expect: Expect,
        scope: Option<&MediaScope<'_>>,
    ) -> Result<ExportStream, ApiError> {
        let limit = self.max_media_bytes.filter(|_| expect == Expect::Media);
        match self.execute(route, url, expect, scope).await? {
            Opened::Stream(resp) => Ok(self.export_stream(route, resp, limit)),
            Opened::Body(_) => Err(ApiError::protocol(route, 0, "internal: expected a stream")),
        }
    }

    async fn execute(
        &self,
        route: &str,
        url: &Url,
        expect: Expect,
        scope: Option<&MediaScope<'_>>,
    ) -> Result<Opened, ApiError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let err = match self.attempt(route, url, expect, scope).await {
                Ok(opened) => return Ok(opened),
                Err(e) => e,
            };
            let delay = {
                let mut rng = rand::rng();
                retry::next_delay(&self.retry, &err, attempts, started.elapsed(), &mut rng)
            };
            let Some(delay) = delay else {
                return Err(err.with_attempts(attempts));
            };
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            self.stats.retry_causes[RetryCauses::index_of(&err)].fetch_add(1, Ordering::Relaxed);
            if matches!(err, ApiError::RateLimited { .. }) {
                debug!(
                    route,
                    attempt = attempts,
                    delay_ms = delay.as_millis() as u64,
                    "Rate limited, waiting before retrying"
                );
            } else {
                let delay_ms = delay.as_millis() as u64;
                warn!(route, attempt = attempts, delay_ms, error = %err, "Request failed, retrying");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: send (following redirects), classify the status, and for
    /// JSON read the body so a broken read is retried like a failed send.
    async fn attempt(
        &self,
        route: &str,
        url: &Url,
        expect: Expect,
        scope: Option<&MediaScope<'_>>,
    ) -> Result<Opened, ApiError> {
        let resp = self.send_following_redirects(route, url, scope).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.error_from_response(route, resp).await);
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
        let is_html = content_type.to_ascii_lowercase().starts_with("text/html");
        match expect {
            Expect::Json | Expect::File if is_html => Err(ApiError::protocol(
                route,
                status.as_u16(),
                format!(
                    "got an HTML page (`{content_type}`) where Titan sends {}",
                    if expect == Expect::Json {
                        "JSON"
                    } else {
                        "a file"
                    }
                ),
            )),
            Expect::Json => self
                .read_body(route, resp, MAX_JSON_BODY)
                .await
                .map(Opened::Body),
            Expect::File => Ok(Opened::Stream(resp)),
            Expect::Media => match (self.max_media_bytes, resp.content_length()) {
                (Some(limit), Some(length)) if length > limit => Err(ApiError::TooLarge {
                    route: route.to_owned(),
                    limit,
                    length,
                }),
                _ => Ok(Opened::Stream(resp)),
            },
        }
    }

    /// Every hop passes the address guard (never a link-local or metadata literal); the
    /// hops of a media fetch also pass its `scope`.
    async fn send_following_redirects(
        &self,
        route: &str,
        url: &Url,
        scope: Option<&MediaScope<'_>>,
    ) -> Result<Response, ApiError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let to_api = url.origin() == self.origin;
            let mut req = self.client.get(url.clone());
            // The one place the token leaves the process, and only to our origin.
            if to_api {
                req = req.headers(self.auth_headers()?);
                self.wait_for_budget(route).await;
            }
            let t0 = Instant::now();
            let sent = tokio::time::timeout(self.timeout, req.send()).await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let resp = match sent {
                Err(_) => {
                    debug!(
                        method = "GET",
                        path = url.path(),
                        elapsed_ms = t0.elapsed().as_millis() as u64,
                        "Request timed out before headers"
                    );
                    return Err(ApiError::Transport {
                        route: route.into(),
                        attempts: 1,
                        timed_out: true,
                        source: None,
                    });
                }
                Ok(Err(e)) => {
                    debug!(
                        method = "GET",
                        path = url.path(),
                        elapsed_ms = t0.elapsed().as_millis() as u64,
                        "Request failed to send"
                    );
                    return Err(ApiError::Transport {
                        route: route.into(),
                        attempts: 1,
                        timed_out: e.is_timeout(),
                        source: Some(e.without_url()),
                    });
                }
                Ok(Ok(resp)) => resp,
            };
            let status = resp.status();
            debug!(
                method = "GET",
                path = url.path(),
                status = status.as_u16(),
                elapsed_ms = t0.elapsed().as_millis() as u64,
                "HTTP request"
            );
            if to_api && let Some(hold) = self.budget.observe(resp.headers(), SystemTime::now()) {
                debug!(
                    hold_ms = hold.as_millis() as u64,
                    "Server rate limit spent, holding new requests until its reset"
                );
            }
            let location = status
                .is_redirection()
                .then(|| header_str(resp.headers(), LOCATION.as_str()))
                .flatten();
            let Some(location) = location else {
                return Ok(resp);
            };
            let next = url.join(&location).map_err(|e| {
                ApiError::protocol(
                    route,
                    status.as_u16(),
                    format!("redirect to an unparsable Location ({e})"),
                )
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(ApiError::protocol(
                    route,
                    status.as_u16(),
                    format!("redirect to a `{}:` URL", next.scheme()),
                ));
            }
            if let Some(host) = next.host()
                && guard::literal_ip(&host).is_some_and(guard::blocked_ip)
            {
                return Err(ApiError::BlockedAddress {
                    host: host.to_string(),
                });
            }
            let loopback = next.host().is_some_and(|h| media::is_loopback(&h));
            if next.scheme() == "http" && !loopback && !self.allow_insecure_http {
                return Err(ApiError::protocol(
                    route,
                    status.as_u16(),
                    format!(
                        "redirect to plain HTTP on {} (set allow_insecure_http to follow it)",
                        next.origin().ascii_serialization()
                    ),
                ));
            }
            if let Some(scope) = scope {
                scope.check_hop(&next)?;
            }
            url = next;
        }
        Err(ApiError::protocol(
            route,
            0,
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }

    /// Waits for this request's slot in the shared budget and counts the wait.
    async fn wait_for_budget(&self, route: &str) {
        let waited = self.budget.acquire().await;
        if waited.is_zero() {
            return;
        }
        self.stats.throttled_waits.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.stats.throttled_us.fetch_add(us, Ordering::Relaxed);
        if waited >= Duration::from_secs(1) {
            debug!(
                route,
                waited_ms = waited.as_millis() as u64,
                "Waited for the request budget"
            );
        }
    }

    fn auth_headers(&self) -> Result<HeaderMap, ApiError> {
        let invalid = |_| ApiError::InvalidConfig {
            field: "token",
            reason: "is not a valid HTTP header value".into(),
        };
        let (name, value) = match self.auth {
            AuthScheme::Bearer => (
                AUTHORIZATION,
                HeaderValue::try_from(format!("Bearer {}", self.token.expose()))
                    .map_err(invalid)?,
            ),
            AuthScheme::XApiKey => (
                reqwest::header::HeaderName::from_static("x-api-key"),
                HeaderValue::try_from(self.token.expose()).map_err(invalid)?,
            ),
        };
        let mut value = value;
        value.set_sensitive(true);
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(name, value);
        Ok(headers)
    }

    /// Typed error from a non-2xx answer: status + envelope (or CDN) code.
    async fn error_from_response(&self, route: &str, resp: Response) -> ApiError {
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let hint = if status == StatusCode::TOO_MANY_REQUESTS {
            retry::server_wait_hint(resp.headers(), SystemTime::now())
        } else {
            None
        };
        let redirect = status.is_redirection();
        // A signed URL's parameters may be echoed back in the message.
        let signed: Vec<String> = resp
            .url()
            .query_pairs()
            .map(|(_, v)| v.into_owned())
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        // A broken error body still leaves the status to classify by.
        let body = self
            .read_body(route, resp, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        if redirect {
            return ApiError::protocol(
                route,
                status.as_u16(),
                "redirect without a Location header",
            );
        }
        let (code, message) = envelope::error_body(&body);
        let scrub = |text: String| {
            signed
                .iter()
                .fold(self.scrub(text), |t, v| t.replace(v.as_str(), "***"))
        };
        let (code, message) = (code.map(scrub), message.map(scrub));
        ApiError::from_answer(route, status.as_u16(), code, message, hint)
    }

    /// Decodes an enveloped 2xx JSON body into `data` + siblings, turning
    /// `success:false` into the typed error.
    pub(crate) fn envelope(
        &self,
        route: &str,
        body: &[u8],
    ) -> Result<
        (
            serde_json::Value,
            serde_json::Map<String, serde_json::Value>,
        ),
        ApiError,
    > {
        match envelope::parse(body) {
            Ok(envelope::Envelope::Success { data, siblings }) => Ok((data, siblings)),
            Ok(envelope::Envelope::Failure { code, message }) => Err(ApiError::from_answer(
                route,
                200,
                code.map(|c| self.scrub(c)),
                message.map(|m| self.scrub(m)),
                None,
            )),
            Err(detail) => Err(ApiError::protocol(route, 200, detail)),
        }
    }

    /// Server text may echo the credential or a signed URL; neither reaches
    /// our errors.
    pub(crate) fn scrub(&self, text: String) -> String {
        let token = self.token.expose();
        let text = if text.contains(token) {
            text.replace(token, "***")
        } else {
            text
        };
        if text.contains('?') {
            media::redact_queries(&text)
        } else {
            text
        }
    }

    /// Reads a whole body up to `limit` bytes, within `body_timeout`; a longer body is
    /// a Protocol error, a slower one `BodyDeadline`.
    async fn read_body(
        &self,
        route: &str,
        mut resp: Response,
        limit: usize,
    ) -> Result<Bytes, ApiError> {
        let status = resp.status().as_u16();
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        let mut buf = BytesMut::new();
        loop {
            let Ok(chunk) = tokio::time::timeout_at(deadline, resp.chunk()).await else {
                return Err(ApiError::BodyDeadline {
                    route: route.into(),
                    limit: self.body_timeout,
                    bytes_received: buf.len() as u64,
                    attempts: 1,
                });
            };
            match chunk {
                Ok(Some(chunk)) => {
                    self.stats
                        .bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if buf.len() + chunk.len() > limit {
                        return Err(ApiError::protocol(
                            route,
                            status,
                            format!("response body exceeds {limit} bytes"),
                        ));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(buf.freeze()),
                Err(e) => {
                    return Err(ApiError::Transport {
                        route: route.into(),
                        attempts: 1,
                        timed_out: e.is_timeout(),
                        source: Some(e.without_url()),
                    });
                }
            }
        }
    }

    /// The body as a stream of chunks; with a `limit`, the chunk that takes
    /// it past the limit is replaced by `TooLarge` and the stream ends.
    fn export_stream(&self, route: &str, resp: Response, limit: Option<u64>) -> ExportStream {
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str());
        let content_length = resp.content_length();
        let stats = Arc::clone(&self.stats);
        let route = route.to_owned();
        let mut received = 0u64;
        let mut ended = false;
        let body = resp
            .bytes_stream()
            .map(move |chunk| match chunk {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    match limit {
                        Some(limit) if received > limit => Err(ApiError::TooLarge {
                            route: route.clone(),
                            limit,
                            length: received,
                        }),
                        _ => Ok(bytes),
                    }
                }
                Err(e) => Err(ApiError::StreamBroken {
                    route: route.clone(),
                    bytes_received: received,
                    timed_out: e.is_timeout(),
                    source: e.without_url(),
                }),
            })
            .take_while(move |item| {
                let more = !ended;
                ended = matches!(item, Err(ApiError::TooLarge { .. }));
                futures::future::ready(more)
            })
            .boxed();
        ExportStream {
            content_type,
            content_length,
            body,
        }
    }
}

enum Opened {
    Body(Bytes),
    Stream(Response),
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}
