"""The lake writer: buffers rows per partition and writes atomic Parquet files.

:class:`LakeWriter` is not thread-safe: one thread owns it (the
:class:`~microstream.store.sink.LakeSink` background thread in the engine).
"""

from __future__ import annotations

import logging
import numbers
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from microstream.bus.protocol import Row
from microstream.errors import StoreError
from microstream.store.arrow import rows_to_table
from microstream.store.files import (
    NS_PER_DAY,
    date_of_day,
    ensure_writable,
    part_name,
    partition_dir,
    write_atomic,
)
from microstream.store.schema import (
    PARTITION_KEYS,
    TableSpec,
    get_table,
    guess_time_column,
    register_table,
)

log = logging.getLogger(__name__)

PartitionKey = tuple[str, str, str, int]
"""``(table, exchange, symbol, day number)``."""


@dataclass(frozen=True)
class WriterStats:
    """Counters of a :class:`LakeWriter` (a snapshot).

    Attributes:
        rows_written: rows in files that were written.
        files_written: files written.
        rows_buffered: rows waiting in memory.
        rows_rejected: bad rows skipped (no time column, value of the wrong type).
        rows_lost: rows of buffers whose write failed (full disk, permissions).
        errors: failed file writes.
    """

    rows_written: int
    files_written: int
    rows_buffered: int
    rows_rejected: int
    rows_lost: int
    errors: int


class _Buffer:
    """Rows of one partition, in arrival order, and their undeclared columns."""

    __slots__ = ("created", "extras", "first_ts", "known", "rows", "spec")

    def __init__(self, spec: TableSpec, created: float, first_ts: int) -> None:
        self.spec = spec
        self.rows: list[dict[str, Any]] = []
        self.extras: dict[str, None] = {}
        self.known = frozenset(spec.columns).union(PARTITION_KEYS)
        self.created = created
        self.first_ts = first_ts

    def append(self, values: dict[str, Any]) -> None:
        self.rows.append(values)
        if not self.known.issuperset(values):
            for name in values:
                if name not in self.known and name not in self.extras:
                    log.info("lake table %s: undeclared column %r kept", self.spec.name, name)
                    self.extras[name] = None


class LakeWriter:
    """Writes :class:`~microstream.bus.protocol.Row` objects into the lake.

    Rows are buffered per ``(table, exchange, symbol, UTC date)``. A buffer is
    written as one file when it holds ``flush_rows`` rows, or when it is older
    than ``flush_seconds`` (checked on every :meth:`add` and by
    :meth:`flush_due`). :meth:`close` writes everything left.

    Args:
        root: lake directory.
        flush_rows: rows that trigger a partition's flush.
        flush_seconds: maximum age of a buffer.
        writer_id: unique tag in file names (default: pid plus random hex).
        clock: monotonic clock in seconds (tests inject a fake one).

    Raises:
        StoreError: ``root`` cannot be created or written in (checked at once).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        flush_rows: int = 50_000,
        flush_seconds: float = 5.0,
        *,
        writer_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if flush_rows < 1:
            raise ValueError("flush_rows must be at least 1")
        self.root = Path(root)
        ensure_writable(self.root)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.writer_id = writer_id or f"{os.getpid()}x{secrets.token_hex(4)}"
        self._clock = clock
        self._buffers: dict[PartitionKey, _Buffer] = {}
        self._oldest = float("inf")
        self._seq = 0
        self._rows_written = 0
        self._buffered = 0
        self._files_written = 0
        self._rows_rejected = 0
        self._rows_lost = 0
        self._errors = 0
        self._warned: set[str] = set()
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        return WriterStats(
            rows_written=self._rows_written,
            files_written=self._files_written,
            rows_buffered=self._buffered,
            rows_rejected=self._rows_rejected,
            rows_lost=self._rows_lost,
            errors=self._errors,
        )

    def add(self, row: Row) -> None:
        """Buffer one row; may write files (flush by size or by age).

        A row without an integer time column is counted, logged and skipped.

        Raises:
            StoreError: a flush triggered by this row failed.
        """
        if self._closed:
            raise StoreError(f"lake writer for {self.root} is closed")
        spec = self._spec(row)
        ts = _as_int(row.values.get(spec.time_column)) if spec else None
        if spec is None or ts is None:
            self._reject(row, "no integer time column")
            return
        now = self._clock()
        key = (row.table, row.exchange, row.symbol, ts // NS_PER_DAY)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = _Buffer(spec, now, ts)
            self._oldest = min(self._oldest, now)
        buffer.append(row.values)
        self._buffered += 1
        if len(buffer.rows) >= self.flush_rows:
            self._flush_keys([key])
        if now - self._oldest >= self.flush_seconds:
            self.flush_due(now)

    def flush_due(self, now: float | None = None) -> int:
        """Write every buffer older than ``flush_seconds``; return the files written.

        Raises:
            StoreError: a write failed (the other due buffers are still written).
        """
        now = self._clock() if now is None else now
        due = [k for k, b in self._buffers.items() if now - b.created >= self.flush_seconds]
        return self._flush_keys(due)

    def flush(self) -> int:
        """Write every buffer now; return the number of files written."""
        return self._flush_keys(list(self._buffers))

    def close(self) -> None:
        """Write everything buffered; the writer accepts no more rows.

        Raises:
            StoreError: a final write failed.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def _flush_keys(self, keys: list[PartitionKey]) -> int:
        """Write the buffers of ``keys``: convert each (needs the GIL), write in the background.

        Parquet encoding, compression and fsync release the GIL, so a file is
        written by a small thread pool while the next buffer is converted; this
        call returns when every file is written. The counters are updated here,
        in the owning thread, once each write is done.
        """
        first_error: StoreError | None = None
        written = 0
        pending: list[tuple[Future[None], str, Path, int]] = []
        for key in keys:
            try:
                job = self._prepare(key)
            except StoreError as exc:
                first_error = first_error or exc
                continue
            if job is None:
                continue
            name, path, table = job
            pending.append(
                (self._pool().submit(write_atomic, path, table), name, path, table.num_rows)
            )
        for future, name, path, rows in pending:
            try:
                future.result()
            except Exception as exc:  # StoreError, or anything the encoder raised
                self._write_failed(name, path, rows)
                error = exc if isinstance(exc, StoreError) else StoreError(f"{path}: {exc!r}")
                first_error = first_error or error
            else:
                self._written(rows)
                written += 1
        if first_error is not None:
            raise first_error
        return written

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lake-write")
        return self._executor

    def _prepare(self, key: PartitionKey) -> tuple[str, Path, pa.Table] | None:
        """Take a partition's buffer out and convert it; None if no row survived."""
        buffer = self._buffers.pop(key)
        self._buffered -= len(buffer.rows)
        self._oldest = min((b.created for b in self._buffers.values()), default=float("inf"))
        name, exchange, symbol, day = key
        try:
            table = self._to_arrow(buffer)
        except Exception as exc:  # a value Arrow cannot hold at all
            self._errors += 1
            self._rows_lost += len(buffer.rows)
            raise StoreError(f"lake table {name}: rows cannot be converted: {exc!r}") from exc
        if table.num_rows == 0:
            return None
        directory = partition_dir(self.root, name, exchange, symbol, date_of_day(day))
        self._seq += 1
        return name, directory / part_name(buffer.first_ts, self._seq, self.writer_id), table

    def _written(self, rows: int) -> None:
        self._rows_written += rows
        self._files_written += 1

    def _write_failed(self, name: str, path: Path, rows: int) -> None:
        self._errors += 1
        self._rows_lost += rows
        log.error("lake: %d rows of %s lost: cannot write %s", rows, name, path)

    def _spec(self, row: Row) -> TableSpec | None:
        spec = get_table(row.table)
        if spec is None:
            time_column = guess_time_column(row.values)
            if time_column is None:
                return None
            log.warning("lake: undeclared table %r, columns inferred from its rows", row.table)
            spec = register_table(row.table, time_column, [(time_column, pa.int64())])
        return spec

    def _reject(self, row: Row, reason: str) -> None:
        self._rows_rejected += 1
        if row.table not in self._warned:
            self._warned.add(row.table)
            log.warning("lake: row of %r skipped (%s); further ones counted", row.table, reason)

    def _to_arrow(self, buffer: _Buffer) -> pa.Table:
        """The buffer as an Arrow table; rows with values of the wrong type are dropped."""
        spec = get_table(buffer.spec.name) or buffer.spec
        extras = [name for name in buffer.extras if name not in spec.schema.names]
        table, dropped, reason = rows_to_table(buffer.rows, spec.schema, extras)
        if dropped:
            self._rows_rejected += dropped
            log.warning("lake table %s: %d rows skipped (%s)", spec.name, dropped, reason)
        return table


def _as_int(value: Any) -> int | None:
    """``value`` as an int if it is an integer (not a bool), else ``None``."""
    if type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None
