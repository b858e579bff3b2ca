"""The transport-neutral ETA inference core: answers, predictor, model slot, prediction log."""

from arrive.serving.answer import FALLBACK_REASONS, EtaAnswer, FallbackReason, Predictor, Variant

__all__ = ["FALLBACK_REASONS", "EtaAnswer", "FallbackReason", "Predictor", "Variant"]
