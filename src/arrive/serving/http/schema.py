"""The HTTP-only bodies of the ETA service as msgspec types: the kill switch here; the
batches, errors and readiness are :mod:`arrive.schema.api`'s (the client shares them),
the request and answer of one order :mod:`arrive.schema.eta`'s.

The OpenAPI document is generated from these types, and the routes decode with
them, so the two cannot drift apart.
"""

from __future__ import annotations

import msgspec

from arrive.schema.api import BatchAnswer, BatchRequest, ErrorBody, Readiness

__all__ = [
    "BatchAnswer",
    "BatchRequest",
    "ErrorBody",
    "KillSwitchRequest",
    "KillSwitchState",
    "Readiness",
]


class KillSwitchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Turn the kill switch on (every answer from the heuristic) or off."""

    on: bool


class KillSwitchState(msgspec.Struct, frozen=True, kw_only=True):
    """The kill switch's state after the call."""

    kill_switch: bool
