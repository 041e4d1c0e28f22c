"""`make bench`: time the floor (bench/floor.py) and the full nightly job on one export.

    python bench/run.py [--customers N] [--skip-floor] [--nights K | --soak K]

1. Generates (once, cached in bench/cache/export_<N>/) an export of N customers with the
   project's sample generator.
2. Runs bench/floor.py on it, then `python -m pipelines.nightly` with CRM_EXPORTS_DIR on
   the cached export and WAREHOUSE_PATH / DAGSTER_HOME in a fresh bench/out/<N>/ (an empty
   warehouse), each as a whole process.  Wall time is the process's; peak memory is the
   largest sum of the resident set sizes of the process tree (sampled every 50 ms via
   /proc; dbt runs as a subprocess next to the Dagster process), and at least the kernel's
   ru_maxrss of the process and its children (os.wait4).
3. Prints the job's per-stage breakdown (from the Dagster run's event log, written by
   pipelines.nightly when NIGHTLY_TIMINGS_JSON is set), both silhouettes, and ends with
   `bench: customers=N job_s=... floor_s=... ratio=... peak_mib=...`.

With --nights K (NIGHTS=K make bench) the job then runs again on K-1 more nights, each
adding the same full export under the next date (raw keeps every export), and prints each
night's time: how the nightly cost grows with the exports stored.

With --soak K (SOAK=K make bench) it runs no floor: the job runs on K consecutive nights on
one warehouse, night i ingesting the generator's full export of day i (a growing customer
base), and prints each night's time, memory, rows in raw and bytes of each store; see
bench/soak.py.

Results of each invocation are appended to bench/out/results.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
PAGE = os.sysconf("SC_PAGE_SIZE")

# Step key prefix -> stage of the breakdown.
STAGES = (
    ("ingest", ("ingest_exports",)),
    ("validation", ("raw_", "marts_", "gx_")),
    ("dbt", ("dbt_customer_features",)),
    ("segmentation", ("customer_segmentation",)),
    ("roi", ("dbt_referral_roi",)),
    ("publish", ("published_warehouse", "warehouse__published")),
    ("report", ("reports__", "report")),
)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(pid: int) -> int:
    """Resident bytes of pid and all its descendants."""
    tree, todo, total = _children(), [pid], 0
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            pass
        todo.extend(tree.get(p, []))
    return total


def measure(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run cmd to completion; wall seconds, peak tree RSS and ru_maxrss (MiB), and the
    least free disk seen meanwhile on the file system of the run's log (MiB)."""
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = 0
        least_free = shutil.disk_usage(log.parent).free
        done = threading.Event()

        def sample():
            nonlocal peak, least_free
            while not done.is_set():
                peak = max(peak, tree_rss(proc.pid))
                least_free = min(least_free, shutil.disk_usage(log.parent).free)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss / 1024  # KiB on Linux
    return {
        "wall_s": round(wall, 2),
        "rc": proc.returncode,
        "peak_tree_mib": round(peak / 2**20),
        "maxrss_mib": round(maxrss),
        "peak_mib": round(max(peak / 2**20, maxrss)),
        "least_free_disk_mib": round(least_free / 2**20),
    }


def ensure_export(n: int) -> Path:
    root = BENCH / "cache" / f"export_{n}"
    if root.is_dir():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"generating an export of {n:,} customers in {root} ...", flush=True)
    t = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "pipelines.sample", "--customers", str(n), "--out", str(tmp)],
        cwd=ROOT,
        check=True,
    )
    tmp.rename(root)
    print(f"generated in {time.perf_counter() - t:.1f}s", flush=True)
    return root


def export_folder(root: Path) -> Path:
    return next(p for p in sorted(root.iterdir()) if p.is_dir() and p.name[:1].isdigit())


def _add_night(root: Path, folder: Path, night: int) -> None:
    """The export `folder` again, dated `night` days later, as a folder of symlinks."""
    day = dt.date.fromisoformat(folder.name) + dt.timedelta(days=night)
    target = root / day.isoformat()
    target.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        if path.is_file():
            (target / path.name).symlink_to(path)


def bench_env() -> dict[str, str]:
    """The environment of every measured process: no telemetry, unbuffered output (one
    definition, so the soak mode runs the job exactly as the other modes do)."""
    return {
        **os.environ,
        "GX_ANALYTICS_ENABLED": "false",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONUNBUFFERED": "1",
    }


def stage_breakdown(timings: dict, job_wall: float) -> dict[str, float]:
    stages = {name: 0.0 for name, _ in STAGES}
    for key, step in timings["steps"].items():
        for name, prefixes in STAGES:
            if key.startswith(prefixes):
                stages[name] += step.get("duration_s", 0.0)
                break
        else:
            stages.setdefault("other_steps", 0.0)
            stages["other_steps"] += step.get("duration_s", 0.0)
    stages["orchestration"] = job_wall - sum(stages.values())
    return {k: round(v, 2) for k, v in stages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=int(os.getenv("N", "1000000")))
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument(
        "--nights",
        type=int,
        default=int(os.getenv("NIGHTS", "1")),
        help="run the job on this many consecutive nights of the same full "
        "export (steady state: raw keeps every export)",
    )
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="K",
        help="soak mode (no floor): K >= 2 consecutive nights on one warehouse, night i "
        "ingesting the generated full export of day i (bench/soak.py)",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        default=bool(os.getenv("SOAK_STREAM")),
        help="with --soak: generate each day's export just before its night and remove it "
        "after (for sizes whose K exports do not fit the disk at once)",
    )
    args = parser.parse_args(argv)
    n = args.customers
    if args.soak:
        if args.soak < 2 or args.nights > 1:
            parser.error("--soak needs K >= 2 and cannot be combined with --nights")
        from soak import run_soak  # bench/soak.py: imports this module's helpers

        return run_soak(n, args.soak, stream=args.stream)

    root = ensure_export(n)
    folder = export_folder(root)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    print(f"export: {folder} ({size / 2**20:,.0f} MiB)", flush=True)

    out = BENCH / "out" / str(n)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    base_env = bench_env()

    floor = None
    if not args.skip_floor:
        floor = measure(
            [PYTHON, str(BENCH / "floor.py"), str(folder), str(out / "floor")],
            base_env,
            out / "floor.log",
        )
        if floor["rc"] != 0:
            print((out / "floor.log").read_text()[-3000:])
            raise SystemExit(f"floor failed (rc={floor['rc']}), see {out / 'floor.log'}")
        floor_out = json.loads((out / "floor.log").read_text().strip().splitlines()[-1])
        shutil.rmtree(out / "floor", ignore_errors=True)  # its DuckDB file: ~4 GB at 10M
        print(
            f"floor: {floor['wall_s']:.1f}s peak {floor['peak_mib']} MiB  "
            f"stages {floor_out['times']}",
            flush=True,
        )

    if args.nights > 1:  # the same export under consecutive dates, files symlinked
        root = out / "exports"
        _add_night(root, folder, 0)
    home = out / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    timings_path = out / "timings.json"
    job_env = {
        **base_env,
        "CRM_EXPORTS_DIR": str(root),
        "WAREHOUSE_PATH": str(out / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        "NIGHTLY_TIMINGS_JSON": str(timings_path),
    }
    job = measure([PYTHON, "-m", "pipelines.nightly"], job_env, out / "job.log")
    if job["rc"] != 0 or not timings_path.exists():
        print((out / "job.log").read_text()[-5000:])
        raise SystemExit(f"nightly job failed (rc={job['rc']}), see {out / 'job.log'}")
    timings = json.loads(timings_path.read_text())
    stages = stage_breakdown(timings, job["wall_s"])
    print(
        f"job:   {job['wall_s']:.1f}s peak {job['peak_mib']} MiB "
        f"(tree {job['peak_tree_mib']}, maxrss {job['maxrss_mib']})",
        flush=True,
    )
    print("job stages (s): " + "  ".join(f"{k}={v}" for k, v in stages.items()))
    slow = sorted(timings["steps"].items(), key=lambda kv: -kv[1].get("duration_s", 0))[:8]
    print("slowest steps: " + ", ".join(f"{k}={v.get('duration_s')}" for k, v in slow))
    seg = timings.get("segmentation", {})
    print(
        f"silhouette: job={seg.get('silhouette')} (k={seg.get('k')}, "
        f"n={seg.get('n_clustered')})  floor="
        f"{floor_out['silhouette'] if floor else None} (k=6)"
    )

    record = {
        "customers": n,
        "export_mib": round(size / 2**20),
        "job": job,
        "stages": stages,
        "floor": floor,
        "floor_stages": floor_out["times"] if floor else None,
        "silhouette_job": seg.get("silhouette"),
        "silhouette_floor": floor_out["silhouette"] if floor else None,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    nights = []
    for night in range(1, args.nights):
        _add_night(root, folder, night)
        again = measure([PYTHON, "-m", "pipelines.nightly"], job_env, out / f"job{night}.log")
        if again["rc"] != 0:
            raise SystemExit(f"night {night + 1} failed, see {out / f'job{night}.log'}")
        parts = stage_breakdown(json.loads(timings_path.read_text()), again["wall_s"])
        mib = round((out / "warehouse.duckdb").stat().st_size / 2**20)
        nights.append(
            {
                "night": night + 1,
                "job_s": again["wall_s"],
                "peak_mib": again["peak_mib"],
                "warehouse_mib": mib,
                "stages": parts,
            }
        )
        print(
            f"night {night + 1}: job_s={again['wall_s']:.1f} peak_mib={again['peak_mib']} "
            f"warehouse_mib={mib}  " + "  ".join(f"{k}={v}" for k, v in parts.items()),
            flush=True,
        )
    if nights:
        record["nights"] = nights
    with open(BENCH / "out" / "results.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    floor_s = floor["wall_s"] if floor else float("nan")
    print(
        f"bench: customers={n} job_s={job['wall_s']:.1f} floor_s={floor_s:.1f} "
        f"ratio={job['wall_s'] / floor_s:.2f} peak_mib={job['peak_mib']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
