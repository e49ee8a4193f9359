"""Crash-safe compaction: many small files of a partition become one.

Protocol, per partition directory (under an exclusive ``.compact.lock``):

1. Finish any earlier compaction: delete files that an existing ``compact-*``
   file lists as replaced.
2. Read the remaining visible files, sort the rows by the table's time column
   and write them as one ``compact-*`` file (hidden temporary name, fsync),
   whose Parquet key-value metadata lists the names of the files it replaces.
3. Under the exclusive ``.publish.lock``: rename it to its visible name,
   delete the replaced files, fsync the directory.

A crash after step 2 leaves the sources on disk, but readers
(:mod:`microstream.store.reader`) treat them as gone, and the next compaction
deletes them in step 1. A crash before the rename in step 2 leaves only a
hidden temporary file. So a reader never sees a row twice, nor loses one;
readers list a partition under the shared publish lock, so they never see
half of a swap (both the new file and its sources gone from their listing).
Files a writer adds while compaction runs are not in the list and stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from microstream.errors import StoreError
from microstream.store.files import (
    REPLACES_KEY,
    compact_name,
    fsync_dir,
    list_data_files,
    publish,
    publish_lock,
    split_visible,
    write_temp,
)
from microstream.store.reader import partition_dirs
from microstream.store.schema import get_table

log = logging.getLogger(__name__)

LOCK_NAME = ".compact.lock"
STALE_TEMP_SECONDS = 3600.0
"""A hidden ``.*.tmp`` this old belongs to a writer that died: compaction removes it."""


@dataclass(frozen=True)
class CompactionResult:
    """What one partition's compaction did.

    Attributes:
        partition: the partition directory.
        files_in: files merged (0 when the partition was left alone).
        rows: rows in the merged file.
        output: name of the merged file, or ``None``.
        cleaned: leftovers deleted: files replaced by an earlier, interrupted
            compaction, and temporary files of killed writers (older than
            ``STALE_TEMP_SECONDS``).
    """

    partition: Path
    files_in: int
    rows: int
    output: str | None
    cleaned: int


@contextlib.contextmanager
def _partition_lock(directory: Path) -> Iterator[None]:
    try:
        fd = os.open(directory / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot lock {directory} for compaction: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _delete(directory: Path, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    if names:
        fsync_dir(directory)


def _remove_stale_temps(directory: Path, max_age: float = STALE_TEMP_SECONDS) -> int:
    limit = time.time() - max_age
    removed = 0
    for entry in os.scandir(directory):
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < limit:
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _time_column(table: str, schema: pa.Schema) -> str | None:
    spec = get_table(table)
    if spec is not None and spec.time_column in schema.names:
        return spec.time_column
    return next((c for c in ("ts", "ts_event", "ts_recv") if c in schema.names), None)


def _read(path: Path) -> pa.Table:
    try:
        return pq.read_table(path, partitioning=None).replace_schema_metadata(None)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read lake file {path} for compaction: {exc}") from exc


def _merge(directory: Path, names: list[str], table: str) -> tuple[pa.Table, str | None]:
    parts = [_read(directory / name) for name in names]
    merged = pa.concat_tables(parts, promote_options="permissive")
    time_column = _time_column(table, merged.schema)
    if time_column is not None:
        order = pc.sort_indices(merged, sort_keys=[(time_column, "ascending")])
        merged = merged.take(order)
    return merged, time_column


def _bounds(merged: pa.Table, time_column: str | None) -> tuple[int, int]:
    if time_column is None or merged.num_rows == 0:
        return 0, 0
    column = merged.column(time_column)
    first, last = pc.min(column).as_py(), pc.max(column).as_py()
    return int(first or 0), int(last or 0)


def _swap(directory: Path, target: Path, merged: pa.Table, sources: list[str]) -> None:
    """Publish the merged file, then delete its sources, under the publish lock."""
    tmp = write_temp(target, merged)
    try:
        with publish_lock(directory):
            publish(tmp, target)
            _delete(directory, sources)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def compact_partition(
    directory: str | os.PathLike[str], table: str, min_files: int = 2
) -> CompactionResult:
    """Merge the visible files of one partition directory into one file.

    Partitions with fewer than ``min_files`` visible files are only cleaned.

    Raises:
        StoreError: the merged file cannot be written (sources are untouched).
    """
    path = Path(directory)
    with _partition_lock(path):
        visible, replaced = split_visible(path, list_data_files(path))
        _delete(path, replaced)
        cleaned = len(replaced) + _remove_stale_temps(path)
        if len(visible) < max(min_files, 2):
            return CompactionResult(path, 0, 0, None, cleaned)
        merged, time_column = _merge(path, visible, table)
        first, last = _bounds(merged, time_column)
        name = compact_name(first, last, secrets.token_hex(4))
        merged = merged.replace_schema_metadata({REPLACES_KEY: json.dumps(visible).encode()})
        _swap(path, path / name, merged, visible)
    log.info("compacted %d files (%d rows) into %s", len(visible), merged.num_rows, path / name)
    return CompactionResult(path, len(visible), merged.num_rows, name, cleaned)


def compact_table(
    root: str | os.PathLike[str], table: str, min_files: int = 2
) -> list[CompactionResult]:
    """Compact every partition of ``table``.

    Raises:
        StoreError: the table does not exist or a merged file cannot be written.
    """
    return [compact_partition(d, table, min_files) for d in partition_dirs(root, table)]


def compact_lake(
    root: str | os.PathLike[str], table: str | None = None, min_files: int = 2
) -> list[CompactionResult]:
    """Compact one table, or every table directory under ``root``."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise StoreError(f"lake directory {root_path} does not exist")
    tables = [table] if table else sorted(p.name for p in root_path.iterdir() if p.is_dir())
    results: list[CompactionResult] = []
    for name in tables:
        if not name.startswith("."):
            results.extend(compact_table(root_path, name, min_files))
    return results
