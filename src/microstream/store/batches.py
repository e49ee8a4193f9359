"""Record batches to the lake's declared schemas, column by column.

The column-wise twin of :mod:`microstream.store.arrow` for
:class:`~microstream.bus.protocol.RowBatch` messages. A batch's declared
columns are cast *safely* with the rules rows' values follow (``1.5`` never
becomes ``1`` in an integer column; strings, bools and numbers never turn
into one another), a declared column the batch lacks is all null, and its
undeclared columns are kept after the declared ones. Every step is one Arrow
call per column: no Python work per row.

A writer's buffer may hold dict rows and batches of one partition;
:func:`concat_parts` joins their converted tables, in order, into one table
whose undeclared columns get one type (the one the row path would infer for
the same values where it can).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pyarrow as pa

from microstream.store.arrow import _cast


def is_integer_column(schema: pa.Schema, name: str) -> bool:
    """Whether ``schema`` has exactly one column ``name`` and it holds integers."""
    index = schema.get_field_index(name)
    return index >= 0 and bool(pa.types.is_integer(schema.field(index).type))


def conform_batch(
    batch: pa.RecordBatch, schema: pa.Schema, skip: Collection[str] = ()
) -> pa.RecordBatch:
    """``batch`` with the declared columns of ``schema`` first, then its undeclared ones.

    Declared columns are cast safely to their declared type (missing ones are
    all null); undeclared columns keep their type and order; columns named in
    ``skip`` (the partition keys) are left out.

    Raises:
        pyarrow.ArrowInvalid, pyarrow.ArrowTypeError: a declared column cannot
            be cast safely (see :data:`microstream.store.arrow.CONVERSION_ERRORS`).
    """
    rows = batch.num_rows
    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            array = pa.nulls(rows, type=field.type)
        else:
            array = batch.column(index)
            if array.type != field.type:
                array = _cast(array, field)
        fields.append(field)
        arrays.append(array)
    declared = set(schema.names)
    for index, field in enumerate(batch.schema):
        if field.name not in declared and field.name not in skip:
            fields.append(pa.field(field.name, field.type, nullable=True))
            arrays.append(batch.column(index))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def concat_parts(parts: Sequence[pa.Table], schema: pa.Schema, extras: Sequence[str]) -> pa.Table:
    """One table of ``parts``, in order: the declared columns, then ``extras``.

    Each part holds every declared column of ``schema`` (with its declared
    type) and any of the ``extras``. An extra column a part lacks is null
    there; an extra whose parts disagree on its type becomes float64 when
    all its types are numbers (int64 if all integers), else string.
    """
    fields = list(schema)
    for name in extras:
        kinds = [p.schema.field(name).type for p in parts if name in p.schema.names]
        fields.append(pa.field(name, unified_type(kinds), nullable=True))
    target = pa.schema(fields)
    tables = [_aligned(part, target) for part in parts]
    return pa.concat_tables(tables) if tables else target.empty_table()


def unified_type(kinds: Sequence[pa.DataType]) -> pa.DataType:
    """One type for values of ``kinds`` (null types ignored), as described in :func:`concat_parts`."""
    known = {kind for kind in kinds if not pa.types.is_null(kind)}
    if not known:
        return pa.null()
    if len(known) == 1:
        return known.pop()
    if all(pa.types.is_integer(kind) for kind in known):
        return pa.int64()
    if all(pa.types.is_integer(kind) or pa.types.is_floating(kind) for kind in known):
        return pa.float64()
    return pa.string()


def _aligned(part: pa.Table, target: pa.Schema) -> pa.Table:
    columns: list[pa.Array | pa.ChunkedArray] = []
    names = set(part.schema.names)
    for field in target:
        if field.name not in names:
            columns.append(pa.nulls(part.num_rows, type=field.type))
            continue
        column = part.column(field.name)
        columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)
