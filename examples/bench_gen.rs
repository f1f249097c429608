//! `bench_gen`: writes the benchmark inputs of `make bench` with the simulator's own export
//! generator, so the files the peers convert are byte for byte what `titan-sim` serves.
//!
//! Invariant: a cached file is complete (written to a temp name, renamed last), and its name
//! carries everything its bytes depend on (shape, rows, format, seed, execution id).
//!
//! ```text
//! cargo run --release --example bench_gen -- --shape products --rows 2000000 --format csv
//! ```
//!
//! Prints one JSON object on stdout: the export path, its bytes and rows, the sim's
//! `output_schema` file, the connector schema file, and the seed/task/execution ids to put in
//! a scenario that serves the same rows.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};
use titan_sim::ExportFormat;
use titan_sim::SimTask;
use titan_sim::export::ExportChunks;

#[path = "../benches/common/shapes.rs"]
mod shapes;
use shapes::{SEED, Shape};

/// Only media cells embed the base URL, and the shapes have none; kept fixed anyway.
const BASE_URL: &str = "http://127.0.0.1:9";

/// Benchmark input generator (see the module docs).
#[derive(Debug, Parser)]
#[command(name = "bench_gen")]
struct Args {
    /// `products` (11 columns), `wide` (50 columns) or `scraped` (11 realistic columns,
    /// ~300 bytes a CSV row; written by `benches/common/scraped.rs`, not the simulator).
    #[arg(long)]
    shape: Shape,
    /// Data rows in the export.
    #[arg(long)]
    rows: u64,
    /// `csv` or `json` (a JSON array, as Titan exports it).
    #[arg(long)]
    format: ExportFormat,
    /// Cache directory.
    #[arg(long, default_value = ".bench-cache")]
    dir: PathBuf,
    /// Write the file even if it is cached.
    #[arg(long)]
    force: bool,
    /// Only print the report (`bytes` is null when the export is not cached); write nothing
    /// but the schema files.
    #[arg(long, conflicts_with = "force")]
    dry_run: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_gen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let shape = args.shape.name();
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let output_schema = args.shape.output_schema();
    let sim_schema_path = args.dir.join(format!("{shape}.output_schema.json"));
    write_if_changed(&sim_schema_path, &pretty(&output_schema)?)?;
    let schema_path = args.dir.join(format!("{shape}.schema.json"));
    write_if_changed(&schema_path, &pretty(&args.shape.connector_schema())?)?;

    let task = args.shape.task();
    let exec_id = args.shape.execution_id(args.rows);
    let path = args.dir.join(format!(
        "{shape}-{}-s{SEED}.{}",
        args.rows,
        args.format.as_str()
    ));
    let cached = path.exists() && !args.force;
    if !cached && !args.dry_run {
        let started = Instant::now();
        write_export(&path, args.shape, &task, &exec_id, args.rows, args.format)?;
        eprintln!(
            "bench_gen: wrote {} in {:.1} s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let bytes = match fs::metadata(&path) {
        Ok(meta) => Some(meta.len()),
        Err(_) if args.dry_run => None,
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
    };
    let report = json!({
        "path": path, "bytes": bytes, "rows": args.rows, "format": args.format.as_str(),
        "shape": shape, "cached": cached, "seed": SEED, "task_id": task.id,
        "execution_id": exec_id, "output_schema": sim_schema_path, "schema": schema_path,
        "columns": args.shape.columns().len(),
    });
    println!("{report}");
    Ok(())
}

fn pretty(v: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

/// Keeps the mtime of unchanged files, so nothing downstream sees a spurious change.
fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn write_export(
    path: &Path,
    shape: Shape,
    task: &SimTask,
    exec_id: &str,
    rows: u64,
    format: ExportFormat,
) -> Result<()> {
    let tmp = path.with_extension("partial");
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    if shape.own_generator() {
        // The simulator serves this file as is (`export_file`), so it need not generate it.
        shapes::scraped::Scraped::new(SEED)
            .write(&mut out, rows, format == ExportFormat::Csv)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    } else {
        for chunk in ExportChunks::new(SEED, task, exec_id, rows, format, BASE_URL) {
            out.write_all(&chunk)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}
