//! Titan Task Service client: one typed method per read route, the only thing
//! the pipeline sees of the API. Invariants: the token only goes to the
//! configured origin, every request to it waits for the shared `RateBudget`,
//! export/media bodies are streamed (never buffered), and every failure is a
//! typed `ApiError` classified by status + `error.code`.

mod budget;
mod envelope;
mod error;
mod guard;
mod http;
mod media;
mod model;
mod paginate;
mod retry;
mod token;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

use std::fmt;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

pub use crate::format::ExportFormat;
pub use budget::{DEFAULT_BURST, DEFAULT_REQUESTS_PER_MINUTE, RateBudget};
pub use error::{ApiError, ApiErrorKind};
pub use http::{ClientStats, RetryCauses};
pub use model::{Dataset, Execution, ExecutionStatus, ResultsMeta, Task};
pub(crate) use retry::jittered as jittered_secs;
pub use retry::{MAX_SERVER_WAIT, RetryPolicy};
pub use token::Token;

use http::{Expect, Http, MediaScope};
use media::{MediaPolicy, MediaTarget};

/// Which header carries the token. Titan documents Bearer; some deployments
/// expect `X-API-Key`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>`.
    #[default]
    #[serde(rename = "bearer")]
    Bearer,
    /// `X-API-Key: <token>`.
    #[serde(rename = "x-api-key")]
    XApiKey,
}

/// Everything the client needs; built by the config layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The API origin, e.g. `https://api.webscraping.titannet.io`; routes are
    /// joined as `/api/v1/...` (after any path prefix, for reverse proxies).
    pub base_url: Url,
    pub token: Token,
    pub auth: AuthScheme,
    /// Per request: connect plus waiting for the response headers. Default 30 s.
    pub timeout: Duration,
    /// Longest gap between two body chunks before the read fails. Default 60 s.
    pub read_timeout: Duration,
    /// Whole-body deadline for JSON answers (list pages, objects, error bodies), counted
    /// from their headers: `read_timeout` alone lets a byte every 59 s stall a page
    /// forever. Default 2 min. Streamed bodies (exports, media) are not held to it.
    pub body_timeout: Duration,
    pub retry: RetryPolicy,
    /// Allow plain `http://` to a non-loopback host (the token travels in
    /// clear), for the API and for media URLs and redirects.
    pub allow_insecure_http: bool,
    pub user_agent: String,
    /// Client-side budget for requests to the API origin, shared by every
    /// clone of the client. Default `Some(100)`, under Titan's ~120/min;
    /// `None` disables it (the server's `X-RateLimit-*` holds still apply).
    pub rate_limit_per_minute: Option<u32>,
    /// With a budget: follow the server's advertised `X-RateLimit-Limit` /
    /// `-Remaining` (with a margin), `rate_limit_per_minute` being only the pace until
    /// the server says something. Default true; the config layer clears it when the
    /// user sets `rate_limit_per_minute`, which is then held to as set.
    pub rate_limit_from_server: bool,
    /// Requests that may start back to back after an idle period. Default 10.
    pub rate_limit_burst: u32,
    /// Hosts other than the API's from which `media_url` may fetch (never with
    /// the token): `cdn.example.com` exactly, or `*.example.com` for any
    /// subdomain. Default empty: media only from the API origin.
    pub media_allowed_hosts: Vec<String>,
    /// Largest media body accepted, checked against `Content-Length` before
    /// reading and against the bytes received. Default 1 GiB; `None` = no limit.
    pub max_media_bytes: Option<u64>,
}

impl ApiConfig {
    /// A config with the documented defaults.
    pub fn new(base_url: Url, token: Token) -> Self {
        ApiConfig {
            base_url,
            token,
            auth: AuthScheme::Bearer,
            timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            retry: RetryPolicy::default(),
            allow_insecure_http: false,
            user_agent: concat!("titan-connector/", env!("CARGO_PKG_VERSION")).to_owned(),
            rate_limit_per_minute: Some(DEFAULT_REQUESTS_PER_MINUTE),
            rate_limit_from_server: true,
            rate_limit_burst: DEFAULT_BURST,
            media_allowed_hosts: Vec::new(),
            max_media_bytes: Some(DEFAULT_MAX_MEDIA_BYTES),
        }
    }
}

/// Default `body_timeout`: a 32 MiB page at 300 KB/s still fits.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(120);

/// Default `max_media_bytes`: far above any image, low enough to stop a
/// runaway body from filling the disk.
pub const DEFAULT_MAX_MEDIA_BYTES: u64 = 1 << 30;

/// A streamed response body (export, CSV download, media).
pub struct ExportStream {
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    /// Chunks as they arrive; a broken or stalled body yields
    /// `ApiError::StreamBroken`, a media body past `max_media_bytes` yields
    /// `ApiError::TooLarge` and ends.
    pub body: BoxStream<'static, Result<bytes::Bytes, ApiError>>,
}

impl fmt::Debug for ExportStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportStream")
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// The Titan API client. Cheap to clone: clones share one connection pool,
/// the stats and the rate budget.
#[derive(Clone)]
pub struct TitanClient {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    base_url: Url,
    http: Http,
    media: MediaPolicy,
}

impl fmt::Debug for TitanClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TitanClient")
            .field("base_url", &self.inner.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl TitanClient {
    /// Refuses plain http:// unless the host is loopback or allow_insecure_http.
    pub fn new(cfg: ApiConfig) -> Result<Self, ApiError> {
        validate(&cfg)?;
        let budget = match cfg.rate_limit_per_minute {
            Some(rpm) if cfg.rate_limit_from_server => {
                RateBudget::server_driven(rpm, cfg.rate_limit_burst)?
            }
            Some(rpm) => RateBudget::new(rpm, cfg.rate_limit_burst)?,
            None => RateBudget::unlimited(),
        };
        let media = MediaPolicy::new(&cfg.media_allowed_hosts, cfg.allow_insecure_http)?;
        let http = Http::new(&cfg, budget, &media)?;
        Ok(TitanClient {
            inner: std::sync::Arc::new(Inner {
                base_url: cfg.base_url,
                http,
                media,
            }),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// All tasks, every page.
    pub async fn list_tasks(&self) -> Result<Vec<Task>, ApiError> {
        self.list(&["tasks"]).await
    }

    pub async fn get_task(&self, id: &str) -> Result<Task, ApiError> {
        self.object(&["tasks", checked("task_id", id)?]).await
    }

    /// All executions of one task, every page.
    pub async fn list_task_executions(&self, task_id: &str) -> Result<Vec<Execution>, ApiError> {
        self.list(&["tasks", checked("task_id", task_id)?, "executions"])
            .await
    }

    /// All executions the token can see, every page.
    pub async fn list_executions(&self) -> Result<Vec<Execution>, ApiError> {
        self.list(&["executions"]).await
    }

    pub async fn get_execution(&self, id: &str) -> Result<Execution, ApiError> {
        self.object(&["executions", checked("execution_id", id)?])
            .await
    }

    /// Results metadata: a readiness hint, not a guarantee.
    pub async fn results_meta(&self, id: &str) -> Result<ResultsMeta, ApiError> {
        self.object(&["executions", checked("execution_id", id)?, "results"])
            .await
    }

    /// Streams the export body; never buffers it. JSON → results/export (no query = JSON);
    /// CSV → results/export?format=csv. Non-2xx → typed error from the envelope.
    pub async fn export(&self, id: &str, format: ExportFormat) -> Result<ExportStream, ApiError> {
        let (route, mut url) = self.route(&[
            "executions",
            checked("execution_id", id)?,
            "results",
            "export",
        ])?;
        if format == ExportFormat::Csv {
            url.query_pairs_mut().append_pair("format", format.as_str());
        }
        self.inner
            .http
            .get_stream(&route, &url, Expect::File, None)
            .await
    }

    /// CSV via results/download.
    pub async fn download_csv(&self, id: &str) -> Result<ExportStream, ApiError> {
        let (route, url) = self.route(&[
            "executions",
            checked("execution_id", id)?,
            "results",
            "download",
        ])?;
        self.inner
            .http
            .get_stream(&route, &url, Expect::File, None)
            .await
    }

    /// Dataset metadata of one execution; empty is normal.
    pub async fn list_execution_datasets(&self, id: &str) -> Result<Vec<Dataset>, ApiError> {
        self.list(&["executions", checked("execution_id", id)?, "datasets"])
            .await
    }

    /// Dataset metadata across all runs of a task; empty is normal.
    pub async fn list_task_datasets(&self, task_id: &str) -> Result<Vec<Dataset>, ApiError> {
        self.list(&["tasks", checked("task_id", task_id)?, "datasets"])
            .await
    }

    /// GET an execution's media by id (route /api/v1/executions/:id/media/:media_id/download);
    /// returns the streaming response body and its content type. Redirects (e.g. to
    /// the media CDN) are followed only to hosts in `media_allowed_hosts`, or back to a
    /// media route of this execution; other origins never receive the token. The body is
    /// held to `max_media_bytes`.
    pub async fn media(
        &self,
        execution_id: &str,
        media_id: &str,
    ) -> Result<ExportStream, ApiError> {
        let (route, url) = self.route(&[
            "executions",
            checked("execution_id", execution_id)?,
            "media",
            checked("media_id", media_id)?,
            "download",
        ])?;
        let scope = self.media_scope(execution_id);
        self.inner
            .http
            .get_stream(&route, &url, Expect::Media, Some(&scope))
            .await
    }

    fn media_scope<'a>(&'a self, execution_id: &'a str) -> MediaScope<'a> {
        MediaScope {
            policy: &self.inner.media,
            base: &self.inner.base_url,
            execution_id,
        }
    }

    /// Fetches the media a result row's `value` names, under the media rules:
    /// a URL on the API origin (`execution_id`'s download route or the CDN form
    /// `/media/…?token=`, absolute or root-relative; never another API route) is
    /// fetched with the token; a URL on another host
    /// only if `media_allowed_hosts` matches it, and without the token; a bare
    /// media id goes to `execution_id`'s download route. Redirects off the API
    /// origin never carry the token. Errors never show the query string.
    pub async fn media_url(
        &self,
        execution_id: &str,
        value: &str,
    ) -> Result<ExportStream, ApiError> {
        let target = self
            .inner
            .media
            .resolve(&self.inner.base_url, value)
            .map_err(|e| match e {
                // A row could hold anything, even our own token.
                ApiError::InvalidMediaValue { value, reason } => ApiError::InvalidMediaValue {
                    value: self.inner.http.scrub(value),
                    reason,
                },
                other => other,
            })?;
        let (route, url) = match target {
            MediaTarget::Id(id) => return self.media(execution_id, &id).await,
            MediaTarget::ApiOrigin(url) => {
                media::check_media_route(&self.inner.base_url, &url, execution_id)?;
                (url.path().to_owned(), url)
            }
            MediaTarget::Foreign(url) => (media::display_url(&url), url),
        };
        let scope = self.media_scope(execution_id);
        self.inner
            .http
            .get_stream(&route, &url, Expect::Media, Some(&scope))
            .await
    }

    /// Counters for the run report.
    pub fn stats(&self) -> ClientStats {
        self.inner.http.stats()
    }

    /// `/api/v1/<segments>` on the base URL (segments percent-encoded) and
    /// its path, which is what errors and logs show.
    fn route(&self, segments: &[&str]) -> Result<(String, Url), ApiError> {
        let mut url = self.inner.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::InvalidConfig {
                field: "base_url",
                reason: "cannot hold a path".into(),
            })?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok((url.path().to_owned(), url))
    }

    async fn object<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ApiError> {
        let (route, url) = self.route(segments)?;
        let body = self.inner.http.get_json(&route, &url).await?;
        let (data, _) = self.inner.http.envelope(&route, &body)?;
        if !data.is_object() {
            return Err(ApiError::protocol(
                &route,
                200,
                format!(
                    "`data` is a {}, expected an object",
                    envelope::type_name(&data)
                ),
            ));
        }
        T::deserialize(&data)
            .map_err(|e| ApiError::protocol(&route, 200, format!("`data` does not decode: {e}")))
    }

    async fn list<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<Vec<T>, ApiError> {
        let (route, url) = self.route(segments)?;
        paginate::collect_all(&self.inner.http, &route, &url).await
    }
}

/// Ids become one path segment each; empty, `.` and `..` would change the route.
fn checked<'a>(field: &'static str, id: &'a str) -> Result<&'a str, ApiError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(ApiError::InvalidConfig {
            field,
            reason: format!("`{id}` is not a usable id"),
        });
    }
    Ok(id)
}

fn validate(cfg: &ApiConfig) -> Result<(), ApiError> {
    let url = &cfg.base_url;
    let bad = |reason: &str| {
        Err(ApiError::InvalidConfig {
            field: "base_url",
            reason: reason.into(),
        })
    };
    if !matches!(url.scheme(), "http" | "https") {
        return bad("must be an http:// or https:// URL");
    }
    let Some(host) = url.host() else {
        return bad("has no host");
    };
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not contain credentials (use the token setting)");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return bad("must not have a query or fragment");
    }
    if url.path().trim_end_matches('/').ends_with("/api/v1") {
        return bad("must be the API origin without `/api/v1` (routes add it)");
    }
    if url.scheme() == "http" && !media::is_loopback(&host) && !cfg.allow_insecure_http {
        return Err(ApiError::InsecureUrl {
            origin: url.origin().ascii_serialization(),
        });
    }
    if cfg.timeout.is_zero() {
        return Err(ApiError::InvalidConfig {
            field: "timeout",
            reason: "must be greater than zero".into(),
        });
    }
    if cfg.body_timeout.is_zero() {
        return Err(ApiError::InvalidConfig {
            field: "body_timeout",
            reason: "must be greater than zero".into(),
        });
    }
    if cfg.read_timeout.is_zero() {
        return Err(ApiError::InvalidConfig {
            field: "read_timeout",
            reason: "must be greater than zero".into(),
        });
    }
    if reqwest::header::HeaderValue::from_str(&cfg.user_agent).is_err() {
        return Err(ApiError::InvalidConfig {
            field: "user_agent",
            reason: "is not a valid HTTP header value".into(),
        });
    }
    cfg.retry.validate()
}
