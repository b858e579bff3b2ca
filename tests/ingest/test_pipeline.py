"""The one ingest pipeline: built on a checkpoint it resumes where the last run saved,
and ends with the features of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arrive.clock import ManualClock
from arrive.features.online.engine import OnlineEngine
from arrive.ingest.deadletter import MemoryDeadLetter
from arrive.ingest.pipeline import Pipeline, PipelineSettings, build_pipeline
from arrive.ingest.source import MemorySource, MemoryStream
from arrive.schema.codec import encode_event
from arrive.schema.frame import frame_to_events
from arrive.store.memory import InMemoryStore
from arrive.testing.factories import random_marketplace


def _events() -> list[Any]:
    frame = random_marketplace(9, n_orders=120).events.sort("event_time", "event_id")
    return list(frame_to_events(frame))


def _pipeline(events: list[Any], store: InMemoryStore, state: Path) -> Pipeline:
    stream = MemoryStream(entries=[(None, encode_event(e)) for e in events])
    settings = PipelineSettings(batch_size=50, max_future_s=None, state_path=state)
    clock = ManualClock()
    return build_pipeline(
        MemorySource(stream, finite=True), store, MemoryDeadLetter(), clock, settings
    )


def _values(store: InMemoryStore) -> dict[Any, dict[str, object]]:
    return {k: {n: v.value for n, v in row.items()} for k, row in store._rows.items()}


def test_a_pipeline_built_on_a_checkpoint_resumes_to_the_features_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    events = _events()
    half = len(events) // 2
    store = InMemoryStore()
    first = _pipeline(events[:half], store, tmp_path / "state")
    assert not first.resumed
    assert first.runner.run().events_applied == half
    second = _pipeline(events[half:], store, tmp_path / "state")
    assert second.resumed
    assert second.engine.watermark_us == first.engine.watermark_us
    second.runner.run()
    reference = InMemoryStore()
    OnlineEngine(reference).apply(events)
    assert _values(store) == _values(reference)
