//! Retries of transient failures, 429 with `X-RateLimit-Reset`, request timeouts.

use super::*;
use crate::api::testutil::{self, TestServer};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[tokio::test]
async fn transient_failure_is_retried_then_succeeds() {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/api/v1/executions/e1",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                match hits.fetch_add(1, Ordering::SeqCst) {
                    0 => testutil::err(503, "INTERNAL_SERVER_ERROR", "warming up"),
                    1 => (StatusCode::TOO_MANY_REQUESTS, "").into_response(),
                    _ => testutil::ok(json!({"id": "e1", "status": "completed_with_errors"})),
                }
            }),
        )
        .with_state(Arc::clone(&hits));
    let server = TestServer::start(app).await;
    let client = client(&server);
    let e = client
        .get_execution("e1")
        .await
        .expect("third attempt succeeds");
    assert_eq!(e.status, ExecutionStatus::CompletedWithErrors);
    let stats = client.stats();
    assert_eq!(
        (stats.requests, stats.retries, stats.rate_limited),
        (3, 2, 1)
    );
}

#[tokio::test]
async fn rate_limit_waits_until_x_ratelimit_reset() {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/api/v1/tasks",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .expect("clock")
                        .as_secs();
                    let mut resp = testutil::err(429, "TOO_MANY_REQUESTS", "limit");
                    let h = resp.headers_mut();
                    h.insert("x-ratelimit-limit", "120".parse().expect("hv"));
                    h.insert("x-ratelimit-remaining", "0".parse().expect("hv"));
                    h.insert(
                        "x-ratelimit-reset",
                        (now + 2).to_string().parse().expect("hv"),
                    );
                    resp
                } else {
                    testutil::ok(json!([{"id": "t1"}]))
                }
            }),
        )
        .with_state(Arc::clone(&hits));
    let server = TestServer::start(app).await;
    let client = client(&server); // backoff is 5 ms: only the header explains a long wait
    let started = Instant::now();
    let got = client.list_tasks().await.expect("after the reset");
    let elapsed = started.elapsed();
    assert_eq!(got.len(), 1);
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2800), "{elapsed:?}");
    let stats = client.stats();
    assert_eq!((stats.rate_limited, stats.retries), (1, 1));
}

#[tokio::test]
async fn rate_limit_hint_beyond_max_elapsed_gives_up_at_once() {
    let app = Router::new().route(
        "/api/v1/tasks/t1",
        get(|| async {
            let mut resp = testutil::err(429, "TOO_MANY_REQUESTS", "limit");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, "60".parse().expect("hv"));
            resp
        }),
    );
    let server = TestServer::start(app).await;
    let client = client(&server); // max_elapsed is 10 s
    let started = Instant::now();
    let err = client.get_task("t1").await.expect_err("gives up");
    assert!(started.elapsed() < Duration::from_secs(2));
    match err {
        ApiError::RateLimited {
            retry_after,
            attempts,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(60)));
            assert_eq!(attempts, 1);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_headers_hit_the_request_timeout_and_are_retried() {
    let app = Router::new().route(
        "/api/v1/tasks/t1",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            testutil::ok(json!({"id": "t1"}))
        }),
    );
    let server = TestServer::start(app).await;
    let cfg = ApiConfig {
        timeout: Duration::from_millis(150),
        retry: RetryPolicy {
            max_attempts: 2,
            ..testutil::config(&server).retry
        },
        ..testutil::config(&server)
    };
    let client = TitanClient::new(cfg).expect("client");
    let err = client.get_task("t1").await.expect_err("timeout");
    assert!(
        matches!(
            err,
            ApiError::Transport {
                timed_out: true,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ApiErrorKind::Unreachable);
    assert_eq!(
        err.to_string(),
        "GET /api/v1/tasks/t1: timed out after 2 attempts"
    );
    let causes = client.stats().retries_by_cause;
    assert_eq!(
        (causes.timeout, causes.network, causes.server_error),
        (1, 0, 0)
    );
}
