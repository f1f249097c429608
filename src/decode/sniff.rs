//! Reads the start of an export to learn which fields it has before its first row is
//! mapped, and applies the task's schema-evolution policy.
//!
//! The schema of an export must be fixed before mapping starts (every Parquet part of one
//! execution has the same schema), so the decision is taken on a prefix of the body: the
//! CSV header, or the keys of the first JSON records. The prefix is then replayed in front
//! of the rest of the body, so the decoder still sees every byte exactly once.

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::decode::{DecoderOptions, RawDecoder};
use crate::format::ExportFormat;
use crate::schema::{EvolutionError, EvolutionPolicy, Evolved, TargetSchema, json_record_keys};

/// How much of a body is read ahead: enough for a header and a sample of rows to type
/// added fields by, small enough to not matter for memory.
pub const PREFIX_BYTES: usize = 1 << 20;

/// Records whose keys are collected from a JSON prefix.
const SAMPLE_RECORDS: usize = 1000;

/// Rows per sample batch: small, so a 1 MiB prefix of wide rows still yields batches.
const SAMPLE_BATCH_ROWS: usize = 64;

/// An export body whose first bytes were read ahead and are replayed.
pub type Body<E> = BoxStream<'static, Result<Bytes, E>>;

/// The outcome of sniffing: the body to decode (unchanged bytes) and, when the policy
/// could be applied, how the schema was reconciled with the data.
pub struct Sniffed<E> {
    pub body: Body<E>,
    pub evolved: Option<Evolved>,
}

/// Reads up to [`PREFIX_BYTES`] of `body` and reconciles `schema` with the fields found
/// there under `policy`.
///
/// `evolved` is `None` when the prefix does not look like data (an HTML page, an error
/// envelope, a body that failed while being read): the decoder reports those with its own,
/// retryable errors, so they are not mistaken for a schema problem here.
pub async fn sniff<E: Send + 'static>(
    body: Body<E>,
    format: ExportFormat,
    schema: &TargetSchema,
    policy: EvolutionPolicy,
) -> Result<Sniffed<E>, EvolutionError> {
    let (prefix, ended, rest) = read_prefix(body).await;
    let evolved = match fields_and_sample(&prefix, ended, format, schema, policy) {
        Some((seen, sample)) => Some(schema.evolve(&seen, &sample, policy)?),
        None => None,
    };
    let replay = futures::stream::iter(prefix.into_iter().map(Ok));
    Ok(Sniffed {
        body: replay.chain(rest).boxed(),
        evolved,
    })
}

/// Chunks up to `PREFIX_BYTES` (or to the first error, which is left in `rest`), and whether
/// the body ended within them.
async fn read_prefix<E: Send + 'static>(mut body: Body<E>) -> (Vec<Bytes>, bool, Body<E>) {
    let mut prefix = Vec::new();
    let mut len = 0;
    while len < PREFIX_BYTES {
        match body.next().await {
            Some(Ok(chunk)) => {
                len += chunk.len();
                prefix.push(chunk);
            }
            Some(Err(e)) => {
                let rest = futures::stream::iter([Err(e)]).chain(body).boxed();
                return (prefix, false, rest);
            }
            None => return (prefix, true, body),
        }
    }
    (prefix, false, body)
}

/// The field names seen in the prefix, and sample batches holding them (to type fields
/// that get added); `None` when the prefix is not recognisably data.
fn fields_and_sample(
    prefix: &[Bytes],
    ended: bool,
    format: ExportFormat,
    schema: &TargetSchema,
    policy: EvolutionPolicy,
) -> Option<(Vec<String>, Vec<RecordBatch>)> {
    let opts = DecoderOptions {
        batch_rows: SAMPLE_BATCH_ROWS,
        ..DecoderOptions::default()
    };
    let wants_sample = policy.extra_fields == crate::schema::ExtraFieldPolicy::Add;
    let fields = schema.source_fields();
    // JSON keys come from a scan of the text; with `add` the extra ones are decoded too, so
    // one pass over the prefix both judges it and samples the new fields.
    let json_keys = (format == ExportFormat::Json)
        .then(|| json_record_keys(&prefix.concat(), &fields, SAMPLE_RECORDS));
    let mut columns = fields.clone();
    if wants_sample && let Some(keys) = &json_keys {
        columns.extend(keys.iter().filter(|k| !fields.contains(k)).cloned());
    }
    // The decoder is the judge of whether this is data at all: what it would reject as an
    // HTML page or an error envelope (and retry) must not become a schema verdict here.
    let mut dec = RawDecoder::new(format, columns, opts);
    let sample = decode_sample(&mut dec, prefix, ended).ok()?;
    if dec.is_not_data() {
        return None;
    }
    let seen = match json_keys {
        Some(keys) => keys,
        None => dec.columns()?.to_vec(),
    };
    if seen.is_empty() {
        return None;
    }
    Some((seen, if wants_sample { sample } else { vec![] }))
}

/// Pushes the prefix through `dec` and returns the complete batches (all of them when the
/// body ended within the prefix).
fn decode_sample(
    dec: &mut RawDecoder,
    prefix: &[Bytes],
    ended: bool,
) -> Result<Vec<RecordBatch>, crate::decode::DecodeError> {
    let mut out = Vec::new();
    for chunk in prefix {
        dec.push(chunk)?;
        while let Some(b) = dec.next_batch() {
            out.push(b);
        }
    }
    if ended {
        if let Some(b) = dec.finish()? {
            out.push(b);
        }
        while let Some(b) = dec.next_batch() {
            out.push(b);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnSpec, ColumnType, ExtraFieldPolicy, MissingFieldPolicy};

    fn schema() -> TargetSchema {
        TargetSchema {
            name: Some("t".into()),
            version: 1,
            columns: vec![
                ColumnSpec::new("name", ColumnType::String, true),
                ColumnSpec::new("price", ColumnType::Float64, true),
            ],
        }
    }

    fn body(chunks: &[&'static str]) -> Body<std::io::Error> {
        let chunks: Vec<_> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        futures::stream::iter(chunks).boxed()
    }

    async fn collect(b: Body<std::io::Error>) -> String {
        let parts: Vec<Bytes> = b.map(|r| r.expect("chunk")).collect().await;
        String::from_utf8(parts.concat()).expect("utf8")
    }

    fn policy(extra: ExtraFieldPolicy, missing: MissingFieldPolicy) -> EvolutionPolicy {
        EvolutionPolicy {
            extra_fields: extra,
            missing_fields: missing,
        }
    }

    #[tokio::test]
    async fn csv_extra_field_is_added_typed_from_the_sample_and_bytes_are_replayed() {
        let text = ["name,price,stock\n", "a,1.5,3\nb,2,", "4\n"];
        let s = sniff(
            body(&text),
            ExportFormat::Csv,
            &schema(),
            policy(ExtraFieldPolicy::Add, MissingFieldPolicy::Null),
        )
        .await
        .expect("evolves");
        let evolved = s.evolved.expect("data");
        assert_eq!(evolved.added, ["stock"]);
        let stock = evolved.schema.columns.last().expect("added column");
        assert_eq!(stock.name, "stock");
        assert_eq!(stock.ty, ColumnType::Int64);
        assert_ne!(evolved.schema.fingerprint(), schema().fingerprint());
        assert_eq!(collect(s.body).await, text.concat());
    }

    #[tokio::test]
    async fn json_extra_field_is_added_typed_from_the_same_pass() {
        let text = [r#"[{"name":"a","price":1,"stock":3},{"name":"b","stock":4}]"#];
        let s = sniff(
            body(&text),
            ExportFormat::Json,
            &schema(),
            policy(ExtraFieldPolicy::Add, MissingFieldPolicy::Null),
        )
        .await
        .expect("evolves");
        let evolved = s.evolved.expect("data");
        assert_eq!(evolved.added, ["stock"]);
        let stock = evolved.schema.columns.last().expect("added column");
        assert_eq!(
            (stock.name.as_str(), &stock.ty),
            ("stock", &ColumnType::Int64)
        );
    }

    #[tokio::test]
    async fn json_extra_field_fails_under_fail_naming_it() {
        let text = [r#"[{"name":"a","price":1,"colour":"red"}]"#];
        let err = sniff(
            body(&text),
            ExportFormat::Json,
            &schema(),
            policy(ExtraFieldPolicy::Fail, MissingFieldPolicy::Null),
        )
        .await
        .err()
        .expect("fails");
        assert_eq!(err.to_string(), "fields not in the schema: `colour`");
    }

    #[tokio::test]
    async fn missing_field_fails_under_fail() {
        let err = sniff(
            body(&["name\nx\n"]),
            ExportFormat::Csv,
            &schema(),
            policy(ExtraFieldPolicy::Ignore, MissingFieldPolicy::Fail),
        )
        .await
        .err()
        .expect("fails");
        assert_eq!(
            err.to_string(),
            "schema fields missing from the data: `price`"
        );
    }

    #[tokio::test]
    async fn an_html_page_is_left_to_the_decoder() {
        let text = ["<!doctype html><html><body>502</body></html>"];
        for format in [ExportFormat::Csv, ExportFormat::Json] {
            let s = sniff(
                body(&text),
                format,
                &schema(),
                policy(ExtraFieldPolicy::Fail, MissingFieldPolicy::Fail),
            )
            .await
            .expect("no schema error");
            assert!(s.evolved.is_none(), "{format}");
            assert_eq!(collect(s.body).await, text.concat());
        }
    }

    #[tokio::test]
    async fn an_error_envelope_on_200_is_left_to_the_decoder() {
        let text = [r#"{"success":false,"error":{"code":"INTERNAL","message":"boom"}}"#];
        let s = sniff(
            body(&text),
            ExportFormat::Json,
            &schema(),
            policy(ExtraFieldPolicy::Fail, MissingFieldPolicy::Fail),
        )
        .await
        .expect("no schema error");
        assert!(s.evolved.is_none());
    }

    #[tokio::test]
    async fn a_body_error_inside_the_prefix_is_replayed_after_the_good_bytes() {
        let b: Body<std::io::Error> = futures::stream::iter([
            Ok(Bytes::from_static(b"name,price\n")),
            Err(std::io::Error::other("cut")),
        ])
        .boxed();
        let s = sniff(
            b,
            ExportFormat::Csv,
            &schema(),
            policy(ExtraFieldPolicy::Fail, MissingFieldPolicy::Fail),
        )
        .await
        .expect("header alone fits");
        let items: Vec<_> = s.body.collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().expect("bytes").as_ref(), b"name,price\n");
        assert_eq!(items[1].as_ref().expect_err("error").to_string(), "cut");
    }
}
