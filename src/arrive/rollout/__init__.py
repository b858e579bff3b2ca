"""Safe model rollout: durable rollout state with the registry, sticky assignment of
units to control or candidate, shadow scoring, and sequential guardrails on joined
outcomes that ramp a candidate up or roll it back.

* :mod:`arrive.rollout.guardrails` — candidate against control on joined rows: a
  ``hold`` / ``pass`` / ``breach`` verdict with its reason and figures (no IO).
* :mod:`arrive.rollout.sequential` — always-valid confidence sequences (peeking-safe).
"""
