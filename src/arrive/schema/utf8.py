"""Where a JSON document breaks UTF-8: the path of the first string that is not valid.

msgspec checks UTF-8 only when it turns a JSON string into a Python ``str`` and then
raises :class:`UnicodeDecodeError`, which names no field. :func:`invalid_utf8` walks
the document again, container by container (keeping the values undecoded as
:class:`msgspec.Raw`), to name the field for the error message. It runs only on the
error path.
"""

from __future__ import annotations

from typing import Final

import msgspec

_OBJECT: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ARRAY: Final = msgspec.json.Decoder(list[msgspec.Raw])


def invalid_utf8(data: bytes, exc: UnicodeDecodeError) -> tuple[str, str]:
    """The msgspec-style path (``$``, ``$.orders[1].store_id``) of the first string of
    ``data`` that is not valid UTF-8, and the reason; ``exc`` is the error msgspec raised."""
    path = "$"
    node = data
    while True:
        try:
            children = _children(node)
        except UnicodeDecodeError as key_error:
            return path, f"a field name is not valid UTF-8 ({key_error.reason})"
        except msgspec.DecodeError:
            return path, f"not valid UTF-8 ({exc.reason})"
        bad = next(((step, raw) for step, raw in children if _broken(raw)), None)
        if bad is None:
            return path, f"not valid UTF-8 ({exc.reason})"
        path, node = path + bad[0], bad[1]


def _children(node: bytes) -> list[tuple[str, bytes]]:
    """The path steps and undecoded values of an object's or an array's members
    (none for a scalar)."""
    start = node.lstrip()[:1]
    if start == b"{":
        return [(f".{name}", bytes(raw)) for name, raw in _OBJECT.decode(node).items()]
    if start == b"[":
        return [(f"[{index}]", bytes(raw)) for index, raw in enumerate(_ARRAY.decode(node))]
    return []


def _broken(raw: bytes) -> bool:
    try:
        msgspec.json.decode(raw)
    except UnicodeDecodeError:
        return True
    except msgspec.DecodeError:
        return False
    return False
