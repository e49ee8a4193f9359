"""Replay of the USD-M BTCUSDT + ETHUSDT session (four files, two symbols, one run).

Completes ``test_replay_captures.py``, which covers one symbol per run: here the
two sessions are merged by receive time, and each symbol's ``book_top`` rows and
trades must equal the same independent reconstruction.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from test_replay_captures import lake_book_rows, reference_book_rows

from microstream.engine import PipelineOptions
from microstream.replay import replay
from microstream.store.reader import read_table

EXCHANGE = "binance-futures"


def test_btc_and_eth_replayed_together_each_equal_reference(
    shared_data: Path, tmp_path: Path
) -> None:
    usdm = shared_data / "binance" / "usdm"
    sessions = {
        sym: [usdm / f"{sym.lower()}_20240718.gz", usdm / f"{sym.lower()}_20240719.gz"]
        for sym in ("BTCUSDT", "ETHUSDT")
    }
    paths = [p for files in sessions.values() for p in files]
    for p in paths:
        assert p.is_file(), f"missing capture {p}"
    result = replay(paths, tmp_path, options=PipelineOptions(features=False))
    assert result.rejected == {}
    assert set(result.symbols) == {f"{EXCHANGE}:BTCUSDT", f"{EXCHANGE}:ETHUSDT"}

    for symbol, files in sessions.items():
        ref_rows, ref_trades = reference_book_rows(files, futures=True)
        book_top = read_table(tmp_path, "book_top", exchange=EXCHANGE, symbol=symbol)
        assert book_top.height == len(ref_rows) > 8_000
        assert lake_book_rows(book_top) == ref_rows, symbol
        trades = read_table(tmp_path, "trades", exchange=EXCHANGE, symbol=symbol).sort("trade_id")
        assert list(zip(trades["trade_id"], trades["side"], trades["price"], strict=True)) == (
            sorted(ref_trades)
        )
        assert trades.filter(pl.col("side") == "sell").height > 0
        assert trades.filter(pl.col("side") == "buy").height > 0
        sync = read_table(tmp_path, "book_sync", exchange=EXCHANGE, symbol=symbol)
        assert sync["state"].to_list() == ["buffering", "synced"]
