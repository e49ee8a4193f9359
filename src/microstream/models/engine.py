"""The per-symbol model stage: regime, forecast, scorecard, HMM and anomaly.

:class:`ModelEngine` receives the rows the feature stage emits and routes them:
``features`` rows to the regime detector, the direction forecaster and the
live scorecard; ``bars_1m`` rows to the HMM/anomaly :class:`SignalEngine`.
Model outputs go to ``emit`` (``regimes``, ``predictions``, ``signals_1m``
rows) and their latest values are kept for :meth:`ModelEngine.live_state`.

Models come from the registry: the latest file in ``models_dir`` when given,
else the package's shipped defaults. :meth:`ModelEngine.reload_models` picks
up a newer forecast file without losing any streaming state; the engine calls
it by itself every ``reload_interval_s`` seconds of wall time (it only stats
the registry directory, so the check is cheap). See ``docs/forecast.md``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microstream.bus.protocol import Row
from microstream.config import Settings
from microstream.errors import MicroStreamError
from microstream.models.forecast_features import OFI_MIN_COUNT, RETURN_LAGS_S
from microstream.models.predictor import DirectionForecaster, ForecastModel, load_forecast_model
from microstream.models.regime import RegimeDetector
from microstream.models.registry import default_models_dir, latest_model, resolve_model
from microstream.models.scorecard import ForecastScorecard
from microstream.models.signals import SignalEngine, SignalModels

log = logging.getLogger(__name__)

FORECAST_MODEL_NAME = "forecast"
MODELS_DIR_ENV = "MICROSTREAM_MODELS_DIR"
"""Registry directory used when no ``models_dir`` is given (else the shipped defaults)."""
_ROUTE_ERRORS = (MicroStreamError, ValueError, KeyError, TypeError, ArithmeticError)


def _file_stamp(path: Path | None) -> tuple[str, float] | None:
    if path is None:
        return None
    try:
        return str(path), path.stat().st_mtime
    except OSError:
        return None


class ModelEngine:
    """Every model of one symbol behind one ``on_row`` entry point.

    Args:
        exchange / symbol: the partition of the emitted rows.
        emit: receives every row the models produce.
        settings: horizon, threshold and the HMM/forest settings.
        models_dir: registry directory searched before the shipped defaults
            (default: ``$MICROSTREAM_MODELS_DIR`` if set).
        reload_interval_s: how often (wall seconds) :meth:`on_row` checks the
            registry for a newer forecast model; ``None`` disables the check.

    Attributes:
        rows_in: rows received; errors: rows a stage rejected (logged, skipped).
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        emit: Callable[[Row], None],
        settings: Settings | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        reload_interval_s: float | None = 60.0,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.settings = settings or Settings()
        if models_dir is None:
            models_dir = os.environ.get(MODELS_DIR_ENV) or None
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self._emit = emit
        self.latest: dict[str, dict[str, Any]] = {}
        self.rows_in = 0
        self.feature_rows = 0
        self.errors = 0
        self.model_errors: list[str] = []
        self.reload_interval_s = reload_interval_s
        self._last_check = time.monotonic()
        self._forecast_stamp: tuple[str, float] | None = None
        s = self.settings
        self.regime = RegimeDetector(exchange, symbol, self._capture, s)
        self.forecaster = DirectionForecaster(
            exchange, symbol, self._capture, None, s.horizon_s, s.threshold_bps
        )
        self.scorecard = ForecastScorecard(s.horizon_s, s.threshold_bps)
        self.signal_models = self._load_signal_models()
        self.signals = SignalEngine(exchange, symbol, self._capture, s, self.signal_models)
        self.reload_models()

    # -- routing -----------------------------------------------------------------

    def _capture(self, row: Row) -> None:
        self.latest[row.table] = row.values
        self._emit(row)

    def on_row(self, row: Row) -> None:
        """Route one row of this symbol; other tables are ignored."""
        self.rows_in += 1
        self._maybe_reload()
        try:
            if row.table == "features":
                self._on_features(row.values)
            elif row.table == "bars_1m":
                self.signals.on_bar(row.values)
        except _ROUTE_ERRORS as exc:
            self.errors += 1
            log.warning("%s %s: %s row skipped: %s", self.exchange, self.symbol, row.table, exc)

    def _on_features(self, values: dict[str, Any]) -> None:
        self.feature_rows += 1
        self.latest["features"] = values
        self.regime.on_features(values)
        probs = self.forecaster.on_features(values)
        if self.scorecard.resolver.horizon_ns != round(self._horizon_s() * 1e9):
            self.scorecard = ForecastScorecard(self._horizon_s(), self._threshold_bps())
        self.scorecard.on_features(values, probs)

    def _horizon_s(self) -> float:
        model = self.forecaster.model
        return model.horizon_s if model is not None else float(self.settings.horizon_s)

    def _threshold_bps(self) -> float:
        model = self.forecaster.model
        return model.threshold_bps if model is not None else self.settings.threshold_bps

    # -- models ------------------------------------------------------------------

    def _load_signal_models(self) -> SignalModels:
        try:
            return SignalModels.load(self.models_dir)
        except MicroStreamError as exc:
            self.model_errors.append(f"signals: {exc}")
            log.error("%s %s: HMM/anomaly models not loaded: %s", self.exchange, self.symbol, exc)
            return SignalModels()

    def _maybe_reload(self) -> None:
        if self.reload_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_check >= self.reload_interval_s:
            self._last_check = now
            self.reload_models()

    def reload_models(self) -> bool:
        """Load the newest forecast model file if it changed; True if one was swapped in.

        The forecaster's input state and the scorecard are kept; a file that
        fails to load (corrupt, wrong features) is logged and the current model
        stays in use (at start-up, when there is none yet, the shipped default).
        """
        path = resolve_model(FORECAST_MODEL_NAME, self.models_dir)
        stamp = _file_stamp(path)
        if stamp is None or stamp == self._forecast_stamp:
            return False
        self._forecast_stamp = stamp
        model = self._load_forecast(stamp[0])
        if model is None and self.forecaster.model is None:
            fallback = latest_model(default_models_dir(), FORECAST_MODEL_NAME)
            if fallback is not None and str(fallback) != stamp[0]:
                log.warning("%s %s: using the shipped default forecast", self.exchange, self.symbol)
                model = self._load_forecast(str(fallback))
        if model is None:
            return False
        self.forecaster.set_model(model)
        log.info("%s %s: forecast model %s loaded", self.exchange, self.symbol, model.tag)
        return True

    def _load_forecast(self, path: str) -> ForecastModel | None:
        try:
            return load_forecast_model(path)
        except MicroStreamError as exc:
            self.model_errors.append(f"forecast: {exc}")
            log.error("%s %s: forecast model not loaded: %s", self.exchange, self.symbol, exc)
            return None

    # -- state -------------------------------------------------------------------

    def warmup(self) -> dict[str, Any]:
        """Warm-up progress of each model (fractions in [0, 1])."""
        n = self.feature_rows
        grid_s = self.settings.grid_ms / 1000
        ret_rows = max(RETURN_LAGS_S) / grid_s
        signals = self.latest.get("signals_1m", {})
        return {
            "feature_rows": n,
            "forecast": min(1.0, n / max(OFI_MIN_COUNT, ret_rows)),
            "scorecard_resolved": self.scorecard.total.model.n,
            "hmm_status": signals.get("hmm_status"),
            "anomaly_status": signals.get("anomaly_status"),
        }

    @property
    def forecast_path(self) -> str | None:
        """The forecast model file last seen in the registry (None if none)."""
        return self._forecast_stamp[0] if self._forecast_stamp else None

    def model_versions(self) -> dict[str, Any]:
        """The version of every model in use."""
        return {
            "forecast": self.forecaster.model_tag,
            "forecast_path": self.forecast_path,
            "hmm": self.signal_models.hmm_version or None,
            "anomaly": self.signal_models.forest_version or None,
        }

    def live_state(self) -> dict[str, Any]:
        """Latest regime, forecast, scorecard, HMM/anomaly, versions and warm-up."""
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "regime": self.latest.get("regimes"),
            "forecast": self.latest.get("predictions"),
            "scorecard": self.scorecard.as_dict(),
            "signals": self.latest.get("signals_1m"),
            "models": self.model_versions(),
            "model_errors": list(self.model_errors[-5:]),
            "warmup": self.warmup(),
            "rows_in": self.rows_in,
            "errors": self.errors,
        }
