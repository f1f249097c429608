//! Timestamp and date parsing: the built-in ISO 8601 / RFC 3339 reader, epoch numbers and
//! strftime patterns, with naive times placed in a fixed offset.
//!
//! Invariant: results are microseconds (or days) since 1970-01-01 UTC within years
//! 0000–9999; sub-microsecond digits are floored, never rounded up.

use chrono::NaiveTime;
use chrono::format::{Parsed, parse};

use super::parse_num::Sci;
use super::reject::RejectReason;
use crate::schema::transform::{FixedTz, RoundMode, Strftime, TimeFormat};

const US_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in µs: the range of every result.
const MIN_US: i64 = -62_167_219_200_000_000;
const MAX_US: i64 = 253_402_300_799_999_999;

/// `n` ASCII digits at `b[at..]` as a number, or `None`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0i64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

/// Days since 1970-01-01 of `YYYY-MM-DD` at the start of `b` (years 0000–9999).
fn parse_ymd(b: &[u8]) -> Result<i64, RejectReason> {
    let (Some(y), Some(m), Some(d)) = (digits(b, 0, 4), digits(b, 5, 2), digits(b, 8, 2)) else {
        return Err(RejectReason::Syntax);
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err(RejectReason::Syntax);
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(RejectReason::InvalidDateTime),
    };
    if d < 1 || d > month_days {
        return Err(RejectReason::InvalidDateTime);
    }
    Ok(days_from_civil(y, m, d))
}

/// Days since the Unix epoch of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` exactly → days since the epoch.
pub(crate) fn parse_date32(t: &str) -> Result<i32, RejectReason> {
    let b = t.as_bytes();
    if b.len() != 10 {
        return Err(RejectReason::Syntax);
    }
    let days = parse_ymd(b)?;
    i32::try_from(days).map_err(|_| RejectReason::OutOfRange)
}

/// `YYYY-MM-DD`, or `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction][Z|z|±HH:MM]`, as (µs of the wall
/// clock read as UTC, offset in seconds if the text has one). Fraction digits past the sixth
/// are dropped.
fn parse_iso_parts(t: &str) -> Result<(i64, Option<i64>), RejectReason> {
    let b = t.as_bytes();
    if b.len() < 10 {
        return Err(RejectReason::Syntax);
    }
    let days = parse_ymd(b)?;
    if b.len() == 10 {
        return Ok((days * SECS_PER_DAY * US_PER_SEC, None));
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':')
    {
        return Err(RejectReason::Syntax);
    }
    let (Some(h), Some(mi), Some(s)) = (digits(b, 11, 2), digits(b, 14, 2), digits(b, 17, 2))
    else {
        return Err(RejectReason::Syntax);
    };
    let mut i = 19;
    let mut frac_us: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                frac_us = frac_us * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(RejectReason::Syntax);
        }
        for _ in n..6 {
            frac_us *= 10;
        }
    }
    let offset = match &b[i..] {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (Some(oh), Some(om)) = (digits(b, i + 1, 2), digits(b, i + 4, 2)) else {
                return Err(RejectReason::Syntax);
            };
            if oh > 23 || om > 59 {
                return Err(RejectReason::InvalidDateTime);
            }
            let off = oh * 3600 + om * 60;
            Some(if *sign == b'-' { -off } else { off })
        }
        _ => return Err(RejectReason::Syntax),
    };
    if h > 23 || mi > 59 || s > 59 {
        return Err(RejectReason::InvalidDateTime);
    }
    let secs = days * SECS_PER_DAY + h * 3600 + mi * 60 + s;
    Ok((secs * US_PER_SEC + frac_us, offset))
}

/// Built-in ISO reader: an offset in the text wins, else the text is in `tz`.
pub(crate) fn parse_iso_us(t: &str, tz: FixedTz) -> Result<i64, RejectReason> {
    let (local, offset) = parse_iso_parts(t)?;
    in_range(local - offset.unwrap_or(i64::from(tz.0)) * US_PER_SEC)
}

fn in_range(us: i64) -> Result<i64, RejectReason> {
    if (MIN_US..=MAX_US).contains(&us) {
        Ok(us)
    } else {
        Err(RejectReason::OutOfRange)
    }
}

/// Epoch number (`[-]digits[.digits]`, exponent allowed) in units of 10^-`unit_digits` s.
fn parse_epoch_us(t: &str, unit_digits: i64) -> Result<i64, RejectReason> {
    let b = t.as_bytes();
    let (neg, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let sci = Sci::parse(neg, rest)?;
    // µs = value × 10^(6 - unit_digits); sub-µs digits are floored.
    let (neg, mag) = sci.scaled(
        6 - unit_digits,
        19,
        Some(RoundMode::Floor),
        RejectReason::Syntax,
    )?;
    let v = i64::try_from(mag).map_err(|_| RejectReason::OutOfRange)?;
    in_range(if neg { -v } else { v })
}

/// A strftime pattern: offset fields (`%z`, `%:z`) or `%s` win, else the text is in `tz`.
/// Patterns without time fields give midnight.
fn parse_pattern_us(t: &str, p: &Strftime, tz: FixedTz) -> Result<i64, RejectReason> {
    let mut parsed = Parsed::new();
    parse(&mut parsed, t, p.items().iter()).map_err(|_| RejectReason::Syntax)?;
    if parsed.timestamp().is_some() {
        let dt = parsed
            .to_datetime_with_timezone(&chrono::Utc)
            .map_err(|_| RejectReason::InvalidDateTime)?;
        return in_range(dt.timestamp_micros());
    }
    let date = parsed
        .to_naive_date()
        .map_err(|_| RejectReason::InvalidDateTime)?;
    let time = if parsed.hour_div_12().is_none() && parsed.hour_mod_12().is_none() {
        NaiveTime::MIN
    } else {
        parsed
            .to_naive_time()
            .map_err(|_| RejectReason::InvalidDateTime)?
    };
    let local = date.and_time(time).and_utc().timestamp_micros();
    let offset = parsed.offset().unwrap_or(tz.0);
    in_range(local - i64::from(offset) * US_PER_SEC)
}

/// Keeps the first failure reason, upgraded to the first one that is not `Syntax`: "no such
/// date" from a format whose shape matched says more than "malformed" from one that did not.
fn note(slot: &mut Option<RejectReason>, e: RejectReason) {
    match slot {
        None => *slot = Some(e),
        Some(RejectReason::Syntax) if e != RejectReason::Syntax => *slot = Some(e),
        Some(_) => {}
    }
}

/// Tries each of `formats` in order (empty = ISO only); the first success wins, else the
/// most telling failure reason (see [`note`]).
pub(super) fn parse_timestamp(
    t: &str,
    formats: &[TimeFormat],
    tz: FixedTz,
) -> Result<i64, RejectReason> {
    if formats.is_empty() {
        return parse_iso_us(t, tz);
    }
    let mut first_err = None;
    for f in formats {
        let r = match f {
            TimeFormat::Iso8601 => parse_iso_us(t, tz),
            TimeFormat::EpochSeconds => parse_epoch_us(t, 0),
            TimeFormat::EpochMillis => parse_epoch_us(t, 3),
            TimeFormat::EpochMicros => parse_epoch_us(t, 6),
            TimeFormat::Pattern(p) => parse_pattern_us(t, p, tz),
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) => note(&mut first_err, e),
        }
    }
    Err(first_err.unwrap_or(RejectReason::Syntax))
}

/// Date columns: `YYYY-MM-DD` (iso8601) or strftime patterns with date fields.
pub(super) fn parse_date(t: &str, formats: &[TimeFormat]) -> Result<i32, RejectReason> {
    if formats.is_empty() {
        return parse_date32(t);
    }
    let mut first_err = None;
    for f in formats {
        let r = match f {
            TimeFormat::Pattern(p) => {
                let mut parsed = Parsed::new();
                parse(&mut parsed, t, p.items().iter())
                    .map_err(|_| RejectReason::Syntax)
                    .and_then(|()| {
                        parsed
                            .to_naive_date()
                            .map_err(|_| RejectReason::InvalidDateTime)
                    })
                    .and_then(|d| {
                        let days = d.signed_duration_since(chrono::NaiveDate::default());
                        i32::try_from(days.num_days()).map_err(|_| RejectReason::OutOfRange)
                    })
            }
            // Validation only lets iso8601 and patterns through for dates.
            _ => parse_date32(t),
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) => note(&mut first_err, e),
        }
    }
    Err(first_err.unwrap_or(RejectReason::Syntax))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RejectReason::*;

    const UTC: FixedTz = FixedTz(0);

    #[test]
    fn iso_timestamps_normalise_to_utc_microseconds() {
        let ok: &[(&str, i64)] = &[
            // 12:00 at +05:30 is 06:30 UTC; the 7th-9th fraction digits are dropped.
            ("2024-03-10T12:00:00.123456789+05:30", 1_710_052_200_123_456),
            ("2024-03-10T12:00:00Z", 1_710_072_000_000_000),
            ("2024-03-10t12:00:00z", 1_710_072_000_000_000),
            ("2024-03-10T12:00:00-00:00", 1_710_072_000_000_000),
            ("2024-03-10T12:00:00-08:00", 1_710_100_800_000_000),
            ("2024-03-10 12:00:00", 1_710_072_000_000_000),
            ("2024-03-10 12:00:00.5", 1_710_072_000_500_000),
            ("2024-03-10", 1_710_028_800_000_000),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.9999999Z", -1),
            ("9999-12-31T23:59:59.999999Z", MAX_US),
            ("0001-01-01T00:00:00Z", -62_135_596_800_000_000),
            ("0000-01-01T00:00:00Z", MIN_US),
        ];
        for &(text, want) in ok {
            assert_eq!(parse_iso_us(text, UTC), Ok(want), "{text}");
        }
        let bad: &[(&str, RejectReason)] = &[
            ("2023-02-29", InvalidDateTime),
            ("2024-13-01", InvalidDateTime),
            ("2024-04-31T00:00:00Z", InvalidDateTime),
            ("2024-01-01T24:00:00Z", InvalidDateTime),
            ("2024-01-01T12:00:60Z", InvalidDateTime),
            ("2024-01-01T12:00:00+24:00", InvalidDateTime),
            ("2024-01-01T12:00Z", Syntax),
            ("2024-01-01T12:00:00+0530", Syntax),
            ("2024-01-01T12:00:00 Z", Syntax),
            ("01/02/2024", Syntax),
            ("1710072000", Syntax),
            ("+2024-01-01", Syntax),
            // Past 9999-12-31 once the offset is applied.
            ("9999-12-31T23:00:00-02:00", OutOfRange),
            ("0000-01-01T00:00:00+01:00", OutOfRange),
        ];
        for &(text, want) in bad {
            assert_eq!(parse_iso_us(text, UTC), Err(want), "{text}");
        }
    }

    #[test]
    fn naive_times_use_the_column_offset_and_explicit_offsets_win() {
        let berlin_winter = FixedTz(3600);
        assert_eq!(
            parse_iso_us("2024-03-10 12:00:00", berlin_winter),
            Ok(1_710_068_400_000_000)
        );
        assert_eq!(
            parse_iso_us("2024-03-10", berlin_winter),
            Ok(1_710_025_200_000_000)
        );
        assert_eq!(
            parse_iso_us("2024-03-10T12:00:00Z", berlin_winter),
            Ok(1_710_072_000_000_000)
        );
    }

    #[test]
    fn epochs_in_each_unit() {
        let f = |name: &str| vec![name.parse::<TimeFormat>().unwrap()];
        let s = f("epoch_seconds");
        assert_eq!(
            parse_timestamp("1710072000", &s, UTC),
            Ok(1_710_072_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1710072000.25", &s, UTC),
            Ok(1_710_072_000_250_000)
        );
        assert_eq!(parse_timestamp("-1.0000001", &s, UTC), Ok(-1_000_001));
        assert_eq!(parse_timestamp("0.0000009", &s, UTC), Ok(0));
        assert_eq!(parse_timestamp("1e20", &s, UTC), Err(OutOfRange));
        assert_eq!(parse_timestamp("253402300800", &s, UTC), Err(OutOfRange));
        let ms = f("epoch_millis");
        assert_eq!(
            parse_timestamp("1710072000123", &ms, UTC),
            Ok(1_710_072_000_123_000)
        );
        let us = f("epoch_micros");
        assert_eq!(
            parse_timestamp("1710072000123456", &us, UTC),
            Ok(1_710_072_000_123_456)
        );
        assert_eq!(parse_timestamp("2024-03-10", &us, UTC), Err(Syntax));
    }

    #[test]
    fn patterns_and_fallback_order() {
        let formats: Vec<TimeFormat> = [
            "iso8601",
            "%d/%m/%Y %H:%M",
            "%d.%m.%Y",
            "%Y-%m-%dT%H:%M:%S%z",
            "epoch_millis",
        ]
        .iter()
        .map(|f| f.parse().unwrap())
        .collect();
        let tz = FixedTz(7200);
        let cases: &[(&str, i64)] = &[
            ("2024-03-10T12:00:00Z", 1_710_072_000_000_000),
            // 12:00 at +02:00 (the column zone) is 10:00 UTC.
            ("10/03/2024 12:00", 1_710_064_800_000_000),
            ("10.03.2024", 1_710_021_600_000_000),
            ("2024-03-10T12:00:00+0100", 1_710_068_400_000_000),
            ("1710072000000", 1_710_072_000_000_000),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_timestamp(text, &formats, tz), Ok(want), "{text}");
        }
        assert_eq!(
            parse_timestamp("31/02/2024 12:00", &formats, tz),
            Err(InvalidDateTime)
        );
        assert_eq!(parse_timestamp("soon", &formats, tz), Err(Syntax));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date32("1970-01-01"), Ok(0));
        assert_eq!(parse_date32("2024-03-10"), Ok(19_792));
        assert_eq!(parse_date32("0000-01-01"), Ok(-719_528));
        assert_eq!(parse_date32("2100-02-29"), Err(InvalidDateTime));
        assert_eq!(parse_date32("2024-03-10T00:00:00Z"), Err(Syntax));
        let formats: Vec<TimeFormat> =
            vec!["%d/%m/%Y".parse().unwrap(), "iso8601".parse().unwrap()];
        assert_eq!(parse_date("10/03/2024", &formats), Ok(19_792));
        assert_eq!(parse_date("2024-03-10", &formats), Ok(19_792));
        assert_eq!(parse_date("1/1/1970", &formats), Ok(0));
        assert_eq!(parse_date("30/02/2024", &formats), Err(InvalidDateTime));
    }

    /// Agrees with chrono's RFC 3339 parser on generated valid instants.
    #[test]
    fn iso_agrees_with_chrono() {
        let mut x: u64 = 0x5eed;
        let mut below = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..3000 {
            let (y, mo, d) = (1 + below(9998), 1 + below(12), 1 + below(28));
            let (h, mi, s) = (below(24), below(60), below(60));
            let frac = match below(3) {
                0 => String::new(),
                1 => format!(".{:03}", below(1000)),
                _ => format!(".{:09}", below(1_000_000_000)),
            };
            let zone = match below(3) {
                0 => "Z".to_owned(),
                1 => format!("+{:02}:{:02}", below(24), below(60)),
                _ => format!("-{:02}:{:02}", below(24), below(60)),
            };
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}");
            let want = chrono::DateTime::parse_from_rfc3339(&text)
                .unwrap()
                .timestamp_micros();
            assert_eq!(parse_iso_us(&text, UTC), Ok(want), "{text}");
        }
    }
}
