"""Tests for training.corpus, the generator of the labelled real/synthetic media corpus."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from training.corpus import FAMILIES, generate_corpus, main, render_image

COUNT, CORRUPT, SEED = 24, 2, 7
REQUIRED_KEYS = {"content_id", "media_uri", "account_id", "uploaded_at"}
OPTIONAL_KEYS = {"media_type", "surface", "country", "declared_ai", "account", "notice"}
ACCOUNT_KEYS = {"created_at", "verified", "high_profile", "prior_strikes"}
LABEL_KEYS = {
    "content_id", "label", "visual_label", "audio_label", "metadata_label", "families", "media_type", "container",
    "file_metadata_stripped", "source",
}  # fmt: skip
AI_SOURCE_TYPE = b"http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _rfc3339(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def _decode(path: Path) -> tuple[int, int]:
    """(video frames, audio samples) decoded with PyAV; raises if the file is unreadable."""
    frames = samples = 0
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                frames += 1
            else:
                samples += frame.samples
    return frames, samples


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _nyquist_peak(image: np.ndarray) -> float:
    """log10 power of the high-pass residual at the Nyquist bins, relative to its median bin.

    A 2x transposed-convolution (or nearest) upsampler leaves a period-2 pattern, i.e. peaks
    exactly there; camera noise and JPEG blocking leave much weaker ones.
    """
    grey = image.astype(np.float32).mean(axis=2)
    height, width = grey.shape
    grey = grey[: height // 2 * 2, : width // 2 * 2]
    height, width = grey.shape
    power = np.abs(np.fft.fft2(grey - cv2.blur(grey, (3, 3)))) ** 2
    peak = (power[height // 2, 0] + power[0, width // 2] + power[height // 2, width // 2]) / 3
    return float(np.log10(peak / np.median(power)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus")
    return out, generate_corpus(out, COUNT, seed=SEED, corrupt=CORRUPT)


@pytest.fixture(scope="module")
def rows(corpus: tuple[Path, dict]) -> list[tuple[dict, dict]]:
    out, _ = corpus
    manifest, labels = _read_jsonl(out / "manifest.jsonl"), _read_jsonl(out / "labels.jsonl")
    by_id = {row["content_id"]: row for row in labels}
    assert len(by_id) == len(labels) == len(manifest)
    return [(event, by_id[event["content_id"]]) for event in manifest]


def test_families_cover_every_modality_with_at_least_two() -> None:
    assert set(FAMILIES) == {"visual", "audio", "metadata"}
    assert all(len(names) >= 2 for names in FAMILIES.values())
    all_names = [name for names in FAMILIES.values() for name in names]
    assert len(all_names) == len(set(all_names))


def test_summary_matches_what_was_written(corpus: tuple[Path, dict], rows: list[tuple[dict, dict]]) -> None:
    _, summary = corpus
    assert summary["items"] == len(rows) == COUNT + CORRUPT
    assert sum(summary["by_media_type"].values()) == len(rows)
    assert summary["by_label"]["corrupt"] == CORRUPT
    assert summary["by_label"] == {
        label: sum(1 for _, row in rows if row["label"] == label) for label in summary["by_label"]
    }


def test_same_seed_gives_identical_manifest_labels_and_media_with_any_number_of_workers(
    corpus: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = corpus  # made in one process
    generate_corpus(tmp_path, COUNT, seed=SEED, corrupt=CORRUPT, workers=2)
    for name in ("manifest.jsonl", "labels.jsonl"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    for path in sorted((out / "media").iterdir()):
        assert (tmp_path / "media" / path.name).read_bytes() == path.read_bytes(), path.name


def test_items_do_not_depend_on_how_many_are_made(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = corpus
    generate_corpus(tmp_path, 5, seed=SEED)
    full = {row["content_id"]: row for row in _read_jsonl(out / "manifest.jsonl")}
    for event in _read_jsonl(tmp_path / "manifest.jsonl"):
        assert event == full[event["content_id"]]
        assert (tmp_path / event["media_uri"]).read_bytes() == (out / event["media_uri"]).read_bytes()


def test_other_seed_gives_other_corpus(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = corpus
    generate_corpus(tmp_path, 3, seed=SEED + 1)
    assert (tmp_path / "manifest.jsonl").read_bytes() != (out / "manifest.jsonl").read_bytes()


def test_manifest_rows_are_upload_events_with_existing_media(corpus: tuple[Path, dict],
                                                             rows: list[tuple[dict, dict]]) -> None:  # fmt: skip
    out, _ = corpus
    times = []
    for event, label in rows:
        assert REQUIRED_KEYS <= set(event) <= REQUIRED_KEYS | OPTIONAL_KEYS  # optional fields may be left out
        assert set(event.get("account", {})) <= ACCOUNT_KEYS and event.get("account", True)  # never an empty object
        assert not Path(event["media_uri"]).is_absolute()
        assert event["media_uri"] == f"media/{event['content_id']}{Path(event['media_uri']).suffix}"
        assert (out / event["media_uri"]).is_file()
        assert event.get("media_type", label["media_type"]) == label["media_type"]
        assert isinstance(event.get("declared_ai", False), bool)
        account = event.get("account", {})
        assert isinstance(account.get("verified", False), bool)
        assert isinstance(account.get("prior_strikes", 0), int) and account.get("prior_strikes", 0) >= 0
        assert "country" not in event or (len(event["country"]) == 2 and event["country"].isupper())
        uploaded = _rfc3339(event["uploaded_at"])
        if "created_at" in account:
            assert _rfc3339(account["created_at"]) < uploaded
        times.append(uploaded)
    assert times == sorted(times)  # an event stream, in upload order
    assert (max(times) - min(times)).days >= 7  # spread over weeks, not one instant


def test_labels_are_consistent_per_modality(rows: list[tuple[dict, dict]]) -> None:
    for event, label in rows:
        assert set(label) == LABEL_KEYS
        assert label["media_type"] == event.get("media_type", label["media_type"])
        assert set(label["families"]) == {"visual", "audio", "metadata"}
        if label["label"] == "corrupt":
            assert label["visual_label"] is None and label["audio_label"] is None
            continue
        has_visual = label["media_type"] in ("video", "image")
        has_audio = label["media_type"] in ("video", "audio")
        assert (label["visual_label"] is None) == (not has_visual)
        assert (label["audio_label"] is None) == (not has_audio)
        synthetic = label["visual_label"] == 1 or label["audio_label"] == 1
        assert label["label"] == ("synthetic" if synthetic else "real")
        for modality in ("visual", "audio", "metadata"):
            family = label["families"][modality]
            assert (family is not None) == (label[f"{modality}_label"] == 1)
            assert family is None or family in FAMILIES[modality]
        if not synthetic:
            assert label["metadata_label"] == 0


def test_media_decodes_with_the_tracks_its_labels_describe(corpus: tuple[Path, dict],
                                                           rows: list[tuple[dict, dict]]) -> None:  # fmt: skip
    out, _ = corpus
    for event, label in rows:
        if label["label"] == "corrupt":
            continue
        frames, samples = _decode(out / event["media_uri"])
        if label["media_type"] == "video":
            assert frames >= 24 and samples > 0, event["content_id"]  # 2-4 s of 12-25 fps, with sound
        elif label["media_type"] == "image":
            assert frames >= 1 and samples == 0, event["content_id"]
        else:
            assert frames == 0 and samples >= 16000, event["content_id"]  # at least a second of audio


def test_corrupt_files_fail_to_decode(corpus: tuple[Path, dict], rows: list[tuple[dict, dict]]) -> None:
    out, _ = corpus
    corrupt = [event for event, label in rows if label["label"] == "corrupt"]
    assert len(corrupt) == CORRUPT
    for event in corrupt:
        with pytest.raises((av.FFmpegError, OSError, ValueError)):
            frames, samples = _decode(out / event["media_uri"])
            if frames == 0 and samples == 0:
                raise ValueError("nothing decoded")


def test_both_classes_and_several_families_per_modality(rows: list[tuple[dict, dict]]) -> None:
    labels = [label for _, label in rows]
    assert {"real", "synthetic", "corrupt"} <= {label["label"] for label in labels}
    synthetic_share = sum(label["label"] == "synthetic" for label in labels) / COUNT
    assert 0.25 <= synthetic_share <= 0.75
    for modality in FAMILIES:
        seen = {label["families"][modality] for label in labels} - {None}
        assert len(seen) >= 2, (modality, seen)


def test_declared_ai_items_say_so_in_the_manifest_and_xmp(corpus: tuple[Path, dict],
                                                          rows: list[tuple[dict, dict]]) -> None:  # fmt: skip
    out, _ = corpus
    declared = [(event, label) for event, label in rows if label["families"]["metadata"] == "declared"]
    assert declared
    for event, label in declared:
        assert event.get("declared_ai", True) is True  # declared, unless the event left the field out
        if label["container"] in ("jpeg", "png", "webp"):
            assert AI_SOURCE_TYPE in (out / event["media_uri"]).read_bytes()
    # Not every synthetic item declares itself: the flag cannot stand in for a detector.
    synthetic = [event for event, label in rows if label["label"] == "synthetic"]
    assert any(not event.get("declared_ai", False) for event in synthetic)


def test_optional_fields_and_file_metadata_are_absent_for_both_classes_alike(rows) -> None:
    """The shares hold for real and synthetic items alike (plans of 3000 items, no media made)."""
    from training.corpus.plans import ABSENT_SHARES, FAMILIES, PLATFORM_STRIPPED_SHARE, _absent_fields, _plan_item

    plans = [_plan_item(SEED, index, FAMILIES) for index in range(3000)]
    bare = 1 - ABSENT_SHARES["all_optional"]
    for synthetic in (False, True):
        group = [p for p in plans if p.synthetic == synthetic]
        absent = [_absent_fields(SEED, p) for p in group]
        for field in ("account", "declared_ai", "country", "account.verified"):
            share = sum(field in a for a in absent) / len(group)
            assert abs(share - (1 - bare * (1 - ABSENT_SHARES[field]))) < 0.04, (synthetic, field, share)
        assert abs(sum(p.stripped for p in group) / len(group) - PLATFORM_STRIPPED_SHARE) < 0.04
        assert all(p.metadata_family is None for p in group if p.stripped)  # no tells survive stripping
    # The corpus writes what the plans say: fields left out, never nulled, some events bare.
    events = [event for event, _ in rows]
    assert any(set(event) == REQUIRED_KEYS for event in events)
    assert all(value is not None for event in events for value in event.values())


def test_restricting_families_excludes_the_others(tmp_path: Path) -> None:
    allowed = {"visual": ("upsample",), "audio": ("tts",)}
    summary = generate_corpus(tmp_path, 16, seed=SEED, families=allowed)
    labels = _read_jsonl(tmp_path / "labels.jsonl")
    seen = {m: {row["families"][m] for row in labels} - {None} for m in FAMILIES}
    assert seen["visual"] == {"upsample"} and seen["audio"] == {"tts"}
    assert seen["metadata"] <= set(FAMILIES["metadata"])  # not named, so not restricted
    assert set(summary["by_family"]["visual"]) == {"upsample"}

    # A flat list is the whole allow-list: modalities it does not name get no fakes at all.
    flat = tmp_path / "flat"
    generate_corpus(flat, 8, seed=SEED, families=["blend"])
    for row in _read_jsonl(flat / "labels.jsonl"):
        assert row["families"]["visual"] in (None, "blend")
        assert row["families"]["audio"] is None and row["families"]["metadata"] is None


def test_unknown_family_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown"):
        generate_corpus(tmp_path, 1, families={"visual": ["gan"]})
    with pytest.raises(ValueError, match="unknown"):
        generate_corpus(tmp_path, 1, families=["upsampel"])


def test_upsample_family_leaves_spectral_peaks_that_real_captures_lack() -> None:
    def after_jpeg(image: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)  # the platform recompresses both
        return np.asarray(Image.open(buffer).convert("RGB"))

    seeds = range(8)
    real = [_nyquist_peak(after_jpeg(render_image(s, None, 160, 128))) for s in seeds]
    upsampled = [_nyquist_peak(after_jpeg(render_image(s, "upsample", 160, 128))) for s in seeds]
    assert np.mean(upsampled) > np.mean(real) + 1.0  # ten times the power, on average
    wins = sum(u > r for u in upsampled for r in real) / (len(real) * len(upsampled))
    assert wins >= 0.8  # rank AUC: most, not necessarily all (some items are subtle)


def test_visual_families_change_the_picture_not_the_scene() -> None:
    real = render_image(3, None, 96, 80).astype(np.float32)
    for family in FAMILIES["visual"]:
        fake = render_image(3, family, 96, 80)
        assert fake.shape == real.shape and fake.dtype == np.uint8
        assert np.abs(fake.astype(np.float32) - real).mean() > 0.5, family


def test_cli_writes_a_corpus_and_reports_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path), "--count", "3", "--seed", "2", "--corrupt", "1"])
    assert len(_read_jsonl(tmp_path / "manifest.jsonl")) == 4
    assert len(_read_jsonl(tmp_path / "labels.jsonl")) == 4
    captured = capsys.readouterr()
    assert captured.out == "" and "4 items" in captured.err


def test_cli_can_leave_families_out(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--count", "10", "--seed", "3", "--exclude_families", "upsample", "diffusion", "tts"])
    labels = _read_jsonl(tmp_path / "labels.jsonl")
    assert {row["families"]["visual"] for row in labels} <= {None, "blend"}
    assert {row["families"]["audio"] for row in labels} <= {None, "vocoder", "bandlimit"}
    assert any(row["label"] == "synthetic" for row in labels)


def test_cli_rejects_negative_counts(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--count", "-1"])
