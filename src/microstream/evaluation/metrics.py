"""Classification metrics of 3-class probability forecasts (numpy only).

``y`` holds class codes 0/1/2 (up, neutral, down); ``p`` is ``(n, 3)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microstream.models.labels import CLASSES

EPS = 1e-6


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities floored at 1e-6)."""
    picked = np.clip(p[np.arange(len(y)), y], EPS, 1.0)
    return float(-np.mean(np.log(picked)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Multi-class Brier score: mean over rows of ``Σ_k (p_k − 1{y=k})²``."""
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Share of rows whose most probable class is the true one."""
    return float(np.mean(np.argmax(p, axis=1) == y))


def confusion(y: np.ndarray, p: np.ndarray, k: int = 3) -> np.ndarray:
    """``(k, k)`` counts: rows = true class, columns = predicted (argmax) class."""
    out = np.zeros((k, k), dtype=np.int64)
    np.add.at(out, (y, np.argmax(p, axis=1)), 1)
    return out


def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in ``y`` or predicted."""
    cm = confusion(y, p)
    scores = []
    for k in range(cm.shape[0]):
        tp = cm[k, k]
        support, predicted = cm[k].sum(), cm[:, k].sum()
        if support == 0 and predicted == 0:
            continue
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Top-label reliability bins: mean confidence vs accuracy of the argmax class."""
    conf = np.max(p, axis=1)
    hit = (np.argmax(p, axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            out.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "n": int(mask.sum()),
                    "confidence": float(conf[mask].mean()),
                    "accuracy": float(hit[mask].mean()),
                }
            )
    return out


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top label (10 equal-width bins)."""
    n = len(y)
    return float(
        sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability(y, p, bins))
    )


def class_shares(y: np.ndarray) -> dict[str, float]:
    """Share of each class among ``y``."""
    counts = np.bincount(y, minlength=3)
    total = max(int(counts.sum()), 1)
    return {name: float(counts[i] / total) for i, name in enumerate(CLASSES)}


def all_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Every metric of the report for one forecast on one set of rows."""
    if len(y) == 0:
        return {"n": 0}
    return {
        "n": len(y),
        "log_loss": log_loss(y, p),
        "brier": brier(y, p),
        "accuracy": accuracy(y, p),
        "macro_f1": macro_f1(y, p),
        "ece": ece(y, p),
        "confusion": confusion(y, p).tolist(),
        "reliability": reliability(y, p),
    }


def log_loss_margin(
    y: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    block: int = 30,
    n_boot: int = 2000,
    seed: int = 7,
) -> dict[str, float]:
    """Log-loss of ``p`` minus that of ``q`` on the same rows, with a block-bootstrap interval.

    Consecutive rows (in the order given, i.e. time) share most of their
    ``h``-second label window, so rows are resampled in blocks of ``block``
    consecutive rows (moving-block bootstrap, fixed ``seed``). Returns ``diff``
    (negative: ``p`` is better), the 2.5 % and 97.5 % percentiles ``lo``/``hi``
    of the resampled differences, and ``p_not_better``, the share of resamples
    in which ``p`` is not better.
    """
    y = np.asarray(y, dtype=np.int64)
    rows = np.arange(len(y))
    d = -np.log(np.clip(p[rows, y], EPS, 1.0)) + np.log(np.clip(q[rows, y], EPS, 1.0))
    n = len(d)
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(n_boot, -(-n // block)))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]
    means = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {
        "diff": float(d.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "p_not_better": float(np.mean(means >= 0.0)),
    }
