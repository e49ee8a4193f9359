"""Property: whatever the flush sizes, partitions and compactions, reads return each row once."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microstream.bus.protocol import Row
from microstream.store.compact import compact_lake
from microstream.store.lake import LakeWriter
from microstream.store.reader import read_table

DAY0 = 1_723_075_200_000_000_000
DAY = 86_400_000_000_000

row_spec = st.tuples(
    st.sampled_from(["BTCUSDT", "ETHUSDT"]),
    st.integers(min_value=0, max_value=3 * DAY - 1),  # three UTC days
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row_spec, min_size=1, max_size=60),
    flush_rows=st.integers(min_value=4, max_value=40),
    compact_after=st.integers(min_value=0, max_value=60),
)
def test_rows_round_trip_exactly_once(
    rows: list[tuple[str, int, float]], flush_rows: int, compact_after: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        writer = LakeWriter(root, flush_rows=flush_rows, flush_seconds=1e9)
        for i, (symbol, offset, price) in enumerate(rows):
            values = {"ts_event": DAY0 + offset, "trade_id": i, "price": price, "side": "buy"}
            writer.add(Row("trades", "binance", symbol, values))
            if i == compact_after:
                writer.flush()
                compact_lake(root)
        writer.close()
        frame = read_table(root, "trades")
        expected = sorted(
            ((DAY0 + offset, i, symbol, price) for i, (symbol, offset, price) in enumerate(rows)),
        )
        got = sorted(frame.select("ts_event", "trade_id", "symbol", "price").iter_rows())
        assert got == expected
        assert frame["ts_event"].is_sorted()
        utc_date = pl.from_epoch(pl.col("ts_event"), time_unit="ns").dt.date()
        assert frame.select((utc_date == pl.col("date")).all()).item()
        btc = read_table(root, "trades", symbol="BTCUSDT", start=DAY0 + DAY, end=DAY0 + 2 * DAY)
        want = sorted(
            i
            for i, (symbol, offset, _) in enumerate(rows)
            if symbol == "BTCUSDT" and DAY <= offset < 2 * DAY
        )
        assert sorted(btc["trade_id"]) == want
