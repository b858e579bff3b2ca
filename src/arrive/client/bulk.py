"""Bulk scoring over several processes: each its own client and connection pool,
results in input order, a progress bar, one status per row, resumable.

Each process keeps ``in_flight`` requests on the wire (default 1; more run on threads
sharing its pool): while one answer is decoded and turned into rows, the server
already works on the next batch.

While it runs, finished rows are appended to a journal beside the output
(``OUT.partial.jsonl``), one JSON line per row; a crash loses at most the line being
written (a torn last line is not valid JSON, and is skipped). At the end the rows
are sorted into input order and written to ``OUT`` atomically, and the journal is
removed. Re-running with the same ``out`` skips every row already answered (from
the journal, or from ``OUT`` itself) and tries the others again.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from arrive.client.calls import Retry, to_request
from arrive.client.errors import ClientError, RequestRejected
from arrive.client.sources import (
    RESULT_SCHEMA,
    Source,
    check_output,
    read_results,
    read_rows,
    write_results,
)
from arrive.errors import InputFileError
from arrive.schema.eta import EtaAnswer, EtaRequest

Row = dict[str, Any]
Chunk = list[tuple[int, Row]]
_ORDER_REF: Final = "orders["


@dataclass(frozen=True)
class ClientConfig:
    """What a worker process needs to build its own client (picklable)."""

    url: str
    timeout_s: float
    deadline_s: float
    retry: Retry


@dataclass(frozen=True)
class BulkResult:
    """What a bulk run produced.

    Attributes:
        frame: one row per input row, in input order (columns of ``RESULT_SCHEMA``).
        skipped: rows already answered by an earlier run of the same output.
    """

    frame: pl.DataFrame
    skipped: int

    @property
    def failed(self) -> int:
        """Rows without an answer (``status`` is ``rejected`` or ``error``)."""
        return int((self.frame["status"] != "ok").sum())


def bulk_predict(
    config: ClientConfig,
    source: Source,
    *,
    processes: int = 2,
    batch_size: int = 256,
    in_flight: int = 1,
    out: Path | None = None,
    progress: bool = True,
) -> BulkResult:
    """Score every order of ``source`` through the service (see the module's doc)."""
    if processes < 1:
        raise ValueError("processes: must be at least 1")
    if batch_size < 1:
        raise ValueError("batch_size: must be at least 1")
    if in_flight < 1:
        raise ValueError("in_flight: must be at least 1")
    if out is not None:
        check_output(out)
    rows = read_rows(source)
    journal = None if out is None else out.with_name(out.name + ".partial.jsonl")
    done = _earlier(rows, out, journal)
    pending = [(i, row) for i, row in enumerate(rows) if i not in done]
    step = batch_size * in_flight  # one task: in_flight requests sent together
    chunks = [pending[i : i + step] for i in range(0, len(pending), step)]
    results = dict(done)
    with _Journal(journal) as sink, _bar(progress, len(rows), len(done)) as advance:
        for scored in _run(_Work(config, batch_size, in_flight), chunks, processes):
            sink.write(scored)
            results.update((r["row"], r) for r in scored)
            advance(len(scored))
    frame = pl.DataFrame([results[i] for i in range(len(rows))], schema=RESULT_SCHEMA)
    if out is not None and journal is not None:
        write_results(frame, out)
        journal.unlink(missing_ok=True)
    return BulkResult(frame, len(done))


# -- the work of one process ---------------------------------------------------------------

_worker: dict[str, Any] = {}  # this process's client and threads, built by _start_worker


@dataclass(frozen=True)
class _Work:
    """What a worker process is told at its start (picklable)."""

    client: ClientConfig
    batch_size: int
    in_flight: int


def _start_worker(work: _Work) -> None:
    from arrive.client.sync import EtaClient

    config = work.client
    _worker["client"] = EtaClient(
        config.url,
        timeout_s=config.timeout_s,
        deadline_s=config.deadline_s,
        retry=config.retry,
        pool_size=max(10, work.in_flight),
    )
    _worker["batch_size"] = work.batch_size
    _worker["threads"] = ThreadPoolExecutor(work.in_flight, thread_name_prefix="bulk")


def _stop_worker() -> None:
    _worker.pop("threads").shutdown()
    _worker.pop("client").close()


def score_chunk(chunk: Chunk) -> list[Row]:
    """The result rows of ``chunk`` (this process's client; one status per row), its
    batches sent at once on this process's threads."""
    results: dict[int, Row] = {}
    valid: list[tuple[int, Row, EtaRequest]] = []
    for index, row in chunk:
        try:
            valid.append((index, row, to_request(row)))
        except RequestRejected as exc:
            results[index] = _failed(index, row, "rejected", str(exc))
    size = min(_worker["batch_size"], _worker["client"].max_batch()) if valid else 1
    batches = [valid[start : start + size] for start in range(0, len(valid), size)]
    for answered in _worker["threads"].map(_send, batches):
        results.update(answered)
    return [results[index] for index, _ in chunk]


def _send(batch: list[tuple[int, Row, EtaRequest]]) -> dict[int, Row]:
    """One batch; an order the server refuses is reported and the rest resent."""
    results: dict[int, Row] = {}
    while batch:
        try:
            answers = _worker["client"].predict_batch([request for _, _, request in batch])
        except RequestRejected as exc:
            culprit = _culprit(exc, len(batch))
            if culprit is None:
                return {**results, **{i: _failed(i, r, "rejected", str(exc)) for i, r, _ in batch}}
            index, row, _ = batch.pop(culprit)
            results[index] = _failed(index, row, "rejected", _without_prefix(exc, culprit))
            continue
        except ClientError as exc:
            return {**results, **{i: _failed(i, r, "error", str(exc)) for i, r, _ in batch}}
        results.update((i, _answered(i, a)) for (i, _, _), a in zip(batch, answers, strict=True))
        return results
    return results


def _culprit(exc: RequestRejected, n: int) -> int | None:
    """The index of the order ``exc`` names (``orders[3].items``), if any."""
    field = exc.field or ""
    if not field.startswith(_ORDER_REF):
        return None
    number = field[len(_ORDER_REF) :].split("]", 1)[0]
    return int(number) if number.isdigit() and int(number) < n else None


def _without_prefix(exc: RequestRejected, index: int) -> str:
    return str(exc).replace(f"orders[{index}].", "", 1)


def _answered(index: int, answer: EtaAnswer) -> Row:
    return {
        "row": index,
        "order_id": answer.order_id,
        "status": "ok",
        "error": None,
        "request_id": answer.request_id,
        "p50_s": answer.p50_s,
        "p90_s": answer.p90_s,
        "promised_at": answer.promised_at.isoformat(),
        "model_version": answer.model_version,
        "variant": answer.variant,
        "fallback": answer.fallback,
    }


def _failed(index: int, row: Mapping[str, Any], status: str, error: str) -> Row:
    order_id = row.get("order_id")
    return {
        **dict.fromkeys(RESULT_SCHEMA),
        "row": index,
        "order_id": None if order_id is None else str(order_id),
        "status": status,
        "error": error,
    }


# -- the run -------------------------------------------------------------------------------


def _run(work: _Work, chunks: list[Chunk], processes: int) -> Iterator[list[Row]]:
    """Each chunk's results as they finish (in-process when ``processes`` is 1)."""
    if not chunks:
        return
    if processes == 1:
        _start_worker(work)
        try:
            yield from map(score_chunk, chunks)
        finally:
            _stop_worker()
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=_start_worker, initargs=(work,)
    ) as pool:
        queue = iter(chunks)
        running: set[Future[list[Row]]] = set()
        for chunk in queue:
            running.add(pool.submit(score_chunk, chunk))
            if len(running) >= 3 * processes:
                break
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
                for chunk in itertools.islice(queue, 1):
                    running.add(pool.submit(score_chunk, chunk))


def _earlier(rows: list[Row], out: Path | None, journal: Path | None) -> dict[int, Row]:
    """Rows answered by an earlier run (journal first, else the output), by row.

    Raises:
        InputFileError: they are another input's (an order id differs).
    """
    if out is None or journal is None:
        return {}
    found: dict[int, Row] = {}
    if out.is_file():
        found.update((r["row"], r) for r in read_results(out).to_dicts())
    if journal.is_file():
        found.update((r["row"], r) for r in _journal_rows(journal))
    done = {i: r for i, r in found.items() if r["status"] == "ok"}
    for index, result in done.items():
        mine = rows[index].get("order_id") if index < len(rows) else None
        if mine is None or str(mine) != result["order_id"]:
            raise InputFileError(
                f"{out}: holds the results of another input (row {index} is order "
                f"{result['order_id']}, not {mine}); remove it or choose another --out"
            )
    return done


def _journal_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line, torn by a crash
            if isinstance(row, dict) and isinstance(row.get("row"), int):
                yield row


class _Journal:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: Any = None

    def __enter__(self) -> _Journal:
        if self.path is not None:
            self._file = self.path.open("a", encoding="utf-8")
        return self

    def write(self, rows: list[Row]) -> None:
        if self._file is not None:
            self._file.write("".join(json.dumps(r) + "\n" for r in rows))
            self._file.flush()

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


class _bar:
    def __init__(self, shown: bool, total: int, done: int) -> None:
        self.progress = Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not shown,
        )
        self.task = self.progress.add_task("scoring", total=total, completed=done)

    def __enter__(self) -> Callable[[int], None]:
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
