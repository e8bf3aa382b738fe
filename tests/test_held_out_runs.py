"""Held-out runs: a model trained without a source of media, scored on it."""

from __future__ import annotations

import numpy as np
import pytest

from models.signature import SIGNATURES
from training.evaluate import SOURCE_MODALITY, held_out_group, leave_one_source_out, rates_at
from training.sources import BY_NAME, KINDS


def _audio_example(content_id: str, synthetic: bool, shift: float, rng: np.random.Generator) -> dict:
    inputs = {}
    for spec in SIGNATURES["audio"]:
        if spec.name == "window_mask":
            inputs[spec.name] = np.ones(spec.shape, np.float32)
        else:
            inputs[spec.name] = rng.normal(size=spec.shape).astype(np.float32)
    inputs["handcrafted"][:4] += 3.0 * synthetic  # the planted evidence
    inputs["handcrafted"][10:30] += shift  # a source unlike the others
    return {"content_id": content_id, "audio": inputs}


def test_a_source_held_out_is_scored_by_a_model_and_gate_that_never_saw_it():
    rng = np.random.default_rng(3)
    examples, labels = [], {}
    plan = [("generator", i % 2 == 0, 0.0) for i in range(160)] + [("klettres", False, 8.0)] * 24
    for index, (source, synthetic, shift) in enumerate(plan):
        content_id = f"{source}-{index}"
        examples.append(_audio_example(content_id, synthetic, shift, rng))
        labels[content_id] = {
            "content_id": content_id, "label": "synthetic" if synthetic else "real", "audio_label": int(synthetic),
            "families": {"audio": "tts" if synthetic else None}, "sources": {"audio": source},
        }  # fmt: skip
    thresholds = {"remove": 0.9, "review_content": 0.7}
    result = leave_one_source_out(examples, labels, seed=7, epochs=2, sources=["klettres"], thresholds=thresholds)
    held = result["klettres"]
    assert (held["modality"], held["label"], held["held_out_items"]) == ("audio", "real", 24)
    assert "synthetic test items from elsewhere" in held["against"]
    # A gate fitted without the source finds it unlike anything in training and abstains.
    assert held["abstention_rate"] > 0.8
    assert held["at_policy"]["remove"]["fpr"] <= 1 - held["abstention_rate"]


def test_rates_never_flag_a_missing_score():
    labels = np.array([True, True, False, False])
    rates = rates_at(labels, np.array([0.95, np.nan, np.nan, 0.2]), {"remove": 0.9})
    assert rates["remove"]["recall"] == 0.5 and rates["remove"]["fpr"] == 0.0


def test_a_generator_is_held_out_with_everything_it_redrew_and_every_kind_feeds_a_modality():
    assert held_out_group("gan_redraw") == ["gan_redraw", "face_video_redrawn"]
    assert held_out_group("klettres+ktuberling") == ["klettres", "ktuberling"]
    assert held_out_group("cyclegan") == ["cyclegan"]
    with pytest.raises(ValueError, match="no such source"):
        held_out_group("gan_redrawn")
    assert set(KINDS) <= set(SOURCE_MODALITY)  # a visual generator held out is the visual model's run
    assert {SOURCE_MODALITY[BY_NAME[name].kind] for name in held_out_group("gan_redraw")} == {"visual"}
