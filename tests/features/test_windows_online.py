"""Online windows (Observations) agree with a brute-force sum over what each window holds,
exactly, whatever the arrival order, and survive a checkpoint round trip."""

from __future__ import annotations

import math
import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from arrive.features.windows import UNIT, Observations

LENGTHS = (600, 3600, 60)  # deliberately not sorted


def _brute(seen: list[tuple[int, int]], cutoff: int | None) -> tuple[int, int, int]:
    kept = [v for t, v in seen if cutoff is None or t >= cutoff]
    return len(kept), sum(kept), sum(v * v for v in kept)


def _sums(obs: Observations, w: int | None) -> tuple[int, int, int]:
    n, s, ss = obs.n, obs.s, obs.ss
    if w is not None:
        out = obs.out[w]
        n, s, ss = n - out[0], s - out[1], ss - out[2]
    return n, s, ss


def _expire_all(obs: Observations, mark: int) -> None:
    for w in range(len(LENGTHS)):
        obs.expire(w, mark)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 7200), st.integers(-(10**13), 10**13)),
        st.tuples(st.just("mark"), st.integers(0, 600), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps)
def test_every_window_holds_exactly_what_it_should(steps: list[tuple[str, int, int]]) -> None:
    obs = Observations(LENGTHS)
    seen: list[tuple[int, int]] = []
    mark = 0
    for kind, a, b in steps:
        if kind == "add":
            obs.add(a, b)
            seen.append((a, b))
            continue
        mark += a
        _expire_all(obs, mark)
        for w, length in enumerate(LENGTHS):
            assert _sums(obs, w) == _brute(seen, mark - length)
            assert obs.due[w] == min(
                (t + length for t, _ in seen if t >= mark - length), default=None
            )
        assert _sums(obs, None) == _brute(seen, None)
        restored = Observations.from_state(
            LENGTHS, tuple(msgspec.msgpack.decode(msgspec.msgpack.encode(obs.to_state())))
        )
        for w in (*range(len(LENGTHS)), None):
            assert _sums(restored, w) == _sums(obs, w)
        assert restored.due == obs.due


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 40))
def test_statistics_do_not_depend_on_arrival_order(seed: int, n: int) -> None:
    rng = random.Random(seed)
    points = [(rng.randrange(0, 4000), rng.randrange(0, 3600 * UNIT)) for _ in range(n)]
    shuffled = points[:]
    rng.shuffle(shuffled)
    results = []
    for order in (points, shuffled):
        obs = Observations(LENGTHS)
        for i, (t, v) in enumerate(order):
            obs.add(t, v)
            if i % 7 == 3:
                _expire_all(obs, 1000)  # expiry at different moments of the arrival
        _expire_all(obs, 4000)
        results.append(
            [obs.stats(w, ("count", "sum", "mean", "std")) for w in (*range(len(LENGTHS)), None)]
        )
    assert results[0] == results[1]


def test_statistics_of_a_window() -> None:
    obs = Observations((3600,))
    for t, seconds in [(0, 10.0), (10, 20.0), (20, 30.0)]:
        obs.add(t, int(seconds * UNIT))
    count, total, mean, std = obs.stats(0, ("count", "sum", "mean", "std"))
    assert (count, total, mean) == (3.0, 60.0, 20.0)
    assert std is not None
    assert math.isclose(std, math.sqrt(200 / 3), rel_tol=1e-15)
    obs.expire(0, 3600 + 25)  # the first three left: 0, 10 and 20 are < 25
    assert obs.stats(0, ("count", "sum", "mean", "std")) == [0.0, 0.0, None, None]
    assert obs.stat(None, "count") == 3.0
