//! `TitanClient` against scripted loopback servers: pagination, error mapping,
//! retries and rate limits, redirects and the token, streaming and timeouts.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::json;

use crate::api::testutil::{self, SECRET, TestServer};
use crate::api::*;

mod budget;
mod envelope;
mod export;
mod media;
mod pagination;
mod redirect;
mod retry;

/// What a handler saw, shared with the test.
pub(super) type Log<T> = Arc<std::sync::Mutex<Vec<T>>>;

pub(super) fn client(server: &TestServer) -> TitanClient {
    TitanClient::new(testutil::config(server)).expect("client")
}

#[derive(serde::Deserialize)]
pub(super) struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(super) fn tasks(range: std::ops::Range<usize>) -> Vec<serde_json::Value> {
    range
        .map(|i| json!({"id": format!("t{i}"), "name": format!("task {i}")}))
        .collect()
}

pub(super) const MB: usize = 1 << 20;

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

pub(super) async fn collect(s: ExportStream) -> Result<Bytes, ApiError> {
    let chunks: Vec<Bytes> = s.body.try_collect().await?;
    Ok(chunks.concat().into())
}
