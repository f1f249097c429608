//! Shared state of one running simulator: the scenario, id indexes, the clock,
//! per-execution controls, the rate-limit window and the request log.
//!
//! Invariant: the scenario is immutable after start; everything that changes
//! (controls, window, log) sits behind its own short-held mutex.

use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::RequestRecord;
use super::faults::FaultState;
use super::scenario::{Scenario, SimExecution, SimTask};
use super::timeline::{Control, Snapshot};

/// `X-RateLimit-Limit` advertised when the scenario does not limit.
pub(crate) const UNLIMITED: u32 = 1_000_000;
const WINDOW: Duration = Duration::from_secs(60);

pub(crate) struct SimState {
    pub(crate) scenario: Scenario,
    pub(crate) base_url: String,
    pub(crate) faults: FaultState,
    started: Instant,
    started_wall: DateTime<Utc>,
    tasks_by_id: HashMap<String, usize>,
    execs_by_id: HashMap<String, (usize, usize)>,
    controls: Mutex<HashMap<(usize, usize), Control>>,
    window: Mutex<(u64, u32)>,
    log: Mutex<Vec<RequestRecord>>,
}

/// One execution and its task, found by id.
#[derive(Clone, Copy)]
pub(crate) struct ExecRef<'a> {
    pub(crate) key: (usize, usize),
    pub(crate) task: &'a SimTask,
    pub(crate) exec: &'a SimExecution,
}

/// Outcome of counting one request against the current fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateDecision {
    pub(crate) allowed: bool,
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Unix seconds at which the current window ends.
    pub(crate) reset_unix: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler cannot leave these plain collections half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    pub(crate) fn new(scenario: Scenario, base_url: String) -> Self {
        let mut tasks_by_id = HashMap::new();
        let mut execs_by_id = HashMap::new();
        for (ti, t) in scenario.tasks.iter().enumerate() {
            tasks_by_id.insert(t.id.clone(), ti);
            for (ei, e) in t.executions.iter().enumerate() {
                execs_by_id.insert(e.id.clone(), (ti, ei));
            }
        }
        SimState {
            faults: FaultState::new(scenario.faults.clone(), scenario.seed),
            scenario,
            base_url,
            started: Instant::now(),
            started_wall: Utc::now(),
            tasks_by_id,
            execs_by_id,
            controls: Mutex::new(HashMap::new()),
            window: Mutex::new((0, 0)),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Time since start: the clock of every execution timeline.
    pub(crate) fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// RFC 3339 UTC (milliseconds) of an offset since start.
    pub(crate) fn wall(&self, offset: Duration) -> String {
        let off = chrono::Duration::from_std(offset).unwrap_or(chrono::Duration::MAX);
        self.started_wall
            .checked_add_signed(off)
            .unwrap_or(self.started_wall)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub(crate) fn task(&self, id: &str) -> Option<&SimTask> {
        self.tasks_by_id.get(id).map(|&ti| &self.scenario.tasks[ti])
    }

    pub(crate) fn exec(&self, id: &str) -> Option<ExecRef<'_>> {
        self.execs_by_id
            .get(id)
            .map(|&(ti, ei)| self.exec_at((ti, ei)))
    }

    pub(crate) fn exec_at(&self, key: (usize, usize)) -> ExecRef<'_> {
        let task = &self.scenario.tasks[key.0];
        ExecRef {
            key,
            task,
            exec: &task.executions[key.1],
        }
    }

    /// All executions in scenario order (task order, then execution order).
    pub(crate) fn all_execs(&self) -> impl Iterator<Item = ExecRef<'_>> {
        self.scenario
            .tasks
            .iter()
            .enumerate()
            .flat_map(move |(ti, t)| (0..t.executions.len()).map(move |ei| self.exec_at((ti, ei))))
    }

    pub(crate) fn snapshot<'a>(&self, e: ExecRef<'a>, now: Duration) -> Snapshot<'a> {
        let controls = lock(&self.controls);
        match controls.get(&e.key) {
            Some(c) => c.snapshot(e.exec, now),
            None => Control::default().snapshot(e.exec, now),
        }
    }

    /// Applies a pause/resume/stop transition under the controls lock.
    pub(crate) fn control<R>(&self, e: ExecRef<'_>, f: impl FnOnce(&mut Control) -> R) -> R {
        f(lock(&self.controls).entry(e.key).or_default())
    }

    /// Counts one request in the fixed 60 s window (windows start at simulator start).
    pub(crate) fn rate_check(&self) -> RateDecision {
        let elapsed = self.now();
        let index = elapsed.as_secs() / WINDOW.as_secs();
        let limit = self.scenario.rate_limit_per_minute.unwrap_or(UNLIMITED);
        let count = {
            let mut w = lock(&self.window);
            if w.0 != index {
                *w = (index, 0);
            }
            w.1 = w.1.saturating_add(1);
            w.1
        };
        let window_end = Duration::from_secs((index + 1) * WINDOW.as_secs());
        let end_wall = self.started_wall
            + chrono::Duration::from_std(window_end).unwrap_or(chrono::Duration::MAX);
        let reset_unix = end_wall.timestamp() + i64::from(end_wall.timestamp_subsec_nanos() > 0);
        RateDecision {
            allowed: self.scenario.rate_limit_per_minute.is_none() || count <= limit,
            limit,
            remaining: limit.saturating_sub(count),
            reset_unix,
        }
    }

    pub(crate) fn record(&self, r: RequestRecord) {
        lock(&self.log).push(r);
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.log).clone()
    }
}
