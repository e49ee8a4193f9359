"""Model registry: versioning, sidecar metadata, hash verification."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from microstream.errors import ModelError
from microstream.models.registry import (
    default_models_dir,
    latest_model,
    load_model,
    read_meta,
    resolve_model,
    save_model,
)


def test_save_then_load_round_trips_object_and_metadata(tmp_path: Path) -> None:
    obj = {"coef": [1.0, 2.0], "name": "toy"}
    path = save_model(
        obj,
        tmp_path,
        "forecast",
        "forecast",
        {
            "feature_names": ["a", "b"],
            "metrics": {"log_loss": 0.9},
            "training_data": "x",
            "seed": 7,
        },
    )
    loaded, meta = load_model(path)
    assert loaded == obj
    assert meta.name == "forecast"
    assert meta.version == 1
    assert meta.kind == "forecast"
    assert meta.feature_names == ["a", "b"]
    assert meta.metrics == {"log_loss": 0.9}
    assert meta.training_data == "x"
    assert meta.extra == {"seed": 7}
    assert meta.tag == "forecast@1"
    assert len(meta.sha256) == 64


def test_versions_increase_and_latest_picks_highest(tmp_path: Path) -> None:
    assert latest_model(tmp_path, "m") is None
    first = save_model(1, tmp_path, "m", "toy")
    second = save_model(2, tmp_path, "m", "toy")
    save_model(3, tmp_path, "other", "toy")
    assert first.name == "m-v1.pkl"
    assert second.name == "m-v2.pkl"
    assert latest_model(tmp_path, "m") == second
    assert load_model(latest_model(tmp_path, "m") or first)[0] == 2


def test_tampered_payload_is_rejected(tmp_path: Path) -> None:
    path = save_model([1, 2, 3], tmp_path, "m", "toy")
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt"):
        load_model(path)


def test_tampered_sidecar_hash_is_rejected(tmp_path: Path) -> None:
    path = save_model([1, 2, 3], tmp_path, "m", "toy")
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["sha256"] = "0" * 64
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="corrupt"):
        load_model(path)


def test_missing_or_malformed_sidecar_is_a_model_error(tmp_path: Path) -> None:
    path = save_model("x", tmp_path, "m", "toy")
    sidecar = path.with_suffix(".json")
    sidecar.write_text("{not json")
    with pytest.raises(ModelError):
        load_model(path)
    sidecar.write_text(json.dumps({"name": "m"}))
    with pytest.raises(ModelError, match="malformed"):
        read_meta(path)
    sidecar.unlink()
    with pytest.raises(ModelError, match="not found"):
        load_model(path)


def test_garbage_payload_with_matching_hash_is_a_model_error(tmp_path: Path) -> None:
    import hashlib

    path = save_model("x", tmp_path, "m", "toy")
    path.write_bytes(b"not a pickle")
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["sha256"] = hashlib.sha256(b"not a pickle").hexdigest()
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="unpickled"):
        load_model(path)


def test_invalid_name_and_unpicklable_object_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="invalid model name"):
        save_model(1, tmp_path, "bad/name", "toy")
    with pytest.raises(ModelError, match="pickled"):
        save_model(lambda: 1, tmp_path, "m", "toy")


def test_load_accepts_the_sidecar_path(tmp_path: Path) -> None:
    path = save_model(42, tmp_path, "m", "toy")
    assert load_model(path.with_suffix(".json"))[0] == 42


def test_resolve_prefers_models_dir_then_package_default(tmp_path: Path) -> None:
    assert resolve_model("no_such_model_name", tmp_path) is None
    path = save_model(1, tmp_path, "no_such_model_name", "toy")
    assert resolve_model("no_such_model_name", tmp_path) == path
    assert default_models_dir().name == "default"


class _WarnsWhileLoading:
    """Unpickles with a warning of its own while another thread warns too."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_warn_from_both_threads, ())


def _warn_from_both_threads() -> dict[str, str]:
    other = threading.Thread(target=lambda: warnings.warn("from the API thread", stacklevel=1))
    other.start()
    other.join()
    warnings.warn("saved with another library version", UserWarning, stacklevel=1)
    return {"loaded": "yes"}


def test_a_load_logs_its_own_warnings_and_passes_on_other_threads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        shown.append(str(message))

    path = save_model(_WarnsWhileLoading(), tmp_path, "toy", "toy", {})
    monkeypatch.setattr(warnings, "showwarning", show)
    with caplog.at_level(logging.WARNING, logger="microstream.models.registry"):
        obj, _ = load_model(path)
    assert obj == {"loaded": "yes"}
    assert "saved with another library version" in caplog.text
    assert "from the API thread" not in caplog.text
    assert shown == ["from the API thread"]
    assert warnings.showwarning is show  # restored after the load
