"""Every Prometheus metric of the providers, defined in one place with its labels.

They live in ``prometheus_client``'s default registry, beside the service's
(:mod:`arrive.monitoring.metrics` renders them, merged over workers when
``PROMETHEUS_MULTIPROC_DIR`` is set). ``provider`` is a vendor adapter's name, or the
cache's name for the cache series. Names (all prefixed ``arrive_provider_``):

* ``calls_total{provider}`` — requests sent to the vendor (first tries, retries, hedges).
* ``errors_total{provider,reason}`` — failed requests and refused calls, ``reason`` from
  :data:`arrive.providers.base.REASONS` (``breaker_open``: the breaker refused;
  ``rate_limited``: refused inside a 429's Retry-After).
* ``call_seconds{provider}`` — latency of one vendor request (answered or failed).
* ``cache_lookups_total{provider,outcome}`` — ``hit`` (fresh), ``grace`` (expired, within
  the grace period: answered and refreshed in the background) or ``miss``.
* ``vendor_calls_saved_total{provider}`` — answers that needed no vendor request: hits,
  grace answers and callers that joined a request already in flight (single-flight).
* ``breaker_state{provider}`` — 0 closed, 1 open, 2 half-open.
* ``probes_total{provider}`` — half-open probes the breaker let through (one an interval
  at most).
* ``calls_not_closed_total{provider}`` — requests sent while the breaker was open or
  half-open: the probes, if nothing else slips through.
* ``retries_total{provider}``, ``hedges_total{provider}`` — retries and hedged requests sent.
* ``answers_total{source}`` — the chain's answers by source (a provider's name, ``cache``,
  ``grace``, ``builtin``).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

CALLS: Final = Counter("arrive_provider_calls", "Requests sent to a vendor", ["provider"])
ERRORS: Final = Counter(
    "arrive_provider_errors", "Failed or refused provider calls by reason", ["provider", "reason"]
)
CALL_SECONDS: Final = Histogram(
    "arrive_provider_call_seconds",
    "Latency of one vendor request",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
)
CACHE_LOOKUPS: Final = Counter(
    "arrive_provider_cache_lookups",
    "Provider cache lookups by outcome (hit, grace, miss)",
    ["provider", "outcome"],
)
CALLS_SAVED: Final = Counter(
    "arrive_provider_vendor_calls_saved",
    "Answers that needed no vendor request (hit, grace, joined an in-flight request)",
    ["provider"],
)
BREAKER_STATE: Final = Gauge(
    "arrive_provider_breaker_state",
    "Circuit breaker state: 0 closed, 1 open, 2 half-open",
    ["provider"],
    multiprocess_mode="livemax",
)
PROBES: Final = Counter(
    "arrive_provider_probes", "Half-open probes a vendor's breaker let through", ["provider"]
)
CALLS_NOT_CLOSED: Final = Counter(
    "arrive_provider_calls_not_closed",
    "Requests sent to a vendor while its breaker was open or half-open",
    ["provider"],
)
RETRIES: Final = Counter("arrive_provider_retries", "Retries sent to a vendor", ["provider"])
HEDGES: Final = Counter("arrive_provider_hedges", "Hedged requests sent to a vendor", ["provider"])
ANSWERS: Final = Counter(
    "arrive_provider_answers", "Travel-time answers of the provider chain by source", ["source"]
)
