//! Logging setup: `tracing` to stderr, as text for people or JSON lines for machines.
//!
//! Nothing logged carries the token: the API client logs method, path and status only,
//! and `Token` has no printable form.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;
use titan_connector::progress::Progress;

/// Installs the global subscriber. `RUST_LOG` wins over `-v`/`-q` when set. Lines go
/// through `progress`, so they print above its bars instead of through them.
pub fn init(format: LogFormat, verbose: u8, quiet: bool, progress: &Progress) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // The Delta kernel logs at ERROR what it also returns to us (a table not created yet
    // reads as "No table version found"); we log its errors, with context, ourselves.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("warn,delta_kernel=off,titan_connector={level}"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress.log_writer())
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}
