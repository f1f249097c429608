//! Realistic dirty data for the per-task knobs: cells that do not match their declared
//! type (`bad_row_rate`), hostile strings and beyond-2^53 integers (`hostile`), and
//! prices as currency strings (`price_format = "currency"`).
//!
//! Invariant: every bad value fails its column's type in both JSON and CSV (no lenient
//! reading turns it into a valid value), and every currency string has one exact cent value.

use super::data::{Cell, ColumnKind, push_u64, splitmix64};

/// A bad value: text (a JSON string / CSV field) or raw JSON (an object or an out-of-range
/// number, written verbatim in JSON and as the same text in CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    Text(&'static str),
    Raw(&'static str),
}

/// Larger than `i64::MAX`: valid JSON, but no integer column can hold it.
pub(crate) const TOO_BIG: &str = "99999999999999999999";
/// Where a number is expected, an object.
pub(crate) const OBJECT: &str = r#"{"value":12,"unit":"pcs"}"#;

/// Values that are wrong for `kind`. `""` only where the column is required: in CSV the
/// empty cell reads as null, which is only wrong there. No `1,2,3` in currency columns,
/// where a parser stripping grouping commas would read 123.
fn candidates(kind: ColumnKind, required: bool, currency: bool) -> Vec<Bad> {
    use Bad::{Raw, Text};
    let mut v = vec![Text("n/a"), Text("twelve"), Text("true-ish"), Raw(OBJECT)];
    match kind {
        ColumnKind::Integer => v.extend([Text("1,2,3"), Text("2026-13-45"), Raw(TOO_BIG)]),
        ColumnKind::Number if !currency => v.extend([Text("1,2,3"), Text("2026-13-45")]),
        ColumnKind::Number => v.extend([Text("2026-13-45"), Text("call for price")]),
        ColumnKind::Boolean => v.extend([Text("1,2,3"), Text("2026-13-45"), Raw(TOO_BIG)]),
        ColumnKind::DateTime => v.extend([Text("1,2,3"), Text("2026-13-45")]),
        ColumnKind::Text | ColumnKind::Media => {}
    }
    if required {
        v.push(Text(""));
    }
    v
}

/// Whether a bad value can exist for this kind of column (text columns accept anything).
pub(crate) fn can_be_bad(kind: ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::Integer | ColumnKind::Number | ColumnKind::Boolean | ColumnKind::DateTime
    )
}

/// Writes a bad value for a column into `out`; `Cell::Text` or `Cell::Raw`.
pub(crate) fn bad_value(
    h: u64,
    kind: ColumnKind,
    required: bool,
    currency: bool,
    out: &mut String,
) -> Cell {
    let c = candidates(kind, required, currency);
    match c[(splitmix64(h ^ 0xBAD0_0000) % c.len() as u64) as usize] {
        Bad::Text(s) => {
            out.push_str(s);
            Cell::Text
        }
        Bad::Raw(s) => {
            out.push_str(s);
            Cell::Raw
        }
    }
}

/// Strings that break naive CSV/JSON/Unicode handling; all are valid text values.
const HOSTILE: [&str; 16] = [
    "first line\nsecond line",
    "windows\r\nline break",
    "tab\tseparated\tvalue",
    "مرحبا بالعالم",
    "שלום עולם",
    "東京タワー 展望台",
    "데이터 수집",
    "thumbs 👍🏽 family 👨‍👩‍👧 flag 🇯🇵",
    "  padded on both sides  ",
    " leading space",
    "trailing space ",
    "she said \"hi\", then left",
    "'single' and \"double\" quotes, plus \\ backslash",
    "comma, \"quote\" and\nnewline together",
    "cafe\u{301} with a combining accent",
    "=SUM(A1:A2)",
];

/// Writes a hostile string in about 1 row in 3 per text column; false: write normal text.
pub(crate) fn hostile_text(h: u64, out: &mut String) -> bool {
    let x = splitmix64(h ^ 0x4057_1000);
    if !x.is_multiple_of(3) {
        return false;
    }
    out.push_str(HOSTILE[((x >> 8) % HOSTILE.len() as u64) as usize]);
    true
}

/// 2^53 + 1: the first integer an f64 cannot hold.
pub(crate) const BEYOND_F64: i64 = 9_007_199_254_740_993;

/// About 1 in 16 integers of a hostile task: odd values above 2^53 (a quarter negative),
/// which an f64 round trip changes.
pub(crate) fn hostile_int(h: u64) -> Option<i64> {
    let x = splitmix64(h ^ 0x1E7_0000);
    if !x.is_multiple_of(16) {
        return None;
    }
    let v = BEYOND_F64 + 2 * ((x >> 8) % 1_000_000_000) as i64;
    Some(if (x >> 40).is_multiple_of(4) { -v } else { v })
}

/// Cents of a currency price: mostly below 10 000.00, 1 in 10 up to 2 000 000.00.
pub(crate) fn price_cents(h: u64) -> i64 {
    let x = h >> 8;
    if h.is_multiple_of(10) {
        (x % 200_000_000) as i64
    } else {
        (x % 1_000_000) as i64
    }
}

/// `$1,299.00`, `€12.50` or `£7.05`: symbol, comma-grouped units, two decimals.
pub(crate) fn currency(h: u64, cents: i64, out: &mut String) {
    out.push_str(["$", "€", "£"][(splitmix64(h ^ 0xC0_1500) % 3) as usize]);
    let cents = cents.unsigned_abs();
    let mut units = String::new();
    push_u64(&mut units, cents / 100);
    let first = units.len() % 3;
    for (i, ch) in units.chars().enumerate() {
        if i > 0 && (i + 3 - first).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out.push('.');
    out.push((b'0' + (cents % 100 / 10) as u8) as char);
    out.push((b'0' + (cents % 10) as u8) as char);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(cents: i64) -> String {
        let mut s = String::new();
        currency(0, cents, &mut s);
        s[s.char_indices().nth(1).map_or(0, |(i, _)| i)..].to_owned()
    }

    #[test]
    fn currency_grouping() {
        assert_eq!(cur(0), "0.00");
        assert_eq!(cur(5), "0.05");
        assert_eq!(cur(1250), "12.50");
        assert_eq!(cur(99_999), "999.99");
        assert_eq!(cur(129_900), "1,299.00");
        assert_eq!(cur(12_345_678), "123,456.78");
        assert_eq!(cur(199_999_999), "1,999,999.99");
        let symbols: std::collections::HashSet<char> = (0..60)
            .map(|h| {
                let mut s = String::new();
                currency(h, 100, &mut s);
                s.chars().next().expect("symbol")
            })
            .collect();
        assert_eq!(symbols, ['$', '€', '£'].into_iter().collect());
    }

    #[test]
    fn bad_values_fail_their_type() {
        use ColumnKind::*;
        for kind in [Integer, Number, Boolean, DateTime] {
            for required in [false, true] {
                for currency in [false, true] {
                    for b in candidates(kind, required, currency) {
                        let (Bad::Text(s) | Bad::Raw(s)) = b;
                        assert!(s.parse::<i64>().is_err() || kind != Integer, "{s}");
                        let num_ok = s.parse::<f64>().is_ok()
                            || (currency && s.replace(',', "").parse::<f64>().is_ok());
                        assert!(!num_ok || !matches!(kind, Number), "{s}");
                        assert!(!matches!(s, "true" | "false" | "1" | "0"), "{s}");
                        assert!(
                            chrono::DateTime::parse_from_rfc3339(s).is_err(),
                            "{s} as date-time"
                        );
                        assert!(
                            kind != DateTime || s.parse::<f64>().is_err(),
                            "{s}: no epoch-like numbers in date-time columns"
                        );
                        if s.is_empty() {
                            assert!(required, "empty only where required");
                        }
                    }
                }
            }
        }
        assert!(!can_be_bad(Text) && !can_be_bad(Media));
    }

    #[test]
    fn hostile_ints_lose_precision_in_f64() {
        let vals: Vec<i64> = (0..4000).filter_map(hostile_int).collect();
        assert!((150..=350).contains(&vals.len()), "{}", vals.len());
        assert!(vals.iter().any(|v| *v < 0));
        for v in vals {
            assert!(v.unsigned_abs() > 1 << 53, "{v}");
            assert_ne!(v as f64 as i64, v, "{v} survives f64");
        }
    }
}
