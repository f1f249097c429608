//! The `titan-connector` binary: parse arguments, set up logging, run a command, and turn
//! the outcome into a documented exit code. All the work is in the library.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use titan_connector::api::ApiErrorKind;
use titan_connector::cli::exit::Exit;
use titan_connector::cli::{self, Cli, Command};
use titan_connector::config::{Config, ConfigError, Env};
use titan_connector::pipeline::{self, RunError};
use titan_connector::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let exit = runtime.block_on(dispatch(cli));
    exit.into()
}

async fn dispatch(cli: Cli) -> Exit {
    let env = Env::from_process();
    match cli.command {
        Command::Run(args) => {
            let cfg = match Config::load(
                &args.common.config,
                &env,
                &args.common.overrides(args.concurrency),
            ) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let report = match pipeline::run(&cfg).await {
                Ok(r) => r,
                Err(e) => return run_error(&e, &cfg),
            };
            if let Some(path) = &args.report
                && let Err(e) = write_report(path, &report)
            {
                eprintln!("error: {e:#}");
                return Exit::Failure;
            }
            eprintln!("{}", report.summary());
            if report.has_failures() {
                Exit::Partial
            } else {
                Exit::Ok
            }
        }
        Command::Check(args) => {
            let cfg = match Config::load(&args.config, &env, &args.overrides(None)) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let mut out = std::io::stdout();
            match cli::check::check(&cfg, &mut out).await {
                Ok(()) => Exit::Ok,
                Err(cli::check::CheckError::Api(e)) => run_error(&RunError::Api(e), &cfg),
                Err(cli::check::CheckError::Store(e)) => run_error(&RunError::Store(e), &cfg),
                Err(e @ cli::check::CheckError::Schema { .. }) => {
                    eprintln!("error: {e}");
                    Exit::Usage
                }
            }
        }
    }
}

fn write_report(
    path: &std::path::Path,
    report: &titan_connector::report::RunReport,
) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report).context("serialising the run report")?;
    let mut f = std::fs::File::create(path)
        .with_context(|| format!("cannot write the report to `{}`", path.display()))?;
    f.write_all(&json)
        .and_then(|()| f.write_all(b"\n"))
        .with_context(|| format!("cannot write the report to `{}`", path.display()))
}

fn config_error(e: &ConfigError) -> Exit {
    eprintln!("error: {e}");
    Exit::Usage
}

fn run_error(e: &RunError, cfg: &Config) -> Exit {
    let (exit, hint) = match e {
        RunError::Api(api) => match api.kind() {
            ApiErrorKind::Auth => (
                Exit::Auth,
                "check TITAN_TOKEN (or api.token_file) and that the key has tasks:read, executions:read and data:read",
            ),
            ApiErrorKind::Unreachable => (
                Exit::Unreachable,
                "check api.url / TITAN_API_URL and the network",
            ),
            ApiErrorKind::Config | ApiErrorKind::Refused => (Exit::Usage, ""),
            _ => (Exit::Failure, ""),
        },
        RunError::Store(_) => (Exit::Failure, ""),
    };
    eprintln!("error: {}", chain(e));
    if !hint.is_empty() {
        eprintln!("hint: Titan API at {}: {hint}", cfg.api.base_url);
    }
    exit
}

/// The error and its sources on one line, like anyhow's `{:#}`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let msg = src.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = src.source();
    }
    s
}
