"""Retention planning, and the registry package's public surface."""

from __future__ import annotations

import doctest

import pytest

import arrive.registry
from arrive.errors import ConfigError
from arrive.registry import retention, versions_to_delete


def test_keeps_the_newest_by_number_not_by_text() -> None:
    versions = [str(n) for n in range(1, 13)]
    assert versions_to_delete(versions, set(), keep_last=3) == [str(n) for n in range(1, 10)]


def test_protected_versions_survive_whatever_their_age() -> None:
    assert versions_to_delete(["3", "1", "2"], {"1", "3"}, keep_last=0) == ["2"]


def test_keeping_more_than_exist_deletes_nothing() -> None:
    assert versions_to_delete(["1", "2"], set(), keep_last=10) == []


def test_negative_keep_is_refused() -> None:
    with pytest.raises(ConfigError, match="keep_last"):
        versions_to_delete(["1"], set(), keep_last=-1)


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(retention).failed == 0


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then CamelCase, then everything else."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_public_surface_is_sorted_and_importable() -> None:
    names = arrive.registry.__all__
    assert names == sorted(names, key=_isort_key)
    assert all(hasattr(arrive.registry, name) for name in names)
