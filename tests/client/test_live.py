"""The client against a real ``arrive serve``: typed answers equal the raw API's, a
real 422 names its field, and a bulk run survives the service's restart in its middle."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from arrive.client import EtaClient, RequestRejected, Retry
from arrive.client.bulk import BulkResult
from arrive.testing.servers.eta_service import ServeProcess, ServiceProbe, order_body, wait_for
from arrive.testing.trained import Trained

pytestmark = pytest.mark.slow

# patient enough for a restart on a loaded machine: the deadline bounds each batch
PATIENT = Retry(attempts=100_000, backoff_s=0.05, max_backoff_s=0.25, rng=random.Random(5))


@pytest.fixture(scope="module")
def service(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    from arrive.registry import LocalRegistry

    tmp = tmp_path_factory.mktemp("client-live")
    registry = LocalRegistry(tmp / "registry")
    registry.register(dict(trained.files), dict(trained.metadata))
    registry.set_alias("production", "1", reason="test")
    env = {
        "ARRIVE_REGISTRY_DIR": str(registry.root),
        "ARRIVE_COMPILE_BACKEND": "none",
        "ARRIVE_PREDICTION_LOG_DIR": str(tmp / "predictions"),
        "ARRIVE_RELOAD_INTERVAL_S": "0",
        "ARRIVE_LOG_LEVEL": "warning",
        "ARRIVE_MAX_BATCH": "64",
    }
    with ServeProcess(env, workers=1, log_path=tmp / "serve.log") as process:
        process.wait_ready()
        yield process


@pytest.fixture(scope="module")
def bodies(trained: Trained) -> list[dict[str, Any]]:
    table = trained.market.orders.sort("created_at")
    return [order_body(row) for row in table.iter_rows(named=True)]


def test_typed_answers_equal_the_raw_api(
    service: ServeProcess, bodies: list[dict[str, Any]]
) -> None:
    probe = ServiceProbe(service.url)
    with EtaClient(service.url) as client:
        one = client.predict(bodies[-1])
        many = client.predict_many(bodies[-150:])
        info = client.model_info()
        health = client.health()
    raw = probe.eta(bodies[-1])
    assert (one.p50_s, one.p90_s, one.fallback) == (raw["p50_s"], raw["p90_s"], raw["fallback"])
    assert [a.order_id for a in many] == [b["order_id"] for b in bodies[-150:]]
    assert many[-1].p50_s == one.p50_s
    assert (info.max_batch, info.model_version, health.model_version) == (64, "1", "1")


def test_a_real_422_names_the_field(service: ServeProcess, bodies: list[dict[str, Any]]) -> None:
    with EtaClient(service.url) as client, pytest.raises(RequestRejected) as caught:
        client.predict(bodies[0], request_id="not a valid id!")
    assert (caught.value.status, caught.value.field) == (422, "X-Request-ID")


def test_bulk_reports_bad_rows_and_keeps_input_order(
    service: ServeProcess, bodies: list[dict[str, Any]], tmp_path: Path
) -> None:
    rows = [dict(b) for b in bodies[:300]]
    rows[7]["pickup_lat"] = 123.0
    rows[200]["items"] = -2
    out = tmp_path / "etas.csv"
    with EtaClient(service.url) as client:
        result = client.bulk_predict(rows, processes=1, batch_size=50, out=out, progress=False)
    frame = pl.read_csv(out)
    assert frame["order_id"].to_list() == [r["order_id"] for r in rows]
    assert frame["row"].to_list() == list(range(300))
    bad = frame.filter(pl.col("status") != "ok")
    assert bad["row"].to_list() == [7, 200]
    assert bad["error"].str.starts_with("pickup_lat").to_list() == [True, False]
    assert result.failed == 2


def test_bulk_survives_a_restart_of_the_service(
    service: ServeProcess, bodies: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "etas.parquet"
    journal = out.with_name(out.name + ".partial.jsonl")
    results: list[BulkResult] = []
    with EtaClient(service.url, retry=PATIENT, deadline_s=300.0) as client:
        run = threading.Thread(
            target=lambda: results.append(
                client.bulk_predict(bodies, processes=2, batch_size=8, out=out, progress=False)
            )
        )
        run.start()
        try:
            wait_for(lambda: _journaled(journal) >= 80, 60, "80 rows scored")
            service.stop()
            assert 0 < _journaled(journal) < len(bodies)  # stopped in the middle
            service.start()
            service.wait_ready()
        finally:
            run.join(timeout=400)
    frame = pl.read_parquet(out)
    assert results, "the bulk run did not finish"
    failed = results[0].frame.filter(pl.col("status") != "ok")
    assert failed.is_empty(), failed["error"].to_list()[:3]
    assert frame["row"].to_list() == list(range(len(bodies)))
    assert frame["order_id"].to_list() == [b["order_id"] for b in bodies]
    assert frame["status"].unique().to_list() == ["ok"]
    assert not journal.exists()


def _journaled(path: Path) -> int:
    """Rows in a bulk run's journal (a line holds the columns of a task's rows)."""
    if not path.exists():
        return 0
    rows = 0
    for line in path.read_bytes().splitlines():
        try:
            rows += len(json.loads(line)["row"])
        except ValueError:
            continue  # being written
    return rows
