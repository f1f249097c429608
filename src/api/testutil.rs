//! Test-only helpers: a scripted axum server on 127.0.0.1:0 that stops when
//! dropped, Titan-shaped responses, and a fast client config with a known token.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

use super::{ApiConfig, RetryPolicy, Token};

/// The token every test client uses; tests assert it never leaks.
pub(crate) const SECRET: &str = "tok-SECRET-0123456789";

/// A loopback server running `router` until dropped.
pub(crate) struct TestServer {
    pub addr: SocketAddr,
    handle: JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test invariant: loopback bind succeeds");
        let addr = listener
            .local_addr()
            .expect("test invariant: bound socket has an address");
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        TestServer { addr, handle }
    }

    pub(crate) fn url(&self) -> Url {
        Url::parse(&format!("http://{}", self.addr)).expect("test invariant: valid URL")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Client config for `server`: the test token, short timeouts, millisecond backoffs.
pub(crate) fn config(server: &TestServer) -> ApiConfig {
    let mut cfg = ApiConfig::new(
        server.url(),
        Token::new(SECRET).expect("test token is valid"),
    );
    // Tests that are not about the budget should not be paced by it.
    cfg.rate_limit_per_minute = None;
    cfg.timeout = Duration::from_secs(5);
    cfg.read_timeout = Duration::from_secs(5);
    cfg.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        multiplier: 2.0,
        jitter: 0.2,
        max_elapsed: Duration::from_secs(10),
    };
    cfg
}

/// `200 {"success": true, "data": data}`.
pub(crate) fn ok(data: Value) -> Response {
    axum::Json(json!({"success": true, "data": data})).into_response()
}

/// `status {"success": false, "error": {code, message}}`.
pub(crate) fn err(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("test invariant: valid status");
    let body = json!({"success": false, "error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// Request headers seen by a server, in arrival order.
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<HeaderMap>>>);

impl Seen {
    pub(crate) fn push(&self, headers: HeaderMap) {
        self.0
            .lock()
            .expect("test invariant: lock not poisoned")
            .push(headers);
    }

    pub(crate) fn all(&self) -> Vec<HeaderMap> {
        self.0
            .lock()
            .expect("test invariant: lock not poisoned")
            .clone()
    }
}
