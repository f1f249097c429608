//! The hot path shared by `run` and `convert`: export bytes → decoder → mapper → (media) →
//! Parquet.
//!
//! Three stages joined by bounded channels, so memory stays flat whatever the export's
//! size and both cores work:
//!
//! ```text
//! body stream ──≤1 MiB groups(4)──► decode + map (blocking thread) ──batches(2)──► media → Parquet writer
//!   (async)                                                                  (encode + zstd)
//! ```
//!
//! A failure in any stage stops the others: a closed channel is how a stage learns that
//! its neighbour gave up, and the first real error is the one reported.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::decode::{DecodeError, RawDecoder};
use crate::map::{
    BadRowPolicy, MapError, Mapper, QuarantineEncoder, QuarantineError, RejectPolicy,
    RejectRatioExceeded, RejectStats,
};
use crate::media::{KnownMedia, MediaError, MediaFetcher, MediaRecord};
use crate::progress::ExecProgress;
use crate::sink::parquet::{ExecutionWriter, WriteError};

pub use super::spool::{Spool, SpoolSettings};

/// Chunk groups in flight between the source and the decoder.
const CHUNK_DEPTH: usize = 2;
/// A chunk group holds what the source has ready, up to this many bytes. An HTTP body
/// arrives in socket-read pieces (often 8–64 KiB): handed over one by one, the decoder
/// thread is woken per piece and runs dry whenever the network task waits for a core.
const GROUP_BYTES: usize = 1 << 20;
/// Typed batches in flight between the mapper and the writer; each is up to
/// `DecoderOptions::batch_bytes` of values, and the writer holds more (its encode
/// lookahead). One is enough: with two, and two batches of encode lookahead, 10M rows ran
/// at the same speed with ~5 MiB more peak RSS.
const BATCH_DEPTH: usize = 1;
/// Read size from a local file.
const READ_CHUNK: usize = 1 << 20;

/// A failure of the byte source: the export's body (the API) or a local file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The local copy of the export (with media) failed or reached its cap.
    #[error(transparent)]
    Spool(#[from] super::spool::SpoolError),
}

/// Why a transcode stopped.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The byte source failed (network, file).
    #[error(transparent)]
    Source(SourceError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    #[error(transparent)]
    TooManyRejects(#[from] RejectRatioExceeded),
    #[error("writing rejected rows: {0}")]
    RejectsWrite(std::io::Error),
    #[error("the decode stage stopped unexpectedly: {0}")]
    Stage(String),
}

/// What to do with rows that don't fit the schema, and where quarantined ones go.
pub struct BadRows {
    pub policy: RejectPolicy,
    /// Set when the policy quarantines: the encoder and the (staged) JSON Lines object.
    pub quarantine: Option<(QuarantineEncoder, object_store::buffered::BufWriter)>,
}

/// Media resolution between the mapper and the writer.
pub struct MediaStage<'a> {
    pub fetcher: &'a MediaFetcher,
    pub task_id: &'a str,
    pub execution_id: &'a str,
    pub known: &'a KnownMedia,
}

/// What went through.
#[derive(Debug, Clone, Default)]
pub struct Transcoded {
    /// Records decoded from the source.
    pub records: u64,
    /// Bytes read from the source.
    pub bytes: u64,
    /// Media files stored for this export (each once).
    pub media: Vec<MediaRecord>,
    /// Media values that could not be fetched (recorded in their rows).
    pub media_failed: u64,
    /// Rows read and rejected, by column and reason.
    pub rejects: RejectStats,
}

/// Streams `body` through `decoder` and `mapper` (and `media`, if given) into `writer`,
/// counting bytes read, rows written and media stored on `progress`.
pub async fn transcode<E>(
    body: BoxStream<'static, Result<Bytes, E>>,
    decoder: RawDecoder,
    mapper: Mapper,
    media: Option<MediaStage<'_>>,
    bad_rows: BadRows,
    writer: &mut ExecutionWriter,
    progress: ExecProgress,
) -> Result<Transcoded, TranscodeError>
where
    E: Into<SourceError> + Send + 'static,
{
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Vec<Bytes>>(CHUNK_DEPTH);
    let (batch_tx, mut batch_rx) = mpsc::channel::<(RecordBatch, Bytes)>(BATCH_DEPTH);
    let BadRows { policy, quarantine } = bad_rows;
    let (encoder, mut rejects_out) = match quarantine {
        Some((e, w)) => (Some(e), Some(w)),
        None => (None, None),
    };

    // Stage 1: the source. Its error is kept aside and reported after the others stop.
    let read_progress = progress.clone();
    let reader = tokio::spawn(async move {
        let mut body = body;
        let mut bytes = 0u64;
        loop {
            let (group, end) = next_group(&mut body).await;
            let group_bytes: usize = group.iter().map(Bytes::len).sum();
            bytes += group_bytes as u64;
            read_progress.add_bytes(group_bytes as u64);
            if !group.is_empty() && chunk_tx.send(group).await.is_err() {
                break; // the decoder stopped; its error is the one to report
            }
            match end {
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(())) => break,
                None => {}
            }
        }
        Ok::<u64, SourceError>(bytes)
    });

    // Stage 2: decode and map on a blocking thread (pure CPU work).
    let decoder_stage = tokio::task::spawn_blocking(move || {
        let mut decoder = decoder;
        let mut next_row: u64 = 1;
        let mut stats = RejectStats::default();
        let mut emit = |raw: RecordBatch| -> Result<bool, StageError> {
            let mapped = mapper.map_batch(&raw, next_row, policy.on_bad_row)?;
            stats.record(raw.num_rows(), &mapped.rejects);
            let quarantined = match (&encoder, mapped.rejects.is_empty()) {
                (Some(enc), false) => enc.encode(&raw, next_row, &mapped.rejects)?,
                _ => Bytes::new(),
            };
            stats.check_early(&policy, None)?;
            next_row += raw.num_rows() as u64;
            Ok(batch_tx.blocking_send((mapped.batch, quarantined)).is_ok())
        };
        let mut input_complete = true;
        'outer: while let Some(group) = chunk_rx.blocking_recv() {
            for chunk in group {
                decoder.push(&chunk)?;
                while let Some(raw) = decoder.next_batch() {
                    if !emit(raw)? {
                        input_complete = false;
                        break 'outer; // the writer stopped
                    }
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
        stats.check(&policy)?;
        Ok::<(u64, RejectStats), StageError>((decoder.records(), stats))
    });

    // Stage 3: media, then the writer, here.
    let mut media_records = Vec::new();
    let mut write_result: Result<(), TranscodeError> = Ok(());
    while let Some((batch, quarantined)) = batch_rx.recv().await {
        if let Some(out) = rejects_out.as_mut()
            && !quarantined.is_empty()
            && let Err(e) = out.write_all(&quarantined).await
        {
            write_result = Err(TranscodeError::RejectsWrite(e));
            break;
        }
        let batch = match &media {
            Some(m) => match m
                .fetcher
                .resolve_batch(&batch, m.task_id, m.execution_id, m.known)
                .await
            {
                Ok((b, recs)) => {
                    progress.add_media(recs.len() as u64);
                    media_records.extend(recs);
                    b
                }
                Err(e) => {
                    write_result = Err(e.into());
                    break;
                }
            },
            None => batch,
        };
        if let Err(e) = writer.write(&batch).await {
            write_result = Err(e.into());
            break;
        }
        progress.add_rows(batch.num_rows() as u64);
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
    let (records, rejects) = match decoded {
        Ok(n) => n,
        Err(StageError::Decode(e)) => return Err(e.into()),
        Err(StageError::Map(e)) => return Err(e.into()),
        Err(StageError::Quarantine(e)) => return Err(e.into()),
        Err(StageError::TooManyRejects(e)) => return Err(e.into()),
    };
    write_result?;
    if let Some(mut out) = rejects_out {
        out.shutdown().await.map_err(TranscodeError::RejectsWrite)?;
    }
    Ok(Transcoded {
        records,
        bytes,
        media: media_records,
        media_failed: 0,
        rejects,
    })
}

/// The chunks `body` has ready now (waiting only for the first), up to [`GROUP_BYTES`],
/// and whether the body ended after them: `Some(Ok(()))` at its end, `Some(Err)` when it
/// failed (the chunks before the failure are still returned, to be decoded first).
async fn next_group<E>(
    body: &mut BoxStream<'static, Result<Bytes, E>>,
) -> (Vec<Bytes>, Option<Result<(), E>>) {
    let mut group = Vec::new();
    let mut size = 0;
    let mut item = body.next().await;
    loop {
        match item {
            None => return (group, Some(Ok(()))),
            Some(Err(e)) => return (group, Some(Err(e))),
            Some(Ok(chunk)) => {
                size += chunk.len();
                group.push(chunk);
            }
        }
        if size >= GROUP_BYTES {
            return (group, None);
        }
        match body.next().now_or_never() {
            Some(next) => item = next,
            None => return (group, None),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StageError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    #[error(transparent)]
    TooManyRejects(#[from] RejectRatioExceeded),
}

impl BadRows {
    /// Bad rows fail the transcode (no quarantine).
    pub fn fail() -> Self {
        BadRows {
            policy: RejectPolicy {
                on_bad_row: BadRowPolicy::Fail,
                max_reject_ratio: None,
            },
            quarantine: None,
        }
    }
}

/// A local file as a stream of chunks, each read by one blocking task straight into its
/// buffer. `tokio::fs` reads into its own buffer and copies into the caller's, which was
/// zeroed first: the zeroing and the extra copy were ~3% of a CSV conversion. A task per
/// chunk, not a thread for the whole file, so a slow consumer holds no pool thread.
pub fn file_body(file: std::fs::File) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    futures::stream::unfold(Some(file), |file| async move {
        let file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let chunk = read_chunk(&file, READ_CHUNK);
            (file, chunk)
        })
        .await;
        match read {
            Ok((_, Ok(chunk))) if chunk.is_empty() => None,
            Ok((file, Ok(chunk))) => Some((Ok(chunk), Some(file))),
            Ok((_, Err(e))) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    })
    .boxed()
}

/// Up to `size` bytes from `file`'s position, read into spare capacity (`read_to_end`
/// does not zero it); empty at the end of the file.
fn read_chunk(mut file: &std::fs::File, size: usize) -> Result<Bytes, std::io::Error> {
    use std::io::Read;
    let mut chunk = Vec::with_capacity(size);
    (&mut file).take(size as u64).read_to_end(&mut chunk)?;
    Ok(Bytes::from(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        items: Vec<Result<Bytes, std::io::Error>>,
    ) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        futures::stream::iter(items).boxed()
    }

    fn sizes(group: &[Bytes]) -> Vec<usize> {
        group.iter().map(Bytes::len).collect()
    }

    #[tokio::test]
    async fn ready_chunks_are_grouped_up_to_group_bytes() {
        let piece = || Ok(Bytes::from(vec![b'x'; 600 << 10]));
        let mut b = body(vec![
            piece(),
            piece(),
            piece(),
            Ok(Bytes::from_static(b"end")),
        ]);
        let (first, end) = next_group(&mut b).await;
        assert_eq!(sizes(&first), vec![600 << 10, 600 << 10]);
        assert!(end.is_none());
        let (second, end) = next_group(&mut b).await;
        assert_eq!(sizes(&second), vec![600 << 10, 3]);
        assert!(matches!(end, Some(Ok(()))));
    }

    #[tokio::test]
    async fn chunks_before_a_failure_come_with_it() {
        let mut b = body(vec![
            Ok(Bytes::from_static(b"a,b\n")),
            Err(std::io::Error::other("reset")),
            Ok(Bytes::from_static(b"never")),
        ]);
        let (group, end) = next_group(&mut b).await;
        assert_eq!(group, vec![Bytes::from_static(b"a,b\n")]);
        assert_eq!(
            end.and_then(Result::err).map(|e| e.to_string()),
            Some("reset".into())
        );
    }

    #[tokio::test]
    async fn a_pending_source_ends_the_group() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
        tx.unbounded_send(Ok(Bytes::from_static(b"one")))
            .expect("send");
        let mut b = rx.boxed();
        let (group, end) = next_group(&mut b).await;
        assert_eq!(group, vec![Bytes::from_static(b"one")]);
        assert!(
            end.is_none(),
            "the body has not ended, it has nothing ready"
        );
        drop(tx);
        let (group, end) = next_group(&mut b).await;
        assert!(group.is_empty());
        assert!(matches!(end, Some(Ok(()))));
    }
}
