"""The service's wiring: a predictor from :class:`ServeSettings` (its store, model slot,
prediction log and control), and the checks a service runs on them before it starts.
"""

from __future__ import annotations

from arrive import datadir
from arrive.clock import Clock, SystemClock
from arrive.errors import ConfigError
from arrive.monitoring.prediction_log import PredictionLog
from arrive.registry.base import ModelRegistry
from arrive.registry.local import LocalRegistry
from arrive.rollout.control import Rollouts
from arrive.serving.control import Control, SharedControl
from arrive.serving.feeder import ReplayFeeder
from arrive.serving.predictor import EtaPredictor
from arrive.serving.routing import RolloutRouting
from arrive.serving.settings import PredictorConfig, ServeSettings
from arrive.serving.shadow import ShadowQueue
from arrive.serving.slot import ModelSlot, SlotConfig
from arrive.serving.travel import build_travel, check_providers
from arrive.store.base import AsyncOnlineStore, OnlineStore
from arrive.store.memory import AsyncInMemoryStore
from arrive.store.threaded import as_async
from arrive.store.urls import StoreOptions, open_async_store, store_config

_STORE_SETTING = "setting store_url"


def build_predictor(
    settings: ServeSettings,
    *,
    store: OnlineStore | AsyncOnlineStore | None = None,
    clock: Clock | None = None,
    registry: ModelRegistry | None = None,
    log: PredictionLog | None = None,
) -> EtaPredictor:
    """The predictor ``settings`` describe; call ``await start()`` before serving.

    Args:
        settings: the service's settings.
        store: the feature store; default from ``settings.store_url`` (``memory``: an
            in-process store, fed by a replay of ``settings.replay_dir`` when set).
        clock: the time features are read at; default the system clock (the replay's
            time when the embedded replay feeds the store).
        registry: default a :class:`LocalRegistry` at ``settings.registry_dir``.
        log: the prediction log; default one in ``settings.prediction_log_dir`` when set
            (the demo's rollout replay passes one that also hands it the rows).

    Raises:
        ConfigError: as :func:`check_settings`, or (without ``registry``) a
            ``registry_dir`` that is not a directory.
        InputFileError: ``replay_dir`` has no event log.
    """
    check_settings(settings, own_store=store is not None)
    travel = build_travel(settings, clock)  # cache ages by the caller's clock, else the wall
    feeder = None
    if store is None:
        store, feeder = _store(settings)
    if feeder is not None and clock is None:
        clock = feeder.clock
    clock = clock or SystemClock()
    registry = registry if registry is not None else local_registry(settings)
    slot = ModelSlot(
        registry,
        SlotConfig(
            alias=settings.alias,
            backend=settings.compile_backend,
            cache_dir=settings.compile_cache_dir,
            max_lag_s=settings.max_feature_lag_s,
            default_s=(settings.no_model_p50_s, settings.no_model_p90_s),
            check_timeout_s=settings.model_check_timeout_s,
        ),
    )
    if log is None and settings.prediction_log_dir is not None:
        log = PredictionLog(
            settings.prediction_log_dir,
            clock,
            buffer=settings.prediction_log_buffer,
            rotate_s=settings.prediction_log_rotate_s,
            retention_days=settings.prediction_log_retention_days,
        )
    config = PredictorConfig.from_settings(settings)
    control = (
        Control() if settings.kill_switch_file is None else SharedControl(settings.kill_switch_file)
    )
    return EtaPredictor(
        slot,
        as_async(store),
        clock,
        config,
        log=log,
        feeder=feeder,
        control=control,
        routing=RolloutRouting(Rollouts(registry), slot),
        shadow=ShadowQueue(settings.shadow_queue, log, settings.shadow_linger_ms / 1000),
        travel=travel,
    )


def check_settings(settings: ServeSettings, *, own_store: bool = False) -> None:
    """The rules :func:`build_predictor` refuses ``settings`` by (no IO).

    Args:
        own_store: the caller passes its own store (then ``replay_dir`` cannot feed it).

    Raises:
        ConfigError: ``replay_dir`` with a store other than ``memory``,
            ``no_model_p90_s`` below ``no_model_p50_s``, a ``providers`` table
            :func:`arrive.serving.travel.check_providers` refuses, or (without
            ``own_store``) a ``store_url`` :func:`arrive.store.urls.store_config` refuses.
    """
    if settings.no_model_p90_s < settings.no_model_p50_s:
        raise ConfigError("setting no_model_p90_s: must be at least no_model_p50_s")
    if settings.replay_dir is not None and (own_store or settings.store_url != "memory"):
        raise ConfigError("setting replay_dir: needs store_url `memory` (the in-process store)")
    check_providers(settings)
    if not own_store:
        store_config(settings.store_url, _STORE_SETTING, _store_options(settings))


def check_startup(settings: ServeSettings) -> None:
    """Raise what building a predictor from ``settings`` would, so a service can refuse
    them before it starts its workers (one line, no traceback from each worker):
    :func:`check_settings`, and the files it opens.

    Raises:
        ConfigError: as :func:`check_settings`, a ``registry_dir`` that is not a
            directory, or a ``kill_switch_file`` that cannot be created or mapped.
        InputFileError: ``replay_dir`` has no event log.
    """
    check_settings(settings)
    local_registry(settings)  # reads nothing; refuses a file
    if settings.kill_switch_file is not None:
        SharedControl(settings.kill_switch_file).close()  # created, as the workers share it
    if settings.replay_dir is not None:
        datadir.scan_events(settings.replay_dir)  # lazy: only finds the log


def local_registry(settings: ServeSettings) -> LocalRegistry:
    """The registry at ``settings.registry_dir``.

    Raises:
        ConfigError: naming the setting, when the path is not a directory.
    """
    try:
        return LocalRegistry(settings.registry_dir)
    except ConfigError as exc:
        raise ConfigError(f"setting registry_dir: {exc}") from None


def _store(settings: ServeSettings) -> tuple[AsyncOnlineStore, ReplayFeeder | None]:
    store = open_async_store(settings.store_url, _STORE_SETTING, _store_options(settings))
    if isinstance(store, AsyncInMemoryStore) and settings.replay_dir is not None:
        return store, ReplayFeeder(settings.replay_dir, store.store)
    return store, None


def _store_options(settings: ServeSettings) -> StoreOptions:
    return StoreOptions(
        timeout_s=settings.store_timeout_ms / 1000.0,
        retries=0,
        max_connections=settings.max_in_flight + 8,
    )
