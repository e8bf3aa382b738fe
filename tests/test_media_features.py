"""Decoding and feature extraction on real media files in several containers and codecs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.signature import AUDIO_HANDCRAFTED_DIM, CROP_SIZE, MAX_FRAMES, MAX_WINDOWS, VISUAL_HANDCRAFTED_DIM
from schemas.records import StoredMedia
from training.corpus import render_image
from transforms import visual as signals
from transforms.audio import audio_features, extract_audio
from transforms.limits import CorruptMedia, LimitExceeded, MediaLimits, MediaRejected
from transforms.media import decode_audio, decode_video_frames, evenly_spaced
from transforms.metadata import container_name, digital_source_type, probe_media
from transforms.visual import (
    COOC_CLASSES,
    centre_crop,
    cooccurrence_counts,
    cooccurrence_signals,
    detect_face,
    extract_visual,
    face_motion,
    face_motion_signals,
    face_noise_profile,
    face_zone_means,
    face_zone_signals,
    run_class,
    visual_features,
)

from .conftest import image_bytes, make_audio, make_image, make_video

LIMITS = MediaLimits()


def test_evenly_spaced_covers_start_and_end():
    assert evenly_spaced(100, 5) == [0, 25, 50, 74, 99]
    assert evenly_spaced(3, 8) == [0, 1, 2]
    assert evenly_spaced(0, 4) == []


def _horizontal_shift(frame: np.ndarray, after: np.ndarray) -> int:
    """How many whole pixels the test video's gradient moved between a frame and the grey
    frame after it: the shift that matches the two best (its rows are alike: there is no
    vertical motion to measure)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    after = after.astype(np.float32)
    errors = {k: np.abs(np.roll(grey, k, axis=1) - after)[:, 8:-8].mean() for k in range(-6, 7)}
    return min(errors, key=errors.get)


def test_keyframe_rich_video_is_sampled_from_keyframes_only(tmp_path):
    path = make_video(str(tmp_path / "v.mp4"), seconds=4, fps=15, gop=5)  # 12 keyframes
    frames, selection, _, successors = decode_video_frames(Path(path).read_bytes(), MAX_FRAMES, LIMITS)
    assert selection == "keyframes"
    assert len(frames) == MAX_FRAMES
    assert frames[0].shape == (120, 160, 3)
    # The frame after each keyframe comes from a seek to it: 3 px on, like every next frame.
    assert all(after is not None for after in successors)
    assert [abs(_horizontal_shift(f, after)) for f, after in zip(frames, successors)] == [3] * MAX_FRAMES


def test_video_with_few_keyframes_is_sampled_sequentially_across_its_length(tmp_path):
    path = make_video(str(tmp_path / "v.mp4"), seconds=4, fps=15, gop=300)  # one keyframe
    frames, selection, _, successors = decode_video_frames(Path(path).read_bytes(), MAX_FRAMES, LIMITS)
    assert selection == "sequential"
    assert len(frames) == MAX_FRAMES
    # The gradient moves 3 px a frame: the first and last samples are far apart in time.
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 10
    # Each sampled frame comes with the grey picture of the very next one (3 px on), except
    # the last frame of the video, which has none.
    assert successors[-1] is None and all(s is not None and s.shape == (120, 160) for s in successors[:-1])
    assert [abs(_horizontal_shift(f, after)) for f, after in zip(frames[:-1], successors[:-1])] == [3] * (
        MAX_FRAMES - 1
    )


@pytest.mark.parametrize(
    "codec, audio_codec, suffix",
    [("libx264", "aac", "mp4"), ("libvpx-vp9", "libopus", "webm"), ("mpeg4", "mp3", "avi")],
)
def test_videos_in_other_containers_give_both_modalities(tmp_path, codec, audio_codec, suffix):
    path = make_video(str(tmp_path / f"v.{suffix}"), codec=codec, audio_codec=audio_codec, seconds=1.5)
    data = Path(path).read_bytes()
    info = probe_media(data, LIMITS)
    assert info.media_type == "video"
    assert info.audio_codec is not None
    visual = extract_visual(data, info.media_type, LIMITS)
    assert visual.frames.shape == (MAX_FRAMES, CROP_SIZE, CROP_SIZE, 3)
    assert visual.frame_count >= 1
    assert visual.handcrafted.shape == (VISUAL_HANDCRAFTED_DIM,)
    assert np.all(np.isfinite(visual.handcrafted))
    audio = extract_audio(data, True, LIMITS)
    assert audio.logmel.shape[0] == MAX_WINDOWS and audio.window_count >= 1


@pytest.mark.parametrize("fmt, suffix", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_audio_files_decode_to_16k_mono(tmp_path, fmt, suffix):
    path = make_audio(str(tmp_path / f"a.{suffix}"), seconds=2.0, rate=22050, fmt=fmt)
    data = Path(path).read_bytes()
    info = probe_media(data, LIMITS)
    assert info.media_type == "audio"
    samples = decode_audio(data, 16000, LIMITS)
    assert abs(samples.size / 16000 - 2.0) < 0.15
    features = audio_features(samples)
    assert features.handcrafted.shape == (AUDIO_HANDCRAFTED_DIM,)
    assert np.all(np.isfinite(features.logmel))


def test_band_limited_audio_shows_in_the_high_band_share():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.1, 32000).astype(np.float32)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(noise.size, 1 / 16000) > 4000] = 0
    band_limited = np.fft.irfft(spectrum, n=noise.size).astype(np.float32)
    full, limited = audio_features(noise), audio_features(band_limited)
    assert limited.handcrafted[40] < full.handcrafted[40] - 2  # log10 share above 4 kHz


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")])
def test_still_images_in_each_format(tmp_path, fmt, suffix):
    path = make_image(str(tmp_path / f"i.{suffix}"), size=(200, 150), fmt=fmt)
    data = Path(path).read_bytes()
    info = probe_media(data, LIMITS)
    assert (info.media_type, info.width, info.height) == ("image", 200, 150)
    visual = extract_visual(data, "image", LIMITS)
    assert visual.frame_count == 1 and visual.frame_selection == "still"
    assert visual.frame_mask.tolist() == [1.0] + [0.0] * (MAX_FRAMES - 1)


def test_animated_gif_samples_frames(tmp_path):
    from PIL import Image

    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in range(0, 250, 25)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0)
    visual = extract_visual(path.read_bytes(), "image", LIMITS)
    assert visual.frame_selection == "animation"
    assert visual.frame_count == MAX_FRAMES


def _elliptical_radius(shape, box):
    x, y, w, h = box
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.hypot((xx - (x + w / 2)) / (w / 2), (yy - (y + h / 2)) / (h / 2))


def test_face_noise_profile_finds_a_quiet_pasted_face_inside_the_head():
    box = (60, 50, 80, 100)
    radius = _elliptical_radius((220, 200), box)
    camera = np.full((220, 200), 2.0, np.float32)
    pasted = np.where(radius < 0.65, 0.5, camera).astype(np.float32)  # no camera noise inside the seam
    assert np.allclose(face_noise_profile(camera, box), 0.0, atol=1e-5)
    profile = face_noise_profile(pasted, box)
    assert np.allclose(profile[:6], 0.0, atol=1e-5)  # rings 0-0.6: the pasted face itself
    assert np.all(profile[7:] > 1.3)  # log(2 / 0.5) = 1.39 outside it


def test_face_noise_profile_of_a_face_at_the_frame_edge_is_finite():
    local_noise = np.random.default_rng(0).uniform(0.5, 2.0, (120, 160)).astype(np.float32)
    for box in ((130, 90, 60, 60), (-20, -20, 50, 50), (0, 0, 1, 1)):
        profile = face_noise_profile(local_noise, box)
        assert profile.shape == (16,) and np.all(np.isfinite(profile))


def _run_class_frequencies(signals: np.ndarray, residual: int) -> np.ndarray:
    return signals[residual * COOC_CLASSES : (residual + 1) * COOC_CLASSES]


def test_run_classes_merge_mirrored_runs_only():
    assert COOC_CLASSES == 39  # 125 runs of 5 levels; a run, its reverse and their negations
    assert run_class(1, -2, 0) == run_class(0, -2, 1) == run_class(-1, 2, 0) == run_class(0, 2, -1)
    classes = {run_class(0, 0, 0), run_class(1, 0, 0), run_class(1, 1, 1), run_class(2, 0, 0), run_class(1, -1, 1)}
    assert len(classes) == 5
    assert sorted({run_class(a, b, c) for a in range(-2, 3) for b in range(-2, 3) for c in range(-2, 3)}) == list(
        range(COOC_CLASSES)
    )


def test_residual_cooccurrences_tell_camera_noise_from_flat_and_upsampled_pictures():
    rng = np.random.default_rng(3)
    camera = np.clip(rng.normal(128, 4, (96, 128, 3)), 0, 255).astype(np.uint8)
    flat = np.full((96, 128, 3), 128, np.uint8)
    upsampled = np.repeat(np.repeat(camera[::2, ::2], 2, axis=0), 2, axis=1)  # nearest neighbour, 2x
    signals = {name: cooccurrence_signals([cooccurrence_counts(frame, None)])
               for name, frame in (("camera", camera), ("flat", flat), ("upsampled", upsampled))}  # fmt: skip
    for values in signals.values():
        assert values.shape == (5 * COOC_CLASSES,)
        for residual in range(3):  # frequencies per residual
            assert _run_class_frequencies(values, residual).sum() == pytest.approx(1.0)
        assert np.all(values[3 * COOC_CLASSES :] == 0)  # no face
    zero_run = run_class(0, 0, 0)
    first = {name: _run_class_frequencies(values, 0) for name, values in signals.items()}
    assert first["flat"][zero_run] == pytest.approx(1.0)
    assert first["camera"][zero_run] < 0.05  # noise of 4 levels: runs of three zeros are rare
    # Nearest-neighbour upsampling repeats every pixel: every other first difference is zero.
    assert first["upsampled"][zero_run] > 4 * first["camera"][zero_run]


def test_face_cooccurrences_find_a_noiseless_face_pasted_into_a_noisy_frame():
    rng = np.random.default_rng(4)
    box = (60, 50, 80, 100)
    frame = np.clip(rng.normal(128, 4, (220, 200, 3)), 0, 255).astype(np.uint8)
    radius = _elliptical_radius((220, 200), box)
    pasted = frame.copy()
    pasted[radius < 0.7] = 128  # a rendered face: no camera noise
    zero_run = run_class(0, 0, 0)
    camera_face = cooccurrence_signals([cooccurrence_counts(frame, box)])[3 * COOC_CLASSES :]
    pasted_face = cooccurrence_signals([cooccurrence_counts(pasted, box)])[3 * COOC_CLASSES :]
    assert np.abs(camera_face).max() < 0.05  # the same noise inside and around the face
    assert pasted_face[zero_run] > 0.9  # inside: only zero runs; around: almost none
    # A frame without a face found adds to the whole-picture counts, not to the face's.
    both = cooccurrence_signals([cooccurrence_counts(pasted, box), cooccurrence_counts(frame, None)])
    assert np.allclose(both[3 * COOC_CLASSES :], pasted_face)


def test_large_frames_are_read_on_a_fixed_budget_of_native_resolution_tiles_on_the_coding_grid():
    assert signals.analysis_tiles(320, 480) == [(slice(0, 320), slice(0, 480))]  # within the budget: whole
    for height, width in ((720, 1280), (1080, 1920), (1920, 1080), (2160, 3840), (300, 4000)):
        tiles = signals.analysis_tiles(height, width)
        assert sum((r.stop - r.start) * (c.stop - c.start) for r, c in tiles) <= (3 * 192) ** 2
        assert all(r.start % 8 == 0 and c.start % 8 == 0 for r, c in tiles)
        assert all(r.stop <= height and c.stop <= width for r, c in tiles)
        rows, cols = {(r.start, r.stop) for r, _ in tiles}, {(c.start, c.stop) for _, c in tiles}
        assert min(start for start, _ in cols) == 0 and max(stop for _, stop in cols) > width - 8  # edge to edge
        assert len(tiles) == len(rows) * len(cols)
    # 8x8 blocking survives the tiling: a 1080p frame compressed as JPEG in blocks shows period 8.
    rng = np.random.default_rng(8)
    camera = np.clip(rng.normal(128, 6, (1080, 1920, 3)), 0, 255).astype(np.uint8)
    blocky = camera.copy()
    blocks = blocky[:, :, 0].reshape(135, 8, 240, 8).mean(axis=(1, 3))
    blocky[:, :, :] = np.repeat(np.repeat(blocks, 8, 0), 8, 1)[..., None].astype(np.uint8)
    period_8 = 10  # flat_noise .. noise spread (8), then periodicity 2, 4, 8
    assert signals.noise_signals(blocky, None)[period_8] > signals.noise_signals(camera, None)[period_8] + 1.0


def test_local_noise_is_finite_where_a_flat_region_follows_a_busy_one():
    # The box filter's running sums leave some flat pixels' mean square just below zero
    # (found on real face photographs: their face-noise signals came out NaN, and so did the
    # visual detector's score).
    rng = np.random.default_rng(15)  # a draw that made NaNs before the fix
    grey = np.full((64, 1600), 37.0, np.float32)
    grey[:, :800] = rng.uniform(0, 255, (64, 800))
    grey[:32] = grey[:32, ::-1]
    noise, sharpness = signals._local_noise_and_sharpness(grey)
    assert np.all(np.isfinite(noise)) and np.all(np.isfinite(sharpness))
    assert noise[40:, 1000:].max() < 1e-2  # the flat wall is noiseless, not NaN


def test_face_signals_read_the_window_around_the_face_wherever_the_frame_extends():
    rng = np.random.default_rng(9)
    frame = np.clip(rng.normal(128, 5, (1080, 1920, 3)), 0, 255).astype(np.uint8)
    box = (1400, 300, 120, 150)
    radius = _elliptical_radius(frame.shape[:2], box)
    frame[radius < 0.7] = 128  # a noiseless pasted face
    crop = frame[100:700, 1200:1800]  # the same face with less of the frame around it
    moved = (box[0] - 1200, box[1] - 100, *box[2:])
    whole, cropped = signals.noise_signals(frame, box), signals.noise_signals(crop, moved)
    # The face's own profile and seam come from the window around it, the same in both.
    np.testing.assert_allclose(whole[-17:], cropped[-17:], atol=1e-5)  # face_boundary_step, the rings
    assert whole[-17] > 1.0  # the ring around the face is noisier than its inside
    # Face against the rest of the frame: the rest is the frame's tiles, outside the face.
    face_noise = -(4 + 16)
    assert whole[face_noise] < -1.0 and cropped[face_noise] < -1.0
    assert whole[face_noise + 1] == pytest.approx(cropped[face_noise + 1] * 600 * 600 / (1080 * 1920), rel=1e-5)
    np.testing.assert_array_equal(cooccurrence_counts(frame, box)[1], cooccurrence_counts(crop, moved)[1])


def _textured_scene(rng: np.random.Generator, size: int = 260) -> np.ndarray:
    return cv2.GaussianBlur(rng.normal(128, 40, (size, size)).astype(np.float32), (0, 0), 1.5)


def _moved(scene: np.ndarray, dx: float, dy: float, crop: int = 200) -> np.ndarray:
    """The centre `crop` of `scene` with its content moved by (dx, dy) px."""
    moved = cv2.warpAffine(scene, np.float32([[1, 0, dx], [0, 1, dy]]), scene.shape[::-1], flags=cv2.INTER_LINEAR)
    margin = (scene.shape[0] - crop) // 2
    return np.clip(moved[margin : margin + crop, margin : margin + crop], 0, 255).astype(np.uint8)


def test_face_motion_tells_a_face_moving_with_its_head_from_one_pasted_frame_by_frame():
    rng = np.random.default_rng(5)
    scene = _textured_scene(rng)
    box = (60, 60, 80, 80)
    inside = _elliptical_radius((200, 200), box) < 0.75
    filmed, swapped = [], []
    for _ in range(6):
        dx, dy = rng.uniform(-2, 2, 2)  # the head and background move together
        before, after = _moved(scene, 0, 0), _moved(scene, dx, dy)
        filmed.append(face_motion(before, after, box))
        jitter = rng.normal(0, 1.5, 2)  # the pasted face is placed anew, a little off
        wobbling = after.copy()
        wobbling[inside] = _moved(scene, dx + jitter[0], dy + jitter[1])[inside]
        swapped.append(face_motion(before, wobbling, box))
    filmed_signals, swapped_signals = face_motion_signals(filmed, 8), face_motion_signals(swapped, 8)
    wobble = {
        name: np.hypot(*np.stack(motions)[:, :2].T) for name, motions in (("filmed", filmed), ("swapped", swapped))
    }
    # Phase correlation under-reads motion on a face-sized patch, differently for the two
    # zones: a face moving with its head still shows a few tenths of a pixel.
    assert wobble["filmed"].max() < 0.8 and wobble["swapped"].mean() > 1.0
    assert swapped_signals[0] > filmed_signals[0] + 1.0  # log mean wobble
    assert swapped_signals[2] > filmed_signals[2]  # its spread over the pairs
    assert filmed_signals[5] == swapped_signals[5] == pytest.approx(6 / 8)  # pairs measured per frame
    assert np.all(face_motion_signals([], 8) == 0)


def test_face_motion_needs_texture_and_room():
    flat = np.full((200, 200), 128, np.uint8)
    assert face_motion(flat, flat, (60, 60, 80, 80)) is None  # nothing to track
    scene = _moved(_textured_scene(np.random.default_rng(6)), 0, 0)
    assert face_motion(scene, scene, (95, 95, 10, 10)) is None  # a face too small for its zones
    still = face_motion(scene, scene, (60, 60, 80, 80))
    assert still is not None and np.abs(still[:2]).max() < 0.05 and still[2] > 0.9


def test_visual_features_read_face_motion_only_where_a_next_frame_was_decoded():
    frame = render_image(2, None, 192, 192)
    assert detect_face(frame) is not None
    moved = cv2.cvtColor(np.roll(frame, 1, axis=1), cv2.COLOR_RGB2GRAY)
    encoding = np.zeros(3, np.float32)
    paired = visual_features([frame, frame], "sequential", encoding, [moved, None]).handcrafted
    unpaired = visual_features([frame, frame], "keyframes", encoding, [None, None]).handcrafted
    motion = slice(255, 261)
    assert paired[motion][-1] == pytest.approx(0.5)  # one of the two frames had its next frame
    assert np.all(unpaired[motion] == 0)
    others = np.r_[0:255, 261:VISUAL_HANDCRAFTED_DIM]
    assert np.array_equal(paired[others], unpaired[others])  # the other signals do not depend on it


def _pasted_faces() -> tuple[tuple[int, int, int, int], dict[str, np.ndarray]]:
    """A filmed face (the whole frame through one lens blur and one sensor's noise) and three
    faces pasted after the camera: tinted, not lens-blurred, without sensor noise."""
    rng = np.random.default_rng(8)
    box = (60, 50, 80, 100)
    scene = cv2.GaussianBlur(rng.normal(0, 40, (220, 200)).astype(np.float32), (0, 0), 1.0)
    light = np.stack([scene + 150, scene + 120, scene + 100], axis=-1)

    def camera(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), 1.2) + rng.normal(0, 3, image.shape).astype(np.float32)

    filmed = camera(light)
    inside = _elliptical_radius((220, 200), box) < 0.7

    def pasted(source: np.ndarray) -> np.ndarray:
        frame = filmed.copy()
        frame[inside] = source[inside]
        return frame

    frames = {
        "filmed": filmed,
        "tinted": pasted(filmed * np.float32([1.08, 1.0, 0.95])),
        "sharp": pasted(light + rng.normal(0, 3, light.shape).astype(np.float32)),
        "noiseless": pasted(cv2.GaussianBlur(light, (0, 0), 1.2)),
    }
    return box, {name: np.clip(frame, 0, 255).astype(np.uint8) for name, frame in frames.items()}


def test_face_zone_signals_find_a_face_pasted_after_the_camera():
    box, frames = _pasted_faces()
    signals = {name: face_zone_signals(frame, box) for name, frame in frames.items()}
    filmed = signals["filmed"]
    assert filmed.shape == (12,)
    assert np.abs(filmed[:4]).max() < 0.005  # one tint everywhere
    assert np.abs(filmed[10:]).max() < 0.05  # one sensor's chroma noise everywhere
    tinted = signals["tinted"]
    assert tinted[1] > 0.01 and tinted[3] < -0.01  # redder, less blue: Cr up, Cb down inside
    # Without the lens blur the inside keeps its middle detail against the coarse; around, the same.
    assert signals["sharp"][5] > filmed[5] + 0.2
    assert signals["sharp"][9] == pytest.approx(filmed[9], abs=0.01)
    assert np.all(signals["noiseless"][10:] < -2.0)  # no chroma noise inside, camera noise around


def test_face_zone_signals_need_room_and_average_over_frames_with_a_face():
    box, frames = _pasted_faces()
    assert face_zone_signals(frames["filmed"], (98, 98, 4, 4)) is None  # zones of a few pixels
    edge = face_zone_signals(frames["filmed"], (170, 190, 60, 60))  # mostly outside the frame
    assert edge is None or np.all(np.isfinite(edge))
    assert np.all(face_zone_means([]) == 0) and np.all(face_zone_means([None]) == 0)
    zones = [face_zone_signals(frames[name], box) for name in ("filmed", "noiseless")]
    assert np.allclose(face_zone_means([zones[0], None, zones[1]]), (zones[0] + zones[1]) / 2)
    # Wired in as entries 261-272: zero without a face, the frame's own signals with one.
    face_frame = render_image(2, None, 192, 192)
    found = detect_face(face_frame)
    encoding = np.zeros(3, np.float32)
    with_face = visual_features([face_frame], "still", encoding).handcrafted
    assert np.allclose(with_face[261:273], face_zone_signals(face_frame, found))
    faceless = visual_features([np.full((96, 96, 3), 90, np.uint8)], "still", encoding).handcrafted
    assert np.all(faceless[261:273] == 0)


def test_faces_in_small_pictures_are_found():
    """Small uploads are scaled up for the face search: at 96 px the default cascade on the
    unscaled frame found 13 of these 20 faces, which left the face signals empty."""
    found = [detect_face(render_image(seed, None, 96, 96)) for seed in range(20)]
    assert sum(box is not None for box in found) >= 17
    for box in filter(None, found):  # boxes in the frame's own pixels, not the scaled frame's
        x, y, w, h = box
        assert min(x, y) >= 0 and x + w <= 97 and y + h <= 97 and 12 <= w <= 96


def test_encoding_signals_say_how_hard_the_picture_was_compressed(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = np.clip(rng.normal(128, 30, (120, 160, 3)), 0, 255).astype(np.uint8)
    signals = {}
    for name, options in {"low.jpg": {"quality": 40}, "high.jpg": {"quality": 95}, "still.png": {}}.items():
        Image.fromarray(pixels).save(tmp_path / name, **options)
        signals[name] = extract_visual((tmp_path / name).read_bytes(), "image", LIMITS).handcrafted[41:44]
    Image.fromarray(pixels).quantize(64).save(tmp_path / "p.gif")
    signals["p.gif"] = extract_visual((tmp_path / "p.gif").read_bytes(), "image", LIMITS).handcrafted[41:44]
    assert signals["low.jpg"][0] < signals["high.jpg"][0] < signals["still.png"][0]  # bits per pixel
    assert signals["low.jpg"][1] > signals["high.jpg"][1] > 0  # JPEG quantiser step
    assert signals["still.png"][1] == 0 and signals["still.png"][2] == 0
    assert signals["p.gif"][2] == 64 / 256

    videos = [make_video(str(tmp_path / f"crf{crf}.mp4"), crf=crf, with_audio=False) for crf in (18, 40)]
    fine, coarse = (decode_video_frames(Path(v).read_bytes(), MAX_FRAMES, LIMITS).bits_per_pixel for v in videos)
    assert coarse < fine / 4
    assert extract_visual(Path(videos[1]).read_bytes(), "video", LIMITS).handcrafted[41] == pytest.approx(
        np.log(coarse + 1e-4), rel=1e-5
    )


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (12, 12), (3, 200), (200, 3)])
def test_pictures_too_small_to_analyse_are_rejected_with_their_size(size):
    from transforms.limits import UnsupportedMedia
    from transforms.visual import MIN_SIDE

    with pytest.raises(UnsupportedMedia, match=f"{size[0]}x{size[1]} px") as raised:
        extract_visual(image_bytes(size), "image", LIMITS)
    assert raised.value.reason == "too_small"
    visual = extract_visual(image_bytes((MIN_SIDE, MIN_SIDE)), "image", LIMITS)
    assert np.all(np.isfinite(visual.handcrafted))


def test_small_frames_are_upscaled_to_the_crop():
    crop = centre_crop(np.zeros((20, 30, 3), np.uint8), CROP_SIZE)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)


def test_pixel_limit_is_enforced_before_decoding(tmp_path):
    path = make_image(str(tmp_path / "big.png"), size=(400, 300), fmt="PNG")
    with pytest.raises(LimitExceeded, match="max_pixels"):
        probe_media(Path(path).read_bytes(), MediaLimits(max_pixels=100_000))


def test_duration_limit_names_the_flag(tmp_path):
    path = make_video(str(tmp_path / "v.mp4"), seconds=3)
    with pytest.raises(LimitExceeded, match="max_duration_s"):
        probe_media(Path(path).read_bytes(), MediaLimits(max_duration_s=1.0))


@pytest.mark.parametrize(
    "payload",
    [b"", b"garbage" * 50, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\x00\x00\x00\x18ftypisom" + bytes(range(256))],
)
def test_broken_bytes_are_corrupt_media(payload):
    with pytest.raises((CorruptMedia, LimitExceeded)):
        info = probe_media(payload, LIMITS)
        extract_visual(payload, info.media_type, LIMITS)


def test_truncated_video_still_yields_what_decodes_or_fails_cleanly(tmp_path):
    data = Path(make_video(str(tmp_path / "v.mp4"), seconds=3)).read_bytes()
    truncated = data[: len(data) // 2]
    try:
        info = probe_media(truncated, LIMITS)
        visual = extract_visual(truncated, info.media_type, LIMITS)
        assert visual.frame_count >= 1
    except CorruptMedia:
        pass  # refusing a truncated file is fine; crashing with anything else is not


def test_xmp_digital_source_type_is_read():
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    assert digital_source_type(b"junk" + packet + b"junk") == "trainedAlgorithmicMedia"
    assert digital_source_type(b"no xmp here") is None


def test_the_xmp_packet_is_found_across_the_blocks_a_stored_file_is_scanned_in(tmp_path, monkeypatch):
    from transforms import metadata

    packet = b'<x:xmpmeta><rdf:Description Iptc4xmpExt:DigitalSourceType="http://x/y/compositeSynthetic"/></x:xmpmeta>'
    monkeypatch.setattr(metadata, "_SCAN_BYTES", 7)  # the start marker straddles blocks at every offset
    for offset in range(7):
        data = b"-" * (50 + offset) + packet + b"-" * 20
        path = tmp_path / f"x{offset}.bin"
        path.write_bytes(data)
        stored = StoredMedia(str(path), len(data), "")
        assert digital_source_type(data) == digital_source_type(stored) == "compositeSynthetic"


def test_media_over_the_inline_size_is_read_from_storage_with_the_same_features(tmp_path):
    """What each extractor reads from a stored file equals what it reads from the same bytes."""
    video = Path(make_video(str(tmp_path / "a.mp4"), seconds=3, size=(160, 120), gop=5))
    image = Path(make_image(str(tmp_path / "b.jpg")))
    for path in (video, image):
        data = path.read_bytes()
        stored = StoredMedia("file://" + str(path), len(data), "")
        info, stored_info = probe_media(data, LIMITS), probe_media(stored, LIMITS)
        assert info == stored_info
        visual, stored_visual = (extract_visual(d, info.media_type, LIMITS) for d in (data, stored))
        np.testing.assert_array_equal(visual.handcrafted, stored_visual.handcrafted)
        np.testing.assert_array_equal(visual.frames, stored_visual.frames)
        if info.audio_codec:
            audio, stored_audio = (extract_audio(d, True, LIMITS) for d in (data, stored))
            np.testing.assert_array_equal(audio.handcrafted, stored_audio.handcrafted)
    # A stored file's name is only a name to FFmpeg, never a protocol (concat:, subfile:, pipe:).
    hostile = tmp_path / "concat:a.mp4|b.mp4"
    hostile.write_bytes(video.read_bytes())
    assert probe_media(StoredMedia(str(hostile), hostile.stat().st_size, ""), LIMITS) == probe_media(
        video.read_bytes(), LIMITS
    )
    gone = StoredMedia(str(tmp_path / "gone.mp4"), 10, "")
    for read in (lambda: probe_media(gone, LIMITS), lambda: extract_visual(gone, "video", LIMITS)):
        with pytest.raises(MediaRejected, match="cannot be read again") as raised:
            read()
        assert raised.value.reason == "media_unreadable"


def test_iso_bmff_brands_name_the_container():
    assert container_name("mov,mp4,m4a,3gp,3g2,mj2", "isom") == "mp4"
    assert container_name("mov,mp4,m4a,3gp,3g2,mj2", "M4A ") == "m4a"
    assert container_name("mov,mp4,m4a,3gp,3g2,mj2", "qt  ") == "mov"
    assert container_name("matroska,webm", None) == "matroska"


def test_exif_camera_fields_are_read(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[271], exif[272], exif[305] = "Canon", "EOS R5", "Firmware 1.2"
    path = make_image(str(tmp_path / "cam.jpg"), fmt="JPEG", exif=exif)
    info = probe_media(Path(path).read_bytes(), LIMITS)
    assert (info.exif_make, info.exif_model, info.exif_software) == ("Canon", "EOS R5", "Firmware 1.2")
    assert info.c2pa_present is False and info.c2pa_validation == "absent"


def _event():
    from transforms.parse import parse_event

    return parse_event(
        {"content_id": "c1", "account_id": "a1", "media_uri": "x", "uploaded_at": "2026-10-02T00:00:00Z"}
    )


def _ogg_with_tags(path: Path, tags: dict[str, str]) -> bytes:
    import av

    with av.open(str(path), "w", format="ogg") as output:
        stream = output.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        stream.metadata.update(tags)  # Ogg keeps its comments per stream
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 48000), np.float32), format="flt", layout="mono")
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    return path.read_bytes()


def test_ogg_stream_comments_are_read(tmp_path):
    data = _ogg_with_tags(
        tmp_path / "a.ogg",
        {"software": "Coqui TTS 0.22", "make": "Apple", "creation_time": "2026-10-01T10:00:00.000000Z"},
    )
    info = probe_media(data, LIMITS)
    assert (info.media_type, info.exif_software, info.exif_make) == ("audio", "Coqui TTS 0.22", "Apple")
    assert info.capture_time is not None and info.capture_time.hour == 10


def test_software_in_png_text_and_gif_comment_is_read(tmp_path):
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "ComfyUI")
    png = probe_media(Path(make_image(str(tmp_path / "a.png"), fmt="PNG", pnginfo=text)).read_bytes(), LIMITS)
    gif = probe_media(Path(make_image(str(tmp_path / "a.gif"), fmt="GIF", comment=b"Canva")).read_bytes(), LIMITS)
    plain = probe_media(Path(make_image(str(tmp_path / "b.png"), fmt="PNG")).read_bytes(), LIMITS)
    assert (png.exif_software, gif.exif_software, plain.exif_software) == ("ComfyUI", "Canva", None)


@pytest.mark.parametrize(
    ("software", "firmware"),
    [("G960FXXU2CRLI", True), ("A520FXXU4CUE1", True), ("1.0.2", True), ("Ver.1.00", True), ("HDR+ 1.0.199", True),
     ("Firmware 1.2", True), ("Photoshop", False), ("Snapseed", False), ("MEDIATEK", False), ("GIMP 2.10", False),
     ("Adobe Photoshop 25.0 (Macintosh)", False)],
)  # fmt: skip
def test_camera_firmware_strings_are_told_from_editor_names(software, firmware):
    from transforms.metadata import _FIRMWARE

    assert bool(_FIRMWARE.search(software)) is firmware


def test_embedded_generation_settings_are_flagged(tmp_path):
    from PIL import Image, PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("parameters", "a portrait\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0Steps: 30, Sampler: DPM++ 2M, CFG scale: 5"
    caption = Image.Exif()
    caption.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0Ten steps: from the harbour to the sea"
    # Only the first 4 KB are searched: the pattern backtracks, and a comment of repeated
    # "steps: 1" would otherwise cost seconds per file.
    hostile = Image.Exif()
    hostile.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + b"steps: 1 " * 7000 + b"Sampler: Euler"
    flagged = [
        probe_media(Path(make_image(str(tmp_path / name), fmt=fmt, **save)).read_bytes(), LIMITS).generation_parameters
        for name, fmt, save in (
            ("a.png", "PNG", {"pnginfo": text}),
            ("b.jpg", "JPEG", {"exif": exif}),
            ("c.jpg", "JPEG", {"exif": caption}),
            ("d.png", "PNG", {}),
            ("e.jpg", "JPEG", {"exif": hostile}),
        )
    ]
    assert flagged == [True, True, False, False, False]


def test_exact_encoder_string_separates_versions_of_one_family():
    from schemas.records import MediaInfo
    from transforms.metadata import metadata_vector

    old, new, none = (
        metadata_vector(MediaInfo("video", "mp4", encoder=e), _event())
        for e in ("Lavf58.76.100", "Lavf60.16.100", None)
    )
    assert np.array_equal(old[20:36], new[20:36])  # one family
    assert old[48:63].sum() == new[48:63].sum() == 1 and not np.array_equal(old[48:63], new[48:63])
    assert none[35] == 1 and none[48:63].sum() == 0


def test_the_fast_forms_of_the_frame_signals_equal_their_plain_definitions():
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (203, 317, 3), dtype=np.uint8)
    grey = (frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)

    rgb = frame.astype(np.float64) / 255
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    np.testing.assert_allclose(signals._saturation_stats(frame), (saturation.mean(), saturation.std()), rtol=1e-6)

    rows, cols = 203 // 8 * 8, 317 // 8 * 8
    blocks = grey[:rows, :cols].reshape(rows // 8, 8, cols // 8, 8)
    np.testing.assert_allclose(signals._block_means(grey), blocks.mean(axis=(1, 3)).ravel(), rtol=1e-5)

    magnitude = np.abs(grey - cv2.blur(grey, (3, 3)))
    for period in (2, 4, 8):
        cut = magnitude[: 203 // 8 * 8, : 317 // 8 * 8]
        plain = [cut[i::period, j::period].mean() for i in range(period) for j in range(period)]
        np.testing.assert_allclose(signals._phase_means(*signals._phase_sums(magnitude), period), plain, rtol=1e-5)

    texture = grey - cv2.blur(grey, (15, 15))
    autocorrelation = np.real(np.fft.ifft2(np.abs(np.fft.fft2(texture.astype(np.float64))) ** 2))
    autocorrelation = np.fft.fftshift(autocorrelation / autocorrelation[0, 0])
    yy, xx = np.mgrid[0:203, 0:317]
    radius = np.hypot(yy - 203 // 2, xx - 317 // 2)
    plain = autocorrelation[(radius > 5) & (radius < 203 / 3)].max()
    assert signals._texture_regularity([texture]) == pytest.approx(plain, abs=1e-4)

    codes = rng.integers(0, 125, (40, 60), dtype=np.uint8)
    mask = rng.random((40, 60)) < 0.3
    plain = np.bincount(
        signals._RUN_CLASS, weights=np.bincount(codes[mask], minlength=125) * 2, minlength=signals.COOC_CLASSES
    )
    np.testing.assert_array_equal(signals._class_counts((codes, codes), (mask, mask)), plain)


def test_the_audio_signals_do_not_depend_on_the_chunks_the_track_is_analysed_in(monkeypatch):
    from transforms import audio

    rng = np.random.default_rng(9)
    t = np.arange(16000 * 7) / 16000
    samples = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t))) + 0.02 * rng.normal(size=t.size)
    whole = audio_features(samples.astype(np.float32))
    monkeypatch.setattr(audio, "CHUNK_FRAMES", 37)  # 700 frames in 19 chunks, the last a short one
    chunked = audio_features(samples.astype(np.float32))
    np.testing.assert_allclose(chunked.handcrafted, whole.handcrafted, rtol=1e-5, atol=1e-6)
    # Equal to float32 rounding: an FFT over 37 frames and one over 700 may round the last bit apart.
    np.testing.assert_allclose(chunked.logmel, whole.logmel, rtol=1e-5, atol=1e-5)


def test_the_strong_bin_threshold_is_numpys_percentile_without_holding_the_magnitudes():
    from transforms.audio import _magnitude_bins, _Percentile

    rng = np.random.default_rng(11)
    for values in (
        rng.gamma(1.0, 1.0, 100_003).astype(np.float32),
        np.repeat(np.float32([0.5, 2.0]), [9, 1]),  # the percentile between two bins
        rng.integers(0, 4, 1000).astype(np.float32),  # ties, zeros
        np.float32([3.0]),
    ):
        percentile, chunks = _Percentile(90), np.array_split(values, 7)
        for chunk in chunks:  # pass one
            percentile.count(chunk)
        for chunk in chunks:  # pass two
            percentile.keep_near(chunk, _magnitude_bins(chunk))
        assert percentile.value() == pytest.approx(float(np.percentile(values, 90)), rel=1e-7)
