"""Training, export, calibration, model directories and the RunInference handler."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models.handlers import SavedModelSignatureHandler
from models.registry import export_saved_model, resolve_model, write_card
from models.signature import SIGNATURES
from training.metrics import binary_metrics, equal_error_rate, fit_platt, roc_auc
from training.splits import item_split, split_of
from training.train import SPLITS, train_modality


def _random_inputs(modality: str, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    inputs = {}
    for spec in SIGNATURES[modality]:
        if spec.dtype == "uint8":
            inputs[spec.name] = rng.integers(0, 255, (count, *spec.shape), dtype=np.uint8)
        elif spec.name.endswith("mask"):
            inputs[spec.name] = np.ones((count, *spec.shape), np.float32)
        else:
            inputs[spec.name] = rng.normal(size=(count, *spec.shape)).astype(np.float32)
    return inputs


def _separable_dataset(count: int = 48, seed: int = 0) -> dict:
    """Metadata vectors whose first four features carry the label: a model must find them."""
    rng = np.random.default_rng(seed)
    dataset = {}
    for index, split in enumerate(SPLITS):
        inputs = _random_inputs("metadata", count, np.random.default_rng(seed + index))
        labels = (rng.random(count) < 0.5).astype(np.float32)
        inputs["metadata"][:, :4] = labels[:, None] * 3.0 + rng.normal(0, 0.3, (count, 4))
        dataset[split] = {"inputs": inputs, "labels": labels, "ids": [f"{split}{i}" for i in range(count)]}
    return dataset


@pytest.fixture(scope="module")
def trained_metadata_model(tmp_path_factory):
    dataset = _separable_dataset()
    model, facts = train_modality("metadata", dataset, epochs=30, batch_size=16, seed=1, verbose=0)
    root = tmp_path_factory.mktemp("models")
    path = root / "metadata" / "20260101T000000"
    path.mkdir(parents=True)
    export_saved_model(model, path, facts["calibration"]["scale"], facts["calibration"]["bias"])
    write_card(path, {"name": "metadata_detector", "modality": "metadata", "version": "20260101T000000"})
    return root, dataset, facts


def test_the_boosted_trees_ship_inside_the_saved_model(trained_metadata_model):
    import tensorflow as tf

    root, _, facts = trained_metadata_model
    assert facts["trees"]["count"] >= 1 and facts["trees"]["input"] == "metadata"
    loaded = tf.saved_model.load(str(root / "metadata" / "20260101T000000"))
    names = {v.name.split("/")[-1].split(":")[0] for v in loaded.signatures["serving_default"].variables}
    assert {"feature", "threshold", "left", "right", "value"} <= names


def test_split_is_by_content_id_and_stable():
    assert split_of("c1", seed=7) == split_of("c1", seed=7)
    shares = [split_of(f"c{i}", seed=7) for i in range(4000)]
    assert 0.66 < shares.count("train") / 4000 < 0.74
    assert 0.12 < shares.count("test") / 4000 < 0.18
    # items of one split group share its split, whatever their content ids
    rows = [{"content_id": f"c{i}", "split_group": "origin:photo-1"} for i in range(40)]
    assert {item_split(row, seed=7) for row in rows} == {split_of("origin:photo-1", seed=7)}
    assert item_split({"content_id": "c1"}, seed=7) == split_of("c1", seed=7)


def test_a_trained_model_serves_calibrated_probabilities_through_the_handler(trained_metadata_model):
    root, dataset, _ = trained_metadata_model
    deployed = resolve_model(root, "metadata")
    handler = SavedModelSignatureHandler(deployed.path, "metadata")
    model = handler.load_model()
    test = dataset["test"]
    batch = [{"metadata": row} for row in test["inputs"]["metadata"]]
    results = list(handler.run_inference(batch, model))
    probabilities = np.array([r.inference.probability for r in results])
    assert len(results) == len(batch)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert roc_auc(test["labels"], probabilities) > 0.9  # it learned the planted signal


def test_a_refreshing_handler_serves_a_new_version_from_the_next_batch_and_keeps_serving_through_a_broken_one(
    tmp_path, trained_metadata_model
):
    root, dataset, _ = trained_metadata_model
    first = tmp_path / "metadata" / "20260101T000000"
    shutil.copytree(root / "metadata" / "20260101T000000", first)
    batch = [{"metadata": row} for row in dataset["test"]["inputs"]["metadata"][:4]]
    refreshing = SavedModelSignatureHandler(str(first), "metadata", refresh_s=0)
    fixed = SavedModelSignatureHandler(str(first), "metadata")
    served, pinned = refreshing.load_model(), fixed.load_model()

    def versions(handler, model) -> set[str]:
        return {r.inference.model_version for r in handler.run_inference(batch, model)}

    assert versions(refreshing, served) == {"20260101T000000"}
    second = tmp_path / "metadata" / "20260201T000000"
    shutil.copytree(first, second)
    write_card(second, {"name": "metadata_detector", "modality": "metadata", "version": "20260201T000000"})
    assert versions(refreshing, served) == {"20260201T000000"}
    assert versions(fixed, pinned) == {"20260101T000000"}  # no refresh_s: the launch version throughout

    broken = tmp_path / "metadata" / "20260301T000000"  # copied half-way: a SavedModel file, no variables
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a model")
    write_card(broken, {"name": "metadata_detector", "modality": "metadata", "version": "20260301T000000"})
    assert versions(refreshing, served) == {"20260201T000000"}
    shutil.rmtree(broken)
    shutil.rmtree(second)  # withdrawn: the registry's choice goes back, and so does the handler
    assert versions(refreshing, served) == {"20260101T000000"}


def test_handler_refuses_a_model_with_another_signature(trained_metadata_model):
    root, _, _ = trained_metadata_model
    handler = SavedModelSignatureHandler(resolve_model(root, "metadata").path, "audio")
    with pytest.raises(ValueError, match=r"the audio signature needs"):
        handler.load_model()


def test_newest_version_is_served_unless_one_is_named(tmp_path, trained_metadata_model):
    root, _, _ = trained_metadata_model
    older = root / "metadata" / "20250101T000000"
    older.mkdir()
    (older / "saved_model.pb").write_bytes(b"")
    write_card(older, {"name": "metadata_detector", "modality": "metadata", "version": "20250101T000000"})
    assert resolve_model(root, "metadata").version == "20260101T000000"
    assert resolve_model(root, "metadata", version="20250101T000000").version == "20250101T000000"
    assert resolve_model(root, "visual") is None
    with pytest.raises(FileNotFoundError):
        resolve_model(root, "metadata", version="nope")


def test_a_version_without_a_card_is_refused(tmp_path):
    path = tmp_path / "audio" / "1"
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model_card\.json"):
        resolve_model(tmp_path, "audio")
    write_card(path, {"modality": "visual"})
    with pytest.raises(ValueError, match="describes a visual model"):
        resolve_model(tmp_path, "audio")
    assert json.loads((path / "model_card.json").read_text())["modality"] == "visual"


@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_part_based_models_train_and_ignore_padding(modality):
    rng = np.random.default_rng(3)
    dataset = {}
    for split in SPLITS:
        inputs = _random_inputs(modality, 12, rng)
        labels = np.array([0, 1] * 6, np.float32)
        dataset[split] = {"inputs": inputs, "labels": labels, "ids": list(range(12))}
    model, facts = train_modality(modality, dataset, epochs=1, batch_size=6, seed=0, verbose=0)
    inputs = {k: v[:2].copy() for k, v in dataset["test"]["inputs"].items()}
    mask_name, tensor_name = SIGNATURES[modality][1].name, SIGNATURES[modality][0].name
    inputs[mask_name][:] = 0
    inputs[mask_name][:, 0] = 1
    before = model.predict(inputs, verbose=0)
    inputs[tensor_name][:, 1:] = 0 if modality == "visual" else 99.0  # change only the padding
    assert np.allclose(before, model.predict(inputs, verbose=0), atol=1e-5)
    assert facts["calibration"]["method"] == "platt"


def test_padding_never_reaches_batch_normalisation():
    """Batch normalisation learns its statistics from the parts an item has: what fills the
    padding slots does not move them, and a batch without a single face keeps them finite."""
    import keras

    from training.architectures import TREE_INPUT, PresentParts, TrainTimeFlip, build_model

    inputs = _random_inputs("visual", 6, np.random.default_rng(4))
    network = build_model("visual", inputs["handcrafted"])
    initial = network.get_weights()
    flips = [
        layer.seed_generator.state
        for branch in network.layers
        if isinstance(branch, PresentParts)
        for layer in branch.scorer.layers
        if isinstance(layer, TrainTimeFlip)
    ]
    initial_flips = [keras.ops.convert_to_numpy(state) for state in flips]

    def statistics_after(batch: dict) -> list[np.ndarray]:
        network.set_weights(initial)
        for state, value in zip(flips, initial_flips):  # the same mirrorings each time
            state.assign(value)
        out = keras.ops.convert_to_numpy(network({**batch, TREE_INPUT: np.zeros((6, 1), np.float32)}, training=True))
        assert np.isfinite(out).all()
        return [keras.ops.convert_to_numpy(v) for v in network.non_trainable_variables if "moving" in v.path]

    inputs["face_mask"][:] = 0
    inputs["face_mask"][:, 0] = 1
    inputs["faces"][:, 1:] = 0
    blank_padding = statistics_after(inputs)
    inputs["faces"][:, 1:] = np.random.default_rng(5).integers(0, 255, inputs["faces"][:, 1:].shape, dtype=np.uint8)
    for before, after in zip(blank_padding, statistics_after(inputs)):
        np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-6)
    inputs["face_mask"][:] = 0  # no face in the whole batch
    assert all(np.isfinite(v).all() for v in statistics_after(inputs))


def test_metrics_on_known_cases():
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(np.array([1, 1]), np.array([0.1, 0.2])) is None
    assert equal_error_rate(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    metrics = binary_metrics(labels, np.array([0.1, 0.6, 0.8, 0.9]))
    assert metrics["accuracy_at_0_5"] == 0.75 and metrics["auc"] == 1.0


def test_platt_scaling_calibrates_overconfident_logits():
    rng = np.random.default_rng(0)
    labels = (rng.random(4000) < 0.5).astype(float)
    # Scores N(+-1, 1) by class: the calibrated log-odds are 2 * score (Gaussian likelihood
    # ratio), so for scores inflated 5x the right Platt scale is 2 / 5.
    scores = (labels * 2 - 1) + rng.normal(0, 1.0, 4000)
    scale, bias = fit_platt(scores * 5.0, labels)
    assert 0.35 < scale < 0.45 and abs(bias) < 0.1
    assert fit_platt(np.array([1.0, 2.0]), np.array([1.0, 1.0])) == (1.0, 0.0)


def test_a_model_trained_on_other_features_is_refused(tmp_path):
    path = tmp_path / "metadata" / "1"
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    write_card(path, {"modality": "metadata", "feature_version": "f0"})
    with pytest.raises(ValueError, match="feature version f0"):
        resolve_model(tmp_path, "metadata")


def test_a_feature_version_that_changes_one_modality_keeps_the_others_models_serving(tmp_path, monkeypatch):
    """A model trained on older features serves while its modality's inputs are computed as then."""
    from models import signature

    for modality in ("visual", "audio"):
        path = tmp_path / modality / "1"
        path.mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(b"")
        write_card(path, {"modality": modality, "feature_version": "f10"})
    monkeypatch.setattr(signature, "FEATURE_VERSION", "f11")
    monkeypatch.setattr(signature, "INPUTS_SINCE", {"visual": "f11", "audio": "f10", "metadata": "f10"})
    assert resolve_model(tmp_path, "audio").version == "1"
    with pytest.raises(ValueError, match="visual inputs are computed as now since f11"):
        resolve_model(tmp_path, "visual")
    assert not signature.reads_current_inputs("audio", "f12")  # features of a newer pipeline than this one
    assert not signature.reads_current_inputs("audio", "ten")  # a version that is not one


def test_a_retraining_of_one_detector_keeps_the_others_as_the_registry_serves_them(tmp_path, trained_metadata_model):
    """`training.train --modality M --keep_from REGISTRY`: the others' served versions copied
    beside the new one (what the fusion is then fitted over), a registry lacking one refused."""
    from training import train

    root, _, _ = trained_metadata_model
    out = tmp_path / "challenger"
    assert train.keep_served(str(root), ["metadata"], out) == {"metadata": "20260101T000000"}
    assert resolve_model(out, "metadata").version == "20260101T000000"  # a copy that serves
    with pytest.raises(ValueError, match="serves no audio model"):
        train.keep_served(str(root), ["audio"], out)
    with pytest.raises(SystemExit):  # keeping needs a modality to train
        train.run(["--warehouse", str(tmp_path), "--labels", "x.jsonl", "--out", str(out), "--keep_from", str(root)])


def test_noise_residual_sees_noise_not_smooth_content():
    from training.architectures import NoiseResidual

    rows, cols = np.mgrid[0:32, 0:32].astype(np.float32)
    ramp = np.repeat(((rows + cols) / 62.0 * 2 - 1)[None, :, :, None], 3, axis=-1)  # smooth content
    noisy = ramp + np.random.default_rng(0).normal(0, 0.02, ramp.shape).astype(np.float32)
    residual = np.asarray(NoiseResidual()(np.concatenate([ramp, noisy])))
    assert residual.shape == (2, 32, 32, 4)
    core = np.abs(residual[:, 2:-2, 2:-2, 2:])  # second-order filters, away from the padded border
    smooth, rough = core[0].mean(), core[1].mean()
    assert smooth < 1e-4 and rough > 0.1
    assert np.abs(residual).max() <= 3.0
