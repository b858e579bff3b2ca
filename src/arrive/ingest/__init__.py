"""Getting data in: sources of canonical events (dataset importers, …)."""

from arrive.ingest.importers import (
    ImportProgress,
    ImportResult,
    Mapping,
    QuarantinedRow,
    import_csv,
    load_mapping,
    parse_mapping,
    preset_names,
    write_import,
    write_quarantine,
)

__all__ = [
    "ImportProgress",
    "ImportResult",
    "Mapping",
    "QuarantinedRow",
    "import_csv",
    "load_mapping",
    "parse_mapping",
    "preset_names",
    "write_import",
    "write_quarantine",
]
