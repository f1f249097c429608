//! A small validating scanner over JSON text, for list/struct cells and source paths.
//!
//! It walks bytes and hands out slices (strings unescaped on demand), never building a
//! `serde_json::Value`. Nesting is tracked on a heap stack, so hostile depth cannot
//! overflow the call stack. Invariant: every slice handed out is a complete JSON value.

use std::borrow::Cow;

/// Why a text is not what was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonFail {
    /// Not valid JSON.
    Invalid,
    /// Valid JSON, but not the container that was expected (or a path went through a scalar).
    WrongKind,
}

/// One value found inside a container: `None` for JSON `null`; strings are unescaped,
/// numbers and `true`/`false` are their text, objects/arrays their JSON text.
pub(super) type Item<'a> = Option<Cow<'a, str>>;

pub(super) struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    pub(super) i: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(s: &'a str) -> Self {
        Scanner {
            s,
            b: s.as_bytes(),
            i: 0,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(super) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    pub(super) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// After the whole text: only whitespace may follow.
    fn end(&mut self) -> Result<(), JsonFail> {
        if self.peek().is_none() {
            Ok(())
        } else {
            Err(JsonFail::Invalid)
        }
    }

    /// A string starting at `self.i` (a `"`): its end and whether it has escapes.
    fn string_end(&self) -> Result<(usize, bool), JsonFail> {
        let b = self.b;
        let mut j = self.i + 1;
        let mut escaped = false;
        loop {
            match b.get(j) {
                None => return Err(JsonFail::Invalid),
                Some(b'"') => return Ok((j + 1, escaped)),
                Some(b'\\') => {
                    escaped = true;
                    match b.get(j + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                        Some(b'u') => {
                            let hex = b.get(j + 2..j + 6).ok_or(JsonFail::Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(JsonFail::Invalid);
                            }
                            j += 6;
                        }
                        _ => return Err(JsonFail::Invalid),
                    }
                }
                Some(&c) if c < 0x20 => return Err(JsonFail::Invalid),
                Some(_) => j += 1,
            }
        }
    }

    /// The string at `self.i`, unescaped; advances past it.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonFail> {
        let (end, escaped) = self.string_end()?;
        let inner = &self.s[self.i + 1..end - 1];
        self.i = end;
        if escaped {
            unescape(inner).map(Cow::Owned)
        } else {
            Ok(Cow::Borrowed(inner))
        }
    }

    fn number_end(&self) -> Result<usize, JsonFail> {
        let b = self.b;
        let mut j = self.i;
        if b.get(j) == Some(&b'-') {
            j += 1;
        }
        let digits = |mut j: usize| {
            let start = j;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            (j, j - start)
        };
        let (k, n) = digits(j);
        if n == 0 || (n > 1 && b[j] == b'0') {
            return Err(JsonFail::Invalid);
        }
        j = k;
        if b.get(j) == Some(&b'.') {
            let (k, n) = digits(j + 1);
            if n == 0 {
                return Err(JsonFail::Invalid);
            }
            j = k;
        }
        if let Some(b'e' | b'E') = b.get(j) {
            j += 1;
            if let Some(b'+' | b'-') = b.get(j) {
                j += 1;
            }
            let (k, n) = digits(j);
            if n == 0 {
                return Err(JsonFail::Invalid);
            }
            j = k;
        }
        Ok(j)
    }

    /// Skips the value at the current position (after whitespace), validating it fully.
    pub(super) fn skip_value(&mut self) -> Result<(), JsonFail> {
        // Open containers: true = object.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            // Expecting a value.
            match self.peek().ok_or(JsonFail::Invalid)? {
                b'{' => {
                    self.i += 1;
                    if self.eat(b'}') {
                        // Empty object: a complete value.
                    } else {
                        stack.push(true);
                        self.key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    if !self.eat(b']') {
                        stack.push(false);
                        continue;
                    }
                }
                _ => self.scalar_end()?,
            }
            // A value is complete: close containers or move to the next member.
            loop {
                let Some(&is_object) = stack.last() else {
                    return Ok(());
                };
                if self.eat(b',') {
                    if is_object {
                        self.key()?;
                    }
                    break;
                }
                if self.eat(if is_object { b'}' } else { b']' }) {
                    stack.pop();
                    continue;
                }
                return Err(JsonFail::Invalid);
            }
        }
    }

    /// A key and its colon.
    pub(super) fn key(&mut self) -> Result<Cow<'a, str>, JsonFail> {
        if self.peek() != Some(b'"') {
            return Err(JsonFail::Invalid);
        }
        let k = self.string()?;
        if !self.eat(b':') {
            return Err(JsonFail::Invalid);
        }
        Ok(k)
    }

    /// Advances past a string, number or literal.
    fn scalar_end(&mut self) -> Result<(), JsonFail> {
        self.i = match self.b[self.i] {
            b'"' => self.string_end()?.0,
            b'-' | b'0'..=b'9' => self.number_end()?,
            _ => {
                let rest = &self.b[self.i..];
                let lit = [&b"true"[..], b"false", b"null"]
                    .into_iter()
                    .find(|l| rest.starts_with(l))
                    .ok_or(JsonFail::Invalid)?;
                self.i + lit.len()
            }
        };
        Ok(())
    }

    /// The value at the current position as an [`Item`]; advances past it.
    fn item(&mut self) -> Result<Item<'a>, JsonFail> {
        let c = self.peek().ok_or(JsonFail::Invalid)?;
        if c == b'"' {
            return self.string().map(Some);
        }
        let start = self.i;
        self.skip_value()?;
        let text = &self.s[start..self.i];
        Ok((text != "null").then_some(Cow::Borrowed(text)))
    }
}

/// Unescapes the inside of a JSON string whose escapes `string_end` validated.
fn unescape(inner: &str) -> Result<String, JsonFail> {
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(k) = rest.find('\\') {
        out.push_str(&rest[..k]);
        let b = rest.as_bytes();
        let (ch, used) = match b[k + 1] {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            _ => {
                let hex = |at: usize| {
                    rest.get(at..at + 4)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                };
                let hi = hex(k + 2).ok_or(JsonFail::Invalid)?;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by `\uDC00`–`\uDFFF`.
                    let lo = (rest.get(k + 6..k + 8) == Some("\\u"))
                        .then(|| hex(k + 8))
                        .flatten()
                        .filter(|lo| (0xDC00..0xE000).contains(lo))
                        .ok_or(JsonFail::Invalid)?;
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    (char::from_u32(cp).ok_or(JsonFail::Invalid)?, 12)
                } else {
                    (char::from_u32(hi).ok_or(JsonFail::Invalid)?, 6)
                }
            }
        };
        out.push(ch);
        rest = &rest[k + used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Calls `f` with each element of the JSON array `text`, in order.
pub(crate) fn for_each_element<'a>(
    text: &'a str,
    mut f: impl FnMut(Item<'a>),
) -> Result<(), JsonFail> {
    let mut sc = Scanner::new(text);
    match sc.peek() {
        Some(b'[') => sc.i += 1,
        Some(_) => {
            sc.skip_value()?;
            sc.end()?;
            return Err(JsonFail::WrongKind);
        }
        None => return Err(JsonFail::Invalid),
    }
    if !sc.eat(b']') {
        loop {
            f(sc.item()?);
            if sc.eat(b',') {
                continue;
            }
            if sc.eat(b']') {
                break;
            }
            return Err(JsonFail::Invalid);
        }
    }
    sc.end()
}

/// Calls `f(key, value)` for each member of the JSON object `text`, in order (duplicate
/// keys are all passed).
pub(crate) fn for_each_member<'a>(
    text: &'a str,
    mut f: impl FnMut(&str, Item<'a>),
) -> Result<(), JsonFail> {
    let mut sc = Scanner::new(text);
    match sc.peek() {
        Some(b'{') => sc.i += 1,
        Some(_) => {
            sc.skip_value()?;
            sc.end()?;
            return Err(JsonFail::WrongKind);
        }
        None => return Err(JsonFail::Invalid),
    }
    if !sc.eat(b'}') {
        loop {
            let key = sc.key()?;
            let value = sc.item()?;
            f(&key, value);
            if sc.eat(b',') {
                continue;
            }
            if sc.eat(b'}') {
                break;
            }
            return Err(JsonFail::Invalid);
        }
    }
    sc.end()
}

/// The value at `path` inside `text`: object members by key (first match), array elements
/// by decimal index. `Ok(None)` when a key or index is missing or the value is `null`.
/// Only the part of `text` before the target is validated: the scan stops there.
pub(crate) fn extract<'a>(text: &'a str, path: &[String]) -> Result<Item<'a>, JsonFail> {
    let mut sc = Scanner::new(text);
    'segments: for seg in path {
        match sc.peek() {
            Some(b'{') => {
                sc.i += 1;
                if sc.eat(b'}') {
                    return Ok(None);
                }
                loop {
                    let key = sc.key()?;
                    if key == seg.as_str() {
                        continue 'segments;
                    }
                    sc.skip_value()?;
                    if sc.eat(b',') {
                        continue;
                    }
                    if sc.eat(b'}') {
                        return Ok(None);
                    }
                    return Err(JsonFail::Invalid);
                }
            }
            Some(b'[') => {
                sc.i += 1;
                let Some(index) = array_index(seg) else {
                    return Err(JsonFail::WrongKind);
                };
                if sc.eat(b']') {
                    return Ok(None);
                }
                let mut k = 0usize;
                loop {
                    if k == index {
                        continue 'segments;
                    }
                    sc.skip_value()?;
                    k += 1;
                    if sc.eat(b',') {
                        continue;
                    }
                    if sc.eat(b']') {
                        return Ok(None);
                    }
                    return Err(JsonFail::Invalid);
                }
            }
            Some(_) => {
                // A scalar where a container was needed (validated, not followed further).
                sc.skip_value()?;
                return Err(JsonFail::WrongKind);
            }
            None => return Err(JsonFail::Invalid),
        }
    }
    sc.item()
}

/// `0` or a decimal without leading zeros.
fn array_index(seg: &str) -> Option<usize> {
    if seg.is_empty() || (seg.len() > 1 && seg.starts_with('0')) {
        return None;
    }
    if !seg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seg.parse().ok()
}

#[cfg(test)]
/// Whether `text` is one valid JSON value (surrounding whitespace allowed).
pub(crate) fn is_valid(text: &str) -> bool {
    let mut sc = Scanner::new(text);
    sc.skip_value().is_ok() && sc.end().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(text: &str) -> Result<Vec<Option<String>>, JsonFail> {
        let mut out = Vec::new();
        for_each_element(text, |v| out.push(v.map(Cow::into_owned)))?;
        Ok(out)
    }

    #[test]
    fn arrays_yield_unescaped_strings_and_raw_text() {
        let got =
            elements(r#" [ "a\"b\u00e9\ud83d\ude00" , 12.5e3, true, null, {"x": [1]}, [] ] "#)
                .unwrap();
        assert_eq!(
            got,
            vec![
                Some("a\"bé😀".into()),
                Some("12.5e3".into()),
                Some("true".into()),
                None,
                Some(r#"{"x": [1]}"#.into()),
                Some("[]".into()),
            ]
        );
        assert_eq!(elements("[]").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(elements(r#""a""#), Err(JsonFail::WrongKind));
        assert_eq!(elements("{}"), Err(JsonFail::WrongKind));
        for bad in [
            "[1,]",
            "[1 2]",
            "[",
            "",
            "[01]",
            "[\"\\x\"]",
            "[\"\\ud800\"]",
            "[1] x",
            "[tru]",
            "[-]",
            "[1.]",
            "[1e]",
        ] {
            assert_eq!(elements(bad), Err(JsonFail::Invalid), "{bad}");
        }
        assert_eq!(elements("x"), Err(JsonFail::Invalid));
    }

    #[test]
    fn objects_yield_members_in_order() {
        let mut got = Vec::new();
        for_each_member(
            r#"{"a": 1, "b\n": "x", "a": null, "c": {"d": []}}"#,
            |k, v| {
                got.push((k.to_owned(), v.map(Cow::into_owned)));
            },
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), Some("1".into())),
                ("b\n".into(), Some("x".into())),
                ("a".into(), None),
                ("c".into(), Some(r#"{"d": []}"#.into())),
            ]
        );
        assert_eq!(for_each_member("[1]", |_, _| {}), Err(JsonFail::WrongKind));
        assert_eq!(
            for_each_member("{\"a\" 1}", |_, _| {}),
            Err(JsonFail::Invalid)
        );
        assert_eq!(for_each_member("{1: 1}", |_, _| {}), Err(JsonFail::Invalid));
        assert_eq!(for_each_member("{}", |_, _| {}), Ok(()));
    }

    #[test]
    fn paths_follow_keys_and_indices() {
        let text = r#"{"a": {"b": [10, {"c": "deep"}, null]}, "x.y": 1, "a": {"b": 2}}"#;
        let at = |p: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            extract(text, &p).map(|v| v.map(Cow::into_owned))
        };
        assert_eq!(at(&["a", "b", "0"]), Ok(Some("10".into())));
        assert_eq!(at(&["a", "b", "1", "c"]), Ok(Some("deep".into())));
        assert_eq!(at(&["a", "b", "2"]), Ok(None));
        assert_eq!(at(&["a", "b", "3"]), Ok(None));
        assert_eq!(at(&["a", "zz"]), Ok(None));
        assert_eq!(at(&["x.y"]), Ok(Some("1".into())));
        assert_eq!(
            at(&["a"]),
            Ok(Some(r#"{"b": [10, {"c": "deep"}, null]}"#.into()))
        );
        assert_eq!(at(&["a", "b", "0", "c"]), Err(JsonFail::WrongKind));
        assert_eq!(at(&["a", "b", "x"]), Err(JsonFail::WrongKind));
        assert_eq!(at(&["a", "b", "01"]), Err(JsonFail::WrongKind));
        assert_eq!(
            extract("{\"a\": [1, }", &["a".into(), "5".into()]),
            Err(JsonFail::Invalid)
        );
        assert_eq!(extract("\"s\"", &["a".into()]), Err(JsonFail::WrongKind));
        assert_eq!(extract("nope", &["a".into()]), Err(JsonFail::Invalid));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        assert!(is_valid(&deep));
        assert!(!is_valid(&deep[..deep.len() - 1]));
        assert_eq!(elements(&deep).map(|v| v.len()), Ok(1));
    }

    #[test]
    fn validity_agrees_with_serde_json() {
        let cases = [
            "1",
            "-0",
            "-0.5e-3",
            "\"\\u0041\"",
            "[1,[2,{\"a\":null}]]",
            " {} ",
            "01",
            "1.",
            "[1,]",
            "{\"a\":}",
            "tru",
            "\"\u{1}\"",
            "[\"a\"",
            "\"\\ud800\\u0041\"",
            "",
            " ",
        ];
        for c in cases {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(c).is_ok();
            // Lone surrogates pass the scanner's validation (unescaping rejects them).
            if c.contains("ud800") {
                continue;
            }
            assert_eq!(is_valid(c), serde, "{c:?}");
        }
    }
}
