"""Delta readers: `deltalake` and `polars` read a table written by the connector's Delta layer.

The table is written by the Rust test `sink::delta::tests::writes_a_table_for_the_interop_readers`
(two commits, two partitions, every column type the connector emits, the second commit adding
a column); this module checks that both readers see every row with its values, types and
partition values.
"""
import datetime
import decimal
import os
import subprocess
from pathlib import Path

import polars as pl
import pyarrow as pa
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
