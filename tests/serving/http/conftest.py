"""Fixtures of the HTTP tests: the real predictor (one trained model per session, from
:mod:`arrive.testing.trained`) behind the real app, driven in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from arrive.registry.base import ModelRegistry
from arrive.serving.http import create_app
from arrive.serving.predictor import EtaPredictor
from arrive.serving.settings import ServeSettings
from arrive.serving.wiring import build_predictor
from arrive.store.base import AsyncOnlineStore, OnlineStore
from arrive.testing.servers.eta_service import wait_for
from arrive.testing.trained import TOKEN


@pytest.fixture
def serve_settings(tmp_path: Path, trained: Any) -> ServeSettings:
    """Settings of an in-process service on the embedded replay of the trained data."""
    return ServeSettings(
        replay_dir=trained.data_dir,
        compile_backend="none",
        compile_cache_dir=trained.compile_cache,
        prediction_log_dir=tmp_path / "predictions",
        reload_interval_s=0,
        store_check_interval_s=0.05,
        admin_token=TOKEN,
        max_batch=20,
        max_body_bytes=4096,
    )


Serve = Callable[..., Any]


@pytest.fixture
def serve(trained: Any) -> Serve:
    """``serve(settings, registry=None, store=None) -> context manager of (client, predictor)``.

    The predictor is A's real one; the app runs its lifespan inside ``TestClient``;
    the context waits for the embedded replay to finish.
    """

    @contextmanager
    def run(
        settings: ServeSettings,
        registry: ModelRegistry | None = None,
        store: OnlineStore | AsyncOnlineStore | None = None,
        clock: Any = None,
    ) -> Iterator[tuple[TestClient, EtaPredictor]]:
        predictor = build_predictor(
            settings,
            registry=registry if registry is not None else trained.registry(),
            store=store,
            clock=clock,
        )
        app = create_app(settings, build=lambda _: predictor)
        with TestClient(app, raise_server_exceptions=False) as client:
            if predictor.feeder is not None:
                assert predictor.feeder.wait(60), "the replay did not finish"
                assert predictor.feeder.error is None, predictor.feeder.error
            yield client, predictor

    return run


@pytest.fixture
def client(serve: Serve, serve_settings: ServeSettings) -> Iterator[TestClient]:
    """A ready service on the embedded replay, admin token :data:`TOKEN`."""
    with serve(serve_settings) as (test_client, _):
        wait_for(lambda: test_client.get("/readyz").status_code == 200, what="readiness")
        yield test_client
