"""examples/airflow/titan_ingest.py run by Airflow itself (`airflow dags test`) against titan-sim.

Three DAG runs over the demo scenario, three shards each:
  * no retries, fresh store: the shards that meet the failed or cancelled execution end
    `failed` (connector exit 3), the others `success`, the run `failed`;
  * one retry, fresh store: those shards fail once, the retry exits 0, the run succeeds and
    the lake holds every row once;
  * a second run over that store (what clearing or re-triggering does): nothing is rewritten.
"""

import json
import re

import duckdb
import pytest

from conftest import TOKEN
from demo_scenario import EXECUTIONS, ROWS, owned, partial

SHARDS = 3
OWNED = owned(SHARDS)
PARTIAL = partial(SHARDS)
SUMMARY = re.compile(
    r"^(\d+) execution\(s\): (\d+) ingested \((\d+) rows, .*, (\d+) already ingested"
)


def lake_rows(store) -> dict:
    """{dataset: (rows, distinct (execution, row) pairs)} read back with DuckDB."""
    out = {}
    for dataset in ROWS:
        out[dataset] = duckdb.sql(
            f"""SELECT count(*), count(DISTINCT (_titan_execution_id, _titan_row))
                FROM read_parquet('{store}/{dataset}/**/*.parquet', hive_partitioning = true)"""
        ).fetchone()
    return out


def parquet_files(store) -> dict:
    """{path: (size, mtime_ns)}: a re-run that rewrites nothing leaves this unchanged."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in store.rglob("*.parquet")}


def shard_report(airflow, run_id, index):
    path = airflow.home / "reports" / run_id / f"shard-{index}-of-{SHARDS}.json"
    return json.loads(path.read_text())


def run_dag(airflow, tmp_path_factory, name, retries):
    store = tmp_path_factory.mktemp(name) / "lake"
    proc, run_id = airflow.dags_test(
        {"shards": SHARDS, "store": str(store)}, env={"TITAN_DAG_RETRIES": str(retries)}
    )
    return {"proc": proc, "run_id": run_id, "store": store}


@pytest.fixture(scope="module")
def no_retries(airflow, tmp_path_factory):
    return run_dag(airflow, tmp_path_factory, "no-retries", retries=0)


@pytest.fixture(scope="module")
def retried(airflow, tmp_path_factory):
    return run_dag(airflow, tmp_path_factory, "retried", retries=1)


@pytest.fixture(scope="module")
def rerun(airflow, retried):
    files = parquet_files(retried["store"])
    proc, run_id = airflow.dags_test({"shards": SHARDS, "store": str(retried["store"])})
    return {"proc": proc, "run_id": run_id, "store": retried["store"], "files_before": files}


def test_the_demo_has_shards_with_and_without_failing_executions():
    # Guards the scenario the tests below rely on: both kinds of shard exist.
    assert 0 < len(PARTIAL) < SHARDS
    assert sum(len(s) for s in OWNED.values()) == len(EXECUTIONS)


def test_each_shard_takes_exactly_the_executions_the_hash_gives_it(airflow, no_retries):
    for i in range(SHARDS):
        report = shard_report(airflow, no_retries["run_id"], i)
        assert {e["execution_id"] for e in report["executions"]} == OWNED[i], i


def test_a_failing_execution_fails_its_airflow_task(airflow, no_retries):
    run_id = no_retries["run_id"]
    states = airflow.task_states(run_id)
    expected = {("shards", -1): ("success", 1), ("summary", -1): ("upstream_failed", 0)}
    for i in range(SHARDS):
        expected[("ingest", i)] = ("failed" if i in PARTIAL else "success", 1)
    assert states == expected, airflow.logs
    assert airflow.run_state(run_id) == "failed"
    assert no_retries["proc"].returncode == 1  # `airflow dags test` exits 1 on a failed run
    for i in PARTIAL:
        report = shard_report(airflow, run_id, i)
        without = {e["execution_id"]: e["execution_status"] for e in report["executions"]
                   if e["outcome"] == "no_results"}
        assert without == {e: s for e, s in {
            "9e4f2a7b-6c1d-4b3e-8a5f-2d7c9b1e4f63": "failed",
            "e1d4b8a3-6f2c-4d9e-b7a1-5c3e8f2d6b97": "cancelled",
        }.items() if e in OWNED[i]}
    # The failing shards still ingested their other executions: the lake is complete.
    assert lake_rows(no_retries["store"]) == {d: (n, n) for d, n in ROWS.items()}


def test_an_airflow_retry_settles_the_shard_and_duplicates_nothing(airflow, retried):
    run_id = retried["run_id"]
    assert retried["proc"].returncode == 0, retried["proc"].log
    assert airflow.run_state(run_id) == "success"
    states = airflow.task_states(run_id)
    for i in range(SHARDS):
        assert states[("ingest", i)] == ("success", 2 if i in PARTIAL else 1), i
    assert states[("summary", -1)] == ("success", 1)
    # The first try of each partial shard failed (exit 3) and is kept in the history.
    assert airflow.earlier_tries(run_id) == {("ingest", i): ["failed"] for i in PARTIAL}
    assert lake_rows(retried["store"]) == {d: (n, n) for d, n in ROWS.items()}
    # The retry found everything recorded: its report ingests nothing.
    for i in PARTIAL:
        totals = shard_report(airflow, run_id, i)["totals"]
        assert (totals["ingested"], totals["already_ingested"]) == (0, len(OWNED[i]))


def test_each_shard_pushes_its_summary_line_as_xcom(airflow, retried):
    run_id = retried["run_id"]
    lines = airflow.xcom(run_id, "summary")
    assert lines == [airflow.xcom(run_id, "ingest", i) for i in range(SHARDS)]
    parsed = [SUMMARY.match(line).groups() for line in lines]
    assert [int(p[0]) for p in parsed] == [len(OWNED[i]) for i in range(SHARDS)]
    # Rows ingested on the successful try (the partial shards' came on the failed first try).
    clean = [i for i in range(SHARDS) if i not in PARTIAL]
    expected = sum(EXECUTIONS[e][1] for i in clean for e in OWNED[i])
    assert sum(int(parsed[i][2]) for i in clean) == expected


def test_a_second_dag_run_rewrites_nothing(airflow, rerun):
    run_id = rerun["run_id"]
    assert rerun["proc"].returncode == 0, rerun["proc"].log
    assert airflow.run_state(run_id) == "success"
    states = airflow.task_states(run_id)
    assert all(states[("ingest", i)] == ("success", 1) for i in range(SHARDS)), states
    assert parquet_files(rerun["store"]) == rerun["files_before"]
    assert lake_rows(rerun["store"]) == {d: (n, n) for d, n in ROWS.items()}
    for i in range(SHARDS):
        line = airflow.xcom(run_id, "ingest", i)
        n, ingested, rows, already = map(int, SUMMARY.match(line).groups())
        assert (n, ingested, rows, already) == (len(OWNED[i]), 0, 0, len(OWNED[i]))


def test_the_token_never_shows_in_logs_or_rendered_fields(airflow, retried):
    with airflow.db() as c:
        rendered = [json.loads(r[0]) for r in c.execute(
            "SELECT rendered_fields FROM rendered_task_instance_fields "
            "WHERE run_id = ? AND task_id = 'ingest'", (retried["run_id"],))]
    assert len(rendered) == SHARDS
    assert all(r["env"]["TITAN_TOKEN"] == "***" for r in rendered), rendered
    logs = [p for p in airflow.home.rglob("*.log") if p.is_file()]
    assert logs
    assert not [p for p in logs if TOKEN in p.read_text(errors="replace")]


@pytest.fixture(scope="module")
def with_lineage(airflow, tmp_path_factory):
    """One DAG run with Airflow's OpenLineage provider on (its events to a file) and the
    connector's lineage on (its events to another file)."""
    work = tmp_path_factory.mktemp("lineage")
    ours, theirs = work / "connector.ndjson", work / "airflow.ndjson"
    proc, run_id = airflow.dags_test(
        {"shards": 2, "store": str(work / "lake")},
        env={
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-test",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(theirs), "append": True}
            ),
            "TITAN_CONNECTOR_LINEAGE_FILE": str(ours),
            "TITAN_DAG_RETRIES": "0",
        },
    )
    return {"proc": proc, "run_id": run_id, "ours": ours, "theirs": theirs}


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_connectors_runs_hang_under_their_airflow_task_instances(airflow, with_lineage):
    ours = read_events(with_lineage["ours"])
    # Two shards, each a START and an end event, each under its own task instance.
    assert sorted(e["eventType"] for e in ours).count("START") == 2, airflow.logs
    assert len(ours) == 4, ours
    parents = {}
    for e in ours:
        parent = e["run"]["facets"]["parent"]
        assert parent["job"] == {"namespace": "airflow-test", "name": "titan_ingest.ingest"}, parent
        assert parent["root"]["job"] == {"namespace": "airflow-test", "name": "titan_ingest"}
        parents.setdefault(e["run"]["runId"], set()).add(parent["run"]["runId"])
    # Each connector run has one parent, and the two shards have different ones.
    assert all(len(p) == 1 for p in parents.values()), parents
    assert len({next(iter(p)) for p in parents.values()}) == 2, parents
    # Those parents are the runs Airflow itself reported for its `ingest` task instances,
    # and the root is its DAG run.
    theirs = read_events(with_lineage["theirs"])
    airflow_ingest = {e["run"]["runId"] for e in theirs if e["job"]["name"] == "titan_ingest.ingest"}
    airflow_dag = {e["run"]["runId"] for e in theirs if e["job"]["name"] == "titan_ingest"}
    assert {next(iter(p)) for p in parents.values()} <= airflow_ingest, theirs
    roots = {e["run"]["facets"]["parent"]["root"]["run"]["runId"] for e in ours}
    assert len(roots) == 1 and roots <= airflow_dag, (roots, airflow_dag)
