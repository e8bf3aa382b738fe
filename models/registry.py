"""Model directories: exporting SavedModels with cards, and finding the one to serve.

Layout: `<model_dir>/<modality>/<version>/` holds a SavedModel and `model_card.json`.
Versions sit side by side. What is served, unless a version is asked for, is the registry's
current choice: the versions `<model_dir>/current.json` names (written by a promotion or a
rollback, `training.release`), else the newest (by version string, which training makes a UTC
timestamp so it sorts). A streaming job's model refresh reads the same choice. A challenger in
shadow (`<model_dir>/shadow.json`, `deepfake release shadow`) scores beside it until its date.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from models import signature, storage
from models.signature import OUTPUT_NAME, SIGNATURES

MODALITY_NAMES = tuple(SIGNATURES)
# The model set this repository serves by default (trained by `make model-report`, described in
# reports/MODEL_REPORT.md). It ships inside the package, so Dataflow workers have it too.
SERVED_MODEL_DIR = Path(__file__).parent / "served"

CARD_FILE = "model_card.json"
CURRENT_FILE = "current.json"  # the registry's current choice: {"release_id", "versions": {name: version}, ...}
# A challenger the release put in shadow: {"release_id", "versions", "until", "approved_by", ...}. The jobs
# launched from the registry score uploads made before `until` with it into `shadow_scores`.
SHADOW_FILE = "shadow.json"


def _choice(model_dir: str | Path, name: str) -> dict[str, Any] | None:
    path = storage.join(model_dir, name)
    return json.loads(storage.read_bytes(path)) if storage.exists(path) else None


def current_choice(model_dir: str | Path) -> dict[str, Any] | None:
    """The promoted release `<model_dir>/current.json` records, or None when nothing was promoted."""
    return _choice(model_dir, CURRENT_FILE)


def shadow_choice(model_dir: str | Path) -> dict[str, Any] | None:
    """The challenger `<model_dir>/shadow.json` puts in shadow, or None."""
    return _choice(model_dir, SHADOW_FILE)


def current_version(model_dir: str | Path, name: str) -> str | None:
    """The version of `name` (a modality or `fusion`) the current release serves, if any."""
    choice = current_choice(model_dir)
    return (choice or {}).get("versions", {}).get(name)


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


def read_card(path: str | Path) -> dict[str, Any] | None:
    """The model card of the version at `path` (local or `gs://`), or None when it has none."""
    card_path = storage.join(path, CARD_FILE)
    return json.loads(storage.read_bytes(card_path)) if storage.exists(card_path) else None


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in version.replace("T", ".").replace("-", ".").split("."))


def resolve_model(model_dir: str | Path, modality: str, version: str | None = None) -> DeployedModel | None:
    """The model to serve for `modality`: `version` if given, else the current release's, else
    the newest; None if none.

    Raises:
        FileNotFoundError: a version was asked for and is not there.
        ValueError: the chosen version has no model card or its card is for another modality.
    """
    root = storage.join(model_dir, modality)
    version = version or current_version(model_dir, modality)
    if version is not None:
        if version not in storage.child_dirs_holding(root, "saved_model.pb"):
            raise FileNotFoundError(f"{modality} model version {version!r} not found under {root}")
    else:
        version = _newest(root, "saved_model.pb")
        if version is None:
            return None
    chosen = storage.join(root, version)
    card = read_card(chosen)
    if card is None:
        raise ValueError(f"{chosen} has no {CARD_FILE}: every served model needs its card")
    card_path = storage.join(chosen, CARD_FILE)
    if card.get("modality", modality) != modality:
        raise ValueError(f"{card_path} describes a {card.get('modality')} model, found under {modality}/")
    trained_on = card.get("feature_version")
    if trained_on is not None and not signature.reads_current_inputs(modality, str(trained_on)):
        raise ValueError(
            f"{chosen} was trained on feature version {trained_on}; this pipeline extracts "
            f"{signature.FEATURE_VERSION}, whose {modality} inputs are computed as now since "
            f"{signature.INPUTS_SINCE[modality]}: retrain it or pin a compatible version"
        )
    return DeployedModel(
        modality=modality,
        name=str(card.get("name", f"{modality}_detector")),
        version=str(card.get("version", version)),
        path=chosen,
        card=card,
    )


def _newest(root: str, marker: str) -> str | None:
    """The newest version under `root` (a directory holding `marker`), or None."""
    versions = sorted(storage.child_dirs_holding(root, marker), key=_version_key)
    return versions[-1] if versions else None


def resolve_fusion(model_dir: str | Path, version: str | None = None):
    """The fusion model to serve: `version` if given, else the current release's, else the
    newest; None if there is none."""
    from models.fusion import FUSION_FILE, FusionModel

    root = storage.join(model_dir, "fusion")
    version = version or current_version(model_dir, "fusion") or _newest(root, FUSION_FILE)
    if version is None:
        return None
    chosen = storage.join(root, version)
    if not storage.exists(storage.join(chosen, FUSION_FILE)):
        raise FileNotFoundError(f"fusion version {version!r} not found under {root}")
    return FusionModel.load(chosen)


@dataclasses.dataclass(frozen=True)
class ModelSet:
    """What one job serves: a model per modality that has one, and the fusion if trained."""

    models: dict[str, DeployedModel]
    fusion: Any = None  # models.fusion.FusionModel

    def versions(self) -> dict[str, str]:
        """Each modality's version, and the fusion's."""
        versions = {m: d.version for m, d in self.models.items()}
        if self.fusion is not None:
            versions["fusion"] = self.fusion.version
        return versions

    def describe(self) -> str:
        parts = [f"{m}={d.name}@{d.version}" for m, d in sorted(self.models.items())]
        if self.fusion is not None:
            parts.append(f"fusion={self.fusion.name}@{self.fusion.version}")
        return ", ".join(parts)


def parse_pinned_versions(text: str | None) -> dict[str, str]:
    """`visual=V1,fusion=V2` -> {"visual": "V1", "fusion": "V2"}.

    Raises:
        ValueError: an entry is not `name=version` or names no known model.
    """
    pinned: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, version = entry.partition("=")
        if not sep or not version or name not in (*MODALITY_NAMES, "fusion"):
            raise ValueError(f"expected modality=version with modality in {(*MODALITY_NAMES, 'fusion')}, got {entry!r}")
        pinned[name] = version
    return pinned


def resolve_model_set(model_dir: str | Path, pinned: dict[str, str] | None = None) -> ModelSet:
    """The models to serve from `model_dir`: pinned versions where given, else the current
    release's, else the newest."""
    pinned = pinned or {}
    models = {}
    for modality in MODALITY_NAMES:
        deployed = resolve_model(model_dir, modality, pinned.get(modality))
        if deployed is not None:
            models[modality] = deployed
    return ModelSet(models, resolve_fusion(model_dir, pinned.get("fusion")))


def main(argv: list[str] | None = None) -> int:
    """`python -m models.registry check MODEL_DIR`: exit 0 when every modality has a servable model."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m models.registry")
    parser.add_argument("command", choices=("check",))
    parser.add_argument("model_dir")
    args = parser.parse_args(argv)
    try:
        model_set = resolve_model_set(args.model_dir)
    except (OSError, ValueError) as exc:
        print(f"not servable: {exc}")
        return 1
    missing = [m for m in MODALITY_NAMES if m not in model_set.models]
    print("servable: " + model_set.describe() if not missing else f"missing models for {missing}")
    return 0 if not missing else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())
