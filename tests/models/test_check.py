"""The model check: real LightGBM files, truncated, garbled or edited, checked in a child
process that may crash without taking the caller with it."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from arrive.errors import InputFileError
from arrive.models.artifact import ModelBundle
from arrive.models.check import PROBE_FILE, Probe, check_files
from arrive.testing.artifacts import garbled, out_of_range_split, small_bundle, truncated

BOOSTER = "booster_q90.txt"


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return small_bundle().to_files()


def test_an_intact_model_reproduces_its_reference_predictions(files: dict[str, bytes]) -> None:
    check = check_files(files)
    assert (check.status, check.ok) == ("ok", True)
    assert check.reason == "32 probe rows match the reference predictions"


def test_the_probe_is_real_rows_with_the_models_own_predictions(files: dict[str, bytes]) -> None:
    bundle = ModelBundle.from_files(files)
    probe = bundle.probe
    assert probe is not None
    assert probe.rows.shape == (32, 2)
    assert set(np.unique(probe.rows[:, 1])) <= {0.0, 1.0, 2.0}  # zones a, b, c, encoded
    raw = np.column_stack([bundle.model.boosters_[q].predict(probe.rows) for q in (0.5, 0.9)])
    np.testing.assert_allclose(raw, probe.raw, rtol=1e-12)
    assert (probe.predictions[:, 1] >= probe.predictions[:, 0]).all()


@pytest.mark.parametrize("keep", [0.3, 0.98, 0.999])
def test_a_truncated_booster_is_refused_before_lightgbm_reads_it(
    files: dict[str, bytes], keep: float
) -> None:
    # LightGBM follows the header's tree offsets past the end of a cut file: it aborts,
    # segfaults, or (by luck of the memory beyond) parses; none of that is left to chance
    cut = truncated(files[BOOSTER], keep)
    check = check_files({**files, BOOSTER: cut})
    assert check.status == "broken"
    assert check.reason.startswith(f"{BOOSTER}: incomplete")
    with pytest.raises(InputFileError, match=f"{BOOSTER}: incomplete"):
        ModelBundle.from_files({**files, BOOSTER: cut})  # in this process: refused, no crash


@pytest.mark.parametrize(
    ("damage", "death"),
    [
        (lambda data: garbled(data, 0.2), "SIGABRT"),
        (out_of_range_split, "SIGSEGV"),
    ],
)
def test_a_booster_that_crashes_lightgbm_crashes_the_child_not_the_caller(
    files: dict[str, bytes], damage: Callable[[bytes], bytes], death: str
) -> None:
    check = check_files({**files, BOOSTER: damage(files[BOOSTER])})
    assert not check.ok
    assert check.reason.startswith(f"the model crashed the check process ({death})")
    assert "\n" not in check.reason


@pytest.mark.parametrize("at", [0.2, 0.5, 0.8])
def test_a_garbled_booster_is_broken(files: dict[str, bytes], at: float) -> None:
    check = check_files({**files, BOOSTER: garbled(files[BOOSTER], at)})
    assert check.status == "broken"
    assert check.reason


def test_boosters_that_parse_but_predict_otherwise_are_broken(files: dict[str, bytes]) -> None:
    swapped = {**files, BOOSTER: files["booster_q50.txt"], "booster_q50.txt": files[BOOSTER]}
    check = check_files(swapped)
    assert check.status == "broken"
    assert check.reason.startswith("raw outputs differ from the reference predictions")


def test_edited_calibration_is_broken(files: dict[str, bytes]) -> None:
    meta = json.loads(files["model.json"])
    meta["anchor_offset_s"] += 30.0
    check = check_files({**files, "model.json": json.dumps(meta).encode()})
    assert check.status == "broken"
    assert check.reason.startswith("calibrated outputs differ from the reference predictions")


def test_float_rounding_is_within_the_tolerance(files: dict[str, bytes]) -> None:
    probe = Probe.from_bytes(files[PROBE_FILE])
    nudged = Probe(probe.rows, probe.raw * (1 + 1e-9), probe.predictions * (1 + 1e-9))
    assert check_files({**files, PROBE_FILE: nudged.to_bytes()}).status == "ok"


def test_a_model_registered_without_a_probe_is_scored_not_compared(
    files: dict[str, bytes],
) -> None:
    older = {name: data for name, data in files.items() if name != PROBE_FILE}
    check = check_files(older)
    assert (check.status, check.ok) == ("unverified", True)
    assert "without reference predictions" in check.reason
    broken = check_files({**older, BOOSTER: out_of_range_split(older[BOOSTER])})
    assert broken.reason.startswith("the model crashed the check process (SIGSEGV)")


def test_a_malformed_probe_is_broken(files: dict[str, bytes]) -> None:
    check = check_files({**files, PROBE_FILE: b'{"format": 1, "rows": [[1.0]]}'})
    assert check.status == "broken"
    assert check.reason.startswith(f"{PROBE_FILE}: malformed")


def test_a_check_past_its_timeout_is_broken(files: dict[str, bytes]) -> None:
    check = check_files(files, timeout_s=0.001)
    assert check.status == "broken"
    assert check.reason == "the check did not finish within 0.001 s"
