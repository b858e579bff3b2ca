"""The outcome join on a hand-made log and event stream: every figure worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from arrive.monitoring.join import CREATED, PREDICTIONS, JoinSettings, OutcomeJoin
from arrive.monitoring.monitor import Monitor, quality_files
from arrive.monitoring.quality import Band, aggregate

# order: (at_s, p50_s, p90_s, delivered after_s or None); A..I described in the test.
ANSWERS = {
    "A": (10, 1000, 1500),
    "B": (20, 900, 1800),
    "C": (30, 800, 1000),
    "E": (50, 1000, 2000),
    "F": (60, 1000, 2000),
    "H": (70, 1000, 2000),
}


def _log(kit: ModuleType, log_dir: Path) -> None:
    served = [kit.Served(order, *figures) for order, figures in ANSWERS.items()]
    served.append(kit.Served("D", 40, 700, 1400, None, "heuristic", "stale_features", None))
    kit.write_log(log_dir, served)
    kit.write_log(log_dir, [kit.Served("I", 80, 400, 600)], opened_s=60)


def _events(kit: ModuleType) -> list[object]:
    markets = {"A": "m1", "B": "m1", "C": "m2", "D": "m2", "I": "m2"}
    made = [kit.created(o, ANSWERS.get(o, (40,))[0], markets.get(o, "m1")) for o in "ABCDEFH"]
    return [
        *made,
        kit.created("I", 80, "m2"),
        kit.delivered("A", 10 + 1200),  # actual 1200: error 200, by the P90 only
        kit.delivered("B", 20 + 600),  # actual 600: error 300, by the P50
        kit.delivered("B", 20 + 610, "d-B-again"),  # a duplicate: ignored
        kit.delivered("C", 30 + 1100),  # actual 1100: error 300, late
        kit.delivered("D", 40 + 1000),  # the heuristic's answer: error 300
        kit.cancelled("E", 300),  # resolved, not measured
        kit.delivered("G", 100),  # no prediction: unknown order
        kit.delivered("H", 70 + 4000),  # after the one-hour horizon: too late
        kit.delivered("I", 80 + 500),  # actual 500: error 100
    ]  # F is never delivered: its prediction expires


def test_hand_made_log_and_events_give_the_figures_worked_out_by_hand(
    kit: ModuleType, make_monitor: Callable[..., Monitor], tmp_path: Path
) -> None:
    _log(kit, tmp_path / "log")
    monitor = make_monitor(kit.stream_of(_events(kit)), timezone="Europe/Berlin")
    kit.run_to_end(monitor)

    assert monitor.counts == {
        "outcome:joined": 5,
        "outcome:duplicate": 1,
        "outcome:cancelled": 1,
        "outcome:unknown_order": 1,
        "outcome:too_late": 1,
        "expired": 2,  # F, and H whose outcome came too late
        "joined:v1|production": 4,
        "joined:heuristic|heuristic": 1,
    }
    files = quality_files(tmp_path / "quality")
    assert len(files) == 1
    table = pl.read_parquet(files[0])
    assert table.get_column("window_start").unique().to_list() == [kit.T0]
    model = _row(table, "v1", "all")
    assert model["orders"] == 4
    assert model["p50_mae_s"] == pytest.approx((200 + 300 + 300 + 100) / 4)
    assert model["p50_coverage"] == pytest.approx(1 / 4)  # B
    assert model["p90_coverage"] == pytest.approx(3 / 4)  # all but C
    assert model["late_rate"] == pytest.approx(1 / 4)
    assert model["p90_width_s"] == pytest.approx((500 + 900 + 200 + 200) / 4)
    assert model["heuristic_mae_s"] is None  # no baseline given for the model's orders
    heuristic = _row(table, "heuristic", "all")
    assert (heuristic["orders"], heuristic["p50_mae_s"]) == (1, pytest.approx(300))
    assert (heuristic["heuristic_mae_s"], heuristic["heuristic_orders"]) == (300, 1)
    assert _row(table, "v1", "m1")["p50_mae_s"] == pytest.approx(250)  # A, B
    assert _row(table, "v1", "m2")["p50_mae_s"] == pytest.approx(200)  # C, I
    assert _row(table, "v1", "13")["orders"] == 4  # 12:00 UTC is 13 h in Berlin
    assert _row(table, "v1", "10-99")["orders"] == 4
    assert _row(table, "heuristic", "unknown")["segment_kind"] == "store_history"
    assert _row(table, "heuristic", "stale_features")["orders"] == 1
    assert _row(table, "v1", "none")["segment_kind"] == "fallback"
    assert set(table.get_column("segment_kind")) == {
        "all",
        "market",
        "local_hour",
        "store_category",
        "store_history",
        "fallback",
    }


def _row(table: pl.DataFrame, version: str, segment: str) -> dict[str, object]:
    rows = table.filter((pl.col("version") == version) & (pl.col("segment") == segment))
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def _predictions(kit: ModuleType, *answers: tuple[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            (
                f"r-{order}",
                order,
                kit.T0 + timedelta(seconds=at_s),
                "production",
                "v1",
                600.0,
                900.0,
                "none",
                "10-99",
                0.004,  # latency_s
                None,  # error
            )
            for order, at_s in answers
        ],
        schema=PREDICTIONS,
        orient="row",
    )


def _outcomes(kit: ModuleType, *outcomes: tuple[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [(order, "delivered", kit.T0 + timedelta(seconds=at_s)) for order, at_s in outcomes],
        schema={"order_id": pl.String, "kind": pl.String, "outcome_time": PREDICTIONS["time"]},
        orient="row",
    )


def test_an_outcome_before_its_prediction_is_held_until_the_horizon(kit: ModuleType) -> None:
    join = OutcomeJoin(JoinSettings(horizon_s=3600, window_s=300))
    join.add_outcomes(_outcomes(kit, ("early", 900), ("never", 900)), pl.DataFrame(schema=CREATED))
    join.saw_events_until(kit.T0 + timedelta(seconds=3000))
    join.add_predictions(_predictions(kit, ("early", 100)))  # the log file came late
    join.add_predictions(_predictions(kit, ("last", 10_000)))
    join.saw_events_until(kit.T0 + timedelta(seconds=10_000))
    closed = join.advance()
    assert closed.get_column("order_id").to_list() == ["early"]
    assert closed.get_column("outcome_time").to_list() == [kit.T0 + timedelta(seconds=900)]
    assert join.state.counts["outcome:joined"] == 1
    assert join.state.counts["outcome:unknown_order"] == 1  # "never" met no prediction


def test_the_join_does_not_depend_on_how_inputs_are_batched(kit: ModuleType) -> None:
    """One order at a time or all at once: the same rows close, the same counts."""
    answers = [(f"o{i}", 37.0 * i) for i in range(60)]
    outcomes = [(f"o{i}", 37.0 * i + 400 + 97 * (i % 50)) for i in range(0, 60, 2)]
    together = OutcomeJoin(JoinSettings(horizon_s=3000, window_s=300))
    together.add_predictions(_predictions(kit, *answers))
    together.add_outcomes(_outcomes(kit, *outcomes), pl.DataFrame(schema=CREATED))
    together.saw_events_until(kit.T0 + timedelta(days=1))
    together.state.predictions_seen = kit.T0 + timedelta(days=1)
    expected = together.advance().sort("order_id")

    alone = OutcomeJoin(JoinSettings(horizon_s=3000, window_s=300))
    parts = []
    for i, answer in enumerate(answers):
        alone.add_predictions(_predictions(kit, answer))
        alone.add_outcomes(
            _outcomes(kit, *outcomes[i // 2 : i // 2 + 1] if i % 2 else []),
            pl.DataFrame(schema=CREATED),
        )
        alone.saw_events_until(kit.T0 + timedelta(seconds=answer[1]))
        parts.append(alone.advance())
    alone.state.predictions_seen = alone.state.outcomes_seen = kit.T0 + timedelta(days=1)
    parts.append(alone.advance())
    assert pl.concat(parts).sort("order_id").equals(expected)
    assert alone.state.counts == together.state.counts
    within = sum(1 for i in range(0, 60, 2) if 400 + 97 * (i % 50) <= 3000)
    assert expected.height == within == 19  # the rest came after the horizon
    assert together.state.counts["outcome:too_late"] == 30 - within


def test_cancelled_orders_are_handed_out_with_their_outcome_and_quality_ignores_them(
    kit: ModuleType,
) -> None:
    join = OutcomeJoin(JoinSettings(horizon_s=3600, window_s=300))
    join.add_predictions(_predictions(kit, ("kept", 10), ("dropped", 20)))
    gone = pl.DataFrame(
        [("dropped", "cancelled", kit.T0 + timedelta(seconds=200))],
        schema={"order_id": pl.String, "kind": pl.String, "outcome_time": PREDICTIONS["time"]},
        orient="row",
    )
    join.add_outcomes(_outcomes(kit, ("kept", 700)), pl.DataFrame(schema=CREATED))
    join.add_outcomes(gone, pl.DataFrame(schema=CREATED))
    assert sorted(join.open_rows().get_column("outcome").to_list()) == ["cancelled", "delivered"]
    join.saw_events_until(kit.T0 + timedelta(seconds=5000))
    join.add_predictions(_predictions(kit, ("late", 5000)))
    closed = join.advance()
    assert dict(closed.select("order_id", "outcome").iter_rows()) == {
        "kept": "delivered",
        "dropped": "cancelled",
    }
    assert join.state.counts["joined:v1|production"] == 1  # deliveries only, as before
    table = aggregate(closed, 300, "UTC", Band())
    overall = table.filter(pl.col("segment_kind") == "all").row(0, named=True)
    assert overall["orders"] == 1
    assert overall["p50_mae_s"] == pytest.approx(90.0)  # "kept" only: |600 - (700 - 10)|
