"""One peer conversion of an export file to zstd Parquet, run as its own process by run.py.

    peers.py duckdb|polars csv|json INPUT OUTPUT.parquet

Each peer is used the way its documentation shows for a one-shot file conversion, with its
defaults (threads = cores, type inference on): DuckDB `COPY (SELECT * FROM read_csv/read_json)
TO ... (FORMAT parquet, COMPRESSION zstd)`; polars streaming `scan_csv().sink_parquet()` for
CSV and `read_json().write_parquet()` for a JSON array (polars streams only NDJSON).
Prints one JSON line: the seconds spent in the conversion call itself (imports excluded).
"""

import json
import sys
import time


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def duckdb_convert(fmt: str, src: str, dst: str) -> None:
    import duckdb

    reader = "read_csv" if fmt == "csv" else "read_json"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM {reader}({sql_string(src)})) "
        f"TO {sql_string(dst)} (FORMAT parquet, COMPRESSION zstd)"
    )
    con.close()


def polars_convert(fmt: str, src: str, dst: str) -> None:
    import polars as pl

    if fmt == "csv":
        pl.scan_csv(src).sink_parquet(dst, compression="zstd")
    else:
        pl.read_json(src).write_parquet(dst, compression="zstd")


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    tool, fmt, src, dst = sys.argv[1:5]
    convert = {"duckdb": duckdb_convert, "polars": polars_convert}.get(tool)
    if convert is None or fmt not in ("csv", "json"):
        print(f"peers.py: unknown tool {tool!r} or format {fmt!r}", file=sys.stderr)
        return 2
    if tool == "duckdb":
        import duckdb  # noqa: F401  (import time is not the conversion's)
    else:
        import polars  # noqa: F401
    started = time.perf_counter()
    convert(fmt, src, dst)
    print(json.dumps({"inner_s": time.perf_counter() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
