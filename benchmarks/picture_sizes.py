"""Visual extraction cost by picture size: what one large upload costs a worker.

    python -m benchmarks.picture_sizes [--repeats 3]

Writes an 8-frame H.264 video (every frame a keyframe) and a PNG still at each size, then
times `extract_visual` on each in a fresh process (so peak resident memory is that item's)
and prints milliseconds (median of the repeats) and peak RSS. Pictures above
`transforms.media.MAX_ANALYSIS_PIXELS` are analysed at that size; this shows what it buys.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

SIZES = ((1280, 720), (1920, 1080), (3840, 2160), (7680, 4320))
STILL_SIZES = ((4000, 3000), (7000, 7000))


def _picture(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth gradient with camera-like noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(30, 220, width, dtype=np.float32)[None, :, None]
    pixels = np.broadcast_to(ramp, (height, width, 3)) + rng.normal(0, 4, (height, width, 3)).astype(np.float32)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_video(path: Path, width: int, height: int, frames: int = 8) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "1", "preset": "ultrafast", "crf": "28"}
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(_picture(width, height, index), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM). Not `getrusage`: on Linux its maxrss carries the
    parent's peak across fork and exec, so a child would report the parent's high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best available


def measure_one(path: str, media_type: str, repeats: int, uncapped: bool) -> dict[str, float]:
    """Runs in the child process: extraction time (ms, median) and how far the item raised
    the process's peak RSS above what the imports left."""
    from transforms import media
    from transforms.limits import MediaLimits
    from transforms.visual import extract_visual

    if uncapped:  # what the cap buys: every picture analysed at full size
        media.MAX_ANALYSIS_PIXELS = 10**12
    data = Path(path).read_bytes()
    baseline = _peak_rss_mib()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        extract_visual(data, media_type, MediaLimits())
        times.append((time.perf_counter() - start) * 1000)
    return {"ms": statistics.median(times), "added_mib": _peak_rss_mib() - baseline}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.picture_sizes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("PATH", "MEDIA_TYPE", "UNCAPPED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        path, media_type, uncapped = args.child
        print(json.dumps(measure_one(path, media_type, args.repeats, uncapped == "1")))
        return
    from transforms.media import MAX_ANALYSIS_PIXELS

    print(f"extract_visual, median of {args.repeats}, one process per item and setting; memory: peak RSS the item")
    print(f"added above the imports. Capped: analysed at <= {MAX_ANALYSIS_PIXELS} px; uncapped: at full size.")
    print(f"{'item':<24} {'capped ms':>10} {'MiB':>6} {'uncapped ms':>12} {'MiB':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for width, height in SIZES:
            path = Path(tmp) / f"v{width}x{height}.mp4"
            write_video(path, width, height)
            cases.append((f"video {width}x{height} x8", path, "video"))
        for width, height in STILL_SIZES:
            path = Path(tmp) / f"i{width}x{height}.png"
            Image.fromarray(_picture(width, height, 0)).save(path)
            cases.append((f"png {width}x{height}", path, "image"))
        command = [sys.executable, "-m", "benchmarks.picture_sizes", "--repeats", str(args.repeats), "--child"]
        for name, path, media_type in cases:
            row = []
            for uncapped in ("0", "1"):
                out = subprocess.run(
                    [*command, str(path), media_type, uncapped], check=True, capture_output=True, text=True
                )
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                row += [figures["ms"], figures["added_mib"]]
            print(f"{name:<24} {row[0]:>10.0f} {row[1]:>6.0f} {row[2]:>12.0f} {row[3]:>6.0f}")


if __name__ == "__main__":
    main()
