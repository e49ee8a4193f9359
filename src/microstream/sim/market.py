"""An event-driven limit order book simulator in integer ticks and lots.

Orders arrive one at a time on a simulated exchange clock (ms), independent of
wall time:

- **limit orders** join the best queue or rest a power-law distance behind it;
  while the spread is wider than one tick, a fast "gap filling" flow places
  orders inside it (so the spread is one tick almost always, and a depleted
  queue makes the price jump by the gap);
- **cancels**: every resting lot can be cancelled at a constant rate (so cancels
  hit levels in proportion to their size), plus extra cancels at the touch,
  stronger on the thin side (quotes flee the side that is about to be eaten);
- **market orders** arrive with a self-exciting (Hawkes) intensity; their signs
  come from *metaorders* (power-law number of child orders, so trade signs are
  persistent) or from noise traders who lean toward the thin side of the book
  (so the L1 imbalance carries information about the next move).

The hidden regime (:mod:`microstream.sim.regimes`) sets the buy share, the
placement skew, the trend of repricings, the activity and the aggression of
the flow; a regime switch ends every live metaorder, so a regime's flow does
not leak into the next one. Everything is
drawn from one seeded :class:`numpy.random.Generator`, so a seed fixes the
whole event sequence. Book changes (one update id each), trades and
top-of-book changes are appended to plain lists that
:mod:`microstream.sim.binance_frames` turns into exchange frames.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from microstream.sim.regimes import RegimeChain, RegimeParams

_WINDOW_BITS = 20
_WINDOW = 1 << _WINDOW_BITS  # ticks per side covered by the book arrays
_BUF = 1 << 14  # random numbers drawn per batch


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """A simulated instrument: its price grid, lot size and starting price."""

    symbol: str
    price_decimals: int  # tick = 10**-price_decimals
    lot_decimals: int  # lot = 10**-lot_decimals
    initial_price: float

    @property
    def tick_size(self) -> float:
        """The price increment."""
        return 10.0**-self.price_decimals

    @property
    def lot_size(self) -> float:
        """The quantity increment."""
        return 10.0**-self.lot_decimals


SYMBOL_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec("BTCUSDT", 2, 5, 60000.0),
    "ETHUSDT": SymbolSpec("ETHUSDT", 2, 4, 3000.0),
    "BNBUSDT": SymbolSpec("BNBUSDT", 2, 3, 550.0),
    "SOLUSDT": SymbolSpec("SOLUSDT", 2, 3, 150.0),
}
"""Known symbols; others get :func:`spec_for`'s generic spec."""


def spec_for(symbol: str) -> SymbolSpec:
    """The spec of ``symbol`` (a generic 100-USDT instrument if unknown)."""
    return SYMBOL_SPECS.get(symbol.upper(), SymbolSpec(symbol.upper(), 2, 3, 100.0))


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Intensities (per second), sizes (BTC-like base units) and shape parameters.

    Sizes are given in base units and converted to lots with the symbol's lot
    size scaled by ``60000 / initial_price`` (so every symbol trades similar
    notional amounts).
    """

    limit_rate: float = 130.0  # limit orders per second per side (outside gap filling)
    join_prob: float = 0.6  # share of limit orders that join the best queue
    inside_prob: float = 0.05  # share placed one tick inside a spread wider than one tick
    distance_min_bps: float = 0.3  # Pareto scale of the placement distance
    distance_alpha: float = 0.7  # Pareto tail exponent of the placement distance
    distance_max_bps: float = 40.0  # farthest placement
    gap_fill_rate: float = 400.0  # orders per second placed inside a spread wider than 1 tick
    gap_step_ticks: float = 10.0  # mean improvement of a gap-filling order over its touch
    cancel_rate: float = 0.03  # per resting order per second, everywhere
    fleeting_rate: float = 90.0  # short-lived orders per second per side, near the touch
    fleeting_life_ms: float = 400.0  # mean life of a fleeting order
    fleeting_distance: float = 8.0  # mean distance (ticks) of a fleeting order behind the touch
    deep_size_mult: float = 2.0  # size multiplier of orders resting behind the touch
    top_cancel_rate: float = 8.0  # extra cancels per second at each touch
    top_cancel_imbalance: float = 0.9  # how much more the thin touch is cancelled
    jump_rate: float = 0.3  # repricings (quotes move to a new level) per second
    jump_scale_bps: float = 0.5  # Pareto scale of a repricing's size
    jump_alpha: float = 3.0  # Pareto tail exponent of a repricing's size
    jump_max_bps: float = 15.0  # cap of a repricing's size
    jump_imbalance: float = 0.4  # up-probability slope in the L1 imbalance
    jump_skew: float = 0.2  # up-probability slope in the regime skew
    jump_hawkes: float = 0.12  # extra repricings per unit of market-order excitation
    jump_flow: float = 0.1  # up-probability slope in the pending metaorder flow
    anchor_pull: float = 0.03  # down-probability per 100 bps above the start price (and up below)
    quote_size_median: float = 1.2  # size of the fresh quotes after a repricing
    quote_size_sigma: float = 0.8
    quote_flow_tilt: float = 0.7  # fresh quotes lean toward the pending flow's side
    requote_max: int = 20  # pulled levels that are posted again behind the new touch
    sweep_prob: float = 0.5  # chance that a repricing trades against the stale touch
    market_rate: float = 3.5  # baseline market orders per second
    hawkes_jump: float = 1.2  # intensity added by each market order (per second)
    hawkes_decay: float = 2.0  # decay rate of the excitation (per second)
    metaorder_rate: float = 0.35  # metaorders started per second
    metaorder_alpha: float = 1.1  # Pareto exponent of the number of child orders
    metaorder_min: float = 2.0
    metaorder_max: int = 400
    metaorders_end_with_regime: bool = True  # a regime switch ends every live metaorder
    child_share: float = 0.9  # share of market orders that come from active metaorders
    imbalance_sign: float = 0.3  # noise buy probability slope in the L1 imbalance
    regime_sign: float = 1.0  # how much of the regime buy share noise traders follow
    limit_size_median: float = 0.004
    limit_size_sigma: float = 1.6
    market_size_median: float = 0.0025
    market_size_sigma: float = 2.5
    max_slippage_ticks: int = 300  # an aggressor never walks farther than this
    pieces_mean: float = 2.2  # extra maker fills per level touched (trade frames per fill)
    skew_join: float = 0.3  # how much the regime skew moves join_prob
    skew_gap: float = 0.2  # how much the regime skew biases which side fills the gap
    skew_cancel: float = 0.3  # how much the regime skew biases touch cancels


class BookChange(NamedTuple):
    """One price level's new total (one update id)."""

    update_id: int
    is_bid: bool
    tick: int
    lots: int


class SimTrade(NamedTuple):
    """One fill between an aggressor and a resting order."""

    ts_ms: int
    trade_id: int
    tick: int
    lots: int
    buyer_is_maker: bool
    agg_id: int
    update_id: int  # the book change this fill causes


class TopChange(NamedTuple):
    """The best bid/ask after an event that changed them."""

    ts_ms: int
    update_id: int
    bid_tick: int
    bid_lots: int
    ask_tick: int
    ask_lots: int


class _Fenwick:
    """Sums of lots over absolute tick indices, with rank search."""

    __slots__ = ("total", "tree")

    def __init__(self) -> None:
        self.tree = [0] * (_WINDOW + 1)
        self.total = 0

    def add(self, index: int, delta: int) -> None:
        tree = self.tree
        i = index + 1
        while i <= _WINDOW:
            tree[i] += delta
            i += i & -i
        self.total += delta

    def prefix(self, index: int) -> int:
        """Sum over indices ``[0, index)``."""
        tree = self.tree
        s = 0
        i = index
        while i > 0:
            s += tree[i]
            i -= i & -i
        return s

    def find(self, rank: int) -> int:
        """The index holding the lot of rank ``rank`` (0-based, < total)."""
        tree = self.tree
        pos = 0
        bit = _WINDOW
        while bit:
            nxt = pos + bit
            if nxt <= _WINDOW and tree[nxt] <= rank:
                pos = nxt
                rank -= tree[nxt]
            bit >>= 1
        return pos


class Market:
    """One symbol's simulated order book and order flow.

    Call :meth:`run_until` with increasing exchange times (ms); read and clear
    :attr:`changes`, :attr:`trades` and :attr:`tops` after each call.
    """

    def __init__(
        self,
        spec: SymbolSpec,
        rng: np.random.Generator,
        start_ms: int,
        params: MarketParams | None = None,
        regimes: RegimeChain | None = None,
        first_update_id: int = 40_000_000_000,
        first_trade_id: int = 3_000_000_000,
        warmup_s: float = 20.0,
    ) -> None:
        self.spec = spec
        self.params = params or MarketParams()
        self._rng = rng
        self.regimes = regimes or RegimeChain(rng, start_ms - int(warmup_s * 1000.0))
        self.changes: list[BookChange] = []
        self.trades: list[SimTrade] = []
        self.tops: list[TopChange] = []
        self.update_id = first_update_id
        self.trade_id = first_trade_id
        self.agg_id = first_trade_id // 2
        self._ubuf: list[float] = []
        self._upos = _BUF
        self._nbuf: list[float] = []
        self._npos = _BUF
        self._size_scale = 60000.0 / spec.initial_price * 10.0**spec.lot_decimals
        mid_tick = round(spec.initial_price * 10**spec.price_decimals)
        ticks_per_bps = spec.initial_price * 1e-4 * 10**spec.price_decimals
        self._dist_min = self.params.distance_min_bps * ticks_per_bps
        self._dist_max = max(2, int(self.params.distance_max_bps * ticks_per_bps))
        self._jump_min = max(1.0, self.params.jump_scale_bps * ticks_per_bps)
        self._ticks_per_100bps = 100.0 * ticks_per_bps
        self._jump_max = max(1.0, self.params.jump_max_bps * ticks_per_bps)
        self.base = mid_tick - _WINDOW // 2
        self._q = [[0] * _WINDOW, [0] * _WINDOW]  # [asks, bids] lots per index
        self._fw = [_Fenwick(), _Fenwick()]
        self._best = [_WINDOW // 2 + 1, _WINDOW // 2 - 1]  # [ask, bid] index
        self._hawkes = 0.0
        self._anchor_bid = True
        self._meta_net = 0
        self._meta_total = 0
        self._meta: list[list[int]] = []
        self._expiry: list[tuple[float, int, int, int]] = []  # (t_ms, side, index, lots)
        self.t_ms = float(start_ms) - warmup_s * 1000.0
        self._regime = self.regimes.regime_at(int(self.t_ms))
        self._seed_book()
        self._warmup(warmup_s)

    # ----------------------------------------------------------------- public

    @property
    def regime(self) -> str:
        """The hidden regime in force at the current simulation time."""
        return self._regime

    def best(self) -> tuple[int, int, int, int]:
        """``(bid_tick, bid_lots, ask_tick, ask_lots)`` now."""
        ia, ib = self._best
        return ib + self.base, self._q[1][ib], ia + self.base, self._q[0][ia]

    def levels(self, is_bid: bool, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` non-empty levels ``(tick, lots)`` from the touch outward."""
        side = 1 if is_bid else 0
        q = self._q[side]
        out: list[tuple[int, int]] = []
        if self._fw[side].total <= 0:
            return out
        i = self._best[side]
        while len(out) < limit:
            if q[i]:
                out.append((i + self.base, q[i]))
            nxt = self._next_level(side, i)
            if nxt == i:
                break
            i = nxt
        return out

    def book(self) -> tuple[dict[int, int], dict[int, int]]:
        """The whole book as ``({bid_tick: lots}, {ask_tick: lots})``."""
        base = self.base
        asks, bids = ({i + base: n for i, n in enumerate(q) if n} for q in self._q)
        return bids, asks

    def drain(self) -> tuple[list[BookChange], list[SimTrade], list[TopChange]]:
        """Take the changes, trades and top changes recorded since the last drain."""
        out = (self.changes, self.trades, self.tops)
        self.changes, self.trades, self.tops = [], [], []
        return out

    def run_until(self, t_end_ms: float) -> None:
        """Simulate every event with exchange time ``< t_end_ms``."""
        if t_end_ms <= self.t_ms:
            return
        while True:
            regime = self.regimes.regime_at(int(self.t_ms))
            if regime != self._regime and self.params.metaorders_end_with_regime:
                self._end_metaorders()
            self._regime = regime
            horizon = min(t_end_ms, float(self.regimes.next_switch_ms))
            self._run_segment(horizon)
            if horizon >= t_end_ms:
                return

    # -------------------------------------------------------------- the loop

    def _run_segment(self, t_end: float) -> None:
        p = self.params
        rp: RegimeParams = self.regimes.params[self._regime]
        act = rp.activity
        skew = rp.skew
        trend = rp.trend
        lam_limit = p.limit_rate * act
        join_bid = min(0.95, max(0.02, p.join_prob * (1.0 + p.skew_join * skew)))
        join_ask = min(0.95, max(0.02, p.join_prob * (1.0 - p.skew_join * skew)))
        gap_bid = 0.5 + p.skew_gap * skew
        mu_m = p.market_rate * act
        mean_order = p.limit_size_median * self._size_scale * p.deep_size_mult * 2.0
        cancel_per_lot = p.cancel_rate * act / mean_order
        top_cancel = p.top_cancel_rate * act
        u = self._u
        q_ask, q_bid = self._q
        while True:
            ia, ib = self._best
            spread = ia - ib
            qa, qb = q_ask[ia], q_bid[ib]
            imb = (qb - qa) / (qb + qa) if qb + qa else 0.0
            r_gap = p.gap_fill_rate * act if spread > 1 else 0.0
            r_cancel_a = cancel_per_lot * self._fw[0].total
            r_cancel_b = cancel_per_lot * self._fw[1].total
            r_top_a = top_cancel * (1.0 + p.top_cancel_imbalance * imb - p.skew_cancel * skew)
            r_top_b = top_cancel * (1.0 - p.top_cancel_imbalance * imb + p.skew_cancel * skew)
            r_top_a = max(r_top_a, 0.0)
            r_top_b = max(r_top_b, 0.0)
            r_meta = p.metaorder_rate * act
            h0 = self._hawkes
            r_mkt = mu_m + h0
            r_jump = p.jump_rate * act + p.jump_hawkes * h0
            r_fleet = p.fleeting_rate * act
            total = 2.0 * lam_limit + r_gap + r_cancel_a + r_cancel_b + r_top_a + r_top_b
            total += r_meta + r_mkt + r_jump + 2.0 * r_fleet
            dt_ms = -math.log(1.0 - u()) / total * 1000.0
            t_next = self.t_ms + dt_ms
            expiry = self._expiry
            if expiry and expiry[0][0] < min(t_next, t_end):
                # A scheduled cancel comes first (the draw above is memoryless).
                t_exp, side, index, lots = heapq.heappop(expiry)
                self._decay(t_exp - self.t_ms)
                self.t_ms = t_exp
                self._remove(side, index, lots)
                self._record_top(ia, ib, qa, qb)
                continue
            if t_next >= t_end:
                self._decay(t_end - self.t_ms)
                self.t_ms = t_end
                return
            self._decay(dt_ms)
            self.t_ms = t_next
            x = u() * total
            if x < 2.0 * r_fleet:
                self._fleeting(x < r_fleet)
                self._record_top(ia, ib, qa, qb)
                continue
            x -= 2.0 * r_fleet
            if x < r_mkt:
                if u() * r_mkt < mu_m + self._hawkes:  # thinning of the decayed Hawkes part
                    self._market_order(imb, rp)
                continue
            x -= r_mkt
            if x < r_jump:
                flow = self._flow()
                pull = p.anchor_pull * (ia + ib - _WINDOW) * 0.5 / self._ticks_per_100bps
                lean = p.jump_imbalance * imb + p.jump_skew * skew + p.jump_flow * flow - pull
                lean += trend
                up = u() < 0.5 + lean
                self._reprice(up, rp, flow)
                self._record_top(ia, ib, qa, qb)
                continue
            x -= r_jump + 2.0 * lam_limit
            if x < 0.0:
                is_bid = x < -lam_limit
                self._limit_order(is_bid, join_bid if is_bid else join_ask, spread)
            elif x < r_gap:
                self._gap_fill(u() < gap_bid)
            elif x < r_gap + r_cancel_a + r_cancel_b:
                self._cancel_anywhere(x >= r_gap + r_cancel_a)
            elif x < r_gap + r_cancel_a + r_cancel_b + r_top_a + r_top_b:
                self._cancel_top(x >= r_gap + r_cancel_a + r_cancel_b + r_top_a)
            else:
                self._start_metaorder(rp)
            self._record_top(ia, ib, qa, qb)

    def _decay(self, dt_ms: float) -> None:
        if self._hawkes:
            self._hawkes *= math.exp(-self.params.hawkes_decay * dt_ms / 1000.0)

    # ------------------------------------------------------------ the events

    def _limit_order(self, is_bid: bool, join: float, spread: int) -> None:
        side = 1 if is_bid else 0
        best = self._best[side]
        r = self._u()
        if r < join:
            dist = 0
        elif spread > 1 and r < join + self.params.inside_prob:
            dist = -1
        else:
            p = self.params
            d = self._dist_min * (1.0 - self._u()) ** (-1.0 / p.distance_alpha)
            dist = int(min(d, self._dist_max))
        index = best + dist if is_bid is False else best - dist
        lots = self._limit_size()
        self._add(side, index, lots if dist <= 0 else int(lots * self.params.deep_size_mult))

    def _flow(self) -> float:
        """Net sign of the pending metaorder volume, in ``[-1, 1]`` (0 when none)."""
        return self._meta_net / self._meta_total if self._meta_total else 0.0

    def _reprice(self, up: bool, rp: RegimeParams, flow: float) -> None:
        """Liquidity moves: stale quotes are swept or pulled, fresh quotes are posted.

        The price jumps by a Pareto-distributed number of ticks (scaled by the
        regime's aggression); levels on the stale side up to the new touch
        disappear (the first one partly by a sweeping market order).
        """
        p = self.params
        d = self._jump_min * rp.aggression * (1.0 - self._u()) ** (-1.0 / p.jump_alpha)
        d = int(min(d, self._jump_max))
        ia, ib = self._best
        if up:
            new_ask, new_bid, stale = ia + d, ia + d - 1, 0
        else:
            new_bid, new_ask, stale = ib - d, ib - d + 1, 1
        if new_bid < 0 or new_ask >= _WINDOW:
            return
        if self._u() < p.sweep_prob:
            lots = self._lognormal_lots(p.market_size_median * rp.aggression, p.market_size_sigma)
            self._execute(up, min(lots, self._q[stale][self._best[stale]]))
        q = self._q[stale]
        fw = self._fw[stale]
        moved: list[int] = []
        while fw.total > 0:
            index = self._best[stale]
            if (up and index >= new_ask) or (not up and index <= new_bid):
                break
            moved.append(q[index])
            self._remove(stale, index, q[index])
        # Makers who see the pending flow quote more on its side (bids under buying).
        tilt = p.quote_flow_tilt * flow
        bid_quote = p.quote_size_median * (1.0 + tilt)
        ask_quote = p.quote_size_median * (1.0 - tilt)
        self._add(1, new_bid, self._lognormal_lots(bid_quote, p.quote_size_sigma))
        self._add(0, new_ask, self._lognormal_lots(ask_quote, p.quote_size_sigma))
        self._requote(stale, moved)

    def _requote(self, side: int, volumes: list[int]) -> None:
        """Pulled quotes come back behind the new touch (market makers reprice)."""
        p = self.params
        sign = 1 if side == 0 else -1
        for lots in volumes[: p.requote_max]:
            d = self._dist_min * (1.0 - self._u()) ** (-1.0 / p.distance_alpha)
            self._add(side, self._best[side] + sign * int(min(d, self._dist_max)), lots)

    def _fleeting(self, is_bid: bool) -> None:
        """A short-lived order a few ticks behind the touch, cancelled at its expiry."""
        p = self.params
        side = 1 if is_bid else 0
        dist = int(-math.log(1.0 - self._u()) * p.fleeting_distance)
        index = self._best[side] - dist if is_bid else self._best[side] + dist
        lots = self._limit_size()
        if not 0 <= index < _WINDOW:
            return
        self._add(side, index, lots)
        life = -math.log(1.0 - self._u()) * p.fleeting_life_ms
        heapq.heappush(self._expiry, (self.t_ms + life, side, index, lots))

    def _gap_fill(self, is_bid: bool) -> None:
        """An order inside a wide spread, near the touch that did not move.

        When market orders empty a queue, liquidity comes back close to the old
        price (the side that still stands), so depletion moves the price a
        little; large moves come from repricings.
        """
        ia, ib = self._best
        step = 1 + int(-math.log(1.0 - self._u()) * self.params.gap_step_ticks)
        if self._anchor_bid:
            index = min(ib + step, ia - 1) if is_bid else min(ib + step, ia - 1) + 1
            index = min(index, ia - 1)
        else:
            index = max(ia - step, ib + 1) if not is_bid else max(ia - step, ib + 1) - 1
            index = max(index, ib + 1)
        self._add(1 if is_bid else 0, index, self._limit_size())

    def _cancel_anywhere(self, is_bid: bool) -> None:
        side = 1 if is_bid else 0
        fw = self._fw[side]
        if fw.total <= 0:
            return
        index = fw.find(int(self._u() * fw.total))
        self._remove(side, index, self._limit_size())

    def _cancel_top(self, is_bid: bool) -> None:
        side = 1 if is_bid else 0
        index = self._best[side]
        if self._q[side][index] <= 0:
            return
        self._remove(side, index, self._limit_size())

    def _end_metaorders(self) -> None:
        """A regime switch ends every live metaorder (its parent decision is stale)."""
        self._meta.clear()
        self._meta_net = 0
        self._meta_total = 0

    def _start_metaorder(self, rp: RegimeParams) -> None:
        p = self.params
        sign = 1 if self._u() < rp.buy_share else -1
        n = p.metaorder_min * (1.0 - self._u()) ** (-1.0 / p.metaorder_alpha)
        size = int(min(n, p.metaorder_max))
        self._meta.append([sign, size])
        self._meta_net += sign * size
        self._meta_total += size

    def _market_order(self, imb: float, rp: RegimeParams) -> None:
        p = self.params
        meta = self._meta
        if meta and self._u() < p.child_share:
            k = int(self._u() * len(meta))
            order = meta[k]
            is_buy = order[0] > 0
            order[1] -= 1
            self._meta_net -= order[0]
            self._meta_total -= 1
            if order[1] <= 0:
                meta.pop(k)
        else:
            bias = p.regime_sign * (rp.buy_share - 0.5) + p.imbalance_sign * imb
            is_buy = self._u() < 0.5 + bias
        self._hawkes += p.hawkes_jump
        lots = self._lognormal_lots(p.market_size_median * rp.aggression, p.market_size_sigma)
        ia, ib = self._best
        qa, qb = self._q[0][ia], self._q[1][ib]
        self._execute(is_buy, lots)
        self._record_top(ia, ib, qa, qb)

    def _execute(self, is_buy: bool, lots: int) -> None:
        """Fill a market order level by level, within a slippage bound."""
        side = 0 if is_buy else 1  # the resting side that is hit
        q = self._q[side]
        ts = int(self.t_ms)
        levels = 0
        first = self._best[side]
        limit = self.params.max_slippage_ticks
        while lots > 0 and self._fw[side].total > 0 and levels < 20:
            index = self._best[side]
            if abs(index - first) > limit:
                break
            fill = min(lots, q[index])
            self._fills(index + self.base, fill, ts, buyer_is_maker=not is_buy)
            self._remove(side, index, fill)
            lots -= fill
            levels += 1

    def _fills(self, tick: int, fill: int, ts: int, buyer_is_maker: bool) -> None:
        """Split one level's fill among several resting orders (one trade each)."""
        pieces = 1 + int(-math.log(1.0 - self._u()) * self.params.pieces_mean)
        pieces = max(1, min(pieces, fill, 12))
        self.agg_id += 1
        left = fill
        for k in range(pieces):
            part = left if k == pieces - 1 else max(1, int(left * self._u() * 0.8))
            part = min(part, left - (pieces - 1 - k))
            self.trade_id += 1
            self.trades.append(
                SimTrade(
                    ts, self.trade_id, tick, part, buyer_is_maker, self.agg_id, self.update_id + 1
                )
            )
            left -= part

    # ------------------------------------------------------ book bookkeeping

    def _add(self, side: int, index: int, lots: int) -> None:
        if not 0 <= index < _WINDOW or lots <= 0:
            return
        q = self._q[side]
        q[index] += lots
        self._fw[side].add(index, lots)
        self.update_id += 1
        self.changes.append(BookChange(self.update_id, side == 1, index + self.base, q[index]))
        best = self._best
        if side == 1:
            if index > best[1] or q[best[1]] == 0:
                best[1] = index
        elif index < best[0] or q[best[0]] == 0:
            best[0] = index

    def _remove(self, side: int, index: int, lots: int) -> None:
        q = self._q[side]
        lots = min(lots, q[index])
        if lots <= 0:
            return
        q[index] -= lots
        self._fw[side].add(index, -lots)
        self.update_id += 1
        self.changes.append(BookChange(self.update_id, side == 1, index + self.base, q[index]))
        if q[index] == 0 and index == self._best[side]:
            self._best[side] = self._next_level(side, index)
            self._anchor_bid = side == 0

    def _next_level(self, side: int, index: int) -> int:
        """The next non-empty index beyond ``index`` away from the touch."""
        fw = self._fw[side]
        if side == 1:
            below = fw.prefix(index)
            return fw.find(below - 1) if below > 0 else index
        upto = fw.prefix(index + 1)
        return fw.find(upto) if upto < fw.total else index

    def _record_top(self, ia: int, ib: int, qa: int, qb: int) -> None:
        na, nb = self._best
        q_ask, q_bid = self._q
        if na != ia or nb != ib or q_ask[na] != qa or q_bid[nb] != qb:
            self.tops.append(
                TopChange(
                    int(self.t_ms),
                    self.update_id,
                    nb + self.base,
                    q_bid[nb],
                    na + self.base,
                    q_ask[na],
                )
            )

    # ---------------------------------------------------------------- setup

    def _seed_book(self) -> None:
        """A plausible initial book: power-law placement on both sides."""
        p = self.params
        for side in (0, 1):
            self._add(side, self._best[side], self._limit_size() * 50)
            for _ in range(1500):
                d = self._dist_min * (1.0 - self._u()) ** (-1.0 / p.distance_alpha)
                dist = int(min(d, self._dist_max))
                index = self._best[side] + (dist if side == 0 else -dist)
                self._add(side, index, self._limit_size())

    def _warmup(self, seconds: float) -> None:
        """Run the flow for ``seconds`` before ``start_ms`` and forget its output."""
        if seconds > 0:
            self.run_until(self.t_ms + seconds * 1000.0)
        self.drain()

    # --------------------------------------------------------------- random

    def _u(self) -> float:
        """A uniform in [0, 1) from a batch drawn from the seeded generator."""
        if self._upos >= _BUF:
            self._ubuf = self._rng.random(_BUF).tolist()
            self._upos = 0
        v = self._ubuf[self._upos]
        self._upos += 1
        return v

    def _n(self) -> float:
        if self._npos >= _BUF:
            self._nbuf = self._rng.standard_normal(_BUF).tolist()
            self._npos = 0
        v = self._nbuf[self._npos]
        self._npos += 1
        return v

    def _limit_size(self) -> int:
        p = self.params
        return self._lognormal_lots(p.limit_size_median, p.limit_size_sigma)

    def _lognormal_lots(self, median: float, sigma: float) -> int:
        """A log-normal order size in lots (at least one lot)."""
        lots = median * self._size_scale * math.exp(sigma * self._n())
        return max(1, int(lots))
