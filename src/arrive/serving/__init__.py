"""The ETA service: predictor, model slot, HTTP transport; its answer types (re-exported)
are :mod:`arrive.schema.eta`'s."""

from arrive.schema.eta import FALLBACK_REASONS, EtaAnswer, FallbackReason, Predictor, Variant

__all__ = ["FALLBACK_REASONS", "EtaAnswer", "FallbackReason", "Predictor", "Variant"]
