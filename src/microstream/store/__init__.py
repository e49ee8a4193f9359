"""The Parquet lake: hive-partitioned tables, atomic files, compaction, reading.

Layout: ``ROOT/<table>/exchange=<exchange>/symbol=<SYMBOL>/date=<YYYY-MM-DD>/*.parquet``.
Write with :class:`LakeWriter` (or :class:`LakeSink` behind the bus), read with
:func:`read_table` / :func:`scan_table`, merge small files with :func:`compact_lake`.
See ``docs/lake.md``.
"""

from __future__ import annotations

from microstream.store.compact import CompactionResult, compact_lake, compact_partition
from microstream.store.lake import LakeWriter, WriterStats
from microstream.store.reader import list_table_files, read_table, scan_table
from microstream.store.rows import book_sync_row, book_top_row, trade_row
from microstream.store.schema import (
    TableSpec,
    extend_table,
    get_table,
    register_table,
    table_names,
)
from microstream.store.sink import LakeSink, SinkStats, install_flush_on_signal

__all__ = [
    "CompactionResult",
    "LakeSink",
    "LakeWriter",
    "SinkStats",
    "TableSpec",
    "WriterStats",
    "book_sync_row",
    "book_top_row",
    "compact_lake",
    "compact_partition",
    "extend_table",
    "get_table",
    "install_flush_on_signal",
    "list_table_files",
    "read_table",
    "register_table",
    "scan_table",
    "table_names",
    "trade_row",
]
