//! The hot path shared by `run` and `convert`: export bytes → decoder → mapper → Parquet.
//!
//! Three stages joined by bounded channels, so memory stays flat whatever the export's
//! size and both cores work:
//!
//! ```text
//! body stream ──chunks(4)──► decode + map (blocking thread) ──batches(4)──► Parquet writer
//!   (async)                                                              (encode + zstd)
//! ```
//!
//! A failure in any stage stops the others: a closed channel is how a stage learns that
//! its neighbour gave up, and the first real error is the one reported.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::decode::{DecodeError, RawDecoder};
use crate::schema::{MapError, Mapper};
use crate::write::{ExecutionWriter, WriteError};

/// Chunks/batches in flight between two stages.
const CHANNEL_DEPTH: usize = 4;

/// Why a transcode stopped.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError<E: std::error::Error + 'static> {
    /// The byte source failed (network, file).
    #[error(transparent)]
    Source(E),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the decode stage stopped unexpectedly: {0}")]
    Stage(String),
}

/// What went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transcoded {
    /// Records decoded from the source.
    pub records: u64,
    /// Bytes read from the source.
    pub bytes: u64,
}

/// Streams `body` through `decoder` and `mapper` into `writer`.
pub async fn transcode<E>(
    body: BoxStream<'static, Result<Bytes, E>>,
    decoder: RawDecoder,
    mapper: Mapper,
    writer: &mut ExecutionWriter,
) -> Result<Transcoded, TranscodeError<E>>
where
    E: std::error::Error + Send + 'static,
{
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (batch_tx, mut batch_rx) = mpsc::channel::<RecordBatch>(CHANNEL_DEPTH);

    // Stage 1: the source. Its error is kept aside and reported after the others stop.
    let reader = tokio::spawn(async move {
        let mut body = body;
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            if chunk_tx.send(chunk).await.is_err() {
                break; // the decoder stopped; its error is the one to report
            }
        }
        Ok::<u64, E>(bytes)
    });

    // Stage 2: decode and map on a blocking thread (pure CPU work).
    let decoder_stage = tokio::task::spawn_blocking(move || {
        let mut decoder = decoder;
        let mut next_row: u64 = 1;
        let mut emit = |raw: RecordBatch| -> Result<bool, StageError> {
            let mapped = mapper.map(&raw, next_row)?;
            next_row += raw.num_rows() as u64;
            Ok(batch_tx.blocking_send(mapped).is_ok())
        };
        let mut input_complete = true;
        'outer: while let Some(chunk) = chunk_rx.blocking_recv() {
            decoder.push(&chunk)?;
            while let Some(raw) = decoder.next_batch() {
                if !emit(raw)? {
                    input_complete = false;
                    break 'outer; // the writer stopped
                }
            }
        }
        if input_complete {
            if let Some(raw) = decoder.finish()? {
                emit(raw)?;
            }
            while let Some(raw) = decoder.next_batch() {
                emit(raw)?;
            }
        }
        Ok::<u64, StageError>(decoder.records())
    });

    // Stage 3: the writer, here.
    let mut write_result = Ok(());
    while let Some(batch) = batch_rx.recv().await {
        if let Err(e) = writer.write(&batch).await {
            write_result = Err(e);
            break;
        }
    }
    drop(batch_rx);

    let decoded = decoder_stage
        .await
        .map_err(|e| TranscodeError::Stage(e.to_string()))?;
    let read = reader
        .await
        .map_err(|e| TranscodeError::Stage(e.to_string()))?;
    // A broken source explains a truncated decode: report it first.
    let bytes = read.map_err(TranscodeError::Source)?;
    let records = match decoded {
        Ok(n) => n,
        Err(StageError::Decode(e)) => return Err(e.into()),
        Err(StageError::Map(e)) => return Err(e.into()),
    };
    write_result?;
    Ok(Transcoded { records, bytes })
}

#[derive(Debug, thiserror::Error)]
enum StageError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Map(#[from] MapError),
}
