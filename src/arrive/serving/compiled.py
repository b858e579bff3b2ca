"""Model inference for the hot path: compiled trees, plain LightGBM until they are ready.

:class:`CompiledModel` reproduces :meth:`QuantileEta.predict` exactly (same
encoding, same calibration, same non-crossing rule) from feature dicts, without
building a Polars frame per request:

1. :class:`RowEncoder` turns feature values into the float row the trees read
   (categoricals through the model's vocabulary, like
   :func:`arrive.models.encoding.to_matrix`).
2. The raw booster outputs come from :class:`LightGBMTrees` at once, and from
   compiled code once a background compilation has finished and its outputs have
   been checked against LightGBM's (within 1e-6 relative) on sample rows, and
   against the reference outputs of the model's probe batch when it has one.
3. :func:`arrive.calibration.apply_scales` calibrates them.

Backends (measured in ``bench/inference_bench.py``; lleaves is the default):

* ``lleaves`` — LLVM-compiled trees called through their C entry point, one row
  at a time without a thread pool (lleaves' default ``n_jobs`` builds one per call).
* ``tl2cgen`` — Treelite's C code generator compiled with gcc.
* ``none`` — plain LightGBM only.

Compilation runs in a child process (``python -m arrive.serving.compiled``), so a
crash or a long compile never touches the server, and its output is cached on disk
under the SHA-256 of the booster's text: a model version is compiled once per
machine, whatever the number of workers (a file lock makes the others wait).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import logging
import math
import operator
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from arrive import cores
from arrive.calibration import anchor_index, apply_scales
from arrive.errors import ConfigError, InternalError
from arrive.features.spec import FeatureScalar
from arrive.models.check import Probe, compare, sample_rows
from arrive.models.quantile import QuantileEta

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Backend = Literal["lleaves", "tl2cgen", "none"]
BACKENDS: Final[tuple[Backend, ...]] = ("lleaves", "tl2cgen", "none")
CHECK_ROWS: Final = 64
CHECK_RTOL: Final = 1e-6
_QUICK_FROM: Final = 6
"""Rows from which NumPy's setup pays for itself (measured: slower for 1-4 rows, faster
from 8)."""
_LGB: Final = lgb.libpath._LIB
_lgb_call: Final = lgb.basic._safe_call  # raises LightGBMError with LightGBM's message
_FLOAT64, _ROW_MAJOR, _NORMAL, _FIRST = (ctypes.c_int(v) for v in (1, 1, 0, 0))
_ONE_THREAD: Final = b"num_threads=1"
"""LGBM_BoosterPredictForMat's arguments as Booster.predict passes them (C_API_DTYPE_FLOAT64,
row-major, C_API_PREDICT_NORMAL, from the first iteration, ``num_threads=1``)."""
_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)
"""lleaves' entry point: (rows, out, first row, end row)."""


class RowEncoder:
    """Feature values → the float matrix the boosters read, without Polars.

    Equal to :func:`arrive.models.encoding.to_matrix` on the same values: a
    categorical becomes its index in the vocabulary (NaN when unseen or unknown), a
    number its float value (NaN when unknown).

    Six rows or more that hold every feature, with numbers (or None) as numeric values,
    take the quick way: NumPy converts the numeric columns in C and only the categorical
    columns are mapped in Python. Any other rows (a feature absent, a number sent as
    text) are encoded value by value.
    """

    def __init__(self, features: Sequence[str], vocabulary: Mapping[str, Sequence[str]]) -> None:
        self.features = tuple(features)
        self._codes: tuple[dict[str, float] | None, ...] = tuple(
            {v: float(i) for i, v in enumerate(vocabulary[f])} if f in vocabulary else None
            for f in self.features
        )
        self._plan = tuple(zip(self.features, self._codes, strict=True))
        numeric = [j for j, codes in enumerate(self._codes) if codes is None]
        self._numeric = np.array(numeric, dtype=np.intp)
        self._take_numeric = _taker([self.features[j] for j in numeric])
        self._categorical = tuple(
            (j, codes) for j, codes in enumerate(self._codes) if codes is not None
        )
        self._take_categorical = _taker([self.features[j] for j, _ in self._categorical])

    def alike(self, other: RowEncoder) -> bool:
        """Whether ``other`` makes the same matrix of any rows (same features in the same
        order, same vocabularies): then one's matrix serves the other's trees."""
        return self.features == other.features and self._codes == other._codes

    def encode(self, rows: Sequence[Mapping[str, FeatureScalar]]) -> FloatArray:
        """A C-contiguous ``(len(rows), n_features)`` float64 matrix."""
        if len(rows) < _QUICK_FROM:
            return self._careful(rows)
        try:
            return self._quick(rows)
        except (KeyError, TypeError, ValueError):  # not every feature, or text for a number
            return self._careful(rows)

    def _quick(self, rows: Sequence[Mapping[str, FeatureScalar]]) -> FloatArray:
        take = self._take_numeric
        numbers = np.array([take(row) for row in rows], dtype=np.float64)
        matrix = np.empty((len(rows), len(self.features)), dtype=np.float64)
        matrix[:, self._numeric] = numbers
        nan = math.nan
        take = self._take_categorical
        columns = zip(*[take(row) for row in rows], strict=True)
        for (j, codes), column in zip(self._categorical, columns, strict=True):
            matrix[:, j] = [
                codes.get(value, nan) if type(value) is str else _code(value, codes)
                for value in column
            ]
        return matrix

    def _careful(self, rows: Sequence[Mapping[str, FeatureScalar]]) -> FloatArray:
        flat: list[float] = []
        add = flat.append
        nan = math.nan
        for row in rows:
            get = row.get
            for name, codes in self._plan:
                value = get(name)
                if value is None:
                    add(nan)
                elif codes is None:
                    add(value if type(value) is float else _number(value))
                else:
                    add(codes.get(value, nan) if type(value) is str else _code(value, codes))
        return np.array(flat, dtype=np.float64).reshape(len(rows), len(self.features))


def _taker(names: Sequence[str]) -> Callable[[Mapping[str, FeatureScalar]], tuple[Any, ...]]:
    """The values of ``names`` of a row as a tuple (KeyError when one is absent)."""
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    if not names:
        return lambda row: ()
    return operator.itemgetter(*names)


def _gap(diff: float) -> float:
    """``np.maximum(diff, 0.0)`` for one float (NaN stays NaN)."""
    return diff if diff > 0.0 or math.isnan(diff) else 0.0


def _number(value: FeatureScalar) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return float(value)


def _code(value: FeatureScalar, codes: Mapping[str, float]) -> float:
    if value is None:
        return math.nan
    return codes.get(value if isinstance(value, str) else str(value), math.nan)


class Trees(Protocol):
    """Raw outputs of a model's boosters (columns in quantile order)."""

    backend: str

    def predict_raw(self, matrix: FloatArray) -> FloatArray:
        """Shape ``(rows, quantiles)``; ``matrix`` is C-contiguous float64."""
        ...


class LightGBMTrees:
    """The boosters themselves, one thread each call (other workers use the other cores).

    Called through LightGBM's C function for a dense matrix with plain addresses, as
    ``Booster.predict`` calls it for a C-contiguous float64 matrix, minus its ctypes
    pointers: each of those (numpy's ``ctypes.data_as``, two a booster) leaves a reference
    cycle, a ``c_void_p`` and its dict (CPython issue 12836), that only the garbage
    collector frees: 8 objects a request, and a young collection of ~50,000 of them every
    few seconds under load (docs/benchmarks.md, the plain service's p99).
    """

    backend = "lightgbm"

    def __init__(self, boosters: Sequence[lgb.Booster]) -> None:
        self.boosters = tuple(boosters)
        # as Booster.predict: its best iteration (0: every tree), one thread, no options
        self._calls = tuple((b._handle, ctypes.c_int(b.best_iteration)) for b in self.boosters)

    def predict_raw(self, matrix: FloatArray) -> FloatArray:
        """See :meth:`Trees.predict_raw`."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"expected a matrix of rows, got shape {matrix.shape}")
        rows, columns = ctypes.c_int32(matrix.shape[0]), ctypes.c_int32(matrix.shape[1])
        out = np.empty((len(self.boosters), matrix.shape[0]))
        data, written = ctypes.c_void_p(matrix.ctypes.data), ctypes.c_int64(0)
        for j, (handle, iterations) in enumerate(self._calls):
            _lgb_call(
                _LGB.LGBM_BoosterPredictForMat(
                    *(handle, data, _FLOAT64, rows, columns, _ROW_MAJOR, _NORMAL, _FIRST),
                    *(iterations, _ONE_THREAD, ctypes.byref(written)),
                    ctypes.c_void_p(out[j].ctypes.data),
                )
            )
            if written.value != matrix.shape[0]:
                raise InternalError(
                    f"LightGBM wrote {written.value} predictions for {matrix.shape[0]} rows"
                )
        return out.T


class LleavesTrees:
    """lleaves-compiled boosters, called through their C entry point (no thread pool)."""

    backend = "lleaves"

    def __init__(self, models: Sequence[Any], n_features: int) -> None:
        self._models = tuple(models)  # keeps the compiled code alive
        # the same C functions, declared with address arguments: no ctypes pointer
        # objects built per call (a third of a single row's cost otherwise)
        self._entries = tuple(_ENTRY(_address(m._c_entry_func)) for m in models)
        self.n_features = n_features

    def predict_raw(self, matrix: FloatArray) -> FloatArray:
        """See :meth:`Trees.predict_raw`."""
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {matrix.shape}")
        if not matrix.flags.c_contiguous or matrix.dtype != np.float64:
            raise ValueError("expected a C-contiguous float64 matrix")
        rows = matrix.shape[0]
        out = np.empty((len(self._entries), rows))
        data, address, step = matrix.ctypes.data, out.ctypes.data, rows * 8
        for entry in self._entries:
            entry(data, address, 0, rows)
            address += step
        return out.T


def _address(function: Any) -> int:
    address = ctypes.cast(function, ctypes.c_void_p).value
    if not address:
        raise InternalError("lleaves model has no compiled entry point")
    return address


class Tl2cgenTrees:
    """tl2cgen-compiled boosters (one shared library each)."""

    backend = "tl2cgen"

    def __init__(self, predictors: Sequence[Any]) -> None:
        import tl2cgen

        self._dmatrix = tl2cgen.DMatrix
        self._predictors = tuple(predictors)

    def predict_raw(self, matrix: FloatArray) -> FloatArray:
        """See :meth:`Trees.predict_raw`."""
        dmat = self._dmatrix(matrix, dtype="float64")
        out = np.empty((len(self._predictors), matrix.shape[0]))
        for j, predictor in enumerate(self._predictors):
            out[j] = np.asarray(predictor.predict(dmat)).reshape(matrix.shape[0])
        return out.T


class CompiledModel:
    """Calibrated quantile predictions of a :class:`QuantileEta` from feature dicts.

    Serves with :class:`LightGBMTrees` from construction; :meth:`start_compiling`
    switches to the compiled backend in the background once it is built and checked.

    Args:
        model: a fitted model.
        backend: ``lleaves``, ``tl2cgen`` or ``none``.
        cache_dir: where compiled code is kept, by booster SHA-256.
        on_switch: called with the new backend's name after a switch.
        reference: the model's probe batch; compiled trees serve only if they also
            reproduce its reference outputs (None: compared with LightGBM only).
    """

    def __init__(
        self,
        model: QuantileEta,
        backend: Backend = "lleaves",
        cache_dir: Path = Path(".arrive/compiled"),
        on_switch: Callable[[str], None] | None = None,
        reference: Probe | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"compile backend: one of {', '.join(BACKENDS)}, got {backend!r}")
        self.model = model
        self.quantiles = model.quantiles_
        self.encoder = RowEncoder(model.features_, model.vocabulary_)
        self.boosters = tuple(model.boosters_[q] for q in self.quantiles)
        self.trees: Trees = LightGBMTrees(self.boosters)
        self._anchor = anchor_index(self.quantiles)
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self.error: str | None = None
        self._on_switch = on_switch
        self.reference = reference
        self._done = threading.Event()
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._spawn = threading.Lock()  # stop() and spawning a child never interleave
        self._thread: threading.Thread | None = None
        if backend == "none":
            self._done.set()

    def predict(self, rows: Sequence[Mapping[str, FeatureScalar]]) -> FloatArray:
        """Calibrated, non-crossing seconds, shape ``(len(rows), len(quantiles))``."""
        return self.predict_matrix(self.encoder.encode(rows))

    def predict_matrix(self, matrix: FloatArray) -> FloatArray:
        """Like :meth:`predict` from an encoded matrix."""
        raw = self.trees.predict_raw(matrix)
        if self.model.residual_of:  # the boosters predict the residual over a base feature
            raw = raw + self.model.base(matrix)[:, None]
        if raw.shape[0] == 1:  # the hot path: the same arithmetic on Python floats
            return np.array([self._calibrate_one(raw[0].tolist())])
        return apply_scales(raw, self.quantiles, self.model.scales_, self.model.anchor_offset_s_)

    def _calibrate_one(self, raw: list[float]) -> list[float]:
        """:func:`apply_scales` for one row, operation for operation."""
        quantiles, scales = self.quantiles, self.model.scales_
        anchor = self._anchor
        out = [0.0] * len(raw)
        out[anchor] = raw[anchor] + self.model.anchor_offset_s_
        for j in range(anchor + 1, len(raw)):
            out[j] = out[j - 1] + scales.get(quantiles[j], 1.0) * _gap(raw[j] - raw[j - 1])
        for j in range(anchor - 1, -1, -1):
            out[j] = out[j + 1] - scales.get(quantiles[j], 1.0) * _gap(raw[j + 1] - raw[j])
        return out

    @property
    def compiled(self) -> bool:
        """True once compiled code serves."""
        return self.trees.backend != "lightgbm"

    def start_compiling(self) -> None:
        """Compile (or load from the cache) in a background thread; no-op for ``none``."""
        if self.backend == "none" or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._compile, name=f"compile-{self.backend}", daemon=True
        )
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until compilation has finished (switched or failed); True if it has."""
        return self._done.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Abandon a compilation in progress: the child process is terminated and reaped
        before this returns (nothing is left behind)."""
        with self._spawn:
            self._stop.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()

    def _compile(self) -> None:
        try:
            trees = self._build()
            if self._stop.is_set():
                return
            check_equal(self.trees, trees, sample_rows(self.boosters[0], CHECK_ROWS))
            if self.reference is not None:
                check_reference(trees, self.reference)
            self.trees = trees
            logger.info("model now served by %s-compiled trees", trees.backend)
            if self._on_switch is not None:
                self._on_switch(trees.backend)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            if not self._stop.is_set():
                logger.warning("compilation failed, LightGBM keeps serving: %s", self.error)
        finally:
            self._done.set()

    def _build(self) -> Trees:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        built = [self._artifact(booster) for booster in self.boosters]
        return load_trees(self.backend, built, self.boosters[0].num_feature())

    def _artifact(self, booster: lgb.Booster) -> tuple[Path, Path]:
        text = booster.model_to_string()
        model_file, out = cache_paths(self.cache_dir, text, self.backend)
        if not model_file.exists():
            _write_atomically(model_file, text.encode())
        if not out.exists():
            self._run_child(model_file, out)
        return model_file, out

    def _run_child(self, model_file: Path, out: Path) -> None:
        command = [sys.executable, "-m", "arrive.serving.compiled", self.backend]
        command += [str(model_file), str(out)]
        with self._spawn:
            if self._stop.is_set():
                raise InternalError("compilation abandoned")
            self._child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        output, _ = self._child.communicate()
        if self._child.returncode != 0:
            tail = output.decode(errors="replace")[-2000:]
            raise InternalError(f"{self.backend} compiler exited {self._child.returncode}: {tail}")


def cache_paths(cache_dir: Path, booster_text: str, backend: str) -> tuple[Path, Path]:
    """``(model text file, compiled file)`` of a booster in ``cache_dir``."""
    digest = hashlib.sha256(booster_text.encode()).hexdigest()
    version = metadata.version(backend)
    suffix = "o" if backend == "lleaves" else "so"
    return cache_dir / f"{digest}.txt", cache_dir / f"{digest}.{backend}-{version}.{suffix}"


def load_trees(backend: str, built: Sequence[tuple[Path, Path]], n_features: int) -> Trees:
    """The compiled boosters from their cached files."""
    if backend == "lleaves":
        import lleaves

        models = []
        for model_file, out in built:
            model = lleaves.Model(model_file=str(model_file))
            model.compile(cache=str(out))
            models.append(model)
        return LleavesTrees(models, n_features)
    if backend == "tl2cgen":
        import tl2cgen

        count = cores.threads()
        return Tl2cgenTrees([tl2cgen.Predictor(str(out), nthread=count) for _, out in built])
    raise ConfigError(f"compile backend {backend!r} builds nothing")


def check_equal(reference: Trees, candidate: Trees, matrix: FloatArray) -> None:
    """Raise InternalError unless ``candidate`` equals ``reference`` within 1e-6 relative."""
    want, got = reference.predict_raw(matrix), candidate.predict_raw(matrix)
    single = np.vstack([candidate.predict_raw(matrix[i : i + 1]) for i in range(len(matrix))])
    for name, value in (("batch", got), ("single-row", single)):
        if value.shape != want.shape or not np.allclose(value, want, rtol=CHECK_RTOL, atol=1e-9):
            diff = float(np.nanmax(np.abs(value - want))) if value.shape == want.shape else -1.0
            raise InternalError(
                f"{candidate.backend} {name} output differs from LightGBM (max abs {diff:g})"
            )


def check_reference(trees: Trees, probe: Probe) -> None:
    """Raise InternalError unless ``trees`` reproduce the probe's reference raw outputs."""
    mismatch = compare(probe, trees.predict_raw(np.ascontiguousarray(probe.rows)))
    if mismatch is not None:
        raise InternalError(f"{trees.backend}: {mismatch}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def compile_file(backend: str, model_file: Path, out: Path) -> None:
    """Compile one LightGBM text model into ``out`` (atomically; once across processes)."""
    with _locked(out.with_name(out.name + ".lock")):
        if out.exists():
            return
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
        try:
            _compile_to(backend, model_file, tmp)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)


def _compile_to(backend: str, model_file: Path, out: Path) -> None:
    if backend == "lleaves":
        import lleaves

        lleaves.Model(model_file=str(model_file)).compile(cache=str(out))
        return
    if backend == "tl2cgen":
        import tl2cgen
        import treelite

        model = treelite.frontend.load_lightgbm_model(str(model_file))
        tl2cgen.export_lib(
            model,
            toolchain="gcc",
            libpath=str(out),
            params={"parallel_comp": cores.threads()},
            nthread=cores.threads(),
        )
        return
    raise ConfigError(f"compile backend {backend!r} builds nothing")


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m arrive.serving.compiled BACKEND MODEL_TXT OUT", file=sys.stderr)
        return 2
    compile_file(argv[0], Path(argv[1]), Path(argv[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
