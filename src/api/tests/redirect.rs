//! Redirects: the token only to the API origin, loops bounded.

use super::*;
use crate::api::testutil::{self, SECRET, Seen, TestServer};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;

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
        // The CDN (another port) is another origin: media redirects need it listed.
        media_allowed_hosts: vec!["127.0.0.1".into()],
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
