//! The media spool: an export copied to a local file before it is decoded, when media is
//! fetched (while a batch's media downloads, the decoder stops pulling, and the HTTP body
//! would sit unread past the read timeout).
//!
//! Invariants: a spool file lives in the configured directory and never grows past the
//! configured cap (the copy fails at the cap, and the file is gone); it is deleted on every
//! exit path — dropped on success, error or panic; removed by [`remove_all`] on the hard
//! exit (a second signal); and, after a SIGKILL, removed by the next process to spool in
//! that directory, which deletes spool files whose process is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::AsyncWriteExt;

use super::transcode::{SourceError, file_body};

/// Prefix of every spool file name; the process id follows it.
const PREFIX: &str = "titan-connector-";
const SUFFIX: &str = ".spool";

/// Default cap of one spool file: an export larger than this (and with media) fails its
/// execution instead of filling the disk.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;

/// Spool files of this process, for [`remove_all`].
static LIVE: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
/// Directories already swept of dead processes' spools by this process.
static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where and how big spool files may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// Default: the system temp dir.
    pub dir: PathBuf,
    /// Default [`DEFAULT_MAX_BYTES`].
    pub max_bytes: u64,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            dir: std::env::temp_dir(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why an export could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the export is larger than media.spool_max_bytes ({limit} bytes) and cannot be spooled in `{}` while media downloads",
        dir.display()
    )]
    TooLarge { dir: PathBuf, limit: u64 },
    #[error("cannot write the media spool in `{}`: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An export copied to a local file; the file is deleted when this is dropped.
pub struct Spool {
    path: PathBuf,
}

impl Spool {
    /// Copies `body` into a new file in `settings.dir` (created if missing), failing at
    /// `settings.max_bytes`.
    pub async fn fill<E>(
        settings: &SpoolSettings,
        name: &str,
        body: BoxStream<'static, Result<Bytes, E>>,
    ) -> Result<Spool, SourceError>
    where
        E: Into<SourceError>,
    {
        let dir = &settings.dir;
        let io = |source| SpoolError::Io {
            dir: dir.clone(),
            source,
        };
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
        sweep_once(dir);
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let path = dir.join(format!(
            "{PREFIX}{}-{}-{safe}{SUFFIX}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        lock(&LIVE).insert(path.clone());
        let spool = Spool { path };
        let mut file = tokio::fs::File::create(&spool.path).await.map_err(io)?;
        let mut written = 0u64;
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Into::into)?;
            written += chunk.len() as u64;
            if written > settings.max_bytes {
                return Err(SpoolError::TooLarge {
                    dir: dir.clone(),
                    limit: settings.max_bytes,
                }
                .into());
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(spool)
    }

    /// The spooled bytes as a stream.
    pub async fn body(
        &self,
    ) -> Result<BoxStream<'static, Result<Bytes, std::io::Error>>, std::io::Error> {
        Ok(file_body(
            tokio::fs::File::open(&self.path).await?.into_std().await,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        lock(&LIVE).remove(&self.path);
    }
}

/// Deletes every spool file of this process; for exits that skip destructors
/// (`std::process::exit` on a second signal).
pub fn remove_all() {
    remove_where(|_| true);
}

fn remove_where(pred: impl Fn(&Path) -> bool) {
    let doomed: Vec<PathBuf> = {
        let mut live = lock(&LIVE);
        let doomed: Vec<PathBuf> = live.iter().filter(|p| pred(p)).cloned().collect();
        for p in &doomed {
            live.remove(p);
        }
        doomed
    };
    for path in doomed {
        let _ = std::fs::remove_file(path);
    }
}

/// Once per directory and process: deletes spool files left by processes that no longer
/// run (a SIGKILL skips every cleanup). Only Linux can tell (`/proc/<pid>`); elsewhere
/// nothing is deleted.
fn sweep_once(dir: &Path) {
    if !lock(&SWEPT).insert(dir.to_path_buf()) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(spool_pid) else {
            continue;
        };
        if pid != std::process::id() && process_gone(pid) {
            tracing::debug!(file = %entry.path().display(), "Removing a dead run's media spool");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The process id in a spool file name, if it is one.
fn spool_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    rest.split('-').next()?.parse().ok()
}

fn process_gone(pid: u32) -> bool {
    cfg!(target_os = "linux")
        && Path::new("/proc/self").exists()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        let items: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        futures::stream::iter(items).boxed()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    async fn read_back(s: &Spool) -> Vec<u8> {
        let chunks: Vec<Bytes> = s
            .body()
            .await
            .expect("open")
            .map(|c| c.expect("read"))
            .collect()
            .await;
        chunks.concat()
    }

    /// Issue 13.9: the spool goes where configured (created if missing), is deleted when
    /// dropped, and a body past the cap fails the copy and leaves no file.
    #[tokio::test]
    async fn spools_in_the_configured_dir_up_to_the_cap() {
        let tmp = tempfile::tempdir().expect("tmp");
        let settings = SpoolSettings {
            dir: tmp.path().join("spool"),
            max_bytes: 10,
        };
        let s = Spool::fill(&settings, "exec/1", body(&[b"hello ", b"four"]))
            .await
            .expect("10 bytes fit");
        assert_eq!(read_back(&s).await, b"hello four");
        assert_eq!(s.path().parent(), Some(settings.dir.as_path()));
        let name = s
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(&format!("{PREFIX}{}-", std::process::id()))
                && name.ends_with("-exec_1.spool"),
            "{name}"
        );
        drop(s);
        assert_eq!(files(&settings.dir), Vec::<String>::new());

        let err = Spool::fill(&settings, "e2", body(&[b"hello ", b"world"]))
            .await
            .err()
            .expect("11 bytes do not fit");
        assert_eq!(
            err.to_string(),
            format!(
                "the export is larger than media.spool_max_bytes (10 bytes) and cannot be spooled in `{}` while media downloads",
                settings.dir.display()
            )
        );
        assert_eq!(files(&settings.dir), Vec::<String>::new());
    }

    /// Issue 13.9: the hard exit skips destructors; `remove_all` deletes what is live.
    /// A dead process's spool is removed by the next process to spool in that directory.
    #[tokio::test]
    async fn remove_all_and_the_sweep_clean_what_drop_cannot() {
        let tmp = tempfile::tempdir().expect("tmp");
        let settings = SpoolSettings {
            dir: tmp.path().to_path_buf(),
            max_bytes: 100,
        };
        // Left by a killed run (no such pid), by a live one (ours: kept), and unrelated.
        let dead = format!("{PREFIX}4000000000-abc-e1{SUFFIX}");
        let unrelated = "notes.txt".to_string();
        for f in [&dead, &unrelated] {
            std::fs::write(tmp.path().join(f), b"x").expect("write");
        }
        let a = Spool::fill(&settings, "a", body(&[b"aaa"]))
            .await
            .expect("a");
        let b = Spool::fill(&settings, "b", body(&[b"bbb"]))
            .await
            .expect("b");
        let mut want = vec![unrelated.clone()];
        if !cfg!(target_os = "linux") {
            want.push(dead.clone());
        }
        let left: Vec<String> = files(tmp.path())
            .into_iter()
            .filter(|f| !f.ends_with("-a.spool") && !f.ends_with("-b.spool"))
            .collect();
        want.sort();
        assert_eq!(left, want, "the dead run's spool is swept");
        assert!(a.path().exists() && b.path().exists());
        // What `remove_all` does, limited to this test's directory (tests run in parallel).
        remove_where(|p| p.starts_with(tmp.path()));
        assert!(!a.path().exists() && !b.path().exists());
        assert_eq!(files(tmp.path()), want);
        drop((a, b));
    }

    #[test]
    fn spool_names_carry_the_pid() {
        assert_eq!(spool_pid("titan-connector-42-ab12-e1.spool"), Some(42));
        assert_eq!(spool_pid("titan-connector-x-ab12-e1.spool"), None);
        assert_eq!(spool_pid("other-42.spool"), None);
        assert_eq!(spool_pid("titan-connector-42-ab12-e1.tmp"), None);
    }
}
