"""The served model: a registry alias's bundle, ready to answer, swapped atomically.

:class:`ModelSlot` holds the :class:`ServedModel` of one alias. :meth:`ModelSlot.reload`
reads where the alias points; when it moved, the new version is opened (every
checksum verified), loaded and only then put in place by one reference
assignment. A request reads :attr:`ModelSlot.current` once and keeps that object
to its end, so a swap never disturbs requests in flight. A version that fails its
checksum or its load is refused (logged, counted) and the previous one keeps
serving; it is not retried until the alias moves again or a forced reload.

With no model at all (the alias is unset, or nothing it pointed at ever loaded),
the service is not ready and answers with fallback ``no_model`` from the
heuristic of the newest loadable version in the registry (its back-off still
knows the stores and markets); when no version is loadable at all, from the
conservative constants ``no_model_p50_s`` / ``no_model_p90_s`` of the settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from arrive.errors import ConfigError, DataError, ModelNotFound
from arrive.fallback import HeuristicEta
from arrive.features.online.reader import OnlineFeatures
from arrive.models.artifact import ModelBundle
from arrive.registry.base import ModelRegistry
from arrive.schema.events import OrderCreated
from arrive.serving import metrics
from arrive.serving.compiled import Backend, CompiledModel
from arrive.training.evaluate import P50, P90

logger = logging.getLogger(__name__)

_ORDER_FIELDS: Final = frozenset(OrderCreated.__struct_fields__) - {"attributes"}
_FALLBACK_SCAN: Final = 5  # newest versions tried for a heuristic when nothing serves


def quantile_index(quantiles: tuple[float, ...], q: float, what: str) -> int:
    """Index of ``q`` in ``quantiles``; ConfigError naming ``what`` when absent."""
    for index, value in enumerate(quantiles):
        if abs(value - q) < 1e-9:
            return index
    raise ConfigError(f"{what}: predicts quantiles {list(quantiles)}, the service needs {q}")


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

    @property
    def names(self) -> tuple[str, ...]:
        """The model's features, in order."""
        return self.reader.names


@dataclass(frozen=True)
class SlotConfig:
    """How a :class:`ModelSlot` loads models."""

    alias: str = "production"
    backend: Backend = "lleaves"
    cache_dir: Path = Path(".arrive/compiled")
    max_lag_s: float = 300.0
    default_s: tuple[float, float] = (2700.0, 3600.0)


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
        self._lock = threading.Lock()

    def reload(self, *, force: bool = False) -> str | None:
        """Serve the version the alias points at now; return the version serving.

        Args:
            force: retry a version refused before.
        """
        with self._lock:
            version = self.target = self._target()
            current = self.current
            moved = version is not None and (current is None or current.version != version)
            if moved and version is not None and (force or version not in self.refused):
                self._load(version)
            if self.current is None and self.fallback.heuristic is None:
                self._fallback_from_any()
            return None if self.current is None else self.current.version

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

    def _load(self, version: str) -> None:
        try:
            served = self.build(version)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.refused[version] = reason
            self.last_error = f"version {version} refused: {reason}"
            metrics.MODEL_RELOADS.labels("refused").inc()
            logger.error("model version %s refused, keeping %s: %s", version, self._name(), reason)
            return
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

    def build(self, version: str) -> ServedModel:
        """Open, verify and load ``version`` (raises whatever refuses it)."""
        bundle = ModelBundle.from_files(self.registry.open(version).files)
        model = bundle.model
        zone = ZoneInfo(str(bundle.features.get("local_timezone") or "UTC"))
        reader = OnlineFeatures.from_schema(bundle.features, self.config.max_lag_s)
        if reader.names != tuple(model.features_):
            raise ConfigError(f"version {version}: feature schema and model features differ")
        return ServedModel(
            version=version,
            bundle=bundle,
            compiled=CompiledModel(
                model, self.config.backend, self.config.cache_dir, self._switched(version)
            ),
            reader=reader,
            fallback=HeuristicAnswer(bundle.heuristic, zone, self.config.default_s),
            p50=quantile_index(model.quantiles_, P50, f"version {version}"),
            p90=quantile_index(model.quantiles_, P90, f"version {version}"),
        )

    def _switched(self, version: str) -> Callable[[str], None]:
        def show(backend: str) -> None:
            current = self.current
            if current is not None and current.version == version:
                metrics.set_model_info(self.config.alias, version, backend)

        return show

    def _fallback_from_any(self) -> None:
        try:
            versions = self.registry.versions()[-_FALLBACK_SCAN:]
        except Exception:
            return
        for record in reversed(versions):
            try:
                bundle = ModelBundle.from_files(self.registry.open(record.version).files)
                zone = ZoneInfo(str(bundle.features.get("local_timezone") or "UTC"))
                self.fallback = HeuristicAnswer(bundle.heuristic, zone, self.config.default_s)
            except Exception as exc:
                logger.info("version %s has no usable heuristic: %s", record.version, exc)
                continue
            logger.warning("no model serves; heuristic of version %s answers", record.version)
            return

    def _name(self) -> str:
        return "nothing" if self.current is None else f"version {self.current.version}"
