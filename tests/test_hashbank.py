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
    assert frame_hashes([np.full((64, 64, 3), 128, np.uint8)]) == ((), ())


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


def _flipped(digest: str, bits: list[int]) -> str:
    value = bytearray.fromhex(digest)
    for bit in bits:
        value[bit // 8] ^= 0x80 >> (bit % 8)
    return value.hex()


def test_the_index_finds_exactly_the_banked_hashes_within_the_match_distance():
    rng = np.random.default_rng(4)
    hashes = tuple(bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(2000))
    bank = HashBank(hashes, tuple(f"entry-{i}" for i in range(len(hashes))))
    for entry, flips in ((7, 0), (8, 1), (9, 17), (10, 31)):
        # the flips as bunched as they can be: two in each 16-bit chunk but one
        bits = [chunk * 16 + k for chunk in range(16) for k in range(2)][:flips]
        assert bank.match((_flipped(hashes[entry], bits),)) == (f"entry-{entry}", flips)
    assert bank.match((_flipped(hashes[11], list(range(0, 256, 8))),)) == (None, None)  # 32 bits off
    # among several query hashes (a video's frames) the closest wins; a tie goes to the first banked
    twin = HashBank((hashes[3], hashes[3]), ("first", "second"))
    assert twin.match((_flipped(hashes[3], [0, 1, 2]), _flipped(hashes[3], [5]))) == ("first", 1)


def test_a_live_bank_moves_to_what_the_warehouse_banks_while_the_job_runs():
    import time

    from transforms.hashbank import LiveBank, _MatchDoFn

    reads = []
    digest, _ = pdq_hash(_picture(1))
    fixed = HashBank((pdq_hash(_picture(2))[0],), ("from-file",))

    def reload():
        reads.append(time.monotonic())
        if len(reads) == 2:
            raise OSError("the warehouse is being written")  # the last bank read stays
        return HashBank((digest,), ("banked:reviewer_removal:d1",)) if len(reads) >= 3 else None

    from transforms.hashbank import BankRefresh

    first, second = (_MatchDoFn(fixed, BankRefresh(reload, 0.2, "wh")) for _ in range(2))
    first.setup()
    assert len(reads) == 1 and first._live.bank == fixed  # read before the first match: nothing banked yet
    second.setup()
    assert first._live is second._live  # one refresh a process
    deadline = time.monotonic() + 10
    while len(reads) < 3 or first._live.read_at is None or first._live.read_at < reads[2]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    bank = first._live.bank
    assert bank.match((digest,)) == ("banked:reviewer_removal:d1", 0)
    assert bank.match((pdq_hash(_picture(2))[0],))[0] == "from-file"
    LiveBank.stop_all()
    assert not LiveBank._live
    count = len(reads)
    time.sleep(0.5)
    assert len(reads) == count  # stopped


def test_an_account_suspended_while_the_job_runs_links_its_media_from_then_on():
    """Streaming reads the suspended accounts' media again with the bank: a re-upload from
    another account links to a suspension made after launch; the account's own does not."""
    import datetime as dt
    import time

    from schemas.records import MediaFeatures, MediaInfo, UploadEvent
    from transforms.hashbank import BankRefresh, LiveBank, _MatchDoFn, evasion_label

    visual = extract_visual(_jpeg(_picture(3), 90), "image", MediaLimits())
    suspensions = []

    def reload_suspended():
        return HashBank.of([(evasion_label(a, d), visual.pdq_hashes, None) for a, d in suspensions])

    def upload(account: str) -> MediaFeatures:
        at = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
        return MediaFeatures(UploadEvent(f"from-{account}", "/m.png", account, at), "0" * 64,
                             MediaInfo(media_type="image", container="png"), visual, None, None, at)  # fmt: skip

    match = _MatchDoFn(None, BankRefresh(lambda: None, 0.1, "wh-evasion", reload_suspended))
    match.setup()
    try:
        assert [m.evasion_match for m in match.process(upload("fresh"))] == [None]  # nobody suspended yet
        suspensions.append(("banned", "d-suspend"))
        deadline = time.monotonic() + 10
        while match._live_suspended.bank is None:
            assert time.monotonic() < deadline, "the suspension never reached the live bank"
            time.sleep(0.05)
        assert [m.evasion_match for m in match.process(upload("fresh"))] == ["suspended:banned:d-suspend"]
        assert [m.evasion_match for m in match.process(upload("banned"))] == [None]  # its own re-upload
    finally:
        LiveBank.stop_all()


def _digests(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(count)]


def test_a_video_matches_a_banked_video_only_as_a_sequence_of_its_frames():
    """Frames of a banked clip, in order, match; one shared frame (a title card), or the same
    frames played backwards, does not; a still of one of its frames does."""
    clip, other = _digests(6, 1), _digests(6, 2)
    bank = HashBank.of([("banked:reviewer_removal:d1", clip, None, range(6))])
    trimmed = (clip[2:], tuple(range(4)))  # its first two frames cut
    assert bank.match(*trimmed) == ("banked:reviewer_removal:d1", 0)
    title_card = ((clip[0], *other[1:]), tuple(range(6)))  # another video opening on the same card
    assert bank.match(*title_card) == (None, None)
    backwards = (tuple(reversed(clip)), tuple(range(6)))
    assert bank.match(*backwards) == (None, None)
    assert bank.match((clip[3],), (0,)) == ("banked:reviewer_removal:d1", 0)  # a still of one of its frames
    # A bank of stills (or hashes from a file): one matching hash is a match, as before.
    stills = HashBank.of([("banked:still", (h,), None) for h in other])
    assert stills.match(*title_card)[0] == "banked:still"
    combined = HashBank.combined(HashBank((other[1],), ("from-file",)), bank)
    assert combined.match(*trimmed)[0] == "banked:reviewer_removal:d1"
    assert combined.match(*title_card)[0] == "from-file"


def test_frame_numbers_come_with_the_hashes_of_a_real_clip():
    import av

    frames = [np.roll(_picture(5), 8 * n, axis=1) for n in range(10)]
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, "rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    visual = extract_visual(out.getvalue(), "video", MediaLimits())
    assert len(visual.pdq_frames) == len(visual.pdq_hashes) and len(set(visual.pdq_frames)) >= 2
    assert list(visual.pdq_frames) == sorted(visual.pdq_frames)
    bank = HashBank.of([("banked:clip", visual.pdq_hashes, None, visual.pdq_frames)])
    assert bank.match(visual.pdq_hashes, visual.pdq_frames)[0] == "banked:clip"


def test_the_longest_chain_counts_frames_matching_in_order_and_nothing_else():
    import random

    from transforms.hashbank import longest_chain

    assert longest_chain([]) == 0
    assert longest_chain([(0, 0), (1, 1), (2, 2)]) == 3
    assert longest_chain([(0, 2), (1, 1), (2, 0)]) == 1  # the same frames played backwards
    assert longest_chain([(0, 0), (0, 1), (0, 2)]) == 1  # one upload frame matching three banked ones
    assert longest_chain([(0, 5), (1, 5), (2, 5)]) == 1
    assert longest_chain([(3, 10), (4, 11), (0, 0), (1, 1), (2, 2), (5, 3)]) == 5  # 0-4; (5, 3) goes back

    def by_definition(pairs):  # every chain's length, the longest
        ordered = sorted(set(pairs))
        best = {}
        for i, (q, b) in enumerate(ordered):
            best[q, b] = 1 + max((best[p] for p in ordered[:i] if p[0] < q and p[1] < b), default=0)
        return max(best.values(), default=0)

    rng = random.Random(3)
    for _ in range(300):
        pairs = [(rng.randrange(12), rng.randrange(12)) for _ in range(rng.randrange(30))]
        assert longest_chain(pairs) == by_definition(pairs), pairs
