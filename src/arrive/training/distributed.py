"""Training on a Dask cluster with LightGBM's Dask estimator.

The feature matrix is split into one chunk per worker; each quantile's booster
is trained across the cluster, and the round count is chosen on the same
validation window as on one machine (the best round of the validation curve,
which stands in for early stopping).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl

from arrive import cores
from arrive.errors import ConfigError
from arrive.models import QuantileEta

FloatArray = npt.NDArray[np.float64]
# scikit-learn-style names the Dask estimator takes for our booster parameters
_RENAMED = {
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample_bytree",
    "lambda_l2": "reg_lambda",
    "seed": "random_state",
}
_WORKER_MANAGED = ("num_threads",)  # each Dask worker sets its own threads


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A Dask client: ``local`` starts a local cluster for the run, one single-thread
    worker per core this process may use (:func:`arrive.cores.threads`)."""
    from dask.distributed import Client, LocalCluster

    if address == "local":
        with (
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=cores.threads(), threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,  # type: ignore[no-untyped-call]
        ):
            yield client
        return
    try:
        client = Client(address, timeout="10s")  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"--dask {address}: cannot reach the scheduler ({exc})") from exc
    with client:
        yield client


def fit_on_dask(
    model: QuantileEta,
    X: pl.DataFrame,
    y: FloatArray,
    categorical: Sequence[str],
    eval_set: tuple[pl.DataFrame, FloatArray],
    client: Any,
) -> QuantileEta:
    """Fit ``model`` on the cluster behind ``client``; returns the fitted model."""
    import dask.array as da
    from lightgbm.dask import DaskLGBMRegressor

    y = model.prepare(X, y, categorical)
    workers = max(len(client.scheduler_info()["workers"]), 1)
    dX, dy = _chunked(da, model.matrix(X), y, workers)
    vX, vy = _chunked(da, model.matrix(eval_set[0]), model.target(*eval_set), workers)
    cat_index = [model.features_.index(c) for c in model.categorical_]
    for q in model.quantiles_:
        params = {
            _RENAMED.get(k, k): v
            for k, v in model.booster_params(q).items()
            if k not in _WORKER_MANAGED
        }
        estimator = DaskLGBMRegressor(client=client, n_estimators=model.n_estimators, **params)
        with warnings.catch_warnings():
            # the estimator warns about its own n_jobs default, which each worker overrides
            warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
            estimator.fit(
                dX,
                dy,
                eval_X=(vX,),
                eval_y=(vy,),
                feature_name=model.features_,
                categorical_feature=cat_index or "auto",
            )
        model.boosters_[q] = _best_rounds(estimator.booster_, estimator.evals_result_)
    return model


def _chunked(da: Any, matrix: FloatArray, y: FloatArray, parts: int) -> tuple[Any, Any]:
    rows = max(math.ceil(len(y) / parts), 1)
    return da.from_array(matrix, chunks=(rows, matrix.shape[1])), da.from_array(y, chunks=rows)


def _best_rounds(booster: lgb.Booster, evals: dict[str, dict[str, list[float]]]) -> lgb.Booster:
    curve = next(iter(next(iter(evals.values())).values()))
    best = int(np.argmin(curve)) + 1
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
