"""The audio model's hand-made signals (`handcrafted`), declared once: name, width, meaning.

    python -m models.audio_layout      # prints the table with its offsets

`transforms.audio.audio_features` packs the vector by these names (`AUDIO.pack`); the
offsets, the length (`AUDIO_HANDCRAFTED_DIM`) and the names in model cards come from here.
"""

from __future__ import annotations

from models.layout import Field, Layout

AUDIO = Layout(
    "audio",
    (
        Field("mfcc_mean", 20, "MFCC means over the track"),
        Field("mfcc_std", 20, "MFCC standard deviations"),
        Field("band_shares", 3, "log share of energy above 4, 6 and 7 kHz (vocoder band limits)"),
        Field("flatness", 1, "spectral flatness"),
        Field("rolloff", 1, "99% roll-off frequency / Nyquist"),
        Field(
            "phase_incoherence",
            1,
            "spread of the frame-to-frame phase advance around its expected value in strong bins "
            "(magnitude-only resynthesis scrambles it)",
        ),
        Field("centroid_spread", 1, "spread of the spectral-centroid track (too-regular synthetic prosody is flat)"),
        Field("silent_share", 1, "share of near-silent frames"),
        Field(
            "harmonic_peaks",
            6,
            "harmonic peak-to-floor and spectral ridge sharpness in loud frames, in the 0.1-1, 1-3 and 3-6 kHz "
            "bands (magnitude-only resynthesis smears harmonics into noise)",
        ),
        Field("spectral_flux", 2, "spectral flux of loud frames, all bands and the top mel bands"),
        Field("phase_jitter", 2, "frame-to-frame phase-advance jitter of strong bins below and above 2 kHz"),
        Field("envelope_sharpness", 1, "sharpness of the loudness envelope (smeared transients)"),
    ),
)
AUDIO_HANDCRAFTED_DIM = AUDIO.dim


if __name__ == "__main__":
    print(AUDIO.describe())
