"""OpenLineage events and Prometheus metrics as their own tooling reads them.

The connector runs the demo once with OPENLINEAGE_URL pointing at a receiver on a free
loopback port and with --metrics-file. Each captured event is validated against the
OpenLineage JSON Schema (spec 2-0-2 and the facet schemas, vendored in openlineage_spec/
with the commit they come from; our own facets' schemas are in schemas/openlineage/), then
rebuilt from the openlineage-python client classes, which must serialise it back unchanged.
The metrics file is read with prometheus_client's parser and compared with the run report.
"""
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attr
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from referencing import Registry, Resource

from openlineage.client import event_v2 as ol
from openlineage.client.generated import (
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.serde import Serde

from conftest import BIN, ROOT, TOKEN

HERE = Path(__file__).resolve().parent
OL_KEY = "ol-key-SECRET-5e2a"
PARENT = ("airflow", "titan_ingest.ingest", "01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f")
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


class Receiver(BaseHTTPRequestHandler):
    events: list = []
    auth: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/api/v1/lineage", self.path
        Receiver.events.append(json.loads(body))
        Receiver.auth.append(self.headers.get("Authorization"))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def lineage_run(sim, tmp_path_factory):
    """(events, report, metrics text, stderr) of one demo run with lineage and metrics on."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tmp_path_factory.mktemp("lineage")
    report, metrics = work / "report.json", work / "titan.prom"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE_")}
    env.update(
        TITAN_API_URL=sim.url,
        TITAN_TOKEN=TOKEN,
        OPENLINEAGE_URL=f"http://127.0.0.1:{server.server_address[1]}",
        OPENLINEAGE_API_KEY=OL_KEY,
        OPENLINEAGE_NAMESPACE="lake",
        OPENLINEAGE_PARENT_ID="/".join(PARENT),
    )
    p = subprocess.run(
        [str(BIN / "titan-connector"), "run", "--config", str(ROOT / "examples/demo.toml"),
         "--store", str(work / "out"), "--report", str(report), "--metrics-file", str(metrics)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    server.shutdown()
    # 3: the demo scenario has a failed and a cancelled execution on purpose.
    assert p.returncode == 3, p.stderr
    return list(Receiver.events), json.loads(report.read_text()), metrics.read_text(), p.stderr


def registry() -> Registry:
    """Every vendored schema, by its $id."""
    files = [HERE / "openlineage_spec/OpenLineage.json"]
    files += sorted((HERE / "openlineage_spec/facets").glob("*.json"))
    files += sorted((ROOT / "schemas/openlineage").glob("*.json"))
    resources = []
    for f in files:
        schema = json.loads(f.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def facets_of(event):
    """(where, key, facet) for every facet of the event."""
    for k, v in event["run"].get("facets", {}).items():
        yield "run", k, v
    for k, v in event["job"].get("facets", {}).items():
        yield "job", k, v
    for d in event.get("inputs", []):
        for group in ("facets", "inputFacets"):
            for k, v in d.get(group, {}).items():
                yield f"input {d['name']}", k, v
    for d in event.get("outputs", []):
        for group in ("facets", "outputFacets"):
            for k, v in d.get(group, {}).items():
                yield f"output {d['name']}", k, v


def validator(reg: Registry, ref: str):
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=reg)


def test_the_run_sends_start_then_fail_under_its_parent(lineage_run):
    events, report, _, _ = lineage_run
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for e in events:
        assert e["run"]["runId"].replace("-", "") == report["run_id"]
        assert (e["job"]["namespace"], e["job"]["name"]) == ("lake", "titan_connector.demo")
        parent = e["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"], parent["run"]["runId"]) == PARENT


def test_each_event_is_valid_against_the_openlineage_json_schema(lineage_run):
    events, _, _, _ = lineage_run
    reg = registry()
    event_schema = validator(reg, RUN_EVENT)
    for e in events:
        errors = [f"{list(x.absolute_path)}: {x.message}" for x in event_schema.iter_errors(e)]
        assert errors == [], e["eventType"]
        checked = 0
        for where, key, facet in facets_of(e):
            # Every facet names a schema we hold, and fits it.
            url = facet["_schemaURL"]
            errors = [x.message for x in validator(reg, url).iter_errors(facet)]
            assert errors == [], f"{e['eventType']} {where} {key}: {errors}"
            checked += 1
        assert checked >= 3, e


def test_a_broken_event_is_caught_by_the_same_validation(lineage_run):
    # Guards the test above: it would notice a missing field or a bad facet.
    events, _, _, _ = lineage_run
    reg = registry()
    bad = json.loads(json.dumps(events[1]))
    del bad["run"]["runId"]
    assert list(validator(reg, RUN_EVENT).iter_errors(bad))
    stats = json.loads(json.dumps(events[1]["outputs"][0]["outputFacets"]["outputStatistics"]))
    stats["rowCount"] = "many"
    assert list(validator(reg, stats["_schemaURL"]).iter_errors(stats))


# Our own facets, declared as a client user would: attrs subclasses of the client's bases.
from openlineage.client.generated.base import DatasetFacet, OutputDatasetFacet  # noqa: E402


@attr.define
class TitanExecutions(DatasetFacet):
    executions: list = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return ("urn:titan-connector:openlineage:TitanExecutionsInputDatasetFacet:1-0-0"
                "#/$defs/TitanExecutionsInputDatasetFacet")


@attr.define
class TitanRejectedRows(OutputDatasetFacet):
    rejectedRows: int = 0  # noqa: N815
    byReason: dict = attr.field(factory=dict)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return ("urn:titan-connector:openlineage:TitanRejectedRowsOutputDatasetFacet:1-0-0"
                "#/$defs/TitanRejectedRowsOutputDatasetFacet")


def _facet(cls, d):
    fields = {k: v for k, v in d.items() if not k.startswith("_")}
    return cls(producer=d["_producer"], **fields)


def to_client(e):
    """The event rebuilt from openlineage-python's classes (their validators run)."""
    run_facets = {}
    for k, v in e["run"].get("facets", {}).items():
        if k == "parent":
            root = v.get("root")
            run_facets[k] = parent_run.ParentRunFacet(
                producer=v["_producer"],
                run=parent_run.Run(runId=v["run"]["runId"]),
                job=parent_run.Job(namespace=v["job"]["namespace"], name=v["job"]["name"]),
                root=root and parent_run.Root(
                    run=parent_run.RootRun(runId=root["run"]["runId"]),
                    job=parent_run.RootJob(namespace=root["job"]["namespace"], name=root["job"]["name"]),
                ),
            )
        elif k == "processing_engine":
            run_facets[k] = _facet(processing_engine_run.ProcessingEngineRunFacet, v)
        elif k == "errorMessage":
            run_facets[k] = _facet(error_message_run.ErrorMessageRunFacet, v)
        else:
            raise AssertionError(f"unexpected run facet {k}")
    job_facets = {k: _facet(job_type_job.JobTypeJobFacet, v) for k, v in e["job"]["facets"].items()}
    inputs = []
    for d in e.get("inputs", []):
        facets = {k: _facet(TitanExecutions, v) for k, v in d.get("facets", {}).items()}
        input_facets = {
            k: _facet(input_statistics_input_dataset.InputStatisticsInputDatasetFacet, v)
            for k, v in d.get("inputFacets", {}).items()
        }
        inputs.append(ol.InputDataset(namespace=d["namespace"], name=d["name"], facets=facets,
                                      inputFacets=input_facets))
    outputs = []
    for d in e.get("outputs", []):
        schema = d["facets"]["schema"]
        facets = {"schema": schema_dataset.SchemaDatasetFacet(
            producer=schema["_producer"],
            fields=[schema_dataset.SchemaDatasetFacetFields(**f) for f in schema["fields"]],
        )}
        of = d["outputFacets"]
        output_facets = {
            "outputStatistics": _facet(
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
                of["outputStatistics"]),
            "titanConnector_rejectedRows": _facet(TitanRejectedRows, of["titanConnector_rejectedRows"]),
        }
        outputs.append(ol.OutputDataset(namespace=d["namespace"], name=d["name"], facets=facets,
                                        outputFacets=output_facets))
    return ol.RunEvent(
        eventType=ol.RunState[e["eventType"]],
        eventTime=e["eventTime"],
        producer=e["producer"],
        run=ol.Run(runId=e["run"]["runId"], facets=run_facets),
        job=ol.Job(namespace=e["job"]["namespace"], name=e["job"]["name"], facets=job_facets),
        inputs=inputs,
        outputs=outputs,
    )


def normalized(v):
    """Empty collections dropped (the client omits what we omit and the reverse)."""
    if isinstance(v, dict):
        out = {k: normalized(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x not in ({}, [], None)}
    if isinstance(v, list):
        return [normalized(x) for x in v]
    return v


def test_the_client_classes_parse_each_event_and_give_it_back_unchanged(lineage_run):
    events, _, _, _ = lineage_run
    for e in events:
        client = to_client(e)
        assert client.schemaURL == e["schemaURL"]
        # Same facet versions as the client's: each _schemaURL comes back from its class.
        assert normalized(Serde.to_dict(client)) == normalized(e), e["eventType"]


def test_events_carry_no_credential(lineage_run):
    events, _, _, stderr = lineage_run
    text = json.dumps(events)
    assert OL_KEY not in text and TOKEN not in text
    assert OL_KEY not in stderr
    assert Receiver.auth == [f"Bearer {OL_KEY}"] * len(events)


def test_outputs_and_inputs_say_what_the_report_says(lineage_run):
    events, report, _, _ = lineage_run
    end = events[-1]
    outputs = {o["name"].rsplit("/", 1)[1]: o for o in end["outputs"]}
    assert set(outputs) == {d["dataset"] for d in report["datasets"]}
    for ds in report["datasets"]:
        mine = [e for e in report["executions"]
                if e["dataset"] == ds["dataset"] and e["outcome"] == "ingested"]
        stats = outputs[ds["dataset"]]["outputFacets"]["outputStatistics"]
        assert stats["rowCount"] == sum(e["rows"] for e in mine)
        assert stats["size"] == sum(e["bytes"] for e in mine)
        assert stats["fileCount"] == len({f for e in mine for f in e["files"]})
        fields = outputs[ds["dataset"]]["facets"]["schema"]["fields"]
        assert [(f["name"], f["type"]) for f in fields] == [(c["name"], c["type"]) for c in ds["columns"]]
    assert sum(o["outputFacets"]["outputStatistics"]["rowCount"] for o in outputs.values()) \
        == report["totals"]["rows"] == 7000 + 2450 + 600
    read = {i["name"]: i["inputFacets"]["inputStatistics"]["rowCount"] for i in end["inputs"]}
    assert set(read) == {t for d in report["datasets"] for t in d["task_ids"]}
    for task, n in read.items():
        assert n == sum(e["records_read"] for e in report["executions"]
                        if e["task_id"] == task and e["outcome"] == "ingested")


def test_the_metrics_file_parses_and_matches_the_report(lineage_run):
    _, report, text, _ = lineage_run
    t = report["totals"]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {}
    for f in families.values():
        for s in f.samples:
            value[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert families["titan_connector_rows_written"].type == "counter"
    assert value[("titan_connector_rows_written_total", ())] == t["rows"]
    assert value[("titan_connector_bytes_written_total", ())] == t["bytes"]
    assert value[("titan_connector_files_written_total", ())] == t["files"]
    assert value[("titan_connector_rows_rejected_total", ())] == t["rejected_rows"]
    for outcome in ("ingested", "already_ingested", "no_results", "failed", "leased", "planned"):
        assert value[("titan_connector_executions_total", (("outcome", outcome),))] == t[outcome]
    for outcome in ("downloaded", "reused", "deduplicated", "failed"):
        assert value[("titan_connector_media_files_total", (("outcome", outcome),))] == t["media"][outcome]
    assert value[("titan_connector_media_bytes_total", ())] == t["media"]["bytes"]
    assert value[("titan_connector_api_requests_total", ())] == t["api_requests"]
    for cause, n in t["api_retries_by_cause"].items():
        assert value[("titan_connector_retries_total", (("cause", cause),))] == n
    assert value[("titan_connector_retries_total", (("cause", "export_body"),))] == t["export_retries"]
    assert value[("titan_connector_api_throttled_seconds_total", ())] == t["api_throttled_ms"] / 1000
    assert value[("titan_connector_run_duration_seconds", ())] == report["duration_ms"] / 1000
    assert value[("titan_connector_last_run_success", ())] == 0  # exit 3
    wait = sum(e["wait_ms"] for e in report["executions"]) / 1000
    assert value[("titan_connector_stage_duration_seconds_total", (("stage", "wait"),))] == pytest.approx(wait)
    assert value[("titan_connector_stage_duration_seconds_total", (("stage", "plan"),))] == t["plan_ms"] / 1000
