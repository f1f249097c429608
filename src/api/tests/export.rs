//! Export bodies: streamed in chunks, read timeouts, error shapes, HTML on 200.

use super::*;
use crate::api::testutil::{self, TestServer};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures::{StreamExt, stream};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn payload() -> Vec<u8> {
    (0..MB).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn export_streams_a_megabyte_in_chunks() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/api/v1/executions/e1/results/export",
            get(
                |State(seen): State<Log<Option<String>>>, uri: Uri| async move {
                    seen.lock()
                        .expect("lock")
                        .push(uri.query().map(String::from));
                    let chunks: Vec<Result<Bytes, std::io::Error>> = payload()
                        .chunks(16 << 10)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect();
                    let ct = if uri.query() == Some("format=csv") {
                        "text/csv"
                    } else {
                        "application/json"
                    };
                    (
                        [(header::CONTENT_TYPE, ct)],
                        Body::from_stream(stream::iter(chunks)),
                    )
                        .into_response()
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let server = TestServer::start(app).await;
    let client = client(&server);

    let s = client
        .export("e1", ExportFormat::Json)
        .await
        .expect("export");
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    let mut chunks = 0;
    let mut got = Vec::new();
    let mut body = s.body;
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.expect("chunk"));
        chunks += 1;
    }
    assert_eq!(got.len(), MB);
    assert!(got == payload(), "bytes differ");
    assert!(chunks > 1, "arrived in {chunks} chunk(s)");

    let s = client
        .export("e1", ExportFormat::Csv)
        .await
        .expect("csv export");
    assert_eq!(s.content_type.as_deref(), Some("text/csv"));
    assert_eq!(collect(s).await.expect("body").len(), MB);
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![None, Some("format=csv".to_owned())]
    );
    assert!(client.stats().bytes_downloaded >= 2 * MB as u64);
}

#[tokio::test]
async fn stalled_export_hits_the_read_timeout() {
    let app = Router::new().route(
        "/api/v1/executions/e1/results/export",
        get(|| async {
            let first =
                stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"[{\"a\":1},")) });
            Body::from_stream(first.chain(stream::pending()))
        }),
    );
    let server = TestServer::start(app).await;
    let cfg = ApiConfig {
        read_timeout: Duration::from_millis(200),
        ..testutil::config(&server)
    };
    let client = TitanClient::new(cfg).expect("client");
    let started = Instant::now();
    let mut body = client
        .export("e1", ExportFormat::Json)
        .await
        .expect("opens")
        .body;
    let first = body.next().await.expect("a chunk").expect("first chunk ok");
    assert_eq!(first.as_ref(), b"[{\"a\":1},");
    let err = tokio::time::timeout(Duration::from_secs(3), body.next())
        .await
        .expect("the read timeout fires before the test's")
        .expect("an item")
        .expect_err("stalled");
    match &err {
        ApiError::StreamBroken {
            route,
            bytes_received,
            timed_out,
            ..
        } => {
            assert_eq!(route, "/api/v1/executions/e1/results/export");
            assert_eq!(*bytes_received, 9);
            assert!(*timed_out);
        }
        other => panic!("expected StreamBroken, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn export_errors_use_the_envelope_or_the_cdn_shape() {
    let app = Router::new()
        .route(
            "/api/v1/executions/e1/results/export",
            get(|| async { testutil::err(404, "NOT_FOUND", "results not ready") }),
        )
        .route(
            "/api/v1/executions/e1/media/m1/download",
            get(|| async {
                (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({"error": "media token expired"})),
                )
            }),
        );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let err = client
        .export("e1", ExportFormat::Json)
        .await
        .expect_err("404");
    assert!(
        matches!(&err, ApiError::NotFound { code: Some(c), .. } if c == "NOT_FOUND"),
        "{err:?}"
    );
    let err = client.media("e1", "m1").await.expect_err("403");
    match err {
        ApiError::Forbidden { code, message, .. } => {
            assert_eq!(code, None);
            assert_eq!(message.as_deref(), Some("media token expired"));
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn html_on_200_is_a_protocol_error_except_for_media() {
    let html = || async {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html>Sign in</html>",
        )
    };
    let app = Router::new()
        .route("/api/v1/tasks/t1", get(html))
        .route("/api/v1/executions/e1/results/export", get(html))
        .route("/api/v1/executions/e1/media/m1/download", get(html))
        .route("/api/v1/tasks/t2", get(|| async { "not json" }));
    let server = TestServer::start(app).await;
    let client = client(&server);
    let err = client.get_task("t1").await.expect_err("html");
    assert_eq!((err.kind(), err.attempts()), (ApiErrorKind::Protocol, 1));
    assert!(err.to_string().contains("HTML page"), "{err}");
    let err = client
        .export("e1", ExportFormat::Json)
        .await
        .expect_err("html export");
    assert_eq!(err.kind(), ApiErrorKind::Protocol);
    let media = client.media("e1", "m1").await.expect("media may be html");
    assert_eq!(
        collect(media).await.expect("body").as_ref(),
        b"<html>Sign in</html>"
    );
    let err = client.get_task("t2").await.expect_err("not json");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

/// Issue 13.10: a JSON body dripping one byte per 100 ms never trips the gap-based
/// `read_timeout` (1 s here), so before the whole-body deadline it took the full ~6 s to
/// arrive; now it fails at `body_timeout` with a clear error, and is retried like a
/// transport failure.
#[tokio::test]
async fn a_dripping_json_body_fails_at_the_body_deadline() {
    let app = Router::new().route(
        "/api/v1/tasks/t1",
        get(|| async {
            let text = json!({"success": true, "data": {"id": "t1", "name": "dripping"}})
                .to_string()
                .into_bytes();
            let drip = stream::iter(text).then(|b| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(Bytes::from(vec![b]))
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(drip),
            )
        }),
    );
    let server = TestServer::start(app).await;
    let mut cfg = ApiConfig {
        read_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_millis(700),
        ..testutil::config(&server)
    };
    cfg.retry.max_attempts = 2;
    let client = TitanClient::new(cfg).expect("client");
    let started = Instant::now();
    let err = client.get_task("t1").await.expect_err("too slow");
    let elapsed = started.elapsed();
    match &err {
        ApiError::BodyDeadline {
            route,
            limit,
            bytes_received,
            attempts,
        } => {
            assert_eq!(route, "/api/v1/tasks/t1");
            assert_eq!(*limit, Duration::from_millis(700));
            assert!((3..=8).contains(bytes_received), "{bytes_received}");
            assert_eq!(*attempts, 2);
        }
        other => panic!("expected BodyDeadline, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(err.kind(), ApiErrorKind::Unreachable);
    assert!(
        err.to_string()
            .starts_with("GET /api/v1/tasks/t1: response body not complete after 0.7s ("),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(client.stats().requests, 2);
}
