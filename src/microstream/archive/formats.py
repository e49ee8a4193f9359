"""Recognise and open historical archive files.

Binance publishes daily and monthly archives on https://data.binance.vision as
``.zip`` files holding one CSV (users download them; MicroStream never does):

- ``BTCUSDT-aggTrades-2024-01-01.zip``: ``agg_trade_id, price, quantity,
  first_trade_id, last_trade_id, transact_time, is_buyer_maker[, is_best_match]``
  (spot has the 8th column, USD-M futures not);
- ``BTCUSDT-trades-2024-01-01.zip``: ``id, price, qty, quote_qty, time,
  is_buyer_maker[, is_best_match]``;
- ``BTCUSDT-1m-2024-01-01.zip`` (klines): ``open_time, open, high, low, close,
  volume, close_time, quote_volume, count, taker_buy_volume,
  taker_buy_quote_volume, ignore``.

Files exist with and without a header line (futures files and recent spot files
have one), and times are Unix **milliseconds**, except spot files from 2025 on,
which use **microseconds**. Both are recognised per value (a time ``≥ 10^14`` is
in µs: in ms that would be the year 5138).

Tardis CSV trades (``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``,
µs times) are recognised by their header.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from microstream.errors import ArchiveError

Kind = Literal["aggTrades", "trades", "klines", "tardis_trades"]

AGG_TRADES_COLUMNS: tuple[str, ...] = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
    "is_best_match",
)
TRADES_COLUMNS: tuple[str, ...] = (
    "id",
    "price",
    "qty",
    "quote_qty",
    "time",
    "is_buyer_maker",
    "is_best_match",
)
KLINES_COLUMNS: tuple[str, ...] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
TARDIS_TRADES_COLUMNS: tuple[str, ...] = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "id",
    "side",
    "price",
    "amount",
)

_BOOL_WORDS = frozenset({"true", "false"})
_KLINE_NAME = re.compile(r"-(\d+[smhdwM])-\d{4}-\d{2}")
US_THRESHOLD = 10**14
"""A Binance archive time at or above this is in microseconds, below in milliseconds."""


@dataclass(frozen=True)
class ArchiveFormat:
    """What a file holds and how to read it.

    Attributes:
        kind: ``aggTrades``, ``trades``, ``klines`` or ``tardis_trades``.
        columns: the column names of the file's data rows, in order.
        header: whether the first line is a header (to skip).
        interval: kline interval from the file name (``1m``), if known.
    """

    kind: Kind
    columns: tuple[str, ...]
    header: bool
    interval: str | None = None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _kind_from_name(name: str) -> tuple[Kind | None, str | None]:
    if "-aggTrades-" in name:
        return "aggTrades", None
    if "-trades-" in name:
        return "trades", None
    match = _KLINE_NAME.search(name)
    if match:
        return "klines", match.group(1)
    return None, None


def _kind_from_fields(fields: list[str]) -> Kind | None:
    """Guess the kind of a header-less data row from its shape."""
    if len(fields) == 12:
        return "klines"
    is_bool = [f.strip().lower() in _BOOL_WORDS for f in fields]
    if len(fields) in (6, 7) and is_bool[5]:
        return "trades"
    if len(fields) in (7, 8) and is_bool[6]:
        return "aggTrades"
    return None


def _columns(kind: Kind, n_fields: int) -> tuple[str, ...]:
    full = {
        "aggTrades": AGG_TRADES_COLUMNS,
        "trades": TRADES_COLUMNS,
        "klines": KLINES_COLUMNS,
        "tardis_trades": TARDIS_TRADES_COLUMNS,
    }[kind]
    if n_fields > len(full):
        return (*full, *(f"extra_{i}" for i in range(n_fields - len(full))))
    if n_fields < len(full) - 1 or (n_fields < len(full) and kind in ("klines", "tardis_trades")):
        raise ArchiveError(f"{kind} file with {n_fields} columns (expected {len(full)})")
    return full[:n_fields]


def detect_format(name: str, first_line: str) -> ArchiveFormat:
    """The format of a file from its name and its first line.

    Raises:
        ArchiveError: the file is neither of the known formats.
    """
    fields = [f.strip() for f in first_line.strip().split(",")]
    header = bool(fields) and not _is_number(fields[0])
    if header and fields[:3] == list(TARDIS_TRADES_COLUMNS[:3]):
        return ArchiveFormat("tardis_trades", _columns("tardis_trades", len(fields)), True)
    kind, interval = _kind_from_name(name)
    if kind is None and not header:
        kind = _kind_from_fields(fields)
    if kind is None and header:
        lowered = {f.lower() for f in fields}
        kind = (
            "aggTrades"
            if "agg_trade_id" in lowered
            else "klines"
            if "open_time" in lowered
            else "trades"
            if "quote_qty" in lowered
            else None
        )
    if kind is None:
        raise ArchiveError(f"{name}: not a Binance aggTrades, trades or klines file")
    return ArchiveFormat(kind, _columns(kind, len(fields)), header, interval)


@contextmanager
def open_text(path: Path) -> Iterator[tuple[IO[bytes], int]]:
    """Open a ``.csv`` or a ``.zip`` holding one ``.csv``: yields ``(binary stream, size)``.

    ``size`` is the uncompressed size in bytes (for progress bars).

    Raises:
        ArchiveError: missing file, bad zip, or a zip without exactly one CSV.
    """
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if m.filename.lower().endswith(".csv")]
                if len(members) != 1:
                    raise ArchiveError(f"{path}: expected one .csv inside, found {len(members)}")
                with archive.open(members[0]) as handle:
                    yield handle, members[0].file_size
        else:
            with path.open("rb") as raw:
                yield raw, path.stat().st_size
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"cannot read {path}: {exc}") from exc


def sniff(path: Path) -> ArchiveFormat:
    """Detect the format of ``path`` (reads its first line)."""
    with open_text(path) as (handle, _):
        first = io.TextIOWrapper(handle, encoding="utf-8", errors="replace").readline()
    if not first.strip():
        raise ArchiveError(f"{path}: empty file")
    stem = path.name
    return detect_format(stem, first)
