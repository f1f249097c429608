//! The commented starter config that `titan-connector init` writes: every section and
//! key with its default, so a user edits rather than looks up.

/// The starter config. Values shown are the defaults; commented-out keys have none.
pub const TEMPLATE: &str = r##"# titan-connector configuration (written by `titan-connector init`).
#
# Every key below is set to its default; delete what you don't change.
# Relative paths are relative to this file's directory.
# Any string value may use ${NAME} (environment variable NAME; an error if unset),
# ${NAME:-default} (default when NAME is unset or empty) and $${ for a literal "${".
# Environment variables TITAN_CONNECTOR_<SECTION>_<KEY> override keys of this file
# (e.g. TITAN_CONNECTOR_RUN_BATCH_ROWS for [run] batch_rows), and flags override both.
#
# The API token is never written here: set TITAN_TOKEN, or api.token_file.

[api]
# Origin of the Titan Task Service, without /api/v1. Env TITAN_API_URL also sets it.
url = "https://api.webscraping.titannet.io"
# Header carrying the token: "bearer" (Authorization: Bearer) or "x-api-key".
auth = "bearer"
# File whose first line is the token; default: none, the TITAN_TOKEN variable is used.
# token_file = "/run/secrets/titan"
# Connect + response headers, per request.
timeout = "30s"
# Longest silence inside a streamed export or media download.
read_timeout = "60s"
# A JSON answer (list page, object) must be complete this long after its headers.
body_timeout = "2m"
# Allow plain http:// to a host that is not loopback (the token would travel in clear).
allow_insecure_http = false
# Attempts per request, the first included (1 = never retry).
max_attempts = 6
# Requests per minute for the whole process (Titan's limit is per token); 0 = no limit.
# Default: unset, which follows the limit the server advertises (X-RateLimit-Limit less
# 10 %), 100 until it says; a number here is held to whatever the server says.
# rate_limit_per_minute = 100

[store]
# Where Parquet, manifests and media go: a path, file://..., memory://,
# s3://bucket/prefix, gs://bucket/prefix or az://container/prefix.
url = "./out"
# object_store options (e.g. aws_region, aws_endpoint); credentials otherwise come
# from the AWS_*/GOOGLE_*/AZURE_* environment. Default: none.
# options = { aws_region = "eu-west-1" }
# How datasets are laid out: "parquet" (Parquet files in Hive-style folders, with our
# manifests) or "delta" (one Delta Lake table per dataset; see the README's Table formats).
table_format = "parquet"
# Delta tables: write a checkpoint every this many commits (0: never).
checkpoint_interval = 100

[run]
# Executions awaited and exported at once.
concurrency = 4
# Export format for tasks that don't set one: "json" or "csv".
format = "json"
# Plain task list, one task id per line, "#" comments; adds to [[tasks]]. Default: none.
# tasks_file = "nightly.tasks"
# Rows per decoded batch.
batch_rows = 8192
# Rows per Parquet row group.
row_group_rows = 131072
# Rows per Parquet file before the next part starts.
file_rows = 1048576
# Executions with less output than this (MiB) share combined files with other small
# executions of their partition; each manifest still lists its rows. 0 disables combining.
combine_below_mb = 8
# A combined file is written once its executions' output reaches this (MiB).
combine_target_mb = 64
# A finished execution waiting to be combined is committed within this time, alone or
# with its group, so a killed run loses at most this much finished work.
max_commit_delay = "30s"
# MiB per Parquet file before the next part starts (checked as row groups close), so
# wide rows never make a file too large to copy in one request (S3: 5 GiB).
file_mb = 1024
# Rows that don't fit the schema: "quarantine" (to _rejects/), "skip" or "fail".
on_bad_row = "quarantine"
# Fail an execution whose share of rejected rows is larger (0 to 1). Default: no limit.
# max_reject_ratio = 0.05

[wait]
# First poll of an unfinished execution; the interval grows x1.5 with jitter.
poll_interval = "3s"
# Longest interval between polls.
max_poll_interval = "30s"
# Longest wait for one execution before it counts as failed for this run.
max_wait = "1h"

[media]
# Download the files of media columns; false keeps the URLs as text.
enabled = true
# "by-execution" (media/<task>/<execution>/...) or "content-addressed" (media/sha256/...).
layout = "by-execution"
# Downloads in flight across the run.
concurrency = 8
# A file that cannot be fetched: "record" (error in the row) or "fail" (the execution).
on_error = "record"
# Largest media file fetched, in bytes.
max_bytes = 1073741824
# Hosts other than the API's that media may come from ("cdn.example.com",
# "*.example.com"); they never get the token.
allowed_hosts = []
# Local copy of an export while its media downloads; default: the system temp dir.
# spool_dir = "/var/tmp/titan"
# Largest such copy, in bytes; a larger export (with media) fails its execution.
spool_max_bytes = 10737418240
# A separate store for media files; default: the [store] above.
# store = "s3://bucket/media"
# store_options = { aws_region = "eu-west-1" }

# OpenLineage run events (START, then COMPLETE/FAIL/ABORT). Off unless url or file is set
# (or OPENLINEAGE_URL); the service's key comes from OPENLINEAGE_API_KEY only.
[lineage]
# The lineage service, e.g. Marquez: events are POSTed to <url>/<endpoint>. Default: none.
# url = "http://marquez:5000"
# Path of the lineage endpoint under url.
endpoint = "api/v1/lineage"
# Also (or instead) append each event as one JSON line to this file. Default: none.
# file = "lineage.ndjson"
# The job's namespace (env OPENLINEAGE_NAMESPACE).
namespace = "default"
# The job's name. Default: titan_connector.<this file's name without .toml>.
# job_name = "titan_ingest"
# Per HTTP attempt.
timeout = "5s"
# Attempts per event, the first included: a receiver that is down costs at most
# max_attempts × timeout plus short pauses, then a warning.
max_attempts = 3

# Prometheus metrics of each run, in the text exposition format.
[metrics]
# Written atomically at the end of a run (--metrics-file wins). Default: none.
# file = "/var/lib/node_exporter/textfile/titan.prom"
# Also PUT them to this Pushgateway. Default: none.
# pushgateway = "http://pushgateway:9091"
# The Pushgateway job label.
job = "titan_connector"
# Per Pushgateway attempt.
timeout = "5s"

# One table per task; a task only in tasks_file uses the defaults.
[[tasks]]
# The task's id in Titan: replace this placeholder.
id = "00000000-0000-4000-8000-000000000000"
# Top-level folder in the store. Default: a slug of the task's name.
# dataset = "products"
# Schema file (see schemas/README.md). Default: derived from the task's output_schema.
# schema = "schemas/products.json"
# Which executions: "new" (all without a manifest), "latest", or a list of ids.
executions = "new"
# Per-task overrides of [run] format, on_bad_row and max_reject_ratio. Default: [run]'s.
# format = "csv"
# on_bad_row = "fail"
# max_reject_ratio = 0.01
"##;
