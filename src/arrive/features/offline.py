"""The offline feature builder: point-in-time-correct features for every order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from arrive.features.catalog import GROUPS, definitions_hash
from arrive.features.spec import BuildContext, FeatureSpec


@dataclass(frozen=True)
class FeatureSet:
    """Features of a spine of orders.

    Attributes:
        frame: ``order_id`` then one column per spec, in spine order.
        specs: the features built, in order.
        left_out: feature or group name → why it could not be built from this data.
        groups: group name → the names of its features that were built.
    """

    frame: pl.DataFrame
    specs: tuple[FeatureSpec, ...]
    left_out: dict[str, str] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def without(self, names: set[str], reason: str) -> FeatureSet:
        """The same set with ``names`` removed and recorded as left out for ``reason``."""
        kept = tuple(s for s in self.specs if s.name not in names)
        return FeatureSet(
            self.frame.drop(sorted(names & set(self.frame.columns))),
            kept,
            {**self.left_out, **dict.fromkeys(sorted(names), reason)},
            {g: tuple(n for n in ns if n not in names) for g, ns in self.groups.items()},
        )

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def categorical(self) -> list[str]:
        return [s.name for s in self.specs if s.kind == "categorical"]

    @property
    def definitions_hash(self) -> str:
        return definitions_hash(self.specs)


def build_features(ctx: BuildContext, client: Any = None) -> FeatureSet:
    """Every feature the data supports, for every order of ``ctx.orders``.

    Groups whose inputs are absent, and features with no value at all, are left
    out and reported in :attr:`FeatureSet.left_out` — never filled with zeros.
    With a Dask ``client`` the groups are computed in parallel on its cluster.
    """
    built: dict[str, tuple[FeatureSpec, ...]] = {}
    left_out: dict[str, str] = {}
    for group in GROUPS:
        reason = group.missing(ctx)
        if reason:
            left_out[f"{group.name} (group)"] = reason
        else:
            built[group.name] = group.specs(ctx)
    frame = ctx.orders.select("_row", "order_id")
    for name, block in zip(built, _compute(ctx, list(built), client), strict=True):
        frame = frame.join(
            block.select("_row", *(s.name for s in built[name])), on="_row", how="left"
        )
    empty = {n for n in frame.columns[2:] if frame.get_column(n).null_count() == len(frame)}
    left_out.update(dict.fromkeys(sorted(empty), "no value in this data"))
    groups = {g: tuple(s.name for s in specs if s.name not in empty) for g, specs in built.items()}
    kept = tuple(s for specs in built.values() for s in specs if s.name not in empty)
    frame = frame.sort("_row").select("order_id", *(s.name for s in kept))
    return FeatureSet(frame, kept, left_out, groups)


def compute_group(name: str, ctx: BuildContext) -> pl.DataFrame:
    """The offline block of the group called ``name`` (a unit of work for a cluster)."""
    return next(g for g in GROUPS if g.name == name).offline(ctx)


def _compute(ctx: BuildContext, names: list[str], client: Any) -> list[pl.DataFrame]:
    if client is None:  # one after the other: on threads, measured no faster (benchmarks.md)
        return [compute_group(name, ctx) for name in names]
    shared = client.scatter(ctx, broadcast=True)
    blocks: list[pl.DataFrame] = client.gather(client.map(compute_group, names, ctx=shared))
    return blocks
