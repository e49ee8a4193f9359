"""Import historical market data archives into the lake.

Binance's public archives (https://data.binance.vision: aggTrades, trades and
1-minute klines, ``.zip`` or ``.csv``, with or without header, ms or µs times)
and Tardis trade CSVs. See :mod:`microstream.archive.importer`.
"""

from microstream.archive.formats import ArchiveFormat, detect_format, sniff
from microstream.archive.importer import (
    ArchiveImporter,
    FileReport,
    ImportResult,
    import_archives,
)

__all__ = [
    "ArchiveFormat",
    "ArchiveImporter",
    "FileReport",
    "ImportResult",
    "detect_format",
    "import_archives",
    "sniff",
]
