//! Retry policy as data (`RetryPolicy`, documented defaults) and the decision
//! as code (`next_delay`, server wait hints). Invariant: only errors whose
//! `is_retryable()` is true are retried, and never past `max_attempts` or
//! `max_elapsed`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use super::ApiError;

/// Longest wait we accept from a server hint (`X-RateLimit-Reset`,
/// `Retry-After`). Titan's limits are per minute, so a legitimate hint is
/// under 60 s; anything larger is clamped (clock skew, garbage).
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(120);

/// How GETs are retried. Defaults: 6 attempts, 500 ms doubling to a 30 s cap,
/// 20 % jitter, 5 min overall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryPolicy {
    /// Total tries including the first (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Cap on any single backoff delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Growth factor per retry (≥ 1).
    pub multiplier: f64,
    /// Fraction of each delay that is random, in `[0, 1]`: the delay is drawn
    /// uniformly from `[d·(1−jitter), d]`. 1.0 is "full jitter", 0.5 is
    /// "equal jitter"; the default 0.2 keeps delays within 20 % below nominal.
    /// Jitter only shortens, so the cap always holds.
    pub jitter: f64,
    /// No retry is started if its wait would end later than this after the
    /// first attempt began.
    #[serde(with = "humantime_serde")]
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
            max_elapsed: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Delay after the `attempt`-th failed attempt (1-based; 0 is treated as 1):
    /// `initial · multiplier^(attempt−1)`, capped at `max_backoff`, then jittered.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let cap = self.max_backoff.as_secs_f64();
        let nominal = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let nominal = if nominal.is_finite() {
            nominal.min(cap)
        } else {
            cap
        };
        jittered(nominal, self.jitter, rng)
    }

    /// Rejects policies that cannot work (zero attempts, shrinking or
    /// non-finite multiplier, jitter outside `[0, 1]`).
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |reason: &str| {
            Err(ApiError::InvalidConfig {
                field: "retry",
                reason: reason.into(),
            })
        };
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return bad("multiplier must be a finite number ≥ 1");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return bad("jitter must be within [0, 1]");
        }
        Ok(())
    }
}

/// `secs` reduced by a uniform random fraction of up to `jitter` (clamped to `[0, 1]`).
pub(crate) fn jittered(secs: f64, jitter: f64, rng: &mut impl Rng) -> Duration {
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let u: f64 = rng.random();
    let secs = secs * (1.0 - jitter * u);
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::ZERO)
}

/// The retry decision: how long to wait before the next attempt, or `None`
/// to give up. `attempts` is how many were made so far, `elapsed` the time
/// since the first began. A 429 uses the server's hint when it gave one.
pub(crate) fn next_delay(
    policy: &RetryPolicy,
    err: &ApiError,
    attempts: u32,
    elapsed: Duration,
    rng: &mut impl Rng,
) -> Option<Duration> {
    if !err.is_retryable() || attempts >= policy.max_attempts {
        return None;
    }
    let delay = match err {
        ApiError::RateLimited {
            retry_after: Some(hint),
            ..
        } => (*hint).min(MAX_SERVER_WAIT),
        _ => policy.backoff(attempts, rng),
    };
    if elapsed.saturating_add(delay) > policy.max_elapsed {
        return None;
    }
    Some(delay)
}

/// The server's wait hint on a 429: `Retry-After` (seconds or HTTP date) or
/// `X-RateLimit-Reset` (Unix seconds); the later one if both. Hints in the
/// past are ignored; hints are clamped to `MAX_SERVER_WAIT`.
pub(crate) fn server_wait_hint(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, now));
    retry_after
        .max(ratelimit_reset(headers, now))
        .map(|d| d.min(MAX_SERVER_WAIT))
}

/// Time until `X-RateLimit-Reset` (Unix seconds), if present and in the future;
/// not clamped.
pub(crate) fn ratelimit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let at = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    until(UNIX_EPOCH.checked_add(Duration::from_secs(at))?, now)
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs)).filter(|d| !d.is_zero());
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(at.timestamp()).ok()?))?;
    until(at, now)
}

fn until(at: SystemTime, now: SystemTime) -> Option<Duration> {
    at.duration_since(now).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;
    use reqwest::header::HeaderValue;

    /// An RNG that always returns the same word: `u64::MAX` draws ~1.0, `0` draws 0.0.
    struct Fixed(u64);
    impl RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            self.0 as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            dst.fill(self.0 as u8);
        }
    }
    const NO_JITTER: u64 = 0;
    const MAX_JITTER: u64 = u64::MAX;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 6);
        assert_eq!(p.initial_backoff, Duration::from_millis(500));
        assert_eq!(p.max_backoff, Duration::from_secs(30));
        assert_eq!(p.multiplier, 2.0);
        assert_eq!(p.jitter, 0.2);
        assert_eq!(p.max_elapsed, Duration::from_secs(300));
        p.validate().expect("defaults are valid");
    }

    #[test]
    fn backoff_grows_then_caps() {
        let p = RetryPolicy::default();
        // (attempt, nominal ms)
        let table = [
            (0, 500),
            (1, 500),
            (2, 1000),
            (3, 2000),
            (4, 4000),
            (6, 16000),
            (7, 30000),
            (50, 30000),
            (u32::MAX, 30000),
        ];
        for (attempt, nominal) in table {
            assert_eq!(
                ms(p.backoff(attempt, &mut Fixed(NO_JITTER))),
                nominal,
                "attempt {attempt}"
            );
            // Maximum jitter takes at most 20 % off, never adds.
            let low = ms(p.backoff(attempt, &mut Fixed(MAX_JITTER)));
            assert_eq!(low, nominal * 8 / 10, "attempt {attempt}");
        }
    }

    #[test]
    fn jitter_stays_within_bounds_for_random_draws() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        let mut rng = rand::rng();
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = p.backoff(3, &mut rng);
            assert!(
                d >= Duration::from_millis(1000) && d <= Duration::from_millis(2000),
                "{d:?}"
            );
            distinct.insert(d);
        }
        assert!(distinct.len() > 10, "jitter must actually vary the delay");
    }

    #[test]
    fn invalid_policies_are_rejected() {
        let base = RetryPolicy::default();
        for bad in [
            RetryPolicy {
                max_attempts: 0,
                ..base.clone()
            },
            RetryPolicy {
                multiplier: 0.5,
                ..base.clone()
            },
            RetryPolicy {
                multiplier: f64::NAN,
                ..base.clone()
            },
            RetryPolicy {
                jitter: 1.5,
                ..base.clone()
            },
            RetryPolicy {
                jitter: -0.1,
                ..base.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decision_table() {
        let p = RetryPolicy::default();
        let err = |status, hint| ApiError::from_answer("/r", status, None, None, hint);
        let transport = ApiError::Transport {
            route: "/r".into(),
            attempts: 1,
            timed_out: true,
            source: None,
        };
        let zero = Duration::ZERO;
        let secs = Duration::from_secs;
        // (error, attempts so far, elapsed, expected delay)
        let table: Vec<(ApiError, u32, Duration, Option<Duration>)> = vec![
            (err(500, None), 1, zero, Some(Duration::from_millis(500))),
            (err(503, None), 3, zero, Some(secs(2))),
            (err(502, None), 6, zero, None), // attempts exhausted
            (err(500, None), 2, secs(299), Some(secs(1))), // ends exactly at max_elapsed
            (err(500, None), 2, Duration::from_millis(299_500), None), // would pass it
            (transport, 1, zero, Some(Duration::from_millis(500))),
            (err(429, None), 1, zero, Some(Duration::from_millis(500))),
            (err(429, Some(secs(7))), 1, zero, Some(secs(7))),
            (err(429, Some(secs(7))), 1, secs(295), None),
            (err(429, Some(secs(3600))), 1, zero, Some(MAX_SERVER_WAIT)),
            (err(400, None), 1, zero, None),
            (err(401, None), 1, zero, None),
            (err(403, None), 1, zero, None),
            (err(404, None), 1, zero, None),
            (err(501, None), 1, zero, None),
        ];
        for (e, attempts, elapsed, want) in table {
            let got = next_delay(&p, &e, attempts, elapsed, &mut Fixed(NO_JITTER));
            assert_eq!(got, want, "{e} attempts={attempts} elapsed={elapsed:?}");
        }
    }

    #[test]
    fn server_hints() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let hint = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).expect("test header"));
            }
            server_wait_hint(&h, now)
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(hint(&[]), None);
        assert_eq!(hint(&[("retry-after", "5")]), secs(5));
        assert_eq!(hint(&[("retry-after", "0")]), None);
        assert_eq!(hint(&[("retry-after", "soon")]), None);
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            hint(&[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")]),
            secs(10)
        );
        assert_eq!(
            hint(&[("retry-after", "Tue, 14 Nov 2023 22:13:00 GMT")]),
            None
        );
        assert_eq!(hint(&[("x-ratelimit-reset", "1700000012")]), secs(12));
        assert_eq!(hint(&[("x-ratelimit-reset", "1699999990")]), None);
        assert_eq!(
            hint(&[("x-ratelimit-reset", "1700009999")]),
            Some(MAX_SERVER_WAIT)
        );
        assert_eq!(
            hint(&[("x-ratelimit-reset", "1700000012"), ("retry-after", "3")]),
            secs(12)
        );
        assert_eq!(
            hint(&[("x-ratelimit-reset", "1700000002"), ("retry-after", "3")]),
            secs(3)
        );
    }

    #[test]
    fn policy_reads_humantime_config() {
        let p: RetryPolicy = serde_json::from_str(
            r#"{"max-attempts": 3, "initial-backoff": "250ms", "max-elapsed": "1m"}"#,
        )
        .expect("valid policy");
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.initial_backoff, Duration::from_millis(250));
        assert_eq!(p.max_elapsed, Duration::from_secs(60));
        assert_eq!(p.max_backoff, Duration::from_secs(30));
    }
}
