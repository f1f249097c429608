//! `TitanClient` against scripted loopback servers: pagination, error mapping,
//! retries and rate limits, redirects and the token, streaming and timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::json;

use super::testutil::{self, SECRET, Seen, TestServer};
use super::*;

/// What a handler saw, shared with the test.
type Log<T> = Arc<std::sync::Mutex<Vec<T>>>;

fn client(server: &TestServer) -> TitanClient {
    TitanClient::new(testutil::config(server)).expect("client")
}

#[derive(serde::Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

fn tasks(range: std::ops::Range<usize>) -> Vec<serde_json::Value> {
    range
        .map(|i| json!({"id": format!("t{i}"), "name": format!("task {i}")}))
        .collect()
}

#[tokio::test]
async fn paginates_bare_arrays_across_three_pages() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/api/v1/tasks",
            get(
                |State(seen): State<Log<(usize, usize)>>, Query(p): Query<Page>| async move {
                    let (limit, offset) = (p.limit.unwrap_or(20), p.offset.unwrap_or(0));
                    seen.lock().expect("lock").push((limit, offset));
                    let end = (offset + limit).min(237);
                    testutil::ok(json!(tasks(offset.min(end)..end)))
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let server = TestServer::start(app).await;
    let client = client(&server);
    let got = client.list_tasks().await.expect("list");
    assert_eq!(got.len(), 237);
    assert_eq!(got[0].id, "t0");
    assert_eq!(got[236].name, "task 236");
    assert!(got.iter().enumerate().all(|(i, t)| t.id == format!("t{i}")));
    // Without a total or a page size from the server, the short page at 200 is confirmed
    // as the end by one more (empty) page.
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![(100, 0), (100, 100), (100, 200), (100, 237)]
    );
    assert_eq!(client.stats().requests, 4);
}

#[tokio::test]
async fn a_silent_page_cap_without_total_loses_nothing() {
    // The server caps pages at 40 and says nothing: bare arrays, no total, no limit.
    let app = Router::new().route(
        "/api/v1/tasks",
        get(|Query(p): Query<Page>| async move {
            let offset = p.offset.unwrap_or(0);
            let end = (offset + p.limit.unwrap_or(20).min(40)).min(90);
            testutil::ok(json!(tasks(offset.min(end)..end)))
        }),
    );
    let server = TestServer::start(app).await;
    let got = client(&server).list_tasks().await.expect("list");
    assert_eq!(got.len(), 90);
    assert!(got.iter().enumerate().all(|(i, t)| t.id == format!("t{i}")));
}

#[tokio::test]
async fn a_short_page_repeated_because_offset_is_ignored_is_the_whole_list() {
    let app = Router::new().route(
        "/api/v1/tasks",
        get(|| async { testutil::ok(json!(tasks(0..30))) }),
    );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let got = client.list_tasks().await.expect("list");
    assert_eq!(got.len(), 30);
    assert_eq!(client.stats().requests, 2);
}

#[tokio::test]
async fn wrapped_list_with_server_capped_limit_uses_total() {
    // The server caps pages at 40 and says so; a short page is not the end.
    let app = Router::new().route(
        "/api/v1/executions",
        get(|Query(p): Query<Page>| async move {
            let offset = p.offset.unwrap_or(0);
            let end = (offset + p.limit.unwrap_or(20).min(40)).min(90);
            let items: Vec<_> = (offset.min(end)..end)
                .map(|i| json!({"id": format!("e{i}"), "status": "completed"}))
                .collect();
            testutil::ok(json!({"executions": items, "total": 90, "limit": 40, "offset": offset}))
        }),
    );
    let server = TestServer::start(app).await;
    let got = client(&server).list_executions().await.expect("list");
    assert_eq!(got.len(), 90);
    assert_eq!(got[89].id, "e89");
    assert_eq!(got[89].status, ExecutionStatus::Completed);
}

#[tokio::test]
async fn server_ignoring_offset_is_a_protocol_error_not_a_loop() {
    let app = Router::new().route(
        "/api/v1/tasks/t1/executions",
        get(|| async { testutil::ok(json!(tasks(0..100))) }),
    );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let err = client
        .list_task_executions("t1")
        .await
        .expect_err("stuck offset");
    assert_eq!(err.kind(), ApiErrorKind::Protocol);
    assert!(
        err.to_string().contains("repeats the previous page"),
        "{err}"
    );
    assert_eq!(client.stats().requests, 2);
}

#[tokio::test]
async fn server_ignoring_paging_entirely_returns_everything_once() {
    let app = Router::new().route(
        "/api/v1/tasks",
        get(|| async { testutil::ok(json!(tasks(0..250))) }),
    );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let got = client.list_tasks().await.expect("one big page");
    assert_eq!(got.len(), 250);
    assert_eq!(client.stats().requests, 1);
}

#[tokio::test]
async fn datasets_empty_list_is_fine() {
    let app = Router::new()
        .route(
            "/api/v1/executions/e1/datasets",
            get(|| async { testutil::ok(json!([])) }),
        )
        .route(
            "/api/v1/tasks/t1/datasets",
            get(|| async { testutil::ok(json!({"datasets": [{"id": "d1", "record_count": 5}]})) }),
        );
    let server = TestServer::start(app).await;
    let client = client(&server);
    assert!(
        client
            .list_execution_datasets("e1")
            .await
            .expect("datasets")
            .is_empty()
    );
    let d = client.list_task_datasets("t1").await.expect("datasets");
    assert_eq!(
        (d[0].id.as_deref(), d[0].record_count),
        (Some("d1"), Some(5))
    );
}

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
}

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

/// Origin A redirects to origin B (another loopback port); records what each saw.
async fn redirect_pair(scheme: AuthScheme) -> (Seen, Seen, Result<Bytes, ApiError>) {
    let seen_b = Seen::default();
    let app_b = Router::new()
        .route(
            "/media/m1",
            get(|State(seen): State<Seen>, headers: HeaderMap| async move {
                seen.push(headers);
                ([(header::CONTENT_TYPE, "image/png")], &b"\x89PNG-bytes"[..]).into_response()
            }),
        )
        .with_state(seen_b.clone());
    let server_b = TestServer::start(app_b).await;
    let target = format!(
        "http://127.0.0.1:{}/media/m1?token=cdn-signed",
        server_b.addr.port()
    );
    let seen_a = Seen::default();
    let app_a = Router::new()
        .route(
            "/api/v1/executions/e1/media/m1/download",
            get(
                |State((seen, target)): State<(Seen, String)>, headers: HeaderMap| async move {
                    seen.push(headers);
                    (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
                },
            ),
        )
        .with_state((seen_a.clone(), target));
    let server_a = TestServer::start(app_a).await;
    let cfg = ApiConfig {
        auth: scheme,
        ..testutil::config(&server_a)
    };
    let client = TitanClient::new(cfg).expect("client");
    let result = match client.media("e1", "m1").await {
        Ok(s) => {
            assert_eq!(s.content_type.as_deref(), Some("image/png"));
            collect(s).await
        }
        Err(e) => Err(e),
    };
    (seen_a, seen_b, result)
}

async fn collect(s: ExportStream) -> Result<Bytes, ApiError> {
    let chunks: Vec<Bytes> = s.body.try_collect().await?;
    Ok(chunks.concat().into())
}

#[tokio::test]
async fn cross_origin_redirect_carries_no_token() {
    for scheme in [AuthScheme::Bearer, AuthScheme::XApiKey] {
        let (a, b, body) = redirect_pair(scheme).await;
        assert_eq!(body.expect("media").as_ref(), b"\x89PNG-bytes");
        let (a, b) = (a.all(), b.all());
        assert_eq!((a.len(), b.len()), (1, 1));
        let (auth_a, key_a) = (a[0].get("authorization"), a[0].get("x-api-key"));
        match scheme {
            AuthScheme::Bearer => {
                assert_eq!(
                    auth_a.map(|v| v.as_bytes()),
                    Some(format!("Bearer {SECRET}").as_bytes())
                );
                assert!(key_a.is_none());
            }
            AuthScheme::XApiKey => {
                assert_eq!(key_a.map(|v| v.as_bytes()), Some(SECRET.as_bytes()));
                assert!(auth_a.is_none());
            }
        }
        assert!(b[0].get("authorization").is_none(), "{scheme:?}");
        assert!(b[0].get("x-api-key").is_none(), "{scheme:?}");
        assert!(
            b[0].values()
                .all(|v| !String::from_utf8_lossy(v.as_bytes()).contains(SECRET))
        );
    }
}

#[tokio::test]
async fn same_origin_redirect_keeps_the_token() {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/api/v1/executions/e1/results/download",
            get(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/files/e1.csv")],
                )
                    .into_response()
            }),
        )
        .route(
            "/files/e1.csv",
            get(|State(seen): State<Seen>, headers: HeaderMap| async move {
                seen.push(headers);
                ([(header::CONTENT_TYPE, "text/csv")], "a,b\n1,2\n").into_response()
            }),
        )
        .with_state(seen.clone());
    let server = TestServer::start(app).await;
    let client = client(&server);
    let s = client.download_csv("e1").await.expect("csv");
    assert_eq!(s.content_type.as_deref(), Some("text/csv"));
    assert_eq!(collect(s).await.expect("body").as_ref(), b"a,b\n1,2\n");
    let seen = seen.all();
    assert_eq!(
        seen[0].get("authorization").map(|v| v.as_bytes()),
        Some(format!("Bearer {SECRET}").as_bytes())
    );
    assert_eq!(client.stats().requests, 2);
}

#[tokio::test]
async fn redirect_loop_is_bounded() {
    let app = Router::new().route(
        "/api/v1/executions/e1/media/m/download",
        get(|| async {
            (
                StatusCode::FOUND,
                [(header::LOCATION, "/api/v1/executions/e1/media/m/download")],
            )
                .into_response()
        }),
    );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let err = client.media("e1", "m").await.expect_err("loop");
    assert_eq!(err.kind(), ApiErrorKind::Protocol);
    assert_eq!(client.stats().requests, 11);
}

const MB: usize = 1 << 20;

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

#[test]
fn config_is_validated() {
    let token = || Token::new(SECRET).expect("token");
    let cfg = |url: &str| ApiConfig::new(url::Url::parse(url).expect("url"), token());
    assert!(TitanClient::new(cfg("https://api.webscraping.titannet.io")).is_ok());
    assert!(TitanClient::new(cfg("http://127.0.0.1:8080")).is_ok());
    assert!(TitanClient::new(cfg("http://localhost:8080/")).is_ok());
    assert!(TitanClient::new(cfg("http://[::1]:8080")).is_ok());
    let err = TitanClient::new(cfg("http://api.example.com:8080/x")).expect_err("insecure");
    match &err {
        ApiError::InsecureUrl { origin } => assert_eq!(origin, "http://api.example.com:8080"),
        other => panic!("expected InsecureUrl, got {other:?}"),
    }
    let insecure_ok = ApiConfig {
        allow_insecure_http: true,
        ..cfg("http://api.example.com")
    };
    assert!(TitanClient::new(insecure_ok).is_ok());
    for bad in [
        "https://api.example.com/api/v1",
        "https://api.example.com/api/v1/",
        "https://user:pw@api.example.com",
        "https://api.example.com/?x=1",
        "ftp://api.example.com",
    ] {
        let err = TitanClient::new(cfg(bad)).expect_err(bad);
        assert_eq!(err.kind(), ApiErrorKind::Config, "{bad}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
    let zero = ApiConfig {
        timeout: Duration::ZERO,
        ..cfg("https://a.example")
    };
    assert!(TitanClient::new(zero).is_err());
    let client = TitanClient::new(cfg("https://a.example/prefix")).expect("prefix");
    let (route, url) = client.route(&["tasks"]).expect("route");
    assert_eq!(route, "/prefix/api/v1/tasks");
    assert_eq!(url.as_str(), "https://a.example/prefix/api/v1/tasks");
}

#[tokio::test]
async fn the_token_appears_in_no_error_or_debug_output() {
    // A server that echoes the token in its messages, in every shape.
    let echo = format!("invalid token {SECRET}");
    let app = Router::new()
        .route(
            "/api/v1/tasks/a",
            get({
                let m = echo.clone();
                || async move { testutil::err(401, &format!("BAD_{SECRET}"), &m) }
            }),
        )
        .route(
            "/api/v1/tasks/b",
            get({
                let m = echo.clone();
                || async move { (StatusCode::FORBIDDEN, axum::Json(json!({"error": m}))) }
            }),
        )
        .route(
            "/api/v1/tasks/c",
            get({
                let m = echo.clone();
                || async move {
                    axum::Json(
                        json!({"success": false, "error": {"code": "UNAUTHORIZED", "message": m}}),
                    )
                }
            }),
        );
    let server = TestServer::start(app).await;
    let cfg = testutil::config(&server);
    let client = TitanClient::new(cfg.clone()).expect("client");

    let mut errors: Vec<ApiError> = Vec::new();
    for id in ["a", "b", "c"] {
        errors.push(client.get_task(id).await.expect_err("echo"));
    }
    // Transport: a port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut dead = ApiConfig::new(
        url::Url::parse(&format!("http://127.0.0.1:{closed}")).expect("url"),
        Token::new(SECRET).expect("token"),
    );
    dead.retry.max_attempts = 1;
    let dead = TitanClient::new(dead).expect("client");
    errors.push(dead.get_task("x").await.expect_err("closed port"));
    // StreamBroken: a stalled export.
    let stall = Router::new().route(
        "/api/v1/executions/e/results/export",
        get(|| async { Body::from_stream(stream::pending::<Result<Bytes, std::io::Error>>()) }),
    );
    let stall = TestServer::start(stall).await;
    let stall_client = TitanClient::new(ApiConfig {
        read_timeout: Duration::from_millis(100),
        ..testutil::config(&stall)
    })
    .expect("client");
    let mut body = stall_client
        .export("e", ExportFormat::Json)
        .await
        .expect("opens")
        .body;
    errors.push(body.next().await.expect("item").expect_err("stalls"));
    // The rest, built directly.
    errors.push(ApiError::from_answer("/r", 404, None, None, None));
    errors.push(ApiError::from_answer(
        "/r",
        429,
        None,
        None,
        Some(Duration::from_secs(1)),
    ));
    errors.push(ApiError::from_answer("/r", 400, None, None, None));
    errors.push(ApiError::from_answer("/r", 500, None, None, None));
    errors.push(ApiError::protocol("/r", 200, "x"));
    errors.push(ApiError::InsecureUrl {
        origin: "http://x".into(),
    });
    errors.push(Token::new(format!("{SECRET} x")).expect_err("space in token"));
    errors.push(
        client
            .media_url("e", &format!("{SECRET}/x"))
            .await
            .expect_err("not a media id"),
    );
    errors.push(
        client
            .media_url("e", &format!("https://cdn.example/x?t={SECRET}"))
            .await
            .expect_err("host not allowed"),
    );
    errors.push(ApiError::InsecureMediaUrl {
        origin: "http://x".into(),
    });
    errors.push(ApiError::TooLarge {
        route: "/r".into(),
        limit: 1,
        length: 2,
    });

    let kinds: std::collections::HashSet<_> = errors.iter().map(std::mem::discriminant).collect();
    assert_eq!(kinds.len(), 15, "every ApiError variant is covered");
    for e in &errors {
        let mut text = format!("{e} {e:?}");
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(&format!(" | {s} {s:?}"));
            source = s.source();
        }
        assert!(!text.contains(SECRET), "token leaked: {text}");
    }
    assert!(
        format!("{errors:?}").contains("***"),
        "echoed token is scrubbed, not dropped"
    );
    for text in [
        format!("{cfg:?}"),
        format!("{client:?}"),
        format!("{:?}", cfg.token),
    ] {
        assert!(!text.contains(SECRET), "token leaked: {text}");
    }
    assert!(format!("{cfg:?}").contains("Token(***)"));
}

/// The pipeline spawns these futures on a multi-threaded runtime.
#[test]
fn client_futures_are_send() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let client = TitanClient::new(ApiConfig::new(
        url::Url::parse("https://a.example").expect("url"),
        Token::new(SECRET).expect("token"),
    ))
    .expect("client");
    let c = client.clone();
    assert_send(&async move { c.list_tasks().await });
    let c = client.clone();
    assert_send(&async move { c.export("e", ExportFormat::Csv).await });
    let c = client.clone();
    assert_send(&async move { c.media("e", "m").await });
    let c = client.clone();
    assert_send(&async move { c.media_url("e", "https://a.example/m").await });
    let c = client.clone();
    let policy = crate::source::waiter::WaitPolicy::default();
    assert_send(&async move { crate::source::waiter::wait_for_terminal(&c, "e", &policy).await });
}
