//! Shared by the decoder targets: decode one body whole and again in chunks, and require
//! the same outcome. The first input byte picks the split point, batch size and record
//! limit, so batch and chunk boundaries fall everywhere.

use titan_connector::decode::{DecoderOptions, ExportFormat, RawDecoder};

/// Rows as text (or the error's Display) from decoding `chunks` in order.
fn decode(
    format: ExportFormat,
    opts: DecoderOptions,
    chunks: &[&[u8]],
) -> Result<Vec<String>, String> {
    let fields = vec!["a".to_string(), "b".to_string(), "n.x".to_string()];
    let mut d = RawDecoder::new(format, fields, opts);
    let mut rows = Vec::new();
    let drain = |d: &mut RawDecoder, rows: &mut Vec<String>| {
        while let Some(batch) = d.next_batch() {
            rows.push(format!("{batch:?}"));
        }
    };
    for c in chunks {
        d.push(c).map_err(|e| e.to_string())?;
        drain(&mut d, &mut rows);
    }
    if let Some(last) = d.finish().map_err(|e| e.to_string())? {
        rows.push(format!("{last:?}"));
    }
    drain(&mut d, &mut rows);
    Ok(rows)
}

pub fn run(format: ExportFormat, data: &[u8]) {
    let Some((&knob, body)) = data.split_first() else {
        return;
    };
    let opts = || DecoderOptions {
        batch_rows: 1 + usize::from(knob & 3),
        // Small byte bounds too, so batches also close by bytes mid-body.
        batch_bytes: if knob & 4 != 0 { 32 } else { 2 << 20 },
        max_record_bytes: if knob & 4 != 0 { 64 } else { 1 << 20 },
    };
    let whole = decode(format, opts(), &[body]);
    let at = usize::from(knob >> 3) % (body.len() + 1);
    let (a, b) = body.split_at(at);
    let split = decode(format, opts(), &[a, b]);
    // Where a body is split must not change what it decodes to: ok/error and, when ok, the
    // batches. (Error messages may name a different byte offset only if the body differs.)
    match (&whole, &split) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "split at {at} changed the rows"),
        (Err(_), Err(_)) => {}
        _ => panic!("split at {at}: whole {whole:?} vs split {split:?}"),
    }
}
