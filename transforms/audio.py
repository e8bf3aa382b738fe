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
from transforms.dead_letter import MediaDoFn, MediaStep
from transforms.limits import MediaLimits
from transforms.media import decode_audio, evenly_spaced

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
# over frames, gathered chunk by chunk, so a ten-minute track never holds its whole complex
# spectrum (and the arrays derived from it) at once; only its magnitudes are kept, for the
# one figure that needs all of them (the 90th percentile that picks the strong bins).
CHUNK_FRAMES = 3000
_BANDS_HZ = ((100, 1000), (1000, 3000), (3000, 6000))
_JITTER_BANDS_HZ = ((0, 2000), (2000, SAMPLE_RATE // 2 + 1))


def _padded(samples: np.ndarray) -> np.ndarray:
    """The track as a centred STFT sees it: clips shorter than one window zero-padded to it,
    then half a window of zeros at each end (librosa's `center=True`)."""
    if samples.size < N_FFT:
        samples = np.pad(samples, (0, N_FFT - samples.size))
    return np.pad(samples, N_FFT // 2)


def _frame_count(padded: np.ndarray) -> int:
    return 1 + (padded.size - N_FFT) // HOP_LENGTH


def _stft_frames(padded: np.ndarray, first: int, stop: int) -> np.ndarray:
    """Complex STFT frames [bins, stop - first] of the padded track (frame i starts at sample
    i * HOP_LENGTH): the same frames the whole track's centred STFT has."""
    segment = padded[first * HOP_LENGTH : (stop - 1) * HOP_LENGTH + N_FFT]
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


@dataclasses.dataclass
class _Spectral:
    """Pass one over the track: per-frame figures, per-bin power, the log-mel frames and the
    magnitudes."""

    magnitude: np.ndarray  # [bins, frames]
    mel: np.ndarray  # [frames, mels]
    frame_power: np.ndarray  # [frames], summed over bins
    flatness: np.ndarray  # [frames]
    centroid_hz: np.ndarray  # [frames]
    bin_power: np.ndarray  # [bins], summed over frames

    @classmethod
    def of(cls, padded: np.ndarray) -> _Spectral:
        count, bins = _frame_count(padded), N_FFT // 2 + 1
        freqs = _fft_frequencies()
        figures = cls(np.empty((bins, count), np.float32), np.empty((count, N_MELS), np.float32),
                      np.empty(count, np.float32), np.empty(count, np.float32), np.empty(count, np.float64),
                      np.zeros(bins, np.float64))  # fmt: skip
        for first, stop in _chunks(count):
            magnitude = np.abs(_stft_frames(padded, first, stop))
            power = magnitude**2
            figures.magnitude[:, first:stop] = magnitude
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


def _phase_and_harmonics(padded: np.ndarray, spectral: _Spectral) -> tuple[float, list[float]]:
    """Pass two: the phase incoherence, and the harmonic structure and band-wise phase jitter
    of `resynthesis_signals`, from the loud frames and the strong bins pass one found."""
    count = spectral.frame_power.size
    freqs = _fft_frequencies()
    loud = spectral.frame_power > np.percentile(spectral.frame_power, 60)
    if loud.sum() < 3:
        loud = np.ones_like(loud)
    strong_above = np.percentile(spectral.magnitude, 90)
    peaks, ridges = [[] for _ in _BANDS_HZ], [_Sum() for _ in _BANDS_HZ]
    incoherence, jitters = _Sum(), [_Sum() for _ in _JITTER_BANDS_HZ]
    expected = 2 * np.pi * HOP_LENGTH * np.arange(N_FFT // 2 + 1)[:, None] / N_FFT
    for first, stop in _chunks(count):
        log_magnitude = np.log(spectral.magnitude[:, first:stop] + 1e-6)[:, loud[first:stop]]
        for index, (low, high) in enumerate(_BANDS_HZ):
            band = log_magnitude[(freqs >= low) & (freqs < high)]
            peaks[index].append(band.max(axis=0) - np.median(band, axis=0))
            ridges[index].add(np.abs(band[2:] - 2 * band[1:-1] + band[:-2]))
        # The jitter of frame t reads the phase of frames t, t + 1 and t + 2.
        last = min(stop, count - 2)
        if last <= first:
            continue
        phase = np.angle(_stft_frames(padded, first, last + 2))
        advance = _wrapped(phase[:, 1:] - phase[:, :-1] - expected)  # a steady partial advances steadily
        jitter = np.abs(_wrapped(np.diff(advance, axis=1)))
        strong = spectral.magnitude[:, first + 2 : last + 2] > strong_above
        incoherence.add(jitter[strong])
        for index, (low, high) in enumerate(_JITTER_BANDS_HZ):
            jitters[index].add(jitter[((freqs >= low) & (freqs < high))[:, None] & strong])
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
    padded = _padded(samples)
    spectral = _Spectral.of(padded)
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
    incoherence, harmonics = _phase_and_harmonics(padded, spectral)

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
    return AudioFeatures(
        logmel=logmel, window_mask=mask, handcrafted=handcrafted, duration_s=samples.size / SAMPLE_RATE
    )


def extract_audio(data: bytes, has_audio: bool, limits: MediaLimits) -> AudioFeatures | None:
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
