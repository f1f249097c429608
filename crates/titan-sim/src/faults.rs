//! Seeded fault injection (the `[faults]` table): 5xx answers, 429 bursts, and broken
//! export bodies (truncated, dripped, stalled, or an HTML page / error envelope with 200).
//!
//! Invariant: whether the `n`-th authorised request to a path draws a fault is a pure
//! function of (seed, path, n, `[faults]`), see [`planned_fault`]; only the optional
//! per-execution cap depends on what was injected before. All rates default to 0 (off).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::data::{fnv1a, splitmix64};
use super::export::ExportChunks;
use super::routes::ApiError;

const FAULT_SALT: u64 = 0xFA17_5EED_0000_0004;
/// A pause after the last bytes of a truncated body, so they are flushed before the abort.
const FLUSH_BEFORE_ABORT: Duration = Duration::from_millis(10);

/// Families of API routes a fault may hit (`fault_routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// Every enveloped `/api/v1` route (lists, objects, results metadata, pause/resume/stop).
    Json,
    /// `.../results/export` and `.../results/download`.
    Export,
    /// `.../media/{media_id}/download` (CDN `/media/...` URLs are never faulted).
    Media,
}

/// One kind of injected fault; the order is the order of the rate intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 500 `INTERNAL_SERVER_ERROR` envelope.
    InternalError,
    /// 502 with an nginx-style HTML page (`text/html`).
    BadGateway,
    /// 503 `SERVICE_UNAVAILABLE` envelope.
    Unavailable,
    /// 429 `TOO_MANY_REQUESTS` envelope, `X-RateLimit-Reset` = now + 1 s, no `Retry-After`.
    RateLimitBurst,
    /// Export body aborted mid-row: chunked encoding never terminated.
    Truncate,
    /// Export body in `slow_drip_chunk`-byte pieces, `slow_drip_delay` apart.
    SlowDrip,
    /// Export body stops mid-row for `stall_for`, then continues.
    Stall,
    /// 200 `text/html` error page instead of the export.
    Html200,
    /// 200 `{"success":false,"error":{…}}` instead of the export.
    ErrorEnvelope200,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::InternalError,
        FaultKind::BadGateway,
        FaultKind::Unavailable,
        FaultKind::RateLimitBurst,
        FaultKind::Truncate,
        FaultKind::SlowDrip,
        FaultKind::Stall,
        FaultKind::Html200,
        FaultKind::ErrorEnvelope200,
    ];

    /// Only export routes can get this fault (it changes the export body).
    pub fn export_only(self) -> bool {
        !matches!(
            self,
            FaultKind::InternalError
                | FaultKind::BadGateway
                | FaultKind::Unavailable
                | FaultKind::RateLimitBurst
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Relative weights of 500 / 502 / 503 among `error_rate` faults (TOML keys `500`, `502`, `503`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorMix {
    #[serde(rename = "500")]
    pub internal: u32,
    #[serde(rename = "502")]
    pub bad_gateway: u32,
    #[serde(rename = "503")]
    pub unavailable: u32,
}

impl Default for ErrorMix {
    fn default() -> Self {
        ErrorMix {
            internal: 1,
            bad_gateway: 1,
            unavailable: 1,
        }
    }
}

/// The `[faults]` table of a scenario. Rates are probabilities per request and are
/// disjoint intervals of one draw, so on an export route their sum must be ≤ 1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// 500/502/503 on any subject route, mixed by `error_mix`.
    pub error_rate: f64,
    pub error_mix: ErrorMix,
    /// 429 burst on any subject route (independent of `rate_limit_per_minute`).
    pub rate_limit_burst_rate: f64,
    pub truncate_rate: f64,
    pub slow_drip_rate: f64,
    pub slow_drip_chunk: usize,
    #[serde(with = "humantime_serde")]
    pub slow_drip_delay: Duration,
    pub stall_rate: f64,
    /// Must exceed the client's read timeout for the stall to be seen as one.
    #[serde(with = "humantime_serde")]
    pub stall_for: Duration,
    pub html_200_rate: f64,
    pub error_envelope_200_rate: f64,
    /// At most this many faults per execution (per path for routes naming none).
    pub max_faults_per_execution: Option<u32>,
    pub fault_routes: Vec<RouteKind>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            error_rate: 0.0,
            error_mix: ErrorMix::default(),
            rate_limit_burst_rate: 0.0,
            truncate_rate: 0.0,
            slow_drip_rate: 0.0,
            slow_drip_chunk: 512,
            slow_drip_delay: Duration::from_millis(5),
            stall_rate: 0.0,
            stall_for: Duration::ZERO,
            html_200_rate: 0.0,
            error_envelope_200_rate: 0.0,
            max_faults_per_execution: None,
            fault_routes: vec![RouteKind::Json, RouteKind::Export, RouteKind::Media],
        }
    }
}

impl FaultConfig {
    /// (first kind of the interval, rate) in draw order; the 5xx interval is split by `error_mix`.
    fn intervals(&self) -> [(FaultKind, f64); 7] {
        [
            (FaultKind::InternalError, self.error_rate),
            (FaultKind::RateLimitBurst, self.rate_limit_burst_rate),
            (FaultKind::Truncate, self.truncate_rate),
            (FaultKind::SlowDrip, self.slow_drip_rate),
            (FaultKind::Stall, self.stall_rate),
            (FaultKind::Html200, self.html_200_rate),
            (FaultKind::ErrorEnvelope200, self.error_envelope_200_rate),
        ]
    }

    fn enabled(&self) -> bool {
        !self.fault_routes.is_empty() && self.intervals().iter().any(|(_, r)| *r > 0.0)
    }

    /// The invariants [`planned_fault`] relies on: (field, reason) of the first violation.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        let names = [
            "error_rate",
            "rate_limit_burst_rate",
            "truncate_rate",
            "slow_drip_rate",
            "stall_rate",
            "html_200_rate",
            "error_envelope_200_rate",
        ];
        for (name, (_, rate)) in names.iter().zip(self.intervals()) {
            if !(0.0..=1.0).contains(&rate) {
                return Err((name, format!("{rate} is not a probability in 0..=1")));
            }
        }
        let sum: f64 = self.intervals().iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err((
                "error_rate",
                format!("the fault rates add up to {sum}; their sum must be at most 1"),
            ));
        }
        let m = self.error_mix;
        if self.error_rate > 0.0 && m.internal + m.bad_gateway + m.unavailable == 0 {
            return Err(("error_mix", "at least one weight must be positive".into()));
        }
        if self.slow_drip_chunk == 0 {
            return Err(("slow_drip_chunk", "must be at least 1 byte".into()));
        }
        if self.stall_rate > 0.0 && self.stall_for.is_zero() {
            return Err((
                "stall_for",
                "set it (longer than the client's read timeout) when stall_rate > 0".into(),
            ));
        }
        Ok(())
    }
}

/// Which route family `path` belongs to; `None` for paths outside `/api/v1/`.
pub fn route_kind(path: &str) -> Option<RouteKind> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    Some(match segs.as_slice() {
        ["executions", _, "results", "export" | "download"] => RouteKind::Export,
        ["executions", _, "media", _, "download"] => RouteKind::Media,
        _ => RouteKind::Json,
    })
}

/// A drawn fault and the hash it came from (which also places mid-body faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) kind: FaultKind,
    hash: u64,
}

impl Plan {
    /// (row, salt) for [`ExportChunks::split_in_row`]: where in the body the fault acts.
    pub(crate) fn split(self, rows: u64) -> (u64, u64) {
        let row = splitmix64(self.hash ^ 0x5B11_7000) % rows.max(1);
        (row, splitmix64(self.hash ^ 0x5A17_0000))
    }
}

pub(crate) fn draw(cfg: &FaultConfig, seed: u64, path: &str, n: u64) -> Option<Plan> {
    let route = route_kind(path)?;
    if !cfg.fault_routes.contains(&route) {
        return None;
    }
    let h = splitmix64(splitmix64(splitmix64(seed ^ FAULT_SALT) ^ fnv1a(path.as_bytes())) ^ n);
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    let mut upper = 0.0;
    let (kind, _) = cfg.intervals().into_iter().find(|(_, rate)| {
        upper += rate;
        u < upper
    })?;
    let kind = if kind == FaultKind::InternalError {
        let m = cfg.error_mix;
        let pick = splitmix64(h ^ 0xE770_0000)
            % u64::from(m.internal + m.bad_gateway + m.unavailable).max(1);
        if pick < u64::from(m.internal) {
            FaultKind::InternalError
        } else if pick < u64::from(m.internal + m.bad_gateway) {
            FaultKind::BadGateway
        } else {
            FaultKind::Unavailable
        }
    } else {
        kind
    };
    if kind.export_only() && route != RouteKind::Export {
        return None;
    }
    Some(Plan { kind, hash: h })
}

/// The fault the `n`-th (0-based) authorised request to `path` draws, ignoring
/// `max_faults_per_execution`; tests use it to predict what the simulator does.
pub fn planned_fault(cfg: &FaultConfig, seed: u64, path: &str, n: u64) -> Option<FaultKind> {
    draw(cfg, seed, path, n).map(|p| p.kind)
}

/// How many faults of each kind were injected (counted when the response head is sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub internal_error: u64,
    pub bad_gateway: u64,
    pub unavailable: u64,
    pub rate_limit_burst: u64,
    pub truncate: u64,
    pub slow_drip: u64,
    pub stall: u64,
    pub html_200: u64,
    pub error_envelope_200: u64,
}

impl FaultCounts {
    pub fn get(&self, kind: FaultKind) -> u64 {
        match kind {
            FaultKind::InternalError => self.internal_error,
            FaultKind::BadGateway => self.bad_gateway,
            FaultKind::Unavailable => self.unavailable,
            FaultKind::RateLimitBurst => self.rate_limit_burst,
            FaultKind::Truncate => self.truncate,
            FaultKind::SlowDrip => self.slow_drip,
            FaultKind::Stall => self.stall,
            FaultKind::Html200 => self.html_200,
            FaultKind::ErrorEnvelope200 => self.error_envelope_200,
        }
    }

    pub fn total(&self) -> u64 {
        FaultKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// Marks a response whose handler enacted the request's body fault.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultApplied;

/// Per-simulator fault bookkeeping: request sequence per path, cap slots, counters.
pub(crate) struct FaultState {
    pub(crate) cfg: FaultConfig,
    seed: u64,
    enabled: bool,
    seq: Mutex<HashMap<String, u64>>,
    per_scope: Mutex<HashMap<String, u32>>,
    counts: [AtomicU64; 9],
}

/// The execution id a path names, else the path: the unit of `max_faults_per_execution`.
fn scope(path: &str) -> &str {
    path.strip_prefix("/api/v1/executions/")
        .and_then(|rest| rest.split('/').next())
        .filter(|id| !id.is_empty())
        .unwrap_or(path)
}

impl FaultState {
    pub(crate) fn new(cfg: FaultConfig, seed: u64) -> Self {
        FaultState {
            enabled: cfg.enabled(),
            cfg,
            seed,
            seq: Mutex::new(HashMap::new()),
            per_scope: Mutex::new(HashMap::new()),
            counts: Default::default(),
        }
    }

    /// Draws for the next request to `path`; a returned fault holds a cap slot until
    /// [`Self::injected`] or [`Self::not_injected`].
    pub(crate) fn plan(&self, path: &str) -> Option<Plan> {
        if !self.enabled {
            return None;
        }
        let n = {
            let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
            let c = seq.entry(path.to_owned()).or_default();
            *c += 1;
            *c - 1
        };
        let plan = draw(&self.cfg, self.seed, path, n)?;
        if let Some(cap) = self.cfg.max_faults_per_execution {
            let mut m = self
                .per_scope
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let used = m.entry(scope(path).to_owned()).or_default();
            if *used >= cap {
                return None;
            }
            *used += 1;
        }
        Some(plan)
    }

    pub(crate) fn injected(&self, plan: Plan) {
        self.counts[plan.kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The handler did not reach the export body (e.g. 404): give the cap slot back.
    pub(crate) fn not_injected(&self, path: &str) {
        if self.cfg.max_faults_per_execution.is_some() {
            let mut m = self
                .per_scope
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(used) = m.get_mut(scope(path)) {
                *used = used.saturating_sub(1);
            }
        }
    }

    pub(crate) fn counts(&self) -> FaultCounts {
        let c = |k: FaultKind| self.counts[k.index()].load(Ordering::Relaxed);
        FaultCounts {
            internal_error: c(FaultKind::InternalError),
            bad_gateway: c(FaultKind::BadGateway),
            unavailable: c(FaultKind::Unavailable),
            rate_limit_burst: c(FaultKind::RateLimitBurst),
            truncate: c(FaultKind::Truncate),
            slow_drip: c(FaultKind::SlowDrip),
            stall: c(FaultKind::Stall),
            html_200: c(FaultKind::Html200),
            error_envelope_200: c(FaultKind::ErrorEnvelope200),
        }
    }
}

/// nginx's stock 502 page, as a proxy in front of the API would send it.
pub(crate) const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
/// An application error page served with 200 where the export should be.
pub(crate) const ERROR_PAGE_HTML: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Titan - Something went wrong</title></head>\n<body><h1>Something went wrong</h1><p>We could not prepare your download. Please try again later.</p></body></html>\n";

/// The whole response of a fault answered instead of the handler (5xx and 429).
pub(crate) fn replacement(kind: FaultKind) -> Option<Response> {
    let envelope = |status, code, msg: &str| ApiError::new(status, code, msg).into_response();
    Some(match kind {
        FaultKind::InternalError => envelope(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "an unexpected error occurred",
        ),
        FaultKind::BadGateway => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            BAD_GATEWAY_HTML,
        )
            .into_response(),
        FaultKind::Unavailable => envelope(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the service is temporarily unavailable",
        ),
        FaultKind::RateLimitBurst => envelope(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "too many requests in a short burst; slow down",
        ),
        _ => return None,
    })
}

/// Burst 429 headers, set after the regular limiter headers: nothing left, reset in 1 s.
pub(crate) fn burst_headers(h: &mut HeaderMap) {
    let reset = chrono::Utc::now().timestamp() + 1;
    h.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
    h.remove(header::RETRY_AFTER);
}

/// A whole 200 response that replaces the export body (HTML page or error envelope).
pub(crate) fn export_replacement(kind: FaultKind) -> Option<Response> {
    Some(match kind {
        FaultKind::Html200 => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            ERROR_PAGE_HTML,
        )
            .into_response(),
        FaultKind::ErrorEnvelope200 => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"success":false,"error":{"code":"EXPORT_FAILED","message":"the export could not be generated"}}"#,
        )
            .into_response(),
        _ => return None,
    })
}

/// The export body, with a body fault (truncate, stall, slow drip) if `plan` has one.
pub(crate) fn export_body(
    chunks: ExportChunks,
    rows: u64,
    plan: Option<Plan>,
    cfg: &FaultConfig,
) -> Body {
    use futures::stream::{self, StreamExt};
    let Some(plan) = plan else {
        return Body::from_stream(stream::iter(chunks.map(Ok::<_, Infallible>)));
    };
    let (row, salt) = plan.split(rows);
    match plan.kind {
        FaultKind::Truncate => {
            Body::from_stream(split_stream(chunks.split_in_row(row, salt), AtSplit::Abort))
        }
        FaultKind::Stall => Body::from_stream(split_stream(
            chunks.split_in_row(row, salt),
            AtSplit::Pause(cfg.stall_for),
        )),
        FaultKind::SlowDrip => {
            let (size, delay) = (cfg.slow_drip_chunk.max(1), cfg.slow_drip_delay);
            let pieces = stream::iter(chunks).flat_map(move |mut c: Bytes| {
                let mut v = Vec::with_capacity(c.len() / size + 1);
                while !c.is_empty() {
                    v.push(c.split_to(size.min(c.len())));
                }
                stream::iter(v)
            });
            let dripped = pieces.enumerate().then(move |(i, piece)| async move {
                if i > 0 {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, Infallible>(piece)
            });
            Body::from_stream(dripped)
        }
        _ => Body::from_stream(stream::iter(chunks.map(Ok::<_, Infallible>))),
    }
}

#[derive(Debug, Clone, Copy)]
enum AtSplit {
    /// End the body with an error: hyper drops the connection mid-chunked-body.
    Abort,
    Pause(Duration),
}

enum Phase {
    Streaming,
    AfterSplit,
    Done,
}

/// Streams `chunks` and acts at the split point they were built with.
fn split_stream(
    chunks: ExportChunks,
    at: AtSplit,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(
        (chunks, Phase::Streaming),
        move |(mut chunks, phase)| async move {
            match phase {
                Phase::Done => return None,
                Phase::AfterSplit => match at {
                    AtSplit::Abort => {
                        tokio::time::sleep(FLUSH_BEFORE_ABORT).await;
                        let err = std::io::Error::other("simulated truncation of the export body");
                        return Some((Err(err), (chunks, Phase::Done)));
                    }
                    AtSplit::Pause(d) => tokio::time::sleep(d).await,
                },
                Phase::Streaming => {}
            }
            let chunk = chunks.next()?;
            let next = if chunks.take_split_hit() {
                Phase::AfterSplit
            } else {
                Phase::Streaming
            };
            Some((Ok(chunk), (chunks, next)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario;
    use crate::scenario::ScenarioError;

    fn cfg(toml: &str) -> FaultConfig {
        Scenario::from_toml_str(&format!("token = 't'\n[faults]\n{toml}"))
            .expect("valid faults table")
            .faults
    }

    fn invalid(toml: &str) -> (String, String) {
        match Scenario::from_toml_str(&format!("token = 't'\n[faults]\n{toml}")) {
            Err(ScenarioError::Invalid { at, reason, .. }) => (at, reason),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_off() {
        let c = Scenario::from_toml_str("token = 't'")
            .expect("valid")
            .faults;
        assert_eq!(c, FaultConfig::default());
        assert!(!c.enabled());
        assert_eq!(c.fault_routes.len(), 3);
        assert_eq!(
            (c.slow_drip_chunk, c.slow_drip_delay),
            (512, Duration::from_millis(5))
        );
        let st = FaultState::new(c, 1);
        assert!((0..100).all(|_| st.plan("/api/v1/tasks").is_none()));
    }

    #[test]
    fn parses_every_key() {
        let c = cfg(
            "error_rate = 0.1\nerror_mix = { 500 = 2, 502 = 0 }\nrate_limit_burst_rate = 0.05\n\
             truncate_rate = 0.1\nslow_drip_rate = 0.1\nslow_drip_chunk = 64\nslow_drip_delay = '1ms'\n\
             stall_rate = 0.1\nstall_for = '2s'\nhtml_200_rate = 0.1\nerror_envelope_200_rate = 0.1\n\
             max_faults_per_execution = 3\nfault_routes = ['export', 'media']",
        );
        assert_eq!(
            c.error_mix,
            ErrorMix {
                internal: 2,
                bad_gateway: 0,
                unavailable: 1
            }
        );
        assert_eq!(c.stall_for, Duration::from_secs(2));
        assert_eq!(c.slow_drip_delay, Duration::from_millis(1));
        assert_eq!(c.max_faults_per_execution, Some(3));
        assert_eq!(c.fault_routes, [RouteKind::Export, RouteKind::Media]);
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(invalid("truncate_rate = 1.5").0, "faults.truncate_rate");
        assert_eq!(invalid("html_200_rate = -0.1").0, "faults.html_200_rate");
        let (at, reason) = invalid("error_rate = 0.6\nstall_rate = 0.5\nstall_for = '1s'");
        assert_eq!(at, "faults.error_rate");
        assert!(reason.contains("at most 1"), "{reason}");
        assert_eq!(invalid("stall_rate = 0.1").0, "faults.stall_for");
        assert_eq!(
            invalid("error_rate = 0.1\nerror_mix = { 500 = 0, 502 = 0, 503 = 0 }").0,
            "faults.error_mix"
        );
        assert_eq!(invalid("slow_drip_chunk = 0").0, "faults.slow_drip_chunk");
        let err = Scenario::from_toml_str("token = 't'\n[faults]\nerror_rat = 0.1")
            .expect_err("typo must fail");
        assert!(err.to_string().contains("error_rat"), "{err}");
    }

    #[test]
    fn routes_are_classified() {
        use RouteKind::*;
        for (path, want) in [
            ("/api/v1/tasks", Some(Json)),
            ("/api/v1/executions/e1", Some(Json)),
            ("/api/v1/executions/e1/results", Some(Json)),
            ("/api/v1/executions/e1/pause", Some(Json)),
            ("/api/v1/executions/e1/results/export", Some(Export)),
            ("/api/v1/executions/e1/results/download", Some(Export)),
            ("/api/v1/executions/e1/media/m-1-2/download", Some(Media)),
            ("/media/e1/m-1-2", None),
            ("/api/v1", None),
        ] {
            assert_eq!(route_kind(path), want, "{path}");
        }
        assert_eq!(scope("/api/v1/executions/e1/results/export"), "e1");
        assert_eq!(scope("/api/v1/executions/e1"), "e1");
        assert_eq!(scope("/api/v1/executions"), "/api/v1/executions");
        assert_eq!(
            scope("/api/v1/tasks/t/executions"),
            "/api/v1/tasks/t/executions"
        );
    }

    fn histogram(c: &FaultConfig, path: &str, n: u64) -> HashMap<Option<FaultKind>, u64> {
        let mut h = HashMap::new();
        for i in 0..n {
            *h.entry(planned_fault(c, 7, path, i)).or_default() += 1;
        }
        h
    }

    #[test]
    fn draws_follow_the_rates() {
        let c = cfg(
            "error_rate = 0.15\nrate_limit_burst_rate = 0.1\ntruncate_rate = 0.1\n\
             slow_drip_rate = 0.1\nstall_rate = 0.1\nstall_for = '1s'\nhtml_200_rate = 0.1\n\
             error_envelope_200_rate = 0.1",
        );
        const N: u64 = 20_000;
        let export = histogram(&c, "/api/v1/executions/e1/results/export", N);
        // Within ±4 standard deviations of the expected count.
        let near = |got: u64, p: f64| {
            let (mean, sd) = (N as f64 * p, (N as f64 * p * (1.0 - p)).sqrt());
            (got as f64 - mean).abs() < 4.0 * sd
        };
        let get = |h: &HashMap<Option<FaultKind>, u64>, k| h.get(&k).copied().unwrap_or(0);
        for kind in [
            FaultKind::InternalError,
            FaultKind::BadGateway,
            FaultKind::Unavailable,
        ] {
            assert!(near(get(&export, Some(kind)), 0.05), "{kind:?}: {export:?}");
        }
        for kind in &FaultKind::ALL[3..] {
            assert!(near(get(&export, Some(*kind)), 0.1), "{kind:?}: {export:?}");
        }
        assert!(near(get(&export, None), 0.25), "{export:?}");
        // JSON and media routes only get 5xx and 429; body faults become "no fault" there.
        for path in [
            "/api/v1/executions/e1",
            "/api/v1/executions/e1/media/m-0-1/download",
        ] {
            let h = histogram(&c, path, N);
            assert!(h.keys().flatten().all(|k| !k.export_only()), "{h:?}");
            assert!(near(get(&h, Some(FaultKind::RateLimitBurst)), 0.1), "{h:?}");
            assert!(near(get(&h, None), 0.75), "{h:?}");
        }
        // Same inputs, same draws; another seed or path, other draws.
        let seq = |seed, path| {
            (0..64)
                .map(|n| planned_fault(&c, seed, path, n))
                .collect::<Vec<_>>()
        };
        assert_eq!(seq(7, "/api/v1/tasks"), seq(7, "/api/v1/tasks"));
        assert_ne!(seq(7, "/api/v1/tasks"), seq(8, "/api/v1/tasks"));
        assert_ne!(seq(7, "/api/v1/tasks"), seq(7, "/api/v1/executions"));
    }

    #[test]
    fn mix_and_route_filter() {
        let c = cfg("error_rate = 1.0\nerror_mix = { 500 = 0, 502 = 1, 503 = 0 }");
        assert!(
            (0..200)
                .all(|n| planned_fault(&c, 1, "/api/v1/tasks", n) == Some(FaultKind::BadGateway))
        );
        let c = cfg("error_rate = 1.0\nfault_routes = ['export']");
        assert!((0..50).all(|n| planned_fault(&c, 1, "/api/v1/tasks", n).is_none()));
        assert!(
            (0..50)
                .all(|n| planned_fault(&c, 1, "/api/v1/executions/e/results/export", n).is_some())
        );
        let c = cfg("error_rate = 1.0\nfault_routes = []");
        assert!(!c.enabled());
    }

    #[test]
    fn state_counts_per_path_and_caps_per_execution() {
        let c = cfg("error_rate = 0.5\nmax_faults_per_execution = 2");
        let st = FaultState::new(c.clone(), 3);
        let paths = [
            "/api/v1/executions/a",
            "/api/v1/executions/a/results",
            "/api/v1/executions/b",
        ];
        let mut got = HashMap::<&str, u32>::new();
        let mut drawn = HashMap::<&str, u32>::new();
        for n in 0..40u64 {
            for p in paths {
                if planned_fault(&c, 3, p, n).is_some() {
                    *drawn.entry(scope(p)).or_default() += 1;
                }
                if let Some(plan) = st.plan(p) {
                    // The state follows the pure draw of the same (path, n) until capped.
                    assert_eq!(Some(plan.kind), planned_fault(&c, 3, p, n));
                    st.injected(plan);
                    *got.entry(scope(p)).or_default() += 1;
                }
            }
        }
        assert!(drawn["a"] > 2 && drawn["b"] > 2, "{drawn:?}");
        assert_eq!((got["a"], got["b"]), (2, 2));
        assert_eq!(st.counts().total(), 4);
        // A released slot can be used again.
        st.not_injected("/api/v1/executions/b/results/export");
        assert!((0..40).any(|_| st.plan("/api/v1/executions/b").is_some()));
        assert!((0..40).all(|_| st.plan("/api/v1/executions/b").is_none()));
    }

    #[test]
    fn split_points_stay_in_range() {
        let plan = Plan {
            kind: FaultKind::Truncate,
            hash: 99,
        };
        assert_eq!(plan.split(0).0, 0);
        assert!(plan.split(10).0 < 10);
        let rows: Vec<u64> = (0..50)
            .map(|h| {
                Plan {
                    kind: FaultKind::Stall,
                    hash: h,
                }
                .split(1000)
                .0
            })
            .collect();
        assert!(rows.iter().collect::<std::collections::HashSet<_>>().len() > 40);
    }

    #[test]
    fn counts_by_kind() {
        let c = FaultCounts {
            bad_gateway: 2,
            stall: 3,
            ..FaultCounts::default()
        };
        assert_eq!(c.get(FaultKind::BadGateway), 2);
        assert_eq!(c.get(FaultKind::Stall), 3);
        assert_eq!(c.get(FaultKind::Truncate), 0);
        assert_eq!(c.total(), 5);
        assert_eq!(FaultKind::ALL.iter().filter(|k| k.export_only()).count(), 5);
    }
}
