"""DuckDB, pyarrow and polars read the connector's output as written, with hive partitioning."""
import datetime as dt

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

PRODUCTS_EXECS = {  # from examples/scenarios/demo.toml: rows of executions that have results
    "0b6e5c1a-8f2d-4e7b-a1c3-5d9f7e2b4a60": 1200,
    "3c8d1f4e-2a6b-4f9c-8d7e-1b5a3c9f0e21": 5000,
    "5a2e9b7c-1d4f-4a8e-b6c2-9f3d7e1a5b42": 800,
}


def glob(out, dataset):
    return f"{out}/{dataset}/**/*.parquet"


def test_report_counts_match_the_scenario(lake):
    out, report = lake
    t = report["totals"]
    assert (t["ingested"], t["no_results"], t["failed"]) == (6, 2, 0)
    assert t["rows"] == 7000 + 2450 + 600


def test_duckdb_reads_every_dataset_with_hive_partitions(lake):
    out, _ = lake
    rows = duckdb.sql(
        f"""SELECT _titan_execution_id, count(*), min(_titan_row), max(_titan_row),
                   count(DISTINCT _titan_row), any_value(task_id)
            FROM read_parquet('{glob(out, "products")}', hive_partitioning = true)
            GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    assert {r[0]: r[1] for r in rows} == PRODUCTS_EXECS
    for exec_id, n, lo, hi, distinct, task_id in rows:
        assert (lo, hi, distinct) == (1, n, n)
        assert task_id == "7f1c2b9e-4d3a-4c5b-9e8f-0a1b2c3d4e5f"
    total = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true, union_by_name = true)"
    ).fetchone()[0]
    assert total == 7000 + 2450 + 600


def test_duckdb_types_are_the_declared_ones(lake):
    out, _ = lake
    types = {
        r[0]: r[1]
        for r in duckdb.sql(
            f"DESCRIBE SELECT * FROM read_parquet('{glob(out, 'news_headlines')}', hive_partitioning = true)"
        ).fetchall()
    }
    assert types["headline"] == "VARCHAR"
    assert types["published_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["comment_count"] == "BIGINT"
    assert types["_titan_row"] == "BIGINT"
    assert types["date"] == "DATE"


def test_values_equal_the_simulator_export(lake, sim):
    out, _ = lake
    for exec_id in ["4f7b3d9e-5a2c-4e1f-b8d6-7a9c1e3f5b84", "8a1c5e3f-9d7b-4a2e-8c6f-3e5a7c9d1b05"]:
        source = sim.export_rows(exec_id)
        got = duckdb.sql(
            f"""SELECT headline, source, author, epoch_us(published_at), comment_count, url
                FROM read_parquet('{glob(out, 'news_headlines')}')
                WHERE _titan_execution_id = '{exec_id}' ORDER BY _titan_row"""
        ).fetchall()
        assert len(got) == len(source)
        for want, row in zip(source, got):
            ts = want["published_at"]
            want_us = None if ts is None else int(
                dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1_000_000
            )
            assert row == (
                want["headline"], want["source"], want["author"], want_us,
                want["comment_count"], want["url"],
            )


def test_pyarrow_dataset_with_hive_partitioning(lake):
    out, _ = lake
    dataset = ds.dataset(str(out / "products"), format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 7000
    schema = table.schema
    assert schema.field("_titan_row").type == pa.int64()
    assert schema.field("scraped_at").type == pa.timestamp("us", tz="UTC")
    assert set(table.column("task_id").to_pylist()) == {"7f1c2b9e-4d3a-4c5b-9e8f-0a1b2c3d4e5f"}
    # pyarrow skips _manifests/ and _staging/ by default: only data files are read.
    assert all("/_" not in f for f in dataset.files)


def test_polars_scan_parquet(lake):
    out, _ = lake
    df = pl.scan_parquet(glob(out, "jobs"), hive_partitioning=True).collect()
    assert df.height == 600
    assert df.schema["posted_at"] == pl.Datetime("us", "UTC")
    assert df.schema["remote"] == pl.Boolean
    assert df.schema["salary_min"] == pl.Int64
    assert df["_titan_row"].sort().to_list() == list(range(1, 601))


def test_declared_schema_types_reach_every_reader(lake):
    """schemas/products.json: decimal prices, UTC µs timestamps, a media struct."""
    out, _ = lake
    types = {
        r[0]: r[1]
        for r in duckdb.sql(
            f"DESCRIBE SELECT * FROM read_parquet('{glob(out, 'products')}', hive_partitioning = true)"
        ).fetchall()
    }
    assert types["price"] == "DECIMAL(12,2)"
    assert types["scraped_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["image_url"].startswith("STRUCT(url VARCHAR, path VARCHAR, sha256 VARCHAR")
    table = ds.dataset(str(out / "products"), format="parquet", partitioning="hive").to_table()
    assert table.schema.field("price").type == pa.decimal128(12, 2)
    # Every stored media file is where its row says, with the recorded size.
    rows = duckdb.sql(
        f"""SELECT image_url.path, image_url.bytes FROM read_parquet('{glob(out, 'products')}')
            WHERE image_url IS NOT NULL AND image_url.error IS NULL LIMIT 50"""
    ).fetchall()
    assert len(rows) == 50
    for path, size in rows:
        assert (out / path).stat().st_size == size
