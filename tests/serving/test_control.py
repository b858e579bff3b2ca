"""The kill switch shared by worker processes through a mapped file."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrive.errors import ConfigError
from arrive.serving.control import Control, SharedControl


def test_a_flip_by_one_holder_is_seen_by_every_other(tmp_path: Path) -> None:
    path = tmp_path / "kill-switch"
    first, second = SharedControl(path), SharedControl(path)
    assert (first.on, second.on) == (False, False)
    first.set(True)
    assert second.on
    second.set(False)
    assert not first.on
    first.close()
    second.close()


def test_the_state_outlives_its_holders(tmp_path: Path) -> None:
    path = tmp_path / "kill-switch"
    switch = SharedControl(path)
    switch.set(True)
    switch.close()
    again = SharedControl(path)
    assert again.on
    again.close()


def test_a_file_that_cannot_be_made_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="setting kill_switch_file: cannot use"):
        SharedControl(tmp_path / "no-such-dir" / "kill-switch")


def test_the_process_switch_is_a_flag() -> None:
    switch = Control()
    switch.set(True)
    assert switch.on
    switch.set(False)
    assert not switch.on


def test_reloads_counted_by_one_holder_are_seen_by_every_other(tmp_path: Path) -> None:
    path = tmp_path / "kill-switch"
    first, second = SharedControl(path), SharedControl(path)
    assert (first.reloads, second.reloads) == (0, 0)
    assert first.count_reload() == 1
    assert second.count_reload() == 2
    assert first.reloads == 2
    first.set(True)
    assert second.reloads == 2  # the switch and the count do not disturb each other
    first.close()
    second.close()


def test_a_one_byte_file_of_an_earlier_version_keeps_its_switch(tmp_path: Path) -> None:
    path = tmp_path / "kill-switch"
    path.write_bytes(b"\1")
    switch = SharedControl(path)
    assert switch.on
    assert switch.reloads == 0
    assert switch.count_reload() == 1
    switch.close()


def test_the_process_switch_counts_reloads() -> None:
    switch = Control()
    assert switch.reloads == 0
    assert switch.count_reload() == 1
    assert switch.reloads == 1
