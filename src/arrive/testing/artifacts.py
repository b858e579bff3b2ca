"""Model artifacts for tests: a small real bundle, and damage a checksum does not catch.

A buggy exporter, or a partial copy followed by a re-index, leaves a registry whose
``index.json`` records the checksum of a broken file: :func:`resign` writes such a
file and updates its SHA-256 and size in the index, so only the model check can
tell that it is broken.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import polars as pl

from arrive.fallback import HeuristicEta
from arrive.models.artifact import ModelBundle
from arrive.models.check import make_probe
from arrive.models.quantile import QuantileEta
from arrive.registry.local import INDEX_FILE, VERSIONS_DIR

_JUNK = b"0123456789=-.[] eE\nleaf_value=tree"


def small_bundle(seed: int = 0, n: int = 1200) -> ModelBundle:
    """A real bundle trained in about a second: boosters, heuristic, features, probe."""
    rng = np.random.default_rng(seed)
    distance = rng.uniform(0.5, 10.0, n)
    zone = rng.choice(["a", "b", "c"], n)
    y = 600 + 150 * distance + np.where(zone == "b", 300, 0) + rng.gamma(2.0, 40 * distance)
    X = pl.DataFrame({"distance_km": distance, "zone": zone})
    fit, calib = slice(0, n * 3 // 4), slice(n * 3 // 4, n)
    model = QuantileEta((0.5, 0.9), n_estimators=40, num_leaves=15, seed=seed, n_jobs=1)
    model.fit(X[fit], y[fit], categorical=["zone"]).calibrate(X[calib], y[calib])
    heuristic = HeuristicEta(levels=[("zone",), ()], min_count=20)
    heuristic.fit(pl.DataFrame({"zone": zone, "duration_s": y}))
    features = {"definitions_hash": f"small-{seed}", "local_timezone": "UTC", "features": []}
    return ModelBundle(model, heuristic, features, make_probe(model, X[fit]))


def truncated(data: bytes, keep: float) -> bytes:
    """The first ``keep`` share of ``data`` (a partial copy)."""
    return data[: int(len(data) * keep)]


def garbled(data: bytes, at: float, length: int = 64) -> bytes:
    """``data`` with ``length`` bytes from the ``at`` share on overwritten by printable
    junk (so the text still decodes, and reaches LightGBM's parser)."""
    start = int(len(data) * at)
    junk = bytes(_JUNK[(7 * i) % len(_JUNK)] for i in range(length))
    return data[:start] + junk + data[start + length :]


def out_of_range_split(data: bytes) -> bytes:
    """A booster text whose first split reads feature 99999999, its layout kept whole
    (``tree_sizes`` adjusted): LightGBM reads far outside the row and segfaults."""
    text = data.decode()
    found = re.search(r"Tree=0\n.*?split_feature=(\d+)", text, re.S)
    if found is None:
        raise ValueError("no split in tree 0")
    big = "99999999"
    text = text[: found.start(1)] + big + text[found.end(1) :]
    line = text.split("tree_sizes=", 1)[1].split("\n", 1)[0]
    sizes = line.split()
    sizes[0] = str(int(sizes[0]) + len(big) - (found.end(1) - found.start(1)))
    return text.replace(f"tree_sizes={line}", f"tree_sizes={' '.join(sizes)}", 1).encode()


def resign(root: Path, version: str, name: str, data: bytes) -> None:
    """Replace a stored file of a :class:`~arrive.registry.LocalRegistry` at ``root`` with
    ``data`` and record its SHA-256 and size in the index, as a re-index would."""
    (root / VERSIONS_DIR / version / name).write_bytes(data)
    index_path = root / INDEX_FILE
    index = json.loads(index_path.read_bytes())
    index["versions"][version]["files"][name] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
    }
    index_path.write_text(json.dumps(index, indent=2))
