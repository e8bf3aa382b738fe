"""Score fusion: calibrated modality scores plus provenance, one probability per item.

The fusion model is a logistic regression over a fixed, documented vector
(`FUSION_FEATURES`): each modality's calibrated logit and a presence indicator (a missing
modality contributes a zero logit and a zero indicator, so it abstains rather than voting
"real"), plus provenance signals read from the item's metadata vector (declared AI, the IPTC
digital source type, C2PA). It is small enough to audit by reading its coefficients, and it
is stored as JSON beside a model card: `<model_dir>/fusion/<version>/fusion.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from models.signature import METADATA_DIM

PART_MODALITIES = ("visual", "audio", "metadata")
FUSION_FEATURES = (
    "visual_logit",
    "visual_present",
    "audio_logit",
    "audio_present",
    "metadata_logit",
    "metadata_present",
    "declared_ai",
    "provenance_ai",
    "provenance_capture",
    "c2pa_present",
    "c2pa_valid",
)
# Slots of the metadata vector (transforms/metadata.py) that carry provenance.
_PROVENANCE_SLOTS = {"declared_ai": 10, "provenance_ai": 6, "provenance_capture": 7, "c2pa_present": 8, "c2pa_valid": 9}
_EPSILON = 1e-6
FUSION_FILE = "fusion.json"


def logit(probability: float) -> float:
    p = min(max(probability, _EPSILON), 1.0 - _EPSILON)
    return math.log(p / (1.0 - p))


def fusion_inputs(probabilities: Mapping[str, float | None], metadata_vector: np.ndarray | None) -> np.ndarray:
    """The fusion feature vector of one item (order: FUSION_FEATURES)."""
    values: list[float] = []
    for modality in PART_MODALITIES:
        probability = probabilities.get(modality)
        values += [0.0, 0.0] if probability is None else [logit(probability), 1.0]
    vector = metadata_vector if metadata_vector is not None else np.zeros(METADATA_DIM, np.float32)
    values += [float(vector[slot]) for slot in _PROVENANCE_SLOTS.values()]
    return np.asarray(values, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class FusionModel:
    """A fitted logistic fusion: P(synthetic) = sigmoid(coefficients . x + intercept)."""

    name: str
    version: str
    coefficients: tuple[float, ...]
    intercept: float

    def predict(self, probabilities: Mapping[str, float | None], metadata_vector: np.ndarray | None) -> float | None:
        """The fused probability; None when no modality was scored at all."""
        if all(probabilities.get(m) is None for m in PART_MODALITIES):
            return None
        z = float(np.dot(self.coefficients, fusion_inputs(probabilities, metadata_vector)) + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(z, 500.0), -500.0)))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "features": list(FUSION_FEATURES),
            "coefficients": list(self.coefficients),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, document: Mapping) -> FusionModel:
        if list(document.get("features", [])) != list(FUSION_FEATURES):
            raise ValueError(f"fusion model features {document.get('features')} differ from {list(FUSION_FEATURES)}")
        return cls(
            name=str(document["name"]),
            version=str(document["version"]),
            coefficients=tuple(float(c) for c in document["coefficients"]),
            intercept=float(document["intercept"]),
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / FUSION_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> FusionModel:
        return cls.from_dict(json.loads((Path(directory) / FUSION_FILE).read_text()))


def fit_fusion(features: np.ndarray, labels: np.ndarray, name: str, version: str, l2: float = 1.0) -> FusionModel:
    """Fits the logistic fusion with an L2 penalty (the data it sees is small: a validation split)."""
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

    start = np.zeros(features.shape[1] + 1)
    result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B")
    return FusionModel(name, version, tuple(float(w) for w in result.x[:-1]), float(result.x[-1]))
