"""Audio features: log-mel windows of the 16 kHz mono track plus cepstral and phase signals.

The track is decoded with PyAV (every container and codec FFmpeg knows: WAV, MP3, FLAC,
Ogg/Opus, M4A/AAC, the audio of any video), resampled to 16 kHz mono, and analysed with
numpy/librosa: a 512-point STFT with 25 ms windows every 10 ms and a 40-band mel bank.
The model sees up to MAX_WINDOWS one-second log-mel windows spread across the track.

Hand-made signals: the `handcrafted` vector's layout is declared in `models/audio_layout.py`
(`python -m models.audio_layout` prints it with offsets); `audio_features` packs it by name.
"""

from __future__ import annotations

import dataclasses
import functools

import librosa
import numpy as np
import scipy.fft
from apache_beam.metrics import Metrics

from models.audio_layout import AUDIO
from models.signature import (
    HOP_LENGTH,
    MAX_WINDOWS,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WIN_LENGTH,
    WINDOW_FRAMES,
)
from schemas.records import AudioFeatures, MediaFeatures
from transforms.audio_fingerprint import fingerprint, pack
from transforms.dead_letter import MediaDoFn, MediaStep
from transforms.limits import MediaLimits
from transforms.media import Media, decode_audio, evenly_spaced

_N_MFCC = 20
_LOG_FLOOR = 1e-10


@functools.cache
def _fft_frequencies() -> np.ndarray:
    """Centre frequency of each STFT bin, Hz."""
    return librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT)


@functools.cache
def _mel_basis() -> np.ndarray:
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


# STFT frames analysed at a time: 30 s of audio. Every signal is a per-frame figure or a sum
# over frames, gathered chunk by chunk, so a ten-minute track never holds its spectrum at
# once. The one figure that needs every magnitude, the 90th percentile that picks the strong
# bins, is found exactly from a histogram of pass one and the few magnitudes near it (pass two).
CHUNK_FRAMES = 3000
_BANDS_HZ = ((100, 1000), (1000, 3000), (3000, 6000))
_JITTER_BANDS_HZ = ((0, 2000), (2000, SAMPLE_RATE // 2 + 1))


def _track(samples: np.ndarray) -> np.ndarray:
    """The samples a centred STFT reads: clips shorter than one window zero-padded to it (the
    half window of zeros at each end is added chunk by chunk, by `_stft_frames`)."""
    return np.pad(samples, (0, N_FFT - samples.size)) if samples.size < N_FFT else samples


def _frame_count(track: np.ndarray) -> int:
    return 1 + (track.size + 2 * (N_FFT // 2) - N_FFT) // HOP_LENGTH


def _stft_frames(track: np.ndarray, first: int, stop: int) -> np.ndarray:
    """Complex STFT frames [bins, stop - first] of the track with half a window of zeros at
    each end (frame i starts at sample i * HOP_LENGTH of that padded track: the same frames
    librosa's `center=True` STFT of the whole track has), padding only the chunk read."""
    start, end = first * HOP_LENGTH - N_FFT // 2, (stop - 1) * HOP_LENGTH + N_FFT - N_FFT // 2
    segment = np.zeros(end - start, track.dtype)
    low, high = max(start, 0), min(end, track.size)
    if high > low:
        segment[low - start : high - start] = track[low:high]
    return librosa.stft(segment, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, center=False)


def log_mel(power: np.ndarray) -> np.ndarray:
    """Log-mel energies [frames, mels] from an STFT's power [bins, frames]."""
    return np.log10(_mel_basis() @ power + _LOG_FLOOR).T.astype(np.float32)


def _wrapped(phase: np.ndarray) -> np.ndarray:
    """Phase wrapped to [-pi, pi] by arithmetic (what angle(exp(1j * phase)) gives, without
    the complex exponential)."""
    return phase - (2 * np.pi) * np.rint(phase / (2 * np.pi))


def _chunks(count: int) -> list[tuple[int, int]]:
    return [(first, min(first + CHUNK_FRAMES, count)) for first in range(0, count, CHUNK_FRAMES)]


class _Sum:
    """A running mean: total and count."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, values: np.ndarray) -> None:
        self.total += float(values.sum(dtype=np.float64))
        self.count += values.size

    def mean(self, empty: float = 0.0) -> float:
        return self.total / self.count if self.count else empty


# Magnitudes are non-negative float32, whose bit patterns sort as the values do: the top 16
# bits of the pattern bin them in order, each bin 1/128 of an octave wide.
_MAGNITUDE_BINS = 1 << 16


def _magnitude_bins(magnitude: np.ndarray) -> np.ndarray:
    return magnitude.astype(np.float32, copy=False).view(np.uint32) >> 16


class _Percentile:
    """The `q`th percentile (numpy's linear interpolation) of every magnitude of the track,
    without holding them: pass one counts them per bin (`count`), which tells the bins holding
    the two order statistics the percentile reads; pass two keeps the magnitudes of those bins
    (`near`), and the values around them order those."""

    def __init__(self, q: float):
        self.q, self.counts, self._near = q, np.zeros(_MAGNITUDE_BINS, np.int64), []

    def count(self, magnitude: np.ndarray) -> None:
        self.counts += np.bincount(_magnitude_bins(magnitude).ravel(), minlength=_MAGNITUDE_BINS)

    @functools.cached_property
    def _cumulative(self) -> np.ndarray:
        return np.cumsum(self.counts)

    @functools.cached_property
    def _ranks(self) -> tuple[int, float, int, int]:
        """The lower order statistic's rank, the fraction towards the next, the first bin that
        can hold either, and how many magnitudes lie below that bin."""
        cumulative = self._cumulative
        position = self.q / 100 * (int(cumulative[-1]) - 1)
        low = int(np.floor(position))
        first_bin = int(np.searchsorted(cumulative, low, side="right"))
        below = int(cumulative[first_bin - 1]) if first_bin else 0
        return low, position - low, first_bin, below

    @functools.cached_property
    def bins(self) -> tuple[int, int]:
        """The bins holding the order statistics at ranks low and low + 1 (may be one bin)."""
        low, _, first_bin, _ = self._ranks
        cumulative = self._cumulative
        last_bin = int(np.searchsorted(cumulative, min(low + 1, int(cumulative[-1]) - 1), side="right"))
        return first_bin, last_bin

    def keep_near(self, magnitude: np.ndarray, bins: np.ndarray) -> None:
        first_bin, last_bin = self.bins
        self._near.append(magnitude[(bins >= first_bin) & (bins <= last_bin)])

    def value(self) -> float:
        low, fraction, _, below = self._ranks
        near = np.sort(np.concatenate(self._near))
        pair = near[low - below : low - below + 2]
        return float(np.percentile(pair, 100 * fraction)) if pair.size == 2 else float(pair[0])


@dataclasses.dataclass
class _Spectral:
    """Pass one over the track: per-frame figures, per-bin power, the log-mel frames and the
    magnitudes' histogram."""

    mel: np.ndarray  # [frames, mels]
    frame_power: np.ndarray  # [frames], summed over bins
    flatness: np.ndarray  # [frames]
    centroid_hz: np.ndarray  # [frames]
    bin_power: np.ndarray  # [bins], summed over frames
    strong: _Percentile  # of the magnitudes: where the strong bins start

    @classmethod
    def of(cls, track: np.ndarray) -> _Spectral:
        count, bins = _frame_count(track), N_FFT // 2 + 1
        freqs = _fft_frequencies()
        figures = cls(np.empty((count, N_MELS), np.float32), np.empty(count, np.float32), np.empty(count, np.float32),
                      np.empty(count, np.float64), np.zeros(bins, np.float64), _Percentile(90))  # fmt: skip
        for first, stop in _chunks(count):
            magnitude = np.abs(_stft_frames(track, first, stop))
            figures.strong.count(magnitude)
            power = magnitude**2
            figures.mel[first:stop] = log_mel(power)
            figures.frame_power[first:stop] = power.sum(axis=0)
            figures.flatness[first:stop] = np.exp(np.mean(np.log(power + _LOG_FLOOR), axis=0)) / (
                power.mean(axis=0) + _LOG_FLOOR
            )
            figures.centroid_hz[first:stop] = (freqs[:, None] * power).sum(axis=0) / (
                figures.frame_power[first:stop] + _LOG_FLOOR
            )
            figures.bin_power += power.sum(axis=1, dtype=np.float64)
        return figures


def _phase_and_harmonics(track: np.ndarray, spectral: _Spectral) -> tuple[float, list[float]]:
    """Pass two: the phase incoherence, and the harmonic structure and band-wise phase jitter
    of `resynthesis_signals`, from the loud frames and the strong bins pass one found.

    A bin is strong above the 90th percentile of every magnitude, known only once the pass
    has seen the magnitudes near it: jitter in bins clearly above it is summed as the pass
    goes, and jitter in the bins that hold it is kept, with its magnitude, until the end."""
    count = spectral.frame_power.size
    freqs = _fft_frequencies()
    loud = spectral.frame_power > np.percentile(spectral.frame_power, 60)
    if loud.sum() < 3:
        loud = np.ones_like(loud)
    percentile = spectral.strong
    first_bin, last_bin = percentile.bins
    peaks, ridges = [[] for _ in _BANDS_HZ], [_Sum() for _ in _BANDS_HZ]
    incoherence, jitters = _Sum(), [_Sum() for _ in _JITTER_BANDS_HZ]
    band_of_bin = np.full(N_FFT // 2 + 1, -1)
    for index, (low, high) in enumerate(_JITTER_BANDS_HZ):
        band_of_bin[(freqs >= low) & (freqs < high)] = index
    undecided: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # magnitude, jitter, band

    def add_strong(jitter: np.ndarray, band: np.ndarray, strong: np.ndarray) -> None:
        incoherence.add(jitter[strong])
        for index in range(len(_JITTER_BANDS_HZ)):
            jitters[index].add(jitter[strong & (band == index)])

    expected = 2 * np.pi * HOP_LENGTH * np.arange(N_FFT // 2 + 1)[:, None] / N_FFT
    for first, stop in _chunks(count):
        # The jitter of frame t reads the phase of frames t, t + 1 and t + 2.
        end = min(stop + 2, count)
        spectrum = _stft_frames(track, first, end)
        magnitude = np.abs(spectrum)
        magnitude_bins = _magnitude_bins(magnitude)
        percentile.keep_near(magnitude[:, : stop - first], magnitude_bins[:, : stop - first])
        log_magnitude = np.log(magnitude[:, : stop - first] + 1e-6)[:, loud[first:stop]]
        for index, (low, high) in enumerate(_BANDS_HZ):
            band = log_magnitude[(freqs >= low) & (freqs < high)]
            peaks[index].append(band.max(axis=0) - np.median(band, axis=0))
            ridges[index].add(np.abs(band[2:] - 2 * band[1:-1] + band[:-2]))
        if end - first < 3:
            continue
        phase = np.angle(spectrum)
        advance = _wrapped(phase[:, 1:] - phase[:, :-1] - expected)  # a steady partial advances steadily
        jitter = np.abs(_wrapped(np.diff(advance, axis=1)))
        bins = magnitude_bins[:, 2:]
        bands = np.broadcast_to(band_of_bin[:, None], jitter.shape)
        add_strong(jitter, bands, bins > last_bin)
        near = (bins >= first_bin) & (bins <= last_bin)
        undecided.append((magnitude[:, 2:][near], jitter[near], bands[near]))
    strong_above = percentile.value()
    for magnitude, jitter, band in undecided:
        add_strong(jitter, band, magnitude > strong_above)
    harmonics = []
    for index in range(len(_BANDS_HZ)):
        harmonics += [float(np.mean(np.concatenate(peaks[index]))), ridges[index].mean(float("nan"))]
    mel = spectral.mel
    flux = np.abs(np.diff(mel, axis=0))[loud[1:]]
    harmonics += [float(flux.mean()), float(flux[:, -10:].mean())] if flux.size else [0.0, 0.0]
    harmonics += [j.mean() for j in jitters] if count >= 3 else [0.0, 0.0]
    envelope = np.sqrt(spectral.frame_power)
    envelope = envelope / (envelope.max() + 1e-9)
    harmonics.append(float(np.mean(np.abs(np.diff(envelope))) / (envelope.mean() + 1e-6)) if envelope.size > 1 else 0.0)
    return (incoherence.mean() if count >= 3 else 0.0), harmonics


def audio_features(samples: np.ndarray) -> AudioFeatures:
    """Builds the windowed log-mel tensor and handcrafted vector from 16 kHz mono samples."""
    track = _track(samples)
    spectral = _Spectral.of(track)
    mel = spectral.mel
    level = mel.mean()
    normalised = mel - level  # keep spectral shape, drop loudness

    frames = normalised.shape[0]
    window_starts = (
        [0]
        if frames <= WINDOW_FRAMES
        else evenly_spaced(frames - WINDOW_FRAMES + 1, min(MAX_WINDOWS, frames // WINDOW_FRAMES + 1))
    )
    logmel = np.zeros((MAX_WINDOWS, WINDOW_FRAMES, N_MELS), dtype=np.float32)
    mask = np.zeros((MAX_WINDOWS,), dtype=np.float32)
    for slot, start in enumerate(window_starts[:MAX_WINDOWS]):
        window = normalised[start : start + WINDOW_FRAMES]
        logmel[slot, : window.shape[0]] = window
        mask[slot] = 1.0

    mfcc = scipy.fft.dct(mel, type=2, norm="ortho", axis=1)[:, :_N_MFCC]
    freqs = _fft_frequencies()
    total = spectral.bin_power.sum() + _LOG_FLOOR
    band_shares = [spectral.bin_power[freqs >= cut].sum() / total for cut in (4000, 6000, 7000)]
    cumulative = np.cumsum(spectral.bin_power) / total
    rolloff = freqs[min(int(np.searchsorted(cumulative, 0.99)), freqs.size - 1)] / (SAMPLE_RATE / 2)
    frame_power = spectral.frame_power + _LOG_FLOOR
    loud = frame_power > frame_power.max() * 1e-3
    centroid_spread = float(np.std(spectral.centroid_hz[loud]) / (SAMPLE_RATE / 2)) if loud.any() else 0.0
    silent_share = float(1.0 - loud.mean())
    incoherence, harmonics = _phase_and_harmonics(track, spectral)

    handcrafted = AUDIO.pack(
        {
            "mfcc_mean": mfcc.mean(axis=0),
            "mfcc_std": mfcc.std(axis=0),
            "band_shares": np.log10(np.asarray(band_shares) + 1e-8),
            "flatness": [
                float(spectral.flatness.mean()),
                float(rolloff),
                incoherence,
                centroid_spread,
                silent_share,
            ],  # flatness through silent_share
            "harmonic_peaks": harmonics,  # harmonic_peaks through envelope_sharpness
        }
    )
    return AudioFeatures(logmel=logmel, window_mask=mask, handcrafted=handcrafted, duration_s=samples.size / SAMPLE_RATE,
                         fingerprint=pack(fingerprint(samples)))  # fmt: skip


def extract_audio(data: Media, has_audio: bool, limits: MediaLimits) -> AudioFeatures | None:
    """Audio features of the media's first audio track; None when it has no audio track."""
    if not has_audio:
        return None
    return audio_features(decode_audio(data, SAMPLE_RATE, limits))


class _ExtractAudioDoFn(MediaDoFn):
    def __init__(self, limits: MediaLimits):
        self._limits = limits
        self._windows = Metrics.distribution("features", "audio_windows")

    def process(self, item: MediaFeatures):
        audio = extract_audio(item.data, item.info.audio_codec is not None, self._limits)
        if audio is not None:
            self._windows.update(audio.window_count)
        yield dataclasses.replace(item, audio=audio)


class ExtractAudioFeatures(MediaStep):
    """MediaFeatures -> MediaFeatures with `audio` set; undecodable tracks dead-lettered."""

    DOFN = _ExtractAudioDoFn
    STEP = "extract_audio"
