"""A daily retrain of a mid-size city, and the backfill of its 8 weeks, end to end.

Usage: python bench/retrain_city.py --work DIR [--days 56] [--orders-per-day 14286]
       [--skip-backfill] [--skip-retrain] [--gate better|non-regression] [--daily-only]
       [--daily-args "--final-fit evaluated --test-days 1"]

1. ``arrive simulate`` of ``--days`` days at ``--orders-per-day`` (default: 100k orders a
   week for 8 weeks) into ``WORK/city`` (kept and reused when already there);
2. the same data as an event archive (``WORK/archive``: the city's events written as
   archive parts, as ``arrive ingest --archive`` leaves them, one part per day) and the
   time to read it back as a data directory (:func:`arrive.ingest.archive.to_data_dir`);
3. the daily retrain: ``arrive retrain`` on all but the last day (yesterday's run, which
   makes the first production model), then, timed, ``arrive retrain`` on the archive (all
   days): validate, train on the 8-week window, compare with production, register, roll
   out; each a fresh process, so imports count (steps 2-3 skipped by ``--skip-retrain``).
   Before it, untimed, the archive without its last day is converted where the run keeps
   its data directory, as yesterday's run on the archive left it (the daily run converts
   the new day only).
   ``--gate non-regression`` lets a daily refresh no worse than production win, so its
   final fit is timed too; ``--daily-only`` restores the registry the last full run kept
   after yesterday's run and times the daily run alone;
4. ``arrive backfill`` of every day, single machine then ``--dask local``, both timed,
   and the two outputs compared value for value.

Prints JSON: seconds (wall, and CPU of the process and its children) of each step, the
load average before and after each, each retrain's outcome and the seconds of its steps
(``step_seconds`` of its ``outcome.json``), whether the backfills are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from arrive import datadir
from arrive.cli.retrain_cmd import ARCHIVE_DATA
from arrive.ingest.archive import EventArchive, to_data_dir
from arrive.ingest.source import Position
from arrive.training.backfill import read_backfill

ARRIVE = (sys.executable, "-m", "arrive.cli")
START = date(2025, 3, 3)


def _timed(args: list[str]) -> dict[str, Any]:
    before = os.getloadavg()
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run([*ARRIVE, *args], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise SystemExit(f"arrive {args[0]} failed: {done.stderr[-3000:]}")
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(_children_cpu() - cpu_before, 1),
        "load_before": [round(x, 1) for x in before],
        "load_after": [round(x, 1) for x in os.getloadavg()],
        "last_line": tail[0],
    }


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _with_steps(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` with the seconds of each retrain step, from its run's ``outcome.json``."""
    found = re.search(r"run (\S+)\)$", run["last_line"])
    outcome = Path(found.group(1)) / "outcome.json" if found else None
    if outcome is not None and outcome.is_file():
        run["step_seconds"] = json.loads(outcome.read_text()).get("step_seconds", {})
    return run


def _simulate(work: Path, days: int, per_day: int) -> Path:
    city = work / "city"
    if not (city / datadir.ORDERS_FILE).is_file():
        args = ["simulate", "--out", str(city), "--days", str(days)]
        _timed([*args, "--orders-per-day", str(per_day), "--force", "--quiet"])
    return city


def _archive(city: Path, root: Path) -> Path:
    """The city's events as an ingest archive: one part per day (positions = row numbers)."""
    if root.exists():
        shutil.rmtree(root)
    archive = EventArchive(root, timezone=datadir.local_timezone(city))
    offset = 0
    for path in sorted((city / datadir.EVENTS_DIR).glob("*/*.parquet")):
        frame = pl.read_parquet(path)
        archive.write_frame(
            frame, [Position("city", 0, offset), Position("city", 0, offset + frame.height - 1)]
        )
        offset += frame.height
    return root


def _yesterday(city: Path, out: Path) -> Path:
    """``city`` without its last (UTC) day of orders: the data of yesterday's run. (The
    event log's last day partition only holds the deliveries after midnight of the last
    orders: cutting it alone would leave production every order, and the daily run no
    order production has not seen to compare on.)"""
    orders = datadir.read_orders(city)
    last = orders.get_column("created_at").max()
    assert isinstance(last, datetime)
    cut = datetime.combine(last.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    orders = orders.filter(pl.col("created_at") < cut)
    days = sorted((city / datadir.EVENTS_DIR).glob("date=*"))
    with datadir.staged(out, force=True) as stage:
        for day in days:
            if day.name.removeprefix("date=") >= cut.date().isoformat():
                continue
            shutil.copytree(day, stage / datadir.EVENTS_DIR / day.name)
        datadir.write_orders(stage, orders)
        shutil.copy(city / datadir.SUMMARY_FILE, stage / datadir.SUMMARY_FILE)
    return out


def _converted_yesterday(archive: Path, copy: Path, out: Path) -> None:
    """The data directory yesterday's run on the archive left (untimed): the archive
    without its last day, converted where ``arrive retrain`` keeps it, so that the daily
    run converts only the day that is new, as it does day after day."""
    shutil.rmtree(copy, ignore_errors=True)
    days = sorted((archive / datadir.EVENTS_DIR).glob("date=*"))
    shutil.copytree(
        archive, copy, ignore=lambda d, _: [days[-1].name] if Path(d) == days[-1].parent else []
    )
    to_data_dir(copy, out)


def _retrain(
    work: Path, city: Path, archive: Path, gate: str, daily_only: bool, daily_args: list[str]
) -> dict[str, Any]:
    """Yesterday's run (kept as ``WORK/after-first``), then the daily run on the archive;
    with ``daily_only`` the kept state of yesterday's run is restored instead."""
    registry, runs, kept = work / "registry", work / "runs", work / "after-first"
    for folder in (registry, runs):
        shutil.rmtree(folder, ignore_errors=True)
    common = ["--registry", str(registry), "--runs", str(runs), "--quiet"]
    report: dict[str, Any] = {}
    if daily_only:
        shutil.copytree(kept / "registry", registry)
        shutil.copytree(kept / "runs", runs)
    else:
        yesterday = _yesterday(city, work / "yesterday")
        report["first_run_on_yesterday"] = _with_steps(_timed(["retrain", str(yesterday), *common]))
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(registry, kept / "registry")
        shutil.copytree(runs, kept / "runs")
    _converted_yesterday(archive, work / "archive-yesterday", runs / ARCHIVE_DATA)
    daily = ["retrain", str(archive), *common, "--gate", gate, *daily_args]
    report["daily_retrain_on_archive"] = _with_steps(_timed(daily))
    return report


def _backfill(work: Path, city: Path, days: int) -> dict[str, Any]:
    first, last = START, START + timedelta(days=days - 1)
    span = ["--from", str(first), "--to", str(last), "--quiet"]
    single_out, dask_out = work / "backfill-single", work / "backfill-dask"
    single = _timed(["backfill", str(city), *span, "--out", str(single_out)])
    local = _timed(["backfill", str(city), *span, "--out", str(dask_out), "--dask", "local"])
    a, b = read_backfill(single_out), read_backfill(dask_out)
    return {
        "single": single,
        "dask_local": local,
        "rows": a.height,
        "equal": a.equals(b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--orders-per-day", type=int, default=14_286)
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument(
        "--gate",
        choices=("better", "non-regression"),
        default="better",
        help="the daily run's --gate (non-regression: a refresh no worse than production "
        "wins, and its final fit is timed too)",
    )
    parser.add_argument(
        "--daily-only",
        action="store_true",
        help="restore the registry yesterday's run left (kept by an earlier full run) "
        "and time the daily run alone",
    )
    parser.add_argument(
        "--daily-args",
        default="",
        help="more options of the daily run, e.g. '--final-fit evaluated --test-days 1'",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count()}
    city = _simulate(args.work, args.days, args.orders_per_day)
    report["orders"] = datadir.read_orders(city).height
    if not args.skip_retrain:
        started = time.perf_counter()
        archive = _archive(city, args.work / "archive")
        report["archive_write_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        to_data_dir(archive, args.work / "archive-data")
        report["archive_to_data_dir_s"] = round(time.perf_counter() - started, 1)
        report["retrain"] = _retrain(
            args.work, city, archive, args.gate, args.daily_only, shlex.split(args.daily_args)
        )
    if not args.skip_backfill:
        report["backfill"] = _backfill(args.work, city, args.days)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
