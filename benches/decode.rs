//! Criterion throughput of the streaming decoders (bytes of export body per second), on the
//! simulator's own exports of the `make bench` shapes, fed in 64 KiB chunks as HTTP delivers
//! them. arrow-csv's push decoder on the same CSV is the reference point.
//!
//! `cargo bench --bench decode`; under `cargo test` each case runs once on a tiny body.

use std::hint::black_box;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use titan_connector::decode::{DecoderOptions, RawDecoder};
use titan_connector::format::ExportFormat;
use titan_sim::export::ExportChunks;

#[allow(dead_code)]
#[path = "common/shapes.rs"]
mod shapes;
use shapes::{SEED, Shape};

/// Body size per case when benchmarking: big enough to cycle many batches, small enough
/// that a sample takes well under a second.
const BENCH_BYTES: u64 = 16 << 20;
/// Rows per case under `cargo test` (one quick pass, to prove the bench still works).
const TEST_ROWS: u64 = 500;
const CHUNK: usize = 64 << 10;

/// True under `cargo bench` (criterion gets `--bench`); false under `cargo test`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// An export body of about `BENCH_BYTES` (or `TEST_ROWS` rows), and its row count.
fn body(shape: Shape, format: ExportFormat) -> (Vec<u8>, u64) {
    let task = shape.task();
    let gen_rows = |rows: u64| -> Vec<u8> {
        if shape.own_generator() {
            return shapes::scraped::body(SEED, rows, format == ExportFormat::Csv);
        }
        ExportChunks::new(
            SEED,
            &task,
            "bench",
            rows,
            format
                .as_str()
                .parse()
                .expect("the simulator serves every format"),
            "http://127.0.0.1:9",
        )
        .flat_map(|chunk| chunk.to_vec())
        .collect()
    };
    if !benchmarking() {
        return (gen_rows(TEST_ROWS), TEST_ROWS);
    }
    let sample = gen_rows(1000);
    let rows = BENCH_BYTES * 1000 / sample.len() as u64;
    (gen_rows(rows), rows)
}

fn decode(mut dec: RawDecoder, body: &[u8]) -> u64 {
    let mut rows = 0;
    for chunk in body.chunks(CHUNK) {
        dec.push(chunk).expect("the sim's export is valid");
        while let Some(b) = dec.next_batch() {
            rows += black_box(b).num_rows() as u64;
        }
    }
    let last = dec.finish().expect("the sim's export is complete");
    rows + last.map_or(0, |b| b.num_rows() as u64)
}

/// arrow-csv's push decoder into the same all-Utf8 columns.
fn decode_arrow_csv(schema: &Arc<Schema>, body: &[u8]) -> u64 {
    let mut dec = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_header(true)
        .with_batch_size(DecoderOptions::default().batch_rows)
        .build_decoder();
    let mut rows = 0;
    for mut chunk in body.chunks(CHUNK) {
        while !chunk.is_empty() {
            let n = dec.decode(chunk).expect("the sim's export is valid");
            chunk = &chunk[n..];
            if n == 0 || dec.capacity() == 0 {
                rows += dec
                    .flush()
                    .expect("valid")
                    .map_or(0, |b| black_box(b).num_rows() as u64);
            }
        }
    }
    rows + dec
        .flush()
        .expect("valid")
        .map_or(0, |b| b.num_rows() as u64)
}

fn decoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    for shape in [Shape::Products, Shape::Wide, Shape::Scraped] {
        let fields: Vec<String> = shape.columns().into_iter().map(|c| c.0).collect();
        let utf8 = Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| Field::new(f, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let (csv, rows) = body(shape, ExportFormat::Csv);
        group.throughput(Throughput::Bytes(csv.len() as u64));
        group.bench_function(format!("csv/{}", shape.name()), |b| {
            b.iter(|| {
                let dec = RawDecoder::csv(DecoderOptions::default());
                assert_eq!(decode(dec, &csv), rows);
            })
        });
        group.bench_function(format!("arrow-csv/{}", shape.name()), |b| {
            b.iter(|| assert_eq!(decode_arrow_csv(&utf8, &csv), rows))
        });
        drop(csv);
        let (json, rows) = body(shape, ExportFormat::Json);
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function(format!("json/{}", shape.name()), |b| {
            b.iter(|| {
                let dec = RawDecoder::json(fields.clone(), DecoderOptions::default());
                assert_eq!(decode(dec, &json), rows);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decoders);
criterion_main!(benches);
