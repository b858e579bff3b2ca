"""Event sources named by a URL, as the command line gives them: a data directory (file
replay), ``redis://host:port/db?stream=S&group=G`` (Redis Streams) or
``kafka://host:port?topic=T&group=G`` (Kafka; dotted parameters such as
``&session.timeout.ms=6000`` are passed to librdkafka). Stores are named by
:mod:`arrive.store.urls`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from arrive.errors import ConfigError
from arrive.ingest.source import EventSource


def open_source(spec: str, *, speed: float | None = None) -> EventSource:
    """The event source ``spec`` names.

    Raises:
        ConfigError: an unknown scheme or a missing parameter (named).
        InputFileError: a data directory without an event log.
    """
    parts = urlsplit(spec)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    group = query.get("group", "arrive-ingest")
    if parts.scheme in ("redis", "rediss", "unix"):
        from arrive.ingest.redis_streams import RedisStreamSource

        url = spec.split("?", 1)[0]
        return RedisStreamSource(url, _required(query, "stream", spec), group=group)
    if parts.scheme == "kafka":
        from arrive.ingest.kafka import KafkaSource

        config = {k: v for k, v in query.items() if "." in k}  # librdkafka settings
        return KafkaSource(parts.netloc, _required(query, "topic", spec), group, config=config)
    if parts.scheme in ("", "file"):
        from arrive.ingest.files import FileReplaySource

        return FileReplaySource(Path(parts.path), speed=speed)
    raise ConfigError(f"--source {spec}: unknown scheme {parts.scheme!r} (redis, kafka or a path)")


def _required(query: dict[str, str], name: str, spec: str) -> str:
    if name not in query:
        raise ConfigError(f"--source {spec}: missing ?{name}=...")
    return query[name]


def kafka_parts(spec: str) -> tuple[str, str, str, dict[str, str]]:
    """``(bootstrap, topic, group, config)`` of a ``kafka://`` source URL; ``config`` holds
    its dotted parameters, librdkafka settings (e.g. ``&session.timeout.ms=6000``).

    Raises:
        ConfigError: not a kafka URL, or no ``?topic=``.
    """
    parts = urlsplit(spec)
    if parts.scheme != "kafka":
        raise ConfigError(f"--source {spec}: not a kafka:// URL")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    config = {k: v for k, v in query.items() if "." in k}
    topic = _required(query, "topic", spec)
    return parts.netloc, topic, query.get("group", "arrive-ingest"), config
