//! The media fetcher against the simulator (and a raw loopback server for broken bodies):
//! stored bytes equal the simulator's, rows point at them, the token never leaves the API
//! origin, errors follow the policy, re-runs fetch nothing stored intact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use bytes::Bytes;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use titan_connector::api::{ApiConfig, ApiError, ApiErrorKind, TitanClient, Token};
use titan_connector::media::{
    FetchError, KnownMedia, MediaError, MediaErrorPolicy, MediaFetcher, MediaLayout, MediaRecord,
    MediaSettings, layout,
};
use titan_connector::schema::TYPE_METADATA_KEY;
use titan_connector::sink::store::Store;
use titan_connector::sink::store::StoreConfig;
use titan_sim::data::{self, SimValue};
use titan_sim::{self as sim, RunningSim, Scenario};

use crate::util::TOKEN;

const TASK: &str = "task-media";
const IMAGE: usize = 1;
const THUMB: usize = 2;

fn scenario(redirect: bool) -> Scenario {
    Scenario::from_toml_str(&format!(
        r#"
seed = 7
token = "{TOKEN}"
media_redirect = {redirect}

[[tasks]]
id = "{TASK}"
name = "Media"
[tasks.output_schema]
type = "object"
required = ["title", "image"]
[tasks.output_schema.properties]
title = {{ type = "string" }}
image = {{ type = "string", format = "media" }}
thumb = {{ type = "string", format = "media" }}

[[tasks.executions]]
id = "exec-a"
rows = 40

[[tasks.executions]]
id = "exec-b"
rows = 40
"#
    ))
    .unwrap()
}

async fn start(redirect: bool) -> (RunningSim, Scenario) {
    let sc = scenario(redirect);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (sim, sc)
}

fn client(base: &str, max_media_bytes: Option<u64>) -> TitanClient {
    let mut cfg = ApiConfig::new(Url::parse(base).unwrap(), Token::new(TOKEN).unwrap());
    cfg.rate_limit_per_minute = None;
    cfg.max_media_bytes = max_media_bytes;
    TitanClient::new(cfg).unwrap()
}

fn local_store(dir: &std::path::Path) -> Store {
    Store::open(&StoreConfig {
        url: Url::from_directory_path(dir).unwrap(),
        options: vec![],
    })
    .unwrap()
}

fn settings(layout: MediaLayout, on_error: MediaErrorPolicy) -> MediaSettings {
    MediaSettings {
        layout,
        concurrency: 4,
        on_error,
        enabled: true,
    }
}

fn media_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata([(TYPE_METADATA_KEY, "media")])
}

/// A mapped-like batch: `row` (Int64), then one media column per (name, values).
fn batch(rows: Vec<i64>, media: Vec<(&str, Vec<Option<String>>)>) -> RecordBatch {
    let mut fields = vec![Field::new("row", DataType::Int64, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(rows))];
    for (name, values) in media {
        fields.push(media_field(name));
        cols.push(Arc::new(StringArray::from(values)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

/// The simulator's value of media column `col` in `row` of `exec`, rendered on `base`.
fn sim_value(sc: &Scenario, exec: &str, row: u64, col: usize, base: &str) -> Option<String> {
    let task = &sc.tasks[0];
    match data::value(sc.seed, task, exec, row, col, base) {
        SimValue::Str(s) => Some(s),
        SimValue::Null => None,
        other => panic!("media cell is {other:?}"),
    }
}

/// `image` and `thumb` of the given rows, as the simulator exports them.
fn sim_batch(sc: &Scenario, exec: &str, rows: &[u64], base: &str) -> RecordBatch {
    let col = |c| {
        rows.iter()
            .map(|&r| sim_value(sc, exec, r, c, base))
            .collect()
    };
    batch(
        rows.iter().map(|&r| r as i64).collect(),
        vec![("image", col(IMAGE)), ("thumb", col(THUMB))],
    )
}

/// The struct of `column` at row `i`: field name → text (bytes rendered), `None` if null.
fn cell(b: &RecordBatch, column: &str, i: usize) -> Option<BTreeMap<String, Option<String>>> {
    let s = b.column_by_name(column).unwrap().as_struct();
    if s.is_null(i) {
        return None;
    }
    let mut out = BTreeMap::new();
    for (f, c) in s.fields().iter().zip(s.columns()) {
        let v = c.is_valid(i).then(|| match c.data_type() {
            DataType::Int64 => c.as_primitive::<Int64Type>().value(i).to_string(),
            _ => c.as_string::<i32>().value(i).to_string(),
        });
        out.insert(f.name().clone(), v);
    }
    Some(out)
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn ext_of(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => "png",
        "image/svg+xml" => "svg",
        other => panic!("sim content type {other}"),
    }
}

/// What row `r` column `col` of `exec` must resolve to under the by-execution layout.
fn expected(
    sc: &Scenario,
    exec: &str,
    r: u64,
    col: usize,
    base: &str,
) -> Option<(MediaRecord, Vec<u8>)> {
    let url = sim_value(sc, exec, r, col, base)?;
    let id = data::media_id(r, col);
    let (ct, bytes) = data::media_bytes(sc.seed, exec, &id);
    let record = MediaRecord {
        url,
        path: format!("media/{TASK}/{exec}/{id}.{}", ext_of(ct)),
        sha256: sha_hex(&bytes),
        content_type: Some(ct.to_string()),
        bytes: bytes.len() as u64,
    };
    Some((record, bytes))
}

fn as_cell(r: &MediaRecord) -> BTreeMap<String, Option<String>> {
    [
        ("url", Some(r.url.clone())),
        ("path", Some(r.path.clone())),
        ("sha256", Some(r.sha256.clone())),
        ("content_type", r.content_type.clone()),
        ("bytes", Some(r.bytes.to_string())),
        ("error", None),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn count(sim: &RunningSim, pred: impl Fn(&sim::RequestRecord) -> bool) -> usize {
    sim.requests().iter().filter(|r| pred(r)).count()
}

fn downloads(sim: &RunningSim) -> usize {
    count(sim, |r| r.path.ends_with("/download"))
}

async fn read(store: &Store, path: &str) -> Bytes {
    store
        .get_opt(&Path::parse(path).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} not stored"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_files_equal_the_simulators_and_rows_point_to_them() {
    let (sim, sc) = start(false).await;
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let fetcher = MediaFetcher::new(
        client(&base, None),
        store.clone(),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
    );
    // Every row twice: duplicates inside a batch are fetched once.
    let rows: Vec<u64> = (0..40).chain(0..40).collect();
    let input = sim_batch(&sc, "exec-a", &rows, &base);
    let known = KnownMedia::empty();
    let (out, records) = fetcher
        .resolve_batch(&input, TASK, "exec-a", &known)
        .await
        .unwrap();

    assert_eq!(out.schema(), MediaFetcher::resolved_schema(&input.schema()));
    assert_eq!(out.column(0).as_ref(), input.column(0).as_ref());
    let mut want_records = Vec::new();
    let mut nulls = 0;
    for (i, &r) in rows.iter().enumerate() {
        for (name, col) in [("image", IMAGE), ("thumb", THUMB)] {
            match expected(&sc, "exec-a", r, col, &base) {
                None => {
                    assert_eq!(cell(&out, name, i), None, "row {r} {name}: null stays null");
                    nulls += 1;
                }
                Some((rec, bytes)) => {
                    assert_eq!(cell(&out, name, i), Some(as_cell(&rec)), "row {r} {name}");
                    let stored = read(&store, &rec.path).await;
                    assert_eq!(sha_hex(&stored), sha_hex(&bytes), "{}", rec.path);
                    if i < 40 {
                        want_records.push(rec);
                    }
                }
            }
        }
    }
    assert!(nulls > 0, "the scenario must have null thumbs");
    let key = |r: &MediaRecord| r.url.clone();
    let mut got = records.clone();
    got.sort_by_key(key);
    want_records.sort_by_key(key);
    assert_eq!(got, want_records, "each file reported once");
    let distinct = want_records.len();
    assert_eq!(downloads(&sim), distinct, "one request per distinct value");
    let stats = fetcher.stats();
    assert_eq!(
        (stats.downloaded as usize, stats.reused, stats.failed),
        (distinct, 0, 0)
    );
    assert_eq!(
        stats.bytes,
        want_records.iter().map(|r| r.bytes).sum::<u64>()
    );

    // A later batch of the same execution repeating values: no request, nothing reported again.
    let again = sim_batch(&sc, "exec-a", &[3, 5, 7], &base);
    let (out2, records2) = fetcher
        .resolve_batch(&again, TASK, "exec-a", &known)
        .await
        .unwrap();
    assert!(records2.is_empty());
    assert_eq!(downloads(&sim), distinct);
    for (i, r) in [3u64, 5, 7].into_iter().enumerate() {
        let want = expected(&sc, "exec-a", r, IMAGE, &base).map(|(rec, _)| as_cell(&rec));
        assert_eq!(cell(&out2, "image", i), want);
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_origin_never_carry_the_token() {
    let (sim, sc) = start(true).await;
    // The API origin is `localhost:PORT`; the simulator redirects media to
    // `127.0.0.1:PORT`, which is another origin (same server, so its log sees both).
    let api = format!("http://localhost:{}", sim.addr().port());
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    // Redirect targets pass the media host policy: the CDN's host must be listed.
    let mut cfg = ApiConfig::new(Url::parse(&api).unwrap(), Token::new(TOKEN).unwrap());
    cfg.rate_limit_per_minute = None;
    cfg.media_allowed_hosts = vec!["127.0.0.1".into()];
    let fetcher = MediaFetcher::new(
        TitanClient::new(cfg).unwrap(),
        store.clone(),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
    );
    let rows: Vec<u64> = (0..12).collect();
    let input = sim_batch(&sc, "exec-a", &rows, &api);
    let (out, records) = fetcher
        .resolve_batch(&input, TASK, "exec-a", &KnownMedia::empty())
        .await
        .unwrap();
    assert!(!records.is_empty());
    for (i, &r) in rows.iter().enumerate() {
        let want = expected(&sc, "exec-a", r, IMAGE, &api).map(|(rec, _)| as_cell(&rec));
        assert_eq!(cell(&out, "image", i), want, "row {r}");
    }
    for rec in &records {
        let id = rec
            .path
            .rsplit('/')
            .next()
            .unwrap()
            .split('.')
            .next()
            .unwrap();
        let (_, bytes) = data::media_bytes(sc.seed, "exec-a", id);
        assert_eq!(sha_hex(&read(&store, &rec.path).await), sha_hex(&bytes));
    }

    let log = sim.requests();
    let cdn: Vec<_> = log
        .iter()
        .filter(|r| r.path.starts_with("/media/"))
        .collect();
    assert_eq!(
        cdn.len(),
        records.len(),
        "every file came from the CDN origin"
    );
    for r in &cdn {
        assert_eq!(
            (&r.authorization, &r.x_api_key),
            (&None, &None),
            "{}",
            r.path
        );
        assert!(r.query.as_deref().unwrap_or("").starts_with("token="));
        assert_eq!(r.status, 200);
    }
    // The API origin did get the token: the check above could fail.
    let api_hits: Vec<_> = log
        .iter()
        .filter(|r| r.path.ends_with("/download"))
        .collect();
    assert_eq!(api_hits.len(), records.len());
    for r in api_hits {
        assert_eq!(r.authorization, Some(format!("Bearer {TOKEN}")));
        assert_eq!(r.status, 302);
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_missing_and_refused_media_are_recorded_or_fail_per_policy() {
    let (sim, sc) = start(false).await;
    let base = sim.base_url();
    let rows: Vec<u64> = (0..20).collect();
    let mut sizes: Vec<u64> = rows
        .iter()
        .map(|&r| expected(&sc, "exec-a", r, IMAGE, &base).unwrap().0.bytes)
        .collect();
    sizes.sort_unstable();
    let limit = sizes[sizes.len() / 2];
    assert!(sizes[0] <= limit && *sizes.last().unwrap() > limit);

    let missing = format!("{base}/api/v1/executions/exec-a/media/m-999-1/download");
    let refused = "https://media.evil.example/x.png?token=SIGNED-abc".to_string();
    let mut values: Vec<Option<String>> = rows
        .iter()
        .map(|&r| sim_value(&sc, "exec-a", r, IMAGE, &base))
        .collect();
    values.push(Some(missing.clone()));
    values.push(Some(refused.clone()));
    let n = values.len();
    let input = batch((0..n as i64).collect(), vec![("image", values)]);

    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let record = MediaFetcher::new(
        client(&base, Some(limit)),
        store.clone(),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
    );
    let known = KnownMedia::empty();
    let (out, records) = record
        .resolve_batch(&input, TASK, "exec-a", &known)
        .await
        .unwrap();
    let mut oversize = 0;
    for &r in &rows {
        let (rec, _) = expected(&sc, "exec-a", r, IMAGE, &base).unwrap();
        let got = cell(&out, "image", r as usize).unwrap();
        if rec.bytes > limit {
            oversize += 1;
            let err = got["error"].clone().unwrap();
            assert!(
                err.contains(&format!(
                    "media body exceeds max_media_bytes ({} > {limit} bytes)",
                    rec.bytes
                )),
                "{err}"
            );
            assert_eq!((&got["path"], &got["sha256"]), (&None, &None));
            let p = Path::parse(&rec.path).unwrap();
            assert!(!store.exists(&p).await.unwrap(), "no file for oversize");
        } else {
            assert_eq!(got, as_cell(&rec));
        }
    }
    let err_of = |i: usize| cell(&out, "image", i).unwrap()["error"].clone().unwrap();
    assert_eq!(
        cell(&out, "image", n - 2).unwrap()["url"].as_deref(),
        Some(missing.as_str())
    );
    assert!(
        err_of(n - 2).contains("not found (HTTP 404"),
        "{}",
        err_of(n - 2)
    );
    assert_eq!(
        err_of(n - 1),
        "media host `media.evil.example` is not in media_allowed_hosts"
    );
    assert_eq!(records.len(), rows.len() - oversize);
    let stats = record.stats();
    assert_eq!(stats.failed as usize, oversize + 2);
    assert_eq!(known.failed_count(), oversize + 2);
    // A later batch repeating a failed value reuses its error without a request.
    let before = downloads(&sim);
    let again = batch(vec![0], vec![("image", vec![Some(missing.clone())])]);
    let (out2, _) = record
        .resolve_batch(&again, TASK, "exec-a", &known)
        .await
        .unwrap();
    assert_eq!(downloads(&sim), before);
    assert_eq!(
        cell(&out2, "image", 0).unwrap()["error"],
        Some(err_of(n - 2))
    );
    assert_eq!(record.stats().failed as usize, oversize + 2);
    assert_eq!(stats.downloaded as usize, rows.len() - oversize);

    // Under `fail`, each of the three fails the batch with the API error.
    let fail = MediaFetcher::new(
        client(&base, Some(limit)),
        store.clone(),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Fail),
    );
    let big = (0..20)
        .find(|&r| expected(&sc, "exec-a", r, IMAGE, &base).unwrap().0.bytes > limit)
        .unwrap();
    let cases = [
        (
            sim_value(&sc, "exec-a", big, IMAGE, &base).unwrap(),
            ApiErrorKind::Refused,
        ),
        (missing, ApiErrorKind::NotFound),
        (refused, ApiErrorKind::Refused),
    ];
    for (value, kind) in cases {
        let one = batch(vec![0], vec![("image", vec![Some(value.clone())])]);
        let err = fail
            .resolve_batch(&one, TASK, "exec-a", &KnownMedia::empty())
            .await
            .expect_err(&value);
        assert_eq!(err.api_error().map(ApiError::kind), Some(kind), "{err}");
        assert!(
            matches!(&err, MediaError::Fetch { source: FetchError::Api(_), execution_id, .. } if execution_id == "exec-a")
        );
        assert!(!err.to_string().contains("SIGNED-abc"), "{err}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pass_downloads_only_what_is_not_stored_intact() {
    let (sim, sc) = start(false).await;
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let new_fetcher = || {
        MediaFetcher::new(
            client(&base, None),
            store.clone(),
            settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
        )
    };
    let rows: Vec<u64> = (0..30).collect();
    let input = sim_batch(&sc, "exec-a", &rows, &base);
    let (out1, records1) = new_fetcher()
        .resolve_batch(&input, TASK, "exec-a", &KnownMedia::empty())
        .await
        .unwrap();
    let first = downloads(&sim);
    assert_eq!(first, records1.len());

    // A re-run: the index says everything is stored intact, so nothing is requested.
    let known = KnownMedia::load(&store, TASK, "exec-a").await.unwrap();
    assert_eq!(known.len(), records1.len());
    let second = new_fetcher();
    let (out2, records2) = second
        .resolve_batch(&input, TASK, "exec-a", &known)
        .await
        .unwrap();
    assert_eq!(downloads(&sim), first, "a re-run downloads nothing");
    assert_eq!(out2, out1);
    assert_eq!(records2, records1);
    let stats = second.stats();
    assert_eq!(
        (stats.downloaded, stats.reused as usize),
        (0, records1.len())
    );
    assert!(
        KnownMedia::load(&store, TASK, "exec-b")
            .await
            .unwrap()
            .is_empty()
    );

    // Damage: a file replaced by a shorter one (as if a foreign writer cut it), an
    // index entry missing (a crash after the file, before its entry), an entry that
    // is not JSON. Exactly those three are fetched again.
    let (a, b, c) = (&records1[0], &records1[1], &records1[2]);
    store
        .put(&Path::parse(&a.path).unwrap(), Bytes::from_static(b"cut"))
        .await
        .unwrap();
    store
        .delete(&layout::index_entry_path(TASK, "exec-a", &b.url))
        .await
        .unwrap();
    store
        .put(
            &layout::index_entry_path(TASK, "exec-a", &c.url),
            Bytes::from_static(b"{\"url\":"),
        )
        .await
        .unwrap();
    let known = KnownMedia::load(&store, TASK, "exec-a").await.unwrap();
    assert_eq!(known.len(), records1.len() - 3);
    assert_eq!(known.get(&a.url), None);
    assert_eq!(known.get(&records1[3].url).as_ref(), Some(&records1[3]));
    let (out3, _) = new_fetcher()
        .resolve_batch(&input, TASK, "exec-a", &known)
        .await
        .unwrap();
    assert_eq!(downloads(&sim), first + 3);
    assert_eq!(out3, out1);
    assert_eq!(read(&store, &a.path).await.len() as u64, a.bytes);
    assert_eq!(
        KnownMedia::load(&store, TASK, "exec-a")
            .await
            .unwrap()
            .len(),
        records1.len()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_addressed_layout_stores_identical_bytes_once_across_executions() {
    // The simulator redirects downloads to the CDN form `/media/<exec>/<id>?token=` on
    // its own origin.
    let (sim, sc) = start(true).await;
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let fetcher = MediaFetcher::new(
        client(&base, None),
        store.clone(),
        settings(MediaLayout::ContentAddressed, MediaErrorPolicy::Record),
    );
    // exec-b's rows link to the same files as exec-a's (e.g. a re-scrape of the same
    // page): same bytes, so one stored copy. They link through the CDN form, since a
    // value on the API origin may only name a download route of its own execution.
    let rows: Vec<u64> = (0..15).collect();
    let a = sim_batch(&sc, "exec-a", &rows, &base);
    let (out_a, rec_a) = fetcher
        .resolve_batch(&a, TASK, "exec-a", &KnownMedia::empty())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cdn_of = BTreeMap::new();
    for &r in &rows {
        for col in [IMAGE, THUMB] {
            if let Some(v) = sim_value(&sc, "exec-a", r, col, &base) {
                let resp = http.get(&v).bearer_auth(TOKEN).send().await.unwrap();
                let loc = resp.headers()["location"].to_str().unwrap().to_owned();
                cdn_of.insert(v, loc);
            }
        }
    }
    let cdn_col = |col| {
        rows.iter()
            .map(|&r| sim_value(&sc, "exec-a", r, col, &base).map(|v| cdn_of[&v].clone()))
            .collect()
    };
    let b = batch(
        rows.iter().map(|&r| r as i64).collect(),
        vec![("image", cdn_col(IMAGE)), ("thumb", cdn_col(THUMB))],
    );
    let (out_b, rec_b) = fetcher
        .resolve_batch(&b, TASK, "exec-b", &KnownMedia::empty())
        .await
        .unwrap();
    // Same files, only the links differ.
    let without_url = |recs: &[MediaRecord]| -> Vec<MediaRecord> {
        recs.iter()
            .map(|r| MediaRecord {
                url: String::new(),
                ..r.clone()
            })
            .collect()
    };
    assert_eq!(without_url(&rec_a), without_url(&rec_b));
    for (i, _) in rows.iter().enumerate() {
        for name in ["image", "thumb"] {
            let strip = |c: Option<BTreeMap<String, Option<String>>>| {
                c.map(|mut m| {
                    m.remove("url");
                    m
                })
            };
            assert_eq!(strip(cell(&out_a, name, i)), strip(cell(&out_b, name, i)));
        }
    }
    let mut cas_paths = BTreeSet::new();
    for (i, &r) in rows.iter().enumerate() {
        for (name, col) in [("image", IMAGE), ("thumb", THUMB)] {
            let Some((want, bytes)) = expected(&sc, "exec-a", r, col, &base) else {
                assert_eq!(cell(&out_a, name, i), None);
                continue;
            };
            let sha = sha_hex(&bytes);
            let path = format!(
                "media/sha256/{}/{sha}.{}",
                &sha[..2],
                want.path.rsplit('.').next().unwrap()
            );
            let got = cell(&out_a, name, i).unwrap();
            assert_eq!(
                got,
                as_cell(&MediaRecord {
                    path: path.clone(),
                    ..want
                })
            );
            assert_eq!(sha_hex(&read(&store, &path).await), sha);
            cas_paths.insert(path);
        }
    }
    let stored: BTreeSet<String> = store
        .list(&Path::from("media/sha256"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    assert_eq!(stored, cas_paths, "one object per distinct content");
    assert!(
        store
            .list(&Path::from("media/_staging"))
            .await
            .unwrap()
            .is_empty()
    );
    let stats = fetcher.stats();
    assert_eq!(stats.downloaded as usize, 2 * rec_a.len());
    assert_eq!(stats.deduplicated as usize, rec_a.len());
    // Both executions have their own index.
    for exec in ["exec-a", "exec-b"] {
        assert_eq!(
            KnownMedia::load(&store, TASK, exec).await.unwrap().len(),
            rec_a.len()
        );
    }
    sim.shutdown().await;
}

/// A raw HTTP/1.1 server answering every request with `body` as `image/png`: the first
/// `cuts` responses stop halfway (connection closed), each response waits `delay` first.
/// Returns its URL, the number of requests and the most requests awaiting an answer at once.
async fn raw_server(
    body: Vec<u8>,
    cuts: usize,
    delay: Duration,
) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let (busy, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, p) = (Arc::clone(&hits), Arc::clone(&peak));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = h.fetch_add(1, Ordering::SeqCst);
            let (body, busy, peak) = (body.clone(), Arc::clone(&busy), Arc::clone(&p));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                // Requests awaiting their answer: the client holds a permit for each.
                let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                busy.fetch_sub(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let sent = if n < cuts { body.len() / 2 } else { body.len() };
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.write_all(&body[..sent]).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, hits, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_mid_stream_is_fetched_again_up_to_three_times() {
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());

    let (url, hits, _) = raw_server(body.clone(), 2, Duration::ZERO).await;
    let fetcher = MediaFetcher::new(
        client(&url, None),
        store.clone(),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
    );
    let one = batch(vec![0], vec![("image", vec![Some("m-1".to_string())])]);
    let (out, records) = fetcher
        .resolve_batch(&one, "t", "e", &KnownMedia::empty())
        .await
        .unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "two cut bodies, then a whole one"
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].path, "media/t/e/m-1.png");
    assert_eq!(records[0].sha256, sha_hex(&body));
    assert_eq!(read(&store, "media/t/e/m-1.png").await.as_ref(), &body[..]);
    assert_eq!(cell(&out, "image", 0).unwrap()["error"], None);

    let (url, hits, _) = raw_server(body.clone(), usize::MAX, Duration::ZERO).await;
    let fetcher = MediaFetcher::new(
        client(&url, None),
        store.clone(),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
    );
    let other = batch(vec![0], vec![("image", vec![Some("m-2".to_string())])]);
    let (out, _) = fetcher
        .resolve_batch(&other, "t", "e", &KnownMedia::empty())
        .await
        .unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "first try and three retries"
    );
    let err = cell(&out, "image", 0).unwrap()["error"].clone().unwrap();
    assert!(err.contains("response body"), "{err}");
    assert!(
        !store
            .exists(&Path::from("media/t/e/m-2.png"))
            .await
            .unwrap(),
        "a cut body never becomes a file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_across_executions() {
    let (url, hits, peak) = raw_server(vec![1, 2, 3], 0, Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let fetcher = MediaFetcher::new(
        client(&url, None),
        local_store(dir.path()),
        MediaSettings {
            concurrency: 3,
            ..MediaSettings::default()
        },
    );
    let ids = |p: &str| {
        batch(
            (0..6).collect(),
            vec![("image", (0..6).map(|i| Some(format!("{p}{i}"))).collect())],
        )
    };
    let (a, b) = (ids("a"), ids("b"));
    let (fa, fb) = (fetcher.clone(), fetcher.clone());
    let (ka, kb) = (KnownMedia::empty(), KnownMedia::empty());
    let (ra, rb) = tokio::join!(
        fa.resolve_batch(&a, "t", "e1", &ka),
        fb.resolve_batch(&b, "t", "e2", &kb),
    );
    assert_eq!((ra.unwrap().1.len(), rb.unwrap().1.len()), (6, 6));
    assert_eq!(hits.load(Ordering::SeqCst), 12);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(fetcher.stats().downloaded, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_fails_the_batch_even_under_record() {
    let (sim, sc) = start(false).await;
    let base = sim.base_url();
    let mut cfg = ApiConfig::new(
        Url::parse(&base).unwrap(),
        Token::new("not-the-token").unwrap(),
    );
    cfg.rate_limit_per_minute = None;
    let dir = tempfile::tempdir().unwrap();
    let fetcher = MediaFetcher::new(
        TitanClient::new(cfg).unwrap(),
        local_store(dir.path()),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
    );
    let input = sim_batch(&sc, "exec-a", &[0, 1], &base);
    let err = fetcher
        .resolve_batch(&input, TASK, "exec-a", &KnownMedia::empty())
        .await
        .expect_err("401 is not a per-file problem");
    assert_eq!(
        err.api_error().map(ApiError::kind),
        Some(ApiErrorKind::Auth),
        "{err}"
    );
    assert_eq!(fetcher.stats().failed, 0);
    sim.shutdown().await;
}

/// Issue 13.1: an expired link (403 on the media route while the API routes accept the
/// token) is that file's failure — recorded in the row and counted — and the token is
/// judged by one API request, not by the media route. Under `fail` the batch fails with a
/// per-file error that does not read as a rejected token (so the run does not stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_media_link_is_that_files_failure_not_a_rejected_token() {
    let mut sc = scenario(false);
    sc.expired_media_rate = 0.25;
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = sim.base_url();
    let rows: Vec<u64> = (0..40).collect();
    let expired: Vec<u64> = rows
        .iter()
        .copied()
        .filter(|&r| {
            sim_value(&sc, "exec-a", r, IMAGE, &base).is_some()
                && sc.media_expired("exec-a", &data::media_id(r, IMAGE))
        })
        .collect();
    assert!(
        (3..30).contains(&expired.len()),
        "some, not all, expired: {expired:?}"
    );
    let input = batch(
        rows.iter().map(|&r| r as i64).collect(),
        vec![(
            "image",
            rows.iter()
                .map(|&r| sim_value(&sc, "exec-a", r, IMAGE, &base))
                .collect(),
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let fetcher = MediaFetcher::new(
        client(&base, None),
        local_store(dir.path()),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Record),
    );
    let (out, records) = fetcher
        .resolve_batch(&input, TASK, "exec-a", &KnownMedia::empty())
        .await
        .expect("expired links do not fail the batch under `record`");
    for (i, &r) in rows.iter().enumerate() {
        let want = expected(&sc, "exec-a", r, IMAGE, &base);
        let got = cell(&out, "image", i);
        match want {
            None => assert_eq!(got, None, "row {r}"),
            Some((rec, _)) if expired.contains(&r) => {
                let got = got.unwrap();
                assert_eq!(got["url"].as_deref(), Some(rec.url.as_str()));
                assert_eq!((&got["path"], &got["sha256"]), (&None, &None), "row {r}");
                let err = got["error"].clone().unwrap();
                assert!(
                    err.starts_with("media link refused, the token is valid: GET ")
                        && err.contains("forbidden (HTTP 403, FORBIDDEN: media link has expired)"),
                    "{err}"
                );
            }
            Some((rec, _)) => assert_eq!(got, Some(as_cell(&rec)), "row {r}"),
        }
    }
    let stats = fetcher.stats();
    assert_eq!(stats.failed as usize, expired.len());
    assert_eq!(records.len() as u64, stats.downloaded);
    // The token was judged once by an API route, not once per expired link.
    assert_eq!(count(&sim, |r| r.path == "/api/v1/executions/exec-a"), 1);

    // Under `fail`: the execution fails with the file's error, which is not `Auth`.
    let fail = MediaFetcher::new(
        client(&base, None),
        local_store(dir.path()),
        settings(MediaLayout::ByExecution, MediaErrorPolicy::Fail),
    );
    let one = batch(
        vec![0],
        vec![(
            "image",
            vec![sim_value(&sc, "exec-a", expired[0], IMAGE, &base)],
        )],
    );
    let err = fail
        .resolve_batch(&one, TASK, "exec-a", &KnownMedia::empty())
        .await
        .expect_err("fail policy");
    assert!(err.api_error().is_none(), "{err}");
    assert!(
        matches!(
            &err,
            MediaError::Fetch {
                source: FetchError::LinkRefused { source },
                ..
            } if source.kind() == ApiErrorKind::Auth
        ),
        "{err:?}"
    );
    sim.shutdown().await;
}
