"""Lake table declarations: contract columns, time columns, extension."""

from __future__ import annotations

import pyarrow as pa
import pytest

from microstream.store import schema
from microstream.store.schema import (
    FEATURE_COLUMNS,
    PARTITION_KEYS,
    extend_table,
    get_table,
    infer_type,
    register_table,
)

CONTRACT = {
    "trades": ("ts_event", ["ts_event", "ts_recv", "trade_id", "price", "qty", "side"]),
    "book_top": (
        "ts_event",
        ["ts_event", "ts_recv", "update_id"]
        + [f"{s}_{w}_{i}" for s in ("bid", "ask") for w in ("px", "qty") for i in range(1, 6)],
    ),
    "book_sync": ("ts_recv", ["ts_recv", "state", "detail"]),
    "features": ("ts", ["ts", *FEATURE_COLUMNS, "book_valid"]),
    "bars_1m": (
        "ts",
        [
            "ts",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "buy_volume",
            "sell_volume",
            "vwap",
            "trades",
        ],
    ),
    "regimes": ("ts", ["ts", "regime", "score", "confidence"]),
    "signals_1m": ("ts", ["ts", "hmm_state", "hmm_confidence", "anomaly", "anomaly_score"]),
    "predictions": (
        "ts",
        ["ts", "horizon_s", "p_up", "p_neutral", "p_down", "label", "model"],
    ),
    "sim_truth": ("ts", ["ts", "regime"]),
}


@pytest.mark.parametrize("table", sorted(CONTRACT))
def test_contract_columns_and_time_column(table: str) -> None:
    spec = get_table(table)
    assert spec is not None
    time_column, columns = CONTRACT[table]
    assert spec.time_column == time_column
    assert set(columns) <= set(spec.columns)
    assert spec.schema.field(time_column).type == pa.int64()
    assert spec.schema.field("simulated").type == pa.bool_()
    assert not set(PARTITION_KEYS) & set(spec.columns)


def test_extras_of_the_brief() -> None:
    trades, top, sync = get_table("trades"), get_table("book_top"), get_table("book_sync")
    assert trades is not None and top is not None and sync is not None
    assert trades.schema.field("is_aggregate").type == pa.bool_()
    assert top.schema.field("book_valid").type == pa.bool_()
    assert top.schema.field("sync_epoch").type == pa.int64()
    assert top.schema.field("bid_px_5").type == pa.float64()
    assert top.schema.field("ask_qty_1").nullable
    assert sync.schema.field("update_id").type == pa.int64()


def test_prices_are_float64_and_times_int64() -> None:
    bars = get_table("bars_1m")
    assert bars is not None
    for name in ("open", "high", "low", "close", "volume", "vwap"):
        assert bars.schema.field(name).type == pa.float64()
    features = get_table("features")
    assert features is not None
    assert features.schema.field("trade_count_1m").type == pa.int64()
    assert features.schema.field("microprice").type == pa.float64()


def test_extend_table_is_idempotent_and_keeps_existing_types() -> None:
    register_table("t_extend", "ts", [("ts", pa.int64()), ("a", pa.float64())])
    spec = extend_table("t_extend", {"a": pa.string(), "b": pa.int64()})
    assert spec.schema.field("a").type == pa.float64()
    assert spec.schema.field("b").type == pa.int64()
    assert spec.columns.count("simulated") == 1
    assert extend_table("t_extend", {"b": pa.int64()}) == spec
    schema._tables.pop("t_extend")


def test_register_rejects_partition_keys_and_missing_time_column() -> None:
    with pytest.raises(ValueError, match="partition key"):
        register_table("bad", "ts", [("ts", pa.int64()), ("symbol", pa.string())])
    with pytest.raises(ValueError, match="time column"):
        register_table("bad", "ts", [("x", pa.int64())])
    assert get_table("bad") is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, None, 2], pa.int64()),
        ([1, 2.5], pa.float64()),
        ([True, None], pa.bool_()),
        (["a"], pa.string()),
        ([None, None], pa.null()),
        ([1, "a"], pa.string()),
    ],
)
def test_infer_type(values: list[object], expected: pa.DataType) -> None:
    assert infer_type(values) == expected
