"""How a feature vector is packed in a key-value server (layout version 1), and the
server-side merge that keeps it correct with concurrent writers.

A vector is a MessagePack map ``name → [value, event_time_us]``, exactly the
shape of :class:`~arrive.store.base.FeatureValue`, so msgspec packs and unpacks
whole rows in C. MessagePack rather than JSON because Redis scripts can read it
(``cmsgpack``) without losing precision: doubles stay doubles and microsecond
event times stay exact integers, whereas Redis' ``cjson`` prints numbers with 14
significant digits. (``cmsgpack`` may shorten an integral float to an integer or
a float32 when that is exact; the typed decoder turns it back into a float.)

Writes never read-modify-write from the client: :data:`MERGE_SCRIPT` merges an
update into the stored vector inside Redis, atomically per key, with the rule of
:func:`arrive.store.base.supersedes` (the contract suite checks both agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

import msgspec

from arrive.store.base import FeatureRow, FeatureValue

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(dict[str, FeatureValue])
_many_decoder: Final = msgspec.msgpack.Decoder(list[dict[str, FeatureValue] | None])
_NIL: Final = b"\xc0"
_ARRAY32: Final = b"\xdd"


def pack_row(row: FeatureRow) -> bytes:
    """The packed form of ``row`` (already validated)."""
    return _encoder.encode(row)


def unpack_row(data: bytes) -> dict[str, FeatureValue]:
    """The row packed in ``data``.

    Raises:
        msgspec.DecodeError: ``data`` is not a packed feature vector.
    """
    return _decoder.decode(data)


def unpack_rows(packed: Sequence[object]) -> list[FeatureRow | None]:
    """The rows packed in ``packed`` (``None`` stays ``None``), in one decoder call: the
    values framed as one MessagePack array (about a tenth less time than a call each).

    Raises:
        msgspec.DecodeError: a value does not decode (:func:`unpack_row` on each then
            tells which). One foreign value fails the whole frame: each value starts a
            map, so a truncated or over-long one breaks the array; an empty one (it would
            shift the rest without an error) and a nil one (it would read as missing)
            are refused first.
        TypeError: a value is neither bytes nor ``None``.
    """
    if b"" in packed or _NIL in packed:
        raise msgspec.DecodeError("an empty or nil value")
    values: list[Any] = [_NIL if data is None else data for data in packed]  # join: bytes only
    frame = b"".join([_ARRAY32, len(values).to_bytes(4, "big"), *values])
    return cast("list[FeatureRow | None]", _many_decoder.decode(frame))


MERGE_SCRIPT: Final = r"""
-- KEYS: feature keys; ARGV[1]: key expiry in ms (0: none); ARGV[i + 1]: packed update of KEYS[i].
-- A cell is {value, event_time_us}; a nil value leaves cell[1] empty. Returns keys written.
local function bytes_less(a, b)  -- not `<`: that compares by the server's locale
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function rank(v)
  if v == nil then return 0 end
  if type(v) == 'number' then return 1 end
  return 2
end

local function supersedes(new, old)  -- arrive.store.base.supersedes
  if new[2] ~= old[2] then return new[2] > old[2] end
  local a, b = new[1], old[1]
  local ra, rb = rank(a), rank(b)
  if ra ~= rb then return ra > rb end
  if ra == 1 then return a > b end
  if ra == 2 then return bytes_less(b, a) end
  return false
end

local function map_header(n)
  if n < 16 then return string.char(128 + n) end
  if n < 65536 then return '\222' .. string.char(math.floor(n / 256), n % 256) end
  return '\223' .. string.char(math.floor(n / 16777216), math.floor(n / 65536) % 256,
                               math.floor(n / 256) % 256, n % 256)
end

local function pack_vector(vector)  -- by hand: cmsgpack would turn {nil, t} into a map
  local parts, n = {}, 0
  for name, cell in pairs(vector) do
    n = n + 1
    parts[#parts + 1] = cmsgpack.pack(name) .. '\146'
    parts[#parts + 1] = cell[1] == nil and '\192' or cmsgpack.pack(cell[1])
    parts[#parts + 1] = cmsgpack.pack(cell[2])
  end
  return map_header(n) .. table.concat(parts)
end

local function has_nil_value(vector)
  for _, cell in pairs(vector) do
    if cell[1] == nil then return true end
  end
  return false
end

local function merged(current, update)
  if not current then return update end
  local stored = cmsgpack.unpack(current)
  local dirty = false
  for name, cell in pairs(cmsgpack.unpack(update)) do
    local old = stored[name]
    if old == nil or supersedes(cell, old) then
      stored[name] = cell
      dirty = true
    end
  end
  if not dirty then return nil end
  if has_nil_value(stored) then return pack_vector(stored) end
  return cmsgpack.pack(stored)  -- in C, and right when every cell is a {value, time} pair
end

local expiry_ms = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  local value = merged(redis.call('GET', key), ARGV[i + 1])
  if value then
    if expiry_ms > 0 then
      redis.call('SET', key, value, 'PX', expiry_ms)
    else
      redis.call('SET', key, value)
    end
    written = written + 1
  end
end
return written
"""
