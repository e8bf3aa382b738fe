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
def _mel_basis() -> np.ndarray:
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


def stft(samples: np.ndarray) -> np.ndarray:
    """Complex STFT [bins, frames]; clips shorter than one window are zero-padded."""
    if samples.size < N_FFT:
        samples = np.pad(samples, (0, N_FFT - samples.size))
    return librosa.stft(samples, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, center=True)


def log_mel(power: np.ndarray) -> np.ndarray:
    """Log-mel energies [frames, mels] from an STFT's power [bins, frames]."""
    return np.log10(_mel_basis() @ power + _LOG_FLOOR).T.astype(np.float32)


def _wrapped(phase: np.ndarray) -> np.ndarray:
    """Phase wrapped to [-pi, pi] by arithmetic (what angle(exp(1j * phase)) gives, without
    the complex exponential)."""
    return phase - (2 * np.pi) * np.rint(phase / (2 * np.pi))


@dataclasses.dataclass(frozen=True)
class _Spectrum:
    """What the handcrafted signals read of one STFT, each computed once."""

    magnitude: np.ndarray  # [bins, frames]
    power: np.ndarray
    jitter: np.ndarray | None  # |second difference of the phase advance|, [bins, frames - 2]; None under 3 frames
    strong: np.ndarray | None  # bins x frames (from the third) in the loudest 10% of magnitudes

    @classmethod
    def of(cls, spectrum: np.ndarray) -> _Spectrum:
        magnitude = np.abs(spectrum)
        jitter = strong = None
        if spectrum.shape[1] >= 3:
            expected = 2 * np.pi * HOP_LENGTH * np.arange(spectrum.shape[0])[:, None] / N_FFT
            phase = np.angle(spectrum)
            advance = _wrapped(phase[:, 1:] - phase[:, :-1] - expected)  # a steady partial advances steadily
            jitter = np.abs(_wrapped(np.diff(advance, axis=1)))
            strong = magnitude[:, 2:] > np.percentile(magnitude, 90)
        return cls(magnitude, magnitude**2, jitter, strong)


def _phase_incoherence(spectral: _Spectrum) -> float:
    if spectral.jitter is None or not spectral.strong.any():
        return 0.0
    return float(np.mean(spectral.jitter[spectral.strong]))


_BANDS_HZ = ((100, 1000), (1000, 3000), (3000, 6000))


def resynthesis_signals(spectral: _Spectrum, mel: np.ndarray) -> list[float]:
    """Harmonic structure, flux, band-wise phase jitter and envelope sharpness (entries 48-58)."""
    magnitude = spectral.magnitude
    log_magnitude = np.log(magnitude + 1e-6)
    frame_power = spectral.power.sum(axis=0)
    loud = frame_power > np.percentile(frame_power, 60)
    if loud.sum() < 3:
        loud = np.ones_like(loud)
    freqs = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT)
    values: list[float] = []
    for low, high in _BANDS_HZ:
        band = log_magnitude[(freqs >= low) & (freqs < high)][:, loud]
        ridges = band[2:] - 2 * band[1:-1] + band[:-2]
        values += [float(np.mean(band.max(axis=0) - np.median(band, axis=0))), float(np.mean(np.abs(ridges)))]
    flux = np.abs(np.diff(mel, axis=0))[loud[1:]]
    values += [float(flux.mean()), float(flux[:, -10:].mean())] if flux.size else [0.0, 0.0]
    if spectral.jitter is not None:
        for low, high in ((0, 2000), (2000, SAMPLE_RATE // 2 + 1)):
            selected = ((freqs >= low) & (freqs < high))[:, None] & spectral.strong
            values.append(float(spectral.jitter[selected].mean()) if selected.any() else 0.0)
    else:
        values += [0.0, 0.0]
    envelope = np.sqrt(frame_power)
    envelope = envelope / (envelope.max() + 1e-9)
    values.append(float(np.mean(np.abs(np.diff(envelope))) / (envelope.mean() + 1e-6)) if envelope.size > 1 else 0.0)
    return values


def audio_features(samples: np.ndarray) -> AudioFeatures:
    """Builds the windowed log-mel tensor and handcrafted vector from 16 kHz mono samples."""
    spectral = _Spectrum.of(stft(samples))
    mel = log_mel(spectral.power)
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
    power = spectral.power
    freqs = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT)
    total = power.sum() + _LOG_FLOOR
    band_shares = [power[freqs >= cut].sum() / total for cut in (4000, 6000, 7000)]
    frame_power = power.sum(axis=0) + _LOG_FLOOR
    flatness = np.exp(np.mean(np.log(power + _LOG_FLOOR), axis=0)) / (power.mean(axis=0) + _LOG_FLOOR)
    cumulative = np.cumsum(power.sum(axis=1)) / total
    rolloff = freqs[min(int(np.searchsorted(cumulative, 0.99)), freqs.size - 1)] / (SAMPLE_RATE / 2)
    centroid = (freqs[:, None] * power).sum(axis=0) / frame_power
    loud = frame_power > frame_power.max() * 1e-3
    centroid_spread = float(np.std(centroid[loud]) / (SAMPLE_RATE / 2)) if loud.any() else 0.0
    silent_share = float(1.0 - loud.mean())

    handcrafted = AUDIO.pack(
        {
            "mfcc_mean": mfcc.mean(axis=0),
            "mfcc_std": mfcc.std(axis=0),
            "band_shares": np.log10(np.asarray(band_shares) + 1e-8),
            "flatness": [
                float(flatness.mean()),
                float(rolloff),
                _phase_incoherence(spectral),
                centroid_spread,
                silent_share,
            ],  # flatness through silent_share
            "harmonic_peaks": resynthesis_signals(spectral, mel),  # harmonic_peaks through envelope_sharpness
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
