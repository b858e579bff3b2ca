"""Dataset importers: a delivery CSV + a TOML mapping → canonical orders and events.

One code path serves every source: the presets shipped in ``presets/*.toml``
(``food-delivery``, ``doordash``) are mapping files like any user's own. See
``docs/mapping.md`` for the mapping format.
"""

from arrive.ingest.importers.importer import (
    ImportProgress,
    ImportResult,
    QuarantinedRow,
    import_csv,
    import_into,
    nothing_imported,
    write_import,
    write_quarantine,
)
from arrive.ingest.importers.mapping import Mapping, load_mapping, parse_mapping, preset_names

__all__ = [
    "ImportProgress",
    "ImportResult",
    "Mapping",
    "QuarantinedRow",
    "import_csv",
    "import_into",
    "load_mapping",
    "nothing_imported",
    "parse_mapping",
    "preset_names",
    "write_import",
    "write_quarantine",
]
