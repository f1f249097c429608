//! In-process tests of the whole simulator over HTTP (127.0.0.1, ephemeral port).

mod faults;

use crate::data::{self, SimValue};
use crate::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(super) const TOKEN: &str = "test-token";

pub(super) const BASE: &str = r#"
seed = 42
token = "test-token"

[[tasks]]
id = "11111111-1111-4111-8111-111111111111"
name = "Products"
output_schema = '''{"type": "object", "required": ["title", "image"], "properties": {
  "title": {"type": "string"}, "price": {"type": "number"}, "count": {"type": "integer"},
  "ok": {"type": "boolean"}, "seen": {"type": "string", "format": "date-time"},
  "image": {"type": "string", "format": "media"}, "thumb": {"type": "string", "format": "media"}}}'''

[[tasks.executions]]
id = "done"
rows = 300

[[tasks.executions]]
id = "slow"
rows = 5
queued_for = "300ms"
running_for = "600ms"

[[tasks.executions]]
id = "broken"
rows = 5
final_status = "failed"
error = "worker crashed"

[[tasks.executions]]
id = "partial"
rows = 7
final_status = "completed_with_errors"

[[tasks]]
id = "22222222-2222-4222-8222-222222222222"
name = "News"
output_schema = { type = "object", properties = { headline = { type = "string" } } }

[[tasks.executions]]
id = "news-1"
rows = 2
"#;

pub(super) async fn sim_from(toml: &str) -> RunningSim {
    let scenario = Scenario::from_toml_str(toml).expect("test scenario is valid");
    start(scenario, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim starts")
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

pub(super) async fn get(sim: &RunningSim, path: &str) -> reqwest::Response {
    get_url(&format!("{}{path}", sim.base_url())).await
}

/// A GET of a whole URL (a media link, say) with the token, not following redirects.
pub(super) async fn get_url(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request succeeds")
}

pub(super) async fn get_json(sim: &RunningSim, path: &str) -> (StatusCode, Value) {
    let r = get(sim, path).await;
    let status = r.status();
    (status, r.json().await.expect("json body"))
}

pub(super) fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
}

#[tokio::test]
async fn envelope_task_and_execution_objects() {
    let sim = sim_from(BASE).await;
    assert_eq!(
        sim.base_url(),
        format!("http://127.0.0.1:{}", sim.addr().port())
    );
    let r = get(&sim, "/api/v1/tasks").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit"], "1000000");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "999999");
    assert!(r.headers().get("x-ratelimit-reset").is_none());
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["success"], true);
    let tasks = body["data"].as_array().expect("bare array by default");
    assert_eq!(tasks.len(), 2);
    let t = &tasks[0];
    assert_eq!(t["id"], "11111111-1111-4111-8111-111111111111");
    assert_eq!(t["name"], "Products");
    assert_eq!(t["status"], "active");
    assert_eq!(t["execution_type"], "single");
    let props: Vec<&String> = t["output_schema"]["properties"]
        .as_object()
        .expect("object")
        .keys()
        .collect();
    assert_eq!(
        props,
        ["title", "price", "count", "ok", "seen", "image", "thumb"]
    );
    for k in ["created_at", "updated_at"] {
        assert!(
            chrono::DateTime::parse_from_rfc3339(t[k].as_str().expect("string")).is_ok(),
            "{k}"
        );
    }

    let (s, one) = get_json(&sim, "/api/v1/tasks/22222222-2222-4222-8222-222222222222").await;
    assert_eq!(s, 200);
    assert_eq!(one["data"]["name"], "News");

    let (s, e) = get_json(&sim, "/api/v1/executions/broken").await;
    assert_eq!(s, 200);
    let e = &e["data"];
    let keys: Vec<&String> = e.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "task_id",
            "status",
            "created_at",
            "updated_at",
            "started_at",
            "completed_at",
            "error"
        ]
    );
    assert_eq!(e["task_id"], "11111111-1111-4111-8111-111111111111");
    assert_eq!(e["status"], "failed");
    assert_eq!(e["error"], "worker crashed");
    let (s, e) = get_json(&sim, "/api/v1/executions/partial").await;
    assert_eq!(
        (s, &e["data"]["status"], &e["data"]["error"]),
        (
            StatusCode::OK,
            &json!("completed_with_errors"),
            &Value::Null
        )
    );

    for path in [
        "/api/v1/tasks/nope",
        "/api/v1/executions/nope",
        "/api/v1/executions/nope/results/export",
        "/api/v1/nothing-here",
        "/elsewhere",
    ] {
        let (s, body) = get_json(&sim, path).await;
        assert_eq!(s, 404, "{path}");
        assert_error(&body, "NOT_FOUND");
    }
    let r = client()
        .delete(format!("{}/api/v1/tasks", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_error(&r.json().await.expect("json"), "NOT_FOUND");
    sim.shutdown().await;
}

#[tokio::test]
async fn auth_is_required_and_logged() {
    let sim = sim_from(BASE).await;
    let url = format!("{}/api/v1/tasks", sim.base_url());
    let r = client().get(&url).send().await.expect("send");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-ratelimit-limit"));
    assert_error(&r.json().await.expect("json"), "UNAUTHORIZED");
    let r = client()
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = client()
        .get(&url)
        .header("X-API-Key", TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = client()
        .get(format!("{url}?limit=1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    let log = sim.requests();
    assert_eq!(log.len(), 4);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
        ("GET", "/api/v1/tasks", 401)
    );
    assert_eq!(
        (log[0].authorization.as_deref(), log[0].x_api_key.as_deref()),
        (None, None)
    );
    assert_eq!(log[1].authorization.as_deref(), Some("Bearer wrong"));
    assert_eq!(
        (log[2].x_api_key.as_deref(), log[2].status),
        (Some(TOKEN), 200)
    );
    assert_eq!(
        (log[3].query.as_deref(), log[3].authorization.as_deref()),
        (Some("limit=1"), Some("Bearer test-token"))
    );
    sim.shutdown().await;

    // Header style is enforced per scenario.
    let sim = sim_from(&BASE.replace(
        "token = \"test-token\"",
        "token = \"test-token\"\nauth_header = \"x-api-key\"",
    ))
    .await;
    assert_eq!(get(&sim, "/api/v1/tasks").await.status(), 401);
    let r = client()
        .get(format!("{}/api/v1/tasks", sim.base_url()))
        .header("x-api-key", TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    sim.shutdown().await;
}

fn many_tasks(shape: &str) -> String {
    let mut s =
        format!("token = \"{TOKEN}\"\npage_max = 3\npage_default = 2\nlist_shape = \"{shape}\"\n");
    for i in 0..7 {
        s += &format!(
            "[[tasks]]\nid = \"t{i}\"\nname = \"Task {i}\"\noutput_schema = {{ properties = {{ a = {{}} }} }}\n"
        );
        s += &format!("[[tasks.executions]]\nid = \"e{i}\"\nrows = 1\n");
    }
    s
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn pagination_in_both_list_shapes() {
    let sim = sim_from(&many_tasks("array")).await;
    let (_, b) = get_json(&sim, "/api/v1/tasks?limit=2&offset=3").await;
    assert_eq!(ids(&b["data"]), ["t3", "t4"]);
    let (_, b) = get_json(&sim, "/api/v1/tasks?limit=50").await;
    assert_eq!(
        ids(&b["data"]),
        ["t0", "t1", "t2"],
        "limit clamped to page_max"
    );
    let (_, b) = get_json(&sim, "/api/v1/tasks").await;
    assert_eq!(ids(&b["data"]), ["t0", "t1"], "page_default");
    let (_, b) = get_json(&sim, "/api/v1/tasks?limit=3&offset=6").await;
    assert_eq!(ids(&b["data"]), ["t6"]);
    let (_, b) = get_json(&sim, "/api/v1/tasks?limit=3&offset=60").await;
    assert_eq!(ids(&b["data"]), Vec::<String>::new());
    let (_, b) = get_json(&sim, "/api/v1/executions?limit=3&offset=2").await;
    assert_eq!(ids(&b["data"]), ["e2", "e3", "e4"]);
    let (_, b) = get_json(&sim, "/api/v1/tasks/t5/executions").await;
    assert_eq!(ids(&b["data"]), ["e5"]);
    for bad in ["limit=0", "limit=-1", "limit=x", "offset=1.5"] {
        let (s, b) = get_json(&sim, &format!("/api/v1/tasks?{bad}")).await;
        assert_eq!(s, 400, "{bad}");
        assert_error(&b, "BAD_REQUEST");
    }
    sim.shutdown().await;

    let sim = sim_from(&many_tasks("object")).await;
    let (_, b) = get_json(&sim, "/api/v1/tasks?limit=2&offset=5").await;
    let d = &b["data"];
    assert_eq!(ids(&d["items"]), ["t5", "t6"]);
    assert_eq!(
        (&d["total"], &d["limit"], &d["offset"]),
        (&json!(7), &json!(2), &json!(5))
    );
    let (_, b) = get_json(&sim, "/api/v1/executions?limit=9").await;
    assert_eq!(
        (&b["data"]["limit"], ids(&b["data"]["items"]).len()),
        (&json!(3), 3)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn status_timeline_transitions() {
    let sim = sim_from(BASE).await;
    let (_, q) = get_json(&sim, "/api/v1/executions/slow").await;
    assert_eq!(q["data"]["status"], "queued");
    assert_eq!(
        (&q["data"]["started_at"], &q["data"]["completed_at"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(q["data"]["updated_at"], q["data"]["created_at"]);
    let (s, b) = get_json(&sim, "/api/v1/executions/slow/results/export").await;
    assert_eq!(s, 404, "no export while queued");
    assert_error(&b, "NOT_FOUND");
    let (_, meta) = get_json(&sim, "/api/v1/executions/slow/results").await;
    assert_eq!(
        meta["data"],
        json!({"execution_id": "slow", "available": false, "record_count": 0, "formats": [], "created_at": null})
    );

    tokio::time::sleep(Duration::from_millis(450)).await;
    let (_, r) = get_json(&sim, "/api/v1/executions/slow").await;
    assert_eq!(r["data"]["status"], "running");
    let started = r["data"]["started_at"]
        .as_str()
        .expect("started_at set")
        .to_owned();
    assert_eq!(r["data"]["completed_at"], Value::Null);
    assert_eq!(
        get(&sim, "/api/v1/executions/slow/results/download")
            .await
            .status(),
        404
    );

    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, c) = get_json(&sim, "/api/v1/executions/slow").await;
    assert_eq!(c["data"]["status"], "completed");
    assert_eq!(c["data"]["started_at"], started.as_str());
    let parse = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("timestamp")).expect("rfc3339")
    };
    let run = parse(&c["data"]["completed_at"]) - parse(&c["data"]["started_at"]);
    assert_eq!(run.num_milliseconds(), 600);
    assert_eq!(c["data"]["updated_at"], c["data"]["completed_at"]);
    let (_, meta) = get_json(&sim, "/api/v1/executions/slow/results").await;
    assert_eq!(
        (&meta["data"]["available"], &meta["data"]["record_count"]),
        (&json!(true), &json!(5))
    );
    assert_eq!(
        get(&sim, "/api/v1/executions/slow/results/export")
            .await
            .status(),
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn json_export_matches_generated_rows() {
    let sim = sim_from(BASE).await;
    let r = get(&sim, "/api/v1/executions/done/results/export").await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"done.json\""
    );
    assert!(h.get("content-length").is_none(), "streamed body");
    assert_eq!(h["transfer-encoding"], "chunked");
    let bytes = r.bytes().await.expect("body");
    assert!(!bytes.starts_with(b"{\"success\""));
    let rows: Vec<serde_json::Map<String, Value>> =
        serde_json::from_slice(&bytes).expect("a JSON array");
    assert_eq!(rows.len(), 300);
    let task = &Scenario::from_toml_str(BASE).expect("valid").tasks[0];
    for (i, got) in rows.iter().enumerate() {
        let want: Vec<(String, Value)> = data::row(42, task, "done", i as u64, &sim.base_url())
            .into_iter()
            .map(|(k, v)| (k, v.to_json()))
            .collect();
        let got: Vec<(String, Value)> = got.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got, want, "row {i}");
    }
    // Same via explicit format=json.
    let again = get(&sim, "/api/v1/executions/done/results/export?format=json")
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(again, bytes);
    sim.shutdown().await;
}

#[tokio::test]
async fn csv_export_and_download_match_generated_rows() {
    let sim = sim_from(BASE).await;
    let task = Scenario::from_toml_str(BASE)
        .expect("valid")
        .tasks
        .remove(0);
    let mut bodies = Vec::new();
    for path in [
        "/api/v1/executions/partial/results/export?format=csv",
        "/api/v1/executions/partial/results/download",
    ] {
        let r = get(&sim, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
        assert_eq!(
            r.headers()["content-disposition"],
            "attachment; filename=\"partial.csv\""
        );
        bodies.push(r.bytes().await.expect("body"));
    }
    assert_eq!(bodies[0], bodies[1]);
    let mut rd = csv::Reader::from_reader(bodies[0].as_ref());
    assert_eq!(
        rd.headers().expect("header"),
        vec!["title", "price", "count", "ok", "seen", "image", "thumb"]
    );
    let recs: Vec<csv::StringRecord> = rd.records().collect::<Result<_, _>>().expect("valid csv");
    assert_eq!(recs.len(), 7);
    for (i, rec) in recs.iter().enumerate() {
        let want: Vec<String> = data::row(42, &task, "partial", i as u64, &sim.base_url())
            .iter()
            .map(|(_, v)| v.to_csv_field())
            .collect();
        assert_eq!(rec.iter().collect::<Vec<_>>(), want, "row {i}");
    }
    let (s, b) = get_json(&sim, "/api/v1/executions/partial/results/export?format=xml").await;
    assert_eq!(s, 400);
    assert_error(&b, "BAD_REQUEST");
    sim.shutdown().await;
}

#[tokio::test]
async fn no_results_for_failed_or_cancelled() {
    let sim = sim_from(BASE).await;
    for path in [
        "/api/v1/executions/broken/results/export",
        "/api/v1/executions/broken/results/download",
    ] {
        let (s, b) = get_json(&sim, path).await;
        assert_eq!(s, 404, "{path}");
        assert_error(&b, "NOT_FOUND");
    }
    // Stop a queued execution: cancelled, never any results.
    let r = client()
        .post(format!("{}/api/v1/executions/slow/stop", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["data"]["status"], "cancelled");
    assert!(b["data"]["completed_at"].is_string());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, e) = get_json(&sim, "/api/v1/executions/slow").await;
    assert_eq!(e["data"]["status"], "cancelled");
    assert_eq!(
        get(&sim, "/api/v1/executions/slow/results/export")
            .await
            .status(),
        404
    );
    let r = client()
        .post(format!("{}/api/v1/executions/done/stop", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "a completed execution cannot be stopped");
    sim.shutdown().await;
}

#[tokio::test]
async fn pause_and_resume_over_http() {
    let sim = sim_from(BASE).await;
    let post = |p: &'static str| {
        let url = format!("{}/api/v1/executions/slow/{p}", sim.base_url());
        async move {
            client()
                .post(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("send")
        }
    };
    let r = post("pause").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["data"]["status"],
        "paused"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, e) = get_json(&sim, "/api/v1/executions/slow").await;
    assert_eq!(
        e["data"]["status"], "paused",
        "the clock is stopped while paused"
    );
    assert_eq!(post("pause").await.status(), 400);
    let r = post("resume").await;
    assert_eq!(
        r.json::<Value>().await.expect("json")["data"]["status"],
        "queued"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, e) = get_json(&sim, "/api/v1/executions/slow").await;
    assert_eq!(e["data"]["status"], "completed");
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limit_429_with_reset() {
    let sim = sim_from(&BASE.replace("seed = 42", "seed = 42\nrate_limit_per_minute = 3")).await;
    let before = chrono::Utc::now().timestamp();
    for left in ["2", "1", "0"] {
        let r = get(&sim, "/api/v1/tasks").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(r.headers()["x-ratelimit-remaining"], left);
    }
    let r = get(&sim, "/api/v1/tasks").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let reset: i64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("unix seconds");
    assert!(
        (before + 59..=before + 62).contains(&reset),
        "reset {reset}, now {before}"
    );
    assert_error(&r.json().await.expect("json"), "TOO_MANY_REQUESTS");
    assert_eq!(
        sim.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 200, 429]
    );
    sim.shutdown().await;
}

/// First non-null value of media column `col` in execution `exec`: (row, url).
fn media_cell(sim: &RunningSim, exec: &str, col: usize) -> (u64, String) {
    let task = &Scenario::from_toml_str(BASE).expect("valid").tasks[0];
    (0..)
        .find_map(
            |r| match data::value(42, task, exec, r, col, &sim.base_url()) {
                SimValue::Str(url) => Some((r, url)),
                _ => None,
            },
        )
        .expect("some row has a media value")
}

#[tokio::test]
async fn media_download_bytes_and_type() {
    let sim = sim_from(BASE).await;
    let (row, url) = media_cell(&sim, "done", 5);
    assert_eq!(
        url,
        format!(
            "{}/api/v1/executions/done/media/m-{row}-5/download",
            sim.base_url()
        )
    );
    let r = get_url(&url).await;
    assert_eq!(r.status(), 200);
    let (ct, want) = data::media_bytes(42, "done", &format!("m-{row}-5"));
    assert_eq!(r.headers()["content-type"], ct);
    assert_eq!(r.bytes().await.expect("body").as_ref(), want.as_slice());
    // Unknown media ids, non-media columns, rows past the end: 404 envelopes.
    for bad in ["m-0-0", "m-300-5", "m-x-5", "m-0-99"] {
        let (s, b) = get_json(
            &sim,
            &format!("/api/v1/executions/done/media/{bad}/download"),
        )
        .await;
        assert_eq!(s, 404, "{bad}");
        assert_error(&b, "NOT_FOUND");
    }
    assert_eq!(client().get(&url).send().await.expect("send").status(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn media_redirect_to_cdn() {
    let sim = sim_from(&BASE.replace("seed = 42", "seed = 42\nmedia_redirect = true")).await;
    let (row, url) = media_cell(&sim, "done", 6);
    let r = get_url(&url).await;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(
        loc.starts_with(&format!("{}/media/done/m-{row}-6?token=", sim.base_url())),
        "{loc}"
    );
    let r = client().get(&loc).send().await.expect("send");
    assert_eq!(r.status(), 200, "CDN needs no auth header");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        data::media_bytes(42, "done", &format!("m-{row}-6"))
            .1
            .as_slice()
    );
    let forged = format!("{}/media/done/m-{row}-6?token=0000", sim.base_url());
    let r = client().get(&forged).send().await.expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": "invalid or expired media token"})
    );
    sim.shutdown().await;
}

/// Row `r`'s media link (column 5 of execution `done`), fetched with the token: whether
/// `sc` expires it, and the answer. `None` where the cell holds no link.
async fn get_media_link(
    sim: &RunningSim,
    sc: &Scenario,
    r: u64,
) -> Option<(bool, reqwest::Response)> {
    let SimValue::Str(url) = data::value(42, &sc.tasks[0], "done", r, 5, &sim.base_url()) else {
        return None;
    };
    let expired = sc.media_expired("done", &data::media_id(r, 5));
    let resp = get_url(&url).await;
    Some((expired, resp))
}

#[tokio::test]
async fn expired_media_links_answer_403_and_nothing_else_does() {
    let text = BASE.replace("seed = 42", "seed = 42\nexpired_media_rate = 0.5");
    let sc = Scenario::from_toml_str(&text).expect("valid");
    let sim = sim_from(&text).await;
    let mut seen = [0usize; 2];
    for r in 0..40 {
        let Some((expired, resp)) = get_media_link(&sim, &sc, r).await else {
            continue;
        };
        if expired {
            assert_eq!(resp.status(), 403, "row {r}");
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body["error"]["message"], "media link has expired");
            assert_error(&body, "FORBIDDEN");
        } else {
            assert_eq!(resp.status(), 200, "row {r}");
        }
        seen[usize::from(expired)] += 1;
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both kinds occur: {seen:?}");
    // The token itself is still good on the API routes.
    let (s, _) = get_json(&sim, "/api/v1/executions/done").await;
    assert_eq!(s, 200);
    sim.shutdown().await;

    // Behind the CDN the API redirects every link, and the signed link is what expires,
    // with the CDN's own error shape.
    let text = text.replace("seed = 42", "seed = 42\nmedia_redirect = true");
    let sim = sim_from(&text).await;
    let mut seen = [0usize; 2];
    for r in 0..40 {
        let Some((expired, resp)) = get_media_link(&sim, &sc, r).await else {
            continue;
        };
        assert_eq!(resp.status(), 302, "row {r}");
        let cdn = resp.headers()[reqwest::header::LOCATION]
            .to_str()
            .expect("location")
            .to_string();
        let resp = client().get(&cdn).send().await.expect("send");
        if expired {
            assert_eq!(resp.status(), 403, "row {r}");
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body, json!({"error": "media link has expired"}));
        } else {
            assert_eq!(resp.status(), 200, "row {r}");
        }
        seen[usize::from(expired)] += 1;
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both kinds occur: {seen:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn exports_are_deterministic_per_seed() {
    let a = sim_from(BASE).await;
    let b = sim_from(BASE).await;
    let c = sim_from(&BASE.replace("seed = 42", "seed = 43")).await;
    let path = "/api/v1/executions/done/results/export?format=csv";
    let body = |s: &RunningSim| {
        let url = format!("{}{path}", s.base_url());
        async move { get_url(&url).await.bytes().await.expect("body") }
    };
    let strip = |s: &RunningSim, b: bytes::Bytes| {
        String::from_utf8(b.to_vec())
            .expect("utf-8")
            .replace(&s.base_url(), "BASE")
    };
    let (ba, bb, bc) = (body(&a).await, body(&b).await, body(&c).await);
    assert_eq!(strip(&a, ba.clone()), strip(&b, bb));
    assert_ne!(strip(&a, ba), strip(&c, bc));
    for s in [a, b, c] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn an_export_file_is_served_as_is_for_its_format_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("done.csv");
    // Two and a half of the server's 1 MiB chunks: they must join exactly.
    let mut bytes = b"title,image\n".to_vec();
    while bytes.len() < 5 << 19 {
        bytes.extend_from_slice(format!("from the file at {},\n", bytes.len()).as_bytes());
    }
    std::fs::write(&file, &bytes).expect("write");
    let toml = BASE.replace(
        "id = \"done\"\nrows = 300",
        &format!(
            "id = \"done\"\nrows = 300\nexport_file = {:?}",
            file.display().to_string()
        ),
    );
    let sim = sim_from(&toml).await;
    let csv = get(&sim, "/api/v1/executions/done/results/export?format=csv").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.bytes().await.expect("body").to_vec(), bytes);
    // JSON is still generated: 300 rows.
    let (s, json) = get_json(&sim, "/api/v1/executions/done/results/export").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json.as_array().map(Vec::len), Some(300));
    sim.shutdown().await;

    let bad = BASE.replace(
        "id = \"done\"\nrows = 300",
        "id = \"done\"\nrows = 300\nexport_file = \"x.txt\"",
    );
    let err = Scenario::from_toml_str(&bad).expect_err("a .txt export file is refused");
    assert!(
        err.to_string().contains("does not end in .csv or .json"),
        "{err}"
    );
}

#[tokio::test]
async fn datasets_list_completed_outputs() {
    let sim = sim_from(BASE).await;
    let (_, b) = get_json(
        &sim,
        "/api/v1/tasks/11111111-1111-4111-8111-111111111111/datasets",
    )
    .await;
    let got: Vec<String> = b["data"]
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["execution_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        got,
        ["done", "partial"],
        "failed and unfinished executions have no dataset"
    );
    let (_, b) = get_json(&sim, "/api/v1/executions/done/datasets").await;
    assert_eq!(b["data"][0]["record_count"], 300);
    let (_, b) = get_json(&sim, "/api/v1/executions/broken/datasets").await;
    assert_eq!(b["data"], json!([]));
    let (s, _) = get_json(&sim, "/api/v1/tasks/nope/datasets").await;
    assert_eq!(s, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn refuses_non_loopback_and_invalid_scenarios() {
    let scenario = Scenario::from_toml_str(BASE).expect("valid");
    let err = start(scenario, "0.0.0.0:0".parse().expect("addr"))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("loopback"), "{err}");
    let err = start(Scenario::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .err()
        .expect("no token");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn results_lag_delays_exports_after_completion() {
    let toml = BASE.replace(
        "id = \"news-1\"\nrows = 2",
        "id = \"news-1\"\nrows = 2\nresults_lag = \"250ms\"",
    );
    let sim = sim_from(&toml).await;
    let (_, e) = get_json(&sim, "/api/v1/executions/news-1").await;
    assert_eq!(e["data"]["status"], "completed");
    assert_eq!(
        get(&sim, "/api/v1/executions/news-1/results/export")
            .await
            .status(),
        404
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(&sim, "/api/v1/executions/news-1/results/export")
            .await
            .status(),
        200
    );
    sim.shutdown().await;
}
