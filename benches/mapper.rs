//! Criterion throughput of the schema mapper (raw Utf8 batches → typed batches + lineage),
//! on batches our CSV decoder made from the simulator's exports of the `make bench` shapes.
//! Throughput is in bytes of the CSV those batches came from, to compare with `decode`.
//!
//! `cargo bench --bench mapper`; under `cargo test` each case runs once on a tiny body.

use std::hint::black_box;

use arrow::record_batch::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use titan_connector::decode::{DecoderOptions, RawDecoder};
use titan_connector::map::{Lineage, Mapper};
use titan_connector::schema::TargetSchema;
use titan_sim::ExportFormat;
use titan_sim::export::ExportChunks;

#[allow(dead_code)]
#[path = "common/shapes.rs"]
mod shapes;
use shapes::{SEED, Shape};

/// CSV bytes per case when benchmarking (the raw batches are held in memory).
const BENCH_BYTES: u64 = 16 << 20;
/// Rows per case under `cargo test` (one quick pass, to prove the bench still works).
const TEST_ROWS: u64 = 500;

/// True under `cargo bench` (criterion gets `--bench`); false under `cargo test`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The decoder's raw batches of a CSV export of about `BENCH_BYTES`, and the CSV's size.
fn raw_batches(shape: Shape) -> (Vec<RecordBatch>, u64) {
    let task = shape.task();
    let csv = |rows: u64| -> Vec<u8> {
        if shape.own_generator() {
            return shapes::scraped::body(SEED, rows, true);
        }
        ExportChunks::new(SEED, &task, "bench", rows, ExportFormat::Csv, "")
            .flat_map(|chunk| chunk.to_vec())
            .collect()
    };
    let rows = if benchmarking() {
        BENCH_BYTES * 1000 / csv(1000).len() as u64
    } else {
        TEST_ROWS
    };
    let body = csv(rows);
    let mut dec = RawDecoder::csv(DecoderOptions::default());
    dec.push(&body).expect("the sim's export is valid");
    let mut batches: Vec<RecordBatch> = std::iter::from_fn(|| dec.next_batch()).collect();
    batches.extend(dec.finish().expect("the sim's export is complete"));
    batches.extend(std::iter::from_fn(|| dec.next_batch()));
    (batches, body.len() as u64)
}

fn mapper(c: &mut Criterion) {
    let mut group = c.benchmark_group("map");
    group.sample_size(10);
    for shape in [Shape::Products, Shape::Wide, Shape::Scraped] {
        let schema = TargetSchema::from_json_str(&shape.connector_schema().to_string(), "bench")
            .expect("the bench schema is valid");
        let mapper = Mapper::new(
            &schema,
            Lineage {
                task_id: shape.task().id,
                execution_id: shape.execution_id(0),
            },
        );
        let (batches, csv_bytes) = raw_batches(shape);
        group.throughput(Throughput::Bytes(csv_bytes));
        group.bench_function(shape.name(), |b| {
            b.iter(|| {
                let mut first_row = 1;
                for raw in &batches {
                    let typed = mapper.map(raw, first_row).expect("sim values all convert");
                    first_row += black_box(typed).num_rows() as u64;
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, mapper);
criterion_main!(benches);
