"""``arrive score``: bad input named in one line; local scoring from a registry gives the
live service's answers for the same features; scoring through a service writes one row
per order with its status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from arrive.cli.main import run
from arrive.client import EtaClient
from arrive.testing.servers.eta_service import ServeProcess, order_body
from arrive.testing.trained import Trained


def test_a_file_without_order_id_names_the_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("store_id,items\ns1,3\n")
    code = run(["score", str(orders), "--out", str(tmp_path / "o.csv"), "--url", "http://x"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no column order_id" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args", [[], ["--url", "http://x", "--registry", "."]], ids=["neither", "both"]
)
def test_exactly_one_of_url_and_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code = run(["score", str(tmp_path), "--out", str(tmp_path / "o.csv"), *args])
    assert code == 2
    assert "--url, --registry: give exactly one" in capsys.readouterr().err


def test_registry_scoring_needs_a_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id\no1\n")
    code = run(
        ["score", str(orders), "--out", str(tmp_path / "o.csv"), "--registry", str(tmp_path)]
    )
    assert code == 2
    assert "is not a data directory" in capsys.readouterr().err


@pytest.mark.slow
def test_local_scoring_answers_as_the_live_service(
    tmp_path: Path, trained: Trained, local_registry: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = local_registry(1)
    cache = trained.compile_cache
    env = {
        "ARRIVE_REGISTRY_DIR": str(registry.root),
        "ARRIVE_REPLAY_DIR": str(trained.data_dir),
        "ARRIVE_COMPILE_BACKEND": "none",
        "ARRIVE_PREDICTION_LOG_DIR": str(tmp_path / "predictions"),
        "ARRIVE_RELOAD_INTERVAL_S": "0",
        "ARRIVE_LOG_LEVEL": "warning",
    }
    table = trained.market.orders.sort("created_at").tail(60)
    bodies = [order_body(row) for row in table.iter_rows(named=True)]
    bodies[3]["pickup_lat"] = 500.0  # a bad row, reported with its line
    with ServeProcess(env, log_path=tmp_path / "serve.log") as service:
        service.wait_ready()
        with EtaClient(service.url) as client:
            live = [client.predict(b) for i, b in enumerate(bodies) if i != 3]
        pl.DataFrame(bodies[:3] + bodies[4:]).drop("attributes", strict=False).write_csv(
            tmp_path / "orders.csv"
        )
        pl.DataFrame(bodies).drop("attributes", strict=False).write_csv(tmp_path / "bad.csv")
        by_url = run(
            [
                "score",
                str(tmp_path / "bad.csv"),
                "--out",
                str(tmp_path / "u.csv"),
                "--url",
                service.url,
                "--processes",
                "1",
                "--quiet",
            ]
        )
    assert by_url == 1
    assert "line 5: order" in capsys.readouterr().err
    served = pl.read_csv(tmp_path / "u.csv")
    assert served["status"].to_list() == ["ok"] * 3 + ["rejected"] + ["ok"] * 56

    # the same feature values (as the service logged them) → the same answers
    from arrive.monitoring.log_reader import published, read_log
    from arrive.serving.offline import load_model

    logged = pl.concat([read_log(p) for p in published(tmp_path / "predictions")])
    model = load_model(registry.root, "production", "none", cache)  # lleaves: bench
    by_id = {a.request_id: a for a in live}
    logged = logged.filter(pl.col("request_id").is_in(list(by_id)) & pl.col("fallback").is_null())
    assert len(logged) >= 50
    features = pl.DataFrame([_features(f) for f in logged["features"]], infer_schema_length=None)
    p50, p90 = model.predict(features, threads=2)
    expected = [by_id[r] for r in logged["request_id"]]
    np.testing.assert_allclose(p50, [a.p50_s for a in expected], rtol=1e-6)
    np.testing.assert_allclose(p90, [a.p90_s for a in expected], rtol=1e-6)

    # the whole path: offline features of the data directory, scored locally
    out = tmp_path / "local.parquet"
    code = run(
        [
            "score",
            str(trained.data_dir),
            "--out",
            str(out),
            "--registry",
            str(registry.root),
            "--compile-cache",
            str(cache),
            "--quiet",
        ]
    )
    assert code == 0
    local = pl.read_parquet(out)
    assert local["order_id"].n_unique() == len(local) == len(trained.market.orders)
    assert (local["p90_s"] >= local["p50_s"]).all()


def _features(text: str) -> dict[str, Any]:
    return dict(json.loads(text))
