"""Locust, headless and as a library (``locust.env.Environment``): a base rate, then a 10x step.

Run by ``tests/load/test_load_gate.py`` in a child process: importing locust patches the
standard library for gevent (``gevent.monkey``), which must not happen inside the test
process (its other tests run asyncio). Usage::

    python locust_driver.py URL BODIES_JSONL --users 20 --rate 5 --base-s 30 --spike-s 20 --step 10

Each user sends ``--rate`` ``/v1/eta`` requests per second (``constant_throughput``), so
the offered rate is ``users x rate``; the step multiplies the users. Prints one JSON object:
per phase, requests, failures (timeouts apart), p95/p99 latency (ms) and model answers/s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import gevent
from locust import FastHttpUser, constant_throughput, task
from locust.env import Environment

_MODEL = b'"fallback":null'
"""An answer given by the model (every other answer names its fallback reason)."""


class _Counts:
    model = 0
    timeouts = 0


def _user(bodies: list[bytes], rate: float, timeout_s: float) -> type[FastHttpUser]:
    cycle = itertools.cycle(bodies)

    class EtaUser(FastHttpUser):
        wait_time = constant_throughput(rate)
        network_timeout = timeout_s
        connection_timeout = timeout_s

        @task
        def eta(self) -> None:
            headers = {"Content-Type": "application/json"}
            with self.client.post(
                "/v1/eta", data=next(cycle), headers=headers, catch_response=True
            ) as answer:
                if answer.status_code == 200:
                    _Counts.model += _MODEL in (answer.content or b"").replace(b" ", b"")
                    answer.success()
                else:
                    _Counts.timeouts += "timeout" in repr(answer.error).lower()
                    answer.failure(f"status {answer.status_code}: {answer.error}")

    return EtaUser


def _phase(env: Environment, users: int, seconds: float) -> dict[str, Any]:
    assert env.runner is not None
    env.runner.start(users, spawn_rate=max(users, 1) * 10)
    gevent.sleep(1.0)  # the users have spawned and reached their pace
    env.stats.reset_all()
    _Counts.model = _Counts.timeouts = 0
    started = time.monotonic()
    gevent.sleep(seconds)
    total = env.stats.total
    elapsed = time.monotonic() - started
    return {
        "users": users,
        "seconds": elapsed,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "timeouts": _Counts.timeouts,
        "req_s": total.num_requests / elapsed,
        "model_s": _Counts.model / elapsed,
        "model_share": _Counts.model / max(total.num_requests, 1),
        "p50_ms": total.get_response_time_percentile(0.50),
        "p95_ms": total.get_response_time_percentile(0.95),
        "p99_ms": total.get_response_time_percentile(0.99),
        "max_ms": total.max_response_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("bodies", help="a file of /v1/eta bodies, one JSON object a line")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s of each user")
    parser.add_argument("--base-s", type=float, default=30.0)
    parser.add_argument("--spike-s", type=float, default=20.0)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    args = parser.parse_args()
    with open(args.bodies, "rb") as lines:
        bodies = [line.strip() for line in lines if line.strip()]
    env = Environment(user_classes=[_user(bodies, args.rate, args.timeout_s)], host=args.url)
    env.create_local_runner()
    out = {"base": _phase(env, args.users, args.base_s)}
    out["spike"] = _phase(env, args.users * args.step, args.spike_s)
    assert env.runner is not None
    env.runner.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
