"""Trailing windows agree with a brute-force count over [t - w, t)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arrive.features.windows import trailing_stats

T0 = datetime(2025, 1, 1, tzinfo=UTC)
WINDOWS: dict[str, timedelta | None] = {
    "10m": timedelta(minutes=10),
    "1h": timedelta(hours=1),
    "all": None,
}


def _frames(seed: int, n_obs: int, n_q: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    minutes = lambda n: [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 180, n)]  # noqa: E731
    obs = pl.DataFrame(
        {
            "k": rng.choice(["a", "b"], n_obs),
            "time": minutes(n_obs),
            "value": rng.normal(100, 20, n_obs),
        }
    )
    queries = pl.DataFrame(
        {"k": rng.choice(["a", "b", "c"], n_q), "t": minutes(n_q)}
    ).with_row_index("_row")
    return queries, obs


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_obs=st.integers(0, 40), n_q=st.integers(1, 15))
def test_matches_brute_force(seed: int, n_obs: int, n_q: int) -> None:
    queries, obs = _frames(seed, n_obs, n_q)
    got = trailing_stats(
        queries, obs, key="k", windows=WINDOWS, prefix="x", stats=("count", "mean", "std")
    )
    for q in queries.iter_rows(named=True):
        row = got.row(q["_row"], named=True)
        for label, length in WINDOWS.items():
            start = q["t"] - length if length else datetime.min.replace(tzinfo=UTC)
            window = obs.filter(
                (pl.col("k") == q["k"]) & (pl.col("time") >= start) & (pl.col("time") < q["t"])
            )
            values = window.get_column("value").to_numpy()
            assert row[f"x_count_{label}"] == len(values)
            if len(values) == 0:
                assert row[f"x_mean_{label}"] is None
                continue
            assert np.isclose(row[f"x_mean_{label}"], values.mean())
            # variance from cumulative sums: exact up to float rounding of the sums
            assert np.isclose(row[f"x_std_{label}"], values.std(), atol=1e-4)


def test_null_times_and_values_are_ignored() -> None:
    queries = pl.DataFrame({"k": ["a"], "t": [T0 + timedelta(hours=1)]}).with_row_index("_row")
    obs = pl.DataFrame({"k": ["a", "a", "a"], "time": [T0, None, T0], "value": [1.0, 5.0, None]})
    got = trailing_stats(queries, obs, key="k", windows={"all": None}, prefix="x")
    assert got.row(0, named=True) == {"_row": 0, "x_count_all": 1, "x_mean_all": 1.0}
