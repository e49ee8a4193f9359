"""`microstream replay` of the real captures against an independent reconstruction.

The reference below shares no code with the package: it reads the gzip lines
with the standard library's json, keeps each side as a dict plus a bisect-sorted
price list, and applies Binance's documented sync rules written out again.
"""

from __future__ import annotations

import bisect
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from microstream.engine import PipelineOptions
from microstream.replay import replay
from microstream.store.reader import read_table


class SortedSide:
    """One side of the reference book: a dict plus a bisect-sorted key list."""

    def __init__(self, levels: list[list[str]]) -> None:
        self.qty = {float(p): float(q) for p, q in levels if float(q) != 0.0}
        self.keys = sorted(self.qty)

    def set(self, price: str, qty: str) -> None:
        p, q = float(price), float(qty)
        if q == 0.0:
            if self.qty.pop(p, None) is not None:
                del self.keys[bisect.bisect_left(self.keys, p)]
        else:
            if p not in self.qty:
                bisect.insort(self.keys, p)
            self.qty[p] = q

    def best(self, n: int, highest: bool) -> tuple[tuple[float, float], ...]:
        keys = self.keys[::-1][:n] if highest else self.keys[:n]
        return tuple((k, self.qty[k]) for k in keys)


def reference_book_rows(paths: list[Path], futures: bool) -> tuple[list[tuple], list[tuple]]:
    """(update_id, top-5 bids, top-5 asks) per applied diff, and (trade_id, side) per trade."""
    bids = asks = SortedSide([])
    buffered: list[dict[str, Any]] = []
    last: int | None = None
    synced = False
    rows: list[tuple] = []
    trades: list[tuple] = []

    def apply(ev: dict[str, Any]) -> None:
        for p, q in ev["b"]:
            bids.set(p, q)
        for p, q in ev["a"]:
            asks.set(p, q)
        rows.append((ev["u"], bids.best(5, highest=True), asks.best(5, highest=False)))

    def process(ev: dict[str, Any]) -> None:
        nonlocal last, synced
        if not synced:
            assert last is not None
            if futures:
                if ev["u"] < last:
                    return
                assert ev["U"] <= last <= ev["u"], "first diff must bridge the snapshot"
            else:
                if ev["u"] <= last:
                    return
                assert ev["U"] <= last + 1 <= ev["u"], "first diff must bridge the snapshot"
            synced = True
        elif futures:
            assert ev["pu"] == last, "gap in the capture"
        else:
            assert ev["U"] == last + 1, "gap in the capture"
        apply(ev)
        last = ev["u"]

    for path in paths:
        with gzip.open(path, "rt") as fh:
            for line in fh:
                obj = json.loads(line.split(" ", 1)[1])
                if "lastUpdateId" in obj:
                    bids, asks = SortedSide(obj["bids"]), SortedSide(obj["asks"])
                    last = obj["lastUpdateId"]
                    for ev in buffered:
                        process(ev)
                    buffered = []
                    continue
                data = obj["data"]
                if data.get("e") == "depthUpdate" and "@depth@" in obj["stream"]:
                    if last is None:
                        buffered.append(data)
                    else:
                        process(data)
                elif data.get("e") == "trade" and data.get("X", "MARKET") == "MARKET":
                    trades.append((data["t"], "sell" if data["m"] else "buy", float(data["p"])))
    return rows, trades


def lake_book_rows(book_top: pl.DataFrame) -> list[tuple]:
    out = []
    for r in book_top.sort("ts_recv", "update_id").iter_rows(named=True):
        b = tuple(
            (r[f"bid_px_{i}"], r[f"bid_qty_{i}"])
            for i in range(1, 6)
            if r[f"bid_px_{i}"] is not None
        )
        a = tuple(
            (r[f"ask_px_{i}"], r[f"ask_qty_{i}"])
            for i in range(1, 6)
            if r[f"ask_px_{i}"] is not None
        )
        out.append((r["update_id"], b, a))
    return out


CASES = {
    "spot": ("binance/spot", ["btcusdt_20240808.gz", "btcusdt_20240809.gz"], False, "binance"),
    "usdm-2023": (
        "binance/usdm",
        ["btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"],
        True,
        "binance-futures",
    ),
    "usdm-2024": (
        "binance/usdm",
        ["btcusdt_20240718.gz", "btcusdt_20240719.gz"],
        True,
        "binance-futures",
    ),
    "coinm": (
        "binance/cm",
        ["btcusd_perp_20240808.gz", "btcusd_perp_20240809.gz"],
        True,
        "binance-coinm",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_replay_book_and_trades_equal_reference(
    case: str, shared_data: Path, tmp_path: Path
) -> None:
    folder, names, futures, exchange = CASES[case]
    paths = [shared_data / folder / n for n in names]
    for p in paths:
        assert p.is_file(), f"missing capture {p}"
    result = replay(paths, tmp_path, options=PipelineOptions(features=False))
    assert result.rejected == {}

    ref_rows, ref_trades = reference_book_rows(paths, futures)
    book_top = read_table(tmp_path, "book_top", exchange=exchange)
    assert book_top.height == len(ref_rows)
    assert lake_book_rows(book_top) == ref_rows
    assert book_top["book_valid"].all()

    trades = read_table(tmp_path, "trades", exchange=exchange).sort("trade_id")
    assert trades.height == len(ref_trades)
    assert list(zip(trades["trade_id"], trades["side"], trades["price"], strict=True)) == sorted(
        ref_trades
    )
    sync = read_table(tmp_path, "book_sync", exchange=exchange)
    assert sync["state"].to_list() == ["buffering", "synced"]

    if case == "spot":  # the figures of ../shared/data/README.md
        assert book_top.height == 6_493
        assert trades.height == 19_904
        assert trades.filter(pl.col("side") == "sell").height > 0


def _replay_command(captures: list[Path], out: Path, *flags: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "microstream.cli",
            "replay",
            *map(str, captures),
            "--out",
            str(out),
            "--quiet",
            "--no-features",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


def test_replay_with_the_reference_parser_gives_the_same_summary(
    spot_capture: list[Path], tmp_path: Path
) -> None:
    fast = _replay_command(spot_capture, tmp_path / "fast")
    reference = _replay_command(spot_capture, tmp_path / "reference", "--reference-parser")
    assert reference["fast_lane_frames"] == 0 and fast["fast_lane_frames"] > 90_000
    for key in ("frames", "events", "rejected", "rows_written", "symbols"):
        assert reference[key] == fast[key], key


def test_replay_command_line_writes_the_lake(spot_capture: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "lake"
    summary = _replay_command(spot_capture, out)
    assert summary["events"]["Trade"] == 19_904
    assert summary["rejected"] == {}
    events = summary["events"]
    assert (
        summary["fast_lane_frames"]
        == events["Trade"] + events["DepthUpdate"] + events["BestBidAsk"]
    )
    files = list(out.glob("book_top/**/*.parquet"))
    assert files, "no book_top files"
    assert (
        pl.scan_parquet(str(out / "book_top/**/*.parquet"), hive_partitioning=True)
        .select(pl.len())
        .collect()
        .item()
        == 6_493
    )
