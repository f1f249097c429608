//! One media file: open it through the API client, stream it into the store while
//! hashing, then record it in the execution's index.
//!
//! Invariant: an object at a final media path is always a whole body (the store's puts and
//! multipart uploads are atomic, and an upload is completed only after the body ended with
//! the announced length); its index entry is written only after that.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{MediaLayout, MediaRecord, layout};
use crate::api::{ApiError, ExportStream};
use crate::sink::store::{Store, StoreError};

/// Retries of a file whose body broke (or ended short) after it was opened.
pub(crate) const BODY_RETRIES: u32 = 3;
/// Delay before the first body retry; doubles per retry.
const BODY_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Default bytes buffered per download before switching to a multipart upload; also the
/// part size (S3's minimum part size is 5 MiB).
pub(crate) const DEFAULT_PART_SIZE: usize = 5 << 20;
/// Parts of one file uploaded concurrently.
const PARTS_IN_FLIGHT: usize = 2;

/// Why one media file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Opening or reading the file failed (after the client's retries), or policy refused it.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The body ended cleanly but shorter or longer than its `Content-Length`.
    #[error("media body had {received} bytes, `Content-Length` announced {expected}")]
    LengthMismatch { expected: u64, received: u64 },
    /// 401/403 on this file's link (an expired or revoked media link) while the API
    /// accepted the token on one of its own routes just before or after: the file's
    /// failure, not the run's. Deliberately not `Api`, so nothing upstream reads it as a
    /// rejected token.
    #[error("media link refused, the token is valid: {source}")]
    LinkRefused {
        #[source]
        source: Box<ApiError>,
    },
}

impl FetchError {
    /// Worth fetching the file again: a broken or short body.
    fn body_retryable(&self) -> bool {
        match self {
            FetchError::Api(e) => matches!(e, ApiError::StreamBroken { .. }),
            FetchError::LengthMismatch { .. } => true,
            FetchError::LinkRefused { .. } => false,
        }
    }
}

/// A failure of one file: the file's fault, or the store's.
#[derive(Debug)]
pub(crate) enum Failure {
    Fetch(FetchError),
    Store(StoreError),
}

/// Where and how one file is stored.
pub(crate) struct Target<'a> {
    pub(crate) store: &'a Store,
    pub(crate) layout: MediaLayout,
    pub(crate) task_id: &'a str,
    pub(crate) execution_id: &'a str,
    /// File stem for the by-execution layout.
    pub(crate) stem: &'a str,
    pub(crate) part_size: usize,
}

/// A stored body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub(crate) record: MediaRecord,
    /// Content-addressed: identical bytes were already stored, nothing new was written.
    pub(crate) deduplicated: bool,
}

/// Opens `value` with `open` and stores it, fetching again (up to [`BODY_RETRIES`] times)
/// when the body breaks; then writes the index entry.
pub(crate) async fn fetch_and_store<F, Fut>(
    target: &Target<'_>,
    value: &str,
    open: F,
) -> Result<Stored, Failure>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<ExportStream, ApiError>>,
{
    let mut retries = 0;
    let stored = loop {
        let stream = open().await.map_err(|e| Failure::Fetch(e.into()))?;
        match store_body(target, value, stream).await {
            Ok(stored) => break stored,
            Err(Failure::Fetch(e)) if e.body_retryable() && retries < BODY_RETRIES => {
                retries += 1;
                tracing::debug!(
                    value = layout::display_value(value),
                    retry = retries,
                    error = %e,
                    "Media body broke, fetching the file again"
                );
                tokio::time::sleep(BODY_RETRY_DELAY * 2u32.pow(retries - 1)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let entry = layout::index_entry_path(target.task_id, target.execution_id, value);
    let json = serde_json::to_vec(&stored.record)
        .expect("invariant: a MediaRecord of strings and integers always serialises");
    target
        .store
        .put(&entry, Bytes::from(json))
        .await
        .map_err(Failure::Store)?;
    Ok(stored)
}

/// Streams one opened body into the store, hashing as it goes. A body that breaks, ends
/// short or runs over the size limit leaves nothing at the final path.
pub(crate) async fn store_body(
    target: &Target<'_>,
    value: &str,
    stream: ExportStream,
) -> Result<Stored, Failure> {
    let ExportStream {
        content_type,
        content_length,
        mut body,
    } = stream;
    let content_type = content_type.filter(|c| !c.is_empty());
    let ext = layout::extension_for(content_type.as_deref());
    let os = target.store.object_store();
    let dest = match target.layout {
        MediaLayout::ByExecution => {
            layout::by_execution_path(target.task_id, target.execution_id, target.stem, ext)
        }
        MediaLayout::ContentAddressed => {
            layout::staging_path(&uuid::Uuid::new_v4().simple().to_string())
        }
    };
    let mut writer = BufWriter::with_capacity(Arc::clone(&os), dest.clone(), target.part_size)
        .with_max_concurrency(PARTS_IN_FLIGHT);
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                abort(&mut writer).await;
                return Err(Failure::Fetch(e.into()));
            }
        };
        hasher.update(&chunk);
        received += chunk.len() as u64;
        if let Err(e) = writer.put(chunk).await {
            abort(&mut writer).await;
            return Err(store_err(target.store, "write", &dest, e));
        }
    }
    if let Some(expected) = content_length
        && expected != received
    {
        abort(&mut writer).await;
        return Err(Failure::Fetch(FetchError::LengthMismatch {
            expected,
            received,
        }));
    }
    writer
        .shutdown()
        .await
        .map_err(|e| store_err(target.store, "complete", &dest, io_to_store(e)))?;
    let sha256 = hex::encode(hasher.finalize());
    let (path, deduplicated) = match target.layout {
        MediaLayout::ByExecution => (dest, false),
        MediaLayout::ContentAddressed => {
            let path = layout::content_addressed_path(&sha256, ext);
            let deduplicated = publish(target.store, &dest, &path, received).await?;
            (path, deduplicated)
        }
    };
    Ok(Stored {
        record: MediaRecord {
            url: value.to_owned(),
            path: path.to_string(),
            sha256,
            content_type,
            bytes: received,
        },
        deduplicated,
    })
}

/// Moves a staged content-addressed file to `path`, or drops it when a file of that
/// hash and size is already there. Returns whether it was already there.
async fn publish(store: &Store, staged: &Path, path: &Path, size: u64) -> Result<bool, Failure> {
    let existing = match store.size(path).await {
        Ok(size) => size,
        Err(e) => {
            let _ = store.delete(staged).await;
            return Err(Failure::Store(e));
        }
    };
    if existing == Some(size) {
        store.delete(staged).await.map_err(Failure::Store)?;
        return Ok(true);
    }
    // Same name means same bytes, so overwriting a concurrent writer's copy is harmless.
    if let Err(e) = store.rename(staged, path).await {
        let _ = store.delete(staged).await;
        return Err(Failure::Store(e));
    }
    Ok(false)
}

/// Best effort: an upload that is not completed is never visible anyway.
async fn abort(writer: &mut BufWriter) {
    if let Err(e) = writer.abort().await {
        tracing::debug!(error = %e, "Aborting a media upload failed");
    }
}

fn store_err(store: &Store, op: &'static str, path: &Path, e: object_store::Error) -> Failure {
    Failure::Store(StoreError::Op {
        url: store.url().to_owned(),
        op,
        path: path.to_string(),
        source: Box::new(e),
    })
}

/// `BufWriter::shutdown` reports object_store errors wrapped in `io::Error`.
fn io_to_store(e: std::io::Error) -> object_store::Error {
    match e.downcast::<object_store::Error>() {
        Ok(inner) => inner,
        Err(e) => object_store::Error::Generic {
            store: "media",
            source: Box::new(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use object_store::memory::InMemory;

    fn memory_store() -> Store {
        Store::from_object_store(Arc::new(InMemory::new()), "memory://")
    }

    fn target<'a>(store: &'a Store, layout: MediaLayout, part_size: usize) -> Target<'a> {
        Target {
            store,
            layout,
            task_id: "t1",
            execution_id: "e1",
            stem: "m-1",
            part_size,
        }
    }

    fn body(chunks: Vec<Result<Bytes, ApiError>>, len: Option<u64>, ct: &str) -> ExportStream {
        ExportStream {
            content_type: Some(ct.to_owned()),
            content_length: len,
            body: stream::iter(chunks).boxed(),
        }
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    async fn all_paths(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = store
            .list(&Path::from("media"))
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn large_bodies_go_multipart_and_hash_while_streaming() {
        let store = memory_store();
        let data = payload(10_000);
        let chunks = data
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let t = target(&store, MediaLayout::ByExecution, 1024);
        let stored = store_body(&t, "v", body(chunks, Some(10_000), "image/png"))
            .await
            .expect("stored");
        assert_eq!(
            stored.record,
            MediaRecord {
                url: "v".into(),
                path: "media/t1/e1/m-1.png".into(),
                sha256: layout::hex_sha256(&data),
                content_type: Some("image/png".into()),
                bytes: 10_000,
            }
        );
        assert!(!stored.deduplicated);
        let back = store
            .get_opt(&Path::from("media/t1/e1/m-1.png"))
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(back.as_ref(), data.as_slice());
    }

    #[tokio::test]
    async fn broken_short_or_oversize_bodies_leave_nothing_visible() {
        for part_size in [1 << 20, 512] {
            let store = memory_store();
            let t = target(&store, MediaLayout::ByExecution, part_size);
            let two = || -> Vec<Result<Bytes, ApiError>> {
                vec![Ok(Bytes::from(payload(600))), Ok(Bytes::from(payload(600)))]
            };
            // Short: announced 2000, got 1200.
            let err = store_body(&t, "v", body(two(), Some(2000), "image/png"))
                .await
                .expect_err("short body");
            assert!(
                matches!(
                    err,
                    Failure::Fetch(FetchError::LengthMismatch {
                        expected: 2000,
                        received: 1200
                    })
                ),
                "{err:?}"
            );
            // Oversize mid-stream.
            let mut chunks = two();
            chunks.push(Err(ApiError::TooLarge {
                route: "/m".into(),
                limit: 1000,
                length: 1800,
            }));
            let err = store_body(&t, "v", body(chunks, None, "image/png"))
                .await
                .expect_err("too large");
            assert!(
                matches!(
                    err,
                    Failure::Fetch(FetchError::Api(ApiError::TooLarge { .. }))
                ),
                "{err:?}"
            );
            assert!(!err_retryable(&err));
            assert_eq!(all_paths(&store).await, Vec::<String>::new(), "{part_size}");
        }
    }

    fn err_retryable(f: &Failure) -> bool {
        matches!(f, Failure::Fetch(e) if e.body_retryable())
    }

    #[tokio::test]
    async fn content_addressed_files_are_stored_once_per_hash() {
        let store = memory_store();
        let data = payload(3000);
        let mut results = Vec::new();
        for exec in ["e1", "e2"] {
            let t = Target {
                execution_id: exec,
                ..target(&store, MediaLayout::ContentAddressed, 1024)
            };
            let chunks = vec![Ok(Bytes::from(data.clone()))];
            results.push(
                store_body(&t, exec, body(chunks, Some(3000), "image/svg+xml"))
                    .await
                    .expect("stored"),
            );
        }
        let sha = layout::hex_sha256(&data);
        let want = format!("media/sha256/{}/{sha}.svg", &sha[..2]);
        assert_eq!(results[0].record.path, want);
        assert_eq!(results[1].record.path, want);
        assert_eq!(
            [results[0].deduplicated, results[1].deduplicated],
            [false, true]
        );
        // No staging leftovers.
        assert_eq!(all_paths(&store).await, vec![want]);
    }

    #[tokio::test]
    async fn a_broken_body_is_fetched_again_then_indexed() {
        let store = memory_store();
        let t = target(&store, MediaLayout::ByExecution, 1 << 20);
        let data = payload(100);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let open = || {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let data = data.clone();
            async move {
                // Two bodies end short, the third is whole.
                let len = if n < 2 { 50 } else { 100 };
                Ok(body(
                    vec![Ok(Bytes::from(data[..len].to_vec()))],
                    Some(100),
                    "text/plain",
                ))
            }
        };
        let stored = fetch_and_store(&t, "v", open).await.expect("third try");
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(stored.record.path, "media/t1/e1/m-1.txt");
        let entry = store
            .get_opt(&layout::index_entry_path("t1", "e1", "v"))
            .await
            .expect("get")
            .expect("index entry written");
        let rec: MediaRecord = serde_json::from_slice(&entry).expect("json");
        assert_eq!(rec, stored.record);

        // Always short: 1 + BODY_RETRIES attempts, then the error, and no entry.
        let store = memory_store();
        let t = target(&store, MediaLayout::ByExecution, 1 << 20);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let open = || {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok(body(vec![Ok(Bytes::from_static(b"ab"))], Some(3), "x/y")) }
        };
        let err = fetch_and_store(&t, "v", open).await.expect_err("gives up");
        assert!(err_retryable(&err), "{err:?}");
        assert_eq!(
            attempts.load(std::sync::atomic::Ordering::SeqCst),
            1 + BODY_RETRIES
        );
        assert_eq!(all_paths(&store).await, Vec::<String>::new());
    }
}
