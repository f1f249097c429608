//! Command-line interface: clap types only (parsing validates, it does no I/O), and the
//! dispatch from a parsed command to the library.

pub mod check;
pub mod docs;
pub mod exit;
pub mod init;
pub mod maintain;
pub mod schema;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Moves Titan web-scraping results into a data lake as typed, partitioned Parquet.
///
/// The API token is read from the TITAN_TOKEN environment variable (or `api.token_file`
/// in the config), never from the command line.
#[derive(Debug, Parser)]
#[command(name = "titan-connector", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: `text` for people, `json` for orchestrators.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest the executions of the configured tasks into the store.
    Run(RunArgs),
    /// Validate the config and schemas, that the token authenticates and the store is writable.
    Check(CommonArgs),
    /// Convert a local export file (CSV or JSON) to Parquet with a schema; no API involved.
    Convert(ConvertArgs),
    /// Write or validate schema files.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Write a commented starter config with every setting at its default.
    Init(InitArgs),
    /// Rewrite the small files of Delta table partitions into larger ones (one commit per
    /// partition, rows unchanged).
    Compact(maintain::CompactArgs),
    /// Delete data files the current Delta table version does not reference, past a
    /// retention (leftovers of failed runs, files a compaction replaced).
    Vacuum(maintain::VacuumArgs),
    /// Print a shell completion script to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the config.
    #[arg(default_value = "titan.toml", value_name = "PATH")]
    pub path: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write the schema derived from a task's output_schema.
    Pull {
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "ID")]
        task: String,
        /// Write here instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Propose a schema from a sample of an execution's export.
    Infer {
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "ID")]
        execution: String,
        #[arg(long, value_enum, default_value_t = FormatArg::Json)]
        format: FormatArg,
        /// Records sampled.
        #[arg(long, default_value_t = 1000)]
        rows: usize,
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Validate a schema file: precise messages with line, column and field.
    Check { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The export file.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Its format; by default from the file extension (`.csv` → csv, otherwise json).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Schema file (see schemas/README.md).
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
    /// Output directory or store URL; files are named `<input stem>-<n>.parquet`.
    #[arg(long, value_name = "URL")]
    pub output: String,
    /// Rows per decoded batch.
    #[arg(long, default_value_t = 8192)]
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 128 * 1024)]
    pub row_group_rows: usize,
    /// Rows per Parquet file.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub file_rows: usize,
}

/// Export format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Json,
    Csv,
}

/// Options shared by every command that reads a config.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Config file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Plain task list (one task id per line, `#` comments); adds to `[[tasks]]`.
    #[arg(long, value_name = "FILE")]
    pub tasks: Option<PathBuf>,
    /// Store URL or path; overrides `store.url` and TITAN_CONNECTOR_STORE_URL.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Executions processed at once; overrides `run.concurrency` and TITAN_CONNECTOR_RUN_CONCURRENCY.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
    /// Write the machine-readable run report (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Process only this worker's share of the executions: `I/N`, 0-based (e.g. Airflow's
    /// map index or Kubernetes' JOB_COMPLETION_INDEX over N workers).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<titan_connector::source::tasks::Shard>,
    /// List the executions that would be ingested, then stop: nothing is awaited or written.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the run's Prometheus metrics to FILE (atomically; for node_exporter's textfile
    /// collector, name it `*.prom`); overrides `metrics.file`.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

impl CommonArgs {
    /// The command-line layer of the configuration.
    pub fn overrides(&self, concurrency: Option<u16>) -> titan_connector::config::Overrides {
        titan_connector::config::Overrides {
            tasks_file: self.tasks.clone(),
            store: self.store.clone(),
            concurrency: concurrency.map(usize::from),
            shard: None,
            allow_no_tasks: false,
            dry_run: false,
        }
    }
}
