"""Store load: orders open at the store at ``t`` and orders placed recently."""

from __future__ import annotations

import polars as pl

from arrive.features.load import load_offline, load_online, load_specs
from arrive.features.spec import BuildContext, FeatureSpec

name = "store_load"


def missing(ctx: BuildContext) -> str | None:
    return None if ctx.has_column("store_id") else "orders carry no store_id"


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    return load_specs("store")


ONLINE = load_online("store_id")


def offline(ctx: BuildContext) -> pl.DataFrame:
    return load_offline(ctx, "store_id")
