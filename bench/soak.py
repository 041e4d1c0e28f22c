"""Soak mode of `make bench` (`SOAK=K make bench`, `python bench/run.py --soak K`).

The first-night benchmark and `--nights` (the same export again) cannot show what weeks of
real nights do to the job: a customer base that grows, orders that complete, referrals that
convert, and stores that keep every export.  Here the nightly job runs on K consecutive
nights on ONE warehouse, night i ingesting the generator's full export of day i
(`generate_series`), each night a whole `python -m pipelines.nightly` process measured as
in the other modes (bench/run.py: wall time, peak memory of the process tree, stages from
the run's event log).  After each night it reads, without writing anything:

- rows in raw: `count(*)` of every table of schema `raw`, read-only, in the pipeline's
  store `<PIPELINE_STORE_DIR>/store.duckdb` when that file exists, else in WAREHOUSE_PATH
  (where raw lives while there is no separate store);
- bytes (apparent size, as `ls -l`) of the published file (WAREHOUSE_PATH + its .wal), of
  every file under PIPELINE_STORE_DIR (default `<WAREHOUSE_PATH's folder>/pipeline`;
  None when it does not exist) and of every file under DAGSTER_HOME and REPORTS_DIR.

Ends with a summary and one line `soak: customers=N nights=K night2_s=... last_s=...
ratio=... store_mib_per_night=... published_mib=...`; the record goes to
bench/out/results.jsonl, also when a night fails (what ran until then).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
from run import BENCH, PYTHON, ROOT, _add_night, bench_env, measure, stage_breakdown

DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MIB = 2**20


def series_days(root: Path) -> list[Path]:
    """The dated export folders of a generated series, oldest first."""
    return sorted(p for p in root.iterdir() if p.is_dir() and DAY_RE.match(p.name))


def ensure_series(n: int, k: int) -> list[Path]:
    """The first k daily exports of n customers, generated once and cached.

    `generate_series` is deterministic and day i does not depend on how many days follow
    (checked: days 1-2 of a 3-day series equal a 2-day series byte for byte), so a cached
    longer series of the same size serves too: a 30-night soak at 1M is ~40 GB of CSV.
    """
    cache = BENCH / "cache"
    longer = sorted(
        (int(p.name.rsplit("_", 1)[1]), p)
        for p in cache.glob(f"soak_{n}_*")
        if re.fullmatch(rf"soak_{n}_\d+", p.name) and int(p.name.rsplit("_", 1)[1]) >= k
    )
    if longer:
        return series_days(longer[0][1])[:k]
    root = cache / f"soak_{n}_{k}"
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"generating {k} daily exports of {n:,} customers in {root} ...", flush=True)
    t = time.perf_counter()
    cmd = [PYTHON, "-m", "pipelines.sample", "--customers", str(n), "--days", str(k)]
    subprocess.run([*cmd, "--out", str(tmp)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    tmp.rename(root)
    print(f"generated in {time.perf_counter() - t:.1f}s", flush=True)
    return series_days(root)


def streamed_series(n: int, k: int, folder: Path) -> Iterator[Path]:
    """The first k daily exports of n customers, each written just before its night into
    `folder` (the caller removes it after the night), never all at once: `--stream`, for
    sizes whose K exports do not fit the disk together (10M: 12.8 GB a day).

    The same calls as `generate_series` in the same order, so day i is the cached series'
    day i; the population stays in this process's memory between nights (~0.8 GiB per
    million customers, bench/README.md), outside the job's measured process tree."""
    sys.path.insert(0, str(ROOT))
    from pipelines.sample.api import DEFAULT_AS_OF
    from pipelines.sample.next_day import advance_one_day
    from pipelines.sample.population import build_population
    from pipelines.sample.writer import write_export

    folder.mkdir(parents=True, exist_ok=True)
    pop = build_population(n, 42, DEFAULT_AS_OF)
    yield write_export(pop, folder, DEFAULT_AS_OF)
    for i in range(1, k):
        day = DEFAULT_AS_OF + timedelta(days=i - 1)
        advance_one_day(pop, day, i)
        yield write_export(pop, folder, day + timedelta(days=1))


def store_dir(warehouse: Path) -> Path:
    """The pipeline's private store, as the pipeline resolves it: PIPELINE_STORE_DIR
    (relative paths from the project root), default `<WAREHOUSE_PATH's folder>/pipeline`."""
    configured = os.environ.get("PIPELINE_STORE_DIR")
    if not configured:
        return warehouse.parent / "pipeline"
    path = Path(configured).expanduser()
    return path if path.is_absolute() else (ROOT / path).resolve()


def tree_bytes(path: Path) -> int | None:
    """Apparent bytes of every file under path (symlinks not followed); None if absent."""
    if not path.exists():
        return None
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.lstat(os.path.join(folder, f)).st_size for f in files)
    return total


def published_bytes(warehouse: Path) -> int:
    """The analysts' file and its write-ahead log, if any."""
    wal = warehouse.with_name(warehouse.name + ".wal")
    return sum(p.stat().st_size for p in (warehouse, wal) if p.exists())


def raw_rows(database: Path) -> dict[str, int]:
    """Rows of every table in schema raw, read-only (the job has exited)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw' ORDER BY 1"
        ).fetchall()
        return {t: con.execute(f'SELECT count(*) FROM raw."{t}"').fetchone()[0] for (t,) in tables}
    finally:
        con.close()


def storage(env: dict[str, str]) -> dict:
    """Rows in raw and bytes of each store after a night."""
    warehouse = Path(env["WAREHOUSE_PATH"])
    store = store_dir(warehouse)
    raw_db = store / "store.duckdb" if (store / "store.duckdb").exists() else warehouse
    rows = raw_rows(raw_db)
    return {
        "raw_from": str(raw_db),
        "raw_rows": sum(rows.values()),
        "raw_rows_by_table": rows,
        "published_bytes": published_bytes(warehouse),
        "store_bytes": tree_bytes(store),
        "dagster_home_bytes": tree_bytes(Path(env["DAGSTER_HOME"])),
        "reports_bytes": tree_bytes(Path(env["REPORTS_DIR"])),
    }


def soak_env(out: Path) -> dict[str, str]:
    """The job's environment, as in the other modes, on the run's own folders.

    REPORTS_DIR too: the other modes leave it at data/reports, shared with `make run`,
    and K nights would write K dated report folders there."""
    home = out / "dagster_home"
    for folder in (home, out / "logs", out / "timings"):
        folder.mkdir(parents=True)
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return {
        **bench_env(),
        "CRM_EXPORTS_DIR": str(out / "exports"),
        "WAREHOUSE_PATH": str(out / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        "REPORTS_DIR": str(out / "reports"),
    }


def warm_page_cache(day: Path) -> float:
    """Read the day's files once before the job, outside its measured time; returns the
    seconds it took.

    A CRM writes its export shortly before the night, so the job usually reads it from the
    page cache. Measured without this (1M, 2026-11-30): a night whose 1.3 GB export had
    been read just before ingested in 27.6 s, one read cold from this disk in 39.5 s, with
    the same code path. Warming every night the same way keeps the nights comparable."""
    start = time.perf_counter()
    for path in sorted(day.iterdir()):
        if path.is_file():
            with open(path, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    return round(time.perf_counter() - start, 1)


def run_night(night: int, day: Path, env: dict[str, str], out: Path) -> dict:
    """Add the day's export (a folder of symlinks) and run the whole job once.

    Folders of earlier nights stay, as in a CRM's drop folder: they are symlinks (no
    disk), and ingest skips exports it already holds by their fingerprint."""
    _add_night(Path(env["CRM_EXPORTS_DIR"]), day, 0)
    warm_s = warm_page_cache(day)
    timings = out / "timings" / f"night_{night}.json"  # one per night: no stale file read
    log = out / "logs" / f"night_{night}.log"
    job = measure(
        [PYTHON, "-m", "pipelines.nightly"], {**env, "NIGHTLY_TIMINGS_JSON": str(timings)}, log
    )
    result = {"night": night, "export_date": day.name, "warm_s": warm_s, **job, "log": str(log)}
    if job["rc"] != 0 or not timings.exists():
        return result
    result["stages"] = stage_breakdown(json.loads(timings.read_text()), job["wall_s"])
    return {**result, **storage(env)}


def mib(value: int | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value / MIB:,.{digits}f}"


def night_line(r: dict) -> str:
    """One line per night: time, memory, stages, rows in raw, bytes of each store."""
    stages = " ".join(f"{k}={v:.1f}" for k, v in r["stages"].items())
    tables = " ".join(f"{t}={c:,}" for t, c in r["raw_rows_by_table"].items())
    return (
        f"night {r['night']} {r['export_date']}: wall_s={r['wall_s']:.1f} "
        f"peak_mib={r['peak_mib']} | {stages} | raw_rows={r['raw_rows']:,} ({tables}) | "
        f"published_mib={mib(r['published_bytes'])} store_mib={mib(r['store_bytes'])} "
        f"dagster_home_mib={mib(r['dagster_home_bytes'])} reports_mib={mib(r['reports_bytes'])} "
        f"export_mib={mib(r['export_bytes'])} "
        f"export_warm_s={r['warm_s']} "
        f"least_free_disk_gib={r['least_free_disk_mib'] / 1024:.1f}"
    )


def growth(nights: list[dict], key: str) -> float | None:
    """Mean bytes added per night over nights 2..K (a missing store counts as 0 bytes
    once it exists on some night; None if it never does)."""
    sizes = [r[key] for r in nights]
    if all(s is None for s in sizes) or len(sizes) < 2:
        return None
    sizes = [s or 0 for s in sizes]
    return (sizes[-1] - sizes[0]) / (len(sizes) - 1)


def summarise(n: int, nights: list[dict]) -> dict:
    """Last night's time against night 2's and the growth of each store per night.

    `store_mib_per_night` is the growth of the store that holds raw: the pipeline store
    when it exists, else the published file (where raw lives without one), so the number
    compares the code before and after the store split."""
    added = {k: growth(nights, f"{k}_bytes") for k in ("published", "store", "dagster_home")}
    has_store = nights[-1]["store_bytes"] is not None
    raw_growth = added["store"] if has_store else added["published"]
    night2, last = nights[1]["wall_s"], nights[-1]["wall_s"]
    return {
        "night2_s": night2,
        "last_s": last,
        "ratio": round(last / night2, 3),
        "added_bytes_per_night": added,
        "raw_store": "pipeline store" if has_store else "published file (no pipeline store)",
        "store_mib_per_night": round(raw_growth / MIB, 1),
        "published_mib": round(nights[-1]["published_bytes"] / MIB, 1),
        "line": (
            f"soak: customers={n} nights={len(nights)} night2_s={night2:.1f} "
            f"last_s={last:.1f} ratio={last / night2:.2f} "
            f"store_mib_per_night={raw_growth / MIB:.1f} "
            f"published_mib={nights[-1]['published_bytes'] / MIB:.1f}"
        ),
    }


def print_summary(summary: dict) -> None:
    added = summary["added_bytes_per_night"]
    print(
        f"time: night 2 {summary['night2_s']:.1f} s, last night {summary['last_s']:.1f} s, "
        f"last / night 2 = {summary['ratio']:.2f}"
    )
    print(
        "added per night (MiB, mean of nights 2..K): "
        + ", ".join(f"{k}={mib(v, 2)}" for k, v in added.items())
        + f"; raw is in the {summary['raw_store']}"
    )
    print(summary["line"], flush=True)


def append_record(record: dict) -> None:
    with open(BENCH / "out" / "results.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


def run_soak(n: int, k: int, stream: bool = False) -> int:
    """K nights on one fresh warehouse in bench/out/soak_<N>_<K>/; 1 if a night fails.

    With `stream`, each day's export is generated just before its night and removed, with
    its folder in the drop folder, after it (ingest has stored what it needs)."""
    out = BENCH / "out" / f"soak_{n}_{k}"
    shutil.rmtree(out, ignore_errors=True)
    if stream:
        days = streamed_series(n, k, out / "stream")
        print(f"series: generated day by day in {out / 'stream'} ({k} days)", flush=True)
    else:
        days = ensure_series(n, k)
        sizes = [tree_bytes(d) for d in days]
        print(
            f"series: {days[0].parent} ({k} days, {days[0].name}..{days[-1].name}; "
            f"export {mib(sizes[0], 0)} -> {mib(sizes[-1], 0)} MiB)",
            flush=True,
        )
    env = soak_env(out)
    record = {"mode": "soak", "customers": n, "nights_planned": k, "stream": stream}
    record["nights"] = nights = []
    for night, day in enumerate(days, start=1):
        record.setdefault("series", str(day.parent))
        export_bytes = tree_bytes(day)
        result = run_night(night, day, env, out)
        result["export_bytes"] = export_bytes
        if stream:
            shutil.rmtree(day)
            shutil.rmtree(Path(env["CRM_EXPORTS_DIR"]) / day.name)
        nights.append(result)
        if "stages" not in result:
            print(Path(result["log"]).read_text()[-5000:])
            print(f"night {night} failed (rc={result['rc']}), see {result['log']}", flush=True)
            record["failed_night"] = night
            break
        print(night_line(result), flush=True)
    record["at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if "failed_night" not in record:
        record["summary"] = summarise(n, nights)
        print_summary(record["summary"])
    append_record(record)
    return 1 if "failed_night" in record else 0
