"""The model check's child process: ``python -m arrive.models.check_child``.

Reads a model's files (msgpack, name → bytes) on stdin and prints the verdict of
:func:`arrive.models.check.inspect` as the last line of its stdout; see
:func:`arrive.models.check.check_files`, which runs it.

The child only parses boosters and scores a few rows, so LightGBM's optional
integrations (scikit-learn, pandas, Dask), which it would import with itself and
which take most of its import time, are kept out before it is imported (LightGBM
treats a missing integration as not installed).
"""

from __future__ import annotations

import sys
from typing import Final

UNUSED: Final = ("sklearn", "pandas", "dask", "pyarrow", "cffi")

if __name__ == "__main__":
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    from arrive.models.check import child_main

    raise SystemExit(child_main())
