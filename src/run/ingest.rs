//! One execution, claimed: wait for it to end, download its export (again from the start
//! when the body fails in a way a new download can cure), transcode it into parts, and
//! commit it, or hand it back to be combined with other small executions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use tracing::{info, warn};

use super::error::{EXPORT_ATTEMPTS, IngestError, RunError, Severity};
use super::flush::{Waiting, committed_alone};
use super::transcode::{BadRows, MediaStage, Spool, TranscodeError, Transcoded, transcode};
use super::{Ctx, PlannedTaskInfo, WorkItem, base_report};
use crate::api::{ApiError, ApiErrorKind, Execution};
use crate::decode::{RawDecoder, sniff};
use crate::map::{BadRowPolicy, Lineage, Mapper, QuarantineEncoder};
use crate::media::KnownMedia;
use crate::report::{ExecutionReport, Outcome, now_rfc3339};
use crate::schema::{ColumnType, Evolved, TargetSchema};
use crate::sink::manifest::{self, Manifest, ManifestFile, ManifestMedia, ManifestStatus};
use crate::sink::parquet::{ExecutionWriter, StagedPart};
use crate::sink::partition::{self, PartitionKey};
use crate::sink::{Committed, Staged};
use crate::source::{export, waiter};

/// How processing an execution ended. (Returned once per execution, never stored: the
/// size of a report on the stack does not matter.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Done {
    /// With this report (committed, failed, skipped…).
    Report(ExecutionReport),
    /// Written and small: to be committed with others (the lease is added by the caller).
    Staged(Box<Waiting>),
}

/// Waits for and ingests one execution. `Err` only for errors that must stop the run.
pub(super) async fn process_claimed(ctx: &Ctx, item: WorkItem) -> Result<Done, RunError> {
    let WorkItem { task, execution } = item;
    let mut report = base_report(&task, &execution);
    report.outcome = Outcome::Failed;
    let wait_start = Instant::now();
    let waited = tokio::select! {
        r = waiter::wait_from(&ctx.client, execution, &ctx.cfg.wait) => r.map_err(IngestError::from),
        () = ctx.shutdown.cancelled() => Err(IngestError::Interrupted),
    };
    let finished = match waited.map_err(IngestError::severity) {
        Ok(e) => e,
        Err(Severity::Run(fatal)) => return Err(fatal),
        Err(Severity::Execution(e)) => {
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
    match result.map_err(IngestError::severity) {
        Ok(None) => Ok(Done::Report(report)),
        Ok(Some(staged)) => Ok(Done::Staged(Box::new(Waiting {
            staged,
            report,
            lease: None,
        }))),
        Err(Severity::Run(fatal)) => Err(fatal),
        Err(Severity::Execution(e)) => {
            warn!(execution_id = report.execution_id, error = %e, "Execution not ingested");
            report.outcome = Outcome::Failed;
            report.error = Some(e.to_string());
            Ok(Done::Report(report))
        }
    }
}

/// Downloads, transcodes and commits one execution; `Some` when it is small enough to be
/// combined with others instead: written, with its manifest draft, not committed.
async fn ingest(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution: &Execution,
    report: &mut ExecutionReport,
) -> Result<Option<Staged>, IngestError> {
    let execution_id = execution.id.as_str();
    let key = PartitionKey {
        dataset: task.dataset.clone(),
        task_id: task.task_id.clone(),
        date: partition::execution_date(execution),
    };
    // A body that ends early, isn't data, or doesn't hold the promised record count is
    // downloaded again from the start: nothing of a failed attempt is ever committed.
    let mut attempt = 1;
    let ExportDone {
        parts,
        source_record_count,
        transcoded,
        rejects,
        schema,
        file_schema,
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
    manifest.rows = parts.iter().map(|p| p.rows).sum();
    manifest.records_read = records_read;
    manifest.source_record_count = source_record_count;
    if !transcoded.media.is_empty() || transcoded.media_failed > 0 {
        report.media_files = transcoded.media.len() as u64;
        report.media_failed = transcoded.media_failed;
        manifest.media = Some(ManifestMedia {
            store: ctx.media_store.url().to_string(),
            bytes: transcoded.media.iter().map(|m| m.bytes).sum(),
            failed: transcoded.media_failed,
            files: transcoded.media,
        });
    }
    manifest.rejected_rows = transcoded.rejects.rejected_rows;
    report.rejected_rows = transcoded.rejects.rejected_rows;
    report.rejected_by_reason = transcoded.rejects.rows_by_reason.clone();
    let staged = Staged {
        key,
        parts,
        manifest,
        rejects,
        schema: file_schema,
    };
    ctx.progress.execution(execution_id).committing();
    if ctx.cfg.combine.eligible(
        staged.parts.len(),
        staged.rows(),
        staged.bytes(),
        ctx.cfg.run.file_rows as u64,
    ) {
        return Ok(Some(staged));
    }
    if ctx.sink.commit(&staged).await? == Committed::ByAnother {
        info!(
            execution_id,
            "Committed by another run meanwhile; ours discarded"
        );
        report.outcome = Outcome::AlreadyIngested;
        return Ok(None);
    }
    committed_alone(report, &staged);
    Ok(None)
}

/// One successful download of an export, written and ready to commit.
struct ExportDone {
    parts: Vec<StagedPart>,
    source_record_count: Option<u64>,
    transcoded: Transcoded,
    /// Quarantined rows, written to a temporary place, when there are any.
    rejects: Option<object_store::path::Path>,
    /// The schema the export was mapped with: the task's, plus any added columns.
    schema: Arc<TargetSchema>,
    /// The Arrow schema of the parts.
    file_schema: arrow::datatypes::SchemaRef,
    /// How the schema was reconciled with the export's fields, when it could be read.
    evolved: Option<Evolved>,
}

/// Downloads and transcodes the export once into parts; on any failure the parts written
/// are deleted.
async fn export_once(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution: &Execution,
    key: &PartitionKey,
) -> Result<ExportDone, IngestError> {
    let execution_id = execution.id.as_str();
    let opened = export::open_export(&ctx.client, execution_id, task.format).await?;
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
        r = sniff::sniff(opened.body, task.format, &task.schema, task.evolution) => {
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
    let lineage = Lineage {
        task_id: task.task_id.clone(),
        execution_id: execution_id.to_string(),
    };
    let mapper = Mapper::new(&schema, lineage.clone());
    let with_media =
        ctx.media.settings().enabled && schema.columns.iter().any(|c| c.ty == ColumnType::Media);
    let names = ctx.sink.part_names(key, execution_id, &ctx.run_id);
    let rejects_path = names.staging_dir.clone().join("rejects.jsonl.tmp");
    let file_schema = ctx.media.output_schema(&mapper.arrow_schema());
    let mut writer = ExecutionWriter::new(
        ctx.sink.store().clone(),
        names,
        Arc::clone(&file_schema),
        ctx.cfg.run.writer_settings(schema.fingerprint()),
    )?;
    let decoder = RawDecoder::new(
        task.format,
        schema.source_fields(),
        ctx.cfg.run.decoder_options(),
    );
    let quarantines = task.bad_rows.on_bad_row == BadRowPolicy::Quarantine;
    let bad_rows = BadRows {
        policy: task.bad_rows,
        quarantine: quarantines.then(|| {
            (
                QuarantineEncoder::new(&lineage),
                object_store::buffered::BufWriter::new(
                    ctx.sink.store().object_store(),
                    rejects_path.clone(),
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
    if let Some(expected) = source_record_count
        && expected != transcoded.records
    {
        writer.abort().await;
        return Err(IngestError::CountMismatch {
            execution_id: execution_id.to_string(),
            read: transcoded.records,
            expected,
        });
    }
    let parts = writer.finish().await?;
    let rejects = (transcoded.rejects.rejected_rows > 0 && quarantines).then_some(rejects_path);
    Ok(ExportDone {
        parts,
        source_record_count,
        transcoded,
        rejects,
        schema,
        file_schema,
        evolved: sniffed.evolved,
    })
}

/// Runs the hot path over an opened export; with media, the export is spooled first
/// (media downloads pause the decoder, and the body must not sit unread meanwhile).
#[allow(clippy::too_many_arguments)]
async fn transcode_export(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution_id: &str,
    body: BoxStream<'static, Result<bytes::Bytes, ApiError>>,
    decoder: RawDecoder,
    mapper: Mapper,
    with_media: bool,
    bad_rows: BadRows,
    writer: &mut ExecutionWriter,
) -> Result<Transcoded, IngestError> {
    let failed = |e: TranscodeError| IngestError::transcode(execution_id, e);
    let progress = ctx.progress.execution(execution_id);
    progress.exporting();
    if !with_media {
        return transcode(body, decoder, mapper, None, bad_rows, writer, progress)
            .await
            .map_err(failed);
    }
    let spool = Spool::fill(&ctx.cfg.media.spool, execution_id, body)
        .await
        .map_err(|e| failed(TranscodeError::Source(e)))?;
    let body = spool
        .body()
        .await
        .map_err(|e| failed(TranscodeError::Source(e.into())))?;
    let known = KnownMedia::load(&ctx.media_store, &task.task_id, execution_id)
        .await
        .map_err(|e| failed(TranscodeError::Media(e)))?;
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
    .map_err(failed)?;
    done.media_failed = known.failed_count() as u64;
    Ok(done)
}

/// Records a failed/cancelled execution so later runs don't wait for it again.
async fn record_no_results(
    ctx: &Ctx,
    task: &PlannedTaskInfo,
    execution: &Execution,
) -> Result<(), IngestError> {
    let staged = Staged {
        key: PartitionKey {
            dataset: task.dataset.clone(),
            task_id: task.task_id.clone(),
            date: partition::execution_date(execution),
        },
        parts: vec![],
        manifest: new_manifest(task, &task.schema, execution, ManifestStatus::NoResults),
        rejects: None,
        schema: ctx.media.output_schema(&task.schema.arrow_schema()),
    };
    ctx.sink.commit(&staged).await?;
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
        manifest_version: manifest::MANIFEST_VERSION,
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
