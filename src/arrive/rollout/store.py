"""Where a rollout is kept: with the registry, so it survives restarts and every
worker reads the same one.

Two backends behind :class:`RolloutStore`, checked by one conformance suite
(:mod:`arrive.testing.rollout_contract`):

* :class:`InMemoryRolloutStore` — beside an :class:`~arrive.registry.InMemoryRegistry`;
* :class:`LocalRolloutStore` — files in a :class:`~arrive.registry.LocalRegistry`'s
  directory::

      ROOT/rollout.json          the current (or last) rollout, replaced atomically
      ROOT/rollout-audit.jsonl   every transition of every rollout, one JSON line each
      ROOT/.rollout.lock         taken (fcntl.flock) by every change

A change is a compare-and-swap: :meth:`RolloutStore.commit` names the rollout id and
revision it was computed from, and raises :class:`~arrive.errors.RolloutConflict` if
another command changed the rollout meanwhile. :meth:`RolloutStore.current` is the
workers' read: it re-reads the file only when its inode, size or mtime changed, at
most every ``refresh_s`` seconds, and keeps the last good state when the file cannot
be read (a registry that turned unreadable or half-copied).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final, Protocol

import msgspec

from arrive.clock import Clock, SystemClock
from arrive.errors import ConfigError, InternalError, RolloutConflict
from arrive.registry import InMemoryRegistry, LocalRegistry, ModelRegistry
from arrive.registry.local import write_atomically
from arrive.rollout.state import AuditEntry, Rollout
from arrive.rollout.transitions import Transition

logger = logging.getLogger(__name__)

STATE_FILE: Final = "rollout.json"
AUDIT_FILE: Final = "rollout-audit.jsonl"
LOCK_FILE: Final = ".rollout.lock"
#: How often :meth:`LocalRolloutStore.current` looks at the file (seconds).
REFRESH_S: Final = 0.25

Expected = tuple[str, int] | None
"""The ``(id, revision)`` a change was computed from; ``None``: no rollout was stored."""


class RolloutStore(Protocol):
    """Keeps the current rollout and the audit log of every rollout.

    To implement, provide at least these methods and run
    :class:`arrive.testing.rollout_contract.RolloutStoreContract` against the backend.
    """

    def read(self) -> Rollout | None:
        """The stored rollout, read now (``None``: there never was one)."""
        ...

    def current(self) -> Rollout | None:
        """The stored rollout for the hot path: cheap, at most ``refresh_s`` stale,
        and the last good state when storage cannot be read."""
        ...

    def commit(
        self,
        transition: Transition,
        *,
        expected: Expected,
        effect: Callable[[], None] | None = None,
    ) -> None:
        """Store ``transition`` if the stored rollout is still ``expected``; run
        ``effect`` (e.g. moving the ``production`` alias) first, under the same lock,
        so a failing effect changes nothing.

        Raises:
            RolloutConflict: another change came first.
        """
        ...

    def audit(self) -> list[AuditEntry]:
        """Every audit entry of every rollout, oldest first."""
        ...


def _stamp_of(rollout: Rollout | None) -> Expected:
    return None if rollout is None else (rollout.id, rollout.revision)


def _check(stored: Rollout | None, expected: Expected) -> None:
    found = _stamp_of(stored)
    if found != expected:
        now = "none" if found is None else f"{found[0]} revision {found[1]}"
        raise RolloutConflict(
            f"the rollout changed while this command ran (now {now}): nothing done, "
            "check `arrive rollout status` and retry"
        )


class InMemoryRolloutStore:
    """A rollout store in the process. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rollout: bytes | None = None
        self._audit: list[AuditEntry] = []

    def read(self) -> Rollout | None:
        data = self._rollout
        return None if data is None else msgspec.json.decode(data, type=Rollout)

    def current(self) -> Rollout | None:
        return self.read()

    def commit(
        self,
        transition: Transition,
        *,
        expected: Expected,
        effect: Callable[[], None] | None = None,
    ) -> None:
        with self._lock:
            _check(self.read(), expected)
            if effect is not None:
                effect()
            self._rollout = msgspec.json.encode(transition.rollout)
            self._audit.append(transition.entry)

    def audit(self) -> list[AuditEntry]:
        with self._lock:
            return list(self._audit)


class LocalRolloutStore:
    """A rollout store in a registry directory; safe across threads and processes.

    Args:
        root: the registry directory.
        clock: paces :meth:`current`'s look at the file (default: system clock).
        refresh_s: at most this stale is :meth:`current`.
    """

    def __init__(
        self, root: Path | str, *, clock: Clock | None = None, refresh_s: float = REFRESH_S
    ) -> None:
        self.root = Path(root).absolute()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"registry {self.root}: exists and is not a directory")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._refresh_s = refresh_s
        self._seen: tuple[int, int, int] | None = None
        self._checked_at: float | None = None
        self._last: Rollout | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalRolloutStore({str(self.root)!r})"

    @property
    def _state(self) -> Path:
        return self.root / STATE_FILE

    def read(self) -> Rollout | None:
        try:
            data = self._state.read_bytes()
        except FileNotFoundError:
            return None
        return _decode(data, self._state)

    def current(self) -> Rollout | None:
        now = self._clock.monotonic()
        with self._lock:
            if self._checked_at is not None and now - self._checked_at < self._refresh_s:
                return self._last
            self._checked_at = now
            self._refresh()
            return self._last

    def _refresh(self) -> None:
        try:
            info = os.stat(self._state)
        except FileNotFoundError:
            self._seen, self._last = None, None
            return
        except OSError as exc:
            logger.warning("%s: cannot stat (%s); keeping the last rollout state", self._state, exc)
            return
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        if stamp == self._seen:
            return
        try:
            self._last = self.read()
        except (OSError, InternalError) as exc:
            logger.warning("%s: unreadable (%s); keeping the last rollout state", self._state, exc)
            return
        self._seen = stamp

    def commit(
        self,
        transition: Transition,
        *,
        expected: Expected,
        effect: Callable[[], None] | None = None,
    ) -> None:
        with self._locked():
            _check(self.read(), expected)
            if effect is not None:
                effect()
            try:
                write_atomically(self._state, msgspec.json.encode(transition.rollout))
                self._append(transition.entry)
            except OSError as exc:
                raise _unwritable(self.root, exc) from None

    def audit(self) -> list[AuditEntry]:
        try:
            lines = (self.root / AUDIT_FILE).read_bytes().splitlines()
        except FileNotFoundError:
            return []
        decoder = msgspec.json.Decoder(AuditEntry)
        entries = []
        for number, line in enumerate(lines, start=1):
            try:
                entries.append(decoder.decode(line))
            except msgspec.DecodeError as exc:  # a line torn by a crash mid-append
                if line.strip():
                    logger.warning("%s line %d: skipped (%s)", AUDIT_FILE, number, exc)
        return entries

    def _append(self, entry: AuditEntry) -> None:
        with open(self.root / AUDIT_FILE, "a+b") as handle:
            torn = handle.tell() > 0 and _last_byte(handle) != b"\n"
            handle.write((b"\n" if torn else b"") + msgspec.json.encode(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = open(self.root / LOCK_FILE, "a+b")  # noqa: SIM115 (held across the yield)
        except OSError as exc:
            raise _unwritable(self.root, exc) from None
        with lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


_memory_stores: weakref.WeakKeyDictionary[InMemoryRegistry, InMemoryRolloutStore] = (
    weakref.WeakKeyDictionary()
)


def rollout_store(registry: ModelRegistry, *, clock: Clock | None = None) -> RolloutStore:
    """The rollout store kept with ``registry`` (the same one for every call)."""
    if isinstance(registry, LocalRegistry):
        return LocalRolloutStore(registry.root, clock=clock)
    if isinstance(registry, InMemoryRegistry):
        return _memory_stores.setdefault(registry, InMemoryRolloutStore())
    raise ConfigError(f"registry {registry!r}: rollouts need a LocalRegistry or InMemoryRegistry")


def _last_byte(handle: BinaryIO) -> bytes:
    handle.seek(-1, os.SEEK_END)
    return handle.read(1)


def _unwritable(root: Path, exc: OSError) -> InternalError:
    return InternalError(
        f"registry {root}: cannot change the rollout ({exc.strerror}); serving keeps the last state"
    )


def _decode(data: bytes, path: Path) -> Rollout:
    try:
        return msgspec.json.decode(data, type=Rollout)
    except msgspec.DecodeError as exc:
        raise InternalError(f"{path}: not a rollout state ({exc})") from None
