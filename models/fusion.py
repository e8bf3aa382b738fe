"""Score fusion: content evidence first, context bounded, one content and one fused score per item.

Two scores leave fusion, and the policy reads them for different things:

* `content_score`: what the content detectors measured, the larger of the visual and audio
  calibrated probabilities that did not abstain (a video is synthetic when either its
  pictures or its voice are; each modality is calibrated on its own label). None when no
  content modality voted: then no automated removal is possible (`transforms.policy`).
* `fused_score`: the content logit plus the metadata/context model's logit, fitted as a
  logistic regression whose coefficients are bounded (`fit_fusion`): more content evidence
  never lowers it, and the metadata logit is clipped to +-`CONTEXT_LOGIT_BOUND` and weighted
  by at most 1, so context moves the fused logit by at most that bound. Metadata and account
  context are what an uploader controls most easily (strip the tags, post from an aged
  account) and what is often simply absent; they may raise an item to a label or to review,
  never decide a removal, and never erase strong content evidence (the policy removes on the
  content score, not on this one).

The fitted model is JSON beside a model card: `<model_dir>/fusion/<version>/fusion.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from schemas.vocabulary import CONTENT_MODALITIES, MODALITIES

PART_MODALITIES = MODALITIES
FUSION_FEATURES = ("content_logit", "content_present", "metadata_logit", "metadata_present")
# Largest move of the fused logit that metadata and account context can cause: 2.0 takes an
# even item to 0.88 or 0.12, enough to reach a label or review band, not certainty.
CONTEXT_LOGIT_BOUND = 2.0
# Coefficient bounds of the fit, per feature: content can only push towards synthetic;
# metadata's weight stays within [0, 1] of its clipped logit.
COEFFICIENT_BOUNDS = {
    "content_logit": (0.0, None),
    "content_present": (None, None),
    "metadata_logit": (0.0, 1.0),
    "metadata_present": (-CONTEXT_LOGIT_BOUND, CONTEXT_LOGIT_BOUND),
}
_EPSILON = 1e-6
FUSION_FILE = "fusion.json"
FALLBACK_METHOD, FALLBACK_VERSION = "content_first", "2"
FALLBACK_METADATA_WEIGHT = 0.5


def logit(probability: float) -> float:
    p = min(max(probability, _EPSILON), 1.0 - _EPSILON)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 500.0), -500.0)))


def content_score(probabilities: Mapping[str, float | None]) -> float | None:
    """The strongest content evidence: max of the voting visual/audio probabilities, or None."""
    votes = [p for m in CONTENT_MODALITIES if (p := probabilities.get(m)) is not None]
    return max(votes) if votes else None


def bounded_metadata_logit(probability: float | None) -> float:
    return 0.0 if probability is None else max(-CONTEXT_LOGIT_BOUND, min(CONTEXT_LOGIT_BOUND, logit(probability)))


def fusion_inputs(probabilities: Mapping[str, float | None]) -> np.ndarray:
    """The fusion feature vector of one item (order: FUSION_FEATURES). Abstained modalities
    are passed as None: they are absent, not "real"."""
    content = content_score(probabilities)
    metadata = probabilities.get("metadata")
    return np.asarray(
        [
            0.0 if content is None else logit(content),
            float(content is not None),
            bounded_metadata_logit(metadata),
            float(metadata is not None),
        ],
        dtype=np.float64,
    )


@dataclasses.dataclass(frozen=True)
class FusedScores:
    content: float | None
    fused: float | None


@dataclasses.dataclass(frozen=True)
class FusionModel:
    """A fitted logistic fusion: P(synthetic) = sigmoid(coefficients . x + intercept)."""

    name: str
    version: str
    coefficients: tuple[float, ...]
    intercept: float

    def predict(self, probabilities: Mapping[str, float | None]) -> float | None:
        """The fused probability; None when no modality voted at all."""
        if all(probabilities.get(m) is None for m in PART_MODALITIES):
            return None
        return _sigmoid(float(np.dot(self.coefficients, fusion_inputs(probabilities)) + self.intercept))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "features": list(FUSION_FEATURES),
            "coefficients": list(self.coefficients),
            "intercept": self.intercept,
            "context_logit_bound": CONTEXT_LOGIT_BOUND,
        }

    @classmethod
    def from_dict(cls, document: Mapping) -> FusionModel:
        if list(document.get("features", [])) != list(FUSION_FEATURES):
            raise ValueError(
                f"fusion model features {document.get('features')} differ from {list(FUSION_FEATURES)} "
                "(a fusion fitted by an older version; retrain with python -m training.train)"
            )
        model = cls(
            name=str(document["name"]),
            version=str(document["version"]),
            coefficients=tuple(float(c) for c in document["coefficients"]),
            intercept=float(document["intercept"]),
        )
        check_bounds(model.coefficients)
        return model

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / FUSION_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> FusionModel:
        from models import storage

        return cls.from_dict(json.loads(storage.read_bytes(storage.join(directory, FUSION_FILE))))


def check_bounds(coefficients: tuple[float, ...]) -> None:
    """Raises ValueError when a coefficient breaks its bound: a fusion file edited or fitted
    elsewhere must not let context outweigh content."""
    for name, value in zip(FUSION_FEATURES, coefficients):
        low, high = COEFFICIENT_BOUNDS[name]
        if (low is not None and value < low - 1e-9) or (high is not None and value > high + 1e-9):
            raise ValueError(f"fusion coefficient {name}={value} is outside its bound [{low}, {high}]")


def fuse(probabilities: Mapping[str, float | None], model: FusionModel | None = None) -> FusedScores:
    """Content and fused scores of one item from its voting modalities' probabilities.

    Without a fitted model the fused logit is the content logit plus half the bounded
    metadata logit (method `content_first/2`).
    """
    content = content_score(probabilities)
    if model is not None:
        return FusedScores(content, model.predict(probabilities))
    metadata = probabilities.get("metadata")
    if content is None and metadata is None:
        return FusedScores(None, None)
    z = (0.0 if content is None else logit(content)) + FALLBACK_METADATA_WEIGHT * bounded_metadata_logit(metadata)
    return FusedScores(content, _sigmoid(z))


def fit_fusion(features: np.ndarray, labels: np.ndarray, name: str, version: str, l2: float = 1.0) -> FusionModel:
    """Fits the bounded logistic fusion with an L2 penalty (it sees a validation split)."""
    from scipy.optimize import minimize

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = params[:-1], params[-1]
        z = features @ weights + bias
        loss = np.sum(np.logaddexp(0.0, z) - labels * z) + 0.5 * l2 * np.sum(weights**2)
        residual = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))) - labels
        gradient = np.r_[features.T @ residual + l2 * weights, residual.sum()]
        return float(loss), gradient

    bounds = [COEFFICIENT_BOUNDS[name] for name in FUSION_FEATURES] + [(None, None)]
    start = np.zeros(features.shape[1] + 1)
    result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return FusionModel(name, version, tuple(float(w) for w in result.x[:-1]), float(result.x[-1]))
