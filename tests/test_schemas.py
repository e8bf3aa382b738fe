"""Table contracts: the JSON schemas, the Arrow schemas derived from them, row validation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import (
    SCHEMA_DIR,
    SCHEMA_OF,
    TABLES,
    SchemaViolation,
    arrow_schema,
    bigquery_schema,
    column_descriptions,
    validate_row,
)
from schemas.records import (
    AccountContext,
    AudioFeatures,
    DeadLetter,
    MediaFeatures,
    MediaInfo,
    ModalityScore,
    ScoredMedia,
    UploadEvent,
    decode_array,
    encode_array,
)
from warehouse.embedded import write_catalog

NOW = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
BQ_TYPES = {"STRING", "BYTES", "INTEGER", "FLOAT", "BOOLEAN", "TIMESTAMP", "DATE", "RECORD", "JSON"}


@pytest.mark.parametrize("table", TABLES)
def test_each_table_has_a_bigquery_schema_file_bq_accepts(table):
    fields = json.loads((SCHEMA_DIR / f"{SCHEMA_OF.get(table, table)}.json").read_text())
    names = [f["name"] for f in fields]
    assert len(names) == len(set(names))
    for field in fields:
        assert field["type"] in BQ_TYPES
        assert field.get("mode", "NULLABLE") in ("NULLABLE", "REQUIRED", "REPEATED")
    assert "pipeline_version" in names


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda path: path.stem)
def test_every_column_of_every_table_is_described(path):
    fields = json.loads(path.read_text())
    if not isinstance(fields, list):  # the table layouts and view specs, not table schemas
        return
    stack = list(fields)
    while stack:
        field = stack.pop()
        assert field.get("description", "").strip(), f"{path.name}: {field['name']} has no description"
        stack.extend(field.get("fields", ()))


def test_the_embedded_catalog_describes_every_column_as_bigquery_does(tmp_path):
    catalog = write_catalog(str(tmp_path / "wh"))
    with duckdb.connect(str(catalog), read_only=True) as con:
        rows = con.sql("SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
                       "WHERE database_name = 'warehouse'").fetchall()  # fmt: skip
    assert {schema for schema, *_ in rows} == {"main", "compliance"}
    assert [row[:3] for row in rows if not row[3]] == []
    described = {(table, column): comment for _, table, column, comment in rows}
    assert (
        described["enforcement_decisions", "policy_version"]
        == column_descriptions("enforcement_decisions")["policy_version"]
    )
    assert "created_at: When the account was created" in column_descriptions("upload_events")["account"]


def test_a_catalog_is_made_again_only_when_its_views_would_change(tmp_path):
    """A file written to a table that has files is read through the view's pattern: the
    catalog stays. A table's first file changes its view (no longer empty): a new catalog."""
    warehouse = tmp_path / "wh"
    catalog = write_catalog(str(warehouse))
    made = catalog.stat().st_ino, catalog.stat().st_mtime_ns
    assert write_catalog(str(warehouse)) == catalog and (catalog.stat().st_ino, catalog.stat().st_mtime_ns) == made

    def write_dead_letter(name: str, step: str) -> None:
        row = DeadLetter("s", "dead_letter", None, "internal_error", "E", step, "{}", NOW).to_row()
        (warehouse / "dead_letter").mkdir(exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist([row], schema=arrow_schema("dead_letter")), warehouse / "dead_letter" / name
        )

    def errors() -> list[str]:
        with duckdb.connect(str(catalog), read_only=True) as con:
            return sorted(e for (e,) in con.sql("SELECT error FROM dead_letter").fetchall())

    write_dead_letter("r1-0.parquet", "first")
    write_catalog(str(warehouse))
    assert (catalog.stat().st_ino, catalog.stat().st_mtime_ns) != made and errors() == ["first"]
    made = catalog.stat().st_ino, catalog.stat().st_mtime_ns
    write_dead_letter("r2-0.parquet", "second")
    write_catalog(str(warehouse))
    assert (catalog.stat().st_ino, catalog.stat().st_mtime_ns) == made and errors() == ["first", "second"]
    catalog.unlink()  # a catalog deleted by hand is made again
    assert write_catalog(str(warehouse)).exists() and errors() == ["first", "second"]


@pytest.mark.parametrize("table", TABLES)
def test_arrow_schema_follows_the_json(table):
    schema = arrow_schema(table)
    assert schema.names == [f["name"] for f in bigquery_schema(table)]
    for field in bigquery_schema(table):
        arrow_field = schema.field(field["name"])
        if field.get("mode") == "REQUIRED":
            assert not arrow_field.nullable
        if field.get("mode") == "REPEATED":
            assert pa.types.is_list(arrow_field.type)
        if field["type"] == "TIMESTAMP":
            assert arrow_field.type == pa.timestamp("us", tz="UTC")


def test_validation_rejects_what_bigquery_would():
    row = DeadLetter("s", "dead_letter", None, "internal_error", "E", "boom", "{}", NOW).to_row()
    validate_row("dead_letter", row)
    with pytest.raises(SchemaViolation, match="step: REQUIRED"):
        validate_row("dead_letter", {**row, "step": None})
    with pytest.raises(SchemaViolation, match="unknown columns"):
        validate_row("dead_letter", {**row, "surprise": 1})
    with pytest.raises(SchemaViolation, match="timezone-aware"):
        validate_row("dead_letter", {**row, "failed_at": dt.datetime(2026, 1, 1)})
    with pytest.raises(SchemaViolation, match="expected STRING"):
        validate_row("dead_letter", {**row, "error": 42})


def _features() -> MediaFeatures:
    event = UploadEvent("c1", "/m.wav", "a1", NOW, account=AccountContext(created_at=NOW))
    audio = AudioFeatures(
        logmel=np.random.default_rng(0).normal(size=(8, 100, 40)).astype(np.float32),
        window_mask=np.array([1, 1, 0, 0, 0, 0, 0, 0], np.float32),
        handcrafted=np.zeros(59, np.float32),
        duration_s=1.5,
    )
    info = MediaInfo(media_type="audio", container="wav", audio_codec="pcm_s16le")
    return MediaFeatures(event, "f" * 64, info, None, audio, np.zeros(48, np.float32), NOW)


def test_feature_rows_validate_and_keep_only_real_windows():
    row = validate_row("features", _features().to_row("f1"))
    logmel = decode_array(row["audio_logmel"])
    assert logmel.shape == (2, 100, 40) and logmel.dtype == np.float16
    assert row["frame_count"] == 0 and row["visual_frames"] is None
    assert row["audio_window_count"] == 2


def test_score_rows_carry_model_versions_per_modality():
    scored = ScoredMedia(
        event=_features().event,
        sha256="f" * 64,
        info=MediaInfo(media_type="audio", container="wav"),
        modalities_present=("audio", "metadata"),
        scores=(ModalityScore("audio", 0.8, "audio_detector", "v7"),),
        fused_score=0.8,
        fusion_method="logit_mean",
        fusion_version="1",
        scored_at=NOW,
    )
    row = validate_row("media_scores", scored.to_row())
    assert (row["audio_score"], row["audio_model_version"]) == (0.8, "v7")
    assert row["visual_score"] is None and row["metadata_score"] is None
    assert row["modalities_present"] == ["audio", "metadata"]


def test_arrays_round_trip_through_npy_bytes():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(decode_array(encode_array(array)), array)


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _features().sha256 = "x"  # type: ignore[misc]
