//! `TitanClient::media_url` against loopback servers: each branch (media id,
//! URL on the API origin, allowed foreign host), the allow-list denial, the
//! token never leaving the API origin, size limits, and query-free errors.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::json;

use crate::api::testutil::{self, SECRET, TestServer};
use crate::api::*;

/// One request as a server saw it.
#[derive(Clone, Debug)]
struct Hit {
    uri: String,
    headers: HeaderMap,
}

impl Hit {
    fn has_token(&self) -> bool {
        self.headers.contains_key("authorization")
            || self.headers.contains_key("x-api-key")
            || self
                .headers
                .values()
                .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(SECRET))
    }

    fn bearer(&self) -> Option<&[u8]> {
        self.headers.get("authorization").map(|v| v.as_bytes())
    }
}

type Hits = Arc<Mutex<Vec<Hit>>>;

fn hits(log: &Hits) -> Vec<Hit> {
    log.lock().expect("lock").clone()
}

fn record(log: &Hits, uri: &Uri, headers: HeaderMap) {
    log.lock().expect("lock").push(Hit {
        uri: uri.to_string(),
        headers,
    });
}

/// A "CDN" on its own loopback port: `/cdn/{name}` answers `cdn:{name}` as a
/// PNG; `/cdn/denied` answers the CDN's bare `{"error": …}` echoing the query.
async fn cdn() -> (TestServer, Hits) {
    let log = Hits::default();
    let app = Router::new()
        .route(
            "/cdn/denied",
            get(
                |State(log): State<Hits>, uri: Uri, headers: HeaderMap| async move {
                    record(&log, &uri, headers);
                    let query = uri.query().unwrap_or_default().to_owned();
                    let message = format!(
                        "signature {} expired for /cdn/denied?{query}",
                        query.trim_start_matches("token=")
                    );
                    (StatusCode::FORBIDDEN, axum::Json(json!({"error": message})))
                },
            ),
        )
        .route(
            "/cdn/{name}",
            get(
                |State(log): State<Hits>,
                 axum::extract::Path(name): axum::extract::Path<String>,
                 uri: Uri,
                 headers: HeaderMap| async move {
                    record(&log, &uri, headers);
                    ([(header::CONTENT_TYPE, "image/png")], format!("cdn:{name}"))
                },
            ),
        )
        .with_state(Arc::clone(&log));
    (TestServer::start(app).await, log)
}

/// The API: the media download route answers `api:{media_id}`, except `to-cdn`,
/// which redirects to `cdn_target`; `/media/{name}` is the CDN path on the API origin.
async fn api(cdn_target: String) -> (TestServer, Hits) {
    let log = Hits::default();
    let app = Router::new()
        .route(
            "/api/v1/executions/{exec}/media/{media}/download",
            get(
                |State((log, target)): State<(Hits, String)>,
                 axum::extract::Path((_exec, media)): axum::extract::Path<(String, String)>,
                 uri: Uri,
                 headers: HeaderMap| async move {
                    record(&log, &uri, headers);
                    if media == "to-cdn" {
                        (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
                    } else {
                        (
                            [(header::CONTENT_TYPE, "image/jpeg")],
                            format!("api:{media}"),
                        )
                            .into_response()
                    }
                },
            ),
        )
        .route(
            "/media/{name}",
            get(
                |State((log, _)): State<(Hits, String)>,
                 axum::extract::Path(name): axum::extract::Path<String>,
                 uri: Uri,
                 headers: HeaderMap| async move {
                    record(&log, &uri, headers);
                    (
                        [(header::CONTENT_TYPE, "image/webp")],
                        format!("media:{name}"),
                    )
                },
            ),
        )
        .with_state((Arc::clone(&log), cdn_target));
    (TestServer::start(app).await, log)
}

async fn body_of(s: ExportStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.body.try_collect().await.expect("body");
    chunks.concat()
}

fn client_with(server: &TestServer, allowed: &[&str]) -> TitanClient {
    TitanClient::new(ApiConfig {
        media_allowed_hosts: allowed.iter().map(|h| h.to_string()).collect(),
        ..testutil::config(server)
    })
    .expect("client")
}

#[tokio::test]
async fn bare_media_id_uses_the_executions_download_route_with_the_token() {
    let (server, log) = api(String::new()).await;
    let client = client_with(&server, &[]);
    let s = client.media_url("e1", "m-42").await.expect("media");
    assert_eq!(s.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(s.content_length, Some(8));
    assert_eq!(body_of(s).await, b"api:m-42");
    let seen = hits(&log);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/api/v1/executions/e1/media/m-42/download");
    let bearer = format!("Bearer {SECRET}");
    assert_eq!(seen[0].bearer(), Some(bearer.as_bytes()));
}

#[tokio::test]
async fn urls_on_the_api_origin_get_the_token_and_keep_their_query() {
    let (server, log) = api(String::new()).await;
    let client = client_with(&server, &[]);
    let base = server.url();
    let download = format!("{base}api/v1/executions/e1/media/m1/download");
    let signed = format!("{base}media/a.png?token=sig");
    assert_eq!(
        body_of(client.media_url("e1", &download).await.expect("download")).await,
        b"api:m1"
    );
    let s = client.media_url("e1", &signed).await.expect("cdn path");
    assert_eq!(s.content_type.as_deref(), Some("image/webp"));
    assert_eq!(body_of(s).await, b"media:a.png");
    assert_eq!(
        body_of(
            client
                .media_url("e1", "/media/b.png?token=sig2")
                .await
                .expect("relative")
        )
        .await,
        b"media:b.png"
    );
    let seen = hits(&log);
    let uris: Vec<&str> = seen.iter().map(|h| h.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "/api/v1/executions/e1/media/m1/download",
            "/media/a.png?token=sig",
            "/media/b.png?token=sig2"
        ]
    );
    let bearer = format!("Bearer {SECRET}");
    assert!(seen.iter().all(|h| h.bearer() == Some(bearer.as_bytes())));
}

#[tokio::test]
async fn allowed_foreign_host_is_fetched_without_the_token() {
    let (cdn, cdn_log) = cdn().await;
    let (server, api_log) = api(String::new()).await;
    // Same IP, another port: another origin, so the allow list decides.
    let client = client_with(&server, &["127.0.0.1"]);
    let value = format!("http://127.0.0.1:{}/cdn/x.png?token=sig", cdn.addr.port());
    let s = client.media_url("e1", &value).await.expect("allowed host");
    assert_eq!(s.content_type.as_deref(), Some("image/png"));
    assert_eq!(body_of(s).await, b"cdn:x.png");
    let seen = hits(&cdn_log);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/cdn/x.png?token=sig");
    assert!(!seen[0].has_token(), "{:?}", seen[0].headers);
    assert!(hits(&api_log).is_empty());
}

#[tokio::test]
async fn foreign_host_not_in_the_allow_list_is_refused_unsent() {
    let (cdn, cdn_log) = cdn().await;
    let (server, _) = api(String::new()).await;
    let value = format!("http://127.0.0.1:{}/cdn/x.png?token=sig", cdn.addr.port());
    for allowed in [&[][..], &["localhost", "*.example.com"][..]] {
        let client = client_with(&server, allowed);
        let err = client.media_url("e1", &value).await.expect_err("refused");
        match &err {
            ApiError::MediaHostNotAllowed { host } => assert_eq!(host, "127.0.0.1"),
            other => panic!("expected MediaHostNotAllowed, got {other:?}"),
        }
        assert_eq!(err.kind(), ApiErrorKind::Refused);
        assert!(!err.is_retryable());
        assert!(!format!("{err} {err:?}").contains("sig"), "{err}");
        assert_eq!(client.stats().requests, 0);
    }
    assert!(hits(&cdn_log).is_empty());
    // Plain http to a non-loopback host is refused before anything is sent.
    let client = client_with(&server, &["cdn.example.com"]);
    let err = client
        .media_url("e1", "http://cdn.example.com/x.png?token=sig")
        .await
        .expect_err("insecure");
    assert!(
        matches!(&err, ApiError::InsecureMediaUrl { origin } if origin == "http://cdn.example.com"),
        "{err:?}"
    );
    assert_eq!(client.stats().requests, 0);
}

#[tokio::test]
async fn cross_origin_redirect_from_the_media_route_drops_the_token_keeps_the_query() {
    let (cdn, cdn_log) = cdn().await;
    let target = format!("http://127.0.0.1:{}/cdn/m1?token=sig", cdn.addr.port());
    let (server, api_log) = api(target).await;
    let absolute = format!("{}api/v1/executions/e1/media/to-cdn/download", server.url());
    for scheme in [AuthScheme::Bearer, AuthScheme::XApiKey] {
        // The redirect target passes the same host policy as a media URL.
        let client = TitanClient::new(ApiConfig {
            auth: scheme,
            media_allowed_hosts: vec!["127.0.0.1".into()],
            ..testutil::config(&server)
        })
        .expect("client");
        for value in ["to-cdn", absolute.as_str()] {
            let s = client.media_url("e1", value).await.expect("redirected");
            assert_eq!(s.content_type.as_deref(), Some("image/png"));
            assert_eq!(body_of(s).await, b"cdn:m1");
        }
        assert_eq!(client.stats().requests, 4);
    }
    let api_seen = hits(&api_log);
    assert_eq!(api_seen.len(), 4);
    assert!(api_seen.iter().all(Hit::has_token));
    let cdn_seen = hits(&cdn_log);
    assert_eq!(cdn_seen.len(), 4);
    for hit in &cdn_seen {
        assert_eq!(hit.uri, "/cdn/m1?token=sig");
        assert!(hit.headers.get("authorization").is_none());
        assert!(hit.headers.get("x-api-key").is_none());
        assert!(!hit.has_token(), "{:?}", hit.headers);
    }
}

#[tokio::test]
async fn redirect_to_plain_http_off_loopback_is_not_followed() {
    let (server, log) = api("http://cdn.example.com/m1?token=sig".into()).await;
    let client = client_with(&server, &[]);
    let err = client
        .media_url("e1", "to-cdn")
        .await
        .expect_err("downgrade");
    assert_eq!(err.kind(), ApiErrorKind::Protocol);
    assert!(
        err.to_string()
            .contains("plain HTTP on http://cdn.example.com"),
        "{err}"
    );
    assert!(!err.to_string().contains("sig"), "{err}");
    assert_eq!((client.stats().requests, hits(&log).len()), (1, 1));
}

#[tokio::test]
async fn foreign_errors_show_origin_and_path_but_never_the_signature() {
    let (cdn, _) = cdn().await;
    let (server, _) = api(String::new()).await;
    let client = client_with(&server, &["127.0.0.1"]);
    let sig = "sig-0123456789abcdef";
    let value = format!(
        "http://127.0.0.1:{}/cdn/denied?token={sig}",
        cdn.addr.port()
    );
    let err = client.media_url("e1", &value).await.expect_err("403");
    match &err {
        ApiError::Forbidden { route, message, .. } => {
            assert_eq!(
                route,
                &format!("http://127.0.0.1:{}/cdn/denied", cdn.addr.port())
            );
            assert_eq!(
                message.as_deref(),
                Some("signature *** expired for /cdn/denied?***")
            );
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let text = format!("{err} {err:?}");
    assert!(!text.contains(sig) && !text.contains("token="), "{text}");
}

/// `/api/v1/executions/e1/media/{id}/download`: `fixed` has a Content-Length
/// of 2000, `chunked` streams 3000 bytes in 500-byte chunks without one.
async fn big_media() -> TestServer {
    let chunked = || {
        let chunks = (0..6).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 500])));
        Body::from_stream(stream::iter(chunks))
    };
    let app = Router::new()
        .route(
            "/api/v1/executions/e1/media/fixed/download",
            get(|| async { vec![b'x'; 2000] }),
        )
        .route(
            "/api/v1/executions/e1/media/chunked/download",
            get(move || async move { chunked() }),
        )
        .route(
            "/api/v1/executions/e1/results/export",
            get(move || async move { chunked() }),
        )
        .route("/cdn/big", get(|| async { vec![b'x'; 2000] }));
    TestServer::start(app).await
}

fn limited(server: &TestServer, limit: u64) -> TitanClient {
    TitanClient::new(ApiConfig {
        max_media_bytes: Some(limit),
        media_allowed_hosts: vec!["localhost".into()],
        ..testutil::config(server)
    })
    .expect("client")
}

#[tokio::test]
async fn oversize_by_content_length_fails_before_reading() {
    let server = big_media().await;
    let client = limited(&server, 1000);
    let err = client
        .media_url("e1", "fixed")
        .await
        .expect_err("too large");
    match &err {
        ApiError::TooLarge {
            route,
            limit,
            length,
        } => {
            assert_eq!(route, "/api/v1/executions/e1/media/fixed/download");
            assert_eq!((*limit, *length), (1000, 2000));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        (err.kind(), err.is_retryable()),
        (ApiErrorKind::Refused, false)
    );
    let stats = client.stats();
    assert_eq!(
        (stats.requests, stats.retries, stats.bytes_downloaded),
        (1, 0, 0)
    );
    // Exactly at the limit is fine.
    let at_limit = limited(&server, 2000);
    assert_eq!(
        body_of(at_limit.media("e1", "fixed").await.expect("fits"))
            .await
            .len(),
        2000
    );
    // On another host the route is origin + path, never the query.
    let value = format!("http://localhost:{}/cdn/big?token=sig", server.addr.port());
    let err = client.media_url("e1", &value).await.expect_err("too large");
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://localhost:{}/cdn/big: media body exceeds max_media_bytes (2000 > 1000 bytes)",
            server.addr.port()
        )
    );
}

#[tokio::test]
async fn oversize_stream_without_content_length_is_cut_at_the_limit() {
    let server = big_media().await;
    let client = limited(&server, 1000);
    let s = client.media_url("e1", "chunked").await.expect("opens");
    assert_eq!(s.content_length, None);
    let mut body = s.body;
    let mut ok_bytes = 0;
    let err = loop {
        match body.next().await.expect("ends with an error, not silently") {
            Ok(chunk) => ok_bytes += chunk.len(),
            Err(e) => break e,
        }
    };
    assert!(ok_bytes <= 1000, "{ok_bytes}");
    match &err {
        ApiError::TooLarge { limit, length, .. } => {
            assert_eq!(*limit, 1000);
            assert!(*length > 1000 && *length <= 1500, "{length}");
            // The error replaces the chunk that crossed the limit.
            assert!(*length as usize - ok_bytes <= 500, "{length} vs {ok_bytes}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        body.next().await.is_none(),
        "the stream stops after TooLarge"
    );
    // Exports are not media: the same body is not limited.
    let export = client
        .export("e1", ExportFormat::Json)
        .await
        .expect("export");
    assert_eq!(body_of(export).await.len(), 3000);
}

/// Issue 13.4: a same-origin media value carries the token, so it may only name a media
/// route of its own execution; any other API path is refused before anything is sent
/// (it used to be fetched with the token and stored as a "media file").
#[tokio::test]
async fn same_origin_values_naming_other_api_routes_are_refused_unsent() {
    let (server, log) = api(String::new()).await;
    let client = client_with(&server, &[]);
    let base = server.url();
    for value in [
        format!("{base}api/v1/tasks"),
        format!("{base}api/v1/executions/e1/results/export"),
        format!("{base}api/v1/executions/e9/media/m1/download"),
        "/api/v1/executions".to_string(),
        "/api/v1/executions/e1/media/m1/download/../../../../tasks?limit=100".to_string(),
    ] {
        let err = client.media_url("e1", &value).await.expect_err(&value);
        assert_eq!(err.kind(), ApiErrorKind::Refused, "{value}");
        assert!(
            err.to_string()
                .ends_with("names an API route that is not a media route of execution e1"),
            "{err}"
        );
    }
    assert_eq!(client.stats().requests, 0);
    assert!(hits(&log).is_empty());
}

/// An API whose media route redirects to whatever `Location` the test set.
async fn redirecting_api(location: String) -> (TestServer, Hits) {
    let log = Hits::default();
    let app = Router::new()
        .route(
            "/api/v1/executions/{exec}/media/{media}/download",
            get(
                |State((log, location)): State<(Hits, String)>, uri: Uri, headers: HeaderMap| async move {
                    record(&log, &uri, headers);
                    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
                },
            ),
        )
        .route(
            "/api/v1/tasks",
            get(|State((log, _)): State<(Hits, String)>, uri: Uri, headers: HeaderMap| async move {
                record(&log, &uri, headers);
                testutil::ok(serde_json::json!([]))
            }),
        )
        .with_state((log.clone(), location));
    (TestServer::start(app).await, log)
}

/// Issue 13.4: redirect targets pass the same host policy as media URLs: a host not in
/// the allow list, a link-local or metadata address (even when listed), or an API route
/// other than this execution's media routes is not followed; nothing is sent to it.
#[tokio::test]
async fn redirects_of_a_media_fetch_pass_the_media_host_policy() {
    let (cdn, cdn_log) = cdn().await;
    let cdn_url = format!("http://127.0.0.1:{}/cdn/m1?token=sig", cdn.addr.port());
    // Not listed: refused, nothing sent to the CDN.
    let (server, _) = redirecting_api(cdn_url.clone()).await;
    let err = client_with(&server, &["cdn.example.com"])
        .media_url("e1", "m1")
        .await
        .expect_err("not listed");
    assert!(
        matches!(&err, ApiError::MediaHostNotAllowed { host } if host == "127.0.0.1"),
        "{err:?}"
    );
    assert!(hits(&cdn_log).is_empty());
    // Listed: followed.
    let s = client_with(&server, &["127.0.0.1"])
        .media_url("e1", "m1")
        .await
        .expect("listed");
    assert_eq!(body_of(s).await, b"cdn:m1");
    // Metadata and link-local addresses: never, even when listed.
    for (location, host) in [
        (
            "http://169.254.169.254/latest/meta-data/iam",
            "169.254.169.254",
        ),
        ("http://[fd00:ec2::254]/latest", "[fd00:ec2::254]"),
        ("https://169.254.10.10/x", "169.254.10.10"),
    ] {
        let (server, _) = redirecting_api(location.to_string()).await;
        let client = client_with(
            &server,
            &["169.254.169.254", "[fd00:ec2::254]", "169.254.10.10"],
        );
        let err = client.media_url("e1", "m1").await.expect_err(location);
        match &err {
            ApiError::BlockedAddress { host: h } => assert_eq!(h, host),
            other => panic!("{location}: expected BlockedAddress, got {other:?}"),
        }
        assert_eq!(err.kind(), ApiErrorKind::Refused);
        assert_eq!(client.stats().requests, 1, "{location}");
    }
    // Back onto the API origin, but not a media route of e1: refused before it is sent
    // with the token.
    let (server, log) = redirecting_api("/api/v1/tasks".into()).await;
    let client = client_with(&server, &[]);
    let err = client.media_url("e1", "m1").await.expect_err("api route");
    assert_eq!(err.kind(), ApiErrorKind::Refused);
    let uris: Vec<String> = hits(&log).into_iter().map(|h| h.uri).collect();
    assert_eq!(uris, ["/api/v1/executions/e1/media/m1/download"]);
}

/// Issue 13.4: an export's redirect is not held to the media allow list, but never
/// reaches a metadata address either.
#[tokio::test]
async fn no_request_ever_follows_a_redirect_to_a_metadata_address() {
    let app = Router::new().route(
        "/api/v1/executions/e1/results/download",
        get(|| async {
            (
                StatusCode::FOUND,
                [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
            )
                .into_response()
        }),
    );
    let server = TestServer::start(app).await;
    let client = TitanClient::new(ApiConfig {
        allow_insecure_http: true,
        ..testutil::config(&server)
    })
    .expect("client");
    let err = client.download_csv("e1").await.expect_err("blocked");
    assert!(
        matches!(&err, ApiError::BlockedAddress { host } if host == "169.254.169.254"),
        "{err:?}"
    );
    assert_eq!(client.stats().requests, 1);
}
