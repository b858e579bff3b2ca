"""InMemoryRegistry: a model registry held in the process, for tests and notebooks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Set

from arrive.clock import Clock
from arrive.errors import ModelIntegrityError
from arrive.registry import index as idx
from arrive.registry.stored import StoredRegistry


class InMemoryRegistry(StoredRegistry):
    """A registry that lives as long as the object. Thread-safe.

    It behaves exactly like the persistent backends: the index is kept encoded
    and every read decodes a fresh copy, so returned records never alias stored state.

    Args:
        clock: source of registration and alias-change times (default: system clock).
        blobs: where file bytes are kept, keyed ``"<version>/<name>"``; pass your own
            mapping to inspect it or to tamper with it in tests.
    """

    def __init__(
        self, *, clock: Clock | None = None, blobs: MutableMapping[str, bytes] | None = None
    ) -> None:
        super().__init__(clock=clock)
        self._blobs: MutableMapping[str, bytes] = blobs if blobs is not None else {}
        self._index = idx.encode(idx.RegistryIndex())
        self._lock = threading.RLock()

    def _snapshot(self) -> idx.RegistryIndex:
        return idx.decode(self._index, source="in-memory index")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[idx.RegistryIndex]:
        with self._lock:
            index = self._snapshot()
            yield index
            self._index = idx.encode(index)

    def _store(self, version: str, contents: Mapping[str, bytes]) -> None:
        self._discard(version)
        for name, data in contents.items():
            self._blobs[f"{version}/{name}"] = data

    def _load(self, version: str, name: str) -> bytes:
        try:
            return self._blobs[f"{version}/{name}"]
        except KeyError:
            raise ModelIntegrityError(f"version {version}, file {name!r}: missing") from None

    def _discard(self, version: str) -> None:
        with self._lock:
            for key in [k for k in self._blobs if k.partition("/")[0] == version]:
                del self._blobs[key]

    def _sweep(self, known: Set[str]) -> None:
        for version in {k.partition("/")[0] for k in self._blobs} - known:
            self._discard(version)
