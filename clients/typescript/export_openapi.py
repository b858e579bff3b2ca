"""Write the ETA service's OpenAPI document (default settings) as clients/typescript/openapi.json.

Run by ``./dev gen-clients``; the TypeScript types in src/schema.ts are generated from it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from arrive.serving.http.openapi import openapi_document
from arrive.serving.settings import ServeSettings


def document_text() -> str:
    """The document as committed: sorted keys, two-space indent, a final newline."""
    return json.dumps(openapi_document(ServeSettings()), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("openapi.json")
    out.write_text(document_text(), encoding="utf-8")
