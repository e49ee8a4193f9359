"""`microstream evaluate` and `microstream train` end to end on a small synthetic lake."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from microstream.cli import main
from microstream.evaluation.synthetic import synthetic_features
from microstream.models.predictor import load_forecast_model
from microstream.models.registry import latest_model, read_meta


def _write(lake: Path, table: str, frame: pl.DataFrame, exchange: str, symbol: str) -> None:
    part = lake / table / f"exchange={exchange}" / f"symbol={symbol}" / "date=2023-11-14"
    part.mkdir(parents=True, exist_ok=True)
    frame.drop("exchange", "symbol", strict=False).write_parquet(part / "part-0.parquet")


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lakes")
    train, hold = root / "train", root / "hold"
    for i, symbol in enumerate(("BTCUSDT", "ETHUSDT")):
        frame = synthetic_features(500, seed=30 + i, symbol=symbol)
        _write(train, "features", frame, "binance", symbol)
    truth = frame.select("ts", pl.lit("neutral").alias("regime"))
    _write(
        train,
        "sim_truth",
        truth.with_columns(pl.lit("ETHUSDT").alias("symbol")),
        "binance",
        "ETHUSDT",
    )
    _write(
        hold,
        "features",
        synthetic_features(300, seed=40, symbol="BTCUSD_PERP"),
        "binance-coinm",
        "BTCUSD_PERP",
    )
    return train, hold


def test_evaluate_writes_report_with_all_metrics(
    lakes: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, hold = lakes
    out = tmp_path / "reports"
    code = main(
        [
            "evaluate",
            "--lake",
            str(train),
            "--holdout-lake",
            str(hold),
            "--out",
            str(out),
            "--folds",
            "3",
            "--no-hgb",
        ]
    )
    assert code == 0
    for name in (
        "report.json",
        "report.md",
        "reliability.png",
        "confusion.png",
        "logloss_by_fold.png",
    ):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    fc = report["forecast"]
    metrics = fc["walk_forward"]["metrics"]
    for name in (
        "model",
        "uniform",
        "prior",
        "always_neutral",
        "sign_microprice",
        "sign_ofi",
        "prior_evaluated_rows",
    ):
        assert {
            "log_loss",
            "brier",
            "accuracy",
            "macro_f1",
            "ece",
            "confusion",
            "reliability",
        } <= set(metrics[name])
    assert fc["walk_forward"]["verdict"]["beats"]["prior"] is True  # synthetic data has an edge
    assert "holdout" in fc and fc["holdout"]["data"]["rows"] > 200
    assert fc["per_regime"] and fc["per_symbol"]
    assert fc["inference"]["median_us"] > 0
    assert len(fc["folds"]) == 3
    for fold in fc["folds"]:
        assert fold["train_end_ns"] + 10 * 10**9 < fold["test_start_ns"]
    regimes = report["regimes"]
    assert regimes["sim"]["points"] > 0 and regimes["sim"]["balanced_accuracy"] is not None
    assert "forward_return" in regimes and "durations" in regimes
    md = (out / "report.md").read_text()
    assert "Verdict" in md and "reliability.png" in md
    assert "lower than every baseline" in md or "does not beat" in md
    assert "block-bootstrap interval" in md
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "logistic" in summary["selected"]


def test_train_saves_a_loadable_model_and_card(lakes: tuple[Path, Path], tmp_path: Path) -> None:
    train, hold = lakes
    models = tmp_path / "models"
    code = main(
        [
            "train",
            "--lake",
            str(train),
            "--holdout-lake",
            str(hold),
            "--out",
            str(models),
            "--report",
            str(tmp_path / "report"),
            "--folds",
            "2",
            "--no-hgb",
        ]
    )
    assert code == 0
    path = latest_model(models, "forecast")
    assert path is not None
    model = load_forecast_model(str(path))
    assert model.tag == "forecast@1"
    meta = read_meta(path)
    assert meta.metrics["walk_forward"]["model"]["log_loss"] > 0
    assert meta.training_data["rows"] > 800
    card = (models / "MODEL_CARD.md").read_text()
    assert "forecast@1" in card and "Hold-out" in card
    assert path.stat().st_size < 1_000_000
