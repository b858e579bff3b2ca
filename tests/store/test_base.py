"""The store's data types, validation and merge rule, without a backend."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

import arrive.store
from arrive.store.base import (
    EPOCH,
    FeatureValue,
    checked_row,
    from_epoch_us,
    merge_row,
    supersedes,
    to_epoch_us,
)
from arrive.testing.store_contract import T0, T0_US


@pytest.mark.parametrize(
    "when",
    [
        EPOCH,
        datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2262, 4, 11, tzinfo=UTC),
    ],
)
def test_epoch_microseconds_are_exact(when: datetime) -> None:
    assert from_epoch_us(to_epoch_us(when)) == when


def test_naive_event_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FeatureValue.at(1.0, datetime(2024, 1, 1))


def test_offsets_are_converted_to_utc() -> None:
    local = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert from_epoch_us(to_epoch_us(local)) == datetime(2024, 1, 1, tzinfo=UTC)


def test_a_later_event_time_supersedes_whatever_the_value() -> None:
    assert supersedes(FeatureValue(None, 2), FeatureValue("z", 1))
    assert not supersedes(FeatureValue("z", 1), FeatureValue(None, 2))


def test_equal_event_times_follow_one_total_order() -> None:
    ladder = [None, -1.0, 0.0, 3.0, "", "A", "a", "ß"]
    cells = [FeatureValue(v, 5) for v in ladder]
    for i, low in enumerate(cells):
        for high in cells[i + 1 :]:
            assert supersedes(high, low)
            assert not supersedes(low, high)
        assert not supersedes(low, low)


def test_merge_reports_whether_anything_changed() -> None:
    stored = {"x": FeatureValue(1.0, 5)}
    assert not merge_row(stored, {"x": FeatureValue(0.0, 4)})
    assert merge_row(stored, {"x": FeatureValue(0.0, 6), "y": FeatureValue(None, 1)})
    assert stored == {"x": FeatureValue(0.0, 6), "y": FeatureValue(None, 1)}


def test_numpy_scalars_are_normalised() -> None:
    row = checked_row(("store", "a"), {"x": FeatureValue(np.float32(1.5), np.int64(7))})  # type: ignore[arg-type]
    assert row == {"x": FeatureValue(1.5, 7)}
    assert type(row["x"].value) is float
    assert type(row["x"].event_time_us) is int


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then CamelCase, then everything else."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_public_surface_is_sorted_and_importable() -> None:
    names = arrive.store.__all__
    assert names == sorted(names, key=_isort_key)
    assert all(hasattr(arrive.store, name) for name in names)


def test_importing_the_store_does_not_import_redis() -> None:
    code = "import sys, arrive.store; print('redis' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_contract_epoch_constants_agree() -> None:
    assert to_epoch_us(T0) == T0_US
