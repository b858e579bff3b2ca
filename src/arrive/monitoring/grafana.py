"""Grafana's dashboard JSON model, as much of it as Arrive's dashboard needs
(:mod:`arrive.monitoring.dashboard` says what to show).

A dashboard is rows of :class:`Panel`; :func:`panels` lays them out on Grafana's
24-column grid (ids from 1, each row's header then its panels left to right, wrapping),
and :func:`datasource_variable` / :func:`label_variable` are the template variables.
Every panel and query reads the data source chosen by the ``datasource`` variable.
No IO.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

SCHEMA_VERSION: Final = 39
"""Grafana 10's dashboard schema version."""
_WIDTH: Final = 24
_HEIGHT: Final = 8
_DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel and the legend of its series."""

    expr: str
    legend: str = ""
    table: bool = False  # an instant query shown as a table's rows


@dataclass(frozen=True)
class Panel:
    """One panel: ``kind`` is Grafana's panel type (timeseries, stat, table).

    ``steps`` are threshold steps ``(value, colour)`` above a ``base`` colour; on a time
    series they are drawn as dashed lines (and the band between them, with ``area``).
    """

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    steps: tuple[tuple[float, str], ...] = ()
    base: str = "green"
    area: bool = False
    width: int = 8


def panels(panel_rows: list[tuple[str, list[Panel]]]) -> Iterator[dict[str, Any]]:
    """The dashboard's panels, ids from 1: each row's header, then its panels left to right,
    wrapping at the dashboard's width."""
    ids, y = iter(range(1, 10_000)), 0
    for title, members in panel_rows:
        yield _row(next(ids), title, y)
        x, y = 0, y + 1
        for panel in members:
            if x + panel.width > _WIDTH:
                x, y = 0, y + _HEIGHT
            yield _panel(next(ids), panel, {"h": _HEIGHT, "w": panel.width, "x": x, "y": y})
            x += panel.width
        y += _HEIGHT


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    grid = {"h": 1, "w": _WIDTH, "x": 0, "y": y}
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": grid,
        "panels": [],
    }


def _panel(panel_id: int, panel: Panel, grid: dict[str, int]) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": _defaults(panel), "overrides": []},
        "options": _options(panel),
        "targets": [_target(query, chr(ord("A") + i)) for i, query in enumerate(panel.queries)],
    }


def _target(query: Query, ref: str) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": _DATASOURCE,
        "refId": ref,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.table,
        "instant": query.table,
    }
    if query.table:
        target["format"] = "table"
    return target


def _defaults(panel: Panel) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": panel.base, "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.steps]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    if panel.kind == "timeseries":
        style = "off" if not panel.steps else "line+area" if panel.area else "dashed"
        defaults["custom"] = {"thresholdsStyle": {"mode": style}, "fillOpacity": 0}
    return defaults


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "textMode": "value_and_name",
        }
    if panel.kind == "table":
        return {"showHeader": True}
    return {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}


def datasource_variable() -> dict[str, Any]:
    """The ``datasource`` variable: any Prometheus data source of the Grafana."""
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }


def label_variable(name: str, metric: str, start: str | None = None) -> dict[str, Any]:
    """A multi-valued variable over the values of label ``name`` of ``metric``, "All"
    meaning ``.*`` (use it as ``label=~"$name"``); it starts at ``start`` (None: All)."""
    query = f"label_values({metric}, {name})"
    text, value = ([start], [start]) if start is not None else (["All"], ["$__all"])
    return {
        "name": name,
        "label": name.replace("_", " "),
        "type": "query",
        "datasource": _DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": {"text": text, "value": value},
        "hide": 0,
    }


def to_json(document: dict[str, Any]) -> str:
    """``document`` as a file's text (two-space indent, a final newline)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def expressions(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression of ``document``'s panels, template variables left in."""
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]
