"""Sticky assignment: one variant per unit, ramps only move units to the candidate, and
the shares match the step within binomial noise."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrive.errors import ConfigError
from arrive.rollout.assignment import Assigner, unit_key

KEYS = 100_000
#: Two-sided tail of one share check: with this, a correct hash fails a check about
#: once in a million; a biased one (by a few binomial sigmas) fails it.
TAIL = 1e-6


@given(
    salt=st.binary(min_size=1, max_size=64),
    key=st.text(),
    shares=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6),
)
def test_a_ramp_only_moves_units_from_control_to_candidate(
    salt: bytes, key: str, shares: list[float]
) -> None:
    assigner = Assigner(salt)
    seen = [assigner.variant(key, share) for share in sorted(shares)]
    first_candidate = seen.index("candidate") if "candidate" in seen else len(seen)
    assert seen == ["control"] * first_candidate + ["candidate"] * (len(seen) - first_candidate)


@given(salt=st.binary(min_size=1, max_size=64), key=st.text())
def test_a_unit_gets_the_same_position_in_every_worker(salt: bytes, key: str) -> None:
    position = Assigner(salt).position(key)
    assert Assigner(bytes(salt)).position(key) == position
    assert 0.0 <= position < 1.0


@pytest.fixture(scope="module")
def positions() -> dict[bytes, list[float]]:
    out = {}
    for salt in (b"rollout-a", b"rollout-b"):
        assigner = Assigner(salt)
        out[salt] = [assigner.position(f"customer:{i}") for i in range(KEYS)]
    return out


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5, 1.0])
def test_shares_on_100k_keys_are_within_binomial_noise(
    positions: dict[bytes, list[float]], share: float
) -> None:
    z = NormalDist().inv_cdf(1 - TAIL / 2)
    bound = z * math.sqrt(KEYS * share * (1 - share))
    for values in positions.values():
        count = sum(p < share for p in values)
        assert abs(count - KEYS * share) <= bound, (count, KEYS * share, bound)


def test_two_rollouts_draw_different_units(positions: dict[bytes, list[float]]) -> None:
    a, b = ({i for i, p in enumerate(v) if p < 0.05} for v in positions.values())
    overlap = len(a & b) / len(a)
    assert overlap < 0.2  # independent salts: about 5 % of one 5 % cohort is in the other


def test_unit_keys() -> None:
    assert unit_key("customer", order_id="o1", customer_id="c1") == "customer:c1"
    assert unit_key("customer", order_id="o1") == "order:o1"
    assert unit_key("customer", order_id="o1", customer_id="") == "order:o1"
    assert unit_key("order", order_id="o1", customer_id="c1") == "order:o1"
    assert unit_key("store", order_id="o1", store_id="s9") == "store:s9"
    assert unit_key("market", order_id="o1", market_id="m2") == "market:m2"
    assert unit_key("customer", order_id="7") != unit_key("customer", order_id="x", customer_id="7")


@pytest.mark.parametrize("unit", ["store", "market"])
def test_a_unit_the_request_lacks_is_one_line_naming_it(unit: str) -> None:
    with pytest.raises(ConfigError, match=f"{unit}_id: the rollout assigns by {unit}"):
        unit_key(unit, order_id="o1")  # type: ignore[arg-type]


@pytest.mark.parametrize("salt", [b"", bytes(65)])
def test_bad_salts(salt: bytes) -> None:
    with pytest.raises(ConfigError, match="salt: 1 to 64 bytes"):
        Assigner(salt)
