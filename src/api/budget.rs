//! `RateBudget`: the client-side request budget (GCRA) shared by every clone
//! of a `TitanClient`, plus the hold the server asks for when its own budget
//! is spent. Invariant: over any window of `w` seconds at most
//! `burst + rpm·w/60` requests start, and none starts before a hold ends.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use tokio::time::Instant;

use super::ApiError;
use super::retry::{MAX_SERVER_WAIT, ratelimit_reset};

/// Default steady rate: under Titan's documented ~120 requests/min per surface.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 100;
/// Default burst. With the default rate, no 60 s window holds more than
/// 10 + 100 = 110 requests, still under the platform's 120.
pub const DEFAULT_BURST: u32 = 10;

/// Paces request starts for the whole process (it lives inside the client's
/// `Arc`): a request may start when the budget has a slot, and only after any
/// server hold (`X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`) ends.
/// Slots are handed out in call order, so waiters are served first come, first
/// served; a caller that gives up while waiting forfeits its slot.
#[derive(Debug)]
pub struct RateBudget {
    pace: Option<Pace>,
    state: Mutex<State>,
}

/// GCRA parameters: one slot per `interval`, and up to `tolerance / interval`
/// extra slots banked while idle (the burst).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pace {
    interval: Duration,
    tolerance: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// Theoretical arrival time of the next request at the steady rate.
    tat: Option<Instant>,
    /// No request starts before this (the server's reset time).
    hold_until: Option<Instant>,
}

impl RateBudget {
    /// `requests_per_minute` steady, with `burst` requests allowed back to back
    /// after an idle period. Both must be at least 1.
    pub fn new(requests_per_minute: u32, burst: u32) -> Result<Self, ApiError> {
        if requests_per_minute == 0 {
            return Err(ApiError::InvalidConfig {
                field: "rate_limit_per_minute",
                reason: "must be at least 1 (or unset to disable the budget)".into(),
            });
        }
        if burst == 0 {
            return Err(ApiError::InvalidConfig {
                field: "rate_limit_burst",
                reason: "must be at least 1".into(),
            });
        }
        let interval = Duration::from_secs(60) / requests_per_minute;
        Ok(RateBudget {
            pace: Some(Pace {
                interval,
                tolerance: interval.saturating_mul(burst - 1),
            }),
            state: Mutex::default(),
        })
    }

    /// No client-side pacing. Server holds still apply: ignoring a server that
    /// says "0 remaining" only earns a 429 and the same wait.
    pub fn unlimited() -> Self {
        RateBudget {
            pace: None,
            state: Mutex::default(),
        }
    }

    /// Waits for this request's slot; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let start = self.lock().reserve(self.pace, now);
        if start <= now {
            return Duration::ZERO;
        }
        tokio::time::sleep_until(start).await;
        start - now
    }

    /// Holds every request that has not reserved its slot yet for `wait`
    /// (clamped to `MAX_SERVER_WAIT`); a hold only ever extends.
    pub fn hold_for(&self, wait: Duration) {
        let until = Instant::now() + wait.min(MAX_SERVER_WAIT);
        let mut state = self.lock();
        state.hold_until = state.hold_until.max(Some(until));
    }

    /// Reads a response from the API origin: at `X-RateLimit-Remaining: 0`
    /// with a future `X-RateLimit-Reset`, holds new requests until the reset.
    /// Returns the hold, if one was set.
    pub(crate) fn observe(&self, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        let hold = server_hold(headers, now)?;
        self.hold_for(hold);
        Some(hold)
    }

    /// The state is two instants, valid after any panic; poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    /// Reserves the start time of one request arriving at `now` and books
    /// its slot, so the next caller is placed after it.
    fn reserve(&mut self, pace: Option<Pace>, now: Instant) -> Instant {
        let earliest = match self.hold_until {
            Some(hold) if hold > now => hold,
            _ => now,
        };
        let Some(pace) = pace else {
            return earliest;
        };
        let tat = self.tat.map_or(earliest, |t| t.max(earliest));
        let start = tat
            .checked_sub(pace.tolerance)
            .map_or(earliest, |s| s.max(earliest));
        self.tat = Some(tat + pace.interval);
        start
    }
}

/// How long the server asks us to hold: only when `X-RateLimit-Remaining` is 0
/// and `X-RateLimit-Reset` is in the future; clamped to `MAX_SERVER_WAIT`.
fn server_hold(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let remaining = headers
        .get("x-ratelimit-remaining")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    if remaining != 0 {
        return None;
    }
    ratelimit_reset(headers, now).map(|d| d.min(MAX_SERVER_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Offsets (ms after t0) at which requests arriving at `arrivals` may start.
    fn starts(budget: &RateBudget, arrivals: &[u64]) -> Vec<u64> {
        let t0 = Instant::now();
        let mut state = budget.lock();
        arrivals
            .iter()
            .map(|&a| (state.reserve(budget.pace, t0 + ms(a)) - t0).as_millis() as u64)
            .collect()
    }

    #[test]
    fn burst_then_steady_rate() {
        // 600/min = one per 100 ms; 3 may go back to back.
        let b = RateBudget::new(600, 3).expect("valid");
        assert_eq!(
            starts(&b, &[0, 0, 0, 0, 0, 0]),
            [0, 0, 0, 100, 200, 300],
            "first three at once, then one per interval"
        );
    }

    #[test]
    fn idle_time_refills_the_burst_but_not_beyond_it() {
        let b = RateBudget::new(600, 3).expect("valid");
        // Three at t=0 drain the burst; by t=1000 the budget is full again
        // (but holds only 3), so the fourth at 1000 waits 100 ms.
        assert_eq!(
            starts(&b, &[0, 0, 0, 1000, 1000, 1000, 1000]),
            [0, 0, 0, 1000, 1000, 1000, 1100]
        );
    }

    #[test]
    fn steady_arrivals_below_the_rate_never_wait() {
        let b = RateBudget::new(60, 1).expect("valid");
        assert_eq!(starts(&b, &[0, 1000, 2000, 2500]), [0, 1000, 2000, 3000]);
    }

    #[test]
    fn default_budget_keeps_any_minute_under_the_platform_limit() {
        let b = RateBudget::new(DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST).expect("valid");
        let all = starts(&b, &[0; 200]);
        // Closed window [0 s, 60 s]: the burst plus one start per 600 ms.
        let in_first_minute = all.iter().filter(|&&s| s <= 60_000).count();
        assert_eq!(in_first_minute, 110);
        assert!(in_first_minute < 120);
        assert_eq!(all[10], 600, "after the burst: one per 600 ms");
    }

    #[test]
    fn unlimited_never_waits_unless_held() {
        let b = RateBudget::unlimited();
        assert_eq!(starts(&b, &[0; 50]), [0; 50]);
        b.hold_for(ms(5000));
        let held = starts(&b, &[0, 0]);
        assert!(held.iter().all(|&s| (4900..=5000).contains(&s)), "{held:?}");
    }

    #[test]
    fn a_hold_delays_everyone_then_the_burst_is_available_again() {
        let b = RateBudget::new(600, 2).expect("valid");
        b.hold_for(ms(1000));
        let got = starts(&b, &[0, 0, 0]);
        // All start at the hold's end (within the few ms since hold_for ran),
        // the third one interval later.
        assert!((900..=1000).contains(&got[0]), "{got:?}");
        assert_eq!(got[1], got[0]);
        assert_eq!(got[2], got[0] + 100);
    }

    #[test]
    fn holds_only_extend_and_are_clamped() {
        let b = RateBudget::unlimited();
        b.hold_for(ms(3000));
        b.hold_for(ms(1000));
        assert!(starts(&b, &[0])[0] >= 2900);
        b.hold_for(Duration::from_secs(86_400));
        let s = starts(&b, &[0])[0];
        assert!(s <= MAX_SERVER_WAIT.as_millis() as u64, "{s}");
        assert!(s >= MAX_SERVER_WAIT.as_millis() as u64 - 100, "{s}");
    }

    #[test]
    fn zero_rate_or_burst_is_rejected() {
        for (rpm, burst, field) in [(0, 5, "rate_limit_per_minute"), (60, 0, "rate_limit_burst")] {
            match RateBudget::new(rpm, burst) {
                Err(ApiError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn server_hold_needs_zero_remaining_and_a_future_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let hold = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).expect("test header"));
            }
            server_hold(&h, now)
        };
        let reset = ("x-ratelimit-reset", "1700000007");
        assert_eq!(
            hold(&[("x-ratelimit-remaining", "0"), reset]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            hold(&[("x-ratelimit-remaining", " 0 "), reset]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(hold(&[("x-ratelimit-remaining", "1"), reset]), None);
        assert_eq!(hold(&[("x-ratelimit-remaining", "0")]), None);
        assert_eq!(hold(&[reset]), None);
        assert_eq!(hold(&[("x-ratelimit-remaining", "none"), reset]), None);
        assert_eq!(
            hold(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1699999999")
            ]),
            None
        );
        assert_eq!(
            hold(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1800000000")
            ]),
            Some(MAX_SERVER_WAIT)
        );
    }

    #[tokio::test]
    async fn acquire_sleeps_for_its_slot_and_reports_the_wait() {
        let b = RateBudget::new(1200, 1).expect("valid"); // one per 50 ms
        assert_eq!(b.acquire().await, Duration::ZERO);
        let t0 = std::time::Instant::now();
        let waited = b.acquire().await;
        let elapsed = t0.elapsed();
        assert!(waited > ms(40) && waited <= ms(50), "{waited:?}");
        assert!(elapsed >= ms(40), "{elapsed:?}");
    }
}
