//! Informal throughput measurement on ~100 MB generated exports (ignored by default).
//!
//! Run optimised: `CARGO_PROFILE_TEST_OPT_LEVEL=3 cargo test --lib decode::bench -- --ignored
//! --nocapture`. Prints MB/s for our decoders and, for comparison, arrow-csv's push decoder.

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema};

use super::*;

const TARGET_BYTES: usize = 100 << 20;
const CHUNK: usize = 64 << 10;

const FIELDS: [&str; 8] = [
    "id",
    "title",
    "price",
    "url",
    "description",
    "in_stock",
    "category",
    "rating",
];

/// One scraped-product-like row's cells: ids, prices, URLs, prose with commas and quotes,
/// some CJK, some empty.
fn cells(i: usize) -> [String; 8] {
    [
        (1_000_000 + i).to_string(),
        format!("Product {i}, size {}", i % 13),
        format!("{}.{:02}", i % 500, i % 100),
        format!("https://shop.example.com/p/{i}?ref=list&page={}", i % 40),
        if i.is_multiple_of(10) {
            String::new()
        } else {
            format!(
                "A \"quoted\" description of item {i}, with commas, and enough words to be realistic."
            )
        },
        (!i.is_multiple_of(3)).to_string(),
        if i.is_multiple_of(4) {
            "家電・カメラ".into()
        } else {
            "Electronics".into()
        },
        format!("{}.{}", i % 5, i % 10),
    ]
}

fn csv_body() -> (Vec<u8>, usize) {
    let mut out = FIELDS.join(",").into_bytes();
    out.push(b'\n');
    let mut rows = 0;
    while out.len() < TARGET_BYTES {
        for (c, cell) in cells(rows).iter().enumerate() {
            if c > 0 {
                out.push(b',');
            }
            if cell.contains([',', '"', '\n']) {
                out.push(b'"');
                out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
                out.push(b'"');
            } else {
                out.extend_from_slice(cell.as_bytes());
            }
        }
        out.push(b'\n');
        rows += 1;
    }
    (out, rows)
}

fn json_body() -> (Vec<u8>, usize) {
    let mut out = b"[\n".to_vec();
    let mut rows = 0;
    while out.len() < TARGET_BYTES {
        if rows > 0 {
            out.extend_from_slice(b",\n");
        }
        let c = cells(rows);
        let row = format!(
            r#"{{"id":{},"title":"{}","price":"{}","url":"{}","description":{},"in_stock":{},"category":"{}","rating":{},"tags":["a","b"]}}"#,
            c[0],
            c[1],
            c[2],
            c[3],
            if c[4].is_empty() {
                "null".to_string()
            } else {
                format!("\"{}\"", c[4].replace('"', "\\\""))
            },
            c[5],
            c[6],
            c[7]
        );
        out.extend_from_slice(row.as_bytes());
        rows += 1;
    }
    out.extend_from_slice(b"\n]\n");
    (out, rows)
}

fn report(name: &str, bytes: usize, rows: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {:>7.1} MB in {secs:>6.3} s = {:>7.1} MB/s, {:>5.2} M rows/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        rows as f64 / 1e6 / secs
    );
}

fn run(mut dec: RawDecoder, body: &[u8]) -> usize {
    let mut rows = 0;
    for chunk in body.chunks(CHUNK) {
        dec.push(chunk).expect("generated body is valid");
        while let Some(b) = dec.next_batch() {
            rows += b.num_rows();
        }
    }
    rows + dec.finish().expect("valid").map_or(0, |b| b.num_rows())
}

#[test]
#[ignore = "throughput measurement; run optimised with --ignored --nocapture"]
fn throughput_csv() {
    let (csv, csv_rows) = csv_body();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(
            run(RawDecoder::csv(DecoderOptions::default()), &csv),
            csv_rows
        );
        report("csv (RawDecoder)", csv.len(), csv_rows, start);
    }
    let schema = Arc::new(Schema::new(
        FIELDS
            .iter()
            .map(|f| Field::new(*f, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    for _ in 0..2 {
        let start = Instant::now();
        let mut dec = arrow::csv::ReaderBuilder::new(schema.clone())
            .with_header(true)
            .with_batch_size(8192)
            .build_decoder();
        let mut rows = 0;
        for mut chunk in csv.chunks(CHUNK) {
            while !chunk.is_empty() {
                let n = dec.decode(chunk).expect("valid");
                chunk = &chunk[n..];
                if n == 0 || dec.capacity() == 0 {
                    rows += dec.flush().expect("valid").map_or(0, |b| b.num_rows());
                }
            }
        }
        rows += dec.flush().expect("valid").map_or(0, |b| b.num_rows());
        assert_eq!(rows, csv_rows);
        report("csv (arrow-csv Decoder)", csv.len(), csv_rows, start);
    }
}

#[test]
#[ignore = "throughput measurement; run optimised with --ignored --nocapture"]
fn throughput_json() {
    let fields: Vec<String> = FIELDS.iter().map(|s| s.to_string()).collect();
    let (json, json_rows) = json_body();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(
            run(
                RawDecoder::json(fields.clone(), DecoderOptions::default()),
                &json
            ),
            json_rows
        );
        report("json (RawDecoder)", json.len(), json_rows, start);
    }
}
