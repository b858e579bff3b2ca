"""Fallback ETAs: answers when the model or its features cannot."""

from arrive.fallback.heuristic import DEFAULT_LEVELS, HeuristicEta, level_name

__all__ = ["DEFAULT_LEVELS", "HeuristicEta", "level_name"]
