"""Load ``features`` (and ``sim_truth``) rows from a lake or from capture files.

Capture files are replayed through the same pipeline as ``microstream replay``
(parse → book → streaming features; models off) into a temporary lake, so
training and evaluation see exactly the features the live engine computes.
Files of one recording session (same folder, same name before the last
``_<date>``) are replayed together as one stream.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from microstream.errors import CaptureError, MicroStreamError

log = logging.getLogger(__name__)
_SESSION_RE = re.compile(r"^(?P<stem>.+)_(?P<date>\d{8})(?P<ext>(\.dat)?\.gz)$")


def read_table(lake: str | Path, table: str) -> pl.DataFrame:
    """A whole lake table (hive partitions as columns; ``date`` dropped). Empty if absent."""
    root = Path(lake) / table
    if not root.is_dir() or not any(root.rglob("*.parquet")):
        return pl.DataFrame()
    frame = pl.scan_parquet(str(root / "**" / "*.parquet"), hive_partitioning=True).collect()
    return frame.drop("date") if "date" in frame.columns else frame


def lake_features(lake: str | Path) -> pl.DataFrame:
    """The ``features`` table of a lake.

    Raises:
        MicroStreamError: the lake has no features.
    """
    frame = read_table(lake, "features")
    if frame.is_empty():
        raise MicroStreamError(f"no features table under {lake} (run `microstream replay` first)")
    return frame


def session_groups(captures: Iterable[str | Path]) -> list[list[Path]]:
    """Group capture files into recording sessions.

    Files continue one session when they sit in the same folder, share the name
    before ``_<YYYYMMDD>`` and the extension, and their dates are consecutive
    days (a session split at midnight). Anything else starts a new session.
    """
    keyed: list[tuple[tuple[str, str, str], date | None, Path]] = []
    for raw in captures:
        path = Path(raw)
        if not path.is_file():
            raise CaptureError(f"capture file not found: {path}")
        match = _SESSION_RE.match(path.name)
        if match is None:
            keyed.append(((str(path.parent), path.name, ""), None, path))
            continue
        parsed = datetime.strptime(match.group("date"), "%Y%m%d").date()
        keyed.append(((str(path.parent), match.group("stem"), match.group("ext")), parsed, path))
    keyed.sort(key=lambda k: (k[0], k[1] or date.min))
    groups: list[list[Path]] = []
    prev: tuple[tuple[str, str, str], date | None] | None = None
    for key, day, path in keyed:
        follows = (
            prev is not None
            and prev[0] == key
            and day is not None
            and prev[1] is not None
            and day - prev[1] == timedelta(days=1)
        )
        if follows:
            groups[-1].append(path)
        else:
            groups.append([path])
        prev = (key, day)
    return groups


TABLES = ("features", "bars_1m", "sim_truth")


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if not f.is_empty()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def lake_tables(lake: str | Path) -> dict[str, pl.DataFrame]:
    """The :data:`TABLES` of one lake (empty frames for absent tables)."""
    return {table: read_table(lake, table) for table in TABLES}


def replay_tables(
    captures: Sequence[str | Path], workdir: str | Path | None = None
) -> dict[str, pl.DataFrame]:
    """Replay ``captures`` (grouped by session, models off) and return :data:`TABLES`.

    Raises:
        MicroStreamError: a replay failed or produced no features.
    """
    from microstream.engine import PipelineOptions
    from microstream.replay import replay

    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in TABLES}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for i, files in enumerate(session_groups(captures)):
            lake = Path(tmp) / f"session{i}"
            log.info("replaying %s", ", ".join(f.name for f in files))
            replay(files, lake, options=PipelineOptions(features=True, models=False))
            for table, frame in lake_tables(lake).items():
                parts[table].append(frame)
    out = {table: _concat(frames) for table, frames in parts.items()}
    if out["features"].is_empty():
        raise MicroStreamError("the captures produced no features")
    return out


def load_tables(
    lakes: Sequence[str | Path] = (), captures: Sequence[str | Path] = ()
) -> dict[str, pl.DataFrame]:
    """:data:`TABLES` from lakes and replayed captures together.

    Raises:
        MicroStreamError: nothing given, or no features found.
    """
    if not lakes and not captures:
        raise MicroStreamError("give a lake (--lake) or capture files (--captures)")
    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in TABLES}
    for lake in lakes:
        for table, frame in lake_tables(lake).items():
            parts[table].append(frame)
    if captures:
        for table, frame in replay_tables(captures).items():
            parts[table].append(frame)
    out = {table: _concat(frames) for table, frames in parts.items()}
    if out["features"].is_empty():
        raise MicroStreamError("no features rows found in the given lakes/captures")
    return out
