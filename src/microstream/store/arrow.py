"""Buffered row dicts to one Arrow table, strictly typed, bad rows dropped.

All rows are converted in one pass through an Arrow struct array whose
types Arrow infers (C++, many times faster than per-column Python loops);
each column is then cast *safely* to its declared type. Converting straight
to the declared types would be wrong: Arrow silently truncates a float such
as ``1.5`` in an integer column to ``1``. A row with a value of the wrong type
(a string in a float column, a float in an int column) is found by
converting rows one at a time, then dropped and counted. Undeclared columns
get an inferred type (:func:`microstream.store.schema.infer_type`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from microstream.store.schema import infer_type

CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


class _Plan:
    """How to convert rows of one declared schema."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema

    def convert(self, rows: list[dict[str, Any]]) -> dict[str, pa.Array]:
        """Every declared column: one inferred pass in C++, then safe casts.

        Values keep the type Arrow infers for them (an int stays an int, a
        float a float), and each column is then cast *safely* to its declared
        type, so ``1.5`` in an integer column raises instead of becoming ``1``
        while ``3.0`` is accepted. A column whose values do not infer to one
        type (a string among floats) raises, and the caller drops the bad rows.
        """
        inferred = pa.array(rows)
        if len(rows) and not pa.types.is_struct(inferred.type):
            raise pa.ArrowTypeError(f"rows are not mappings: {inferred.type}")
        arrays: dict[str, pa.Array] = {}
        for field in self.schema:
            index = inferred.type.get_field_index(field.name) if len(rows) else -1
            if index < 0:
                arrays[field.name] = pa.nulls(len(rows), type=field.type)
                continue
            child = inferred.field(index)
            kind = child.type
            if pa.types.is_integer(field.type) and not (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)
            ):
                raise pa.ArrowTypeError(
                    f"column {field.name!r}: {kind} values in a {field.type} column"
                )
            if kind != field.type:
                child = _cast(child, field)
            arrays[field.name] = child
        return arrays

    def row_ok(self, row: dict[str, Any]) -> bool:
        try:
            self.convert([row])
        except CONVERSION_ERRORS:
            return False
        return True


def _cast(values: pa.Array, field: pa.Field) -> pa.Array:
    """A safe cast; Arrow's own conversion where a cast would be wrong.

    Strings, bools and numbers do not turn into one another here: a string
    in a float column raises (Arrow would parse it) and so does a bool in a
    numeric one.
    """
    kind, target = values.type, field.type
    if not pa.types.is_null(kind):
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        target_numeric = pa.types.is_integer(target) or pa.types.is_floating(target)
        if numeric != target_numeric or pa.types.is_boolean(kind) != pa.types.is_boolean(target):
            raise pa.ArrowTypeError(f"column {field.name!r}: {kind} values in a {target} column")
    return values.cast(target, safe=True)


def _extra(name: str, rows: list[dict[str, Any]]) -> tuple[pa.Field, pa.Array]:
    values = [r.get(name) for r in rows]
    dtype = infer_type(values)
    try:
        array = pa.array(values, type=dtype)
    except CONVERSION_ERRORS:
        dtype = pa.string()
        array = pa.array([None if v is None else str(v) for v in values], type=dtype)
    return pa.field(name, dtype, nullable=True), array


def rows_to_table(
    rows: list[dict[str, Any]], schema: pa.Schema, extras: Iterable[str] = ()
) -> tuple[pa.Table, int, str]:
    """Convert ``rows`` to a table of ``schema`` plus the ``extras`` columns.

    Returns:
        The table (declared columns first, in declared order), the number of
        rows dropped because a value did not fit its column's type, and the
        first conversion error's message (empty when none was dropped).
    """
    plan = _Plan(schema)
    dropped, reason = 0, ""
    try:
        arrays = plan.convert(rows)
    except CONVERSION_ERRORS as exc:
        reason = str(exc)
        kept = [r for r in rows if plan.row_ok(r)]
        dropped = len(rows) - len(kept)
        rows = kept
        arrays = plan.convert(rows)
    fields = list(schema)
    columns = [arrays[f.name] for f in fields]
    for name in extras:
        field, array = _extra(name, rows)
        fields.append(field)
        columns.append(array)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields)), dropped, reason
