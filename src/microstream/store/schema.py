"""Schemas of the lake tables: one declared place, extensible by other stages.

Every table is declared here as a :class:`TableSpec`: its name, the column whose
UTC date gives the ``date=`` partition, and its typed columns. ``exchange`` and
``symbol`` are hive partition keys (directory names), never stored in the files;
``date`` is derived from the time column. Every table also declares the optional
``simulated`` boolean (the simulator marks its outputs; null elsewhere).

Extension: a stage that emits more columns declares them once with
:func:`extend_table` (or a whole new table with :func:`register_table`) at import
time, so every file of the table carries the same schema and the plain
``polars.scan_parquet(".../**/*.parquet", hive_partitioning=True)`` keeps working.
Columns nobody declared are still kept: the writer infers their type from the
values (and logs once per column), and :mod:`microstream.store.reader` unifies
files whose schemas differ.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

log = logging.getLogger(__name__)

PARTITION_KEYS: tuple[str, ...] = ("exchange", "symbol", "date")
"""Hive partition keys: path components, not columns stored in the files."""

SIMULATED = "simulated"
"""The optional boolean column every table accepts."""


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its name, its date-partition time column and its columns.

    Attributes:
        name: table name (directory under the lake root).
        time_column: int64 Unix-ns column whose UTC date is the ``date=`` partition.
        schema: the declared columns (``exchange``/``symbol``/``date`` excluded).
    """

    name: str
    time_column: str
    schema: pa.Schema

    @property
    def columns(self) -> tuple[str, ...]:
        """Declared column names, in file order."""
        return tuple(self.schema.names)


_F64 = pa.float64()
_I64 = pa.int64()
_STR = pa.string()
_BOOL = pa.bool_()


def _fields(*pairs: tuple[str, pa.DataType]) -> list[tuple[str, pa.DataType]]:
    return list(pairs)


def _levels() -> list[tuple[str, pa.DataType]]:
    cols: list[tuple[str, pa.DataType]] = []
    for side in ("bid", "ask"):
        for what in ("px", "qty"):
            cols.extend((f"{side}_{what}_{i}", _F64) for i in range(1, 6))
    return cols


FEATURE_COLUMNS: tuple[str, ...] = (
    "mid",
    "spread",
    "spread_bps",
    "microprice",
    "imbalance_l1",
    "imbalance_l5",
    "vwap_1m",
    "vwap_5m",
    "buy_volume_1m",
    "sell_volume_1m",
    "flow_imbalance_1m",
    "trade_count_1m",
    "volatility_1m",
    "volatility_5m",
    "ofi_10s",
)
"""The contract's feature columns (all float64 except ``trade_count_1m``)."""


def _feature_fields() -> list[tuple[str, pa.DataType]]:
    cols = [(name, _F64) for name in FEATURE_COLUMNS]
    cols[FEATURE_COLUMNS.index("trade_count_1m")] = ("trade_count_1m", _I64)
    return [("ts", _I64), *cols, ("book_valid", _BOOL)]


_BUILTIN: dict[str, tuple[str, list[tuple[str, pa.DataType]]]] = {
    "trades": (
        "ts_event",
        _fields(
            ("ts_event", _I64),
            ("ts_recv", _I64),
            ("trade_id", _I64),
            ("price", _F64),
            ("qty", _F64),
            ("side", _STR),
            ("is_aggregate", _BOOL),
        ),
    ),
    "book_top": (
        "ts_event",
        [
            ("ts_event", _I64),
            ("ts_recv", _I64),
            ("update_id", _I64),
            *_levels(),
            ("book_valid", _BOOL),
            ("sync_epoch", _I64),
        ],
    ),
    "book_sync": (
        "ts_recv",
        _fields(("ts_recv", _I64), ("state", _STR), ("detail", _STR), ("update_id", _I64)),
    ),
    "features": ("ts", _feature_fields()),
    "bars_1m": (
        "ts",
        _fields(
            ("ts", _I64),
            ("open", _F64),
            ("high", _F64),
            ("low", _F64),
            ("close", _F64),
            ("volume", _F64),
            ("buy_volume", _F64),
            ("sell_volume", _F64),
            ("vwap", _F64),
            ("trades", _I64),
        ),
    ),
    "regimes": (
        "ts",
        _fields(("ts", _I64), ("regime", _STR), ("score", _F64), ("confidence", _F64)),
    ),
    "signals_1m": (
        "ts",
        _fields(
            ("ts", _I64),
            ("hmm_state", _STR),
            ("hmm_confidence", _F64),
            ("anomaly", _BOOL),
            ("anomaly_score", _F64),
        ),
    ),
    "predictions": (
        "ts",
        _fields(
            ("ts", _I64),
            ("horizon_s", _F64),
            ("p_up", _F64),
            ("p_neutral", _F64),
            ("p_down", _F64),
            ("label", _STR),
            ("model", _STR),
        ),
    ),
    "sim_truth": ("ts", _fields(("ts", _I64), ("regime", _STR))),
}

_lock = threading.Lock()
_tables: dict[str, TableSpec] = {}


def _build(name: str, time_column: str, cols: Iterable[tuple[str, pa.DataType]]) -> TableSpec:
    fields: list[pa.Field] = []
    seen: set[str] = set()
    for col, dtype in cols:
        if col in PARTITION_KEYS:
            raise ValueError(f"{name}: {col!r} is a partition key, not a column")
        if col in seen:
            continue
        seen.add(col)
        fields.append(pa.field(col, dtype, nullable=True))
    if SIMULATED not in seen:
        fields.append(pa.field(SIMULATED, _BOOL, nullable=True))
    if time_column not in seen:
        raise ValueError(f"{name}: time column {time_column!r} is not declared")
    return TableSpec(name=name, time_column=time_column, schema=pa.schema(fields))


def register_table(
    name: str, time_column: str, columns: Iterable[tuple[str, pa.DataType]]
) -> TableSpec:
    """Declare a new table (or replace a table's declaration) and return its spec."""
    spec = _build(name, time_column, columns)
    with _lock:
        _tables[name] = spec
    return spec


def extend_table(name: str, columns: Mapping[str, pa.DataType]) -> TableSpec:
    """Add columns to a declared table (idempotent; existing columns keep their type)."""
    with _lock:
        spec = _tables[name]
        known = set(spec.columns)
        added = [(col, dtype) for col, dtype in columns.items() if col not in known]
        if not added:
            return spec
        base = [(f.name, f.type) for f in spec.schema if f.name != SIMULATED]
        new = _build(name, spec.time_column, [*base, *added])
        _tables[name] = new
        return new


def get_table(name: str) -> TableSpec | None:
    """The declared spec of ``name``, or ``None`` for an undeclared table."""
    return _tables.get(name)


def table_names() -> tuple[str, ...]:
    """Names of every declared table."""
    return tuple(_tables)


TIME_COLUMNS = ("ts", "ts_event", "ts_recv")
"""The time column of an undeclared table is the first of these it has (integer)."""


def guess_time_column(values: Mapping[str, Any]) -> str | None:
    """Time column of an undeclared table's row: the first of :data:`TIME_COLUMNS` it has."""
    for col in TIME_COLUMNS:
        if isinstance(values.get(col), int):
            return col
    return None


def infer_type(values: list[Any]) -> pa.DataType:
    """Arrow type of an undeclared column from its buffered values.

    Python ``int`` becomes int64, ``float`` float64, ``bool`` bool, ``str``
    string; a mix of int and float is float64; an all-null column is null.
    Anything else is stringified by the writer (type ``string``).
    """
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.null()
    if kinds == {bool}:
        return _BOOL
    if kinds == {int}:
        return _I64
    if kinds <= {int, float}:
        return _F64
    if kinds == {str}:
        return _STR
    return _STR


def _register_builtins() -> None:
    for name, (time_column, cols) in _BUILTIN.items():
        register_table(name, time_column, cols)


_register_builtins()
