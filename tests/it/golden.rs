//! Golden tests: hostile exports through the real decoder and the mapper, with exact typed
//! values, exact rejects, and quarantine lines that account for every rejected row.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use serde_json::{Value, json};

use titan_connector::decode::{DecoderOptions, RawDecoder};
use titan_connector::map::*;
use titan_connector::schema::*;

/// Decodes `body` in small chunks (to cross every boundary) into raw batches of 3 rows.
fn decode(mut dec: RawDecoder, body: &[u8]) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for chunk in body.chunks(7) {
        dec.push(chunk).unwrap();
        while let Some(b) = dec.next_batch() {
            out.push(b);
        }
    }
    if let Some(b) = dec.finish().unwrap() {
        out.push(b);
    }
    while let Some(b) = dec.next_batch() {
        out.push(b);
    }
    out
}

fn opts() -> DecoderOptions {
    DecoderOptions {
        batch_rows: 3,
        ..DecoderOptions::default()
    }
}

/// Maps every batch with quarantine; returns the accepted rows (concatenated), the rejects
/// and the quarantine lines.
fn map_all(schema: &TargetSchema, raws: &[RecordBatch]) -> (RecordBatch, Vec<Reject>, Vec<Value>) {
    let lineage = Lineage {
        task_id: "task-1".into(),
        execution_id: "exec-1".into(),
    };
    let mapper = Mapper::new(schema, lineage.clone());
    let enc = QuarantineEncoder::new(&lineage);
    let mut first_row = 1;
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    let mut lines = Vec::new();
    let mut stats = RejectStats::default();
    for raw in raws {
        let mapped = mapper
            .map_batch(raw, first_row, BadRowPolicy::Quarantine)
            .unwrap();
        stats.record(raw.num_rows(), &mapped.rejects);
        let bytes = enc.encode(raw, first_row, &mapped.rejects).unwrap();
        for line in std::str::from_utf8(&bytes).unwrap().lines() {
            lines.push(serde_json::from_str::<Value>(line).unwrap());
        }
        first_row += raw.num_rows() as u64;
        batches.push(mapped.batch);
        rejects.extend(mapped.rejects);
    }
    let all = arrow::compute::concat_batches(&mapper.arrow_schema(), &batches).unwrap();
    // Written rows plus quarantined rows are exactly the export's rows.
    let total: usize = raws.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(all.num_rows() + lines.len(), total);
    assert_eq!(stats.rejected_rows as usize, lines.len());
    assert_eq!(stats.accepted_rows() as usize, all.num_rows());
    (all, rejects, lines)
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a dyn Array {
    b.column_by_name(name).unwrap().as_ref()
}

fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    col(b, name)
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

const JSON_SCHEMA: &str = r#"{
  "version": 1,
  "columns": [
    {"name": "name", "source": "product_name", "type": "string", "nullable": false},
    {"name": "price", "type": "decimal(12,2)", "currency": true, "thousands_separator": ","},
    {"name": "price_eu", "type": "decimal(10,2)", "currency": true,
     "decimal_separator": ",", "thousands_separator": "."},
    {"name": "qty", "type": "int64"},
    {"name": "in_stock", "type": "boolean", "default": false},
    {"name": "seen_at", "type": "timestamp",
     "formats": ["iso8601", "%d/%m/%Y %H:%M", "epoch_millis"], "timezone": "+02:00"},
    {"name": "tags", "type": "list<string>"},
    {"name": "seller_name", "source": "seller.name", "type": "string"},
    {"name": "seller_rating", "source": "/seller/ratings/0", "type": "decimal(3,1)"},
    {"name": "dims", "type": "struct<w:int32,h:int32>"},
    {"name": "meta", "type": "json"},
    {"name": "rating", "type": "number", "null_values": ["n/a"]},
    {"name": "day", "type": "date", "formats": ["%d.%m.%Y", "iso8601"]}
  ]
}"#;

const JSON_BODY: &str = r#"[
 {"product_name": "灯 💡 مرحبا", "price": 1299, "price_eu": "€1.299,00", "qty": 9007199254740993,
  "in_stock": true, "seen_at": "2024-03-10T12:00:00+05:30", "tags": ["a", "b\"c"],
  "seller": {"name": "Ünï", "ratings": [4.5, 3]}, "dims": {"w": 1, "h": 2, "d": 3},
  "meta": {"x": [1, {"y": null}]}, "rating": "n/a", "day": "10.03.2024"},
 {"product_name": "", "price": "$1,299.00", "seen_at": "10/03/2024 12:00", "tags": [],
  "seller": null, "rating": 4.25, "day": "2024-02-29"},
 {"product_name": "bad price", "price": "n/a"},
 {"product_name": "bad qty", "qty": 12.5, "seen_at": 1710072000000},
 {"product_name": null, "price": "12.345"},
 {"product_name": "bad seller", "seller": "x", "dims": [1, 2]},
 {"product_name": "big", "qty": -9223372036854775808, "in_stock": "no", "price": "-$0.5"}
]"#;

#[test]
fn json_export_with_hostile_values() {
    let schema = TargetSchema::from_json_str(JSON_SCHEMA, "golden").unwrap();
    let dec = RawDecoder::json(schema.source_fields(), opts());
    assert_eq!(
        schema.source_fields(),
        [
            "product_name",
            "price",
            "price_eu",
            "qty",
            "in_stock",
            "seen_at",
            "tags",
            "seller",
            "dims",
            "meta",
            "rating",
            "day"
        ]
    );
    let raws = decode(dec, JSON_BODY.as_bytes());
    let (out, rejects, lines) = map_all(&schema, &raws);

    // Accepted: export rows 1, 2, 4 is rejected, … — see the rejects below.
    let rows: Vec<i64> = col(&out, LINEAGE_ROW)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(rows, [1, 2, 7]);
    assert_eq!(
        strs(&out, "name"),
        [
            Some("灯 💡 مرحبا".into()),
            Some(String::new()),
            Some("big".into())
        ]
    );
    let dec = |name: &str| -> Vec<Option<i128>> {
        col(&out, name)
            .as_primitive::<Decimal128Type>()
            .iter()
            .collect()
    };
    assert_eq!(dec("price"), [Some(129_900), Some(129_900), Some(-50)]);
    assert_eq!(dec("price_eu"), [Some(129_900), None, None]);
    assert_eq!(dec("seller_rating"), [Some(45), None, None]);
    let qty: Vec<Option<i64>> = col(&out, "qty")
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(qty, [Some(9_007_199_254_740_993), None, Some(i64::MIN)]);
    let stock: Vec<Option<bool>> = col(&out, "in_stock").as_boolean().iter().collect();
    // Missing in row 2: the default `false`, not null.
    assert_eq!(stock, [Some(true), Some(false), Some(false)]);
    let seen: Vec<Option<i64>> = col(&out, "seen_at")
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    // 12:00+05:30 → 06:30Z; a naive 12:00 in the +02:00 column zone → 10:00Z.
    assert_eq!(
        seen,
        [
            Some(1_710_052_200_000_000),
            Some(1_710_064_800_000_000),
            None
        ]
    );
    let tags = col(&out, "tags").as_list::<i32>();
    assert_eq!(
        tags.value(0).as_string::<i32>().iter().collect::<Vec<_>>(),
        [Some("a"), Some("b\"c")]
    );
    assert_eq!(tags.value(1).len(), 0);
    assert!(tags.is_null(2));
    assert_eq!(strs(&out, "seller_name"), [Some("Ünï".into()), None, None]);
    let dims = col(&out, "dims").as_struct();
    let w: Vec<Option<i32>> = dims.column(0).as_primitive::<Int32Type>().iter().collect();
    assert_eq!(w, [Some(1), None, None]);
    assert!(dims.is_valid(0) && dims.is_null(1));
    assert_eq!(
        strs(&out, "meta"),
        [Some(r#"{"x":[1,{"y":null}]}"#.into()), None, None]
    );
    let rating: Vec<Option<f64>> = col(&out, "rating")
        .as_primitive::<Float64Type>()
        .iter()
        .collect();
    assert_eq!(rating, [None, Some(4.25), None]);
    let day: Vec<Option<i32>> = col(&out, "day")
        .as_primitive::<Date32Type>()
        .iter()
        .collect();
    assert_eq!(day, [Some(19_792), Some(19_782), None]);

    let got: Vec<(u64, &str, Option<&str>, RejectReason)> = rejects
        .iter()
        .map(|r| (r.row, r.column.as_str(), r.value.as_deref(), r.reason))
        .collect();
    use RejectReason::*;
    assert_eq!(
        got,
        [
            (3, "price", Some("n/a"), Syntax),
            (4, "qty", Some("12.5"), NotIntegral),
            (5, "name", None, Null),
            (5, "price", Some("12.345"), Scale),
            (6, "seller_name", Some("x"), InvalidJson),
            (6, "seller_rating", Some("x"), InvalidJson),
            (6, "dims", Some("[1,2]"), WrongJsonKind),
        ]
    );
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["row"], 3);
    assert_eq!(lines[0]["reason"], "malformed value");
    assert_eq!(
        lines[0]["expected"],
        "decimal(12,2) (exact decimal number) with at most 2 fractional digits"
    );
    assert_eq!(lines[0]["record"]["product_name"], "bad price");
    assert_eq!(lines[0]["record"]["qty"], Value::Null);
    assert_eq!(lines[2]["errors"].as_array().unwrap().len(), 2);
    assert_eq!(lines[3]["record"]["dims"], "[1,2]");
    assert_eq!(lines[3]["record"]["seller"], "x");
    assert_eq!(lines[1]["record"]["seen_at"], "1710072000000");
    assert_eq!(lines[1]["task_id"], "task-1");
}

#[test]
fn csv_export_with_bom_crlf_quotes_and_split_lists() {
    let schema = TargetSchema::from_json_str(
        r#"{"version": 1, "columns": [
            {"name": "name", "type": "string", "nullable": false},
            {"name": "price", "type": "decimal(12,2)", "currency": true, "thousands_separator": ","},
            {"name": "tags", "type": "list<string>", "split": "|"},
            {"name": "note", "type": "string"},
            {"name": "n", "type": "int32", "round": "half_even"},
            {"name": "attrs", "source": "attrs.color", "type": "string"}
        ]}"#,
        "csv-golden",
    )
    .unwrap();
    let body = "\u{feff}name,price,tags,note,n,attrs\r\n\
        \"Lamp, \"\"deluxe\"\"\",\"$1,299.00\",a | b,\"line1\r\nline2\",2.5,\"{\"\"color\"\":\"\"红\"\"}\"\r\n\
        灯,12,,,3.5,\r\n\
        x,n/a,a,,1,\r\n\
        🦀,\"€1,000\",solo,\u{202e}rtl,2147483648,{}\r\n";
    let raws = decode(RawDecoder::csv(opts()), body.as_bytes());
    let (out, rejects, lines) = map_all(&schema, &raws);
    assert_eq!(
        strs(&out, "name"),
        [Some("Lamp, \"deluxe\"".into()), Some("灯".into())]
    );
    let price: Vec<Option<i128>> = col(&out, "price")
        .as_primitive::<Decimal128Type>()
        .iter()
        .collect();
    assert_eq!(price, [Some(129_900), Some(1200)]);
    let tags = col(&out, "tags").as_list::<i32>();
    assert_eq!(
        tags.value(0).as_string::<i32>().iter().collect::<Vec<_>>(),
        [Some("a"), Some("b")]
    );
    assert!(tags.is_null(1));
    assert_eq!(strs(&out, "note"), [Some("line1\r\nline2".into()), None]);
    let n: Vec<Option<i32>> = col(&out, "n").as_primitive::<Int32Type>().iter().collect();
    assert_eq!(n, [Some(2), Some(4)]);
    assert_eq!(strs(&out, "attrs"), [Some("红".into()), None]);
    let got: Vec<(u64, &str, RejectReason)> = rejects
        .iter()
        .map(|r| (r.row, r.column.as_str(), r.reason))
        .collect();
    assert_eq!(
        got,
        [
            (3, "price", RejectReason::Syntax),
            (4, "n", RejectReason::OutOfRange)
        ]
    );
    assert_eq!(lines[1]["record"]["note"], "\u{202e}rtl");
    assert_eq!(lines[1]["record"]["name"], "🦀");
    // `€1,000` with a `,` thousands separator is 1000.00; the row fails only on `n`.
    assert_eq!(lines[1]["errors"].as_array().unwrap().len(), 1);
}

#[test]
fn fail_policy_names_row_column_value_and_expected_type() {
    let schema = TargetSchema::from_json_str(JSON_SCHEMA, "golden").unwrap();
    let raws = decode(
        RawDecoder::json(schema.source_fields(), opts()),
        JSON_BODY.as_bytes(),
    );
    let mapper = Mapper::new(
        &schema,
        Lineage {
            task_id: "t".into(),
            execution_id: "e".into(),
        },
    );
    let err = mapper
        .map_batch(&raws[0], 1, BadRowPolicy::Fail)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "row 3, column `price`: malformed value: cannot convert \"n/a\" to decimal(12,2) (exact decimal number) with at most 2 fractional digits"
    );
    let skipped = mapper.map_batch(&raws[0], 1, BadRowPolicy::Skip).unwrap();
    assert_eq!(skipped.batch.num_rows(), 2);
    assert_eq!(skipped.rejects.len(), 1);
}

#[test]
fn defaults_fill_absent_columns_and_must_convert() {
    let schema = TargetSchema::from_json_str(
        r#"{"version": 1, "columns": [
            {"name": "a", "type": "string"},
            {"name": "currency", "type": "string", "nullable": false, "default": "USD"},
            {"name": "tags", "type": "list<int64>", "default": [1, 2]}
        ]}"#,
        "d",
    )
    .unwrap();
    let raws = decode(
        RawDecoder::json(vec!["a".into()], opts()),
        br#"[{"a": "x"}]"#,
    );
    let mapper = Mapper::new(
        &schema,
        Lineage {
            task_id: "t".into(),
            execution_id: "e".into(),
        },
    );
    let out = mapper.map(&raws[0], 1).unwrap();
    assert_eq!(strs(&out, "currency"), [Some("USD".into())]);
    let tags = col(&out, "tags").as_list::<i32>();
    assert_eq!(
        tags.value(0).as_primitive::<Int64Type>().values().to_vec(),
        [1, 2]
    );

    let bad =
        r#"{"version": 1, "columns": [{"name": "p", "type": "decimal(5,2)", "default": "1.234"}]}"#;
    let err = TargetSchema::from_json_str(bad, "d").unwrap_err();
    assert_eq!(
        err.to_string(),
        "d: invalid `columns[0].default`: \"1.234\" is not a valid value of the column (more fractional digits than the decimal scale; expected decimal(5,2) (exact decimal number) with at most 2 fractional digits)"
    );
    let misplaced =
        r#"{"version": 1, "columns": [{"name": "p", "type": "string", "round": "half_up"}]}"#;
    let err = TargetSchema::from_json_str(misplaced, "d").unwrap_err();
    assert_eq!(
        err.to_string(),
        "d: invalid `columns[0].round`: applies to integer and decimal columns only, not to `string`"
    );
    let zone = "{\"version\": 1, \"columns\": [\n{\"name\": \"t\", \"type\": \"timestamp\", \"timezone\": \"Europe/Paris\"}]}";
    let err = TargetSchema::from_json_str(zone, "z.json").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("z.json:2:62: time zone `Europe/Paris` is an IANA name"),
        "{text}"
    );
    assert!(
        text.contains("IANA name") && text.ends_with("(at `columns[0].timezone`)"),
        "{text}"
    );
}

#[test]
fn evolution_from_a_csv_header() {
    let schema = TargetSchema::from_json_str(
        r#"{"version": 1, "columns": [{"name": "name", "type": "string"}, {"name": "price", "type": "number"}]}"#,
        "e",
    )
    .unwrap();
    let body = "name,price,sku,added_at\r\nA,1,42,2024-03-10T00:00:00Z\r\n";
    let mut dec = RawDecoder::csv(opts());
    dec.push(body.as_bytes()).unwrap();
    let first = dec.finish().unwrap().unwrap();
    let seen = dec.columns().unwrap().to_vec();
    let policy = EvolutionPolicy {
        extra_fields: ExtraFieldPolicy::Add,
        missing_fields: MissingFieldPolicy::Fail,
    };
    let evolved = schema
        .evolve(&seen, std::slice::from_ref(&first), policy)
        .unwrap();
    assert_eq!(evolved.added, ["sku", "added_at"]);
    let mapper = Mapper::new(
        &evolved.schema,
        Lineage {
            task_id: "t".into(),
            execution_id: "e".into(),
        },
    );
    let out = mapper.map(&first, 1).unwrap();
    assert_eq!(col(&out, "sku").as_primitive::<Int64Type>().value(0), 42);
    assert_eq!(
        col(&out, "added_at")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        1_710_028_800_000_000
    );
    assert_eq!(
        json!(
            out.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        ),
        json!([
            "name",
            "price",
            "sku",
            "added_at",
            "_titan_task_id",
            "_titan_execution_id",
            "_titan_row"
        ])
    );
}
