"""Whole-file checks of a LightGBM text model, in Python, before LightGBM parses it.

LightGBM reads a model's trees at the offsets its header announces (``tree_sizes``)
without checking them against the text's length: a file cut short makes it read
past the end of its buffer, which may crash the process, or may not, depending on
what lies in memory beyond. A child process surviving the parse therefore does not
prove that the next process will: :func:`check_booster_text` refuses such a text
before any parse, wherever one happens.
"""

from __future__ import annotations

from typing import Final

from arrive.errors import InputFileError

_END_OF_TREES: Final = "end of trees\n"
_END_OF_PARAMETERS: Final = "\nend of parameters\n"
_TRAILER: Final = "\npandas_categorical:"


def check_booster_text(name: str, data: bytes) -> str:
    """The text of booster file ``name``, once its layout is whole: the header, each tree
    at the offset ``tree_sizes`` gives it, then every section up to the last line.

    Raises:
        InputFileError: naming the file and what is missing or out of place.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.startswith("tree\n"):
        raise InputFileError(f"{name}: not a LightGBM text model (no 'tree' header)")
    end = _walk_trees(name, text) if "\ntree_sizes=" in text else text.find(_END_OF_TREES)
    if end < 0 or not text.startswith(_END_OF_TREES, end):
        raise InputFileError(f"{name}: incomplete (no 'end of trees' after the trees)")
    parameters = text.find(_END_OF_PARAMETERS, end)
    trailer = text.rfind(_TRAILER)
    if parameters < 0 or trailer < parameters or not text.endswith("\n"):
        raise InputFileError(f"{name}: incomplete (the file ends before its last section)")
    return text


def _walk_trees(name: str, text: str) -> int:
    """The offset after the last tree, following ``tree_sizes`` (in bytes, ASCII here)."""
    line = text.split("\ntree_sizes=", 1)[1].split("\n", 1)[0]
    try:
        sizes = [int(size) for size in line.split()]
    except ValueError:
        raise InputFileError(f"{name}: malformed tree_sizes line") from None
    at = text.find("\nTree=0\n") + 1 if sizes else text.find(_END_OF_TREES)
    if sizes and at == 0:
        raise InputFileError(f"{name}: incomplete (no Tree=0)")
    for i, size in enumerate(sizes):
        if size <= 0 or at + size > len(text) or not text.startswith(f"Tree={i}\n", at):
            raise InputFileError(f"{name}: incomplete or garbled at tree {i} of {len(sizes)}")
        at += size
    return at
