"""The audio fingerprint finds a re-posted recording after what a platform does to it, and
links no two different recordings. Real speech: the held-out human recordings the tests use
(alsa, pocketsphinx), joined into voice notes of 9-19 s that share no recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.audio_fingerprint import CHANGES, decode
from training.sources import BY_NAME, fetch_all, media_files
from transforms.audio_fingerprint import MAX_BIT_ERROR_RATE, SAMPLE_RATE, AudioIndex, bit_error_rate, fingerprint

CACHE = Path(__file__).resolve().parents[1] / "data" / "sources"


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    fetch_all([BY_NAME["alsa"], BY_NAME["pocketsphinx"]], CACHE)
    files = media_files(BY_NAME["alsa"], CACHE) + media_files(BY_NAME["pocketsphinx"], CACHE)
    return [decode(path.read_bytes()) for path in files if path.suffix == ".wav"]


@pytest.fixture(scope="module")
def notes(clips) -> dict[str, np.ndarray]:
    """Four voice notes, each a different set of recordings with pauses between them."""
    order = np.random.default_rng(0).permutation(len(clips))
    pause = np.zeros(SAMPLE_RATE // 4, np.float32)
    return {f"note{n}": np.concatenate([part for i in chosen for part in (clips[i], pause)])
            for n, chosen in enumerate(np.array_split(order, 4))}  # fmt: skip


@pytest.fixture(scope="module")
def bank(notes) -> AudioIndex:
    index = AudioIndex()
    for name, samples in notes.items():
        index.add(name, fingerprint(samples))
    return index


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_copy_matches_its_original_and_nothing_else(notes, bank, change):
    for name, samples in notes.items():
        found = bank.match(fingerprint(CHANGES[change](samples)))
        assert found is not None and found.entry == name, (change, name, found)
        assert found.bit_error_rate < MAX_BIT_ERROR_RATE and found.overlap_frames >= 200


def test_a_trimmed_copy_is_found_at_its_offset(notes, bank):
    samples = notes["note1"]
    found = bank.match(fingerprint(samples[3 * SAMPLE_RATE :]))
    assert found.entry == "note1" and abs(found.offset - 3 * SAMPLE_RATE / 256) <= 1


def test_different_recordings_are_not_linked(clips):
    """Each recording against a bank of all the others (the same speakers saying similar
    words: "Front left", "Front right", ...)."""
    prints = [fingerprint(samples) for samples in clips]
    for number, query in enumerate(prints):
        others = AudioIndex()
        for other, banked in enumerate(prints):
            if other != number:
                others.add(other, banked)
        assert others.match(query) is None, number


def test_silence_and_a_steady_tone_match_nothing(bank):
    silence = np.zeros(10 * SAMPLE_RATE, np.float32)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    assert not fingerprint(silence).sound.any() and bank.match(fingerprint(silence)) is None
    assert bank.match(fingerprint(tone)) is None


def test_gain_leaves_the_words_as_they_were(notes):
    samples = notes["note0"]
    plain, quiet = fingerprint(samples), fingerprint(samples * 0.05)
    assert (plain.sound == quiet.sound).mean() > 0.99
    assert bit_error_rate(plain.words[plain.sound], quiet.words[plain.sound]) < 0.01
