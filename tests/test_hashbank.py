"""Hash bank: PDQ matches survive re-encoding; a different picture does not match."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from training.corpus import render_image
from transforms.hashbank import HashBank, frame_hashes, pdq_hash
from transforms.limits import MediaLimits
from transforms.visual import extract_visual


def _picture(seed: int) -> np.ndarray:
    return render_image(seed, None, 320, 240)  # a textured scene with a face, from the corpus generator


def _jpeg(frame: np.ndarray, quality: int, scale: float = 1.0) -> bytes:
    image = Image.fromarray(frame)
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture
def bank(tmp_path):
    digest, quality = pdq_hash(_picture(1))
    assert quality >= 50
    path = tmp_path / "bank.jsonl"
    path.write_text(json.dumps({"pdq": digest, "label": "ncii_case_42"}) + "\n")
    return HashBank.load(path)


def test_a_recompressed_resized_reupload_matches(bank):
    reupload = extract_visual(_jpeg(_picture(1), quality=55, scale=0.7), "image", MediaLimits())
    label, distance = bank.match(reupload.pdq_hashes)
    assert label == "ncii_case_42" and distance <= 31


def test_a_different_picture_does_not_match(bank):
    other = extract_visual(_jpeg(_picture(2), quality=90), "image", MediaLimits())
    assert bank.match(other.pdq_hashes) == (None, None)
    assert bank.match(()) == (None, None)


def test_flat_frames_are_not_hashed():
    assert frame_hashes([np.full((64, 64, 3), 128, np.uint8)]) == ()


def test_a_bad_bank_line_is_named(tmp_path):
    path = tmp_path / "bank.jsonl"
    path.write_text('{"pdq": "abcd"}\n')
    with pytest.raises(ValueError, match=":1: pdq must be 64 hex digits"):
        HashBank.load(path)


def test_a_large_frame_hashes_from_its_downscaled_copy_within_a_few_bits_of_the_full_picture():
    import pdqhash

    frame = cv2.resize(_picture(3), (1920, 1440), interpolation=cv2.INTER_CUBIC)
    digest, _ = pdq_hash(frame)
    full_bits, _ = pdqhash.compute(np.ascontiguousarray(frame))
    full = np.packbits(full_bits.astype(np.uint8)).tobytes().hex()
    distance = bin(int(digest, 16) ^ int(full, 16)).count("1")
    assert 0 <= distance <= 12  # of 256; matches count up to 31
