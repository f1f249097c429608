//! One run: resolve the task list into executions, wait for each, stream its export
//! through decoder → mapper → Parquet writer, and commit it.
//!
//! Executions are processed concurrently up to `run.concurrency`. A failure of one
//! execution is recorded and the others go on; only errors that doom every request
//! (authentication, an unreachable API while planning) end the run early.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{ApiError, ApiErrorKind, Execution, TitanClient};
use crate::combine::{Combiners, GroupKey};
use crate::config::Config;
use crate::decode::{DecoderOptions, RawDecoder};
use crate::format::ExportFormat;
use crate::lease::{self, Claim, Lease};
use crate::media::{KnownMedia, MediaFetcher};
use crate::partition::{self, PartNames, PartitionKey};
use crate::progress::Progress;
use crate::report::{ExecutionReport, Outcome, REPORT_VERSION, RunReport, TaskFailure, Totals};
use crate::schema::{BadRowPolicy, ColumnType, QuarantineEncoder};
use crate::schema::{Evolved, Lineage, Mapper, TargetSchema};
use crate::sniff;
use crate::store::{Store, StoreError};
use crate::tasks::{self, ExecutionSelector, TaskSpec};
use crate::transcode::{BadRows, MediaStage, Spool, TranscodeError, Transcoded, transcode};
use crate::waiter;
use crate::write::group::{self, GroupCommitted};
use crate::write::{
    self, ExecutionWriter, Manifest, ManifestFile, ManifestStatus, Member, StagedPart,
    WriterSettings,
};

/// Errors that end a whole run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Titan rejected the token while fetching media.
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Other(String),
}

/// Why one execution could not be ingested.
#[derive(Debug, thiserror::Error)]
enum IngestError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Wait(#[from] waiter::WaitError),
    #[error("export of execution {execution_id}: {source}")]
    Transcode {
        execution_id: String,
        #[source]
        source: TranscodeError,
    },
    #[error(transparent)]
    Write(#[from] write::WriteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("interrupted")]
    Interrupted,
    #[error(
        "execution {execution_id}: {source} (the task's `extra_fields`/`missing_fields` policy)"
    )]
    Evolution {
        execution_id: String,
        #[source]
        source: crate::schema::EvolutionError,
    },
    #[error(
        "execution {execution_id}: the export held {read} records but Titan reports {expected}"
    )]
    CountMismatch {
        execution_id: String,
        read: u64,
        expected: u64,
    },
}

/// Downloads of one export before its execution is given up for this run (as many as the
/// client's attempts per request: a body can fail in as many ways as a request).
const EXPORT_ATTEMPTS: u32 = 6;

impl IngestError {
    /// Failures that a fresh download of the same export can cure: a broken or stalled
    /// body, a truncated or non-data body (an HTML error page on 200), a count mismatch.
    fn is_transient_export_failure(&self) -> bool {
        use crate::decode::DecodeError;
        match self {
            IngestError::Transcode { source, .. } => match source {
                TranscodeError::Source(e) => e
                    .downcast_ref::<ApiError>()
                    .is_some_and(ApiError::is_retryable),
                TranscodeError::Decode(
                    DecodeError::Truncated { .. }
                    | DecodeError::NotData { .. }
                    | DecodeError::Empty { .. },
                ) => true,
                _ => false,
            },
            // An HTML page or an error envelope on 200 (a proxy's error page) is transient.
            IngestError::Api(e) => e.is_retryable() || e.kind() == ApiErrorKind::Protocol,
            IngestError::CountMismatch { .. } => true,
            _ => false,
        }
    }

    fn api_kind(&self) -> Option<ApiErrorKind> {
        match self {
            IngestError::Api(e) => Some(e.kind()),
            IngestError::Wait(waiter::WaitError::Api { source, .. }) => Some(source.kind()),
            IngestError::Transcode { source, .. } => match source {
                TranscodeError::Source(e) => e.downcast_ref::<ApiError>().map(ApiError::kind),
                TranscodeError::Media(e) => e.api_error().map(ApiError::kind),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A task resolved against the API: its schema, dataset and the executions to process.
struct PlannedTask {
    spec: TaskSpec,
    dataset: String,
    schema: Arc<TargetSchema>,
    executions: Vec<Execution>,
}

/// Everything one execution needs.
struct WorkItem {
    task: Arc<PlannedTaskInfo>,
    execution: Execution,
}

struct PlannedTaskInfo {
    task_id: String,
    dataset: String,
    schema: Arc<TargetSchema>,
    format: ExportFormat,
    bad_rows: crate::schema::RejectPolicy,
    evolution: crate::schema::EvolutionPolicy,
}

/// How long a just-completed execution's results may lag behind its status.
const RESULTS_LAG_WINDOW: Duration = Duration::from_secs(60);

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
    let started = Instant::now();
    let started_at = now_rfc3339();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let client = TitanClient::new(cfg.api.clone())?;
    let store = Store::open(&cfg.store)?;
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
        store = store.url(),
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
            Ok(planned) => planned_tasks.push(planned),
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
    // Group commits a crashed run left half done are finished or undone first, so that
    // the manifests listed below are the final word on what is committed.
    if !cfg.dry_run {
        let mut datasets: Vec<&str> = planned_tasks.iter().map(|p| p.dataset.as_str()).collect();
        datasets.sort_unstable();
        datasets.dedup();
        for dataset in datasets {
            let done = group::recover_groups(&store, dataset, &owner)
                .await
                .map_err(|e| {
                    RunError::Other(format!(
                        "finishing interrupted group commits of dataset `{dataset}`: {e}"
                    ))
                })?;
            if done != group::Recovered::default() {
                info!(dataset, ?done, "Recovered interrupted group commits");
            }
        }
    }
    for planned in planned_tasks {
        let info = Arc::new(PlannedTaskInfo {
            task_id: planned.spec.id.clone(),
            dataset: planned.dataset.clone(),
            schema: Arc::clone(&planned.schema),
            format: planned.spec.format,
            bad_rows: planned.spec.bad_rows,
            evolution: planned.spec.evolution,
        });
        // One LIST of the task's manifests instead of a HEAD per execution.
        let committed: HashSet<String> = store
            .list(&partition::manifests_prefix(&info.dataset, &info.task_id))
            .await?
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        for execution in planned.executions {
            if let Some(shard) = cfg.shard
                && !shard.owns(&execution.id)
            {
                continue;
            }
            let manifest = partition::manifest_path(&info.dataset, &info.task_id, &execution.id);
            if committed.contains(manifest.as_ref()) {
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
        store: store.clone(),
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
        store: store.url().to_string(),
        totals: Totals {
            api_requests: stats.requests,
            api_retries: stats.retries,
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

#[derive(Debug, thiserror::Error)]
enum PlanError {
    #[error(transparent)]
    Api(ApiError),
    #[error("{0}")]
    Schema(#[from] crate::schema::SchemaError),
    #[error("task has no `output_schema` and no schema file is configured for it")]
    NoSchema,
    #[error("execution {execution_id} belongs to task {actual}, not to this task")]
    WrongTask {
        execution_id: String,
        actual: String,
    },
}

async fn plan_task(client: &TitanClient, spec: &TaskSpec) -> Result<PlannedTask, PlanError> {
    let task = client.get_task(&spec.id).await.map_err(PlanError::Api)?;
    let schema = match &spec.schema {
        Some(path) => TargetSchema::from_file(path)?,
        None => match &task.output_schema {
            Some(v) => TargetSchema::from_output_schema(v)?,
            None => return Err(PlanError::NoSchema),
        },
    };
    schema.validate()?;
    let dataset = spec
        .dataset
        .clone()
        .or_else(|| {
            schema
                .name
                .clone()
                .filter(|n| tasks::validate_dataset(n).is_ok())
        })
        .unwrap_or_else(|| tasks::dataset_slug(&task.name, &task.id));
    let executions = match &spec.executions {
        ExecutionSelector::New => client
            .list_task_executions(&spec.id)
            .await
            .map_err(PlanError::Api)?,
        ExecutionSelector::Latest => {
            let mut all = client
                .list_task_executions(&spec.id)
                .await
                .map_err(PlanError::Api)?;
            all.sort_by_key(|e| e.created_at.as_deref().and_then(parse_time));
            all.pop().into_iter().collect()
        }
        ExecutionSelector::Ids(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let e = client.get_execution(id).await.map_err(PlanError::Api)?;
                if let Some(t) = &e.task_id
                    && t != &spec.id
                {
                    return Err(PlanError::WrongTask {
                        execution_id: id.clone(),
                        actual: t.clone(),
                    });
                }
                out.push(e);
            }
            out
        }
    };
    info!(
        task_id = spec.id,
        dataset,
        executions = executions.len(),
        "Planned task"
    );
    Ok(PlannedTask {
        spec: spec.clone(),
        dataset,
        schema: Arc::new(schema),
        executions,
    })
}

struct Ctx {
    client: TitanClient,
    store: Store,
    cfg: Config,
    run_id: String,
    /// Who this process is, in the leases it takes.
    owner: lease::Owner,
    shutdown: CancellationToken,
    media: MediaFetcher,
    media_store: Store,
    /// The terminal display; a no-op unless stderr is a terminal.
    progress: Progress,
    /// Small executions waiting, staged and leased, to be combined into shared files.
    combiners: Mutex<Combiners<Waiting>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A small execution, staged and still leased, waiting in a combiner for its group.
struct Waiting {
    key: PartitionKey,
    member: Member,
    report: ExecutionReport,
    lease: Option<Lease>,
}

/// How processing an execution ended. (Returned once per execution, never stored: the
/// size of a report on the stack does not matter.)
#[allow(clippy::large_enum_variant)]
enum Done {
    /// With this report (committed, failed, skipped…).
    Report(ExecutionReport),
    /// Staged and small: to be committed with others (the lease is added by the caller).
    Staged(Box<Waiting>),
}

/// Whether this process goes ahead with an execution.
enum Claimed {
    /// Go ahead, under the lease when the store supports leases.
    Go(Option<Lease>),
    /// Done here: another process holds the lease or has committed it meanwhile.
    Skip(ExecutionReport),
}

/// Processes one execution under its lease, so another connector process on the same store
/// neither waits for nor downloads it too. `Err` only for errors that must stop the run.
/// Returns the reports of executions that ended: this one's, unless it waits (staged) in a
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
            // Staged part, manifest draft and lease go to the combiner; the group's commit
            // cleans up and releases.
            waiting.lease = lease;
            let key = GroupKey {
                dataset: waiting.key.dataset.clone(),
                task_id: waiting.key.task_id.clone(),
                date: waiting.key.date.clone(),
                schema_fingerprint: waiting.member.manifest.schema_fingerprint.clone(),
            };
            let (rows, bytes) = (waiting.member.part.rows, waiting.member.part.bytes);
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
    // With the lease still ours no other process works on the execution: whatever crashed
    // or interrupted runs (and this one) left in staging is garbage.
    let leased = match &lease {
        Some(l) => l.still_held().await.unwrap_or(false),
        None => false,
    };
    if let Err(e) =
        write::sweep_staging(&ctx.store, &dataset, &execution_id, &ctx.run_id, leased).await
    {
        warn!(execution_id, error = %e, "Could not clean up staging");
    }
    if let Some(l) = lease {
        l.release().await;
    }
    if let Ok(report) = &result {
        ctx.progress.finish(&report.execution_id, report.outcome);
    }
    result.map(|r| vec![r])
}

/// Commits a group of waiting executions: as one combined file when there are at least
/// two whose leases are still ours, else (and for whatever cannot join) each alone. Then
/// cleans up their staging and releases their leases.
async fn flush(ctx: &Ctx, group: Vec<Waiting>) -> Vec<ExecutionReport> {
    let mut done = Vec::with_capacity(group.len());
    let mut alone = Vec::new();
    let mut held = Vec::new();
    for w in group {
        // A lease lost to a stall may have let another process commit the execution alone.
        let ours = match &w.lease {
            Some(l) => l.still_held().await.unwrap_or(false),
            None => true,
        };
        if ours { held.push(w) } else { alone.push(w) }
    }
    if held.len() >= 2 {
        match commit_combined(ctx, &mut held).await {
            Ok(None) => done.append(&mut held),
            Ok(Some(committed)) => {
                for mut w in held.drain(..) {
                    if committed.contains(&w.report.execution_id) {
                        w.report.outcome = Outcome::AlreadyIngested;
                        done.push(w);
                    } else {
                        alone.push(w);
                    }
                }
            }
            Err(GroupFailed::Before(e)) => {
                warn!(error = %e, members = held.len(), "Could not combine; committing each alone");
                alone.append(&mut held);
            }
            Err(GroupFailed::During(e)) => {
                // The next run's recovery finishes or undoes what the intent records.
                warn!(error = %e, members = held.len(), "Group commit failed");
                for mut w in held.drain(..) {
                    w.report.outcome = Outcome::Failed;
                    w.report.error = Some(format!("group commit: {e}"));
                    done.push(w);
                }
            }
        }
    } else {
        alone.append(&mut held);
    }
    for mut w in alone {
        commit_alone(ctx, &mut w).await;
        done.push(w);
    }
    let mut reports = Vec::with_capacity(done.len());
    for w in done {
        let id = w.report.execution_id.as_str();
        let leased = match &w.lease {
            Some(l) => l.still_held().await.unwrap_or(false),
            None => false,
        };
        if let Err(e) =
            write::sweep_staging(&ctx.store, &w.key.dataset, id, &ctx.run_id, leased).await
        {
            warn!(execution_id = id, error = %e, "Could not clean up staging");
        }
        if let Some(l) = w.lease {
            l.release().await;
        }
        ctx.progress.finish(id, w.report.outcome);
        reports.push(w.report);
    }
    reports
}

/// Why a group was not committed.
enum GroupFailed {
    /// Before anything was recorded: the members can still be committed alone.
    Before(write::WriteError),
    /// While committing: the intent may exist, and its combined file may be in place.
    During(write::WriteError),
}

/// Writes and commits one combined file for `members` (at least two, one partition and
/// schema). `Ok(None)`: committed, reports filled in; `Ok(Some(ids))`: not committed, as
/// these members were committed by another process meanwhile.
async fn commit_combined(
    ctx: &Ctx,
    members: &mut [Waiting],
) -> Result<Option<Vec<String>>, GroupFailed> {
    let key = members[0].key.clone();
    let group_id = group::new_group_id();
    let parts: Vec<Member> = members.iter().map(|w| w.member.clone()).collect();
    let settings = WriterSettings {
        row_group_rows: ctx.cfg.run.row_group_rows,
        file_rows: ctx.cfg.run.file_rows,
        zstd_level: write::DEFAULT_ZSTD_LEVEL,
        schema_fingerprint: parts[0].manifest.schema_fingerprint.clone(),
    };
    let combined = group::combine(&ctx.store, &key, &group_id, &parts, settings)
        .await
        .map_err(GroupFailed::Before)?;
    let mut intent = group::intent_for(&key, &group_id, &combined, &parts);
    let committed_at = now_rfc3339();
    for m in &mut intent.manifests {
        m.committed_at = committed_at.clone();
    }
    match group::commit_group(&ctx.store, &key, &intent).await {
        Ok(GroupCommitted::Now) => {}
        Ok(GroupCommitted::Abandoned { committed }) => {
            info!(
                ?committed,
                "Members committed by another run meanwhile; group not combined"
            );
            return Ok(Some(committed));
        }
        Err(e) => return Err(GroupFailed::During(e)),
    }
    let total_rows: u64 = members.iter().map(|w| w.member.manifest.rows).sum();
    let mut bytes_left = combined.bytes;
    let n = members.len();
    for (i, w) in members.iter_mut().enumerate() {
        let rows = w.member.manifest.rows;
        // The file's bytes shared by rows, so the run's byte total is the file's size.
        let share = if i + 1 == n {
            bytes_left
        } else {
            (u128::from(combined.bytes) * u128::from(rows) / u128::from(total_rows.max(1))) as u64
        };
        bytes_left -= share.min(bytes_left);
        let r = &mut w.report;
        r.outcome = Outcome::Ingested;
        r.rows = rows;
        r.files = vec![combined.final_path.to_string()];
        r.bytes = share;
    }
    info!(
        file = %combined.final_path,
        executions = n,
        rows = total_rows,
        bytes = combined.bytes,
        "Committed a combined file"
    );
    Ok(None)
}

/// Commits a waiting execution by itself, as if it had never waited.
async fn commit_alone(ctx: &Ctx, w: &mut Waiting) {
    let part = std::slice::from_ref(&w.member.part);
    match write::commit(&ctx.store, &w.key, part, &w.member.manifest).await {
        Ok(write::Committed::Now) => committed_alone(&mut w.report, &w.member.manifest, part),
        Ok(write::Committed::ByAnother) => {
            info!(
                execution_id = w.report.execution_id,
                "Committed by another run meanwhile; ours discarded"
            );
            w.report.outcome = Outcome::AlreadyIngested;
        }
        Err(e) => {
            warn!(execution_id = w.report.execution_id, error = %e, "Execution not ingested");
            w.report.outcome = Outcome::Failed;
            w.report.error = Some(e.to_string());
        }
    }
}

/// Fills in the report of an execution committed by itself.
fn committed_alone(report: &mut ExecutionReport, manifest: &Manifest, parts: &[StagedPart]) {
    report.outcome = Outcome::Ingested;
    report.rows = manifest.rows;
    report.files = manifest.files.iter().map(|f| f.path.clone()).collect();
    report.bytes = manifest.files.iter().map(|f| f.bytes).sum();
    info!(
        execution_id = manifest.execution_id,
        rows = manifest.rows,
        files = parts.len(),
        status = manifest.execution_status,
        "Ingested execution"
    );
}

/// Takes the execution's lease. Store trouble with leases only costs the optimisation: the
/// execution goes ahead without one, since the commit is safe on its own.
async fn claim(ctx: &Ctx, item: &WorkItem) -> Result<Claimed, RunError> {
    let (task, execution) = (&item.task, &item.execution);
    let path = lease::lease_path(&task.dataset, &task.task_id, &execution.id);
    let lease = match lease::acquire(&ctx.store, &path, &ctx.owner, lease::LEASE_TTL).await {
        Ok(Claim::Held(l)) => l,
        Ok(Claim::Busy(holder)) => {
            info!(
                execution_id = execution.id,
                holder = holder.describe(),
                "Leased by another run, leaving it"
            );
            let mut report = base_report(task, execution);
            report.outcome = Outcome::Leased;
            report.leased_by = Some(holder.describe());
            return Ok(Claimed::Skip(report));
        }
        Ok(Claim::Unsupported) => return Ok(Claimed::Go(None)),
        Err(e) => {
            warn!(execution_id = execution.id, error = %e, "No lease; going ahead without one");
            return Ok(Claimed::Go(None));
        }
    };
    // Taken over from a crashed holder, which may have been committing it in a group:
    // settle that group first (recovery at the start of this run may have found the holder
    // still alive), or the execution could be committed alone next to its published rows.
    if let Some(before) = lease.taken_over() {
        info!(
            execution_id = execution.id,
            holder = before.describe(),
            "Lease taken over"
        );
        if let Err(e) =
            group::settle_member(&ctx.store, &task.dataset, &task.task_id, &execution.id).await
        {
            warn!(execution_id = execution.id, error = %e, "Could not check for an interrupted group commit");
            lease.release().await;
            let mut report = base_report(task, execution);
            report.outcome = Outcome::Failed;
            report.error = Some(format!("checking for an interrupted group commit: {e}"));
            return Ok(Claimed::Skip(report));
        }
    }
    // Planned before another process committed it and released the lease?
    let manifest = partition::manifest_path(&task.dataset, &task.task_id, &execution.id);
    if ctx.store.exists(&manifest).await? {
        lease.release().await;
        info!(
            execution_id = execution.id,
            "Ingested by another run meanwhile, skipping"
        );
        return Ok(Claimed::Skip(base_report(task, execution)));
    }
    Ok(Claimed::Go(Some(lease)))
}

/// Waits for and ingests one execution. `Err` only for errors that must stop the run.
async fn process_claimed(ctx: &Ctx, item: WorkItem) -> Result<Done, RunError> {
    let WorkItem { task, execution } = item;
    let mut report = base_report(&task, &execution);
    report.outcome = Outcome::Failed;
    let wait_start = Instant::now();
    let waited = tokio::select! {
        r = waiter::wait_from(&ctx.client, execution, &ctx.cfg.wait) => r.map_err(IngestError::from),
        () = ctx.shutdown.cancelled() => Err(IngestError::Interrupted),
    };
    let finished = match waited {
        Ok(e) => e,
        Err(e) => {
            if e.api_kind() == Some(ApiErrorKind::Auth) {
                return Err(fatal(e));
            }
            warn!(execution_id = report.execution_id, error = %e, "Waiting failed");
            report.error = Some(e.to_string());
            return Ok(Done::Report(report));
        }
    };
    report.wait_ms = wait_start.elapsed().as_millis() as u64;
    report.execution_status = Some(finished.status.as_str().to_string());
    let ingest_start = Instant::now();
    let result = if finished.status.has_results() {
        ingest(ctx, &task, &finished, &mut report).await
    } else {
        record_no_results(ctx, &task, &finished).await.map(|()| {
            report.outcome = Outcome::NoResults;
            None
        })
    };
    report.ingest_ms = ingest_start.elapsed().as_millis() as u64;
    match result {
        Ok(None) => Ok(Done::Report(report)),
        Ok(Some((key, member))) => Ok(Done::Staged(Box::new(Waiting {
            key,
            member,
            report,
            lease: None,
        }))),
        Err(e) if e.api_kind() == Some(ApiErrorKind::Auth) => Err(fatal(e)),
        Err(e) => {
            warn!(execution_id = report.execution_id, error = %e, "Execution not ingested");
            report.outcome = Outcome::Failed;
            report.error = Some(e.to_string());
            Ok(Done::Report(report))
        }
    }
}

/// Turns an execution's authentication failure into the run's: with a rejected token no
/// other execution can succeed either.
fn fatal(e: IngestError) -> RunError {
    match e {
        IngestError::Api(a) | IngestError::Wait(waiter::WaitError::Api { source: a, .. }) => {
            RunError::Api(a)
        }
        IngestError::Transcode {
            source: TranscodeError::Source(src),
            ..
        } => match src.downcast::<ApiError>() {
            Ok(a) => RunError::Api(*a),
            Err(other) => RunError::Other(other.to_string()),
        },
        IngestError::Transcode {
            source: TranscodeError::Media(m),
            ..
        } => match m.api_error() {
            Some(a) if a.kind() == ApiErrorKind::Auth => RunError::Auth(m.to_string()),
            _ => RunError::Other(m.to_string()),
        },
        IngestError::Store(s) => RunError::Store(s),
        other => RunError::Other(other.to_string()),
    }
}

/// Downloads, transcodes and commits one execution; `Some` when it is small enough to be
/// combined with others instead: staged, with its manifest draft, not committed.
async fn ingest(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution: &Execution,
    report: &mut ExecutionReport,
) -> Result<Option<(PartitionKey, Member)>, IngestError> {
    let execution_id = execution.id.as_str();
    let key = PartitionKey {
        dataset: task.dataset.clone(),
        task_id: task.task_id.clone(),
        date: partition_date(execution),
    };
    // A body that ends early, isn't data, or doesn't hold the promised record count is
    // downloaded again from the start: nothing of a failed attempt is ever committed.
    let mut attempt = 1;
    let ExportDone {
        parts,
        source_record_count,
        transcoded,
        rejects_staged,
        schema,
        evolved,
    } = loop {
        match export_once(ctx, task, execution, &key).await {
            Ok(done) => break done,
            Err(e) if e.is_transient_export_failure() && attempt < EXPORT_ATTEMPTS => {
                warn!(execution_id, attempt, error = %e, "Export failed, downloading it again");
                report.retries += 1;
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let records_read = transcoded.records;
    report.records_read = records_read;
    report.source_record_count = source_record_count;
    let rows: u64 = parts.iter().map(|p| p.rows).sum();
    if let Some(ev) = &evolved {
        report.columns_added = ev.added.clone();
        report.fields_ignored = ev.ignored.clone();
        report.fields_missing = ev.missing.clone();
    }
    let mut manifest = new_manifest(task, &schema, execution, ManifestStatus::Ingested);
    manifest.files = parts
        .iter()
        .map(|p| ManifestFile {
            path: p.final_path.to_string(),
            rows: p.rows,
            bytes: p.bytes,
            shared: false,
        })
        .collect();
    manifest.rows = rows;
    manifest.records_read = records_read;
    manifest.source_record_count = source_record_count;
    if !transcoded.media.is_empty() || transcoded.media_failed > 0 {
        report.media_files = transcoded.media.len() as u64;
        report.media_failed = transcoded.media_failed;
        manifest.media = Some(write::ManifestMedia {
            store: ctx.media_store.url().to_string(),
            bytes: transcoded.media.iter().map(|m| m.bytes).sum(),
            failed: transcoded.media_failed,
            files: transcoded.media,
        });
    }
    manifest.rejected_rows = transcoded.rejects.rejected_rows;
    report.rejected_rows = transcoded.rejects.rejected_rows;
    if let Some(staged) = rejects_staged {
        // In place before the manifest names it; a re-run overwrites it.
        let target = partition::rejects_path(&task.dataset, &task.task_id, execution_id);
        ctx.store.rename(&staged, &target).await?;
        manifest.rejects_path = Some(target.to_string());
    }
    ctx.progress.execution(execution_id).committing();
    let bytes: u64 = parts.iter().map(|p| p.bytes).sum();
    if ctx
        .cfg
        .combine
        .eligible(parts.len(), rows, bytes, ctx.cfg.run.file_rows as u64)
        && let [part] = parts.as_slice()
    {
        return Ok(Some((
            key,
            Member {
                part: part.clone(),
                manifest,
            },
        )));
    }
    if write::commit(&ctx.store, &key, &parts, &manifest).await? == write::Committed::ByAnother {
        info!(
            execution_id,
            "Committed by another run meanwhile; ours discarded"
        );
        report.outcome = Outcome::AlreadyIngested;
        return Ok(None);
    }
    committed_alone(report, &manifest, &parts);
    Ok(None)
}

/// One successful download of an export, staged and ready to commit.
struct ExportDone {
    parts: Vec<write::StagedPart>,
    source_record_count: Option<u64>,
    transcoded: Transcoded,
    /// Quarantined rows, staged, when there are any.
    rejects_staged: Option<object_store::path::Path>,
    /// The schema the export was mapped with: the task's, plus any added columns.
    schema: Arc<TargetSchema>,
    /// How the schema was reconciled with the export's fields, when it could be read.
    evolved: Option<Evolved>,
}

/// Downloads and transcodes the export once into staged parts; on any failure the staged
/// parts are deleted.
async fn export_once(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution: &Execution,
    key: &PartitionKey,
) -> Result<ExportDone, IngestError> {
    let execution_id = execution.id.as_str();
    let export = open_export(ctx, execution_id, task.format).await?;
    // Asked once the export is open, so the results exist: when Titan gives a record
    // count we hold the export to it. It is only a hint; without it we go on.
    let source_record_count = match ctx.client.results_meta(execution_id).await {
        Ok(meta) if meta.available != Some(false) => meta.record_count,
        Ok(_) => None,
        Err(e) if e.kind() == ApiErrorKind::Auth => return Err(e.into()),
        Err(e) => {
            warn!(execution_id, error = %e, "No results metadata; continuing without a record count");
            None
        }
    };
    // Reading ahead can take as long as a slow body does: it must yield to a shutdown.
    let sniffed = tokio::select! {
        r = sniff::sniff(export.body, task.format, &task.schema, task.evolution) => {
            r.map_err(|source| IngestError::Evolution {
                execution_id: execution_id.to_string(),
                source,
            })?
        }
        () = ctx.shutdown.cancelled() => return Err(IngestError::Interrupted),
    };
    let schema = match &sniffed.evolved {
        Some(ev) if !ev.added.is_empty() => {
            let evolved = Arc::new(ev.schema.clone());
            warn!(
                execution_id,
                added = ?ev.added,
                fingerprint = evolved.fingerprint(),
                "Fields not in the schema were added as columns: a new schema fingerprint"
            );
            evolved
        }
        _ => Arc::clone(&task.schema),
    };
    if let Some(ev) = &sniffed.evolved {
        if !ev.missing.is_empty() {
            warn!(execution_id, missing = ?ev.missing, "Schema fields missing from the export are null");
        }
        if !ev.ignored.is_empty() {
            info!(execution_id, ignored = ?ev.ignored, "Export fields not in the schema are left out");
        }
    }
    let mapper = Mapper::new(
        &schema,
        Lineage {
            task_id: task.task_id.clone(),
            execution_id: execution_id.to_string(),
        },
    );
    let with_media =
        ctx.media.settings().enabled && schema.columns.iter().any(|c| c.ty == ColumnType::Media);
    let mut writer = ExecutionWriter::new(
        ctx.store.clone(),
        PartNames::for_execution(key, execution_id, &ctx.run_id),
        ctx.media.output_schema(&mapper.arrow_schema()),
        WriterSettings {
            row_group_rows: ctx.cfg.run.row_group_rows,
            file_rows: ctx.cfg.run.file_rows,
            zstd_level: write::DEFAULT_ZSTD_LEVEL,
            schema_fingerprint: schema.fingerprint(),
        },
    )?;
    let decoder = RawDecoder::new(
        task.format,
        schema.source_fields(),
        DecoderOptions {
            batch_rows: ctx.cfg.run.batch_rows,
            ..DecoderOptions::default()
        },
    );
    let rejects_staged = PartNames::for_execution(key, execution_id, &ctx.run_id)
        .staging_dir
        .join("rejects.jsonl.tmp");
    let bad_rows = BadRows {
        policy: task.bad_rows,
        quarantine: (task.bad_rows.on_bad_row == BadRowPolicy::Quarantine).then(|| {
            (
                QuarantineEncoder::new(&Lineage {
                    task_id: task.task_id.clone(),
                    execution_id: execution_id.to_string(),
                }),
                object_store::buffered::BufWriter::new(
                    ctx.store.object_store(),
                    rejects_staged.clone(),
                ),
            )
        }),
    };
    let work = transcode_export(
        ctx,
        task,
        execution_id,
        sniffed.body,
        decoder,
        mapper,
        with_media,
        bad_rows,
        &mut writer,
    );
    let transcoded = tokio::select! {
        r = work => r,
        () = ctx.shutdown.cancelled() => Err(IngestError::Interrupted),
    };
    let transcoded = match transcoded {
        Ok(t) => t,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    let records_read = transcoded.records;
    if let Some(expected) = source_record_count
        && expected != records_read
    {
        writer.abort().await;
        return Err(IngestError::CountMismatch {
            execution_id: execution_id.to_string(),
            read: records_read,
            expected,
        });
    }
    let parts = writer.finish().await?;
    let rejects_staged = (transcoded.rejects.rejected_rows > 0
        && task.bad_rows.on_bad_row == BadRowPolicy::Quarantine)
        .then_some(rejects_staged);
    Ok(ExportDone {
        parts,
        source_record_count,
        transcoded,
        rejects_staged,
        schema,
        evolved: sniffed.evolved,
    })
}

fn transcode_failed(execution_id: &str, source: TranscodeError) -> IngestError {
    IngestError::Transcode {
        execution_id: execution_id.to_string(),
        source,
    }
}

/// Runs the hot path over an opened export; with media, the export is spooled first
/// (media downloads pause the decoder, and the body must not sit unread meanwhile).
#[allow(clippy::too_many_arguments)]
async fn transcode_export(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution_id: &str,
    body: futures::stream::BoxStream<'static, Result<bytes::Bytes, ApiError>>,
    decoder: RawDecoder,
    mapper: Mapper,
    with_media: bool,
    bad_rows: BadRows,
    writer: &mut ExecutionWriter,
) -> Result<Transcoded, IngestError> {
    let progress = ctx.progress.execution(execution_id);
    progress.exporting();
    if !with_media {
        return transcode(body, decoder, mapper, None, bad_rows, writer, progress)
            .await
            .map_err(|e| transcode_failed(execution_id, e));
    }
    let spool = Spool::fill(&ctx.cfg.media.spool, execution_id, body)
        .await
        .map_err(|e| transcode_failed(execution_id, TranscodeError::Source(e)))?;
    let body = spool
        .body()
        .await
        .map_err(|e| transcode_failed(execution_id, TranscodeError::Source(Box::new(e))))?;
    let known = KnownMedia::load(&ctx.media_store, &task.task_id, execution_id)
        .await
        .map_err(|e| transcode_failed(execution_id, TranscodeError::Media(e)))?;
    let stage = MediaStage {
        fetcher: &ctx.media,
        task_id: &task.task_id,
        execution_id,
        known: &known,
    };
    let mut done = transcode(
        body,
        decoder,
        mapper,
        Some(stage),
        bad_rows,
        writer,
        progress,
    )
    .await
    .map_err(|e| transcode_failed(execution_id, e))?;
    done.media_failed = known.failed_count() as u64;
    Ok(done)
}

/// Opens the export, retrying a `404` for a while: Titan's results can lag the status flip.
async fn open_export(
    ctx: &Ctx,
    execution_id: &str,
    format: ExportFormat,
) -> Result<crate::api::ExportStream, IngestError> {
    let deadline = Instant::now() + RESULTS_LAG_WINDOW;
    let mut delay = Duration::from_millis(250);
    loop {
        let opened = match format {
            ExportFormat::Json => ctx.client.export(execution_id, format).await,
            ExportFormat::Csv => ctx.client.download_csv(execution_id).await,
        };
        match opened {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ApiErrorKind::NotFound && Instant::now() + delay < deadline => {
                info!(execution_id, "Results not available yet, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Records a failed/cancelled execution so later runs don't wait for it again.
async fn record_no_results(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution: &Execution,
) -> Result<(), IngestError> {
    let manifest = new_manifest(task, &task.schema, execution, ManifestStatus::NoResults);
    ctx.store
        .put(
            &partition::manifest_path(&task.dataset, &task.task_id, &execution.id),
            manifest.to_bytes(),
        )
        .await?;
    warn!(
        execution_id = execution.id,
        status = execution.status.as_str(),
        "Execution ended without results"
    );
    Ok(())
}

/// A manifest for `execution` with no files yet; the caller fills in what it wrote.
fn new_manifest(
    task: &PlannedTaskInfo,
    schema: &TargetSchema,
    execution: &Execution,
    status: ManifestStatus,
) -> Manifest {
    Manifest {
        manifest_version: write::manifest::MANIFEST_VERSION,
        status,
        dataset: task.dataset.clone(),
        task_id: task.task_id.clone(),
        execution_id: execution.id.clone(),
        execution_status: execution.status.as_str().to_string(),
        format: task.format.to_string(),
        files: vec![],
        rows: 0,
        records_read: 0,
        source_record_count: None,
        schema_fingerprint: schema.fingerprint(),
        schema: serde_json::from_str(&schema.to_json()).unwrap_or_default(),
        committed_at: now_rfc3339(),
        connector_version: env!("CARGO_PKG_VERSION").to_string(),
        rejected_rows: 0,
        rejects_path: None,
        media: None,
    }
}

/// The report of an execution before anything is done to it (outcome `already_ingested`,
/// no rows); callers set what happened.
fn base_report(task: &PlannedTaskInfo, execution: &Execution) -> ExecutionReport {
    ExecutionReport {
        task_id: task.task_id.clone(),
        execution_id: execution.id.clone(),
        dataset: task.dataset.clone(),
        outcome: Outcome::AlreadyIngested,
        execution_status: Some(execution.status.as_str().to_string()),
        rows: 0,
        records_read: 0,
        source_record_count: None,
        files: vec![],
        bytes: 0,
        wait_ms: 0,
        ingest_ms: 0,
        retries: 0,
        rejected_rows: 0,
        media_files: 0,
        media_failed: 0,
        columns_added: vec![],
        fields_ignored: vec![],
        fields_missing: vec![],
        error: None,
        leased_by: None,
    }
}

/// The partition date of an execution: the UTC day it was created (fixed once created,
/// so a re-run lands in the same folder), else the day it started or completed, else today.
fn partition_date(e: &Execution) -> String {
    [&e.created_at, &e.started_at, &e.completed_at]
        .into_iter()
        .flatten()
        .find_map(|t| partition::utc_date(t))
        .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string())
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
