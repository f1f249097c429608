//! CSV (header row, RFC 4180 quoting, LF or CRLF) → raw columns.
//!
//! Records are parsed in place from each chunk, straight into the column buffers; only a
//! record cut by a chunk boundary is copied (once) into a carry buffer, whose end a small
//! resumable framer finds, so no byte is scanned more than twice whatever the chunking.
//! Empty unquoted cell → null, quoted `""` → empty string; blank lines are skipped.

use arrow::record_batch::RecordBatch;

use super::columns::Columns;
use super::{DecodeError, DecoderOptions, ExportFormat, MAX_COLUMNS, scan};

/// Receives the fields of one record as the parser finds them.
trait Sink {
    /// Appends bytes to field `col` (a quoted field may arrive in several pieces).
    fn put(&mut self, col: usize, bytes: &[u8]);
    /// Field `col` is complete; `non_null` is false only for an empty unquoted field.
    fn end_field(&mut self, col: usize, non_null: bool);
}

impl Sink for Columns {
    #[inline]
    fn put(&mut self, col: usize, bytes: &[u8]) {
        Columns::put(self, col, bytes);
    }

    #[inline]
    fn end_field(&mut self, col: usize, non_null: bool) {
        self.set_valid(col, non_null);
    }
}

/// The header's fields, as raw bytes until validated, and how many there were: fields
/// past [`MAX_COLUMNS`] are counted, not kept.
#[derive(Default)]
struct HeaderSink(Vec<Vec<u8>>, usize);

impl Sink for HeaderSink {
    fn put(&mut self, col: usize, bytes: &[u8]) {
        self.end_field(col, true);
        if let Some(field) = self.0.get_mut(col) {
            field.extend_from_slice(bytes);
        }
    }

    fn end_field(&mut self, col: usize, _non_null: bool) {
        self.1 = self.1.max(col + 1);
        while self.0.len() <= col.min(MAX_COLUMNS) {
            self.0.push(Vec::new());
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A record of `fields` fields spanning `len` bytes; `terminated` is false when it ended
    /// at the end of the body instead of at a line break.
    Record {
        len: usize,
        fields: usize,
        terminated: bool,
    },
    /// An empty line of `len` bytes.
    Blank { len: usize },
    /// The input ended before the record did (only when not at the end of the body).
    Incomplete,
}

#[derive(Debug, PartialEq, Eq)]
enum Syntax {
    /// The body ended inside the quoted field `col`.
    Unterminated { col: usize },
    /// A byte other than `,`, `"` or a line break right after the closing quote of `col`.
    AfterQuote { col: usize, at: usize },
}

/// Parses one record at the start of `input` into `sink`. With `eof`, the end of `input` is
/// the end of the body (which may lack a final line break).
fn parse_record<S: Sink>(input: &[u8], eof: bool, sink: &mut S) -> Result<Parsed, Syntax> {
    let mut i = 0;
    let mut col = 0;
    loop {
        if input.get(i) == Some(&b'"') {
            i += 1;
            loop {
                let Some(q) = scan::find1(&input[i..], b'"') else {
                    return if eof {
                        Err(Syntax::Unterminated { col })
                    } else {
                        Ok(Parsed::Incomplete)
                    };
                };
                sink.put(col, &input[i..i + q]);
                i += q + 1;
                let (len, terminated) = match (input.get(i), input.get(i + 1)) {
                    (Some(b'"'), _) => {
                        sink.put(col, b"\"");
                        i += 1;
                        continue;
                    }
                    (Some(b','), _) => {
                        sink.end_field(col, true);
                        col += 1;
                        i += 1;
                        break;
                    }
                    (Some(b'\n'), _) => (i + 1, true),
                    (Some(b'\r'), Some(b'\n')) => (i + 2, true),
                    (Some(b'\r'), None) | (None, _) if eof => (input.len(), false),
                    (Some(b'\r'), None) | (None, _) => return Ok(Parsed::Incomplete),
                    _ => return Err(Syntax::AfterQuote { col, at: i }),
                };
                sink.end_field(col, true);
                return Ok(Parsed::Record {
                    len,
                    fields: col + 1,
                    terminated,
                });
            }
        } else {
            let start = i;
            let (end, len, terminated) = match scan::find2(&input[i..], b',', b'\n') {
                Some(k) if input[start + k] == b',' => {
                    sink.put(col, &input[start..start + k]);
                    sink.end_field(col, k > 0);
                    col += 1;
                    i = start + k + 1;
                    continue;
                }
                Some(k) => (start + k, start + k + 1, true),
                None if eof => (input.len(), input.len(), false),
                None => return Ok(Parsed::Incomplete),
            };
            // Line break (or end of body): a CR before it belongs to the line ending.
            let end = if end > start && input[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            if col == 0 && end == start {
                return Ok(Parsed::Blank { len });
            }
            sink.put(col, &input[start..end]);
            sink.end_field(col, end > start);
            return Ok(Parsed::Record {
                len,
                fields: col + 1,
                terminated,
            });
        }
    }
}

/// Finds where a record cut by a chunk boundary ends, across any number of chunks, using the
/// parser's own quoting rules.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Framer {
    #[default]
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: an escaped quote or the closing one.
    QuoteInQuoted,
}

impl Framer {
    /// Index just past the line break ending the record, if it is in `input`.
    fn scan(&mut self, input: &[u8]) -> Option<usize> {
        for (k, &b) in input.iter().enumerate() {
            *self = match (*self, b) {
                (Framer::Quoted, b'"') => Framer::QuoteInQuoted,
                (Framer::Quoted, _) => Framer::Quoted,
                (Framer::FieldStart, b'"') | (Framer::QuoteInQuoted, b'"') => Framer::Quoted,
                (_, b'\n') => {
                    *self = Framer::FieldStart;
                    return Some(k + 1);
                }
                (_, b',') => Framer::FieldStart,
                _ => Framer::Unquoted,
            };
        }
        None
    }
}

/// Push decoder for CSV bodies (the BOM is already stripped by the caller).
pub(crate) struct CsvDecoder {
    opts: DecoderOptions,
    header: HeaderSink,
    /// Set once the header is read.
    names: Vec<String>,
    cols: Option<Columns>,
    /// Start of a record cut by a chunk boundary.
    carry: Vec<u8>,
    framer: Framer,
    /// Body offset of the first byte not yet part of a finished record (the carry's start).
    offset: u64,
    /// Body bytes received so far.
    received: u64,
}

impl CsvDecoder {
    pub(crate) fn new(opts: DecoderOptions) -> Self {
        CsvDecoder {
            opts,
            header: HeaderSink::default(),
            names: Vec::new(),
            cols: None,
            carry: Vec::new(),
            framer: Framer::default(),
            offset: 0,
            received: 0,
        }
    }

    /// Bytes before the first one pushed (a stripped BOM).
    pub(crate) fn set_base(&mut self, base: u64) {
        self.offset = base;
        self.received = base;
    }

    pub(crate) fn records(&self) -> u64 {
        self.cols.as_ref().map_or(0, Columns::records)
    }

    pub(crate) fn columns(&self) -> Option<&[String]> {
        self.cols.as_ref().map(|_| self.names.as_slice())
    }

    pub(crate) fn next_batch(&mut self) -> Option<RecordBatch> {
        self.cols.as_mut()?.next_batch()
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        self.received += chunk.len() as u64;
        let mut input = chunk;
        if !self.carry.is_empty() {
            let Some(n) = self.framer.scan(input) else {
                self.carry.extend_from_slice(input);
                return self.check_carry();
            };
            self.carry.extend_from_slice(&input[..n]);
            self.check_carry()?;
            input = &input[n..];
            let carry = std::mem::take(&mut self.carry);
            let done = self.record(&carry, false);
            self.carry = carry;
            self.carry.clear();
            self.framed(done?)?;
        }
        while !input.is_empty() {
            // A record may not grow past the limit, even inside one large chunk.
            let window = &input[..input.len().min(self.opts.max_record_bytes)];
            match self.record(window, false)? {
                Some(len) => {
                    self.offset += len as u64;
                    input = &input[len..];
                }
                None => {
                    if input.len() > self.opts.max_record_bytes {
                        return Err(self.too_large());
                    }
                    self.framer = Framer::default();
                    let framed = self.framer.scan(input);
                    debug_assert!(framed.is_none(), "the parser found this record incomplete");
                    self.carry.extend_from_slice(input);
                    break;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            let done = self.record(&carry, true)?;
            self.framed(done)?;
        }
        match &mut self.cols {
            None => Err(DecodeError::Empty {
                format: ExportFormat::Csv,
            }),
            Some(cols) => cols.finish(),
        }
    }

    /// The carried record was complete, so the parser must have taken it whole.
    fn framed(&mut self, done: Option<usize>) -> Result<(), DecodeError> {
        match done {
            Some(len) => {
                self.offset += len as u64;
                Ok(())
            }
            None => Err(DecodeError::Csv {
                record: self.records() + 1,
                offset: self.offset,
                message: "record boundary mismatch between framer and parser".into(),
            }),
        }
    }

    fn check_carry(&self) -> Result<(), DecodeError> {
        if self.carry.len() > self.opts.max_record_bytes {
            return Err(self.too_large());
        }
        Ok(())
    }

    fn too_large(&self) -> DecodeError {
        DecodeError::RecordTooLarge {
            format: ExportFormat::Csv,
            record: self.records() + u64::from(self.cols.is_some()),
            offset: self.offset,
            limit: self.opts.max_record_bytes,
        }
    }

    /// Decodes the record at the start of `input` (the header first). `Some(len)` when it
    /// was complete, `None` (and nothing kept) when `input` ended first.
    fn record(&mut self, input: &[u8], eof: bool) -> Result<Option<usize>, DecodeError> {
        let Some(cols) = &mut self.cols else {
            self.header.0.clear();
            self.header.1 = 0;
            return match parse_record(input, eof, &mut self.header) {
                Ok(Parsed::Incomplete) => Ok(None),
                Ok(Parsed::Blank { len }) => Ok(Some(len)),
                Ok(Parsed::Record { len, .. }) => {
                    self.set_header()?;
                    Ok(Some(len))
                }
                Err(e) => Err(self.syntax(e, 0)),
            };
        };
        let parsed = parse_record(input, eof, cols);
        let record = cols.records() + 1;
        let expected = cols.len();
        match parsed {
            Ok(Parsed::Record {
                len,
                fields,
                terminated,
            }) => {
                if fields != expected {
                    cols.rollback_row();
                    return Err(if !terminated && fields < expected {
                        DecodeError::Truncated {
                            format: ExportFormat::Csv,
                            offset: self.received,
                            detail: format!(
                                "record {record} ends after {fields} of {expected} fields"
                            ),
                        }
                    } else {
                        DecodeError::RaggedRow {
                            record,
                            offset: self.offset,
                            expected,
                            found: fields,
                        }
                    });
                }
                cols.commit_row()?;
                Ok(Some(len))
            }
            Ok(Parsed::Blank { len }) => Ok(Some(len)),
            Ok(Parsed::Incomplete) => {
                cols.rollback_row();
                Ok(None)
            }
            Err(e) => {
                cols.rollback_row();
                Err(self.syntax(e, record))
            }
        }
    }

    fn syntax(&self, e: Syntax, record: u64) -> DecodeError {
        match e {
            Syntax::Unterminated { col } => DecodeError::Truncated {
                format: ExportFormat::Csv,
                offset: self.received,
                detail: format!(
                    "record {record} ends inside the quoted field {}",
                    self.column_name(col)
                ),
            },
            Syntax::AfterQuote { col, at } => DecodeError::Csv {
                record,
                offset: self.offset + at as u64,
                message: format!(
                    "unexpected character after the closing quote of field {}",
                    self.column_name(col)
                ),
            },
        }
    }

    fn column_name(&self, col: usize) -> String {
        match self.names.get(col) {
            Some(name) => format!("`{name}`"),
            None => format!("#{}", col + 1),
        }
    }

    /// Validates the header just parsed and opens the columns.
    fn set_header(&mut self) -> Result<(), DecodeError> {
        if self.header.1 > MAX_COLUMNS {
            return Err(DecodeError::TooManyColumns {
                format: ExportFormat::Csv,
                found: self.header.1,
                limit: MAX_COLUMNS,
            });
        }
        let mut names = Vec::with_capacity(self.header.0.len());
        for (i, raw) in self.header.0.drain(..).enumerate() {
            let name =
                String::from_utf8(raw).map_err(|_| DecodeError::HeaderNotUtf8 { column: i + 1 })?;
            if name.is_empty() {
                return Err(DecodeError::EmptyHeader { column: i + 1 });
            }
            names.push(name);
        }
        if let Some((name, first, second)) = super::first_duplicate(&names) {
            return Err(DecodeError::DuplicateHeader {
                name,
                first,
                second,
            });
        }
        self.cols = Some(Columns::new(
            &names,
            self.opts.batch_rows,
            self.opts.batch_bytes,
        ));
        self.names = names;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields as (value, non_null) per field of one record.
    #[derive(Default)]
    struct Fields(Vec<(Vec<u8>, bool)>);

    impl Sink for Fields {
        fn put(&mut self, col: usize, bytes: &[u8]) {
            while self.0.len() <= col {
                self.0.push((Vec::new(), false));
            }
            self.0[col].0.extend_from_slice(bytes);
        }
        fn end_field(&mut self, col: usize, non_null: bool) {
            self.put(col, b"");
            self.0[col].1 = non_null;
        }
    }

    fn one(input: &str, eof: bool) -> (Result<Parsed, Syntax>, Vec<(String, bool)>) {
        let mut f = Fields::default();
        let r = parse_record(input.as_bytes(), eof, &mut f);
        let fields =
            f.0.into_iter()
                .map(|(v, n)| (String::from_utf8(v).expect("test input is UTF-8"), n))
                .collect();
        (r, fields)
    }

    fn rec(len: usize, fields: usize, terminated: bool) -> Result<Parsed, Syntax> {
        Ok(Parsed::Record {
            len,
            fields,
            terminated,
        })
    }

    #[test]
    fn quoting_rules() {
        let (r, f) = one("a,\"b,\"\"c\"\"\nd\",,\"\"\nnext", false);
        assert_eq!(r, rec(18, 4, true));
        assert_eq!(
            f,
            vec![
                ("a".into(), true),
                ("b,\"c\"\nd".into(), true),
                ("".into(), false),
                ("".into(), true),
            ]
        );
    }

    #[test]
    fn crlf_and_bare_cr() {
        let (r, f) = one("a,b\r\n", false);
        assert_eq!(r, rec(5, 2, true));
        assert_eq!(f, vec![("a".into(), true), ("b".into(), true)]);
        let (r, f) = one("\"a\"\r\nx", false);
        assert_eq!(r, rec(5, 1, true));
        assert_eq!(f, vec![("a".into(), true)]);
        // A CR inside a line is data.
        let (_, f) = one("a\rb\n", false);
        assert_eq!(f, vec![("a\rb".into(), true)]);
    }

    #[test]
    fn incomplete_unless_at_end_of_body() {
        for cut in ["a,b", "a,\"b", "a,\"b\"", "a,b\r", "a,\"b\"\r", "a,"] {
            assert_eq!(one(cut, false).0, Ok(Parsed::Incomplete), "{cut:?}");
        }
        assert_eq!(one("a,b", true).0, rec(3, 2, false));
        assert_eq!(one("a,b\r", true).1[1], ("b".into(), true));
        assert_eq!(one("a,\"b\"", true).0, rec(5, 2, false));
        assert_eq!(one("a,", true).0, rec(2, 2, false));
        assert_eq!(one("a,\"b", true).0, Err(Syntax::Unterminated { col: 1 }));
    }

    #[test]
    fn blank_lines_and_garbage_after_quote() {
        assert_eq!(one("\n", false).0, Ok(Parsed::Blank { len: 1 }));
        assert_eq!(one("\r\nx", false).0, Ok(Parsed::Blank { len: 2 }));
        assert_eq!(one("", true).0, Ok(Parsed::Blank { len: 0 }));
        // A quoted empty single field is a record, not a blank line.
        assert_eq!(one("\"\"\n", false).0, rec(3, 1, true));
        assert_eq!(
            one("a,\"b\"c\n", false).0,
            Err(Syntax::AfterQuote { col: 1, at: 5 })
        );
        // A quote inside an unquoted field is kept literally.
        assert_eq!(one("a\"b\n", false).1, vec![("a\"b".into(), true)]);
    }

    #[test]
    fn framer_agrees_with_parser_on_every_split() {
        let input = b"x,\"a,\"\"b\r\n\"\"\",c\"d,e\r\nnext";
        let whole = one(std::str::from_utf8(input).expect("UTF-8"), false).0;
        let Ok(Parsed::Record { len, .. }) = whole else {
            panic!("a whole record: {whole:?}");
        };
        for cut in 0..=input.len() {
            let mut f = Framer::default();
            let first = f.scan(&input[..cut]);
            let end = first.or_else(|| f.scan(&input[cut..]).map(|n| n + cut));
            assert_eq!(end, Some(len), "cut at {cut}");
        }
    }
}
