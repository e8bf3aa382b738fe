"""Audio fingerprints that find a re-posted recording: robust to re-encoding, resampling,
trimming and volume, matched through an index rather than a scan.

The fingerprint is Haitsma and Kalker's ("A Highly Robust Audio Fingerprinting System", ISMIR
2002): every 16 ms a 256 ms frame's energy in 33 bands spaced on a log scale between 300 and
2000 Hz, and one bit per adjacent pair of bands, the sign of how their difference changed
since the previous frame. A 32-bit word per frame: gain cancels out (only signs of energy
differences count), codecs and resamplers keep the 300-2000 Hz band's shape, and a trimmed
copy is the same sequence of words from a later frame on.

Matching (`AudioIndex`): each banked recording's words go into an inverted index (word ->
where it occurs). A query looks its words up; every hit votes for an alignment (entry, offset);
the best-voted alignments are verified by the bit error rate over their overlap. A copy
differs from its original in a few bits of most words, so exact hits on a fraction of them are
enough to find the alignment; two different recordings agree on about half their bits.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Hashable
from typing import NamedTuple

import numpy as np
import scipy.fft

SAMPLE_RATE = 16_000
FRAME = 4096  # 256 ms
HOP = 256  # 16 ms: a trimmed copy's frames sit at most 8 ms off the original's
LOW_HZ, HIGH_HZ, BANDS = 300.0, 2000.0, 33
WORD_BITS = BANDS - 1
MAX_BIT_ERROR_RATE = 0.35  # Haitsma and Kalker's threshold: unrelated audio sits near 0.5
MIN_OVERLAP_FRAMES = 48  # under 0.8 s of common sound is not evidence of a copy
# A frame whose 300-2000 Hz energy is this far under the recording's loudest tenth is silence:
# its word is noise or all zeros (digital silence), the same in every recording, so it is
# neither indexed nor compared. Relative, so a quieter copy keeps the same frames.
SILENCE_DB = 45.0
# ... and any frame 90 dB under a full-scale tone's band energy (about 60 dB here) is silence
# whatever the rest of the recording is: digital silence has no loudest tenth to compare with.
FLOOR_DB = -30.0
CANDIDATES = 8  # alignments verified per query


def _band_edges() -> np.ndarray:
    edges_hz = np.geomspace(LOW_HZ, HIGH_HZ, BANDS + 1)
    return np.round(edges_hz * FRAME / SAMPLE_RATE).astype(int)


_EDGES = _band_edges()
_WINDOW = np.hanning(FRAME).astype(np.float32)
_WEIGHTS = (1 << np.arange(WORD_BITS, dtype=np.uint64)).astype(np.uint64)


class Fingerprint(NamedTuple):
    words: np.ndarray  # uint32, one per 16 ms
    sound: np.ndarray  # bool, the frame is not silence (only these are indexed and compared)


def fingerprint(samples: np.ndarray) -> Fingerprint:
    """One 32-bit word per 16 ms of mono float audio at 16 kHz (none when the audio is shorter
    than two frames), with which words carry sound."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    count = 1 + (samples.size - FRAME) // HOP if samples.size >= FRAME else 0
    if count < 2:
        return Fingerprint(np.zeros(0, np.uint32), np.zeros(0, bool))
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME)[::HOP][:count] * _WINDOW
    # Single precision, one thread, only the bins the bands use: a 20 s track in about 35 ms.
    spectrum = scipy.fft.rfft(frames, axis=1, workers=1)[:, : _EDGES[-1]]
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float64)
    cumulative = np.concatenate([np.zeros((count, 1)), np.cumsum(power, axis=1)], axis=1)
    energy = cumulative[:, _EDGES[1:]] - cumulative[:, _EDGES[:-1]]  # [frames, BANDS]
    across = energy[:, :-1] - energy[:, 1:]  # [frames, WORD_BITS]
    bits = (across[1:] - across[:-1]) > 0  # [frames - 1, WORD_BITS]
    words = (bits.astype(np.uint64) @ _WEIGHTS).astype(np.uint32)
    level = 10 * np.log10(energy.sum(axis=1) + 1e-12)
    loud = (level > np.quantile(level, 0.9) - SILENCE_DB) & (level > FLOOR_DB)
    return Fingerprint(words, loud[1:] & loud[:-1])


def pack(print_: Fingerprint) -> bytes:
    """The fingerprint as stored (features.audio_fingerprint): the words, little-endian, then
    the sound mask a bit a word."""
    return print_.words.astype("<u4").tobytes() + np.packbits(print_.sound).tobytes()


def unpack(data: bytes) -> Fingerprint:
    """`pack`'s inverse.

    Raises:
        ValueError: `data` is not a packed fingerprint.
    """
    count = len(data) * 8 // 33  # 32 bits of word and one of mask a frame, the mask padded to a byte
    mask_bytes = -(-count // 8)
    if count * 4 + mask_bytes != len(data):
        raise ValueError(f"{len(data)} bytes are not a packed audio fingerprint")
    words = np.frombuffer(data[: count * 4], dtype="<u4").astype(np.uint32)
    sound = np.unpackbits(np.frombuffer(data[count * 4 :], dtype=np.uint8))[:count].astype(bool)
    return Fingerprint(words, sound)


def bit_error_rate(first: np.ndarray, second: np.ndarray) -> float:
    """Share of differing bits between two aligned word sequences of equal length."""
    if first.size == 0:
        return 1.0
    differing = np.unpackbits(np.ascontiguousarray(first ^ second).view(np.uint8)).sum()
    return float(differing) / (first.size * WORD_BITS)


@dataclasses.dataclass(frozen=True)
class AudioMatch:
    entry: Hashable  # what the banked recording was added as
    offset: int  # the query's first word is the entry's word at this index (negative: the query starts earlier)
    bit_error_rate: float
    overlap_frames: int


class AudioIndex:
    """Banked fingerprints behind an inverted index: `add` them, `match` a query."""

    def __init__(self):
        self._words: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
        self._entries: list[Hashable] = []
        self._prints: list[Fingerprint] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: Hashable, banked: Fingerprint) -> None:
        number = len(self._entries)
        self._entries.append(entry)
        self._prints.append(banked)
        for position in np.flatnonzero(banked.sound).tolist():
            self._words[int(banked.words[position])].append((number, position))

    def match(self, query: Fingerprint, max_bit_error_rate: float = MAX_BIT_ERROR_RATE) -> AudioMatch | None:
        """The banked recording the query is a copy of (the lowest bit error rate under
        `max_bit_error_rate` over at least `MIN_OVERLAP_FRAMES` frames of sound in both), or
        None."""
        found = self.matches(query, max_bit_error_rate)
        return min(found, key=lambda m: m.bit_error_rate) if found else None

    def matches(self, query: Fingerprint, max_bit_error_rate: float = MAX_BIT_ERROR_RATE,
                candidates: int = CANDIDATES) -> list[AudioMatch]:  # fmt: skip
        """Every banked recording among the `candidates` best-voted alignments the query is a
        copy of, each at its best alignment."""
        votes: collections.Counter = collections.Counter()
        for position in np.flatnonzero(query.sound).tolist():
            for number, where in self._words.get(int(query.words[position]), ()):
                votes[number, where - position] += 1
        best: dict[int, AudioMatch] = {}
        for (number, offset), _ in votes.most_common(candidates):
            banked = self._prints[number]
            start, stop = max(0, -offset), min(query.words.size, banked.words.size - offset)
            if stop <= start:
                continue
            both = query.sound[start:stop] & banked.sound[start + offset : stop + offset]
            if both.sum() < MIN_OVERLAP_FRAMES:
                continue
            rate = bit_error_rate(query.words[start:stop][both], banked.words[start + offset : stop + offset][both])
            if rate <= max_bit_error_rate and (number not in best or rate < best[number].bit_error_rate):
                best[number] = AudioMatch(self._entries[number], offset, rate, int(both.sum()))
        return list(best.values())
