"""Beginner explanations of the features, and sentences tied to live numbers.

The explanations come from ``docs/features.md``, one ``## <feature_name>``
section per feature. The file is looked up, in order: ``$MICROSTREAM_DOCS_DIR``,
the repository's ``docs/`` (source checkouts and editable installs), the copy
packaged under ``microstream/docs/``. When none is found, one-line built-in
texts are used, so the Learn page is never empty.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import microstream

FEATURES_DOC = "features.md"

BUILTIN: dict[str, str] = {
    "mid": "The middle of the best bid and the best ask: the market's reference price.",
    "spread": "Best ask minus best bid: what an immediate round trip costs.",
    "spread_bps": "The spread as a fraction of mid, in basis points (1 bp = 0.01 %).",
    "microprice": "Mid weighted by the size at the best levels: it leans toward the "
    "side more likely to be taken next.",
    "imbalance_l1": "(bid size − ask size) / (bid size + ask size) at the best level, "
    "from −1 (all asks) to +1 (all bids).",
    "imbalance_l5": "The same imbalance over the five best levels a side.",
    "vwap_1m": "Volume-weighted average price of the trades of the last minute.",
    "vwap_5m": "Volume-weighted average price of the trades of the last five minutes.",
    "buy_volume_1m": "Volume bought by aggressive buyers (who hit the ask) in the last minute.",
    "sell_volume_1m": "Volume sold by aggressive sellers (who hit the bid) in the last minute.",
    "flow_imbalance_1m": "(buy − sell) / (buy + sell) aggressor volume over the last minute.",
    "trade_count_1m": "Number of trades in the last minute.",
    "volatility_1m": "Square root of the sum of squared 1-second mid log returns over a minute.",
    "volatility_5m": "The same over five minutes.",
    "ofi_10s": "Order-flow imbalance: net pressure from changes at the best bid and ask "
    "over the last 10 seconds (Cont, Kukanov and Stoikov).",
}
"""Fallback texts when ``docs/features.md`` cannot be found."""

NOT_FEATURES = frozenset({"ts"})
"""Sections of ``features.md`` that describe no live value (left out of the page)."""

_HEADING = re.compile(r"^##\s+`?([a-z][a-z0-9_]*)`?(?:\s*$|[\s:(—–-])")


def candidate_paths() -> list[Path]:
    """Where ``features.md`` is looked for, in order."""
    paths = []
    env = os.environ.get("MICROSTREAM_DOCS_DIR")
    if env:
        paths.append(Path(env) / FEATURES_DOC)
    package = Path(microstream.__file__).resolve().parent
    paths.append(package.parents[1] / "docs" / FEATURES_DOC)  # repo: src/microstream -> ../..
    paths.append(package / "docs" / FEATURES_DOC)
    return paths


def parse_sections(markdown: str) -> dict[str, str]:
    """``## name`` sections of ``markdown`` as ``{name: body}`` (order kept).

    Only second-level headings starting with a lower-case identifier start a
    section (``## mid``, ``## `ofi_10s` — order-flow imbalance``), so group
    titles such as ``## Book features`` are not taken as features; a section
    ends at the next ``#`` or ``##`` heading.
    """
    sections: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []
    for line in markdown.splitlines():
        match = _HEADING.match(line.strip())
        if match or re.match(r"^#{1,2}\s", line):
            if name is not None:
                sections[name] = "\n".join(body).strip()
            name, body = (match.group(1) if match else None), []
            continue
        if name is not None:
            body.append(line)
    if name is not None:
        sections[name] = "\n".join(body).strip()
    return {k: v for k, v in sections.items() if v}


def load_texts(paths: list[Path] | None = None) -> tuple[dict[str, str], str]:
    """The feature explanations and where they came from (a path or ``"built-in"``)."""
    for path in paths if paths is not None else candidate_paths():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        sections = {k: v for k, v in parse_sections(text).items() if k not in NOT_FEATURES}
        if sections:
            return {**{k: v for k, v in BUILTIN.items() if k not in sections}, **sections}, str(
                path
            )
    return dict(BUILTIN), "built-in"


def _num(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _microprice(row: Mapping[str, Any]) -> str | None:
    mid, micro = _num(row, "mid"), _num(row, "microprice")
    if mid is None or micro is None:
        return None
    gap = micro - mid
    if abs(gap) < 1e-9 * max(abs(mid), 1.0):
        return "Microprice equals mid: the best bid and ask hold about the same size."
    side, heavier = ("above", "bid") if gap > 0 else ("below", "ask")
    return (
        f"Microprice is {side} mid by {abs(gap):.4g} because the {heavier} side is heavier: "
        f"the next move is slightly more likely to go {'up' if gap > 0 else 'down'}."
    )


def _imbalance(key: str, depth: str) -> Callable[[Mapping[str, Any]], str | None]:
    def explain(row: Mapping[str, Any]) -> str | None:
        value = _num(row, key)
        if value is None:
            return None
        if abs(value) < 0.1:
            return f"{value:+.2f}: the {depth} is balanced between buyers and sellers."
        side = "bids (buyers)" if value > 0 else "asks (sellers)"
        return f"{value:+.2f}: more size rests on the {side} at the {depth}."

    return explain


def _spread(row: Mapping[str, Any]) -> str | None:
    bps = _num(row, "spread_bps")
    if bps is None:
        return None
    tight = "tight: liquid market" if bps < 1 else "wide: liquidity is thin right now"
    return f"The spread is {bps:.3g} bps, {tight}."


def _flow(row: Mapping[str, Any]) -> str | None:
    buy, sell = _num(row, "buy_volume_1m"), _num(row, "sell_volume_1m")
    if buy is None or sell is None or buy + sell <= 0:
        return None
    share = buy / (buy + sell)
    who = "buyers" if share >= 0.5 else "sellers"
    return f"Aggressive {who} took {max(share, 1 - share):.0%} of the last minute's volume."


def _vwap(key: str, window: str) -> Callable[[Mapping[str, Any]], str | None]:
    def explain(row: Mapping[str, Any]) -> str | None:
        mid, vwap = _num(row, "mid"), _num(row, key)
        if mid is None or vwap is None:
            return None
        where = "above" if mid > vwap else "below"
        who = "buyers" if mid > vwap else "sellers"
        return (
            f"Mid is {where} the {window} VWAP ({vwap:,.2f}): the average {who} of the "
            f"{window} are in profit."
        )

    return explain


def _volatility(key: str, window: str) -> Callable[[Mapping[str, Any]], str | None]:
    def explain(row: Mapping[str, Any]) -> str | None:
        vol = _num(row, key)
        if vol is None:
            return None
        return f"Mid moved about {vol * 1e4:.2f} bps (root of summed squared moves) over {window}."

    return explain


def _ofi(row: Mapping[str, Any]) -> str | None:
    ofi = _num(row, "ofi_10s")
    if ofi is None:
        return None
    if ofi == 0:
        return "No net order-flow pressure at the best levels over the last 10 s."
    side = "buying" if ofi > 0 else "selling"
    return f"{ofi:+.3g}: net {side} pressure at the top of the book over the last 10 s."


COMMENTARY: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "microprice": _microprice,
    "imbalance_l1": _imbalance("imbalance_l1", "best level"),
    "imbalance_l5": _imbalance("imbalance_l5", "five best levels"),
    "spread_bps": _spread,
    "spread": _spread,
    "flow_imbalance_1m": _flow,
    "buy_volume_1m": _flow,
    "sell_volume_1m": _flow,
    "vwap_1m": _vwap("vwap_1m", "1-minute"),
    "vwap_5m": _vwap("vwap_5m", "5-minute"),
    "volatility_1m": _volatility("volatility_1m", "the last minute"),
    "volatility_5m": _volatility("volatility_5m", "the last five minutes"),
    "ofi_10s": _ofi,
}
"""Per feature: a sentence about its current value (``None`` if not computable)."""


def commentary(feature: str, row: Mapping[str, Any] | None) -> str | None:
    """A sentence tying ``feature``'s live value to what it means, or ``None``."""
    explain = COMMENTARY.get(feature)
    if explain is None or not row:
        return None
    try:
        return explain(row)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
