"""Dashboard building blocks: learn texts, commentary, chart builders, launcher."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from microstream.dashboard import charts, data, launcher, learn
from microstream.dashboard.synthetic import filled_store


def test_parse_sections_takes_feature_headings_only() -> None:
    markdown = "\n".join(
        [
            "# Features",
            "intro",
            "## Book features",
            "group text",
            "## mid",
            "The middle.",
            "### Example",
            "an example",
            "## `ofi_10s` — order-flow imbalance",
            "Pressure.",
            "## empty_one",
            "## spread: what a round trip costs",
            "Ask minus bid.",
        ]
    )
    sections = learn.parse_sections(markdown)
    assert list(sections) == ["mid", "ofi_10s", "spread"]
    assert sections["mid"] == "The middle.\n### Example\nan example"
    assert sections["ofi_10s"] == "Pressure."


def test_load_texts_prefers_first_readable_file(tmp_path: Path) -> None:
    doc = tmp_path / "features.md"
    doc.write_text("## microprice\nLeans to the heavy side.\n", encoding="utf-8")
    texts, source = learn.load_texts([tmp_path / "missing.md", doc])
    assert source == str(doc)
    assert texts["microprice"] == "Leans to the heavy side."
    assert texts["mid"] == learn.BUILTIN["mid"]  # others fall back to built-in


def test_load_texts_falls_back_to_builtin(tmp_path: Path) -> None:
    bad = tmp_path / "features.md"
    bad.write_bytes(b"\xff\xfe\x00 not utf-8")
    texts, source = learn.load_texts([bad, tmp_path / "none.md"])
    assert source == "built-in" and texts == learn.BUILTIN


def test_candidate_paths_honour_env_and_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSTREAM_DOCS_DIR", "/somewhere")
    paths = learn.candidate_paths()
    assert paths[0] == Path("/somewhere/features.md")
    assert any(p.parts[-2:] == ("docs", "features.md") and "src" not in p.parts for p in paths)
    assert paths[-1].parts[-3:] == ("microstream", "docs", "features.md")


def test_commentary_ties_sentences_to_live_numbers() -> None:
    row = {
        "mid": 100.0,
        "microprice": 100.004,
        "imbalance_l1": 0.6,
        "buy_volume_1m": 3.0,
        "sell_volume_1m": 1.0,
        "vwap_1m": 99.0,
        "spread_bps": 0.5,
        "ofi_10s": -2.0,
        "volatility_1m": 0.0003,
    }
    assert "above mid" in (learn.commentary("microprice", row) or "")
    assert "bid side is heavier" in (learn.commentary("microprice", row) or "")
    assert "bids" in (learn.commentary("imbalance_l1", row) or "")
    assert "buyers took 75%" in (learn.commentary("flow_imbalance_1m", row) or "")
    assert "above the 1-minute VWAP" in (learn.commentary("vwap_1m", row) or "")
    assert "selling" in (learn.commentary("ofi_10s", row) or "")
    assert "3.00 bps" in (learn.commentary("volatility_1m", row) or "")
    below = {"mid": 100.0, "microprice": 99.99}
    assert "below mid" in (learn.commentary("microprice", below) or "")
    assert learn.commentary("microprice", {"mid": None}) is None
    assert learn.commentary("unknown", row) is None
    assert learn.commentary("mid", {}) is None


def synthetic_frames() -> dict[str, pd.DataFrame]:
    store, _ = filled_store(seconds=180)
    frames = {}
    for table in ("features", "trades", "bars_1m", "signals_1m", "regimes", "predictions"):
        frames[table] = data.frame(store.history("binance", "BTCUSDT", table), table)
    return frames


def test_chart_builders_draw_synthetic_data() -> None:
    f = synthetic_frames()
    feats = f["features"]
    figures = [
        charts.price_chart(feats, f["trades"]),
        charts.candles_chart(
            f["bars_1m"],
            f["signals_1m"],
            {"ts": 0, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5},
        ),
        charts.imbalance_chart(feats),
        charts.flow_chart(feats),
        charts.volatility_chart(feats),
        charts.spread_chart(feats),
        charts.regime_chart(f["regimes"], f["regimes"]),
        charts.forecast_history(f["predictions"]),
        charts.forecast_bars(f["predictions"].iloc[-1].to_dict()),
        charts.depth_chart({"bids": [[99.0, 1.0], [98.0, 2.0]], "asks": [[101.0, 1.0]]}),
        charts.latency_chart(f["trades"]),
    ]
    for fig in figures:
        assert isinstance(fig, go.Figure)
        assert len(fig.data) >= 1
        assert not fig.layout.annotations  # no "waiting" note
    price = figures[0]
    assert {t.name for t in price.data} >= {"mid", "microprice", "VWAP 1m", "buy trades"}


def test_chart_builders_wait_on_empty_data() -> None:
    empty = data.frame([], "features")
    for fig in (
        charts.price_chart(empty, empty),
        charts.candles_chart(empty, empty),
        charts.imbalance_chart(empty),
        charts.flow_chart(empty),
        charts.volatility_chart(empty),
        charts.spread_chart(empty),
        charts.regime_chart(empty),
        charts.forecast_bars(None),
        charts.forecast_history(empty),
        charts.depth_chart({}),
        charts.heatmap_chart({}),
        charts.latency_chart(empty),
    ):
        assert fig.layout.annotations, fig.layout.title.text


def test_partial_rows_with_nulls_do_not_break_charts() -> None:
    rows = [{"ts": 1_000_000_000 * i, "mid": None, "imbalance_l1": None} for i in range(5)]
    feats = data.frame(rows, "features")
    assert charts.price_chart(feats, data.frame([], "trades")).layout.annotations
    assert charts.imbalance_chart(feats).layout.annotations


def test_heatmap_chart_overlays_mid_and_trades() -> None:
    store, _ = filled_store(seconds=60)
    from microstream.live_state import bin_heatmap

    heat = bin_heatmap(store.heatmap_samples("binance", "BTCUSDT"), 30)
    trades = data.frame(store.history("binance", "BTCUSDT", "trades"), "trades")
    fig = charts.heatmap_chart(heat, trades)
    kinds = [t.type for t in fig.data]
    assert kinds[0] == "heatmap" and kinds.count("scatter") >= 2


def test_ladder_table_puts_asks_above_bids() -> None:
    table = charts.ladder_table(
        {"bids": [[99.0, 1.0], [98.0, 2.0]], "asks": [[101.0, 3.0], [102.0, 4.0]]}
    )
    assert table["price"].tolist() == [102.0, 101.0, 99.0, 98.0]
    assert table["ask size"].tolist()[:2] == [4.0, 3.0]


def test_scorecard_frame_reads_nested_and_flat_cards() -> None:
    nested = {
        "total": {
            "model": {"n": 10, "log_loss": 0.9, "hit_rate": 0.5},
            "prior": {"n": 10, "log_loss": 1.0, "hit_rate": 0.4},
            "always_neutral": {"n": 10, "log_loss": None, "hit_rate": 0.3},
            "beats_prior": True,
        },
        "recent": {"window": 600, "model": {"n": 5, "log_loss": 0.8, "hit_rate": 0.6}},
    }
    table = charts.scorecard_frame(nested)
    assert table[["window", "forecaster"]].values.tolist() == [
        ["total", "model"],
        ["total", "prior"],
        ["total", "always neutral"],
        ["recent", "model"],
    ]
    flat = charts.scorecard_frame({"n": 3, "hit_rate": 0.5})
    assert flat.iloc[0]["hit_rate"] == 0.5
    assert charts.scorecard_frame(None).empty


def test_warmup_items() -> None:
    assert charts.warmup_items({"done": 30, "needed": 60}) == [("warm-up", 0.5, "30 / 60")]
    items = charts.warmup_items({"feature_rows": 12, "forecast": 0.25, "hmm_status": "fitting"})
    assert items == [
        ("feature rows", None, "12"),
        ("forecast", 0.25, "25%"),
        ("hmm status", None, "fitting"),
    ]


def test_launcher_only_for_local_urls_and_runs_the_engine_command() -> None:
    assert launcher.can_launch("http://127.0.0.1:8765")
    assert launcher.can_launch("http://localhost:9000")
    assert not launcher.can_launch("http://10.1.2.3:8765")
    cmd = launcher.engine_command("sim")
    assert cmd[0] == sys.executable
    assert cmd[-4:] == ["run", "--no-dashboard", "--source", "sim"]


def test_start_engine_passes_api_address_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "fake_engine.py"
    script.write_text(
        "import os\nprint('engine', os.environ['MICROSTREAM_API_HOST'],"
        " os.environ['MICROSTREAM_API_PORT'])\n"
    )
    monkeypatch.setattr(launcher, "engine_command", lambda source: [sys.executable, str(script)])
    engine = launcher.start_engine("sim", "http://127.0.0.1:9123")
    assert engine.process.wait(timeout=30) == 0
    assert not engine.running()
    assert engine.log_tail() == "engine 127.0.0.1 9123"
    engine.log_path.unlink()
