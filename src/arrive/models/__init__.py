"""ETA models: quantile gradient-boosted trees, calibrated, never crossing."""

from arrive.models.quantile import QuantileEta

__all__ = ["QuantileEta"]
