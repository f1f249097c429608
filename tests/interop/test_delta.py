"""Delta readers: `deltalake` and `polars` read tables written by the connector.

Three sources: the Rust test `sink::delta::tests::writes_a_table_for_the_interop_readers` (two
commits, two partitions, every column type the connector emits, the second commit adding a
column), a table compacted by the Rust test `sink::delta::compact_tests::...`, and the
connector binary ingesting the demo scenario from the simulator in delta mode. Both readers
must see every row with its values, types and partition values.
"""
import datetime
import decimal
import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[2]
TEST = "sink::delta::tests::writes_a_table_for_the_interop_readers"


def write_with(test, out):
    """Runs the ignored Rust test `test`, which writes its table under `out`."""
    p = subprocess.run(
        ["cargo", "test", "--quiet", "--lib", test, "--", "--ignored", "--exact"],
        cwd=ROOT, env=dict(os.environ, DELTA_INTEROP_OUT=str(out)),
        capture_output=True, text=True, timeout=1800,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed" in p.stdout, p.stdout


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("delta")
    write_with(TEST, out)
    return out / "ds"


ROW_A = {
    "name": "a", "qty": 1, "price": 1.5, "ok": True,
    "seen": datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc),
    "day": datetime.date(2026, 1, 2), "amount": decimal.Decimal("123.45"),
    "tags": [1, 2], "addr": {"city": "Oslo"}, "_titan_row": 1,
}
ROW_B = {
    "name": None, "qty": 2, "price": -2.25, "ok": False,
    "seen": datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc),
    "day": datetime.date(1970, 1, 1), "amount": decimal.Decimal("-0.01"),
    "tags": [], "addr": {"city": "Rome"}, "_titan_row": 2,
}


def expected():
    rows = []
    for exec_id, task, date, notes in [("e1", "t1", datetime.date(2026, 1, 2), [None, None]),
                                       ("e2", "t2", datetime.date(2026, 1, 3), ["x", "y"])]:
        for row, note in zip([ROW_A, ROW_B], notes):
            rows.append(dict(row, _titan_execution_id=exec_id, task_id=task, date=date, note=note))
    return rows


def normalize(rows):
    out = []
    for r in rows:
        r = dict(r)
        r["seen"] = r["seen"].astimezone(datetime.timezone.utc)
        out.append(r)
    return sorted(out, key=lambda r: (r["_titan_execution_id"], r["_titan_row"]))


def test_deltalake_reads_every_row_with_values_types_and_partitions(table):
    dt = DeltaTable(str(table))
    assert dt.version() == 1
    assert dt.metadata().partition_columns == ["task_id", "date"]
    t = dt.to_pyarrow_table()
    types = {f.name: f.type for f in t.schema}
    assert types["qty"] == pa.int64()
    assert types["seen"] == pa.timestamp("us", tz="UTC")
    assert types["amount"] == pa.decimal128(12, 2)
    assert types["date"] == pa.date32()
    assert types["task_id"] == pa.string()
    assert types["note"] == pa.string()
    assert normalize(t.to_pylist()) == normalize(expected())
    assert sorted(Path(u).relative_to(table).as_posix() for u in dt.file_uris()) == [
        "task_id=t1/date=2026-01-02/e1-r1-0.parquet",
        "task_id=t2/date=2026-01-03/e2-r1-0.parquet",
    ]


def test_polars_reads_the_same_rows(table):
    df = pl.read_delta(str(table))
    assert df.schema["seen"] == pl.Datetime("us", "UTC")
    assert df.schema["amount"] == pl.Decimal(12, 2)
    assert df.schema["tags"] == pl.List(pl.Int64)
    assert df.schema["date"] == pl.Date
    assert normalize(df.to_dicts()) == normalize(expected())


COMPACT_TEST = "sink::delta::compact_tests::writes_a_compacted_table_for_the_interop_readers"


@pytest.fixture(scope="module")
def compacted(tmp_path_factory):
    out = tmp_path_factory.mktemp("delta-compacted")
    write_with(COMPACT_TEST, out)
    return out / "compacted" / "ds"


def sort_rows(rows):
    return sorted(rows, key=lambda r: (r["_titan_execution_id"], r["_titan_row"]))


def test_deltalake_reads_a_compacted_table_with_the_same_rows_in_fewer_files(compacted):
    before = DeltaTable(str(compacted), version=12)
    after = DeltaTable(str(compacted))
    assert after.version() == 14
    assert len(before.file_uris()) == 13
    names = sorted(Path(u).name for u in after.file_uris())
    assert len(names) == 3 and all(n.startswith("compact-") for n in names), names
    old = sort_rows(before.to_pyarrow_table().to_pylist())
    assert len(old) == 6 * 3 + 3 * 2 + 4 * 4
    assert sort_rows(after.to_pyarrow_table().to_pylist()) == old
    assert after.schema() == before.schema()
    ops = [h["operation"] for h in after.history(2)]
    assert ops == ["OPTIMIZE", "OPTIMIZE"]
    # Wide rows keep their price, narrow ones read it as null.
    prices = {r["_titan_execution_id"]: r["price"] for r in old}
    assert prices["e7"] == 10 and prices["e0"] is None


def test_polars_reads_a_compacted_table_with_the_same_rows(compacted):
    old = pl.read_delta(str(compacted), version=12).sort(["_titan_execution_id", "_titan_row"])
    new = pl.read_delta(str(compacted)).sort(["_titan_execution_id", "_titan_row"])
    assert new.schema == old.schema
    assert new.equals(old)
    assert new.height == 6 * 3 + 3 * 2 + 4 * 4


# --- The connector binary in delta mode, from the simulator ----------------------------------
#
# `lake` (conftest.py) is the demo ingested as a Parquet folder; `delta_lake` is the same demo
# ingested by the binary with TITAN_CONNECTOR_STORE_TABLE_FORMAT=delta. Both readers must see
# in each Delta table exactly the rows the Parquet folder holds (which test_readers.py checks
# against the simulator), with Delta's own partition values, and the news values must equal
# the simulator's export.

BIN = ROOT / "target" / "debug" / "titan-connector"
SIM_TOKEN = "demo-token"
NEWS_EXECS = ["4f7b3d9e-5a2c-4e1f-b8d6-7a9c1e3f5b84", "8a1c5e3f-9d7b-4a2e-8c6f-3e5a7c9d1b05"]


@pytest.fixture(scope="module")
def delta_lake(sim, tmp_path_factory):
    """Runs the connector binary once in delta mode; returns (store dir, run report)."""
    out = tmp_path_factory.mktemp("delta-lake") / "out"
    report = out.parent / "report.json"
    env = dict(os.environ, TITAN_API_URL=sim.url, TITAN_TOKEN=SIM_TOKEN,
               TITAN_CONNECTOR_STORE_TABLE_FORMAT="delta")
    p = subprocess.run(
        [str(BIN), "run", "--config", str(ROOT / "examples/demo.toml"),
         "--store", str(out), "--report", str(report)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    # 3: the demo scenario has a failed and a cancelled execution on purpose.
    assert p.returncode == 3, p.stderr
    return out, json.loads(report.read_text())


def ingested(report):
    """{dataset: {execution id: (task id, rows)}} of the executions the run ingested."""
    by_ds = {}
    for e in report["executions"]:
        if e["outcome"] == "ingested":
            by_ds.setdefault(e["dataset"], {})[e["execution_id"]] = (e["task_id"], e["rows"])
    return by_ds


def parquet_folder_rows(out, dataset):
    """The Parquet folder's rows of `dataset` (no hive columns: partitions are compared apart)."""
    t = pq.ParquetDataset(str(out / dataset), partitioning=None).read()
    return sort_rows(t.to_pylist())


def test_the_binary_writes_one_delta_table_per_dataset_and_no_manifests(delta_lake):
    out, report = delta_lake
    t = report["totals"]
    assert (t["ingested"], t["no_results"], t["failed"]) == (6, 2, 0)
    want = ingested(report)
    assert sorted(want) == ["jobs", "news_headlines", "products"]
    for dataset, execs in want.items():
        dt = DeltaTable(str(out / dataset))
        assert dt.metadata().partition_columns == ["task_id", "date"]
        # Failed and cancelled executions are in the log too (their txn), with no rows.
        df = pl.read_delta(str(out / dataset))
        counts = dict(df.group_by("_titan_execution_id").len().iter_rows())
        assert counts == {e: rows for e, (_, rows) in execs.items() if rows > 0}
        assert not (out / dataset / "_manifests").exists()
        # (Empty `_staging/` and `_leases/` folders stay on local disk, as in parquet mode.)
        assert not [p for p in (out / dataset).glob("_staging/**/*") if p.is_file()]


def test_deltalake_reads_every_row_with_the_parquet_folders_values_and_partitions(delta_lake, lake):
    out, report = delta_lake
    folder, _ = lake
    for dataset, execs in ingested(report).items():
        t = DeltaTable(str(out / dataset)).to_pyarrow_table()
        assert t.schema.field("task_id").type == pa.string()
        assert t.schema.field("date").type == pa.date32()
        rows = sort_rows(t.to_pylist())
        assert len(rows) == sum(n for _, n in execs.values())
        for r in rows:
            task_id, _ = execs[r["_titan_execution_id"]]
            assert r.pop("task_id") == task_id == r["_titan_task_id"]
            assert isinstance(r.pop("date"), datetime.date)
        assert rows == parquet_folder_rows(folder, dataset), dataset
    t = DeltaTable(str(out / "products")).to_pyarrow_table()
    assert t.schema.field("price").type == pa.decimal128(12, 2)
    assert t.schema.field("scraped_at").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_struct(t.schema.field("image_url").type)


def test_delta_partition_dates_are_the_parquet_folders_dates(delta_lake, lake):
    out, report = delta_lake
    folder, _ = lake
    for dataset in ingested(report):
        got = {
            (r["_titan_execution_id"], r["date"])
            for r in pl.read_delta(str(out / dataset)).select("_titan_execution_id", "date").unique().to_dicts()
        }
        want = {
            (r["_titan_execution_id"], datetime.date.fromisoformat(r["date"]))
            for r in pl.scan_parquet(f"{folder}/{dataset}/**/*.parquet", hive_partitioning=True,
                                     hive_schema={"task_id": pl.String, "date": pl.String})
            .select("_titan_execution_id", "date").unique().collect().to_dicts()
        }
        assert got == want, dataset


def test_polars_reads_the_delta_tables_with_their_types(delta_lake, lake):
    out, report = delta_lake
    folder, _ = lake
    for dataset in ingested(report):
        df = pl.read_delta(str(out / dataset))
        assert df.schema["task_id"] == pl.String
        assert df.schema["date"] == pl.Date
        assert df.schema["_titan_row"] == pl.Int64
        rows = sort_rows(df.drop("task_id", "date").to_dicts())
        assert rows == parquet_folder_rows(folder, dataset), dataset
    products = pl.read_delta(str(out / "products"))
    assert products.schema["price"] == pl.Decimal(12, 2)
    assert products.schema["scraped_at"] == pl.Datetime("us", "UTC")
    jobs = pl.read_delta(str(out / "jobs"))
    assert jobs.schema["posted_at"] == pl.Datetime("us", "UTC")
    assert jobs.schema["remote"] == pl.Boolean


def test_delta_values_equal_the_simulator_export(delta_lake, sim):
    out, _ = delta_lake
    df = pl.read_delta(str(out / "news_headlines"))
    for exec_id in NEWS_EXECS:
        source = sim.export_rows(exec_id)
        got = (
            df.filter(pl.col("_titan_execution_id") == exec_id)
            .sort("_titan_row")
            .select("headline", "source", "author", "published_at", "comment_count", "url")
            .rows()
        )
        assert len(got) == len(source)
        for want, row in zip(source, got):
            ts = want["published_at"]
            want_ts = None if ts is None else datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
            assert row == (
                want["headline"], want["source"], want["author"], want_ts,
                want["comment_count"], want["url"],
            )
