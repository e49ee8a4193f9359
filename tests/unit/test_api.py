"""Engine HTTP API: every endpoint against a store filled with synthetic rows."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from microstream.api import ApiError, EngineApi, encode_json, render_metrics
from microstream.dashboard.synthetic import filled_store
from microstream.live_state import LiveStateStore

BASE = "/api/v1/binance/BTCUSDT"


@pytest.fixture(scope="module")
def api() -> Iterator[EngineApi]:
    store, _ = filled_store(("BTCUSDT", "ETHUSDT"), seconds=180)
    server = EngineApi(store, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(api: EngineApi, path: str, **params: object) -> requests.Response:
    return requests.get(api.url + path, params=params, timeout=10)  # type: ignore[arg-type]


def test_health_reports_provider_document(api: EngineApi) -> None:
    response = get(api, "/health")
    assert response.status_code == 200
    doc = response.json()
    assert doc["status"] == "ok"
    assert doc["source"] == "synthetic" and doc["simulated"] is True
    assert doc["feed"]["connected"] is True
    assert set(doc["symbols"]) == {"binance:BTCUSDT", "binance:ETHUSDT"}


def test_health_is_503_when_down() -> None:
    store = LiveStateStore()
    store.set_health_provider(lambda: {"status": "down", "feed": {"connected": False}})
    with EngineApi(store, port=0) as server:
        response = requests.get(server.url + "/health", timeout=10)
    assert response.status_code == 503
    assert response.json()["status"] == "down"


def test_metrics_parse_as_prometheus_text(api: EngineApi) -> None:
    response = get(api, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["microstream_up"].samples[0].value == 1.0
    rows = {s.labels["table"]: s.value for s in families["microstream_live_rows"].samples}
    assert rows["features"] == 2 * 180  # one features row per synthetic second and symbol
    assert families["microstream_feed_messages_per_s"].samples[0].value == 42.0
    book = families["microstream_symbol_resyncs"].samples
    assert {s.labels["symbol"] for s in book} == {"BTCUSDT", "ETHUSDT"}


def test_render_metrics_escapes_labels_and_handles_odd_values() -> None:
    store = LiveStateStore()
    store.set_health_provider(
        lambda: {"status": "ok", "note": 'a "quoted"\nline', "ratio": float("nan"), "n": 3}
    )
    text = render_metrics(store)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["microstream_note_info"].samples[0].labels["note"] == 'a "quoted"\nline'
    assert np.isnan(families["microstream_ratio"].samples[0].value)
    assert families["microstream_n"].samples[0].value == 3


def test_symbols_lists_every_symbol(api: EngineApi) -> None:
    doc = get(api, "/api/v1/symbols").json()
    assert doc["simulated"] is True
    assert doc["symbols"] == [
        {"exchange": "binance", "symbol": "BTCUSDT"},
        {"exchange": "binance", "symbol": "ETHUSDT"},
    ]
    assert "features" in doc["tables"]


def test_state_has_latest_rows_and_live_values(api: EngineApi) -> None:
    doc = get(api, BASE + "/state").json()
    assert doc["symbol"] == "BTCUSDT"
    assert doc["latest"]["features"]["mid"] > 0
    assert doc["latest"]["predictions"]["label"] in {"up", "neutral", "down"}
    assert "scorecard" in doc["live"] and "depth" not in doc["live"]
    assert doc["counts"]["features"] == 180
    assert get(api, "/api/v1/binance/btcusdt/state").status_code == 200  # case-insensitive


def test_table_history_with_since_and_limit(api: EngineApi) -> None:
    rows = get(api, BASE + "/features", limit=10).json()["rows"]
    assert len(rows) == 10
    times = [r["ts"] for r in rows]
    assert times == sorted(times)
    newer = get(api, BASE + "/features", since=times[4]).json()["rows"]
    assert [r["ts"] for r in newer] == times[5:]
    trades = get(api, BASE + "/trades", limit=5).json()["rows"]
    assert {t["side"] for t in trades} <= {"buy", "sell"}


def test_bad_requests_are_4xx_json(api: EngineApi) -> None:
    assert get(api, BASE + "/features", limit="ten").status_code == 400
    unknown_table = get(api, BASE + "/nope")
    assert unknown_table.status_code == 404 and "unknown table" in unknown_table.json()["error"]
    unknown_symbol = get(api, "/api/v1/binance/DOGEUSDT/state")
    assert unknown_symbol.status_code == 404 and "error" in unknown_symbol.json()


def test_error_answers_use_no_deprecated_aiohttp_argument(api: EngineApi) -> None:
    """The server thread's warnings are process-wide: a deprecated ``body=`` on an
    HTTP exception showed up in unrelated log lines (e.g. while a model loads)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bad = get(api, BASE + "/features", limit="ten")
        unknown = get(api, "/api/v1/binance/DOGEUSDT/features")
    assert bad.status_code == 400 and bad.headers["Content-Type"].startswith("application/json")
    assert unknown.status_code == 404 and "DOGEUSDT" in unknown.json()["error"]
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


def test_depth_ladder(api: EngineApi) -> None:
    doc = get(api, BASE + "/depth").json()
    assert len(doc["bids"]) == 100 and len(doc["asks"]) == 100
    assert doc["bids"][0][0] < doc["asks"][0][0]
    assert len(get(api, BASE + "/depth", levels=3).json()["bids"]) == 3


def test_heatmap_is_binned(api: EngineApi) -> None:
    doc = get(api, BASE + "/heatmap", limit=50, bins=20).json()
    assert len(doc["ts"]) == 50 and len(doc["prices"]) == 20
    assert len(doc["z"]) == 20 and all(len(row) == 50 for row in doc["z"])
    assert any(v is not None and v > 0 for row in doc["z"] for v in row)


def test_openapi_lists_every_path(api: EngineApi) -> None:
    doc = get(api, "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    assert {
        "/health",
        "/metrics",
        "/api/v1/symbols",
        "/api/v1/{exchange}/{symbol}/state",
        "/api/v1/{exchange}/{symbol}/depth",
        "/api/v1/{exchange}/{symbol}/heatmap",
        "/api/v1/{exchange}/{symbol}/{table}",
        "/openapi.json",
        "/docs",
    } <= paths
    for item in doc["paths"].values():
        assert "200" in item["get"]["responses"]
    docs_page = get(api, "/docs")
    assert docs_page.status_code == 200 and "openapi.json" in docs_page.text


def test_port_in_use_raises_api_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = EngineApi(LiveStateStore(), port=port)
        with pytest.raises(ApiError):
            server.start()


def test_stop_then_start_again() -> None:
    server = EngineApi(LiveStateStore(), port=0)
    server.start()
    url = server.url
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=2)
    server.stop()  # idempotent


def test_encode_json_handles_numpy_and_nan() -> None:
    data = {"a": np.int64(3), "b": np.float32(1.5), "c": float("nan"), "d": np.arange(2)}
    assert encode_json(data) == b'{"a":3,"b":1.5,"c":null,"d":[0,1]}'
