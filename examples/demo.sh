#!/usr/bin/env bash
# The demo: start the bundled Titan simulator on a free loopback port, run the connector
# over examples/demo.toml into ./out, stop the simulator, show what was written and query
# it with DuckDB. Called by `make demo` (which builds the binaries and the Python venv).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug}
PY=${PY:-.venv/bin/python}

addr_file=$(mktemp)
"$BIN/titan-sim" --scenario examples/scenarios/demo.toml --port 0 >"$addr_file" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -f "$addr_file"' EXIT

for _ in $(seq 1 100); do
  grep -q 'listening on' "$addr_file" && break
  sleep 0.1
done
url=$(grep -o 'http://[^ ]*' "$addr_file" | head -n 1)
if [ -z "$url" ]; then
  echo "demo: the simulator did not start" >&2
  exit 1
fi
echo "demo: simulator listening on $url"

status=0
TITAN_API_URL="$url" TITAN_TOKEN=demo-token \
  "$BIN/titan-connector" run --config examples/demo.toml --report out/run-report.json || status=$?
echo "demo: connector exited with $status (3 = some executions failed on Titan, as the demo scenario intends)"
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
  exit "$status"
fi

echo
echo "demo: files written"
find out -name '*.parquet' | sort
echo
"$PY" - <<'PY'
import duckdb
q = """
SELECT task_id, date, count(*) AS rows, count(DISTINCT _titan_execution_id) AS executions
FROM read_parquet('out/**/*.parquet', hive_partitioning = true)
GROUP BY ALL ORDER BY ALL
"""
print("demo: DuckDB, " + " ".join(q.split()))
duckdb.sql(q).show()
q2 = """
SELECT name, price, in_stock, scraped_at
FROM read_parquet('out/products/**/*.parquet', hive_partitioning = true)
ORDER BY price DESC LIMIT 5
"""
print("demo: DuckDB, " + " ".join(q2.split()))
duckdb.sql(q2).show()
q3 = """
SELECT name, image_url.path AS image_file, image_url.content_type, image_url.bytes
FROM read_parquet('out/products/**/*.parquet', hive_partitioning = true)
WHERE image_url.error IS NULL ORDER BY _titan_row LIMIT 3
"""
print("demo: DuckDB, rows joined to their media files: " + " ".join(q3.split()))
duckdb.sql(q3).show()
PY
