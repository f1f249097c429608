//! Per-column transforms of schema files: text clean-up, number formats, boolean words,
//! timestamp formats and time zones, list splitting.
//!
//! Every option is parsed into a typed value when the file is read (so a bad pattern or
//! time zone is reported with its line), and checked against the column type by
//! [`Transform::check`]. Invariant: the mapper never sees an option it cannot apply.

use std::fmt;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ColumnType;

/// How a column's raw text is cleaned and read before it becomes a typed value.
/// `None`/empty means "the type's default" (see schemas/README.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Transform {
    /// Strip leading/trailing Unicode whitespace. Default: true, except string/media/json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trim: Option<bool>,
    /// A blank value (empty or only whitespace) is null. Default: true, except string/media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_as_null: Option<bool>,
    /// Values (after trimming) read as null, compared ASCII-case-insensitively (`n/a`, `-`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub null_values: Vec<String>,
    /// Decimal separator of numbers (default `.`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_char")]
    pub decimal_separator: Option<char>,
    /// Digit-group separator of numbers; groups must be of three digits. `' '` also matches
    /// no-break and thin spaces. Default: none allowed.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_char")]
    pub thousands_separator: Option<char>,
    /// Currency symbols or codes stripped before or after a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// Rounding of digits beyond a decimal's scale or an integer's point; `None` rejects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<RoundMode>,
    /// Words read as true (replace the default list), ASCII-case-insensitively.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_values: Option<Vec<String>>,
    /// Words read as false (replace the default list), ASCII-case-insensitively.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub false_values: Option<Vec<String>>,
    /// Timestamp/date input formats, tried in order. Empty = `["iso8601"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<TimeFormat>,
    /// Offset of timestamps written without one (default UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<FixedTz>,
    /// Delimiter splitting a text cell into list elements (instead of JSON array text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
}

fn ser_char<S: Serializer>(c: &Option<char>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.collect_str(c),
        None => s.serialize_none(),
    }
}

/// Which currency markers a number may carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Currency {
    /// Any of the built-in symbols (`$`, `€`, `£`, `¥`, `US$`, …) or a three-letter
    /// upper-case code (`USD`, `EUR`).
    Any,
    /// Exactly these markers.
    Only(Vec<String>),
}

/// How digits beyond the target precision are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundMode {
    /// To nearest, ties to even (banker's rounding).
    HalfEven,
    /// To nearest, ties away from zero.
    HalfUp,
    /// Toward zero.
    Truncate,
    /// Toward negative infinity.
    Floor,
    /// Toward positive infinity.
    Ceiling,
}

/// One accepted input format of a timestamp or date column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimeFormat {
    /// RFC 3339 and its common relaxations (space for `T`, no offset, bare date).
    Iso8601,
    /// Seconds since the Unix epoch, optionally with a fraction.
    EpochSeconds,
    /// Milliseconds since the epoch, optionally with a fraction.
    EpochMillis,
    /// Microseconds since the epoch.
    EpochMicros,
    /// A chrono strftime pattern such as `%d/%m/%Y %H:%M`.
    Pattern(Strftime),
}

/// A compiled strftime pattern; compares by its text.
#[derive(Debug, Clone)]
pub struct Strftime {
    text: String,
    items: Arc<Vec<Item<'static>>>,
}

impl Strftime {
    /// Compiles `text`; fails on unknown `%` specifiers.
    pub fn new(text: &str) -> Result<Self, String> {
        let items = StrftimeItems::new(text)
            .parse_to_owned()
            .map_err(|_| format!("`{text}` is not a valid strftime pattern"))?;
        Ok(Strftime {
            text: text.to_owned(),
            items: Arc::new(items),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn items(&self) -> &[Item<'static>] {
        &self.items
    }
}

impl PartialEq for Strftime {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Strftime {}
impl std::hash::Hash for Strftime {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeFormat::Iso8601 => "iso8601",
            TimeFormat::EpochSeconds => "epoch_seconds",
            TimeFormat::EpochMillis => "epoch_millis",
            TimeFormat::EpochMicros => "epoch_micros",
            TimeFormat::Pattern(p) => p.text(),
        })
    }
}

impl std::str::FromStr for TimeFormat {
    type Err = String;

    /// `iso8601` (alias `rfc3339`), `epoch_seconds`, `epoch_millis`, `epoch_micros`, or a
    /// strftime pattern (anything containing `%`).
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "iso8601" | "rfc3339" => TimeFormat::Iso8601,
            "epoch_seconds" => TimeFormat::EpochSeconds,
            "epoch_millis" => TimeFormat::EpochMillis,
            "epoch_micros" => TimeFormat::EpochMicros,
            p if p.contains('%') => TimeFormat::Pattern(Strftime::new(p)?),
            other => {
                return Err(format!(
                    "unknown time format `{other}`, expected iso8601, rfc3339, epoch_seconds, \
                     epoch_millis, epoch_micros or a strftime pattern containing `%`"
                ));
            }
        })
    }
}

/// A fixed UTC offset in seconds (IANA zone names would need the chrono-tz crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedTz(pub i32);

impl fmt::Display for FixedTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("UTC");
        }
        let sign = if self.0 < 0 { '-' } else { '+' };
        let secs = self.0.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", secs / 3600, secs / 60 % 60)
    }
}

impl std::str::FromStr for FixedTz {
    type Err = String;

    /// `UTC`, `Z`, `±HH:MM`, `±HHMM` or `±HH` (up to ±23:59).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(FixedTz(0));
        }
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| {
            b.get(r)
                .filter(|d| d.iter().all(u8::is_ascii_digit))
                .map(|d| d.iter().fold(0i32, |a, &x| a * 10 + i32::from(x - b'0')))
        };
        let parsed = match (b.first(), b.len()) {
            (Some(sign @ (b'+' | b'-')), 3 | 5 | 6) => {
                let h = digits(1..3);
                let m = match b.len() {
                    3 => Some(0),
                    5 => digits(3..5),
                    _ if b[3] == b':' => digits(4..6),
                    _ => None,
                };
                h.zip(m)
                    .filter(|&(h, m)| h <= 23 && m <= 59)
                    .map(|(h, m)| (h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 })
            }
            _ => None,
        };
        parsed.map(FixedTz).ok_or_else(|| {
            if s.contains('/') {
                format!(
                    "time zone `{s}` is an IANA name; only fixed offsets are supported \
                     (IANA names need the chrono-tz crate): write e.g. `+01:00` or `UTC`"
                )
            } else {
                format!("invalid time zone `{s}`: expected `UTC` or an offset like `+02:00`")
            }
        })
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_str!(TimeFormat);
serde_via_str!(FixedTz);

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Currency::Any => s.serialize_bool(true),
            Currency::Only(list) => list.serialize(s),
        }
    }
}

/// `true` (built-in markers), `false` (none) or a non-empty list of markers.
pub(super) fn de_currency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Currency>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        List(Vec<String>),
    }
    match Raw::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected `true`, `false` or a list of currency markers")
    })? {
        Raw::Flag(true) => Ok(Some(Currency::Any)),
        Raw::Flag(false) => Ok(None),
        Raw::List(list) if list.is_empty() || list.iter().any(|m| m.trim().is_empty()) => {
            Err(serde::de::Error::custom(
                "currency markers must be a non-empty list of non-blank strings",
            ))
        }
        Raw::List(list) => Ok(Some(Currency::Only(list))),
    }
}

/// A one-character string.
pub(super) fn de_char<'de, D: Deserializer<'de>>(d: D) -> Result<Option<char>, D::Error> {
    let s = String::deserialize(d)?;
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_ascii_digit() && c != '-' && c != '+' => Ok(Some(c)),
        _ => Err(serde::de::Error::custom(format!(
            "expected one character that is not a digit or sign, got {s:?}"
        ))),
    }
}

/// The built-in currency markers, longest first so `US$` wins over `$`.
pub(crate) const CURRENCY_MARKERS: &[&str] = &[
    "US$", "CA$", "AU$", "NZ$", "HK$", "R$", "A$", "C$", "S$", "zł", "kr", "Fr.", "$", "€", "£",
    "¥", "₹", "₽", "₩", "₺", "₪", "₫", "₴", "₦", "฿", "₱", "¢", "₡", "₲", "₵", "₸", "₼", "₾", "元",
    "円",
];

/// Boolean words used when a column gives none.
pub(crate) const DEFAULT_TRUE: &[&str] = &["true", "yes", "y", "on", "1"];
pub(crate) const DEFAULT_FALSE: &[&str] = &["false", "no", "n", "off", "0"];

impl Transform {
    /// Effective `trim` for a value of type `ty`.
    pub(crate) fn trims(&self, ty: &ColumnType) -> bool {
        self.trim
            .unwrap_or(!ty.is_text() && !matches!(ty, ColumnType::Json))
    }

    /// Effective `empty_as_null` for a value of type `ty`.
    pub(crate) fn blank_is_null(&self, ty: &ColumnType) -> bool {
        self.empty_as_null.unwrap_or(!ty.is_text())
    }

    /// Whether any number-format option is set (the slower, normalising number path).
    pub(crate) fn has_number_format(&self) -> bool {
        self.decimal_separator.is_some()
            || self.thousands_separator.is_some()
            || self.currency.is_some()
    }

    /// Checks each set option applies to `ty` (to the column or a nested leaf type) and the
    /// options agree; `Err((key, message))` names the offending key.
    pub(crate) fn check(&self, ty: &ColumnType) -> Result<(), (&'static str, String)> {
        let has = |f: &dyn Fn(&ColumnType) -> bool| ty.any_leaf(f);
        let numeric = |t: &ColumnType| {
            matches!(
                t,
                ColumnType::Int32
                    | ColumnType::Int64
                    | ColumnType::Float64
                    | ColumnType::Decimal { .. }
            )
        };
        let not_for = |key: &'static str, what: &str| {
            Err((
                key,
                format!("applies to {what} columns only, not to `{ty}`"),
            ))
        };
        if self.decimal_separator.is_some() && !has(&numeric) {
            return not_for("decimal_separator", "number, integer and decimal");
        }
        if self.thousands_separator.is_some() && !has(&numeric) {
            return not_for("thousands_separator", "number, integer and decimal");
        }
        if self.currency.is_some() && !has(&numeric) {
            return not_for("currency", "number, integer and decimal");
        }
        let decimal_sep = self.decimal_separator.unwrap_or('.');
        if self.thousands_separator == Some(decimal_sep) {
            return Err((
                "thousands_separator",
                format!("is the same as the decimal separator `{decimal_sep}`"),
            ));
        }
        let roundable = |t: &ColumnType| {
            matches!(
                t,
                ColumnType::Int32 | ColumnType::Int64 | ColumnType::Decimal { .. }
            )
        };
        if self.round.is_some() && !has(&roundable) {
            return not_for("round", "integer and decimal");
        }
        let boolean = |t: &ColumnType| matches!(t, ColumnType::Boolean);
        for (key, words) in [
            ("true_values", &self.true_values),
            ("false_values", &self.false_values),
        ] {
            if let Some(words) = words {
                if !has(&boolean) {
                    return not_for(key, "boolean");
                }
                if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                    return Err((key, "must be a non-empty list of non-blank words".into()));
                }
            }
        }
        let trues = self.true_values.as_deref().map_or_else(
            || DEFAULT_TRUE.iter().map(|s| s.to_string()).collect(),
            <[String]>::to_vec,
        );
        let falses: Vec<String> = self.false_values.as_deref().map_or_else(
            || DEFAULT_FALSE.iter().map(|s| s.to_string()).collect(),
            <[String]>::to_vec,
        );
        if let Some(w) = trues
            .iter()
            .find(|t| falses.iter().any(|f| f.eq_ignore_ascii_case(t)))
        {
            let key = if self.true_values.is_some() {
                "true_values"
            } else {
                "false_values"
            };
            return Err((key, format!("`{w}` is both a true and a false word")));
        }
        let temporal = |t: &ColumnType| matches!(t, ColumnType::Timestamp | ColumnType::Date);
        if !self.formats.is_empty() {
            if !has(&temporal) {
                return not_for("formats", "timestamp and date");
            }
            let only_date = !has(&|t| matches!(t, ColumnType::Timestamp));
            if only_date
                && let Some(f) = self.formats.iter().find(|f| {
                    matches!(
                        f,
                        TimeFormat::EpochSeconds
                            | TimeFormat::EpochMillis
                            | TimeFormat::EpochMicros
                    )
                })
            {
                return Err(("formats", format!("`{f}` applies to timestamps, not dates")));
            }
        }
        if self.timezone.is_some() && !has(&|t| matches!(t, ColumnType::Timestamp)) {
            return not_for("timezone", "timestamp");
        }
        if let Some(split) = &self.split {
            if !matches!(ty, ColumnType::List(_)) {
                return not_for("split", "list");
            }
            if split.is_empty() {
                return Err(("split", "the delimiter must not be empty".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_fixed_offsets() {
        for (text, secs, shown) in [
            ("UTC", 0, "UTC"),
            ("utc", 0, "UTC"),
            ("Z", 0, "UTC"),
            ("+02:00", 7200, "+02:00"),
            ("-05:30", -19_800, "-05:30"),
            ("+0545", 20_700, "+05:45"),
            ("-03", -10_800, "-03:00"),
            ("+00:00", 0, "UTC"),
        ] {
            let tz: FixedTz = text.parse().unwrap();
            assert_eq!(tz, FixedTz(secs), "{text}");
            assert_eq!(tz.to_string(), shown);
        }
        let err = "Europe/Berlin".parse::<FixedTz>().unwrap_err();
        assert!(
            err.contains("IANA name") && err.contains("chrono-tz"),
            "{err}"
        );
        for bad in [
            "+24:00", "+02:60", "2:00", "+2", "+02:0", "CET", "", "+02-00",
        ] {
            assert!(bad.parse::<FixedTz>().is_err(), "{bad}");
        }
    }

    #[test]
    fn time_formats_parse_and_print() {
        for (text, shown) in [
            ("iso8601", "iso8601"),
            ("rfc3339", "iso8601"),
            ("epoch_seconds", "epoch_seconds"),
            ("epoch_millis", "epoch_millis"),
            ("epoch_micros", "epoch_micros"),
            ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M"),
        ] {
            let f: TimeFormat = text.parse().unwrap();
            assert_eq!(f.to_string(), shown);
        }
        assert!(
            "%Q".parse::<TimeFormat>()
                .unwrap_err()
                .contains("not a valid strftime")
        );
        assert!(
            "epoch"
                .parse::<TimeFormat>()
                .unwrap_err()
                .contains("unknown time format")
        );
    }

    fn check(ty: &str, t: Transform) -> Result<(), (&'static str, String)> {
        t.check(&ty.parse().unwrap())
    }

    #[test]
    fn options_must_apply_to_the_type() {
        let t = |f: fn(&mut Transform)| {
            let mut t = Transform::default();
            f(&mut t);
            t
        };
        assert_eq!(
            check("string", t(|t| t.currency = Some(Currency::Any)))
                .unwrap_err()
                .0,
            "currency"
        );
        assert!(
            check(
                "list<decimal(5,2)>",
                t(|t| t.currency = Some(Currency::Any))
            )
            .is_ok()
        );
        assert!(
            check(
                "struct<a:boolean>",
                t(|t| t.true_values = Some(vec!["ja".into()]))
            )
            .is_ok()
        );
        assert_eq!(
            check("number", t(|t| t.round = Some(RoundMode::HalfEven)))
                .unwrap_err()
                .0,
            "round"
        );
        assert_eq!(
            check("date", t(|t| t.timezone = Some(FixedTz(0))))
                .unwrap_err()
                .0,
            "timezone"
        );
        assert_eq!(
            check("date", t(|t| t.formats = vec![TimeFormat::EpochSeconds]))
                .unwrap_err()
                .0,
            "formats"
        );
        assert_eq!(
            check("string", t(|t| t.split = Some(",".into())))
                .unwrap_err()
                .0,
            "split"
        );
        assert_eq!(
            check("list<string>", t(|t| t.split = Some(String::new())))
                .unwrap_err()
                .0,
            "split"
        );
        let (key, msg) = check(
            "number",
            t(|t| {
                t.decimal_separator = Some(',');
                t.thousands_separator = Some(',');
            }),
        )
        .unwrap_err();
        assert_eq!(key, "thousands_separator");
        assert!(msg.contains("same as the decimal separator"), "{msg}");
        let (key, msg) =
            check("boolean", t(|t| t.true_values = Some(vec!["no".into()]))).unwrap_err();
        assert_eq!(key, "true_values");
        assert!(msg.contains("`no` is both"), "{msg}");
        assert_eq!(
            check("boolean", t(|t| t.false_values = Some(vec![])))
                .unwrap_err()
                .0,
            "false_values"
        );
    }
}
