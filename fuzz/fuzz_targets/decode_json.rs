#![no_main]
//! The JSON export decoder (array or NDJSON): no panic, and the same result however the
//! body is chunked.

#[path = "decode.rs"]
mod decode;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decode::run(titan_connector::decode::ExportFormat::Json, data);
});
