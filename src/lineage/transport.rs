//! Delivery of OpenLineage events: HTTP POST with bounded retries, and a file of one
//! event per line. Invariant: [`Delivery::deliver`] never returns an error and never
//! takes longer than [`super::HttpSettings::bound`]; what could not be delivered is
//! logged as a warning (without the key, and without the URL's credentials if any).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use tracing::{debug, warn};

use super::{HttpSettings, Transports};

/// Pause before the second attempt; doubled for each later one, capped at [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(#[source] reqwest::Error),
    #[error("the receiver answered {status}")]
    Status { status: StatusCode },
    #[error("cannot append to `{path}`: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LineageError {
    /// Worth another attempt: no answer, a broken connection, 408, 429, 5xx.
    fn is_retryable(&self) -> bool {
        match self {
            LineageError::Timeout(_) | LineageError::Transport(_) => true,
            LineageError::Status { status } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            LineageError::File { .. } => false,
        }
    }
}

/// The pause before attempt `attempt + 1` (1-based `attempt`).
fn backoff(attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    (FIRST_BACKOFF * factor).min(MAX_BACKOFF)
}

/// All pauses of `max_attempts` attempts.
pub fn backoff_total(max_attempts: u32) -> Duration {
    (1..max_attempts).map(backoff).sum()
}

/// The configured transports, ready to send.
#[derive(Debug)]
pub struct Delivery {
    http: Option<(reqwest::Client, HttpSettings)>,
    file: Option<PathBuf>,
}

impl Delivery {
    pub fn new(t: &Transports) -> Delivery {
        let http = t.http.as_ref().and_then(|s| {
            match reqwest::Client::builder()
                .timeout(s.timeout)
                .connect_timeout(s.timeout)
                .user_agent(concat!("titan-connector/", env!("CARGO_PKG_VERSION")))
                .build()
            {
                Ok(c) => Some((c, s.clone())),
                Err(e) => {
                    warn!(error = %e.without_url(), "OpenLineage HTTP transport unavailable; events not sent");
                    None
                }
            }
        });
        Delivery {
            http,
            file: t.file.clone(),
        }
    }

    /// Sends `event` to every transport; failures are logged, never returned.
    pub async fn deliver(&self, event: &serde_json::Value) {
        let kind = event["eventType"].as_str().unwrap_or("?");
        let body = match serde_json::to_vec(event) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "OpenLineage event not serialisable; not sent");
                return;
            }
        };
        if let Some(path) = &self.file
            && let Err(e) = append_line(path, &body)
        {
            warn!(event = kind, error = %e, "OpenLineage event not written");
        }
        if let Some((client, s)) = &self.http {
            match post(client, s, &body).await {
                Ok(attempts) => debug!(event = kind, attempts, "OpenLineage event sent"),
                Err((attempts, e)) => warn!(
                    event = kind,
                    endpoint = %shown(&s.endpoint),
                    attempts,
                    error = %e,
                    "OpenLineage event not delivered; the run goes on without it"
                ),
            }
        }
    }
}

/// The endpoint as logged: without user info, query or fragment.
fn shown(u: &url::Url) -> String {
    crate::sink::store::redact_url(u)
}

/// POSTs `body` until it is accepted, a non-retryable answer comes, or the attempts are
/// spent. Returns the attempts made.
async fn post(
    client: &reqwest::Client,
    s: &HttpSettings,
    body: &[u8],
) -> Result<u32, (u32, LineageError)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req = client
            .post(s.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(key) = &s.api_key {
            req = req.bearer_auth(key.expose());
        }
        // reqwest's own timeout covers the whole exchange; this one also covers a
        // connect that never ends on a platform where that is not enforced.
        let result = match tokio::time::timeout(s.timeout, req.send()).await {
            Err(_) => Err(LineageError::Timeout(s.timeout)),
            Ok(Err(e)) if e.is_timeout() => Err(LineageError::Timeout(s.timeout)),
            Ok(Err(e)) => Err(LineageError::Transport(e.without_url())),
            Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
            Ok(Ok(resp)) => Err(LineageError::Status {
                status: resp.status(),
            }),
        };
        match result {
            Ok(()) => return Ok(attempt),
            Err(e) if e.is_retryable() && attempt < s.max_attempts => {
                debug!(attempt, error = %e, "OpenLineage event not accepted, retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err((attempt, e)),
        }
    }
}

/// Appends `body` and a newline in one write, so concurrent writers (shards sharing a
/// file on one machine) never interleave inside a line.
fn append_line(path: &Path, body: &[u8]) -> Result<(), LineageError> {
    let err = |source| LineageError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut line = Vec::with_capacity(body.len() + 1);
    line.extend_from_slice(body);
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(&line).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_250ms_and_is_capped() {
        let got: Vec<u64> = (1..=6).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(got, [250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(backoff_total(1), Duration::ZERO);
        assert_eq!(backoff_total(3), Duration::from_millis(750));
    }

    #[test]
    fn only_transient_answers_are_retried() {
        let status = |s: u16| LineageError::Status {
            status: StatusCode::from_u16(s).unwrap(),
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(status(408).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(LineageError::Timeout(Duration::from_secs(1)).is_retryable());
    }

    #[test]
    fn the_file_gets_one_event_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        append_line(&path, br#"{"eventType":"START"}"#).unwrap();
        append_line(&path, br#"{"eventType":"COMPLETE"}"#).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"eventType\":\"START\"}\n{\"eventType\":\"COMPLETE\"}\n"
        );
        let missing = dir.path().join("no/such/dir/events.ndjson");
        let e = append_line(&missing, b"{}").unwrap_err();
        assert!(e.to_string().starts_with("cannot append to `"), "{e}");
    }
}
