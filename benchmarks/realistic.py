"""Cost per upload at real resolutions and lengths, beside the least decoding could cost, and
the batch job's cost per item beside a tight loop of the same functions.

    python -m benchmarks.realistic [--cache data/bench] [--quick] [--skip_job] [--profile FILE]

1. Uploads: H.264/AAC clips at 720p, 1080p and 4K (30 fps, a keyframe every 2 s, as phones
   and editors export), 10 s to 10 min long; stills at phone resolutions (12 Mpx JPEG, a
   portrait screenshot PNG); a minute of AAC audio. Made once with PyAV's encoders into
   `--cache` and reused.
2. Per upload, in a fresh process on one core (so peak memory is the upload's own): CPU ms of
   probe, visual and audio extraction (the last of two runs: caches warm), and beside them the
   floor: decoding, to RGB, the frames the visual stage reads (the sampled keyframes and the
   frame after each, or the frames up to the last sampled one), and the audio track to 16 kHz
   mono. The floor is decoded by this script's own loop over PyAV, not by the pipeline's code.
   Beside them, the served visual and audio models' CPU ms per upload on those features
   (`infer`: a batch of 16 copies, as RunInference batches them, divided by 16; TensorFlow on
   one thread).
3. The batch job (features only, DirectRunner) on N and 4N generated items, one and two
   workers: the marginal cost per item (the difference of the two runs, so start-up cancels)
   against a tight loop of the same extraction functions over the same items; the start-up of
   each; and peak memory per worker process as the input grows 4x.

Figures go to stdout; BENCHMARKS.md records them with this command.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.upload_cost import encode_clip, make_audio, make_photo

# name -> (width, height, seconds); 4K and the ten-minute clip are the slow ones to make.
CLIPS = {
    "720p 20s": (1280, 720, 20),
    "1080p 20s": (1920, 1080, 20),
    "1080p 60s": (1920, 1080, 60),
    "4K 10s": (3840, 2160, 10),
    "720p 10s": (1280, 720, 10),
    "720p 10min": (1280, 720, 600),
}
QUICK = ("720p 20s", "1080p 20s", "photo 12Mpx", "audio 60s")


def make_video(path: Path, width: int, height: int, seconds: float, fps: int = 30, gop: int = 60) -> Path:
    """A textured, moving, noisy picture (camera-like grain, so the encoder spends bits on it)
    with a tone; a scene shifted a pixel a frame under four grain patterns, so making a long
    clip is cheap."""
    rng = np.random.default_rng(7)
    small = rng.integers(0, 255, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    scene = cv2.resize(small, (width + 32, height + 32), interpolation=cv2.INTER_CUBIC)
    grain = [rng.normal(0, 6, (height, width, 3)).astype(np.int16) for _ in range(4)]

    def picture(index: int) -> np.ndarray:
        dx, dy = index % 32, (index // 2) % 32
        return np.clip(scene[dy : dy + height, dx : dx + width] + grain[index % 4], 0, 255).astype(np.uint8)

    return encode_clip(path, (width, height), seconds, picture, fps, gop)


def make_screenshot(path: Path, size: tuple[int, int] = (1179, 2556)) -> Path:
    """A phone screenshot: flat panels, text-like strokes, lossless PNG."""
    width, height = size
    picture = np.full((height, width, 3), 245, np.uint8)
    rng = np.random.default_rng(3)
    for top in range(40, height - 120, 160):
        cv2.rectangle(picture, (30, top), (width - 30, top + 130), tuple(int(c) for c in rng.integers(150, 255, 3)), -1)
        for line in range(3):
            cv2.putText(picture, "lorem ipsum dolor sit amet " * 2, (50, top + 35 + 35 * line),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.8, (30, 30, 30), 2)  # fmt: skip
    cv2.imwrite(str(path), picture[..., ::-1])
    return path


def uploads(cache: Path, quick: bool) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, (width, height, seconds) in CLIPS.items():
        if quick and name not in QUICK:
            continue
        path = cache / f"{name.replace(' ', '_')}.mp4"
        if not path.exists():
            start = time.perf_counter()
            make_video(path.with_suffix(".part.mp4"), width, height, seconds).rename(path)
            print(f"  made {name} in {time.perf_counter() - start:.0f} s", flush=True)
        made[name] = path
    for name, maker, file in (("photo 12Mpx", make_photo, "photo.jpg"), ("screenshot", make_screenshot, "shot.png"),
                              ("audio 60s", lambda p: make_audio(p, 60.0), "voice.m4a")):  # fmt: skip
        if quick and name not in QUICK:
            continue
        if not (cache / file).exists():
            maker(cache / file)
        made[name] = cache / file
    return made


def decode_floor(path: Path, media_type: str) -> dict[str, float]:
    """CPU ms to decode what the stages read, with nothing else: the frames the visual stage
    samples (to RGB at the analysis size) and the audio track (to 16 kHz mono float)."""
    from transforms.media import analysis_size, evenly_spaced

    floors = {}
    if media_type == "video":
        start = time.process_time()
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            packets = [p for p in container.demux(stream) if p.size]
        keyframes = [p.pts for p in packets if p.is_keyframe]
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            if len(keyframes) >= 8:  # keyframes: each sampled one and the frame after it
                for pts in [keyframes[i] for i in evenly_spaced(len(keyframes), 8)]:
                    container.seek(pts, stream=stream, backward=True, any_frame=False)
                    decoded = 0
                    for frame in container.decode(stream):
                        if frame.pts is None or frame.pts < pts:
                            continue
                        width, height = analysis_size(frame.width, frame.height)
                        frame.to_ndarray(format="rgb24", width=width, height=height)
                        decoded += 1
                        if decoded == 2:
                            break
            else:  # too few keyframes: every frame up to the last sampled one, the sampled ones to RGB
                wanted = set(evenly_spaced(len(packets), 8))
                for index, frame in enumerate(container.decode(stream)):
                    if index in wanted or index - 1 in wanted:
                        width, height = analysis_size(frame.width, frame.height)
                        frame.to_ndarray(format="rgb24", width=width, height=height)
                    if index > max(wanted):
                        break
        floors["visual_floor"] = (time.process_time() - start) * 1000
    if media_type in ("video", "audio"):
        start = time.process_time()
        with av.open(str(path)) as container:
            if container.streams.audio:
                resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
                for frame in container.decode(container.streams.audio[0]):
                    for resampled in resampler.resample(frame):
                        resampled.to_ndarray()
        floors["audio_floor"] = (time.process_time() - start) * 1000
    return floors


def fetched(path: str | Path, limits):
    """The upload's media as the job's fetch step hands it on: the bytes, hashed, or over the
    inline size a fingerprint and where it is."""
    from schemas.records import UploadEvent
    from transforms.fetch import fetch_media

    event = UploadEvent("bench", str(path), "bench", dt.datetime.now(dt.UTC))
    return fetch_media(event, limits).data


INFERENCE_BATCH = 16


def inference_ms(timed) -> float:
    """CPU ms per upload of the served visual and audio models on the features `timed`
    (`benchmarks.throughput.time_stages`) extracted: a batch of INFERENCE_BATCH copies (the
    second call: graphs traced) divided by its size."""
    import tensorflow as tf

    from models.examples import model_inputs
    from models.handlers import LoadedSignature, predict_probabilities
    from models.registry import SERVED_MODEL_DIR, resolve_model
    from schemas.records import MediaFeatures, UploadEvent

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    event = UploadEvent("bench", "bench", "bench", dt.datetime.now(dt.UTC))
    features = MediaFeatures(event, "", timed.info, timed.visual, timed.audio, None, dt.datetime.now(dt.UTC))
    total = 0.0
    for modality in ("visual", "audio"):
        inputs = model_inputs(features, modality)
        if inputs is None:
            continue
        model = LoadedSignature(resolve_model(SERVED_MODEL_DIR, modality).path)
        batch = {name: np.stack([inputs[name]] * INFERENCE_BATCH) for name in model.input_names}
        for _ in range(2):
            start = time.process_time()
            predict_probabilities(model, batch, batch_size=INFERENCE_BATCH)
            spent = time.process_time() - start
        total += spent * 1000 / INFERENCE_BATCH
    return total


def measure_one(path: str) -> dict[str, float]:
    """One upload's stage costs and floors (run in its own process: `--one PATH`)."""
    from benchmarks.throughput import time_stages
    from transforms.limits import MediaLimits

    limits = MediaLimits()
    costs = {}
    for _ in range(2):
        start = time.process_time()
        media = fetched(path, limits)
        costs["fetch"] = (time.process_time() - start) * 1000
        timed = time_stages(media, limits, clock=time.process_time)
    costs |= timed.ms
    costs["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # extraction's, before TF loads
    costs["infer"] = inference_ms(timed)
    costs |= decode_floor(Path(path), timed.info.media_type)
    costs["media_type"] = timed.info.media_type
    return costs


def profile(path: Path) -> None:
    """cProfile of one upload's probe, visual and audio extraction (the second run), by own time."""
    import cProfile
    import pstats

    from benchmarks.throughput import time_stages
    from transforms.limits import MediaLimits, one_thread_per_item

    one_thread_per_item()
    data = fetched(path, MediaLimits())
    time_stages(data, MediaLimits())
    profiler = cProfile.Profile()
    profiler.runcall(time_stages, data, MediaLimits())
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def per_upload(made: dict[str, Path]) -> None:
    print("\nCPU ms per upload, one core (last of 2 runs), beside the decode floor; peak memory of the process")
    print("(fetch: the job's read of the file, bytes or, over --max_inline_bytes, its fingerprint):")
    print(f"{'upload':<14}{'MB':>6}{'fetch':>7}{'probe':>7}{'visual':>8}{'floor':>7}{'x':>6}{'audio':>7}{'floor':>7}"
          f"{'x':>6}{'infer':>7}{'total':>7}{'RSS MiB':>9}")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    for name, path in made.items():
        command = ["taskset", "-c", "0", sys.executable, "-m", "benchmarks.realistic", "--one", str(path)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            print(f"{name:<14} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        c = json.loads(done.stdout.strip().splitlines()[-1])
        vf, af = c.get("visual_floor"), c.get("audio_floor")
        total = c["fetch"] + c["probe"] + c["visual"] + c["audio"] + c["infer"]
        print(f"{name:<14}{path.stat().st_size / 1e6:>6.1f}{c['fetch']:>7.0f}{c['probe']:>7.0f}{c['visual']:>8.0f}"
              f"{vf or 0:>7.0f}{(c['visual'] / vf if vf else 0):>6.1f}{c['audio']:>7.0f}{af or 0:>7.0f}"
              f"{(c['audio'] / af if af else 0):>6.1f}{c['infer']:>7.0f}{total:>7.0f}{c['peak_rss_mib']:>9.0f}")  # fmt: skip


def tight_loop(manifest: Path) -> float:
    """Wall ms per item of probe + visual + audio over every item of a manifest, in this
    process, after five items of warm-up (run pinned to one core: `--loop MANIFEST`)."""
    from benchmarks.throughput import time_stages
    from transforms.limits import MediaLimits

    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    blobs = [(manifest.parent / row["media_uri"]).read_bytes() for row in rows]

    def run(items: list[bytes]) -> None:
        for data in items:
            with contextlib.suppress(Exception):  # a corrupt item costs what it costs in the job too
                time_stages(data, MediaLimits())

    run(blobs[:5])
    start = time.perf_counter()
    run(blobs)
    return (time.perf_counter() - start) * 1000 / len(blobs)


def _pinned(cores: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cores, *command]


# Runs a command and prints the peak resident memory of its largest process (MiB) and the CPU
# seconds of the whole process tree (the runner and the workers it reaped).
_PEAK = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "used = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(used.ru_maxrss / 1024, used.ru_utime + used.ru_stime); sys.exit(done.returncode)"
)


def job(manifest: Path, warehouse: Path, workers: int) -> dict[str, float]:
    """The batch job (features only) as a user runs it, `workers` processes pinned to as many cores."""
    command = [sys.executable, "-m", "pipelines.batch", "--input", str(manifest), "--warehouse", str(warehouse),
               "--write_disposition", "truncate", "--features_only", f"--direct_num_workers={workers}"]  # fmt: skip
    if workers > 1:
        command += ["--direct_running_mode=multi_processing"]
    cores = ",".join(str(core) for core in range(workers))
    start = time.perf_counter()
    done = subprocess.run(_pinned(cores, [sys.executable, "-c", _PEAK, *command]), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"job failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak, cpu = map(float, done.stdout.strip().splitlines()[-1].split())
    return {"wall_s": wall, "peak_rss_mib": peak, "cpu_s": cpu}


def _median_run(manifest: Path, warehouse: Path, workers: int, repeats: int) -> dict[str, float]:
    """The run of median wall time among `repeats` (one run's wall time varies about 10% here)."""
    runs = sorted((job(manifest, warehouse, workers) for _ in range(repeats)), key=lambda run: run["wall_s"])
    return runs[len(runs) // 2]


def pipeline_against_loop(items: int, scratch: Path, repeats: int = 3) -> None:
    from training import corpus

    print(f"\nbatch job (features only) against a tight loop, generated corpus, {items} and {4 * items} items "
          f"(one worker: one core; two workers: two; each job the median of {repeats} runs):")  # fmt: skip
    manifests = {}
    for count in (items, 4 * items):
        root = scratch / f"corpus{count}"
        corpus.generate_corpus(root, count=count, seed=99, workers=os.cpu_count() or 1)
        manifests[count] = root / "manifest.jsonl"
    tiny = scratch / "tiny.jsonl"
    tiny.write_text(manifests[items].read_text().splitlines()[0] + "\n")
    (scratch / "media").symlink_to(manifests[items].parent / "media")
    looped = subprocess.run(_pinned("0", [sys.executable, "-m", "benchmarks.realistic", "--loop",
                                          str(manifests[4 * items])]), capture_output=True, text=True, check=True)  # fmt: skip
    loop_ms = float(looped.stdout.strip().splitlines()[-1])
    print(f"  tight loop, one core: {loop_ms:.0f} ms per item ({4 * items} items)")
    marginal = {}
    for workers in (1, 2):
        start_up = _median_run(tiny, scratch / "wh", workers, repeats)
        small, large = (_median_run(manifests[n], scratch / "wh", workers, repeats) for n in (items, 4 * items))
        marginal[workers] = (large["wall_s"] - small["wall_s"]) * 1000 / (3 * items)
        cpu = (large["cpu_s"] - small["cpu_s"]) * 1000 / (3 * items)
        print(f"  {workers} worker(s): one item {start_up['wall_s']:.1f} s (start-up), {items} items "
              f"{small['wall_s']:.1f} s, {4 * items} items {large['wall_s']:.1f} s; marginal {marginal[workers]:.0f} ms "
              f"per item ({cpu:.0f} ms of CPU, every process); peak RSS of the largest process "
              f"{small['peak_rss_mib']:.0f} -> {large['peak_rss_mib']:.0f} MiB as the input grows 4x")  # fmt: skip
    print(f"  tight loop / one-worker job: {loop_ms / marginal[1]:.2f}; one -> two workers: "
          f"{marginal[1] / marginal[2]:.2f}x")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realistic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="data/bench", help="Where the uploads are made once (default %(default)s).")
    parser.add_argument("--quick", action="store_true", help="720p and 1080p clips, the photo and the audio only.")
    parser.add_argument("--items", type=int, default=60, help="Generated items of the smaller job run.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each job; the median is reported.")
    parser.add_argument("--skip_job", action="store_true", help="Per-upload costs only.")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help="Profile the extraction of one upload (this file) and stop.")
    args = parser.parse_args(argv)
    if args.profile:
        profile(Path(args.profile))
        return 0
    if args.loop:
        print(tight_loop(Path(args.loop)))
        return 0
    if args.one:
        print(json.dumps(measure_one(args.one)))
        return 0
    print(f"cores: {os.cpu_count()}; making uploads in {args.cache} (once)")
    per_upload(uploads(Path(args.cache), args.quick))
    if not args.skip_job:
        with tempfile.TemporaryDirectory() as scratch:
            pipeline_against_loop(args.items, Path(scratch), args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
