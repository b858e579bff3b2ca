"""Objects a plain ``arrive serve`` (no provider) leaves to the garbage collector, per
/eta request, under load up to saturation; and its /eta p99 (issue 22: the plain
service's ~100 ms young-generation passes at 1,000 req/s).

Usage: python bench/serve_garbage.py [--rates 1000 3000] [--seconds 5]
[--p99-runs 0] [--baseline-src DIR] [--store redis] [--set ARRIVE_X=VALUE ...]

The services are ``providers_serve_bench``'s plain one (1 worker, LightGBM, the same
model and marketplace, no provider); with ``--store redis`` the features are read from a
redis-server of their own (a read can then pass the deadline, and requests wait for
slots and get shed, as they do not with the in-process store, which answers at once).
The open-loop generator of ``bench/serve_bench.py`` sends ``--rates``.

* **Garbage:** each service runs this script as its entry point (``--serve``): after
  start, the collector is off and keeps what it finds (``DEBUG_SAVEALL``); SIGUSR1 makes
  it collect, write the objects found by type (with the frames and exceptions among them)
  to a file, and free them. Per rate: a reset, a run, a count, divided by the requests
  sent; answers by fallback reason from ``/metrics``. What a collection finds is what
  only the collector frees: reference cycles.
* **p99** (``--p99-runs N``): services as they run normally; N runs at each rate,
  ``this`` and ``baseline`` alternating (another checkout's ``src``, e.g. ``git archive
  5cae7c4 src`` extracted in a scratch dir); medians.

Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).parent))

OUT_ENV = "SERVE_GARBAGE_OUT"


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        _serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--p99-runs", type=int, default=0)
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src folder")
    parser.add_argument("--store", choices=["memory", "redis"], default="memory")
    parser.add_argument("--set", nargs="*", default=[], help="ARRIVE_X=VALUE for the services")
    args = parser.parse_args()
    from providers_serve_bench import _model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, registry = _model(work)
        with _store(args.store, data) as env:
            extra = dict(setting.split("=", 1) for setting in args.set)
            _run(work, data, registry, {**env, **extra}, args)


class Setup(NamedTuple):
    """What every service of the run shares: the scratch dir, the marketplace, the
    registry, the request bodies and the store's settings."""

    work: Path
    data: Path
    registry: Path
    bodies: Path
    env: dict[str, str]


def _run(work: Path, data: Path, registry: Path, env: dict[str, str], args: Any) -> None:
    from serve_bench import _bodies

    setup = Setup(work, data, registry, _bodies(data, work)["single"], env)
    codes = {"this": None, "baseline": args.baseline_src}
    codes = {name: src for name, src in codes.items() if name == "this" or src}
    found: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": args.store,
        "garbage": {name: _garbage(setup, src, args) for name, src in codes.items()},
    }
    if args.p99_runs:
        found["p99"] = _p99(setup, codes, args)
    print(json.dumps(found, indent=2))


@contextlib.contextmanager
def _store(kind: str, data: Path) -> Iterator[dict[str, str]]:
    if kind == "memory":
        yield {}
        return
    from arrive.testing.servers.eta_service import fill_redis
    from arrive.testing.servers.redis_server import RedisServer

    with RedisServer() as redis:
        fill_redis(redis.url, data, timeout_s=600.0)
        yield {"ARRIVE_STORE_URL": redis.url, "ARRIVE_REPLAY_DIR": ""}


def _started(setup: Setup, src: Path | None, probe: bool) -> Any:
    from providers_serve_bench import _service

    env = dict(setup.env)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])
    if probe:
        env[OUT_ENV] = str(setup.work / f"garbage-{time.monotonic_ns()}.jsonl")
    wrap = [sys.executable, __file__, "--serve"] if probe else None
    return _service(setup.work, setup.data, setup.registry, None, wrap=wrap, **env)


def _garbage(setup: Setup, src: Path | None, args: Any) -> dict[str, Any]:
    from providers_serve_bench import _open_loop

    process = _started(setup, src, probe=True)
    out = Path(process.env[OUT_ENV])
    found: dict[str, Any] = {}
    try:
        _open_loop(process.url, setup.bodies, args.rates[0], 2)  # warm-up, not counted
        for rate in args.rates:
            _count(process, out)  # frees what the warm-up or the previous rate left
            before = _reasons(process.url)
            load = _open_loop(process.url, setup.bodies, rate, args.seconds)
            counted = _count(process, out)
            found[str(rate)] = {
                "load": load,
                "answers": _delta(_reasons(process.url), before),
                "objects_per_request": counted["objects"] / (rate * args.seconds),
                **counted,
            }
    finally:
        process.stop()
    return found


def _count(process: Any, out: Path) -> dict[str, Any]:
    lines = out.read_text().splitlines() if out.exists() else []
    process.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while len(out.read_text().splitlines() if out.exists() else []) == len(lines):
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not count its garbage within 60 s")
        time.sleep(0.05)
    return dict(json.loads(out.read_text().splitlines()[-1]))


def _reasons(url: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("arrive_predictions_total{"):
            reason = line.split('fallback="')[1].split('"')[0]
            found[reason] = found.get(reason, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def _p99(setup: Setup, codes: dict[str, Path | None], args: Any) -> dict[str, Any]:
    from providers_serve_bench import _open_loop

    served = {name: _started(setup, src, probe=False) for name, src in codes.items()}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {n: {} for n in served}
    try:
        for process in served.values():
            _open_loop(process.url, setup.bodies, args.rates[0], 3)  # warm-up
        for rate in args.rates:
            for _ in range(args.p99_runs):
                for name, process in served.items():
                    load = _open_loop(process.url, setup.bodies, rate, args.seconds)
                    runs[name].setdefault(str(rate), []).append(load)
    finally:
        for process in served.values():
            process.stop()
    medians = {
        name: {rate: statistics.median(r["p99_ms"] for r in found) for rate, found in by.items()}
        for name, by in runs.items()
    }
    return {"p99_median_ms": medians, "runs": runs}


# -- inside the service (``--serve``) -----------------------------------------------------


def _serve(argv: list[str]) -> None:
    """``arrive serve`` with the collector off after start and SIGUSR1 counting its garbage."""
    from arrive.serving.http import app

    settle = app._settle_heap

    def settle_and_keep() -> None:
        settle()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        signal.signal(signal.SIGUSR1, lambda *_: _write_garbage(Path(os.environ[OUT_ENV])))

    app._settle_heap = settle_and_keep  # type: ignore[assignment]
    from arrive.cli.main import main as arrive

    sys.argv = ["arrive", *argv]
    arrive()


def _write_garbage(out: Path) -> None:
    gc.collect()
    garbage = list(gc.garbage)
    frames = Counter(
        f"{Path(o.f_code.co_filename).name}:{o.f_code.co_name}:{o.f_lineno}"
        for o in garbage
        if type(o).__name__ == "frame"
    )
    found = {
        "objects": len(garbage),
        "by_type": dict(Counter(type(o).__name__ for o in garbage).most_common(12)),
        "frames": dict(frames.most_common(12)),
        "exceptions": dict(
            Counter(repr(o)[:70] for o in garbage if isinstance(o, BaseException)).most_common(6)
        ),
    }
    del garbage
    gc.set_debug(0)
    gc.garbage.clear()
    gc.collect()  # frees them now
    gc.set_debug(gc.DEBUG_SAVEALL)
    with out.open("a") as file:
        file.write(json.dumps(found) + "\n")


if __name__ == "__main__":
    main()
