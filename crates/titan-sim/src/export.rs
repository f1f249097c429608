//! Export bodies (JSON array or CSV) generated on the fly in ~64 KiB chunks.
//!
//! Invariant: memory stays O(chunk) whatever the row count; cells are written
//! straight from [`Generator`] into one reused buffer (no per-row JSON values).
//! JSON is `[` + row objects joined by `,\n` + `]\n`; CSV is RFC 4180 with a header.

use bytes::Bytes;

use super::data::{Cell, Generator};
use super::scenario::SimTask;

/// Target size of one body chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Same enum the connector uses, so tests can pass one value to both sides.
pub use crate::format::ExportFormat;

/// `Content-Type` of an export body.
pub fn content_type(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Json => "application/json",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Rows,
    Done,
}

/// The chunks of one export body; also usable without HTTP (e.g. to make bench inputs).
pub struct ExportChunks {
    generator: Generator,
    format: ExportFormat,
    crlf: bool,
    bom: bool,
    rows: u64,
    next_row: u64,
    stage: Stage,
    buf: Vec<u8>,
    scratch: String,
    /// JSON: `"name":` per column, escaped once.
    json_keys: Vec<Vec<u8>>,
    /// Pending mid-row split: (row, salt), see [`Self::split_in_row`].
    split: Option<(u64, u64)>,
    /// Bytes after the split point, sent first in the next chunk.
    carry: Vec<u8>,
    split_hit: bool,
}

impl ExportChunks {
    /// `rows` rows of execution `exec_id` of `task`; CSV line ends and BOM follow the task flags.
    pub fn new(
        seed: u64,
        task: &SimTask,
        exec_id: &str,
        rows: u64,
        format: ExportFormat,
        base_url: &str,
    ) -> Self {
        let generator = Generator::new(seed, task, exec_id, base_url);
        let json_keys = generator
            .columns
            .iter()
            .map(|c| {
                let mut k = Vec::with_capacity(c.name.len() + 3);
                json_str(&mut k, &c.name);
                k.push(b':');
                k
            })
            .collect();
        ExportChunks {
            generator,
            format,
            crlf: task.csv_crlf,
            bom: task.csv_bom,
            rows,
            next_row: 0,
            stage: Stage::Head,
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
            scratch: String::with_capacity(256),
            json_keys,
            split: None,
            carry: Vec::new(),
            split_hit: false,
        }
    }

    /// Ends one chunk inside `row` (clamped to the last row; inside the head when there
    /// are no rows), 1 + `salt` % (len - 1) bytes into it, so a fault can act mid-row.
    /// The bytes are unchanged: concatenated chunks are still the whole body.
    pub(crate) fn split_in_row(mut self, row: u64, salt: u64) -> Self {
        self.split = Some((row.min(self.rows.saturating_sub(1)), salt));
        self
    }

    /// True once, right after the chunk that ends at the split point was returned.
    pub(crate) fn take_split_hit(&mut self) -> bool {
        std::mem::take(&mut self.split_hit)
    }

    fn head(&mut self) {
        match self.format {
            ExportFormat::Json => self.buf.push(b'['),
            ExportFormat::Csv => {
                if self.bom {
                    self.buf.extend_from_slice("\u{FEFF}".as_bytes());
                }
                for (i, c) in self.generator.columns.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    csv_field(&mut self.buf, &c.name);
                }
                self.line_end();
            }
        }
    }

    fn line_end(&mut self) {
        if self.crlf {
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.buf.push(b'\n');
        }
    }

    fn json_row(&mut self, row: u64) {
        if row > 0 {
            self.buf.extend_from_slice(b",\n");
        }
        self.buf.push(b'{');
        for col in 0..self.json_keys.len() {
            if col > 0 {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(&self.json_keys[col]);
            match self.generator.cell(row, col, &mut self.scratch) {
                Cell::Null => self.buf.extend_from_slice(b"null"),
                Cell::Text => json_str(&mut self.buf, &self.scratch),
                Cell::Raw => self.buf.extend_from_slice(self.scratch.as_bytes()),
                other => scalar(&mut self.buf, other),
            }
        }
        self.buf.push(b'}');
    }

    fn csv_row(&mut self, row: u64) {
        let ncols = self.generator.columns.len();
        for col in 0..ncols {
            if col > 0 {
                self.buf.push(b',');
            }
            match self.generator.cell(row, col, &mut self.scratch) {
                // A lone empty cell would be a blank line, which CSV readers skip.
                Cell::Null if ncols == 1 => self.buf.extend_from_slice(b"\"\""),
                Cell::Null => {}
                Cell::Text | Cell::Raw => csv_field(&mut self.buf, &self.scratch),
                other => scalar(&mut self.buf, other),
            }
        }
        self.line_end();
    }
}

impl Iterator for ExportChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.stage == Stage::Done && self.carry.is_empty() {
            return None;
        }
        self.buf.clear();
        self.buf.append(&mut self.carry);
        if self.stage == Stage::Head {
            self.head();
            self.stage = Stage::Rows;
        }
        let mut cut = None;
        while self.stage == Stage::Rows && self.buf.len() < CHUNK_BYTES && self.next_row < self.rows
        {
            let row = self.next_row;
            let start = self.buf.len();
            match self.format {
                ExportFormat::Json => self.json_row(row),
                ExportFormat::Csv => self.csv_row(row),
            }
            self.next_row += 1;
            if let Some((at, salt)) = self.split
                && at == row
            {
                cut = Some(start + within(self.buf.len() - start, salt));
                break;
            }
        }
        if self.stage == Stage::Rows && self.next_row == self.rows {
            if self.format == ExportFormat::Json {
                self.buf.extend_from_slice(b"]\n");
            }
            self.stage = Stage::Done;
        }
        if self.rows == 0
            && let Some((_, salt)) = self.split
        {
            cut = Some(within(self.buf.len(), salt));
        }
        if let Some(cut) = cut {
            self.carry.extend_from_slice(&self.buf[cut..]);
            self.buf.truncate(cut);
            self.split = None;
            self.split_hit = true;
        }
        Some(Bytes::copy_from_slice(&self.buf))
    }
}

/// An offset strictly inside a span of `len` bytes (1..len), or 1 for tiny spans.
fn within(len: usize, salt: u64) -> usize {
    1 + (salt % (len.saturating_sub(1).max(1) as u64)) as usize
}

/// Writes Int/Cents/Bool cells (identical text in JSON and CSV).
fn scalar(buf: &mut Vec<u8>, cell: Cell) {
    match cell {
        Cell::Int(i) => int(buf, i),
        Cell::Cents(c) => {
            if c < 0 {
                buf.push(b'-');
            }
            let c = c.unsigned_abs();
            uint(buf, c / 100);
            buf.extend_from_slice(&[b'.', b'0' + (c % 100 / 10) as u8, b'0' + (c % 10) as u8]);
        }
        Cell::Bool(true) => buf.extend_from_slice(b"true"),
        Cell::Bool(false) => buf.extend_from_slice(b"false"),
        Cell::Null | Cell::Text | Cell::Raw => {}
    }
}

fn int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    uint(buf, v.unsigned_abs());
}

fn uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// A JSON string literal; non-ASCII is written as raw UTF-8.
fn json_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1F => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xF) as usize],
            ]);
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// RFC 4180: quote when the field holds a delimiter, quote or line break; double inner quotes.
fn csv_field(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        buf.extend_from_slice(bytes);
        return;
    }
    buf.push(b'"');
    for &b in bytes {
        if b == b'"' {
            buf.push(b'"');
        }
        buf.push(b);
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::data::{self, SimValue};
    use super::*;
    use serde_json::json;

    fn task() -> SimTask {
        SimTask {
            id: "t".into(),
            name: "T".into(),
            output_schema: json!({"required": ["name"], "properties": {
                "name": {"type": "string"}, "price": {"type": "number"}, "n": {"type": "integer"},
                "ok": {"type": "boolean"}, "at": {"type": "string", "format": "date-time"},
                "img": {"type": "string", "format": "media"}, "we\"ird,key": {"type": "string"}}}),
            ..SimTask::default()
        }
    }

    fn body(t: &SimTask, rows: u64, f: ExportFormat) -> (Vec<Bytes>, Vec<u8>) {
        let chunks: Vec<Bytes> = ExportChunks::new(9, t, "ex", rows, f, "http://h:1").collect();
        let all = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        (chunks, all)
    }

    #[test]
    fn json_equals_generated_rows() {
        let t = task();
        let (_, all) = body(&t, 500, ExportFormat::Json);
        let text = std::str::from_utf8(&all).expect("utf-8");
        assert!(text.starts_with("[{\"name\":") && text.ends_with("}]\n"));
        assert_eq!(text.matches("},\n{").count(), 499);
        let parsed: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&all).expect("valid json");
        assert_eq!(parsed.len(), 500);
        for (r, obj) in parsed.iter().enumerate() {
            let want = data::row(9, &t, "ex", r as u64, "http://h:1");
            let got: Vec<(&String, &serde_json::Value)> = obj.iter().collect();
            assert_eq!(got.len(), want.len());
            for ((gk, gv), (wk, wv)) in got.iter().zip(&want) {
                assert_eq!(*gk, wk, "key order, row {r}");
                assert_eq!(**gv, wv.to_json(), "row {r} col {wk}");
            }
        }
    }

    #[test]
    fn csv_equals_generated_rows() {
        let t = task();
        let (_, all) = body(&t, 500, ExportFormat::Csv);
        let mut rd = csv::ReaderBuilder::new().from_reader(all.as_slice());
        let header: Vec<String> = rd
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            header,
            ["name", "price", "n", "ok", "at", "img", "we\"ird,key"]
        );
        let mut n = 0;
        for (r, rec) in rd.records().enumerate() {
            let rec = rec.expect("valid record");
            let want: Vec<String> = data::row(9, &t, "ex", r as u64, "http://h:1")
                .iter()
                .map(|(_, v)| v.to_csv_field())
                .collect();
            assert_eq!(rec.iter().collect::<Vec<_>>(), want, "row {r}");
            n += 1;
        }
        assert_eq!(n, 500);
        assert!(!all.contains(&b'\r'));
    }

    #[test]
    fn csv_crlf_and_bom() {
        let mut t = task();
        t.csv_crlf = true;
        t.csv_bom = true;
        let (_, all) = body(&t, 3, ExportFormat::Csv);
        assert!(all.starts_with(b"\xEF\xBB\xBFname,price,n,ok,at,img,\"we\"\"ird,key\"\r\n"));
        assert_eq!(all.windows(2).filter(|w| w == b"\r\n").count(), 4);
        assert!(all.ends_with(b"\r\n"));
    }

    #[test]
    fn zero_rows() {
        let t = task();
        assert_eq!(body(&t, 0, ExportFormat::Json).1, b"[]\n");
        assert_eq!(
            body(&t, 0, ExportFormat::Csv).1,
            b"name,price,n,ok,at,img,\"we\"\"ird,key\"\n"
        );
    }

    #[test]
    fn single_nullable_column_keeps_null_rows() {
        let t = SimTask {
            output_schema: json!({"properties": {"only": {"type": "integer"}}}),
            ..SimTask::default()
        };
        let (_, all) = body(&t, 400, ExportFormat::Csv);
        let recs: Vec<csv::StringRecord> = csv::Reader::from_reader(all.as_slice())
            .records()
            .collect::<Result<_, _>>()
            .expect("valid csv");
        assert_eq!(recs.len(), 400);
        let nulls = (0..400)
            .filter(|r| data::value(9, &t, "ex", *r, 0, "") == SimValue::Null)
            .count();
        assert!(nulls > 0, "test needs at least one null row");
        assert_eq!(recs.iter().filter(|r| r[0].is_empty()).count(), nulls);
    }

    #[test]
    fn chunks_are_bounded() {
        let t = task();
        let (chunks, all) = body(&t, 20_000, ExportFormat::Json);
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < CHUNK_BYTES + 2048));
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.len() >= CHUNK_BYTES)
        );
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&all).expect("valid json");
        assert_eq!(parsed.len(), 20_000);
    }

    #[test]
    fn dirty_data_round_trips_through_both_formats() {
        let mut t = task();
        t.hostile = true;
        t.bad_row_rate = 0.2;
        t.price_format = crate::scenario::PriceFormat::Currency;
        let want: Vec<Vec<SimValue>> = (0..1500)
            .map(|r| {
                data::row(9, &t, "ex", r, "http://h:1")
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect()
            })
            .collect();
        assert!(want.iter().flatten().any(|v| matches!(v, SimValue::Raw(_))));
        assert!(
            want.iter()
                .flatten()
                .any(|v| matches!(v, SimValue::Str(s) if s.contains('\n')))
        );
        let (_, json) = body(&t, 1500, ExportFormat::Json);
        let parsed: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&json).expect("valid json");
        for (r, (obj, want)) in parsed.iter().zip(&want).enumerate() {
            let got: Vec<&serde_json::Value> = obj.values().collect();
            let want: Vec<serde_json::Value> = want.iter().map(SimValue::to_json).collect();
            assert_eq!(got, want.iter().collect::<Vec<_>>(), "json row {r}");
        }
        assert_eq!(parsed.len(), 1500);
        let (_, csv) = body(&t, 1500, ExportFormat::Csv);
        let recs: Vec<csv::StringRecord> = csv::Reader::from_reader(csv.as_slice())
            .records()
            .collect::<Result<_, _>>()
            .expect("valid csv");
        assert_eq!(recs.len(), 1500);
        for (r, (rec, want)) in recs.iter().zip(&want).enumerate() {
            let want: Vec<String> = want.iter().map(SimValue::to_csv_field).collect();
            assert_eq!(rec.iter().collect::<Vec<_>>(), want, "csv row {r}");
        }
    }

    /// Chunks until (and including) the split chunk, then the rest.
    fn split_body(
        t: &SimTask,
        rows: u64,
        f: ExportFormat,
        row: u64,
        salt: u64,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut it = ExportChunks::new(9, t, "ex", rows, f, "http://h:1").split_in_row(row, salt);
        let mut head = Vec::new();
        while let Some(c) = it.next() {
            head.extend_from_slice(&c);
            if it.take_split_hit() {
                let rest = it.flat_map(|c| c.to_vec()).collect();
                return (head, rest);
            }
        }
        panic!("the split point was never reached");
    }

    #[test]
    fn split_inside_a_row_keeps_the_bytes() {
        let t = task();
        for f in [ExportFormat::Json, ExportFormat::Csv] {
            let (_, full) = body(&t, 800, f);
            // Byte offset where row `r` starts: the body of `r` rows without JSON's "]\n".
            let tail = if f == ExportFormat::Json { 2 } else { 0 };
            let start = |r: u64| body(&t, r, f).1.len() - tail;
            for (row, salt) in [(0, 0), (0, 7), (600, 3), (799, 12345), (5000, 1)] {
                let (head, rest) = split_body(&t, 800, f, row, salt);
                assert_eq!([head.clone(), rest].concat(), full, "{f:?} {row}");
                let row = row.min(799);
                let (from, to) = (start(row), start(row + 1));
                assert!(
                    from < head.len() && head.len() < to,
                    "{f:?} row {row}: split at {} not inside {from}..{to}",
                    head.len()
                );
            }
        }
        // No rows: the split falls inside the head.
        let (head, rest) = split_body(&t, 0, ExportFormat::Json, 0, 1);
        assert_eq!((head.as_slice(), rest.as_slice()), (&b"[]"[..], &b"\n"[..]));
    }

    #[test]
    fn escaping() {
        let mut b = Vec::new();
        json_str(&mut b, "a\"b\\c\nd\u{1}é");
        assert_eq!(b, "\"a\\\"b\\\\c\\nd\\u0001é\"".as_bytes());
        b.clear();
        csv_field(&mut b, "plain");
        csv_field(&mut b, "x,\"y\"");
        assert_eq!(b, b"plain\"x,\"\"y\"\"\"");
        b.clear();
        scalar(&mut b, Cell::Cents(-5));
        b.push(b' ');
        scalar(&mut b, Cell::Cents(123_407));
        b.push(b' ');
        scalar(&mut b, Cell::Int(i64::MIN));
        assert_eq!(b, b"-0.05 1234.07 -9223372036854775808");
    }
}
