"""The monitor's checkpoint: one file, replaced atomically, holding all it needs to resume.

It holds the join's state (held frames as Arrow IPC, watermarks, totals), the names
of the prediction-log files consumed, and the last source position consumed and the
latest event time read per stream and partition. It is written to a temporary file,
synced, and renamed over the previous one: a crash leaves either the old checkpoint
or the new, never half.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from arrive.errors import InputFileError
from arrive.monitoring.join import FRAMES, JoinState

FORMAT: Final = 1


@dataclass
class Checkpoint:
    """What the monitor resumes from.

    Attributes:
        state: the join's state.
        log_files: names of prediction-log files consumed (read or skipped).
        positions: last source offset consumed, keyed ``"stream|partition"``.
        partitions_seen: the latest event time read from each, same keys.
        held: the monitor's own held rows beside the join's (e.g. drift bin counts),
            by name; their shape is the monitor's to check.
    """

    state: JoinState = field(default_factory=JoinState)
    log_files: set[str] = field(default_factory=set)
    positions: dict[str, int | str] = field(default_factory=dict)
    partitions_seen: dict[str, datetime] = field(default_factory=dict)
    held: dict[str, pl.DataFrame] = field(default_factory=dict)


class _Stored(msgspec.Struct, frozen=True):
    format: int
    frames: dict[str, bytes]
    predictions_seen: datetime | None
    outcomes_seen: datetime | None
    closed_until: datetime | None
    counts: dict[str, int]
    log_files: list[str]
    positions: dict[str, int | str]
    partitions_seen: dict[str, datetime]
    held: dict[str, bytes] = {}


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (temporary file, fsync, rename)."""
    state = checkpoint.state
    stored = _Stored(
        format=FORMAT,
        frames={name: _ipc(frame) for name, frame in state.frames.items()},
        predictions_seen=state.predictions_seen,
        outcomes_seen=state.outcomes_seen,
        closed_until=state.closed_until,
        counts=dict(state.counts),
        log_files=sorted(checkpoint.log_files),
        positions=checkpoint.positions,
        partitions_seen=checkpoint.partitions_seen,
        held={name: _ipc(frame) for name, frame in checkpoint.held.items()},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as file:
        file.write(msgspec.msgpack.encode(stored))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None when there is none yet.

    Raises:
        InputFileError: the file is not a monitor checkpoint (named, with the reason).
    """
    if not path.exists():
        return None
    try:
        stored = msgspec.msgpack.decode(path.read_bytes(), type=_Stored)
        frames = {name: _frame(stored.frames[name], schema) for name, schema in FRAMES.items()}
        held = {name: pl.read_ipc(io.BytesIO(data)) for name, data in stored.held.items()}
    except (OSError, msgspec.DecodeError, KeyError, pl.exceptions.PolarsError) as exc:
        raise InputFileError(f"--checkpoint {path}: not a monitor checkpoint ({exc})") from exc
    if stored.format != FORMAT:
        raise InputFileError(f"--checkpoint {path}: format {stored.format}, expected {FORMAT}")
    state = JoinState(
        frames=frames,
        predictions_seen=stored.predictions_seen,
        outcomes_seen=stored.outcomes_seen,
        closed_until=stored.closed_until,
        counts=Counter(stored.counts),
    )
    return Checkpoint(
        state, set(stored.log_files), dict(stored.positions), dict(stored.partitions_seen), held
    )


def _ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


_ADDED: Final = {
    "outcome": pl.lit("delivered"),
    "latency_s": pl.lit(None, pl.Float64),
    "error": pl.lit(None, pl.String),
}
"""Columns added to held frames since format 1, with the value of rows saved before
(joined rows were all deliveries until ``outcome`` came; requests' latency was not
logged before ``latency_s``, nor their errors before ``error``): old checkpoints still
load."""


def _frame(data: bytes, schema: pl.Schema) -> pl.DataFrame:
    return upgrade(pl.read_ipc(io.BytesIO(data)), schema)


def upgrade(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``frame`` saved by an earlier version as ``schema`` (columns added since filled in).

    Raises:
        KeyError: it has another shape than ``schema`` even so.
    """
    missing = {
        name: value
        for name, value in _ADDED.items()
        if name in schema and name not in frame.columns
    }
    if missing:
        frame = frame.with_columns(**missing).select(schema.names()).cast(schema)
    if frame.schema != schema:
        raise KeyError(f"held rows of another shape: {frame.schema}")
    return frame
