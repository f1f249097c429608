//! Exact number parsing: integers and decimals from their digits (never through `f64`),
//! floats by `f64::from_str`, and the normaliser for separators and currency markers.
//!
//! Invariant: a value is either represented exactly, rounded by an explicit [`RoundMode`],
//! or rejected with a reason — never silently rounded.

use super::reject::RejectReason;
use crate::schema::transform::{CURRENCY_MARKERS, Currency, RoundMode, Transform};

/// `f64::from_str` syntax (sign, `.5`, `5.`, exponent); non-finite results are rejected.
pub(crate) fn parse_f64(t: &str) -> Result<f64, RejectReason> {
    let v: f64 = t.parse().map_err(|_| RejectReason::Syntax)?;
    if v.is_finite() {
        Ok(v)
    } else if v.is_infinite() && t.bytes().any(|b| b.is_ascii_digit()) {
        // Digits that parse to infinity: a finite number too large for f64 (`1e400`).
        Err(RejectReason::OutOfRange)
    } else {
        Err(RejectReason::NotFinite)
    }
}

/// Exact i64: `[+-]digits[.digits][(e|E)[+-]digits]` whose value is an integer in range
/// (or is rounded to one by `round`). Never goes through f64.
pub(crate) fn parse_i64(t: &str, round: Option<RoundMode>) -> Result<i64, RejectReason> {
    let b = t.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    // Fast path: up to 18 plain digits cannot overflow.
    if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let mut v: i64 = 0;
        for d in digits {
            v = v * 10 + i64::from(d - b'0');
        }
        return Ok(if neg { -v } else { v });
    }
    let sci = Sci::parse(neg, digits)?;
    let (neg, mag) = sci.scaled(0, 19, round, RejectReason::NotIntegral)?;
    let signed = if neg {
        -i128::from(mag as u64)
    } else {
        i128::from(mag as u64)
    };
    i64::try_from(signed).map_err(|_| RejectReason::OutOfRange)
}

/// Exact i32 (see [`parse_i64`]).
pub(super) fn parse_i32(t: &str, round: Option<RoundMode>) -> Result<i32, RejectReason> {
    i32::try_from(parse_i64(t, round)?).map_err(|_| RejectReason::OutOfRange)
}

/// `t` as the unscaled value of a `decimal(precision, scale)`: `12.3` at scale 2 is 1230.
/// More fractional digits than `scale` are rejected unless `round` is given.
pub(super) fn parse_decimal(
    t: &str,
    precision: u8,
    scale: u8,
    round: Option<RoundMode>,
) -> Result<i128, RejectReason> {
    let b = t.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let sci = Sci::parse(neg, digits)?;
    let (neg, mag) = sci.scaled(
        i64::from(scale),
        usize::from(precision),
        round,
        RejectReason::Scale,
    )?;
    let v = mag as i128;
    Ok(if neg { -v } else { v })
}

/// A number as `±digits × 10^exp` (`int` and `frac` are the digit runs around the point).
pub(super) struct Sci<'a> {
    neg: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i64,
}

impl<'a> Sci<'a> {
    /// `digits[.digits][(e|E)[+-]digits]` (at least one digit before the exponent).
    pub(super) fn parse(neg: bool, s: &'a [u8]) -> Result<Self, RejectReason> {
        let take_digits = |from: usize| {
            let len = s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
            (&s[from..from + len], from + len)
        };
        let (int, mut i) = take_digits(0);
        let mut frac: &[u8] = &[];
        if s.get(i) == Some(&b'.') {
            (frac, i) = take_digits(i + 1);
        }
        if int.is_empty() && frac.is_empty() {
            return Err(RejectReason::Syntax);
        }
        // Exponent, clamped: beyond ±10^6 every result is out of range or rounds to zero.
        let mut exp: i64 = 0;
        if matches!(s.get(i), Some(b'e' | b'E')) {
            let exp_neg = s.get(i + 1) == Some(&b'-');
            let start = i + 1 + usize::from(matches!(s.get(i + 1), Some(b'+' | b'-')));
            let (exp_digits, end) = take_digits(start);
            if exp_digits.is_empty() {
                return Err(RejectReason::Syntax);
            }
            for d in exp_digits {
                exp = (exp * 10 + i64::from(d - b'0')).min(1_000_000);
            }
            if exp_neg {
                exp = -exp;
            }
            i = end;
        }
        if i != s.len() {
            return Err(RejectReason::Syntax);
        }
        Ok(Sci {
            neg,
            int,
            frac,
            exp,
        })
    }

    /// `|value| × 10^scale` as an integer of at most `max_digits` digits (≤ 38), rounded by
    /// `round` when digits are dropped (else `inexact` is the error). Returns (negative, magnitude).
    pub(super) fn scaled(
        &self,
        scale: i64,
        max_digits: usize,
        round: Option<RoundMode>,
        inexact: RejectReason,
    ) -> Result<(bool, u128), RejectReason> {
        // Significant digits: int ++ frac without leading zeros.
        let all = self.int.iter().chain(self.frac).copied();
        let lead = all.clone().take_while(|&d| d == b'0').count();
        let total = self.int.len() + self.frac.len();
        let sig_len = total - lead;
        let digit = |k: usize| -> u8 {
            // k-th significant digit (0-based).
            let p = lead + k;
            if p < self.int.len() {
                self.int[p] - b'0'
            } else {
                self.frac[p - self.int.len()] - b'0'
            }
        };
        if sig_len == 0 {
            return Ok((false, 0));
        }
        // value × 10^scale = sig × 10^shift
        let shift = self.exp - self.frac.len() as i64 + scale;
        let keep = if shift >= 0 {
            sig_len
        } else {
            (sig_len as i64 + shift).max(0) as usize
        };
        let mut mag: u128 = 0;
        let mut kept_digits = 0usize;
        for k in 0..keep {
            let d = digit(k);
            if kept_digits > 0 || d != 0 {
                kept_digits += 1;
            }
            if kept_digits > max_digits {
                return Err(RejectReason::OutOfRange);
            }
            mag = mag * 10 + u128::from(d);
        }
        if shift > 0 {
            for _ in 0..shift {
                if mag != 0 {
                    kept_digits += 1;
                }
                if kept_digits > max_digits {
                    return Err(RejectReason::OutOfRange);
                }
                mag *= 10;
            }
        } else if keep < sig_len {
            // Dropped digits: digit(keep) is the first, the rest only matter if non-zero.
            let first = digit(keep);
            let rest_nonzero = (keep + 1..sig_len).any(|k| digit(k) != 0);
            if first == 0 && !rest_nonzero {
                // Exactly representable: only zeros dropped.
            } else {
                let Some(mode) = round else {
                    return Err(inexact);
                };
                let up = match mode {
                    RoundMode::Truncate => false,
                    RoundMode::Floor => self.neg,
                    RoundMode::Ceiling => !self.neg,
                    RoundMode::HalfUp => first >= 5,
                    RoundMode::HalfEven => {
                        first > 5 || (first == 5 && (rest_nonzero || mag % 2 == 1))
                    }
                };
                if up {
                    mag += 1;
                    if mag >= pow10(max_digits) {
                        return Err(RejectReason::OutOfRange);
                    }
                }
            }
        }
        Ok((self.neg && mag != 0, mag))
    }
}

fn pow10(n: usize) -> u128 {
    10u128.pow(n.min(38) as u32)
}

/// Number-format options of a column, resolved once.
#[derive(Debug, Clone)]
pub(super) struct NumFmt {
    decimal: char,
    group: Option<char>,
    currency: Option<Currency>,
}

impl NumFmt {
    pub(super) fn new(t: &Transform) -> Self {
        NumFmt {
            decimal: t.decimal_separator.unwrap_or('.'),
            group: t.thousands_separator,
            currency: t.currency.clone(),
        }
    }

    /// Rewrites `t` into plain `[-]digits[.digits][e[-]digits]` in `out`: currency marker
    /// removed, group separators checked (groups of three) and dropped, decimal separator
    /// made `.`. Anything else is a syntax reject.
    pub(super) fn normalize(&self, t: &str, out: &mut String) -> Result<(), RejectReason> {
        out.clear();
        let mut s = t;
        let mut neg = false;
        let mut sign_seen = false;
        let take_sign = |s: &mut &str, neg: &mut bool, seen: &mut bool| {
            if !*seen && let Some(c @ ('-' | '+' | '\u{2212}')) = s.chars().next() {
                *neg = c != '+';
                *seen = true;
                *s = s[c.len_utf8()..].trim_start();
            }
        };
        take_sign(&mut s, &mut neg, &mut sign_seen);
        if let Some(cur) = &self.currency {
            if let Some(rest) = strip_marker(s, cur, true) {
                s = rest.trim_start();
                take_sign(&mut s, &mut neg, &mut sign_seen);
            } else if let Some(rest) = strip_marker(s, cur, false) {
                s = rest.trim_end();
            }
        }
        if neg {
            out.push('-');
        }
        let mut chars = s.char_indices().peekable();
        // Integer part with optional grouping.
        let mut group_len = 0usize;
        let mut groups = 0usize;
        let mut int_digits = 0usize;
        while let Some(&(_, c)) = chars.peek() {
            if c.is_ascii_digit() {
                out.push(c);
                group_len += 1;
                int_digits += 1;
            } else if self.is_group(c) {
                let ok = if groups == 0 {
                    (1..=3).contains(&group_len)
                } else {
                    group_len == 3
                };
                if !ok {
                    return Err(RejectReason::Syntax);
                }
                groups += 1;
                group_len = 0;
            } else {
                break;
            }
            chars.next();
        }
        if groups > 0 && group_len != 3 {
            return Err(RejectReason::Syntax);
        }
        let mut frac_digits = 0usize;
        if let Some(&(_, c)) = chars.peek()
            && c == self.decimal
        {
            chars.next();
            out.push('.');
            while let Some(&(_, c)) = chars.peek() {
                if !c.is_ascii_digit() {
                    break;
                }
                out.push(c);
                frac_digits += 1;
                chars.next();
            }
        }
        if int_digits + frac_digits == 0 {
            return Err(RejectReason::Syntax);
        }
        match chars.peek() {
            None => Ok(()),
            Some(&(i, 'e' | 'E')) => {
                let exp = &s[i + 1..];
                let body = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if groups > 0 || body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(RejectReason::Syntax);
                }
                out.push('e');
                out.push_str(exp);
                Ok(())
            }
            Some(_) => Err(RejectReason::Syntax),
        }
    }

    fn is_group(&self, c: char) -> bool {
        match self.group {
            Some(' ') => matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}'),
            Some(g) => c == g,
            None => false,
        }
    }
}

/// `s` without a leading (`prefix`) or trailing currency marker, if it has one.
fn strip_marker<'s>(s: &'s str, cur: &Currency, prefix: bool) -> Option<&'s str> {
    let strip = |m: &str| {
        if prefix {
            s.strip_prefix(m)
        } else {
            s.strip_suffix(m)
        }
    };
    match cur {
        Currency::Only(list) => list.iter().find_map(|m| strip(m)),
        Currency::Any => CURRENCY_MARKERS.iter().find_map(|m| strip(m)).or_else(|| {
            // A three-letter upper-case code, separated from the digits by the string edge.
            let b = s.as_bytes();
            let code = |r: std::ops::Range<usize>| {
                b.get(r)
                    .is_some_and(|c| c.iter().all(u8::is_ascii_uppercase))
            };
            if prefix && code(0..3) && !b.get(3).is_some_and(u8::is_ascii_alphabetic) {
                Some(&s[3..])
            } else if !prefix
                && b.len() >= 3
                && code(b.len() - 3..b.len())
                && !(b.len() > 3 && b[b.len() - 4].is_ascii_alphabetic())
            {
                Some(&s[..s.len() - 3])
            } else {
                None
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RejectReason::*;

    #[test]
    fn integers_are_exact() {
        let ok: &[(&str, i64)] = &[
            ("42", 42),
            ("-42", -42),
            ("+7", 7),
            ("007", 7),
            ("9007199254740993", 9_007_199_254_740_993),
            ("-9223372036854775808", i64::MIN),
            ("9223372036854775807", i64::MAX),
            ("12.0", 12),
            ("12.000", 12),
            ("1e3", 1000),
            ("1.5e1", 15),
            ("1200e-2", 12),
            ("0.0", 0),
            ("-0", 0),
            ("0e999999999", 0),
            ("9.223372036854775807e18", i64::MAX),
        ];
        for &(text, want) in ok {
            assert_eq!(parse_i64(text, None), Ok(want), "{text}");
        }
        let bad: &[(&str, RejectReason)] = &[
            ("12.5", NotIntegral),
            ("1e-3", NotIntegral),
            ("0.1", NotIntegral),
            ("9223372036854775808", OutOfRange),
            ("-9223372036854775809", OutOfRange),
            ("1e19", OutOfRange),
            ("99999999999999999999999", OutOfRange),
            ("1e999999999", OutOfRange),
            ("", Syntax),
            ("-", Syntax),
            ("1,000", Syntax),
            ("0x10", Syntax),
            ("12a", Syntax),
            ("1.2.3", Syntax),
            ("١٢", Syntax),
            ("NaN", Syntax),
            (".", Syntax),
            ("1e", Syntax),
            ("--1", Syntax),
        ];
        for &(text, want) in bad {
            assert_eq!(parse_i64(text, None), Err(want), "{text}");
        }
        assert_eq!(parse_i32("2147483647", None), Ok(i32::MAX));
        assert_eq!(parse_i32("-2147483648", None), Ok(i32::MIN));
        assert_eq!(parse_i32("2147483648", None), Err(OutOfRange));
    }

    #[test]
    fn rounding_modes() {
        use RoundMode::*;
        let cases: &[(&str, RoundMode, i64)] = &[
            ("2.5", HalfEven, 2),
            ("3.5", HalfEven, 4),
            ("-2.5", HalfEven, -2),
            ("2.51", HalfEven, 3),
            ("2.5", HalfUp, 3),
            ("-2.5", HalfUp, -3),
            ("2.49", HalfUp, 2),
            ("2.9", Truncate, 2),
            ("-2.9", Truncate, -2),
            ("2.1", Floor, 2),
            ("-2.1", Floor, -3),
            ("2.1", Ceiling, 3),
            ("-2.1", Ceiling, -2),
            ("0.4", HalfUp, 0),
            ("-0.4", HalfUp, 0),
            ("1e-9", Ceiling, 1),
            ("12.0", Floor, 12),
        ];
        for &(text, mode, want) in cases {
            assert_eq!(parse_i64(text, Some(mode)), Ok(want), "{text} {mode:?}");
        }
        assert_eq!(
            parse_i64("9223372036854775807.5", Some(HalfUp)),
            Err(OutOfRange)
        );
    }

    #[test]
    fn decimals_are_exact_and_reject_extra_digits() {
        let ok: &[(&str, u8, u8, i128)] = &[
            ("12.34", 12, 2, 1234),
            ("12.3", 12, 2, 1230),
            ("12", 12, 2, 1200),
            ("-0.01", 12, 2, -1),
            ("12.340", 12, 2, 1234),
            ("1.5e2", 12, 2, 15000),
            ("1234567890.12", 12, 2, 123_456_789_012),
            (
                "99999999999999999999999999999999999999",
                38,
                0,
                99_999_999_999_999_999_999_999_999_999_999_999_999,
            ),
            ("0.000", 3, 3, 0),
            (".5", 3, 1, 5),
        ];
        for &(text, p, s, want) in ok {
            assert_eq!(
                parse_decimal(text, p, s, None),
                Ok(want),
                "{text} ({p},{s})"
            );
        }
        assert_eq!(parse_decimal("12.345", 12, 2, None), Err(Scale));
        assert_eq!(
            parse_decimal("12345678901.00", 12, 2, None),
            Err(OutOfRange)
        );
        assert_eq!(parse_decimal("1e40", 38, 0, None), Err(OutOfRange));
        assert_eq!(parse_decimal("1.0", 1, 1, None), Err(OutOfRange));
        assert_eq!(
            parse_decimal("12.345", 12, 2, Some(RoundMode::HalfEven)),
            Ok(1234)
        );
        assert_eq!(
            parse_decimal("12.355", 12, 2, Some(RoundMode::HalfEven)),
            Ok(1236)
        );
        assert_eq!(
            parse_decimal("9.995", 3, 2, Some(RoundMode::HalfUp)),
            Err(OutOfRange)
        );
        assert_eq!(parse_decimal("abc", 3, 2, None), Err(Syntax));
    }

    fn fmt(decimal: char, group: Option<char>, currency: Option<Currency>) -> NumFmt {
        NumFmt {
            decimal,
            group,
            currency,
        }
    }

    fn norm(f: &NumFmt, t: &str) -> Result<String, RejectReason> {
        let mut out = String::new();
        f.normalize(t, &mut out).map(|()| out)
    }

    #[test]
    fn separators_and_currency_normalise() {
        let us = fmt('.', Some(','), Some(Currency::Any));
        let eu = fmt(',', Some('.'), Some(Currency::Any));
        let fr = fmt(',', Some(' '), Some(Currency::Any));
        let ok: &[(&NumFmt, &str, &str)] = &[
            (&us, "$1,299.00", "1299.00"),
            (&us, "-$1,299.00", "-1299.00"),
            (&us, "$-5", "-5"),
            (&us, "US$ 12", "12"),
            (&us, "12.50 USD", "12.50"),
            (&us, "USD12.50", "12.50"),
            (&us, "1,234,567", "1234567"),
            (&us, "999", "999"),
            (&us, "1.5e3", "1.5e3"),
            (&us, "€12", "12"),
            (&eu, "€12,50", "12.50"),
            (&eu, "1.299,00 €", "1299.00"),
            (&eu, "-1.000", "-1000"),
            (&fr, "1\u{202f}299,00\u{a0}€", "1299.00"),
            (&fr, "1 299,5", "1299.5"),
            (&us, "\u{2212}3", "-3"),
        ];
        for &(f, text, want) in ok {
            assert_eq!(norm(f, text).as_deref(), Ok(want), "{text}");
        }
        let bad: &[(&NumFmt, &str)] = &[
            (&us, "12,50"),
            (&us, "1,2345"),
            (&us, ",123"),
            (&us, "1,,234"),
            (&us, "1,234.5,6"),
            (&us, "$$1"),
            (&us, "1$2"),
            (&us, "n/a"),
            (&us, "$"),
            (&us, "ABCD12"),
            (&us, "1,234e3"),
            (&eu, "12.50"),
            (&us, "$1 299"),
            (&us, "--1"),
            (&fmt('.', None, None), "$1"),
            (&fmt('.', None, None), "1,000"),
        ];
        for &(f, text) in bad {
            assert_eq!(norm(f, text), Err(Syntax), "{text}");
        }
        let only = fmt('.', None, Some(Currency::Only(vec!["CHF".into()])));
        assert_eq!(norm(&only, "CHF 5").as_deref(), Ok("5"));
        assert_eq!(norm(&only, "$5"), Err(Syntax));
    }

    #[test]
    fn floats_follow_rust_syntax_and_must_be_finite() {
        assert_eq!(parse_f64("1.5E-3"), Ok(0.0015));
        assert_eq!(parse_f64("9007199254740993"), Ok(9_007_199_254_740_992.0));
        assert_eq!(parse_f64("NaN"), Err(NotFinite));
        assert_eq!(parse_f64("-Infinity"), Err(NotFinite));
        assert_eq!(parse_f64("1e400"), Err(OutOfRange));
        assert_eq!(parse_f64("12,5"), Err(Syntax));
    }
}
