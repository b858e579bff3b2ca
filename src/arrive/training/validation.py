"""Data validation before training: is this data fit to train the next model on?

:func:`validate` checks the orders of a data directory against the :class:`DataProfile`
of the last accepted run (and against themselves where no run was accepted yet):

==============  =======================================================  ==========
check           what it compares                                          severity
==============  =======================================================  ==========
``schema``      canonical columns present with their types; every column  block
                of the last run still there (renamed upstream?)
``nulls``       null rate per column against the last run                 warn/block
``volume``      orders of each new day against the trailing weeks'        warn/block
                median day
``target``      median and P90 of the delivery time against the last      warn/block
                run (a unit error moves both 60-fold); share of orders
                cancelled
``duplicates``  order ids that occur twice                                block
``coverage``    days without a single order since the last run (on a      block
                first run, gaps in the history only warn)
==============  =======================================================  ==========

Each finding is a :class:`Finding` with its severity (``ok``, ``warn`` or ``block``), a
one-line message and the figures behind it; :attr:`Validation.blocked` says whether
training must stop. Thresholds are :class:`Thresholds` (fixed defaults, documented in
docs/retraining.md). The profile of an accepted run is saved beside its model
(:meth:`DataProfile.to_json`) and is the reference of the next run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Final, Literal

import msgspec
import polars as pl

from arrive import datadir
from arrive.errors import ConfigError

Severity = Literal["ok", "warn", "block"]
_RANK: Final = {"ok": 0, "warn": 1, "block": 2}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a change is a warning and when it blocks training.

    Attributes:
        null_warn_pp / null_block_pp: rise of a column's null rate (percentage points).
        volume_warn / volume_block: a new day's orders over (or under) the trailing
            median day by this factor.
        target_warn / target_block: relative change of the median or P90 delivery time.
        cancelled_warn_pp / cancelled_block_pp: rise of the share of orders cancelled.
        trailing_days: days before the new ones that make the volume baseline.
    """

    null_warn_pp: float = 5.0
    null_block_pp: float = 20.0
    volume_warn: float = 3.0
    volume_block: float = 10.0
    target_warn: float = 0.15
    target_block: float = 0.5
    cancelled_warn_pp: float = 5.0
    cancelled_block_pp: float = 20.0
    trailing_days: int = 28

    def __post_init__(self) -> None:
        pairs = {
            "null": (self.null_warn_pp, self.null_block_pp),
            "volume": (self.volume_warn, self.volume_block),
            "target": (self.target_warn, self.target_block),
            "cancelled": (self.cancelled_warn_pp, self.cancelled_block_pp),
        }
        for name, (warn, block) in pairs.items():
            if not 0 < warn <= block:
                raise ConfigError(f"validation thresholds {name}: need 0 < warn <= block")
        if self.volume_warn <= 1:
            raise ConfigError("validation thresholds volume: factors must be > 1")
        if self.trailing_days < 1:
            raise ConfigError("validation thresholds trailing_days: must be >= 1")


@dataclass(frozen=True, slots=True)
class DataProfile:
    """What an accepted run's data looked like: the reference of the next run."""

    columns: dict[str, str]
    null_rates: dict[str, float]
    rows: int
    first_day: str
    last_day: str
    target_median_s: float | None
    target_p90_s: float | None
    cancelled_share: float

    def to_json(self) -> bytes:
        return msgspec.json.encode(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> DataProfile:
        return msgspec.json.decode(raw, type=cls)


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    severity: Severity
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Validation:
    """Every finding of one run, and the profile of the data validated."""

    findings: list[Finding]
    profile: DataProfile

    @property
    def blocked(self) -> bool:
        return any(f.severity == "block" for f in self.findings)

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), key=_RANK.__getitem__, default="ok")

    def lines(self) -> list[str]:
        """One line per finding, worst first."""
        ordered = sorted(self.findings, key=lambda f: -_RANK[f.severity])
        return [f"{f.severity:5} {f.check}: {f.message}" for f in ordered]


def profile(orders: pl.DataFrame, timezone: str) -> DataProfile:
    """The :class:`DataProfile` of ``orders`` (days in the marketplace's ``timezone``)."""
    days = _daily(orders, timezone).get_column("day")
    delivered = _delivered_durations(orders)
    return DataProfile(
        columns={name: str(dtype) for name, dtype in orders.schema.items()},
        null_rates=_null_rates(orders),
        rows=orders.height,
        first_day=str(days.min()) if len(days) else "",
        last_day=str(days.max()) if len(days) else "",
        target_median_s=_quantile(delivered, 0.5),
        target_p90_s=_quantile(delivered, 0.9),
        cancelled_share=_cancelled_share(orders),
    )


def validate(
    orders: pl.DataFrame,
    timezone: str,
    reference: DataProfile | None = None,
    thresholds: Thresholds | None = None,
) -> Validation:
    """Check ``orders`` (a data directory's table) against ``reference``, the profile of
    the last accepted run (None on the first run: the checks that need it compare the
    data with itself or pass)."""
    limits = thresholds or Thresholds()
    current = profile(orders, timezone)
    findings = [
        _schema(orders, reference),
        _nulls(current, reference, limits),
        _volume(orders, timezone, reference, limits),
        _target(current, reference, limits),
        _cancelled(current, reference, limits),
        _duplicates(orders),
        _coverage(orders, timezone, reference),
    ]
    return Validation(findings, current)


# --- the checks -----------------------------------------------------------------------


def _schema(orders: pl.DataFrame, reference: DataProfile | None) -> Finding:
    missing = [n for n in datadir.ORDER_COLUMNS if n not in orders.columns]
    wrong = {
        n: f"{orders.schema[n]} (expected {t})"
        for n, t in datadir.ORDER_COLUMNS.items()
        if n in orders.columns and orders.schema[n] != t
    }
    gone = [n for n in (reference.columns if reference else {}) if n not in orders.columns]
    figures = {"missing": missing, "wrong_type": wrong, "gone_since_last_run": gone}
    if missing or wrong:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"{n} is {t}" for n, t in wrong.items()]
        return Finding("schema", "block", "; ".join(parts), figures)
    if gone:
        message = f"{', '.join(gone)} no longer present (renamed or dropped upstream?)"
        return Finding("schema", "block", message, figures)
    return Finding("schema", "ok", f"{len(orders.columns)} columns as expected", figures)


def _nulls(current: DataProfile, reference: DataProfile | None, limits: Thresholds) -> Finding:
    if reference is None:
        return Finding("nulls", "ok", "no earlier run to compare null rates with")
    rises = {
        name: round(100 * (rate - reference.null_rates[name]), 2)
        for name, rate in current.null_rates.items()
        if name in reference.null_rates
    }
    worst = max(rises.items(), key=lambda kv: kv[1], default=("", 0.0))
    severity = _grade(worst[1], limits.null_warn_pp, limits.null_block_pp)
    if severity == "ok":
        return Finding("nulls", "ok", "null rates as in the last run", {"rise_pp": rises})
    message = (
        f"{worst[0]}: null rate {100 * current.null_rates[worst[0]]:.1f} % "
        f"(last run {100 * reference.null_rates[worst[0]]:.1f} %)"
    )
    return Finding("nulls", severity, message, {"rise_pp": rises})


def _volume(
    orders: pl.DataFrame, timezone: str, reference: DataProfile | None, limits: Thresholds
) -> Finding:
    daily = _daily(orders, timezone)
    new_from = _new_from(daily, reference)
    new = daily.filter(pl.col("day") >= new_from)
    before = daily.filter(
        (pl.col("day") < new_from)
        & (pl.col("day") >= new_from - timedelta(days=limits.trailing_days))
    )
    if new.is_empty() or before.is_empty():
        return Finding("volume", "ok", "no trailing days to compare the volume with")
    baseline = float(before.select(pl.col("orders").median()).item())
    ratios = new.with_columns(ratio=pl.col("orders") / baseline)
    far = ratios.with_columns(off=pl.max_horizontal(pl.col("ratio"), 1 / pl.col("ratio")))
    worst = far.sort("off", descending=True).row(0, named=True)
    severity = _grade(worst["off"], limits.volume_warn, limits.volume_block)
    figures = {"baseline_per_day": baseline, "days": _day_counts(new)}
    message = (
        f"{worst['day']}: {worst['orders']:,} orders, {worst['ratio']:.2f}× the trailing "
        f"median day ({baseline:,.0f})"
    )
    return Finding("volume", severity, message, figures)


def _target(current: DataProfile, reference: DataProfile | None, limits: Thresholds) -> Finding:
    figures = {"median_s": current.target_median_s, "p90_s": current.target_p90_s}
    if current.target_median_s is None:
        return Finding("target", "block", "no delivered order with a duration", figures)
    if reference is None or reference.target_median_s is None or reference.target_p90_s is None:
        return Finding("target", "ok", "no earlier run to compare the target with", figures)
    assert current.target_p90_s is not None
    shifts = {
        "median": _relative(current.target_median_s, reference.target_median_s),
        "p90": _relative(current.target_p90_s, reference.target_p90_s),
    }
    name, shift = max(shifts.items(), key=lambda kv: kv[1])
    severity = _grade(shift, limits.target_warn, limits.target_block)
    now = current.target_median_s if name == "median" else current.target_p90_s
    then = reference.target_median_s if name == "median" else reference.target_p90_s
    message = (
        f"{name} delivery time {now / 60:.1f} min against {then / 60:.1f} min in the last run"
        + (" (a unit error?)" if now / then > 30 or then / now > 30 else "")
    )
    return Finding("target", severity, message, figures | {"shift": shifts})


def _cancelled(current: DataProfile, reference: DataProfile | None, limits: Thresholds) -> Finding:
    share = current.cancelled_share
    if reference is None:
        return Finding("cancelled", "ok", f"{100 * share:.1f} % of orders cancelled")
    rise = 100 * (share - reference.cancelled_share)
    severity = _grade(rise, limits.cancelled_warn_pp, limits.cancelled_block_pp)
    message = (
        f"{100 * share:.1f} % of orders cancelled "
        f"(last run {100 * reference.cancelled_share:.1f} %)"
    )
    return Finding("cancelled", severity, message, {"rise_pp": rise})


def _duplicates(orders: pl.DataFrame) -> Finding:
    if "order_id" not in orders.columns:
        return Finding("duplicates", "ok", "no order ids to compare (see schema)")
    twice = orders.get_column("order_id").is_duplicated()
    count = int(twice.sum())
    if count == 0:
        return Finding("duplicates", "ok", "every order id once", {"duplicated_rows": 0})
    examples = orders.filter(twice).get_column("order_id").unique().sort().head(3).to_list()
    message = f"{count:,} rows share an order id (e.g. {', '.join(map(str, examples))})"
    return Finding("duplicates", "block", message, {"duplicated_rows": count})


def _coverage(orders: pl.DataFrame, timezone: str, reference: DataProfile | None) -> Finding:
    """Days without orders: since the last accepted run they block (a day of data lost
    upstream); on a first run they warn (history as it is, known to the user)."""
    daily = _daily(orders, timezone)
    if daily.is_empty():
        return Finding("coverage", "block", "no orders at all")
    first, last = daily.get_column("day").min(), daily.get_column("day").max()
    assert isinstance(first, date)
    assert isinstance(last, date)
    present = set(daily.get_column("day").to_list())
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    gaps = [day for day in days if day not in present]
    figures = {"first_day": str(first), "last_day": str(last), "missing_days": list(map(str, gaps))}
    if not gaps:
        return Finding("coverage", "ok", f"every day from {first} to {last}", figures)
    since = date.fromisoformat(reference.last_day) if reference and reference.last_day else None
    new_gaps = [day for day in gaps if since is not None and day > since]
    shown = new_gaps or gaps
    listed = ", ".join(map(str, shown[:5])) + (" …" if len(shown) > 5 else "")
    if new_gaps:
        message = f"{len(new_gaps)} day(s) without orders since the last run: {listed}"
        return Finding("coverage", "block", message, figures)
    message = f"{len(gaps)} day(s) without orders in the history: {listed}"
    return Finding("coverage", "warn" if since is None else "ok", message, figures)


# --- shared measurements --------------------------------------------------------------


def _daily(orders: pl.DataFrame, timezone: str) -> pl.DataFrame:
    if "created_at" not in orders.columns or orders.is_empty():
        return pl.DataFrame(schema={"day": pl.Date(), "orders": pl.UInt32()})
    local = pl.col("created_at").dt.convert_time_zone(timezone).dt.date().alias("day")
    return orders.group_by(local).agg(orders=pl.len()).drop_nulls("day").sort("day")


def _new_from(daily: pl.DataFrame, reference: DataProfile | None) -> date:
    """The first day that is new since ``reference`` (the last day when none is)."""
    last = daily.get_column("day").max()
    assert isinstance(last, date)
    if reference is None or not reference.last_day:
        return last
    return min(date.fromisoformat(reference.last_day) + timedelta(days=1), last)


def _day_counts(frame: pl.DataFrame) -> dict[str, int]:
    return {str(d): int(n) for d, n in frame.select("day", "orders").iter_rows()}


def _null_rates(orders: pl.DataFrame) -> dict[str, float]:
    if orders.is_empty():
        return dict.fromkeys(orders.columns, 0.0)
    counts = orders.null_count().row(0, named=True)
    return {name: counts[name] / orders.height for name in orders.columns}


def _delivered_durations(orders: pl.DataFrame) -> pl.Series:
    if "duration_s" not in orders.columns:
        return pl.Series("duration_s", [], pl.Float64())
    return orders.get_column("duration_s").drop_nulls().cast(pl.Float64())


def _cancelled_share(orders: pl.DataFrame) -> float:
    if "status" not in orders.columns or orders.is_empty():
        return 0.0
    return float(orders.select((pl.col("status") == "cancelled").mean()).item() or 0.0)


def _quantile(values: pl.Series, q: float) -> float | None:
    if values.is_empty():
        return None
    return float(values.to_frame().select(pl.first().quantile(q, "linear")).item())


def _relative(now: float, then: float) -> float:
    """How far apart two positive figures are, symmetric: 0.5 is 1.5× either way."""
    return max(now, then) / max(min(now, then), 1e-9) - 1.0


def _grade(value: float, warn: float, block: float) -> Severity:
    return "block" if value >= block else "warn" if value >= warn else "ok"
