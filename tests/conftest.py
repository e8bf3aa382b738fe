"""Shared fixtures: real media files written by the tests themselves."""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import os
from pathlib import Path

import av
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from schemas import arrow_schema, bigquery_schema

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# How long each test file took (seconds, summed over its tests, three processes on 2 cores).
# `make test` hands the files out slowest first (with --no-loadscope-reorder), so no process is
# left running a long file alone at the end; `make test-durations` measures them again.
FILE_DURATIONS = Path(__file__).with_name("file_durations.json")
_NEW_FILE_S = 10.0  # a file not measured yet
_spent: collections.Counter = collections.Counter()


def _file_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_collection_modifyitems(config, items):
    seconds = json.loads(FILE_DURATIONS.read_text()) if FILE_DURATIONS.exists() else {}
    first: dict[str, int] = {}
    for item in items:
        first.setdefault(_file_of(item.nodeid), len(first))

    def slowest_first(item):
        path = _file_of(item.nodeid)
        return -seconds.get(path, _NEW_FILE_S), first[path]

    items.sort(key=slowest_first)  # stable: a file's tests keep their order


def pytest_runtest_logreport(report):
    if os.environ.get("TEST_DURATIONS_OUT"):
        _spent[_file_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session):
    out = os.environ.get("TEST_DURATIONS_OUT")
    if out and not hasattr(session.config, "workerinput") and _spent:  # the controller, once
        Path(out).write_text(json.dumps({k: round(v, 1) for k, v in sorted(_spent.items())}, indent=1) + "\n")


def query_warehouse(warehouse, sql: str) -> list[tuple]:
    """The rows of `sql` on an embedded warehouse's catalog, sorted (read-only, so a running job
    can keep writing)."""
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        return sorted(con.sql(sql).fetchall())


def run_batch_on_files(root, events: list[dict], *flags: str):
    """Runs the batch job on `events` whose media are files anywhere on the machine (package
    caches, generated folders, given by absolute path): writes ROOT/manifest.jsonl, names each
    media folder as a --media_root, and returns the warehouse (ROOT/wh)."""
    import json

    from pipelines import batch

    manifest, warehouse = root / "manifest.jsonl", root / "wh"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in events))
    roots = [arg for folder in sorted({os.path.dirname(e["media_uri"]) for e in events})
             for arg in ("--media_root", folder)]  # fmt: skip
    assert batch.run(["--input", str(manifest), "--warehouse", str(warehouse), *roots, *flags,
                      f"--runner={batch.LOCAL_RUNNER}"]) == 0  # fmt: skip
    return warehouse


def make_video(
    path: str,
    *,
    seconds: float = 2.0,
    fps: int = 15,
    size: tuple[int, int] = (160, 120),
    gop: int = 10,
    with_audio: bool = True,
    codec: str = "libx264",
    audio_codec: str = "aac",
    seed: int = 0,
    crf: int | None = None,
    rotation: int | None = None,
    container_options: dict[str, str] | None = None,
) -> str:
    """Writes a small video (moving gradient plus noise) with an optional sine audio track;
    `rotation` (counter-clockwise degrees) goes in the display matrix, as phones write it."""
    rng = np.random.default_rng(seed)
    width, height = size
    container = av.open(path, "w", options=container_options or {})
    video = container.add_stream(codec, rate=fps)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.gop_size = gop
    if rotation is not None:
        video.set_display_rotation(rotation)
    if codec == "libx264":
        video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        if crf is not None:
            video.options = {**video.options, "crf": str(crf)}
    audio = None
    if with_audio:
        audio = container.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else 16000)
    xx = np.mgrid[0:height, 0:width][1]
    for index in range(int(seconds * fps)):
        base = ((xx + 3 * index) % width) / width * 200 + 20
        frame = np.stack([base, np.roll(base, 7, axis=1), base[::-1]], axis=-1)
        frame = np.clip(frame + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
        for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if audio is not None:
        rate = audio.codec_context.sample_rate
        samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        frame_size = audio.codec_context.frame_size or 1024
        for start in range(0, samples.size - frame_size + 1, frame_size):
            chunk = av.AudioFrame.from_ndarray(samples[None, start : start + frame_size], format="fltp", layout="mono")
            chunk.sample_rate = rate
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    container.close()
    return path


def make_image(path: str, size: tuple[int, int] = (120, 90), fmt: str | None = None, seed: int = 0, **save) -> str:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt, **save)
    return path


def make_audio(
    path: str | io.BytesIO, seconds: float = 2.0, rate: int = 22050, fmt: str | None = None
) -> str | io.BytesIO:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.2 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    sf.write(path, samples, rate, format=fmt)
    return path


def audio_bytes(seconds: float = 1.0, rate: int = 16000, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    make_audio(buffer, seconds, rate, fmt)
    return buffer.getvalue()


def image_bytes(size: tuple[int, int] = (120, 90), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def media_dir(tmp_path):
    """A directory with one of each: video+audio, image, audio, a corrupt file."""
    make_video(str(tmp_path / "clip.mp4"))
    make_image(str(tmp_path / "photo.jpg"), fmt="JPEG", quality=90)
    make_audio(str(tmp_path / "voice.wav"))
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(256))
    return tmp_path


# The in-process portable runner: what DirectRunner falls back to for batch pipelines, named
# directly so no test ever waits on DirectRunner's attempt to download the Prism runner.
FN_API_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def batch_pipeline():
    from apache_beam.testing.test_pipeline import TestPipeline

    return TestPipeline(runner=FN_API_RUNNER)


@pytest.fixture(scope="module")
def pubsub_emulator(tmp_path_factory):
    """The Pub/Sub emulator on loopback (`tools.local_servers`), PUBSUB_EMULATOR_HOST set
    for the module's tests; skipped, saying why, where it is not installed."""
    from tools.local_servers import ServerUnavailable, running, start_pubsub

    try:
        server = start_pubsub(tmp_path_factory.mktemp("pubsub"))
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = server.address
    try:
        with running(server):
            yield server.address
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


@pytest.fixture(scope="module")
def bigquery_endpoint(tmp_path_factory):
    """A BigQuery-API server (local-bigquery) on loopback, for the module's tests; skipped,
    saying why, where `make bigquery-emulator` could not install it."""
    from tools.local_servers import ServerUnavailable, running, start_bigquery

    try:
        server = start_bigquery(tmp_path_factory.mktemp("bigquery"))
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    with running(server):
        yield f"http://{server.address}"


_SEED_DEFAULTS = {
    "STRING": "x",
    "TIMESTAMP": dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
    "BOOLEAN": False,
    "INTEGER": 0,
    "FLOAT": 0.0,
    "JSON": "{}",
}


def _seed_rows(table: str, rows: list[dict]) -> pa.Table:
    """Rows with every required column the test does not care about filled in."""
    fields = bigquery_schema(table)
    full = []
    for row in rows:
        filled = dict(row)
        for field in fields:
            if field["name"] not in filled:
                mode = field.get("mode", "NULLABLE")
                filled[field["name"]] = (
                    [] if mode == "REPEATED" else _SEED_DEFAULTS[field["type"]] if mode == "REQUIRED" else None
                )
        full.append(filled)
    return pa.Table.from_pylist(full, schema=arrow_schema(table))


def seed_table(warehouse, table: str, rows: list[dict]) -> None:
    """Writes `rows` as one Parquet file of `table` (then `write_catalog` makes the views)."""
    (warehouse / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(_seed_rows(table, rows), warehouse / table / "seed-00000-of-00001.parquet")
