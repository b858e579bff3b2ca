"""Plots as inline SVG strings: the rendering and house style every HTML page of Arrive
shares (the training and live reports, the monitor's status page).

Matplotlib is used through :class:`matplotlib.figure.Figure` only (never ``pyplot``):
no window opens, no global figure registry fills up, and the SVG backend renders
without touching the process-wide backend choice. Styling is applied in an
``rc_context`` per plot, so callers' settings are left alone.

:func:`render` returns one ``<svg>`` element without XML prolog, metadata or
namespace URLs, with element ids prefixed by ``key`` so several plots can share one
HTML page; output is deterministic for the same input.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html import escape
from typing import Any, Final

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MODEL_COLOR: Final = "#2563eb"
HEURISTIC_COLOR: Final = "#f59e0b"
LATE_COLOR: Final = "#dc2626"
INK: Final = "#1f2937"
MUTED: Final = "#6b7280"
GRID: Final = "#e5e7eb"
# Widths match the reports' columns at 96 px per inch, so 9.5 pt text shows at about 12.7 px.
HALF_WIDTH_IN: Final = 5.5
FULL_WIDTH_IN: Final = 8.8
NARROW_WIDTH_IN: Final = 7.5
_STYLE: Final[dict[str, Any]] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "arrive-report",
    "font.family": "sans-serif",
    "font.size": 9.5,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": "#9ca3af",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "figure.facecolor": "white",
}
_PROLOG: Final = re.compile(r"\A.*?(?=<svg)", re.S)
_METADATA: Final = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_NAMESPACES: Final = re.compile(r'\s(?:xmlns(?::xlink)?|width|height)="[^"]*"')
_ID_REFS: Final = re.compile(r'(\bid="|url\(#|href="#)')

Draw = Callable[[Figure], None]
"""Draws a plot on an empty figure."""


def render(key: str, label: str, draw: Draw, size_in: tuple[float, float]) -> str:
    """``draw`` on a ``size_in`` inches figure in the house style, as an ``<svg>`` string
    with ids prefixed by ``key`` and ``label`` as its accessible name."""
    with _style():
        fig = Figure(figsize=size_in, layout="constrained")
        draw(fig)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _clean(buffer.getvalue(), key, label)


def legend_above(ax: Axes, ncols: int, **kwargs: Any) -> None:
    """The legend in a row above the axes, where it cannot hide data."""
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncols=ncols, borderaxespad=0, **kwargs)


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(_STYLE):
        yield


def _clean(svg: str, key: str, label: str) -> str:
    svg = _METADATA.sub("", _PROLOG.sub("", svg, count=1))
    head, _, body = svg.partition(">")
    head = _NAMESPACES.sub("", head) + f' role="img" aria-label="{escape(label, quote=True)}"'
    return _ID_REFS.sub(lambda m: f"{m.group(1)}{key}-", head + ">" + body)
