"""The status page's plots (inline SVG, drawn by :func:`arrive.charts.render`).

* :func:`coverage_svg` — the last window's P90 coverage per segment with its 95 %
  Wilson interval, against the calibration band.
* :func:`windows_svg` — P50 MAE (model and heuristic) and P90 coverage (with its
  interval, against the band) over the recent windows, per version and variant.

Both read :data:`arrive.monitoring.quality.QUALITY` rows; durations are drawn in minutes.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from arrive.charts import (
    FULL_WIDTH_IN,
    GRID,
    HEURISTIC_COLOR,
    INK,
    LATE_COLOR,
    MODEL_COLOR,
    legend_above,
    render,
)
from arrive.monitoring.quality import Band

_LINES: Final = (MODEL_COLOR, "#7c3aed", "#059669", "#db2777")
"""One colour per version × variant, in the order they are listed."""


def coverage_svg(key: str, rows: pl.DataFrame, band: Band) -> str:
    """P90 coverage of ``rows`` (one per segment, labelled ``label``) with its interval;
    drifted rows in red, the band shaded."""
    labels = rows.get_column("label").to_list()
    coverage = rows.get_column("p90_coverage").to_numpy()
    low = rows.get_column("p90_coverage_lower").to_numpy()
    high = rows.get_column("p90_coverage_upper").to_numpy()
    drift = rows.get_column("calibration_drift").to_numpy().astype(bool)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        y = np.arange(len(labels))[::-1]
        _band(ax, band, horizontal=False)
        for mask, color, name in (
            (~drift, MODEL_COLOR, "in band or unsure"),
            (drift, LATE_COLOR, "drift"),
        ):
            if mask.any():
                spread = np.vstack([coverage[mask] - low[mask], high[mask] - coverage[mask]])
                ax.errorbar(
                    coverage[mask],
                    y[mask],
                    xerr=spread,
                    fmt="o",
                    ms=4,
                    color=color,
                    ecolor=color,
                    elinewidth=1,
                    capsize=2,
                    label=name,
                )
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", length=0, labelcolor=INK)
        ax.grid(axis="y", visible=False)
        ax.set_xlim(max(0.0, min(0.7, float(low.min()) - 0.03)), 1.0)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlabel("P90 coverage, 95 % interval")
        legend_above(ax, ncols=3)

    size = (FULL_WIDTH_IN, 1.1 + 0.24 * max(len(labels), 2))
    return render(key, "P90 coverage by segment, last window", draw, size)


def windows_svg(key: str, history: pl.DataFrame, band: Band) -> str:
    """MAE and P90 coverage of segment ``all`` over the windows of ``history``."""
    series = history.sort("window_end").partition_by(
        "version", "variant", as_dict=True, maintain_order=True
    )

    def draw(fig: Figure) -> None:
        top, bottom = fig.subplots(2, 1, sharex=True)
        _band(bottom, band, horizontal=True)
        for index, ((version, variant), rows) in enumerate(sorted(series.items())):
            color = _LINES[index % len(_LINES)]
            ends = rows.get_column("window_end").to_numpy()
            name = f"{version} · {variant}"
            top.plot(
                ends,
                rows.get_column("p50_mae_s").to_numpy() / 60,
                color=color,
                marker="o",
                ms=2.5,
                lw=1.4,
                label=f"{name} P50 MAE",
            )
            heuristic = rows.get_column("heuristic_mae_s").cast(pl.Float64).to_numpy() / 60
            if version != "heuristic" and not np.isnan(heuristic).all():
                top.plot(
                    ends,
                    heuristic,
                    color=HEURISTIC_COLOR,
                    ls="--",
                    lw=1.2,
                    label=f"{name} heuristic",
                )
            bottom.fill_between(
                ends,
                rows.get_column("p90_coverage_lower").to_numpy(),
                rows.get_column("p90_coverage_upper").to_numpy(),
                color=color,
                alpha=0.15,
                lw=0,
            )
            bottom.plot(
                ends,
                rows.get_column("p90_coverage").to_numpy(),
                color=color,
                marker="o",
                ms=2.5,
                lw=1.4,
                label=name,
            )
        top.set_ylabel("minutes")
        top.set_ylim(bottom=0)
        legend_above(top, ncols=2)
        bottom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        bottom.set_ylabel("P90 coverage")
        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        bottom.set_xlabel("window end (UTC)")

    return render(key, "MAE and P90 coverage over windows", draw, (FULL_WIDTH_IN, 5.2))


def _band(ax: Axes, band: Band, *, horizontal: bool) -> None:
    low, high = band.target - band.tolerance, band.target + band.tolerance
    label = f"band {band.target:.0%} ± {band.tolerance * 100:g} pp"
    if horizontal:
        ax.axhspan(low, high, color=GRID, alpha=0.8, lw=0, label=label)
        ax.axhline(band.target, color=LATE_COLOR, ls="--", lw=0.9)
    else:
        ax.axvspan(low, high, color=GRID, alpha=0.8, lw=0, label=label)
        ax.axvline(band.target, color=LATE_COLOR, ls="--", lw=0.9)
