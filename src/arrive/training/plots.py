"""The evaluation report's plots, each rendered to an inline SVG string.

Matplotlib is used through :class:`matplotlib.figure.Figure` only (never
``pyplot``): no window opens, no global figure registry fills up, and the SVG
backend renders without touching the process-wide backend choice. Styling is
applied in an ``rc_context`` per plot, so callers' settings are left alone.
Durations arrive in seconds and are drawn in minutes.

Every function returns one ``<svg>`` element without XML prolog, metadata or
namespace URLs, with element ids prefixed by ``key`` so several plots can share
one HTML page; output is deterministic for the same input.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from html import escape
from typing import Any, Final

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from arrive.training.evaluate import SegmentRow

__all__ = [
    "HEURISTIC_COLOR",
    "MODEL_COLOR",
    "band_svg",
    "hourly_mae_svg",
    "importance_svg",
    "latency_svg",
    "reliability_svg",
    "segment_mae_svg",
]

MODEL_COLOR: Final = "#2563eb"
HEURISTIC_COLOR: Final = "#f59e0b"
LATE_COLOR: Final = "#dc2626"
_INK: Final = "#1f2937"
_MUTED: Final = "#6b7280"
_GRID: Final = "#e5e7eb"
# Widths match the report's columns at 96 px per inch, so 9.5 pt text shows at about 12.7 px.
HALF_WIDTH_IN: Final = 5.5
FULL_WIDTH_IN: Final = 11.2
NARROW_WIDTH_IN: Final = 7.5
_STYLE: Final[dict[str, Any]] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "arrive-report",
    "font.family": "sans-serif",
    "font.size": 9.5,
    "text.color": _INK,
    "axes.labelcolor": _INK,
    "axes.edgecolor": "#9ca3af",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "grid.color": _GRID,
    "grid.linewidth": 0.8,
    "xtick.color": _MUTED,
    "ytick.color": _MUTED,
    "legend.frameon": False,
    "figure.facecolor": "white",
}
_PROLOG: Final = re.compile(r"\A.*?(?=<svg)", re.S)
_METADATA: Final = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_NAMESPACES: Final = re.compile(r'\s(?:xmlns(?::xlink)?|width|height)="[^"]*"')
_ID_REFS: Final = re.compile(r'(\bid="|url\(#|href="#)')

Draw = Callable[[Figure], None]


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


def hourly_mae_svg(key: str, rows: Sequence[SegmentRow]) -> str:
    """MAE of P50 by hour of day (UTC) for model and heuristic, over faint order-count bars."""

    def draw(fig: Figure) -> None:
        hours = np.array([int(row.value) for row in rows])
        ax = fig.add_subplot()
        counts = ax.twinx()
        counts.bar(hours, [row.n for row in rows], color=_GRID, width=0.8)
        counts.set_ylabel("orders (bars)", color=_MUTED)
        counts.grid(False)
        ax.set_zorder(counts.get_zorder() + 1)
        ax.patch.set_visible(False)
        _hour_lines(ax, hours, rows)
        ax.set(xlim=(-0.7, 23.7), xticks=range(0, 24, 2), xlabel="hour of day (UTC)")

    return _render(key, "MAE by hour of day", draw, (HALF_WIDTH_IN, 5.0))


def segment_mae_svg(key: str, name: str, rows: Sequence[SegmentRow], limit: int) -> str:
    """Horizontal bars of MAE per segment value, model vs heuristic, the ``limit`` largest.

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
        model = [row.model.mae_s / 60 for row in shown]
        heuristic = [row.heuristic.mae_s / 60 for row in shown]
        ax.barh(y + 0.2, heuristic, height=0.38, color=HEURISTIC_COLOR, label="heuristic")
        ax.barh(y - 0.2, model, height=0.38, color=MODEL_COLOR, label="model")
        ax.set_yticks(y, [f"{_short(row.value)}  (n={row.n:,})" for row in shown])
        ax.tick_params(axis="y", length=0, labelcolor=_INK)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("MAE of P50 (minutes)")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, reverse=True)

    return _render(key, f"MAE by {name}", draw, (HALF_WIDTH_IN, 1.1 + 0.3 * max(len(shown), 2)))


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
        ax.legend(loc="upper left", ncols=4, markerscale=1.8)

    return _render(key, "P50 to P90 band against actuals", draw, (FULL_WIDTH_IN, 4.2))


def latency_svg(key: str, latency_ms: npt.NDArray[np.float64]) -> str:
    """Histogram of request round-trip times (log-spaced bins) with P50 and P99 marked."""

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        values = np.clip(latency_ms, 1e-3, None)
        bins = np.geomspace(values.min(), max(values.max(), values.min() * 1.01), 40)
        ax.hist(values, bins=bins.tolist(), color=MODEL_COLOR, alpha=0.75)
        ax.set_xscale("log")
        for q, style in ((50, "-"), (99, "--")):
            point = float(np.percentile(values, q))
            ax.axvline(point, color=_INK, ls=style, lw=1, label=f"p{q} {point:.2f} ms")
        ax.set(xlabel="round trip (ms, log scale)", ylabel="requests")
        ax.legend(loc="upper right")

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
    ax.plot(
        hours,
        [row.heuristic.mae_s / 60 for row in rows],
        marker="s",
        ms=4,
        color=HEURISTIC_COLOR,
        lw=1.6,
        label="heuristic",
    )
    ax.plot(
        hours,
        [row.model.mae_s / 60 for row in rows],
        marker="o",
        ms=4,
        color=MODEL_COLOR,
        lw=1.8,
        label="model",
    )
    ax.set_ylabel("MAE of P50 (minutes)")
    ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.2)
    ax.legend(loc="upper left", ncols=2)


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _render(key: str, label: str, draw: Draw, size_in: tuple[float, float]) -> str:
    with _style():
        fig = Figure(figsize=size_in, layout="constrained")
        draw(fig)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _clean(buffer.getvalue(), key, label)


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(_STYLE):
        yield


def _clean(svg: str, key: str, label: str) -> str:
    svg = _METADATA.sub("", _PROLOG.sub("", svg, count=1))
    head, _, body = svg.partition(">")
    head = _NAMESPACES.sub("", head) + f' role="img" aria-label="{escape(label, quote=True)}"'
    return _ID_REFS.sub(lambda m: f"{m.group(1)}{key}-", head + ">" + body)
