//! Execution status over time: `queued` until `queued_for`, `running` until
//! `queued_for + running_for`, then `final_status`; pauses stop the clock and
//! shift later events, a stop cuts the timeline to `cancelled`.
//!
//! All instants are offsets since simulator start; pure logic, no clock reads.

use std::time::Duration;

use super::scenario::SimExecution;

/// What `/pause`, `/resume` and `/stop` did to one execution.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Closed pause intervals (real offsets), in order.
    pauses: Vec<(Duration, Duration)>,
    paused_since: Option<Duration>,
    cancelled_at: Option<Duration>,
}

/// An execution's status at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status<'a> {
    Queued,
    Running,
    Paused,
    Cancelled,
    Final(&'a str),
}

impl<'a> Status<'a> {
    pub(crate) fn as_str(self) -> &'a str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Cancelled => "cancelled",
            Status::Final(s) => s,
        }
    }
}

/// Status plus the event offsets that have already happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot<'a> {
    pub(crate) status: Status<'a>,
    pub(crate) started: Option<Duration>,
    pub(crate) finished: Option<Duration>,
    /// Latest status change (start, finish, pause, resume, stop), if any.
    pub(crate) last_change: Option<Duration>,
}

impl Snapshot<'_> {
    /// Whether result files exist: a successful final status, `results_lag` after finishing.
    pub(crate) fn results_ready(&self, e: &SimExecution, now: Duration) -> bool {
        matches!(
            self.status,
            Status::Final("completed" | "completed_with_errors")
        ) && self.finished.is_some_and(|f| now >= f + e.results_lag)
    }
}

impl Control {
    /// Paused time before `now`.
    fn frozen(&self, now: Duration) -> Duration {
        let closed: Duration = self.pauses.iter().map(|(a, b)| *b - *a).sum();
        closed
            + self
                .paused_since
                .map_or(Duration::ZERO, |p| now.saturating_sub(p))
    }

    /// Real offset at which the unpaused clock reaches `v`.
    fn real_of(&self, v: Duration) -> Duration {
        self.pauses
            .iter()
            .fold(v, |r, (a, b)| if *a < r { r + (*b - *a) } else { r })
    }

    pub(crate) fn snapshot<'a>(&self, e: &'a SimExecution, now: Duration) -> Snapshot<'a> {
        let until = self.cancelled_at.unwrap_or(now);
        let v = until.saturating_sub(self.frozen(until));
        let start_v = e.queued_for;
        let end_v = e.queued_for + e.running_for;
        let started = (v >= start_v).then(|| self.real_of(start_v));
        let last_pause = self.pauses.last().map(|(_, b)| *b).max(self.paused_since);
        let (status, finished) = if let Some(c) = self.cancelled_at {
            (Status::Cancelled, Some(c))
        } else if self.paused_since.is_some() {
            (Status::Paused, None)
        } else if v < start_v {
            (Status::Queued, None)
        } else if v < end_v {
            (Status::Running, None)
        } else {
            (Status::Final(&e.final_status), Some(self.real_of(end_v)))
        };
        Snapshot {
            status,
            started,
            finished,
            last_change: [started, finished, last_pause].into_iter().flatten().max(),
        }
    }

    pub(crate) fn pause(&mut self, e: &SimExecution, now: Duration) -> Result<(), String> {
        match self.snapshot(e, now).status {
            Status::Queued | Status::Running => {
                self.paused_since = Some(now);
                Ok(())
            }
            other => Err(format!(
                "execution is {}; only queued or running executions can be paused",
                other.as_str()
            )),
        }
    }

    pub(crate) fn resume(&mut self, e: &SimExecution, now: Duration) -> Result<(), String> {
        match self.paused_since.take() {
            Some(p) if self.cancelled_at.is_none() => {
                self.pauses.push((p, now.max(p)));
                Ok(())
            }
            _ => Err(format!(
                "execution is {}; only paused executions can be resumed",
                self.snapshot(e, now).status.as_str()
            )),
        }
    }

    pub(crate) fn stop(&mut self, e: &SimExecution, now: Duration) -> Result<(), String> {
        match self.snapshot(e, now).status {
            Status::Queued | Status::Running | Status::Paused => {
                if let Some(p) = self.paused_since.take() {
                    self.pauses.push((p, now.max(p)));
                }
                self.cancelled_at = Some(now);
                Ok(())
            }
            other => Err(format!(
                "execution is {}; it already finished",
                other.as_str()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn exec(final_status: &str) -> SimExecution {
        SimExecution {
            id: "e".into(),
            rows: 1,
            final_status: final_status.into(),
            queued_for: ms(100),
            running_for: ms(200),
            results_lag: ms(50),
            ..SimExecution::default()
        }
    }

    #[test]
    fn plain_timeline() {
        let e = exec("completed");
        let c = Control::default();
        let s = c.snapshot(&e, ms(0));
        assert_eq!(
            (s.status, s.started, s.finished, s.last_change),
            (Status::Queued, None, None, None)
        );
        let s = c.snapshot(&e, ms(150));
        assert_eq!(
            (s.status, s.started, s.finished),
            (Status::Running, Some(ms(100)), None)
        );
        let s = c.snapshot(&e, ms(300));
        assert_eq!(
            (s.status, s.started, s.finished),
            (Status::Final("completed"), Some(ms(100)), Some(ms(300)))
        );
        assert_eq!(s.last_change, Some(ms(300)));
        assert!(!s.results_ready(&e, ms(349)));
        assert!(s.results_ready(&e, ms(350)));
    }

    #[test]
    fn only_successful_finals_have_results() {
        for (status, ready) in [
            ("completed", true),
            ("completed_with_errors", true),
            ("failed", false),
            ("cancelled", false),
            ("weird", false),
        ] {
            let e = exec(status);
            let s = Control::default().snapshot(&e, ms(1000));
            assert_eq!(s.status.as_str(), status);
            assert_eq!(s.results_ready(&e, ms(1000)), ready, "{status}");
        }
    }

    #[test]
    fn pause_shifts_the_rest_of_the_timeline() {
        let e = exec("completed");
        let mut c = Control::default();
        c.pause(&e, ms(150)).expect("running can pause");
        let s = c.snapshot(&e, ms(1000));
        assert_eq!(
            (s.status, s.started, s.finished, s.last_change),
            (Status::Paused, Some(ms(100)), None, Some(ms(150)))
        );
        assert!(c.pause(&e, ms(1000)).is_err(), "already paused");
        c.resume(&e, ms(1150)).expect("paused can resume");
        // 50 ms of running were done before the pause; 150 remain after 1150.
        let s = c.snapshot(&e, ms(1299));
        assert_eq!((s.status, s.last_change), (Status::Running, Some(ms(1150))));
        let s = c.snapshot(&e, ms(1300));
        assert_eq!(
            (s.status, s.started, s.finished),
            (Status::Final("completed"), Some(ms(100)), Some(ms(1300)))
        );
        assert!(c.resume(&e, ms(1400)).is_err());
        assert!(c.pause(&e, ms(1400)).is_err());
    }

    #[test]
    fn pause_while_queued_delays_the_start() {
        let e = exec("completed");
        let mut c = Control::default();
        c.pause(&e, ms(50)).expect("queued can pause");
        c.resume(&e, ms(550)).expect("resume");
        let s = c.snapshot(&e, ms(599));
        assert_eq!(s.status, Status::Queued);
        let s = c.snapshot(&e, ms(600));
        assert_eq!((s.status, s.started), (Status::Running, Some(ms(600))));
        assert_eq!(c.snapshot(&e, ms(800)).finished, Some(ms(800)));
    }

    #[test]
    fn stop_cancels_and_freezes() {
        let e = exec("completed");
        let mut c = Control::default();
        c.stop(&e, ms(120)).expect("running can stop");
        let s = c.snapshot(&e, ms(5000));
        assert_eq!(
            (s.status, s.started, s.finished),
            (Status::Cancelled, Some(ms(100)), Some(ms(120)))
        );
        assert!(!s.results_ready(&e, ms(5000)));
        assert!(c.stop(&e, ms(5000)).is_err());
        assert!(c.resume(&e, ms(5000)).is_err());

        let mut q = Control::default();
        q.pause(&e, ms(10)).expect("pause");
        q.stop(&e, ms(400)).expect("paused can stop");
        let s = q.snapshot(&e, ms(900));
        assert_eq!(
            (s.status, s.started, s.finished),
            (Status::Cancelled, None, Some(ms(400)))
        );

        let mut done = Control::default();
        assert!(done.stop(&e, ms(300)).is_err(), "completed cannot stop");
    }
}
