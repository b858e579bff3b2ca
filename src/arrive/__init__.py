"""Arrive: calibrated P50/P90 delivery ETAs from live features."""

from arrive import cores
from arrive.errors import ArriveError

# before any Arrive module loads LightGBM (libgomp reads its variables then) or Polars
cores.prepare_environment()

__all__ = ["ArriveError"]
__version__ = "0.1.0"
