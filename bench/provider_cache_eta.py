"""The ETA model's P50 MAE with its travel-time input from the cached chain against the
uncached vendor (issue 22: "vendor calls saved ≥ 90 % with MAE unchanged within 0.5 %").

Usage: python bench/provider_cache_eta.py [--days 14] [--orders-per-day 3000]
    [--per-order 10] [--variants default "ttl=3600,grace=600,bucket=3600,cell=2000,rescale=1"]

One simulated marketplace (with provider history), every order asked ``--per-order`` times
through the traffic model of ``bench/providers_bench.py`` (browsing, checkout, tracking;
its simulated vendor, in process, on virtual time). An order's travel-time input
(``travel_time_provider_s``) is the answer its checkout request got: serving records each
answer it used, and the feature is the latest at or before the order's creation. Uncached,
that is the vendor's answer for the checkout itself; cached, what the chain with the
variant's cache answered it after the order's browsing requests.

Models follow ``bench/provider_accuracy.py``'s recipe (the pipeline's time split and
default fractions, no group selection, P90 calibrated). For each variant a model is trained
on the history recorded through that cache (its checkout answers as the feature, as
serving would have recorded them), and the test orders (the latest 15 %) are scored twice
by that same model: with the feature from the cached chain and from the uncached vendor.
A model trained on the uncached history is scored both ways too; and the two deployments
are compared (the cache-trained model served through the cache against the
uncached-trained model served uncached: two models, so training noise included).
Reported: P50 MAE both ways and the change in %, its standard error clustered by order
and, more conservatively, by the hour of creation (an hour's orders share cached
answers); the vendor requests saved; the travel-time MAE change (answer vs the simulated
truth) over every request and over the test orders' checkout requests.

Prints JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from provider_accuracy import PROVIDER
from providers_bench import change_se_pct, requests, run, variant

from arrive import datadir
from arrive.features.offline import FeatureSet
from arrive.ingest.simulator import SimulationConfig, simulate, write_simulation
from arrive.testing.vendor.market import SimulatedMarket
from arrive.training.dataset import load_training_set
from arrive.training.pipeline import TrainConfig, calibrate_model, fit_model, select_features
from arrive.training.split import make_split

TWO_KM = "ttl=3600,grace=600,bucket=3600,cell=2000,rescale=1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--orders-per-day", type=int, default=3000)
    parser.add_argument("--per-order", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=["default", TWO_KM])
    parser.add_argument("--seed", type=int, default=11, help="the simulation's seed")
    args = parser.parse_args()
    for spec in args.variants:
        variant(spec)  # a bad spec fails before the simulation
    config = SimulationConfig(
        seed=args.seed,
        days=args.days,
        orders_per_day=args.orders_per_day,
        provider_observations=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "market"
        simulation = simulate(config)
        with datadir.staged(directory) as stage:
            write_simulation(simulation, stage)
        market = SimulatedMarket(directory)
        ts = load_training_set(directory)
    orders = list(simulation.orders.iter_rows(named=True))
    print(json.dumps(_bench(market, ts, orders, args), indent=2))


def _bench(market: SimulatedMarket, ts: Any, orders: list[dict[str, Any]], args: Any) -> dict:
    train = TrainConfig(select_groups=False)
    split = make_split(ts.orders.get_column("created_at"), "time", fractions=train.fractions)
    features, _ = select_features(ts, split, train)
    assert PROVIDER in features.frame.columns, "the provider feature was not built"
    test = _TestOrders(features, orders, split, ts.target_s)
    asked = requests(orders, args.per_order)
    legs = [leg for leg, _ in asked]
    checkout = {o: i for i, (leg, o) in enumerate(asked) if leg.at == orders[o]["created_at"]}
    in_test = set(test.ids)
    test_checkouts = [i for o, i in checkout.items() if orders[o]["order_id"] in in_test]
    uncached = run(market, legs, None)
    recorded = _recorded(uncached["answers"], checkout, orders)
    plain = _fit(_with_travel(features, recorded), test.y, split, train)
    figures: dict[str, Any] = {}
    for spec in args.variants:
        cached = run(market, legs, spec)
        through = _recorded(cached["answers"], checkout, orders)
        model = _fit(_with_travel(features, through), test.y, split, train)
        figures[spec] = {
            "vendor_requests": cached["vendor_requests"],
            "saved_pct": round(100.0 * (1 - cached["vendor_requests"] / len(legs)), 2),
            **_travel_changes(cached, uncached, [o for _, o in asked], test_checkouts),
            "eta_p50_model_trained_through_this_cache": test.change(
                (model, through), (model, recorded)
            ),
            "eta_p50_model_trained_uncached": test.change((plain, through), (plain, recorded)),
            "eta_p50_each_trained_as_served": test.change((model, through), (plain, recorded)),
        }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} CPython {platform.python_version()}",
        "orders": len(orders),
        "test_orders": len(split.test),
        "requests": len(legs),
        "variants": figures,
    }


class _TestOrders:
    """The test period's orders: their targets, creation hours, and the P50 MAE change of a
    model when their travel-time input comes from the cache rather than the vendor."""

    def __init__(self, features: FeatureSet, orders: list[dict], split: Any, y: np.ndarray):
        self.features, self.split, self.y = features, split, y
        self.ids = features.frame.get_column("order_id").gather(split.test).to_list()
        created = {row["order_id"]: row["created_at"] for row in orders}
        self.hours = [int(created[i].timestamp() // 3600) for i in self.ids]

    def p50_errors(self, model: Any, by_order: dict[str, float]) -> list[float]:
        frame = _with_travel(self.features, by_order).frame.drop("order_id")[self.split.test]
        return [float(e) for e in np.abs(model.predict(frame)[:, 0] - self.y[self.split.test])]

    def change(self, cached: tuple[Any, dict], uncached: tuple[Any, dict]) -> dict:
        """P50 MAE of ``(model, feature by order)`` ``cached`` and ``uncached``, the change
        and its standard errors clustered by order and by creation hour."""
        errors_c, errors_u = self.p50_errors(*cached), self.p50_errors(*uncached)
        found = _change(errors_c, errors_u, list(range(len(errors_c))))
        found["change_se_by_hour_pct"] = round(change_se_pct(errors_c, errors_u, self.hours), 3)
        return found


def _travel_changes(
    cached: dict, uncached: dict, order: list[int], checkouts: list[int]
) -> dict[str, Any]:
    """Travel-time MAE change over every request (clustered by order) and over the
    ``checkouts`` requests (one an order)."""
    return {
        "travel_mae_all_requests": _change(cached["errors"], uncached["errors"], order),
        "travel_mae_test_checkouts": _change(
            [cached["errors"][i] for i in checkouts],
            [uncached["errors"][i] for i in checkouts],
            checkouts,
        ),
    }


def _recorded(answers: list[float], checkout: dict[int, int], orders: list[dict]) -> dict:
    """order_id → the travel time its checkout request was answered (what serving records)."""
    return {orders[o]["order_id"]: answers[i] for o, i in checkout.items()}


def _with_travel(features: FeatureSet, by_order: dict[str, float]) -> FeatureSet:
    """``features`` with the provider's travel time replaced by ``by_order``'s."""
    column = pl.col("order_id").replace_strict(by_order, return_dtype=pl.Float64)
    return dataclasses.replace(features, frame=features.frame.with_columns(column.alias(PROVIDER)))


def _fit(features: FeatureSet, y: np.ndarray, split: Any, config: TrainConfig) -> Any:
    model, backtest = fit_model(features, y, split, config)
    calibrate_model(model, features, y, split, backtest)
    return model


def _change(cached: list[float], uncached: list[float], clusters: list[int]) -> dict[str, float]:
    """MAE cached and uncached, the change in % and its standard error by ``clusters``."""
    mae_c, mae_u = statistics.fmean(cached), statistics.fmean(uncached)
    return {
        "mae_uncached_s": round(mae_u, 2),
        "mae_cached_s": round(mae_c, 2),
        "change_pct": round(100.0 * (mae_c / mae_u - 1), 3),
        "change_se_pct": round(change_se_pct(cached, uncached, clusters), 3),
    }


if __name__ == "__main__":
    main()
