"""JSON encoding and decoding of canonical events.

Decoding validates types, ranges and timezones; every failure is raised as one
:class:`arrive.errors.SchemaError` naming the field and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

from arrive.errors import SchemaError
from arrive.schema.events import AnyEvent, Event
from arrive.schema.utf8 import invalid_utf8

_decoder = msgspec.json.Decoder(AnyEvent)
_encoder = msgspec.json.Encoder()
_AT_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")
_NAMED = re.compile(r"^(?P<name>[a-z_]+): (?P<reason>.+)$", re.DOTALL)
_EMPTY = (
    "empty message, no event (an empty or null value, "
    "or a stream entry deleted before it was acknowledged)"
)


def encode_event(event: Event) -> bytes:
    """Serialise an event to compact JSON (UTC times in RFC 3339)."""
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> AnyEvent:
    """Parse one JSON event.

    Raises:
        SchemaError: empty input, malformed JSON, a string that is not valid UTF-8
            (named), unknown ``type``, a missing or mistyped field, an out-of-range
            value or a naive timestamp. Nothing else, whatever the input.
    """
    if not data:
        raise SchemaError("$", _EMPTY)
    try:
        event: AnyEvent = _decoder.decode(data)
        return event
    except msgspec.ValidationError as exc:
        raise schema_error(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise SchemaError("$", f"not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise _utf8_error(data, exc) from exc
    except UnicodeEncodeError as exc:  # a str holding a lone surrogate
        raise SchemaError("$", f"not valid Unicode ({exc.reason})") from exc


def decode_events(lines: Iterable[bytes | str]) -> list[AnyEvent]:
    """Decode JSON lines; the error names the line (1-based) as well as the field."""
    events = []
    for number, line in enumerate(lines, start=1):
        try:
            events.append(decode_event(line))
        except SchemaError as exc:
            raise SchemaError(f"line {number}: {exc.field}", exc.reason) from exc
    return events


def _utf8_error(data: bytes | str, exc: UnicodeDecodeError) -> SchemaError:
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    path, reason = invalid_utf8(raw, exc)
    return SchemaError(path.removeprefix("$.") if path != "$" else path, reason)


def schema_error(message: str) -> SchemaError:
    match = _AT_PATH.match(message)
    reason = match["reason"] if match else message
    path = (match["path"] if match else None) or "$"
    missing = _MISSING.search(reason)
    if missing:
        path = f"{path}.{missing['name']}"
        reason = "required field is missing"
    elif path == "$" and (named := _NAMED.match(reason)):
        path, reason = f"$.{named['name']}", named["reason"]
    elif "type" in path.rsplit(".", 1)[-1] and reason.startswith("Invalid value"):
        reason = f"unknown event type ({reason})"
    return SchemaError(path.removeprefix("$.") if path != "$" else path, reason)
