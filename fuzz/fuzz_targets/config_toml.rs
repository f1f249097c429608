#![no_main]
//! The TOML config parser and validator: any text gives a config or a `ConfigError`.
//! The file's directory does not exist, so relative paths in it (schemas, task lists,
//! token files) resolve to nothing.

use std::path::Path;

use titan_connector::config::{Config, Env, Overrides, env::vars};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = Env::from_pairs([(vars::TITAN_TOKEN, "fuzz-token".to_string())]);
    let _ = Config::from_toml(
        text,
        Path::new("/nonexistent-titan-fuzz/titan.toml"),
        &env,
        &Overrides::default(),
    );
});
