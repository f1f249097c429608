//! Titan's envelope and error statuses mapped to typed values and errors.

use super::*;
use crate::api::testutil::{self, TestServer};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn objects_decode_from_the_envelope() {
    let app = Router::new()
        .route(
            "/api/v1/tasks/t1",
            get(|| async {
                testutil::ok(
                    json!({"id": "t1", "name": "Products", "output_schema": {"type": "object"}}),
                )
            }),
        )
        .route(
            "/api/v1/executions/e1/results",
            get(|| async {
                testutil::ok(
                    json!({"available": true, "record_count": 42, "formats": ["json", "csv"]}),
                )
            }),
        )
        .route(
            "/api/v1/executions/e2",
            get(|| async { testutil::ok(json!([1, 2])) }),
        );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let t = client.get_task("t1").await.expect("task");
    assert_eq!((t.id.as_str(), t.name.as_str()), ("t1", "Products"));
    let m = client.results_meta("e1").await.expect("meta");
    assert_eq!((m.available, m.record_count), (Some(true), Some(42)));
    assert_eq!(m.formats, ["json", "csv"]);
    let err = client.get_execution("e2").await.expect_err("array data");
    assert_eq!(err.kind(), ApiErrorKind::Protocol);
    assert!(err.to_string().contains("`data` is a array"), "{err}");
}

#[tokio::test]
async fn ids_are_one_encoded_path_segment() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = Router::new()
        .fallback(|State(seen): State<Log<String>>, uri: Uri| async move {
            seen.lock().expect("lock").push(uri.to_string());
            testutil::ok(json!({"id": "x", "status": "running"}))
        })
        .with_state(Arc::clone(&seen));
    let server = TestServer::start(app).await;
    let client = client(&server);
    client.get_execution("a/b c?d").await.expect("execution");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec!["/api/v1/executions/a%2Fb%20c%3Fd"]
    );
    for bad in ["", ".", ".."] {
        let err = client.get_task(bad).await.expect_err("bad id");
        assert_eq!(err.kind(), ApiErrorKind::Config, "{bad:?}");
    }
    assert_eq!(client.stats().requests, 1);
}

#[tokio::test]
async fn error_statuses_map_to_typed_errors() {
    let app = Router::new()
        .route(
            "/api/v1/tasks/401",
            get(|| async { testutil::err(401, "UNAUTHORIZED", "bad token") }),
        )
        .route(
            "/api/v1/tasks/403",
            get(|| async { testutil::err(403, "FORBIDDEN", "needs tasks:read") }),
        )
        .route(
            "/api/v1/tasks/404",
            get(|| async { testutil::err(404, "NOT_FOUND", "no such task") }),
        )
        .route(
            "/api/v1/tasks/429",
            get(|| async { testutil::err(429, "TOO_MANY_REQUESTS", "slow down") }),
        )
        .route(
            "/api/v1/tasks/500",
            get(|| async { testutil::err(500, "INTERNAL_SERVER_ERROR", "boom") }),
        )
        .route(
            "/api/v1/tasks/502",
            get(|| async { (StatusCode::BAD_GATEWAY, "<html>nginx</html>") }),
        )
        .route(
            "/api/v1/tasks/200f",
            get(|| async {
                axum::Json(
                    json!({"success": false, "error": {"code": "FORBIDDEN", "message": "scope"}}),
                )
            }),
        );
    let server = TestServer::start(app).await;
    let client = client(&server);
    // (id, kind, status, code, message, attempts)
    let table = [
        (
            "401",
            ApiErrorKind::Auth,
            401,
            Some("UNAUTHORIZED"),
            Some("bad token"),
            1,
        ),
        (
            "403",
            ApiErrorKind::Auth,
            403,
            Some("FORBIDDEN"),
            Some("needs tasks:read"),
            1,
        ),
        (
            "404",
            ApiErrorKind::NotFound,
            404,
            Some("NOT_FOUND"),
            Some("no such task"),
            1,
        ),
        (
            "429",
            ApiErrorKind::RateLimited,
            429,
            Some("TOO_MANY_REQUESTS"),
            Some("slow down"),
            4,
        ),
        (
            "500",
            ApiErrorKind::Server,
            500,
            Some("INTERNAL_SERVER_ERROR"),
            Some("boom"),
            4,
        ),
        ("502", ApiErrorKind::Server, 502, None, None, 4),
        (
            "200f",
            ApiErrorKind::Auth,
            200,
            Some("FORBIDDEN"),
            Some("scope"),
            1,
        ),
    ];
    for (id, kind, status, code, message, attempts) in table {
        let err = client.get_task(id).await.expect_err("error status");
        assert_eq!(err.kind(), kind, "{id}: {err}");
        assert_eq!(err.status(), Some(status), "{id}");
        assert_eq!(err.code(), code, "{id}");
        assert_eq!(err.attempts(), attempts, "{id}");
        if let Some(m) = message {
            assert!(err.to_string().contains(m), "{id}: {err}");
        }
    }
    assert!(matches!(
        client.get_task("401").await,
        Err(ApiError::Unauthorized { .. })
    ));
    assert!(matches!(
        client.get_task("403").await,
        Err(ApiError::Forbidden { .. })
    ));
    let stats = client.stats();
    assert_eq!(stats.rate_limited, 4);
    assert_eq!(stats.retries, 9); // 3 each for 429, 500, 502
    assert_eq!(
        stats.retries_by_cause,
        crate::api::RetryCauses {
            rate_limited: 3,
            server_error: 6,
            ..Default::default()
        }
    );
}
