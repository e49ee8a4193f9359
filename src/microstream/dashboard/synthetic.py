"""Synthetic rows for the live-state store: tests, demos and the dashboard soak.

:class:`SyntheticFeed` writes plausible rows of every dashboard table (and the
depth ladder, forming bar, scorecard, model info) into a
:class:`~microstream.live_state.LiveStateStore`, one grid second per
:meth:`SyntheticFeed.step`. It is not a market simulator (that is
:mod:`microstream.sim`): it only exercises the UI and the API.

``python -m microstream.dashboard.synthetic --port 8765`` serves a fake engine
API fed in real time, so the dashboard can be developed without an engine.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time
from typing import Any

from microstream.bus.protocol import Row
from microstream.live_state import LiveStateStore

NS = 1_000_000_000
REGIMES = ("strongly_bearish", "bearish", "neutral", "bullish", "strongly_bullish")


class SyntheticFeed:
    """Writes one symbol's synthetic rows into ``store``.

    Args:
        store: the store to fill.
        exchange / symbol: the symbol's names.
        seed: random seed (the output is deterministic for a seed and start time).
        start_ns: exchange time of the first grid point (default: now minus
            ``backfill_s`` so a backfilled feed ends at the present).
        tick: price tick of the ladder.
    """

    def __init__(
        self,
        store: LiveStateStore,
        exchange: str = "binance",
        symbol: str = "BTCUSDT",
        *,
        seed: int = 7,
        start_ns: int | None = None,
        tick: float = 0.01,
    ) -> None:
        self.store = store
        self.exchange = exchange
        self.symbol = symbol
        self.rng = random.Random(seed)
        self.tick = tick
        self.ts = start_ns if start_ns is not None else time.time_ns()
        self.mid = 60_000.0
        self.prev_mid = self.mid
        self.trade_id = 0
        self.steps = 0
        self.minute_trades: list[tuple[float, float, str]] = []
        self.window: list[tuple[int, float, float, str]] = []
        self.returns: list[float] = []
        self.scored = 0
        self.hits = 0
        self._emit("book_sync", {"ts_recv": self.ts, "state": "buffering", "detail": "start"})
        self._emit("book_sync", {"ts_recv": self.ts, "state": "synced", "detail": "snapshot"})

    def _emit(self, table: str, values: dict[str, Any]) -> None:
        self.store.add_row(Row(table, self.exchange, self.symbol, values))

    def backfill(self, seconds: int) -> None:
        """Run ``seconds`` steps at once (history for the charts)."""
        for _ in range(seconds):
            self.step()

    def step(self) -> None:
        """Advance one grid second and emit that second's rows."""
        self.steps += 1
        self.ts += NS
        self.prev_mid = self.mid
        drift = 0.3 * math.sin(self.steps / 90.0)
        self.mid = max(1.0, self.mid + self.rng.gauss(drift * 0.3, 0.6))
        self.mid = round(self.mid / self.tick) * self.tick + self.tick / 2
        bids, asks = self._ladder()
        self._trades()
        self._book_top(bids, asks)
        self._features(bids, asks)
        self._models()
        if self.steps % 60 == 0:
            self._close_bar()
        if self.steps % 400 == 0:
            self._emit("book_sync", {"ts_recv": self.ts, "state": "gap", "detail": "missed 3"})
            self._emit("book_sync", {"ts_recv": self.ts, "state": "resync", "detail": "snap"})
            self._emit("book_sync", {"ts_recv": self.ts, "state": "synced", "detail": "ok"})
        self._live(bids, asks)

    def _ladder(self) -> tuple[list[list[float]], list[list[float]]]:
        half = self.tick / 2
        best_bid, best_ask = self.mid - half, self.mid + half
        bids = [
            [round(best_bid - i * self.tick, 8), round(self.rng.expovariate(1.0) * 2, 5)]
            for i in range(100)
        ]
        asks = [
            [round(best_ask + i * self.tick, 8), round(self.rng.expovariate(1.0) * 2, 5)]
            for i in range(100)
        ]
        for wall in (17, 53):  # resting walls make the heatmap readable
            bids[wall][1] += 25.0
            asks[wall + 9][1] += 25.0
        return bids, asks

    def _trades(self) -> None:
        for _ in range(self.rng.randint(1, 8)):
            self.trade_id += 1
            side = "buy" if self.rng.random() < 0.5 + (self.mid - self.prev_mid) / 4 else "sell"
            price = self.mid + (self.tick / 2 if side == "buy" else -self.tick / 2)
            qty = round(self.rng.expovariate(3.0), 5) + 0.0001
            ts = self.ts - self.rng.randint(0, NS - 1)
            latency = self.rng.randint(2_000_000, 40_000_000)
            self._emit(
                "trades",
                {
                    "ts_event": ts,
                    "ts_recv": ts + latency,
                    "trade_id": self.trade_id,
                    "price": price,
                    "qty": qty,
                    "side": side,
                },
            )
            self.minute_trades.append((price, qty, side))
            self.window.append((ts, price, qty, side))
        cutoff = self.ts - 300 * NS
        self.window = [t for t in self.window if t[0] > cutoff]

    def _book_top(self, bids: list[list[float]], asks: list[list[float]]) -> None:
        values: dict[str, Any] = {"ts_event": self.ts, "ts_recv": self.ts + 5_000_000}
        values["update_id"] = self.steps
        for i in range(5):
            values[f"bid_px_{i + 1}"], values[f"bid_qty_{i + 1}"] = bids[i]
            values[f"ask_px_{i + 1}"], values[f"ask_qty_{i + 1}"] = asks[i]
        self._emit("book_top", values)

    def _window_stats(self, seconds: int) -> dict[str, float | None]:
        cutoff = self.ts - seconds * NS
        trades = [t for t in self.window if t[0] > cutoff]
        qty = sum(t[2] for t in trades)
        buy = sum(t[2] for t in trades if t[3] == "buy")
        vwap = sum(t[1] * t[2] for t in trades) / qty if qty else None
        flow = (buy - (qty - buy)) / qty if qty else None
        return {"vwap": vwap, "buy": buy, "sell": qty - buy, "flow": flow, "n": len(trades)}

    def _features(self, bids: list[list[float]], asks: list[list[float]]) -> None:
        bq, aq = bids[0][1], asks[0][1]
        b5, a5 = sum(q for _, q in bids[:5]), sum(q for _, q in asks[:5])
        self.returns.append(math.log(self.mid / self.prev_mid))
        self.returns = self.returns[-300:]
        w1, w5 = self._window_stats(60), self._window_stats(300)
        spread = asks[0][0] - bids[0][0]
        self._emit(
            "features",
            {
                "ts": self.ts,
                "mid": self.mid,
                "spread": spread,
                "spread_bps": spread / self.mid * 1e4,
                "microprice": (bids[0][0] * aq + asks[0][0] * bq) / (bq + aq),
                "imbalance_l1": (bq - aq) / (bq + aq),
                "imbalance_l5": (b5 - a5) / (b5 + a5),
                "vwap_1m": w1["vwap"],
                "vwap_5m": w5["vwap"],
                "buy_volume_1m": w1["buy"],
                "sell_volume_1m": w1["sell"],
                "flow_imbalance_1m": w1["flow"],
                "trade_count_1m": w1["n"],
                "volatility_1m": math.sqrt(sum(r * r for r in self.returns[-60:])),
                "volatility_5m": math.sqrt(sum(r * r for r in self.returns)),
                "ofi_10s": self.rng.gauss(0.0, 5.0),
                "book_valid": True,
            },
        )

    def _models(self) -> None:
        score = math.tanh((self.mid - self.prev_mid) / 3.0 + math.sin(self.steps / 90.0))
        idx = min(4, int((score + 1) / 2 * 5))
        self._emit(
            "regimes",
            {"ts": self.ts, "regime": REGIMES[idx], "score": score, "confidence": abs(score)},
        )
        self._emit("sim_truth", {"ts": self.ts, "regime": REGIMES[idx]})
        p_up = 0.2 + 0.6 * self.rng.random() * (0.5 + score / 2)
        p_down = (1 - p_up) * self.rng.random()
        p_neutral = 1 - p_up - p_down
        probs = {"up": p_up, "neutral": p_neutral, "down": p_down}
        label = max(probs, key=lambda k: probs[k])
        self._emit(
            "predictions",
            {
                "ts": self.ts,
                "horizon_s": 10,
                "p_up": p_up,
                "p_neutral": p_neutral,
                "p_down": p_down,
                "label": label,
                "model": "synthetic",
            },
        )
        self.scored += 1
        self.hits += int(self.rng.random() < 0.42)

    def _bar(self) -> dict[str, Any]:
        prices = [p for p, _, _ in self.minute_trades] or [self.mid]
        qty = sum(q for _, q, _ in self.minute_trades)
        buy = sum(q for _, q, s in self.minute_trades if s == "buy")
        vwap = sum(p * q for p, q, _ in self.minute_trades) / qty if qty else None
        return {
            "ts": self.ts - (self.ts % (60 * NS)),
            "open": prices[0],
            "high": max(prices),
            "low": min(prices),
            "close": prices[-1],
            "volume": qty,
            "buy_volume": buy,
            "sell_volume": qty - buy,
            "vwap": vwap,
            "trades": len(self.minute_trades),
        }

    def _close_bar(self) -> None:
        bar = self._bar()
        bar["ts"] = self.ts - 60 * NS
        self._emit("bars_1m", bar)
        change = (bar["close"] - bar["open"]) / bar["open"] * 1e4
        state = "bullish_extreme" if change > 8 else "bearish_extreme" if change < -8 else "normal"
        anomaly = self.rng.random() < 0.1
        self._emit(
            "signals_1m",
            {
                "ts": bar["ts"],
                "hmm_state": state,
                "hmm_confidence": 0.5 + 0.5 * self.rng.random(),
                "anomaly": anomaly,
                "anomaly_score": -0.6 if anomaly else -0.4,
            },
        )
        self.minute_trades = []

    def _live(self, bids: list[list[float]], asks: list[list[float]]) -> None:
        set_live = self.store.set_live
        set_live(self.exchange, self.symbol, "depth", {"ts": self.ts, "bids": bids, "asks": asks})
        set_live(self.exchange, self.symbol, "forming_bar", self._bar())
        set_live(
            self.exchange,
            self.symbol,
            "scorecard",
            {
                "n": self.scored,
                "hit_rate": self.hits / self.scored if self.scored else None,
                "baseline_hit_rate": 0.34,
                "log_loss": 1.05,
                "brier": 0.62,
            },
        )
        set_live(self.exchange, self.symbol, "model", {"name": "synthetic", "version": "0"})
        set_live(
            self.exchange, self.symbol, "warmup", {"done": min(self.steps, 300), "needed": 300}
        )


def synthetic_health(store: LiveStateStore) -> dict[str, Any]:
    """A plausible health document for the symbols in ``store``."""
    symbols = {
        f"{e}:{s}": {"book_state": "synced", "resyncs": 1, "gaps": 1, "last_update_id": 1}
        for e, s in store.symbols()
    }
    return {
        "status": "ok",
        "feed": {
            "connected": True,
            "reconnects": 0,
            "last_message_age_s": store.last_row_age_s(),
            "messages_per_s": 42.0,
        },
        "symbols": symbols,
        "queues": {"lake": {"depth": 3, "capacity": 10000, "dropped": 0}},
        "dropped": 0,
        "rejected": 0,
        "models": {"predictor": "synthetic-0", "hmm": "synthetic-0"},
    }


def filled_store(
    symbols: tuple[str, ...] = ("BTCUSDT",), seconds: int = 600, *, simulated: bool = True
) -> tuple[LiveStateStore, list[SyntheticFeed]]:
    """A store backfilled with ``seconds`` of synthetic rows per symbol, ending now."""
    store = LiveStateStore(source="synthetic", simulated=simulated)
    start = time.time_ns() - seconds * NS
    feeds = [
        SyntheticFeed(store, "binance", sym, seed=i + 1, start_ns=start)
        for i, sym in enumerate(symbols)
    ]
    for feed in feeds:
        feed.backfill(seconds)
    store.set_health_provider(lambda: synthetic_health(store))
    return store, feeds


def run_feeds(
    feeds: list[SyntheticFeed], stop: threading.Event, interval_s: float = 1.0
) -> threading.Thread:
    """Step ``feeds`` every ``interval_s`` in a daemon thread until ``stop`` is set."""

    def loop() -> None:
        while not stop.wait(interval_s):
            for feed in feeds:
                feed.step()

    thread = threading.Thread(target=loop, name="synthetic-feed", daemon=True)
    thread.start()
    return thread


def main() -> None:  # pragma: no cover - manual tool
    """Serve a fake engine API fed with synthetic rows until interrupted."""
    from microstream.api import EngineApi

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--symbols", default="BTCUSDT")
    parser.add_argument("--backfill", type=int, default=600)
    args = parser.parse_args()
    store, feeds = filled_store(tuple(args.symbols.split(",")), args.backfill)
    stop = threading.Event()
    run_feeds(feeds, stop)
    with EngineApi(store, port=args.port) as api:
        print(f"synthetic engine API on {api.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            stop.set()


if __name__ == "__main__":  # pragma: no cover
    main()
