"""Safe model rollout: durable rollout state with the registry, sticky assignment of
units to control or candidate, shadow scoring, and sequential guardrails on joined
outcomes that ramp a candidate up or roll it back."""
