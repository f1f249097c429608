//! One run: resolve the task list into executions, wait for each, stream its export
//! through decoder → mapper → Parquet writer, and hand it to the sink to commit.
//!
//! ```text
//! plan (source::plan) ─► recover (sink) ─► skip committed (sink) ─► per execution,
//!   `run.concurrency` at a time: claim (lease) ─► wait ─► export ─► transcode ─► commit
//!                                                   └─ small ones ─► combiner ─► flush
//! ```
//!
//! A failure of one execution is recorded and the others go on; only errors that doom
//! every request (authentication, an unreachable API while planning) end the run early.

mod claim;
pub mod error;
mod flush;
mod ingest;
pub mod spool;
pub mod transcode;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use error::RunError;

use crate::api::{ApiErrorKind, Execution, TitanClient};
use crate::config::Config;
use crate::format::ExportFormat;
use crate::map::RejectPolicy;
use crate::media::MediaFetcher;
use crate::progress::Progress;
use crate::report::{
    DatasetReport, ExecutionReport, Outcome, REPORT_VERSION, RunReport, TaskFailure, Totals,
    now_rfc3339,
};
use crate::schema::{EvolutionPolicy, TargetSchema};
use crate::sink::binding;
use crate::sink::combine::{Combiners, GroupKey};
use crate::sink::lease::{self, Lease};
use crate::sink::parquet::WriterSettings;
use crate::sink::store::Store;
use crate::sink::{DeltaSink, FolderSink, Sink, Staged, TableFormat};
use crate::source::plan::{PlanError, plan_task};
use claim::{Claimed, claim};
use flush::{Waiting, flush};
use ingest::{Done, process_claimed};

/// Everything one execution needs.
struct WorkItem {
    task: Arc<PlannedTaskInfo>,
    execution: Execution,
}

/// What the run needs of a planned task, shared by its executions.
struct PlannedTaskInfo {
    task_id: String,
    dataset: String,
    schema: Arc<TargetSchema>,
    format: ExportFormat,
    bad_rows: RejectPolicy,
    evolution: EvolutionPolicy,
}

/// Runs the pipeline for `cfg` and returns the report. Per-execution failures are in the
/// report; `Err` means the run as a whole could not proceed.
pub async fn run(cfg: &Config) -> Result<RunReport, RunError> {
    run_until(cfg, CancellationToken::new()).await
}

/// [`run`], stopping early when `shutdown` is cancelled (SIGTERM/SIGINT): no new execution
/// is started, in-flight downloads are abandoned with their staged parts deleted, commits
/// already under way finish. The report then has `interrupted` set.
pub async fn run_until(cfg: &Config, shutdown: CancellationToken) -> Result<RunReport, RunError> {
    run_with_progress(cfg, shutdown, Progress::disabled()).await
}

/// [`run_until`], showing each execution in flight on `progress`.
pub async fn run_with_progress(
    cfg: &Config,
    shutdown: CancellationToken,
    progress: Progress,
) -> Result<RunReport, RunError> {
    run_as(cfg, shutdown, progress, uuid::Uuid::now_v7()).await
}

/// [`run_with_progress`] under a run id chosen by the caller, so that what is announced
/// before the run (the OpenLineage START event) names the run the report describes. The
/// report's `run_id` is this UUID without hyphens.
pub async fn run_as(
    cfg: &Config,
    shutdown: CancellationToken,
    progress: Progress,
    run_uuid: uuid::Uuid,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let run_id = run_uuid.simple().to_string();
    let client = TitanClient::new(cfg.api.clone())?;
    let store = Store::open(&cfg.store)?;
    let sink: Arc<dyn Sink> = match cfg.table.format {
        TableFormat::Parquet => Arc::new(FolderSink::new(store.clone())),
        TableFormat::Delta => {
            Arc::new(DeltaSink::new(store.clone(), cfg.table.checkpoint_interval))
        }
    };
    let media_store = match &cfg.media.store {
        Some(sc) => Store::open(sc)?,
        None => store.clone(),
    };
    let media = MediaFetcher::new(
        client.clone(),
        media_store.clone(),
        cfg.media.settings.clone(),
    );
    info!(
        store = sink.url(),
        tasks = cfg.tasks.len(),
        run_id,
        "Starting run"
    );

    let owner = lease::Owner::this_process(&run_id);
    let mut tasks_failed = Vec::new();
    let mut reports = Vec::new();
    let mut work = Vec::new();
    let mut planned_tasks = Vec::new();
    for spec in &cfg.tasks {
        match plan_task(&client, spec).await {
            Ok(mut planned) => {
                planned.dataset = binding::dataset_for(
                    &store,
                    &spec.id,
                    &planned.task_name,
                    spec.dataset.as_deref(),
                    &planned.dataset,
                    !cfg.dry_run,
                )
                .await?;
                planned_tasks.push(planned);
            }
            Err(PlanError::Api(e))
                if matches!(e.kind(), ApiErrorKind::Auth | ApiErrorKind::Unreachable) =>
            {
                return Err(RunError::Api(e));
            }
            Err(e) => {
                warn!(task_id = spec.id, error = %e, "Task cannot be ingested");
                tasks_failed.push(TaskFailure {
                    task_id: spec.id.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    // Commits a crashed run left half done are finished or undone first, so that what the
    // sink reports as committed below is the final word.
    if !cfg.dry_run {
        let mut datasets: Vec<&str> = planned_tasks.iter().map(|p| p.dataset.as_str()).collect();
        datasets.sort_unstable();
        datasets.dedup();
        for dataset in datasets {
            sink.recover(dataset, &owner)
                .await
                .map_err(|source| RunError::Recover {
                    dataset: dataset.to_string(),
                    source,
                })?;
        }
    }
    let mut datasets = Vec::new();
    for planned in &planned_tasks {
        DatasetReport::add(
            &mut datasets,
            &planned.dataset,
            &planned.spec.id,
            &planned.schema,
        );
    }
    let plan_ms = started.elapsed().as_millis() as u64;
    for planned in planned_tasks {
        let info = Arc::new(PlannedTaskInfo {
            task_id: planned.spec.id.clone(),
            dataset: planned.dataset.clone(),
            schema: Arc::clone(&planned.schema),
            format: planned.spec.format,
            bad_rows: planned.spec.bad_rows,
            evolution: planned.spec.evolution,
        });
        let committed = sink.committed(&info.dataset, &info.task_id).await?;
        for execution in planned.executions {
            if let Some(shard) = cfg.shard
                && !shard.owns(&execution.id)
            {
                continue;
            }
            if committed.contains(&execution.id) {
                info!(execution_id = execution.id, "Already ingested, skipping");
                reports.push(base_report(&info, &execution));
                continue;
            }
            work.push(WorkItem {
                task: Arc::clone(&info),
                execution,
            });
        }
    }

    if cfg.dry_run {
        // Planned and checked against the manifests; nothing is awaited or written.
        for item in work.drain(..) {
            let mut r = base_report(&item.task, &item.execution);
            r.outcome = Outcome::Planned;
            reports.push(r);
        }
    }
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        sink: Arc::clone(&sink),
        cfg: cfg.clone(),
        run_id: run_id.clone(),
        owner,
        shutdown: shutdown.clone(),
        media: media.clone(),
        media_store,
        progress,
        combiners: Mutex::new(Combiners::new(cfg.combine, cfg.run.file_rows as u64)),
    });
    let mut results = futures::stream::iter(work.into_iter().map(|item| {
        let ctx = Arc::clone(&ctx);
        async move {
            let id = item.execution.id.clone();
            ctx.progress.execution(&id);
            let r = process(&ctx, item).await;
            if r.is_err() {
                ctx.progress.finish(&id, Outcome::Failed);
            }
            r
        }
    }))
    .take_until(shutdown.clone().cancelled_owned())
    .buffer_unordered(cfg.run.concurrency)
    .boxed();
    // Groups whose oldest member waited `max_commit_delay` are committed meanwhile (no
    // task at all when nothing is ever combined).
    let stop_aging = CancellationToken::new();
    let aging = cfg
        .combine
        .enabled()
        .then(|| tokio::spawn(flush::flush_aged(Arc::clone(&ctx), stop_aging.clone())));
    let mut fatal = None;
    while let Some(r) = results.next().await {
        match r {
            Ok(done) => reports.extend(done),
            Err(e) => {
                fatal = Some(e);
                break;
            }
        }
    }
    drop(results);
    stop_aging.cancel();
    if let Some(aging) = aging {
        match aging.await {
            Ok(done) => reports.extend(done),
            Err(e) => warn!(error = %e, "The commit-delay task failed"),
        }
    }
    // What is staged is committed, also when the run is interrupted or must stop: it
    // needs no API, and the next run would only download it again.
    let open = lock(&ctx.combiners).drain();
    let mut flushes = futures::stream::iter(open.into_iter().map(|g| flush(&ctx, g)))
        .buffer_unordered(cfg.run.concurrency);
    while let Some(done) = flushes.next().await {
        reports.extend(done);
    }
    ctx.progress.clear();
    if let Some(e) = fatal {
        return Err(e);
    }

    let stats = client.stats();
    let media_stats = media.stats();
    let mut report = RunReport {
        report_version: REPORT_VERSION,
        connector_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id,
        started_at,
        finished_at: now_rfc3339(),
        duration_ms: started.elapsed().as_millis() as u64,
        store: sink.url().to_string(),
        datasets,
        totals: Totals {
            api_requests: stats.requests,
            api_retries: stats.retries,
            api_retries_by_cause: stats.retries_by_cause,
            api_rate_limited: stats.rate_limited,
            api_throttled_ms: stats.throttled_ms,
            plan_ms,
            media: media_stats,
            ..Totals::default()
        },
        tasks_failed,
        interrupted: shutdown.is_cancelled(),
        executions: reports,
    };
    report.tally();
    Ok(report)
}

/// What every execution of a run shares.
struct Ctx {
    client: TitanClient,
    sink: Arc<dyn Sink>,
    cfg: Config,
    run_id: String,
    /// Who this process is, in the leases it takes.
    owner: lease::Owner,
    shutdown: CancellationToken,
    media: MediaFetcher,
    media_store: Store,
    /// The terminal display; a no-op unless stderr is a terminal.
    progress: Progress,
    /// Small executions waiting, written and leased, to be combined into shared files.
    combiners: Mutex<Combiners<Waiting>>,
}

impl Ctx {
    /// How a group of `like`'s schema is written.
    fn writer_settings(&self, like: &Staged) -> WriterSettings {
        self.cfg
            .run
            .writer_settings(like.manifest.schema_fingerprint.clone())
    }

    /// After an execution ended (committed, failed, interrupted): removes what it left
    /// uncommitted and lets its lease go. With the lease still ours no other process works
    /// on the execution, so whatever crashed or interrupted runs left is garbage too.
    async fn finish_execution(&self, dataset: &str, execution_id: &str, lease: Option<Lease>) {
        let leased = match &lease {
            Some(l) => l.still_held().await.unwrap_or(false),
            None => false,
        };
        if let Err(e) = self
            .sink
            .discard(dataset, execution_id, &self.run_id, leased)
            .await
        {
            warn!(execution_id, error = %e, "Could not clean up staging");
        }
        if let Some(l) = lease {
            l.release().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Processes one execution under its lease, so another connector process on the same store
/// neither waits for nor downloads it too. `Err` only for errors that must stop the run.
/// Returns the reports of executions that ended: this one's, unless it waits in a
/// combiner, and those of any group its arrival completed.
async fn process(ctx: &Ctx, item: WorkItem) -> Result<Vec<ExecutionReport>, RunError> {
    let lease = match claim(ctx, &item).await? {
        Claimed::Go(lease) => lease,
        Claimed::Skip(report) => {
            ctx.progress.finish(&report.execution_id, report.outcome);
            return Ok(vec![report]);
        }
    };
    let (dataset, execution_id) = (item.task.dataset.clone(), item.execution.id.clone());
    let result = match process_claimed(ctx, item).await {
        Ok(Done::Staged(mut waiting)) => {
            // Part, manifest draft and lease go to the combiner; the group's commit cleans
            // up and releases.
            waiting.lease = lease;
            let k = &waiting.staged.key;
            let key = GroupKey {
                dataset: k.dataset.clone(),
                task_id: k.task_id.clone(),
                date: k.date.clone(),
                schema_fingerprint: waiting.staged.manifest.schema_fingerprint.clone(),
            };
            let (rows, bytes) = (waiting.staged.rows(), waiting.staged.bytes());
            let due = lock(&ctx.combiners).add(key, *waiting, rows, bytes);
            let mut reports = Vec::new();
            for g in due {
                reports.extend(flush(ctx, g).await);
            }
            return Ok(reports);
        }
        Ok(Done::Report(report)) => Ok(report),
        Err(e) => Err(e),
    };
    ctx.finish_execution(&dataset, &execution_id, lease).await;
    if let Ok(report) = &result {
        ctx.progress.finish(&report.execution_id, report.outcome);
    }
    result.map(|r| vec![r])
}

/// The report of an execution before anything is done to it (outcome `already_ingested`,
/// no rows); callers set what happened.
fn base_report(task: &PlannedTaskInfo, execution: &Execution) -> ExecutionReport {
    ExecutionReport::new(
        &task.task_id,
        &execution.id,
        &task.dataset,
        Outcome::AlreadyIngested,
        execution.status.as_str(),
    )
}
