//! Streaming decoders of export bodies (CSV, JSON array, NDJSON) into raw Arrow batches.
//!
//! A body arrives in arbitrary chunks; [`RawDecoder`] turns it into batches of at most
//! `batch_rows` rows whose columns are all nullable Utf8 (typing is the schema mapper's job).
//! Invariant: memory is bounded by `batch_rows` and `max_record_bytes`, never by body size.

mod columns;
mod csv;
mod json;
mod json_row;
mod scan;
pub mod sniff;

#[cfg(test)]
mod tests;

use arrow::record_batch::RecordBatch;

pub use crate::format::ExportFormat;

use self::csv::CsvDecoder;
use self::json::{Flow, JsonDecoder};

/// Why an export body could not be decoded. Record numbers count data records from 1 (the
/// CSV header is not a record); offsets are byte positions in the body as received.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body held no header (CSV) or no value (JSON) at all.
    #[error("the {format} export body is empty")]
    Empty { format: ExportFormat },
    /// The body is an HTML page or an error object, not an export.
    #[error("the {format} export body is not data ({reason}): {excerpt}")]
    NotData {
        format: ExportFormat,
        reason: &'static str,
        /// The body's first characters (at most 200).
        excerpt: String,
    },
    /// The body ended inside a record, or before the JSON array was closed; `offset` is
    /// where it ended.
    #[error("the {format} export ended early (at byte {offset}): {detail}")]
    Truncated {
        format: ExportFormat,
        offset: u64,
        detail: String,
    },
    /// CSV syntax error inside a record.
    #[error("CSV record {record} (byte {offset}): {message}")]
    Csv {
        record: u64,
        offset: u64,
        message: String,
    },
    /// A CSV record whose field count differs from the header's.
    #[error("CSV record {record} (byte {offset}) has {found} fields but the header has {expected}")]
    RaggedRow {
        record: u64,
        offset: u64,
        expected: usize,
        found: usize,
    },
    /// JSON syntax error, or a row that is not an object.
    #[error("JSON row {record} (byte {offset}): {message}")]
    Json {
        record: u64,
        offset: u64,
        message: String,
    },
    /// A value that is not valid UTF-8.
    #[error("record {record}, column `{column}`: value is not valid UTF-8")]
    InvalidUtf8 { record: u64, column: String },
    /// A single record larger than `max_record_bytes` (protects memory).
    #[error("{format} record {record} (byte {offset}) is larger than the limit of {limit} bytes")]
    RecordTooLarge {
        format: ExportFormat,
        record: u64,
        offset: u64,
        limit: usize,
    },
    /// The CSV header (or the JSON field list) names a column twice; positions are 1-based.
    #[error("column `{name}` is named twice (columns {first} and {second})")]
    DuplicateHeader {
        name: String,
        first: usize,
        second: usize,
    },
    /// A CSV header field is empty; `column` is 1-based.
    #[error("CSV header column {column} has an empty name")]
    EmptyHeader { column: usize },
    /// A CSV header field is not valid UTF-8; `column` is 1-based.
    #[error("CSV header column {column} is not valid UTF-8")]
    HeaderNotUtf8 { column: usize },
    /// More columns than [`MAX_COLUMNS`] (a CSV header, or a JSON field list): refused
    /// before any buffer is sized by the count.
    #[error(
        "the {format} export has {found} columns, more than the limit of {limit}; a result this wide is refused to protect memory"
    )]
    TooManyColumns {
        format: ExportFormat,
        found: usize,
        limit: usize,
    },
    /// `push`/`finish` after an error or after `finish`: the body must be decoded afresh.
    #[error("the decoder cannot be used any more: {reason}")]
    Closed { reason: &'static str },
}

/// Most columns an export may have. Titan schemas have tens; a header or key set past this
/// is hostile or broken, and each column costs buffers per batch.
pub const MAX_COLUMNS: usize = 10_000;

/// Limits of a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderOptions {
    /// Rows per batch (at least 1).
    pub batch_rows: usize,
    /// A batch also closes once its values reach this many bytes (capped at 64 MiB), so a
    /// wide export's batches stay as small in memory as a narrow one's: 8192 rows of 50
    /// columns are ~6 MB, and several batches are in flight between the stages.
    pub batch_bytes: usize,
    /// A single record larger than this is an error; protects memory (capped at 1 GiB).
    pub max_record_bytes: usize,
}

/// Measured on 300k rows of the 50-column bench shape: 2 MiB batches (~2900 rows) instead
/// of 8192 rows took peak RSS from ~230 to ~130 MiB at the same speed; an 11-column
/// products batch (~1.5 MB) is not affected.
pub const DEFAULT_BATCH_BYTES: usize = 2 << 20;

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions {
            batch_rows: 8192,
            batch_bytes: DEFAULT_BATCH_BYTES,
            max_record_bytes: 16 << 20,
        }
    }
}

impl DecoderOptions {
    fn clamped(self) -> Self {
        DecoderOptions {
            batch_rows: self.batch_rows.max(1),
            batch_bytes: self.batch_bytes.clamp(1, columns::MAX_BATCH_BYTES),
            max_record_bytes: self
                .max_record_bytes
                .clamp(1, columns::MAX_RECORD_BYTES_CAP),
        }
    }
}

const UTF8_BOM: &[u8; 3] = b"\xEF\xBB\xBF";
/// Bytes kept for a [`DecodeError::NotData`] excerpt: 200 characters of up to 4 bytes.
const EXCERPT_BYTES: usize = 800;
const EXCERPT_CHARS: usize = 200;

/// Push decoder: feed chunks, pull completed batches.
///
/// Drain [`RawDecoder::next_batch`] after every push: completed batches queue up until taken,
/// so one huge chunk yields many batches at once. Errors close the decoder.
pub struct RawDecoder {
    format: ExportFormat,
    inner: Inner,
    sniff: Sniff,
    life: Life,
}

enum Inner {
    Csv(CsvDecoder),
    Json(JsonDecoder),
}

/// Looking at the start of the body: a UTF-8 BOM is dropped, and the first non-blank byte
/// tells HTML (and, for CSV, JSON) apart from data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sniff {
    /// This many bytes of the BOM matched so far.
    Bom(usize),
    Looking,
    Decided,
}

enum Life {
    Open,
    /// The body is not data; its start is collected for the excerpt before failing.
    NotData {
        reason: &'static str,
        excerpt: Vec<u8>,
    },
    /// An error to report on the first call (an invalid JSON field list).
    Invalid(DecodeError),
    Failed,
    Finished,
}

impl RawDecoder {
    /// CSV with a header row; columns = header names in order.
    pub fn csv(opts: DecoderOptions) -> Self {
        Self::with_inner(
            ExportFormat::Csv,
            Inner::Csv(CsvDecoder::new(opts.clamped())),
            Life::Open,
        )
    }

    /// JSON: a top-level array of row objects, or NDJSON (one object per line); auto-detected
    /// from the first non-whitespace byte. Columns = `fields` in order (missing keys → null,
    /// keys not listed are ignored).
    pub fn json(fields: Vec<String>, opts: DecoderOptions) -> Self {
        let life = match first_duplicate(&fields) {
            _ if fields.len() > MAX_COLUMNS => Life::Invalid(DecodeError::TooManyColumns {
                format: ExportFormat::Json,
                found: fields.len(),
                limit: MAX_COLUMNS,
            }),
            Some((name, first, second)) => Life::Invalid(DecodeError::DuplicateHeader {
                name,
                first,
                second,
            }),
            None => Life::Open,
        };
        Self::with_inner(
            ExportFormat::Json,
            Inner::Json(JsonDecoder::new(fields, opts.clamped())),
            life,
        )
    }

    /// A decoder for `format`; `fields` is used by JSON only (CSV takes its header).
    pub fn new(format: ExportFormat, fields: Vec<String>, opts: DecoderOptions) -> Self {
        match format {
            ExportFormat::Csv => Self::csv(opts),
            ExportFormat::Json => Self::json(fields, opts),
        }
    }

    fn with_inner(format: ExportFormat, inner: Inner, life: Life) -> Self {
        RawDecoder {
            format,
            inner,
            sniff: Sniff::Bom(0),
            life,
        }
    }

    /// Feed the next chunk of the body. May produce zero or more complete batches (retrieve
    /// with next_batch). After an error the decoder is closed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        self.check_open()?;
        let result = self.push_open(chunk);
        if result.is_err() {
            self.life = Life::Failed;
        }
        result
    }

    /// Completed batches, oldest first (each has at most batch_rows rows).
    pub fn next_batch(&mut self) -> Option<RecordBatch> {
        match &mut self.inner {
            Inner::Csv(d) => d.next_batch(),
            Inner::Json(d) => d.next_batch(),
        }
    }

    /// The body ended: flush the last partial batch; error if the input ended mid-record,
    /// the JSON array was not closed, or the body was empty of any header (CSV). If earlier
    /// batches were left in the queue, this returns the oldest and `next_batch` the rest.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        self.check_open()?;
        let life = std::mem::replace(&mut self.life, Life::Finished);
        let result = match life {
            Life::NotData { reason, excerpt } => Err(self.not_data(reason, &excerpt)),
            _ => self.finish_open(),
        };
        if result.is_err() {
            self.life = Life::Failed;
        }
        result
    }

    /// Data records decoded so far (header excluded).
    pub fn records(&self) -> u64 {
        match &self.inner {
            Inner::Csv(d) => d.records(),
            Inner::Json(d) => d.records(),
        }
    }

    /// Whether the body was recognised as not data (an HTML page, an error envelope) and
    /// only its excerpt is being collected; `push` or `finish` reports the error.
    pub fn is_not_data(&self) -> bool {
        matches!(self.life, Life::NotData { .. })
    }

    /// Column names (CSV: known after the header is read; JSON: the fields).
    pub fn columns(&self) -> Option<&[String]> {
        match &self.inner {
            Inner::Csv(d) => d.columns(),
            Inner::Json(d) => Some(d.columns()),
        }
    }

    fn check_open(&mut self) -> Result<(), DecodeError> {
        match std::mem::replace(&mut self.life, Life::Failed) {
            Life::Invalid(e) => Err(e),
            Life::Failed => Err(DecodeError::Closed {
                reason: "an earlier call failed",
            }),
            Life::Finished => {
                self.life = Life::Finished;
                Err(DecodeError::Closed {
                    reason: "finish was already called",
                })
            }
            open => {
                self.life = open;
                Ok(())
            }
        }
    }

    fn push_open(&mut self, mut chunk: &[u8]) -> Result<(), DecodeError> {
        if let Life::NotData { reason, excerpt } = &mut self.life {
            excerpt.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - excerpt.len())]);
            if excerpt.len() < EXCERPT_BYTES {
                return Ok(());
            }
            let (reason, excerpt) = (*reason, std::mem::take(excerpt));
            return Err(self.not_data(reason, &excerpt));
        }
        while self.sniff != Sniff::Decided {
            let Some(&b) = chunk.first() else {
                return Ok(());
            };
            match self.sniff {
                Sniff::Bom(n) if b == UTF8_BOM[n] => {
                    chunk = &chunk[1..];
                    self.sniff = if n + 1 == UTF8_BOM.len() {
                        self.set_base(UTF8_BOM.len() as u64);
                        Sniff::Looking
                    } else {
                        Sniff::Bom(n + 1)
                    };
                }
                Sniff::Bom(n) => {
                    self.sniff = Sniff::Looking;
                    if n > 0 {
                        // A BOM prefix that is not a BOM: data (and certainly not UTF-8).
                        self.sniff = Sniff::Decided;
                        self.push_inner(&UTF8_BOM[..n])?;
                    }
                }
                Sniff::Looking => {
                    let Some(p) = chunk.iter().position(|b| !b.is_ascii_whitespace()) else {
                        // Leading blanks: the format decoders skip them themselves.
                        return self.push_inner(chunk);
                    };
                    if let Some(reason) = self.not_data_start(chunk[p]) {
                        self.life = Life::NotData {
                            reason,
                            excerpt: Vec::new(),
                        };
                        return self.push_open(&chunk[p..]);
                    }
                    self.sniff = Sniff::Decided;
                }
                Sniff::Decided => {}
            }
        }
        self.push_inner(chunk)
    }

    fn push_inner(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        match &mut self.inner {
            Inner::Csv(d) => d.push(chunk),
            Inner::Json(d) => match d.push(chunk)? {
                Flow::Continue => Ok(()),
                Flow::NotData { reason, excerpt } => {
                    self.life = Life::NotData {
                        reason,
                        excerpt: Vec::new(),
                    };
                    self.push_open(&excerpt)
                }
            },
        }
    }

    fn finish_open(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        if let Sniff::Bom(n @ 1..) = self.sniff {
            self.sniff = Sniff::Decided;
            self.push_inner(&UTF8_BOM[..n])?;
        }
        match &mut self.inner {
            Inner::Csv(d) => d.finish(),
            Inner::Json(d) => d.finish(),
        }
    }

    fn set_base(&mut self, base: u64) {
        match &mut self.inner {
            Inner::Csv(d) => d.set_base(base),
            Inner::Json(d) => d.set_base(base),
        }
    }

    /// The first non-blank byte says the body is not data: HTML for both formats, and for
    /// CSV any JSON object (a CSV header does not start with `{`).
    fn not_data_start(&self, b: u8) -> Option<&'static str> {
        match (b, self.format) {
            (b'<', _) => Some("it looks like an HTML page"),
            (b'{', ExportFormat::Csv) => Some("it is a JSON object, not CSV"),
            _ => None,
        }
    }

    fn not_data(&self, reason: &'static str, excerpt: &[u8]) -> DecodeError {
        DecodeError::NotData {
            format: self.format,
            reason,
            excerpt: excerpt_text(excerpt),
        }
    }
}

/// At most [`EXCERPT_CHARS`] characters of `bytes`, on one line.
fn excerpt_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The first name listed twice, with both 1-based positions.
fn first_duplicate(names: &[String]) -> Option<(String, usize, usize)> {
    let mut seen = std::collections::HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if let Some(first) = seen.insert(name.as_str(), i) {
            return Some((name.clone(), first + 1, i + 1));
        }
    }
    None
}
