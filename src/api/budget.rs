//! `RateBudget`: the client-side request budget (GCRA) shared by every clone
//! of a `TitanClient`, plus the hold the server asks for when its own budget
//! is spent. Invariant: over any window of `w` seconds at most
//! `burst + rpm·w/60` requests start, and none starts before a hold ends. A
//! server-driven budget takes `rpm` from the server's `X-RateLimit-Limit` (less a
//! margin) and slows down when `X-RateLimit-Remaining` runs into that margin.

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
/// Share of an advertised limit a server-driven budget leaves unused, for other
/// clients of the same user and for clock skew between our pace and the server's window.
const SERVER_MARGIN_PERCENT: u64 = 10;
/// When `X-RateLimit-Remaining` falls to this share of the limit, a server-driven budget
/// spends what is left slowly (or holds until `X-RateLimit-Reset` when it is sent).
const LOW_REMAINING_PERCENT: u64 = 5;

/// Paces request starts for the whole process (it lives inside the client's
/// `Arc`): a request may start when the budget has a slot, and only after any
/// server hold (`X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`) ends.
/// Slots are handed out in call order, so waiters are served first come, first
/// served; a caller that gives up while waiting forfeits its slot.
#[derive(Debug)]
pub struct RateBudget {
    burst: u32,
    /// Pace by the server's `X-RateLimit-*` answers once it sends them.
    follow_server: bool,
    state: Mutex<State>,
}

/// GCRA parameters: one slot per `interval`, and up to `tolerance / interval`
/// extra slots banked while idle (the burst).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pace {
    interval: Duration,
    tolerance: Duration,
}

impl Pace {
    fn new(requests_per_minute: u32, burst: u32) -> Pace {
        let interval = Duration::from_secs(60) / requests_per_minute.max(1);
        Pace {
            interval,
            tolerance: interval.saturating_mul(burst.clamp(1, requests_per_minute.max(1)) - 1),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// `None`: no client-side pacing.
    pace: Option<Pace>,
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
        Ok(RateBudget {
            burst,
            follow_server: false,
            state: Mutex::new(State {
                pace: Some(Pace::new(requests_per_minute, burst)),
                ..State::default()
            }),
        })
    }

    /// Starts at `fallback_per_minute` and follows the server once it advertises its
    /// limit: `X-RateLimit-Limit` less 10 %, and when `X-RateLimit-Remaining` is down to
    /// 5 % of the limit, a hold until `X-RateLimit-Reset` (if sent) or a pace that
    /// spends the remainder over a minute. A server that says nothing keeps the fallback.
    pub fn server_driven(fallback_per_minute: u32, burst: u32) -> Result<Self, ApiError> {
        Ok(RateBudget {
            follow_server: true,
            ..Self::new(fallback_per_minute, burst)?
        })
    }

    /// No client-side pacing. Server holds still apply: ignoring a server that
    /// says "0 remaining" only earns a 429 and the same wait.
    pub fn unlimited() -> Self {
        RateBudget {
            burst: DEFAULT_BURST,
            follow_server: false,
            state: Mutex::default(),
        }
    }

    /// Waits for this request's slot; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let start = self.lock().reserve(now);
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
    /// with a future `X-RateLimit-Reset`, holds new requests until the reset; a
    /// server-driven budget also takes its pace from the headers (see
    /// [`RateBudget::server_driven`]). Returns the hold, if one was set.
    pub(crate) fn observe(&self, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        let mut hold = server_hold(headers, now);
        if self.follow_server
            && let Some(limit) = header_u64(headers, "x-ratelimit-limit").filter(|l| *l > 0)
        {
            let margin = (limit * SERVER_MARGIN_PERCENT / 100).max(1);
            let mut rpm = limit.saturating_sub(margin).max(1);
            if let Some(remaining) = header_u64(headers, "x-ratelimit-remaining")
                && remaining <= limit * LOW_REMAINING_PERCENT / 100
            {
                match ratelimit_reset(headers, now) {
                    Some(reset) => hold = hold.max(Some(reset.min(MAX_SERVER_WAIT))),
                    None => rpm = rpm.min(remaining.max(1)),
                }
            }
            let rpm = u32::try_from(rpm).unwrap_or(u32::MAX);
            self.lock().pace = Some(Pace::new(rpm, self.burst));
        }
        let hold = hold?;
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
    fn reserve(&mut self, now: Instant) -> Instant {
        let earliest = match self.hold_until {
            Some(hold) if hold > now => hold,
            _ => now,
        };
        let Some(pace) = self.pace else {
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

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
}

/// How long the server asks us to hold: only when `X-RateLimit-Remaining` is 0
/// and `X-RateLimit-Reset` is in the future; clamped to `MAX_SERVER_WAIT`.
fn server_hold(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let remaining = header_u64(headers, "x-ratelimit-remaining")?;
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
            .map(|&a| (state.reserve(t0 + ms(a)) - t0).as_millis() as u64)
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
        let hold = |pairs: &[(&'static str, &str)]| server_hold(&headers(pairs), now);
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("test header"));
        }
        h
    }

    /// Issue 13.3: with no budget set by the user, the server's advertised limit
    /// (less 10 %) sets the pace; a user-set budget ignores it; a server that says
    /// nothing leaves the fallback in place.
    #[test]
    fn a_server_driven_budget_paces_by_the_advertised_limit() {
        let now = SystemTime::now();
        let advertised = headers(&[
            ("x-ratelimit-limit", "600"),
            ("x-ratelimit-remaining", "599"),
        ]);
        // 600/min advertised → 540/min: one per 111 ms after the burst of 10.
        let b =
            RateBudget::server_driven(DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST).expect("valid");
        assert_eq!(b.observe(&advertised, now), None);
        let got = starts(&b, &[0; 13]);
        assert_eq!(got[..10], [0; 10]);
        assert_eq!(got[10..], [111, 222, 333]);
        // The user's own budget stays as set.
        let fixed = RateBudget::new(DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST).expect("valid");
        fixed.observe(&advertised, now);
        assert_eq!(starts(&fixed, &[0; 12])[10..], [600, 1200]);
        // Silence: the fallback (100/min).
        let quiet =
            RateBudget::server_driven(DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST).expect("valid");
        quiet.observe(&headers(&[("x-ratelimit-remaining", "5")]), now);
        assert_eq!(starts(&quiet, &[0; 12])[10..], [600, 1200]);
        // A small advertised limit is followed down too, burst included.
        let small =
            RateBudget::server_driven(DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST).expect("valid");
        small.observe(
            &headers(&[("x-ratelimit-limit", "4"), ("x-ratelimit-remaining", "4")]),
            now,
        );
        assert_eq!(starts(&small, &[0; 4]), [0, 0, 0, 20_000]);
    }

    #[test]
    fn a_server_driven_budget_saves_the_margin_when_little_remains() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // 20 of 600 left, no reset sent: spread the 20 over a minute.
        let b =
            RateBudget::server_driven(DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST).expect("valid");
        b.observe(
            &headers(&[
                ("x-ratelimit-limit", "600"),
                ("x-ratelimit-remaining", "20"),
            ]),
            now,
        );
        assert_eq!(starts(&b, &[0; 12])[10..], [3000, 6000]);
        // With a reset: hold until it.
        let b =
            RateBudget::server_driven(DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST).expect("valid");
        let hold = b.observe(
            &headers(&[
                ("x-ratelimit-limit", "600"),
                ("x-ratelimit-remaining", "20"),
                ("x-ratelimit-reset", "1700000004"),
            ]),
            now,
        );
        assert_eq!(hold, Some(Duration::from_secs(4)));
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
