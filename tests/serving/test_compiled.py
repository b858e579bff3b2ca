"""Compiled trees and the row encoder reproduce QuantileEta.predict exactly."""

from __future__ import annotations

import gc
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from arrive.models.check import Probe, sample_rows
from arrive.models.encoding import to_matrix
from arrive.serving.compiled import (
    CompiledModel,
    LightGBMTrees,
    RowEncoder,
    cache_paths,
    check_equal,
    check_reference,
)


def _frame(trained: Any, n: int = 400) -> pl.DataFrame:
    """Feature rows like the model's: sampled ranges, unseen and missing categories."""
    model = trained.bundle().model
    rng = np.random.default_rng(7)
    matrix = sample_rows(model.boosters_[model.quantiles_[0]], n, seed=7)
    columns: dict[str, Any] = {}
    for j, name in enumerate(model.features_):
        if name in model.vocabulary_:
            vocab = [*model.vocabulary_[name], "never-seen"]
            picks = rng.choice(len(vocab) + 1, n)
            columns[name] = [vocab[k] if k < len(vocab) else None for k in picks]
        else:
            columns[name] = [None if np.isnan(v) else float(v) for v in matrix[:, j]]
    return pl.DataFrame(columns, schema={n: _dtype(model, n) for n in model.features_})


def _dtype(model: Any, name: str) -> Any:
    return pl.String if name in model.vocabulary_ else pl.Float64


def test_row_encoder_equals_to_matrix(trained: Any) -> None:
    model = trained.bundle().model
    frame = _frame(trained)
    encoder = RowEncoder(model.features_, model.vocabulary_)
    got = encoder.encode(frame.to_dicts())
    want = to_matrix(frame, model.features_, model.vocabulary_)
    np.testing.assert_array_equal(got, want)
    assert got.flags.c_contiguous
    one = encoder.encode(frame.head(1).to_dicts())
    np.testing.assert_array_equal(one, want[:1])


def test_lightgbm_path_equals_quantile_eta_predict(trained: Any) -> None:
    model = trained.bundle().model
    frame = _frame(trained)
    compiled = CompiledModel(model, "none")
    want = model.predict(frame)
    np.testing.assert_allclose(compiled.predict(frame.to_dicts()), want, rtol=1e-12)
    single = np.vstack([compiled.predict([row]) for row in frame.head(100).to_dicts()])
    np.testing.assert_allclose(single, want[:100], rtol=1e-12)
    assert compiled.trees.backend == "lightgbm"


def test_lightgbm_path_leaves_nothing_to_the_garbage_collector(trained: Any) -> None:
    """Booster.predict leaves a reference cycle per array it passes (numpy's
    ``ctypes.data_as``); the serving path passes addresses, and its garbage is freed at once."""
    compiled = CompiledModel(trained.bundle().model, "none")
    rows = _frame(trained, 20).to_dicts()
    gc.collect()
    gc.disable()
    try:
        for row in rows:
            compiled.predict([row])
        compiled.predict(rows)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_lightgbm_path_refuses_a_matrix_of_the_wrong_width(trained: Any) -> None:
    trees = LightGBMTrees(CompiledModel(trained.bundle().model, "none").boosters)
    with pytest.raises(lgb.basic.LightGBMError, match="number of features"):
        trees.predict_raw(np.zeros((2, 1)))


@pytest.mark.parametrize("backend", ["lleaves", "tl2cgen"])
def test_compiled_trees_equal_quantile_eta_predict_and_are_cached(
    trained: Any, backend: Any
) -> None:
    model = trained.bundle().model
    frame = _frame(trained)
    switched: list[str] = []
    compiled = CompiledModel(model, backend, trained.compile_cache, switched.append)
    compiled.start_compiling()
    assert compiled.wait(300)
    assert compiled.error is None
    assert compiled.trees.backend == backend
    assert switched == [backend]
    rows = frame.to_dicts()
    want = model.predict(frame)
    np.testing.assert_allclose(compiled.predict(rows), want, rtol=1e-6)
    single = np.vstack([compiled.predict([row]) for row in rows[:50]])
    np.testing.assert_allclose(single, want[:50], rtol=1e-6)
    assert (compiled.predict(rows)[:, 1] >= compiled.predict(rows)[:, 0]).all()
    for booster in compiled.boosters:
        _, out = cache_paths(trained.compile_cache, booster.model_to_string(), backend)
        assert out.is_file()


def test_a_compiler_that_fails_leaves_lightgbm_serving(trained: Any, tmp_path: Any) -> None:
    model = trained.bundle().model
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    compiled = CompiledModel(model, "lleaves", blocked)
    compiled.start_compiling()
    assert compiled.wait(60)
    assert compiled.error is not None
    assert compiled.trees.backend == "lightgbm"
    frame = _frame(trained, 20)
    np.testing.assert_allclose(compiled.predict(frame.to_dicts()), model.predict(frame))


def test_check_equal_refuses_trees_that_differ(trained: Any) -> None:
    model = trained.bundle().model
    reference = LightGBMTrees([model.boosters_[q] for q in model.quantiles_])

    class Off:
        backend = "off"

        def predict_raw(self, matrix: Any) -> Any:
            return reference.predict_raw(matrix) * (1 + 1e-4)

    with pytest.raises(Exception, match="differs from LightGBM"):
        check_equal(reference, Off(), sample_rows(reference.boosters[0], 16))


def test_row_encoder_takes_every_kind_of_value_for_few_rows_or_many() -> None:
    encoder = RowEncoder(["a", "b", "c"], {"c": ["x", "y", "7"]})
    nan = np.nan
    whole = [
        {"a": 1.5, "b": None, "c": "y"},
        {"a": True, "b": "2.5", "c": None},
        {"a": 3, "b": 4.0, "c": "zz"},
    ]
    want = [[1.5, nan, 1.0], [1.0, 2.5, nan], [3.0, 4.0, nan]]
    np.testing.assert_array_equal(encoder.encode(whole), want)  # few rows: value by value
    many = encoder.encode(whole * 4)  # many: NumPy converts the numeric columns
    np.testing.assert_array_equal(many, want * 4)
    assert many.flags.c_contiguous
    # an absent feature and a string that is no number: value by value, same meaning
    got = encoder.encode([*whole * 4, {"a": "abc", "c": 7}])
    np.testing.assert_array_equal(got[:12], want * 4)
    np.testing.assert_array_equal(got[12], [nan, nan, 2.0])
    assert got.flags.c_contiguous
    assert encoder.encode([]).shape == (0, 3)


def test_compiled_trees_that_miss_the_reference_predictions_do_not_serve(trained: Any) -> None:
    bundle = trained.bundle()
    probe = bundle.probe
    off = Probe(probe.rows, probe.raw + 1.0, probe.predictions + 1.0)  # a reference they miss
    compiled = CompiledModel(bundle.model, "lleaves", trained.compile_cache, reference=off)
    compiled.start_compiling()
    assert compiled.wait(300)
    assert compiled.error is not None
    assert "raw outputs differ from the reference predictions" in compiled.error
    assert compiled.trees.backend == "lightgbm"
    check_reference(compiled.trees, probe)  # LightGBM itself matches the true reference
