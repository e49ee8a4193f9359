"""Dashboard: headless AppTest of every page, online (synthetic engine API) and offline."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from microstream.api import EngineApi
from microstream.commands.dashboard import app_path, streamlit_command
from microstream.dashboard import data
from microstream.dashboard.synthetic import filled_store

PAGES = {
    "live": "views/live.py",
    "heatmap": "views/heatmap.py",
    "health": "views/health.py",
    "learn": "views/learn.py",
}
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def engine_url() -> Iterator[str]:
    store, _ = filled_store(("BTCUSDT", "ETHUSDT"), seconds=240)
    with EngineApi(store, port=0) as server:
        yield server.url


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def open_page(page: str) -> AppTest:
    data.clear_cache()
    at = AppTest.from_file(str(app_path()), default_timeout=TIMEOUT_S)
    at.run()
    if page != "live":
        at.switch_page(PAGES[page])
        at.run()
    return at


def texts(at: AppTest) -> str:
    parts = [
        e.value for kind in ("title", "subheader", "markdown", "caption") for e in at.get(kind)
    ]
    parts += [str(e.value) for kind in ("error", "warning", "info") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in texts(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_with_live_data(
    page: str, engine_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", engine_url)
    at = open_page(page)
    assert_clean(at)
    assert any("SIMULATED DATA" in e.value for e in at.error)
    assert at.sidebar.selectbox[0].options == ["binance:BTCUSDT", "binance:ETHUSDT"]
    expected_charts = {"live": 10, "heatmap": 1, "health": 1, "learn": 0}[page]
    assert len(at.get("plotly_chart")) >= expected_charts
    assert not at.warning  # no offline message


def test_live_page_shows_headline_numbers(engine_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", engine_url)
    at = open_page("live")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Mid"] not in ("", "—")
    assert labels["Regime"] != "—"
    assert labels["Forecast"] in {"up", "neutral", "down"}
    assert "Price ladder" in texts(at)
    assert len(at.dataframe) == 2  # price ladder and scorecard


def test_symbol_selector_switches_symbol(engine_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", engine_url)
    at = open_page("live")
    assert any("BTCUSDT" in s.value for s in at.subheader)
    at.sidebar.selectbox[0].select("binance:ETHUSDT").run()
    assert_clean(at)
    assert any("ETHUSDT" in s.value for s in at.subheader)


def test_health_page_shows_feed_and_ledger(
    engine_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", engine_url)
    at = open_page("health")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Status"] == "OK"
    assert labels["Connection"] == "connected"
    assert labels["Latency (median)"].endswith("ms")
    assert "Book-sync ledger" in texts(at)


def test_learn_page_ties_texts_to_live_values(
    engine_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", engine_url)
    at = open_page("learn")
    body = texts(at)
    assert "microprice" in body
    assert any("Microprice is" in i.value or "Microprice equals" in i.value for i in at.info)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_without_engine_offers_launcher(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", dead_url())
    at = open_page(page)
    assert_clean(at)
    assert any("No engine answers" in w.value for w in at.warning)
    labels = [b.label for b in at.button]
    assert "Start simulator" in labels
    assert any(label.startswith("Start engine") for label in labels)


def test_engine_going_away_shows_offline_since(
    engine_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", engine_url)
    at = open_page("live")
    assert not at.warning
    monkeypatch.setenv("MICROSTREAM_API_URL", dead_url())
    data.clear_cache()
    at.run()
    assert_clean(at)
    assert any("Engine offline since" in w.value for w in at.warning)


def test_remote_engine_gets_no_launch_buttons(monkeypatch: pytest.MonkeyPatch) -> None:
    # 127.0.0.2 stands for another machine: only 127.0.0.1/localhost/::1 count as local.
    monkeypatch.setenv("MICROSTREAM_API_URL", dead_url().replace("127.0.0.1", "127.0.0.2"))
    at = open_page("health")
    assert_clean(at)
    assert not at.button
    assert any("microstream run --no-dashboard" in i.value for i in at.info)


def test_streamlit_command_is_headless_and_private() -> None:
    cmd = streamlit_command(8501)
    assert cmd[cmd.index("run") + 1] == str(app_path())
    assert "--server.headless=true" in cmd
    assert "--browser.gatherUsageStats=false" in cmd
    assert "--server.address=127.0.0.1" in cmd
    assert "--server.port=8501" in cmd
