"""Offline batch scoring from a registry: the features of a data directory's orders
built offline, as training builds them (point in time, from the event log), and
predicted by the trees the service serves (compiled when a backend is set), with its
calibration. For the same feature values the answers are the service's
(``tests/cli/test_score_cmd.py`` checks it against a live service's prediction log).

The trees run on several threads: compiled trees are called through ctypes, which
releases the interpreter lock, so threads use every core without a process each.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from arrive import datadir
from arrive.errors import ConfigError, DataError
from arrive.features import BuildContext, build_features
from arrive.models.artifact import ModelBundle
from arrive.models.encoding import to_matrix
from arrive.registry import LocalRegistry
from arrive.schema.eta import P50, P90, quantile_index
from arrive.schema.frame import created_orders
from arrive.serving.compiled import Backend, CompiledModel

FloatArray = npt.NDArray[np.float64]
CHUNK_ROWS: Final = 8192
_UNREAD: Final = ("event_id", "schema_version", "attributes")
"""Event-log columns no feature reads (an order's attributes come from the orders table)."""


@dataclass(frozen=True)
class OfflineModel:
    """A registry version loaded for batch scoring."""

    version: str
    bundle: ModelBundle
    compiled: CompiledModel
    p50: int
    p90: int

    @property
    def features(self) -> list[str]:
        return list(self.bundle.model.features_)

    def predict(self, features: pl.DataFrame, threads: int = 1) -> tuple[FloatArray, FloatArray]:
        """P50 and P90 seconds of each row of ``features`` (one column per model feature)."""
        model = self.bundle.model
        matrix = to_matrix(features, model.features_, model.vocabulary_)
        chunks = [matrix[i : i + CHUNK_ROWS] for i in range(0, len(matrix), CHUNK_ROWS)]
        if not chunks:
            return np.empty(0), np.empty(0)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            out = np.concatenate(list(pool.map(self.compiled.predict_matrix, chunks)))
        return out[:, self.p50], out[:, self.p90]


def load_model(registry_dir: Path, ref: str, backend: Backend, cache_dir: Path) -> OfflineModel:
    """Version or alias ``ref`` of the registry at ``registry_dir``, its trees compiled
    (or loaded from ``cache_dir``) and checked as the service checks them.

    Raises:
        ModelNotFound: no such version or alias.
        ModelIntegrityError: a stored file does not match its checksum.
    """
    registry = LocalRegistry(registry_dir)
    loaded = registry.open(ref)
    bundle = ModelBundle.from_files(loaded.files)
    model = bundle.model
    compiled = CompiledModel(model, backend, cache_dir, reference=bundle.probe)
    compiled.start_compiling()
    compiled.wait()
    if compiled.error is not None:
        raise ConfigError(
            f"--registry: the trees of version {loaded.version.version} "
            f"do not compile with {backend}: {compiled.error}"
        )
    return OfflineModel(
        version=loaded.version.version,
        bundle=bundle,
        compiled=compiled,
        p50=quantile_index(model.quantiles_, P50, f"version {loaded.version.version}"),
        p90=quantile_index(model.quantiles_, P90, f"version {loaded.version.version}"),
    )


def order_features(directory: Path, names: list[str]) -> pl.DataFrame:
    """``order_id``, ``created_at`` and the features ``names`` of every order created in
    ``directory``'s event log, as of its creation, in creation order.

    Raises:
        InputFileError: no orders table or event log.
        DataError: a feature the model needs cannot be built from this data.
    """
    orders = datadir.read_orders(directory)
    # the log read once (every group reads it), without what no feature reads
    events = datadir.scan_events(directory).select(pl.exclude(_UNREAD)).collect().lazy()
    attributes = tuple(c for c in orders.columns if c not in datadir.ORDER_COLUMNS)
    spine = created_orders(events).collect()
    if attributes:
        spine = spine.join(orders.select("order_id", *attributes), on="order_id", how="left")
    context = BuildContext(spine, events, datadir.local_timezone(directory), attributes)
    built = build_features(context)
    frame = built.frame
    for name in names:
        if name not in frame.columns:
            reason = built.left_out.get(name, "not built")
            raise DataError(
                f"{directory}: the model needs feature {name}, not built here ({reason})"
            )
    return pl.concat(
        [spine.select("order_id", "created_at"), frame.select(names)], how="horizontal"
    )


def score_frame(model: OfflineModel, features: pl.DataFrame, threads: int) -> pl.DataFrame:
    """The answers for ``features`` (``order_id``, ``created_at``, the model's features)."""
    p50, p90 = model.predict(features, threads)
    answers = features.select("order_id", "created_at").with_columns(
        pl.Series("p50_s", p50), pl.Series("p90_s", p90)
    )
    return answers.with_columns(
        promised_at=pl.col("created_at")
        + pl.duration(microseconds=(pl.col("p90_s") * 1e6).cast(pl.Int64)),
        model_version=pl.lit(model.version),
        status=pl.lit("ok"),
    )
