//! Behaviour of [`RawDecoder`] through its public API: every rule of the CSV and JSON
//! formats, fed whole and in chunks of 1, 2, 3, 7 and 64 bytes with identical results.

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::*;

type Rows = Vec<Vec<Option<String>>>;

const SPLITS: [usize; 5] = [1, 2, 3, 7, 64];

fn opts(batch_rows: usize) -> DecoderOptions {
    DecoderOptions {
        batch_rows,
        ..DecoderOptions::default()
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

/// Decodes `body` pushed in chunks of `chunk` bytes (0 = whole), draining after each push.
fn decode_in(
    mut dec: RawDecoder,
    body: &[u8],
    chunk: usize,
) -> Result<Vec<RecordBatch>, DecodeError> {
    let mut out = Vec::new();
    let size = if chunk == 0 { body.len().max(1) } else { chunk };
    for c in body.chunks(size) {
        dec.push(c)?;
        out.extend(std::iter::from_fn(|| dec.next_batch()));
    }
    out.extend(dec.finish()?);
    out.extend(std::iter::from_fn(|| dec.next_batch()));
    Ok(out)
}

/// Decodes `body` whole and in every split size, asserting identical batches (or identical
/// errors), and returns the result.
fn decode_all(make: &dyn Fn() -> RawDecoder, body: &[u8]) -> Result<Vec<RecordBatch>, DecodeError> {
    let whole = decode_in(make(), body, 0);
    for chunk in SPLITS {
        let split = decode_in(make(), body, chunk);
        match (&whole, &split) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "chunks of {chunk} bytes"),
            (Err(a), Err(b)) => {
                assert_eq!(
                    format!("{a:?}"),
                    format!("{b:?}"),
                    "chunks of {chunk} bytes"
                )
            }
            _ => panic!("whole: {whole:?}\nchunks of {chunk}: {split:?}"),
        }
    }
    whole
}

fn rows(batches: &[RecordBatch]) -> Rows {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<&StringArray> = b
            .columns()
            .iter()
            .map(|c| {
                c.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("raw columns are Utf8")
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| c.is_valid(r).then(|| c.value(r).to_string()))
                    .collect(),
            );
        }
    }
    out
}

fn csv_rows(body: &str) -> Rows {
    rows(&decode_all(&|| RawDecoder::csv(opts(2)), body.as_bytes()).expect("valid CSV"))
}

fn csv_err(body: &[u8]) -> DecodeError {
    decode_all(&|| RawDecoder::csv(opts(2)), body).expect_err("invalid CSV")
}

fn json_dec(fields: &[&str]) -> impl Fn() -> RawDecoder {
    let fields = names(fields);
    move || RawDecoder::json(fields.clone(), opts(2))
}

fn json_rows(fields: &[&str], body: &str) -> Rows {
    rows(&decode_all(&json_dec(fields), body.as_bytes()).expect("valid JSON"))
}

fn json_err(fields: &[&str], body: &[u8]) -> DecodeError {
    decode_all(&json_dec(fields), body).expect_err("invalid JSON")
}

/// `Some(text)` per cell, `None` for `~`.
fn r(cells: &[&str]) -> Vec<Option<String>> {
    cells
        .iter()
        .map(|c| (*c != "~").then(|| c.to_string()))
        .collect()
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_quoting_unicode_and_nulls() {
    let body = "id,name,note\n\
                1,\"Smith, John\",\"said \"\"hi\"\"\"\n\
                2,東京 🍣,\"line one\nline two\"\n\
                3,שלום עולם,\n\
                4,\"\",x\n\
                5,,\"\"\n";
    assert_eq!(
        csv_rows(body),
        vec![
            r(&["1", "Smith, John", "said \"hi\""]),
            r(&["2", "東京 🍣", "line one\nline two"]),
            r(&["3", "שלום עולם", "~"]),
            r(&["4", "", "x"]),
            r(&["5", "~", ""]),
        ]
    );
}

#[test]
fn csv_batches_are_bounded_and_columns_known() {
    let body = "a,b\n1,2\n3,4\n5,6\n";
    let batches = decode_all(&|| RawDecoder::csv(opts(2)), body.as_bytes()).expect("valid");
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        vec![2, 1]
    );
    let schema = batches[0].schema();
    assert_eq!(schema.field(0).name(), "a");
    assert_eq!(
        schema.field(1).data_type(),
        &arrow::datatypes::DataType::Utf8
    );
    assert!(schema.field(1).is_nullable());

    let mut dec = RawDecoder::csv(opts(2));
    assert_eq!(dec.columns(), None);
    dec.push(b"a,b\n1,").expect("valid");
    assert_eq!(dec.columns(), Some(&names(&["a", "b"])[..]));
    assert_eq!(dec.records(), 0);
    dec.push(b"2\n3,4\n5,").expect("valid");
    assert_eq!(dec.records(), 2);
    assert_eq!(
        rows(&[dec.next_batch().expect("2 rows make a batch")]).len(),
        2
    );
    assert!(dec.next_batch().is_none());
    let last = dec.finish().expect("valid").expect("a last row");
    assert_eq!(rows(&[last]), vec![r(&["5", "~"])]);
    assert_eq!(dec.records(), 3);
}

#[test]
fn csv_bom_crlf_and_optional_final_newline() {
    let expected = vec![r(&["1", "x,y"]), r(&["2", "~"])];
    for body in [
        "\u{feff}a,b\r\n1,\"x,y\"\r\n2,\r\n",
        "\u{feff}a,b\r\n1,\"x,y\"\r\n2,",
        "a,b\n1,\"x,y\"\n2,\n",
        "a,b\n1,\"x,y\"\n2,",
    ] {
        assert_eq!(csv_rows(body), expected, "{body:?}");
    }
    let batches = decode_all(&|| RawDecoder::csv(opts(2)), "\u{feff}a,b\n".as_bytes());
    let dec_cols = batches.expect("header only");
    assert!(dec_cols.is_empty());
    // The BOM is not part of the first column's name.
    let mut dec = RawDecoder::csv(opts(2));
    dec.push("\u{feff}name\n".as_bytes()).expect("valid");
    assert_eq!(dec.columns(), Some(&names(&["name"])[..]));
}

#[test]
fn csv_blank_lines_are_skipped_and_not_counted() {
    let body = "\n\na,b\n\n1,2\r\n\r\n3\n";
    match csv_err(body.as_bytes()) {
        DecodeError::RaggedRow {
            record,
            expected,
            found,
            offset,
        } => assert_eq!((record, expected, found, offset), (2, 2, 1, 14)),
        e => panic!("expected RaggedRow, got {e:?}"),
    }
    assert_eq!(
        csv_rows("a,b\n\n1,2\n\n\n3,4\n\n"),
        vec![r(&["1", "2"]), r(&["3", "4"])]
    );
}

#[test]
fn csv_header_only_and_empty_bodies() {
    let mut dec = RawDecoder::csv(opts(2));
    dec.push(b"a,b").expect("valid");
    assert_eq!(dec.finish().expect("header only is fine"), None);
    assert_eq!(dec.columns(), Some(&names(&["a", "b"])[..]));
    assert_eq!(dec.records(), 0);
    for body in [&b""[..], b"\xEF\xBB\xBF", b"\n\r\n\n"] {
        assert!(
            matches!(
                csv_err(body),
                DecodeError::Empty {
                    format: ExportFormat::Csv
                }
            ),
            "{body:?}"
        );
    }
}

#[test]
fn csv_ragged_rows_name_the_record() {
    match csv_err(b"a,b\n1,2\n3,4,5\n6,7\n") {
        DecodeError::RaggedRow {
            record,
            offset,
            expected,
            found,
        } => assert_eq!((record, offset, expected, found), (2, 8, 2, 3)),
        e => panic!("expected RaggedRow, got {e:?}"),
    }
    match csv_err(b"a,b,c\n1,2,3\n4,5\n") {
        DecodeError::RaggedRow { record, found, .. } => assert_eq!((record, found), (2, 2)),
        e => panic!("expected RaggedRow, got {e:?}"),
    }
}

#[test]
fn csv_invalid_utf8_names_record_and_column() {
    match csv_err(b"a,b\n1,2\n3,4\n5,\xff\xfe\n7,8\n") {
        DecodeError::InvalidUtf8 { record, column } => {
            assert_eq!((record, column.as_str()), (3, "b"))
        }
        e => panic!("expected InvalidUtf8, got {e:?}"),
    }
    // A multi-byte character cut short at the end of a field ("中" is e4 b8 ad).
    match csv_err(b"a,b\n\xe4\xb8,x\n") {
        DecodeError::InvalidUtf8 { record, column } => {
            assert_eq!((record, column.as_str()), (1, "a"))
        }
        e => panic!("expected InvalidUtf8, got {e:?}"),
    }
    assert!(matches!(
        csv_err(b"a,\xff\n1,2\n"),
        DecodeError::HeaderNotUtf8 { column: 2 }
    ));
}

#[test]
fn csv_header_must_name_every_column_once() {
    match csv_err(b"id,name,id\n1,2,3\n") {
        DecodeError::DuplicateHeader {
            name,
            first,
            second,
        } => assert_eq!((name.as_str(), first, second), ("id", 1, 3)),
        e => panic!("expected DuplicateHeader, got {e:?}"),
    }
    assert!(matches!(
        csv_err(b"id,,x\n1,2,3\n"),
        DecodeError::EmptyHeader { column: 2 }
    ));
    assert!(matches!(
        csv_err(b"id,\"\"\n1,2\n"),
        DecodeError::EmptyHeader { column: 2 }
    ));
}

#[test]
fn csv_syntax_errors_carry_record_and_offset() {
    match csv_err(b"a,b\n1,2\n3,\"x\"y\n") {
        DecodeError::Csv {
            record,
            offset,
            message,
        } => {
            assert_eq!((record, offset), (2, 13));
            assert!(message.contains("`b`"), "{message}");
        }
        e => panic!("expected Csv, got {e:?}"),
    }
    // The BOM counts in offsets: they are positions in the body as received.
    match csv_err(b"\xEF\xBB\xBFa,b\n1,2,3\n") {
        DecodeError::RaggedRow { offset, .. } => assert_eq!(offset, 7),
        e => panic!("expected RaggedRow, got {e:?}"),
    }
    match csv_err(b"a,b\n1,\"open\n2,3\n") {
        DecodeError::Truncated { format, detail, .. } => {
            assert_eq!(format, ExportFormat::Csv);
            assert!(
                detail.contains("record 1") && detail.contains("`b`"),
                "{detail}"
            );
        }
        e => panic!("expected Truncated, got {e:?}"),
    }
}

#[test]
fn csv_record_size_is_limited() {
    let make = || {
        RawDecoder::csv(DecoderOptions {
            batch_rows: 2,
            max_record_bytes: 16,
            ..DecoderOptions::default()
        })
    };
    let ok = b"a,b\n123456,1234567\n"; // a 15-byte record
    assert_eq!(
        rows(&decode_all(&make, ok).expect("under the limit")),
        vec![r(&["123456", "1234567"])]
    );
    let big = b"a,b\n1,2\n123456789,123456789012\n3,4\n";
    match decode_all(&make, big).expect_err("over the limit") {
        DecodeError::RecordTooLarge {
            record,
            offset,
            limit,
            ..
        } => assert_eq!((record, offset, limit), (2, 8, 16)),
        e => panic!("expected RecordTooLarge, got {e:?}"),
    }
    // A quoted field that never closes cannot grow past the limit either.
    let endless = [&b"a\n\""[..], &[b'x'; 100]].concat();
    assert!(matches!(
        decode_in(make(), &endless, 7),
        Err(DecodeError::RecordTooLarge { record: 1, .. })
    ));
}

#[test]
fn csv_truncation_at_every_byte_is_exact_or_an_error() {
    let header = "id,name,note\r\n";
    let records = [
        "1,\"Smith, \"\"J\"\"\",\"multi\nline\"\r\n",
        "2,東京,\"\"\r\n",
        "3,,plain tail\r\n",
        "4,\"q\",café\r\n",
    ];
    let expected = [
        r(&["1", "Smith, \"J\"", "multi\nline"]),
        r(&["2", "東京", ""]),
        r(&["3", "~", "plain tail"]),
        r(&["4", "q", "café"]),
    ];
    let body = format!("{header}{}", records.concat());
    let body = body.as_bytes();
    let mut boundaries = vec![header.len()];
    for rec in records {
        boundaries.push(boundaries.last().copied().unwrap_or_default() + rec.len());
    }
    let (mut exact, mut cut_values, mut errors) = (0, 0, 0);
    for k in 0..=body.len() {
        let cut = &body[..k];
        match decode_all(&|| RawDecoder::csv(opts(3)), cut) {
            Ok(batches) => {
                let got = rows(&batches);
                let m = got.len();
                assert_eq!(got[..m.saturating_sub(1)], expected[..m.saturating_sub(1)]);
                if let Some(j) = boundaries.iter().position(|&b| b == k) {
                    assert_eq!(got, expected[..j], "cut at record boundary {k}");
                }
                if m == 0 || got[m - 1] == expected[m - 1] {
                    exact += 1;
                    continue;
                }
                // The one thing a cut can do silently: shorten an unquoted last field, as a
                // body without a final line break would. Its text is exactly what was cut.
                let (last, want) = (&got[m - 1], &expected[m - 1]);
                assert_eq!(last[..2], want[..2], "cut at {k}");
                let value = last[2].clone().unwrap_or_default();
                let text = std::str::from_utf8(cut).expect("the cut is UTF-8 (it decoded)");
                let text = text.strip_suffix('\r').unwrap_or(text);
                assert!(
                    text.ends_with(&format!(",{value}")),
                    "cut at {k}: {value:?}"
                );
                assert!(want[2].clone().unwrap_or_default().starts_with(&value));
                cut_values += 1;
            }
            Err(
                DecodeError::Truncated { .. }
                | DecodeError::InvalidUtf8 { .. }
                | DecodeError::EmptyHeader { .. }
                | DecodeError::Empty { .. },
            ) => errors += 1,
            Err(e) => panic!("cut at {k}: unexpected error {e:?}"),
        }
    }
    // Sanity of the sweep itself: each outcome happened.
    assert!(exact > boundaries.len() && cut_values > 0 && errors > 0);
    assert_eq!(exact + cut_values + errors, body.len() + 1);
}

#[test]
fn not_data_bodies_are_recognised_with_an_excerpt() {
    let page = format!(
        "\r\n  <!DOCTYPE html><html><body>{}</body></html>",
        "Bad gateway. ".repeat(40)
    );
    for make in [
        &(|| RawDecoder::csv(opts(2))) as &dyn Fn() -> RawDecoder,
        &json_dec(&["a"]),
    ] {
        match decode_all(make, page.as_bytes()).expect_err("HTML") {
            DecodeError::NotData {
                reason, excerpt, ..
            } => {
                assert!(reason.contains("HTML"));
                assert_eq!(excerpt.chars().count(), 200);
                assert!(excerpt.starts_with("<!DOCTYPE html><html><body>Bad gateway."));
            }
            e => panic!("expected NotData, got {e:?}"),
        }
    }
    let short = "<html>502</html>";
    match csv_err(short.as_bytes()) {
        DecodeError::NotData { excerpt, .. } => assert_eq!(excerpt, short),
        e => panic!("expected NotData, got {e:?}"),
    }
    let envelope = r#"{"success":false,"error":{"code":"NOT_FOUND","message":"no results"}}"#;
    for (err, reason) in [
        (csv_err(envelope.as_bytes()), "not CSV"),
        (json_err(&["a"], envelope.as_bytes()), "success: false"),
        (
            json_err(&["a"], br#"  {"error": "token expired"}"#),
            "`error` key",
        ),
    ] {
        match err {
            DecodeError::NotData {
                reason: got,
                excerpt,
                ..
            } => {
                assert!(got.contains(reason), "{got}");
                assert!(excerpt.starts_with('{'), "{excerpt}");
            }
            e => panic!("expected NotData, got {e:?}"),
        }
    }
}

#[test]
fn decoder_is_closed_after_an_error_or_finish() {
    let mut dec = RawDecoder::csv(opts(2));
    dec.push(b"a\n1,2\n").expect_err("ragged");
    assert!(matches!(dec.push(b"3\n"), Err(DecodeError::Closed { .. })));
    assert!(matches!(dec.finish(), Err(DecodeError::Closed { .. })));

    let mut dec = RawDecoder::json(names(&["a"]), opts(2));
    dec.push(br#"[{"a":1}]"#).expect("valid");
    assert_eq!(
        rows(&[dec.finish().expect("valid").expect("one row")]),
        vec![r(&["1"])]
    );
    assert!(matches!(dec.push(b" "), Err(DecodeError::Closed { .. })));
}

// ---------------------------------------------------------------- JSON

#[test]
fn json_values_keep_their_exact_text() {
    let body = r#"[
      {"id": 9007199254740993, "price": "12.50", "n": -0.5e-3, "ok": true, "gone": null,
       "nested": {"a": [1, {"b": "x y"}], "c" : "q\"\u00e9"}, "list": [ ],
       "text": "tab\there \"q\" \u00e9 \ud83d\ude00 東京 שלום", "extra": {"deep": [1,2]}},
      {"text": "", "ok": false, "id": 1.50, "nested": [], "n": 0}
    ]"#;
    let fields = [
        "id", "price", "n", "ok", "gone", "nested", "list", "text", "missing",
    ];
    assert_eq!(
        json_rows(&fields, body),
        vec![
            r(&[
                "9007199254740993",
                "12.50",
                "-0.5e-3",
                "true",
                "~",
                r#"{"a":[1,{"b":"x y"}],"c":"q\"\u00e9"}"#,
                "[]",
                "tab\there \"q\" é 😀 東京 שלום",
                "~",
            ]),
            r(&["1.50", "~", "0", "false", "~", "[]", "~", "", "~"]),
        ]
    );
}

#[test]
fn json_keys_any_order_repeated_or_escaped() {
    let body = r#"[{"b":"1","a":"2"},{"a":"3","a":"4"},{"\u0061":"5","b\n":"x"},{}]"#;
    assert_eq!(
        json_rows(&["a", "b"], body),
        vec![
            r(&["2", "1"]),
            r(&["4", "~"]),
            r(&["5", "~"]),
            r(&["~", "~"]),
        ]
    );
    // A repeated key whose last value is null is null.
    assert_eq!(
        json_rows(&["a"], r#"[{"a":"x","a":null}]"#),
        vec![r(&["~"])]
    );
}

#[test]
fn json_ndjson_and_empty_array() {
    let expected = vec![r(&["1", "x"]), r(&["2", "~"]), r(&["3", "z"])];
    for body in [
        "{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n{\"a\":3,\"b\":\"z\"}\n",
        "{\"a\":1,\"b\":\"x\"}\r\n\r\n{\"a\":2}\r\n{\"a\":3,\"b\":\"z\"}",
        "\u{feff}  [{\"a\":1,\"b\":\"x\"},{\"a\":2},\n{\"a\":3,\"b\":\"z\"}]\n",
    ] {
        assert_eq!(json_rows(&["a", "b"], body), expected, "{body:?}");
    }
    assert_eq!(json_rows(&["a"], " [ ] \n"), Rows::new());
}

#[test]
fn json_wrapped_rows() {
    let expected = vec![r(&["1"]), r(&["2"])];
    for body in [
        r#"{"data":[{"a":1},{"a":2}]}"#,
        r#"{"success": true, "data": [{"a":1}, {"a":2}], "total": 2, "page": {"n": [1]}}"#,
        r#"{"error": null, "results": [{"a":1},{"a":2}]}"#,
        r#" {"items":[{"a":1},{"a":2}] } "#,
    ] {
        assert_eq!(json_rows(&["a"], body), expected, "{body}");
    }
    assert_eq!(json_rows(&["a"], r#"{"data":[]}"#), Rows::new());
    // When `items` is a listed column, or a listed column comes first, the object is a row.
    assert_eq!(
        json_rows(&["items", "a"], r#"{"items":[{"a":1}],"a":5}"#),
        vec![r(&[r#"[{"a":1}]"#, "5"])]
    );
    assert_eq!(
        json_rows(&["a"], "{\"a\":5,\"data\":[1]}\n{\"a\":6}"),
        vec![r(&["5"]), r(&["6"])]
    );
    match json_err(&["a"], br#"{"data":[{"a":1}]} {"a":2}"#) {
        DecodeError::Json { record, .. } => assert_eq!(record, 2),
        e => panic!("expected Json, got {e:?}"),
    }
}

#[test]
fn json_syntax_errors_name_the_row() {
    for (body, want_record, want_offset) in [
        (&br#"[{"a":1} {"a":2}]"#[..], 2, 9),
        (br#"[{"a":1},{"a":tru}]"#, 2, 14),
        (br#"[{"a":1},]"#, 2, 9),
        (br#"[1]"#, 1, 1),
        (br#"[{"a":01}]"#, 1, 7),
        (br#"[{"a":"x" "b":1}]"#, 1, 10),
        (br#"[{"a":[1,2}]"#, 1, 10),
        (br#"[{"a":"\ud800"}]"#, 1, 7),
        (b"[{\"a\":\"raw\nnewline\"}]", 1, 10),
        (br#"[{"a":1}] x"#, 2, 10),
        (br#"{"a":1}, {"a":2}"#, 2, 7),
        (br#"hello"#, 1, 0),
    ] {
        match json_err(&["a", "b"], body) {
            DecodeError::Json { record, offset, .. } => assert_eq!(
                (record, offset),
                (want_record, want_offset),
                "{}",
                String::from_utf8_lossy(body)
            ),
            e => panic!(
                "{}: expected Json, got {e:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}

#[test]
fn json_truncated_and_empty_bodies() {
    for body in [
        &b"[{\"a\":1}"[..],
        b"[{\"a\":1},",
        b"[",
        b"{\"a\":",
        b"{\"data\":[{\"a\":1}]",
    ] {
        assert!(
            matches!(json_err(&["a"], body), DecodeError::Truncated { .. }),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    for body in [&b""[..], b" \n\t", b"\xEF\xBB\xBF"] {
        assert!(matches!(json_err(&["a"], body), DecodeError::Empty { .. }));
    }
}

#[test]
fn json_truncation_at_every_byte_is_exact_or_an_error() {
    let rows_json = [
        r#"{"id": 1, "t": "a,\"b\" \u00e9 東京", "n": {"x": [1, 2]}}"#,
        r#"{"id": 22, "t": null}"#,
        r#"{"t": "last 😀", "id": 333}"#,
    ];
    let expected = [
        r(&["1", "a,\"b\" é 東京", r#"{"x":[1,2]}"#]),
        r(&["22", "~", "~"]),
        r(&["333", "last 😀", "~"]),
    ];
    let array = format!("[\n  {}\n]\n", rows_json.join(",\n  "));
    let lines = format!("{}\n", rows_json.join("\n"));
    for (body, is_array) in [(array, true), (lines, false)] {
        let body = body.as_bytes();
        let close = body.iter().rposition(|&b| b == b']').unwrap_or(0);
        for k in 0..=body.len() {
            match decode_all(&json_dec(&["id", "t", "n"]), &body[..k]) {
                Ok(batches) => {
                    let got = rows(&batches);
                    assert_eq!(got, expected[..got.len()], "cut at {k}");
                    if is_array {
                        assert!(k > close, "an array cut at {k} decoded");
                        assert_eq!(got.len(), 3);
                    }
                }
                Err(DecodeError::Truncated { .. } | DecodeError::Empty { .. }) => {
                    assert!(!is_array || k <= close, "complete array at {k} failed");
                }
                Err(e) => panic!("cut at {k}: unexpected error {e:?}"),
            }
        }
    }
}

#[test]
fn json_deep_nesting_does_not_overflow_the_stack() {
    let depth = 200_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(r#"[{{"a": {deep}, "skip": {deep}}}]"#);
    let batches = decode_in(RawDecoder::json(names(&["a"]), opts(2)), body.as_bytes(), 0)
        .expect("deep but valid");
    assert_eq!(rows(&batches), vec![vec![Some(deep.clone())]]);
    let open = format!(r#"[{{"a": {}"#, "[{\"k\":".repeat(depth));
    assert!(matches!(
        decode_in(
            RawDecoder::json(names(&["a"]), opts(2)),
            open.as_bytes(),
            4096
        ),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn json_field_list_edge_cases() {
    // No columns: batches still count rows.
    let batches = decode_all(&json_dec(&[]), br#"[{"a":1},{"b":2},{}]"#).expect("valid");
    assert_eq!(
        batches
            .iter()
            .map(|b| (b.num_rows(), b.num_columns()))
            .collect::<Vec<_>>(),
        vec![(2, 0), (1, 0)]
    );
    let mut dec = RawDecoder::json(names(&["a", "b", "a"]), opts(2));
    assert_eq!(dec.columns(), Some(&names(&["a", "b", "a"])[..]));
    match dec.push(b"[]") {
        Err(DecodeError::DuplicateHeader {
            name,
            first,
            second,
        }) => assert_eq!((name.as_str(), first, second), ("a", 1, 3)),
        other => panic!("expected DuplicateHeader, got {other:?}"),
    }
}

#[test]
fn json_record_size_is_limited() {
    let make = || {
        RawDecoder::json(
            names(&["a"]),
            DecoderOptions {
                batch_rows: 2,
                max_record_bytes: 24,
                ..DecoderOptions::default()
            },
        )
    };
    let ok = br#"[{"a":"0123456789abcd"}]"#; // a 22-byte row
    assert_eq!(
        rows(&decode_all(&make, ok).expect("fits")),
        vec![r(&["0123456789abcd"])]
    );
    match decode_all(&make, br#"[{"a":1}, {"a":"0123456789abcdefghij"}]"#).expect_err("too big") {
        DecodeError::RecordTooLarge {
            record,
            offset,
            limit,
            ..
        } => assert_eq!((record, offset, limit), (2, 10, 24)),
        e => panic!("expected RecordTooLarge, got {e:?}"),
    }
    // The same applies to the first object of an NDJSON body or an endless wrapper prefix.
    let first = br#"{"a":"0123456789abcdefghij"}"#;
    assert!(matches!(
        decode_all(&make, first).expect_err("too big"),
        DecodeError::RecordTooLarge {
            record: 1,
            offset: 0,
            ..
        }
    ));
}

#[test]
fn new_dispatches_on_format() {
    let mut csv = RawDecoder::new(ExportFormat::Csv, names(&["ignored"]), opts(2));
    csv.push(b"x\n1\n").expect("valid");
    assert_eq!(csv.columns(), Some(&names(&["x"])[..]));
    let json = RawDecoder::new(ExportFormat::Json, names(&["a"]), opts(2));
    assert_eq!(json.columns(), Some(&names(&["a"])[..]));
    assert_eq!(DecoderOptions::default().batch_rows, 8192);
    assert_eq!(DecoderOptions::default().max_record_bytes, 16 << 20);
}

#[test]
fn json_error_markers_only_reject_objects_without_columns() {
    // A first row that carries an unlisted `error` next to listed columns is a row.
    assert_eq!(
        json_rows(
            &["id"],
            "{\"id\":1,\"error\":\"timeout\"}\n{\"id\":2,\"error\":null}"
        ),
        vec![r(&["1"]), r(&["2"])]
    );
    // An envelope that fails but still has an (empty) rows array is not data.
    match json_err(
        &["id"],
        br#"{"success":false,"error":{"code":"X"},"data":[]}"#,
    ) {
        DecodeError::NotData { reason, .. } => assert!(reason.contains("success")),
        e => panic!("expected NotData, got {e:?}"),
    }
    assert_eq!(
        json_rows(
            &["id"],
            r#"{"success":true,"error":null,"data":[{"id":7}]}"#
        ),
        vec![r(&["7"])]
    );
}

#[test]
fn truncated_offsets_are_where_the_body_ended() {
    for (err, end) in [
        (csv_err(b"a,b\n1,\"x"), 8),
        (csv_err(b"\xEF\xBB\xBFa,b,c\n1,2"), 12),
        (json_err(&["a"], br#"[{"a":1},{"a""#), 13),
        (json_err(&["a"], b"\xEF\xBB\xBF[ "), 5),
    ] {
        match err {
            DecodeError::Truncated { offset, .. } => assert_eq!(offset, end),
            e => panic!("expected Truncated, got {e:?}"),
        }
    }
}

#[test]
fn decoder_can_move_between_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<RawDecoder>();
}

/// Issue 13.8: rows of many empty cells add offsets but no value bytes, so batches that
/// closed by value bytes only grew to `batch_rows` × columns × 4 bytes (100k columns:
/// 3 GiB). A batch now also closes by its offsets: here 400 kB / (10,000 × 4) = 10 rows.
#[test]
fn wide_rows_of_empty_cells_close_batches_by_their_offsets() {
    let cols = MAX_COLUMNS;
    let header: Vec<String> = (0..cols).map(|i| format!("c{i}")).collect();
    let mut body = header.join(",");
    body.push('\n');
    let empty_row = ",".repeat(cols - 1);
    for _ in 0..25 {
        body.push_str(&empty_row);
        body.push('\n');
    }
    let opts = DecoderOptions {
        batch_rows: 8192,
        batch_bytes: 400_000,
        ..DecoderOptions::default()
    };
    let batches = decode_in(RawDecoder::csv(opts), body.as_bytes(), 1 << 16).expect("decodes");
    let rows: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(rows, [10, 10, 5]);
    assert!(batches.iter().all(|b| b.num_columns() == cols));
    assert!(batches[0].column(0).is_null(0));
}

/// Issue 13.8: a CSV header or JSON field list past `MAX_COLUMNS` is refused with a clear
/// error before any buffer is sized by it.
#[test]
fn more_columns_than_the_cap_is_a_clear_error() {
    let header: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
    let body = format!("{}\n1{}\n", header.join(","), ",".repeat(MAX_COLUMNS));
    let err = decode_in(RawDecoder::csv(opts(10)), body.as_bytes(), 4096).expect_err("too wide");
    assert_eq!(
        err.to_string(),
        "the csv export has 10001 columns, more than the limit of 10000; a result this wide is refused to protect memory"
    );
    let err = decode_in(RawDecoder::json(header, opts(10)), b"[]", 0).expect_err("too wide");
    assert!(
        matches!(
            err,
            DecodeError::TooManyColumns {
                format: ExportFormat::Json,
                found: 10_001,
                limit: 10_000
            }
        ),
        "{err:?}"
    );
    // At the cap exactly, both decode.
    let header: Vec<String> = (0..MAX_COLUMNS).map(|i| format!("c{i}")).collect();
    let body = format!("{}\n", header.join(","));
    assert!(decode_in(RawDecoder::csv(opts(10)), body.as_bytes(), 0).is_ok());
}
