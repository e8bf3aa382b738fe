"""Any SavedModel that honours the serving signature drops in through --model_dir.

The models here are not Keras models and share nothing with training/architectures.py: plain
`tf.Module`s with a hand-set linear score, exported with `tf.saved_model.save`, standing in
for weights a team brings from elsewhere.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from models.registry import CARD_FILE
from models.signature import OUTPUT_NAME, SIGNATURES
from pipelines import batch
from training import corpus

pytestmark = pytest.mark.slow


def _export_linear_model(path, modality: str, weight: float) -> None:
    import tensorflow as tf

    specs = SIGNATURES[modality]
    signature = [tf.TensorSpec([None, *s.shape], tf.as_dtype(s.dtype), name=s.name) for s in specs]
    vector_name = "metadata" if modality == "metadata" else "handcrafted"
    position = [s.name for s in specs].index(vector_name)

    class Linear(tf.Module):
        def __init__(self):
            super().__init__()
            self.weight = tf.Variable(weight)

        @tf.function(input_signature=signature)
        def serve(self, *tensors):
            score = tf.reduce_mean(tensors[position], axis=1) * self.weight
            return {OUTPUT_NAME: tf.sigmoid(score)}

    module = Linear()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    card = {"name": f"linear_{modality}", "modality": modality, "version": "external-1"}
    (path / CARD_FILE).write_text(json.dumps(card))


def test_pipeline_serves_a_foreign_savedmodel(tmp_path):
    corpus.generate_corpus(tmp_path / "uploads", count=8, seed=21)
    models = tmp_path / "models"
    for modality in SIGNATURES:
        path = models / modality / "external-1"
        path.mkdir(parents=True)
        _export_linear_model(path, modality, weight=0.5)
    warehouse = tmp_path / "wh"
    args = ["--input", str(tmp_path / "uploads" / "manifest.jsonl"), "--warehouse", str(warehouse)]
    assert batch.run([*args, "--model_dir", str(models), f"--runner={batch.LOCAL_RUNNER}"]) == 0
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(
            "select visual_model_name, audio_model_name, metadata_model_name, metadata_model_version,"
            " fusion_method, metadata_score from media_scores"
        ).fetchall()
    assert len(rows) == 8
    for visual, audio, metadata, version, fusion_method, score in rows:
        assert metadata == "linear_metadata" and version == "external-1"
        assert visual in (None, "linear_visual") and audio in (None, "linear_audio")
        assert fusion_method == "content_first"  # no fusion model in the directory: the documented fallback
        assert 0.0 < score < 1.0
