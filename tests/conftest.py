"""Shared fixtures: small and composable."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
FOOD_DELIVERY_CSV = SHARED_DATA / "food_delivery.csv.gz"
DOORDASH_CSV = SHARED_DATA / "doordash_partial_head.csv.gz"


@pytest.fixture
def food_delivery_csv() -> Path:
    if not FOOD_DELIVERY_CSV.is_file():
        pytest.fail(f"{FOOD_DELIVERY_CSV} is missing: the real-data tests need ../shared/data")
    return FOOD_DELIVERY_CSV


@pytest.fixture
def doordash_csv() -> Path:
    if not DOORDASH_CSV.is_file():
        pytest.fail(f"{DOORDASH_CSV} is missing: the real-data tests need ../shared/data")
    return DOORDASH_CSV
