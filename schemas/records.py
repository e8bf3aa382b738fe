"""Elements in flight: frozen dataclasses passed between pipeline stages.

No free-form dicts travel between stages. Each record that lands in a table has a
`to_row()` whose output `schemas.validate_row` accepts; records that arrive from outside
(upload events) have a `from_dict()` that round-trips with `to_dict()`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from typing import Any

import numpy as np

from schemas.version import PIPELINE_VERSION
from schemas.vocabulary import MODALITIES


def parse_timestamp(value: Any, field: str) -> dt.datetime:
    """Parses an RFC 3339 timestamp (or a datetime) into an aware UTC datetime.

    Raises:
        ValueError: the value is not an RFC 3339 timestamp with a timezone.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{field}: {value!r} is not an RFC 3339 timestamp") from None
    else:
        raise ValueError(f"{field}: expected an RFC 3339 timestamp string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        raise ValueError(f"{field}: {value!r} has no timezone (RFC 3339 requires one)")
    return parsed.astimezone(dt.UTC)


# How far ahead of this machine's clock a time given by another system may be (clocks drift,
# and NTP keeps them within seconds): anything later is a time that cannot be.
CLOCK_TOLERANCE = dt.timedelta(minutes=5)


class FutureTimestamp(ValueError):
    """A time later than now (beyond `CLOCK_TOLERANCE`): an upload, notice, appeal or verdict
    that cannot have happened yet. A wrong client clock or a made-up row; never counted."""

    reason = "future_timestamp"


def not_in_future(moment: dt.datetime, field: str, now: dt.datetime | None = None) -> dt.datetime:
    """`moment` unchanged, if it is not later than `now` (the wall clock) plus `CLOCK_TOLERANCE`.

    Raises:
        FutureTimestamp: names the field, the time and the clock it was checked against.
    """
    now = now or utc_now()
    if moment > now + CLOCK_TOLERANCE:
        raise FutureTimestamp(
            f"{field}: {format_timestamp(moment)} is in the future (this job's clock reads {format_timestamp(now)}, "
            f"tolerance {int(CLOCK_TOLERANCE.total_seconds() // 60)} min)"
        )
    return moment


def format_timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: Any) -> Any:
    """A timestamp read back from the warehouse as an aware UTC datetime (DuckDB and Parquet may
    hand it back without its zone, which is always UTC there); any other value as it is."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def encode_array(array: np.ndarray) -> bytes:
    """Serialises an array as .npy bytes (dtype and shape travel with the data)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


@dataclasses.dataclass(frozen=True)
class AccountContext:
    """What the platform knows about the uploading account at upload time.

    Every field is optional in the manifest contract and None when the event left it out:
    "not stated" is not the same as "not verified" or "no strikes", and the metadata vector
    and the policy keep the difference (`UploadEvent.account` is None when the event has no
    account object at all).
    """

    created_at: dt.datetime | None = None
    verified: bool | None = None
    high_profile: bool | None = None
    prior_strikes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "created_at": format_timestamp(self.created_at),
            "verified": self.verified,
            "high_profile": self.high_profile,
            "prior_strikes": self.prior_strikes,
        }


@dataclasses.dataclass(frozen=True)
class Notice:
    """A report that flagged the upload before the pipeline saw it (DSA Art. 16 notice, or a
    trusted flagger's under Art. 22). It changes the detection method the decision records."""

    source: str  # one of NOTICE_SOURCES
    received_at: dt.datetime | None = None
    # The illegality the notifier alleges, as a DSA statement category and optionally one of its
    # keywords (Annex II counts notices by it); None when the notice did not say.
    category: str | None = None
    keyword: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "received_at": format_timestamp(self.received_at), "category": self.category,
                "keyword": self.keyword}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class UploadEvent:
    """One upload, as validated from a manifest row, a table row or a Pub/Sub message."""

    content_id: str
    media_uri: str
    account_id: str
    uploaded_at: dt.datetime
    media_type: str | None = None
    surface: str | None = None
    country: str | None = None
    declared_ai: bool | None = None
    account: AccountContext | None = None  # None: the event carried no account object
    notice: Notice | None = None

    @property
    def high_profile(self) -> bool:
        """Known to be a high-profile account (an unstated flag reads as not known to be)."""
        return bool(self.account is not None and self.account.high_profile)

    @property
    def verified(self) -> bool:
        return bool(self.account is not None and self.account.verified)

    @property
    def prior_strikes(self) -> int:
        """Strikes the event states (0 when it states none)."""
        return (self.account.prior_strikes or 0) if self.account is not None else 0

    @property
    def detection_method(self) -> str:
        """automated, or the notice's source when someone reported the upload."""
        return self.notice.source if self.notice is not None else "automated"

    def to_dict(self) -> dict[str, Any]:
        return {
            "content_id": self.content_id,
            "media_uri": self.media_uri,
            "account_id": self.account_id,
            "uploaded_at": format_timestamp(self.uploaded_at),
            "media_type": self.media_type,
            "surface": self.surface,
            "country": self.country,
            "declared_ai": self.declared_ai,
            "account": self.account.to_dict() if self.account is not None else None,
            "notice": self.notice.to_dict() if self.notice is not None else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class StoredMedia:
    """Media too large to carry in an element (over `--max_inline_bytes`): where it is
    stored, read again by each extractor in ranges, and its size and SHA-256 when fetched."""

    uri: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class MediaBlob:
    """An upload with its media fetched and fingerprinted: the bytes, or where they are
    stored when they are too large to carry."""

    event: UploadEvent
    data: bytes | StoredMedia
    sha256: str


@dataclasses.dataclass(frozen=True, eq=False)
class VisualFeatures:
    """Sampled frames as a fixed-size tensor plus hand-made per-item signals.

    Attributes:
        frames: uint8 [frames, height, width, 3]; unused slots are zero and masked.
        frame_mask: float32 [frames]; 1.0 where a real frame sits.
        frame_selection: "keyframes", "sequential", "still" or "animation"; a video's ends in
            "+cut_short" when its stream ended before the frames its packets promised.
        handcrafted: float32 vector of per-item signals (see transforms.visual).
        faces: uint8 [frames, height, width, 3] face crops, slot for slot with `frames`.
        face_mask: float32 [frames]; 1.0 where a face was found in that frame.
    """

    frames: np.ndarray
    frame_mask: np.ndarray
    frame_selection: str
    handcrafted: np.ndarray
    faces: np.ndarray
    face_mask: np.ndarray
    pdq_hashes: tuple[str, ...] = ()  # perceptual hashes of the sampled frames (hash bank matching)
    pdq_frames: tuple[int, ...] = ()  # the sampled frame each hash came from (a video matched as a sequence)

    @property
    def frame_count(self) -> int:
        return int(self.frame_mask.sum())


@dataclasses.dataclass(frozen=True, eq=False)
class AudioFeatures:
    """Log-mel windows of the 16 kHz mono track plus hand-made per-item signals.

    Attributes:
        logmel: float32 [windows, frames, mels]; unused windows are zero and masked.
        window_mask: float32 [windows]; 1.0 where a real window sits.
        handcrafted: float32 vector of cepstral, spectral and phase statistics.
        duration_s: length of the decoded track.
        fingerprint: the track's packed fingerprint (transforms.audio_fingerprint), matched
            against the bank of confirmed violations.
    """

    logmel: np.ndarray
    window_mask: np.ndarray
    handcrafted: np.ndarray
    duration_s: float
    fingerprint: bytes | None = None

    @property
    def window_count(self) -> int:
        return int(self.window_mask.sum())


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """Container, codec, embedded metadata and provenance of one media file."""

    media_type: str
    container: str
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    bitrate: int | None = None
    frame_rate: float | None = None
    encoder: str | None = None
    exif_make: str | None = None
    exif_model: str | None = None
    exif_software: str | None = None
    digital_source_type: str | None = None
    c2pa_present: bool = False
    c2pa_claim_generator: str | None = None
    c2pa_validation: str = "absent"
    capture_time: dt.datetime | None = None
    has_location: bool = False
    generation_parameters: bool = False


@dataclasses.dataclass(frozen=True, eq=False)
class MediaFeatures:
    """Everything extracted from one upload: the input to inference and the features table."""

    event: UploadEvent
    sha256: str
    info: MediaInfo
    visual: VisualFeatures | None
    audio: AudioFeatures | None
    metadata_vector: np.ndarray | None
    extracted_at: dt.datetime
    # The media bytes (or where they are stored), carried only while features are extracted
    # and released before inference so they never travel through a shuffle.
    data: bytes | StoredMedia | None = dataclasses.field(default=None, repr=False)
    hash_match: str | None = None  # label of the matching hash-bank entry
    hash_distance: int | None = None
    # suspended:<account>:<decision>: the media matches an upload of another account that was
    # suspended (pipelines/bank.py); a signal for review, never a decision by itself.
    evasion_match: str | None = None

    @property
    def content_id(self) -> str:
        return self.event.content_id

    def modalities(self) -> tuple[str, ...]:
        present = {"visual": self.visual, "audio": self.audio, "metadata": self.metadata_vector}
        return tuple(m for m in MODALITIES if present[m] is not None)

    def to_row(self, feature_version: str) -> dict[str, Any]:
        info = self.info
        return {
            "content_id": self.content_id,
            "media_type": info.media_type,
            "feature_version": feature_version,
            "extracted_at": self.extracted_at,
            "container": info.container,
            "video_codec": info.video_codec,
            "audio_codec": info.audio_codec,
            "width": info.width,
            "height": info.height,
            "duration_s": info.duration_s,
            "bitrate": info.bitrate,
            "frame_rate": info.frame_rate,
            "encoder": info.encoder,
            "exif_make": info.exif_make,
            "exif_model": info.exif_model,
            "exif_software": info.exif_software,
            "digital_source_type": info.digital_source_type,
            "c2pa_present": info.c2pa_present,
            "c2pa_claim_generator": info.c2pa_claim_generator,
            "c2pa_validation": info.c2pa_validation,
            "capture_time": info.capture_time,
            "has_location": info.has_location,
            "generation_parameters": info.generation_parameters,
            "frame_selection": self.visual.frame_selection if self.visual else None,
            "frame_count": self.visual.frame_count if self.visual else 0,
            "visual_frames": encode_array(self.visual.frames[: self.visual.frame_count]) if self.visual else None,
            "face_count": int(self.visual.face_mask.sum()) if self.visual else 0,
            "visual_faces": encode_array(self.visual.faces[: self.visual.frame_count]) if self.visual else None,
            "visual_face_mask": [float(v) for v in self.visual.face_mask[: self.visual.frame_count]]
            if self.visual
            else [],
            "visual_handcrafted": [float(v) for v in self.visual.handcrafted] if self.visual else [],
            "pdq_hashes": list(self.visual.pdq_hashes) if self.visual else [],
            "pdq_frames": list(self.visual.pdq_frames) if self.visual else [],
            "audio_window_count": self.audio.window_count if self.audio else 0,
            "audio_logmel": encode_array(self.audio.logmel[: self.audio.window_count].astype(np.float16))
            if self.audio
            else None,
            "audio_handcrafted": [float(v) for v in self.audio.handcrafted] if self.audio else [],
            "audio_fingerprint": self.audio.fingerprint if self.audio else None,
            "metadata_vector": [float(v) for v in self.metadata_vector] if self.metadata_vector is not None else [],
            "pipeline_version": PIPELINE_VERSION,
        }


@dataclasses.dataclass(frozen=True)
class ModalityScore:
    """One model's calibrated probability that one modality of an item is synthetic.

    `abstained`: the input lies outside what the model was trained on (its domain gate,
    `models.domain`), so the score is kept for audit but does not vote; `abstain_reason` says
    why and `domain_distance` how far out (None for a model without a gate).
    """

    modality: str
    score: float
    model_name: str
    model_version: str
    abstained: bool = False
    abstain_reason: str | None = None
    domain_distance: float | None = None
    signals: str | None = None  # the hand-made signals furthest from the training data (models.domain)


@dataclasses.dataclass(frozen=True)
class ScoredMedia:
    """An item with its per-modality scores and the fused score."""

    event: UploadEvent
    sha256: str
    info: MediaInfo
    modalities_present: tuple[str, ...]
    scores: tuple[ModalityScore, ...]
    fused_score: float | None
    fusion_method: str
    fusion_version: str
    scored_at: dt.datetime
    hash_match: str | None = None
    hash_distance: int | None = None
    evasion_match: str | None = None  # MediaFeatures.evasion_match
    # The strongest content evidence (visual or audio) that voted; None when none did.
    content_score: float | None = None

    def score_for(self, modality: str) -> ModalityScore | None:
        return next((s for s in self.scores if s.modality == modality), None)

    def vote_for(self, modality: str) -> ModalityScore | None:
        """The modality's score if it voted (present and not abstained)."""
        score = self.score_for(modality)
        return score if score is not None and not score.abstained else None

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "content_id": self.event.content_id,
            "account_id": self.event.account_id,
            "media_type": self.info.media_type,
            "declared_media_type": self.event.media_type,
            "uploaded_at": self.event.uploaded_at,
            "scored_at": self.scored_at,
            "modalities_present": list(self.modalities_present),
            "fused_score": self.fused_score,
            "content_score": self.content_score,
            "fusion_method": self.fusion_method,
            "fusion_version": self.fusion_version,
            "declared_ai": self.event.declared_ai,
            "c2pa_present": self.info.c2pa_present,
            "digital_source_type": self.info.digital_source_type,
            "content_sha256": self.sha256,
            "hash_match": self.hash_match,
            "hash_distance": self.hash_distance,
            "evasion_match": self.evasion_match,
            # The event's context, as the policy read it: what a simulation replays.
            "surface": self.event.surface,
            "country": self.event.country,
            "detection_method": self.event.detection_method,
            "high_profile": self.event.high_profile,
            "verified": self.event.verified,
            "prior_strikes": self.event.prior_strikes,
            "pipeline_version": PIPELINE_VERSION,
        }
        for modality in MODALITIES:
            score = self.score_for(modality)
            row[f"{modality}_score"] = score.score if score else None
            row[f"{modality}_model_name"] = score.model_name if score else None
            row[f"{modality}_model_version"] = score.model_version if score else None
            row[f"{modality}_abstained"] = score.abstained if score else None
            row[f"{modality}_abstain_reason"] = score.abstain_reason if score else None
            row[f"{modality}_domain_distance"] = score.domain_distance if score else None
            row[f"{modality}_signals"] = score.signals if score else None
        return row


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the policy decided for one item, with everything needed to replay it."""

    decision_id: str
    content_id: str
    account_id: str
    action: str
    category: str | None
    rule_id: str
    policy_id: str
    policy_version: str
    fused_score: float | None
    detection_method: str
    automated_decision: str
    media_type: str
    surface: str | None
    country: str | None
    uploaded_at: dt.datetime
    decided_at: dt.datetime
    targets: tuple[str, ...]
    notified_at: dt.datetime | None = None  # when a notice reported the upload, if one did
    notice_category: str | None = None  # the illegality the notice alleged (DSA category), if it said
    notice_keyword: str | None = None
    content_score: float | None = None  # the content evidence that voted, when decided
    # A rule in `sampled` mode: the restrictive action it would have taken (the decision is
    # human_review). A rule in `shadow` mode that matched first: its id and action, not acted on.
    proposed_action: str | None = None
    shadow_rule_id: str | None = None
    shadow_action: str | None = None
    supersedes: str | None = None  # a reviewer's verdict: the decision it reviewed
    bank_match: str | None = None  # the bank entry the media matched (ScoredMedia.hash_match)

    @property
    def action_clock_start(self) -> dt.datetime:
        """Where time-to-action counts from: the notice if there was one, else the upload."""
        return self.notified_at or self.uploaded_at

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["targets"] = list(self.targets)
        row["pipeline_version"] = PIPELINE_VERSION
        return row


@dataclasses.dataclass(frozen=True)
class EnforcementEvent:
    """One decision as one downstream system receives it."""

    event_id: str
    decision_id: str
    content_id: str
    account_id: str
    target: str
    action: str
    event_type: str
    policy_id: str
    policy_version: str
    emitted_at: dt.datetime
    payload: str

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["pipeline_version"] = PIPELINE_VERSION
        return row


@dataclasses.dataclass(frozen=True)
class TransparencyCell:
    """One cell of a transparency report: decisions, or appeals, in one period and breakdown."""

    measure: str  # decisions or appeals
    breakdown: str  # overall, content_type, country or detail (transforms.transparency.BREAKDOWNS)
    period_type: str
    period_start: dt.date
    category: str | None
    action: str
    detection_method: str
    automated_decision: str
    content_type: str
    country: str | None
    item_count: int | None
    suppressed: bool
    median_hours_to_action: float | None
    overturned_count: int | None
    overturn_rate: float | None
    policy_version: str

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["pipeline_version"] = PIPELINE_VERSION
        return row


DEAD_LETTER = "dead_letter"
SKIPPED = "skipped"
MAX_PAYLOAD_CHARS = 64 * 1024


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An input that was not scored, with the step and the reason."""

    step: str
    disposition: str
    content_id: str | None
    reason: str  # stable code to count and alert on (`transforms.dead_letter.reason_of`)
    error_type: str
    error: str
    payload: str
    failed_at: dt.datetime
    message_id: str | None = None  # the Pub/Sub message, when it was turned away before parsing

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["payload"] = self.payload[:MAX_PAYLOAD_CHARS]
        row["pipeline_version"] = PIPELINE_VERSION
        return row


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One delivery of a Pub/Sub message to the streaming job: what its end-of-run account
    balances over the subscription's history (a replay after a crash delivers again)."""

    message_id: str
    subscription: str
    content_id: str | None
    published_at: dt.datetime
    received_at: dt.datetime
    size_bytes: int
    attempt: int

    def to_row(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "pipeline_version": PIPELINE_VERSION}
