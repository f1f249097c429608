//! Per-execution leases in the store, so two connector processes on the same store don't
//! both wait for and download the same execution.
//!
//! A lease is a small JSON object, `<dataset>/_leases/<task>/<execution>.json`, created with
//! `PutMode::Create` (one writer wins; local disk, S3, GCS and Azure all do this atomically).
//! It names its holder (run id, host, boot id, pid and the pid's start time) and an expiry
//! that a heartbeat pushes forward while the execution is processed; it is deleted after the
//! commit. A lease is *stale* — and taken over — when it has expired, or when it was taken on
//! this host by a process that no longer exists, so a SIGKILLed run blocks nobody.
//!
//! The lease is an optimisation, not what makes output correct: the commit is safe without
//! it (see [`crate::sink::folder::commit`]). So every doubt degrades to "go ahead without a lease":
//! a store that cannot create conditionally, an unreadable lease, a store error. Taking over
//! a stale lease is delete-then-create, which two takers can race; the heartbeat notices a
//! lost lease and the worst outcome is one execution downloaded twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::{Path, PathPart};
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::sink::store::Store;

/// Folder (under a dataset) holding the leases of executions being processed.
pub const LEASES_DIR: &str = "_leases";
/// How long a lease holds without a heartbeat. Long enough for a loaded machine or a slow
/// store to renew it in time; a crashed process on another host blocks for at most this.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// Lease format version.
pub const LEASE_VERSION: u32 = 1;

/// Errors of the lease layer.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease `{path}` in store `{url}`: {op} failed: {source}")]
    Store {
        url: String,
        op: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
}

/// `<dataset>/_leases/<task>/<execution>.json`.
pub fn lease_path(dataset: &str, task_id: &str, execution_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(dataset),
        PathPart::from(LEASES_DIR),
        PathPart::from(task_id),
        PathPart::from(format!("{execution_id}.json")),
    ])
}

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub lease_version: u32,
    pub run_id: String,
    pub host: String,
    /// The kernel's boot id: tells two machines (or two boots) with one host name apart.
    #[serde(default)]
    pub boot_id: Option<String>,
    pub pid: u32,
    /// The pid's start time (clock ticks since boot), so a reused pid is not taken for ours.
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub acquired_at: String,
    /// RFC 3339, the holder's clock at its last write (absent in leases of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<String>,
    /// RFC 3339; the lease is stale after this.
    pub expires_at: String,
}

impl LeaseRecord {
    /// "run R on host H, pid P, until T", for messages and the report.
    pub fn describe(&self) -> String {
        format!(
            "run {} on host {}, pid {}, until {}",
            self.run_id, self.host, self.pid, self.expires_at
        )
    }
}

/// The identity this process writes into its leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub run_id: String,
    pub host: String,
    pub boot_id: Option<String>,
    pub pid: u32,
    pub pid_start: Option<u64>,
}

impl Owner {
    /// This process, for run `run_id`.
    pub fn this_process(run_id: &str) -> Owner {
        let pid = std::process::id();
        Owner {
            run_id: run_id.to_string(),
            host: host_name(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pid,
            pid_start: proc_start_time(pid),
        }
    }

    fn record(&self, now: DateTime<Utc>, ttl: Duration) -> LeaseRecord {
        LeaseRecord {
            lease_version: LEASE_VERSION,
            run_id: self.run_id.clone(),
            host: self.host.clone(),
            boot_id: self.boot_id.clone(),
            pid: self.pid,
            pid_start: self.pid_start,
            acquired_at: rfc3339(now),
            renewed_at: None,
            expires_at: rfc3339(expires_after(now, ttl)),
        }
    }
}

fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Field 22 of `/proc/<pid>/stat` (start time), and whether the process is a zombie.
fn proc_stat(pid: u32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    let start = fields.get(19)?.parse().ok()?;
    Some((start, zombie))
}

fn proc_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(start, _)| start)
}

/// Whether process `pid` (started at `start`, if known) still runs on this host: `None`
/// when this system has no `/proc` to tell.
pub fn process_alive(pid: u32, start: Option<u64>) -> Option<bool> {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return None;
    }
    Some(match proc_stat(pid) {
        None => false,
        Some((_, true)) => false,
        Some((actual, false)) => start.is_none_or(|s| s == actual),
    })
}

/// How far the holder's clock may be from the store's before its expiry is not trusted.
pub const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(10);

/// When `lease` expires. The holder computed `expires_at` with its own clock; when that
/// clock was more than [`CLOCK_SKEW_MARGIN`] off the store's at the write (`stored`: the
/// object's last-modified time), the lease's time to live is counted from `stored`
/// instead, so a holder whose clock runs an hour fast does not block an execution for an
/// hour, nor one that runs slow lose its lease at once.
pub fn expiry(lease: &LeaseRecord, stored: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let expires = parse(&lease.expires_at)?;
    let written = parse(lease.renewed_at.as_deref().unwrap_or(&lease.acquired_at));
    let (Some(written), Some(stored)) = (written, stored) else {
        return Some(expires);
    };
    let margin = chrono::Duration::from_std(CLOCK_SKEW_MARGIN).ok()?;
    if (written - stored).abs() > margin {
        Some(stored + (expires - written))
    } else {
        Some(expires)
    }
}

/// Whether `lease` no longer protects anything: it has expired (by [`expiry`]; `stored`
/// is when the store last wrote it), cannot be read, or was taken on this host (same name
/// and boot) by a process that `alive` says is gone.
pub fn is_stale(
    lease: &LeaseRecord,
    stored: Option<DateTime<Utc>>,
    me: &Owner,
    now: DateTime<Utc>,
    alive: impl Fn(u32, Option<u64>) -> Option<bool>,
) -> bool {
    let Some(expires) = expiry(lease, stored) else {
        return true;
    };
    if now >= expires {
        return true;
    }
    let same_host = lease.host == me.host && lease.boot_id == me.boot_id;
    same_host && lease.run_id != me.run_id && alive(lease.pid, lease.pid_start) == Some(false)
}

/// The result of [`acquire`].
#[derive(Debug)]
pub enum Claim {
    /// We hold the lease until [`Lease::release`].
    Held(Lease),
    /// Another live process holds it.
    Busy(LeaseRecord),
    /// The store cannot create objects conditionally: work without leases.
    Unsupported,
}

/// Tries to take the lease at `path` for `owner`, taking over a stale one.
pub async fn acquire(
    store: &Store,
    path: &Path,
    owner: &Owner,
    ttl: Duration,
) -> Result<Claim, LeaseError> {
    acquire_with(store, path, owner, ttl, process_alive).await
}

/// [`acquire`] with the liveness probe given (tests).
pub async fn acquire_with(
    store: &Store,
    path: &Path,
    owner: &Owner,
    ttl: Duration,
    alive: impl Fn(u32, Option<u64>) -> Option<bool>,
) -> Result<Claim, LeaseError> {
    let err = |op, source| lease_err(store, path, op, source);
    // Create; if taken, judge the holder; a stale holder is removed and we try again. Three
    // rounds are plenty: losing one means someone else just took it.
    let mut last_seen = None;
    // The stale lease deleted last, if any: the one a successful create replaces.
    let mut replaced = None;
    for _ in 0..3 {
        let record = owner.record(Utc::now(), ttl);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match store
            .object_store()
            .put_opts(path, PutPayload::from(to_bytes(&record)), opts)
            .await
        {
            Ok(_) => {
                let mut lease = Lease::start(store.clone(), path.clone(), record, ttl);
                lease.taken_over = replaced.map(Box::new);
                return Ok(Claim::Held(lease));
            }
            Err(object_store::Error::NotImplemented { .. }) => return Ok(Claim::Unsupported),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(err("create", e)),
        }
        let Some((held, meta)) = read_versioned(store, path).await? else {
            continue; // released meanwhile
        };
        match held {
            Some(rec) if !is_stale(&rec, Some(meta.last_modified), owner, Utc::now(), &alive) => {
                return Ok(Claim::Busy(rec));
            }
            stale => {
                warn!(
                    lease = %path,
                    holder = stale.as_ref().map(LeaseRecord::describe).unwrap_or_default(),
                    "Taking over a stale lease"
                );
                replaced = Some(stale.clone().unwrap_or_else(|| unreadable(path)));
                last_seen = stale;
                delete(store, path).await?;
            }
        }
    }
    Ok(match last_seen {
        Some(rec) => Claim::Busy(rec),
        None => Claim::Unsupported,
    })
}

/// Stands for a lease object that could not be parsed (taken over as stale).
fn unreadable(path: &Path) -> LeaseRecord {
    LeaseRecord {
        lease_version: 0,
        run_id: format!("unknown (unreadable lease `{path}`)"),
        host: String::new(),
        boot_id: None,
        pid: 0,
        pid_start: None,
        acquired_at: String::new(),
        renewed_at: None,
        expires_at: String::new(),
    }
}

/// The lease object: `None` when absent, `Some(None)` when unreadable.
async fn read(store: &Store, path: &Path) -> Result<Option<Option<LeaseRecord>>, LeaseError> {
    Ok(read_versioned(store, path).await?.map(|(rec, _)| rec))
}

/// The lease at `path` (`Some(None)`: unreadable) with its object's metadata (version,
/// last-modified time by the store's clock); `None` when there is no lease.
async fn read_versioned(
    store: &Store,
    path: &Path,
) -> Result<Option<(Option<LeaseRecord>, ObjectMeta)>, LeaseError> {
    match store.object_store().get(path).await {
        Ok(r) => {
            let meta = r.meta.clone();
            match r.bytes().await {
                Ok(b) => Ok(Some((serde_json::from_slice(&b).ok(), meta))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(lease_err(store, path, "read", e)),
            }
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(lease_err(store, path, "get", e)),
    }
}

async fn delete(store: &Store, path: &Path) -> Result<(), LeaseError> {
    match store.object_store().delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(lease_err(store, path, "delete", e)),
    }
}

fn lease_err(
    store: &Store,
    path: &Path,
    op: &'static str,
    source: object_store::Error,
) -> LeaseError {
    LeaseError::Store {
        url: store.url().to_string(),
        op,
        path: path.to_string(),
        source: Box::new(source),
    }
}

fn to_bytes(record: &LeaseRecord) -> bytes::Bytes {
    let mut v = serde_json::to_vec_pretty(record).unwrap_or_default();
    v.push(b'\n');
    bytes::Bytes::from(v)
}

fn expires_after(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A held lease. A heartbeat renews it every third of its time to live until
/// [`Lease::release`]; dropping it stops the heartbeat and leaves the object to expire.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    path: Path,
    record: LeaseRecord,
    ttl: Duration,
    stop: CancellationToken,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    lost: Arc<AtomicBool>,
    /// The stale lease this one replaced: its holder crashed (or stalled) with the
    /// execution unfinished, perhaps in the middle of a group commit.
    taken_over: Option<Box<LeaseRecord>>,
}

impl Lease {
    fn start(store: Store, path: Path, record: LeaseRecord, ttl: Duration) -> Lease {
        let stop = CancellationToken::new();
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(
            store.clone(),
            path.clone(),
            record.clone(),
            ttl,
            stop.clone(),
            Arc::clone(&lost),
        ));
        Lease {
            store,
            path,
            record,
            ttl,
            stop,
            heartbeat: Some(heartbeat),
            lost,
            taken_over: None,
        }
    }

    /// The stale lease this one replaced, if it was taken over.
    pub fn taken_over(&self) -> Option<&LeaseRecord> {
        self.taken_over.as_deref()
    }

    /// The record as first written.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// Pushes the expiry forward now; `false` when another process has taken the lease.
    pub async fn renew(&self) -> Result<bool, LeaseError> {
        let held = renew(&self.store, &self.path, &self.record, self.ttl).await?;
        if !held {
            self.lost.store(true, Ordering::Relaxed);
        }
        Ok(held)
    }

    /// Whether the lease object still names us (read from the store, not remembered).
    pub async fn still_held(&self) -> Result<bool, LeaseError> {
        if self.lost.load(Ordering::Relaxed) {
            return Ok(false);
        }
        Ok(matches!(
            read(&self.store, &self.path).await?,
            Some(Some(rec)) if rec.run_id == self.record.run_id
        ))
    }

    /// Stops the heartbeat and deletes the lease if it is still ours.
    pub async fn release(mut self) {
        self.stop.cancel();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.await;
        }
        match self.still_held().await {
            Ok(true) => {
                if let Err(e) = delete(&self.store, &self.path).await {
                    warn!(error = %e, "Could not release a lease; it will expire");
                }
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "Could not check a lease before releasing it"),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn renew(
    store: &Store,
    path: &Path,
    ours: &LeaseRecord,
    ttl: Duration,
) -> Result<bool, LeaseError> {
    let meta = match read_versioned(store, path).await? {
        Some((Some(rec), meta)) if rec.run_id == ours.run_id => meta,
        _ => return Ok(false),
    };
    write_renewal(store, path, ours, ttl, meta).await
}

/// The write of [`renew`], given the version of the lease it read.
async fn write_renewal(
    store: &Store,
    path: &Path,
    ours: &LeaseRecord,
    ttl: Duration,
    meta: ObjectMeta,
) -> Result<bool, LeaseError> {
    let now = Utc::now();
    let mut next = ours.clone();
    next.renewed_at = Some(rfc3339(now));
    next.expires_at = rfc3339(expires_after(now, ttl));
    let payload = PutPayload::from(to_bytes(&next));
    // Only if it is still the version we read: a process that took the lease over between
    // our read and this write must not be overwritten.
    let opts = PutOptions {
        mode: PutMode::Update(UpdateVersion {
            e_tag: meta.e_tag,
            version: meta.version,
        }),
        ..PutOptions::default()
    };
    match store
        .object_store()
        .put_opts(path, payload.clone(), opts)
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
            Ok(false)
        }
        // Local disk cannot update conditionally: read-then-write is all it has (the
        // window is one write; the commit stays exact either way).
        Err(object_store::Error::NotImplemented { .. }) => {
            store
                .object_store()
                .put(path, payload)
                .await
                .map_err(|e| lease_err(store, path, "renew", e))?;
            Ok(true)
        }
        Err(e) => Err(lease_err(store, path, "renew", e)),
    }
}

async fn heartbeat(
    store: Store,
    path: Path,
    record: LeaseRecord,
    ttl: Duration,
    stop: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(ttl / 3) => {}
            () = stop.cancelled() => return,
        }
        match renew(&store, &path, &record, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                warn!(lease = %path, "Lease taken over by another process; the commit stays safe");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => warn!(error = %e, "Could not renew a lease; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn store() -> Store {
        Store::from_object_store(Arc::new(InMemory::new()), "memory://")
    }

    fn owner(run: &str) -> Owner {
        Owner {
            run_id: run.into(),
            host: "host-a".into(),
            boot_id: Some("boot-1".into()),
            pid: 4242,
            pid_start: Some(7),
        }
    }

    async fn stored(s: &Store, p: &Path) -> Option<LeaseRecord> {
        read(s, p).await.unwrap().flatten()
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn acquire_writes_the_holder_and_release_deletes_it() {
        let s = store();
        let p = lease_path("products", "t1", "e1");
        assert_eq!(p.as_ref(), "products/_leases/t1/e1.json");
        let Claim::Held(lease) = acquire_with(&s, &p, &owner("r1"), TTL, |_, _| Some(true))
            .await
            .unwrap()
        else {
            panic!("not acquired");
        };
        let rec = stored(&s, &p).await.unwrap();
        assert_eq!(
            (
                rec.run_id.as_str(),
                rec.host.as_str(),
                rec.pid,
                rec.pid_start
            ),
            ("r1", "host-a", 4242, Some(7))
        );
        assert_eq!(&rec, lease.record());
        assert!(lease.still_held().await.unwrap());
        lease.release().await;
        assert_eq!(stored(&s, &p).await, None);
    }

    #[tokio::test]
    async fn a_live_holder_makes_it_busy_and_keeps_its_lease() {
        let s = store();
        let p = lease_path("d", "t", "e");
        let Claim::Held(first) = acquire_with(&s, &p, &owner("r1"), TTL, |_, _| Some(true))
            .await
            .unwrap()
        else {
            panic!("not acquired");
        };
        // Another run of another process on the same host, whose holder is alive.
        let mut other = owner("r2");
        other.pid = 5151;
        match acquire_with(&s, &p, &other, TTL, |pid, start| {
            assert_eq!((pid, start), (4242, Some(7)));
            Some(true)
        })
        .await
        .unwrap()
        {
            Claim::Busy(rec) => assert_eq!(rec.run_id, "r1"),
            c => panic!("expected busy, got {c:?}"),
        }
        // On another host the pid cannot be checked: only the expiry counts.
        let mut remote = owner("r3");
        remote.host = "host-b".into();
        let c = acquire_with(&s, &p, &remote, TTL, |_, _| Some(false))
            .await
            .unwrap();
        assert!(matches!(c, Claim::Busy(ref r) if r.run_id == "r1"), "{c:?}");
        assert_eq!(stored(&s, &p).await.unwrap().run_id, "r1");
        first.release().await;
    }

    #[tokio::test]
    async fn a_lease_of_a_dead_local_process_is_taken_over_at_once() {
        let s = store();
        let p = lease_path("d", "t", "e");
        let Claim::Held(crashed) = acquire_with(&s, &p, &owner("r1"), TTL, |_, _| Some(true))
            .await
            .unwrap()
        else {
            panic!("not acquired");
        };
        drop(crashed); // as after SIGKILL: the object stays
        let mut next = owner("r2");
        next.pid = 9;
        let Claim::Held(lease) = acquire_with(&s, &p, &next, TTL, |pid, _| Some(pid != 4242))
            .await
            .unwrap()
        else {
            panic!("stale lease not taken over");
        };
        assert_eq!(stored(&s, &p).await.unwrap().run_id, "r2");
        assert_eq!(lease.taken_over().map(|r| r.run_id.as_str()), Some("r1"));
        lease.release().await;
        // A lease created afresh replaced nothing.
        let Claim::Held(fresh) = acquire_with(&s, &p, &next, TTL, |_, _| Some(true))
            .await
            .unwrap()
        else {
            panic!("not acquired");
        };
        assert!(fresh.taken_over().is_none());
        fresh.release().await;
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_the_old_holder_notices() {
        let s = store();
        let p = lease_path("d", "t", "e");
        let mut remote = owner("r1");
        remote.host = "host-b".into();
        let Claim::Held(old) = acquire_with(&s, &p, &remote, Duration::ZERO, |_, _| Some(true))
            .await
            .unwrap()
        else {
            panic!("not acquired");
        };
        let Claim::Held(new) = acquire_with(&s, &p, &owner("r2"), TTL, |_, _| Some(true))
            .await
            .unwrap()
        else {
            panic!("expired lease not taken over");
        };
        assert!(!old.renew().await.unwrap(), "the old holder lost it");
        assert!(!old.still_held().await.unwrap());
        old.release().await; // must not delete the new holder's lease
        assert_eq!(stored(&s, &p).await.unwrap().run_id, "r2");
        assert!(new.renew().await.unwrap());
        new.release().await;
        assert_eq!(stored(&s, &p).await, None);
    }

    #[tokio::test]
    async fn renew_pushes_the_expiry_forward() {
        let s = store();
        let p = lease_path("d", "t", "e");
        let Claim::Held(lease) = acquire_with(&s, &p, &owner("r1"), TTL, |_, _| Some(true))
            .await
            .unwrap()
        else {
            panic!("not acquired");
        };
        let before = stored(&s, &p).await.unwrap().expires_at;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(lease.renew().await.unwrap());
        let after = stored(&s, &p).await.unwrap().expires_at;
        assert!(after > before, "{before} → {after}");
        lease.release().await;
    }

    #[tokio::test]
    async fn a_renewal_never_overwrites_a_lease_another_process_took_meanwhile() {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        let path = lease_path("d", "t", "e1");
        let a = owner("run-a");
        let Claim::Held(lease) = acquire(&store, &path, &a, LEASE_TTL)
            .await
            .expect("acquire")
        else {
            panic!("not held");
        };
        // A reads its lease to renew it...
        let (_, meta) = read_versioned(&store, &path)
            .await
            .expect("read")
            .expect("there");
        // ...B takes it over (A stalled past its expiry) before A writes...
        let b = owner("run-b").record(Utc::now(), LEASE_TTL);
        store
            .object_store()
            .put(&path, PutPayload::from(to_bytes(&b)))
            .await
            .expect("put");
        // ...so A's write must fail, and B's lease stays.
        let renewed = write_renewal(&store, &path, lease.record(), LEASE_TTL, meta)
            .await
            .expect("renew");
        assert!(!renewed);
        let now_there = read(&store, &path).await.expect("read").expect("there");
        assert_eq!(now_there.expect("readable").run_id, "run-b");
        lease.release().await;
        assert!(
            read(&store, &path).await.expect("read").is_some(),
            "B's lease is not ours to release"
        );
    }

    #[test]
    fn a_holder_clock_far_from_the_store_counts_from_the_store_time() {
        let t0: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
        let me = owner("run-me");
        // The holder's clock runs an hour fast: it wrote at 11:00 (its clock) when the
        // store said 10:00, so its lease claims to last until 11:01.
        let mut fast = me.record(t0 + chrono::Duration::hours(1), LEASE_TTL);
        fast.run_id = "run-fast".into();
        fast.host = "elsewhere".into();
        assert_eq!(
            expiry(&fast, Some(t0)),
            Some(t0 + chrono::Duration::seconds(60))
        );
        let two_minutes_later = t0 + chrono::Duration::seconds(120);
        assert!(is_stale(&fast, Some(t0), &me, two_minutes_later, |_, _| {
            None
        }));
        assert!(
            !is_stale(&fast, None, &me, two_minutes_later, |_, _| None),
            "by its own clock it would hold for another hour"
        );
        // Within the margin the holder's own expiry stands.
        let close = me.record(t0 + chrono::Duration::seconds(3), LEASE_TTL);
        assert_eq!(
            expiry(&close, Some(t0)),
            Some(t0 + chrono::Duration::seconds(63))
        );
    }

    #[test]
    fn staleness_rules() {
        let me = owner("me");
        let now = Utc::now();
        let mut rec = owner("other").record(now, TTL);
        rec.pid = 77;
        assert!(!is_stale(&rec, None, &me, now, |_, _| Some(true)));
        assert!(
            is_stale(&rec, None, &me, now, |_, _| Some(false)),
            "dead pid here"
        );
        assert!(
            !is_stale(&rec, None, &me, now, |_, _| None),
            "no /proc: wait for expiry"
        );
        assert!(is_stale(
            &rec,
            None,
            &me,
            now + chrono::Duration::seconds(61),
            |_, _| Some(true)
        ));
        let mut other_boot = rec.clone();
        other_boot.boot_id = Some("boot-2".into());
        assert!(!is_stale(&other_boot, None, &me, now, |_, _| Some(false)));
        let mut garbled = rec.clone();
        garbled.expires_at = "soon".into();
        assert!(is_stale(&garbled, None, &me, now, |_, _| Some(true)));
    }

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_not() {
        let me = Owner::this_process("r");
        assert_eq!(process_alive(me.pid, me.pid_start), Some(true));
        if let Some(start) = me.pid_start {
            assert_eq!(
                process_alive(me.pid, Some(start + 1)),
                Some(false),
                "reused pid"
            );
        }
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(process_alive(pid, None), Some(false));
    }

    #[tokio::test]
    async fn the_local_store_creates_leases_exclusively() {
        let dir = tempfile::tempdir().unwrap();
        let local = Store::from_object_store(
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
            "file://",
        );
        let p = lease_path("d", "t", "e");
        let first = acquire_with(&local, &p, &owner("r1"), TTL, |_, _| Some(true))
            .await
            .unwrap();
        let second = acquire_with(&local, &p, &owner("r2"), TTL, |_, _| Some(true))
            .await
            .unwrap();
        assert!(matches!(first, Claim::Held(_)), "{first:?}");
        assert!(
            matches!(second, Claim::Busy(ref r) if r.run_id == "r1"),
            "{second:?}"
        );
    }
}
