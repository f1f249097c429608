//! `titan-connector schema pull | infer | check`: write or validate schema files.

use std::io::Write;
use std::path::Path;

use futures::StreamExt;

use titan_connector::api::{ApiError, TitanClient};
use titan_connector::config::Config;
use titan_connector::decode::{DecodeError, DecoderOptions, RawDecoder};
use titan_connector::format::ExportFormat;
use titan_connector::schema::{
    SchemaError, TargetSchema, check_file, infer_from_batches, json_record_keys,
};

/// Bytes of an export read to infer a schema.
const SAMPLE_BYTES: usize = 4 << 20;

/// A failed schema command.
#[derive(Debug, thiserror::Error)]
pub enum SchemaCmdError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("task {0} has no output_schema; use `schema infer --execution ID`")]
    NoOutputSchema(String),
    #[error("sample of the export: {0}")]
    Decode(#[from] DecodeError),
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Validates a schema file; prints a one-line summary.
pub fn check(path: &Path, out: &mut impl Write) -> Result<(), SchemaCmdError> {
    let schema = check_file(path)?;
    schema.validate()?;
    let _ = writeln!(
        out,
        "ok: {} ({} columns, fingerprint {})",
        path.display(),
        schema.columns.len(),
        &schema.fingerprint()[..12]
    );
    Ok(())
}

/// The schema derived from a task's `output_schema`, as schema-file JSON.
pub async fn pull(cfg: &Config, task_id: &str) -> Result<String, SchemaCmdError> {
    let client = TitanClient::new(cfg.api.clone())?;
    let task = client.get_task(task_id).await?;
    let v = task
        .output_schema
        .ok_or_else(|| SchemaCmdError::NoOutputSchema(task_id.to_string()))?;
    let mut schema = TargetSchema::from_output_schema(&v)?;
    if schema.name.is_none() {
        schema.name = Some(titan_connector::source::tasks::dataset_slug(
            &task.name, &task.id,
        ));
    }
    Ok(schema.to_json())
}

/// A schema proposed from the first `rows` records of an execution's export.
pub async fn infer(
    cfg: &Config,
    execution_id: &str,
    format: ExportFormat,
    rows: usize,
) -> Result<String, SchemaCmdError> {
    let client = TitanClient::new(cfg.api.clone())?;
    let mut export = match format {
        ExportFormat::Json => client.export(execution_id, format).await?,
        ExportFormat::Csv => client.download_csv(execution_id).await?,
    };
    // Only a sample: the body is dropped (the connection closed) once it is read.
    let mut sample = Vec::new();
    while sample.len() < SAMPLE_BYTES {
        match export.body.next().await {
            Some(chunk) => sample.extend_from_slice(&chunk?),
            None => break,
        }
    }
    let complete = sample.len() < SAMPLE_BYTES;
    let fields = match format {
        ExportFormat::Json => json_record_keys(&sample, &[], rows),
        ExportFormat::Csv => Vec::new(),
    };
    let mut decoder = RawDecoder::new(
        format,
        fields,
        DecoderOptions {
            batch_rows: rows.max(1),
            ..DecoderOptions::default()
        },
    );
    let mut batches = Vec::new();
    // A sample cut mid-record decodes up to the cut; only a complete body is finished.
    if let Err(e) = decoder.push(&sample)
        && complete
    {
        return Err(e.into());
    }
    while let Some(b) = decoder.next_batch() {
        batches.push(b);
    }
    if complete && let Some(b) = decoder.finish()? {
        batches.push(b);
    }
    Ok(infer_from_batches(&batches, rows).to_json())
}

/// Writes `text` to `path`, or to `out` when there is none.
pub fn emit(text: &str, path: Option<&Path>, out: &mut impl Write) -> Result<(), SchemaCmdError> {
    match path {
        Some(p) => std::fs::write(p, text).map_err(|source| SchemaCmdError::Write {
            path: p.display().to_string(),
            source,
        }),
        None => {
            let _ = writeln!(out, "{}", text.trim_end());
            Ok(())
        }
    }
}
