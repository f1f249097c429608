//! What one commit says about our files and executions: the `add` metadata handed to the
//! kernel for each data file, and the `txn` app ids that record which executions a table
//! holds.
//!
//! Built here, not in the kernel: the kernel's writer (`DefaultEngine::write_parquet`)
//! writes files itself, into folders it names; ours are written by
//! `write::ExecutionWriter` (parallel column encoding, byte-bounded row groups) to the
//! names our layout gives them, so we describe them to the kernel ourselves through its
//! public `build_add_file_metadata`. And the kernel reads one app id at a time
//! (`Snapshot::get_app_id_version`); listing all of a task's executions in one log replay
//! needs the small `txn` visitor below over the kernel's own action reader.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use arrow::array::{Int64Array, StructArray};
use arrow::datatypes::{DataType as ArrowDataType, Field};
use delta_kernel::expressions::{ColumnName, Scalar};
use delta_kernel::schema::{DataType, SchemaRef, StructField, StructType};
use delta_kernel::transaction::BoundWriteContext;
use delta_kernel::{EngineData, FileMeta, GetData, KernelResult, RowVisitor};
use delta_kernel_default_engine::build_add_file_metadata;
use delta_kernel_default_engine::parquet::DataFileMetadata;
use object_store::path::Path;
use url::Url;

use crate::map::parse_time::parse_date32;

/// Start of every app id this connector writes.
const APP_PREFIX: &str = "titan-connector";
/// What every app id this connector writes starts with, separator included.
pub(crate) const APP_ID_START: &str = "titan-connector:";

/// The `txn` app id of one execution: `titan-connector:<task>:<execution>`. The table is
/// per dataset, so the dataset is not part of it. Task ids never contain `:` in Titan, but
/// the execution id is everything after the second `:`, so a `:` there is harmless.
pub fn app_id(task_id: &str, execution_id: &str) -> String {
    format!("{APP_PREFIX}:{task_id}:{execution_id}")
}

/// The prefix of the app ids of one task's executions.
pub fn app_id_prefix(task_id: &str) -> String {
    format!("{APP_PREFIX}:{task_id}:")
}

/// `(task, execution)` of an app id this connector wrote, `None` for anyone else's.
pub fn parse_app_id(app_id: &str) -> Option<(&str, &str)> {
    let rest = app_id.strip_prefix(APP_PREFIX)?.strip_prefix(':')?;
    rest.split_once(':')
}

/// One Parquet file, written to its final place, to be added to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Key in the store (`<dataset>/task_id=<t>/date=<d>/<name>.parquet`).
    pub path: Path,
    pub task_id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The partition values of a file, keyed by the partition columns.
pub(crate) fn partition_values(file: &DataFile) -> Option<HashMap<String, Scalar>> {
    Some(HashMap::from([
        ("task_id".to_string(), Scalar::String(file.task_id.clone())),
        (
            "date".to_string(),
            Scalar::Date(parse_date32(&file.date).ok()?),
        ),
    ]))
}

/// The URL of a store key under the kernel's view of the store (see `table::root_url`).
/// Each key segment is percent-encoded as a URL path segment, `%` included: the log's
/// paths are URIs that readers decode, and must decode to the exact key (which may hold
/// `%`-escapes of its own, e.g. a task id with `#` or non-ASCII characters).
pub(crate) fn url_of(path: &Path) -> Result<Url, url::ParseError> {
    let mut url = Url::parse("memory:///")?;
    url.path_segments_mut()
        .map_err(|()| url::ParseError::RelativeUrlWithCannotBeABaseBase)?
        .pop_if_empty()
        .extend(path.parts().map(|p| p.as_ref().to_string()));
    Ok(url)
}

/// The path the log uses for the store key `location` under the table root URL `root`:
/// what the kernel writes as `add.path` (`resolve_file_path`), `None` outside the root.
pub(crate) fn log_path(root: &Url, location: &Path) -> Option<String> {
    let url = url_of(location).ok()?;
    root.make_relative(&url)
        .filter(|rel| !rel.is_empty() && !rel.starts_with(".."))
}

/// The `add` metadata of one file, as the kernel's `add_files` takes it: the path relative
/// to the table root, partition values serialized by the kernel, size, and `numRecords`
/// stats (no min/max: the file's own page statistics serve engines that prune).
pub(crate) fn add_file(
    file: &DataFile,
    write_context: &BoundWriteContext,
    modified_ms: i64,
) -> KernelResult<Box<dyn EngineData>> {
    let location = url_of(&file.path)
        .map_err(|e| delta_kernel::KernelError::generic(format!("path `{}`: {e}", file.path)))?;
    let rows = i64::try_from(file.rows)
        .map_err(|_| delta_kernel::KernelError::generic("row count above i64::MAX"))?;
    let stats = StructArray::from(vec![(
        Arc::new(Field::new("numRecords", ArrowDataType::Int64, true)),
        Arc::new(Int64Array::from(vec![rows])) as arrow::array::ArrayRef,
    )]);
    let meta = DataFileMetadata::new(
        FileMeta {
            location,
            last_modified: modified_ms,
            size: file.bytes,
        },
        stats,
    );
    build_add_file_metadata(meta, write_context)
}

/// The `txn` column read from the log.
pub(crate) fn txn_read_schema() -> KernelResult<SchemaRef> {
    let txn = StructType::try_new([
        StructField::nullable("appId", DataType::STRING),
        StructField::nullable("version", DataType::LONG),
        StructField::nullable("lastUpdated", DataType::LONG),
    ])?;
    Ok(Arc::new(StructType::try_new([StructField::nullable(
        "txn",
        DataType::Struct(Box::new(txn)),
    )])?))
}

/// Collects the app ids (starting with `prefix`) of every `txn` action it is shown. A
/// `txn` is never removed from a Delta log (only expired by
/// `delta.setTransactionRetentionDuration`, which we never set), so the union over the
/// whole log is the set of committed executions.
pub(crate) struct TxnVisitor {
    pub prefix: String,
    pub app_ids: HashSet<String>,
}

impl RowVisitor for TxnVisitor {
    fn selected_column_names_and_types(&self) -> (&'static [ColumnName], &'static [DataType]) {
        static NAMES: LazyLock<[ColumnName; 1]> =
            LazyLock::new(|| [ColumnName::new(["txn", "appId"])]);
        static TYPES: [DataType; 1] = [DataType::STRING];
        (NAMES.as_slice(), &TYPES)
    }

    fn visit<'a>(&mut self, row_count: usize, getters: &[&'a dyn GetData<'a>]) -> KernelResult<()> {
        for row in 0..row_count {
            if let Some(id) = getters[0].get_str(row, "txn.appId")?
                && id.starts_with(&self.prefix)
            {
                self.app_ids.insert(id.to_string());
            }
        }
        Ok(())
    }
}

/// The `remove` columns read from the log.
pub(crate) fn remove_read_schema() -> KernelResult<SchemaRef> {
    let remove = StructType::try_new([
        StructField::nullable("path", DataType::STRING),
        StructField::nullable("deletionTimestamp", DataType::LONG),
    ])?;
    Ok(Arc::new(StructType::try_new([StructField::nullable(
        "remove",
        DataType::Struct(Box::new(remove)),
    )])?))
}

/// Collects, per path, the newest `deletionTimestamp` (ms) of the `remove` actions it is
/// shown: when a compaction (or any remove) took the file out of the table. `vacuum`
/// keeps such a file for the retention after that moment, not after the file was
/// written, since readers of the versions before the remove may still read it.
#[derive(Default)]
pub(crate) struct RemoveVisitor {
    pub removed_at: HashMap<String, i64>,
}

impl RowVisitor for RemoveVisitor {
    fn selected_column_names_and_types(&self) -> (&'static [ColumnName], &'static [DataType]) {
        static NAMES: LazyLock<[ColumnName; 2]> = LazyLock::new(|| {
            [
                ColumnName::new(["remove", "path"]),
                ColumnName::new(["remove", "deletionTimestamp"]),
            ]
        });
        static TYPES: [DataType; 2] = [DataType::STRING, DataType::LONG];
        (NAMES.as_slice(), &TYPES)
    }

    fn visit<'a>(&mut self, row_count: usize, getters: &[&'a dyn GetData<'a>]) -> KernelResult<()> {
        for row in 0..row_count {
            if let Some(path) = getters[0].get_str(row, "remove.path")? {
                let at = getters[1]
                    .get_long(row, "remove.deletionTimestamp")?
                    .unwrap_or(0);
                let newest = self.removed_at.entry(path.to_string()).or_insert(at);
                *newest = (*newest).max(at);
            }
        }
        Ok(())
    }
}
