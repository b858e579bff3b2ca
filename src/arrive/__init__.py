"""Arrive: calibrated P50/P90 delivery ETAs from live features."""

from arrive.errors import ArriveError

__all__ = ["ArriveError"]
__version__ = "0.1.0"
