"""CPU cost of one upload at real resolutions, and of its inference, on one core.

    python -m benchmarks.upload_cost [--seconds 20] [--repeat 2]

Makes H.264/AAC clips (720p and 1080p, 30 fps, a keyframe every 60 frames, like phone and
editor exports), a 12 Mpx JPEG and a minute of AAC speech-band audio; then, per item, times
(process CPU time, last of `--repeat` runs so caches are warm) the three extraction stages
the pipeline's DoFns wrap and, beside them, the decode floor: decoding the keyframes the
visual stage reads to RGB, and the audio track to 16 kHz mono. Inference is timed apart, per
item, on the served models over feature rows the embedded demo warehouse holds (its input
tensors have a fixed size, so its cost does not depend on the upload's resolution).

The figures feed the cost of a million uploads in docs/data-engineers.md ("Run on Dataflow").
"""

from __future__ import annotations

import argparse
import glob
import io
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from benchmarks.throughput import time_stages
from transforms.limits import MediaLimits


def encode_clip(path: Path, size: tuple[int, int], seconds: float, picture, fps: int = 30, gop: int = 60) -> Path:
    """An H.264/AAC clip of `picture(index)` (RGB frames) with a tone: a keyframe every `gop`
    frames, as phones and editors export."""
    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=44100)
        for index in range(int(seconds * fps)):
            for packet in video.encode(av.VideoFrame.from_ndarray(picture(index), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        _encode_tone(container, audio, seconds)
    return path


def make_clip(path: Path, size: tuple[int, int], seconds: float, fps: int = 30, gop: int = 60) -> Path:
    """A moving, noisy picture with a tone: real encoder output, not a still repeated."""
    width, height = size
    rng = np.random.default_rng(0)
    base = np.mgrid[0:height, 0:width][1].astype(np.float32)
    noise = rng.normal(0, 8, (height, width, 3)).astype(np.float32)

    def picture(index: int) -> np.ndarray:
        shade = ((base + 4 * index) % width) / width * 200 + 20
        return np.clip(np.stack([shade, shade[::-1], np.roll(shade, 9, axis=1)], -1) + np.roll(noise, index, 0),
                       0, 255).astype(np.uint8)  # fmt: skip

    return encode_clip(path, size, seconds, picture, fps, gop)


def _encode_tone(container, audio, seconds: float) -> None:
    rate = audio.codec_context.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in audio.encode(frame):
            container.mux(packet)
    for packet in audio.encode():
        container.mux(packet)


def make_audio(path: Path, seconds: float) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        _encode_tone(container, container.add_stream("aac", rate=44100), seconds)
    return path


def make_photo(path: Path, size: tuple[int, int] = (4000, 3000)) -> Path:
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.BICUBIC).save(path, quality=90)
    return path


def decode_floor(data: bytes) -> dict[str, float]:
    """CPU ms to decode the keyframes to RGB and the audio to 16 kHz mono: the least any
    analysis of them can cost."""
    floors = {}
    with av.open(io.BytesIO(data)) as container:
        if container.streams.video:
            start = time.process_time()
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
            floors["visual_floor"] = (time.process_time() - start) * 1000
    with av.open(io.BytesIO(data)) as container:
        if container.streams.audio:
            start = time.process_time()
            resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
            for frame in container.decode(container.streams.audio[0]):
                resampler.resample(frame)
            floors["audio_floor"] = (time.process_time() - start) * 1000
    return floors


def stage_costs(data: bytes, repeat: int) -> dict[str, float]:
    for _ in range(repeat):
        costs = time_stages(data, MediaLimits(), clock=time.process_time).ms
    return costs | decode_floor(data)


def inference_cost(warehouse: str, model_dir: str, items: int) -> dict[str, float]:
    """CPU ms per item to score every modality an item has, batched by 32 as the job does."""
    import tensorflow as tf

    from models.examples import read_parquet_examples
    from models.handlers import LoadedSignature
    from models.registry import resolve_model
    from schemas.vocabulary import MODALITIES
    from training.train import item_answers

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    files = sorted(glob.glob(str(Path(warehouse) / "features" / "*.parquet")))
    examples = read_parquet_examples(files)[:items]
    if not examples:
        raise SystemExit(f"no features under {warehouse}/features: run `make demo` first")
    loaded = {m: LoadedSignature(str(resolve_model(model_dir, m).path)) for m in MODALITIES}
    item_answers(loaded, examples[:32])  # trace the functions once
    start = time.process_time()
    for offset in range(0, len(examples), 32):
        item_answers(loaded, examples[offset : offset + 32])
    return {"items": len(examples), "ms_per_item": (time.process_time() - start) * 1000 / len(examples)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upload_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of the clips (default %(default)s).")
    parser.add_argument("--repeat", type=int, default=2, help="Runs per item; the last is reported.")
    parser.add_argument("--warehouse", default="data/demo/warehouse", help="Feature rows for the inference timing.")
    parser.add_argument("--model_dir", default="models/served")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = {
            f"video 1280x720 {args.seconds:g}s": make_clip(root / "720.mp4", (1280, 720), args.seconds),
            f"video 1920x1080 {args.seconds:g}s": make_clip(root / "1080.mp4", (1920, 1080), args.seconds),
            "photo 4000x3000 jpeg": make_photo(root / "photo.jpg"),
            "audio 60s aac": make_audio(root / "voice.m4a", 60.0),
        }
        print("CPU ms per item, one core (last of", args.repeat, "runs):")
        print(f"{'item':<26}{'probe':>8}{'visual':>9}{'floor':>8}{'audio':>8}{'floor':>8}{'total':>9}")
        for name, path in items.items():
            c = stage_costs(path.read_bytes(), args.repeat)
            total = c["probe"] + c["visual"] + c["audio"]
            print(f"{name:<26}{c['probe']:>8.0f}{c['visual']:>9.0f}{c.get('visual_floor', 0):>8.0f}"
                  f"{c['audio']:>8.0f}{c.get('audio_floor', 0):>8.0f}{total:>9.0f}")  # fmt: skip
    cost = inference_cost(args.warehouse, args.model_dir, 256)
    print(f"inference, every modality an item has, batches of 32, one thread: {cost['ms_per_item']:.1f} ms per item "
          f"({cost['items']} demo items)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
