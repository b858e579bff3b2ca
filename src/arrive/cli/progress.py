"""Progress display shared by long-running commands.

A task counts items (``done/total``) unless it is added with ``unit="bytes"``,
which shows sizes (``1.1/7.8 MB``): a file read in chunks knows its bytes, not
its rows.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class _CompletedColumn(ProgressColumn):
    """``done/total`` in the task's unit: items by default, sizes for ``unit="bytes"``."""

    def __init__(self) -> None:
        super().__init__()
        self._items = MofNCompleteColumn()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == "bytes":
            return self._bytes.render(task)
        return self._items.render(task)


def progress(*, quiet: bool = False) -> Progress:
    """A rich progress display on stderr (disabled when ``quiet``)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        _CompletedColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=False,
    )
