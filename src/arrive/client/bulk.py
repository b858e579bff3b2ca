"""Bulk scoring over several processes: each its own client and connection pool,
results in input order, a progress bar, one status per row, resumable.

The calling process reads the source once and encodes the orders to request bodies
straight from its columns (:mod:`arrive.client.encoding`); the worker processes only
send the bodies, decode the answers and return them as columns. Each process keeps
``in_flight`` requests on the wire (default 1; more run on threads sharing its pool).
With ``processes=1`` no process is started: ``in_flight`` threads of the caller send,
while the caller encodes the next bodies and writes the results.

An order the service refuses (a 4xx naming it) is reported on its row and the rest of
its batch sent again; a batch that fails otherwise (the service down past the client's
retries, a 5xx) is reported on each of its rows, never a silent gap.

While it runs, finished rows are appended to a journal beside the output
(``OUT.partial.jsonl``), one JSON line per row; a crash loses at most the line being
written (a torn last line is not valid JSON, and is skipped). At the end the rows
are sorted into input order and written to ``OUT`` atomically, and the journal is
removed. Re-running with the same ``out`` skips every row already answered (from
the journal, or from ``OUT`` itself) and tries the others again.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from arrive.client.calls import Retry
from arrive.client.encoding import (
    Batch,
    Orders,
    Refused,
    body_of,
    order_ids_in,
    orders_in,
    problem,
)
from arrive.client.errors import BadResponse, ClientError, RequestRejected
from arrive.client.sources import (
    RESULT_SCHEMA,
    Source,
    check_output,
    read_orders,
    read_results,
    write_results,
)
from arrive.errors import InputFileError
from arrive.schema.eta import EtaAnswer

if TYPE_CHECKING:
    from arrive.client.sync import EtaClient

Columns = dict[str, list[Any]]  # result rows by column (RESULT_SCHEMA's), cheap to pickle
_ORDER_REF: Final = "orders["
_journal_line: Final = msgspec.json.Decoder(dict[str, Any])
_journal_encoder: Final = msgspec.json.Encoder()
_BATCHES_A_TASK: Final = 4
# the answer's fields a result row keeps, decoded with the service's types but for
# promised_at, kept as the service wrote it (RFC 3339; no datetime object per row)
_ANSWER_COLUMNS: Final = (
    "order_id",
    "request_id",
    "p50_s",
    "p90_s",
    "promised_at",
    "model_version",
    "variant",
    "fallback",
)
_Answer = msgspec.defstruct(
    "_Answer",
    [
        (f.name, str if f.name == "promised_at" else f.type)
        for f in msgspec.structs.fields(EtaAnswer)
        if f.name in _ANSWER_COLUMNS
    ],
)


class _Answers(msgspec.Struct):
    answers: list[_Answer]  # type: ignore[valid-type]


_answers: Final = msgspec.json.Decoder(
    _Answers
)  # per request in flight: what a worker is given at once


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
    orders = read_orders(source)
    journal = None if out is None else out.with_name(out.name + ".partial.jsonl")
    done = _earlier(orders, out, journal)
    answered = set(done.get_column("row").to_list())
    pending = [i for i in range(len(orders)) if i not in answered]
    scored = _columns([])
    with _Journal(journal) as sink, _bar(progress, len(orders), len(done)) as advance:
        for part in _run(_Work(config, in_flight), orders, pending, batch_size, processes):
            sink.write(part)
            _extend(scored, part)
            advance(len(part["row"]))
    frame = pl.concat([done, pl.DataFrame(scored, schema=RESULT_SCHEMA)]).sort("row")
    frame = frame.with_columns(pl.col("promised_at").str.replace(r"Z$", "+00:00"))
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
    in_flight: int


def _client(config: ClientConfig, pool_size: int = 10) -> EtaClient:
    from arrive.client.sync import EtaClient

    return EtaClient(
        config.url,
        timeout_s=config.timeout_s,
        deadline_s=config.deadline_s,
        retry=config.retry,
        pool_size=pool_size,
    )


def _start_worker(work: _Work) -> None:
    _worker["client"] = _client(work.client, max(10, work.in_flight))
    _worker["threads"] = ThreadPoolExecutor(work.in_flight, thread_name_prefix="bulk")


def score_task(batches: list[Batch]) -> Columns:
    """The result rows of ``batches`` (this process's client; one status per row), sent
    ``in_flight`` at a time on this process's threads."""
    threads: ThreadPoolExecutor = _worker["threads"]
    client = _worker["client"]
    return _columns(threads.map(lambda batch: _send(client, batch), batches))


def _send(client: EtaClient, batch: Batch) -> Columns:
    """One batch's result rows: answered, or each failed with why."""
    try:
        answers = client.post_batch(batch.body, _answers).answers
        if len(answers) != len(batch.rows):
            raise BadResponse(f"{len(batch.rows)} orders sent, {len(answers)} answers received")
    except RequestRejected as exc:
        return _refused(client, batch, exc)
    except ClientError as exc:
        return _failed(batch.rows, order_ids_in(batch.body), "error", str(exc))
    return _answered(batch.rows, answers)


def _refused(client: EtaClient, batch: Batch, exc: RequestRejected) -> Columns:
    """A batch the service refused: each order checked on its own with the service's
    type, the faulty reported, the rest sent again. When none is faulty by the schema,
    the order the service named is (a check of the service beyond the schema)."""
    sent = orders_in(batch.body)
    problems = [problem(order) for order in sent]
    if not any(problems):
        culprit = _culprit(exc, len(sent))
        if culprit is None:
            return _failed(batch.rows, order_ids_in(batch.body), "rejected", str(exc))
        problems[culprit] = RequestRejected(None, _without_prefix(exc, culprit))
    ids = order_ids_in(batch.body)
    bad = [i for i, found in enumerate(problems) if found is not None]
    parts = [_failed([batch.rows[i]], [ids[i]], "rejected", str(problems[i])) for i in bad]
    good = [i for i, found in enumerate(problems) if found is None]
    if good:
        rest = Batch([batch.rows[i] for i in good], body_of([sent[i] for i in good]))
        parts.append(_send(client, rest))
    return _columns(parts)


def _culprit(exc: RequestRejected, n: int) -> int | None:
    """The index of the order ``exc`` names (``orders[3].items``), if any."""
    field = exc.field or ""
    if not field.startswith(_ORDER_REF):
        return None
    number = field[len(_ORDER_REF) :].split("]", 1)[0]
    return int(number) if number.isdigit() and int(number) < n else None


def _without_prefix(exc: RequestRejected, index: int) -> str:
    return str(exc).replace(f"orders[{index}].", "", 1)


def _answered(rows: list[int], answers: list[Any]) -> Columns:
    n = len(rows)
    columns: Columns = {"row": rows, "status": ["ok"] * n, "error": [None] * n}
    for name in _ANSWER_COLUMNS:
        columns[name] = [getattr(a, name) for a in answers]
    return columns


def _failed(
    rows: Sequence[int], order_ids: Sequence[str | None], status: str, error: str
) -> Columns:
    n = len(rows)
    columns: Columns = {name: [None] * n for name in RESULT_SCHEMA}
    columns |= {"row": list(rows), "order_id": list(order_ids)}
    columns |= {"status": [status] * n, "error": [error] * n}
    return columns


def _columns(parts: Iterable[Columns]) -> Columns:
    """``parts`` one after the other."""
    joined: Columns = {name: [] for name in RESULT_SCHEMA}
    for part in parts:
        _extend(joined, part)
    return joined


def _extend(columns: Columns, part: Columns) -> None:
    for name, values in columns.items():
        values.extend(part[name])


# -- the run -------------------------------------------------------------------------------


def _run(
    work: _Work, orders: Orders, pending: list[int], batch_size: int, processes: int
) -> Iterator[Columns]:
    """The result rows of ``pending``, a task at a time as they finish."""
    if not pending:
        return
    with _client(work.client) as client:
        size = min(batch_size, client.max_batch())
    step = size * work.in_flight * _BATCHES_A_TASK  # rows encoded at once
    tasks = (orders.batches(pending[i : i + step], size) for i in range(0, len(pending), step))
    backlog = 2 * step * processes  # rows sent or waiting at most
    with _senders(work, processes) as send:
        running: dict[Future[Columns], int] = {}
        for batches, refused in tasks:
            if refused:
                yield _refusals(refused)
            running |= send(batches)
            while sum(running.values()) >= backlog:
                yield from _finished(running)
        while running:
            yield from _finished(running)


def _finished(running: dict[Future[Columns], int]) -> Iterator[Columns]:
    finished, _ = wait(running, return_when=FIRST_COMPLETED)
    for future in finished:
        del running[future]
        yield future.result()


Send = Callable[[list[Batch]], dict["Future[Columns]", int]]


@contextmanager
def _senders(work: _Work, processes: int) -> Iterator[Send]:
    """What sends batches (a future of their results, and their rows): with one process
    its own ``in_flight`` threads and one client, a batch a future; else worker
    processes (spawned: the caller may run threads), the batches of a call a task."""
    if processes == 1:
        with (
            _client(work.client, max(10, work.in_flight)) as client,
            ThreadPoolExecutor(work.in_flight, thread_name_prefix="bulk") as threads,
        ):
            yield lambda batches: {threads.submit(_send, client, b): len(b.rows) for b in batches}
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=_start_worker, initargs=(work,)
    ) as pool:
        yield (
            lambda batches: (
                {pool.submit(score_task, batches): sum(len(b.rows) for b in batches)}
                if batches
                else {}
            )
        )


def _refusals(refused: list[Refused]) -> Columns:
    return _columns(_failed([r.row], [r.order_id], "rejected", r.error) for r in refused)


def _earlier(orders: Orders, out: Path | None, journal: Path | None) -> pl.DataFrame:
    """Rows answered by an earlier run (journal first, else the output).

    Raises:
        InputFileError: they are another input's (an order id differs).
    """
    found: list[pl.DataFrame] = []
    if out is not None and out.is_file():
        found.append(read_results(out))
    if journal is not None and journal.is_file():
        found.append(pl.DataFrame(_columns(_journal_lines(journal)), schema=RESULT_SCHEMA))
    typed = [f.select(pl.col(c).cast(t) for c, t in RESULT_SCHEMA.items()) for f in found]
    earlier = pl.concat(typed) if typed else pl.DataFrame(schema=RESULT_SCHEMA)
    done = earlier.unique("row", keep="last", maintain_order=True).filter(pl.col("status") == "ok")
    if done.is_empty():
        return done
    mine = orders.order_ids()
    for index, theirs in done.select("row", "order_id").iter_rows():
        ours = mine[index] if index < len(mine) else None
        if ours is None or ours != theirs:
            raise InputFileError(
                f"{out}: holds the results of another input (row {index} is order "
                f"{theirs}, not {ours}); remove it or choose another --out"
            )
    return done


def _journal_lines(path: Path) -> Iterator[Columns]:
    """The result rows of a journal: a line is the columns of some rows, or one row."""
    with path.open("rb") as lines:
        for line in lines:
            try:
                found = _journal_line.decode(line)
            except msgspec.DecodeError:
                continue  # the last line, torn by a crash
            if isinstance(found, dict) and isinstance(found.get("row"), int):
                yield {name: [found.get(name)] for name in RESULT_SCHEMA}
            elif isinstance(found, dict) and isinstance(found.get("row"), list):
                yield {
                    name: found.get(name) or [None] * len(found["row"]) for name in RESULT_SCHEMA
                }


class _Journal:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: Any = None

    def __enter__(self) -> _Journal:
        if self.path is not None:
            self._file = self.path.open("ab")
        return self

    def write(self, rows: Columns) -> None:
        if self._file is not None:
            self._file.write(_journal_encoder.encode(rows) + b"\n")
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
