"""Pictures from neural generators: the encoder-decoders' tiled re-drawing, the drivers' refusal
of what they do not drive, and how the corpus shares the photographs out among generators."""

from __future__ import annotations

import json
from pathlib import Path

import av
import keras
import numpy as np
import pytest
import soundfile
from PIL import Image

from training import cyclegan, gan_redraw, source_corpus, sources
from training.autoencoders import build_autoencoder, redraw
from training.image_synthesis import ImageRequest, generate
from training.sources import AUTOENCODER_VARIANTS, BY_NAME


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


def test_the_generators_share_the_training_photographs_and_the_held_out_one_makes_faces(monkeypatch, tmp_path):
    photos = [tmp_path / f"{i}.png" for i in range(10)]
    for index, path in enumerate(photos):
        Image.fromarray(np.full((8, 8, 3), index, np.uint8)).save(path)
    monkeypatch.setattr(sources, "media_files", lambda source, cache: photos if source.name == "skimage" else [])
    generators = [BY_NAME[f"autoencoder_{v}"] for v in AUTOENCODER_VARIANTS] + [
        BY_NAME["realesrgan"],
        BY_NAME["cyclegan"],
    ]
    items = source_corpus.plan_items(generators, Path("cache"), seed=1, held_out=False)
    redrawn = {}
    for item in items:
        assert item.label == "synthetic" and item.media_type == "image" and not item.as_is
        redrawn.setdefault(item.sources["visual"], set()).add(item.generation.input_file)
    # every photograph is re-drawn by Real-ESRGAN, by the CycleGAN and by exactly one encoder-decoder
    assert redrawn["realesrgan"] == redrawn["cyclegan"] == {str(p) for p in photos}
    encoders = [redrawn[f"autoencoder_{v}"] for v in AUTOENCODER_VARIANTS]
    assert set().union(*encoders) == {str(p) for p in photos} and sum(map(len, encoders)) == len(photos)
    assert len({i.content_id for i in items}) == len(items)
    # a photograph's re-drawings by every generator are one split group, one per photograph
    groups = source_corpus.split_groups(items)
    by_photo = {}
    for item in items:
        by_photo.setdefault(item.generation.input_file, set()).add(groups[item.content_id])
    assert all(len(found) == 1 for found in by_photo.values()) and len(set(groups.values())) == len(photos)

    held_out = source_corpus.plan_items([BY_NAME["random_face"]], Path("cache"), seed=1, held_out=True)
    clips = [i for i in held_out if i.media_type == "video"]
    assert (
        len(held_out) - len(clips) == source_corpus.HELDOUT_FACE_STILLS
        and len(clips) == source_corpus.HELDOUT_FACE_CLIPS
    )
    assert all(i.as_is and i.generation.input_file is None for i in held_out)
    assert all(i.generation.frames == source_corpus.HELDOUT_CLIP_FRAMES for i in clips)


def _torch_like_pth(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """A `.pth` as PyTorch writes it (a zip of a pickled state dict whose tensors point at raw
    storages), made without PyTorch: stand-in `torch` names that pickle by reference."""
    import io
    import pickle
    import sys
    import types
    import zipfile
    from collections import OrderedDict

    fake, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    fake.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called when pickling")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake, "torch._utils": utils})

    class Storage:
        def __init__(self, key, data):
            self.key, self.data = key, data

    class Tensor:
        def __init__(self, storage, shape):
            self.storage, self.shape = storage, shape

        def __reduce__(self):
            strides = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
            return _rebuild_tensor_v2, (self.storage, 0, self.shape, strides, False, OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", fake.FloatStorage, obj.key, "cpu", obj.data.size) if isinstance(obj, Storage) else None

    state = OrderedDict((name, Tensor(Storage(str(i), a), a.shape)) for i, (name, a) in enumerate(tensors.items()))
    buffer = io.BytesIO()
    try:
        Pickler(buffer, protocol=2).dump(state)
    finally:
        for name, module in saved.items():
            sys.modules.pop(name) if module is None else sys.modules.__setitem__(name, module)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights/data.pkl", buffer.getvalue())
        for i, array in enumerate(tensors.values()):
            archive.writestr(f"weights/data/{i}", np.ascontiguousarray(array, np.float32).tobytes())


def test_pytorch_weights_are_read_without_pytorch(tmp_path):
    rng = np.random.default_rng(4)
    tensors = {"model.1.weight": rng.normal(size=(4, 3, 7, 7)).astype(np.float32),
               "model.1.bias": rng.normal(size=4).astype(np.float32)}  # fmt: skip
    _torch_like_pth(tmp_path / "g.pth", tensors)
    read = cyclegan.read_state_dict(tmp_path / "g.pth")
    assert read.keys() == tensors.keys()
    for name, array in tensors.items():
        np.testing.assert_array_equal(read[name], array)


def test_the_transposed_convolution_is_pytorchs():
    """ConvTranspose2d(3, stride 2, padding 1, output_padding 1) by its definition: input pixel
    (m, n) adds weight[c, o, a, b] at output (2m - 1 + a, 2n - 1 + b), inside the output."""
    rng = np.random.default_rng(5)
    x, weight, bias = rng.normal(size=(3, 4, 2)), rng.normal(size=(2, 5, 3, 3)), rng.normal(size=5)
    expected = np.tile(bias, (6, 8, 1))
    for m in range(3):
        for n in range(4):
            for a in range(3):
                for b in range(3):
                    i, j = 2 * m - 1 + a, 2 * n - 1 + b
                    if 0 <= i < 6 and 0 <= j < 8:
                        expected[i, j] += x[m, n] @ weight[:, :, a, b]
    got = np.asarray(cyclegan.transposed(x[None].astype(np.float32), weight.astype(np.float32), bias))[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_gan_trained_here_trains_saves_and_redraws_a_photograph(tmp_path, monkeypatch):
    photos = []
    for index in range(2):
        path = tmp_path / f"photo{index}.png"
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (130, 170, 3), dtype=np.uint8)).save(path)
        photos.append(path)
    monkeypatch.setattr(gan_redraw, "training_photographs", lambda cache: photos)
    facts = gan_redraw.train(tmp_path / "cache", steps=2)
    assert facts["steps"] == 2 and len(facts["log"]) == 2
    model = gan_redraw.load(tmp_path / "cache")  # the saved generator, custom layers included
    drawn = gan_redraw.redraw_file(model, photos[0])
    assert drawn.dtype == np.uint8 and drawn.shape == (128, 168, 3)  # cropped to a multiple of 4
    # every pixel is the generator's: not the photograph returned
    assert np.abs(drawn.astype(int) - np.asarray(Image.open(photos[0]))[:128, :168].astype(int)).mean() > 1


def test_a_talking_head_redrawn_frame_by_frame_is_a_synthetic_clip_with_a_human_voice(tmp_path, monkeypatch):
    """face_video_redrawn: the GAN trained here re-draws every frame of a real clip's segment
    once, each of the segment's uploads goes through the platform chain, and the labels say
    the picture is synthetic and the voice human."""
    rng = np.random.default_rng(2)
    clip = tmp_path / "talk.mp4"
    frames = [np.clip(rng.normal(120, 40, (96, 128, 3)) + 3 * t, 0, 255).astype(np.uint8) for t in range(60)]
    with av.open(str(clip), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for index, picture in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    voice = tmp_path / "voice.wav"
    soundfile.write(voice, (0.1 * np.sin(np.arange(16000 * 3) / 9)).astype(np.float32), 16000)
    photo = tmp_path / "photo.png"
    Image.fromarray(frames[0]).save(photo)
    monkeypatch.setattr(gan_redraw, "training_photographs", lambda cache: [photo])
    gan_redraw.train(tmp_path / "cache", steps=1)
    monkeypatch.setattr(
        source_corpus, "media_files", lambda source, cache: [clip] if source.kind == "video" else [voice]
    )
    summary = source_corpus.build(tmp_path / "out", "train", tmp_path / "cache", names=["face_video_redrawn"])
    labels = [json.loads(line) for line in (tmp_path / "out" / "labels.jsonl").read_text().splitlines()]
    assert summary["items"] == summary["planned"] == source_corpus.VIDEO_VARIANTS  # one 4 s segment of a 6 s clip
    assert {(r["label"], r["visual_label"], r["audio_label"], r["media_type"]) for r in labels} == {
        ("synthetic", 1, 0, "video")
    }
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    with av.open(str(tmp_path / "out" / manifest[0]["media_uri"])) as made:
        assert len(made.streams.audio) == 1  # the human voice rides along
        first = next(made.decode(video=0)).to_ndarray(format="rgb24")
    assert first.ndim == 3 and first.shape[2] == 3
    plan = source_corpus.plan_items([BY_NAME["face_video_redrawn"]], tmp_path / "cache", seed=1, held_out=False)
    assert len({item.generation for item in plan}) == 1  # the segment is re-drawn once for its uploads
    # the segment's uploads (and the recording they share) are one split group: none is tested
    # on what another trained on
    assert len({row["split_group"] for row in labels}) == 1 and labels[0]["split_group"].startswith("origin:")
    real = source_corpus.plan_items([BY_NAME["face_video"]], tmp_path / "cache", seed=1, held_out=False)
    assert set(source_corpus.split_groups(real).values()) == {labels[0]["split_group"]}
    # a corpus made before split groups gains them from its own plan, and not from another one
    made = (tmp_path / "out" / "labels.jsonl").read_text()
    (tmp_path / "out" / "labels.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in row.items() if k != "split_group"}) + "\n" for row in labels)
    )
    with pytest.raises(ValueError, match="not re-planned as it was made"):
        source_corpus.relabel(tmp_path / "out", "train", tmp_path / "cache", seed=1, names=["face_video"])
    assert source_corpus.relabel(
        tmp_path / "out", "train", tmp_path / "cache", seed=1, names=["face_video_redrawn"]
    ) == len(labels)
    assert (tmp_path / "out" / "labels.jsonl").read_text() == made
