"""The lake writer: buffers rows per partition and writes atomic Parquet files.

Rows arrive one by one (:class:`~microstream.bus.protocol.Row`, :meth:`LakeWriter.add`)
or column by column (:class:`~microstream.bus.protocol.RowBatch`,
:meth:`LakeWriter.add_batch`); both land in the same partition buffers, in
arrival order, and in the same files.

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
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microstream.bus.protocol import Row, RowBatch
from microstream.errors import StoreError
from microstream.store.arrow import CONVERSION_ERRORS, rows_to_table
from microstream.store.batches import concat_parts, conform_batch, is_integer_column
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
    TIME_COLUMNS,
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


Part: TypeAlias = "list[dict[str, Any]] | pa.RecordBatch"
"""A run of consecutive dict rows, or one record batch, of a partition buffer."""


class _Buffer:
    """Rows of one partition, in arrival order, and their undeclared columns.

    Dict rows are appended to ``rows`` (the hot path stays one list append);
    a record batch closes that run: ``parts`` holds the closed runs and the
    batches in arrival order, ``sealed`` their row count.
    """

    __slots__ = ("created", "extras", "first_ts", "known", "parts", "rows", "sealed", "spec")

    def __init__(self, spec: TableSpec, created: float, first_ts: int) -> None:
        self.spec = spec
        self.rows: list[dict[str, Any]] = []
        self.parts: list[Part] = []
        self.sealed = 0
        self.extras: dict[str, None] = {}
        self.known = frozenset(spec.columns).union(PARTITION_KEYS)
        self.created = created
        self.first_ts = first_ts

    @property
    def size(self) -> int:
        """Rows buffered (dict rows and batch rows)."""
        return self.sealed + len(self.rows)

    def segments(self) -> list[Part]:
        """Every part in arrival order (the open run of dict rows last)."""
        return [*self.parts, self.rows] if self.rows else list(self.parts)

    def append_batch(self, batch: pa.RecordBatch) -> None:
        if self.rows:
            self.parts.append(self.rows)
            self.sealed += len(self.rows)
            self.rows = []
        self.parts.append(batch)
        self.sealed += batch.num_rows
        self._note_extras(batch.schema.names)

    def _note_extras(self, names: list[str]) -> None:
        for name in names:
            if name not in self.known and name not in self.extras:
                log.info("lake table %s: undeclared column %r kept", self.spec.name, name)
                self.extras[name] = None

    def append(self, values: dict[str, Any]) -> None:
        self.rows.append(values)
        if not self.known.issuperset(values):
            self._note_extras(list(values))


class LakeWriter:
    """Writes :class:`~microstream.bus.protocol.Row` and ``RowBatch`` objects into the lake.

    Rows are buffered per ``(table, exchange, symbol, UTC date)``. A buffer is
    written as one file when it holds ``flush_rows`` rows, or when it is older
    than ``flush_seconds`` (checked on every :meth:`add`, :meth:`add_batch`
    and by :meth:`flush_due`). :meth:`close` writes everything left. A batch
    is never cut to ``flush_rows``: a buffer may exceed it by one batch.

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
        self._warned: set[tuple[str, str]] = set()  # (table, kind of rejection) logged
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
        if len(buffer.rows) + buffer.sealed >= self.flush_rows:
            self._flush_keys([key])
        if now - self._oldest >= self.flush_seconds:
            self.flush_due(now)

    def add_batch(self, batch: RowBatch) -> None:
        """Buffer a batch of rows (column by column); may write files.

        Each row lands where :meth:`add` would put the same :class:`Row`, and
        files hold rows and batches in arrival order. Rows whose time column
        is null (or a batch whose time column is missing or not integer) are
        counted in ``rows_rejected`` and skipped, logged once per table; a
        batch whose columns cannot be cast safely to the declared types is
        skipped whole (counted, logged). No Python work per row, except to
        split a batch that spans UTC midnight. The batch's Arrow buffers are
        kept (not copied) until its partition is written: a producer must
        not write into them afterwards.

        Raises:
            StoreError: the writer is closed, or a flush triggered by this batch failed.
        """
        if self._closed:
            raise StoreError(f"lake writer for {self.root} is closed")
        columns = batch.columns
        if isinstance(columns, pa.Table):
            for part in columns.to_batches():
                self.add_batch(RowBatch(batch.table, batch.exchange, batch.symbol, part))
            return
        if not isinstance(columns, pa.RecordBatch):
            self._reject_rows(batch.table, 1, f"columns are a {type(columns).__name__}")
            return
        if columns.num_rows == 0:
            return
        conformed = self._conform(batch.table, columns)
        if conformed is None:
            return
        spec, kept = conformed
        now = self._clock()
        full = self._buffer_days(spec, batch, kept, now)
        if full:
            self._flush_keys(full)
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

    def _conform(
        self, table: str, columns: pa.RecordBatch
    ) -> tuple[TableSpec, pa.RecordBatch] | None:
        """The batch's spec and its rows with a time, cast to the declared types.

        None (every row counted as rejected) when the batch cannot be kept.
        """
        spec = self._batch_spec(table, columns.schema)
        if spec is None or not is_integer_column(columns.schema, spec.time_column):
            self._reject_rows(table, columns.num_rows, "no integer time column")
            return None
        try:
            kept = conform_batch(columns, spec.schema, PARTITION_KEYS)
        except CONVERSION_ERRORS as exc:
            self._reject_rows(table, columns.num_rows, str(exc), "cast")
            return None
        times = kept.column(spec.time_column)
        if times.null_count:
            self._reject_rows(table, times.null_count, "no integer time column")
            kept = kept.filter(pc.is_valid(times))
        return (spec, kept) if kept.num_rows else None

    def _buffer_days(
        self, spec: TableSpec, batch: RowBatch, kept: pa.RecordBatch, now: float
    ) -> list[PartitionKey]:
        """Buffer ``kept`` in its day partitions (split at UTC midnight, order kept).

        Returns the keys of the buffers that reached ``flush_rows``.
        """
        times = kept.column(spec.time_column).to_numpy()
        first_day = int(times.min()) // NS_PER_DAY
        if first_day == int(times.max()) // NS_PER_DAY:
            pieces = [(first_day, kept, int(times[0]))]
        else:
            days = times // NS_PER_DAY
            pieces = []
            for day in np.unique(days).tolist():
                mask = days == day
                pieces.append((day, kept.filter(pa.array(mask)), int(times[mask][0])))
        full: list[PartitionKey] = []
        for day, piece, first_ts in pieces:
            key = (batch.table, batch.exchange, batch.symbol, day)
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _Buffer(spec, now, first_ts)
                self._oldest = min(self._oldest, now)
            buffer.append_batch(piece)
            self._buffered += piece.num_rows
            if buffer.size >= self.flush_rows:
                full.append(key)
        return full

    def _prepare(self, key: PartitionKey) -> tuple[str, Path, pa.Table] | None:
        """Take a partition's buffer out and convert it; None if no row survived."""
        buffer = self._buffers.pop(key)
        self._buffered -= buffer.size
        self._oldest = min((b.created for b in self._buffers.values()), default=float("inf"))
        name, exchange, symbol, day = key
        try:
            table = self._to_arrow(buffer)
        except Exception as exc:  # a value Arrow cannot hold at all
            self._errors += 1
            self._rows_lost += buffer.size
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
        return get_table(row.table) or self._undeclared(row.table, guess_time_column(row.values))

    def _batch_spec(self, table: str, schema: pa.Schema) -> TableSpec | None:
        time_column = next((c for c in TIME_COLUMNS if is_integer_column(schema, c)), None)
        return get_table(table) or self._undeclared(table, time_column)

    @staticmethod
    def _undeclared(table: str, time_column: str | None) -> TableSpec | None:
        """A spec for a table nobody declared, from its guessed time column (None: none)."""
        if time_column is None:
            return None
        log.warning("lake: undeclared table %r, columns inferred from its rows", table)
        return register_table(table, time_column, [(time_column, pa.int64())])

    def _reject(self, row: Row, reason: str) -> None:
        self._reject_rows(row.table, 1, reason)

    def _reject_rows(self, table: str, rows: int, reason: str, kind: str = "time") -> None:
        """Count ``rows`` skipped rows of ``table``; log the first of each ``kind`` per table.

        ``kind``: ``"time"`` (no integer time) or ``"cast"`` (a batch that does not fit).
        """
        self._rows_rejected += rows
        if (table, kind) not in self._warned:
            self._warned.add((table, kind))
            what = f"batch of {rows} rows" if kind == "cast" else f"{rows} rows"
            log.warning("lake: %s of %r skipped (%s); further ones counted", what, table, reason)

    def _to_arrow(self, buffer: _Buffer) -> pa.Table:
        """The buffer as an Arrow table; rows with values of the wrong type are dropped.

        Runs of dict rows are converted by :func:`rows_to_table`; batches were
        conformed to the declared types when they arrived, and
        :func:`concat_parts` joins the parts in arrival order (a column
        declared since then is null in the older parts).
        """
        spec = get_table(buffer.spec.name) or buffer.spec
        extras = [name for name in buffer.extras if name not in spec.schema.names]
        if not buffer.parts:
            return self._rows_to_arrow(buffer.rows, spec, extras)
        parts = [
            self._rows_to_arrow(part, spec, extras)
            if isinstance(part, list)
            else pa.Table.from_batches([part])
            for part in buffer.segments()
        ]
        return concat_parts(parts, spec.schema, extras)

    def _rows_to_arrow(
        self, rows: list[dict[str, Any]], spec: TableSpec, extras: list[str]
    ) -> pa.Table:
        table, dropped, reason = rows_to_table(rows, spec.schema, extras)
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
