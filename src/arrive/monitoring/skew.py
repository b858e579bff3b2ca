"""Training/serving skew in production: served features against the offline builder's.

For a sample of the answers the model gave (prediction-log rows with features), the
features are computed again offline, point-in-time at the request's time, from the event
log of a data directory (:func:`arrive.features.build_features`, the builder training
uses), and compared with the values served, feature by feature, within each feature's
declared tolerance: the comparison of the parity check
(:func:`arrive.features.online.parity.compare`), applied to what production served
instead of to a replay. A broken online feature shows up as the mismatch ratio of that
feature; an ingest pipeline running behind shows up in the trailing aggregates (the
offline builder sees every event before the request, the service only those applied).

For the monitor:

* :func:`skew_sample` — the mismatch ratio per feature over a seeded sample, exported as
  ``arrive_feature_skew_mismatch_ratio{feature}`` by
  :class:`arrive.monitoring.drift_metrics.DriftMetrics`.

An order is compared once (its first answer in the sample); orders whose creation is not in
the event log are not compared (``compared`` counts those that were).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from arrive import datadir
from arrive.datadir import local_timezone
from arrive.errors import DataError
from arrive.features import BuildContext, FeatureSet, build_features
from arrive.features.online.parity import FeatureParity, compare
from arrive.schema.events import ORDER_FIELDS
from arrive.schema.frame import created_orders

SCHEMA: Final = pl.Schema(
    {
        "feature": pl.String(),
        "compared": pl.Int64(),
        "mismatched": pl.Int64(),
        "mismatch_ratio": pl.Float64(),
        "example": pl.String(),
        "note": pl.String(),
    }
)
_decode: Final = msgspec.json.Decoder(dict[str, Any])


def skew_sample(
    log: pl.DataFrame,
    directory: Path,
    sample: int = 1000,
    seed: int = 0,
    *,
    timezone: str | None = None,
) -> pl.DataFrame:
    """The mismatch ratio of each served feature over ``sample`` answers of ``log``.

    Args:
        log: prediction-log rows (``order_id``, ``time``, ``features``); rows without
            features (heuristic answers) are left out.
        directory: a data directory whose event log covers the answers' orders.
        sample: most orders compared (a seeded uniform sample).
        seed: the sample's seed.
        timezone: the marketplace's zone (default: the directory's).

    Returns:
        One row per served feature (:data:`SCHEMA`), in the served order: orders
        ``compared``, ``mismatched``, ``mismatch_ratio`` (null when none was compared),
        one ``example`` mismatch (``order: served != offline``) and a ``note`` naming why a
        feature could not be recomputed from this data.

    Raises:
        InputFileError: ``directory`` has no event log.
        DataError: no answer in ``log`` carries features.
    """
    rows = _sampled(log, sample, seed)
    served = {
        row["order_id"]: _numbers_as_floats(_decode.decode(row["features"]))
        for row in rows.iter_rows(named=True)
    }
    names = list(dict.fromkeys(name for values in served.values() for name in values))
    events = datadir.scan_events(Path(directory))
    spine = _spine(rows, events, Path(directory))
    zone = timezone or local_timezone(Path(directory))
    known = {"order_id", "created_at", *ORDER_FIELDS}
    attributes = tuple(c for c in spine.columns if c not in known)
    offline = build_features(BuildContext(spine, events, zone, attributes))
    offline = offline.without(set(offline.names) - set(names), "not served")
    return _table(names, offline, compare(offline, served))


def _sampled(log: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """One row per order (its first answer with features), then a seeded sample of ``n``."""
    answered = (
        log.filter(pl.col("features").is_not_null())
        .sort("time", "order_id")
        .unique("order_id", keep="first", maintain_order=True)
    )
    if answered.is_empty():
        raise DataError("skew: no answer in the prediction log carries features")
    picked = sorted(random.Random(seed).sample(range(answered.height), min(n, answered.height)))
    return answered[picked]


def _numbers_as_floats(values: dict[str, Any]) -> dict[str, Any]:
    """JSON does not tell 3 from 3.0; the service serves every number as a float."""
    return {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in values.items()
    }


def _attributes(directory: Path, created: pl.DataFrame) -> pl.DataFrame | None:
    """``order_id`` and the attributes of the ``created`` events' orders: the orders
    table's attribute columns (what training featurised) when it has any, else the
    events' own; None when there are none."""
    if (directory / datadir.ORDERS_FILE).is_file():
        orders = datadir.read_orders(directory)
        extra = [c for c in orders.columns if c not in datadir.ORDER_COLUMNS]
        if extra:
            return orders.select("order_id", *extra)
    texts = created.get_column("attributes").fill_null("{}").to_list()
    found = pl.DataFrame([_decode.decode(text) for text in texts], infer_schema_length=None)
    return found.with_columns(created.get_column("order_id")) if found.width else None


def _spine(rows: pl.DataFrame, events: pl.LazyFrame, directory: Path) -> pl.DataFrame:
    """The sampled orders as created (fields from their ``order_created`` event, and their
    attributes), as of the time they were answered."""
    ids = rows.get_column("order_id").implode()
    created = (
        events.filter((pl.col("type") == "order_created") & pl.col("order_id").is_in(ids))
        .unique("order_id", keep="first")
        .collect()
    )
    orders = created_orders(created.lazy()).collect().drop("created_at")
    attributes = _attributes(directory, created)
    if attributes is not None:
        orders = orders.join(attributes, on="order_id", how="left")
    asked = rows.select("order_id", created_at=pl.col("time"))
    return asked.join(orders, on="order_id", how="inner").sort("created_at", "order_id")


def _table(names: list[str], offline: FeatureSet, results: list[FeatureParity]) -> pl.DataFrame:
    found = {r.name: r for r in results}
    out: list[tuple[str, int, int, float | None, str | None, str | None]] = []
    for name in names:
        result = found.get(name)
        if result is None:
            why = offline.left_out.get(name) or "not built from this data"
            out.append((name, 0, 0, None, None, why))
            continue
        ratio = result.mismatches / result.compared if result.compared else None
        example = result.examples[0] if result.examples else None
        out.append((name, result.compared, result.mismatches, ratio, example, None))
    return pl.DataFrame(out, schema=SCHEMA, orient="row")
