"""Guardrails: is the candidate worse than the control, safe to ramp, or not yet known?

:func:`evaluate` is pure: it takes the monitor's joined rows (a Polars frame, the
columns of :data:`COLUMNS`), keeps the two versions' rows over the period and markets
both cover, and judges each rail with an always-valid confidence sequence
(:mod:`arrive.rollout.sequential`), so it may be called after every batch of orders
without inflating false rollbacks:

* ``breach`` when some rail has evidence that the candidate is worse than its limit
  (one-sided, ``alpha_breach`` shared by the rails measured: Bonferroni);
* ``pass`` when every rail has evidence that the candidate is within its
  non-inferiority margin (``alpha_pass`` each: all must pass, an intersection-union
  test needs no correction);
* ``hold`` otherwise, and always before ``min_orders`` of each version.

Rails (candidate against control unless said):

* ``p50_mae``: relative P50 MAE. Paired over the orders both versions predicted
  (shadow scoring: the candidate scores the control's orders in the shadow phase, and at
  a canary step each version scores the other's) when there are enough of them, else
  two-sample.
* ``p90_coverage``: breach when the candidate's own P90 coverage is outside
  ``target ± tolerance``; pass when it is at most ``coverage_margin`` above the
  control's (too wide a P90; ``late_rate`` judges the other side).
* ``late_rate`` (actual after the P90) and ``fallback_share``: differences (the late
  rate, like the coverage's pass, in pairs when ``p50_mae`` is).
* ``error_rate``: the difference of the shares of requests that ended in an error (the
  service answered 5xx; rows with an ``error``, read when the rows carry the column),
  judged once either version has one: an errored request has no prediction, so it is
  left out of every other rail, and this rail alone may breach before ``min_orders``
  answered orders of each version (a candidate whose requests all fail would otherwise
  hold its step for ever).
* ``cancel_rate``: when the rows carry an ``outcome`` column (``cancelled`` rows
  count, with no duration); the monitor's joined rows carry it.
* ``delivery_p95``: breach when more than 5 % of the candidate's orders take longer
  than the control's p95 plus the limit (the candidate's p95 then exceeds it),
  the control's p95 taken as known.
* ``latency_p99``: when both versions answered ``min_orders`` requests whose service
  time was logged (``latency_s``): breach when more than 1 % of the candidate's answers
  took longer than the control's p99 plus ``latency_limit_ms``, the control's p99 taken
  as known. A safety rail only: it never holds a step (proving a p99 no worse takes far
  more requests than the other rails need), it rolls back a slower candidate.

``fallback_share``, ``error_rate``, ``latency_p99``, ``delivery_p95`` and ``cancel_rate`` judge what
customers saw: the rows a version answered, not those it scored in the shadow
(``variant`` ``shadow``, when the rows carry the column; shadow rows carry no latency),
so they are left out while one version answers no customer (the shadow phase, the 100 %
step). ``delivery_p95`` and ``cancel_rate`` also need two arms of different orders: when
both versions' rows are mostly the same orders (rows without ``variant``,
:data:`SAME_ORDERS`), the outcomes are the same for both and these two rails are left
out of the verdict too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive.errors import ConfigError, DataError
from arrive.rollout.sequential import Interval, sequence

Action = Literal["hold", "pass", "breach"]
Floats: TypeAlias = npt.NDArray[np.float64]
COLUMNS: Final = ("version", "time", "p50_s", "p90_s", "outcome_time", "created_at", "fallback")
"""The columns :func:`evaluate` needs; ``market_id`` (segments), ``order_id`` (pairs),
``outcome`` (``delivered`` / ``cancelled``), ``variant`` (``shadow`` rows) and ``error``
(requests that ended in an error) are read when present."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guardrails decided, why (one line naming the rails), and the figures."""

    action: Action
    reason: str
    figures: dict[str, float]


@dataclass(frozen=True, slots=True)
class Guardrails:
    """Limits and error rates of the guardrails; shares and rates are fractions.

    Attributes:
        min_orders: orders of each version before any decision.
        alpha_breach: chance of a breach when the candidate is within every limit,
            over every look.
        alpha_pass: chance of a pass per rail when the candidate is beyond its margin.
        tuned_orders: joined orders at which the sequences are tightest.
        mae_breach: breach when the candidate's P50 MAE exceeds (1 + this) × control's.
        mae_margin: pass needs it below (1 + this) × control's.
        coverage_target, coverage_tolerance: the P90 coverage band (breach outside).
        coverage_margin: pass needs the candidate's coverage below control's + this.
        late_breach, late_margin: on the late-rate difference (candidate − control).
        fallback_breach, fallback_margin: on the fallback-share difference.
        error_breach, error_margin: on the error-rate difference.
        cancel_limit: on the cancellation-rate difference (breach above, pass below).
        p95_limit_s: on the delivery-time p95 difference, seconds.
        latency_limit_ms: breach when more than 1 % of the candidate's answers took
            longer than the control's p99 plus this, milliseconds (never holds a step).

    Raises:
        ConfigError: a value is out of range (the message names it).
    """

    min_orders: int = 300
    alpha_breach: float = 0.01
    alpha_pass: float = 0.05
    tuned_orders: int = 2000
    mae_breach: float = 0.0
    mae_margin: float = 0.05
    coverage_target: float = 0.90
    coverage_tolerance: float = 0.02
    coverage_margin: float = 0.02
    late_breach: float = 0.0
    late_margin: float = 0.02
    fallback_breach: float = 0.0
    fallback_margin: float = 0.01
    cancel_limit: float = 0.01
    p95_limit_s: float = 180.0
    latency_limit_ms: float = 10.0
    error_breach: float = 0.0
    error_margin: float = 0.01

    def __post_init__(self) -> None:
        for name in ("alpha_breach", "alpha_pass"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{name}: must lie within (0, 1), got {getattr(self, name)}")
        for name in ("min_orders", "tuned_orders"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for item in fields(self)[4:]:
            if getattr(self, item.name) < 0:
                raise ConfigError(f"{item.name}: must be >= 0, got {getattr(self, item.name)}")
        target, tolerance = self.coverage_target, self.coverage_tolerance
        if not (target - tolerance > 0 and target + tolerance < 1):
            raise ConfigError("coverage_target ± coverage_tolerance: must lie within (0, 1)")


@dataclass(frozen=True, slots=True)
class _Arms:
    """Each version's delivered rows (with ``error_s``, ``actual_s``), the rows it answered
    customers with, every outcome (``every_*``: no shadow rows, with the requests that
    ended in an error), the delivered ones of those (``answered_*``, no errors), and the
    orders both predicted (``error_c``, ``error_0``)."""

    control: pl.DataFrame
    candidate: pl.DataFrame
    every_control: pl.DataFrame
    every_candidate: pl.DataFrame
    answered_control: pl.DataFrame
    answered_candidate: pl.DataFrame
    pairs: pl.DataFrame


@dataclass(frozen=True, slots=True)
class _Rail:
    name: str
    action: Action
    detail: str
    figures: dict[str, float]


Check: TypeAlias = Callable[[_Arms, Guardrails, float], _Rail]


def evaluate(joined: pl.DataFrame, control: str, candidate: str, rails: Guardrails) -> Verdict:
    """Judge ``candidate`` against ``control`` on their joined rows (see the module).

    Raises:
        DataError: ``joined`` lacks a column of :data:`COLUMNS` (the message names it).
    """
    missing = [name for name in COLUMNS if name not in joined.columns]
    if missing:
        raise DataError(f"joined rows: missing column {missing[0]!r}")
    arms = _arms(joined, control, candidate)
    figures = {
        "orders_control": float(arms.control.height),
        "orders_candidate": float(arms.candidate.height),
        "orders_paired": float(arms.pairs.height),
    }
    fewest = min(arms.control.height, arms.candidate.height)
    if fewest < rails.min_orders:
        reason = (
            f"minimum sample: {arms.candidate.height} candidate and {arms.control.height} "
            f"control orders, {rails.min_orders} of each needed"
        )
        early = _early_errors(arms, rails)
        if early is not None:
            figures.update(early.figures)
            if early.action == "breach":
                return _verdict([early], figures)
        return Verdict("hold", reason, figures)
    checks = _rails(arms, rails)
    results = [check(arms, rails, rails.alpha_breach / len(checks)) for check in checks]
    for result in results:
        figures.update(result.figures)
    return _verdict(results, figures)


def _verdict(results: list[_Rail], figures: dict[str, float]) -> Verdict:
    for action in ("breach", "hold"):
        chosen = [r for r in results if r.action == action]
        if chosen:
            text = "; ".join(f"{r.name} {r.detail}" for r in chosen)
            label = "worse" if action == "breach" else "undecided"
            return Verdict(action, f"{label}: {text}", figures)
    return Verdict(
        "pass", "every rail within its margin: " + ", ".join(r.name for r in results), figures
    )


def _rails(arms: _Arms, rails: Guardrails) -> list[Check]:
    checks: list[Check] = [_mae, _coverage, _late]
    if arms.answered_control.is_empty() or arms.answered_candidate.is_empty():
        # one version answered no customer
        return checks
    checks.append(_fallback)
    if _has_errors(arms):
        checks.append(_errors)
    if _has_latencies(arms, rails):
        checks.append(_latency)
    if _same_orders(arms, rails):
        return checks
    checks.append(_delivery_p95)
    if "outcome" in arms.every_control.columns:
        checks.append(_cancel)
    return checks


SAME_ORDERS: Final = 0.9
"""Share of each version's orders that both predicted above which the arms count as the
same orders (shadow scoring), where the business rails have nothing to compare."""


def _same_orders(arms: _Arms, rails: Guardrails) -> bool:
    """Both versions answered (mostly) the same orders (rows without ``variant``, scored
    in the shadow): the deliveries and cancellations are the same for both, so
    ``delivery_p95`` and ``cancel_rate`` cannot tell them apart and are left out."""
    control, candidate = arms.answered_control, arms.answered_candidate
    pairs = _pairs(control, candidate).height
    most = SAME_ORDERS * max(control.height, candidate.height)
    return pairs >= rails.min_orders and pairs >= most


def _arms(joined: pl.DataFrame, control: str, candidate: str) -> _Arms:
    rows = joined.filter(pl.col("version").is_in([control, candidate]))
    rows = _same_period(_same_markets(rows, control, candidate), control, candidate)
    created = pl.col("created_at").fill_null(pl.col("time"))
    rows = rows.with_columns(
        actual_s=(pl.col("outcome_time") - created).dt.total_microseconds() / 1e6,
        fallback=pl.col("fallback").fill_null("none"),
    )
    rows = rows.with_columns(error_s=(pl.col("p50_s") - pl.col("actual_s")).abs())
    every = {v: rows.filter(pl.col("version") == v) for v in (control, candidate)}
    done = {v: _delivered(_answered(frame)) for v, frame in every.items()}
    served = {v: _served(frame) for v, frame in every.items()}
    answered = {v: _served(frame) for v, frame in done.items()}
    return _Arms(
        done[control],
        done[candidate],
        served[control],
        served[candidate],
        answered[control],
        answered[candidate],
        _pairs(done[control], done[candidate]),
    )


def _served(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows of answers customers were given (not scored in the shadow)."""
    if "variant" not in rows.columns:
        return rows
    return rows.filter(pl.col("variant").fill_null("") != "shadow")


def _answered(rows: pl.DataFrame) -> pl.DataFrame:
    """The rows with a prediction (not requests that ended in an error)."""
    if "error" not in rows.columns:
        return rows
    return rows.filter(pl.col("error").is_null())


def _delivered(rows: pl.DataFrame) -> pl.DataFrame:
    if "outcome" not in rows.columns:
        return rows
    return rows.filter(pl.col("outcome").fill_null("delivered") == "delivered")


def _same_markets(rows: pl.DataFrame, control: str, candidate: str) -> pl.DataFrame:
    if "market_id" not in rows.columns:
        return rows
    rows = rows.with_columns(market_id=pl.col("market_id").fill_null("unknown"))
    markets = [
        set(rows.filter(pl.col("version") == v).get_column("market_id"))
        for v in (control, candidate)
    ]
    return rows.filter(pl.col("market_id").is_in(sorted(markets[0] & markets[1])))


def _same_period(rows: pl.DataFrame, control: str, candidate: str) -> pl.DataFrame:
    spans = rows.group_by("version").agg(start=pl.col("time").min(), end=pl.col("time").max())
    if spans.height < len((control, candidate)):
        return rows.clear()
    start, end = spans.get_column("start").max(), spans.get_column("end").min()
    return rows.filter(pl.col("time").is_between(start, end))


def _pairs(control: pl.DataFrame, candidate: pl.DataFrame) -> pl.DataFrame:
    """The orders both versions predicted: each one's absolute P50 error (``error_*``)
    and whether it came after the P90 (``late_*``, 1.0 or 0.0), ``_c`` the candidate's."""
    names = ("error_c", "error_0", "late_c", "late_0")
    if "order_id" not in control.columns:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.Float64))
    late = (pl.col("actual_s") > pl.col("p90_s")).cast(pl.Float64)
    first = [
        arm.unique("order_id", keep="first", maintain_order=True).select(
            "order_id", pl.col("error_s").alias(f"error_{tag}"), late.alias(f"late_{tag}")
        )
        for arm, tag in ((candidate, "c"), (control, "0"))
    ]
    return first[0].join(first[1], on="order_id", how="inner").select(names)


def _paired_late(arms: _Arms, rails: Guardrails) -> Floats | None:
    """Per order, the candidate's late flag minus the control's, when there are enough
    orders both predicted (shadow scoring) to compare in pairs; else None."""
    if arms.pairs.height < rails.min_orders:
        return None
    return _values(arms.pairs, pl.col("late_c") - pl.col("late_0"))


def _values(rows: pl.DataFrame, expr: pl.Expr) -> Floats:
    return rows.select(expr.cast(pl.Float64)).to_series().to_numpy()


def _two_sample(x_c: Floats, x_0: Floats, scale: float, alpha: float, tuned: int) -> Interval:
    """The sequence of ``mean(x_c) - scale * mean(x_0)`` (two independent arms)."""
    estimate = float(x_c.mean() - scale * x_0.mean())
    se = float(np.sqrt(x_c.var(ddof=1) / x_c.size + scale**2 * x_0.var(ddof=1) / x_0.size))
    return sequence(estimate, se, x_c.size + x_0.size, alpha, tuned)


def _paired(x: Floats, alpha: float, tuned: int) -> Interval:
    """The sequence of ``mean(x)`` over paired differences."""
    return sequence(float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)), x.size, alpha, tuned)


def _judge(breach: Interval, passing: Interval) -> Action:
    """Breach when the breach contrast is surely above 0, pass when the margin contrast
    is surely below 0."""
    if breach.lower > 0:
        return "breach"
    return "pass" if passing.upper < 0 else "hold"


def _contrast(
    x_c: Floats, x_0: Floats, limit: float, alpha: float, tuned: int, paired: Floats | None = None
) -> Interval:
    """Sequence of the difference of means ``x_c - x_0 - limit``; over the per-order
    differences ``paired`` instead when given (orders both versions predicted)."""
    if paired is None:
        found = _two_sample(x_c, x_0, 1.0, alpha, tuned)
    else:
        found = _paired(paired, alpha, tuned)
    return Interval(found.estimate - limit, found.lower - limit, found.upper - limit)


def _mae(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    paired = arms.pairs.height >= rails.min_orders
    if paired:
        e_c, e_0 = (
            arms.pairs.get_column("error_c").to_numpy(),
            arms.pairs.get_column("error_0").to_numpy(),
        )
    else:
        e_c, e_0 = (
            _values(arms.candidate, pl.col("error_s")),
            _values(arms.control, pl.col("error_s")),
        )

    def contrast(margin: float, level: float) -> Interval:
        if paired:
            return _paired(e_c - (1 + margin) * e_0, level, rails.tuned_orders)
        return _two_sample(e_c, e_0, 1 + margin, level, rails.tuned_orders)

    mae_0 = float(e_0.mean())
    shown = contrast(0.0, alpha)
    figures = {
        "p50_mae_control_s": mae_0,
        "p50_mae_candidate_s": float(e_c.mean()),
        "p50_mae_rel": shown.estimate / mae_0,
        "p50_mae_rel_lower": shown.lower / mae_0,
        "p50_mae_rel_upper": shown.upper / mae_0,
    }
    action = _judge(contrast(rails.mae_breach, alpha), contrast(rails.mae_margin, rails.alpha_pass))
    detail = (
        f"{figures['p50_mae_rel']:+.1%} relative, always-valid bounds "
        f"[{figures['p50_mae_rel_lower']:+.1%}, {figures['p50_mae_rel_upper']:+.1%}] "
        f"({'paired' if paired else 'two-sample'}, breach above {rails.mae_breach:+.1%}, "
        f"pass below {rails.mae_margin:+.1%})"
    )
    return _Rail("p50_mae", action, detail, figures)


def _coverage(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    covered = pl.col("actual_s") <= pl.col("p90_s")
    x_c, x_0 = _values(arms.candidate, covered), _values(arms.control, covered)
    p, n = float(x_c.mean()), x_c.size
    breach = sequence(p, float(np.sqrt(max(p * (1 - p), 1 / n) / n)), n, alpha, rails.tuned_orders)
    target, tolerance = rails.coverage_target, rails.coverage_tolerance
    low, high = target - tolerance, target + tolerance
    late = _paired_late(arms, rails)
    wider = _contrast(
        x_c,
        x_0,
        rails.coverage_margin,
        rails.alpha_pass,
        rails.tuned_orders,
        None if late is None else -late,
    )
    if breach.upper < low or breach.lower > high:
        action: Action = "breach"
    else:
        action = "pass" if wider.upper < 0 else "hold"
    figures = {
        "p90_coverage_control": float(x_0.mean()),
        "p90_coverage_candidate": p,
        "p90_coverage_lower": breach.lower,
        "p90_coverage_upper": breach.upper,
    }
    detail = (
        f"{p:.1%}, always-valid bounds [{breach.lower:.1%}, {breach.upper:.1%}] "
        f"(breach outside {low:.0%}–{high:.0%}, pass below control's "
        f"{figures['p90_coverage_control']:.1%} + {rails.coverage_margin * 100:.0f} pp)"
    )
    return _Rail("p90_coverage", action, detail, figures)


def _share_rail(
    name: str,
    expr: pl.Expr,
    rows: tuple[pl.DataFrame, pl.DataFrame],
    limits: tuple[float, float],
    paired: Floats | None = None,
) -> Callable[[Guardrails, float], _Rail]:
    """A rail on the difference of a share (candidate − control) with a breach limit and
    a pass margin; judged on the per-order differences ``paired`` when given."""

    def check(rails: Guardrails, alpha: float) -> _Rail:
        x_c, x_0 = _values(rows[0], expr), _values(rows[1], expr)
        tuned = rails.tuned_orders
        breach = _contrast(x_c, x_0, limits[0], alpha, tuned, paired)
        passing = _contrast(x_c, x_0, limits[1], rails.alpha_pass, tuned, paired)
        diff = breach.estimate + limits[0]
        figures = {
            f"{name}_control": float(x_0.mean()),
            f"{name}_candidate": float(x_c.mean()),
            f"{name}_diff_lower": breach.lower + limits[0],
            f"{name}_diff_upper": breach.upper + limits[0],
        }
        low, high = (figures[f"{name}_diff_{side}"] * 100 for side in ("lower", "upper"))
        detail = (
            f"{diff * 100:+.2f} pp, always-valid bounds [{low:+.2f}, {high:+.2f}] pp "
            f"(breach above {limits[0] * 100:+.1f} pp, pass below {limits[1] * 100:+.1f} pp)"
        )
        return _Rail(name, _judge(breach, passing), detail, figures)

    return check


def _late(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    late = pl.col("actual_s") > pl.col("p90_s")
    limits = (rails.late_breach, rails.late_margin)
    paired = _paired_late(arms, rails)
    check = _share_rail("late_rate", late, (arms.candidate, arms.control), limits, paired)
    return check(rails, alpha)


def _fallback(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    limits = (rails.fallback_breach, rails.fallback_margin)
    fell = pl.col("fallback") != "none"
    rows = (arms.answered_candidate, arms.answered_control)
    return _share_rail("fallback_share", fell, rows, limits)(rails, alpha)


def _has_errors(arms: _Arms) -> bool:
    """Either version answered a request with an error (rows with an ``error``)."""
    return "error" in arms.every_control.columns and any(
        frame.get_column("error").is_not_null().any()
        for frame in (arms.every_control, arms.every_candidate)
    )


def _errors(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    limits = (rails.error_breach, rails.error_margin)
    failed = pl.col("error").is_not_null()
    rows = (arms.every_candidate, arms.every_control)
    return _share_rail("error_rate", failed, rows, limits)(rails, alpha)


def _early_errors(arms: _Arms, rails: Guardrails) -> _Rail | None:
    """The error rail before ``min_orders`` answered orders of each version, once each has
    ``min_orders`` requests (errors included); at the smallest share of ``alpha_breach``
    any look gives it, so that judging it early adds no false rollback."""
    requests = min(arms.every_control.height, arms.every_candidate.height)
    if requests < rails.min_orders or not _has_errors(arms):
        return None
    return _errors(arms, rails, rails.alpha_breach / len(EVERY_RAIL))


def _cancel(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    cancelled = pl.col("outcome").fill_null("delivered") == "cancelled"
    rows = (arms.every_candidate, arms.every_control)
    limits = (rails.cancel_limit, rails.cancel_limit)
    return _share_rail("cancel_rate", cancelled, rows, limits)(rails, alpha)


P95: Final = 0.95
P99: Final = 0.99


@dataclass(frozen=True, slots=True)
class _Tail:
    """The candidate's share of values above the control's ``q`` quantile + a limit."""

    control_q: float
    candidate_q: float
    share: float
    breach: Interval
    passing: Interval


def _tail(
    x_0: Floats, x_c: Floats, q: float, limit: float, rails: Guardrails, alpha: float
) -> _Tail:
    """Sequences of that share minus ``1 - q`` (above 0: the candidate's ``q`` quantile
    exceeds the control's + ``limit``), the control's quantile taken as known."""
    control_q = float(np.quantile(x_0, q))
    over = (x_c > control_q + limit).astype(np.float64)
    p, n = float(over.mean()), over.size
    se = float(np.sqrt(max(p * (1 - p), 1 / n) / n))
    return _Tail(
        control_q,
        float(np.quantile(x_c, q)),
        p,
        sequence(p - (1 - q), se, n, alpha, rails.tuned_orders),
        sequence(p - (1 - q), se, n, rails.alpha_pass, rails.tuned_orders),
    )


def _delivery_p95(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    actual = pl.col("actual_s")
    x_0, x_c = (_values(a, actual) for a in (arms.answered_control, arms.answered_candidate))
    tail = _tail(x_0, x_c, P95, rails.p95_limit_s, rails, alpha)
    figures = {
        "delivery_p95_control_s": tail.control_q,
        "delivery_p95_candidate_s": tail.candidate_q,
        "delivery_over_limit_share": tail.share,
    }
    detail = (
        f"{tail.candidate_q - tail.control_q:+.0f} s, {tail.share:.1%} of candidate orders "
        f"over control p95 + {rails.p95_limit_s:.0f} s (breach when surely above 5 %)"
    )
    return _Rail("delivery_p95", _judge(tail.breach, tail.passing), detail, figures)


def _latencies(rows: pl.DataFrame) -> Floats:
    if "latency_s" not in rows.columns:
        return np.empty(0)
    return rows.get_column("latency_s").drop_nulls().cast(pl.Float64).to_numpy()


def _has_latencies(arms: _Arms, rails: Guardrails) -> bool:
    """Both versions answered ``min_orders`` requests whose latency was logged."""
    found = (_latencies(arms.every_control), _latencies(arms.every_candidate))
    return min(x.size for x in found) >= rails.min_orders


def _latency(arms: _Arms, rails: Guardrails, alpha: float) -> _Rail:
    x_0, x_c = _latencies(arms.every_control), _latencies(arms.every_candidate)
    limit_s = rails.latency_limit_ms / 1000
    tail = _tail(x_0, x_c, P99, limit_s, rails, alpha)
    figures = {
        "latency_p99_control_ms": tail.control_q * 1000,
        "latency_p99_candidate_ms": tail.candidate_q * 1000,
        "latency_over_limit_share": tail.share,
    }
    detail = (
        f"p99 {figures['latency_p99_candidate_ms']:.1f} ms against control's "
        f"{figures['latency_p99_control_ms']:.1f} ms, {tail.share:.2%} of candidate answers "
        f"over control p99 + {rails.latency_limit_ms:.0f} ms (breach when surely above 1 %)"
    )
    return _Rail("latency_p99", "breach" if tail.breach.lower > 0 else "pass", detail, figures)


EVERY_RAIL: Final[tuple[Check, ...]] = (
    _mae,
    _coverage,
    _late,
    _fallback,
    _errors,
    _latency,
    _delivery_p95,
    _cancel,
)
"""Every rail :func:`_rails` may judge at one look: no look judges a rail at less than
``alpha_breach`` over their number."""
