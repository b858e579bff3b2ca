"""Feature drift: what the service serves, against the model's training profile.

The population stability index (PSI) of one feature compares the share of served values in
each bin of its reference profile (:mod:`arrive.models.profile`) with the training share:
``PSI = Σ (served − reference) · ln(served / reference)``, shares floored at
:data:`SHARE_FLOOR` so an empty bin costs a large but finite amount. Below 0.1 is usually
noise, 0.1–0.2 a shift worth a look, above 0.2 (the default threshold) drift.

A window with few orders has a noisy PSI (about ``(bins − 1) / orders`` with no drift at
all), so a feature is named drifted only with at least ``min_orders`` served values.

For the monitor (one call per window):

* :func:`psi_by_feature` — one version's served rows against its profile.
* :func:`drift_by_version` — every version in a window; a version without a profile (trained
  before profiles existed) gets one row saying ``no reference profile``.

Both take prediction-log rows (:mod:`arrive.monitoring.prediction_log`): the ``features``
column holds the JSON object the model was given; rows where it is null (heuristic answers
made without reading features) do not count. Exported as
``arrive_feature_psi{version,feature}`` and ``arrive_feature_drift{version,feature}`` by
:class:`arrive.monitoring.drift_metrics.DriftMetrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import ConfigError
from arrive.models.profile import Profile

THRESHOLD: Final = 0.2
MIN_ORDERS: Final = 500
SHARE_FLOOR: Final = 1e-4
LIMIT: Final = 100_000
_decoder: Final = msgspec.json.Decoder(dict[str, Any])
NO_PROFILE: Final = "no reference profile"
TOO_FEW: Final = "too few orders"
FEATURE_SCHEMA: Final = pl.Schema(
    {
        "feature": pl.String(),
        "kind": pl.String(),
        "orders": pl.Int64(),
        "psi": pl.Float64(),
        "drifted": pl.Boolean(),
        "note": pl.String(),
    }
)
VERSION_SCHEMA: Final = pl.Schema({"version": pl.String(), **FEATURE_SCHEMA})


def psi(reference: npt.ArrayLike, served: npt.ArrayLike) -> float:
    """The PSI of ``served`` bin counts (or shares) against ``reference`` shares."""
    expected = np.maximum(np.asarray(reference, dtype=np.float64), SHARE_FLOOR)
    counts = np.asarray(served, dtype=np.float64)
    actual = np.maximum(counts / max(counts.sum(), 1.0), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def served_features(
    log: pl.DataFrame, profile: Profile, *, limit: int | None = None, seed: int = 0
) -> pl.DataFrame:
    """One column per profiled feature, decoded from the log's ``features`` JSON (rows
    without features left out; at most ``limit`` of them, a seeded uniform sample):
    numeric as Float64, categorical as String."""
    texts = log.get_column("features").drop_nulls()
    if limit is not None and len(texts) > limit:
        texts = texts.sample(limit, seed=seed)
    schema = {
        name: pl.String() if p.kind == "categorical" else pl.Float64()
        for name, p in profile.features.items()
    }
    decode = _decoder.decode
    rows = [decode(text) for text in texts.to_list()]
    return pl.from_dicts(rows, schema=schema, strict=False) if schema else pl.DataFrame()


def psi_by_feature(
    reference: Profile,
    served: pl.DataFrame,
    *,
    threshold: float = THRESHOLD,
    min_orders: int = MIN_ORDERS,
    limit: int | None = LIMIT,
) -> pl.DataFrame:
    """PSI of each profiled feature over ``served`` (prediction-log rows of one version).

    ``limit``: the PSI is computed on at most this many rows (a seeded uniform sample; its
    sampling noise, about ``bins / limit``, is 1e-4 at the default), since decoding the
    logged JSON is the cost (see docs/benchmarks.md); None decodes every row.

    Returns:
        One row per feature (:data:`FEATURE_SCHEMA`): ``orders`` served with features,
        ``psi``, ``drifted`` (PSI above ``threshold`` with at least ``min_orders``), and
        ``note`` (``too few orders`` below ``min_orders``, else null); ``psi`` is null
        when no row has features.

    Raises:
        ConfigError: a negative ``threshold`` or ``min_orders``.
    """
    _check(threshold, min_orders)
    orders = served.height - served.get_column("features").null_count()
    frame = served_features(served, reference, limit=limit)
    enough = orders >= min_orders
    note = None if enough else TOO_FEW
    rows: list[tuple[str, str, int, float | None, bool, str | None]] = []
    for name, feature in reference.features.items():
        if not frame.height:  # nothing served: nothing measured
            rows.append((name, feature.kind, 0, None, False, note))
            continue
        value = psi(feature.shares, feature.counts(frame.get_column(name)))
        rows.append((name, feature.kind, orders, value, enough and value > threshold, note))
    return pl.DataFrame(rows, schema=FEATURE_SCHEMA, orient="row")


def drift_by_version(
    log: pl.DataFrame,
    profiles: Mapping[str, Profile | None],
    *,
    threshold: float = THRESHOLD,
    min_orders: int = MIN_ORDERS,
    limit: int | None = LIMIT,
) -> pl.DataFrame:
    """:func:`psi_by_feature` for every model version in ``log`` (one window of the
    prediction log), each against ``profiles[version]``.

    A version absent from ``profiles`` or mapped to None gets one row with a null feature
    and the note ``no reference profile``; heuristic-only rows (null ``model_version``)
    are left out.

    Returns:
        :data:`VERSION_SCHEMA` rows, by version then in each profile's feature order.
    """
    _check(threshold, min_orders)
    versions = log.get_column("model_version").drop_nulls().unique().sort().to_list()
    parts = []
    for version in versions:
        profile = profiles.get(version)
        if profile is None:
            row = {"version": version, "orders": 0, "drifted": False, "note": NO_PROFILE}
            parts.append(pl.DataFrame([row], schema=VERSION_SCHEMA))
            continue
        rows = log.filter(pl.col("model_version") == version)
        found = psi_by_feature(
            profile, rows, threshold=threshold, min_orders=min_orders, limit=limit
        )
        parts.append(found.select(pl.lit(version).alias("version"), pl.all()))
    if not parts:
        return pl.DataFrame(schema=VERSION_SCHEMA)
    return pl.concat(parts)


def _check(threshold: float, min_orders: int) -> None:
    if threshold < 0:
        raise ConfigError(f"threshold: must not be negative, got {threshold}")
    if min_orders < 0:
        raise ConfigError(f"min_orders: must not be negative, got {min_orders}")
