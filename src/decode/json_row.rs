//! One JSON row object (a contiguous slice) → one row of raw columns.
//!
//! Strings are unescaped, numbers keep their exact source text, `true`/`false` become text,
//! `null` is null, nested objects/arrays become their compact JSON text (whitespace outside
//! strings dropped, escapes kept). Nesting is walked with a heap stack, never recursion.

use std::collections::HashMap;

use super::columns::Columns;
use super::scan;

/// Why parsing stopped early.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The input ended first; more bytes may complete it.
    Incomplete,
    /// Invalid JSON at byte `at` of the input.
    Bad { at: usize, msg: &'static str },
}

type Parse<T> = Result<T, Stop>;

fn bad<T>(at: usize, msg: &'static str) -> Parse<T> {
    Err(Stop::Bad { at, msg })
}

/// Where parsed text goes: a column buffer, or nowhere for keys that are not columns.
pub(crate) trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Validates without keeping anything.
pub(crate) struct Discard;

impl Out for Discard {
    #[inline]
    fn put(&mut self, _: &[u8]) {}
}

#[inline]
fn byte(input: &[u8], i: usize) -> Parse<u8> {
    input.get(i).copied().ok_or(Stop::Incomplete)
}

/// Index of the first non-whitespace byte at or after `i`.
#[inline]
pub(crate) fn skip_ws(input: &[u8], mut i: usize) -> Parse<usize> {
    loop {
        match byte(input, i)? {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            _ => return Ok(i),
        }
    }
}

/// Parses the string starting at `input[i] == '"'`; returns the index past its closing quote.
/// With `RAW` the text is copied as it stands, quotes and escapes included (for compact JSON);
/// otherwise the unescaped contents are written.
fn string<const RAW: bool, O: Out>(input: &[u8], i: usize, out: &mut O) -> Parse<usize> {
    let mut j = i + 1;
    if RAW {
        out.put(b"\"");
    }
    loop {
        let k = scan::find_string_special(&input[j..]).ok_or(Stop::Incomplete)?;
        out.put(&input[j..j + k]);
        j += k;
        match input[j] {
            b'"' => {
                if RAW {
                    out.put(b"\"");
                }
                return Ok(j + 1);
            }
            b'\\' => j = escape::<RAW, O>(input, j, out)?,
            _ => return bad(j, "raw control character inside a string"),
        }
    }
}

/// One escape sequence at `input[i] == '\\'`; returns the index past it.
fn escape<const RAW: bool, O: Out>(input: &[u8], i: usize, out: &mut O) -> Parse<usize> {
    let simple = match byte(input, i + 1)? {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let unit = hex4(input, i + 2)?;
            if RAW {
                out.put(&input[i..i + 6]);
                return Ok(i + 6);
            }
            let (c, end) = match unit {
                0xD800..=0xDBFF => {
                    if byte(input, i + 6)? != b'\\' || byte(input, i + 7)? != b'u' {
                        return bad(i, "unpaired surrogate in \\u escape");
                    }
                    let low = hex4(input, i + 8)?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return bad(i, "unpaired surrogate in \\u escape");
                    }
                    let code =
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    (char::from_u32(code), i + 12)
                }
                0xDC00..=0xDFFF => return bad(i, "unpaired surrogate in \\u escape"),
                _ => (char::from_u32(u32::from(unit)), i + 6),
            };
            let c = c.ok_or(Stop::Bad {
                at: i,
                msg: "invalid \\u escape",
            })?;
            out.put(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Ok(end);
        }
        _ => return bad(i, "invalid escape in string"),
    };
    if RAW {
        out.put(&input[i..i + 2]);
    } else {
        out.put(&[simple]);
    }
    Ok(i + 2)
}

fn hex4(input: &[u8], i: usize) -> Parse<u16> {
    let mut v = 0u16;
    for k in i..i + 4 {
        let d = match byte(input, k)? {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => return bad(k, "invalid hex digit in \\u escape"),
        };
        v = (v << 4) | u16::from(d);
    }
    Ok(v)
}

/// A number at `i`, validated against the JSON grammar and copied as written.
fn number<O: Out>(input: &[u8], i: usize, out: &mut O) -> Parse<usize> {
    let digits = |mut j: usize| -> Parse<usize> {
        if !byte(input, j)?.is_ascii_digit() {
            return bad(j, "invalid number");
        }
        while byte(input, j)?.is_ascii_digit() {
            j += 1;
        }
        Ok(j)
    };
    let mut j = i + usize::from(input[i] == b'-');
    j = match byte(input, j)? {
        b'0' => j + 1,
        _ => digits(j)?,
    };
    if byte(input, j)? == b'.' {
        j = digits(j + 1)?;
    }
    if matches!(byte(input, j)?, b'e' | b'E') {
        j += 1;
        if matches!(byte(input, j)?, b'+' | b'-') {
            j += 1;
        }
        j = digits(j)?;
    }
    out.put(&input[i..j]);
    Ok(j)
}

/// The literal `lit` at `i`; returns the index past it.
fn literal(input: &[u8], i: usize, lit: &'static [u8]) -> Parse<usize> {
    let avail = &input[i..input.len().min(i + lit.len())];
    if avail != &lit[..avail.len()] {
        return bad(i, "invalid literal");
    }
    if avail.len() < lit.len() {
        return Err(Stop::Incomplete);
    }
    Ok(i + lit.len())
}

/// Any value at `i` (not whitespace); returns the index past it and whether it is non-null.
/// `stack` is scratch space for nesting.
pub(crate) fn value<O: Out>(
    input: &[u8],
    i: usize,
    out: &mut O,
    stack: &mut Vec<u8>,
) -> Parse<(usize, bool)> {
    match input[i] {
        b'{' | b'[' => Ok((nested(input, i, out, stack)?, true)),
        _ => scalar::<false, O>(input, i, out),
    }
}

/// A string, number or literal at `i`. With `RAW` strings keep their quotes and escapes and
/// `null` is written out (compact JSON text); otherwise `null` writes nothing.
fn scalar<const RAW: bool, O: Out>(input: &[u8], i: usize, out: &mut O) -> Parse<(usize, bool)> {
    let end = match input[i] {
        b'"' => string::<RAW, O>(input, i, out)?,
        b'-' | b'0'..=b'9' => number(input, i, out)?,
        b't' => {
            let end = literal(input, i, b"true")?;
            out.put(b"true");
            end
        }
        b'f' => {
            let end = literal(input, i, b"false")?;
            out.put(b"false");
            end
        }
        b'n' => {
            let end = literal(input, i, b"null")?;
            if RAW {
                out.put(b"null");
            }
            return Ok((end, false));
        }
        _ => return bad(i, "expected a value"),
    };
    Ok((end, true))
}

/// The object or array at `i`, validated and written as compact JSON text; returns the index
/// past its closing bracket.
fn nested<O: Out>(input: &[u8], i: usize, out: &mut O, stack: &mut Vec<u8>) -> Parse<usize> {
    stack.clear();
    let mut j = i;
    // At the top of this loop `j` is at the first byte of a value.
    'value: loop {
        let b = input[j];
        if matches!(b, b'{' | b'[') {
            stack.push(b);
            out.put(&[b]);
            j = skip_ws(input, j + 1)?;
            let empty = input[j] == if b == b'{' { b'}' } else { b']' };
            if !empty {
                if b == b'{' {
                    j = member_key(input, j, out)?;
                }
                continue 'value;
            }
        } else {
            j = skip_ws(input, scalar::<true, O>(input, j, out)?.0)?;
        }
        // After a value: `,` and the next member, or closers.
        loop {
            let closer = if stack.last() == Some(&b'{') {
                b'}'
            } else {
                b']'
            };
            match input[j] {
                b',' => {
                    out.put(b",");
                    j = skip_ws(input, j + 1)?;
                    if closer == b'}' {
                        j = member_key(input, j, out)?;
                    }
                    continue 'value;
                }
                c if c == closer => {
                    out.put(&[c]);
                    stack.pop();
                    if stack.is_empty() {
                        return Ok(j + 1);
                    }
                    j = skip_ws(input, j + 1)?;
                }
                _ => return bad(j, "expected `,` or a closing bracket"),
            }
        }
    }
}

/// `"key" :` at `j` inside a nested object, written compactly; returns the value's start.
fn member_key<O: Out>(input: &[u8], j: usize, out: &mut O) -> Parse<usize> {
    if input[j] != b'"' {
        return bad(j, "expected a key string");
    }
    let j = skip_ws(input, string::<true, O>(input, j, out)?)?;
    if input[j] != b':' {
        return bad(j, "expected `:` after a key");
    }
    out.put(b":");
    skip_ws(input, j + 1)
}

/// What a parsed object turned out to be; only probing yields anything but `Row`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Object {
    /// A row, written to the columns (not committed yet).
    Row,
    /// The body's first object wraps the rows in an array under a `data`, `results` or
    /// `items` key; parsing stopped right after the array's `[`.
    Wrapper,
    /// The body's first object is an error object, not data.
    NotData(&'static str),
}

/// Keys that matter when probing the body's first object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Other,
    Wrapper,
    Success,
    Error,
}

impl Key {
    fn of(key: &[u8]) -> Key {
        match key {
            b"data" | b"results" | b"items" => Key::Wrapper,
            b"success" => Key::Success,
            b"error" => Key::Error,
            _ => Key::Other,
        }
    }
}

/// Key → column lookup, with a memo of the previous row's key order so that rows shaped like
/// their predecessor (the usual case) cost a byte comparison per key instead of a hash.
pub(crate) struct RowParser {
    index: HashMap<Vec<u8>, usize>,
    /// Key number `k` of the previous row: its bytes' range in `shape_bytes`, its column.
    shape: Vec<(usize, usize, Option<usize>)>,
    shape_bytes: Vec<u8>,
    /// Scratch for a key that has escapes.
    key: Vec<u8>,
    stack: Vec<u8>,
}

impl RowParser {
    pub(crate) fn new(fields: &[String]) -> Self {
        RowParser {
            index: fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.as_bytes().to_vec(), i))
                .collect(),
            shape: Vec::new(),
            shape_bytes: Vec::new(),
            key: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// The column of `key`, the `k`-th key of its row.
    fn column(&mut self, key: &[u8], k: usize) -> Option<usize> {
        if let Some(&(start, end, col)) = self.shape.get(k) {
            if &self.shape_bytes[start..end] == key {
                return col;
            }
            self.shape.truncate(k);
            self.shape_bytes.truncate(start);
        }
        let col = self.index.get(key).copied();
        let start = self.shape_bytes.len();
        self.shape_bytes.extend_from_slice(key);
        self.shape.push((start, self.shape_bytes.len(), col));
        col
    }

    /// The key string at `i`, the `k`-th of its row: the index past it, its column and (when
    /// probing) what kind of key it is.
    fn key<const PROBE: bool>(
        &mut self,
        input: &[u8],
        i: usize,
        k: usize,
    ) -> Parse<(usize, Option<usize>, Key)> {
        let body = i + 1;
        let n = scan::find_string_special(&input[body..]).ok_or(Stop::Incomplete)?;
        let kind = |key: &[u8]| if PROBE { Key::of(key) } else { Key::Other };
        if input[body + n] == b'"' {
            let key = &input[body..body + n];
            return Ok((body + n + 1, self.column(key, k), kind(key)));
        }
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        let parsed = string::<false, _>(input, i, &mut key)
            .map(|end| (end, self.column(&key, k), kind(&key)));
        self.key = key;
        parsed
    }

    /// Parses the object at `input[0] == '{'` into the open row of `cols` (the caller
    /// commits or rolls back); returns where parsing stopped. With `PROBE` (the body's first
    /// object) it also recognises wrappers and error objects; see [`Object`].
    pub(crate) fn parse<const PROBE: bool>(
        &mut self,
        input: &[u8],
        cols: &mut Columns,
    ) -> Parse<(usize, Object)> {
        let mut i = skip_ws(input, 1)?;
        if input[i] == b'}' {
            return Ok((i + 1, Object::Row));
        }
        // Probing: a listed column was seen (so this is a row), or an error marker was.
        let mut saw_column = false;
        let mut error: Option<&'static str> = None;
        let mut k = 0;
        loop {
            if input[i] != b'"' {
                return bad(i, "expected a key string");
            }
            let (key_end, col, kind) = self.key::<PROBE>(input, i, k)?;
            k += 1;
            i = skip_ws(input, key_end)?;
            if input[i] != b':' {
                return bad(i, "expected `:` after a key");
            }
            i = skip_ws(input, i + 1)?;
            i = match col {
                Some(c) => {
                    saw_column = true;
                    let (end, non_null) = value(input, i, cols.restart_value(c), &mut self.stack)?;
                    cols.set_valid(c, non_null);
                    end
                }
                // A wrapper only if no listed column came first: rows have those.
                None if PROBE && kind == Key::Wrapper && !saw_column && input[i] == b'[' => {
                    return Ok(match error {
                        Some(reason) => (i, Object::NotData(reason)),
                        None => (i + 1, Object::Wrapper),
                    });
                }
                None => {
                    let (end, non_null) = value(input, i, &mut Discard, &mut self.stack)?;
                    match kind {
                        Key::Success if &input[i..end] == b"false" => {
                            error =
                                error.or(Some("it is a JSON error envelope (`success: false`)"));
                        }
                        Key::Error if non_null => {
                            error = error.or(Some("it is a JSON error object (`error` key)"));
                        }
                        _ => {}
                    }
                    end
                }
            };
            i = skip_ws(input, i)?;
            match input[i] {
                b',' => i = skip_ws(input, i + 1)?,
                // An error marker makes the object an error only if no listed column came
                // with it: a row may well have an unlisted `error` key.
                b'}' => {
                    return Ok(match error {
                        Some(reason) if !saw_column => (i + 1, Object::NotData(reason)),
                        _ => (i + 1, Object::Row),
                    });
                }
                _ => return bad(i, "expected `,` or `}` after a value"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses one value from `input` (whole), returning its text or the stop.
    fn text(input: &str) -> Result<(Option<String>, usize), Stop> {
        let mut out = Vec::new();
        let (end, non_null) = value(input.as_bytes(), 0, &mut out, &mut Vec::new())?;
        let s = String::from_utf8(out).expect("test values are UTF-8");
        Ok((non_null.then_some(s), end))
    }

    fn ok(input: &str) -> String {
        match text(input) {
            Ok((Some(s), _)) => s,
            other => panic!("{input}: {other:?}"),
        }
    }

    #[test]
    fn numbers_follow_the_json_grammar_and_keep_their_text() {
        for n in [
            "0",
            "-0",
            "12",
            "1.50",
            "-0.5e-3",
            "1E+9",
            "123456789012345678901234567890",
        ] {
            assert_eq!(ok(&format!("{n},")), n);
        }
        for (n, at) in [("-,", 1), ("1.,", 2), ("1e,", 2), (".5,", 0), ("+1,", 0)] {
            let got = text(n);
            assert!(
                matches!(got, Err(Stop::Bad { at: a, .. }) if a == at),
                "{n}: {got:?}"
            );
        }
        // `0` is a whole number; the row parser then rejects the stray `1` after it.
        assert_eq!(text("01,"), Ok((Some("0".into()), 1)));
        // A number at the very end may still grow.
        assert_eq!(text("12"), Err(Stop::Incomplete));
    }

    #[test]
    fn strings_unescape_but_nested_values_keep_escapes() {
        assert_eq!(
            ok(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#),
            "a\"b\\c/d\u{8}\u{c}\n\r\té😀"
        );
        assert_eq!(
            ok(r#"{ "k\n" : [ 1 , "x\"y" , true , null , { } , [ ] ] , "e" : "\u00e9" }"#),
            r#"{"k\n":[1,"x\"y",true,null,{},[]],"e":"\u00e9"}"#
        );
        assert_eq!(text("null,"), Ok((None, 4)));
        assert_eq!(ok("false,"), "false");
    }

    #[test]
    fn incomplete_versus_invalid() {
        for cut in [
            r#""abc"#,
            r#""a\"#,
            r#""\u00"#,
            r#""\ud83d"#,
            "tr",
            "[1, {\"a\": ",
            "{\"a\"  ",
        ] {
            assert_eq!(text(cut), Err(Stop::Incomplete), "{cut}");
        }
        for (bad_input, at) in [
            ("tru,", 0),
            (r#""\x""#, 1),
            (r#""\ud83dx""#, 1),
            (r#""\ude00""#, 1),
            ("[1 2]", 3),
            ("{\"a\" 1}", 5),
            ("{1:2}", 1),
            ("[1,]", 3),
            ("[}", 1),
            ("\"a\u{1}\"", 2),
        ] {
            assert!(
                matches!(text(bad_input), Err(Stop::Bad { at: a, .. }) if a == at),
                "{bad_input}: {:?}",
                text(bad_input)
            );
        }
    }
}
