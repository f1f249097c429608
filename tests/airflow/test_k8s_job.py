"""examples/k8s/titan-ingest.yaml: the Indexed Job maps the completion index to --shard.

No cluster here: the test reads the manifest, expands the container's arguments the way the
kubelet does for each completion index, and runs exactly those command lines with the real
connector against the simulator (the ConfigMap's files as /etc/titan, the S3 store swapped
for a local directory through TITAN_CONNECTOR_STORE, the API's rate limit lifted). Together the pods must ingest every
execution of the listed tasks once.
"""

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import ROOT, TOKEN
from demo_scenario import shard_of

MANIFEST = ROOT / "examples/k8s/titan-ingest.yaml"
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


@pytest.fixture(scope="module")
def manifest():
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    by_kind = {d["kind"]: d for d in docs}
    assert sorted(by_kind) == ["ConfigMap", "Job"]
    return by_kind["ConfigMap"], by_kind["Job"]


def container(job):
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def expand(args, env):
    """Kubernetes' $(VAR) expansion of command/args from the container's env."""
    var = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
    return [var.sub(lambda m: env.get(m[1], m[0]), a) for a in args]


def pod_env(job, index):
    """The container env with the completion index filled in, as the Job controller does."""
    env = {}
    for e in container(job)["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == INDEX_ANNOTATION:
            env[e["name"]] = str(index)
    return env


def test_the_job_is_indexed_and_its_shard_count_matches_completions(manifest):
    _, job = manifest
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    n = spec["completions"]
    assert spec["parallelism"] == n
    for i in range(n):
        args = expand(container(job)["args"], pod_env(job, i))
        assert args[args.index("--shard") + 1] == f"{i}/{n}"
    # The token comes from a Secret, never from the manifest or the command line.
    token = {e["name"]: e for e in container(job)["env"]}["TITAN_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "titan-api", "key": "token"}
    # Config and token errors stop the whole Job instead of being retried per index.
    (fail_job,) = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert fail_job["onExitCodes"]["values"] == [2, 4]


def test_the_configmap_is_the_config_the_pods_read(manifest):
    config_map, job = manifest
    mounts = {m["name"]: m["mountPath"] for m in container(job)["volumeMounts"]}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    (config_volume,) = [n for n, v in volumes.items() if "configMap" in v]
    assert volumes[config_volume]["configMap"]["name"] == config_map["metadata"]["name"]
    args = container(job)["args"]
    config_path = Path(args[args.index("--config") + 1])
    assert config_path.parent == Path(mounts[config_volume])
    config = tomllib.loads(config_map["data"][config_path.name])
    assert config["store"]["url"].startswith("s3://")  # shared by every pod
    assert config["run"]["tasks_file"] in config_map["data"]


def test_the_pods_command_lines_share_the_work_against_the_simulator(
    manifest, sim, connector_bin, tmp_path
):
    config_map, job = manifest
    etc = tmp_path / "etc-titan"
    etc.mkdir()
    for name, text in config_map["data"].items():
        (etc / name).write_text(text)
    # The simulator is not throttled; Titan's default budget would make the media downloads crawl.
    config = etc / "titan.toml"
    config.write_text(config.read_text().replace("[api]\n", "[api]\nrate_limit_per_minute = 0\n", 1))
    store = tmp_path / "lake"
    n = job["spec"]["completions"]
    for i in range(n):
        args = expand(container(job)["args"], pod_env(job, i))
        args[args.index("--config") + 1] = str(etc / "titan.toml")
        args += ["--report", str(tmp_path / f"pod-{i}.json")]  # only to see what each pod took
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TITAN_", "AWS_"))}
        env.update(TITAN_TOKEN=TOKEN, TITAN_API_URL=sim, TITAN_CONNECTOR_STORE=str(store))
        p = subprocess.run([str(connector_bin), *args], env=env, capture_output=True, text=True,
                           timeout=300)
        # 3: a shard met the demo's execution that failed on Titan; that is recorded, not lost.
        assert p.returncode in (0, 3), p.stderr
        assert p.stderr.lstrip().startswith("{"), "--log-format json"
    reports = [json.loads((tmp_path / f"pod-{i}.json").read_text()) for i in range(n)]
    took = [{e["execution_id"] for e in r["executions"]} for r in reports]
    listed = set().union(*took)
    assert len(listed) == 6  # the two listed tasks' executions in the demo scenario
    assert took == [{e for e in listed if shard_of(e, n) == i} for i in range(n)]
    counts = duckdb.sql(
        f"""SELECT split_part(filename[{len(str(store)) + 2}:], '/', 1) AS dataset, count(*),
                   count(DISTINCT (_titan_execution_id, _titan_row))
            FROM read_parquet('{store}/**/*.parquet', filename = true, union_by_name = true)
            GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    # Datasets default to a slug of the task name.
    assert counts == [("news_headlines", 2450, 2450), ("product_monitor", 7000, 7000)]
