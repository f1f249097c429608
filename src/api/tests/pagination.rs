//! `limit`/`offset` pagination against scripted servers: bare arrays, wrapped lists,
//! silent page caps, servers that ignore offset or paging.

use super::*;
use crate::api::testutil::{self, TestServer};
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

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

/// Issue 13.10: a server that alternates two full pages (offset 0, 200, 400… → A;
/// 100, 300… → B) used to be paged to the 10,000-page limit; the cycle is caught on the
/// first return to an earlier page.
#[tokio::test]
async fn pages_that_cycle_are_a_protocol_error_at_the_first_repeat() {
    let app = Router::new().route(
        "/api/v1/tasks",
        get(|Query(p): Query<Page>| async move {
            let a_page = (p.offset.unwrap_or(0) / 100) % 2 == 0;
            let items = if a_page {
                tasks(0..100)
            } else {
                tasks(100..200)
            };
            testutil::ok(json!(items))
        }),
    );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let err = tokio::time::timeout(Duration::from_secs(20), client.list_tasks())
        .await
        .expect("ends long before the page limit")
        .expect_err("cycle");
    assert_eq!(err.kind(), ApiErrorKind::Protocol);
    assert!(
        err.to_string()
            .ends_with("the page at offset 200 repeats an earlier page; the listing cycles"),
        "{err}"
    );
    assert_eq!(client.stats().requests, 3);
}

/// Issue 13.10: an execution that shows up on two pages (a new one was inserted at the
/// head while paging, shifting the rest) is returned once.
#[tokio::test]
async fn an_execution_listed_on_two_pages_is_returned_once() {
    let app = Router::new().route(
        "/api/v1/executions",
        get(|Query(p): Query<Page>| async move {
            let exec = |i: usize| json!({"id": format!("e{i}"), "status": "completed"});
            let items: Vec<_> = match p.offset.unwrap_or(0) {
                // e99 is listed again at the top of the second page.
                0 => (0..100).map(exec).collect(),
                100 => (99..150).map(exec).collect(),
                _ => Vec::new(),
            };
            testutil::ok(json!({"executions": items, "total": 151, "limit": 100}))
        }),
    );
    let server = TestServer::start(app).await;
    let client = client(&server);
    let got = client.list_executions().await.expect("list");
    let ids: Vec<String> = got.into_iter().map(|e| e.id).collect();
    let want: Vec<String> = (0..150).map(|i| format!("e{i}")).collect();
    assert_eq!(ids, want);
}
