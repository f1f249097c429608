//! One execution's Parquet parts, streamed into the store as batches arrive.
//!
//! Each part is a `SerializedFileWriter` over an in-memory buffer that is drained into an
//! object_store `BufWriter` (one put for small files, multipart past its buffer) after
//! every row group, so no file is ever held whole in memory beyond the current row group.
//! Parts roll every `file_rows` rows.
//!
//! Why not `AsyncArrowWriter`: it encodes every column on one thread, and encoding plus
//! zstd was the bound of the whole pipeline (docs/performance.md). Here the columns are
//! encoded by `WriterTuning::encode_threads` threads (parquet's `ArrowColumnWriter` API,
//! scheduled by [`Lanes`] across batches; each column's pages are independent, so the
//! bytes are the same as a serial encode). A row group is closed at `row_group_rows` rows
//! or once its buffered pages and dictionaries take `WriterTuning::row_group_bytes`,
//! whichever comes first: wide rows hit the byte bound long before the row bound.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::add_encoded_arrow_schema_to_metadata;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use tokio::io::AsyncWriteExt;

use super::lanes::Lanes;
use super::segments::Segments;
use super::{WriteError, dictionary};
use crate::schema::LINEAGE_ROW;
use crate::sink::partition::PartNames;
use crate::sink::store::Store;

/// Parquet layout settings.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub row_group_rows: usize,
    pub file_rows: usize,
    /// A part is closed after the row group following the one that took it to this many
    /// bytes (checked as row groups close, on the bytes before the closing one), so wide
    /// rows cannot make a part too large to copy or commit in one request.
    pub file_bytes: u64,
    pub zstd_level: i32,
    /// Written into each file's key-value metadata.
    pub schema_fingerprint: String,
}

/// How the writer spends memory and cores (kept apart from `WriterSettings`, which
/// says what the files look like).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterTuning {
    /// Close a row group once its column writers hold this many bytes (encoded pages,
    /// dictionaries, values not yet paged). Bounds memory on wide rows.
    pub row_group_bytes: usize,
    /// Threads that encode one batch's columns, the calling one included.
    pub encode_threads: usize,
}

/// Row group memory bound. Measured on 300k rows of the 50-column shape: 16 MiB instead
/// of 32 took peak RSS from 230 to 100 MiB (with 2048-row batches) at the same speed.
/// 8 MiB instead of 16 took scraped rows (~320 bytes as CSV) from 113–119 to 107–111 MiB
/// at 2M rows and from 130–134 to 114–121 MiB at 10M, the wide shape from 102 to 94 MiB,
/// at the same CPU. Row groups are then ~48k scraped rows, ~98k products rows and ~10k
/// wide ones (each ~8 MiB encoded).
pub const DEFAULT_ROW_GROUP_BYTES: usize = 8 << 20;
/// Batches queued to the encode threads beyond the one whose writer state is checked
/// against `row_group_bytes`: a thread done with its share of one batch finds the next
/// batch's columns waiting. Two measured the same speed with ~5 MiB more peak RSS.
const LOOKAHEAD: usize = 1;
/// More encode threads than this stop paying: the decode stage needs a core too.
const MAX_ENCODE_THREADS: usize = 4;

impl Default for WriterTuning {
    fn default() -> Self {
        WriterTuning {
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            encode_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_ENCODE_THREADS),
        }
    }
}

impl WriterSettings {
    /// Per-column choices come from the execution's `first` batch: dictionary encoding
    /// where values repeat (`write::dictionary`), and no min/max statistics on text columns
    /// whose values do not: a row group of scraped names, URLs or descriptions spans nearly
    /// every value, so their min and max prune nothing, and computing them (a `memcmp` per
    /// value) was 4.5% of a products conversion's CPU.
    fn properties(
        &self,
        execution_id: &str,
        first: &RecordBatch,
    ) -> Result<WriterProperties, WriteError> {
        let level = ZstdLevel::try_new(self.zstd_level).map_err(|source| WriteError::Parquet {
            path: String::new(),
            source: Box::new(source),
        })?;
        let mut builder = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_write_batch_size(write_batch_size(first.num_columns()))
            .set_created_by(format!("titan-connector {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    "titan.schema_fingerprint".to_string(),
                    self.schema_fingerprint.clone(),
                ),
                KeyValue::new("titan.execution_id".to_string(), execution_id.to_string()),
            ]));
        // Row numbers go up by one: delta-encoded they take almost no bytes, where plain
        // they gave zstd 8 bytes a row to compress (3% of the CPU on products).
        builder = builder
            .set_column_encoding(ColumnPath::from(LINEAGE_ROW), Encoding::DELTA_BINARY_PACKED);
        let schema = first.schema();
        for (column, on) in dictionary::choose(first) {
            let text = schema
                .field_with_name(&column)
                .is_ok_and(|f| is_text(f.data_type()));
            let path = ColumnPath::from(column.as_str());
            if text && !on {
                builder =
                    builder.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
            }
            builder = builder.set_column_dictionary_enabled(path, on);
        }
        Ok(builder.build())
    }
}

/// Values a column writer takes per step (it checks page and dictionary sizes after each).
/// 4096 instead of parquet's 1024 took scraped 2M-row CSV `convert` from 2.15–2.28 to
/// 2.00–2.08 s (3.7–3.9 → 3.5–3.6 CPU s); but on the 53-column wide shape it took peak
/// RSS from 106 to 131–136 MiB, so wide schemas keep the default.
fn write_batch_size(columns: usize) -> usize {
    const NARROW: usize = 24;
    if columns <= NARROW { 4096 } else { 1024 }
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
    )
}

/// A part written to staging, waiting for commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPart {
    pub staging: Path,
    pub final_path: Path,
    pub rows: u64,
    pub bytes: u64,
}

/// The open row group. Its column writers are in the writer's [`Lanes`].
struct RowGroup {
    rows: usize,
    /// Submitted batches whose writer state has not been looked at yet, oldest first.
    unchecked: VecDeque<u64>,
    /// The writers' state after some batch reached `row_group_bytes`.
    over: bool,
}

struct OpenPart {
    /// Writes into segments that are drained into `sink` after each row group.
    file: SerializedFileWriter<Segments>,
    factory: ArrowRowGroupWriterFactory,
    sink: BufWriter,
    group: Option<RowGroup>,
    /// Row groups started in this part.
    groups: usize,
    /// A closed row group whose chunks are not yet in `file` (closing on the threads).
    closing: Option<u64>,
    /// The part reached `file_bytes` with its previous row group: it ends after this one.
    large: bool,
    n: usize,
    rows: usize,
    /// Bytes handed to `sink` so far.
    written: u64,
}

/// Writes one execution's batches into staged Parquet parts.
pub struct ExecutionWriter {
    store: Store,
    names: PartNames,
    schema: SchemaRef,
    settings: WriterSettings,
    tuning: WriterTuning,
    /// Decided when the first batch arrives, then the same for every part.
    props: Option<Arc<WriterProperties>>,
    current: Option<OpenPart>,
    staged: Vec<StagedPart>,
    /// The encode threads, started at the first batch.
    lanes: Option<Lanes>,
}

impl ExecutionWriter {
    /// Parts are staged and named as `names` says; `names.stem` (the execution id) also
    /// goes into each file's metadata.
    pub fn new(
        store: Store,
        names: PartNames,
        schema: SchemaRef,
        settings: WriterSettings,
    ) -> Result<Self, WriteError> {
        // Fails early on a bad zstd level, before any data is read.
        settings.properties(&names.stem, &RecordBatch::new_empty(Arc::clone(&schema)))?;
        Ok(ExecutionWriter {
            store,
            names,
            schema,
            settings,
            tuning: WriterTuning::default(),
            props: None,
            current: None,
            staged: Vec::new(),
            lanes: None,
        })
    }

    /// Replaces the default memory and thread tuning.
    pub fn with_tuning(mut self, tuning: WriterTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Rows written so far (staged and in the open part).
    pub fn rows(&self) -> u64 {
        self.staged.iter().map(|p| p.rows).sum::<u64>()
            + self.current.as_ref().map_or(0, |c| c.rows as u64)
    }

    fn parquet_err(&self, n: usize) -> impl Fn(ParquetError) -> WriteError + use<> {
        let path = self.names.staging(n).to_string();
        move |source| WriteError::Parquet {
            path: path.clone(),
            source: Box::new(source),
        }
    }

    /// Appends a batch, splitting it where a part reaches `file_rows`, or at the end of
    /// the row group after the one that reached `file_bytes` (that row group is still
    /// closing on the threads when the next one starts).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(WriteError::Schema {
                message: format!(
                    "expected {:?}, got {:?}",
                    self.schema.fields(),
                    batch.schema().fields()
                ),
            });
        }
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.current.is_none() {
                self.open_part(batch)?;
            }
            let Some(part) = self.current.as_mut() else {
                break;
            };
            // Row groups and parts end at exactly their row counts, mid-batch if need be.
            let group_rows = part.group.as_ref().map_or(0, |g| g.rows);
            let room = (self.settings.file_rows - part.rows).min(
                self.settings
                    .row_group_rows
                    .saturating_sub(group_rows)
                    .max(1),
            );
            let take = room.min(batch.num_rows() - offset);
            part.rows += take;
            offset += take;
            let full = part.rows >= self.settings.file_rows;
            self.encode(batch.slice(offset - take, take)).await?;
            let large = self.current.as_ref().is_some_and(|p| p.large);
            if full || large {
                self.close_current().await?;
            }
        }
        Ok(())
    }

    fn open_part(&mut self, first: &RecordBatch) -> Result<(), WriteError> {
        let n = self.staged.len();
        let err = self.parquet_err(n);
        let props = match &self.props {
            Some(p) => Arc::clone(p),
            None => {
                let mut props = self.settings.properties(&self.names.stem, first)?;
                add_encoded_arrow_schema_to_metadata(&self.schema, &mut props);
                let props = Arc::new(props);
                self.props = Some(Arc::clone(&props));
                props
            }
        };
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&self.schema)
            .map_err(&err)?;
        let file =
            SerializedFileWriter::new(Segments::default(), parquet_schema.root_schema_ptr(), props)
                .map_err(&err)?;
        let factory = ArrowRowGroupWriterFactory::new(&file, Arc::clone(&self.schema));
        let sink = self.store.file_writer(self.names.staging(n));
        self.current = Some(OpenPart {
            file,
            factory,
            sink,
            group: None,
            groups: 0,
            closing: None,
            large: false,
            n,
            rows: 0,
            written: 0,
        });
        Ok(())
    }

    /// Queues `slice` for encoding into the open part's row group, closing the row group
    /// when full.
    ///
    /// The byte bound is checked on the writer state as of `LOOKAHEAD` batches ago, so the
    /// threads always have that many batches to work on, and where a row group ends does
    /// not depend on timing (a row group may hold up to `LOOKAHEAD` batches past the bound).
    async fn encode(&mut self, slice: RecordBatch) -> Result<(), WriteError> {
        let Some(n) = self.current.as_ref().map(|p| p.n) else {
            return Ok(());
        };
        let err = self.parquet_err(n);
        let threads = self.tuning.encode_threads;
        let lanes = self.lanes.get_or_insert_with(|| Lanes::start(threads));
        let Some(part) = self.current.as_mut() else {
            return Ok(());
        };
        let mut group = match part.group.take() {
            Some(g) => g,
            None => {
                let writers = part
                    .factory
                    .create_column_writers(part.groups)
                    .map_err(&err)?;
                part.groups += 1;
                lanes.install(writers).map_err(&err)?;
                RowGroup {
                    rows: 0,
                    unchecked: VecDeque::new(),
                    over: false,
                }
            }
        };
        group.rows += slice.num_rows();
        let seq = lanes
            .submit(leaves(&self.schema, &slice).map_err(&err)?)
            .map_err(&err)?;
        group.unchecked.push_back(seq);
        // The previous row group goes into the file as soon as it has closed.
        if let Some(id) = part.closing
            && let Some(chunks) = lanes.try_chunks(id).map_err(&err)?
        {
            part.closing = None;
            append(part, chunks).await.map_err(&err)?;
        }
        while group.unchecked.len() > LOOKAHEAD {
            let Some(seq) = group.unchecked.pop_front() else {
                break;
            };
            let memory = lanes.settled(seq).await.map_err(&err)?;
            group.over |= memory.is_some_and(|m| m >= self.tuning.row_group_bytes);
        }
        let full = group.rows >= self.settings.row_group_rows || group.over;
        part.group = Some(group);
        if full {
            self.flush_row_group().await?;
        }
        Ok(())
    }

    /// Closes the open row group (if any) on the threads, and puts the one closed before it
    /// into the part. Whether the part has reached `file_bytes` is decided here, on the
    /// bytes of the row groups before this one, so it does not depend on timing either.
    async fn flush_row_group(&mut self) -> Result<(), WriteError> {
        let Some(n) = self.current.as_ref().map(|p| p.n) else {
            return Ok(());
        };
        let err = self.parquet_err(n);
        let (Some(part), Some(lanes)) = (self.current.as_mut(), self.lanes.as_ref()) else {
            return Ok(());
        };
        if part.group.take().is_none() {
            return Ok(());
        }
        let id = lanes.close().map_err(&err)?;
        if let Some(previous) = part.closing.replace(id) {
            append_closed(part, lanes, previous).await.map_err(&err)?;
        }
        part.large = part.written >= self.settings.file_bytes;
        Ok(())
    }

    async fn close_current(&mut self) -> Result<(), WriteError> {
        self.flush_row_group().await?;
        let Some(mut part) = self.current.take() else {
            return Ok(());
        };
        let path = self.names.staging(part.n);
        let err = self.parquet_err(part.n);
        if let (Some(id), Some(lanes)) = (part.closing.take(), self.lanes.as_ref()) {
            append_closed(&mut part, lanes, id).await.map_err(&err)?;
        }
        part.file.finish().map_err(&err)?;
        drain(&mut part).await.map_err(&err)?;
        part.sink
            .shutdown()
            .await
            .map_err(|e| err(ParquetError::External(Box::new(e))))?;
        // A part that vanished between close and here reads as 0 bytes; the commit's
        // rename then fails loudly.
        let bytes = self.store.size(&path).await?.unwrap_or(0);
        self.staged.push(StagedPart {
            final_path: self.names.final_path(part.n),
            staging: path,
            rows: part.rows as u64,
            bytes,
        });
        Ok(())
    }

    /// Closes the open part and returns every staged part, in order.
    pub async fn finish(mut self) -> Result<Vec<StagedPart>, WriteError> {
        self.close_current().await?;
        Ok(self.staged)
    }

    /// Gives up: drops the open part (never completed, so never visible) and deletes what
    /// was staged. Best effort; a later run cleans anything left.
    pub async fn abort(mut self) {
        // Nothing queued is wanted any more: stop the encode threads first.
        drop(self.lanes.take());
        if let Some(mut part) = self.current.take() {
            let _ = part.sink.abort().await;
        }
        // Direct parts are at their final names, outside the staging folder.
        for part in &self.staged {
            let _ = self.store.delete(&part.staging).await;
        }
        if let Ok(list) = self.store.list(&self.names.staging_dir).await {
            for meta in list {
                let _ = self.store.delete(&meta.location).await;
            }
        }
    }
}

/// Puts a closed row group's chunks into the part's file and hands the bytes to the store.
async fn append(part: &mut OpenPart, chunks: Vec<ArrowColumnChunk>) -> Result<(), ParquetError> {
    let mut rg = part.file.next_row_group()?;
    for chunk in chunks {
        chunk.append_to_row_group(&mut rg)?;
    }
    rg.close()?;
    drain(part).await
}

/// Waits for closed row group `id` to finish closing, then [`append`]s it.
async fn append_closed(part: &mut OpenPart, lanes: &Lanes, id: u64) -> Result<(), ParquetError> {
    let chunks = lanes.chunks(id).await?;
    append(part, chunks).await
}

/// Moves the bytes the file writer produced so far into the store sink.
async fn drain(part: &mut OpenPart) -> Result<(), ParquetError> {
    // `put` hands each segment over without copying it (`write_all` would copy a whole row
    // group into the upload buffer).
    for segment in part.file.inner_mut().take() {
        part.written += segment.len() as u64;
        part.sink
            .put(segment)
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?;
    }
    Ok(())
}

/// `batch`'s leaf columns in column order, each with its column's size as the cost.
fn leaves(
    schema: &SchemaRef,
    batch: &RecordBatch,
) -> Result<Vec<(usize, ArrowLeafColumn)>, ParquetError> {
    let mut out = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let cost = column.get_array_memory_size();
        out.extend(
            compute_leaves(field, column)?
                .into_iter()
                .map(|l| (cost, l)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Array, ArrayRef, AsArray, Decimal128Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::metadata::ParquetMetaData;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("category", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("row", DataType::Int64, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("price", DataType::Decimal128(12, 2), true),
        ]))
    }

    /// Rows `start..start + rows`: a 3-value category, a distinct ~100-byte name (null
    /// every 7th row), and distinct numbers.
    fn batch(start: usize, rows: usize) -> RecordBatch {
        let range = start..start + rows;
        let category: StringArray = range
            .clone()
            .map(|i| Some(["a", "b", "c"][i % 3]))
            .collect();
        let name: StringArray = range
            .clone()
            .map(|i| (i % 7 != 0).then(|| format!("{i:>8} {}", "name ".repeat(i % 19 + 1))))
            .collect();
        let row = Int64Array::from_iter_values(range.clone().map(|i| i as i64));
        let at = TimestampMicrosecondArray::from_iter_values(
            range
                .clone()
                .map(|i| 1_700_000_000_000_000 + i as i64 * 1_001),
        )
        .with_timezone("UTC");
        let price = Decimal128Array::from_iter_values(range.map(|i| i as i128 * 13))
            .with_precision_and_scale(12, 2)
            .expect("valid decimal");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(category),
            Arc::new(name),
            Arc::new(row),
            Arc::new(at),
            Arc::new(price),
        ];
        RecordBatch::try_new(schema(), columns).expect("valid batch")
    }

    fn settings(row_group_rows: usize, file_rows: usize) -> WriterSettings {
        WriterSettings {
            row_group_rows,
            file_rows,
            file_bytes: u64::MAX,
            zstd_level: crate::sink::parquet::DEFAULT_ZSTD_LEVEL,
            schema_fingerprint: "fp-123".to_string(),
        }
    }

    fn names() -> PartNames {
        PartNames {
            staging_dir: Path::from("_staging/exec-1"),
            final_dir: Path::from("out"),
            stem: "exec-1".to_string(),
            attempt: None,
        }
    }

    /// Writes `batches` and returns the store and the staged parts.
    async fn write(
        settings: WriterSettings,
        tuning: WriterTuning,
        batches: &[RecordBatch],
    ) -> (Store, Vec<StagedPart>) {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        let mut writer = ExecutionWriter::new(store.clone(), names(), schema(), settings)
            .expect("writer")
            .with_tuning(tuning);
        for b in batches {
            writer.write(b).await.expect("write");
        }
        let parts = writer.finish().await.expect("finish");
        (store, parts)
    }

    async fn read(store: &Store, part: &StagedPart) -> (Bytes, Arc<ParquetMetaData>, RecordBatch) {
        let bytes = store
            .get_opt(&part.staging)
            .await
            .expect("get")
            .expect("part exists");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).expect("parquet");
        let meta = Arc::clone(reader.metadata());
        let batches: Vec<RecordBatch> = reader
            .build()
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("batches");
        let all = arrow::compute::concat_batches(&schema(), &batches).expect("concat");
        (bytes, meta, all)
    }

    fn row_group_rows(meta: &ParquetMetaData) -> Vec<i64> {
        meta.row_groups().iter().map(|rg| rg.num_rows()).collect()
    }

    #[tokio::test]
    async fn row_numbers_are_delta_encoded_and_distinct_text_has_no_statistics() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(LINEAGE_ROW, DataType::Int64, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, true),
        ]));
        let rows = 5000;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(1..=rows as i64)),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| ["a", "b", "c"][i % 3]),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("text {i}")),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        let mut writer =
            ExecutionWriter::new(store.clone(), names(), schema, settings(10_000, 10_000))
                .expect("writer");
        writer.write(&batch).await.expect("write");
        let parts = writer.finish().await.expect("finish");
        let bytes = store
            .get_opt(&parts[0].staging)
            .await
            .expect("get")
            .expect("part exists");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet");
        let rg = &reader.metadata().row_groups()[0];
        let encodings = |c: usize| rg.column(c).encodings().collect::<Vec<_>>();
        assert!(
            encodings(0).contains(&Encoding::DELTA_BINARY_PACKED),
            "{:?}",
            encodings(0)
        );
        assert!(
            encodings(1).contains(&Encoding::RLE_DICTIONARY),
            "{:?}",
            encodings(1)
        );
        assert!(
            !encodings(2).contains(&Encoding::RLE_DICTIONARY),
            "{:?}",
            encodings(2)
        );
        // Min/max where they can prune: row numbers and repeated text; not on distinct text.
        let stats = |c: usize| rg.column(c).statistics().is_some();
        assert_eq!((stats(0), stats(1), stats(2)), (true, true, false));
        let back: Vec<RecordBatch> = reader
            .build()
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("batches");
        let back = arrow::compute::concat_batches(&back[0].schema(), &back).expect("concat");
        assert_eq!(back.columns(), batch.columns());
    }

    fn tuning(row_group_bytes: usize, encode_threads: usize) -> WriterTuning {
        WriterTuning {
            row_group_bytes,
            encode_threads,
        }
    }

    #[tokio::test]
    async fn parallel_encoding_writes_the_bytes_of_a_serial_one_and_reads_back_exactly() {
        let batches: Vec<_> = (0..5).map(|i| batch(i * 3000, 3000)).collect();
        let (serial_store, serial) =
            write(settings(4000, 10_000), tuning(usize::MAX, 1), &batches).await;
        let (store, parts) = write(settings(4000, 10_000), tuning(usize::MAX, 3), &batches).await;

        // Parts roll at file_rows, row groups at row_group_rows, both mid-batch.
        assert_eq!(
            parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
            vec![10_000, 5_000]
        );
        assert_eq!(
            parts[0].staging,
            Path::from("_staging/exec-1/part-0.parquet.tmp")
        );
        assert_eq!(parts[1].final_path, names().final_path(1));
        let expected = arrow::compute::concat_batches(&schema(), &batches).expect("concat");
        let mut offset = 0;
        for (part, serial_part) in parts.iter().zip(&serial) {
            let (serial_bytes, _, _) = read(&serial_store, serial_part).await;
            let (bytes, meta, got) = read(&store, part).await;
            assert!(
                bytes == serial_bytes,
                "part {} differs from the serial encode",
                part.staging
            );
            assert_eq!(part.bytes, bytes.len() as u64);
            assert_eq!(got, expected.slice(offset, part.rows as usize));
            offset += part.rows as usize;
            let expected_groups = if part.rows == 10_000 {
                vec![4000, 4000, 2000]
            } else {
                vec![4000, 1000]
            };
            assert_eq!(row_group_rows(&meta), expected_groups);
            let kv = meta
                .file_metadata()
                .key_value_metadata()
                .expect("key-value metadata");
            let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
            assert_eq!(get("titan.schema_fingerprint").as_deref(), Some("fp-123"));
            assert_eq!(get("titan.execution_id").as_deref(), Some("exec-1"));
            assert!(get("ARROW:schema").is_some(), "arrow schema hint missing");
        }
        assert_eq!(offset, 15_000);
    }

    #[tokio::test]
    async fn row_groups_close_at_the_byte_bound_before_the_row_bound() {
        let batches: Vec<_> = (0..20).map(|i| batch(i * 2000, 2000)).collect();
        let (store, parts) =
            write(settings(1 << 20, 1 << 20), tuning(usize::MAX, 2), &batches).await;
        let (_, meta, _) = read(&store, &parts[0]).await;
        assert_eq!(
            row_group_rows(&meta),
            vec![40_000],
            "no byte bound: one row group"
        );

        let (store, parts) =
            write(settings(1 << 20, 1 << 20), tuning(256 << 10, 2), &batches).await;
        let (_, meta, got) = read(&store, &parts[0]).await;
        let groups = row_group_rows(&meta);
        assert!(
            groups.len() >= 3,
            "expected several row groups, got {groups:?}"
        );
        assert!(
            groups.iter().all(|n| n % 2000 == 0),
            "closed between batches: {groups:?}"
        );
        assert_eq!(groups.iter().sum::<i64>(), 40_000);
        let expected = arrow::compute::concat_batches(&schema(), &batches).expect("concat");
        assert_eq!(got, expected);

        // Where the byte bound ends a row group does not depend on how far the encode
        // threads have got: one thread and three write the same bytes.
        let (serial_store, serial) =
            write(settings(1 << 20, 1 << 20), tuning(256 << 10, 1), &batches).await;
        let (serial_bytes, _, _) = read(&serial_store, &serial[0]).await;
        let (bytes, _, _) = read(&store, &parts[0]).await;
        assert!(bytes == serial_bytes, "row groups depend on thread timing");
    }

    #[tokio::test]
    async fn parts_roll_at_file_bytes_after_a_row_group_and_keep_every_row() {
        let batches: Vec<_> = (0..20).map(|i| batch(i * 2000, 2000)).collect();
        // Row groups of 4000 rows; a part closes once 1 byte is written, checked when a
        // row group closes on the bytes of those before it (the last one is still closing
        // then), i.e. after its second row group: five parts of 8000 rows, in order.
        let small = WriterSettings {
            file_bytes: 1,
            ..settings(4000, 1 << 20)
        };
        let (store, parts) = write(small, tuning(usize::MAX, 2), &batches).await;
        assert_eq!(
            parts.iter().map(|p| p.rows).collect::<Vec<_>>(),
            vec![8000; 5]
        );
        let mut got = Vec::new();
        for part in &parts {
            let (bytes, meta, b) = read(&store, part).await;
            assert_eq!(row_group_rows(&meta), vec![4000, 4000]);
            assert_eq!(part.bytes, bytes.len() as u64);
            got.push(b);
        }
        let expected = arrow::compute::concat_batches(&schema(), &batches).expect("concat");
        assert_eq!(
            arrow::compute::concat_batches(&schema(), &got).expect("concat"),
            expected
        );

        // Without a byte bound the same rows make one part.
        let (_, parts) = write(settings(4000, 1 << 20), tuning(usize::MAX, 2), &batches).await;
        assert_eq!(parts.len(), 1);
    }

    #[tokio::test]
    async fn dictionary_is_kept_for_repeating_columns_only() {
        let (store, parts) = write(
            settings(1 << 20, 1 << 20),
            tuning(usize::MAX, 2),
            &[batch(0, 5000)],
        )
        .await;
        let (_, meta, got) = read(&store, &parts[0]).await;
        let dictionary: Vec<(String, bool)> = meta.row_groups()[0]
            .columns()
            .iter()
            .map(|c| {
                (
                    c.column_path().string(),
                    c.dictionary_page_offset().is_some(),
                )
            })
            .collect();
        let expect = |n: &str, d: bool| (n.to_string(), d);
        assert_eq!(
            dictionary,
            vec![
                expect("category", true),
                expect("name", false),
                expect("row", false),
                expect("at", false),
                expect("price", false),
            ]
        );
        // The Parquet contract: µs UTC timestamps and decimal128 come back as written.
        assert_eq!(
            got.schema().field(3).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            got.schema().field(4).data_type(),
            &DataType::Decimal128(12, 2)
        );
        assert_eq!(
            got.column(1).as_string::<i32>().value(1),
            format!("{:>8} {}", 1, "name ".repeat(2))
        );
        assert!(got.column(1).is_null(7));
    }

    #[tokio::test]
    async fn a_batch_with_another_schema_is_refused() {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        let mut writer =
            ExecutionWriter::new(store, names(), schema(), settings(10, 10)).expect("writer");
        let other = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Int64Array::from_iter_values([1])) as ArrayRef,
        )])
        .expect("batch");
        let err = writer.write(&other).await.expect_err("schema mismatch");
        assert!(matches!(err, WriteError::Schema { .. }), "{err}");
    }
}
