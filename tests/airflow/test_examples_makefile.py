"""examples/Makefile: the data team's targets, run with make against the simulator."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TOKEN
from demo_scenario import ROWS, owned, partial

SHARDS = 3


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("makefile")


@pytest.fixture(scope="module")
def make(sim, connector_bin, work):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN_", "MAKE"))}
    env.update(TITAN_TOKEN=TOKEN, TITAN_API_URL=sim)
    variables = [
        f"CONNECTOR={connector_bin}",
        f"CONFIG={ROOT / 'examples/demo.toml'}",
        f"STORE={work / 'lake'}",
        f"REPORT={work / 'run-report.json'}",
        f"PYTHON={sys.executable}",
        f"SHARDS={SHARDS}",
    ]

    def run(*args):
        return subprocess.run(
            ["make", "--no-print-directory", "-C", str(ROOT / "examples"), *variables, *args],
            env=env, capture_output=True, text=True, timeout=300,
        )

    return run


def test_check_verifies_without_ingesting(make):
    p = make("check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok: token accepted" in p.stdout + p.stderr


def test_shard_run_fails_on_partial_shards_then_settles(make, work):
    first = make("shard-run")
    out = first.stdout + first.stderr
    assert first.returncode == 2, out  # make's own code when a recipe fails
    for i, executions in owned(SHARDS).items():
        report = json.loads((work / f"run-report-shard-{i}.json").read_text())
        assert {e["execution_id"] for e in report["executions"]} == executions, i
    for i in partial(SHARDS):
        assert f"shard {i}/{SHARDS} exited 3" in out
    assert "ended `failed` on Titan" in out and "ended `cancelled` on Titan" in out
    report = make("report")
    assert report.returncode == 0, report.stderr
    for line in [
        "  no_results products/9e4f2a7b-6c1d-4b3e-8a5f-2d7c9b1e4f63: ended failed on Titan",
        "  no_results jobs/e1d4b8a3-6f2c-4d9e-b7a1-5c3e8f2d6b97: ended cancelled on Titan",
    ]:
        assert line in report.stdout.splitlines(), report.stdout
    second = make("shard-run")
    assert second.returncode == 0, second.stdout + second.stderr


def test_report_summarizes_every_shard_report(make):
    p = make("report")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert sum("-shard-" in line and " execution(s): " in line for line in lines) == SHARDS
    # The reports are the second shard-run's: everything was already there.
    assert all(": 0 ingested (0 rows" in line for line in lines if "-shard-" in line), p.stdout


def test_ingest_after_the_shards_finds_everything_ingested(make):
    p = make("ingest")
    assert p.returncode == 0, p.stderr
    assert "8 execution(s): 0 ingested (0 rows, 0 files, 0 B), 8 already ingested" in p.stderr


def test_query_counts_rows_per_dataset_with_duckdb(make):
    p = make("query", "SQL=SELECT dataset, count(*) AS n FROM lake GROUP BY 1 ORDER BY 1")
    assert p.returncode == 0, p.stderr
    cells = [line.split("│")[1:3] for line in p.stdout.splitlines() if line.count("│") == 3]
    rows = {name.strip(): int(n) for name, n in cells if n.strip().isdigit()}
    assert rows == ROWS
