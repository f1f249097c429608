//! `titan-connector convert`: a local export file through the same hot path.

use std::io::Write;

use titan_connector::schema::TargetSchema;
use titan_sim::ExportFormat;
use titan_sim::export::ExportChunks;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

#[test]
fn converts_csv_and_json_files_to_the_exact_rows() {
    let sc = scenario();
    let task = task(&sc, PRODUCTS_TASK);
    let dir = tempfile::tempdir().unwrap();
    let schema = TargetSchema::from_output_schema(&task.output_schema).unwrap();
    std::fs::write(dir.path().join("schema.json"), schema.to_json()).unwrap();
    for (format, ext) in [(ExportFormat::Csv, "csv"), (ExportFormat::Json, "json")] {
        let input = dir.path().join(format!("exec-p1.{ext}"));
        let mut f = std::fs::File::create(&input).unwrap();
        for chunk in ExportChunks::new(sc.seed, task, "exec-p1", 1500, format, "http://x") {
            f.write_all(&chunk).unwrap();
        }
        drop(f);
        let out = dir.path().join(format!("out-{ext}"));
        let o = std::process::Command::new(BIN)
            .args(["convert", "--input"])
            .arg(&input)
            .arg("--schema")
            .arg(dir.path().join("schema.json"))
            .arg("--output")
            .arg(&out)
            .args(["--file-rows", "1000"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("converted 1500 records"));
        let files = parquet_files(&out);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["exec-p1-0.parquet", "exec-p1-1.parquet"]);
        let batches: Vec<_> = files.iter().flat_map(|f| read_parquet(f)).collect();
        // Lineage of a local file: task "local", execution = the file stem.
        let n = assert_rows_match_as(&batches, &sc, PRODUCTS_TASK, "exec-p1", "local", "http://x");
        assert_eq!(n, 1500);
    }
}

#[test]
fn a_broken_input_fails_with_the_record_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"name":"t","version":1,"columns":[{"name":"n","type":"integer"}]}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.csv"), "n\n1\n2\nthree\n").unwrap();
    let o = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "convert",
            "--input",
            "bad.csv",
            "--schema",
            "schema.json",
            "--output",
            "out",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("row 3") && err.contains("three"), "{err}");
    assert!(parquet_files(&dir.path().join("out")).is_empty());
}

/// Whichever error comes first in the body is the one reported: a bad value (the mapper's)
/// or a ragged record (the decoder's). The bodies exceed one 1 MiB read, so the two errors
/// are in different reads; this guards any pipelining of decode and map (docs/performance.md,
/// fourth pass, measured a split onto two threads).
#[test]
fn the_first_error_in_the_body_wins_across_the_decode_and_map_threads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"name":"t","version":1,"columns":[{"name":"n","type":"integer"},{"name":"pad","type":"string"}]}"#,
    )
    .unwrap();
    let pad = "x".repeat(100);
    // (row with a bad integer, row with one field instead of two, expected message part)
    let cases = [
        (3, 19_000, "row 3"),
        (
            15_000,
            5,
            "CSV record 5 (byte 418) has 1 fields but the header has 2",
        ),
    ];
    for (bad_value, ragged, expected) in cases {
        let mut body = String::from("n,pad\n");
        for row in 1..=20_000 {
            if row == bad_value {
                body.push_str(&format!("three,{pad}\n"));
            } else if row == ragged {
                body.push_str("5\n");
            } else {
                body.push_str(&format!("{row},{pad}\n"));
            }
        }
        assert!(body.len() > 2 << 20);
        std::fs::write(dir.path().join("bad.csv"), &body).unwrap();
        let o = std::process::Command::new(BIN)
            .current_dir(dir.path())
            .args(["convert", "--input", "bad.csv", "--schema", "schema.json"])
            .args(["--output", "out"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(expected), "expected {expected:?} in {err}");
        let other = if bad_value < ragged {
            "CSV record"
        } else {
            "three"
        };
        assert!(
            !err.contains(other),
            "{other:?} is later in the body: {err}"
        );
        assert!(parquet_files(&dir.path().join("out")).is_empty());
    }
}
