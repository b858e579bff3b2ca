"""Geographic helpers: great-circle distance, vectorised for NumPy and Polars."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import polars as pl

EARTH_RADIUS_KM = 6371.0088


def haversine_km(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Great-circle distance in kilometres between points given in decimal degrees."""
    p1, l1, p2, l2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    result: npt.NDArray[np.float64] = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return result


def haversine_km_expr(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """The same distance as a Polars expression (null where any input is null)."""
    p1, l1, p2, l2 = (e.radians() for e in (lat1, lon1, lat2, lon2))
    a = ((p2 - p1) / 2).sin() ** 2 + p1.cos() * p2.cos() * ((l2 - l1) / 2).sin() ** 2
    return 2 * EARTH_RADIUS_KM * a.clip(0, 1).sqrt().arcsin()


def haversine_km_point(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """:func:`haversine_km` of one pair of points, on Python floats (the same formula;
    no NumPy arrays on the request path)."""
    radians = math.radians
    p1, l1, p2, l2 = radians(lat1), radians(lon1), radians(lat2), radians(lon2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))
