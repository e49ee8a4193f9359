"""RowBatch consumers: lake writer, lake sink, live state, Kafka engine, topics, codec.

The reference everywhere is the same rows published one by one as ``Row``s:
a batch must leave exactly the same files, counters and live state.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from microstream.bus import MemoryBus, Row, RowBatch, Topics
from microstream.bus.codec import Codec
from microstream.bus.dedup import EventDedup
from microstream.bus.kafka import KafkaBus
from microstream.bus.topics import TopicMap
from microstream.errors import CodecError
from microstream.events import BookTop, Trade
from microstream.live_state import LiveStateConfig, LiveStateStore
from microstream.services.engine import _TeeBus
from microstream.store.lake import LakeWriter
from microstream.store.reader import read_table
from microstream.store.rows import book_top_row, trade_row
from microstream.store.sink import LakeSink

DAY0 = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z in ns
DAY_NS = 86_400_000_000_000
SECOND = 1_000_000_000
KEY = "binance:BTCUSDT"


# -- helpers ---------------------------------------------------------------------


def trade(i: int, ts: int | None = None, simulated: bool | None = None) -> Row:
    t = Trade(
        exchange="binance",
        symbol="BTCUSDT",
        ts_event=DAY0 + i * SECOND if ts is None else ts,
        ts_recv=DAY0 + i * SECOND + 5,
        trade_id=i,
        price=60_000.0 + i * 0.25,
        qty=0.5 + i,
        side="buy" if i % 2 else "sell",
        is_aggregate=i % 3 == 0,
    )
    return trade_row(t, simulated=simulated)


def top(i: int, levels: int = 5) -> Row:
    """A ``book_top`` row; levels beyond ``levels`` do not exist (null)."""
    book = BookTop(
        exchange="binance",
        symbol="BTCUSDT",
        ts_event=DAY0 + i * SECOND,
        ts_recv=DAY0 + i * SECOND + 3,
        update_id=1000 + i,
        bid_px=tuple(100.0 - k - i for k in range(levels)),
        bid_qty=tuple(1.0 + k for k in range(levels)),
        ask_px=tuple(101.0 + k + i for k in range(levels)),
        ask_qty=tuple(2.0 + k for k in range(levels)),
        book_valid=i % 4 != 0,
        sync_epoch=1,
    )
    return book_top_row(book, simulated=False)


def batch_of(rows: list[Row], types: dict[str, pa.DataType] | None = None) -> RowBatch:
    """The rows as one batch (Arrow infers the types, ``types`` overrides some)."""
    first = rows[0]
    names = list(dict.fromkeys(name for r in rows for name in r.values))
    arrays = [
        pa.array([r.values.get(name) for r in rows], type=(types or {}).get(name)) for name in names
    ]
    return RowBatch(first.table, first.exchange, first.symbol, pa.record_batch(arrays, names=names))


def write_rows(root: Path, rows: list[Row]) -> LakeWriter:
    writer = LakeWriter(root, writer_id="w")
    for r in rows:
        writer.add(r)
    writer.close()
    return writer


def lake_files(root: Path, table: str) -> list[Path]:
    return sorted((root / table).rglob("*.parquet"))


def read_files(root: Path, table: str) -> pa.Table:
    """Every file of ``table``, in path order (partition, then name), as one table."""
    return pa.concat_tables([pq.read_table(p) for p in lake_files(root, table)])


def partitions(root: Path, table: str) -> list[str]:
    return [p.parent.name for p in lake_files(root, table)]


def assert_same_lake(batch_root: Path, row_root: Path, table: str) -> None:
    """Same partitions, same file contents (schema, values, nulls, order), same reader result."""
    assert partitions(batch_root, table) == partitions(row_root, table)
    for got_path, want_path in zip(
        lake_files(batch_root, table), lake_files(row_root, table), strict=True
    ):
        got, want = pq.read_table(got_path), pq.read_table(want_path)
        assert got.schema == want.schema
        assert got.to_pylist() == want.to_pylist()
    assert read_table(batch_root, table).equals(read_table(row_root, table))


# -- LakeWriter.add_batch ----------------------------------------------------------


def test_trades_batch_reads_back_like_rows(tmp_path: Path) -> None:
    rows = [trade(i, simulated=True) for i in range(50)]
    write_rows(tmp_path / "rows", rows)
    writer = LakeWriter(tmp_path / "batch", writer_id="w")
    writer.add_batch(batch_of(rows[:20]))
    writer.add_batch(batch_of(rows[20:]))
    assert writer.stats.rows_buffered == 50
    writer.close()
    assert writer.stats.rows_written == 50 and writer.stats.files_written == 1
    assert writer.stats.rows_rejected == 0
    assert_same_lake(tmp_path / "batch", tmp_path / "rows", "trades")
    frame = read_table(tmp_path / "batch", "trades")
    assert frame["trade_id"].to_list() == list(range(50))
    assert frame["simulated"].to_list() == [True] * 50


def test_book_top_batch_with_null_levels_reads_back_like_rows(tmp_path: Path) -> None:
    rows = [top(i, levels=1 + i % 5) for i in range(30)]
    write_rows(tmp_path / "rows", rows)
    floats = {name: pa.float64() for name in rows[0].values if "_px_" in name or "_qty_" in name}
    writer = LakeWriter(tmp_path / "batch", writer_id="w")
    writer.add_batch(batch_of(rows, floats))
    writer.close()
    assert_same_lake(tmp_path / "batch", tmp_path / "rows", "book_top")
    got = read_files(tmp_path / "batch", "book_top")
    assert got.column("bid_px_5").null_count == 24  # only every fifth row has 5 levels
    assert got.column("bid_px_1").null_count == 0


def test_batch_types_are_cast_safely_to_the_declared_ones(tmp_path: Path) -> None:
    rows = [top(i, levels=1) for i in range(6)]  # levels 2..5 are all None: null-typed columns
    write_rows(tmp_path / "rows", rows)
    narrow = {"update_id": pa.int32(), "sync_epoch": pa.uint8(), "bid_qty_1": pa.float32()}
    writer = LakeWriter(tmp_path / "batch", writer_id="w")
    writer.add_batch(batch_of(rows, narrow))
    writer.close()
    assert_same_lake(tmp_path / "batch", tmp_path / "rows", "book_top")


def test_missing_declared_columns_are_null_and_partition_keys_not_stored(tmp_path: Path) -> None:
    rows = [
        Row("trades", "binance", "BTCUSDT", {"ts_event": DAY0 + i, "price": 1.0, "symbol": "X"})
        for i in range(3)
    ]
    write_rows(tmp_path / "rows", rows)
    writer = LakeWriter(tmp_path / "batch", writer_id="w")
    writer.add_batch(batch_of(rows))
    writer.close()
    assert_same_lake(tmp_path / "batch", tmp_path / "rows", "trades")
    assert "symbol" not in pq.read_schema(lake_files(tmp_path / "batch", "trades")[0]).names


def test_rows_and_batches_in_one_partition_keep_arrival_order(tmp_path: Path) -> None:
    rows = [trade(i) for i in range(40)]
    for r in rows[::7]:
        r.values["venue_seq"] = 7 * r.values["trade_id"]  # an undeclared column, here and there
    write_rows(tmp_path / "rows", rows)
    writer = LakeWriter(tmp_path / "batch", writer_id="w")
    for r in rows[:5]:
        writer.add(r)
    writer.add_batch(batch_of(rows[5:15]))
    writer.add_batch(batch_of(rows[15:20]))
    for r in rows[20:30]:
        writer.add(r)
    writer.add_batch(batch_of(rows[30:39]))
    writer.add(rows[39])
    assert writer.stats.rows_buffered == 40
    writer.close()
    assert writer.stats.files_written == 1 and writer.stats.rows_written == 40
    assert_same_lake(tmp_path / "batch", tmp_path / "rows", "trades")
    got = read_files(tmp_path / "batch", "trades")
    assert got.column("trade_id").to_pylist() == list(range(40))  # not sorted by time: order kept
    assert got.schema.names[-1] == "venue_seq"


def test_extra_column_types_are_unified_across_rows_and_batches(tmp_path: Path) -> None:
    rows = [
        Row("regimes", "b", "S", {"ts": DAY0 + i, "regime": "neutral", "n": i}) for i in range(4)
    ]
    floats = [Row("regimes", "b", "S", {"ts": DAY0 + 9, "regime": "neutral", "n": 2.5})]
    writer = LakeWriter(tmp_path, writer_id="w")
    writer.add_batch(batch_of(rows[:2]))
    writer.add(rows[2])
    writer.add_batch(batch_of(floats))
    writer.add_batch(batch_of([Row("regimes", "b", "S", {"ts": DAY0 + 10, "regime": "bull"})]))
    writer.close()
    got = read_files(tmp_path, "regimes")
    assert got.schema.field("n").type == pa.float64()
    assert got.column("n").to_pylist() == [0.0, 1.0, 2.0, 2.5, None]
    assert got.column("regime").to_pylist() == ["neutral"] * 4 + ["bull"]


def test_batch_across_utc_midnight_lands_in_two_days(tmp_path: Path) -> None:
    midnight = DAY0 + DAY_NS
    offsets = [-3, -2, 1, -1, 2, 3, 0]  # seconds around midnight, not sorted
    rows = [trade(i, ts=midnight + s * SECOND) for i, s in enumerate(offsets)]
    write_rows(tmp_path / "rows", rows)
    writer = LakeWriter(tmp_path / "batch", writer_id="w")
    writer.add_batch(batch_of(rows))
    assert writer.stats.rows_buffered == 7
    writer.close()
    assert partitions(tmp_path / "batch", "trades") == ["date=2024-08-08", "date=2024-08-09"]
    assert_same_lake(tmp_path / "batch", tmp_path / "rows", "trades")
    before, after = (pq.read_table(p) for p in lake_files(tmp_path / "batch", "trades"))
    assert before.column("trade_id").to_pylist() == [0, 1, 3]
    assert after.column("trade_id").to_pylist() == [2, 4, 5, 6]
    names = [p.name for p in lake_files(tmp_path / "batch", "trades")]
    assert names[1].startswith(f"part-{midnight + SECOND:020d}")  # first row of that day


def test_rows_with_null_time_are_rejected_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [trade(i) for i in range(10)]
    times = pa.array([None if i in (2, 7) else r.values["ts_event"] for i, r in enumerate(rows)])
    base = batch_of(rows).columns
    columns = base.set_column(0, "ts_event", times)
    writer = LakeWriter(tmp_path, writer_id="w")
    with caplog.at_level(logging.WARNING, logger="microstream.store.lake"):
        writer.add_batch(RowBatch("trades", "binance", "BTCUSDT", columns))
        writer.add_batch(RowBatch("trades", "binance", "BTCUSDT", columns))
    assert writer.stats.rows_rejected == 4 and writer.stats.rows_buffered == 16
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 1  # once per table
    writer.close()
    ids = read_files(tmp_path, "trades").column("trade_id").to_pylist()
    assert ids == [i for i in range(10) if i not in (2, 7)] * 2


@pytest.mark.parametrize(
    "columns",
    [
        pa.record_batch({"price": [1.0, 2.0]}),  # no time column
        pa.record_batch({"ts_event": [float(DAY0), float(DAY0)], "price": [1.0, 2.0]}),  # floats
        pa.record_batch({"ts_event": pa.array([None, None], pa.int64()), "price": [1.0, 2.0]}),
    ],
)
def test_batch_without_integer_times_is_rejected(tmp_path: Path, columns: pa.RecordBatch) -> None:
    writer = LakeWriter(tmp_path)
    writer.add_batch(RowBatch("trades", "binance", "BTCUSDT", columns))
    writer.add(trade(1))
    writer.close()
    assert writer.stats.rows_rejected == 2 and writer.stats.rows_written == 1


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("price", ["1.5", "2.5"]),  # strings in a float column
        ("trade_id", [1.5, 2.0]),  # a fraction in an integer column
        ("qty", [True, False]),  # bools in a float column
        ("side", [1, 2]),  # numbers in a string column
    ],
)
def test_batch_with_an_uncastable_column_is_rejected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, values: list[Any]
) -> None:
    good = batch_of([trade(i) for i in range(2)]).columns
    bad = good.set_column(good.schema.get_field_index(name), name, pa.array(values))
    writer = LakeWriter(tmp_path, writer_id="w")
    with caplog.at_level(logging.WARNING, logger="microstream.store.lake"):
        writer.add_batch(RowBatch("trades", "binance", "BTCUSDT", bad))
    assert writer.stats.rows_rejected == 2 and writer.stats.rows_buffered == 0
    assert any("batch of 2 rows" in r.getMessage() for r in caplog.records)
    writer.add_batch(batch_of([trade(i) for i in range(5, 8)]))  # the writer keeps working
    writer.close()
    assert writer.stats.rows_written == 3 and writer.stats.errors == 0
    assert read_files(tmp_path, "trades").column("trade_id").to_pylist() == [5, 6, 7]


def test_integral_floats_in_an_integer_column_are_accepted_like_rows(tmp_path: Path) -> None:
    columns = batch_of([trade(i) for i in range(3)]).columns
    columns = columns.set_column(2, "trade_id", pa.array([0.0, 1.0, 2.0]))
    writer = LakeWriter(tmp_path)
    writer.add_batch(RowBatch("trades", "binance", "BTCUSDT", columns))
    writer.close()
    assert read_files(tmp_path, "trades").column("trade_id").to_pylist() == [0, 1, 2]


def test_flush_rows_counts_batch_rows(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path, flush_rows=10, flush_seconds=1e9)
    writer.add_batch(batch_of([trade(i) for i in range(6)]))
    for i in range(6, 9):
        writer.add(trade(i))
    assert lake_files(tmp_path, "trades") == [] and writer.stats.rows_buffered == 9
    writer.add(trade(9))  # the tenth row of the partition
    assert len(lake_files(tmp_path, "trades")) == 1 and writer.stats.rows_buffered == 0
    writer.add_batch(batch_of([trade(i) for i in range(10, 22)]))  # one batch over the limit
    assert len(lake_files(tmp_path, "trades")) == 2
    assert writer.stats.rows_written == 22 and writer.stats.files_written == 2
    writer.close()


def test_flush_seconds_applies_to_batches(tmp_path: Path) -> None:
    now = [1000.0]
    writer = LakeWriter(tmp_path, flush_seconds=5.0, clock=lambda: now[0])
    writer.add_batch(batch_of([trade(i) for i in range(3)]))
    now[0] += 4.0
    writer.add_batch(batch_of([trade(i) for i in range(3, 5)]))
    assert lake_files(tmp_path, "trades") == []
    now[0] += 1.0
    writer.add_batch(batch_of([trade(i) for i in range(5, 6)]))  # the buffer is 5 s old
    assert len(lake_files(tmp_path, "trades")) == 1 and writer.stats.rows_written == 6
    writer.close()


def test_undeclared_table_and_arrow_table_columns(tmp_path: Path) -> None:
    name = "batch_only_table_for_tests"
    columns = pa.table({"ts": [DAY0, DAY0 + 1, DAY0 + 2], "value": [1.5, None, 3.0]})
    writer = LakeWriter(tmp_path)
    writer.add_batch(RowBatch(name, "binance", "BTCUSDT", columns))
    writer.add_batch(RowBatch(name, "binance", "BTCUSDT", pa.record_batch({"x": [1]})))
    writer.close()
    got = read_files(tmp_path, name)
    assert got.column("ts").to_pylist() == [DAY0, DAY0 + 1, DAY0 + 2]
    assert got.column("value").to_pylist() == [1.5, None, 3.0]
    assert writer.stats.rows_rejected == 1  # the second batch has no time column


def test_empty_batch_and_closed_writer(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    empty = batch_of([trade(0)]).columns.slice(0, 0)
    writer.add_batch(RowBatch("trades", "binance", "BTCUSDT", empty))
    assert writer.stats.rows_buffered == 0 and writer.stats.rows_rejected == 0
    writer.close()
    with pytest.raises(Exception, match="closed"):
        writer.add_batch(batch_of([trade(1)]))


# -- LakeSink ------------------------------------------------------------------------


class BlockedWriter(LakeWriter):
    """A writer whose ``add_batch`` waits until released (a disk that stalls)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.entered = threading.Event()

    def add_batch(self, batch: RowBatch) -> None:
        self.entered.set()
        self.release.wait(10)
        super().add_batch(batch)


def test_sink_writes_batches_and_rows_from_the_bus(tmp_path: Path) -> None:
    bus = MemoryBus()
    sink = LakeSink(LakeWriter(tmp_path))
    sink.attach(bus)
    rows = [trade(i) for i in range(30)]
    bus.publish(Topics.ROWS, KEY, batch_of(rows[:10]))
    for r in rows[10:20]:
        bus.publish(Topics.ROWS, KEY, r)
    bus.publish(Topics.ROWS, KEY, batch_of(rows[20:]))
    bus.publish(Topics.ROWS, KEY, "not a row")
    sink.close()
    stats = sink.stats
    assert stats.received == 30 and stats.dropped == 0 and stats.rejected == 1
    assert stats.queue_depth == 0 and stats.writer.rows_written == 30
    assert read_table(tmp_path, "trades")["trade_id"].to_list() == list(range(30))


def test_sink_counts_a_full_queue_in_rows(tmp_path: Path) -> None:
    writer = BlockedWriter(tmp_path)
    sink = LakeSink(writer, maxsize=10, put_timeout=0.01, tick=0.01)
    assert sink.put_batch(batch_of([trade(i) for i in range(5)]))
    assert writer.entered.wait(5)  # the thread holds that batch: the queue is empty
    assert sink.put_batch(batch_of([trade(i) for i in range(5, 13)]))  # 8 rows queued
    assert not sink.put_batch(batch_of([trade(i) for i in range(13, 16)]))  # 8 + 3 > 10
    assert sink.put(trade(16)) and sink.put(trade(17))  # 9, then 10 rows
    assert not sink.put(trade(18))
    assert sink.stats.queue_depth == 10
    assert sink.stats.received == 19 and sink.stats.dropped == 4
    writer.release.set()
    sink.close()
    assert sink.stats.writer.rows_written == 15 and sink.stats.queue_depth == 0


def test_sink_takes_a_batch_larger_than_the_queue_when_empty(tmp_path: Path) -> None:
    sink = LakeSink(LakeWriter(tmp_path), maxsize=4, put_timeout=None)
    assert sink.put_batch(batch_of([trade(i) for i in range(10)]))
    assert sink.put_batch(batch_of([trade(i) for i in range(10, 20)]))  # waits for room
    sink.close()
    assert sink.stats.received == 20 and sink.stats.dropped == 0
    assert sink.stats.writer.rows_written == 20


def test_sink_closed_drops_a_batch_as_its_rows(tmp_path: Path) -> None:
    sink = LakeSink(LakeWriter(tmp_path))
    sink.close()
    assert not sink.put_batch(batch_of([trade(i) for i in range(7)]))
    sink.on_message(KEY, batch_of([trade(i) for i in range(3)]))
    assert sink.stats.received == 10 and sink.stats.dropped == 10


# -- LiveStateStore ------------------------------------------------------------------


def small_store() -> LiveStateStore:
    return LiveStateStore(LiveStateConfig(maxlen={"trades": 8, "book_top": 5, "features": 3}))


def feed(store: LiveStateStore, rows: list[Row], cut: int | None = None) -> None:
    """Rows one by one (``cut`` None) or as batches cut at ``cut``, through the bus."""
    bus = MemoryBus()
    store.attach(bus)
    if cut is None:
        for r in rows:
            bus.publish(Topics.ROWS, KEY, r)
    else:
        bus.publish(Topics.ROWS, KEY, batch_of(rows[:cut]))
        bus.publish(Topics.ROWS, KEY, batch_of(rows[cut:]))


@pytest.mark.parametrize("cut", [2, 11])
def test_live_store_holds_a_batch_like_its_rows(cut: int) -> None:
    rows = [trade(i, simulated=True) for i in range(13)]
    by_row, by_batch = small_store(), small_store()
    feed(by_row, rows)
    feed(by_batch, rows, cut)
    for table in ("trades", "book_top"):
        assert by_batch.history("binance", "BTCUSDT", table) == by_row.history(
            "binance", "BTCUSDT", table
        )
    assert by_batch.latest("binance", "BTCUSDT") == by_row.latest("binance", "BTCUSDT")
    assert by_batch.latest("binance", "BTCUSDT")["trades"] == rows[-1].values
    assert by_batch.rows_by_table == by_row.rows_by_table == {"trades": 13}
    assert by_batch.counts("binance", "BTCUSDT")["trades"] == 8
    assert by_batch.last_row_age_s() is not None


def test_live_store_book_top_batch_samples_the_heatmap_like_rows() -> None:
    rows = [top(i, levels=1 + i % 5) for i in range(12)]
    by_row, by_batch = small_store(), small_store()
    feed(by_row, rows)
    feed(by_batch, rows, 4)
    got = by_batch.heatmap_samples("binance", "BTCUSDT")
    want = by_row.heatmap_samples("binance", "BTCUSDT")
    assert [s.ts for s in got] == [s.ts for s in want] and len(got) == 12
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.bids, b.bids) and np.array_equal(a.asks, b.asks)
    assert by_batch.depth("binance", "BTCUSDT") == by_row.depth("binance", "BTCUSDT")
    assert by_batch.history("binance", "BTCUSDT", "book_top") == by_row.history(
        "binance", "BTCUSDT", "book_top"
    )


def test_live_store_after_a_pushed_ladder_keeps_only_the_newest_rows() -> None:
    store = small_store()
    store.set_live("binance", "BTCUSDT", "depth", {"ts": DAY0, "bids": [[1.0, 2.0]], "asks": []})
    store.on_message(KEY, batch_of([top(i) for i in range(9)]))
    history = store.history("binance", "BTCUSDT", "book_top")
    assert [r["update_id"] for r in history] == [1004, 1005, 1006, 1007, 1008]
    assert len(store.heatmap_samples("binance", "BTCUSDT")) == 1  # the pushed ladder only
    assert store.rows_by_table == {"book_top": 9}


def test_live_store_ignores_batches_of_other_tables_by_their_rows() -> None:
    store = small_store()
    store.on_message(KEY, batch_of([Row("bars_1m", "b", "S", {"ts": i}) for i in range(4)]))
    store.on_message(KEY, RowBatch("trades", "b", "S", None))
    assert store.rows_ignored == 4 and store.rows_rejected == 1 and store.rows_by_table == {}


# -- the Kafka engine, topics, codec -----------------------------------------------


class FakeKafka:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Any]] = []

    def publish(self, topic: str, key: str, message: Any) -> None:
        self.published.append((topic, key, message))


def test_kafka_engine_publishes_a_batch_as_its_rows() -> None:
    kafka = FakeKafka()
    tee = _TeeBus(cast(KafkaBus, kafka), EventDedup().accept)
    lake: list[Any] = []
    local: list[Any] = []
    tee.every_row.append(lambda _key, message: lake.append(message))
    tee.subscribe(Topics.ROWS, lambda _key, message: local.append(message))
    rows = [trade(i) for i in range(5)]
    tee.publish(Topics.ROWS, KEY, batch_of(rows))
    tee.publish(Topics.ROWS, KEY, batch_of([*rows[3:], trade(5)]))  # 3, 4 already published
    sent = [message for _topic, _key, message in kafka.published]
    assert all(type(m) is Row for m in sent)
    assert [m.values["trade_id"] for m in sent] == [0, 1, 2, 3, 4, 5]
    assert sent[0] == rows[0]
    assert [m.values["trade_id"] for m in local] == [0, 1, 2, 3, 4, 5]
    assert [m.values["trade_id"] for m in lake] == [0, 1, 2, 3, 4, 3, 4, 5]


def test_a_batch_maps_to_its_tables_kafka_topic() -> None:
    topics = TopicMap(prefix="ms")
    batch = batch_of([trade(0)])
    assert topics.for_message(Topics.ROWS, batch) == topics.for_table("trades") == "ms.out.trades"


def test_codec_refuses_a_batch_with_a_clear_error() -> None:
    with pytest.raises(CodecError, match=r"RowBatch.*rows\(\)"):
        Codec().encode(Topics.ROWS, batch_of([trade(0), trade(1)]))
