"""Pure formulas on one :class:`~microstream.events.BookTop` (or a pair of them).

These are the per-book formulas of the streaming engine. The batch twin
(:mod:`microstream.features.batch`) writes the very same arithmetic as Polars
expressions, in the same order of operations, so both give bit-identical
floats. Null rules (see ``docs/features.md``): a feature whose inputs are
missing or invalid is ``None``, never NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from microstream.events import BookTop
from microstream.features.schema import DEPTH_HI, DEPTH_LO

_ofi_levels: Callable[..., tuple[float, float] | None] | None
try:
    from microstream.book import _cside
except ImportError:  # not built: the Python path below (the book module warns once)
    _ofi_levels = None
else:
    _ofi_levels = _cside.ofi_levels

BOOK_COLUMNS: tuple[str, ...] = (
    "mid",
    "spread",
    "spread_bps",
    "microprice",
    "imbalance_l1",
    "imbalance_l5",
    "depth_bid_10bps",
    "depth_ask_10bps",
)
"""Features computed from the book top alone (null when the book is invalid)."""

_NULL_BOOK: dict[str, Any] = dict.fromkeys(BOOK_COLUMNS)


def mid_of(top: BookTop | None) -> float | None:
    """Mid price of a valid book with both best prices, else ``None``."""
    if top is None or not top.book_valid:
        return None
    b = top.bid_px[0]
    a = top.ask_px[0]
    if b is None or a is None:
        return None
    return (b + a) / 2.0


def _side_sum(qty: tuple[float | None, ...]) -> float:
    total = 0.0
    for q in qty:
        if q is not None:
            total += q
    return total


def _depth(
    px: tuple[float | None, ...], qty: tuple[float | None, ...], bound: float, bid: bool
) -> float:
    total = 0.0
    for p, q in zip(px, qty, strict=False):
        if p is None or q is None:
            continue
        if (p >= bound) if bid else (p <= bound):
            total += q
    return total


def book_features(top: BookTop | None) -> dict[str, Any]:
    """Every book feature of ``top`` (all ``None`` when the book is invalid)."""
    if top is None or not top.book_valid:
        return dict(_NULL_BOOK)
    out = dict(_NULL_BOOK)
    b = top.bid_px[0]
    a = top.ask_px[0]
    if b is None or a is None:
        return out
    mid = (b + a) / 2.0
    spread = a - b
    out["mid"] = mid
    out["spread"] = spread
    if mid > 0.0:
        out["spread_bps"] = spread / mid * 10_000.0
        out["depth_bid_10bps"] = _depth(top.bid_px, top.bid_qty, mid * DEPTH_LO, True)
        out["depth_ask_10bps"] = _depth(top.ask_px, top.ask_qty, mid * DEPTH_HI, False)
    qb = top.bid_qty[0]
    qa = top.ask_qty[0]
    if qb is not None and qa is not None and qb + qa > 0.0:
        out["microprice"] = (b * qa + a * qb) / (qb + qa)
        out["imbalance_l1"] = (qb - qa) / (qb + qa)
    sb = _side_sum(top.bid_qty)
    sa = _side_sum(top.ask_qty)
    if sb + sa > 0.0:
        out["imbalance_l5"] = (sb - sa) / (sb + sa)
    return out


def ofi_primed(prev: BookTop | None, cur: BookTop) -> bool:
    """True when ``prev`` primes ``cur`` for OFI: both valid, same sync epoch."""
    return (
        prev is not None
        and prev.book_valid
        and cur.book_valid
        and prev.sync_epoch == cur.sync_epoch
    )


def ofi_level1(prev: BookTop, cur: BookTop) -> float:
    """Cont–Kukanov–Stoikov OFI of one depth event at level 1.

    ``e = 1{b >= b'}·qb − 1{b <= b'}·qb' − 1{a <= a'}·qa + 1{a >= a'}·qa'``
    (primed = ``prev``); 0.0 when a level-1 price or quantity is missing in
    either book.
    """
    b = cur.bid_px[0]
    qb = cur.bid_qty[0]
    a = cur.ask_px[0]
    qa = cur.ask_qty[0]
    b0 = prev.bid_px[0]
    qb0 = prev.bid_qty[0]
    a0 = prev.ask_px[0]
    qa0 = prev.ask_qty[0]
    if (
        b is None
        or qb is None
        or a is None
        or qa is None
        or b0 is None
        or qb0 is None
        or a0 is None
        or qa0 is None
    ):
        return 0.0
    return (
        (qb if b >= b0 else 0.0)
        - (qb0 if b <= b0 else 0.0)
        - (qa if a <= a0 else 0.0)
        + (qa0 if a >= a0 else 0.0)
    )


def ofi_multilevel(prev: BookTop, cur: BookTop) -> float:
    """OFI summed over levels 1–5 (level ``i`` compared with level ``i``).

    Per level ``e_i = ((B1 − B2) − A1) + A2`` with the level-1 formula's four
    terms; a side's terms are 0.0 when that side's level is missing (price or
    quantity) in either book. ``e = e_1 + … + e_5`` left to right.
    """
    return ofi_pair(prev, cur)[1]


def ofi_pair(prev: BookTop, cur: BookTop) -> tuple[float, float]:
    """``(level-1 OFI, levels 1–5 OFI)`` of one depth event in one pass.

    Bit-identical to :func:`ofi_level1` and the per-level formula of
    :func:`ofi_multilevel`: the branches below only drop additions of 0.0.
    Both books must have five levels a side. When every level is present the
    compiled twin (``_cside.ofi_levels``, the same operations in the same
    order) computes it; otherwise the Python path below, whose fast loop
    assumes every level is present; a missing one raises ``TypeError`` (a
    ``None`` price cannot be compared, quantities are checked) and the
    level-by-level path takes over.
    """
    if _ofi_levels is not None:
        got = _ofi_levels(*_paired_levels(prev, cur))
        if got is not None:
            return got
    return py_ofi_pair(prev, cur)


def _paired_levels(prev: BookTop, cur: BookTop) -> tuple[tuple[float | None, ...], ...]:
    """Each level tuple of ``cur`` beside ``prev``'s, bids then asks, the order OFI reads them."""
    return (
        cur.bid_px,
        cur.bid_qty,
        prev.bid_px,
        prev.bid_qty,
        cur.ask_px,
        cur.ask_qty,
        prev.ask_px,
        prev.ask_qty,
    )


def py_ofi_pair(prev: BookTop, cur: BookTop) -> tuple[float, float]:
    """:func:`ofi_pair` in Python (the reference of the compiled twin, and its fallback)."""
    try:
        total = 0.0
        first: float | None = None
        for b, qb, b0, qb0, a, qa, a0, qa0 in zip(*_paired_levels(prev, cur), strict=True):
            if qb is None or qb0 is None or qa is None or qa0 is None:
                raise TypeError("missing quantity")
            if b > b0:  # type: ignore[operator]
                bterm = qb
            elif b == b0:
                bterm = qb - qb0
            else:
                bterm = -qb0
            if a < a0:  # type: ignore[operator]
                e = bterm - qa
            elif a == a0:
                e = bterm - qa + qa0
            else:
                e = bterm + qa0
            if first is None:
                first = e
            total += e
        return (0.0 if first is None else first), total
    except TypeError:
        return _ofi_pair_sparse(prev, cur)


def _ofi_pair_sparse(prev: BookTop, cur: BookTop) -> tuple[float, float]:
    """:func:`ofi_pair` for books with missing levels (checked level by level)."""
    total = 0.0
    first = 0.0
    for i in range(5):
        b, qb, b0, qb0 = cur.bid_px[i], cur.bid_qty[i], prev.bid_px[i], prev.bid_qty[i]
        a, qa, a0, qa0 = cur.ask_px[i], cur.ask_qty[i], prev.ask_px[i], prev.ask_qty[i]
        bid_ok = not (b is None or qb is None or b0 is None or qb0 is None)
        ask_ok = not (a is None or qa is None or a0 is None or qa0 is None)
        bterm = 0.0
        if bid_ok:
            assert b is not None and qb is not None and b0 is not None and qb0 is not None
            bterm = qb if b > b0 else (qb - qb0 if b == b0 else -qb0)
        e = bterm
        if ask_ok:
            assert a is not None and qa is not None and a0 is not None and qa0 is not None
            e = bterm - qa if a < a0 else (bterm - qa + qa0 if a == a0 else bterm + qa0)
        total += e
        if i == 0 and bid_ok and ask_ok:
            first = e
    return first, total


def book_snapshot(top: BookTop | None) -> dict[str, Any]:
    """The book top as plain lists, for the live state."""
    if top is None:
        return {"valid": False, "bids": [], "asks": []}
    bids = [[p, q] for p, q in zip(top.bid_px, top.bid_qty, strict=False) if p is not None]
    asks = [[p, q] for p, q in zip(top.ask_px, top.ask_qty, strict=False) if p is not None]
    return {
        "valid": top.book_valid,
        "ts_event": top.ts_event,
        "update_id": top.update_id,
        "sync_epoch": top.sync_epoch,
        "bids": bids if top.book_valid else [],
        "asks": asks if top.book_valid else [],
    }
