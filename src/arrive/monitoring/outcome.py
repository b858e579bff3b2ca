"""Joining the service's answers to delivery outcomes, and checking them against offline.

The service's answers of a live replay are joined to what really happened (the
order's delivery duration) by the monitor's own join (:mod:`arrive.monitoring.join`).
The same model is then evaluated offline on the same orders, from point-in-time
features built by the offline builder: when features, service and join agree end
to end, the two evaluations agree within 0.1 %.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive import datadir
from arrive.datadir import local_timezone, spine_of
from arrive.errors import DataError
from arrive.evaluation import EvalInput, Evaluation, evaluate
from arrive.features import BuildContext, build_features
from arrive.models.artifact import ModelBundle
from arrive.monitoring.join import CREATED, JoinSettings, OutcomeJoin
from arrive.monitoring.quality import QUALITY, Band, aggregate
from arrive.schema.eta import P50, P90, quantile_index

AGREEMENT_TOLERANCE: Final = 0.001
ANSWER_SCHEMA: Final = pl.Schema(
    {
        "order_id": pl.String(),
        "created_at": pl.Datetime("us", "UTC"),
        "p50_s": pl.Float64(),
        "p90_s": pl.Float64(),
        "fallback": pl.String(),
        "model_version": pl.String(),
        "latency_ms": pl.Float64(),
    }
)
LATENCY_PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)
DEMO_HORIZON_S: Final = 7 * 86400.0
"""The replay's horizon: a whole replayed log is at hand, so every delivery counts."""
DEMO_WINDOW_S: Final = 3600.0
"""The monitor join's window in the replay (the quality rows merge them: :func:`replay_quality`)."""
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Agreement:
    """Online against offline on the same orders.

    Attributes:
        orders: orders compared (answered online and delivered).
        online_mae_s, offline_mae_s: P50 MAE of each path.
        online_coverage, offline_coverage: share of orders delivered by the P90.
        max_p50_gap_s: the largest per-order difference of the P50s.
    """

    orders: int
    online_mae_s: float
    offline_mae_s: float
    online_coverage: float
    offline_coverage: float
    max_p50_gap_s: float

    @property
    def mae_gap(self) -> float:
        """Relative difference of the two MAEs (0.001 = 0.1 %)."""
        return abs(self.online_mae_s - self.offline_mae_s) / max(self.offline_mae_s, 1e-9)

    @property
    def coverage_gap(self) -> float:
        """Absolute difference of the two P90 coverages."""
        return abs(self.online_coverage - self.offline_coverage)

    @property
    def holds(self) -> bool:
        """Both gaps within :data:`AGREEMENT_TOLERANCE`."""
        return max(self.mae_gap, self.coverage_gap) <= AGREEMENT_TOLERANCE


@dataclass(frozen=True)
class LiveOutcome:
    """What a live replay measured.

    Attributes:
        answers: one row per answered order (:data:`ANSWER_SCHEMA` plus ``duration_s``,
            null when the order was not delivered).
        evaluation: the online answers against actual durations, heuristic beside.
        agreement: online against offline on the same delivered orders.
        latency_ms: request round-trip percentiles (keys ``p50``, ``p90``, ...).
        fallbacks: answers per fallback reason (``model`` when the model answered).
        quality: the monitor's quality rows (:data:`arrive.monitoring.quality.QUALITY`)
            of the whole replay as one window (see :func:`replay_quality`).
    """

    answers: pl.DataFrame
    evaluation: Evaluation
    agreement: Agreement
    latency_ms: dict[str, float]
    fallbacks: dict[str, int]
    quality: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUALITY))

    @property
    def fallback_rate(self) -> float:
        answered = len(self.answers)
        return 0.0 if answered == 0 else 1.0 - self.fallbacks.get("model", 0) / answered


def join_outcomes(
    answers: pl.DataFrame,
    data_dir: Path,
    bundle: ModelBundle,
    *,
    only_model: bool = False,
    exclude: Collection[str] = (),
) -> LiveOutcome:
    """Join ``answers`` (:data:`ANSWER_SCHEMA`) to ``data_dir``'s outcome events with the
    monitor's join (:class:`arrive.monitoring.join.OutcomeJoin`) and compare them with
    ``bundle``'s offline predictions for the same orders (with ``only_model``, the orders
    the model answered: a fault injected on purpose makes the heuristic answer others;
    orders in ``exclude``, answered while a fault broke the features on purpose, are not
    compared either).

    Raises:
        DataError: no answered order was delivered.
    """
    orders = datadir.read_orders(data_dir)
    events = datadir.scan_events(data_dir)
    zone = local_timezone(data_dir)
    joined = monitor_join(answers, events)
    spine = spine_of(orders, events).join(
        joined.select("order_id", "p50_s", "p90_s", "actual_s", "fallback"),
        on="order_id",
        how="inner",
        maintain_order="left",
    )
    if spine.is_empty():
        raise DataError("live replay: none of the answered orders was delivered")
    attributes = tuple(c for c in orders.columns if c not in datadir.ORDER_COLUMNS)
    context = BuildContext(
        spine.drop("p50_s", "p90_s", "actual_s", "fallback"), events, zone, attributes
    )
    offline = bundle.model.predict(build_features(context).frame.drop("order_id"))
    keyed = spine.with_columns(hour=pl.col("created_at").dt.convert_time_zone(zone).dt.hour())
    heuristic = bundle.heuristic.predict(keyed)
    y = spine.get_column("actual_s").to_numpy().astype(np.float64)
    served = spine.select("p50_s", "p90_s").to_numpy().astype(np.float64)
    evaluation = _evaluate(y, served, heuristic, bundle, keyed)
    outcomes = spine.select("order_id", pl.col("actual_s").alias("duration_s"))
    return LiveOutcome(
        answers=answers.join(outcomes, on="order_id", how="left", maintain_order="left"),
        evaluation=evaluation,
        agreement=_agreement(
            *_compared(y, served, _p50_p90(offline, bundle), spine, only_model, exclude)
        ),
        latency_ms=latency_percentiles(answers.get_column("latency_ms").to_numpy()),
        fallbacks=dict(Counter(f or "model" for f in answers.get_column("fallback").to_list())),
        quality=replay_quality(_with_heuristic(joined, spine, heuristic, bundle), zone),
    )


def _with_heuristic(
    joined: pl.DataFrame, spine: pl.DataFrame, heuristic: FloatArray, bundle: ModelBundle
) -> pl.DataFrame:
    """``joined`` with the heuristic's P50 of each delivered order (``heuristic_p50_s``):
    the quality rows then hold the heuristic's MAE on the model's own orders, as the
    monitor's do with ``--registry``."""
    column = quantile_index(tuple(bundle.heuristic.quantiles), P50, "the heuristic")
    p50 = pl.Series("heuristic_p50_s", np.asarray(heuristic, dtype=np.float64)[:, column])
    keyed = spine.select("order_id").with_columns(p50)
    return joined.join(keyed, on="order_id", how="left", maintain_order="left")


def replay_quality(joined: pl.DataFrame, timezone: str, band: Band | None = None) -> pl.DataFrame:
    """The monitor's quality rows (:func:`arrive.monitoring.quality.aggregate`, the code
    ``arrive monitor`` runs) of ``joined`` (:func:`monitor_join` rows), the whole replay
    taken as one window: its hourly windows hold too few orders per segment to be sure."""
    if joined.is_empty():
        return pl.DataFrame(schema=QUALITY)
    starts = joined.get_column("window_start")
    first = starts.min()
    span_us = starts.dt.epoch("us").max() - starts.dt.epoch("us").min()  # type: ignore[operator]
    span_s = float(span_us) / 1e6 + DEMO_WINDOW_S  # type: ignore[arg-type]
    whole = joined.with_columns(window_start=pl.lit(first, dtype=starts.dtype))
    return aggregate(whole, span_s, timezone, band or Band())


def monitor_join(answers: pl.DataFrame, events: pl.LazyFrame) -> pl.DataFrame:
    """``answers`` joined to the delivery events of ``events`` (a whole event log, so
    every window is closed at the end) by the monitor's join: one row per answered,
    delivered order (:data:`arrive.monitoring.join.CLOSED` plus ``actual_s``, the
    delivery time since the order's creation)."""
    join = OutcomeJoin(JoinSettings(horizon_s=DEMO_HORIZON_S, window_s=DEMO_WINDOW_S))
    kinds = pl.col("type").is_in(["delivered", "cancelled"])
    join.add_outcomes(
        events.filter(kinds)
        .select(
            "order_id", pl.col("type").alias("kind"), pl.col("event_time").alias("outcome_time")
        )
        .collect(),
        events.filter(pl.col("type") == "order_created")
        .select(
            "order_id",
            pl.col("event_time").alias("created_at"),
            *(pl.col(c).cast(pl.String) for c in CREATED.names()[2:]),
        )
        .collect(),
    )
    version = pl.col("model_version")
    join.add_predictions(
        answers.select(
            pl.col("order_id").alias("request_id"),
            "order_id",
            pl.col("created_at").alias("time"),
            pl.when(version.is_null())
            .then(pl.lit("heuristic"))
            .otherwise(pl.lit("production"))
            .alias("variant"),
            version.fill_null("heuristic").alias("version"),
            "p50_s",
            "p90_s",
            pl.col("fallback").fill_null("none"),
            pl.lit("unknown").alias("store_history"),
        )
    )
    state = join.state
    end = max(t for t in (state.predictions_seen, state.outcomes_seen) if t is not None)
    join.saw_events_until(end + join.settings.horizon + join.settings.window)
    state.predictions_seen = state.outcomes_seen
    created = pl.col("created_at").fill_null(pl.col("time"))
    return (
        join.advance()
        .filter(pl.col("outcome") == "delivered")
        .with_columns(actual_s=(pl.col("outcome_time") - created).dt.total_microseconds() / 1e6)
    )


def latency_percentiles(latency_ms: npt.ArrayLike) -> dict[str, float]:
    """Percentiles of round-trip times (``p50``, ``p90``, ``p99``, ``p99.9``)."""
    values = np.asarray(latency_ms, dtype=np.float64)
    if values.size == 0:
        return {}
    points = np.percentile(values, LATENCY_PERCENTILES)
    return {f"p{p:g}": float(v) for p, v in zip(LATENCY_PERCENTILES, points, strict=True)}


def _p50_p90(predictions: FloatArray, bundle: ModelBundle) -> FloatArray:
    index = [quantile_index(bundle.model.quantiles_, q, "the served model") for q in (P50, P90)]
    return predictions[:, index]


def _evaluate(
    y: FloatArray,
    served: FloatArray,
    heuristic: FloatArray,
    bundle: ModelBundle,
    spine: pl.DataFrame,
) -> Evaluation:
    """``spine`` carries the local ``hour`` of each order."""
    quantiles = tuple(bundle.heuristic.quantiles)
    columns = [quantile_index(quantiles, q, "the heuristic") for q in (P50, P90)]
    return evaluate(
        EvalInput(
            y_true_s=y,
            pred_s=served,
            heuristic_s=np.asarray(heuristic, dtype=np.float64)[:, columns],
            quantiles=(P50, P90),
            created_at=spine.get_column("created_at"),
            segments=_segments(spine),
        )
    )


def _segments(keyed: pl.DataFrame) -> dict[str, pl.Series]:
    """The training report's segments: local hour, and market and store category when known."""
    segments = {"local hour": keyed.get_column("hour").cast(pl.String).str.zfill(2)}
    for column, label in (("market_id", "market"), ("store_category", "store category")):
        if column in keyed.columns and keyed.get_column(column).null_count() < len(keyed):
            segments[label] = keyed.get_column(column)
    return segments


def _compared(
    y: FloatArray,
    online: FloatArray,
    offline: FloatArray,
    spine: pl.DataFrame,
    only_model: bool,
    exclude: Collection[str],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    if not only_model and not exclude:
        return y, online, offline
    kept = ~pl.col("order_id").is_in(list(exclude))
    if only_model:
        kept = kept & (pl.col("fallback") == "none")
    keep = spine.select(kept).to_series().to_numpy()
    return y[keep], online[keep], offline[keep]


def _agreement(y: FloatArray, online: FloatArray, offline: FloatArray) -> Agreement:
    return Agreement(
        orders=len(y),
        online_mae_s=float(np.mean(np.abs(online[:, 0] - y))),
        offline_mae_s=float(np.mean(np.abs(offline[:, 0] - y))),
        online_coverage=float(np.mean(y <= online[:, 1])),
        offline_coverage=float(np.mean(y <= offline[:, 1])),
        max_p50_gap_s=float(np.max(np.abs(online[:, 0] - offline[:, 0]))),
    )
