"""`make bench`: titan-connector against DuckDB and polars, converting the same exports to
zstd Parquet, each measurement in its own child process.

Run from the repository root, after `cargo build --release --bins`, with the venv's Python:

    .venv/bin/python benches/compare/run.py

For every (shape, rows, format) it generates the export once into the cache (the
simulator's own generator, `examples/bench_gen.rs`), then measures:

  duckdb   COPY (SELECT * FROM read_csv/read_json(FILE)) TO ... (FORMAT parquet, COMPRESSION zstd)
  polars   scan_csv().sink_parquet(compression='zstd'), or read_json().write_parquet() (JSON array)
  convert  titan-connector convert --input FILE --format F --schema S --output DIR  (no HTTP)
  e2e      titan-sim serving the same file (export_file) + titan-connector run --config C --store DIR
  e2e-delta  the same with `[store] table_format = "delta"` (a Delta table; goal: within 10%
           of `e2e`, printed as its own ratio)

and prints wall time, rows/s, MB/s (input bytes / wall), peak RSS and CPU time per tool, then
the ratios ours/peer. Wall, peak RSS and CPU come from wait4() on that one process, taken by
a small launcher (rusage.py) so that this script's own memory is not counted in it (the
simulator of `e2e` is a separate process, reported on its own line). Each run's output is
counted back with pyarrow (all rows must be there) and deleted before the next run.

Environment (all optional):
  BENCH_BIG=1            also 10M rows (another ~23 GB of inputs; see BENCH_KEEP_INPUTS)
  BENCH_ROWS=1000,50000  row counts instead of 1M,2M[,10M]
  BENCH_SHAPES=scraped   subset of products,wide,scraped (scraped: realistic scraped rows,
                         ~300 bytes a CSV row, benches/common/scraped.rs; the one to quote)
  BENCH_FORMATS=csv      subset of csv,json
  BENCH_TOOLS=convert,e2e  subset of duckdb,polars,convert,e2e,e2e-delta
  BENCH_REPEAT=3         rounds of every tool, interleaved; each keeps its fastest (default 1)
  BENCH_TIMEOUT=1800     seconds before a measurement is killed
  BENCH_POLARS_JSON_MAX_MB=1500  skip polars on larger JSON arrays (read_json holds ~5.5x the
                         file in memory; beyond this it risks the OOM killer on 24 GiB)
  BENCH_KEEP_INPUTS=0    delete each generated input after its case (default: keep them
                         cached; 1M+2M of both shapes and formats take ~6.6 GB)
  BENCH_DISK_MARGIN_MB=1024  free disk kept beyond an input's estimated size (x1.3, for
                         the outputs); a case that does not fit is skipped with a note
  BENCH_SMALL=10000      executions of 100 rows in the "many small executions" case (run end
                         to end with combining on and off, and in delta mode; 0 skips it)
  BENCH_CACHE=.bench-cache  cache and scratch directory
  CARGO_TARGET_DIR       where the release binaries are (default ./target)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY = sys.executable
TOKEN = "bench-token"
PEERS = ("duckdb", "polars")
OURS = ("convert", "e2e", "e2e-delta")
MIB = 1024 * 1024


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name, "").strip()
    return [x.strip() for x in raw.split(",") if x.strip()] if raw else default


CACHE = (ROOT / os.environ.get("BENCH_CACHE", ".bench-cache")).resolve()
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")).resolve()
RELEASE = TARGET / "release"
CONNECTOR = RELEASE / "titan-connector"
SIM = RELEASE / "titan-sim"
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "1800"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "1")))
POLARS_JSON_MAX = float(os.environ.get("BENCH_POLARS_JSON_MAX_MB", "1500")) * 1e6
KEEP_INPUTS = os.environ.get("BENCH_KEEP_INPUTS", "1") != "0"
DISK_MARGIN = float(os.environ.get("BENCH_DISK_MARGIN_MB", "1024")) * 1e6


@dataclass
class Input:
    shape: str
    rows: int
    format: str
    path: str
    bytes: int | None
    schema: str
    output_schema: str
    task_id: str
    execution_id: str
    seed: int


@dataclass
class Result:
    shape: str
    rows: int
    format: str
    tool: str
    input_bytes: int
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_kib: int | None = None
    output_bytes: int | None = None
    rows_out: int | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.wall_s is not None and not self.note


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Inputs


def build_generator() -> Path:
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--example", "bench_gen"],
        cwd=ROOT,
        check=True,
    )
    return RELEASE / "examples" / "bench_gen"


def generate(gen: Path, shape: str, rows: int, fmt: str, dry_run: bool = False) -> Input:
    out = subprocess.run(
        [gen, "--shape", shape, "--rows", str(rows), "--format", fmt, "--dir", CACHE]
        + (["--dry-run"] if dry_run else []),
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return Input(
        shape=shape,
        rows=rows,
        format=fmt,
        path=r["path"] if os.path.isabs(r["path"]) else str(ROOT / r["path"]),
        bytes=r["bytes"],
        schema=str((ROOT / r["schema"]).resolve()),
        output_schema=str((ROOT / r["output_schema"]).resolve()),
        task_id=r["task_id"],
        execution_id=r["execution_id"],
        seed=r["seed"],
    )


def disk_shortfall(gen: Path, shape: str, rows: int, fmt: str) -> str:
    """Why the input cannot be generated ("" if it can): the estimate (from a cached
    1000-row sample) plus room for the outputs must fit the free disk space."""
    if generate(gen, shape, rows, fmt, dry_run=True).bytes is not None:
        return ""
    sample = generate(gen, shape, 1000, fmt)
    need = sample.bytes * rows / 1000 * 1.3 + DISK_MARGIN
    free = shutil.disk_usage(CACHE).free
    if free >= need:
        return ""
    return (f"skipped: needs ~{need / 1e9:.1f} GB of disk for the input and outputs, "
            f"{free / 1e9:.1f} GB free (BENCH_KEEP_INPUTS=0 deletes inputs after use)")


# ---------------------------------------------------------------------------------------
# Running one child and measuring it


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    code: int
    stdout: str


def launch(cmd: list, log_path: Path, **popen) -> subprocess.Popen:
    """Starts `cmd` through rusage.py, which writes the command's own wall, CPU and peak RSS
    to `proc.usage` (beside `log_path`) when it exits: measured here, a child would report
    at least this process's peak RSS as its own. In a new process group, so a timeout can
    kill both."""
    usage = log_path.with_suffix(".usage.json")
    usage.unlink(missing_ok=True)
    proc = subprocess.Popen([PY, HERE / "rusage.py", usage] + [str(c) for c in cmd],
                            cwd=ROOT, start_new_session=True, **popen)
    proc.usage = usage
    return proc


def usage_of(usage: Path) -> dict | None:
    """What rusage.py wrote, or None if it was killed before writing."""
    try:
        return json.loads(usage.read_text())
    except (OSError, ValueError):
        return None


def measure(cmd: list, log_path: Path, env: dict | None = None) -> Run:
    """Runs `cmd` to completion; wall clock, CPU and peak RSS of that command alone."""
    with open(log_path, "wb") as log_file:
        proc = launch(cmd, log_path, stdout=subprocess.PIPE, stderr=log_file, env=env)
        killer = threading.Timer(TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
        killer.start()
        try:
            # Read stdout to EOF (it is small), then reap.
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.wait()
        except BaseException:
            # Its own process group does not get the terminal's Ctrl-C: stop it here.
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            killer.cancel()
    ru = usage_of(proc.usage)
    if ru is None:  # killed before it could report: a failure, never a measurement
        return Run(wall_s=0.0, cpu_s=0.0, peak_rss_kib=0, code=proc.returncode or 1,
                   stdout=out.decode("utf-8", "replace"))
    return Run(
        wall_s=ru["wall_s"],
        cpu_s=ru["cpu_s"],
        peak_rss_kib=ru["peak_rss_kib"],
        code=proc.returncode,
        stdout=out.decode("utf-8", "replace"),
    )


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def parquet_stats(path: Path) -> tuple[int, int]:
    """(rows, bytes) of every Parquet file under `path` (a file or a directory); of a Delta
    table's, only the files its log references (read with deltalake)."""
    import pyarrow.parquet as pq

    if path.is_dir() and any(path.rglob("_delta_log")):
        from deltalake import DeltaTable

        rows = size = 0
        for log_dir in path.rglob("_delta_log"):
            dt = DeltaTable(str(log_dir.parent))
            rows += dt.to_pyarrow_dataset().count_rows()
            size += sum(Path(u.removeprefix("file://")).stat().st_size for u in dt.file_uris())
        return rows, size
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return rows, sum(f.stat().st_size for f in files)


def fresh(path: Path) -> Path:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    return path


# ---------------------------------------------------------------------------------------
# The four tools


def run_peer(tool: str, inp: Input, scratch: Path) -> tuple[Run, Path]:
    out = fresh(scratch / f"{tool}.parquet")
    cmd = [PY, HERE / "peers.py", tool, inp.format, inp.path, out]
    return measure(cmd, scratch / f"{tool}.log"), out


def run_convert(inp: Input, scratch: Path) -> tuple[Run, Path]:
    out = fresh(scratch / "convert")
    cmd = [CONNECTOR, "convert", "--input", inp.path, "--format", inp.format,
           "--schema", inp.schema, "--output", out]
    return measure(cmd, scratch / "convert.log"), out


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


def scenario_toml(inp: Input) -> str:
    schema = Path(inp.output_schema).read_text()
    return "\n".join([
        "# Written by benches/compare/run.py: one execution serving the benchmark rows.",
        f"seed = {inp.seed}",
        f"token = {toml_str(TOKEN)}",
        "",
        "[[tasks]]",
        f"id = {toml_str(inp.task_id)}",
        f"name = {toml_str('bench ' + inp.shape)}",
        f"output_schema = '''{schema.strip()}'''",
        "",
        "[[tasks.executions]]",
        f"id = {toml_str(inp.execution_id)}",
        f"rows = {inp.rows}",
        # The generator's own bytes, cached: served from the file, the simulator costs
        # the cores almost nothing, as a remote Titan would (see docs/performance.md).
        f"export_file = {toml_str(str(Path(inp.path).resolve()))}",
        "",
    ])


def connector_toml(inp: Input, base_url: str, store: Path) -> str:
    return "\n".join([
        "# Written by benches/compare/run.py: the benchmark task into a local store.",
        "[api]",
        f"url = {toml_str(base_url)}",
        'auth = "bearer"',
        "rate_limit_per_minute = 0",
        "",
        "[store]",
        f"url = {toml_str(str(store))}",
        "",
        "[wait]",
        'poll_interval = "50ms"',
        'max_poll_interval = "200ms"',
        "",
        "[[tasks]]",
        f"id = {toml_str(inp.task_id)}",
        f"dataset = {toml_str('bench_' + inp.shape)}",
        f"schema = {toml_str(inp.schema)}",
        f"format = {toml_str(inp.format)}",
        "",
    ])


def start_sim(scenario: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    log_file = open(log_path, "wb")
    proc = launch([SIM, "--scenario", scenario], log_path,
                  stdout=subprocess.PIPE, stderr=log_file, text=True)
    log_file.close()
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    prefix = "titan-sim listening on "
    if not line.startswith(prefix):
        stop_sim(proc)
        raise RuntimeError(f"titan-sim did not start: {line!r}; {tail(log_path)}")
    return proc, line[len(prefix):]


def stop_sim(proc: subprocess.Popen) -> dict:
    """SIGTERM (passed on by rusage.py), then reap: the simulator's own CPU and peak RSS."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait()
    ru = usage_of(proc.usage)
    if ru is None:
        return {}
    return {"sim_cpu_s": ru["cpu_s"], "sim_peak_rss_kib": ru["peak_rss_kib"]}


def run_e2e(inp: Input, scratch: Path, extra: dict,
            table_format: str = "parquet") -> tuple[Run, Path]:
    store = fresh(scratch / "e2e-store")
    scenario = CACHE / f"scenario-{inp.execution_id}.toml"
    scenario.write_text(scenario_toml(inp))
    sim, base_url = start_sim(scenario, scratch / "sim.log")
    try:
        config = scratch / "e2e.toml"
        config.write_text(connector_toml(inp, base_url, store))
        env = dict(os.environ, TITAN_API_URL=base_url, TITAN_TOKEN=TOKEN,
                   TITAN_CONNECTOR_STORE_TABLE_FORMAT=table_format)
        cmd = [CONNECTOR, "run", "--config", config, "--store", store]
        log_name = "e2e.log" if table_format == "parquet" else f"e2e-{table_format}.log"
        run = measure(cmd, scratch / log_name, env)
    finally:
        extra.update(stop_sim(sim))
    return run, store


SMALL_ROWS = 100
SMALL_SCHEMA = json.dumps({
    "type": "object", "required": ["product_name"],
    "properties": {"product_name": {"type": "string"}, "price": {"type": "number"},
                   "review_count": {"type": "integer"},
                   "scraped_at": {"type": "string", "format": "date-time"}}})


def small_scenario_toml(executions: int) -> str:
    """One task with `executions` executions of 100 rows over two days."""
    lines = ["seed = 7", f"token = {toml_str(TOKEN)}", "page_max = 500", "",
             "[[tasks]]", 'id = "many-small"', 'name = "many small"',
             f"output_schema = '''{SMALL_SCHEMA}'''", ""]
    for e in range(executions):
        day = 20 + e * 2 // max(executions, 1)
        lines += ["[[tasks.executions]]", f'id = "e{e:05}"', f"rows = {SMALL_ROWS}",
                  f'created_at = "2026-11-{day:02}T{(e // 60) % 24:02}:{e % 60:02}:00Z"', ""]
    return "\n".join(lines)


def run_small(executions: int, combine: bool, table_format: str = "parquet") -> dict:
    """`titan-connector run` over many small executions; executions/s, files, rows."""
    scratch = CACHE / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    store = fresh(scratch / "small-store")
    scenario = scratch / "small-scenario.toml"
    scenario.write_text(small_scenario_toml(executions))
    sim, base_url = start_sim(scenario, scratch / "sim.log")
    try:
        config = scratch / "small.toml"
        config.write_text("\n".join([
            "[api]", f"url = {toml_str(base_url)}", 'auth = "bearer"',
            "rate_limit_per_minute = 0", "", "[store]", f"url = {toml_str(str(store))}", "",
            "[wait]", 'poll_interval = "50ms"', "", "[run]",
            f"combine_below_mb = {8 if combine else 0}", "", "[media]", "enabled = false", "",
            "[[tasks]]", 'id = "many-small"', 'dataset = "many_small"', ""]))
        report_path = scratch / "small-report.json"
        env = dict(os.environ, TITAN_TOKEN=TOKEN, TITAN_CONNECTOR_STORE_TABLE_FORMAT=table_format)
        run = measure([CONNECTOR, "run", "--config", config, "--report", report_path],
                      scratch / "small.log", env)
    finally:
        stop_sim(sim)
    out = {"executions": executions, "combine": combine, "format": table_format, "code": run.code,
           "wall_s": run.wall_s, "peak_rss_kib": run.peak_rss_kib, "cpu_s": run.cpu_s}
    if run.code == 0:
        totals = json.loads(report_path.read_text())["totals"]
        out.update(executions_per_second=totals["executions_per_second"],
                   files=totals["files"], rows=totals["rows"])
        rows_out, _ = parquet_stats(store)
        if rows_out != executions * SMALL_ROWS:
            out["note"] = f"wrote {rows_out} rows, expected {executions * SMALL_ROWS}"
    fresh(store)
    return out


def small_report(runs: list[dict]) -> str:
    lines = ["== Many small executions (100 rows each, end to end, concurrency 4) ==",
             f"{'executions':>10}  {'format':<7}  {'combining':<9}  {'wall s':>7}  {'exec/s':>7}  "
             f"{'files':>6}  {'rows':>9}  {'peak MiB':>8}  {'CPU s':>6}  note"]
    for r in runs:
        if r["code"] != 0:
            lines.append(f"{r['executions']:>10}  {r['format']:<7}  "
                         f"{'on' if r['combine'] else 'off':<9}  failed (exit {r['code']})")
            continue
        lines.append(
            f"{r['executions']:>10}  {r['format']:<7}  {'on' if r['combine'] else 'off':<9}  "
            f"{r['wall_s']:>7.1f}  "
            f"{r['executions_per_second']:>7.0f}  {r['files']:>6}  {r['rows']:>9}  "
            f"{r['peak_rss_kib'] / 1024:>8.0f}  {r['cpu_s']:>6.1f}  {r.get('note', '')}")
    return "\n".join(lines)


def has_subcommand(name: str) -> bool:
    if not CONNECTOR.exists():
        return False
    try:
        probe = subprocess.run([CONNECTOR, name, "--help"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def run_tool(tool: str, inp: Input, scratch: Path) -> tuple[Run, dict, Path]:
    """One run of `tool` on `inp`: the measurement, extras (the simulator's share), output."""
    extra: dict = {}
    if tool in PEERS:
        run, out = run_peer(tool, inp, scratch)
    elif tool == "convert":
        run, out = run_convert(inp, scratch)
    elif tool == "e2e-delta":
        run, out = run_e2e(inp, scratch, extra, "delta")
    else:
        run, out = run_e2e(inp, scratch, extra)
    return run, extra, out


def measure_tools(tools: list[str], inp: Input, skip: dict[str, str]) -> list[Result]:
    """Every tool once per round, REPEAT rounds (A B A B, not A A B B): this machine's speed
    drifts by 10-20% over minutes, and a tool measured only early or only late would carry
    that drift into its ratio. Each tool keeps its fastest run."""
    results = {t: Result(inp.shape, inp.rows, inp.format, t, inp.bytes) for t in tools}
    for tool, res in results.items():
        if tool in skip:
            res.note = skip[tool]
        elif tool == "polars" and inp.format == "json" and inp.bytes > POLARS_JSON_MAX:
            res.note = (f"skipped: read_json holds the whole {inp.bytes / 1e6:.0f} MB array "
                        "(BENCH_POLARS_JSON_MAX_MB)")
    scratch = CACHE / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    best: dict[str, Run] = {}
    for round_no in range(1, REPEAT + 1):
        for tool, res in results.items():
            if res.note:
                continue
            run, extra, out = run_tool(tool, inp, scratch)
            # Every round, not only the kept one: the spread is part of the result.
            print(f"    round {round_no}: {tool} {run.wall_s:.2f} s, {run.cpu_s:.1f} CPU s, "
                  f"{run.peak_rss_kib / 1024:.0f} MiB", file=sys.stderr, flush=True)
            if run.code != 0:
                res.note = f"failed (exit {run.code}): {tail(scratch / (tool + '.log'))}"
                continue
            # Checked now, not after the last round: e2e and e2e-delta write to the same
            # store, so a later run's output would be counted as this one's.
            try:
                rows, size = parquet_stats(out)
            except Exception as e:  # a reader error is a result too, not a crash of the whole run
                res.note = f"output unreadable: {e}"
                continue
            finally:
                fresh(out)
            if rows != inp.rows:
                res.note = f"wrote {rows} rows, expected {inp.rows}"
                continue
            res.rows_out, res.output_bytes = rows, size
            if tool not in best or run.wall_s < best[tool].wall_s:
                best[tool], res.extra = run, extra
            res.peak_rss_kib = max(res.peak_rss_kib or 0, run.peak_rss_kib)
    for tool, res in results.items():
        run = best.get(tool)
        if res.note or run is None:
            continue
        res.wall_s, res.cpu_s = run.wall_s, run.cpu_s
        if tool in PEERS and run.stdout.strip():
            res.extra["inner_s"] = json.loads(run.stdout.strip().splitlines()[-1])["inner_s"]
    return list(results.values())


# ---------------------------------------------------------------------------------------
# Report


def fmt_row(r: Result) -> list[str]:
    case = f"{r.shape} {r.rows / 1e6:g}M {r.format}"
    if not r.ok:
        return [case, f"{r.input_bytes / 1e6:.0f}", r.tool] + ["-"] * 6 + [r.note[:90]]
    note = ""
    if "sim_peak_rss_kib" in r.extra:
        note = (f"sim: {r.extra['sim_peak_rss_kib'] / 1024:.0f} MiB, "
                f"{r.extra['sim_cpu_s']:.1f} s CPU")
    elif "inner_s" in r.extra:
        note = f"in-call {r.extra['inner_s']:.2f} s"
    return [
        case,
        f"{r.input_bytes / 1e6:.0f}",
        r.tool,
        f"{r.wall_s:.2f}",
        f"{r.rows / r.wall_s / 1e6:.2f}",
        f"{r.input_bytes / 1e6 / r.wall_s:.0f}",
        f"{r.peak_rss_kib / 1024:.0f}",
        f"{r.cpu_s:.1f}",
        f"{(r.output_bytes or 0) / 1e6:.0f}",
        note,
    ]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    right = {i for i, h in enumerate(header) if h not in ("case", "tool", "note", "vs")}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def peer_seconds(peer: Result) -> float:
    """A peer's time for the ratios: its conversion call alone (no interpreter start or
    import), which is the stricter comparison for us; our wall includes process start."""
    return float(peer.extra.get("inner_s", peer.wall_s))


def ratio_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    cases = sorted({(r.shape, r.rows, r.format) for r in results},
                   key=lambda c: (c[0], c[2], c[1]))
    for case in cases:
        by_tool = {r.tool: r for r in results if (r.shape, r.rows, r.format) == case and r.ok}
        peers = [by_tool[p] for p in PEERS if p in by_tool]
        for ours in (by_tool.get(t) for t in OURS):
            if ours is None or not peers:
                continue
            best = min(peers, key=peer_seconds)
            cells = [f"{case[0]} {case[1] / 1e6:g}M {case[2]}", ours.tool]
            for p in PEERS:
                peer = by_tool.get(p)
                if peer is None:
                    cells += ["-", "-"]
                else:
                    cells += [f"{ours.wall_s / peer_seconds(peer):.2f}",
                              f"{ours.peak_rss_kib / peer.peak_rss_kib:.2f}"]
            wall_ok = ours.wall_s <= 0.8 * peer_seconds(best)
            rss_ok = ours.peak_rss_kib < 128 * 1024
            cells.append(f"best {best.tool}: wall {'met' if wall_ok else 'MISSED'}, "
                         f"<128 MiB {'met' if rss_ok else 'MISSED'}")
            rows.append(cells)
    return rows


def delta_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.tool != "e2e-delta" or not r.ok:
            continue
        base = next((b for b in results if b.tool == "e2e" and b.ok
                     and (b.shape, b.rows, b.format) == (r.shape, r.rows, r.format)), None)
        if base is None:
            continue
        wall = r.wall_s / base.wall_s
        rss = r.peak_rss_kib / base.peak_rss_kib
        rows.append([f"{r.shape} {r.rows / 1e6:g}M {r.format}", f"{wall:.2f}", f"{rss:.2f}",
                     "met" if wall <= 1.10 else "MISSED"])
    return rows


def flatness(results: list[Result]) -> list[str]:
    lines = []
    keys = sorted({(r.tool, r.shape, r.format) for r in results})
    for tool, shape, fmt in keys:
        pts = sorted((r.rows, r.peak_rss_kib) for r in results
                     if (r.tool, r.shape, r.format) == (tool, shape, fmt) and r.ok)
        if len(pts) > 1:
            series = ", ".join(f"{rows / 1e6:g}M {kib / 1024:.0f}" for rows, kib in pts)
            growth = pts[-1][1] / pts[0][1]
            lines.append(f"  {tool:<8} {shape:<8} {fmt:<4} peak MiB: {series}  (x{growth:.2f})")
    return lines


def report(results: list[Result], notes: list[str]) -> str:
    header = ["case", "in MB", "tool", "wall s", "Mrows/s", "MB/s", "peak MiB", "CPU s",
              "out MB", "note"]
    parts = ["", "== Export → zstd Parquet (MB/s = input bytes / wall) ==",
             table(header, [fmt_row(r) for r in results])]
    ratios = ratio_rows(results)
    if ratios:
        parts += ["", "== Ratios ours / peer (below 1 is better). Ours: process wall; peers: "
                  "their in-call time. Goal: wall ≤ 0.8 × best peer, peak < 128 MiB ==",
                  table(["case", "tool", "wall/duckdb", "rss/duckdb", "wall/polars",
                         "rss/polars", "vs"], ratios)]
    delta = delta_rows(results)
    if delta:
        parts += ["", "== Delta table / Parquet folder, end to end (goal: within 10%) ==",
                  table(["case", "wall delta/parquet", "peak RSS delta/parquet", "goal"], delta)]
    flat = flatness(results)
    if flat:
        parts += ["", "== Peak RSS across sizes =="] + flat
    if notes:
        parts += [""] + [f"note: {n}" for n in notes]
    return "\n".join(parts)


def fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def main() -> int:
    rows = [int(float(x)) for x in env_list(
        "BENCH_ROWS",
        ["1000000", "2000000"] + (["10000000"] if os.environ.get("BENCH_BIG") == "1" else []))]
    shapes = env_list("BENCH_SHAPES", ["products", "wide", "scraped"])
    formats = env_list("BENCH_FORMATS", ["csv", "json"])
    tools = env_list("BENCH_TOOLS", list(PEERS + OURS))
    unknown = set(tools) - set(PEERS + OURS)
    if unknown:
        log(f"run.py: unknown tools {sorted(unknown)} in BENCH_TOOLS")
        return 2

    notes: list[str] = []
    skip: dict[str, str] = {}
    if not CONNECTOR.exists():
        skip["convert"] = skip["e2e"] = f"skipped: {CONNECTOR} not built"
    else:
        if not has_subcommand("convert"):
            skip["convert"] = "skipped: this titan-connector has no `convert` subcommand yet"
        if not has_subcommand("run") or not SIM.exists():
            skip["e2e"] = "skipped: no `titan-connector run` pipeline (or titan-sim) yet"
    if "e2e" in skip:
        skip["e2e-delta"] = skip["e2e"]
    notes += sorted({f"{t}: {n}" for t, n in skip.items() if t in tools})
    notes.append(f"{os.cpu_count()} cores; peers use their defaults (threads = cores); "
                 f"{REPEAT} interleaved round(s), fastest run kept, peak RSS is the largest")

    load_start = os.getloadavg()
    CACHE.mkdir(parents=True, exist_ok=True)
    log("run.py: building the input generator (examples/bench_gen.rs)")
    gen = build_generator()
    results: list[Result] = []
    for shape in shapes:
        for n in rows:
            for fmt in formats:
                short = disk_shortfall(gen, shape, n, fmt)
                if short:
                    for tool in tools:
                        results.append(Result(shape, n, fmt, tool, 0, note=short))
                    log(f"  {shape} {n} {fmt}: {short}")
                    continue
                inp = generate(gen, shape, n, fmt)
                for res in measure_tools(tools, inp, skip):
                    results.append(res)
                    log("  " + "  ".join(c for c in fmt_row(res) if c))
                if not KEEP_INPUTS:
                    Path(inp.path).unlink(missing_ok=True)
    small = int(os.environ.get("BENCH_SMALL", "10000"))
    small_runs = []
    if small > 0 and "e2e" in tools and "e2e" not in skip:
        for combine, table_format in ((True, "parquet"), (False, "parquet"), (True, "delta")):
            r = run_small(small, combine, table_format)
            small_runs.append(r)
            log(f"  many small: {r}")
    load_end = os.getloadavg()
    notes.append(f"load average (1/5/15 min) before the first measurement "
                 f"{fmt_load(load_start)} (other work on this machine), at the end "
                 f"{fmt_load(load_end)} (includes the benchmark's own)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dump = [asdict(r) for r in results] + small_runs
    for name in (f"results-{stamp}.json", "results.json"):
        (CACHE / name).write_text(json.dumps(dump, indent=1) + "\n")
    print(report(results, notes))
    if small_runs:
        print()
        print(small_report(small_runs))
    print(f"\n(raw results: {CACHE / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
