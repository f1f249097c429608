"""Titan → data lake with titan-connector, one Airflow task per shard.

`ingest` is mapped over `0/N … N-1/N`: each mapped task runs `titan-connector run --shard I/N`,
which keeps the executions whose id hashes to slot I. N workers (Celery or Kubernetes
executors, any machines) share the work with no coordination beyond the store, and a retry
skips every execution that already has a manifest, so it never duplicates rows.

Exit codes decide the task's fate (see the connector's README):
  0    success; the run's one-line summary is the task's XCom
  3    some executions failed or ended without results on Titan → the task fails and is
       retried; the retry records nothing twice and exits 0 once what failed is settled
  1, 5 our failure or Titan unreachable → retried
  2, 4 configuration or token rejected → fails again on retry: fix and clear the task

Settings (environment of the DAG processor and workers; the params can be changed per run in
the trigger form or with `--conf`):
  Variable `titan_token`       the API token, e.g. env AIRFLOW_VAR_TITAN_TOKEN or a secrets backend
  Variable `titan_api_url`     optional: the API origin, else the config's `api.url`
  TITAN_CONNECTOR_BIN          path of the binary (default: `titan-connector` on PATH)
  TITAN_DAG_CONFIG             connector config (default /opt/titan/titan.toml)
  TITAN_DAG_SHARDS             number of shards (default 4)
  TITAN_DAG_REPORT_DIR         where each shard writes its JSON run report
  TITAN_DAG_RETRIES, TITAN_DAG_RETRY_DELAY   Airflow retries per shard (default 2, every 60 s)

OpenLineage: with apache-airflow-providers-openlineage installed and enabled, each shard gets
its task instance's `lineage_parent_id` and `lineage_root_parent_id` as OPENLINEAGE_PARENT_ID
and OPENLINEAGE_ROOT_PARENT_ID, so the connector's run events (on when its config has
`[lineage]` or the worker has OPENLINEAGE_URL) hang under the task that ran them. Without
the provider both are empty and the connector's runs have no parent.
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.sdk import Param, dag, task
except ImportError:  # Airflow 2.9+
    from airflow.decorators import dag, task
    from airflow.models.param import Param

CONNECTOR = os.environ.get("TITAN_CONNECTOR_BIN", "titan-connector")
# The provider's macros exist only while its plugin is loaded (installed and not disabled):
# otherwise these render empty, which the connector reads as "no parent".
LINEAGE_MACRO = (
    "{{{{ macros.OpenLineageProviderPlugin.{0}(task_instance) "
    "if macros.OpenLineageProviderPlugin is defined else '' }}}}"
)
CONFIG = os.environ.get("TITAN_DAG_CONFIG", "/opt/titan/titan.toml")
SHARDS = int(os.environ.get("TITAN_DAG_SHARDS", "4"))
REPORT_DIR = os.environ.get("TITAN_DAG_REPORT_DIR", "/tmp/titan-connector-reports")
RETRIES = int(os.environ.get("TITAN_DAG_RETRIES", "2"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("TITAN_DAG_RETRY_DELAY", "60")))


@dag(
    dag_id="titan_ingest",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two runs at once would race for the same executions
    tags=["titan"],
    params={
        "shards": Param(SHARDS, type="integer", minimum=1, description="Workers sharing the run"),
        "config": Param(CONFIG, type="string", description="Connector config, absolute path"),
        "tasks_file": Param("", type="string", description="Optional task list (one id per line)"),
        "store": Param("", type="string", description="Optional store URL; overrides store.url"),
        "log_format": Param("json", enum=["json", "text"], description="Connector log format"),
    },
    doc_md=__doc__,
)
def titan_ingest():
    @task
    def shards(params=None) -> list[str]:
        """`I/N` for every shard: the mapped `ingest` tasks' arguments."""
        n = int(params["shards"])
        return [f"{i}/{n}" for i in range(n)]

    @task.bash(
        env={
            "TITAN_TOKEN": "{{ var.value.titan_token }}",
            "TITAN_API_URL": "{{ var.value.get('titan_api_url', '') }}",
            "OPENLINEAGE_PARENT_ID": LINEAGE_MACRO.format("lineage_parent_id"),
            "OPENLINEAGE_ROOT_PARENT_ID": LINEAGE_MACRO.format("lineage_root_parent_id"),
        },
        append_env=True,  # keep PATH, HOME, cloud credentials (AWS_*, …) of the worker
        retries=RETRIES,
        retry_delay=RETRY_DELAY,
        execution_timeout=timedelta(hours=4),
        map_index_template="shard {{ shard }}",
    )
    def ingest(shard: str, params=None, run_id=None) -> str:
        index, count = shard.split("/")
        report = f"{REPORT_DIR}/{run_id}/shard-{index}-of-{count}.json"
        args = [CONNECTOR, "run", "--config", params["config"], "--shard", shard]
        args += ["--report", report, "--log-format", params["log_format"]]
        if params["tasks_file"]:
            args += ["--tasks", params["tasks_file"]]
        if params["store"]:
            args += ["--store", params["store"]]
        # The connector prints its one-line summary last: Airflow pushes it as the XCom.
        return f"mkdir -p {shlex.quote(os.path.dirname(report))} && {shlex.join(args)}"

    @task
    def summary(lines: list[str]) -> list[str]:
        """One line per shard, in shard order, for the run's log and downstream tasks."""
        lines = list(lines)
        for i, line in enumerate(lines):
            print(f"shard {i}: {line}")
        return lines

    summary(ingest.expand(shard=shards()))


titan_ingest()
