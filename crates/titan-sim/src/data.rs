//! Deterministic seeded row and media generation (no RNG state: every cell is a
//! hash of (seed, execution id, row, column)), shared by the export encoder and by
//! tests that compute the values the connector must have written.
//!
//! Invariant: `value`, `row` and the streamed exports agree byte for byte; the
//! export path uses [`Generator`] directly and never builds a `SimValue` per cell.
//! A cell is bad (wrong for its type) exactly when [`bad_cell`] names it.

use super::dirty;
use super::scenario::{PriceFormat, SimTask};

/// One generated cell, in the form tests compare against.
#[derive(Debug, Clone, PartialEq)]
pub enum SimValue {
    Null,
    Str(String),
    Int(i64),
    /// Always a whole number of hundredths (two decimals at most).
    Num(f64),
    Bool(bool),
    /// JSON text written verbatim in JSON exports (an object, or a number too large
    /// for any integer type) and as the same text in CSV; only in bad cells.
    Raw(String),
}

impl SimValue {
    /// The value as the JSON export renders it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SimValue::Null => serde_json::Value::Null,
            SimValue::Str(s) => serde_json::Value::String(s.clone()),
            SimValue::Int(i) => (*i).into(),
            SimValue::Num(n) => serde_json::Number::from_f64(*n)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            SimValue::Bool(b) => (*b).into(),
            SimValue::Raw(text) => serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
        }
    }

    /// The unquoted CSV cell text (null is the empty cell).
    pub fn to_csv_field(&self) -> String {
        match self {
            SimValue::Null => String::new(),
            SimValue::Str(s) => s.clone(),
            SimValue::Int(i) => i.to_string(),
            SimValue::Num(n) => format!("{n:.2}"),
            SimValue::Bool(b) => b.to_string(),
            SimValue::Raw(text) => text.clone(),
        }
    }
}

/// How a schema property is generated (titan-api.md §4 mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    /// `string` + `format: date-time`: RFC 3339 UTC within 2026.
    DateTime,
    /// `string` + `format: media`: absolute media download URL.
    Media,
    Integer,
    Number,
    Boolean,
}

/// One output column, in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// Listed in the schema's `required`; otherwise null in ~5% of rows.
    pub required: bool,
}

/// The columns of an `output_schema`; unknown types generate strings.
pub fn columns(schema: &serde_json::Value) -> Vec<Column> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| {
            let ty = p.get("type").and_then(|t| t.as_str()).unwrap_or("string");
            let format = p.get("format").and_then(|f| f.as_str());
            let kind = match (ty, format) {
                ("string", Some("date-time")) => ColumnKind::DateTime,
                ("string", Some("media")) => ColumnKind::Media,
                ("integer", _) => ColumnKind::Integer,
                ("number", _) => ColumnKind::Number,
                ("boolean", _) => ColumnKind::Boolean,
                _ => ColumnKind::Text,
            };
            Column {
                name: name.clone(),
                kind,
                required: required.contains(&name.as_str()),
            }
        })
        .collect()
}

/// The value of property `col` (schema order) of row `row` of execution `exec_id`.
/// Out-of-range columns are `Null`.
pub fn value(
    seed: u64,
    task: &SimTask,
    exec_id: &str,
    row: u64,
    col: usize,
    base_url: &str,
) -> SimValue {
    let g = Generator::new(seed, task, exec_id, base_url);
    let mut s = String::new();
    g.cell(row, col, &mut s).into_value(s)
}

/// A whole row as (property name, value) in schema order.
pub fn row(
    seed: u64,
    task: &SimTask,
    exec_id: &str,
    row: u64,
    base_url: &str,
) -> Vec<(String, SimValue)> {
    let g = Generator::new(seed, task, exec_id, base_url);
    let mut s = String::new();
    g.columns
        .iter()
        .enumerate()
        .map(|(col, c)| {
            (
                c.name.clone(),
                g.cell(row, col, &mut s).into_value(s.clone()),
            )
        })
        .collect()
}

/// The column whose value in `row` does not match its declared type, if the row is
/// bad (`bad_row_rate`); a bad row has exactly one bad cell. Never a text or media column.
pub fn bad_cell(seed: u64, task: &SimTask, exec_id: &str, row: u64) -> Option<usize> {
    Generator::new(seed, task, exec_id, "").bad_col(row)
}

/// The exact value in cents of a `number` cell: plain (`12.5` → 1250) or a currency
/// string (`"$1,299.00"` → 129900). `None` for null or bad cells and other column types.
pub fn price_cents(seed: u64, task: &SimTask, exec_id: &str, row: u64, col: usize) -> Option<i64> {
    let g = Generator::new(seed, task, exec_id, "");
    match g.cell_cents(row, col, &mut String::new()) {
        (Cell::Cents(c), _) => Some(c),
        (Cell::Text, Some(c)) => Some(c),
        _ => None,
    }
}

/// Media id of a media cell: stable, and parseable back by the media route.
pub fn media_id(row: u64, col: usize) -> String {
    format!("m-{row}-{col}")
}

/// Inverse of [`media_id`]: `m-{row}-{col}` → (row, col).
pub(crate) fn parse_media_id(id: &str) -> Option<(u64, usize)> {
    let (row, col) = id.strip_prefix("m-")?.split_once('-')?;
    let canonical = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    if !canonical(row) || !canonical(col) {
        return None;
    }
    Some((row.parse().ok()?, col.parse().ok()?))
}

/// The bytes behind a media URL: a small PNG (3 in 4) or SVG, sized and coloured by hash.
pub fn media_bytes(seed: u64, exec_id: &str, media_id: &str) -> (&'static str, Vec<u8>) {
    let h = splitmix64(
        seed ^ splitmix64(fnv1a(exec_id.as_bytes())) ^ fnv1a(media_id.as_bytes()).rotate_left(17),
    );
    let w = 8 + (h >> 8) % 57;
    let hgt = 8 + (h >> 16) % 57;
    let rgb = [(h >> 24) as u8, (h >> 32) as u8, (h >> 40) as u8];
    if h.is_multiple_of(4) {
        (
            "image/svg+xml",
            super::media::svg(w as u32, hgt as u32, rgb, media_id),
        )
    } else {
        ("image/png", super::media::png(w as u32, hgt as u32, rgb))
    }
}

/// splitmix64 finaliser: the only source of "randomness" in the simulator.
#[inline]
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A generated cell without allocation; `Text` content is in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell {
    Null,
    Text,
    Int(i64),
    /// Hundredths: `Cents(1999)` is 19.99.
    Cents(i64),
    Bool(bool),
    /// Raw JSON text in the caller's buffer (bad cells only).
    Raw,
}

impl Cell {
    fn into_value(self, text: String) -> SimValue {
        match self {
            Cell::Null => SimValue::Null,
            Cell::Text => SimValue::Str(text),
            Cell::Int(i) => SimValue::Int(i),
            Cell::Cents(c) => SimValue::Num(c as f64 / 100.0),
            Cell::Bool(b) => SimValue::Bool(b),
            Cell::Raw => SimValue::Raw(text),
        }
    }
}

const WORDS: [&str; 48] = [
    "amber", "harbor", "quiet", "river", "copper", "lantern", "meadow", "signal", "velvet",
    "orbit", "granite", "maple", "pixel", "summit", "tidal", "violet", "willow", "zephyr",
    "cobalt", "ember", "falcon", "glacier", "hollow", "ivory", "jasper", "kestrel", "lunar",
    "marble", "nectar", "onyx", "prairie", "quartz", "raven", "saffron", "timber", "umber",
    "vector", "wander", "yonder", "zenith", "fresh", "deal", "price", "new", "classic", "compact",
    "premium", "daily",
];
const EXOTIC: [&str; 6] = ["é", "café", "東京", "🙂", "naïve", "Zürich"];
const NULL_SALT: u64 = 0x6E75_6C6C_5EED_0001;
const BAD_SALT: u64 = 0xBAD0_5EED_0000_0002;
const JAN_1_2026: i64 = 1_767_225_600;
const YEAR_SECS: u64 = 365 * 86_400;

/// Per-execution generator: parses the schema once, then makes cells by hashing.
pub(crate) struct Generator {
    exec_key: u64,
    pub(crate) columns: Vec<Column>,
    /// `{base_url}/api/v1/executions/{exec_id}/media/`
    media_prefix: String,
    bad_row_rate: f64,
    /// Columns that can hold a bad value, in schema order.
    bad_cols: Vec<usize>,
    hostile: bool,
    /// Per column: a `number` column emitted as a currency string.
    currency: Vec<bool>,
}

impl Generator {
    pub(crate) fn new(seed: u64, task: &SimTask, exec_id: &str, base_url: &str) -> Self {
        let columns = columns(&task.output_schema);
        let bad_cols = (0..columns.len())
            .filter(|&c| dirty::can_be_bad(columns[c].kind))
            .collect();
        let currency = columns
            .iter()
            .map(|c| {
                task.price_format == PriceFormat::Currency
                    && c.kind == ColumnKind::Number
                    && c.name.to_ascii_lowercase().contains("price")
            })
            .collect();
        Generator {
            exec_key: splitmix64(seed ^ splitmix64(fnv1a(exec_id.as_bytes()))),
            columns,
            media_prefix: format!("{base_url}/api/v1/executions/{exec_id}/media/"),
            bad_row_rate: task.bad_row_rate,
            bad_cols,
            hostile: task.hostile,
            currency,
        }
    }

    /// The bad column of `row`, if the row is bad.
    pub(crate) fn bad_col(&self, row: u64) -> Option<usize> {
        if self.bad_row_rate <= 0.0 || self.bad_cols.is_empty() {
            return None;
        }
        let h = splitmix64(splitmix64(self.exec_key ^ BAD_SALT) ^ row);
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        (u < self.bad_row_rate)
            .then(|| self.bad_cols[(splitmix64(h) % self.bad_cols.len() as u64) as usize])
    }

    #[inline]
    fn hash(&self, row: u64, col: usize) -> u64 {
        splitmix64(
            splitmix64(self.exec_key ^ row) ^ (col as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
    }

    /// Generates cell (`row`, `col`); `Text` and `Raw` are written to `out` (cleared first).
    pub(crate) fn cell(&self, row: u64, col: usize, out: &mut String) -> Cell {
        self.cell_cents(row, col, out).0
    }

    /// [`Self::cell`], plus the cents of a currency string.
    fn cell_cents(&self, row: u64, col: usize, out: &mut String) -> (Cell, Option<i64>) {
        out.clear();
        let Some(c) = self.columns.get(col) else {
            return (Cell::Null, None);
        };
        let h = self.hash(row, col);
        if self.bad_col(row) == Some(col) {
            let cell = dirty::bad_value(h, c.kind, c.required, self.currency[col], out);
            return (cell, None);
        }
        if !c.required && splitmix64(h ^ NULL_SALT).is_multiple_of(20) {
            return (Cell::Null, None);
        }
        if self.currency[col] {
            let cents = dirty::price_cents(h);
            dirty::currency(h, cents, out);
            return (Cell::Text, Some(cents));
        }
        let cell = match c.kind {
            ColumnKind::Text => {
                if !(self.hostile && dirty::hostile_text(h, out)) {
                    text(h, out);
                }
                Cell::Text
            }
            ColumnKind::DateTime => {
                datetime(JAN_1_2026 + ((h >> 8) % YEAR_SECS) as i64, out);
                Cell::Text
            }
            ColumnKind::Media => {
                out.push_str(&self.media_prefix);
                out.push_str("m-");
                push_u64(out, row);
                out.push('-');
                push_u64(out, col as u64);
                out.push_str("/download");
                Cell::Text
            }
            ColumnKind::Integer => match self.hostile.then(|| dirty::hostile_int(h)).flatten() {
                Some(big) => Cell::Int(big),
                None => {
                    let v = (h >> 8) as i64 & i64::MAX;
                    Cell::Int(match h % 100 {
                        0..88 => v % 1000,
                        88..95 => -(v % 1000) - 1,
                        _ => v % 1_000_000_000_001,
                    })
                }
            },
            ColumnKind::Number => Cell::Cents(((h >> 8) % 100_000) as i64),
            ColumnKind::Boolean => Cell::Bool((h >> 33) & 1 == 1),
        };
        (cell, None)
    }
}

/// 1-6 readable words; about 1 row in 6 carries a comma, double quotes or non-ASCII text.
fn text(h: u64, out: &mut String) {
    let special = (h >> 16) % 32;
    let comma = special == 0 || special == 1 || special == 4;
    let quote = special == 2 || special == 4;
    let exotic = special == 3 || special == 4;
    let mut n = 1 + (h % 6) as usize;
    if comma {
        n = n.max(2);
    }
    let mut x = h;
    for i in 0..n {
        x = splitmix64(x);
        if i > 0 {
            out.push(' ');
        }
        let word = if exotic && i == n - 1 {
            EXOTIC[(x % EXOTIC.len() as u64) as usize]
        } else {
            WORDS[(x % WORDS.len() as u64) as usize]
        };
        if quote && i == n / 2 {
            out.push('"');
            out.push_str(word);
            out.push('"');
        } else {
            out.push_str(word);
        }
        if comma && i == 0 {
            out.push(',');
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds (days-from-civil inverse, Hinnant).
pub(crate) fn datetime(secs: i64, out: &mut String) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    push_u64(out, y as u64);
    for (sep, v) in [
        ('-', m),
        ('-', d),
        ('T', sod / 3600),
        (':', sod / 60 % 60),
        (':', sod % 60),
    ] {
        out.push(sep);
        out.push((b'0' + (v / 10) as u8) as char);
        out.push((b'0' + (v % 10) as u8) as char);
    }
    out.push('Z');
}

/// Appends a decimal integer without going through `fmt`.
#[inline]
pub(crate) fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(schema: serde_json::Value) -> SimTask {
        SimTask {
            id: "t".into(),
            name: "T".into(),
            output_schema: schema,
            ..SimTask::default()
        }
    }

    fn all_kinds() -> SimTask {
        task(
            json!({"type": "object", "required": ["s", "m"], "properties": {
            "s": {"type": "string"}, "d": {"type": "string", "format": "date-time"},
            "m": {"type": "string", "format": "media"}, "i": {"type": "integer"},
            "n": {"type": "number"}, "b": {"type": "boolean"}, "x": {"type": "array"}, "u": {}}}),
        )
    }

    #[test]
    fn columns_follow_schema_order_and_types() {
        let cols = columns(&all_kinds().output_schema);
        let got: Vec<(&str, ColumnKind, bool)> = cols
            .iter()
            .map(|c| (c.name.as_str(), c.kind, c.required))
            .collect();
        use ColumnKind::*;
        assert_eq!(
            got,
            [
                ("s", Text, true),
                ("d", DateTime, false),
                ("m", Media, true),
                ("i", Integer, false),
                ("n", Number, false),
                ("b", Boolean, false),
                ("x", Text, false),
                ("u", Text, false)
            ]
        );
    }

    #[test]
    fn values_have_the_declared_shapes() {
        let t = all_kinds();
        let base = "http://127.0.0.1:9";
        let mut nulls = [0u32; 8];
        let (mut special, mut big_int, mut neg_int) = (0, 0, 0);
        for r in 0..2000u64 {
            let row = row(7, &t, "e1", r, base);
            assert_eq!(row.len(), 8);
            for (c, (_, v)) in row.iter().enumerate() {
                if *v == SimValue::Null {
                    nulls[c] += 1;
                }
            }
            match &row[0].1 {
                SimValue::Str(s) => {
                    assert!(!s.is_empty() && s.len() < 80, "{s:?}");
                    if s.contains(',') || s.contains('"') || !s.is_ascii() {
                        special += 1;
                    }
                }
                other => panic!("required string was {other:?}"),
            }
            if let SimValue::Str(d) = &row[1].1 {
                let parsed = chrono::DateTime::parse_from_rfc3339(d).expect("rfc3339");
                assert!(
                    d.starts_with("2026-") && d.ends_with('Z') && d.len() == 20,
                    "{d}"
                );
                assert!((JAN_1_2026..JAN_1_2026 + YEAR_SECS as i64).contains(&parsed.timestamp()));
            }
            assert_eq!(
                row[2].1,
                SimValue::Str(format!(
                    "{base}/api/v1/executions/e1/media/m-{r}-2/download"
                ))
            );
            if let SimValue::Int(i) = row[3].1 {
                big_int += u32::from(i > 1000);
                neg_int += u32::from(i < 0);
                assert!((-1000..=1_000_000_000_000).contains(&i));
            }
            if let SimValue::Num(n) = row[4].1 {
                assert_eq!((n * 100.0).round() / 100.0, n);
                assert!((0.0..1000.0).contains(&n));
            }
        }
        assert_eq!(nulls[0], 0, "required never null");
        assert_eq!(nulls[2], 0, "required never null");
        for (c, n) in nulls.iter().enumerate().skip(3) {
            assert!(
                (40..=170).contains(n),
                "column {c}: {n} nulls of 2000, want ~5%"
            );
        }
        assert!((150..=500).contains(&special), "special strings: {special}");
        assert!(big_int > 10 && neg_int > 50, "big {big_int} neg {neg_int}");
    }

    #[test]
    fn some_strings_exercise_csv_and_utf8() {
        let t = task(json!({"required": ["s"], "properties": {"s": {"type": "string"}}}));
        let strs: Vec<String> = (0..3000)
            .map(|r| value(1, &t, "e", r, 0, "").to_csv_field())
            .collect();
        assert!(strs.iter().any(|s| s.contains(',')));
        assert!(strs.iter().any(|s| s.contains('"')));
        for needle in ["é", "東京", "🙂"] {
            assert!(strs.iter().any(|s| s.contains(needle)), "{needle}");
        }
        assert!(
            strs.iter()
                .filter(|s| s.is_ascii() && !s.contains([',', '"']))
                .count()
                > 2000
        );
    }

    #[test]
    fn determinism_and_seed_sensitivity() {
        let t = all_kinds();
        let a: Vec<_> = (0..50).map(|r| row(1, &t, "e", r, "")).collect();
        let b: Vec<_> = (0..50).map(|r| row(1, &t, "e", r, "")).collect();
        let c: Vec<_> = (0..50).map(|r| row(2, &t, "e", r, "")).collect();
        let d: Vec<_> = (0..50).map(|r| row(1, &t, "f", r, "")).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(value(1, &t, "e", 3, 4, ""), a[3][4].1);
        assert_eq!(value(1, &t, "e", 3, 99, ""), SimValue::Null);
    }

    /// Whether `v` is a valid value of column `c` as a typed reader would see it in CSV
    /// (the JSON form of a bad cell is wrong as well: a string or object, never the type).
    fn valid(c: &Column, v: &SimValue) -> bool {
        let text = v.to_csv_field();
        if text.is_empty() {
            return !c.required && matches!(v, SimValue::Null);
        }
        let typed = match c.kind {
            ColumnKind::Integer => matches!(v, SimValue::Int(_)) && text.parse::<i64>().is_ok(),
            ColumnKind::Number => matches!(v, SimValue::Num(_)) && text.parse::<f64>().is_ok(),
            ColumnKind::Boolean => {
                matches!(v, SimValue::Bool(_)) && ["true", "false"].contains(&text.as_str())
            }
            ColumnKind::DateTime => chrono::DateTime::parse_from_rfc3339(&text).is_ok(),
            ColumnKind::Text | ColumnKind::Media => matches!(v, SimValue::Str(_)),
        };
        typed && !matches!(v, SimValue::Raw(_))
    }

    #[test]
    fn bad_cells_are_exactly_the_invalid_ones() {
        let mut t = all_kinds();
        t.bad_row_rate = 0.1;
        let cols = columns(&t.output_schema);
        let mut bad_rows = 0;
        let mut per_col = [0u32; 8];
        let mut seen = std::collections::HashSet::new();
        for r in 0..3000u64 {
            let bad = bad_cell(5, &t, "e", r);
            bad_rows += u32::from(bad.is_some());
            for (c, (_, v)) in row(5, &t, "e", r, "").iter().enumerate() {
                assert_eq!(
                    !valid(&cols[c], v),
                    bad == Some(c),
                    "row {r} col {c}: {v:?}"
                );
                if bad == Some(c) {
                    per_col[c] += 1;
                    seen.insert(v.to_csv_field());
                }
            }
        }
        assert!(
            (240..=360).contains(&bad_rows),
            "{bad_rows} bad rows of 3000"
        );
        // Only typed columns (d, i, n, b) get bad values, each some of the time.
        assert_eq!([per_col[0], per_col[2], per_col[6], per_col[7]], [0; 4]);
        assert!([1, 3, 4, 5].iter().all(|&c| per_col[c] > 30), "{per_col:?}");
        for want in [
            "n/a",
            "twelve",
            "true-ish",
            "1,2,3",
            "2026-13-45",
            dirty::OBJECT,
            dirty::TOO_BIG,
        ] {
            assert!(seen.contains(want), "{want} never generated: {seen:?}");
        }
        // "" is only used in required columns; make one typed column required.
        t.output_schema["required"] = json!(["s", "m", "i"]);
        let empties = (0..3000)
            .filter(|&r| bad_cell(5, &t, "e", r) == Some(3))
            .filter(|&r| value(5, &t, "e", r, 3, "") == SimValue::Str(String::new()))
            .count();
        assert!(empties > 5, "{empties}");
        // The JSON form of a raw bad value is the JSON text itself.
        assert_eq!(
            SimValue::Raw(dirty::OBJECT.into()).to_json(),
            json!({"value": 12, "unit": "pcs"})
        );
        assert!(
            SimValue::Raw(dirty::TOO_BIG.into())
                .to_json()
                .as_i64()
                .is_none()
        );
    }

    #[test]
    fn bad_row_rate_extremes() {
        let mut t = all_kinds();
        assert!((0..500).all(|r| bad_cell(1, &t, "e", r).is_none()));
        t.bad_row_rate = 1.0;
        assert!((0..500).all(|r| bad_cell(1, &t, "e", r).is_some()));
        // A schema without typed columns cannot have bad cells.
        let mut s = task(json!({"properties": {"a": {"type": "string"}}}));
        s.bad_row_rate = 1.0;
        assert_eq!(bad_cell(1, &s, "e", 0), None);
    }

    #[test]
    fn hostile_tasks_generate_hostile_values() {
        let mut t = task(json!({"required": ["s", "i"], "properties": {
            "s": {"type": "string"}, "i": {"type": "integer"}}}));
        t.hostile = true;
        let rows: Vec<_> = (0..3000).map(|r| row(3, &t, "e", r, "")).collect();
        let strs: Vec<&str> = rows
            .iter()
            .filter_map(|r| match &r[0].1 {
                SimValue::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        for (what, hit) in [
            ("newline", strs.iter().any(|s| s.contains('\n'))),
            ("crlf", strs.iter().any(|s| s.contains("\r\n"))),
            ("tab", strs.iter().any(|s| s.contains('\t'))),
            ("rtl", strs.iter().any(|s| s.contains("مرحبا"))),
            ("cjk", strs.iter().any(|s| s.contains("東京"))),
            ("emoji", strs.iter().any(|s| s.contains('👍'))),
            ("leading space", strs.iter().any(|s| s.starts_with(' '))),
            ("trailing space", strs.iter().any(|s| s.ends_with(' '))),
            ("quote", strs.iter().any(|s| s.contains('"'))),
        ] {
            assert!(hit, "no {what}");
        }
        let big = rows
            .iter()
            .filter(|r| matches!(r[1].1, SimValue::Int(i) if i.unsigned_abs() > 1 << 53))
            .count();
        assert!((100..=300).contains(&big), "{big} integers beyond 2^53");
        // Not hostile: none of that.
        t.hostile = false;
        assert!((0..3000).all(|r| match value(3, &t, "e", r, 1, "") {
            SimValue::Int(i) => i.unsigned_abs() <= 1_000_000_000_000,
            _ => false,
        }));
    }

    #[test]
    fn currency_prices_and_their_cents() {
        let mut t = task(json!({"required": ["price"], "properties": {
            "price": {"type": "number"}, "Sale_Price": {"type": "number"},
            "rating": {"type": "number"}, "label": {"type": "string"}}}));
        let plain = value(4, &t, "e", 0, 0, "");
        let SimValue::Num(n) = plain else {
            panic!("default price format is a number: {plain:?}")
        };
        assert_eq!(
            price_cents(4, &t, "e", 0, 0),
            Some((n * 100.0).round() as i64)
        );
        t.price_format = PriceFormat::Currency;
        let (mut grouped, mut symbols) = (0, std::collections::HashSet::new());
        for r in 0..2000 {
            for col in [0, 1] {
                match value(4, &t, "e", r, col, "") {
                    SimValue::Str(s) => {
                        let mut ch = s.chars();
                        symbols.insert(ch.next().expect("symbol"));
                        let digits: String = ch.as_str().replace(',', "");
                        let (units, dec) = digits.split_once('.').expect("two decimals");
                        assert_eq!(dec.len(), 2, "{s}");
                        let cents = units.parse::<i64>().expect("units") * 100
                            + dec.parse::<i64>().expect("cents");
                        assert_eq!(price_cents(4, &t, "e", r, col), Some(cents), "{s}");
                        grouped += usize::from(s.contains(','));
                    }
                    SimValue::Null => {
                        assert_eq!(col, 1, "price is required");
                        assert_eq!(price_cents(4, &t, "e", r, col), None);
                    }
                    other => panic!("currency price as {other:?}"),
                }
            }
            // Only columns named like price change; other numbers stay numbers.
            assert!(matches!(
                value(4, &t, "e", r, 2, ""),
                SimValue::Num(_) | SimValue::Null
            ));
        }
        assert!(grouped > 1000, "{grouped} grouped prices");
        assert_eq!(symbols.len(), 3, "{symbols:?}");
        assert_eq!(price_cents(4, &t, "e", 0, 3), None, "not a number column");
        // A bad price cell has no cents.
        t.bad_row_rate = 1.0;
        let r = (0..100)
            .find(|&r| bad_cell(4, &t, "e", r) == Some(0))
            .expect("a bad price");
        assert_eq!(price_cents(4, &t, "e", r, 0), None);
    }

    #[test]
    fn datetime_matches_chrono() {
        let mut s = String::new();
        for secs in [
            0i64,
            951_782_400,
            JAN_1_2026,
            JAN_1_2026 + 5_000_000,
            1_798_761_599,
            4_102_444_800,
        ] {
            s.clear();
            datetime(secs, &mut s);
            let want = chrono::DateTime::from_timestamp(secs, 0)
                .expect("in range")
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn num_csv_text_is_two_decimals() {
        assert_eq!(SimValue::Num(12.5).to_csv_field(), "12.50");
        assert_eq!(SimValue::Num(0.07).to_csv_field(), "0.07");
        assert_eq!(SimValue::Int(-3).to_csv_field(), "-3");
        assert_eq!(SimValue::Null.to_csv_field(), "");
        assert_eq!(SimValue::Num(12.5).to_json(), json!(12.5));
    }

    #[test]
    fn media_ids_round_trip() {
        assert_eq!(media_id(12, 3), "m-12-3");
        assert_eq!(parse_media_id("m-12-3"), Some((12, 3)));
        for bad in [
            "m-12",
            "x-1-2",
            "m--2",
            "m-01-2",
            "m-1-+2",
            "m-1-2-3",
            "m-99999999999999999999-1",
        ] {
            assert_eq!(parse_media_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn media_bytes_are_deterministic_images() {
        let (ct, png) = media_bytes(1, "e", "m-0-2");
        assert_eq!(media_bytes(1, "e", "m-0-2"), (ct, png.clone()));
        assert_ne!(media_bytes(2, "e", "m-0-2").1, png);
        let mut kinds = std::collections::HashSet::new();
        for r in 0..40 {
            let (ct, bytes) = media_bytes(1, "e", &media_id(r, 2));
            kinds.insert(ct);
            match ct {
                "image/png" => assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n"),
                "image/svg+xml" => assert!(bytes.starts_with(b"<svg ")),
                other => panic!("unexpected content type {other}"),
            }
        }
        assert_eq!(kinds.len(), 2);
    }
}
