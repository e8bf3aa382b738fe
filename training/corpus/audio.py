"""Audio of the corpus: speech from a jittery glottal source through moving formants, music and
ambience, a room and noise, and the traces of each audio generator family."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import fft, signal

from training.corpus.plans import _CONTROL_RATE, _VOWEL_FORMANTS, _VOWEL_OPENNESS


@dataclass(frozen=True)
class _SpeechTracks:
    """Speech parameters at the control rate: what is said and when."""

    voicing: np.ndarray
    frication: np.ndarray
    formants: np.ndarray  # (n, 3) Hz
    openness: np.ndarray  # mouth opening, also drives the face's mouth


@dataclass(frozen=True)
class _Voice:
    f0: float
    declination: float
    pitch_walk: float  # slow random pitch movement (0 for a flat TTS template)
    jitter: float  # cycle-to-cycle period perturbation
    shimmer: float  # cycle-to-cycle amplitude perturbation
    breath: float
    tract_scale: float
    open_quotient: float


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred box average along the first axis, edges padded; O(n) whatever the width."""
    if width <= 1:
        return x
    pad = [(width // 2, width - 1 - width // 2)] + [(0, 0)] * (x.ndim - 1)
    sums = np.cumsum(np.pad(x, pad, mode="edge"), axis=0)
    sums = np.concatenate([np.zeros((1, *x.shape[1:])), sums], axis=0)
    return (sums[width:] - sums[:-width]) / width


def _speech_tracks(rng: np.random.Generator, duration: float, regular: bool) -> _SpeechTracks:
    n = max(2, round(duration * _CONTROL_RATE))
    voicing, frication, openness = np.zeros(n), np.zeros(n), np.zeros(n)
    formants = np.tile(np.array([500.0, 1500.0, 2500.0]), (n, 1))
    # A TTS front end quantises durations to its frame hop and keeps them even.
    syllable = rng.uniform(0.11, 0.17)

    def frames_for(seconds: float) -> int:
        if regular:
            return max(2, round(seconds * _CONTROL_RATE / 2) * 2)
        return max(1, round(seconds * _CONTROL_RATE))

    pos = frames_for(rng.uniform(0.05, 0.3))
    last = formants[0]
    while pos < n:
        if rng.random() < 0.18:
            length = frames_for(0.22 if regular else rng.uniform(0.08, 0.45))
            formants[pos : pos + length] = last
            pos += length
            continue
        if rng.random() < 0.45:
            length = frames_for(0.06 if regular else rng.uniform(0.04, 0.1))
            frication[pos : pos + length] = 0.6 if regular else rng.uniform(0.3, 0.8)
            formants[pos : pos + length] = last
            pos += length
        vowel = int(rng.integers(len(_VOWEL_FORMANTS)))
        seconds = syllable * (rng.uniform(0.9, 1.1) if regular else rng.lognormal(0, 0.35))
        length = frames_for(seconds)
        target = _VOWEL_FORMANTS[vowel] * (1.0 if regular else rng.uniform(0.95, 1.05, 3))
        voicing[pos : pos + length] = 0.9 if regular else rng.uniform(0.6, 1.0)
        formants[pos : pos + length] = target
        openness[pos : pos + length] = _VOWEL_OPENNESS[vowel]
        last = target
        pos += length
    return _SpeechTracks(
        voicing=_moving_average(voicing, 5),
        frication=_moving_average(frication, 3),
        formants=_moving_average(formants, 8),
        openness=_moving_average(openness, 6),
    )


def _time_warped(tracks: _SpeechTracks, rng: np.random.Generator) -> _SpeechTracks:
    """The same words re-timed, as a voice clone laid over someone else's lips would be."""
    n = len(tracks.voicing)
    t = np.arange(n, dtype=np.float64)
    knots = np.linspace(0, n - 1, 6)
    offset = np.interp(t, knots, rng.normal(0, 1, 6)) * rng.uniform(8, 30)
    source = np.clip(t + offset, 0, n - 1)
    warp = lambda track: np.interp(source, t, track)  # noqa: E731
    return _SpeechTracks(
        voicing=warp(tracks.voicing),
        frication=warp(tracks.frication),
        formants=np.stack([warp(tracks.formants[:, k]) for k in range(3)], axis=1),
        openness=warp(tracks.openness),
    )


def _make_voice(rng: np.random.Generator, tts_irregularity: float | None) -> _Voice:
    f0 = math.exp(rng.uniform(math.log(90), math.log(250)))
    tract = float(np.clip(1.0 + (f0 - 120) / 400 + rng.normal(0, 0.04), 0.88, 1.3))
    if tts_irregularity is None:  # a human voice
        return _Voice(f0, rng.uniform(0.05, 0.2), rng.uniform(0.04, 0.1), rng.uniform(0.005, 0.02),
                      rng.uniform(0.03, 0.1), rng.uniform(0.02, 0.08), tract, rng.uniform(0.5, 0.7))  # fmt: skip
    k = tts_irregularity  # 0 = perfectly periodic; small values make subtle items
    return _Voice(f0, rng.uniform(0.08, 0.15), 0.01 * k, 0.004 * k, 0.02 * k, 0.01, tract, 0.6)


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f^exponent (0 white, 1 pink, 2 brown), unit std."""
    length = fft.next_fast_len(n, real=True)
    spectrum = fft.rfft(rng.standard_normal(length))
    freqs = fft.rfftfreq(length)
    freqs[0] = freqs[1] if length > 2 else 1.0
    spectrum *= freqs ** (-exponent / 2)
    noise = fft.irfft(spectrum, length)[:n]
    return noise / (noise.std() + 1e-12)


def _formant_filter(source: np.ndarray, formants: np.ndarray, tract: float, sr: int) -> np.ndarray:
    """Cascade of time-varying two-pole resonators, updated when the formants move."""
    n = len(source)
    block = max(1, round(sr / _CONTROL_RATE))
    blocks = -(-n // block)
    index = np.minimum(np.arange(blocks) * block * _CONTROL_RATE // sr, len(formants) - 1)
    freqs = formants[index] * tract
    extra = np.tile(np.array([3300.0, 4400.0]) * tract, (blocks, 1))
    freqs = np.concatenate([freqs, extra], axis=1)
    bandwidths = np.array([70.0, 100.0, 140.0, 200.0, 260.0])
    radius = np.exp(-np.pi * bandwidths / sr)[None, :].repeat(blocks, 0)
    theta = 2 * np.pi * freqs / sr
    a1, a2 = -2 * radius * np.cos(theta), radius**2
    b0 = 1 + a1 + a2  # unity gain at DC (Klatt resonator)
    usable = freqs < 0.46 * sr
    a1, a2, b0 = np.where(usable, a1, 0.0), np.where(usable, a2, 0.0), np.where(usable, b0, 1.0)
    # Steady vowels keep their coefficients; filtering whole steady runs saves most calls.
    starts = [0]
    for k in range(1, blocks):
        if np.max(np.abs(freqs[k] - freqs[starts[-1]]) / freqs[starts[-1]]) > 0.01:
            starts.append(k)
    starts.append(blocks)
    sections = np.zeros((freqs.shape[1], 6))
    sections[:, 3] = 1.0
    state = np.zeros((freqs.shape[1], 2))
    out = np.empty(n)
    for begin, end in itertools.pairwise(starts):
        sections[:, 0], sections[:, 4], sections[:, 5] = b0[begin], a1[begin], a2[begin]
        span = slice(begin * block, end * block)
        out[span], state = signal.sosfilt(sections, source[span], zi=state)
    return out


def _synthesize_speech(rng: np.random.Generator, tracks: _SpeechTracks, voice: _Voice, sr: int) -> np.ndarray:
    n_ctrl = len(tracks.voicing)
    n = int(n_ctrl * sr / _CONTROL_RATE)
    t_ctrl = np.arange(n_ctrl) / _CONTROL_RATE
    t = np.arange(n) / sr
    duration = n_ctrl / _CONTROL_RATE
    walk = _moving_average(rng.standard_normal(n_ctrl), 60) * 6 * voice.pitch_walk
    accent = 0.08 * _moving_average(tracks.openness, 30)  # pitch rises a little on open vowels
    f0_ctrl = voice.f0 * (1 + voice.declination * (0.5 - t_ctrl / duration)) * (1 + walk + accent)
    if voice.pitch_walk < 0.005:  # TTS template: one smooth rise-fall per phrase, nothing else
        period, depth = rng.uniform(0.9, 1.8), rng.uniform(0.03, 0.08)
        f0_ctrl = voice.f0 * (
            1 + voice.declination * (0.5 - t_ctrl / duration) + depth * np.sin(2 * np.pi * t_ctrl / period)
        )
    f0 = np.interp(t, t_ctrl, np.clip(f0_ctrl, 70, 330))
    cycles = np.floor(np.cumsum(f0 / sr)).astype(np.int64)
    period_noise = rng.standard_normal(int(cycles[-1]) + 3)
    phase = np.cumsum(f0 * (1 + voice.jitter * period_noise[cycles]) / sr)
    cycle = np.floor(phase).astype(np.int64)
    frac = phase - cycle
    # Rosenberg glottal pulse from the continuous phase, so a TTS source is exactly periodic.
    opening, closing = voice.open_quotient * 0.8, voice.open_quotient * 0.2
    pulse = np.where(frac < opening, 0.5 * (1 - np.cos(np.pi * frac / opening)),
                     np.where(frac < opening + closing, np.cos(np.pi * (frac - opening) / (2 * closing)), 0.0))  # fmt: skip
    amplitude = 1 + voice.shimmer * rng.standard_normal(int(cycle[-1]) + 3)[np.minimum(cycle, int(cycle[-1]) + 2)]
    voicing = np.interp(t, t_ctrl, tracks.voicing)
    source = np.diff(pulse, prepend=0.0) * amplitude * voicing * (sr / f0) / 4
    source += voice.breath * rng.standard_normal(n) * voicing * 0.1
    voiced = _formant_filter(source, tracks.formants, voice.tract_scale, sr)
    hiss_band = (min(2500.0, 0.3 * sr), min(7500.0, 0.47 * sr))
    hiss = signal.sosfilt(signal.butter(2, hiss_band, "bandpass", fs=sr, output="sos"), rng.standard_normal(n))
    frication = np.interp(t, t_ctrl, tracks.frication)
    speech = voiced / (np.abs(voiced).max() + 1e-9) + 0.35 * hiss * frication / (hiss.std() * 4 + 1e-9)
    return speech


def _music(rng: np.random.Generator, duration: float, sr: int) -> np.ndarray:
    n = int(duration * sr)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(70, 140)
    root = rng.uniform(45, 58)
    chords = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4))
    rolloff = rng.uniform(1.0, 2.0)
    t_beat = 0.0
    step = 0
    chord = chords[0]
    while t_beat < duration:
        if step % 4 == 0:  # a new chord every bar
            chord = chords[int(rng.integers(len(chords)))]
        notes = [root + c for c in chord] + ([root + 12 + chord[int(rng.integers(3))]] if rng.random() < 0.7 else [])
        start = int(t_beat * sr)
        length = min(int(beat * sr * rng.uniform(0.8, 1.6)), n - start)
        if length > 0:
            tt = np.arange(length) / sr
            envelope = np.minimum(tt / 0.01, 1) * np.exp(-tt / rng.uniform(0.2, 0.8))
            for midi in notes:
                freq = 440 * 2 ** ((midi - 69) / 12)
                # 5 Hz vibrato of +-0.3%: the integral of 1 + 0.003 sin(2 pi 5 t), as a phase.
                warped = tt - 0.003 / (2 * np.pi * 5) * np.cos(2 * np.pi * 5 * tt)
                for harmonic in range(1, 7):
                    if harmonic * freq < 0.45 * sr:
                        out[start : start + length] += (
                            np.sin(2 * np.pi * harmonic * freq * warped) / harmonic**rolloff * envelope
                        )
            if rng.random() < 0.6:  # a kick drum: a falling sine burst
                kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-tt / 0.03)) * tt) * np.exp(-tt / 0.12)
                out[start : start + length] += 1.5 * kick
        t_beat += beat
        step += 1
    return out


def _ambient(rng: np.random.Generator, duration: float, sr: int) -> np.ndarray:
    n = int(duration * sr)
    bed = _colored_noise(rng, n, rng.uniform(0.8, 2.0))
    t = np.arange(n) / sr
    bed *= 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.4) * t + rng.uniform(0, 6))
    for _ in range(int(rng.integers(2, 8))):  # chirps, clicks, distant events
        start = int(rng.uniform(0, duration - 0.3) * sr)
        tt = np.arange(int(rng.uniform(0.05, 0.3) * sr)) / sr
        f_start = rng.uniform(1500, min(6000.0, 0.4 * sr))
        sweep = np.sin(2 * np.pi * (f_start * tt + rng.uniform(-4000, 4000) * tt**2)) * np.hanning(len(tt))
        bed[start : start + len(tt)] += rng.uniform(0.5, 3.0) * sweep
    if rng.random() < 0.3:
        mains = 50.0 if rng.random() < 0.5 else 60.0
        bed += 0.3 * sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
    return bed


def _room_response(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A short synthetic room impulse response: direct path, early reflections, damped tail."""
    rt60 = rng.uniform(0.15, 0.7)
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail = signal.lfilter([1 - 0.6], [1, -0.6], tail)  # walls absorb the highs
    ir = tail * rng.uniform(0.05, 0.3)
    ir[0] = 1.0
    for _ in range(int(rng.integers(3, 8))):
        ir[min(n - 1, int(rng.uniform(0.002, 0.03) * sr))] += rng.uniform(0.15, 0.6) * rng.choice([-1, 1])
    return ir / np.abs(ir).sum() * 4


def _add_noise(rng: np.random.Generator, x: np.ndarray, snr_db: float, sr: int) -> np.ndarray:
    noise = _colored_noise(rng, len(x), rng.uniform(0.6, 2.0))
    if rng.random() < 0.15:
        t = np.arange(len(x)) / sr
        noise += 2 * np.sin(2 * np.pi * (50.0 if rng.random() < 0.5 else 60.0) * t)
    power = np.mean(x**2) + 1e-12
    return x + noise * math.sqrt(power / (10 ** (snr_db / 10)) / (np.mean(noise**2) + 1e-12))


def _noise_gate(x: np.ndarray, sr: int, threshold: float) -> np.ndarray:
    """Attenuates quiet stretches (noise between words), like a call app's suppression."""
    envelope = _moving_average(np.abs(x), int(0.03 * sr))
    gain = np.clip(envelope / (threshold * np.abs(x).max() + 1e-12), 0, 1) ** 2
    return x * _moving_average(gain, int(0.01 * sr))


def _stft(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    frames = 1 + (len(x) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.fft.rfft(x[index] * window, axis=1)


def _istft(spectrum: np.ndarray, n_fft: int, hop: int, window: np.ndarray, length: int) -> np.ndarray:
    frames = np.fft.irfft(spectrum, n=n_fft, axis=1) * window
    overlap = n_fft // hop
    n_frames = len(frames)
    out = np.zeros((n_frames + overlap - 1) * hop)
    norm = np.zeros_like(out)
    blocks = frames.reshape(n_frames, overlap, hop)
    win_blocks = (window**2).reshape(overlap, hop)
    out_blocks = out.reshape(-1, hop)
    norm_blocks = norm.reshape(-1, hop)
    for r in range(overlap):
        out_blocks[r : r + n_frames] += blocks[:, r]
        norm_blocks[r : r + n_frames] += win_blocks[r]
    out = out / np.maximum(norm, 1e-8)
    return out[:length] if len(out) >= length else np.pad(out, (0, length - len(out)))


def _griffin_lim(rng: np.random.Generator, x: np.ndarray, sr: int, iterations: int, smear_high: bool) -> np.ndarray:
    """Magnitude-only resynthesis: phase rebuilt from a random start by a few GL iterations."""
    n_fft = 512 if sr <= 24000 else 1024
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(x, (n_fft, n_fft))
    magnitude = np.abs(_stft(padded, n_fft, hop, window))
    if smear_high:  # a mel-like front end blurs harmonics above ~2 kHz
        cut = int(2000 / sr * n_fft)
        magnitude[:, cut:] = cv2.blur(magnitude[:, cut:].astype(np.float32), (5, 1)).astype(np.float64)
    phase = np.exp(2j * np.pi * rng.random(magnitude.shape))
    for _ in range(iterations):
        estimate = _istft(magnitude * phase, n_fft, hop, window, len(padded))
        rebuilt = _stft(estimate, n_fft, hop, window)
        phase = rebuilt / np.maximum(np.abs(rebuilt), 1e-9)
    return _istft(magnitude * phase, n_fft, hop, window, len(padded))[n_fft : n_fft + len(x)]


def _neural_bandlimit(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    """Brick-wall cutoff at 4-7 kHz, tones at multiples of sr/U, and a weak spectral image."""
    n = len(x)
    length = fft.next_fast_len(n, real=True)
    cutoff = min(rng.uniform(4000, 7000), 0.45 * sr)
    spectrum = fft.rfft(x, length)
    freqs = fft.rfftfreq(length, 1 / sr)
    transition = rng.uniform(20, 150)
    spectrum *= 0.5 * (1 - np.tanh((freqs - cutoff) / (transition / 4)))
    y = fft.irfft(spectrum, length)[:n]
    envelope = np.sqrt(_moving_average(y**2, int(0.02 * sr)))
    t = np.arange(n) / sr
    factor = int(rng.choice([4, 8, 16]))
    level = 10 ** (-rng.uniform(32, 50) / 20)
    tones = sum(np.cos(2 * np.pi * k * sr / factor * t + rng.uniform(0, 6)) for k in range(1, factor // 2))
    y = y + level * envelope * tones * 3
    # Zero-insertion upsampling in the last layer leaves a faint mirror of the low band.
    quarter = fft.irfft(fft.rfft(y, length) * (freqs < sr / 4), length)[:n]
    y = y + 10 ** (-rng.uniform(30, 45) / 20) * quarter * np.cos(np.pi * np.arange(n))
    return y


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    g = math.gcd(sr_in, sr_out)
    return signal.resample_poly(x, sr_out // g, sr_in // g)


def _render_audio(
    rng: np.random.Generator,
    family: str | None,
    content: str,
    duration: float,
    file_sr: int,
    tracks: _SpeechTracks | None,
) -> np.ndarray:
    """A mono float32 clip at ``file_sr``: a real recording or one synthetic audio family.

    Args:
        rng: the item's audio random stream.
        family: None for a real recording, else an audio family name.
        content: "speech", "music" or "ambient" (TTS always makes speech).
        duration: seconds.
        file_sr: sample rate of the file.
        tracks: speech timing to follow (for lip sync), or None to make fresh speech.
    """
    if family is None:
        lower = [r for r in (16000, 22050, 24000) if r < file_sr]
        content_sr = file_sr if rng.random() < 0.75 or not lower else int(rng.choice(lower))
    else:  # neural generators mostly run at 16-24 kHz, some at 44.1-48 kHz
        content_sr = int(rng.choice([16000, 22050, 24000])) if rng.random() < 0.8 else file_sr
        content_sr = min(content_sr, file_sr)
    if family == "tts":
        content = "speech"
    if content == "speech":
        regular = family == "tts"
        tracks = tracks if tracks is not None else _speech_tracks(rng, duration, regular)
        voice = _make_voice(rng, rng.uniform(0, 0.25) if regular else None)
        x = _synthesize_speech(rng, tracks, voice, content_sr)
    elif content == "music":
        x = _music(rng, duration, content_sr)
    else:
        x = _ambient(rng, duration, content_sr)
    x = x[: int(duration * content_sr)]
    x = np.pad(x, (0, max(0, int(duration * content_sr) - len(x))))
    x = signal.sosfilt(signal.butter(2, rng.uniform(50, 140), "highpass", fs=content_sr, output="sos"), x)

    if family is None:
        if rng.random() < 0.85:
            x = signal.fftconvolve(x, _room_response(rng, content_sr))[: len(x)]
        if rng.random() < 0.85:  # some are studio-clean or denoised by the recording app
            x = _add_noise(rng, x, rng.uniform(10, 40), content_sr)
        if rng.random() < 0.3 and content_sr > 16000:  # a cheap microphone rolls off gently
            x = signal.sosfilt(signal.butter(2, rng.uniform(5000, 0.45 * content_sr), fs=content_sr, output="sos"), x)
        elif rng.random() < 0.05:  # a phone call
            x = signal.sosfilt(signal.butter(4, (300, 3400), "bandpass", fs=content_sr, output="sos"), x)
    elif family == "vocoder":
        if rng.random() < 0.4:  # trained on reverberant data, it reproduces some room
            x = signal.fftconvolve(x, _room_response(rng, content_sr))[: len(x)]
        x = _griffin_lim(rng, x, content_sr, int(rng.integers(1, 13)), rng.random() < 0.5)
        if rng.random() < 0.35:
            x = _add_noise(rng, x, rng.uniform(18, 40), content_sr)
    elif family == "bandlimit":
        x = _neural_bandlimit(rng, x, content_sr)
        if rng.random() < 0.3:
            x = _add_noise(rng, x, rng.uniform(20, 40), content_sr)
    elif family == "tts" and rng.random() < 0.35:
        x = _add_noise(rng, x, rng.uniform(25, 45), content_sr)
    x = _resample(x, content_sr, file_sr)
    if family is not None and rng.random() < 0.6:
        # Mixed over a real background after generation: full-band noise hides the band edge.
        x = _add_noise(rng, x, rng.uniform(20, 45), file_sr)
    if rng.random() < 0.15:  # the app's noise suppression, on either class
        x = _noise_gate(x, file_sr, rng.uniform(0.02, 0.1))
    peak = np.abs(x).max() + 1e-9
    return (x / peak * 10 ** (-rng.uniform(1, 9) / 20)).astype(np.float32)
