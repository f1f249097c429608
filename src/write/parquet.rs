//! One execution's Parquet parts, streamed into the store as batches arrive.
//!
//! Each part is an `AsyncArrowWriter` over an object_store `BufWriter` (one put for small
//! files, multipart past its buffer), so no file is ever held whole in memory beyond the
//! current row group. Parts roll every `file_rows` rows.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::WriteError;
use crate::partition::PartNames;
use crate::store::Store;

/// Parquet layout settings.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub row_group_rows: usize,
    pub file_rows: usize,
    pub zstd_level: i32,
    /// Written into each file's key-value metadata.
    pub schema_fingerprint: String,
}

impl WriterSettings {
    fn properties(&self, execution_id: &str) -> Result<WriterProperties, WriteError> {
        let level = ZstdLevel::try_new(self.zstd_level).map_err(|source| WriteError::Parquet {
            path: String::new(),
            source: Box::new(source),
        })?;
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(format!("titan-connector {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    "titan.schema_fingerprint".to_string(),
                    self.schema_fingerprint.clone(),
                ),
                KeyValue::new("titan.execution_id".to_string(), execution_id.to_string()),
            ]))
            .build())
    }
}

/// A part written to staging, waiting for commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPart {
    pub staging: Path,
    pub final_path: Path,
    pub rows: u64,
    pub bytes: u64,
}

struct OpenPart {
    writer: AsyncArrowWriter<BufWriter>,
    n: usize,
    rows: usize,
}

/// Writes one execution's batches into staged Parquet parts.
pub struct ExecutionWriter {
    store: Store,
    names: PartNames,
    schema: SchemaRef,
    settings: WriterSettings,
    props: WriterProperties,
    current: Option<OpenPart>,
    staged: Vec<StagedPart>,
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
        let props = settings.properties(&names.stem)?;
        Ok(ExecutionWriter {
            store,
            names,
            schema,
            settings,
            props,
            current: None,
            staged: Vec::new(),
        })
    }

    /// Rows written so far (staged and in the open part).
    pub fn rows(&self) -> u64 {
        self.staged.iter().map(|p| p.rows).sum::<u64>()
            + self.current.as_ref().map_or(0, |c| c.rows as u64)
    }

    /// Appends a batch, splitting it where a part reaches `file_rows`.
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
                let n = self.staged.len();
                let path = self.names.staging(n);
                let sink = BufWriter::new(self.store.object_store(), path.clone());
                let writer = AsyncArrowWriter::try_new(
                    sink,
                    Arc::clone(&self.schema),
                    Some(self.props.clone()),
                )
                .map_err(|source| WriteError::Parquet {
                    path: path.to_string(),
                    source: Box::new(source),
                })?;
                self.current = Some(OpenPart { writer, n, rows: 0 });
            }
            let Some(part) = self.current.as_mut() else {
                break;
            };
            let room = self.settings.file_rows - part.rows;
            let take = room.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, take);
            let n = part.n;
            part.writer
                .write(&slice)
                .await
                .map_err(|source| WriteError::Parquet {
                    path: self.names.staging(n).to_string(),
                    source: Box::new(source),
                })?;
            part.rows += take;
            offset += take;
            if part.rows >= self.settings.file_rows {
                self.close_current().await?;
            }
        }
        Ok(())
    }

    async fn close_current(&mut self) -> Result<(), WriteError> {
        let Some(part) = self.current.take() else {
            return Ok(());
        };
        let path = self.names.staging(part.n);
        part.writer
            .close()
            .await
            .map_err(|source| WriteError::Parquet {
                path: path.to_string(),
                source: Box::new(source),
            })?;
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
        self.current = None;
        if let Ok(list) = self.store.list(&self.names.staging_dir).await {
            for meta in list {
                let _ = self.store.delete(&meta.location).await;
            }
        }
    }
}
