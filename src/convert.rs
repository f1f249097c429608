//! `titan-connector convert`: a local export file → Parquet through the same decoder,
//! mapper and writer as `run`, without the API. Used to measure the hot path on its own
//! and to load exports someone downloaded by hand.

use std::path::{Path, PathBuf};

use object_store::path::Path as StorePath;

use crate::config::RunOptions;
use crate::decode::RawDecoder;
use crate::format::ExportFormat;
use crate::map::{Lineage, Mapper};
use crate::run::transcode::{BadRows, TranscodeError, file_body, transcode};
use crate::schema::TargetSchema;
use crate::sink::parquet::ExecutionWriter;
use crate::sink::partition::PartNames;
use crate::sink::store::StoreConfig;
use crate::sink::store::{Store, StoreError};

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub input: PathBuf,
    pub format: ExportFormat,
    pub schema: TargetSchema,
    pub output: StoreConfig,
    pub run: RunOptions,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    pub records: u64,
    pub input_bytes: u64,
    pub files: Vec<String>,
    pub output_bytes: u64,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot read `{path}`: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}`: {source}")]
    Transcode {
        path: PathBuf,
        source: TranscodeError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Write(#[from] crate::sink::parquet::WriteError),
}

/// Converts `opts.input` into `<output>/<file stem>-<n>.parquet`.
pub async fn convert(opts: &ConvertOptions) -> Result<Converted, ConvertError> {
    let input_err = |source| ConvertError::Input {
        path: opts.input.clone(),
        source,
    };
    let file = tokio::fs::File::open(&opts.input)
        .await
        .map_err(input_err)?;
    let stem = file_stem(&opts.input);
    let store = Store::open(&opts.output)?;
    let names = PartNames {
        staging_dir: StorePath::from_iter(["_staging", stem.as_str()]),
        final_dir: StorePath::default(),
        stem: stem.clone(),
        attempt: None,
    };
    let mapper = Mapper::new(
        &opts.schema,
        Lineage {
            task_id: "local".to_string(),
            execution_id: stem.clone(),
        },
    );
    let mut writer = ExecutionWriter::new(
        store.clone(),
        names,
        mapper.arrow_schema(),
        opts.run.writer_settings(opts.schema.fingerprint()),
    )?;
    let decoder = RawDecoder::new(
        opts.format,
        opts.schema.source_fields(),
        opts.run.decoder_options(),
    );
    let body = file_body(file.into_std().await);
    let done = match transcode(
        body,
        decoder,
        mapper,
        None,
        BadRows::fail(),
        &mut writer,
        crate::progress::ExecProgress::none(),
    )
    .await
    {
        Ok(t) => t,
        Err(source) => {
            writer.abort().await;
            return Err(ConvertError::Transcode {
                path: opts.input.clone(),
                source,
            });
        }
    };
    let parts = writer.finish().await?;
    let mut out = Converted {
        records: done.records,
        input_bytes: done.bytes,
        ..Converted::default()
    };
    for p in parts {
        store.rename(&p.staging, &p.final_path).await?;
        out.output_bytes += p.bytes;
        out.files.push(p.final_path.to_string());
    }
    Ok(out)
}

fn file_stem(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".to_string());
    let stem = name.split('.').next().unwrap_or("export");
    if stem.is_empty() {
        "export".to_string()
    } else {
        stem.to_string()
    }
}
