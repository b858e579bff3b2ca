"""Checking a model's files where a crash cannot hurt: in a child process.

LightGBM does not refuse every malformed model text: a truncated or garbled booster
file can abort or segfault the process that parses it, and a checksum only says the
bytes are the ones registered, not that they parse. So before a process trusts a
model's files, :func:`check_files` hands them to a child
(``python -m arrive.models.check_child``) that parses the bundle, scores the probe batch
and compares the outputs with the reference predictions stored at registration.

The probe (``probe.json``, a file of the bundle, so the registry's checksum covers
it) holds a few real feature rows from the training data, already encoded as the
boosters read them, with each booster's raw output and the calibrated predictions
the model gave when it was trained. Versions registered before probes existed have
none: the child then scores synthetic rows spanning the boosters' feature ranges,
without comparing, and says so (status ``unverified``).

A check ends in one of three statuses:

* ``ok`` — parsed, and the probe's outputs match the reference;
* ``unverified`` — parsed and scored finite outputs, but there is no reference;
* ``broken`` — the child died by a signal, exited non-zero, ran past its timeout,
  refused a file, or the outputs differ from the reference (``reason`` says which).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import lightgbm as lgb
import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.calibration import apply_scales
from arrive.errors import InputFileError
from arrive.models.quantile import QuantileEta

FloatArray = npt.NDArray[np.float64]
CheckStatus = Literal["ok", "unverified", "broken"]

PROBE_FILE: Final = "probe.json"
PROBE_FORMAT: Final = 1
PROBE_ROWS: Final = 32
RTOL: Final = 1e-6
"""Relative tolerance of a comparison with the reference: text round trips and compiled
trees may differ from the trained booster by float rounding, never by more."""
ATOL: Final = 1e-6
DEFAULT_TIMEOUT_S: Final = 300.0
_REASON_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """The outcome of checking a model's files: ``status`` and a one-line ``reason``."""

    status: CheckStatus
    reason: str

    @property
    def ok(self) -> bool:
        """True unless the files are broken (an unverified model may serve)."""
        return self.status != "broken"


@dataclass(frozen=True, slots=True)
class Probe:
    """Feature rows as the boosters read them, with the outputs they gave at registration.

    Attributes:
        rows: ``(n, features)`` encoded matrix (NaN: missing).
        raw: ``(n, quantiles)`` raw booster outputs, in quantile order.
        predictions: ``(n, quantiles)`` calibrated, non-crossing seconds.
    """

    rows: FloatArray
    raw: FloatArray
    predictions: FloatArray

    def to_bytes(self) -> bytes:
        document = {
            "format": PROBE_FORMAT,
            "rows": _listed(self.rows),
            "raw": _listed(self.raw),
            "predictions": _listed(self.predictions),
        }
        return json.dumps(document, allow_nan=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Probe:
        """Parse ``probe.json``; raises InputFileError naming what is wrong."""
        try:
            document = json.loads(data)
            if document.get("format") != PROBE_FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {PROBE_FORMAT}")
            rows, raw, predictions = (
                _matrix(document[key]) for key in ("rows", "raw", "predictions")
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputFileError(f"{PROBE_FILE}: malformed ({exc})") from exc
        if not len(rows) == len(raw) == len(predictions) or raw.shape != predictions.shape:
            raise InputFileError(f"{PROBE_FILE}: rows, raw and predictions differ in shape")
        return cls(rows, raw, predictions)


def make_probe(model: QuantileEta, X: pl.DataFrame, n: int = PROBE_ROWS) -> Probe:
    """The probe of a fitted ``model``: ``n`` rows of ``X`` spread over it (the first, the
    last and evenly in between), with the model's outputs on them."""
    if len(X) == 0:
        raise InputFileError("probe: no feature rows to take a probe batch from")
    picks = np.unique(np.linspace(0, len(X) - 1, num=min(n, len(X))).round().astype(np.int64))
    sample = X[picks.tolist()]
    matrix = model.matrix(sample)
    return Probe(matrix, model.tree_outputs(matrix), model.predict(sample))


def compare(probe: Probe, raw: FloatArray, predictions: FloatArray | None = None) -> str | None:
    """Why ``raw`` (and ``predictions``) differ from the probe's reference; None if they match."""
    pairs = [("raw", raw, probe.raw)]
    if predictions is not None:
        pairs.append(("calibrated", predictions, probe.predictions))
    for name, got, want in pairs:
        if got.shape != want.shape:
            return f"{name} outputs have shape {got.shape}, the reference {want.shape}"
        if not np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=False):
            gap = float(np.nanmax(np.abs(got - want))) if np.isfinite(got).any() else math.inf
            return (
                f"{name} outputs differ from the reference predictions "
                f"(max abs difference {gap:.6g} s over {len(want)} probe rows)"
            )
    return None


def inspect(files: Mapping[str, bytes]) -> ModelCheck:
    """Parse the bundle in ``files``, score the probe and compare (in THIS process: a
    broken booster may crash it; call :func:`check_files` instead)."""
    from arrive.models.artifact import ModelBundle

    try:
        model = ModelBundle.from_files(files).model
        if PROBE_FILE not in files:
            return _unverified(model)
        probe = Probe.from_bytes(files[PROBE_FILE])
    except InputFileError as exc:
        return ModelCheck("broken", str(exc))
    if probe.rows.shape[1] != len(model.features_):
        return ModelCheck(
            "broken",
            f"{PROBE_FILE}: {probe.rows.shape[1]} features, the model has {len(model.features_)}",
        )
    raw = _raw(model, probe.rows)
    mismatch = compare(probe, raw, _calibrated(model, raw + model.base(probe.rows)[:, None]))
    if mismatch is not None:
        return ModelCheck("broken", mismatch)
    return ModelCheck("ok", f"{len(probe.rows)} probe rows match the reference predictions")


def _unverified(model: QuantileEta) -> ModelCheck:
    anchor = model.boosters_[model.quantiles_[0]]
    raw = _raw(model, sample_rows(anchor, PROBE_ROWS))
    if not np.isfinite(_calibrated(model, raw)).all():
        return ModelCheck("broken", "scores non-finite values on sample rows")
    return ModelCheck(
        "unverified",
        f"registered without reference predictions ({PROBE_FILE}): parses and scores "
        f"{PROBE_ROWS} sample rows, not compared",
    )


def _raw(model: QuantileEta, rows: FloatArray) -> FloatArray:
    return np.column_stack(
        [model.boosters_[q].predict(rows, num_threads=1) for q in model.quantiles_]
    )


def _calibrated(model: QuantileEta, raw: FloatArray) -> FloatArray:
    return apply_scales(raw, model.quantiles_, model.scales_, model.anchor_offset_s_)


def check_files(files: Mapping[str, bytes], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> ModelCheck:
    """Check a model's files in a child process (see the module docstring); never raises
    for what the files contain."""
    command = [sys.executable, "-m", "arrive.models.check_child"]
    payload = msgspec.msgpack.encode(dict(files))
    try:
        done = subprocess.run(
            command, input=payload, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return ModelCheck("broken", f"the check did not finish within {timeout_s:g} s")
    if done.returncode != 0:
        return ModelCheck("broken", _death(done.returncode, done.stderr))
    try:
        return msgspec.json.decode(done.stdout.strip().splitlines()[-1], type=_Outcome).check()
    except (msgspec.DecodeError, IndexError):
        return ModelCheck("broken", f"the check gave no verdict: {_tail(done.stderr)}")


class _Outcome(msgspec.Struct, frozen=True):
    status: CheckStatus
    reason: str

    def check(self) -> ModelCheck:
        return ModelCheck(self.status, self.reason)


def _death(code: int, stderr: bytes) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"the model crashed the check process ({name})"
    else:
        how = f"the check process exited with code {code}"
    tail = _tail(stderr)
    return f"{how}: {tail}" if tail else how


def _tail(stderr: bytes) -> str:
    """What the child last said, in one short printable line: LightGBM's first fatal
    message (else its last message) without the text it "met", which can be any memory
    past the end of a truncated file; else the last line."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line and not line.startswith("terminate called")]
    said = [line for line in lines if line.startswith("[LightGBM] [")]
    fatal = [line for line in said if line.startswith("[LightGBM] [Fatal]")]
    if said:
        message = (fatal or said[-1:])[0].split("] ", 2)[-1]
        text = "LightGBM: " + message.split(" met ")[0]
    elif lines:
        text = lines[-1]
    else:
        return ""
    return "".join(c if c.isprintable() else "?" for c in text)[:_REASON_CHARS]


def sample_rows(booster: lgb.Booster, n: int, seed: int = 0) -> FloatArray:
    """``n`` rows spanning the booster's feature ranges (with some missing values)."""
    rng = np.random.default_rng(seed)
    infos = _feature_infos(booster.model_to_string())
    matrix = np.full((n, len(infos)), np.nan)
    for j, info in enumerate(infos):
        matrix[:, j] = _column(rng, info, n)
    matrix[rng.random(matrix.shape) < 0.1] = np.nan
    return np.ascontiguousarray(matrix)


def _feature_infos(text: str) -> list[str]:
    for line in text.splitlines():
        if line.startswith("feature_infos="):
            return line.split("=", 1)[1].split(" ")
    raise InputFileError("booster text has no feature_infos line")


def _column(rng: np.random.Generator, info: str, n: int) -> FloatArray:
    if info.startswith("[") and ":" in info:
        low, high = (float(x) for x in info[1:-1].split(":"))
        return rng.uniform(low - 1.0, high + 1.0, n)
    if ":" in info or info.lstrip("-").isdigit():
        categories = [float(c) for c in info.split(":")]
        return rng.choice([*categories, max(categories) + 1.0], n)
    return np.full(n, np.nan)


def _listed(matrix: FloatArray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else float(v) for v in row] for row in matrix.tolist()]


def _matrix(rows: Sequence[Sequence[float | None]]) -> FloatArray:
    matrix = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64
    )
    if matrix.ndim != 2:
        raise ValueError("expected a list of equally long rows")
    return matrix


def child_main() -> int:
    """The child's work (see :mod:`arrive.models.check_child`): read the files (msgpack on
    stdin), print the verdict as the last stdout line.

    LightGBM writes its own messages to stdout: the verdict goes to a copy of the
    original stdout, and stdout itself is pointed at stderr before any model is read.
    """
    verdict_fd = os.dup(1)
    os.dup2(2, 1)
    files = msgspec.msgpack.decode(sys.stdin.buffer.read(), type=dict[str, bytes])
    outcome = inspect(files)
    with os.fdopen(verdict_fd, "wb") as out:
        out.write(msgspec.json.encode(_Outcome(outcome.status, outcome.reason)) + b"\n")
    return 0
