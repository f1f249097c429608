//! Compaction (`titan-connector compact`): a partition's small data files rewritten into
//! files of about a target size, committed as one table version that removes the old
//! files and adds the new ones with `dataChange = false`. Rows, values, types and lineage
//! columns are unchanged; only the files holding them are.
//!
//! Three steps, each its own function so that tests can put a concurrent writer between
//! them: [`plan`] reads the partition's live files from one snapshot and their footers,
//! [`rewrite`] streams their batches into new files (`compact-<uuid>-<n>.parquet` in the
//! partition folder, never a name anyone else writes), [`commit`] commits.
//!
//! From the kernel: the `remove` actions (`Transaction::remove_files`, fed with the
//! snapshot's own scan rows, so paths, sizes, partition values and stats are the log's),
//! `dataChange = false` on both sides, the `OPTIMIZE` operation in `commitInfo`, the
//! put-if-absent commit. Built here, because the kernel lacks it: conflict resolution.
//! The kernel reports a lost race (`CommitResult::Conflicted`) but has no rebase or
//! conflict checker yet, so [`commit`] re-reads the log and re-checks the one thing that
//! can make a compaction wrong: that every file it removes is still live. Appends by
//! other writers meanwhile (to this partition too) only add files, which the retried
//! commit leaves alone, so they are never lost; `txn` actions are never touched, so every
//! execution stays committed. If another writer removed one of our inputs first (a racing
//! compaction), nothing is committed and our new files are deleted.
//!
//! Nothing is held whole in memory: inputs are read batch by batch with the parquet
//! crate's async reader over the store's `object_store`, and written through
//! `AsyncArrowWriter` into an object_store `BufWriter`, closing row groups by bytes as
//! the run's writer does. The old files stay in the store until `vacuum` deletes them past
//! its retention (readers of older versions may still be reading them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::expressions::ColumnName;
use delta_kernel::schema::DataType;
use delta_kernel::transaction::{CommittedTransaction, UpdateTableOperation};
use delta_kernel::{
    FilteredEngineData, FilteredRowVisitor, GetData, KernelResult, RowIndexIterator, SnapshotRef,
};
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::{Path, PathPart};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tracing::{debug, info, warn};

use super::table::{ENGINE_INFO, Inner, MAX_ATTEMPTS};
use super::{DataFile, DeltaError, DeltaTable, LiveFile};
use crate::schema::LINEAGE_ROW;
use crate::sink::folder::group::StagedReader;
use crate::sink::parquet::{DEFAULT_ROW_GROUP_BYTES, DEFAULT_ZSTD_LEVEL};
use crate::sink::partition::PartitionKey;

/// Key-value metadata the run's writer puts in each file; kept when all inputs agree.
const FINGERPRINT_KEY: &str = "titan.schema_fingerprint";

/// How files are rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOptions {
    /// Files smaller than this are rewritten, into files of about this size (inputs are
    /// packed by their sizes; Parquet-to-Parquet keeps sizes close).
    pub target_bytes: u64,
    /// Rows per row group at most (row groups also close at `DEFAULT_ROW_GROUP_BYTES`).
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_bytes: 128 << 20,
            row_group_rows: 128 * 1024,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// One input: a live file, its store key and footer.
struct Input {
    file: LiveFile,
    key: Path,
    meta: ArrowReaderMetadata,
}

/// The inputs of one output file: same columns, in path order.
struct Bin {
    schema: SchemaRef,
    fingerprint: Option<String>,
    inputs: Vec<Input>,
}

/// What [`plan`] found: the snapshot it read and the files to rewrite.
pub struct Plan {
    key: PartitionKey,
    snapshot: Option<SnapshotRef>,
    bins: Vec<Bin>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("key", &self.key)
            .field("version", &self.snapshot.as_ref().map(|s| s.version()))
            .field("inputs", &self.inputs())
            .finish()
    }
}

impl Plan {
    /// Files to rewrite.
    pub fn inputs(&self) -> usize {
        self.bins.iter().map(|b| b.inputs.len()).sum()
    }

    /// The table version the plan was read from.
    pub fn version(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.version())
    }
}

/// How a compaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactOutcome {
    /// Committed as table version `version`.
    Committed { version: u64 },
    /// Fewer than two small files of one schema: nothing to gain, nothing written.
    NothingToDo,
    /// Another writer removed some of the inputs first (a racing compaction): nothing was
    /// committed and the files written were deleted.
    Superseded,
}

/// What one partition's compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub task_id: String,
    pub date: String,
    pub outcome: CompactOutcome,
    /// Files removed from the table and their bytes (zero unless committed).
    pub removed: usize,
    pub removed_bytes: u64,
    /// Files added (empty unless committed).
    pub added: Vec<DataFile>,
    /// Rows moved.
    pub rows: u64,
    /// Commit attempts; more than one when other writers committed meanwhile.
    pub attempts: u32,
}

impl Compacted {
    fn nothing(key: &PartitionKey) -> Compacted {
        Compacted {
            task_id: key.task_id.clone(),
            date: key.date.clone(),
            outcome: CompactOutcome::NothingToDo,
            removed: 0,
            removed_bytes: 0,
            added: Vec::new(),
            rows: 0,
            attempts: 0,
        }
    }

    /// Bytes of the files added.
    pub fn added_bytes(&self) -> u64 {
        self.added.iter().map(|f| f.bytes).sum()
    }
}

fn invalid(table: &DeltaTable, message: impl Into<String>) -> DeltaError {
    DeltaError::Invalid {
        table: table.url(),
        message: message.into(),
    }
}

fn parquet_error(table: &DeltaTable, path: &Path, e: impl std::fmt::Display) -> DeltaError {
    invalid(table, format!("`{path}`: {e}"))
}

/// Compacts every partition (of `task_id` / on `date`, when given), one commit each.
/// Partitions with fewer than two small files are reported as [`CompactOutcome::NothingToDo`]
/// from one listing of the table, without a plan of their own.
pub async fn compact_table(
    table: &DeltaTable,
    task_id: Option<&str>,
    date: Option<&str>,
    opts: &CompactOptions,
) -> Result<Vec<Compacted>, DeltaError> {
    let target = i64::try_from(opts.target_bytes).unwrap_or(i64::MAX);
    let mut small: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in table.live_files().await? {
        let (Some(t), Some(d)) = (
            f.partition_values.get("task_id"),
            f.partition_values.get("date"),
        ) else {
            continue;
        };
        if task_id.is_some_and(|x| x != t) || date.is_some_and(|x| x != d) {
            continue;
        }
        *small.entry((t.clone(), d.clone())).or_default() += usize::from(f.size < target);
    }
    let dataset = table.root().to_string();
    let mut done = Vec::new();
    for ((task_id, date), n) in small {
        let key = PartitionKey {
            dataset: dataset.clone(),
            task_id,
            date,
        };
        done.push(if n < 2 {
            Compacted::nothing(&key)
        } else {
            compact_partition(table, &key, opts).await?
        });
    }
    Ok(done)
}

/// Plans, rewrites and commits one partition.
pub async fn compact_partition(
    table: &DeltaTable,
    key: &PartitionKey,
    opts: &CompactOptions,
) -> Result<Compacted, DeltaError> {
    let plan = plan(table, key, opts).await?;
    if plan.bins.is_empty() {
        return Ok(Compacted::nothing(key));
    }
    let written = rewrite(table, &plan, opts).await?;
    commit(table, plan, written).await
}

/// Reads the partition's live files below the target size from the current version,
/// and their footers, and packs them into output files: inputs of one schema in path
/// order, an output closed once its inputs reach the target. An output of one input
/// would only copy it, so such inputs are left alone.
pub async fn plan(
    table: &DeltaTable,
    key: &PartitionKey,
    opts: &CompactOptions,
) -> Result<Plan, DeltaError> {
    let (snapshot, live) = table
        .blocking(|t| {
            let Some(snapshot) = t.latest()? else {
                return Ok((None, Vec::new()));
            };
            // Rewriting a file with a deletion vector would bring its deleted rows back.
            // Our tables have none; one written by another tool might.
            if snapshot.table_properties().enable_deletion_vectors == Some(true) {
                return Err(DeltaError::Invalid {
                    table: t.display(),
                    message: "has deletion vectors enabled; compact does not rewrite such tables"
                        .to_string(),
                });
            }
            let live = t.live_files(Arc::clone(&snapshot))?;
            Ok((Some(snapshot), live))
        })
        .await?;
    let target = i64::try_from(opts.target_bytes).unwrap_or(i64::MAX);
    let mut small: Vec<LiveFile> = live
        .into_iter()
        .filter(|f| {
            f.partition_values.get("task_id") == Some(&key.task_id)
                && f.partition_values.get("date") == Some(&key.date)
                && f.size < target
        })
        .collect();
    small.sort_by(|a, b| a.path.cmp(&b.path));
    if small.len() < 2 {
        return Ok(Plan {
            key: key.clone(),
            snapshot,
            bins: Vec::new(),
        });
    }

    // The store keys of the partition's files by their log paths (see
    // `DeltaTable::log_path`: the log's escaping cannot be undone reliably, so the keys
    // are listed and mapped the way the kernel wrote them).
    let mut keys: HashMap<String, Path> = HashMap::new();
    for o in table.store().list(&key.prefix()).await? {
        if let Some(rel) = table.log_path(&o.location) {
            keys.insert(rel, o.location);
        }
    }
    // Group by columns (a schema that evolved mid-partition gives two groups).
    let mut groups: Vec<Bin> = Vec::new();
    for file in small {
        let path = keys.remove(&file.path).ok_or_else(|| {
            invalid(
                table,
                format!(
                    "`{}` is in the table but not in the store under `{}`",
                    file.path,
                    key.prefix()
                ),
            )
        })?;
        let mut reader = StagedReader {
            store: table.store().object_store(),
            path: path.clone(),
            size: u64::try_from(file.size).unwrap_or(0),
        };
        let meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| parquet_error(table, &path, e))?;
        let fingerprint = meta
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == FINGERPRINT_KEY))
            .and_then(|k| k.value.clone());
        let input = Input {
            file,
            key: path,
            meta,
        };
        let fields = input.meta.schema().fields().clone();
        match groups
            .iter_mut()
            .find(|g| g.schema.fields() == &fields && g.fingerprint == fingerprint)
        {
            Some(g) => g.inputs.push(input),
            None => groups.push(Bin {
                schema: Arc::new(Schema::new(fields)),
                fingerprint,
                inputs: vec![input],
            }),
        }
    }

    let mut bins = Vec::new();
    for group in groups {
        let mut current: Vec<Input> = Vec::new();
        let mut bytes = 0i64;
        for input in group.inputs {
            if !current.is_empty() && bytes + input.file.size > target {
                bins.push(Bin {
                    schema: Arc::clone(&group.schema),
                    fingerprint: group.fingerprint.clone(),
                    inputs: std::mem::take(&mut current),
                });
                bytes = 0;
            }
            bytes += input.file.size;
            current.push(input);
        }
        if !current.is_empty() {
            bins.push(Bin {
                schema: Arc::clone(&group.schema),
                fingerprint: group.fingerprint.clone(),
                inputs: current,
            });
        }
    }
    bins.retain(|b| b.inputs.len() > 1);
    Ok(Plan {
        key: key.clone(),
        snapshot,
        bins,
    })
}

fn properties(opts: &CompactOptions, bin: &Bin) -> Result<WriterProperties, String> {
    let level = ZstdLevel::try_new(opts.zstd_level).map_err(|e| e.to_string())?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("titan-connector {}", env!("CARGO_PKG_VERSION")));
    if bin.schema.field_with_name(LINEAGE_ROW).is_ok() {
        builder = builder
            .set_column_encoding(ColumnPath::from(LINEAGE_ROW), Encoding::DELTA_BINARY_PACKED);
    }
    if let Some(fp) = &bin.fingerprint {
        builder = builder.set_key_value_metadata(Some(vec![KeyValue::new(
            FINGERPRINT_KEY.to_string(),
            fp.clone(),
        )]));
    }
    Ok(builder.build())
}

/// Writes the plan's output files. On failure, deletes what it wrote.
pub async fn rewrite(
    table: &DeltaTable,
    plan: &Plan,
    opts: &CompactOptions,
) -> Result<Vec<DataFile>, DeltaError> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut written = Vec::new();
    for (n, bin) in plan.bins.iter().enumerate() {
        let path = plan
            .key
            .prefix()
            .join(PathPart::from(format!("compact-{id}-{n}.parquet")));
        match write_bin(table, bin, &path, opts).await {
            Ok(rows) => {
                let bytes = table.store().size(&path).await?.unwrap_or(0);
                written.push(DataFile {
                    path,
                    task_id: plan.key.task_id.clone(),
                    date: plan.key.date.clone(),
                    rows,
                    bytes,
                });
            }
            Err(e) => {
                let _ = table.store().delete(&path).await;
                delete_all(table, &written).await;
                return Err(e);
            }
        }
    }
    Ok(written)
}

/// Streams one bin's inputs into `path`; returns the rows written, checked against the
/// inputs' footers (and the log's `numRecords` where it has them).
async fn write_bin(
    table: &DeltaTable,
    bin: &Bin,
    path: &Path,
    opts: &CompactOptions,
) -> Result<u64, DeltaError> {
    let props = properties(opts, bin).map_err(|e| invalid(table, e))?;
    let sink = table.store().file_writer(path.clone());
    let mut writer = AsyncArrowWriter::try_new(sink, Arc::clone(&bin.schema), Some(props))
        .map_err(|e| parquet_error(table, path, e))?;
    let copied = copy(table, bin, path, &mut writer).await;
    let (rows, expected) = match copied {
        Ok(counts) => counts,
        Err(e) => {
            // An unfinished multipart upload is not left behind.
            let _ = writer.into_inner().abort().await;
            return Err(e);
        }
    };
    writer
        .close()
        .await
        .map_err(|e| parquet_error(table, path, e))?;
    if rows != expected {
        return Err(invalid(
            table,
            format!("`{path}`: wrote {rows} rows, the inputs hold {expected}"),
        ));
    }
    Ok(rows)
}

/// Copies the bin's inputs into `writer`: `(rows written, rows the footers hold)`.
async fn copy(
    table: &DeltaTable,
    bin: &Bin,
    path: &Path,
    writer: &mut AsyncArrowWriter<BufWriter>,
) -> Result<(u64, u64), DeltaError> {
    let mut rows = 0u64;
    let mut expected = 0u64;
    for input in &bin.inputs {
        let in_footer =
            u64::try_from(input.meta.metadata().file_metadata().num_rows()).unwrap_or(0);
        if let Some(logged) = input.file.rows
            && logged != in_footer
        {
            return Err(invalid(
                table,
                format!(
                    "`{}`: the log says {logged} rows, the file {in_footer}",
                    input.key
                ),
            ));
        }
        expected += in_footer;
        let reader = StagedReader {
            store: table.store().object_store(),
            path: input.key.clone(),
            size: u64::try_from(input.file.size).unwrap_or(0),
        };
        let mut stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, input.meta.clone())
                .build()
                .map_err(|e| parquet_error(table, &input.key, e))?;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(|e| parquet_error(table, &input.key, e))?
        {
            // The reader's schema carries the input's own key-value metadata; the columns
            // are the bin's.
            let batch = RecordBatch::try_new(Arc::clone(&bin.schema), batch.columns().to_vec())
                .map_err(|e| parquet_error(table, &input.key, e))?;
            rows += batch.num_rows() as u64;
            writer
                .write(&batch)
                .await
                .map_err(|e| parquet_error(table, path, e))?;
            if writer.in_progress_size() >= DEFAULT_ROW_GROUP_BYTES {
                writer
                    .flush()
                    .await
                    .map_err(|e| parquet_error(table, path, e))?;
            }
        }
    }
    Ok((rows, expected))
}

async fn delete_all(table: &DeltaTable, files: &[DataFile]) {
    for f in files {
        if let Err(e) = table.store().delete(&f.path).await {
            warn!(table = %table.url(), path = %f.path, error = %e, "cannot delete a compacted file; vacuum will");
        }
    }
}

/// One commit attempt.
enum Replace {
    Committed(CommittedTransaction),
    /// Another writer took the version first.
    Lost,
    /// Some inputs are no longer live in the snapshot.
    Gone,
}

/// Commits the plan: removes its inputs, adds `written`, `dataChange = false`. Built on
/// the plan's snapshot; a lost race re-reads the log, checks that every input is still
/// live and retries (see the module doc).
pub async fn commit(
    table: &DeltaTable,
    plan: Plan,
    written: Vec<DataFile>,
) -> Result<Compacted, DeltaError> {
    let key = plan.key.clone();
    let removed: HashMap<String, i64> = plan
        .bins
        .iter()
        .flat_map(|b| &b.inputs)
        .map(|i| (i.file.path.clone(), i.file.size))
        .collect();
    let rows = written.iter().map(|f| f.rows).sum();
    let Some(snapshot) = plan.snapshot.clone() else {
        return Ok(Compacted::nothing(&key));
    };
    if removed.is_empty() {
        return Ok(Compacted::nothing(&key));
    }
    let ours = written.clone();
    let paths: HashSet<String> = removed.keys().cloned().collect();
    let done = table
        .blocking(move |t| t.replace_files(snapshot, &paths, &ours))
        .await;
    let (outcome, attempts) = match done {
        Ok(r) => r,
        Err(e) => {
            // Whether the commit landed is unknown: the files stay for vacuum.
            return Err(e);
        }
    };
    let mut report = Compacted {
        task_id: key.task_id.clone(),
        date: key.date.clone(),
        outcome: outcome.clone(),
        removed: 0,
        removed_bytes: 0,
        added: Vec::new(),
        rows: 0,
        attempts,
    };
    match outcome {
        CompactOutcome::Committed { version } => {
            info!(table = %table.url(), task_id = %key.task_id, date = %key.date, version,
                removed = removed.len(), added = written.len(), attempts, "compacted a partition");
            report.removed = removed.len();
            report.removed_bytes = removed
                .values()
                .map(|s| u64::try_from(*s).unwrap_or(0))
                .sum();
            report.added = written;
            report.rows = rows;
        }
        CompactOutcome::Superseded => {
            warn!(table = %table.url(), task_id = %key.task_id, date = %key.date,
                "another writer removed some of the files first; nothing committed");
            delete_all(table, &written).await;
        }
        CompactOutcome::NothingToDo => {}
    }
    Ok(report)
}

impl Inner {
    /// The retry loop of [`commit`]: returns the outcome and the attempts made.
    fn replace_files(
        &self,
        mut snapshot: SnapshotRef,
        removed: &HashSet<String>,
        added: &[DataFile],
    ) -> Result<(CompactOutcome, u32), DeltaError> {
        for attempt in 1..=MAX_ATTEMPTS {
            match self.try_replace(&snapshot, removed, added)? {
                Replace::Committed(done) => {
                    let version = done.commit_version();
                    self.after_commit(&done);
                    return Ok((CompactOutcome::Committed { version }, attempt));
                }
                Replace::Gone => {
                    // Our own earlier attempt may have landed with its reply lost: then
                    // our files are live and the inputs gone because we removed them.
                    let live: HashSet<String> = self
                        .live_files(Arc::clone(&snapshot))?
                        .into_iter()
                        .map(|f| f.path)
                        .collect();
                    let ours = added
                        .iter()
                        .filter(|f| {
                            super::actions::log_path(&self.root, &f.path)
                                .is_some_and(|p| live.contains(&p))
                        })
                        .count();
                    if ours == added.len() && !added.is_empty() {
                        return Ok((
                            CompactOutcome::Committed {
                                version: snapshot.version(),
                            },
                            attempt,
                        ));
                    }
                    return Ok((CompactOutcome::Superseded, attempt));
                }
                Replace::Lost => {
                    debug!(table = %self.display(), attempt, "compaction lost a commit race; re-reading the log");
                    super::table::backoff(attempt);
                    snapshot = self.latest()?.ok_or_else(|| DeltaError::Invalid {
                        table: self.display(),
                        message: "the table's log disappeared during compaction".to_string(),
                    })?;
                }
            }
        }
        Err(DeltaError::Contention {
            table: self.display(),
            attempts: MAX_ATTEMPTS,
        })
    }

    fn try_replace(
        &self,
        snapshot: &SnapshotRef,
        removed: &HashSet<String>,
        added: &[DataFile],
    ) -> Result<Replace, DeltaError> {
        // The scan rows of the inputs, as the kernel's remove_files takes them.
        let scan = Arc::clone(snapshot)
            .scan_builder()
            .build()
            .map_err(|e| self.kernel(e))?;
        let mut selected = Vec::new();
        let mut found = 0;
        for meta in scan
            .scan_metadata(&self.engine)
            .map_err(|e| self.kernel(e))?
        {
            let meta = meta.map_err(|e| self.kernel(e))?;
            let mut visitor = SelectPaths {
                wanted: removed,
                selection: Vec::new(),
                found: 0,
            };
            visitor
                .visit_rows_of(&meta.scan_files)
                .map_err(|e| self.kernel(e))?;
            if visitor.found == 0 {
                continue;
            }
            found += visitor.found;
            let (data, _) = meta.scan_files.into_parts();
            selected.push(
                FilteredEngineData::try_new(data, visitor.selection).map_err(|e| self.kernel(e))?,
            );
        }
        if found != removed.len() {
            return Ok(Replace::Gone);
        }
        let mut txn = Arc::clone(snapshot)
            .update_table(UpdateTableOperation::Optimize, ENGINE_INFO, false)
            .with_operation_metrics([
                ("numRemovedFiles", Some(removed.len().to_string())),
                ("numAddedFiles", Some(added.len().to_string())),
            ])
            .build(&self.engine, Box::new(FileSystemCommitter::new()))
            .map_err(|e| self.kernel(e))?;
        for batch in selected {
            txn.remove_files(batch);
        }
        let state = txn.write_state().map_err(|e| self.kernel(e))?;
        for file in added {
            txn.add_files(self.add_metadata(&state, file)?);
        }
        let result = txn.commit(&self.engine).map_err(|e| self.kernel(e))?;
        Ok(self
            .settled(result)
            .map_or(Replace::Lost, Replace::Committed))
    }
}

/// Selects the scan rows whose `path` is one of `wanted` (the kernel's scan row schema
/// has the log's relative path at the top level).
struct SelectPaths<'a> {
    wanted: &'a HashSet<String>,
    selection: Vec<bool>,
    found: usize,
}

impl FilteredRowVisitor for SelectPaths<'_> {
    fn selected_column_names_and_types(&self) -> (&'static [ColumnName], &'static [DataType]) {
        static NAMES: LazyLock<[ColumnName; 1]> = LazyLock::new(|| [ColumnName::new(["path"])]);
        static TYPES: [DataType; 1] = [DataType::STRING];
        (NAMES.as_slice(), &TYPES)
    }

    fn visit_filtered<'a>(
        &mut self,
        getters: &[&'a dyn GetData<'a>],
        rows: RowIndexIterator<'_>,
    ) -> KernelResult<()> {
        self.selection = vec![false; rows.num_rows()];
        for row in rows {
            if let Some(path) = getters[0].get_str(row, "path")?
                && self.wanted.contains(path)
            {
                self.selection[row] = true;
                self.found += 1;
            }
        }
        Ok(())
    }
}
