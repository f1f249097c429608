//! JSON bodies → raw columns: a top-level array of row objects, NDJSON, or one object wrapping
//! the rows array under `data`, `results` or `items`.
//!
//! What lies between rows (`[`, `,`, `]`, blanks) is a byte-level state machine, so any
//! chunking works; rows are parsed in place and only a row cut by a chunk boundary is carried,
//! its end found by a depth-counting framer. Memory: one row plus one batch.

use arrow::record_batch::RecordBatch;

use super::columns::Columns;
use super::json_row::{Object, RowParser, Stop};
use super::{DecodeError, DecoderOptions, EXCERPT_BYTES, ExportFormat};

/// What the caller should do after a push.
pub(crate) enum Flow {
    Continue,
    /// The body's first object is an error object; `excerpt` is the body from there.
    NotData {
        reason: &'static str,
        excerpt: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first non-blank byte.
    Start,
    /// The body's first `{`: a row (NDJSON), a wrapper, or an error object. Parsed again
    /// from the carry as bytes arrive, until it is one of those.
    Probe,
    /// In the rows array, after `[`.
    ArrayOpen,
    /// In the rows array, after a row.
    ArrayNext,
    /// In the rows array, after a `,`.
    ArrayComma,
    /// NDJSON, between rows.
    Lines,
    /// A row cut by a chunk boundary; its start is in the carry.
    InRow,
    /// After the wrapped rows array: the rest of the wrapper object, parsed from the carry.
    Tail,
    /// After the data: only blanks may follow.
    End,
}

/// Result of parsing something from its start.
enum Step {
    Done(usize),
    Incomplete,
    NotData(&'static str),
}

/// Finds the end of a row object cut by chunk boundaries: depth of brackets outside strings.
#[derive(Debug, Default)]
struct Framer {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Framer {
    /// Index just past the row's closing brace, if it is in `input`.
    fn scan(&mut self, input: &[u8]) -> Option<usize> {
        for (k, &b) in input.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(k + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Push decoder for JSON bodies (the BOM is already stripped by the caller).
pub(crate) struct JsonDecoder {
    fields: Vec<String>,
    opts: DecoderOptions,
    cols: Columns,
    parser: RowParser,
    state: State,
    /// Rows come from an array (as opposed to NDJSON lines).
    in_array: bool,
    /// The array sits inside a wrapper object.
    wrapped: bool,
    carry: Vec<u8>,
    /// Body offset of the carry's first byte.
    carry_start: u64,
    framer: Framer,
    /// Body bytes received so far.
    pos: u64,
}

impl JsonDecoder {
    pub(crate) fn new(fields: Vec<String>, opts: DecoderOptions) -> Self {
        JsonDecoder {
            cols: Columns::new(&fields, opts.batch_rows, opts.batch_bytes),
            parser: RowParser::new(&fields),
            fields,
            opts,
            state: State::Start,
            in_array: false,
            wrapped: false,
            carry: Vec::new(),
            carry_start: 0,
            framer: Framer::default(),
            pos: 0,
        }
    }

    /// Bytes before the first one pushed (a stripped BOM).
    pub(crate) fn set_base(&mut self, base: u64) {
        self.pos = base;
    }

    pub(crate) fn records(&self) -> u64 {
        self.cols.records()
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.fields
    }

    pub(crate) fn next_batch(&mut self) -> Option<RecordBatch> {
        self.cols.next_batch()
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Flow, DecodeError> {
        let at = self.pos;
        self.pos += chunk.len() as u64;
        self.run(chunk, at)
    }

    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        let detail = match self.state {
            State::Lines | State::End => return self.cols.finish(),
            State::Start => {
                return Err(DecodeError::Empty {
                    format: ExportFormat::Json,
                });
            }
            State::Probe => "the body ends inside its first object".to_string(),
            State::InRow => format!("the body ends inside row {}", self.records() + 1),
            State::ArrayOpen | State::ArrayNext | State::ArrayComma => format!(
                "the rows array is never closed (after {} rows)",
                self.records()
            ),
            State::Tail => "the object wrapping the rows is never closed".to_string(),
        };
        Err(DecodeError::Truncated {
            format: ExportFormat::Json,
            offset: self.pos,
            detail,
        })
    }

    /// Decodes `input`, whose first byte is at body offset `at`.
    fn run(&mut self, input: &[u8], at: u64) -> Result<Flow, DecodeError> {
        let mut i = 0;
        match self.state {
            State::InRow => {
                let Some(n) = self.framer.scan(input) else {
                    self.carry.extend_from_slice(input);
                    self.check_carry()?;
                    return Ok(Flow::Continue);
                };
                self.carry.extend_from_slice(&input[..n]);
                self.check_carry()?;
                let carry = std::mem::take(&mut self.carry);
                let framed = self.framed_row(&carry);
                self.carry = carry;
                self.carry.clear();
                framed?;
                self.state = self.after_row();
                i = n;
            }
            State::Probe | State::Tail => {
                self.carry.extend_from_slice(input);
                return self.reparse();
            }
            _ => {}
        }
        while let Some(&b) = input.get(i) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
                continue;
            }
            let here = at + i as u64;
            match (self.state, b) {
                (State::Start, b'[') => {
                    self.state = State::ArrayOpen;
                    self.in_array = true;
                    i += 1;
                }
                (State::Start, b'{') => {
                    self.state = State::Probe;
                    self.carry_start = here;
                    match self.probe(&input[i..])? {
                        Step::Done(n) => i += n,
                        Step::Incomplete => {
                            self.carry.extend_from_slice(&input[i..]);
                            return Ok(Flow::Continue);
                        }
                        Step::NotData(reason) => return Ok(not_data(reason, &input[i..])),
                    }
                }
                (State::ArrayOpen | State::ArrayComma | State::Lines, b'{') => {
                    match self.row_in_place(&input[i..], here)? {
                        Some(n) => {
                            i += n;
                            self.state = self.after_row();
                        }
                        None => return Ok(Flow::Continue),
                    }
                }
                (State::ArrayNext, b',') => {
                    self.state = State::ArrayComma;
                    i += 1;
                }
                (State::ArrayOpen | State::ArrayNext, b']') if self.wrapped => {
                    self.state = State::Tail;
                    self.carry_start = here + 1;
                    self.carry.extend_from_slice(&input[i + 1..]);
                    return self.reparse();
                }
                (State::ArrayOpen | State::ArrayNext, b']') => {
                    self.state = State::End;
                    i += 1;
                }
                (state, _) => return Err(self.unexpected(state, here)),
            }
        }
        Ok(Flow::Continue)
    }

    fn after_row(&self) -> State {
        if self.in_array {
            State::ArrayNext
        } else {
            State::Lines
        }
    }

    fn unexpected(&self, state: State, offset: u64) -> DecodeError {
        let record = self.records() + 1;
        let message = match state {
            State::Start => "the body starts with neither `[` nor `{`".to_string(),
            State::ArrayOpen | State::ArrayComma => format!("row {record} is not an object"),
            State::ArrayNext => format!("expected `,` or `]` after row {}", record - 1),
            State::Lines => format!("row {record} is not an object"),
            _ => "unexpected content after the end of the data".to_string(),
        };
        DecodeError::Json {
            record,
            offset,
            message,
        }
    }

    /// Parses the row at `input[0] == '{'` in place. `None`: it continues past `input`, which
    /// is now in the carry.
    fn row_in_place(&mut self, input: &[u8], at: u64) -> Result<Option<usize>, DecodeError> {
        let window = &input[..input.len().min(self.opts.max_record_bytes)];
        match self.parser.parse::<false>(window, &mut self.cols) {
            Ok((n, _)) => {
                self.cols.commit_row()?;
                Ok(Some(n))
            }
            Err(Stop::Incomplete) => {
                self.cols.rollback_row();
                self.carry_start = at;
                if input.len() > self.opts.max_record_bytes {
                    return Err(self.too_large());
                }
                self.framer = Framer::default();
                let framed = self.framer.scan(input);
                debug_assert!(framed.is_none(), "the parser found this row incomplete");
                self.carry.extend_from_slice(input);
                self.state = State::InRow;
                Ok(None)
            }
            Err(Stop::Bad { at: k, msg }) => Err(self.bad(at + k as u64, msg)),
        }
    }

    /// Parses the row the framer delimited in the carry.
    fn framed_row(&mut self, row: &[u8]) -> Result<(), DecodeError> {
        match self.parser.parse::<false>(row, &mut self.cols) {
            Ok((n, _)) if n == row.len() => self.cols.commit_row(),
            Err(Stop::Bad { at, msg }) => Err(self.bad(self.carry_start + at as u64, msg)),
            Ok(_) | Err(Stop::Incomplete) => {
                self.cols.rollback_row();
                Err(self.bad(
                    self.carry_start,
                    "row boundary mismatch between framer and parser",
                ))
            }
        }
    }

    /// Parses the body's first object from `input` (in place or the carry): a row, a wrapper
    /// whose rows array follows, or an error object.
    fn probe(&mut self, input: &[u8]) -> Result<Step, DecodeError> {
        let window = &input[..input.len().min(self.opts.max_record_bytes)];
        let result = self.parser.parse::<true>(window, &mut self.cols);
        if !matches!(result, Ok((_, Object::Row))) {
            self.cols.rollback_row();
        }
        match result {
            Ok((n, Object::Row)) => {
                self.cols.commit_row()?;
                self.state = State::Lines;
                Ok(Step::Done(n))
            }
            Ok((n, Object::Wrapper)) => {
                self.state = State::ArrayOpen;
                self.in_array = true;
                self.wrapped = true;
                Ok(Step::Done(n))
            }
            Ok((_, Object::NotData(reason))) => Ok(Step::NotData(reason)),
            Err(Stop::Incomplete) if input.len() > self.opts.max_record_bytes => {
                Err(self.too_large())
            }
            Err(Stop::Incomplete) => Ok(Step::Incomplete),
            Err(Stop::Bad { at, msg }) => Err(self.bad(self.carry_start + at as u64, msg)),
        }
    }

    /// Tries again to parse what `Probe` or `Tail` collected in the carry.
    fn reparse(&mut self) -> Result<Flow, DecodeError> {
        let carry = std::mem::take(&mut self.carry);
        let step = match self.state {
            State::Probe => self.probe(&carry)?,
            _ => self.tail(&carry)?,
        };
        match step {
            Step::Done(n) => self.run(&carry[n..], self.carry_start + n as u64),
            Step::Incomplete => {
                self.carry = carry;
                self.check_carry()?;
                Ok(Flow::Continue)
            }
            Step::NotData(reason) => Ok(not_data(reason, &carry)),
        }
    }

    /// The rest of the wrapper object after its rows array: `(, "key": value)* }`.
    fn tail(&mut self, input: &[u8]) -> Result<Step, DecodeError> {
        use super::json_row::{Discard, skip_ws, value};
        let parse = |stack: &mut Vec<u8>| -> Result<usize, Stop> {
            let mut i = skip_ws(input, 0)?;
            loop {
                match input[i] {
                    b'}' => return Ok(i + 1),
                    b',' => {
                        i = skip_ws(input, i + 1)?;
                        if input[i] != b'"' {
                            return Err(Stop::Bad {
                                at: i,
                                msg: "expected a key string",
                            });
                        }
                        i = skip_ws(input, value(input, i, &mut Discard, stack)?.0)?;
                        if input[i] != b':' {
                            return Err(Stop::Bad {
                                at: i,
                                msg: "expected `:` after a key",
                            });
                        }
                        i = skip_ws(input, i + 1)?;
                        i = skip_ws(input, value(input, i, &mut Discard, stack)?.0)?;
                    }
                    _ => {
                        return Err(Stop::Bad {
                            at: i,
                            msg: "expected `,` or `}` after the rows array",
                        });
                    }
                }
            }
        };
        let mut stack = Vec::new();
        match parse(&mut stack) {
            Ok(n) => {
                self.state = State::End;
                Ok(Step::Done(n))
            }
            Err(Stop::Incomplete) => Ok(Step::Incomplete),
            Err(Stop::Bad { at, msg }) => Err(self.bad(self.carry_start + at as u64, msg)),
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
            format: ExportFormat::Json,
            record: self.records() + 1,
            offset: self.carry_start,
            limit: self.opts.max_record_bytes,
        }
    }

    fn bad(&self, offset: u64, msg: &str) -> DecodeError {
        DecodeError::Json {
            record: self.records() + 1,
            offset,
            message: msg.to_string(),
        }
    }
}

fn not_data(reason: &'static str, body: &[u8]) -> Flow {
    Flow::NotData {
        reason,
        excerpt: body[..body.len().min(EXCERPT_BYTES)].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framer_finds_the_row_end_across_any_split() {
        let row = br#"{"a":"}\"]{","b":[{"c":"\\"},[]]}"#;
        let input = [&row[..], b" {\"next\":1}"].concat();
        for cut in 0..=input.len() {
            let mut f = Framer::default();
            let end = f
                .scan(&input[..cut])
                .or_else(|| f.scan(&input[cut..]).map(|n| n + cut));
            assert_eq!(end, Some(row.len()), "cut at {cut}");
        }
    }
}
