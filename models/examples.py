"""Model inputs and their TFRecord form: the one place training and serving meet.

The pipeline turns `MediaFeatures` into per-modality input dicts with `model_inputs` and
feeds them to RunInference; it also writes them, unchanged, as `tf.train.Example`s. Training
reads those Examples back with `parse_example`, so a model is trained on exactly the tensors
it will be served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from models.signature import FEATURE_VERSION, SIGNATURES, check_inputs
from schemas.records import MediaFeatures


def load_labels(paths: str | Sequence[str]) -> dict[str, dict[str, Any]]:
    """Ground-truth rows of one or more labels.jsonl files (the generator's, a source
    corpus's), by content_id.

    Raises:
        ValueError: two files label the same content id.
    """
    labels: dict[str, dict[str, Any]] = {}
    for path in [paths] if isinstance(paths, str) else paths:
        with open(path) as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    if row["content_id"] in labels:
                        raise ValueError(f"{path}: content id {row['content_id']!r} is labelled twice")
                    labels[row["content_id"]] = row
    return labels


def item_source(label_row: dict[str, Any], modality: str) -> str:
    """Where an item's `modality` content came from: a source of `training.sources`, or the
    generator (rows without `sources`, and the metadata of every item, which the platform
    writes)."""
    return (label_row.get("sources") or {}).get(modality) or "generator"


def model_inputs(features: MediaFeatures, modality: str) -> dict[str, np.ndarray] | None:
    """The serving inputs of one modality for one item, or None when the item lacks it."""
    if modality == "visual":
        if features.visual is None:
            return None
        inputs = {
            "frames": features.visual.frames,
            "frame_mask": features.visual.frame_mask,
            "handcrafted": features.visual.handcrafted,
            "faces": features.visual.faces,
            "face_mask": features.visual.face_mask,
        }
    elif modality == "audio":
        if features.audio is None:
            return None
        inputs = {
            "logmel": features.audio.logmel,
            "window_mask": features.audio.window_mask,
            "handcrafted": features.audio.handcrafted,
        }
    elif modality == "metadata":
        if features.metadata_vector is None:
            return None
        inputs = {"metadata": features.metadata_vector}
    else:
        raise ValueError(f"unknown modality {modality!r}")
    check_inputs(modality, inputs)
    return inputs


def to_tf_example(features: MediaFeatures) -> bytes:
    """Serialises every present modality's serving inputs as one `tf.train.Example`."""
    import tensorflow as tf

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _floats(values: np.ndarray) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))

    feature = {
        "content_id": _bytes(features.content_id.encode()),
        "media_type": _bytes(features.info.media_type.encode()),
        "feature_version": _bytes(FEATURE_VERSION.encode()),
        "modalities": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[m.encode() for m in features.modalities()])
        ),
    }
    for modality in features.modalities():
        for name, array in model_inputs(features, modality).items():
            key = f"{modality}/{name}"
            feature[key] = _bytes(array.tobytes()) if array.dtype == np.uint8 else _floats(array)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example(serialized: bytes) -> dict[str, object]:
    """Inverse of `to_tf_example`: content id, media type, and per-modality input dicts."""
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    fmap = example.features.feature
    parsed: dict[str, object] = {
        "content_id": fmap["content_id"].bytes_list.value[0].decode(),
        "media_type": fmap["media_type"].bytes_list.value[0].decode(),
        "feature_version": fmap["feature_version"].bytes_list.value[0].decode(),
    }
    for modality in (m.decode() for m in fmap["modalities"].bytes_list.value):
        inputs = {}
        for spec in SIGNATURES[modality]:
            value = fmap[f"{modality}/{spec.name}"]
            if spec.dtype == "uint8":
                array = np.frombuffer(value.bytes_list.value[0], dtype=np.uint8)
            else:
                array = np.asarray(value.float_list.value, dtype=np.float32)
            inputs[spec.name] = array.reshape(spec.shape)
        parsed[modality] = inputs
    return parsed


def read_examples(paths: Iterable[str]) -> list[dict[str, object]]:
    """Every Example in the given TFRecord files (GZIP or not), parsed."""
    import tensorflow as tf

    records = []
    for path in paths:
        compression = "GZIP" if path.endswith(".gz") else ""
        for serialized in tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator():
            records.append(parse_example(serialized))
    return records


def _padded(parts: np.ndarray, slots: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Pads a [n, ...] array of real parts to `slots`, with the mask that marks them."""
    tensor = np.zeros((slots, *parts.shape[1:]), dtype=dtype)
    count = min(len(parts), slots)
    tensor[:count] = parts[:count]
    mask = np.zeros((slots,), dtype=np.float32)
    mask[:count] = 1.0
    return tensor, mask


def example_from_feature_row(row: dict) -> dict[str, object]:
    """A `features` table row (Parquet or BigQuery) as the same dict `parse_example` gives."""
    from models.signature import MAX_FRAMES, MAX_WINDOWS
    from schemas.records import decode_array

    parsed: dict[str, object] = {
        "content_id": row["content_id"],
        "media_type": row["media_type"],
        "feature_version": row["feature_version"],
    }
    if row.get("frame_count"):
        frames, mask = _padded(decode_array(row["visual_frames"]), MAX_FRAMES, "uint8")
        faces, _ = _padded(decode_array(row["visual_faces"]), MAX_FRAMES, "uint8")
        face_mask = np.zeros((MAX_FRAMES,), np.float32)
        face_mask[: len(row["visual_face_mask"])] = row["visual_face_mask"]
        parsed["visual"] = {
            "frames": frames,
            "frame_mask": mask,
            "handcrafted": np.asarray(row["visual_handcrafted"], np.float32),
            "faces": faces,
            "face_mask": face_mask,
        }
    if row.get("audio_window_count"):
        logmel, mask = _padded(decode_array(row["audio_logmel"]).astype(np.float32), MAX_WINDOWS, "float32")
        parsed["audio"] = {
            "logmel": logmel,
            "window_mask": mask,
            "handcrafted": np.asarray(row["audio_handcrafted"], np.float32),
        }
    if row.get("metadata_vector"):
        parsed["metadata"] = {"metadata": np.asarray(row["metadata_vector"], np.float32)}
    for modality in ("visual", "audio", "metadata"):
        if modality in parsed:
            check_inputs(modality, parsed[modality])
    return parsed


def read_parquet_examples(paths: Iterable[str]) -> list[dict[str, object]]:
    """Every row of the given `features` Parquet files, as model-input dicts."""
    import pyarrow.parquet as pq

    records = []
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            records.extend(example_from_feature_row(row) for row in batch.to_pylist())
    return records
