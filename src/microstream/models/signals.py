"""Per-bar signals: HMM state and Isolation Forest anomaly, one ``signals_1m`` row a bar.

:class:`SignalEngine` is a pipeline stage: feed it every ``bars_1m`` row of one
symbol with :meth:`SignalEngine.on_bar`; it emits one ``signals_1m``
:class:`~microstream.bus.protocol.Row` per valid bar, with these columns:

- ``ts`` (the bar's minute start), ``hmm_state``, ``hmm_confidence``,
  ``anomaly``, ``anomaly_score`` (the contract columns; ``None`` while warming up);
- ``hmm_p_normal``, ``hmm_p_bullish_extreme``, ``hmm_p_bearish_extreme``: the
  filtered state probabilities;
- ``hmm_status`` / ``anomaly_status``: ``warming_up n/N`` (bars so far / bars
  needed, feature warm-up included), ``fitted``, ``refitted``, ``ready``,
  ``pretrained`` or ``fit_failed``;
- ``hmm_version`` / ``anomaly_version`` (model number), ``hmm_fitted_at`` /
  ``anomaly_fitted_at`` (``ts`` of the last training bar, ``None`` if pre-trained),
  ``hmm_train_bars`` / ``anomaly_train_bars``;
- ``momentum_z``, ``volatility_z``, ``activity_z``: the model inputs.

Pre-trained models (:class:`SignalModels`) are saved and loaded through
:mod:`microstream.models.registry` under the names :data:`HMM_MODEL_NAME` and
:data:`FOREST_MODEL_NAME`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from microstream.bus.protocol import Row
from microstream.config import Settings
from microstream.errors import ModelError
from microstream.models.anomaly import AnomalyForest, AnomalyOutput, OnlineAnomaly
from microstream.models.bar_features import (
    FEATURE_NAMES,
    BarFeatureStream,
    bar_features_batch,
    feature_matrix,
)
from microstream.models.fitting import RefitPolicy
from microstream.models.hmm import STATE_NAMES, GaussianHMM, HmmOutput, OnlineHMM
from microstream.store.schema import extend_table

log = logging.getLogger(__name__)

TABLE = "signals_1m"
HMM_MODEL_NAME = "signals_hmm"
FOREST_MODEL_NAME = "signals_iforest"
RANDOM_STATE = 42
"""Seed of every HMM and forest fit (reproducible runs)."""

extend_table(
    TABLE,
    {
        **{f"hmm_p_{name}": pa.float64() for name in STATE_NAMES},
        "hmm_status": pa.string(),
        "hmm_version": pa.int64(),
        "hmm_fitted_at": pa.int64(),
        "hmm_train_bars": pa.int64(),
        "anomaly_status": pa.string(),
        "anomaly_version": pa.int64(),
        "anomaly_fitted_at": pa.int64(),
        "anomaly_train_bars": pa.int64(),
        **{f"{name}_z": pa.float64() for name in FEATURE_NAMES},
    },
)


@dataclass(frozen=True)
class SignalModels:
    """A pre-trained HMM and Isolation Forest (either may be missing).

    Attributes:
        hmm / forest: the models.
        hmm_version / forest_version: their registry versions.
    """

    hmm: GaussianHMM | None = None
    forest: AnomalyForest | None = None
    hmm_version: int = 0
    forest_version: int = 0

    def save(self, directory: str | os.PathLike[str], training_data: str = "") -> list[Path]:
        """Save both models as new registry versions; return the payload paths."""
        from microstream.models.registry import save_model

        meta = {"training_data": training_data, "feature_names": list(FEATURE_NAMES)}
        paths: list[Path] = []
        if self.hmm is not None:
            paths.append(save_model(self.hmm, directory, HMM_MODEL_NAME, "hmm", meta))
        if self.forest is not None:
            kind = "isolation_forest"
            paths.append(save_model(self.forest, directory, FOREST_MODEL_NAME, kind, meta))
        return paths

    @classmethod
    def load(cls, models_dir: str | os.PathLike[str] | None = None) -> SignalModels:
        """The latest saved models in ``models_dir`` (else the package defaults).

        A model that is absent stays ``None``. Raises :class:`ModelError` for a
        file that exists but is corrupt or of the wrong kind.
        """
        from microstream.models.registry import load_model, resolve_model

        found: dict[str, tuple[Any, int]] = {}
        for name in (HMM_MODEL_NAME, FOREST_MODEL_NAME):
            path = resolve_model(name, models_dir)
            if path is not None:
                obj, meta = load_model(path)
                found[name] = (obj, meta.version)
        hmm, hmm_version = found.get(HMM_MODEL_NAME, (None, 0))
        forest, forest_version = found.get(FOREST_MODEL_NAME, (None, 0))
        if hmm is not None and not isinstance(hmm, GaussianHMM):
            raise ModelError(f"{HMM_MODEL_NAME} is a {type(hmm).__name__}, not a GaussianHMM")
        if forest is not None and not isinstance(forest, AnomalyForest):
            raise ModelError(f"{FOREST_MODEL_NAME} is a {type(forest).__name__}")
        return cls(hmm, forest, hmm_version, forest_version)


def train_signal_models(bars: pl.DataFrame, settings: Settings | None = None) -> SignalModels:
    """Fit the HMM and the forest on a whole ``bars_1m`` table (offline training).

    Raises:
        ModelError: too few bars for either model.
    """
    settings = settings or Settings()
    x = feature_matrix(bar_features_batch(bars, settings.feature_window_size))
    hmm = GaussianHMM.fit(x, settings.hmm_n_components, RANDOM_STATE)
    forest = AnomalyForest.fit(x, settings.isolation_forest_contamination, RANDOM_STATE)
    return SignalModels(hmm, forest)


class SignalEngine:
    """The per-symbol ``signals_1m`` stage (HMM + Isolation Forest on 1-minute bars).

    Args:
        exchange / symbol: the partition of the emitted rows.
        emit: receives each ``signals_1m`` row.
        settings: ``HMM_N_COMPONENTS``, ``ISOLATION_FOREST_CONTAMINATION`` and
            ``FEATURE_WINDOW_SIZE`` come from here.
        models: optional pre-trained models (used from the first complete vector).
        policy: warm-up / refit schedule of both models.

    Attributes:
        bars_in: bars received; bars_rejected: invalid bars skipped.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        emit: Callable[[Row], None],
        settings: Settings | None = None,
        models: SignalModels | None = None,
        policy: RefitPolicy | None = None,
    ) -> None:
        settings = settings or Settings()
        models = models or SignalModels()
        policy = policy or RefitPolicy()
        self.exchange = exchange
        self.symbol = symbol
        self._emit = emit
        self._features = BarFeatureStream(settings.feature_window_size)
        offset = self._features.warmup_bars - 1
        self._hmm = OnlineHMM(
            settings.hmm_n_components,
            policy,
            RANDOM_STATE,
            models.hmm,
            models.hmm_version,
            warmup_offset=offset,
        )
        self._forest = OnlineAnomaly(
            settings.isolation_forest_contamination,
            policy,
            RANDOM_STATE,
            models.forest,
            models.forest_version,
            warmup_offset=offset,
        )
        self._pretrained = models
        self._policy = policy
        self.bars_in = 0
        self.bars_rejected = 0
        self._last_ts: int | None = None

    def on_bar(self, values: Mapping[str, Any]) -> Row | None:
        """Consume one ``bars_1m`` row; emit and return its ``signals_1m`` row.

        An invalid bar, or a bar not later than the previous one (a duplicate
        or out-of-order delivery), is counted, logged and skipped (nothing
        emitted, ``None``).
        """
        self.bars_in += 1
        ts_value = values.get("ts")
        if isinstance(ts_value, int) and self._last_ts is not None and ts_value <= self._last_ts:
            self.bars_rejected += 1
            log.warning("signals: bar at ts=%d is not after %d; skipped", ts_value, self._last_ts)
            return None
        before = self._features.bars_rejected
        vector = self._features.update(values)
        if self._features.bars_rejected != before:
            self.bars_rejected += 1
            return None
        ts = int(values["ts"])
        self._last_ts = ts
        if vector is None:
            row_values = self._warming_values(ts)
        else:
            hmm = self._hmm.update(vector, ts)
            anomaly = self._forest.update(vector, ts)
            row_values = _row_values(ts, vector, hmm, anomaly)
        row = Row(TABLE, self.exchange, self.symbol, row_values)
        self._emit(row)
        return row

    def _warming_values(self, ts: int) -> dict[str, Any]:
        """Row of a bar during the feature warm-up: no vector, no model output."""
        seen = self._features.bars_seen
        models = self._pretrained
        hmm_status = f"warming_up {seen}/{self._bars_needed(models.hmm is not None)}"
        if_status = f"warming_up {seen}/{self._bars_needed(models.forest is not None)}"
        hmm = HmmOutput(None, None, {}, hmm_status, models.hmm_version, None, 0)
        anomaly = AnomalyOutput(None, None, if_status, models.forest_version, None, 0)
        return _row_values(ts, None, hmm, anomaly)

    def _bars_needed(self, pretrained: bool) -> int:
        """Bars before the first model output: features, then (unless pre-trained) a fit."""
        features = self._features.warmup_bars
        return features if pretrained else features - 1 + self._policy.warmup


def _row_values(
    ts: int, vector: tuple[float, ...] | None, hmm: HmmOutput, anomaly: AnomalyOutput
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ts": ts,
        "hmm_state": hmm.state,
        "hmm_confidence": hmm.confidence,
        "anomaly": anomaly.anomaly,
        "anomaly_score": anomaly.score,
    }
    for name in STATE_NAMES:
        values[f"hmm_p_{name}"] = hmm.probabilities.get(name) if hmm.state else None
    values.update(
        hmm_status=hmm.status,
        hmm_version=hmm.version,
        hmm_fitted_at=hmm.fitted_at,
        hmm_train_bars=hmm.train_rows,
        anomaly_status=anomaly.status,
        anomaly_version=anomaly.version,
        anomaly_fitted_at=anomaly.fitted_at,
        anomaly_train_bars=anomaly.train_rows,
    )
    for i, name in enumerate(FEATURE_NAMES):
        values[f"{name}_z"] = None if vector is None else float(vector[i])
    return values


def signals_batch(
    bars: pl.DataFrame,
    settings: Settings | None = None,
    models: SignalModels | None = None,
    policy: RefitPolicy | None = None,
) -> pl.DataFrame:
    """Run a :class:`SignalEngine` over a whole ``bars_1m`` table (sorted by ``ts``)."""
    rows: list[dict[str, Any]] = []
    engine = SignalEngine("", "", lambda row: rows.append(row.values), settings, models, policy)
    for values in bars.sort("ts").iter_rows(named=True):
        engine.on_bar(values)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


__all__ = [
    "FOREST_MODEL_NAME",
    "HMM_MODEL_NAME",
    "SignalEngine",
    "SignalModels",
    "signals_batch",
    "train_signal_models",
]
