//! Fault injection over HTTP: each fault as a client sees it, predicted from the seed.

use super::{BASE, TOKEN, assert_error, client, get, sim_from};
use crate::export::ExportChunks;
use crate::faults::{self, BAD_GATEWAY_HTML, ERROR_PAGE_HTML, FaultKind, planned_fault};
use crate::format::ExportFormat;
use crate::*;
use serde_json::Value;
use std::time::Instant;

fn with_faults(table: &str) -> String {
    format!("{BASE}\n[faults]\n{table}\n")
}

fn config(toml: &str) -> Scenario {
    Scenario::from_toml_str(toml).expect("test scenario is valid")
}

/// Body bytes until the stream ends or fails, and the error if it failed.
async fn read_all(mut r: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut got = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

/// The unfaulted export body, and the prefix a split fault drawn as the `n`-th request sends.
fn expected(
    sc: &Scenario,
    sim: &RunningSim,
    exec: &str,
    f: ExportFormat,
    path: &str,
    n: u64,
) -> (Vec<u8>, Vec<u8>) {
    let task = &sc.tasks[0];
    let rows = task
        .executions
        .iter()
        .find(|e| e.id == exec)
        .expect("exec")
        .rows;
    let make = || ExportChunks::new(sc.seed, task, exec, rows, f, &sim.base_url());
    let full: Vec<u8> = make().flat_map(|c| c.to_vec()).collect();
    let plan = faults::draw(&sc.faults, sc.seed, path, n).expect("a fault is drawn");
    let (row, salt) = plan.split(rows);
    let mut it = make().split_in_row(row, salt);
    let mut prefix = Vec::new();
    while let Some(c) = it.next() {
        prefix.extend_from_slice(&c);
        if it.take_split_hit() {
            break;
        }
    }
    assert!(prefix.len() < full.len());
    (full, prefix)
}

#[tokio::test]
async fn status_faults_follow_the_seeded_plan() {
    let toml = with_faults("error_rate = 0.6\nrate_limit_burst_rate = 0.3");
    let sc = config(&toml);
    let sim = sim_from(&toml).await;
    let path = "/api/v1/executions/done";
    let mut seen = std::collections::HashSet::new();
    for n in 0..40u64 {
        if n == 5 {
            // A wrong token stays 401 and does not advance the path's fault sequence.
            let r = client()
                .get(format!("{}{path}", sim.base_url()))
                .bearer_auth("wrong")
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 401);
        }
        let want = planned_fault(&sc.faults, 42, path, n);
        seen.insert(want);
        let r = get(&sim, path).await;
        let status = r.status().as_u16();
        let h = r.headers().clone();
        assert!(h.get("retry-after").is_none());
        let text = r.text().await.expect("body");
        match want {
            None => {
                assert_eq!(status, 200, "request {n}");
                let v: Value = serde_json::from_str(&text).expect("json");
                assert_eq!(v["data"]["id"], "done");
            }
            Some(FaultKind::BadGateway) => {
                assert_eq!(
                    (status, h["content-type"].to_str().ok()),
                    (502, Some("text/html"))
                );
                assert_eq!(text, BAD_GATEWAY_HTML);
            }
            Some(kind) => {
                let (code, name) = match kind {
                    FaultKind::InternalError => (500, "INTERNAL_SERVER_ERROR"),
                    FaultKind::Unavailable => (503, "SERVICE_UNAVAILABLE"),
                    FaultKind::RateLimitBurst => (429, "TOO_MANY_REQUESTS"),
                    other => panic!("{other:?} on a JSON route"),
                };
                assert_eq!(status, code, "request {n}");
                assert_eq!(h["content-type"], "application/json");
                assert_error(&serde_json::from_str(&text).expect("json"), name);
                if kind == FaultKind::RateLimitBurst {
                    let now = chrono::Utc::now().timestamp();
                    let reset: i64 = h["x-ratelimit-reset"]
                        .to_str()
                        .expect("ascii")
                        .parse()
                        .expect("unix seconds");
                    assert!((now..=now + 1).contains(&reset), "reset {reset}, now {now}");
                    assert_eq!(h["x-ratelimit-remaining"], "0");
                    assert!(h.contains_key("x-ratelimit-limit"));
                }
            }
        }
    }
    assert_eq!(seen.len(), 5, "the test should see every outcome: {seen:?}");
    let counts = sim.faults_injected();
    let log = sim.requests();
    for kind in FaultKind::ALL {
        let logged = log.iter().filter(|r| r.fault == Some(kind)).count() as u64;
        assert_eq!(counts.get(kind), logged, "{kind:?}");
    }
    assert_eq!(
        counts.total(),
        (0..40)
            .filter(|n| planned_fault(&sc.faults, 42, path, *n).is_some())
            .count() as u64
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn truncated_export_is_an_unterminated_chunked_body() {
    let toml = with_faults("truncate_rate = 1.0");
    let sc = config(&toml);
    let sim = sim_from(&toml).await;
    for (path, f) in [
        ("/api/v1/executions/done/results/export", ExportFormat::Json),
        (
            "/api/v1/executions/done/results/download",
            ExportFormat::Csv,
        ),
    ] {
        let r = get(&sim, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["transfer-encoding"], "chunked");
        let (got, err) = read_all(r).await;
        assert!(err.is_some(), "{path}: the body must fail, not end cleanly");
        let (full, prefix) = expected(&sc, &sim, "done", f, path, 0);
        assert_eq!(got, prefix, "{path}: exactly the bytes before the cut");
        assert!(got.len() < full.len());
    }
    assert_eq!(sim.faults_injected().truncate, 2);
    assert!(
        sim.requests()
            .iter()
            .all(|r| (r.status, r.fault) == (200, Some(FaultKind::Truncate)))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn stalled_export_trips_a_read_timeout_then_resumes() {
    let toml = with_faults("stall_rate = 1.0\nstall_for = '400ms'");
    let sc = config(&toml);
    let sim = sim_from(&toml).await;
    let path = "/api/v1/executions/done/results/export";
    let impatient = reqwest::Client::builder()
        .read_timeout(Duration::from_millis(150))
        .build()
        .expect("client");
    let r = impatient
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("head arrives");
    let (got, err) = read_all(r).await;
    assert!(
        err.is_some_and(|e| e.is_timeout()),
        "the read timeout fires"
    );
    let (full, prefix) = expected(&sc, &sim, "done", ExportFormat::Json, path, 0);
    assert_eq!(got, prefix);
    // A patient client gets the whole body, at least `stall_for` late.
    let started = Instant::now();
    let (got, err) = read_all(get(&sim, path).await).await;
    assert!(err.is_none());
    assert_eq!(got, full);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(sim.faults_injected().stall, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_drip_sends_small_chunks_slowly() {
    let toml = with_faults("slow_drip_rate = 1.0\nslow_drip_chunk = 2048\nslow_drip_delay = '3ms'");
    let sc = config(&toml);
    let sim = sim_from(&toml).await;
    let path = "/api/v1/executions/done/results/export?format=csv";
    let started = Instant::now();
    let mut r = get(&sim, path).await;
    assert_eq!(r.status(), 200);
    let mut got = Vec::new();
    while let Some(c) = r.chunk().await.expect("clean body") {
        assert!(c.len() <= 2048, "piece of {} bytes", c.len());
        got.extend_from_slice(&c);
    }
    let task = &sc.tasks[0];
    let full: Vec<u8> =
        ExportChunks::new(42, task, "done", 300, ExportFormat::Csv, &sim.base_url())
            .flat_map(|c| c.to_vec())
            .collect();
    assert_eq!(got, full);
    let pieces = full.len().div_ceil(2048) as u32;
    assert!(pieces > 5, "{pieces}");
    assert!(started.elapsed() >= Duration::from_millis(3) * (pieces - 1));
    assert_eq!(sim.faults_injected().slow_drip, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn html_and_error_envelope_with_200() {
    let toml = with_faults("html_200_rate = 0.5\nerror_envelope_200_rate = 0.5");
    let sc = config(&toml);
    let sim = sim_from(&toml).await;
    let path = "/api/v1/executions/partial/results/export";
    for n in 0..6 {
        let r = get(&sim, path).await;
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let text = r.text().await.expect("body");
        match planned_fault(&sc.faults, 42, path, n) {
            Some(FaultKind::Html200) => {
                assert_eq!(
                    (ct.as_str(), text.as_str()),
                    ("text/html; charset=utf-8", ERROR_PAGE_HTML)
                );
            }
            Some(FaultKind::ErrorEnvelope200) => {
                assert_eq!(ct, "application/json");
                let v: Value = serde_json::from_str(&text).expect("json");
                assert_error(&v, "EXPORT_FAILED");
            }
            other => panic!("request {n}: {other:?}"),
        }
    }
    let c = sim.faults_injected();
    assert_eq!((c.html_200 + c.error_envelope_200, c.total()), (6, 6));
    assert!(c.html_200 > 0 && c.error_envelope_200 > 0, "{c:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn body_faults_need_results_and_the_cap_holds() {
    let toml = with_faults("truncate_rate = 1.0\nmax_faults_per_execution = 1");
    let sim = sim_from(&toml).await;
    // Not ready yet: a 404, and no fault is spent.
    let r = get(&sim, "/api/v1/executions/slow/results/export").await;
    assert_eq!(r.status(), 404);
    assert_error(&r.json().await.expect("json"), "NOT_FOUND");
    assert_eq!(sim.faults_injected().total(), 0);
    // First export truncated, the second clean: the execution used its one fault.
    let path = "/api/v1/executions/done/results/export";
    let (_, err) = read_all(get(&sim, path).await).await;
    assert!(err.is_some());
    let (body, err) = read_all(get(&sim, path).await).await;
    assert!(err.is_none());
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&body)
            .expect("json")
            .len(),
        300
    );
    // Another execution has its own budget.
    let (_, err) = read_all(get(&sim, "/api/v1/executions/partial/results/download").await).await;
    assert!(err.is_some());
    let faults: Vec<Option<FaultKind>> = sim.requests().iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        [
            None,
            Some(FaultKind::Truncate),
            None,
            Some(FaultKind::Truncate)
        ]
    );
    assert_eq!(sim.faults_injected().truncate, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn json_only_faults_leave_exports_and_media_alone() {
    let toml = with_faults("error_rate = 1.0\nfault_routes = ['json']");
    let sim = sim_from(&toml).await;
    assert_eq!(get(&sim, "/api/v1/tasks").await.status().as_u16() / 100, 5);
    let (body, err) = read_all(get(&sim, "/api/v1/executions/done/results/export").await).await;
    assert!(err.is_none() && body.starts_with(b"[{"));
    let media = get(&sim, "/api/v1/executions/done/media/m-0-5/download").await;
    assert_eq!(media.status(), 200);
    assert_eq!(sim.faults_injected().total(), 1);
    sim.shutdown().await;
}
