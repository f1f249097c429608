"""Interop fixtures: run the real simulator and connector once, hand the output to readers.

The simulator serves examples/scenarios/demo.toml on a free loopback port; the connector
ingests it with examples/demo.toml into a temporary store. Tests then read that store with
DuckDB, pyarrow and polars, and compare values with the simulator's own JSON export.
"""
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "debug"
TOKEN = "demo-token"


class Sim:
    def __init__(self, proc, url):
        self.proc = proc
        self.url = url

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def export_rows(self, execution_id):
        return json.loads(self.get(f"/api/v1/executions/{execution_id}/results/export"))


@pytest.fixture(scope="session")
def sim():
    proc = subprocess.Popen(
        [str(BIN / "titan-sim"), "--scenario", str(ROOT / "examples/scenarios/demo.toml"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert "listening on" in line, line
    url = line.split("listening on", 1)[1].strip()
    yield Sim(proc, url)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def lake(sim, tmp_path_factory):
    """Runs the connector once; returns (store dir, run report)."""
    out = tmp_path_factory.mktemp("lake") / "out"
    report = out.parent / "report.json"
    env = dict(os.environ, TITAN_API_URL=sim.url, TITAN_TOKEN=TOKEN)
    started = time.time()
    p = subprocess.run(
        [str(BIN / "titan-connector"), "run", "--config", str(ROOT / "examples/demo.toml"),
         "--store", str(out), "--report", str(report)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    # 3: the demo scenario has a failed and a cancelled execution on purpose.
    assert p.returncode == 3, p.stderr
    assert TOKEN not in p.stderr + p.stdout
    assert time.time() - started < 120
    return out, json.loads(report.read_text())
