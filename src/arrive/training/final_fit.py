"""The fit a retrain serves: the recipe it evaluated, run again at the end of the data.

A retrain judges a candidate on its test period, the latest orders, which the candidate
did not learn from; served as it is, that model would stop learning a test period, a
calibration window and a validation window before the data's end (about three and a
half days on a daily retrain of two weeks). With ``RetrainSettings.final_fit`` ``"before-window"``
(the default) or ``"all"`` the retrain evaluates a recipe instead and serves
its latest run:

* **evaluated fit** (scored on the test period, compared with production): trees trained
  on every order before the calibration window (training + validation, for the rounds
  early stopping chose on the validation orders), shifted and scaled on the calibration
  window alone;
* **calibration fit** (``"before-window"`` registers it): the same recipe with the
  windows moved to the end of the data. The trees learn every order before the data's
  last calibration window (test period included) for the same rounds; the shift and
  scales are found on that last window, orders the trees did not see, as split-conformal
  calibration needs;
* **final fit on every order** (``"all"`` registers it): the same rounds on every order,
  the last window too, with the shift and scales the calibration fit found (no fit may
  judge its P90 on orders it learnt).

The heuristic is fitted on every order and its P90 scaled on the last window. The
registered model has no held-out figure of its own: its ``metrics`` are the evaluated
fit's test figures, with a ``final_fit`` entry saying so and what it was trained and
calibrated on (:func:`final_fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import DataError
from arrive.models import QuantileEta
from arrive.models.artifact import ModelBundle
from arrive.training.pipeline import (
    TrainConfig,
    TrainResult,
    bundle_of,
    calibrate_model,
    fit_heuristic,
    labels,
)
from arrive.training.split import IntArray, Split

NOTE: Final = (
    "the test figures (mae_s, coverage_p90, ...) are the evaluated fit's, trained on the "
    "orders before test_start; this model is the same recipe trained again at the end of "
    "the data (the test period included: n_train, train_end; shift and scales from the "
    "last window, calib_start to calib_end), so it has no held-out figure of its own"
)


@dataclass(frozen=True)
class FinalFit:
    """The registered bundle and its metrics (the evaluated fit's, with ``final_fit``)."""

    bundle: ModelBundle
    metrics: dict[str, Any]


def final_split(created_at: pl.Series, evaluated: Split) -> Split:
    """The final fit's windows: calibration = the orders of the data's last
    ``evaluated.calib_days`` × 24 h (or as many orders as the evaluated calibration window,
    when that was a share of the orders), validation = as many orders as the evaluated
    fit's just before it (for the heuristic's choice of levels), training = the rest; no
    test period.

    Raises:
        DataError: the last window holds no order, or leaves none for training.
    """
    order = created_at.arg_sort().to_numpy().astype(np.int64)
    times = created_at.gather(order)
    n = order.size
    if evaluated.calib_days is None:
        calib_start = n - evaluated.calib.size
    else:
        window_start = times[n - 1] - timedelta(days=evaluated.calib_days)
        calib_start = int(times.search_sorted(window_start, side="right"))
    valid_start = calib_start - evaluated.valid.size
    if calib_start >= n or valid_start <= 0:
        raise DataError(
            f"final fit: the last calibration window holds {n - calib_start} of {n} orders "
            "and leaves none for training"
        )
    train, valid, calib = np.split(order, [valid_start, calib_start])
    empty: IntArray = np.empty(0, dtype=np.int64)
    return Split("time", train, valid, calib, empty, calib_days=evaluated.calib_days)


def final_fit(result: TrainResult, config: TrainConfig, *, every_order: bool = False) -> FinalFit:
    """Train the evaluated recipe of ``result`` again at the end of its data (see the
    module docstring): the same features and boosting rounds, the last calibration
    window.

    With ``every_order`` the registered trees learn the last window too: the shift and
    scales are still those the fit before the window found on it (out of sample), applied
    to the fit on every order.
    """
    ts, evaluated, bundle = result.training_set, result.split, result.bundle
    assert ts is not None
    assert evaluated is not None
    assert bundle is not None
    created = ts.orders.get_column("created_at")
    split = final_split(created, evaluated)
    seen = np.concatenate([split.train, split.valid])
    y = labels(ts, config)
    X = result.features.frame.drop("order_id")
    # a copy of the evaluated model keeps its parameters, features and rounds
    model = QuantileEta.from_files(bundle.model.to_files())
    model.refit(X[seen], y[seen])
    calibrate_model(model, result.features, y, split)
    heuristic = fit_heuristic(ts, split, config)
    described = _described(model, split, created)
    if every_order:
        seen = np.arange(len(y))
        model = _on_every_order(bundle.model, X, y, calibrated=model)
        described["calibrated_by"] = {k: described[k] for k in ("n_train", "train_end")}
        described |= {"n_train": len(y), "train_end": str(created.max())}
    final = bundle_of(model, heuristic, result.features, ts, seen)
    return FinalFit(final, {**result.metrics, "final_fit": described})


def _on_every_order(
    evaluated: QuantileEta, X: pl.DataFrame, y: npt.NDArray[np.float64], calibrated: QuantileEta
) -> QuantileEta:
    """The evaluated recipe trained on every row, with ``calibrated``'s shift and scales."""
    model = QuantileEta.from_files(evaluated.to_files())
    model.refit(X, y)
    model.anchor_offset_s_, model.scales_ = calibrated.anchor_offset_s_, calibrated.scales_
    return model


def _described(model: QuantileEta, split: Split, created: pl.Series) -> dict[str, Any]:
    calib = created.gather(split.calib)
    return {
        "note": NOTE,
        "n_train": int(split.train.size + split.valid.size),
        "n_calib": int(split.calib.size),
        "calib_days": split.calib_days,
        "train_end": str(created.gather(split.valid).max()),
        "calib_start": str(calib.min()),
        "calib_end": str(calib.max()),
        "rounds": {str(q): r for q, r in model.rounds_.items()},
        "anchor_offset_s": model.anchor_offset_s_,
        "scales": {str(q): s for q, s in model.scales_.items()},
    }
