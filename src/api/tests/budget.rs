//! The rate budget through `TitanClient` against loopback servers: shared by
//! clones, awaited by retries and media, disabled when unset, and the
//! server's `X-RateLimit-Remaining: 0` hold.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::api::testutil::{self, SECRET, TestServer};
use crate::api::*;

/// Arrival times seen by the server.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

fn arrivals(log: &Arrivals) -> Vec<Instant> {
    let mut all = log.lock().expect("lock").clone();
    all.sort();
    all
}

/// `/api/v1/tasks/:id` answering a task and logging when each request arrived.
async fn logging_server() -> (TestServer, Arrivals) {
    let log = Arrivals::default();
    let app = Router::new()
        .route(
            "/api/v1/tasks/{id}",
            get(|State(log): State<Arrivals>| async move {
                log.lock().expect("lock").push(Instant::now());
                testutil::ok(json!({"id": "t", "name": "n"}))
            }),
        )
        .with_state(Arc::clone(&log));
    (TestServer::start(app).await, log)
}

/// Sends `n` requests at once, each from its own clone of `client`.
async fn concurrent(client: &TitanClient, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.get_task(&format!("t{i}")).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("request");
    }
}

#[tokio::test]
async fn concurrent_clones_share_one_budget() {
    let (server, log) = logging_server().await;
    let client = TitanClient::new(ApiConfig {
        rate_limit_per_minute: Some(1200), // one per 50 ms
        rate_limit_burst: 5,
        ..testutil::config(&server)
    })
    .expect("client");
    let t0 = Instant::now();
    concurrent(&client, 30).await;
    let elapsed = t0.elapsed();
    // 5 at once, then 25 more at 50 ms intervals: the last starts at 1.25 s.
    assert!(elapsed >= Duration::from_millis(1250), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    let seen = arrivals(&log);
    assert_eq!(seen.len(), 30);
    for (i, at) in seen.iter().enumerate().skip(5) {
        let earliest = Duration::from_millis(50 * (i as u64 - 4));
        assert!(
            at.duration_since(t0) >= earliest,
            "request {i} arrived at {:?}, before its slot at {earliest:?}",
            at.duration_since(t0)
        );
    }
    let stats = client.stats();
    assert_eq!((stats.requests, stats.throttled_waits), (30, 25));
    // Waits of 50, 100, …, 1250 ms sum to 16.25 s (a little less: the
    // requests reached the budget a few ms after t0).
    assert!(
        (15_500..=16_250).contains(&stats.throttled_ms),
        "{}",
        stats.throttled_ms
    );
}

#[tokio::test]
async fn disabled_budget_does_not_wait() {
    let (server, log) = logging_server().await;
    let cfg = testutil::config(&server);
    assert_eq!(cfg.rate_limit_per_minute, None);
    let client = TitanClient::new(cfg).expect("client");
    let t0 = Instant::now();
    concurrent(&client, 30).await;
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(arrivals(&log).len(), 30);
    let stats = client.stats();
    assert_eq!(
        (stats.requests, stats.throttled_waits, stats.throttled_ms),
        (30, 0, 0)
    );
}

#[tokio::test]
async fn default_budget_allows_a_burst_of_ten_then_paces() {
    let (server, _log) = logging_server().await;
    let defaults = ApiConfig::new(server.url(), Token::new(SECRET).expect("token"));
    let cfg = ApiConfig {
        rate_limit_per_minute: defaults.rate_limit_per_minute,
        rate_limit_burst: defaults.rate_limit_burst,
        ..testutil::config(&server)
    };
    assert_eq!(cfg.rate_limit_per_minute, Some(100));
    assert_eq!(cfg.rate_limit_burst, 10);
    let client = TitanClient::new(cfg).expect("client");
    for i in 0..10 {
        client.get_task(&format!("t{i}")).await.expect("task");
    }
    assert_eq!(client.stats().throttled_waits, 0);
    let t0 = Instant::now();
    client.get_task("t10").await.expect("task");
    // 100/min is one per 600 ms, counted from the first request.
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(client.stats().throttled_waits, 1);
}

#[tokio::test]
async fn retries_and_media_wait_for_the_budget_but_foreign_hops_do_not() {
    let cdn = TestServer::start(Router::new().route(
        "/cdn/m2",
        get(|| async { ([(header::CONTENT_TYPE, "image/png")], "png") }),
    ))
    .await;
    let cdn_url = format!("http://127.0.0.1:{}/cdn/m2?token=sig", cdn.addr.port());
    let hits = Arc::new(Mutex::new(0u32));
    let app = Router::new()
        .route(
            "/api/v1/executions/e1",
            get(
                |State((hits, _)): State<(Arc<Mutex<u32>>, String)>| async move {
                    let mut n = hits.lock().expect("lock");
                    *n += 1;
                    if *n <= 2 {
                        testutil::err(503, "INTERNAL_SERVER_ERROR", "warming up")
                    } else {
                        testutil::ok(json!({"id": "e1", "status": "completed"}))
                    }
                },
            ),
        )
        .route(
            "/api/v1/executions/e1/media/m1/download",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], "png") }),
        )
        .route(
            "/api/v1/executions/e1/media/m2/download",
            get(
                |State((_, cdn)): State<(Arc<Mutex<u32>>, String)>| async move {
                    (StatusCode::FOUND, [(header::LOCATION, cdn)]).into_response()
                },
            ),
        )
        .with_state((hits, cdn_url));
    let server = TestServer::start(app).await;
    let client = TitanClient::new(ApiConfig {
        rate_limit_per_minute: Some(600), // one per 100 ms; backoff is 5-20 ms
        rate_limit_burst: 1,
        media_allowed_hosts: vec!["127.0.0.1".into()],
        ..testutil::config(&server)
    })
    .expect("client");
    client.get_execution("e1").await.expect("third attempt");
    let s = client.stats();
    assert_eq!((s.requests, s.retries, s.throttled_waits), (3, 2, 2));
    client.media("e1", "m1").await.expect("media");
    assert_eq!(client.stats().throttled_waits, 3);
    client.media("e1", "m2").await.expect("redirected media");
    let s = client.stats();
    // The API hop waited; the CDN hop is not the API's budget.
    assert_eq!((s.requests, s.throttled_waits), (6, 4));
}

/// Answers with `X-RateLimit-Remaining: 0` and a reset 2 s ahead on the first
/// request, with plenty remaining afterwards.
fn spent_once(log: Arrivals) -> Response {
    let first = {
        let mut log = log.lock().expect("lock");
        log.push(Instant::now());
        log.len() == 1
    };
    let mut resp = testutil::ok(json!({"id": "t", "name": "n"}));
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", "120".parse().expect("hv"));
    if first {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        h.insert("x-ratelimit-remaining", "0".parse().expect("hv"));
        h.insert(
            "x-ratelimit-reset",
            (now + 2).to_string().parse().expect("hv"),
        );
    } else {
        h.insert("x-ratelimit-remaining", "50".parse().expect("hv"));
    }
    resp
}

#[tokio::test]
async fn zero_remaining_holds_every_new_request_until_the_reset() {
    let log = Arrivals::default();
    let app = Router::new()
        .route(
            "/api/v1/tasks/{id}",
            get(|State(log): State<Arrivals>| async move { spent_once(log) }),
        )
        .with_state(Arc::clone(&log));
    let server = TestServer::start(app).await;
    // The client-side budget is off: the hold is the server's word, not ours.
    let client = TitanClient::new(testutil::config(&server)).expect("client");
    client.get_task("first").await.expect("first");
    let answered = Instant::now();
    concurrent(&client, 3).await;
    let seen = arrivals(&log);
    assert_eq!(seen.len(), 4);
    for at in &seen[1..] {
        // The reset is whole Unix seconds 2 s ahead: the hold is over 1 s.
        let held = at.duration_since(answered);
        assert!(held >= Duration::from_millis(990), "{held:?}");
        assert!(held < Duration::from_millis(2500), "{held:?}");
    }
    let s = client.stats();
    assert_eq!((s.requests, s.throttled_waits, s.rate_limited), (4, 3, 0));
    // Remaining is 50 now: no further hold.
    let t0 = Instant::now();
    client.get_task("after").await.expect("after");
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert_eq!(client.stats().throttled_waits, 3);
}

/// `/api/v1/tasks/:id` advertising `X-RateLimit-Limit: 600` with plenty remaining.
async fn advertising_server() -> (TestServer, Arrivals) {
    let log = Arrivals::default();
    let app = Router::new()
        .route(
            "/api/v1/tasks/{id}",
            get(|State(log): State<Arrivals>| async move {
                log.lock().expect("lock").push(Instant::now());
                let mut resp = testutil::ok(json!({"id": "t", "name": "n"}));
                let h = resp.headers_mut();
                h.insert("x-ratelimit-limit", header::HeaderValue::from_static("600"));
                h.insert(
                    "x-ratelimit-remaining",
                    header::HeaderValue::from_static("550"),
                );
                resp
            }),
        )
        .with_state(Arc::clone(&log));
    (TestServer::start(app).await, log)
}

/// Issue 13.3: with no budget set by the user, a server that advertises 600/min is paced
/// at 540/min (111 ms apart after the burst), not at the default 100/min (600 ms apart:
/// 25 requests took 9 s); a budget the user set is held to as set.
#[tokio::test]
async fn a_default_client_follows_the_servers_advertised_limit() {
    let (server, log) = advertising_server().await;
    let defaults = ApiConfig::new(server.url(), Token::new(SECRET).expect("token"));
    assert!(defaults.rate_limit_from_server);
    let cfg = ApiConfig {
        rate_limit_per_minute: defaults.rate_limit_per_minute,
        rate_limit_from_server: defaults.rate_limit_from_server,
        rate_limit_burst: defaults.rate_limit_burst,
        ..testutil::config(&server)
    };
    let client = TitanClient::new(cfg).expect("client");
    let t0 = Instant::now();
    for i in 0..25 {
        client.get_task(&format!("t{i}")).await.expect("task");
    }
    let elapsed = t0.elapsed();
    // 10 at once, then 15 × 111 ms ≈ 1.67 s: paced, but by the server's limit.
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    let at = arrivals(&log);
    let gap = at[24] - at[23];
    assert!(
        gap >= Duration::from_millis(80) && gap < Duration::from_millis(300),
        "{gap:?}"
    );

    // The user's own 100/min: the 12th request is 1.2 s after the first.
    let (server, log) = advertising_server().await;
    let fixed = TitanClient::new(ApiConfig {
        rate_limit_per_minute: Some(100),
        rate_limit_from_server: false,
        rate_limit_burst: 10,
        ..testutil::config(&server)
    })
    .expect("client");
    for i in 0..12 {
        fixed.get_task(&format!("t{i}")).await.expect("task");
    }
    let at = arrivals(&log);
    let span = at[11] - at[0];
    assert!(span >= Duration::from_millis(1100), "{span:?}");
}
