"""The audio fingerprint finds a re-posted recording after what a platform does to it, and
links no two different recordings. Real speech: the held-out human recordings the tests use
(alsa, pocketsphinx), joined into voice notes of 9-19 s that share no recording."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from benchmarks.audio_fingerprint import CHANGES, decode
from schemas.records import MediaFeatures, MediaInfo, UploadEvent
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


def test_a_voice_note_in_the_bank_is_matched_from_the_features_the_jobs_extract(notes, tmp_path):
    """The bank's audio entries: the fingerprint the audio features carry (packed as the
    features table holds it), read with the item's bank entry, matched by the hash-bank step
    on a re-encoded re-post; the other notes match nothing."""
    import soundfile

    from pipelines.bank import read_bank
    from transforms.audio import extract_audio
    from transforms.audio_fingerprint import pack, unpack
    from transforms.hashbank import _MatchDoFn
    from transforms.limits import MediaLimits
    from warehouse.embedded import write_catalog
    from warehouse.reader import open_reader

    from .conftest import seed_table

    def wav(samples: np.ndarray) -> bytes:
        path = tmp_path / "note.wav"
        soundfile.write(path, samples, SAMPLE_RATE)
        return path.read_bytes()

    banked = extract_audio(wav(notes["note0"]), True, MediaLimits())
    original = fingerprint(notes["note0"])
    stored = unpack(banked.fingerprint)  # from the 16-bit WAV, decoded as the jobs decode it
    assert stored.words.size == original.words.size and bit_error_rate(stored.words, original.words) < 0.05
    assert pack(unpack(banked.fingerprint)) == banked.fingerprint
    warehouse = tmp_path / "wh"
    seed_table(warehouse, "bank_changes", [{
        "change_id": "x1", "content_id": "voice-1", "change": "add", "reason": "reviewer_removal", "decision_id": "d7",
        "changed_at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC), "source": "decisions", "run_id": "r1",
    }])  # fmt: skip
    seed_table(warehouse, "features", [{"content_id": "voice-1", "media_type": "audio",
                                        "audio_fingerprint": banked.fingerprint}])  # fmt: skip
    write_catalog(str(warehouse))
    bank = read_bank(open_reader(str(warehouse)))
    match = _MatchDoFn(bank)
    repost = CHANGES["all: trimmed, x0.3, AAC 24 kb/s at 44.1 kHz"](notes["note0"])
    for samples, expected in ((repost, "banked:reviewer_removal:d7"), (notes["note1"], None), (notes["note2"], None)):
        item = MediaFeatures(UploadEvent("c", "/m.wav", "a9", dt.datetime(2026, 12, 2, tzinfo=dt.UTC)), "0" * 64,
                             MediaInfo(media_type="audio", container="wav"), None,
                             extract_audio(wav(samples), True, MediaLimits()), None,
                             dt.datetime(2026, 12, 2, tzinfo=dt.UTC))  # fmt: skip
        (matched,) = match.process(item)
        assert matched.hash_match == expected
