"""The metadata model's input vector, declared once: name, width and meaning of each field.

Offsets, the vector's length (`METADATA_DIM`), the module documentation and the checks are
all derived from `FIELDS`; `transforms.metadata.metadata_vector` fills the vector by name.

Optional event fields are often absent in real traffic, so every one of them that reaches the
vector has a `*_known` (or `*_present`/`*_stated`) slot beside its value: an absent field is a
value of its own, which the training corpus gives to real and synthetic items alike, never a
silent zero that reads as "false" or "brand-new account".
"""

from __future__ import annotations

from models.layout import Field, Layout

SOFTWARE_BUCKETS = 15  # hashed software family: 15 buckets plus one for "none stated"


FIELDS: tuple[Field, ...] = (
    Field("media_type", 3, "one-hot: video, image, audio"),
    Field("camera_exif", 1, "camera EXIF present (Make or Model)"),
    Field("exif_software", 1, "EXIF Software present"),
    Field("source_type_present", 1, "IPTC digital source type present (XMP or C2PA action)"),
    Field("source_type_ai", 1, "... says algorithmic/AI media"),
    Field("source_type_capture", 1, "... says a camera capture"),
    Field("c2pa_present", 1, "C2PA manifest present"),
    Field("c2pa_valid", 1, "C2PA manifest validates"),
    Field("declared_ai", 1, "the uploader declared the upload AI-generated"),
    Field("declared_ai_stated", 1, "the event answered the declared_ai question at all"),
    Field("log_width", 1, "log(1 + width) / 8"),
    Field("log_height", 1, "log(1 + height) / 8"),
    Field("aspect_ratio", 1, "long side / short side"),
    Field("square", 1, "square frame"),
    Field("multiple_of_64", 1, "both sides multiples of 64 (generator-typical)"),
    Field("log_duration", 1, "log(1 + seconds) / 5"),
    Field("log_bitrate", 1, "log(1 + bits per second) / 16"),
    Field("frame_rate", 1, "frames per second / 60, at most 4"),
    Field("software_family", SOFTWARE_BUCKETS + 1, "hashed encoder/software family, one-hot; last slot: none"),
    Field("account_present", 1, "the event carried an account object"),
    Field("log_account_age", 1, "log(1 + account age in days at upload) / 8; 0 when unknown"),
    Field("account_age_known", 1, "account.created_at stated"),
    Field("verified", 1, "account.verified is true"),
    Field("verified_known", 1, "account.verified stated"),
    Field("high_profile", 1, "account.high_profile is true"),
    Field("high_profile_known", 1, "account.high_profile stated"),
    Field("log_prior_strikes", 1, "log(1 + account.prior_strikes); 0 when unknown"),
    Field("prior_strikes_known", 1, "account.prior_strikes stated"),
    Field("video_has_audio", 1, "a video carries an audio track"),
    Field("capture_time_present", 1, "capture time present (EXIF DateTimeOriginal, container creation time)"),
    Field("capture_after_upload", 1, "capture time after the upload"),
    Field("capture_to_upload_hours", 1, "signed log hours from capture to upload / 10"),
    Field("capture_on_the_hour", 1, "capture time exactly on the hour"),
    Field("location_present", 1, "EXIF GPS or a container location tag"),
    Field("firmware_like_software", 1, 'software string looks like camera firmware ("Ver", "HDR+", a model code)'),
    Field(
        "software_string",
        SOFTWARE_BUCKETS,
        "hashed exact software string, version included, one-hot (all zero when none): the family slots "
        'group "Lavf58.76.100" with "Lavf60.16.100", these tell them apart',
    ),
    Field("generation_settings", 1, "generation settings embedded (PNG parameters/prompt/workflow, EXIF UserComment)"),
    Field(
        "file_metadata_present",
        1,
        "the file says anything about its origin (camera, software, capture time, location, XMP source type, "
        "C2PA, generation settings); 0 for a stripped file, as platforms and messengers leave most",
    ),
)


METADATA = Layout("metadata", FIELDS)
SLOTS: dict[str, slice] = METADATA.slots
METADATA_DIM: int = METADATA.dim
slot = METADATA.slot
signal_names = METADATA.signal_names
describe = METADATA.describe
