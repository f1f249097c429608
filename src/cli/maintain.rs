//! `titan-connector compact` and `vacuum`: maintenance of the Delta tables in a store.
//! Neither talks to Titan, so neither needs a token; the store comes from the config's
//! `[store]` (with its credentials options) or from `--store` alone.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use titan_connector::config::env::vars::TITAN_TOKEN;
use titan_connector::config::{Config, Env, Overrides, resolve_store_url};
use titan_connector::report::human_bytes;
use titan_connector::sink::delta::compact::{self, CompactOptions, CompactOutcome};
use titan_connector::sink::delta::{DEFAULT_CHECKPOINT_INTERVAL, DeltaError, DeltaTable, files};
use titan_connector::sink::store::{Store, StoreConfig};

use super::exit::Exit;

/// Which store and tables a maintenance command works on.
#[derive(Debug, Args)]
pub struct TableArgs {
    /// Config file (TOML): its `[store]` holds the tables. No token needed.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "store"
    )]
    pub config: Option<PathBuf>,
    /// Store URL or path; overrides the config's `store.url`, or stands alone without
    /// `--config`.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Only this dataset's table (default: every dataset with a `_delta_log/`).
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub tables: TableArgs,
    /// Only this task's partitions.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Only this day's partitions (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub date: Option<String>,
    /// Files below this size (MiB) are rewritten into files of about this size.
    #[arg(long, value_name = "N", default_value_t = 128,
        value_parser = clap::value_parser!(u64).range(1..=1024 * 1024))]
    pub target_mb: u64,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub tables: TableArgs,
    /// Keep unreferenced files written, or removed from the table, less than this long
    /// ago: longer than any run takes to commit and any reader takes to read (`24h`,
    /// `90m`, `7d`).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_date(s: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|_| s.to_string())
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// A command's failure, with its exit code.
struct Failed(Exit, String);

impl From<DeltaError> for Failed {
    fn from(e: DeltaError) -> Self {
        Failed(Exit::Failure, crate::chain(&e))
    }
}

/// The store the tables are in, and how often their commits checkpoint.
fn store_config(args: &TableArgs) -> Result<(StoreConfig, u64), Failed> {
    let Some(path) = &args.config else {
        let raw = args.store.as_deref().unwrap_or_default();
        let url = resolve_store_url(raw, std::path::Path::new("."))
            .map_err(|m| Failed(Exit::Usage, format!("invalid `--store`: {m}")))?;
        let store = StoreConfig {
            url,
            options: vec![],
        };
        return Ok((store, DEFAULT_CHECKPOINT_INTERVAL));
    };
    // The config's `[api]` is resolved too, and wants a token: these commands never use it.
    let mut env = Env::from_process();
    if env.get(TITAN_TOKEN).is_none() {
        env = Env::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter(|(k, _)| k != TITAN_TOKEN)
                .chain([(TITAN_TOKEN.to_string(), "unused".to_string())]),
        );
    }
    let overrides = Overrides {
        store: args.store.clone(),
        allow_no_tasks: true,
        ..Overrides::default()
    };
    Config::load(path, &env, &overrides)
        .map(|c| (c.store, c.table.checkpoint_interval))
        .map_err(|e| Failed(Exit::Usage, e.to_string()))
}

/// The tables to work on: `--dataset`'s, or every one in the store.
async fn tables(args: &TableArgs) -> Result<(Store, Vec<DeltaTable>), Failed> {
    let (cfg, checkpoint_interval) = store_config(args)?;
    let store = Store::open(&cfg).map_err(|e| Failed(Exit::Usage, e.to_string()))?;
    let datasets = files::table_datasets(&store).await?;
    let chosen = match &args.dataset {
        Some(d) if datasets.contains(d) => vec![d.clone()],
        Some(d) => {
            return Err(Failed(
                Exit::Usage,
                format!(
                    "no Delta table at {}/{d} (no `_delta_log/` there)",
                    store.url().trim_end_matches('/')
                ),
            ));
        }
        None => datasets,
    };
    let mut opened = Vec::new();
    for d in &chosen {
        opened.push(DeltaTable::open(&store, d)?.with_checkpoint_interval(checkpoint_interval));
    }
    Ok((store, opened))
}

fn finish(result: Result<(), Failed>) -> Exit {
    match result {
        Ok(()) => Exit::Ok,
        Err(Failed(exit, message)) => {
            eprintln!("error: {message}");
            exit
        }
    }
}

/// `titan-connector compact`.
pub async fn compact(args: &CompactArgs, out: &mut impl std::io::Write) -> Exit {
    finish(compact_tables(args, out).await)
}

async fn compact_tables(args: &CompactArgs, out: &mut impl std::io::Write) -> Result<(), Failed> {
    let (store, tables) = tables(&args.tables).await?;
    if tables.is_empty() {
        let _ = writeln!(out, "no Delta tables in {}", store.url());
        return Ok(());
    }
    let opts = CompactOptions {
        target_bytes: args.target_mb << 20,
        ..CompactOptions::default()
    };
    for table in tables {
        let done =
            compact::compact_table(&table, args.task.as_deref(), args.date.as_deref(), &opts)
                .await?;
        let (mut files_in, mut bytes_in, mut files_out, mut bytes_out) = (0, 0, 0, 0);
        let mut untouched = 0;
        for c in &done {
            match c.outcome {
                CompactOutcome::Committed { version } => {
                    let _ = writeln!(
                        out,
                        "{}: task_id={} date={}: {} files ({}) -> {} ({}), {} rows, version {version}",
                        table.url(),
                        c.task_id,
                        c.date,
                        c.removed,
                        human_bytes(c.removed_bytes),
                        c.added.len(),
                        human_bytes(c.added_bytes()),
                        c.rows,
                    );
                    files_in += c.removed;
                    bytes_in += c.removed_bytes;
                    files_out += c.added.len();
                    bytes_out += c.added_bytes();
                }
                CompactOutcome::Superseded => {
                    let _ = writeln!(
                        out,
                        "{}: task_id={} date={}: skipped, another writer compacted it first",
                        table.url(),
                        c.task_id,
                        c.date
                    );
                }
                CompactOutcome::NothingToDo => untouched += 1,
            }
        }
        let compacted = done.len() - untouched;
        tracing::info!(table = %table.url(), partitions = done.len(), compacted,
            files_in, bytes_in, files_out, bytes_out, "compaction done");
        let _ = writeln!(
            out,
            "{}: {compacted} of {} partition(s) compacted: {files_in} files ({}) -> {files_out} ({})",
            table.url(),
            done.len(),
            human_bytes(bytes_in),
            human_bytes(bytes_out),
        );
    }
    Ok(())
}

/// `titan-connector vacuum`.
pub async fn vacuum(args: &VacuumArgs, out: &mut impl std::io::Write) -> Exit {
    finish(vacuum_tables(args, out).await)
}

async fn vacuum_tables(args: &VacuumArgs, out: &mut impl std::io::Write) -> Result<(), Failed> {
    let (store, tables) = tables(&args.tables).await?;
    if tables.is_empty() {
        let _ = writeln!(out, "no Delta tables in {}", store.url());
        return Ok(());
    }
    let retention = humantime::format_duration(args.retention);
    for table in tables {
        let done = files::sweep(&table, args.retention, args.dry_run).await?;
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        if args.dry_run {
            for path in &done.deleted {
                let _ = writeln!(out, "would delete {path}");
            }
        }
        tracing::info!(table = %table.url(), dry_run = args.dry_run, deleted = done.deleted.len(),
            bytes = done.bytes, kept = done.young, "vacuum done");
        let _ = writeln!(
            out,
            "{}: {verb} {} unreferenced file(s) ({}); kept {} younger than {retention}",
            table.url(),
            done.deleted.len(),
            human_bytes(done.bytes),
            done.young,
        );
    }
    Ok(())
}
