//! `ApiError`: every way a Titan API call can fail, with the route, status,
//! `error.code`/`message` and attempts made. Invariant: no variant ever holds
//! the token or a URL's query string (routes are paths, or origin + path for
//! media on another host; transport sources are URL-free).

use std::fmt;
use std::time::Duration;

/// A failed Titan API call. Classified by HTTP status plus `error.code`,
/// never by message text.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the token is missing, invalid or expired.
    #[error("GET {route}: unauthorized (HTTP {status}{}){}", detail(.code, .message), after(.attempts))]
    Unauthorized {
        route: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        attempts: u32,
    },
    /// 403: the token is valid but lacks a scope (`tasks:read`, `executions:read`, `data:read`).
    #[error("GET {route}: forbidden (HTTP {status}{}){}", detail(.code, .message), after(.attempts))]
    Forbidden {
        route: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        attempts: u32,
    },
    /// 404: unknown id, results not ready yet, or a feature switched off.
    #[error("GET {route}: not found (HTTP {status}{}){}", detail(.code, .message), after(.attempts))]
    NotFound {
        route: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        attempts: u32,
    },
    /// 429 that outlasted the retry policy. `retry_after` is the server's last hint.
    #[error("GET {route}: rate limited (HTTP {status}{}){}", detail(.code, .message), after(.attempts))]
    RateLimited {
        route: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// 400 or another 4xx the server blames on the request.
    #[error("GET {route}: request rejected (HTTP {status}{}){}", detail(.code, .message), after(.attempts))]
    BadRequest {
        route: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        attempts: u32,
    },
    /// 5xx (or an envelope whose code is `INTERNAL_SERVER_ERROR`/`NOT_IMPLEMENTED`).
    #[error("GET {route}: server error (HTTP {status}{}){}", detail(.code, .message), after(.attempts))]
    Server {
        route: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        attempts: u32,
    },
    /// Connect failure, reset, or a timeout before the response headers arrived.
    #[error("GET {route}: {}{}", transport_what(.timed_out), after(.attempts))]
    Transport {
        route: String,
        attempts: u32,
        timed_out: bool,
        /// reqwest's error with its URL removed (`None` for our own header timeout).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// A streamed body (export, media) broke or stalled after it was opened; the
    /// caller decides whether to restart the stream.
    #[error("GET {route}: response body {} after {bytes_received} bytes", stream_what(.timed_out))]
    StreamBroken {
        route: String,
        bytes_received: u64,
        timed_out: bool,
        #[source]
        source: reqwest::Error,
    },
    /// A JSON body (list page, object, error) still incomplete at `body_timeout` after
    /// its headers: a server dripping bytes slower than `read_timeout` never ends
    /// otherwise.
    #[error(
        "GET {route}: response body not complete after {}s ({bytes_received} bytes received; api.body_timeout){}",
        limit.as_secs_f64(),
        after(.attempts)
    )]
    BodyDeadline {
        route: String,
        limit: Duration,
        bytes_received: u64,
        attempts: u32,
    },
    /// The server answered something that is not the documented protocol:
    /// HTML on a 200, invalid JSON, a missing envelope, a redirect loop.
    #[error("GET {route}: unexpected response (HTTP {status}): {detail}{}", after(.attempts))]
    Protocol {
        route: String,
        status: u16,
        detail: String,
        attempts: u32,
    },
    /// Plain `http://` to a non-loopback host without `allow_insecure_http`.
    #[error(
        "refusing to send the API token over plain HTTP to {origin}; use https:// or set allow_insecure_http"
    )]
    InsecureUrl {
        /// Scheme, host and port only.
        origin: String,
    },
    /// A configuration value or argument the client cannot work with.
    #[error("invalid API configuration: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// A media URL on a host other than the API's that `media_allowed_hosts`
    /// does not list; nothing was sent.
    #[error("media host `{host}` is not in media_allowed_hosts")]
    MediaHostNotAllowed { host: String },
    /// A link-local or cloud metadata address (169.254.0.0/16, fe80::/10,
    /// fd00:ec2::254), as a media URL or a redirect target: never fetched.
    #[error(
        "refusing to fetch from `{host}`: link-local and cloud metadata addresses are never fetched"
    )]
    BlockedAddress { host: String },
    /// A plain `http://` media URL on a non-loopback host without
    /// `allow_insecure_http`; nothing was sent.
    #[error("refusing plain-HTTP media URL on {origin}; use https:// or set allow_insecure_http")]
    InsecureMediaUrl {
        /// Scheme, host and port only.
        origin: String,
    },
    /// A media value from a result row that is neither an http(s) URL nor a
    /// usable media id.
    #[error("media value `{value}` {reason}")]
    InvalidMediaValue {
        /// The value without its query string, shortened.
        value: String,
        reason: String,
    },
    /// A media body larger than `max_media_bytes`: refused from its
    /// `Content-Length` before reading, or cut once `length` bytes had arrived.
    #[error("GET {route}: media body exceeds max_media_bytes ({length} > {limit} bytes)")]
    TooLarge {
        route: String,
        limit: u64,
        length: u64,
    },
}

/// The coarse classes the pipeline branches on (exit codes, skip vs abort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiErrorKind {
    /// 401/403: fix the token or its scopes.
    Auth,
    NotFound,
    RateLimited,
    /// Other 4xx: the request itself is wrong.
    Client,
    Server,
    /// Network: connect, reset, timeout, broken stream.
    Unreachable,
    /// The server does not speak the documented protocol.
    Protocol,
    /// Our own configuration or arguments.
    Config,
    /// One media item refused by policy (host not allowed, plain http,
    /// unusable value, too large): skip the item, the run can go on.
    Refused,
}

impl fmt::Display for ApiErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiErrorKind::Auth => "auth",
            ApiErrorKind::NotFound => "not_found",
            ApiErrorKind::RateLimited => "rate_limited",
            ApiErrorKind::Client => "client",
            ApiErrorKind::Server => "server",
            ApiErrorKind::Unreachable => "unreachable",
            ApiErrorKind::Protocol => "protocol",
            ApiErrorKind::Config => "config",
            ApiErrorKind::Refused => "refused",
        })
    }
}

impl ApiError {
    pub fn kind(&self) -> ApiErrorKind {
        match self {
            ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => ApiErrorKind::Auth,
            ApiError::NotFound { .. } => ApiErrorKind::NotFound,
            ApiError::RateLimited { .. } => ApiErrorKind::RateLimited,
            ApiError::BadRequest { .. } => ApiErrorKind::Client,
            ApiError::Server { .. } => ApiErrorKind::Server,
            ApiError::Transport { .. }
            | ApiError::StreamBroken { .. }
            | ApiError::BodyDeadline { .. } => ApiErrorKind::Unreachable,
            ApiError::Protocol { .. } => ApiErrorKind::Protocol,
            ApiError::InsecureUrl { .. } | ApiError::InvalidConfig { .. } => ApiErrorKind::Config,
            ApiError::MediaHostNotAllowed { .. }
            | ApiError::BlockedAddress { .. }
            | ApiError::InsecureMediaUrl { .. }
            | ApiError::InvalidMediaValue { .. }
            | ApiError::TooLarge { .. } => ApiErrorKind::Refused,
        }
    }

    /// Whether trying the same GET again may succeed: 429, 5xx except 501,
    /// 408, and network failures. 400/401/403/404 never are.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::RateLimited { .. }
            | ApiError::Transport { .. }
            | ApiError::StreamBroken { .. }
            | ApiError::BodyDeadline { .. } => true,
            ApiError::Server { status, code, .. } => {
                *status != 501 && code.as_deref() != Some("NOT_IMPLEMENTED")
            }
            ApiError::BadRequest { status, .. } => *status == 408,
            _ => false,
        }
    }

    /// The HTTP status the server answered, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { status, .. }
            | ApiError::Forbidden { status, .. }
            | ApiError::NotFound { status, .. }
            | ApiError::RateLimited { status, .. }
            | ApiError::BadRequest { status, .. }
            | ApiError::Server { status, .. }
            | ApiError::Protocol { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The envelope's `error.code`, e.g. `NOT_FOUND`.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::RateLimited { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Server { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// How many times the request was sent before giving up (0 if never sent).
    pub fn attempts(&self) -> u32 {
        match self {
            ApiError::Unauthorized { attempts, .. }
            | ApiError::Forbidden { attempts, .. }
            | ApiError::NotFound { attempts, .. }
            | ApiError::RateLimited { attempts, .. }
            | ApiError::BadRequest { attempts, .. }
            | ApiError::Server { attempts, .. }
            | ApiError::Transport { attempts, .. }
            | ApiError::BodyDeadline { attempts, .. }
            | ApiError::Protocol { attempts, .. } => *attempts,
            ApiError::StreamBroken { .. } | ApiError::TooLarge { .. } => 1,
            ApiError::InsecureUrl { .. }
            | ApiError::InvalidConfig { .. }
            | ApiError::MediaHostNotAllowed { .. }
            | ApiError::BlockedAddress { .. }
            | ApiError::InsecureMediaUrl { .. }
            | ApiError::InvalidMediaValue { .. } => 0,
        }
    }

    /// Records the final attempt count once the retry loop gives up.
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        match &mut self {
            ApiError::Unauthorized { attempts, .. }
            | ApiError::Forbidden { attempts, .. }
            | ApiError::NotFound { attempts, .. }
            | ApiError::RateLimited { attempts, .. }
            | ApiError::BadRequest { attempts, .. }
            | ApiError::Server { attempts, .. }
            | ApiError::Transport { attempts, .. }
            | ApiError::BodyDeadline { attempts, .. }
            | ApiError::Protocol { attempts, .. } => *attempts = n,
            ApiError::StreamBroken { .. }
            | ApiError::InsecureUrl { .. }
            | ApiError::InvalidConfig { .. }
            | ApiError::MediaHostNotAllowed { .. }
            | ApiError::BlockedAddress { .. }
            | ApiError::InsecureMediaUrl { .. }
            | ApiError::InvalidMediaValue { .. }
            | ApiError::TooLarge { .. } => {}
        }
        self
    }

    /// Builds the error for a non-success answer from its status and the
    /// envelope's `error.code`. The status decides where it is specific;
    /// the code refines ambiguous statuses (other 4xx, a 2xx with `success:false`).
    pub(crate) fn from_answer(
        route: &str,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        retry_after: Option<Duration>,
    ) -> ApiError {
        let route = route.to_owned();
        let attempts = 1;
        let by_code = || match code.as_deref() {
            Some("UNAUTHORIZED") => Some(ErrClass::Unauthorized),
            Some("FORBIDDEN") => Some(ErrClass::Forbidden),
            Some("NOT_FOUND") => Some(ErrClass::NotFound),
            Some("TOO_MANY_REQUESTS") => Some(ErrClass::RateLimited),
            Some("BAD_REQUEST") => Some(ErrClass::BadRequest),
            Some("INTERNAL_SERVER_ERROR" | "NOT_IMPLEMENTED") => Some(ErrClass::Server),
            _ => None,
        };
        let class = match status {
            401 => ErrClass::Unauthorized,
            403 => ErrClass::Forbidden,
            404 => ErrClass::NotFound,
            429 => ErrClass::RateLimited,
            500..=599 => ErrClass::Server,
            400..=499 => by_code().unwrap_or(ErrClass::BadRequest),
            200..=299 => match by_code() {
                Some(class) => class,
                None => {
                    return ApiError::Protocol {
                        route,
                        status,
                        detail: format!(
                            "`success: false` with an unknown error code{}",
                            detail(&code, &message)
                        ),
                        attempts,
                    };
                }
            },
            _ => {
                return ApiError::Protocol {
                    route,
                    status,
                    detail: format!("unexpected HTTP status{}", detail(&code, &message)),
                    attempts,
                };
            }
        };
        match class {
            ErrClass::Unauthorized => ApiError::Unauthorized {
                route,
                status,
                code,
                message,
                attempts,
            },
            ErrClass::Forbidden => ApiError::Forbidden {
                route,
                status,
                code,
                message,
                attempts,
            },
            ErrClass::NotFound => ApiError::NotFound {
                route,
                status,
                code,
                message,
                attempts,
            },
            ErrClass::RateLimited => ApiError::RateLimited {
                route,
                status,
                code,
                message,
                attempts,
                retry_after,
            },
            ErrClass::BadRequest => ApiError::BadRequest {
                route,
                status,
                code,
                message,
                attempts,
            },
            ErrClass::Server => ApiError::Server {
                route,
                status,
                code,
                message,
                attempts,
            },
        }
    }

    pub(crate) fn protocol(route: &str, status: u16, detail: impl Into<String>) -> ApiError {
        ApiError::Protocol {
            route: route.to_owned(),
            status,
            detail: detail.into(),
            attempts: 1,
        }
    }
}

fn transport_what(timed_out: &bool) -> &'static str {
    if *timed_out {
        "timed out"
    } else {
        "could not reach the server"
    }
}

fn stream_what(timed_out: &bool) -> &'static str {
    if *timed_out {
        "stalled (read timeout)"
    } else {
        "broke"
    }
}

enum ErrClass {
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    BadRequest,
    Server,
}

/// `, NOT_FOUND: no such execution` — the server's code and message, if any.
fn detail(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(", {c}: {m}"),
        (Some(c), None) => format!(", {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

fn after(attempts: &u32) -> String {
    match *attempts {
        0 | 1 => String::new(),
        n => format!(" after {n} attempts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_code_map_to_kind_and_retryability() {
        // (status, code, kind, retryable)
        let table: &[(u16, Option<&str>, ApiErrorKind, bool)] = &[
            (400, Some("BAD_REQUEST"), ApiErrorKind::Client, false),
            (400, None, ApiErrorKind::Client, false),
            (401, Some("UNAUTHORIZED"), ApiErrorKind::Auth, false),
            (401, None, ApiErrorKind::Auth, false),
            (403, Some("FORBIDDEN"), ApiErrorKind::Auth, false),
            (404, Some("NOT_FOUND"), ApiErrorKind::NotFound, false),
            (408, None, ApiErrorKind::Client, true),
            (409, None, ApiErrorKind::Client, false),
            (422, Some("NOT_FOUND"), ApiErrorKind::NotFound, false),
            (
                429,
                Some("TOO_MANY_REQUESTS"),
                ApiErrorKind::RateLimited,
                true,
            ),
            (429, None, ApiErrorKind::RateLimited, true),
            (
                500,
                Some("INTERNAL_SERVER_ERROR"),
                ApiErrorKind::Server,
                true,
            ),
            (501, Some("NOT_IMPLEMENTED"), ApiErrorKind::Server, false),
            (502, None, ApiErrorKind::Server, true),
            (503, None, ApiErrorKind::Server, true),
            (200, Some("UNAUTHORIZED"), ApiErrorKind::Auth, false),
            (
                200,
                Some("TOO_MANY_REQUESTS"),
                ApiErrorKind::RateLimited,
                true,
            ),
            (200, Some("WHATEVER"), ApiErrorKind::Protocol, false),
            (304, None, ApiErrorKind::Protocol, false),
        ];
        for &(status, code, kind, retryable) in table {
            let e = ApiError::from_answer("/r", status, code.map(String::from), None, None);
            assert_eq!(e.kind(), kind, "status {status} code {code:?}");
            assert_eq!(e.is_retryable(), retryable, "status {status} code {code:?}");
            assert_eq!(e.status(), Some(status));
        }
    }

    #[test]
    fn display_names_route_status_code_message_and_attempts() {
        let e = ApiError::from_answer(
            "/api/v1/executions/e1",
            404,
            Some("NOT_FOUND".into()),
            Some("no such execution".into()),
            None,
        );
        assert_eq!(
            e.to_string(),
            "GET /api/v1/executions/e1: not found (HTTP 404, NOT_FOUND: no such execution)"
        );
        let e = ApiError::from_answer("/api/v1/tasks", 503, None, None, None).with_attempts(6);
        assert_eq!(
            e.to_string(),
            "GET /api/v1/tasks: server error (HTTP 503) after 6 attempts"
        );
        assert_eq!(e.attempts(), 6);
    }
}
