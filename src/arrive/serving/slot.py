"""The served model: a registry alias's bundle, ready to answer, swapped atomically.

:class:`ModelSlot` holds the :class:`ServedModel` of one alias. :meth:`ModelSlot.reload`
reads where the alias points; when it moved, the new version is opened (every
checksum verified), checked in a child process (:func:`arrive.models.check.check_files`:
it parses the boosters, which can crash the process that does, and compares the
probe batch's outputs with the reference predictions stored at registration),
loaded and only then put in place by one reference assignment. A request reads
:attr:`ModelSlot.current` once and keeps that object to its end, so a swap never
disturbs requests in flight.

A version that fails its checksum, its check or its load is refused (logged,
counted) and the newest older version that passes serves instead (the one already
serving if it is among them): what serves is a function of the registry, so every
worker, and every restart, serves the same version. :attr:`ModelSlot.note` (shown
by readiness, and the ``arrive_model_degraded`` gauge) says when it is not the
alias's. A refused version is not retried until the alias moves again or a forced
reload. A forced reload (the admin call) also checks the stored files of the
version serving again; if they no longer pass and no older version does, its copy
in memory keeps serving and the note says so.

With no model at all (the alias is unset, or nothing it pointed at ever loaded),
the service is not ready and answers with fallback ``no_model`` from the heuristic
of the newest version, from the alias's down, whose heuristic file is intact,
whatever the state of its boosters (its back-off still knows the stores and
markets); when there is none, from the conservative constants ``no_model_p50_s`` /
``no_model_p90_s`` of the settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from arrive.errors import ConfigError, DataError, ModelIntegrityError, ModelNotFound
from arrive.fallback import HeuristicEta
from arrive.features.online.reader import OnlineFeatures
from arrive.models.artifact import FEATURES_FILE, HEURISTIC_FILE, ModelBundle
from arrive.models.check import DEFAULT_TIMEOUT_S, ModelCheck, check_files
from arrive.monitoring import metrics
from arrive.registry.base import ArtifactFile, ModelRegistry
from arrive.schema.eta import P50, P90, quantile_index
from arrive.schema.events import OrderCreated
from arrive.serving.compiled import Backend, CompiledModel

logger = logging.getLogger(__name__)

_ORDER_FIELDS: Final = frozenset(OrderCreated.__struct_fields__) - {"attributes"}
_FALLBACK_SCAN: Final = 5  # versions tried, from the alias's down, for a model or a heuristic
_HEURISTIC_FILES: Final = (HEURISTIC_FILE, FEATURES_FILE)


class HeuristicAnswer:
    """P50/P90 of an order from a bundle's heuristic (with its back-off), or constants.

    Args:
        heuristic: the fitted heuristic, or None to answer ``default_s``.
        zone: the marketplace's zone (the heuristic's ``hour`` is local).
        default_s: ``(p50, p90)`` seconds used when there is no heuristic.
    """

    def __init__(
        self, heuristic: HeuristicEta | None, zone: ZoneInfo, default_s: tuple[float, float]
    ) -> None:
        self.heuristic = heuristic
        self.zone = zone
        self.default_s = default_s
        if heuristic is not None:
            quantiles = heuristic.quantiles_
            self._p50 = quantile_index(quantiles, P50, "heuristic")
            self._p90 = quantile_index(quantiles, P90, "heuristic")
            columns = [c for c in heuristic.key_kinds_ if c != "hour"]
            self._fields = [c for c in columns if c in _ORDER_FIELDS]
            self._attributes = [c for c in columns if c not in _ORDER_FIELDS]
            self._hour = "hour" in heuristic.key_kinds_

    def eta(self, order: OrderCreated) -> tuple[float, float]:
        """``(p50_s, p90_s)`` of ``order``; never raises."""
        if self.heuristic is None:
            return self.default_s
        try:
            values, _ = self.heuristic.predict_one(self.keys(order))
        except DataError:  # a key of another kind than in training: the global level answers
            values, _ = self.heuristic.predict_one({})
        return float(values[self._p50]), float(values[self._p90])

    def keys(self, order: OrderCreated) -> dict[str, Any]:
        """The heuristic's segment keys of ``order``: its fields, its attributes, local hour."""
        keys: dict[str, Any] = {c: getattr(order, c) for c in self._fields}
        for name in self._attributes:
            keys[name] = order.attributes.get(name)
        if self._hour:
            keys["hour"] = order.event_time.astimezone(self.zone).hour
        return keys


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version with everything the hot path needs."""

    version: str
    bundle: ModelBundle
    compiled: CompiledModel
    reader: OnlineFeatures
    fallback: HeuristicAnswer
    p50: int
    p90: int
    files: dict[str, ArtifactFile]
    """Checksums of the stored files it was loaded from."""
    check: ModelCheck
    """What the model check found when it was loaded."""

    @property
    def names(self) -> tuple[str, ...]:
        """The model's features, in order."""
        return self.reader.names


@dataclass(frozen=True)
class Reloaded:
    """What one reload found: the version serving after it, the alias's version, each
    version checked (by version) and those it refused, with why."""

    serving: str | None
    target: str | None
    checks: dict[str, ModelCheck]
    refused: dict[str, str]


@dataclass(frozen=True)
class SlotConfig:
    """How a :class:`ModelSlot` loads models."""

    alias: str = "production"
    backend: Backend = "lleaves"
    cache_dir: Path = Path(".arrive/compiled")
    max_lag_s: float = 300.0
    default_s: tuple[float, float] = (2700.0, 3600.0)
    check_timeout_s: float = DEFAULT_TIMEOUT_S


class ModelSlot:
    """The model serving one alias, reloaded when the alias moves.

    Args:
        registry: where models come from.
        config: alias, compile backend and cache, lag limit, no-model constants.

    Thread-safe: reloads are serialised; readers take :attr:`current` without a lock.
    """

    def __init__(self, registry: ModelRegistry, config: SlotConfig) -> None:
        self.registry = registry
        self.config = config
        self.current: ServedModel | None = None
        self.fallback = HeuristicAnswer(None, ZoneInfo("UTC"), config.default_s)
        self.refused: dict[str, str] = {}
        self.last_error: str | None = None
        self.target: str | None = None  # where the alias pointed at the last reload
        self.checks: dict[str, ModelCheck] = {}  # what the last reload found, by version
        self.note: str | None = None  # why the version serving is not the alias's
        self.passed: dict[frozenset[tuple[str, str]], ModelCheck] = {}
        """Checks passed in this process, by the checksums of the files checked."""
        self._lock = threading.Lock()

    def reload(self, *, force: bool = False) -> str | None:
        """Serve the newest version, from the alias's down, whose files pass their check;
        return the version serving.

        Args:
            force: retry versions refused before, and check the files of the version
                serving again (the copy in memory keeps serving if nothing else passes).
        """
        return self.reload_checked(force=force).serving

    def reload_checked(self, *, force: bool = False) -> Reloaded:
        """:meth:`reload`, and what it found (taken under the reload lock, so a concurrent
        reload cannot mix its findings in)."""
        with self._lock:
            self.checks = {}
            target = self.target = self._target()
            if target is not None:
                self._follow(target, force=force)
            if self.current is None and target is not None and target in self.refused:
                self.last_error = f"version {target} refused: {self.refused[target]}"
            if self.current is None and self.fallback.heuristic is None:
                self._fallback_from_any(target)
            self._show_note(target)
            serving = None if self.current is None else self.current.version
            refused = {v: self.refused[v] for v in self.checks if v in self.refused}
            return Reloaded(serving, target, dict(self.checks), refused)

    def close(self) -> None:
        """Stop a compilation in progress."""
        if self.current is not None:
            self.current.compiled.stop()

    def _target(self) -> str | None:
        try:
            return self.registry.get(self.config.alias).version
        except ModelNotFound:
            self.last_error = f"alias {self.config.alias} is not set"
            return None
        except Exception as exc:
            self.last_error = f"registry unreadable: {exc}"
            logger.warning("model registry unreadable: %s", exc)
            return None

    def _follow(self, target: str, *, force: bool) -> None:
        current = self.current
        if not force and current is not None and current.version == target:
            return  # the poll's usual case: nothing moved, nothing read
        for version in self._candidates(target):
            if current is not None and version == current.version:
                if not force or self._recheck(current):
                    return
            elif (force or version not in self.refused) and self._load(version):
                return

    def _candidates(self, target: str) -> list[str]:
        """``target``, then the versions registered before it, newest first (a few)."""
        try:
            older = [v.version for v in self.registry.versions() if int(v.version) < int(target)]
        except Exception as exc:
            logger.warning("model registry unreadable: %s", exc)
            older = []
        return [target, *reversed(older)][:_FALLBACK_SCAN]

    def _recheck(self, served: ServedModel) -> bool:
        """Check the stored files of the version serving: unchanged since they were checked
        and loaded, or loaded again if they pass their check now."""
        try:
            record = self.registry.open(served.version).version
        except Exception as exc:
            self._refuse(served.version, exc)
            return False
        if record.files != served.files:  # re-signed since: check and load them afresh
            return self._load(served.version)
        found = served.check
        self.checks[served.version] = ModelCheck(found.status, f"{found.reason} (files unchanged)")
        self.refused.pop(served.version, None)  # restored since a refusal
        return True

    def _load(self, version: str) -> bool:
        try:
            served = self.build(version)
        except Exception as exc:
            self._refuse(version, exc)
            return False
        previous, self.current = self.current, served
        self.fallback = served.fallback
        self.refused.pop(version, None)
        self.last_error = None
        metrics.MODEL_RELOADS.labels("loaded").inc()
        metrics.set_model_info(self.config.alias, version, served.compiled.trees.backend)
        logger.info("serving model version %s (was %s)", version, previous and previous.version)
        served.compiled.start_compiling()
        if previous is not None:
            previous.compiled.stop()
        return True

    def _refuse(self, version: str, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.refused[version] = reason
        self.checks.setdefault(version, ModelCheck("broken", reason))
        self.last_error = f"version {version} refused: {reason}"
        metrics.MODEL_RELOADS.labels("refused").inc()
        logger.error("model version %s refused, keeping %s: %s", version, self._name(), reason)

    def build(self, version: str) -> ServedModel:
        """Open and verify ``version`` (checksums, then its model check in a child process),
        and load it (raises whatever refuses it). Files whose checksums equal those of
        files that passed the check in this process (a copy of a version, a version
        loaded again: a rollout's candidate, then production) are not checked again."""
        loaded = self.registry.open(version)  # every checksum verified
        digest = frozenset((name, file.sha256) for name, file in loaded.version.files.items())
        check = self.passed.get(digest)
        if check is None:
            check = check_files(loaded.files, timeout_s=self.config.check_timeout_s)
            metrics.MODEL_CHECKS.labels(check.status).inc()
            if check.ok:
                self.passed[digest] = check
        self.checks[version] = check
        if not check.ok:
            raise ModelIntegrityError(f"version {version} fails its model check: {check.reason}")
        if check.status == "unverified":
            logger.warning("model version %s: %s", version, check.reason)
        bundle = ModelBundle.from_files(loaded.files)
        model = bundle.model
        zone = ZoneInfo(str(bundle.features.get("local_timezone") or "UTC"))
        reader = OnlineFeatures.from_schema(bundle.features, self.config.max_lag_s)
        if reader.names != tuple(model.features_):
            raise ConfigError(f"version {version}: feature schema and model features differ")
        compiled = CompiledModel(
            model,
            self.config.backend,
            self.config.cache_dir,
            self._switched(version),
            reference=bundle.probe,
        )
        return ServedModel(
            version=version,
            bundle=bundle,
            compiled=compiled,
            reader=reader,
            fallback=HeuristicAnswer(bundle.heuristic, zone, self.config.default_s),
            p50=quantile_index(model.quantiles_, P50, f"version {version}"),
            p90=quantile_index(model.quantiles_, P90, f"version {version}"),
            files=dict(loaded.version.files),
            check=check,
        )

    def _show_note(self, target: str | None) -> None:
        """Say (log, metric, :attr:`note`) when the version serving is not the alias's."""
        current = self.current
        note = None
        if current is not None and target is not None and target in self.refused:
            refused = self.refused[target]
            note = (
                f"serving version {current.version} from the copy loaded earlier: "
                f"its stored files were refused: {refused}"
                if current.version == target
                else f"serving version {current.version} instead of {self.config.alias} "
                f"version {target}, which was refused: {refused}"
            )
        if note is not None and note != self.note:
            logger.warning("%s", note)
        self.note = note
        metrics.MODEL_DEGRADED.set(0 if note is None else 1)

    def _switched(self, version: str) -> Callable[[str], None]:
        def show(backend: str) -> None:
            current = self.current
            if current is not None and current.version == version:
                metrics.set_model_info(self.config.alias, version, backend)

        return show

    def _fallback_from_any(self, target: str | None) -> None:
        """The heuristic of the newest version (from the alias's down) whose heuristic and
        feature files are intact, whatever the state of its boosters."""
        try:
            versions = (
                self._candidates(target)
                if target is not None
                else [v.version for v in reversed(self.registry.versions()[-_FALLBACK_SCAN:])]
            )
        except Exception:
            return
        for version in versions:
            try:
                heuristic, features = ModelBundle.heuristic_from_files(
                    {name: self.registry.read_file(version, name) for name in _HEURISTIC_FILES}
                )
                zone = ZoneInfo(str(features.get("local_timezone") or "UTC"))
                self.fallback = HeuristicAnswer(heuristic, zone, self.config.default_s)
            except Exception as exc:
                logger.info("version %s has no usable heuristic: %s", version, exc)
                continue
            logger.warning("no model serves; heuristic of version %s answers", version)
            return

    def _name(self) -> str:
        return "nothing" if self.current is None else f"version {self.current.version}"
