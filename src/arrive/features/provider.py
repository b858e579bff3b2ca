"""The travel-time provider's answer for the order: the latest ``travel_time_observation``
recorded for the order at or before its creation (see docs/providers-training.md).

Serving asks the provider while answering ``/eta`` and records the answer with the time
asked, so training sees exactly what serving saw: an answer stamped at the order's own
creation instant counts (it is the request's own), a later one never does. Data without
provider history leaves the group out (``missing``), it is never filled with zeros.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from arrive.features.spec import BuildContext, FeatureSpec, Latest

name = "provider"

EVENT_TYPE = "travel_time_observation"
FEATURE = "travel_time_provider_s"
PROVIDER_TTL = timedelta(minutes=30)
SPECS = (
    FeatureSpec(
        FEATURE,
        "order",
        "numeric",
        PROVIDER_TTL.total_seconds(),
        "travel-time provider's store-to-drop time for the order, s",
    ),
)
LATEST = Latest(EVENT_TYPE, "order_id", {"travel_time_s": FEATURE}, PROVIDER_TTL, inclusive=True)
ONLINE = (LATEST,)


def missing(ctx: BuildContext) -> str | None:
    if not ctx.event_counts.get(EVENT_TYPE):
        return "the event log has no travel_time_observation events (no provider history)"
    return None


def specs(ctx: BuildContext) -> tuple[FeatureSpec, ...]:
    return SPECS


def offline(ctx: BuildContext) -> pl.DataFrame:
    return LATEST.offline(ctx)
