"""QuantileEta: one LightGBM booster per quantile, calibrated, never crossing.

Estimator conventions (scikit-learn style): ``__init__`` stores parameters
unchanged; ``fit`` validates them and returns ``self``; fitted state ends in
``_``. Artifacts are LightGBM's own text model format plus JSON — never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl

from arrive import cores
from arrive.calibration import Window, anchor_index, apply_scales, fit_calibration
from arrive.errors import ConfigError, DataError, InputFileError
from arrive.models.booster_text import check_booster_text
from arrive.models.encoding import Vocabulary, learn_vocabulary, to_matrix

FloatArray = npt.NDArray[np.float64]
META_FILE = "model.json"
_ANCHOR_OBJECTIVES = ("regression", "quantile", "l1", "huber")


class QuantileEta:
    """Quantile regression of delivery duration (seconds) with gradient-boosted trees.

    Args:
        quantiles: the quantiles to predict, e.g. ``(0.5, 0.9)``.
        anchor_objective: loss of the quantile nearest 0.5: ``regression`` (squared error,
            which converges fastest; the calibration shift then turns it into a median),
            or ``quantile`` / ``l1`` / ``huber``.
        calibrate_anchor: shift the anchor on the calibration window so that its coverage
            equals its quantile.
        n_estimators: maximum boosting rounds per quantile (early stopping may stop sooner).
        learning_rate, num_leaves, min_child_samples, feature_fraction, lambda_l2,
        cat_smooth: LightGBM parameters.
        early_stopping_rounds: rounds without improvement on the validation set before stopping.
        calib_half_life: weight the calibration window's orders by recency, halving every
            ``calib_half_life`` of the window back (e.g. 0.25); None weighs them equally.
        seed: makes training deterministic.
        n_jobs: threads used by LightGBM; None: :func:`arrive.cores.threads` (the cores
            this process may use, or ``ARRIVE_THREADS``).
        residual_of: features (seconds) whose first present value per row is a base the
            boosters predict the residual over (DeepETA's framing): trained on
            ``y − base``, answering ``base + trees``; a row with none of them has base 0.
            Empty (the default): the boosters predict the duration itself.

    Fitted attributes: ``quantiles_`` (sorted), ``features_``, ``categorical_``,
    ``vocabulary_``, ``boosters_`` (quantile → booster), ``rounds_`` (quantile → boosting
    rounds kept, after early stopping), ``scales_`` and ``anchor_offset_s_`` (the calibration).
    """

    quantiles_: tuple[float, ...]
    features_: list[str]
    categorical_: list[str]
    vocabulary_: Vocabulary
    boosters_: dict[float, lgb.Booster]
    rounds_: dict[float, int]
    curves_: dict[float, tuple[str, list[float]]]
    """Per quantile, the validation metric's name and value after each boosting round
    (when fitted here with an ``eval_set``; not saved with the model)."""
    scales_: dict[float, float]
    anchor_offset_s_: float

    def __init__(
        self,
        quantiles: Sequence[float] = (0.5, 0.9),
        *,
        n_estimators: int = 2000,
        learning_rate: float = 0.05,
        num_leaves: int = 63,
        min_child_samples: int = 20,
        feature_fraction: float = 0.9,
        lambda_l2: float = 1.0,
        cat_smooth: float = 10.0,
        early_stopping_rounds: int = 100,
        anchor_objective: str = "regression",
        calibrate_anchor: bool = True,
        calib_half_life: float | None = None,
        seed: int = 0,
        n_jobs: int | None = None,
        residual_of: Sequence[str] = (),
    ) -> None:
        self.quantiles = quantiles
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.lambda_l2 = lambda_l2
        self.cat_smooth = cat_smooth
        self.early_stopping_rounds = early_stopping_rounds
        self.anchor_objective = anchor_objective
        self.calibrate_anchor = calibrate_anchor
        self.calib_half_life = calib_half_life
        self.seed = seed
        self.n_jobs = n_jobs
        self.residual_of = tuple(residual_of)

    # -- fitting ---------------------------------------------------------------------------

    def fit(
        self,
        X: pl.DataFrame,
        y: FloatArray,
        *,
        categorical: Sequence[str] = (),
        eval_set: tuple[pl.DataFrame, FloatArray] | None = None,
        rounds: Mapping[float, int] | None = None,
    ) -> QuantileEta:
        """Train one booster per quantile; early-stop on ``eval_set`` when given, or
        (``rounds``: quantile → boosting rounds, e.g. an earlier model's) train each
        booster for its rounds, without a validation set."""
        y = self.prepare(X, y, categorical)
        if rounds is not None and set(rounds) != set(self.quantiles_):
            raise ConfigError(
                f"rounds: one per quantile of {list(self.quantiles_)}: {dict(rounds)}"
            )
        train = self._dataset(X, y)
        valid = (
            self._dataset(eval_set[0], self.target(*eval_set), train)
            if eval_set is not None and rounds is None
            else None
        )
        self.boosters_ = {
            q: self._fit_one(q, train, valid, None if rounds is None else rounds[q])
            for q in self.quantiles_
        }
        self.rounds_ = {q: _rounds(b) for q, b in self.boosters_.items()}
        return self

    def refit(self, X: pl.DataFrame, y: FloatArray) -> QuantileEta:
        """Train every booster again on ``X`` (e.g. training + validation rows), for the
        rounds early stopping kept, so that the model also learns from the latest orders.

        The calibration is reset: calibrate afterwards, on rows the refit did not see.
        """
        rounds = self._fitted_rounds()  # first: an unfitted model has no categorical_ either
        return self.fit(X, y, categorical=self.categorical_, rounds=rounds)

    def prepare(self, X: pl.DataFrame, y: FloatArray, categorical: Sequence[str]) -> FloatArray:
        """Validate parameters and target and learn the input schema (before any training)."""
        self._validate_params()
        y = _check_target(y, len(X))
        self.quantiles_ = tuple(sorted(float(q) for q in self.quantiles))
        self.features_ = list(X.columns)
        self.categorical_ = [c for c in categorical if c in self.features_]
        self.vocabulary_ = learn_vocabulary(X, self.categorical_)
        self.boosters_ = {}
        self.rounds_ = {}
        self.curves_ = {}
        self.scales_ = {}
        self.anchor_offset_s_ = 0.0
        missing = [name for name in self.residual_of if name not in self.features_]
        if missing:
            raise ConfigError(f"residual_of: {', '.join(missing)} not among the features")
        return self.target(X, y)

    def target(self, X: pl.DataFrame, y: FloatArray) -> FloatArray:
        """What the boosters learn for rows ``X`` of duration ``y``: ``y`` less the base."""
        return _check_target(y, len(X)) - self.base(self.matrix(X))

    def base(self, matrix: FloatArray) -> FloatArray:
        """Per row of ``matrix``, the first present value of ``residual_of`` (0 if none)."""
        base = np.zeros(len(matrix))
        for name in reversed(self.residual_of):
            column = matrix[:, self.features_.index(name)]
            base = np.where(np.isnan(column), base, column)
        return base

    def booster_params(self, q: float) -> dict[str, Any]:
        """LightGBM parameters of the booster for quantile ``q``."""
        anchor = q == self.quantiles_[anchor_index(self.quantiles_)]
        return {
            "objective": self.anchor_objective if anchor else "quantile",
            "alpha": q,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "cat_smooth": self.cat_smooth,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.threads(),
            "verbose": -1,
        }

    def threads(self) -> int:
        """LightGBM's thread count: ``n_jobs``, or the process's share of the machine."""
        return cores.threads() if self.n_jobs is None else int(self.n_jobs)

    def calibrate(
        self, X: pl.DataFrame, y: FloatArray, *, backtest: Window | None = None
    ) -> QuantileEta:
        """Fit the anchor shift and the conformal scales of the other quantiles on a
        held-out window, its rows in time order (the latest last).

        Args:
            X, y: the window, after every order the boosters were trained on.
            backtest: ``(raw predictions, actuals)`` of an earlier fit of this model on
                the window just after its own training orders (e.g. the validation
                window, before :meth:`refit`): pooled with this window for the scales.
        """
        y = _check_target(y, len(X))
        if len(y) < 50:
            raise DataError(f"calibration needs at least 50 orders, got {len(y)}")
        windows = [*([backtest] if backtest is not None else []), (self.predict_raw(X), y)]
        self.anchor_offset_s_, self.scales_ = fit_calibration(
            windows,
            self.quantiles_,
            calibrate_anchor=self.calibrate_anchor,
            half_life=self.calib_half_life,
        )
        return self

    # -- prediction --------------------------------------------------------------------------

    def predict(self, X: pl.DataFrame) -> FloatArray:
        """Calibrated, non-crossing predictions in seconds: shape (n, len(quantiles_))."""
        return apply_scales(
            self.predict_raw(X), self.quantiles_, self.scales_, self.anchor_offset_s_
        )

    def predict_raw(self, X: pl.DataFrame) -> FloatArray:
        """Uncalibrated outputs in seconds (the trees' plus the base), one column per quantile."""
        matrix = self.matrix(X)
        return self.tree_outputs(matrix) + self.base(matrix)[:, None]

    def tree_outputs(self, matrix: FloatArray) -> FloatArray:
        """The boosters' own outputs (without the base), one column per quantile."""
        return np.column_stack(
            [self.boosters_[q].predict(matrix, num_threads=self.threads()) for q in self.quantiles_]
        )

    def matrix(self, X: pl.DataFrame) -> FloatArray:
        """The float matrix the boosters read (categoricals encoded with the learned vocabulary)."""
        return to_matrix(X, self.features_, self.vocabulary_)

    def feature_importance(self) -> dict[str, float]:
        """Total gain per feature of the anchor booster, normalised to sum to 1."""
        booster = self.boosters_[self.quantiles_[anchor_index(self.quantiles_)]]
        gain = booster.feature_importance(importance_type="gain")
        total = float(gain.sum()) or 1.0
        return {f: float(g) / total for f, g in zip(self.features_, gain, strict=True)}

    # -- persistence -------------------------------------------------------------------------

    def to_files(self) -> dict[str, bytes]:
        """The boosters (LightGBM text format) and ``model.json``, by file name."""
        files = {_booster_file(q): b.model_to_string().encode() for q, b in self.boosters_.items()}
        meta = {
            "params": self.get_params(),
            "quantiles": list(self.quantiles_),
            "features": self.features_,
            "categorical": self.categorical_,
            "vocabulary": self.vocabulary_,
            "scales": {str(q): s for q, s in self.scales_.items()},
            "anchor_offset_s": self.anchor_offset_s_,
            "rounds": {str(q): r for q, r in self.rounds_.items()},
            "boosters": {str(q): _booster_file(q) for q in self.quantiles_},
        }
        files[META_FILE] = json.dumps(meta, indent=2).encode()
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> QuantileEta:
        """Rebuild a model from :meth:`to_files` output.

        Each booster's text must be whole (:func:`check_booster_text`) before LightGBM
        parses it; a text that is whole can still crash LightGBM (garbled in place), so
        check files of unknown state with :func:`arrive.models.check.check_files` first.

        Raises:
            InputFileError: a file is missing or malformed.
        """
        try:
            meta = json.loads(files[META_FILE])
            model = cls(**meta["params"])
            model.quantiles_ = tuple(float(q) for q in meta["quantiles"])
            model.features_ = list(meta["features"])
            model.categorical_ = list(meta["categorical"])
            model.vocabulary_ = {k: list(v) for k, v in meta["vocabulary"].items()}
            model.scales_ = {float(q): float(s) for q, s in meta["scales"].items()}
            model.anchor_offset_s_ = float(meta["anchor_offset_s"])
            model.rounds_ = {float(q): int(r) for q, r in meta.get("rounds", {}).items()}
            model.boosters_ = {
                float(q): lgb.Booster(model_str=check_booster_text(name, files[name]))
                for q, name in meta["boosters"].items()
            }
        except (KeyError, ValueError, TypeError, lgb.basic.LightGBMError) as exc:
            raise InputFileError(f"model files are incomplete or malformed: {exc}") from exc
        return model

    def save(self, directory: Path) -> dict[str, Path]:
        """Write :meth:`to_files` into ``directory``; return name → path."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, content in self.to_files().items():
            (directory / name).write_bytes(content)
            paths[name] = directory / name
        return paths

    @classmethod
    def load(cls, directory: Path) -> QuantileEta:
        """Read a model written by :meth:`save`."""
        return cls.from_files(
            {p.name: p.read_bytes() for p in Path(directory).iterdir() if p.is_file()}
        )

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention)."""
        names = (
            "n_estimators",
            "learning_rate",
            "num_leaves",
            "min_child_samples",
            "feature_fraction",
            "lambda_l2",
            "cat_smooth",
            "early_stopping_rounds",
            "calib_half_life",
            "seed",
            "n_jobs",
        )
        params = {"quantiles": list(self.quantiles), **{n: getattr(self, n) for n in names}}
        if self.residual_of:  # absent otherwise: models without it keep their files as they were
            params["residual_of"] = list(self.residual_of)
        return params

    # -- internals ---------------------------------------------------------------------------

    def _validate_params(self) -> None:
        qs = list(self.quantiles)
        if not qs or any(not 0.0 < q < 1.0 for q in qs) or len(set(qs)) != len(qs):
            raise ConfigError(f"quantiles: need distinct values in (0, 1), got {qs}")
        for name in ("n_estimators", "num_leaves", "min_child_samples", "n_jobs"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: must be >= 1")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ConfigError("learning_rate: must be in (0, 1]")
        if self.anchor_objective not in _ANCHOR_OBJECTIVES:
            raise ConfigError(f"anchor_objective: one of {', '.join(_ANCHOR_OBJECTIVES)}")
        if not 0.0 < self.feature_fraction <= 1.0:
            raise ConfigError("feature_fraction: must be in (0, 1]")
        half_life = self.calib_half_life
        if half_life is not None and not (isinstance(half_life, int | float) and half_life > 0):
            raise ConfigError(f"calib_half_life: must be a number > 0 or None, got {half_life!r}")

    def _dataset(
        self, X: pl.DataFrame, y: FloatArray, reference: lgb.Dataset | None = None
    ) -> lgb.Dataset:
        return lgb.Dataset(
            self.matrix(X),
            label=y,
            feature_name=self.features_,
            categorical_feature=self.categorical_ or "auto",
            reference=reference,
            free_raw_data=False,
            params={"verbose": -1, "max_cat_to_onehot": 8},
        )

    def _fitted_rounds(self) -> dict[float, int]:
        rounds = getattr(self, "rounds_", None)
        if not rounds:
            raise DataError("refit: fit the model first (with an eval_set for early stopping)")
        return dict(rounds)

    def _fit_one(
        self, q: float, train: lgb.Dataset, valid: lgb.Dataset | None, rounds: int | None = None
    ) -> lgb.Booster:
        recorded: dict[str, Any] = {}
        stop: list[Callable[..., Any]] = (
            [
                lgb.early_stopping(self.early_stopping_rounds, verbose=False),
                lgb.record_evaluation(recorded),
            ]
            if valid
            else []
        )
        booster = lgb.train(
            self.booster_params(q),
            train,
            num_boost_round=rounds or self.n_estimators,
            valid_sets=[valid] if valid else None,
            callbacks=stop,
        )
        for metric, values in recorded.get("valid_0", {}).items():
            self.curves_[q] = (str(metric), [float(v) for v in values])
            break
        return booster


def _rounds(booster: lgb.Booster) -> int:
    """Rounds the booster keeps: the best iteration when early stopping found one."""
    return int(booster.best_iteration or booster.current_iteration())


def _booster_file(q: float) -> str:
    return f"booster_q{round(q * 100):02d}.txt"


def _check_target(y: FloatArray, n: int) -> FloatArray:
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise DataError(f"target: expected {n} values, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise DataError(f"target: {int((~np.isfinite(y)).sum())} values are missing or not finite")
    return y
