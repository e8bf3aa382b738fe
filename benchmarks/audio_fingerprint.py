"""How robust the audio fingerprint is (`transforms.audio_fingerprint`), on recordings made
elsewhere: every English Asterisk prompt (held out; one professional voice, hundreds of
phrases) is banked, then each prompt of 2 s or more is queried after what a re-upload does to
it, and every prompt against the others for false links.

    python -m benchmarks.audio_fingerprint [--cache data/sources] [--limit 600]

Needs `make sources` (the asterisk_core package). Prints one line per change: matched to its
original, matched to another recording, missed.
"""

from __future__ import annotations

import argparse
import io
import sys
import time

import av
import numpy as np

from training.sources import BY_NAME, fetch_all, media_files
from transforms.audio_fingerprint import MIN_OVERLAP_FRAMES, SAMPLE_RATE, AudioIndex, fingerprint
from transforms.limits import MediaLimits
from transforms.media import decode_audio


def decode(data: bytes) -> np.ndarray:
    """Mono float32 at the fingerprint's rate, decoded as the jobs decode uploads."""
    return decode_audio(data, SAMPLE_RATE, MediaLimits())


def encode(samples: np.ndarray, rate: int, codec: str, container: str, bit_rate: int = 0) -> bytes:
    """Re-encoded as a platform would: resampled to `rate`, then `codec` at `bit_rate`."""
    source = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="fltp", layout="mono")
    source.sample_rate, source.pts = SAMPLE_RATE, 0
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
    resampled = np.concatenate([f.to_ndarray().reshape(-1) for f in resampler.resample(source)])
    frame = av.AudioFrame.from_ndarray(resampled.reshape(1, -1), format="fltp", layout="mono")
    frame.sample_rate, frame.pts = rate, 0
    out = io.BytesIO()
    with av.open(out, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = "mono"
        if bit_rate:
            stream.bit_rate = bit_rate
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return out.getvalue()


def seconds(value: float) -> int:
    return int(value * SAMPLE_RATE)


# What a re-upload does to a recording, by name.
CHANGES = {
    "AAC 32 kb/s at 48 kHz": lambda s: decode(encode(s, 48000, "aac", "mp4", 32000)),
    "Opus 16 kb/s": lambda s: decode(encode(s, 48000, "libopus", "ogg", 16000)),
    "MP3 16 kb/s at 8 kHz": lambda s: decode(encode(s, 8000, "libmp3lame", "mp3", 16000)),
    "resampled to 8 kHz": lambda s: decode(encode(s, 8000, "pcm_s16le", "wav")),
    "volume x0.2": lambda s: s * 0.2,
    "trimmed 0.3 s at each end": lambda s: s[seconds(0.3) : -seconds(0.3)],
    "all: trimmed, x0.3, AAC 24 kb/s at 44.1 kHz": lambda s: decode(
        encode((s * 0.3)[seconds(0.3) : -seconds(0.2)], 44100, "aac", "mp4", 24000)
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="data/sources")
    parser.add_argument("--limit", type=int, default=600, help="Prompts banked at most.")
    args = parser.parse_args(argv)
    fetch_all([BY_NAME["asterisk_core"]], args.cache)
    files = [f for f in media_files(BY_NAME["asterisk_core"], args.cache) if "en_US" in str(f)][: args.limit]
    audio = {str(f): decode(f.read_bytes()) for f in files}
    index = AudioIndex()
    for name, samples in audio.items():
        index.add(name, fingerprint(samples))
    started, false_links = time.perf_counter(), 0
    for name, samples in audio.items():
        found = index.match(fingerprint(samples))
        false_links += found is not None and found.entry != name
    per_query_ms = 1000 * (time.perf_counter() - started) / len(audio)
    print(f"banked {len(index)} prompts; each against the bank: {false_links} linked to another prompt "
          f"({per_query_ms:.2f} ms a query with its fingerprint)")  # fmt: skip
    long = {name: samples for name, samples in audio.items() if samples.size >= seconds(2)}
    # The package's silence/*.wav files are prompts too: nothing to match, and nothing matches them.
    queries = {
        name: samples for name, samples in long.items() if fingerprint(samples).sound.sum() >= MIN_OVERLAP_FRAMES
    }
    print(f"changes, on the {len(queries)} prompts of 2 s or more with sound ({len(long) - len(queries)} silent ones "
          "left out): matched to the original / to another / missed")  # fmt: skip
    for change, apply in CHANGES.items():
        outcomes = [index.match(fingerprint(apply(samples))) for samples in queries.values()]
        matched = sum(found is not None and found.entry == name for found, name in zip(outcomes, queries))
        other = sum(found is not None and found.entry != name for found, name in zip(outcomes, queries))
        print(f"  {change:<44} {matched:>4} / {other} / {len(queries) - matched - other}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
