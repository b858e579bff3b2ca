"""Fallback ETAs: answers when the model or its features cannot."""

from arrive.fallback.heuristic import DEFAULT_LEVELS, HeuristicEta, level_name
from arrive.fallback.levels import LevelChoice, choose_levels, key_columns

__all__ = [
    "DEFAULT_LEVELS",
    "HeuristicEta",
    "LevelChoice",
    "choose_levels",
    "key_columns",
    "level_name",
]
