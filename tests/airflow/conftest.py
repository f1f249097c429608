"""Fixtures for the Airflow test: the simulator, the built binaries, a throwaway Airflow.

Airflow runs from the venv this pytest runs in (`make test-airflow` makes `.venv-airflow`),
with AIRFLOW_HOME in a temporary directory and its SQLite metadata database, so nothing
outside the test's temporary directories is touched. The binaries are the debug build:
TITAN_CONNECTOR_BIN / TITAN_SIM_BIN name them, else $CARGO_TARGET_DIR/debug or target/debug.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "demo-token"
DAG_ID = "titan_ingest"
# Every execution of the demo scenario has ended, results included, 2.5 s after the start.
SCENARIO_SETTLES_S = 3.0
AIRFLOW = Path(sys.executable).parent / "airflow"


def _bin(env_var: str, name: str) -> Path:
    if os.environ.get(env_var):
        path = Path(os.environ[env_var])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
        path = target / "debug" / name
    assert path.is_file(), f"{path} is missing: run `cargo build --bins` or set {env_var}"
    return path.resolve()


@pytest.fixture(scope="session")
def connector_bin() -> Path:
    return _bin("TITAN_CONNECTOR_BIN", "titan-connector")


@pytest.fixture(scope="session")
def sim_bin(connector_bin) -> Path:
    """TITAN_SIM_BIN, else the simulator built beside the connector."""
    if os.environ.get("TITAN_SIM_BIN"):
        return _bin("TITAN_SIM_BIN", "titan-sim")
    path = connector_bin.parent / "titan-sim"
    assert path.is_file(), f"{path} is missing: run `cargo build --bins` or set TITAN_SIM_BIN"
    return path


@pytest.fixture(scope="module")
def sim(sim_bin):
    """The demo scenario on a free loopback port; yields its origin (http://127.0.0.1:PORT).

    Waits until every execution of the scenario has ended, so each
    test's first run sees the same final states whenever it starts.
    """
    proc = subprocess.Popen(
        [str(sim_bin), "--scenario", str(ROOT / "examples/scenarios/demo.toml"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    assert "listening on" in line, line
    time.sleep(SCENARIO_SETTLES_S)
    yield line.split("listening on", 1)[1].strip()
    proc.terminate()
    proc.wait(timeout=10)


class Airflow:
    """A private Airflow: AIRFLOW_HOME in tmp, the example DAG folder, SQLite metadata."""

    def __init__(self, home: Path, env: dict):
        self.home = home
        self.env = env
        self.logs = home / "test-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.calls = 0

    def cli(self, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
        """Runs `airflow ARGS`; its output goes to test-logs/NN-<command>.log."""
        self.calls += 1
        log = self.logs / f"{self.calls:02d}-{'-'.join(args[:2])}.log"
        with log.open("w") as out:
            p = subprocess.run(
                [str(AIRFLOW), *args],
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
        p.log = log
        return p

    def dags_test(self, conf: dict, env=None) -> tuple[subprocess.CompletedProcess, str]:
        """One run of the DAG in process (`airflow dags test`); returns (process, run_id)."""
        before = self._last_run_id()
        p = self.cli("dags", "test", DAG_ID, "-c", json.dumps(conf), env=env)
        run_id = self._last_run_id()
        assert run_id and run_id != before, f"no new DAG run; see {p.log}:\n{tail(p.log)}"
        return p, run_id

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home / "airflow.db")

    def _last_run_id(self):
        with self.db() as c:
            row = c.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
            ).fetchone()
        return row[0] if row else None

    def run_state(self, run_id: str) -> str:
        with self.db() as c:
            return c.execute("SELECT state FROM dag_run WHERE run_id = ?", (run_id,)).fetchone()[0]

    def task_states(self, run_id: str) -> dict:
        """{(task_id, map_index): (state, try_number)} for the run's task instances."""
        with self.db() as c:
            rows = c.execute(
                "SELECT task_id, map_index, state, try_number FROM task_instance WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        return {(t, m): (s, n) for t, m, s, n in rows}

    def earlier_tries(self, run_id: str) -> dict:
        """{(task_id, map_index): [state of try 1, try 2, …]} for tries that were retried."""
        with self.db() as c:
            rows = c.execute(
                "SELECT task_id, map_index, try_number, state FROM task_instance_history "
                "WHERE run_id = ? ORDER BY try_number",
                (run_id,),
            ).fetchall()
        out = {}
        for t, m, _, s in rows:
            out.setdefault((t, m), []).append(s)
        return out

    def xcom(self, run_id: str, task_id: str, map_index: int = -1):
        with self.db() as c:
            row = c.execute(
                "SELECT value FROM xcom WHERE run_id = ? AND task_id = ? AND map_index = ? "
                "AND key = 'return_value'",
                (run_id, task_id, map_index),
            ).fetchone()
        return None if row is None else json.loads(row[0])


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, sim, connector_bin):
    """Airflow with a migrated metadata DB, set up to run examples/airflow against `sim`."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TITAN_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "examples/airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # What a deployment sets: the token as an Airflow Variable (here from the environment,
        # as AIRFLOW_VAR_* does), the API origin, and where the binary and config are.
        AIRFLOW_VAR_TITAN_TOKEN=TOKEN,
        AIRFLOW_VAR_TITAN_API_URL=sim,
        TITAN_CONNECTOR_BIN=str(connector_bin),
        TITAN_DAG_CONFIG=str(ROOT / "examples/demo.toml"),
        TITAN_DAG_REPORT_DIR=str(home / "reports"),
        TITAN_DAG_RETRY_DELAY="1",
    )
    af = Airflow(home, env)
    p = af.cli("db", "migrate")
    assert p.returncode == 0, tail(p.log)
    return af
