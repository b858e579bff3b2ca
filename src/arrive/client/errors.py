"""The client's errors: one tree under :class:`ClientError`, itself an
:class:`~arrive.errors.ArriveError`::

    ClientError
    ├── ServerUnavailable   no connection, or 503, after the retries; retry later
    ├── Timeout             the client-side deadline passed (also a ServerUnavailable)
    ├── RequestRejected     4xx, or refused before sending: ``field`` and ``reason``
    ├── ServerError         5xx other than 503: a bug on the server (never retried)
    └── BadResponse         the answer is not what the API promises (garbage)

``RequestRejected`` is also a :class:`~arrive.errors.UserError` (the caller's input is
wrong: the CLI exits with code 2); the others are failures of the server or the network.
"""

from __future__ import annotations

from arrive.errors import ArriveError, UserError


class ClientError(ArriveError):
    """A call to the ETA service failed.

    Attributes:
        status: the HTTP status answered (None when there was no answer).
        request_id: the request id the server answered with, or the one sent.
    """

    def __init__(self, message: str, *, status: int | None = None, request_id: str = "") -> None:
        self.status = status
        self.request_id = request_id
        super().__init__(message)


class ServerUnavailable(ClientError):
    """The service could not be reached, or answered 503, on every attempt."""


class Timeout(ServerUnavailable):
    """The client-side deadline passed before an answer (retries included)."""


class RequestRejected(ClientError, UserError):
    """The service refused the request (4xx), or the client refused it before sending.

    Attributes:
        field: path of the offending field (``orders[3].pickup_lat``), or None.
        reason: why, as the server (or the schema) said it.
        error: the server's stable code (``validation_error``), ``invalid`` when refused
            before sending.
    """

    def __init__(
        self,
        field: str | None,
        reason: str,
        *,
        status: int | None = None,
        error: str = "invalid",
        request_id: str = "",
    ) -> None:
        self.field = field
        self.reason = reason
        self.error = error
        text = reason if field is None or reason.startswith(f"{field}:") else f"{field}: {reason}"
        super().__init__(text, status=status, request_id=request_id)


class ServerError(ClientError):
    """The service failed (5xx other than 503): not retried, the server's log says why."""


class BadResponse(ClientError):
    """The answer does not fit the API (not JSON, wrong shape, wrong count)."""
