//! Many small executions: combined into few files per partition, each still committed
//! exactly once (its own manifest, its own rows), also across SIGKILLs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::AsArray;
use titan_connector::config::{Config, Env, Overrides, env::vars};
use titan_connector::report::{Outcome, RunReport};
use titan_connector::run;
use titan_connector::sink::manifest::Manifest;
use titan_connector::sink::partition;
use titan_sim::{self as sim, Scenario};

use crate::faults::{assert_dataset_equals_source, wait_with_deadline};
use crate::util::*;

const DATASET: &str = "small";
const ROWS: u64 = 100;

/// `tasks` tasks of `per_task` executions of 100 rows each, all created on one day (one
/// partition per task). Tasks rather than one big one: the simulator pages at 50.
fn small_scenario(tasks: usize, per_task: usize) -> Scenario {
    small_scenario_with(tasks, per_task, "")
}

/// [`small_scenario`] with `header` (e.g. a `[faults]` table) added.
fn small_scenario_with(tasks: usize, per_task: usize, header: &str) -> Scenario {
    let mut toml = format!("seed = 11\ntoken = \"{TOKEN}\"\n{header}\n");
    for t in 0..tasks {
        toml.push_str(&format!(
            r#"
[[tasks]]
id = "small-{t}"
name = "Small {t}"
[tasks.output_schema]
type = "object"
[tasks.output_schema.properties]
product_name = {{ type = "string" }}
price = {{ type = "number" }}
review_count = {{ type = "integer" }}
"#
        ));
        for e in 0..per_task {
            toml.push_str(&format!(
                "[[tasks.executions]]\nid = \"s{t}-e{e:03}\"\nrows = {ROWS}\ncreated_at = \"2026-11-20T{:02}:{:02}:00Z\"\n",
                e / 60,
                e % 60
            ));
        }
    }
    Scenario::from_toml_str(&toml).unwrap()
}

fn task_ids(sc: &Scenario) -> Vec<String> {
    sc.tasks.iter().map(|t| t.id.clone()).collect()
}

/// `titan.toml` in `dir` for every task of `sc` into dataset `small`, plus `run` lines.
fn write_small_config(dir: &Path, url: &str, sc: &Scenario, run: &str) -> PathBuf {
    let tasks: String = task_ids(sc)
        .iter()
        .map(|id| format!("[[tasks]]\nid = \"{id}\"\ndataset = \"{DATASET}\"\n"))
        .collect();
    write_config(
        dir,
        url,
        &format!("[run]\nconcurrency = 8\n{run}\n[media]\nenabled = false\n{tasks}"),
    )
}

fn small_config(dir: &Path, url: &str, sc: &Scenario, run: &str) -> Config {
    let path = write_small_config(dir, url, sc, run);
    let env = Env::from_pairs([(vars::TITAN_TOKEN, TOKEN.to_string())]);
    Config::load(&path, &env, &Overrides::default()).unwrap()
}

fn partition_dir(out: &Path, task: &str) -> PathBuf {
    out.join(DATASET)
        .join(format!("task_id={task}"))
        .join("date=2026-11-20")
}

fn manifest(out: &Path, task: &str, exec: &str) -> Manifest {
    let p = out
        .join(DATASET)
        .join("_manifests")
        .join(task)
        .join(format!("{exec}.json"));
    Manifest::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn rel(out: &Path, f: &Path) -> String {
    f.strip_prefix(out).unwrap().to_string_lossy().into_owned()
}

/// Files under `out` in `_groups`, `_staging` or `_leases`: what a finished run must not
/// leave behind.
fn leftovers(out: &Path) -> Vec<String> {
    walk_files(out)
        .iter()
        .map(|f| rel(out, f))
        .filter(|r| r.contains("/_groups/") || r.contains("/_staging/") || r.contains("/_leases/"))
        .collect()
}

/// Per task: the combined files of its partition, and each execution's manifest names
/// one of them, shared, with its own 100 rows; the files hold exactly those rows.
fn assert_combined_layout(out: &Path, sc: &Scenario, files_per_task: usize, report: &RunReport) {
    for t in &sc.tasks {
        let files: Vec<String> = parquet_files(&partition_dir(out, &t.id))
            .iter()
            .map(|f| rel(out, f))
            .collect();
        assert_eq!(files.len(), files_per_task, "{}: {files:?}", t.id);
        for f in &files {
            assert!(
                partition::is_combined(&object_store::path::Path::from(f.as_str())),
                "{f}"
            );
        }
        let mut rows_by_file: std::collections::BTreeMap<String, u64> = Default::default();
        for e in &t.executions {
            let m = manifest(out, &t.id, &e.id);
            assert_eq!(m.rows, ROWS);
            assert_eq!(m.files.len(), 1, "{m:?}");
            let f = &m.files[0];
            assert!(f.shared, "{m:?}");
            assert_eq!(f.rows, ROWS);
            assert!(files.contains(&f.path), "{} names {}", e.id, f.path);
            let on_disk = std::fs::metadata(out.join(&f.path)).unwrap().len();
            assert_eq!(f.bytes, on_disk, "{}", f.path);
            *rows_by_file.entry(f.path.clone()).or_default() += f.rows;
            let r = report
                .executions
                .iter()
                .find(|r| r.execution_id == e.id)
                .unwrap();
            assert_eq!(r.outcome, Outcome::Ingested);
            assert_eq!(r.files, vec![f.path.clone()]);
            assert_eq!(r.rows, ROWS);
        }
        // The manifests account for every row of every file: nothing in a file that no
        // manifest claims.
        for f in &files {
            let rows: usize = read_parquet(&out.join(f))
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert_eq!(Some(&(rows as u64)), rows_by_file.get(f), "{f}");
        }
    }
}

/// Every execution's rows are in the store exactly once, as the simulator generated them.
fn assert_rows_equal_source(out: &Path, sc: &Scenario, base_url: &str) {
    let total = assert_dataset_equals_source(out, sc, base_url);
    let want: u64 = sc
        .tasks
        .iter()
        .flat_map(|t| &t.executions)
        .map(|e| e.rows)
        .sum();
    assert_eq!(total, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_small_executions_become_one_file_per_partition() {
    let sc = small_scenario(10, 30);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Defaults: 8 MiB / 64 MiB; 30 × 100 rows is far below both.
    let cfg = small_config(dir.path(), &sim.base_url(), &sc, "");
    let report = run::run(&cfg).await.unwrap();
    let t = &report.totals;
    assert_eq!(
        (t.executions, t.ingested, t.failed, t.rows),
        (300, 300, 0, 300 * ROWS),
        "{}",
        report.summary()
    );
    assert_eq!(
        (t.files, t.combined_files),
        (10, 10),
        "{}",
        report.summary()
    );
    assert!(t.executions_per_second > 0.0, "{t:?}");
    let file_bytes: u64 = parquet_files(&out)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(t.bytes, file_bytes, "byte shares add up to the files");
    assert!(
        report.summary().contains("10 files (10 combined)")
            && report.summary().contains(" executions/s"),
        "{}",
        report.summary()
    );
    assert_eq!(parquet_files(&out).len(), 10);
    assert_combined_layout(&out, &sc, 1, &report);
    assert_rows_equal_source(&out, &sc, &sim.base_url());
    assert_eq!(leftovers(&out), Vec::<String>::new());

    // A re-run finds every manifest with one LIST per task and writes nothing.
    let before: Vec<(PathBuf, std::time::SystemTime)> = walk_files(&out)
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).unwrap().modified().unwrap();
            (f, m)
        })
        .collect();
    let again = run::run(&cfg).await.unwrap();
    assert_eq!(
        (again.totals.already_ingested, again.totals.ingested),
        (300, 0),
        "{}",
        again.summary()
    );
    assert_eq!((again.totals.files, again.totals.combined_files), (0, 0));
    let after: Vec<(PathBuf, std::time::SystemTime)> = walk_files(&out)
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).unwrap().modified().unwrap();
            (f, m)
        })
        .collect();
    assert_eq!(before, after);
    // No export was downloaded twice, and the re-run asked for none.
    let exports = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/results/export") && r.status == 200)
        .count();
    assert_eq!(exports, 300);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combined_file_is_cut_at_file_rows() {
    // 30 executions of 100 rows per partition into files of at most 1000 rows: exactly
    // three files of ten executions each, whatever order the executions finish in.
    let sc = small_scenario(2, 30);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = small_config(dir.path(), &sim.base_url(), &sc, "file_rows = 1000");
    let report = run::run(&cfg).await.unwrap();
    assert_eq!(report.totals.ingested, 60, "{}", report.summary());
    assert_eq!((report.totals.files, report.totals.combined_files), (6, 6));
    assert_combined_layout(&out, &sc, 3, &report);
    for f in parquet_files(&out) {
        let batches = read_parquet(&f);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1000);
        let mut execs = BTreeSet::new();
        for b in &batches {
            let ids = b
                .column_by_name("_titan_execution_id")
                .unwrap()
                .as_string::<i32>();
            execs.extend(ids.iter().flatten().map(str::to_string));
        }
        assert_eq!(execs.len(), 10, "{f:?}");
    }
    assert_rows_equal_source(&out, &sc, &sim.base_url());
    assert_eq!(leftovers(&out), Vec::<String>::new());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combining_off_keeps_one_file_per_execution() {
    let sc = small_scenario(2, 20);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = small_config(dir.path(), &sim.base_url(), &sc, "combine_below_mb = 0");
    let report = run::run(&cfg).await.unwrap();
    assert_eq!(
        (
            report.totals.ingested,
            report.totals.files,
            report.totals.combined_files
        ),
        (40, 40, 0),
        "{}",
        report.summary()
    );
    let mut want = Vec::new();
    for t in &sc.tasks {
        for e in &t.executions {
            want.push(format!(
                "{DATASET}/task_id={}/date=2026-11-20/{}-0.parquet",
                t.id, e.id
            ));
            let m = manifest(&out, &t.id, &e.id);
            assert_eq!(m.files.len(), 1);
            assert!(!m.files[0].shared);
            assert_eq!(m.files[0].path, *want.last().unwrap());
        }
    }
    want.sort();
    let files: Vec<String> = parquet_files(&out).iter().map(|f| rel(&out, f)).collect();
    assert_eq!(files, want);
    assert_rows_equal_source(&out, &sc, &sim.base_url());
    sim.shutdown().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

fn spawn_run(dir: &Path) -> std::process::Child {
    std::process::Command::new(BIN)
        .current_dir(dir)
        .args(["run", "--config", "titan.toml", "--report", "report.json"])
        .env("TITAN_TOKEN", TOKEN)
        .env_remove("TITAN_API_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_executions_killed_at_random_points_end_as_the_source() {
    // Groups of five (file_rows 500): a run commits dozens of groups, so kills land while
    // combining, in the middle of group commits and between them. Exports trickle (about
    // a second each), so a whole run takes longer than the kills leave it.
    let sc = small_scenario_with(
        4,
        30,
        "[faults]\nslow_drip_rate = 1.0\nslow_drip_chunk = 256\nslow_drip_delay = \"20ms\"\nfault_routes = [\"export\"]",
    );
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_small_config(dir.path(), &sim.base_url(), &sc, "file_rows = 500");
    let out = dir.path().join("out");
    let mut seed: u64 = 0xc0ffee;
    let mut kills = 0;
    let mut intents_seen = 0;
    for _ in 0..16 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(100 + (seed >> 33) % 1500);
        let mut child = spawn_run(dir.path());
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
        intents_seen += walk_files(&out)
            .iter()
            .filter(|f| rel(&out, f).contains("/_groups/"))
            .count();
    }
    assert!(kills >= 8, "only {kills} runs were still going when killed");
    let mut code = None;
    for _ in 0..5 {
        let mut child = spawn_run(dir.path());
        code = wait_with_deadline(&mut child, Duration::from_secs(120));
        let _ = child.wait();
        if code == Some(0) {
            break;
        }
    }
    assert_eq!(code, Some(0), "final run exit");
    assert_rows_equal_source(&out, &sc, &sim.base_url());
    // Every execution has its manifest, naming files that exist and its own row count.
    for t in &sc.tasks {
        for e in &t.executions {
            let m = manifest(&out, &t.id, &e.id);
            assert_eq!(m.rows, ROWS);
            assert_eq!(m.files.iter().map(|f| f.rows).sum::<u64>(), ROWS);
            for f in &m.files {
                assert!(out.join(&f.path).exists(), "{} names {}", e.id, f.path);
            }
        }
    }
    // No group commit is left half done. (Staged files and leases a SIGKILL left behind
    // after their execution's commit are another matter: they predate combining.)
    let intents: Vec<String> = leftovers(&out)
        .into_iter()
        .filter(|r| r.contains("/_groups/") && r.ends_with(".json"))
        .collect();
    assert_eq!(intents, Vec::<String>::new());
    eprintln!("combine kills: {kills} kills, {intents_seen} group files seen after kills");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_finishes_group_commits_a_crash_left_half_done() {
    use titan_connector::sink::folder::GroupIntent;
    let sc = small_scenario(2, 10);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = small_config(dir.path(), &sim.base_url(), &sc, "");
    let first = run::run(&cfg).await.unwrap();
    assert_eq!(first.totals.combined_files, 2, "{}", first.summary());
    let complete: Vec<(PathBuf, Vec<u8>)> = walk_files(&out)
        .into_iter()
        .map(|f| {
            let b = std::fs::read(&f).unwrap();
            (f, b)
        })
        .collect();

    // Put both partitions back into a crashed state, as the intent records it:
    // task 0 — combined file in place, only its first three manifests written;
    // task 1 — combined file still staged, no manifest written.
    for (i, t) in sc.tasks.iter().enumerate() {
        let manifests: Vec<Manifest> = t
            .executions
            .iter()
            .map(|e| manifest(&out, &t.id, &e.id))
            .collect();
        let final_path = manifests[0].files[0].path.clone();
        let group_id = Path::new(&final_path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .strip_prefix(partition::COMBINED_PREFIX)
            .unwrap()
            .to_string();
        let staged = format!("{DATASET}/_groups/{group_id}/part-0.parquet.tmp");
        let intent = GroupIntent {
            intent_version: 1,
            group_id: group_id.clone(),
            dataset: DATASET.into(),
            task_id: t.id.clone(),
            staged: staged.clone(),
            final_path: final_path.clone(),
            manifests: manifests.clone(),
        };
        let groups = out.join(DATASET).join("_groups");
        std::fs::create_dir_all(groups.join(&group_id)).unwrap();
        std::fs::write(groups.join(format!("{group_id}.json")), intent.to_bytes()).unwrap();
        let keep = if i == 0 { 3 } else { 0 };
        for e in &t.executions[keep..] {
            std::fs::remove_file(
                out.join(DATASET)
                    .join("_manifests")
                    .join(&t.id)
                    .join(format!("{}.json", e.id)),
            )
            .unwrap();
        }
        if i == 1 {
            std::fs::rename(out.join(&final_path), out.join(&staged)).unwrap();
        }
    }
    let exports_before = sim.requests().len();

    let again = run::run(&cfg).await.unwrap();
    // Recovery ran before planning: every execution is already ingested, none redone.
    assert_eq!(
        (again.totals.already_ingested, again.totals.ingested),
        (20, 0),
        "{}",
        again.summary()
    );
    assert!(
        sim.requests()[exports_before..]
            .iter()
            .all(|r| !r.path.ends_with("/results/export")),
        "an export was downloaded again"
    );
    // The store is as the uninterrupted commits left it, byte for byte (the directory
    // of the staged file aside, which a store of objects would not have).
    let now: Vec<(PathBuf, Vec<u8>)> = walk_files(&out)
        .into_iter()
        .map(|f| {
            let b = std::fs::read(&f).unwrap();
            (f, b)
        })
        .collect();
    assert_eq!(now.len(), complete.len());
    for ((a, x), (b, y)) in complete.iter().zip(&now) {
        assert_eq!(a, b);
        assert!(x == y, "{} differs", a.display());
    }
    assert_rows_equal_source(&out, &sc, &sim.base_url());
    sim.shutdown().await;
}

/// Killed late in a run, a run loses at most `max_commit_delay` of finished work: small
/// executions that finished early are committed while a slow one is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_small_executions_are_committed_within_max_commit_delay() {
    let mut sc = small_scenario(1, 3);
    sc.tasks[0].executions[2].running_for = Duration::from_secs(8);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = small_config(
        dir.path(),
        &sim.base_url(),
        &sc,
        "max_commit_delay = \"1s\"",
    );
    let run = tokio::spawn(async move { run::run(&cfg).await });
    let manifests = out.join(DATASET).join("_manifests").join("small-0");
    let early = ["s0-e000.json", "s0-e001.json"];
    let started = std::time::Instant::now();
    while !early.iter().all(|m| manifests.join(m).exists()) {
        assert!(
            !run.is_finished(),
            "the early executions were committed only at the end of the run"
        );
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "not committed within the delay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!run.is_finished(), "the slow execution is still running");
    let report = run.await.unwrap().unwrap();
    let t = &report.totals;
    assert_eq!(
        (t.ingested, t.failed, t.files, t.combined_files),
        (3, 0, 2, 1),
        "{t:?}"
    );
    let m0 = manifest(&out, "small-0", "s0-e000");
    let m1 = manifest(&out, "small-0", "s0-e001");
    let m2 = manifest(&out, "small-0", "s0-e002");
    assert!(m0.files[0].shared, "{m0:?}");
    assert_eq!(m0.files[0].path, m1.files[0].path);
    assert_ne!(
        m2.files[0].path, m0.files[0].path,
        "the slow one came too late to join"
    );
    assert_rows_equal_source(&out, &sc, &sim.base_url());
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

/// A group commit that fails half way (the combined file in place, a manifest not
/// written) and cannot be settled keeps its members' leases: released, they would let
/// another process commit a member alone while its rows are already in the combined file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_that_cannot_be_settled_keeps_its_members_leases() {
    let sc = small_scenario(1, 2);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A folder where the second member's manifest goes: every put of it fails.
    let manifests = out.join(DATASET).join("_manifests").join("small-0");
    std::fs::create_dir_all(manifests.join("s0-e001.json")).unwrap();
    let cfg = small_config(dir.path(), &sim.base_url(), &sc, "");
    let report = run::run(&cfg).await.unwrap();
    assert_eq!(report.totals.failed, 2, "{:?}", report.totals);
    assert!(
        report.executions.iter().all(|e| e
            .error
            .as_deref()
            .is_some_and(|m| m.starts_with("group commit"))),
        "{:?}",
        report.executions
    );
    let leases = out.join(DATASET).join("_leases").join("small-0");
    for e in ["s0-e000", "s0-e001"] {
        assert!(
            leases.join(format!("{e}.json")).is_file(),
            "the lease of {e} was let go before its group was settled"
        );
    }
    let intents = walk_files(&out.join(DATASET).join("_groups"));
    assert_eq!(
        intents.len(),
        1,
        "the intent stays for recovery: {intents:?}"
    );
}
