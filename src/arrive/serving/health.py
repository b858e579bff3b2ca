"""A predictor's readiness and health: what a probe or an operator reads (no IO: cached
state)."""

from __future__ import annotations

from collections import Counter
from typing import Final

from arrive.schema.eta import Health
from arrive.serving.feeder import ReplayFeeder
from arrive.serving.slot import ModelSlot

_DEGRADED_SHARE: Final = 0.2
"""Share of recent answers from the heuristic above which health reports a problem."""
_STORE: Final = {None: "unchecked", True: "up", False: "down"}


def readiness(slot: ModelSlot, feeder: ReplayFeeder | None) -> tuple[bool, str]:
    """Whether a predictor serving ``slot`` (and fed by ``feeder``) takes traffic, and why.

    The feature store's state does not count: every replica shares it, so a store
    outage would take them all out of rotation at once while each could still
    answer with the heuristic (:func:`health` and the metrics report it)."""
    if slot.current is None and slot.fallback.heuristic is None:
        why = slot.last_error or "not loaded yet"
        return False, f"no model and no heuristic loaded ({why})"
    if feeder is not None and not feeder.done:
        return False, f"replaying events ({feeder.applied} applied)"
    return True, slot.note or ""


def health(
    slot: ModelSlot, *, ready: bool, store_ok: bool | None, kill_switch: bool, recent: Counter[str]
) -> Health:
    """The health of a predictor serving ``slot``, its ``recent`` answers by fallback
    reason (``none`` for the model's)."""
    served = slot.current
    fallbacks = {reason: n for reason, n in recent.items() if reason != "none" and n}
    problems = _problems(slot, served is None, store_ok, kill_switch, recent, fallbacks)
    return Health(
        status="degraded" if problems else "ok",
        ready=ready,
        model_version=None if served is None else served.version,
        store=_STORE[store_ok],  # type: ignore[arg-type]
        kill_switch=kill_switch,
        recent_answers=sum(recent.values()),
        recent_fallbacks=fallbacks,
        problems=problems,
    )


def _problems(
    slot: ModelSlot,
    no_model: bool,
    store_ok: bool | None,
    kill_switch: bool,
    recent: Counter[str],
    fallbacks: dict[str, int],
) -> list[str]:
    problems = []
    if no_model:
        why = slot.last_error or "not loaded yet"
        problems.append(f"no model serves ({why}); the heuristic answers")
    if store_ok is False:
        problems.append("feature store unreachable; the heuristic answers")
    if kill_switch:
        problems.append("kill switch on; the heuristic answers")
    total = sum(recent.values())
    if total and sum(fallbacks.values()) > _DEGRADED_SHARE * total:
        top = max(fallbacks, key=fallbacks.__getitem__)
        problems.append(
            f"{sum(fallbacks.values())} of the last {total} answers from the heuristic "
            f"(mostly {top})"
        )
    return problems
