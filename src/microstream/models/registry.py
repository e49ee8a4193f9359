"""Versioned model files with a JSON sidecar and a content hash.

A saved model is two files in one directory::

    <name>-v<version>.pkl    the pickled model object (the payload)
    <name>-v<version>.json   its metadata: name, version, kind, created_at,
                             training data, feature names, metrics, sha256

The sidecar is written last (both files atomically: temporary name, then
rename), so a sidecar whose payload hash matches means a complete file.
:func:`load_model` recomputes the payload's SHA-256 and refuses a file whose
hash differs from the sidecar's (:class:`~microstream.errors.ModelError`).

The hash protects against corruption and half-written files, not against a
malicious file: only load model files you trust (pickle runs code).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from microstream.errors import ModelError

log = logging.getLogger(__name__)

PAYLOAD_SUFFIX = ".pkl"
SIDECAR_SUFFIX = ".json"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.]+$")
_FILE_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-v(?P<version>\d+)\.json$")
_META_KEYS = ("training_data", "feature_names", "metrics")


@dataclass(frozen=True)
class ModelMeta:
    """The sidecar of a saved model.

    Attributes:
        name: model name (letters, digits, ``_`` and ``.``), e.g. ``forecast``.
        version: integer version, 1 for the first file of that name in a directory.
        kind: what the payload is (``forecast``, ``hmm``, ``isolation_forest``, ...).
        created_at: ISO-8601 UTC time of saving.
        training_data: free description of the training data.
        feature_names: input feature names, in the model's order.
        metrics: evaluation figures (for example out-of-sample log-loss).
        sha256: hex SHA-256 of the payload file.
        extra: every other metadata key given to :func:`save_model`.
    """

    name: str
    version: int
    kind: str
    created_at: str
    training_data: Any = None
    feature_names: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """``name@version``, the model id written in ``predictions.model``."""
        return f"{self.name}@{self.version}"

    def to_json(self) -> str:
        """The sidecar's text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        """Parse a sidecar dictionary (:class:`ModelError` if fields are missing)."""
        try:
            return cls(
                name=str(data["name"]),
                version=int(data["version"]),
                kind=str(data["kind"]),
                created_at=str(data["created_at"]),
                training_data=data.get("training_data"),
                feature_names=[str(n) for n in data.get("feature_names") or []],
                metrics=dict(data.get("metrics") or {}),
                sha256=str(data["sha256"]),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed model metadata: {exc}") from exc


def default_models_dir() -> Path:
    """The package's shipped default models (``microstream/models/default``)."""
    return Path(__file__).resolve().parent / "default"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; model files are shareable data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_versions(directory: str | os.PathLike[str], name: str) -> list[tuple[int, Path]]:
    """``(version, payload path)`` of every saved version of ``name``, ascending."""
    root = Path(directory)
    if not root.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for sidecar in root.glob(f"{name}-v*{SIDECAR_SUFFIX}"):
        match = _FILE_RE.match(sidecar.name)
        if match is None or match.group("name") != name:
            continue
        payload = sidecar.with_suffix(PAYLOAD_SUFFIX)
        if payload.is_file():
            found.append((int(match.group("version")), payload))
    return sorted(found)


def save_model(
    obj: Any,
    directory: str | os.PathLike[str],
    name: str,
    kind: str,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Pickle ``obj`` as the next version of ``name`` in ``directory``; return the payload path.

    ``metadata`` may hold ``training_data``, ``feature_names`` and ``metrics``
    (stored as sidecar fields) and any other JSON-serialisable key (stored
    under ``extra``).
    """
    if not _NAME_RE.match(name):
        raise ModelError(f"invalid model name {name!r} (use letters, digits, '_' and '.')")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    versions = list_versions(root, name)
    version = versions[-1][0] + 1 if versions else 1
    payload_path = root / f"{name}-v{version}{PAYLOAD_SUFFIX}"
    try:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ModelError(f"model {name!r} cannot be pickled: {exc}") from exc
    _atomic_write(payload_path, payload)
    meta_in = dict(metadata or {})
    meta = ModelMeta(
        name=name,
        version=version,
        kind=kind,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training_data=meta_in.get("training_data"),
        feature_names=[str(n) for n in meta_in.get("feature_names") or []],
        metrics=dict(meta_in.get("metrics") or {}),
        sha256=hashlib.sha256(payload).hexdigest(),
        extra={k: v for k, v in meta_in.items() if k not in _META_KEYS},
    )
    _atomic_write(payload_path.with_suffix(SIDECAR_SUFFIX), meta.to_json().encode())
    return payload_path


def read_meta(path: str | os.PathLike[str]) -> ModelMeta:
    """The sidecar of a model (``path`` is the payload or the sidecar)."""
    sidecar = Path(path).with_suffix(SIDECAR_SUFFIX)
    try:
        data = json.loads(sidecar.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"model metadata not found: {sidecar}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"model metadata unreadable: {sidecar}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"model metadata is not an object: {sidecar}")
    return ModelMeta.from_dict(data)


def load_model(path: str | os.PathLike[str]) -> tuple[Any, ModelMeta]:
    """Load a saved model after checking its payload hash against the sidecar.

    Raises:
        ModelError: the payload or sidecar is missing, the hash differs, or the
            payload cannot be unpickled.
    """
    payload_path = Path(path).with_suffix(PAYLOAD_SUFFIX)
    meta = read_meta(payload_path)
    try:
        payload = payload_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file unreadable: {payload_path}: {exc}") from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != meta.sha256:
        raise ModelError(
            f"model file {payload_path} is corrupt: sha256 {actual} != recorded {meta.sha256}"
        )
    caught: list[Warning | str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _this_thread_into(caught, warnings.showwarning)
        try:
            obj = pickle.loads(payload)
        except Exception as exc:  # unpickling can raise nearly anything
            raise ModelError(f"model file {payload_path} cannot be unpickled: {exc}") from exc
    for message in caught:  # e.g. saved with another scikit-learn version
        log.warning("loading %s: %s", payload_path.name, message)
    return obj, meta


def _this_thread_into(
    caught: list[Warning | str], other: Callable[..., None]
) -> Callable[..., None]:
    """A ``showwarning`` that keeps this thread's warnings and passes on every other thread's.

    ``warnings.catch_warnings`` is process-wide: without this, a warning that
    another thread (the API server, the feed) raised while a model loads would
    be reported as the model's.
    """
    loader = threading.get_ident()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if threading.get_ident() == loader:
            caught.append(message)
        else:
            other(message, category, filename, lineno, file, line)

    return show


def latest_model(directory: str | os.PathLike[str], name: str) -> Path | None:
    """Payload path of the highest version of ``name`` in ``directory`` (None if none)."""
    versions = list_versions(directory, name)
    return versions[-1][1] if versions else None


def resolve_model(name: str, models_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The latest ``name`` in ``models_dir``, else the package's shipped default."""
    if models_dir is not None:
        found = latest_model(models_dir, name)
        if found is not None:
            return found
    return latest_model(default_models_dir(), name)
