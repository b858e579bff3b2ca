"""The live replay behind ``arrive demo``: history replayed as traffic through ingest and
the ETA service, every answer joined to its delivery outcome and checked against an
offline evaluation of the same model on the same orders."""
