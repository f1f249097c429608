//! Which executions are combined into shared files, and when a group of them is due.
//!
//! An execution whose whole output is one staged part smaller than `combine_below_mb` is
//! not committed alone: it waits in the combiner of its (dataset, task, partition date,
//! schema fingerprint) — executions with different schemas are never mixed. A combiner is
//! due once its staged bytes reach `combine_target_mb`, or when one more member would
//! take it past `file_rows` rows (a combined file is one file), or at
//! [`MAX_GROUP_MEMBERS`], or once its first member has waited `max_commit_delay`
//! ([`Combiners::take_aged`]), so that a killed run loses at most that much finished work;
//! whatever is left is flushed at the end of the run. The writing and committing is the
//! sink's ([`crate::sink::Sink::commit_group`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Default of `[run] combine_below_mb`.
pub const DEFAULT_COMBINE_BELOW_MB: f64 = 8.0;
/// Default of `[run] combine_target_mb`.
pub const DEFAULT_COMBINE_TARGET_MB: f64 = 64.0;
/// Default of `[run] max_commit_delay`.
pub const DEFAULT_MAX_COMMIT_DELAY: Duration = Duration::from_secs(30);

/// Members of one combined file at most. Each waiting member keeps its lease alive (a
/// store write every 20 s) and its manifest goes into the group's intent record, so a
/// group of many tiny executions is cut here before it reaches the target size.
pub const MAX_GROUP_MEMBERS: usize = 1024;

const MIB: f64 = 1024.0 * 1024.0;

/// `[run] combine_below_mb` / `combine_target_mb`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CombineSettings {
    /// Executions with less staged output than this are combined; 0 disables combining.
    pub below_bytes: u64,
    /// A combiner is flushed once its members' staged bytes reach this.
    pub target_bytes: u64,
    /// A combiner is flushed once its oldest member has waited this long.
    pub max_delay: Duration,
}

impl Default for CombineSettings {
    fn default() -> Self {
        CombineSettings::from_mb(DEFAULT_COMBINE_BELOW_MB, DEFAULT_COMBINE_TARGET_MB)
    }
}

impl CombineSettings {
    /// From MiB (fractions allowed); the caller has checked both are finite and ≥ 0.
    pub fn from_mb(below_mb: f64, target_mb: f64) -> Self {
        CombineSettings {
            below_bytes: (below_mb * MIB).round() as u64,
            target_bytes: (target_mb * MIB).round() as u64,
            max_delay: DEFAULT_MAX_COMMIT_DELAY,
        }
    }

    /// The same, with `max_commit_delay` set.
    pub fn with_max_delay(self, max_delay: Duration) -> Self {
        CombineSettings { max_delay, ..self }
    }

    /// Whether combining is on at all.
    pub fn enabled(&self) -> bool {
        self.below_bytes > 0
    }

    /// Whether an execution whose output is `parts` staged parts of `bytes` in total and
    /// `rows` rows goes to a combiner; `max_rows` is the size of one file (`file_rows`).
    pub fn eligible(&self, parts: usize, rows: u64, bytes: u64, max_rows: u64) -> bool {
        self.enabled() && parts == 1 && rows > 0 && rows <= max_rows && bytes < self.below_bytes
    }
}

/// What is combined with what: same dataset, task, partition date and schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub dataset: String,
    pub task_id: String,
    pub date: String,
    pub schema_fingerprint: String,
}

struct Pending<T> {
    items: Vec<T>,
    rows: u64,
    bytes: u64,
    /// When the oldest member arrived.
    since: Option<Instant>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            items: Vec::new(),
            rows: 0,
            bytes: 0,
            since: None,
        }
    }
}

/// The open groups of a run.
pub struct Combiners<T> {
    settings: CombineSettings,
    max_rows: u64,
    open: HashMap<GroupKey, Pending<T>>,
}

impl<T> Combiners<T> {
    /// `max_rows`: rows of one combined file at most (`file_rows`).
    pub fn new(settings: CombineSettings, max_rows: u64) -> Self {
        Combiners {
            settings,
            max_rows,
            open: HashMap::new(),
        }
    }

    /// Adds an execution of `rows` rows and `bytes` staged bytes; returns the groups that
    /// are due now (at most two: the one it did not fit into, and the one it filled).
    pub fn add(&mut self, key: GroupKey, item: T, rows: u64, bytes: u64) -> Vec<Vec<T>> {
        let mut due = Vec::new();
        let pending = self.open.entry(key.clone()).or_default();
        if !pending.items.is_empty() && pending.rows + rows > self.max_rows {
            due.push(std::mem::take(pending).items);
        }
        pending.since.get_or_insert_with(Instant::now);
        pending.items.push(item);
        pending.rows += rows;
        pending.bytes += bytes;
        if pending.bytes >= self.settings.target_bytes || pending.items.len() >= MAX_GROUP_MEMBERS {
            due.push(std::mem::take(pending).items);
        }
        if pending.items.is_empty() {
            self.open.remove(&key);
        }
        due
    }

    /// The groups whose oldest member has waited `max_delay` by `now`, in key order.
    pub fn take_aged(&mut self, now: Instant) -> Vec<Vec<T>> {
        let max_delay = self.settings.max_delay;
        let mut aged: Vec<GroupKey> = self
            .open
            .iter()
            .filter(|(_, p)| {
                p.since
                    .is_some_and(|t| now.saturating_duration_since(t) >= max_delay)
            })
            .map(|(k, _)| k.clone())
            .collect();
        aged.sort();
        aged.into_iter()
            .filter_map(|k| self.open.remove(&k))
            .map(|p| p.items)
            .collect()
    }

    /// How long until the next group is due by age (`None`: nothing is waiting).
    pub fn next_due(&self, now: Instant) -> Option<Duration> {
        self.open
            .values()
            .filter_map(|p| p.since)
            .map(|t| {
                self.settings
                    .max_delay
                    .saturating_sub(now.saturating_duration_since(t))
            })
            .min()
    }

    /// Every open group (end of run), in key order.
    pub fn drain(&mut self) -> Vec<Vec<T>> {
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        open.into_iter().map(|(_, p)| p.items).collect()
    }

    /// Executions waiting in open groups.
    pub fn waiting(&self) -> usize {
        self.open.values().map(|p| p.items.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(date: &str, fingerprint: &str) -> GroupKey {
        GroupKey {
            dataset: "d".into(),
            task_id: "t".into(),
            date: date.into(),
            schema_fingerprint: fingerprint.into(),
        }
    }

    #[test]
    fn defaults_and_zero_disables() {
        let s = CombineSettings::default();
        assert_eq!(s.below_bytes, 8 << 20);
        assert_eq!(s.target_bytes, 64 << 20);
        assert!(s.enabled());
        let off = CombineSettings::from_mb(0.0, 64.0);
        assert!(!off.enabled());
        assert!(!off.eligible(1, 10, 1, 100));
        assert_eq!(CombineSettings::from_mb(0.5, 1.0).below_bytes, 512 * 1024);
    }

    #[test]
    fn only_one_small_nonempty_part_that_fits_a_file_is_combined() {
        let s = CombineSettings::from_mb(1.0, 4.0);
        assert!(s.eligible(1, 100, (1 << 20) - 1, 1000));
        assert!(
            !s.eligible(1, 100, 1 << 20, 1000),
            "at the threshold: alone"
        );
        assert!(!s.eligible(2, 100, 10, 1000), "several parts: alone");
        assert!(!s.eligible(0, 0, 0, 1000), "no rows: a manifest alone");
        assert!(!s.eligible(1, 1001, 10, 1000), "more rows than a file");
    }

    #[test]
    fn a_group_is_due_at_the_target_size() {
        let mut c = Combiners::new(
            CombineSettings {
                below_bytes: 100,
                target_bytes: 250,
                max_delay: DEFAULT_MAX_COMMIT_DELAY,
            },
            1_000,
        );
        assert!(c.add(key("a", "f"), 1, 10, 99).is_empty());
        assert!(c.add(key("a", "f"), 2, 10, 99).is_empty());
        assert_eq!(c.waiting(), 2);
        assert_eq!(c.add(key("a", "f"), 3, 10, 99), vec![vec![1, 2, 3]]);
        assert_eq!(c.waiting(), 0);
        assert!(c.add(key("a", "f"), 4, 10, 99).is_empty());
        assert_eq!(c.drain(), vec![vec![4]]);
        assert!(c.drain().is_empty());
    }

    #[test]
    fn dates_and_schemas_are_never_mixed() {
        let mut c = Combiners::new(
            CombineSettings {
                below_bytes: 100,
                target_bytes: 250,
                max_delay: DEFAULT_MAX_COMMIT_DELAY,
            },
            1_000,
        );
        for (i, k) in [key("a", "f"), key("b", "f"), key("a", "g"), key("a", "f")]
            .into_iter()
            .enumerate()
        {
            assert!(c.add(k, i, 1, 99).is_empty());
        }
        assert_eq!(c.drain(), vec![vec![0, 3], vec![2], vec![1]]);
    }

    #[test]
    fn a_member_that_would_overflow_the_file_starts_the_next_group() {
        let mut c = Combiners::new(
            CombineSettings {
                below_bytes: 100,
                target_bytes: 1 << 30,
                max_delay: DEFAULT_MAX_COMMIT_DELAY,
            },
            1_000,
        );
        let mut flushed = Vec::new();
        for i in 0..35 {
            flushed.extend(c.add(key("a", "f"), i, 100, 1));
        }
        // 100-row members into 1000-row files: exactly ten per file.
        assert_eq!(flushed.len(), 3);
        assert!(flushed.iter().all(|g| g.len() == 10), "{flushed:?}");
        assert_eq!(c.drain(), vec![(30..35).collect::<Vec<_>>()]);
        // Overflow and target at once: the old group, then the new one alone.
        let mut c = Combiners::new(
            CombineSettings {
                below_bytes: 100,
                target_bytes: 50,
                max_delay: DEFAULT_MAX_COMMIT_DELAY,
            },
            10,
        );
        assert!(c.add(key("a", "f"), 1, 6, 10).is_empty());
        assert_eq!(c.add(key("a", "f"), 2, 6, 60), vec![vec![1], vec![2]]);
    }

    #[test]
    fn a_group_is_cut_at_the_member_limit() {
        let mut c = Combiners::new(
            CombineSettings {
                below_bytes: 100,
                target_bytes: u64::MAX,
                max_delay: DEFAULT_MAX_COMMIT_DELAY,
            },
            u64::MAX,
        );
        let mut due = Vec::new();
        for i in 0..MAX_GROUP_MEMBERS + 1 {
            due.extend(c.add(key("a", "f"), i, 1, 1));
        }
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].len(), MAX_GROUP_MEMBERS);
        assert_eq!(c.waiting(), 1);
    }

    #[test]
    fn a_group_is_due_once_its_oldest_member_waited_max_delay() {
        let settings = CombineSettings::from_mb(1.0, 64.0).with_max_delay(Duration::from_secs(30));
        let mut c = Combiners::new(settings, 1_000);
        let start = Instant::now();
        assert!(c.add(key("a", "f"), 1, 10, 99).is_empty());
        assert!(c.add(key("b", "f"), 2, 10, 99).is_empty());
        let due = c.next_due(start + Duration::from_secs(10));
        assert!(
            due.is_some_and(|d| d > Duration::from_secs(19) && d <= Duration::from_secs(21)),
            "{due:?}"
        );
        assert!(c.take_aged(start + Duration::from_secs(29)).is_empty());
        assert_eq!(c.waiting(), 2);
        // A member that joins later does not postpone its group.
        assert!(c.add(key("a", "f"), 3, 10, 99).is_empty());
        let aged = c.take_aged(Instant::now() + Duration::from_secs(31));
        assert_eq!(aged, vec![vec![1, 3], vec![2]]);
        assert_eq!(c.waiting(), 0);
        assert_eq!(c.next_due(Instant::now()), None);
    }
}
