"""Model directories: exporting SavedModels with cards, and finding the one to serve.

Layout: `<model_dir>/<modality>/<version>/` holds a SavedModel and `model_card.json`.
Versions sit side by side; the newest (by version string, which training makes a UTC
timestamp so it sorts) is served unless a version is asked for.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from models.signature import OUTPUT_NAME, SIGNATURES

CARD_FILE = "model_card.json"


@dataclasses.dataclass(frozen=True)
class DeployedModel:
    """A model version chosen to serve one modality."""

    modality: str
    name: str
    version: str
    path: str
    card: dict[str, Any]


def export_saved_model(model, path: Path, platt_scale: float, platt_bias: float) -> None:
    """Exports `model` (inputs -> logit) with a calibrated `serving_default` signature.

    Outputs: `probability` = sigmoid(platt_scale * logit + platt_bias) [batch] and the raw
    `logit` [batch]. Inputs are named and typed as in `models.signature.SIGNATURES`.
    """
    import tensorflow as tf

    modality_specs = next(specs for specs in SIGNATURES.values() if {s.name for s in specs} == set(model.input))
    input_signature = [tf.TensorSpec([None, *s.shape], tf.as_dtype(s.dtype), name=s.name) for s in modality_specs]
    names = [s.name for s in modality_specs]

    class _Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.scale = tf.Variable(platt_scale, dtype=tf.float32, trainable=False)
            self.bias = tf.Variable(platt_bias, dtype=tf.float32, trainable=False)

        @tf.function(input_signature=input_signature, autograph=False)
        def serve(self, *tensors):
            logit = self.model(dict(zip(names, tensors)), training=False)
            return {OUTPUT_NAME: tf.sigmoid(self.scale * logit + self.bias), "logit": logit}

    module = _Serving()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def write_card(path: Path, card: dict[str, Any]) -> None:
    (path / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in version.replace("T", ".").replace("-", ".").split("."))


def resolve_model(model_dir: str | Path, modality: str, version: str | None = None) -> DeployedModel | None:
    """The model to serve for `modality`: `version` if given, else the newest; None if none.

    Raises:
        FileNotFoundError: a version was asked for and is not there.
        ValueError: the chosen version has no model card or its card is for another modality.
    """
    root = Path(model_dir) / modality
    if version is not None:
        candidates = [root / version]
        if not candidates[0].is_dir():
            raise FileNotFoundError(f"{modality} model version {version!r} not found under {root}")
    else:
        candidates = sorted(
            (p for p in root.glob("*") if (p / "saved_model.pb").exists()),
            key=lambda p: _version_key(p.name),
        )
        if not candidates:
            return None
    chosen = candidates[-1]
    card_path = chosen / CARD_FILE
    if not card_path.exists():
        raise ValueError(f"{chosen} has no {CARD_FILE}: every served model needs its card")
    card = json.loads(card_path.read_text())
    if card.get("modality", modality) != modality:
        raise ValueError(f"{card_path} describes a {card.get('modality')} model, found under {modality}/")
    return DeployedModel(
        modality=modality,
        name=str(card.get("name", f"{modality}_detector")),
        version=str(card.get("version", chosen.name)),
        path=str(chosen),
        card=card,
    )
