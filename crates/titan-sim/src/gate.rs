//! The middleware every request passes: rate limiting, authentication, the
//! `X-RateLimit-*` headers and the request log.
//!
//! Invariant: every request is logged exactly once with the status it got;
//! `/api/v1` requires the token; CDN media (`/media/...`) is neither limited nor authenticated;
//! faults are drawn only for authorised requests the real limiter let through.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::RequestRecord;
use super::faults::{self, FaultApplied, FaultKind};
use super::routes::ApiError;
use super::scenario::AuthHeader;
use super::state::{RateDecision, SimState};

pub(crate) const API_PREFIX: &str = "/api/v1";

pub(crate) async fn gate(
    State(st): State<Arc<SimState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    // Built in a block: `&Request` is not `Send` (the body is not `Sync`), so no
    // borrow of `req` may live across the awaits below.
    let mut rec = {
        let text = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        RequestRecord {
            method: req.method().as_str().to_owned(),
            path: path.clone(),
            query: req.uri().query().map(str::to_owned),
            authorization: text(header::AUTHORIZATION.as_str()),
            x_api_key: text("x-api-key"),
            status: 0,
            fault: None,
        }
    };

    let resp = if path.starts_with("/media/") {
        next.run(req).await
    } else {
        let rate = st.rate_check();
        let is_api = path == API_PREFIX || path.starts_with("/api/v1/");
        let mut resp = if !rate.allowed {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                format!("rate limit of {} requests per minute exceeded", rate.limit),
            )
            .into_response()
        } else if !is_api {
            next.run(req).await
        } else if let Err(e) = authorize(req.headers(), st.scenario.auth_header, &st.scenario.token)
        {
            e.into_response()
        } else {
            match st.faults.plan(&path) {
                None => next.run(req).await,
                Some(plan) => match faults::replacement(plan.kind) {
                    Some(resp) => {
                        st.faults.injected(plan);
                        rec.fault = Some(plan.kind);
                        resp
                    }
                    None => {
                        // A body fault: the export handler enacts it if it gets that far.
                        req.extensions_mut().insert(plan);
                        let resp = next.run(req).await;
                        if resp.extensions().get::<FaultApplied>().is_some() {
                            st.faults.injected(plan);
                            rec.fault = Some(plan.kind);
                        } else {
                            st.faults.not_injected(&path);
                        }
                        resp
                    }
                },
            }
        };
        rate_headers(resp.headers_mut(), rate);
        if rec.fault == Some(FaultKind::RateLimitBurst) {
            faults::burst_headers(resp.headers_mut());
        }
        resp
    };

    rec.status = resp.status().as_u16();
    tracing::debug!(method = %rec.method, path = %rec.path, status = rec.status, fault = ?rec.fault, "Served request");
    st.record(rec);
    resp
}

fn rate_headers(h: &mut HeaderMap, rate: RateDecision) {
    h.insert("x-ratelimit-limit", HeaderValue::from(rate.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
    if !rate.allowed {
        h.insert("x-ratelimit-reset", HeaderValue::from(rate.reset_unix));
    }
}

/// Checks the credential header(s) the scenario accepts.
fn authorize(h: &HeaderMap, mode: AuthHeader, token: &str) -> Result<(), ApiError> {
    let bearer = h.get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.split_once(' '))
            .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t.trim() == token)
    });
    let api_key = h.get("x-api-key").map(|v| v.as_bytes() == token.as_bytes());
    let offered: &[Option<bool>] = match mode {
        AuthHeader::Bearer => &[bearer],
        AuthHeader::XApiKey => &[api_key],
        AuthHeader::Either => &[bearer, api_key],
    };
    if offered.contains(&Some(true)) {
        return Ok(());
    }
    let expected = match mode {
        AuthHeader::Bearer => "Authorization: Bearer <token>",
        AuthHeader::XApiKey => "X-API-Key: <token>",
        AuthHeader::Either => "Authorization: Bearer <token> or X-API-Key: <token>",
    };
    let message = if offered.iter().any(Option::is_some) {
        "invalid or expired token".to_owned()
    } else {
        format!("missing credentials: send {expected}")
    };
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn auth_modes() {
        let bearer = headers(&[("authorization", "Bearer tok")]);
        let lower = headers(&[("authorization", "bearer tok")]);
        let key = headers(&[("x-api-key", "tok")]);
        let wrong = headers(&[("authorization", "Bearer nope"), ("x-api-key", "nah")]);
        let basic = headers(&[("authorization", "Basic tok")]);
        let none = HeaderMap::new();
        let ok = |h: &HeaderMap, m| authorize(h, m, "tok").is_ok();
        assert!(ok(&bearer, AuthHeader::Bearer) && ok(&lower, AuthHeader::Bearer));
        assert!(!ok(&key, AuthHeader::Bearer));
        assert!(ok(&key, AuthHeader::XApiKey) && !ok(&bearer, AuthHeader::XApiKey));
        assert!(ok(&key, AuthHeader::Either) && ok(&bearer, AuthHeader::Either));
        assert!(!ok(&basic, AuthHeader::Either));
        // One good header is enough in `either` mode even if the other is wrong.
        let mixed = headers(&[("authorization", "Bearer nope"), ("x-api-key", "tok")]);
        assert!(ok(&mixed, AuthHeader::Either));
        let msg = |h: &HeaderMap, m| {
            authorize(h, m, "tok")
                .err()
                .map(|e| e.message)
                .unwrap_or_default()
        };
        assert_eq!(msg(&wrong, AuthHeader::Either), "invalid or expired token");
        assert_eq!(
            msg(&none, AuthHeader::XApiKey),
            "missing credentials: send X-API-Key: <token>"
        );
        // A header of the wrong kind counts as missing.
        assert!(msg(&bearer, AuthHeader::XApiKey).starts_with("missing credentials"));
    }
}
