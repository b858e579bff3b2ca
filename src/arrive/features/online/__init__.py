"""Online features: the ingest engine that keeps them current in an online store, the
reader that assembles an order's features from one store round trip, and the parity
check that proves both equal the offline builder.

* :mod:`.parts` — the online declarations of every feature group, collected.
* :mod:`.engine` — applies events in event time and writes features to a store.
* :mod:`.reader` — the features of orders at a time, from one ``get_many``.
* :mod:`.replay` — an event log applied in event time (the one replay: parity, the
  service's ``--replay-dir``, the demo, tests).
* :mod:`.parity` — replays an event log and compares online with offline values.
"""
