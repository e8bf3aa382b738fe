"""Detection metrics and calibration, on numpy arrays (no framework needed)."""

from __future__ import annotations

import itertools
import math

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (rank-based, ties averaged); None with one class only."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # average ranks over ties
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1, len(scores)]
    for start, end in itertools.pairwise(boundaries):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The error rate where false-positive and false-negative rates meet; None with one class."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return None
    thresholds = np.unique(scores)
    best = (2.0, 1.0)
    for threshold in thresholds:
        predicted = scores >= threshold
        fpr = (predicted & ~labels).sum() / (~labels).sum()
        fnr = (~predicted & labels).sum() / labels.sum()
        if abs(fpr - fnr) < best[0]:
            best = (abs(fpr - fnr), (fpr + fnr) / 2.0)
    return float(best[1])


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float | None:
    labels = np.asarray(labels, dtype=bool)
    if not labels.any():
        return None
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    hits = labels[order]
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_k[hits].mean())


def at_false_positive_rate(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> dict | None:
    """The lowest threshold whose false-positive rate is at most `max_fpr`, and what it gives.

    Returns threshold, false-positive rate, recall and precision there; None with one class.
    With few negatives a small `max_fpr` may only be met by flagging nothing (recall 0).
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.all() or not labels.any():
        return None
    negatives = np.sort(scores[~labels])[::-1]
    allowed = int(np.floor(max_fpr * len(negatives)))  # negatives that may score at or above it
    # Strictly above the (allowed+1)-th highest negative score keeps the FPR within bounds.
    threshold = float(np.nextafter(negatives[allowed], np.inf)) if allowed < len(negatives) else float(negatives[-1])
    flagged = scores >= threshold
    true_positives = int((flagged & labels).sum())
    return {
        "max_fpr": max_fpr,
        "threshold": threshold,
        "fpr": float((flagged & ~labels).sum() / (~labels).sum()),
        "recall": float(true_positives / labels.sum()),
        "precision": float(true_positives / flagged.sum()) if flagged.any() else None,
        "negatives": int((~labels).sum()),
    }


def operating_points(labels: np.ndarray, scores: np.ndarray, fprs: tuple[float, ...] = (0.05, 0.01, 0.001)) -> list:
    """Thresholds at fixed false-positive rates (for model cards and policy thresholds)."""
    return [point for fpr in fprs if (point := at_false_positive_rate(labels, scores, fpr)) is not None]


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    labels = np.asarray(labels, dtype=bool)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if not len(labels):  # a set with nothing of this kind: no figures, rather than NaNs
        empty = (
            "auc",
            "eer",
            "average_precision",
            "accuracy_at_0_5",
            "log_loss",
            "brier",
            "at_fpr_1pct",
            "at_fpr_0_1pct",
        )
        return {"count": 0, "positives": 0, **dict.fromkeys(empty)}
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    log_loss = float(-np.mean(labels * np.log(clipped) + (~labels) * np.log(1 - clipped)))
    return {
        "count": len(labels),
        "positives": int(labels.sum()),
        "auc": roc_auc(labels, probabilities),
        "eer": equal_error_rate(labels, probabilities),
        "average_precision": average_precision(labels, probabilities),
        "accuracy_at_0_5": float(((probabilities >= 0.5) == labels).mean()),
        "log_loss": log_loss,
        "brier": float(np.mean((probabilities - labels) ** 2)),
        "at_fpr_1pct": at_false_positive_rate(labels, probabilities, 0.01),
        "at_fpr_0_1pct": at_false_positive_rate(labels, probabilities, 0.001),
    }


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling: (a, b) so that sigmoid(a * logit + b) is calibrated on these labels.

    Minimises the log loss against Platt's smoothed targets (never exactly 0 or 1, so a
    separable validation set cannot drive the scale to infinity). With one class only the
    identity (1, 0) is returned.
    """
    from scipy.optimize import minimize

    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    positives, negatives = labels.sum(), len(labels) - labels.sum()
    if positives == 0 or negatives == 0:
        return 1.0, 0.0
    targets = np.where(labels > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * logits + params[1]
        # log(1 + e^z) - t*z, written to stay finite for large |z|
        loss = np.sum(np.logaddexp(0.0, z) - targets * z)
        residual = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))) - targets
        return float(loss), np.array([np.sum(residual * logits), np.sum(residual)])

    result = minimize(loss_and_gradient, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = result.x
    if not (result.success and math.isfinite(a) and math.isfinite(b)):
        return 1.0, 0.0
    return float(a), float(b)
