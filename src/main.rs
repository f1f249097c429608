//! The `titan-connector` binary: parse arguments, set up logging, run a command, and turn
//! the outcome into a documented exit code. All the work is in the library.

mod cli;
mod telemetry;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cli::exit::Exit;
use cli::{Cli, Command};
use titan_connector::api::ApiErrorKind;
use titan_connector::config::{Config, ConfigError, Env, RunOptions, resolve_store_url};
use titan_connector::convert::ConvertOptions;
use titan_connector::format::ExportFormat;
use titan_connector::lineage::LineageRun;
use titan_connector::metrics;
use titan_connector::progress::Progress;
use titan_connector::report::human_bytes;
use titan_connector::run::{self, RunError};
use titan_connector::schema::TargetSchema;
use titan_connector::sink::store::StoreConfig;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    let progress = if Progress::should_show(
        std::io::stderr().is_terminal(),
        cli.log_format == cli::LogFormat::Text,
        cli.quiet,
    ) {
        Progress::stderr()
    } else {
        Progress::disabled()
    };
    telemetry::init(cli.log_format, cli.verbose, cli.quiet, &progress);
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
    let exit = runtime.block_on(dispatch(cli, progress));
    exit.into()
}

/// Sets glibc's malloc up for a streaming pipeline, before any thread exists. A parameter
/// you set yourself (its `MALLOC_*` variable or `glibc.malloc.*` tunable) takes precedence.
///
/// - **2 arenas.** By default every thread that allocates may get its own arena (up to 8
///   per core), and memory freed in one is not reused by another: the decode thread and the
///   encode threads of the blocking pool took a 300k-row, 50-column conversion to 230 MiB
///   peak RSS; with 2 arenas it peaks at ~105 MiB at the same speed.
/// - **Fixed mmap (32 MiB) and trim (64 MiB) thresholds.** glibc's defaults move with the
///   largest block freed, so the 1 MiB page and chunk buffers every batch frees were given
///   back to the kernel and faulted in again: 19k extra page faults and TLB shootdowns per
///   2M rows, 4–5% of the wall time, and a peak that varied by ~10 MiB from run to run.
///
/// docs/performance.md has the measurements.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let params = [
        (
            "MALLOC_ARENA_MAX",
            "glibc.malloc.arena_max",
            libc::M_ARENA_MAX,
            2,
        ),
        (
            "MALLOC_MMAP_THRESHOLD_",
            "glibc.malloc.mmap_threshold",
            libc::M_MMAP_THRESHOLD,
            32 << 20,
        ),
        (
            "MALLOC_TRIM_THRESHOLD_",
            "glibc.malloc.trim_threshold",
            libc::M_TRIM_THRESHOLD,
            64 << 20,
        ),
    ];
    for (var, tunable, param, value) in params {
        if std::env::var_os(var).is_none() && !tunables.contains(tunable) {
            // SAFETY: `mallopt` only sets an allocator parameter; glibc documents these as
            // safe to change at any time, and no other thread exists yet.
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

async fn dispatch(cli: Cli, progress: Progress) -> Exit {
    let env = Env::from_process();
    match cli.command {
        Command::Run(args) => {
            let overrides = titan_connector::config::Overrides {
                shard: args.shard,
                dry_run: args.dry_run,
                ..args.common.overrides(args.concurrency)
            };
            let mut cfg = match Config::load(&args.common.config, &env, &overrides) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            if let Some(f) = &args.metrics_file {
                cfg.metrics.file = Some(f.clone());
            }
            let shutdown = CancellationToken::new();
            watch_signals(shutdown.clone());
            let started = std::time::Instant::now();
            let run_uuid = uuid::Uuid::now_v7();
            // A dry run does nothing a lineage service should record.
            let lineage = cfg
                .lineage
                .as_ref()
                .filter(|_| !cfg.dry_run)
                .map(|l| LineageRun::begin(l, &cfg, run_uuid));
            let report = match run::run_as(&cfg, shutdown, progress, run_uuid).await {
                Ok(r) => r,
                Err(e) => {
                    let exit = run_error(&e, &cfg);
                    observe_failure(&cfg, lineage, &chain(&e), started.elapsed()).await;
                    return exit;
                }
            };
            if let Some(path) = &args.report
                && let Err(e) = write_report(path, &report)
            {
                eprintln!("error: {e:#}");
                return Exit::Failure;
            }
            eprintln!("{}", report.summary());
            observe_report(&cfg, lineage, &report).await;
            if report.interrupted {
                Exit::Interrupted
            } else if report.has_failures() {
                Exit::Partial
            } else {
                Exit::Ok
            }
        }
        Command::Convert(args) => convert(&args).await,
        Command::Compact(args) => cli::maintain::compact(&args, &mut std::io::stdout()).await,
        Command::Vacuum(args) => cli::maintain::vacuum(&args, &mut std::io::stdout()).await,
        Command::Init(args) => match cli::init::write(&args.path, args.force) {
            Ok(()) => {
                eprintln!(
                    "wrote {}: replace the task id, set TITAN_TOKEN, then `titan-connector check --config {}`",
                    args.path.display(),
                    args.path.display()
                );
                Exit::Ok
            }
            Err(e @ cli::init::InitError::Exists(_)) => {
                eprintln!("error: {e}");
                Exit::Usage
            }
            Err(e) => {
                eprintln!("error: {}", chain(&e));
                Exit::Failure
            }
        },
        Command::Completions { shell } => {
            cli::docs::completions(shell, &mut std::io::stdout());
            Exit::Ok
        }
        Command::Man => match cli::docs::man(&mut std::io::stdout()) {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("error: cannot write the man page: {e}");
                Exit::Failure
            }
        },
        Command::Schema(cmd) => schema_command(cmd, &env).await,
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

async fn schema_command(cmd: cli::SchemaCommand, env: &Env) -> Exit {
    use cli::schema::{self as sc, SchemaCmdError};
    let load = |config: &std::path::Path| {
        let overrides = titan_connector::config::Overrides {
            allow_no_tasks: true,
            ..Default::default()
        };
        Config::load(config, env, &overrides)
    };
    let mut out = std::io::stdout();
    let result = match cmd {
        cli::SchemaCommand::Check { file } => sc::check(&file, &mut out),
        cli::SchemaCommand::Pull {
            config,
            task,
            output,
        } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            match sc::pull(&cfg, &task).await {
                Ok(text) => sc::emit(&text, output.as_deref(), &mut out),
                Err(e) => Err(e),
            }
        }
        cli::SchemaCommand::Infer {
            config,
            execution,
            format,
            rows,
            output,
        } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let format = match format {
                cli::FormatArg::Csv => ExportFormat::Csv,
                cli::FormatArg::Json => ExportFormat::Json,
            };
            match sc::infer(&cfg, &execution, format, rows).await {
                Ok(text) => sc::emit(&text, output.as_deref(), &mut out),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(SchemaCmdError::Api(e)) => {
            eprintln!("error: {}", chain(&e));
            match e.kind() {
                ApiErrorKind::Auth => Exit::Auth,
                ApiErrorKind::Unreachable => Exit::Unreachable,
                _ => Exit::Failure,
            }
        }
        Err(e @ (SchemaCmdError::Schema(_) | SchemaCmdError::NoOutputSchema(_))) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            Exit::Failure
        }
    }
}

async fn convert(args: &cli::ConvertArgs) -> Exit {
    let schema = match TargetSchema::from_file(&args.schema).and_then(|s| s.validate().map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let format = match args.format {
        Some(cli::FormatArg::Csv) => ExportFormat::Csv,
        Some(cli::FormatArg::Json) => ExportFormat::Json,
        None if args
            .input
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv")) =>
        {
            ExportFormat::Csv
        }
        None => ExportFormat::Json,
    };
    let output = match resolve_store_url(&args.output, std::path::Path::new(".")) {
        Ok(url) => StoreConfig {
            url,
            options: vec![],
        },
        Err(m) => {
            eprintln!("error: invalid `--output`: {m}");
            return Exit::Usage;
        }
    };
    let opts = ConvertOptions {
        input: args.input.clone(),
        format,
        schema,
        output,
        run: RunOptions {
            concurrency: 1,
            batch_rows: args.batch_rows.max(1),
            row_group_rows: args.row_group_rows.max(1),
            file_rows: args.file_rows.max(1),
            ..RunOptions::default()
        },
    };
    let started = std::time::Instant::now();
    match titan_connector::convert::convert(&opts).await {
        Ok(done) => {
            eprintln!(
                "converted {} records ({}) into {} file(s) ({}) in {:.2?}",
                done.records,
                human_bytes(done.input_bytes),
                done.files.len(),
                human_bytes(done.output_bytes),
                started.elapsed()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            Exit::Failure
        }
    }
}

/// How long after SIGTERM/SIGINT the run may take to stop cleanly before we exit anyway.
/// Kubernetes' default grace period is 30 s; we stay under it.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// First SIGTERM/SIGINT: stop taking work and let commits in flight finish (bounded by
/// [`SHUTDOWN_DEADLINE`]). Second signal: exit at once. Either way nothing partial is
/// visible: parts only become visible at commit, and a commit ends with its manifest.
fn watch_signals(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        let Ok(mut int) = signal(SignalKind::interrupt()) else {
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(
            signal = name,
            "Stopping: no new executions, abandoning downloads in progress"
        );
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            () = tokio::time::sleep(SHUTDOWN_DEADLINE) => {
                eprintln!("error: did not stop within {SHUTDOWN_DEADLINE:?} of {name}; exiting");
            }
        }
        // Destructors do not run past this point: delete the media spool by hand.
        titan_connector::run::spool::remove_all();
        std::process::exit(i32::from(Exit::Interrupted.code()));
    });
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

/// Sends the run's end event and publishes its metrics; both bounded, neither can fail
/// the run (see the `lineage` and `metrics` modules).
async fn observe_report(
    cfg: &Config,
    lineage: Option<LineageRun>,
    report: &titan_connector::report::RunReport,
) {
    let text = metrics::render(report);
    let grouping = grouping(cfg);
    let finish = async {
        if let Some(l) = lineage {
            l.finish(report).await;
        }
    };
    tokio::join!(finish, metrics::publish(&cfg.metrics, &grouping, &text));
}

/// [`observe_report`] for a run that ended without a report.
async fn observe_failure(
    cfg: &Config,
    lineage: Option<LineageRun>,
    error: &str,
    took: std::time::Duration,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let text = metrics::render_failed(now.as_millis() as f64 / 1000.0, took);
    let grouping = grouping(cfg);
    let fail = async {
        if let Some(l) = lineage {
            l.fail(error).await;
        }
    };
    tokio::join!(fail, metrics::publish(&cfg.metrics, &grouping, &text));
}

/// The Pushgateway grouping key beyond `job`: the shard, so shards don't replace each
/// other's metrics.
fn grouping(cfg: &Config) -> Vec<(&'static str, String)> {
    cfg.shard
        .map(|s| vec![("shard", format!("{}_of_{}", s.index, s.count))])
        .unwrap_or_default()
}

fn config_error(e: &ConfigError) -> Exit {
    eprintln!("error: {e}");
    Exit::Usage
}

const AUTH_HINT: &str = "check TITAN_TOKEN (or api.token_file) and that the key has tasks:read, executions:read and data:read";

fn run_error(e: &RunError, cfg: &Config) -> Exit {
    let (exit, hint) = match e {
        RunError::MediaAuth { .. } => (Exit::Auth, AUTH_HINT),
        RunError::Api(api) => match api.kind() {
            ApiErrorKind::Auth => (Exit::Auth, AUTH_HINT),
            ApiErrorKind::Unreachable => (
                Exit::Unreachable,
                "check api.url / TITAN_API_URL and the network",
            ),
            ApiErrorKind::Config | ApiErrorKind::Refused => (Exit::Usage, ""),
            _ => (Exit::Failure, ""),
        },
        RunError::Store(_) | RunError::Sink(_) | RunError::Recover { .. } => (Exit::Failure, ""),
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
