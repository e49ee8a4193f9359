"""Settings from the environment and an optional ``.env`` file.

The names kept from the original design are read exactly as they were:
``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_RAW_BARS_TOPIC``, ``KAFKA_REGIME_SIGNALS_TOPIC``,
``BINANCE_WS_URL``, ``BINANCE_REST_URL``, ``SYMBOL``,
``ISOLATION_FOREST_CONTAMINATION``, ``HMM_N_COMPONENTS``, ``FEATURE_WINDOW_SIZE``.
Every other setting is prefixed ``MICROSTREAM_``. See ``.env.example``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from microstream.errors import ConfigError

DEFAULT_SPOT_WS_URL = "wss://stream.binance.com:9443"
DEFAULT_SPOT_REST_URL = "https://api.binance.com"
DEFAULT_USDM_WS_URL = "wss://fstream.binance.com"
DEFAULT_USDM_REST_URL = "https://fapi.binance.com"
DEFAULT_COINM_WS_URL = "wss://dstream.binance.com"
DEFAULT_COINM_REST_URL = "https://dapi.binance.com"


def load_dotenv_file(path: str | os.PathLike[str] = ".env") -> None:
    """Load ``path`` into the environment without overriding variables already set."""
    if Path(path).is_file():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def env_str(name: str, default: str) -> str:
    """The variable ``name``, or ``default`` when it is unset or empty."""
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_float(name: str, default: float) -> float:
    """The variable ``name`` as a float (``default`` when unset or empty).

    Raises:
        ConfigError: the value is not a number.
    """
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc


def env_int(name: str, default: int) -> int:
    """The variable ``name`` as an int (``default`` when unset or empty).

    Raises:
        ConfigError: the value is not an integer.
    """
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc


@dataclass(frozen=True)
class Settings:
    """Every run-time setting, read once from the environment.

    Attributes:
        kafka_bootstrap_servers: Kafka/Redpanda brokers for ``--bus kafka``.
        kafka_raw_bars_topic: topic of 1-minute bars.
        kafka_regime_signals_topic: topic of regime signals.
        binance_ws_url: websocket base URL (``None``: the market's default).
        binance_rest_url: REST base URL (``None``: the market's default).
        symbol: default symbol(s), comma-separated.
        isolation_forest_contamination: expected anomaly share for the forest.
        hmm_n_components: number of HMM states.
        feature_window_size: rolling z-score window of the bar features.
        data_dir: root of the Parquet lake.
        grid_ms: feature grid step in exchange-time milliseconds.
        flush_rows: lake buffer size that triggers a flush.
        flush_seconds: maximum age of buffered lake rows.
        api_host / api_port: engine API address.
        dashboard_port: Streamlit port.
        horizon_s / threshold_bps: forecast horizon and label threshold.
    """

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_raw_bars_topic: str = "market_raw_bars"
    kafka_regime_signals_topic: str = "market_regime_signals"
    binance_ws_url: str | None = None
    binance_rest_url: str | None = None
    symbol: str = "BTCUSDT"
    isolation_forest_contamination: float = 0.05
    hmm_n_components: int = 3
    feature_window_size: int = 20
    data_dir: Path = field(default_factory=lambda: Path("data"))
    grid_ms: int = 1000
    flush_rows: int = 50_000
    flush_seconds: float = 5.0
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    dashboard_port: int = 8501
    horizon_s: int = 10
    threshold_bps: float = 1.0

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment (after loading ``.env``)."""
        load_dotenv_file()
        settings = cls(
            kafka_bootstrap_servers=env_str("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
            kafka_raw_bars_topic=env_str("KAFKA_RAW_BARS_TOPIC", "market_raw_bars"),
            kafka_regime_signals_topic=env_str(
                "KAFKA_REGIME_SIGNALS_TOPIC", "market_regime_signals"
            ),
            binance_ws_url=os.environ.get("BINANCE_WS_URL") or None,
            binance_rest_url=os.environ.get("BINANCE_REST_URL") or None,
            symbol=env_str("SYMBOL", "BTCUSDT"),
            isolation_forest_contamination=env_float("ISOLATION_FOREST_CONTAMINATION", 0.05),
            hmm_n_components=env_int("HMM_N_COMPONENTS", 3),
            feature_window_size=env_int("FEATURE_WINDOW_SIZE", 20),
            data_dir=Path(env_str("MICROSTREAM_DATA_DIR", "data")),
            grid_ms=env_int("MICROSTREAM_GRID_MS", 1000),
            flush_rows=env_int("MICROSTREAM_FLUSH_ROWS", 50_000),
            flush_seconds=env_float("MICROSTREAM_FLUSH_SECONDS", 5.0),
            api_host=env_str("MICROSTREAM_API_HOST", "127.0.0.1"),
            api_port=env_int("MICROSTREAM_API_PORT", 8765),
            dashboard_port=env_int("MICROSTREAM_DASHBOARD_PORT", 8501),
            horizon_s=env_int("MICROSTREAM_HORIZON_S", 10),
            threshold_bps=env_float("MICROSTREAM_THRESHOLD_BPS", 1.0),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`ConfigError` on values that cannot work."""
        if not 0.0 < self.isolation_forest_contamination <= 0.5:
            raise ConfigError("ISOLATION_FOREST_CONTAMINATION must be in (0, 0.5]")
        if self.hmm_n_components < 2:
            raise ConfigError("HMM_N_COMPONENTS must be at least 2")
        if self.feature_window_size < 2:
            raise ConfigError("FEATURE_WINDOW_SIZE must be at least 2")
        if not 100 <= self.grid_ms <= 60_000:
            raise ConfigError("MICROSTREAM_GRID_MS must be between 100 and 60000")
        if not 5 <= self.horizon_s <= 60:
            raise ConfigError("MICROSTREAM_HORIZON_S must be between 5 and 60")
        if self.flush_rows < 1 or self.flush_seconds <= 0:
            raise ConfigError("flush settings must be positive")

    @property
    def symbols(self) -> list[str]:
        """``symbol`` split on commas, upper-cased."""
        return [s.strip().upper() for s in self.symbol.split(",") if s.strip()]
