"""Data validation before training: each check passes on clean data and catches its
fault (a day missing, a column renamed upstream, nulls, a 10× day, a target in the wrong
unit, duplicates, cancellations), with a one-line message that names what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from arrive.errors import ConfigError
from arrive.testing.factories import daily_orders
from arrive.training.validation import DataProfile, Thresholds, profile, validate

ZONE = "Europe/Berlin"
START = datetime(2025, 3, 3, 6, tzinfo=UTC)  # daily_orders starts here


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    return daily_orders()


@pytest.fixture(scope="module")
def reference(history: pl.DataFrame) -> DataProfile:
    return profile(history, ZONE)


def _next_day(seed: int = 1, per_day: int = 200) -> pl.DataFrame:
    return daily_orders(days=1, per_day=per_day, seed=seed, start=START + timedelta(days=28))


def _found(orders: pl.DataFrame, reference: DataProfile | None, check: str) -> tuple[str, str]:
    result = validate(orders, ZONE, reference)
    (finding,) = [f for f in result.findings if f.check == check]
    return finding.severity, finding.message


def test_clean_data_passes_every_check_on_the_first_run_and_the_next(
    history: pl.DataFrame, reference: DataProfile
) -> None:
    first = validate(history, ZONE)
    assert first.worst == "ok", first.lines()
    appended = pl.concat([history, _next_day()])
    later = validate(appended, ZONE, reference)
    assert later.worst == "ok", later.lines()
    assert not later.blocked


def test_a_day_missing_since_the_last_run_blocks_and_names_the_day(
    history: pl.DataFrame,
) -> None:
    local_day = pl.col("created_at").dt.convert_time_zone(ZONE).dt.date()
    earlier = profile(history.filter(local_day < datetime(2025, 3, 24).date()), ZONE)
    gap = history.filter(local_day != datetime(2025, 3, 26).date())
    assert _found(gap, earlier, "coverage") == (
        "block",
        "1 day(s) without orders since the last run: 2025-03-26",
    )


def test_gaps_in_the_history_warn_on_a_first_run_and_pass_once_accepted(
    history: pl.DataFrame,
) -> None:
    local_day = pl.col("created_at").dt.convert_time_zone(ZONE).dt.date()
    gap = history.filter(local_day != datetime(2025, 3, 10).date())
    message = "1 day(s) without orders in the history: 2025-03-10"
    assert _found(gap, None, "coverage") == ("warn", message)
    assert _found(gap, profile(gap, ZONE), "coverage") == ("ok", message)


def test_a_column_renamed_upstream_blocks(history: pl.DataFrame, reference: DataProfile) -> None:
    renamed = pl.concat([history, _next_day()]).rename({"vehicle": "vehicle_type"})
    severity, message = _found(renamed, reference, "schema")
    assert severity == "block"
    assert message == "vehicle no longer present (renamed or dropped upstream?)"


def test_a_canonical_column_missing_or_of_the_wrong_type_blocks(history: pl.DataFrame) -> None:
    assert _found(history.drop("duration_s"), None, "schema") == ("block", "missing duration_s")
    as_text = history.with_columns(pl.col("duration_s").cast(pl.String))
    severity, message = _found(as_text, None, "schema")
    assert severity == "block"
    assert message.startswith("duration_s is String (expected Float64)")


@pytest.mark.parametrize(("share", "severity"), [(0.08, "warn"), (0.3, "block"), (0.0, "ok")])
def test_a_rise_in_nulls_warns_then_blocks(
    history: pl.DataFrame, reference: DataProfile, share: float, severity: str
) -> None:
    rng = np.random.default_rng(3)
    holes = pl.Series(rng.random(history.height) < share)
    damaged = history.with_columns(
        store_category=pl.when(holes).then(None).otherwise(pl.col("store_category"))
    )
    found, message = _found(damaged, reference, "nulls")
    assert found == severity
    if severity != "ok":
        assert message.startswith("store_category: null rate")


def test_a_day_ten_times_the_usual_volume_blocks(
    history: pl.DataFrame, reference: DataProfile
) -> None:
    spike = pl.concat([history, _next_day(per_day=2000)])
    severity, message = _found(spike, reference, "volume")
    assert severity == "block"
    assert message.startswith("2025-03-31: 2,000 orders, 10.00× the trailing median day")
    normal = pl.concat([history, _next_day(per_day=230)])
    assert _found(normal, reference, "volume")[0] == "ok"


def test_a_target_in_the_wrong_unit_blocks(history: pl.DataFrame, reference: DataProfile) -> None:
    # minutes read as seconds: every delivery time 60 times too short
    wrong = pl.concat([history, _next_day()]).with_columns(pl.col("duration_s") / 60)
    severity, message = _found(wrong, reference, "target")
    assert severity == "block"
    assert "a unit error?" in message


def test_a_modest_target_shift_warns(history: pl.DataFrame, reference: DataProfile) -> None:
    slower = history.with_columns(pl.col("duration_s") * 1.2)
    assert _found(slower, reference, "target")[0] == "warn"


def test_duplicated_order_ids_block(history: pl.DataFrame) -> None:
    twice = pl.concat([history, history.head(3)])
    severity, message = _found(twice, None, "duplicates")
    assert severity == "block"
    assert message.startswith("6 rows share an order id")


def test_a_surge_of_cancellations_blocks(history: pl.DataFrame, reference: DataProfile) -> None:
    rng = np.random.default_rng(5)
    cancel = pl.Series(rng.random(history.height) < 0.3)
    worse = history.with_columns(
        status=pl.when(cancel).then(pl.lit("cancelled")).otherwise(pl.col("status"))
    )
    assert _found(worse, reference, "cancelled")[0] == "block"


def test_the_profile_survives_its_json(reference: DataProfile) -> None:
    assert DataProfile.from_json(reference.to_json()) == reference
    assert reference.rows == 28 * 200
    assert reference.first_day == "2025-03-03"
    assert reference.last_day == "2025-03-30"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"null_warn_pp": 30.0}, "null: need 0 < warn <= block"),
        ({"volume_warn": 1.0}, "volume: factors must be > 1"),
        ({"trailing_days": 0}, "trailing_days: must be >= 1"),
    ],
)
def test_bad_thresholds_name_the_field(change: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Thresholds(**change)  # type: ignore[arg-type]
