"""Pictures from neural generators: the encoder-decoders' tiled re-drawing, the drivers' refusal
of what they do not drive, and how the corpus shares the photographs out among generators."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from models import source_corpus, sources
from models.autoencoders import build_autoencoder, redraw
from models.image_synthesis import ImageRequest, generate
from models.sources import AUTOENCODER_VARIANTS, BY_NAME


@pytest.mark.parametrize("variant", AUTOENCODER_VARIANTS)
def test_a_photograph_redrawn_tile_by_tile_is_the_photograph_redrawn_whole(variant):
    keras.utils.set_random_seed(3)
    model = build_autoencoder(variant)
    picture = np.random.default_rng(1).integers(0, 256, (300, 530, 3), dtype=np.uint8)
    tiled = redraw(model, picture)
    whole = np.asarray(model(picture[None].astype(np.float32) / 127.5 - 1.0, training=False))[0]
    whole = np.clip((whole + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    assert tiled.shape == picture.shape and tiled.dtype == np.uint8
    # odd sizes are padded to even inside a tile; the seams between tiles do not show
    assert np.abs(tiled[:-2, :-2].astype(int) - whole[:-2, :-2].astype(int)).max() <= 1


def test_a_source_that_is_not_a_picture_generator_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a picture generator"):
        generate(BY_NAME["alsa"], tmp_path, [ImageRequest(1)], tmp_path)


def test_the_generators_share_the_training_photographs_and_the_held_out_one_makes_faces(monkeypatch):
    photos = [Path(f"/photos/{i}.jpg") for i in range(10)]
    monkeypatch.setattr(sources, "media_files", lambda source, cache: photos if source.name == "skimage" else [])
    generators = [BY_NAME[f"autoencoder_{v}"] for v in AUTOENCODER_VARIANTS] + [BY_NAME["realesrgan"]]
    items = source_corpus.plan_items(generators, Path("cache"), seed=1, held_out=False)
    redrawn = {}
    for item in items:
        assert item.label == "synthetic" and item.media_type == "image" and not item.as_is
        redrawn.setdefault(item.sources["visual"], set()).add(item.generation.input_file)
    # every photograph is re-drawn by Real-ESRGAN and by exactly one encoder-decoder
    assert redrawn["realesrgan"] == {str(p) for p in photos}
    encoders = [redrawn[f"autoencoder_{v}"] for v in AUTOENCODER_VARIANTS]
    assert set().union(*encoders) == {str(p) for p in photos} and sum(map(len, encoders)) == len(photos)
    assert len({i.content_id for i in items}) == len(items)

    held_out = source_corpus.plan_items([BY_NAME["random_face"]], Path("cache"), seed=1, held_out=True)
    clips = [i for i in held_out if i.media_type == "video"]
    assert (
        len(held_out) - len(clips) == source_corpus.HELDOUT_FACE_STILLS
        and len(clips) == source_corpus.HELDOUT_FACE_CLIPS
    )
    assert all(i.as_is and i.generation.input_file is None for i in held_out)
    assert all(i.generation.frames == source_corpus.HELDOUT_CLIP_FRAMES for i in clips)
