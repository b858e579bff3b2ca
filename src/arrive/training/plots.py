"""The evaluation report's plots, each rendered to an inline SVG string by
:func:`arrive.charts.render` (its house style, ids prefixed by ``key``).

Durations arrive in seconds and are drawn in minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from arrive.charts import (
    FULL_WIDTH_IN,
    HALF_WIDTH_IN,
    HEURISTIC_COLOR,
    LATE_COLOR,
    MODEL_COLOR,
    NARROW_WIDTH_IN,
)
from arrive.charts import GRID as _GRID
from arrive.charts import INK as _INK
from arrive.charts import MUTED as _MUTED
from arrive.charts import legend_above as _legend_above
from arrive.charts import render as _render
from arrive.evaluation import SegmentRow
from arrive.training.diagnostics import MIN_ORDERS, BandRow

__all__ = [
    "HEURISTIC_COLOR",
    "MODEL_COLOR",
    "band_svg",
    "bands_svg",
    "hourly_mae_svg",
    "importance_svg",
    "latency_svg",
    "loss_curves_svg",
    "reliability_svg",
    "residual_svg",
    "scatter_svg",
    "segment_mae_svg",
]

_PLAIN: Final = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 10 else f"{value:g}")


def reliability_svg(
    key: str, model: Mapping[float, float], heuristic: Mapping[float, float] | None = None
) -> str:
    """Observed coverage against nominal quantile, with the ideal diagonal.

    Args:
        key: a page-unique id prefix.
        model: the model's ``{nominal: observed}`` coverage.
        heuristic: the heuristic's, drawn for comparison when given.
    """

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], ls="--", color=_MUTED, lw=1, label="ideal")
        if heuristic:
            _reliability_line(ax, heuristic, HEURISTIC_COLOR, "heuristic", marker="s")
        _reliability_line(ax, model, MODEL_COLOR, "model", marker="o", annotate=True)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal quantile", ylabel="observed coverage")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_aspect("equal")
        ax.legend(loc="upper left")

    return _render(key, "Reliability: observed vs nominal coverage", draw, (HALF_WIDTH_IN, 5.0))


def hourly_mae_svg(key: str, rows: Sequence[SegmentRow], clock: str = "local") -> str:
    """MAE of P50 by hour of day for model and heuristic, over faint order-count bars.

    Lines break across hours without orders; the model's points carry their 95 %
    interval, and hours with fewer than :data:`MIN_ORDERS` orders are drawn hollow.
    ``clock`` names the hours' time zone on the axis (``"local"``, ``"UTC"``).
    """

    def draw(fig: Figure) -> None:
        hours = np.array([int(row.value) for row in rows])
        ax = fig.add_subplot()
        counts = ax.twinx()
        counts.bar(hours, [row.n for row in rows], color=_GRID, width=0.8)
        counts.set_ylabel("orders (grey bars)", color=_MUTED)
        counts.grid(False)
        ax.set_zorder(counts.get_zorder() + 1)
        ax.patch.set_visible(False)
        _hour_lines(ax, hours, rows)
        ax.set(xlim=(-0.7, 23.7), xticks=range(0, 24, 2), xlabel=f"hour of day ({clock})")

    return _render(key, "MAE by hour of day", draw, (HALF_WIDTH_IN, 4.6))


def segment_mae_svg(key: str, name: str, rows: Sequence[SegmentRow], limit: int) -> str:
    """Horizontal bars of MAE per segment value, model vs heuristic, the ``limit`` largest.

    Whiskers are the model's 95 % interval; values with fewer than :data:`MIN_ORDERS`
    orders are drawn pale and labelled as too few to read.

    Args:
        key: a page-unique id prefix.
        name: the segment's name, for the accessible label.
        rows: the segment's rows, largest ``n`` first (as :func:`evaluate` returns them).
        limit: how many values to draw; the title says when some are not drawn.
    """
    shown = list(rows[:limit])

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        y = np.arange(len(shown))[::-1]
        alpha = [0.3 if row.n < MIN_ORDERS else 1.0 for row in shown]
        for offset, color, label, side in (
            (0.2, HEURISTIC_COLOR, "heuristic", "heuristic"),
            (-0.2, MODEL_COLOR, "model (95 % interval)", "model"),
        ):
            values = [getattr(row, side).mae_s / 60 for row in shown]
            colors = [mpl.colors.to_rgba(color, a) for a in alpha]
            ax.barh(y + offset, values, height=0.38, color=colors, label=label)
        _whiskers(ax, y - 0.2, [row.model for row in shown], horizontal=True)
        ax.set_yticks(y, [_segment_label(row) for row in shown])
        ax.tick_params(axis="y", length=0, labelcolor=_INK)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("MAE of P50 (minutes)")
        _legend_above(ax, ncols=2, reverse=True)

    return _render(key, f"MAE by {name}", draw, (HALF_WIDTH_IN, 1.2 + 0.32 * max(len(shown), 2)))


def bands_svg(key: str, label: str, rows: Sequence[BandRow], x_label: str) -> str:
    """Two panels over groups of orders: MAE of P50 (bars, 95 % interval, bias as a
    diamond) and P90 coverage (points, Wilson interval, the 90 % target dashed).

    Groups with fewer than :data:`MIN_ORDERS` orders are drawn pale.
    """

    def draw(fig: Figure) -> None:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1.15, 1))
        x = np.arange(len(rows))
        colors = [_pale(MODEL_COLOR, row.small) for row in rows]
        top.bar(x, [r.mae_s / 60 for r in rows], color=colors, width=0.62, label="MAE of P50")
        _whiskers(top, x, rows, horizontal=False)
        top.scatter(
            x,
            [r.bias_s / 60 for r in rows],
            marker="D",
            s=16,
            color=_INK,
            zorder=3,
            label="bias (actual − P50)",
        )
        top.axhline(0, color="#9ca3af", lw=0.8)
        high = max(max(r.mae_high_s, r.bias_s) for r in rows) / 60
        low = min(min(r.bias_s for r in rows) / 60, 0.0)
        top.set_ylim(low * 1.15 - 0.05 * high, high * 1.08)
        top.set_ylabel("minutes")
        _legend_above(top, ncols=2)
        _coverage_points(bottom, x, rows)
        bottom.set_xticks(
            x,
            [f"{r.label}\nn={r.n:,}" for r in rows],
            fontsize=7.5,
            rotation=0 if len(rows) <= 8 else 35,
            ha="center" if len(rows) <= 8 else "right",
        )
        bottom.set_xlabel(x_label)

    return _render(key, label, draw, (HALF_WIDTH_IN, 5.0))


def scatter_svg(
    key: str, y_true_s: npt.NDArray[np.float64], p50_s: npt.NDArray[np.float64], limit: int = 1500
) -> str:
    """Predicted P50 against actual duration, with the ``y = x`` line (at most ``limit``
    points, evenly spaced in P50 order, so the page stays light)."""
    order = np.argsort(p50_s, kind="stable")
    if len(order) > limit:
        order = order[np.linspace(0, len(order) - 1, limit).round().astype(np.int64)]
    predicted, actual = p50_s[order] / 60, y_true_s[order] / 60

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        top = float(max(predicted.max(), actual.max(), 1.0)) * 1.04
        ax.plot([0, top], [0, top], ls="--", color=_MUTED, lw=1, label="y = x (perfect P50)")
        ax.scatter(predicted, actual, s=6, color=MODEL_COLOR, alpha=0.35, lw=0, label="order")
        ax.set(
            xlim=(0, top),
            ylim=(0, top),
            xlabel="predicted P50 (minutes)",
            ylabel="actual (minutes)",
        )
        ax.set_aspect("equal")
        _legend_above(ax, ncols=2, markerscale=2.5)

    return _render(key, "Predicted P50 against actual", draw, (HALF_WIDTH_IN, 5.0))


def residual_svg(
    key: str, y_true_s: npt.NDArray[np.float64], p50_s: npt.NDArray[np.float64]
) -> str:
    """Histogram of actual minus P50 in minutes, with zero and the mean (the bias) marked."""
    residual = (y_true_s - p50_s) / 60

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        low, high = np.percentile(residual, [0.5, 99.5])
        bins = np.linspace(min(low, -1.0), max(high, 1.0), 41)
        ax.hist(
            np.clip(residual, bins[0], bins[-1]), bins=bins.tolist(), color=MODEL_COLOR, alpha=0.75
        )
        ax.axvline(0, color=_MUTED, ls="--", lw=1, label="0 (P50 exact)")
        bias = float(residual.mean())
        ax.axvline(bias, color=_INK, lw=1.4, label=f"bias (mean) {bias:+.2f} min")
        ax.set(
            xlabel="actual − predicted P50 (minutes; > 0 is later than predicted)", ylabel="orders"
        )
        _legend_above(ax, ncols=2)

    return _render(key, "Residuals of P50", draw, (HALF_WIDTH_IN, 5.0))


def importance_svg(key: str, importance: Mapping[str, float], top: int = 20) -> str:
    """Horizontal bars of the ``top`` features by gain, as a share of the total gain."""
    ranked = sorted(importance.items(), key=lambda item: (-item[1], item[0]))[:top]
    total = sum(importance.values()) or 1.0

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        y = np.arange(len(ranked))[::-1]
        shares = [gain / total for _, gain in ranked]
        bars = ax.barh(y, shares, color=MODEL_COLOR, height=0.65)
        ax.bar_label(
            bars, [f"{share:.1%}" for share in shares], padding=3, color=_MUTED, fontsize=8
        )
        ax.set_xlim(right=max(shares, default=1.0) * 1.12)
        ax.set_yticks(y, [_short(name, 32) for name, _ in ranked])
        ax.tick_params(axis="y", length=0, labelcolor=_INK)
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("share of total gain")

    return _render(
        key, "Feature importance", draw, (NARROW_WIDTH_IN, 0.7 + 0.24 * max(len(ranked), 3))
    )


def loss_curves_svg(key: str, curves: Mapping[float, tuple[str, Sequence[float]]]) -> str:
    """One panel per quantile: its validation metric after each boosting round, with the
    best round (the one early stopping keeps) marked."""
    ordered = sorted(curves.items())

    def draw(fig: Figure) -> None:
        axes = fig.subplots(1, len(ordered), squeeze=False)[0]
        for ax, (quantile, (metric, values)) in zip(axes, ordered, strict=True):
            rounds = np.arange(1, len(values) + 1)
            best = int(np.argmin(values)) + 1
            ax.plot(rounds, values, color=MODEL_COLOR, lw=1.4)
            ax.axvline(best, color=_INK, ls="--", lw=1)
            ax.set_title(f"P{quantile * 100:g}: validation {metric}, best round {best:,}")
            ax.set_xlabel("boosting round")
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(_PLAIN)
            ax.yaxis.set_minor_formatter(NullFormatter())
        axes[0].set_ylabel("validation loss (log scale)")

    width = min(FULL_WIDTH_IN, HALF_WIDTH_IN * max(len(ordered), 1))
    return _render(key, "Validation loss by boosting round", draw, (width, 3.4))


def band_svg(
    key: str,
    y_true_s: npt.NDArray[np.float64],
    p50_s: npt.NDArray[np.float64],
    p90_s: npt.NDArray[np.float64],
    x_label: str,
) -> str:
    """The P50–P90 band and P50 line against actual durations, rows in the given order.

    Actuals above P90 (late against the promise) are drawn in red.
    """

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        x = np.arange(len(y_true_s))
        ax.fill_between(
            x,
            p50_s / 60,
            p90_s / 60,
            color=MODEL_COLOR,
            alpha=0.18,
            lw=0,
            label="P50–P90 band",
            step="mid",
        )
        ax.plot(x, p50_s / 60, color=MODEL_COLOR, lw=1.1, label="P50", drawstyle="steps-mid")
        late = y_true_s > p90_s
        ax.scatter(x[~late], y_true_s[~late] / 60, s=7, color=_INK, lw=0, label="actual")
        ax.scatter(
            x[late],
            y_true_s[late] / 60,
            s=9,
            color=LATE_COLOR,
            lw=0,
            label="actual above P90 (late)",
        )
        ax.set(xlim=(-0.5, max(len(x) - 0.5, 0.5)), xlabel=x_label, ylabel="minutes")
        ax.set_ylim(bottom=0)
        _legend_above(ax, ncols=4, markerscale=1.8)

    return _render(key, "P50 to P90 band against actuals", draw, (FULL_WIDTH_IN, 4.2))


def latency_svg(key: str, latency_ms: npt.NDArray[np.float64]) -> str:
    """Histogram of request round-trip times (log-spaced bins) with P50 and P99 marked."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        values = np.clip(latency_ms, 1e-3, None)
        bins = np.geomspace(values.min(), max(values.max(), values.min() * 1.01), 40)
        ax.hist(values, bins=bins.tolist(), color=MODEL_COLOR, alpha=0.75)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        for q, style in ((50, "-"), (99, "--")):
            point = float(np.percentile(values, q))
            ax.axvline(point, color=_INK, ls=style, lw=1, label=f"p{q} {point:.2f} ms")
        ax.set(xlabel="round trip (ms, log scale)", ylabel="requests")
        _legend_above(ax, ncols=2)

    return _render(key, "Latency of ETA requests", draw, (HALF_WIDTH_IN, 4.0))


def _reliability_line(
    ax: Axes,
    coverage: Mapping[float, float],
    color: str,
    label: str,
    *,
    marker: str,
    annotate: bool = False,
) -> None:
    nominal = sorted(coverage)
    observed = [coverage[q] for q in nominal]
    ax.plot(nominal, observed, marker=marker, color=color, lw=1.4, ms=5, label=label)
    if annotate:
        for q, obs in zip(nominal, observed, strict=True):
            ax.annotate(
                f"{obs:.1%}",
                (q, obs),
                textcoords="offset points",
                xytext=(6, -12),
                color=color,
                fontsize=8.5,
            )


def _hour_lines(ax: Axes, hours: npt.NDArray[np.int_], rows: Sequence[SegmentRow]) -> None:
    x = np.arange(24)
    for side, color, marker, label in (
        ("heuristic", HEURISTIC_COLOR, "s", "heuristic"),
        ("model", MODEL_COLOR, "o", "model (95 % interval)"),
    ):
        line = np.full(24, np.nan)
        line[hours] = [getattr(row, side).mae_s / 60 for row in rows]
        ax.plot(x, line, color=color, lw=1.7, label=label)
        for filled in (True, False):
            mask = np.array([(row.n >= MIN_ORDERS) == filled for row in rows], dtype=bool)
            ax.scatter(
                hours[mask],
                line[hours[mask]],
                marker=marker,
                s=18,
                zorder=3,
                color=color if filled else "white",
                edgecolors=color,
                linewidths=1.1,
            )
    _whiskers(ax, hours, [row.model for row in rows], horizontal=False)
    ax.set_ylabel("MAE of P50 (minutes)")
    ax.set_ylim(bottom=0)
    _legend_above(ax, ncols=2)


def _whiskers(ax: Axes, at: Any, rows: Sequence[Any], *, horizontal: bool) -> None:
    """95 % interval whiskers of the MAE of ``rows`` (objects with ``mae_s`` and bounds)."""
    mae = np.array([r.mae_s for r in rows]) / 60
    low = np.array([r.mae_low_s if hasattr(r, "mae_low_s") else r.mae_s for r in rows]) / 60
    high = np.array([r.mae_high_s if hasattr(r, "mae_high_s") else r.mae_s for r in rows]) / 60
    spread = np.vstack([np.clip(mae - low, 0, None), np.clip(high - mae, 0, None)])
    kwargs: dict[str, Any] = {"fmt": "none", "ecolor": _INK, "elinewidth": 0.9, "capsize": 2}
    if horizontal:
        ax.errorbar(mae, at, xerr=spread, **kwargs)
    else:
        ax.errorbar(at, mae, yerr=spread, **kwargs)


def _coverage_points(ax: Axes, x: npt.NDArray[np.int_], rows: Sequence[BandRow]) -> None:
    coverage = np.array([r.coverage_p90 for r in rows])
    low = np.array([r.coverage_low for r in rows])
    high = np.array([r.coverage_high for r in rows])
    spread = np.clip(np.vstack([coverage - low, high - coverage]), 0, None)
    ax.axhline(0.9, color=LATE_COLOR, ls="--", lw=1)
    for small in (False, True):
        mask = np.array([r.small == small for r in rows], dtype=bool)
        if mask.any():
            ax.errorbar(
                x[mask],
                coverage[mask],
                yerr=spread[:, mask],
                fmt="o",
                ms=4,
                color=_pale(MODEL_COLOR, small),
                ecolor=_pale(_INK, small),
                elinewidth=0.9,
                capsize=2,
            )
    ax.set_ylim(max(0.0, min(0.7, float(low.min()) - 0.03)), 1.01)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("P90 coverage")


def _pale(color: str, small: bool) -> tuple[float, float, float, float]:
    return mpl.colors.to_rgba(color, 0.3 if small else 1.0)


def _segment_label(row: SegmentRow) -> str:
    suffix = ", too few" if row.n < MIN_ORDERS else ""
    return f"{_short(row.value)}  (n={row.n:,}{suffix})"


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
