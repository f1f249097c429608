//! Cloud stores against real servers started by each test: S3 on moto, Azure Blob on
//! Azurite. Per backend: `Store` conformance (with a multipart upload), the pipeline
//! writing Parquet and manifests there, media fetched into it, and the real binary taking
//! the cloud's own environment variables. Tests never touch the process environment: in-process runs get
//! credentials through `[store.options]`, the binary through its child environment.

#[path = "../support/servers.rs"]
pub(crate) mod servers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};
use titan_connector::api::{ApiConfig, TitanClient, Token};
use titan_connector::config::{Config, Env, Overrides, env::vars};
use titan_connector::media::{
    KnownMedia, MediaErrorPolicy, MediaFetcher, MediaLayout, MediaSettings,
};
use titan_connector::report::Outcome;
use titan_connector::run;
use titan_connector::schema::TYPE_METADATA_KEY;
use titan_connector::sink::manifest::Manifest;
use titan_connector::sink::store::Store;
use titan_connector::sink::store::StoreConfig;
use titan_sim::data::{self, SimValue};
use tokio::io::AsyncWriteExt;
use url::Url;

use self::servers::*;
use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

/// Past two of `file_writer`'s 5 MiB parts, so the upload goes multipart (5 + 5 + 2 MiB).
const BIG: usize = 12 << 20;

fn s3_options(moto: &Server) -> Vec<(String, String)> {
    pairs(&[
        ("aws_endpoint", &moto.endpoint()),
        ("aws_access_key_id", MOTO_KEY_ID),
        ("aws_secret_access_key", MOTO_SECRET),
        ("aws_region", MOTO_REGION),
    ])
}

fn azure_options(azurite: &Server) -> Vec<(String, String)> {
    pairs(&[
        ("azure_storage_account_name", AZURITE_ACCOUNT),
        ("azure_storage_account_key", AZURITE_KEY),
        ("azure_storage_endpoint", &azurite.azurite_blob_endpoint()),
    ])
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn open(url: &str, options: &[(String, String)]) -> Store {
    Store::open(&StoreConfig {
        url: Url::parse(url).unwrap(),
        options: options.to_vec(),
    })
    .unwrap()
}

/// Deterministic bytes that no two offsets of a short period repeat (xorshift).
fn pattern(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn locations(store: &Store, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = store
        .list(&Path::from(prefix))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    v.sort();
    v
}

/// What every backend must do for the writer and the commit. Returns the key of the
/// multipart object.
async fn conformance(store: &Store) -> Path {
    let small = Path::from("conf/ds/task_id=t-1/date=2026-11-27/a.json");
    let other = Path::from("conf/ds/task_id=t-1/date=2026-11-28/b.json");
    let missing = Path::from("conf/ds/none.json");
    store
        .put(&small, Bytes::from_static(b"{\"a\":1}"))
        .await
        .unwrap();
    store.put(&other, Bytes::from_static(b"[]")).await.unwrap();
    store
        .put(&small, Bytes::from_static(b"{\"a\":2}"))
        .await
        .unwrap();
    assert_eq!(
        store.get_opt(&small).await.unwrap().as_deref(),
        Some(&b"{\"a\":2}"[..]),
        "a second put replaces the object"
    );
    assert_eq!(store.get_opt(&missing).await.unwrap(), None);
    assert!(store.exists(&small).await.unwrap());
    assert!(!store.exists(&missing).await.unwrap());
    assert_eq!(
        locations(store, "conf/ds").await,
        vec![small.to_string(), other.to_string()]
    );
    assert!(
        locations(store, "conf/d").await.is_empty(),
        "prefixes match whole path segments"
    );

    // The commit's move: staging over an existing final part.
    let staged = Path::from("conf/_staging/exec-1/run-1/part-0.parquet.tmp");
    let fin = Path::from("conf/ds/task_id=t-1/date=2026-11-27/exec-1-0.parquet");
    store.put(&fin, Bytes::from_static(b"stale")).await.unwrap();
    store
        .put(&staged, Bytes::from_static(b"fresh"))
        .await
        .unwrap();
    store.rename(&staged, &fin).await.unwrap();
    assert_eq!(
        store.get_opt(&fin).await.unwrap().as_deref(),
        Some(&b"fresh"[..])
    );
    assert!(!store.exists(&staged).await.unwrap());

    store.delete(&other).await.unwrap();
    store.delete(&other).await.unwrap();
    assert!(!store.exists(&other).await.unwrap());

    // How the Parquet writer streams: `file_writer`, multipart past one part.
    let big = Path::from("conf/big/exec-2-0.parquet");
    let data = pattern(BIG);
    let mut w = store.file_writer(big.clone());
    for chunk in data.chunks(1 << 20) {
        w.write_all(chunk).await.unwrap();
    }
    w.shutdown().await.unwrap();
    let back = store.get_opt(&big).await.unwrap().unwrap();
    assert_eq!(back.len(), BIG);
    assert!(back == data, "multipart object reads back byte for byte");

    assert_eq!(
        locations(store, "conf").await,
        vec![big.to_string(), small.to_string(), fin.to_string()]
    );
    lease_conformance(store).await;
    big
}

/// Leases need an exclusive create: the second taker must find the first's lease.
async fn lease_conformance(store: &Store) {
    use titan_connector::sink::lease::{self, Claim, LEASE_TTL, Owner};
    let path = lease::lease_path("conf-leases", "t-1", "exec-1");
    let first = Owner::this_process("conf-run-1");
    let second = Owner {
        run_id: "conf-run-2".into(),
        ..first.clone()
    };
    let held = match lease::acquire(store, &path, &first, LEASE_TTL)
        .await
        .unwrap()
    {
        Claim::Held(l) => l,
        other => panic!("the first taker did not get the lease: {other:?}"),
    };
    match lease::acquire(store, &path, &second, LEASE_TTL)
        .await
        .unwrap()
    {
        Claim::Busy(rec) => assert_eq!(rec.run_id, "conf-run-1"),
        other => panic!("a second taker must find the lease held: {other:?}"),
    }
    held.release().await;
    assert!(!store.exists(&path).await.unwrap(), "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conformance_on_moto() {
    let moto = moto();
    moto.create_bucket("conf");
    let opts = s3_options(&moto);
    let store = open("s3://conf/base/dir", &opts);
    let big = conformance(&store).await;

    // S3 marks multipart objects: their ETag ends in `-<parts>`.
    let meta = store.object_store().head(&big).await.unwrap();
    let etag = meta.e_tag.unwrap();
    assert!(etag.trim_matches('"').ends_with("-3"), "ETag {etag}");
    // The URL path is a key prefix inside the bucket.
    let root = open("s3://conf", &opts);
    let keys = locations(&root, "").await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("base/dir/conf/")),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_store_conformance_on_azurite() {
    let azurite = azurite();
    azurite.create_container("conf");
    let opts = azure_options(&azurite);
    let store = open("az://conf/base/dir", &opts);
    conformance(&store).await;
    let root = open("az://conf", &opts);
    let keys = locations(&root, "").await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("base/dir/conf/")),
        "{keys:?}"
    );

    // A trailing slash on the endpoint (as Azure portals print it) changes nothing.
    let mut slash = opts.clone();
    slash[2].1.push('/');
    assert_eq!(locations(&open("az://conf", &slash), "").await, keys);
}

const BOTH_TASKS: &str = r#"
[[tasks]]
id = "task-products"

[[tasks]]
id = "task-news"
format = "csv"
"#;

/// The pipeline's config with the store URL as `--store` would give it and the backend
/// options in `[store.options]`.
fn store_config(
    dir: &FsPath,
    sim_url: &str,
    store_url: &str,
    options: &[(String, String)],
) -> Config {
    let mut extra = String::from("[store.options]\n");
    for (k, v) in options {
        extra.push_str(&format!("{k} = {v:?}\n"));
    }
    extra.push_str(BOTH_TASKS);
    let path = write_config(dir, sim_url, &extra);
    let env = Env::from_pairs([(vars::TITAN_TOKEN, TOKEN.to_string())]);
    let overrides = Overrides {
        store: Some(store_url.to_string()),
        ..Overrides::default()
    };
    Config::load(&path, &env, &overrides).unwrap()
}

fn read_parquet_bytes(b: Bytes) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(b)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Every object under the store with its size and ETag, to see that nothing was rewritten.
async fn snapshot(store: &Store) -> BTreeMap<String, (u64, Option<String>)> {
    store
        .list(&Path::from(""))
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.location.to_string(), (m.size, m.e_tag)))
        .collect()
}

/// Runs the pipeline into `store_url` (`<scheme>://lake/prefix`) twice and checks the
/// objects: exact rows in the Parquet, manifests listing the files, nothing staged, and a
/// second run that ingests and rewrites nothing.
async fn pipeline_round_trip(store_url: &str, options: &[(String, String)]) {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = store_config(dir.path(), &sim.base_url(), store_url, options);
    let report = run::run(&cfg).await.unwrap();
    let got: BTreeMap<&str, (Outcome, u64)> = report
        .executions
        .iter()
        .map(|e| (e.execution_id.as_str(), (e.outcome, e.rows)))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("exec-n1", (Outcome::Ingested, 777)),
            ("exec-n2", (Outcome::Ingested, 0)),
            ("exec-p1", (Outcome::Ingested, 1500)),
            ("exec-p2", (Outcome::Ingested, 321)),
            ("exec-p3", (Outcome::NoResults, 0)),
            ("exec-p4", (Outcome::NoResults, 0)),
        ])
    );

    let store = open(store_url, options);
    let files: Vec<String> = locations(&store, "")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    assert_eq!(
        files,
        vec![
            "news_headlines/task_id=task-news/date=2026-11-26/exec-n1-0.parquet",
            "product_monitor/task_id=task-products/date=2026-11-27/exec-p1-0.parquet",
            "product_monitor/task_id=task-products/date=2026-11-29/exec-p2-0.parquet",
        ]
    );
    let sc = scenario();
    for (task_id, exec, file, n) in [
        (NEWS_TASK, "exec-n1", &files[0], 777),
        (PRODUCTS_TASK, "exec-p1", &files[1], 1500),
        (PRODUCTS_TASK, "exec-p2", &files[2], 321),
    ] {
        let bytes = store
            .get_opt(&Path::from(file.as_str()))
            .await
            .unwrap()
            .unwrap();
        let size = bytes.len() as u64;
        let batches = read_parquet_bytes(bytes);
        assert_eq!(
            assert_rows_match(&batches, &sc, task_id, exec, &sim.base_url()),
            n
        );
        let dataset = file.split('/').next().unwrap();
        let manifest = store
            .get_opt(&Path::from(format!(
                "{dataset}/_manifests/{task_id}/{exec}.json"
            )))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("manifest of {exec}"));
        let m = Manifest::from_slice(&manifest).unwrap();
        assert_eq!(m.rows, n);
        assert_eq!(m.files.len(), 1);
        assert_eq!(
            (m.files[0].path.as_str(), m.files[0].rows, m.files[0].bytes),
            (file.as_str(), n, size)
        );
    }
    let failed = store
        .get_opt(&Path::from(
            "product_monitor/_manifests/task-products/exec-p3.json",
        ))
        .await
        .unwrap()
        .unwrap();
    let failed = Manifest::from_slice(&failed).unwrap();
    assert_eq!(failed.execution_status, "failed");
    assert!(failed.files.is_empty());
    for dataset in ["product_monitor", "news_headlines"] {
        assert_eq!(
            locations(&store, &format!("{dataset}/_staging")).await,
            Vec::<String>::new(),
            "nothing left in staging"
        );
    }

    let before = snapshot(&store).await;
    let again = run::run(&cfg).await.unwrap();
    assert_eq!(again.executions.len(), 6);
    assert!(
        again
            .executions
            .iter()
            .all(|e| e.outcome == Outcome::AlreadyIngested),
        "{:?}",
        again.executions
    );
    assert_eq!(
        snapshot(&store).await,
        before,
        "the second run wrote nothing"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_pipeline_writes_exact_rows_and_manifests_and_reruns_are_no_ops() {
    let moto = moto();
    moto.create_bucket("lake");
    pipeline_round_trip("s3://lake/prefix", &s3_options(&moto)).await;
    // Nothing landed outside the prefix.
    let keys = locations(&open("s3://lake", &s3_options(&moto)), "").await;
    assert!(keys.iter().all(|k| k.starts_with("prefix/")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_pipeline_writes_exact_rows_and_manifests_and_reruns_are_no_ops() {
    let azurite = azurite();
    azurite.create_container("lake");
    pipeline_round_trip("az://lake/prefix", &azure_options(&azurite)).await;
    let keys = locations(&open("az://lake", &azure_options(&azurite)), "").await;
    assert!(keys.iter().all(|k| k.starts_with("prefix/")), "{keys:?}");
}

/// Runs the real binary on exec-p1 with exactly `env` (plus the token and the store URL)
/// and checks what landed under `store_url` through a store opened with `options`.
async fn binary_run(store_url: &str, env: &[(&str, String)], options: &[(String, String)]) {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let tasks = "[[tasks]]\nid = \"task-products\"\nexecutions = [\"exec-p1\"]\n";
    write_config(dir.path(), &sim.base_url(), tasks);
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["run", "--config", "titan.toml"])
        .current_dir(dir.path())
        .env_clear()
        .env("TITAN_TOKEN", TOKEN)
        .env("TITAN_CONNECTOR_STORE", store_url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{text}");
    for (_, v) in env {
        if v.len() > 20 {
            assert!(!text.contains(v.as_str()), "a secret was printed: {text}");
        }
    }

    let store = open(store_url, options);
    let part = "product_monitor/task_id=task-products/date=2026-11-27/exec-p1-0.parquet";
    let (media, data): (Vec<String>, Vec<String>) = locations(&store, "")
        .await
        .into_iter()
        .partition(|l| l.starts_with("media/"));
    assert_eq!(
        data,
        vec![
            // The task's dataset, fixed at its first ingest (see `sink::binding`).
            "_titan/tasks/task-products.json".to_string(),
            "product_monitor/_manifests/task-products/exec-p1.json".to_string(),
            part.to_string(),
        ]
    );
    // The rows' images landed in the same store, under media/.
    assert!(media.iter().any(|l| l.ends_with(".png")), "no media stored");
    let bytes = store.get_opt(&Path::from(part)).await.unwrap().unwrap();
    assert_eq!(
        assert_rows_match(
            &read_parquet_bytes(bytes),
            &scenario(),
            PRODUCTS_TASK,
            "exec-p1",
            &sim.base_url()
        ),
        1500
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_binary_takes_the_aws_cli_variables() {
    let moto = moto();
    moto.create_bucket("envlake");
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET.to_string()),
        ("AWS_REGION", MOTO_REGION.to_string()),
    ];
    binary_run("s3://envlake/from-env", &env, &s3_options(&moto)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_binary_takes_a_connection_string_or_the_emulator_variables() {
    let azurite = azurite();
    azurite.create_container("envlake");
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
         BlobEndpoint={}/;",
        azurite.azurite_blob_endpoint()
    );
    let opts = azure_options(&azurite);
    binary_run(
        "az://envlake/conn-string",
        &[("AZURE_STORAGE_CONNECTION_STRING", cs)],
        &opts,
    )
    .await;
    // object_store's own emulator switch, pointed at this Azurite's port.
    binary_run(
        "az://envlake/emulator",
        &[
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
            ("AZURITE_BLOB_STORAGE_URL", azurite.endpoint()),
        ],
        &opts,
    )
    .await;
}

/// Media fetched content-addressed into the store: each stored file equals the
/// simulator's bytes, the staging area is empty, and a second pass reuses everything.
async fn media_round_trip(store_url: &str, options: &[(String, String)]) {
    const IMAGE_URL: usize = 5; // column of `image_url` in the products task
    let sim = start_sim().await;
    let base = sim.base_url();
    let sc = scenario();
    let task = task(&sc, PRODUCTS_TASK);
    let rows: Vec<u64> = (0..24).collect();
    let values: Vec<Option<String>> = rows
        .iter()
        .map(
            |&r| match data::value(sc.seed, task, "exec-p1", r, IMAGE_URL, &base) {
                SimValue::Str(s) => Some(s),
                _ => None,
            },
        )
        .collect();
    let field =
        Field::new("image_url", DataType::Utf8, true).with_metadata([(TYPE_METADATA_KEY, "media")]);
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![field])),
        vec![Arc::new(StringArray::from(values.clone()))],
    )
    .unwrap();
    let store = open(store_url, options);
    let fetcher = || {
        let mut api = ApiConfig::new(Url::parse(&base).unwrap(), Token::new(TOKEN).unwrap());
        api.rate_limit_per_minute = None;
        MediaFetcher::new(
            TitanClient::new(api).unwrap(),
            store.clone(),
            MediaSettings {
                layout: MediaLayout::ContentAddressed,
                concurrency: 4,
                on_error: MediaErrorPolicy::Fail,
                enabled: true,
            },
        )
    };

    let first = fetcher();
    let (_, records) = first
        .resolve_batch(&batch, PRODUCTS_TASK, "exec-p1", &KnownMedia::empty())
        .await
        .unwrap();
    let want: BTreeSet<String> = rows
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_some())
        .map(|(&r, _)| {
            let (_, bytes) = data::media_bytes(sc.seed, "exec-p1", &data::media_id(r, IMAGE_URL));
            hex::encode(Sha256::digest(&bytes))
        })
        .collect();
    assert!(!want.is_empty(), "the scenario has media values");
    let got: BTreeSet<String> = records.iter().map(|r| r.sha256.clone()).collect();
    assert_eq!(got, want);
    for r in &records {
        let stored = store
            .get_opt(&Path::parse(&r.path).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} not stored", r.path));
        assert_eq!(hex::encode(Sha256::digest(&stored)), r.sha256, "{}", r.path);
        assert_eq!(stored.len() as u64, r.bytes);
    }
    assert_eq!(
        locations(&store, "media/_staging").await,
        Vec::<String>::new()
    );

    // A re-run: the index in the store says everything is there intact.
    let known = KnownMedia::load(&store, PRODUCTS_TASK, "exec-p1")
        .await
        .unwrap();
    assert_eq!(known.len(), records.len());
    let downloads = || {
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/download"))
            .count()
    };
    let before = downloads();
    let second = fetcher();
    let (_, again) = second
        .resolve_batch(&batch, PRODUCTS_TASK, "exec-p1", &known)
        .await
        .unwrap();
    assert_eq!(again, records);
    let stats = second.stats();
    assert_eq!(
        (stats.downloaded, stats.reused as usize),
        (0, records.len())
    );
    assert_eq!(downloads(), before, "a re-run downloads nothing");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_media_is_stored_content_addressed_and_reused() {
    let moto = moto();
    moto.create_bucket("media");
    media_round_trip("s3://media/lake", &s3_options(&moto)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_media_is_stored_content_addressed_and_reused() {
    let azurite = azurite();
    azurite.create_container("media");
    media_round_trip("az://media/lake", &azure_options(&azurite)).await;
}

/// `compact` and `vacuum` on S3 (moto), the store from the AWS variables: the inputs read
/// by ranges, the output uploaded through `BufWriter`, the commit a put-if-absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_delta_compact_and_vacuum_through_the_binary() {
    let moto = moto();
    moto.create_bucket("dlake");
    let store = open("s3://dlake/lake", &s3_options(&moto));
    crate::maintain::ingest(&store, "t1", "2026-01-02", 0..30, 40).await;
    let (rows, files) = crate::maintain::table_rows(&store).await;
    assert_eq!((rows.len(), files), (30 * 40, 30));
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET.to_string()),
        ("AWS_REGION", MOTO_REGION.to_string()),
    ];
    let dir = tempfile::tempdir().unwrap();
    // Runs the binary, which must exit 0, and returns its stdout.
    let bin_ok = async |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args).current_dir(dir.path()).env_clear();
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let o = cmd.output().await.unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    };
    let text = bin_ok(&["compact", "--store", "s3://dlake/lake"]).await;
    assert!(
        text.starts_with("s3://dlake/lake/products: task_id=t1 date=2026-01-02: 30 files ("),
        "{text}"
    );
    assert_eq!(crate::maintain::table_rows(&store).await, (rows.clone(), 1));

    let text = bin_ok(&["vacuum", "--store", "s3://dlake/lake", "--retention", "0s"]).await;
    assert!(
        text.starts_with("s3://dlake/lake/products: deleted 30 unreferenced file(s) ("),
        "{text}"
    );
    let left: Vec<String> = locations(&store, "products/task_id=t1")
        .await
        .into_iter()
        .filter(|l| l.ends_with(".parquet"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("/compact-"), "{left:?}");
    assert_eq!(crate::maintain::table_rows(&store).await, (rows, 1));
}
