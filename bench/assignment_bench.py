"""What routing a request through a rollout costs: ns per assignment and per state read.

Measures, interleaved round by round so every figure has a baseline taken under the
same load:

* ``baseline_blake2b``: one unkeyed 8-byte BLAKE2b of the key (the hash alone);
* ``variant``: :meth:`Assigner.variant` of a prebuilt key (keyed hash copy + compare);
* ``unit_key_and_variant``: building the key from a request's ids, then the variant;
* ``current``: :meth:`LocalRolloutStore.current` on an unchanged file (the hot path a
  worker runs per request; the file is looked at every 0.25 s at most).

Prints one JSON document: each figure's median over the rounds and every round.
Usage: ``python bench/assignment_bench.py [--rounds 9] [--calls 200000]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

from arrive.registry import LocalRegistry
from arrive.rollout.assignment import Assigner, unit_key
from arrive.rollout.control import Rollouts
from arrive.rollout.plan import RolloutPlan
from arrive.rollout.store import LocalRolloutStore
from arrive.testing.registry_contract import model_files, model_metadata
from arrive.testing.rollout_contract import no_check


def _ns_per_call(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - start) / calls


def _store(root: str) -> LocalRolloutStore:
    registry = LocalRegistry(root)
    for tag in "ab":
        registry.register(model_files(tag), model_metadata())
    registry.set_alias("production", "1", reason="bench")
    Rollouts(registry, verify=no_check).start("2", RolloutPlan(), actor="bench")
    return LocalRolloutStore(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    assigner = Assigner(bytes(range(16)))
    with tempfile.TemporaryDirectory() as root:
        store = _store(root)
        cases: dict[str, Callable[[], object]] = {
            "baseline_blake2b": lambda: hashlib.blake2b(b"customer:123456", digest_size=8).digest(),
            "variant": lambda: assigner.variant("customer:123456", 0.25),
            "unit_key_and_variant": lambda: assigner.variant(
                unit_key("customer", order_id="o-981", customer_id="123456"), 0.25
            ),
            "current": store.current,
        }
        runs: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, function in cases.items():
                runs[name].append(round(_ns_per_call(function, args.calls), 1))
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "calls_per_round": args.calls,
        "median_ns": {name: statistics.median(values) for name, values in runs.items()},
        "runs_ns": runs,
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
