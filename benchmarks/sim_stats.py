"""Stylised facts of the simulated market next to the real Binance spot capture.

Usage (the figures in docs/simulator.md)::

    .venv/bin/python benchmarks/sim_stats.py --minutes 60 --seed 7

Both sides go through the same code: a stream of Binance spot frames
(``depth@100ms`` diffs + ``trade``) and one REST snapshot, a book rebuilt from
them with Binance's sync rules (integer ticks), a 1-second grid of exchange
time, and the same statistics. The real side reads
``../shared/data/binance/spot/btcusdt_2024080{8,9}.gz``; the simulated side
runs :class:`microstream.sim.sim_feed.SimFeed` unpaced.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kurtosis

ROOT = Path(__file__).resolve().parents[1]
SPOT = ROOT.parent / "shared" / "data" / "binance" / "spot"
CAPTURE = [SPOT / "btcusdt_20240808.gz", SPOT / "btcusdt_20240809.gz"]
TICKS_PER_UNIT = 100  # BTCUSDT tick 0.01
HORIZON_S = 10
DEPTH_EVERY_S = 5  # depth profile sampling period
DEPTH_BUCKETS = [(0, 1), (1, 10), (10, 100), (100, 200), (200, 500), (500, 1000), (1000, 2000)]

Frame = tuple[str, dict[str, Any]]


def _tick(price: str) -> int:
    return round(float(price) * TICKS_PER_UNIT)


@dataclass
class Rebuilt:
    """What the stats need from one session: book samples and trades."""

    times: list[int] = field(default_factory=list)  # E of each applied diff (ms)
    bid: list[int] = field(default_factory=list)
    ask: list[int] = field(default_factory=list)
    bid_qty: list[float] = field(default_factory=list)
    ask_qty: list[float] = field(default_factory=list)
    depth: list[list[float]] = field(default_factory=list)  # bid depth per bucket, every 5 s
    trades_t: list[int] = field(default_factory=list)
    trades_sign: list[int] = field(default_factory=list)
    trades_qty: list[float] = field(default_factory=list)
    diffs_seen: int = 0
    gaps: int = 0


class BookRebuilder:
    """Binance spot sync: buffer diffs, load the snapshot, chain ``U == prev u + 1``."""

    def __init__(self) -> None:
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.last: int | None = None
        self.buffer: list[dict[str, Any]] = []
        self.out = Rebuilt()
        self._next_depth_s = 0

    def snapshot(self, snap: dict[str, Any]) -> None:
        self.bids = {_tick(p): float(q) for p, q in snap["bids"]}
        self.asks = {_tick(p): float(q) for p, q in snap["asks"]}
        self.last = int(snap["lastUpdateId"])
        pending, self.buffer = self.buffer, []
        for diff in pending:
            self.diff(diff)

    def diff(self, d: dict[str, Any]) -> None:
        self.out.diffs_seen += 1
        if self.last is None:
            self.buffer.append(d)
            return
        if d["u"] <= self.last:
            return
        if d["U"] > self.last + 1:
            self.out.gaps += 1
        self.last = int(d["u"])
        for book, side in ((self.bids, "b"), (self.asks, "a")):
            for p, q in d[side]:
                qty = float(q)
                if qty == 0.0:
                    book.pop(_tick(p), None)
                else:
                    book[_tick(p)] = qty
        self._sample(int(d["E"]))

    def trade(self, t: dict[str, Any]) -> None:
        self.out.trades_t.append(int(t["T"]))
        self.out.trades_sign.append(-1 if t["m"] else 1)
        self.out.trades_qty.append(float(t["q"]))

    def _sample(self, event_ms: int) -> None:
        bb, ba = max(self.bids), min(self.asks)
        o = self.out
        o.times.append(event_ms)
        o.bid.append(bb)
        o.ask.append(ba)
        o.bid_qty.append(self.bids[bb])
        o.ask_qty.append(self.asks[ba])
        if event_ms // 1000 >= self._next_depth_s:
            self._next_depth_s = event_ms // 1000 + DEPTH_EVERY_S
            ticks = np.fromiter(self.bids.keys(), dtype=np.int64, count=len(self.bids))
            qty = np.fromiter(self.bids.values(), dtype=float, count=len(self.bids))
            dist = bb - ticks
            o.depth.append(
                [float(qty[(dist >= lo) & (dist < hi)].sum()) for lo, hi in DEPTH_BUCKETS]
            )


def rebuild(frames: Iterable[Frame], snapshot_first: dict[str, Any] | None = None) -> Rebuilt:
    """Run the frames (``("snapshot", data)`` allowed inline) through the rebuilder."""
    rb = BookRebuilder()
    if snapshot_first is not None:
        rb.snapshot(snapshot_first)
    for stream, data in frames:
        if stream == "snapshot":
            rb.snapshot(data)
        elif stream.endswith("@depth@100ms"):
            rb.diff(data)
        elif stream.endswith("@trade"):
            rb.trade(data)
    return rb.out


def real_frames(paths: list[Path]) -> Iterator[Frame]:
    """The capture's depth, trade and snapshot lines, in order."""
    for path in paths:
        if not path.exists():
            sys.exit(f"missing capture {path} (expected ../shared/data beside the repository)")
        with gzip.open(path, "rt") as fh:
            for line in fh:
                obj = json.loads(line.split(" ", 1)[1])
                if "lastUpdateId" in obj:
                    yield "snapshot", obj
                else:
                    yield obj["stream"], obj["data"]


# ------------------------------------------------------------------ statistics


def grid(r: Rebuilt) -> dict[str, np.ndarray]:
    """Book state on the 1-second grid of exchange time (last diff with E <= t)."""
    times = np.asarray(r.times)
    t0 = (times[0] // 1000 + 1) * 1000
    ts = np.arange(t0, times[-1] + 1, 1000)
    idx = np.searchsorted(times, ts, side="right") - 1
    bid, ask = np.asarray(r.bid)[idx], np.asarray(r.ask)[idx]
    bq, aq = np.asarray(r.bid_qty)[idx], np.asarray(r.ask_qty)[idx]
    return {
        "ts": ts,
        "mid": (bid + ask) / 2.0 / TICKS_PER_UNIT,
        "imb": (bq - aq) / (bq + aq),
    }


def sign_acf(signs: np.ndarray, lags: Iterable[int]) -> list[float]:
    """Autocorrelation of a ±1 series at the given lags."""
    s = signs - signs.mean()
    var = float((s * s).mean())
    return [float((s[:-k] * s[k:]).mean() / var) for k in lags]


def aggressor_signs(r: Rebuilt) -> np.ndarray:
    """One sign per run of trades with the same trade time and side (≈ one aggressor)."""
    keys = zip(r.trades_t, r.trades_sign, strict=True)
    return np.asarray([sign for (_, sign), _ in itertools.groupby(keys)])


def stats(r: Rebuilt) -> dict[str, Any]:
    """Every figure of the report for one session."""
    g = grid(r)
    mid, imb = g["mid"], g["imb"]
    ret = np.diff(np.log(mid))
    spread = np.asarray(r.ask) - np.asarray(r.bid)
    trade_t = np.asarray(r.trades_t)
    per_s = np.bincount((trade_t - trade_t[0]) // 1000)
    duration_s = (r.times[-1] - r.times[0]) / 1000.0
    fut = np.log(mid[HORIZON_S:] / mid[:-HORIZON_S])
    now = imb[:-HORIZON_S]
    moved = fut != 0
    signs = np.asarray(r.trades_sign, dtype=float)
    agg = aggressor_signs(r).astype(float)
    depth = np.asarray(r.depth).mean(axis=0)
    return {
        "duration_min": duration_s / 60.0,
        "diffs": r.diffs_seen,
        "sequence_gaps": r.gaps,
        "spread_ticks": {
            "1": float(np.mean(spread == 1)),
            "2": float(np.mean(spread == 2)),
            "3-10": float(np.mean((spread >= 3) & (spread <= 10))),
            ">10": float(np.mean(spread > 10)),
            "crossed_or_locked": int(np.sum(spread <= 0)),
        },
        "trades_per_s": {
            "mean": len(trade_t) / duration_s,
            "median": float(np.median(per_s)),
            "p99": float(np.percentile(per_s, 99)),
            "aggressors_per_s": len(agg) / duration_s,
            "trade_qty_median": float(np.median(r.trades_qty)),
            "trade_qty_mean": float(np.mean(r.trades_qty)),
        },
        "returns_1s": {
            "std_bps": float(ret.std() * 1e4),
            "excess_kurtosis": float(kurtosis(ret)),
            "zero_share": float(np.mean(ret == 0)),
            "abs_ret_acf_lag1": float(np.corrcoef(np.abs(ret[:-1]), np.abs(ret[1:]))[0, 1]),
        },
        "sign_acf_trades": sign_acf(signs, range(1, 11)),
        "sign_acf_aggressors": sign_acf(agg, range(1, 11)),
        "imbalance_vs_next_10s": {
            "corr": float(np.corrcoef(now, fut)[0, 1]),
            "hit_rate": float(np.mean(np.sign(now[moved]) == np.sign(fut[moved]))),
            "moved_share": float(np.mean(moved)),
            "mean_move_bps_if_imb_gt_0.5": float(fut[now > 0.5].mean() * 1e4),
            "mean_move_bps_if_imb_lt_-0.5": float(fut[now < -0.5].mean() * 1e4),
        },
        "depth_bid_btc": {
            f"{lo}-{hi - 1}": float(v) for (lo, hi), v in zip(DEPTH_BUCKETS, depth, strict=True)
        },
        "top_qty_btc_mean": float(np.mean(r.bid_qty)),
        "price_range": [float(mid.min()), float(mid.max())],
    }


def regime_stats(feed: Any, grid_ts: np.ndarray, mid: np.ndarray) -> dict[str, Any]:
    """Durations of the hidden regimes and the drift/volatility inside each."""
    start, end = int(grid_ts[0]), int(grid_ts[-1])
    switches = [(s, r) for s, r in feed.regime_switches() if s < end]
    episodes: dict[str, list[float]] = {}
    for (s0, r0), (s1, _) in itertools.pairwise([*switches, (end, "")]):
        if s0 >= start:  # complete episodes only (the first started before the run)
            episodes.setdefault(r0, []).append((s1 - s0) / 1000.0)
    regimes = np.asarray([feed.truth_at(int(t) * 1_000_000) for t in grid_ts[:-1]])
    ret = np.diff(np.log(mid))
    out: dict[str, Any] = {}
    for name in ("strongly_bullish", "bullish", "neutral", "bearish", "strongly_bearish"):
        sel = regimes == name
        durs = episodes.get(name, [])
        out[name] = {
            "time_share": float(sel.mean()),
            "episodes": len(durs),
            "mean_duration_s": float(np.mean(durs)) if durs else None,
            "drift_bps_per_min": float(ret[sel].mean() * 1e4 * 60) if sel.any() else None,
            "vol_1s_bps": float(ret[sel].std() * 1e4) if sel.any() else None,
        }
    all_durs = [d for v in episodes.values() for d in v]
    out["all"] = {
        "episodes": len(all_durs),
        "mean_duration_s": float(np.mean(all_durs)) if all_durs else float("nan"),
        "median_duration_s": float(np.median(all_durs)) if all_durs else float("nan"),
    }
    return out


# ------------------------------------------------------------------ report


def simulate(minutes: float, seed: int) -> tuple[Rebuilt, Any, float]:
    """Run the simulator unpaced and rebuild its book from its own frames."""
    sys.path.insert(0, str(ROOT / "src"))
    from microstream.sim.sim_feed import SimFeed

    feed = SimFeed(
        seed=seed, start_ms=1_723_161_600_000, speed=None, streams=("trade", "depth@100ms")
    )
    began = time.perf_counter()
    snap = feed.snapshot("BTCUSDT", 100_000)
    rebuilt = rebuild(feed.generate(minutes * 60.0), snapshot_first=snap)
    return rebuilt, feed, time.perf_counter() - began


def _row(name: str, real: Any, sim: Any) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    return f"| {name} | {fmt(real)} | {fmt(sim)} |"


def markdown(real: dict[str, Any], sim: dict[str, Any]) -> str:
    """The side-by-side table of docs/simulator.md."""
    lines = ["| figure | real spot capture | simulator |", "|---|---|---|"]
    for section in (
        "spread_ticks",
        "trades_per_s",
        "returns_1s",
        "imbalance_vs_next_10s",
        "depth_bid_btc",
    ):
        for key in real[section]:
            lines.append(_row(f"{section}.{key}", real[section][key], sim[section][key]))
    for key in ("top_qty_btc_mean", "duration_min", "sequence_gaps"):
        lines.append(_row(key, real[key], sim[key]))
    lags = "lag " + ", ".join(str(k) for k in range(1, 11))
    for key in ("sign_acf_trades", "sign_acf_aggressors"):
        lines.append(
            f"| {key} ({lags}) | {', '.join(f'{v:.2f}' for v in real[key])} "
            f"| {', '.join(f'{v:.2f}' for v in sim[key])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args(argv)

    real_r = rebuild(real_frames(CAPTURE))
    real = stats(real_r)
    sim_r, feed, seconds = simulate(args.minutes, args.seed)
    sim = stats(sim_r)
    g = grid(sim_r)
    regimes = regime_stats(feed, g["ts"], g["mid"])
    sim["generation"] = {
        "wall_s": seconds,
        "simulated_s_per_wall_s": args.minutes * 60.0 / seconds,
    }
    print(markdown(real, sim))
    print()
    print(
        "| regime | time share | complete episodes | mean duration s | drift bps/min | 1 s vol bps |"
    )
    print("|---|---|---|---|---|---|")
    for name, v in regimes.items():
        if name == "all":
            continue
        print(
            f"| {name} | {v['time_share']:.2f} | {v['episodes']} | "
            f"{v['mean_duration_s'] or float('nan'):.0f} | "
            f"{v['drift_bps_per_min'] if v['drift_bps_per_min'] is not None else float('nan'):.2f} | "
            f"{v['vol_1s_bps'] if v['vol_1s_bps'] is not None else float('nan'):.2f} |"
        )
    a = regimes["all"]
    print(
        f"\nall regimes: {a['episodes']} complete episodes, mean {a['mean_duration_s']:.0f} s, "
        f"median {a['median_duration_s']:.0f} s"
    )
    print(
        f"generation: {args.minutes:g} simulated minutes in {seconds:.1f} s wall "
        f"({sim['generation']['simulated_s_per_wall_s']:.1f}x real time)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"real": real, "sim": sim, "regimes": regimes}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
