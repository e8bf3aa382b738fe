"""What each corpus item will be: its label, families, strengths, container, upload event and
metadata, drawn from its own random stream; the labels and manifest rows written for it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy import special

from schemas.vocabulary import MEDIA_TYPES

FAMILIES: dict[str, tuple[str, ...]] = {
    # Generator-like upsampling (checkerboard / spectral peaks), face swap with a blending
    # boundary, and over-smooth diffusion-like images with a high-frequency deficit.
    "visual": ("upsample", "blend", "diffusion"),
    # Griffin-Lim magnitude-only resynthesis, neural-vocoder band limit with tonal/imaging
    # artifacts, and too-regular TTS prosody with a perfectly periodic, dry source.
    "audio": ("vocoder", "bandlimit", "tts"),
    # Generator toolchain tags and resolutions, forged camera EXIF, and declared AI.
    "metadata": ("toolchain", "spoofed", "declared"),
}


LABELS = ("real", "synthetic", "corrupt")


# Random-stream namespaces: [seed, namespace, index, purpose].
_ITEM_STREAM, _ACCOUNT_STREAM, _CORRUPT_STREAM = 0, 1, 2


_PLAN, _UPLOAD, _VISUAL, _AUDIO, _META, _ENCODE, _NOTICE, _ABSENCE, _STRIP = range(9)


# Share of uploads someone reports before the pipeline runs, (user report, trusted flagger):
# people spot some fakes, and report some real media too.
_NOTICE_RATES = {True: (0.10, 0.04), False: (0.03, 0.005)}


_WINDOW_START = datetime(2026, 10, 1, tzinfo=UTC)


_WINDOW_DAYS = 30


_ACCOUNT_POOL_SIZE = 400


_MEDIA_TYPE_WEIGHTS = (0.45, 0.30, 0.25)


_SYNTHETIC_SHARE = 0.5


# Which modality a synthetic video fakes: face swap only, voice clone only, or both.
_VIDEO_FAKE_MODES = (("visual", 0.40), ("audio", 0.25), ("both", 0.35))


# With the plain share below, about 15% of synthetic items end up declaring AI.
_METADATA_FAMILY_WEIGHTS = {"toolchain": 0.56, "spoofed": 0.28, "declared": 0.16}


# Share of synthetic items whose metadata looks like any real upload's (metadata_label 0).
_SYNTHETIC_PLAIN_METADATA = 0.2


# Share of uploads, real and synthetic alike, whose file reaches the platform with its metadata
# stripped (a forward from a messenger, a re-upload, a screen recording): no camera, software,
# capture time, location or provenance left, whatever the item is. The same share for both
# classes, so a bare file says nothing about the label by itself.
PLATFORM_STRIPPED_SHARE = 0.25


# Optional upload-event fields left out, for real and synthetic items alike (drawn from their own
# random stream, so no media byte changes). Real traffic arrives through ingestion paths that
# do not all join the same context: API and cross-posting uploads, backfills and messaging
# bridges send only the four required fields, some paths never ask the AI-disclosure question,
# and an account service time-out leaves single account fields out. A quarter of events carry
# no optional field at all (traffic tried on the shipped models had half), and every other
# field is missing from at least a tenth of the rest, so each absence is seen thousands of
# times in a 12000-item corpus, with both labels: absent is a value the models learn, not a
# region they never saw.
ABSENT_SHARES = {
    "all_optional": 0.25,
    "account": 0.20,
    "account.created_at": 0.10,
    "account.verified": 0.15,
    "account.high_profile": 0.15,
    "account.prior_strikes": 0.15,
    "declared_ai": 0.35,
    "media_type": 0.20,
    "surface": 0.10,
    "country": 0.15,
}


_CONTAINERS: dict[str, tuple[tuple[str, float, float], ...]] = {
    # (container, weight when real, weight when synthetic): overlapping, never decisive.
    "video": (("mp4", 0.8, 0.8), ("webm", 0.2, 0.2)),
    "image": (("jpeg", 0.5, 0.4), ("png", 0.15, 0.25), ("webp", 0.2, 0.2), ("gif", 0.15, 0.15)),
    "audio": (("wav", 0.2, 0.2), ("mp3", 0.25, 0.25), ("flac", 0.15, 0.15), ("ogg", 0.2, 0.2), ("m4a", 0.2, 0.2)),
}


_EXTENSIONS = {
    "mp4": "mp4", "webm": "webm", "jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif",
    "wav": "wav", "mp3": "mp3", "flac": "flac", "ogg": "ogg", "m4a": "m4a",
}  # fmt: skip


_SURFACES: dict[str, tuple[tuple[str, float, float], ...]] = {
    # (surface, weight when real, weight when synthetic)
    "video": (("feed", .35, .33), ("stories", .25, .22), ("live", .10, .07), ("messaging", .20, .20), ("ads", .10, .18)),
    "image": (("feed", .45, .42), ("stories", .20, .18), ("messaging", .25, .24), ("ads", .10, .16)),
    "audio": (("messaging", .55, .52), ("feed", .25, .25), ("live", .15, .13), ("ads", .05, .10)),
}  # fmt: skip


_COUNTRIES = ("US", "IN", "BR", "GB", "DE", "NG", "ID", "MX", "FR", "JP")


_COUNTRY_WEIGHTS = (0.25, 0.2, 0.12, 0.08, 0.07, 0.07, 0.08, 0.06, 0.04, 0.03)


_COUNTRY_CENTRES = {
    "US": (39.8, -98.6), "IN": (22.3, 79.0), "BR": (-14.2, -51.9), "GB": (52.4, -1.5), "DE": (51.2, 10.4),
    "NG": (9.1, 8.7), "ID": (-2.5, 118.0), "MX": (23.6, -102.6), "FR": (46.6, 2.2), "JP": (36.2, 138.3),
}  # fmt: skip


_CAMERAS = (
    ("Apple", "iPhone 13", "16.6.1"), ("Apple", "iPhone 14 Pro", "17.1.2"), ("Apple", "iPhone 15", "17.4"),
    ("samsung", "SM-S911B", "S911BXXS3BWK5"), ("samsung", "SM-A546E", "A546EXXU4BWK1"),
    ("Google", "Pixel 7", "HDR+ 1.0.540104767zd"), ("Google", "Pixel 8 Pro", "HDR+ 1.0.585235393zd"),
    ("Xiaomi", "2201117TG", "MIUI 14.0.4"), ("OnePlus", "CPH2449", "CPH2449_14.0.0.201"),
    ("Canon", "Canon EOS 90D", "Firmware Version 1.1.0"), ("SONY", "ILCE-7M3", "ILCE-7M3 v4.01"),
    ("NIKON CORPORATION", "NIKON Z 6_2", "Ver.1.40"), ("FUJIFILM", "X-T4", "Digital Camera X-T4 Ver2.01"),
)  # fmt: skip


# Software/encoder strings; the two lists overlap on purpose (editors serve both worlds).
_REAL_IMAGE_SOFTWARE = (
    "Adobe Photoshop Lightroom Classic 13.0",
    "Snapseed 2.0",
    "GIMP 2.10.36",
    "Instagram",
    "Picasa",
    "Adobe Photoshop 25.0 (Windows)",
    "Canva",
)


_SYNTH_IMAGE_SOFTWARE = (
    "diffusers 0.27.2",
    "ComfyUI",
    "stable-diffusion-webui",
    "Python PIL",
    "imageio",
    "OpenCV 4.9.0",
    "Adobe Photoshop 25.0 (Windows)",
    "GIMP 2.10.36",
    "Canva",
)


_REAL_AV_SOFTWARE = ("CapCut", "InShot 2.0", "Lavf60.16.100", "Voice Memos", "Recorder 3.2", "Audacity 3.4.2",
                     "WhatsApp", "HandBrake 1.7.2")  # fmt: skip


_SYNTH_AV_SOFTWARE = ("Lavf58.76.100", "CapCut", "imageio-ffmpeg", "OpenCV 4.9.0", "moviepy 1.0.3",
                      "ComfyUI VideoHelperSuite", "torchaudio 2.2", "Coqui TTS 0.22", "Audacity 3.4.2")  # fmt: skip


_IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"


# Vowel formant targets F1-F3 (Hz) and how open the mouth is for each.
_VOWEL_FORMANTS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410], [660, 1720, 2410]],
    dtype=np.float64,
)


_VOWEL_OPENNESS = np.array([1.0, 0.25, 0.3, 0.6, 0.7, 0.85])


_CONTROL_RATE = 200  # speech parameter tracks, per second


_SKIN_TONES = np.array(
    [[0.80, 0.58, 0.47], [0.68, 0.47, 0.36], [0.52, 0.35, 0.24], [0.36, 0.24, 0.16], [0.86, 0.70, 0.60]],
    dtype=np.float32,
)


# Standard-normal quantiles for 16-bit uniform indices: Gaussian noise for video frames at a
# fifth of the cost of Generator.standard_normal (tails clip at 4.3 sigma, irrelevant here).
_NORMAL_QUANTILES = special.ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)


_NORMAL_QUANTILES.flags.writeable = False


_CORRUPT_KINDS = ("truncated_mp4", "random_bytes_jpg", "empty_wav", "bad_header_wav", "truncated_webm")


@dataclass(frozen=True)
class Account:
    """An uploading account; attributes are fixed per account so repeat uploads agree."""

    account_id: str
    created_at: datetime
    verified: bool
    high_profile: bool
    prior_strikes: int
    home_country: str


@dataclass(frozen=True)
class ItemPlan:
    """The ground truth of one item: media type, container and generator family per modality."""

    index: int
    content_id: str
    media_type: str
    container: str
    visual_family: str | None
    audio_family: str | None
    metadata_family: str | None
    corrupt_kind: str | None = None
    stripped: bool = False  # the platform received the file with its metadata stripped

    @property
    def synthetic(self) -> bool:
        return self.visual_family is not None or self.audio_family is not None

    @property
    def label(self) -> str:
        if self.corrupt_kind:
            return "corrupt"
        return "synthetic" if self.synthetic else "real"


@dataclass(frozen=True)
class MetadataPlan:
    """Provenance-like metadata written into one file."""

    camera: tuple[str, str] | None  # (Make, Model)
    software: str | None
    capture_time: datetime | None  # DateTimeOriginal / creation_time
    location: str | None  # ISO 6709
    source_type: str | None  # IPTC digital source type code
    declared_ai: bool
    generator_shape: bool  # generator-typical resolution / frame rate / clip length


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _weighted_choice(rng: np.random.Generator, options: Iterable[tuple[str, float]]) -> str:
    names, weights = zip(*options)
    weights_array = np.asarray(weights, dtype=np.float64)
    return names[int(rng.choice(len(names), p=weights_array / weights_array.sum()))]


def _pick(names: tuple[str, ...], u: float) -> str | None:
    """Maps a uniform draw onto the allowed names, so restricting families reuses the draw."""
    return names[min(int(u * len(names)), len(names) - 1)] if names else None


def _allowed_families(families: Mapping[str, Iterable[str]] | Iterable[str] | None) -> dict[str, tuple[str, ...]]:
    if families is None:
        return dict(FAMILIES)
    known = {name for names in FAMILIES.values() for name in names}
    if isinstance(families, Mapping):
        unknown_modalities = set(families) - set(FAMILIES)
        if unknown_modalities:
            raise ValueError(f"unknown modalities {sorted(unknown_modalities)}; expected {sorted(FAMILIES)}")
        allowed = {}
        for modality, names in FAMILIES.items():
            requested = families.get(modality, names)
            requested = {requested} if isinstance(requested, str) else set(requested)
            if requested - set(names):
                raise ValueError(f"unknown {modality} families {sorted(requested - set(names))}; expected {names}")
            allowed[modality] = tuple(name for name in names if name in requested)
        return allowed
    requested = {families} if isinstance(families, str) else set(families)
    if requested - known:
        raise ValueError(f"unknown families {sorted(requested - known)}; expected some of {sorted(known)}")
    return {modality: tuple(n for n in names if n in requested) for modality, names in FAMILIES.items()}


def _plan_item(seed: int, index: int, allowed: Mapping[str, tuple[str, ...]]) -> ItemPlan:
    rng = _rng(seed, _ITEM_STREAM, index, _PLAN)
    media_type = MEDIA_TYPES[int(rng.choice(3, p=_MEDIA_TYPE_WEIGHTS))]
    wants_synthetic = rng.random() < _SYNTHETIC_SHARE
    video_mode = _weighted_choice(rng, _VIDEO_FAKE_MODES)
    # Draw every uniform whatever the outcome, so the stream stays aligned across restrictions.
    u_visual, u_audio, u_metadata, u_plain = rng.random(4)
    visual_family = audio_family = None
    if wants_synthetic:
        fake_visual = media_type == "image" or (media_type == "video" and video_mode in ("visual", "both"))
        fake_audio = media_type == "audio" or (media_type == "video" and video_mode in ("audio", "both"))
        visual_family = _pick(allowed["visual"], u_visual) if fake_visual else None
        audio_family = _pick(allowed["audio"], u_audio) if fake_audio else None
        if media_type == "video" and visual_family is None and audio_family is None:
            # The wanted modality is excluded; fake the other one rather than lose the item.
            visual_family = _pick(allowed["visual"], u_visual)
            audio_family = None if visual_family else _pick(allowed["audio"], u_audio)
    metadata_family = None
    if (visual_family or audio_family) and u_plain >= _SYNTHETIC_PLAIN_METADATA and allowed["metadata"]:
        names = allowed["metadata"]
        weights = np.array([_METADATA_FAMILY_WEIGHTS[n] for n in names])
        cumulative = np.cumsum(weights / weights.sum())
        metadata_family = names[min(int(np.searchsorted(cumulative, u_metadata, side="right")), len(names) - 1)]
    synthetic = bool(visual_family or audio_family)
    container = _weighted_choice(rng, ((c, ws if synthetic else wr) for c, wr, ws in _CONTAINERS[media_type]))
    # Its own stream, so stripping changed no earlier draw. A stripped file carries no family's
    # metadata tells (its metadata label is 0), whichever class it is.
    stripped = bool(_rng(seed, _ITEM_STREAM, index, _STRIP).random() < PLATFORM_STRIPPED_SHARE)
    if stripped:
        metadata_family = None
    return ItemPlan(
        index, f"c{index:06d}", media_type, container, visual_family, audio_family, metadata_family, stripped=stripped
    )


def _account_pool(seed: int) -> list[Account]:
    accounts = []
    for k in range(_ACCOUNT_POOL_SIZE):
        rng = _rng(seed, _ACCOUNT_STREAM, k)
        age_days = math.exp(rng.uniform(math.log(1.0), math.log(3650.0)))
        high_profile = rng.random() < 0.03
        accounts.append(
            Account(
                account_id=f"a{int(rng.integers(10**6, 10**7)):07d}{k:03d}",
                created_at=(_WINDOW_START + timedelta(days=20) - timedelta(days=age_days)).replace(microsecond=0),
                verified=bool(rng.random() < (0.85 if high_profile else 0.08)),
                high_profile=bool(high_profile),
                prior_strikes=int(rng.poisson(0.15) + (rng.random() < 0.05) * rng.integers(1, 4)),
                home_country=_COUNTRIES[int(rng.choice(len(_COUNTRIES), p=_COUNTRY_WEIGHTS))],
            )
        )
    return accounts


def _account_weights(accounts: list[Account]) -> tuple[np.ndarray, np.ndarray]:
    """Choice weights for real and synthetic uploads: synthetic ones lean to new accounts."""
    popularity = 1.0 / (np.arange(len(accounts)) + 3.0) ** 0.7
    reference = _WINDOW_START + timedelta(days=20)
    age_days = np.array([(reference - a.created_at).total_seconds() / 86400 for a in accounts])
    strikes = np.array([a.prior_strikes for a in accounts])
    synthetic = popularity * (1.0 + 1.5 * np.exp(-age_days / 60.0)) * (1.0 + 0.3 * strikes)
    return popularity / popularity.sum(), synthetic / synthetic.sum()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan_upload(
    seed: int, plan: ItemPlan, accounts: list[Account], weights: tuple[np.ndarray, np.ndarray]
) -> tuple[Account, datetime, str, str]:
    rng = _rng(seed, _ITEM_STREAM if plan.corrupt_kind is None else _CORRUPT_STREAM, plan.index, _UPLOAD)
    account = accounts[int(rng.choice(len(accounts), p=weights[1] if plan.synthetic else weights[0]))]
    start = max(_WINDOW_START, account.created_at + timedelta(hours=1))
    end = _WINDOW_START + timedelta(days=_WINDOW_DAYS)
    uploaded_at = (start + (end - start) * float(rng.random())).replace(microsecond=0)
    surfaces = ((s, ws if plan.synthetic else wr) for s, wr, ws in _SURFACES[plan.media_type])
    surface = _weighted_choice(rng, surfaces)
    country = account.home_country
    if rng.random() < 0.1:  # travelling or using a VPN
        country = _COUNTRIES[int(rng.choice(len(_COUNTRIES), p=_COUNTRY_WEIGHTS))]
    return account, uploaded_at, surface, country


# What notifiers allege about the uploads they report, by whether the upload is synthetic:
# (share, the notice's category and keyword).
_ALLEGED = {
    True: ((0.45, {"category": "STATEMENT_CATEGORY_CYBER_VIOLENCE", "keyword": "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"}),
           (0.2, {"category": "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
                  "keyword": "KEYWORD_MISINFORMATION_DISINFORMATION"}),
           (0.1, {"category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"}),
           (0.25, {})),
    False: ((0.2, {"category": "STATEMENT_CATEGORY_CYBER_VIOLENCE", "keyword": "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"}),
            (0.2, {"category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD", "keyword": "KEYWORD_IMPERSONATION_ACCOUNT_HIJACKING"}),
            (0.6, {})),
}  # fmt: skip


def _plan_notice(seed: int, plan: ItemPlan, uploaded_at: datetime) -> dict[str, str] | None:
    """A user report or trusted-flagger notice for some uploads (its own random stream, so
    adding notices changed no media)."""
    rng = _rng(seed, _ITEM_STREAM if plan.corrupt_kind is None else _CORRUPT_STREAM, plan.index, _NOTICE)
    user, flagger = _NOTICE_RATES[plan.synthetic]
    u = rng.random()
    if u >= user + flagger:
        return None
    received = uploaded_at + timedelta(hours=float(rng.uniform(0.2, 48.0)))
    notice = {
        "source": "user_report" if u < user else "trusted_flagger",
        "received_at": _rfc3339(received.replace(microsecond=0)),
    }
    # What the notifier alleges (drawn after the above, so earlier draws are unchanged): a
    # category and keyword, a category alone, or nothing (Annex II's "not specified").
    shares = _ALLEGED[plan.synthetic]
    pick = int(rng.choice(len(shares), p=[share for share, _ in shares]))
    notice.update(shares[pick][1])
    return notice


def _iso6709(rng: np.random.Generator, country: str) -> str:
    lat, lon = _COUNTRY_CENTRES[country]
    return f"{lat + rng.normal(0, 2):+08.4f}{lon + rng.normal(0, 3):+09.4f}/"


def _plan_metadata(seed: int, plan: ItemPlan, uploaded_at: datetime, country: str) -> MetadataPlan:
    """Probabilistic provenance: every tell also occurs, less often, on the other class."""
    rng = _rng(seed, _ITEM_STREAM, plan.index, _META)
    family = plan.metadata_family
    camera_entry = _CAMERAS[int(rng.integers(len(_CAMERAS)))]
    before_upload = uploaded_at - timedelta(seconds=float(rng.exponential(86400 * 5)) + 30)
    u = rng.random(8)
    camera = software = capture_time = location = source_type = None
    generator_shape = False
    declared = False
    if plan.stripped:
        # Nothing about the file's origin survives; only its shape (size, rate, length) does.
        generator_shape = u[6] < 0.08
        declared = u[7] < (0.03 if plan.synthetic else 0.015)
    elif family is None:
        # Real uploads, and synthetic ones laundered into ordinary-looking files.
        stripped = plan.synthetic or u[0] < 0.45  # platforms and messengers strip EXIF often
        if not stripped or (plan.synthetic and u[0] < 0.15):
            camera = camera_entry[:2]
            editors = _REAL_IMAGE_SOFTWARE if plan.media_type == "image" else _REAL_AV_SOFTWARE
            software = camera_entry[2] if u[1] < 0.7 else editors[int(rng.integers(len(editors)))]
            capture_time = before_upload
            if u[2] < 0.03:  # a camera whose clock was never set
                capture_time = datetime(2000, 1, 1, tzinfo=UTC) + (before_upload - _WINDOW_START)
        elif u[1] < 0.25:
            pool = _REAL_IMAGE_SOFTWARE if plan.media_type == "image" else _REAL_AV_SOFTWARE
            software = pool[int(rng.integers(len(pool)))]
        if plan.media_type != "image" and u[3] < 0.5:
            capture_time = capture_time or before_upload
        location = _iso6709(rng, country) if camera and u[4] < 0.35 else None
        if u[5] < 0.06:
            source_type = "digitalCapture"
        elif u[5] < 0.08:
            source_type = "compositeWithTrainedAlgorithmicMedia"  # a real photo with an AI edit
        generator_shape = u[6] < 0.08
        declared = u[7] < (0.03 if plan.synthetic else 0.015)
    elif family == "toolchain":
        pool = _SYNTH_IMAGE_SOFTWARE if plan.media_type == "image" else _SYNTH_AV_SOFTWARE
        software = pool[int(rng.integers(len(pool)))] if u[0] < 0.75 else None
        camera = camera_entry[:2] if u[1] < 0.05 else None
        capture_time = uploaded_at - timedelta(seconds=float(rng.exponential(3600))) if u[2] < 0.3 else None
        generator_shape = u[3] < 0.65
        declared = u[4] < 0.03
    elif family == "spoofed":
        # A forged camera identity whose details do not hang together.
        camera = camera_entry[:2] if u[0] < 0.9 else None
        pool = _SYNTH_IMAGE_SOFTWARE if plan.media_type == "image" else _SYNTH_AV_SOFTWARE
        software = pool[int(rng.integers(len(pool)))] if u[1] < 0.5 else camera_entry[2]
        if u[2] < 0.4:
            capture_time = None
        elif u[2] < 0.7:
            capture_time = uploaded_at + timedelta(days=float(rng.uniform(1, 400)))  # after the upload
        else:
            capture_time = before_upload.replace(minute=0, second=0)
        location = _iso6709(rng, _COUNTRIES[int(rng.integers(len(_COUNTRIES)))]) if u[3] < 0.2 else None
        generator_shape = u[4] < 0.4
    elif family == "declared":
        declared = True
        source_type = "trainedAlgorithmicMedia"
        pool = _SYNTH_IMAGE_SOFTWARE if plan.media_type == "image" else _SYNTH_AV_SOFTWARE
        software = pool[int(rng.integers(len(pool)))] if u[0] < 0.6 else None
        generator_shape = u[1] < 0.5
    return MetadataPlan(camera, software, capture_time, location, source_type, bool(declared), bool(generator_shape))


def _labels_row(plan: ItemPlan) -> dict[str, Any]:
    has_visual = plan.media_type in ("video", "image") and plan.corrupt_kind is None
    has_audio = plan.media_type in ("video", "audio") and plan.corrupt_kind is None
    return {
        "content_id": plan.content_id,
        "label": plan.label,
        "visual_label": int(plan.visual_family is not None) if has_visual else None,
        "audio_label": int(plan.audio_family is not None) if has_audio else None,
        "metadata_label": int(plan.metadata_family is not None),
        "families": {"visual": plan.visual_family, "audio": plan.audio_family, "metadata": plan.metadata_family},
        "media_type": plan.media_type,
        "container": plan.container,
        "file_metadata_stripped": plan.stripped,
        "source": "generator",
    }


def _absent_fields(seed: int, plan: ItemPlan) -> frozenset[str]:
    """Which optional event fields this upload's event leaves out (`ABSENT_SHARES`)."""
    rng = _rng(seed, _ITEM_STREAM if plan.corrupt_kind is None else _CORRUPT_STREAM, plan.index, _ABSENCE)
    draws = dict(zip(ABSENT_SHARES, rng.random(len(ABSENT_SHARES))))
    if draws.pop("all_optional") < ABSENT_SHARES["all_optional"]:
        return frozenset(ABSENT_SHARES) | {"notice"}
    return frozenset(name for name, u in draws.items() if u < ABSENT_SHARES[name])


def _without(row: dict[str, Any], absent: frozenset[str]) -> dict[str, Any]:
    """The manifest row with the absent optional fields left out (not nulled: left out)."""
    row = {k: v for k, v in row.items() if k not in absent}
    if "account" in row:
        account = {k: v for k, v in row["account"].items() if f"account.{k}" not in absent}
        if account:
            row["account"] = account
        else:
            del row["account"]
    return row


def _manifest_row(plan: ItemPlan, account: Account, uploaded_at: datetime, surface: str, country: str,
                  declared_ai: bool, notice: dict[str, str] | None, absent: frozenset[str]) -> dict[str, Any]:  # fmt: skip
    row = {
        "content_id": plan.content_id,
        "media_uri": f"media/{plan.content_id}.{_EXTENSIONS.get(plan.container, plan.container)}",
        "account_id": account.account_id,
        "uploaded_at": _rfc3339(uploaded_at),
        "media_type": plan.media_type,
        "surface": surface,
        "country": country,
        "declared_ai": declared_ai,
        "account": {
            "created_at": _rfc3339(account.created_at),
            "verified": account.verified,
            "high_profile": account.high_profile,
            "prior_strikes": account.prior_strikes,
        },
    }
    if notice is not None:
        row["notice"] = notice
    return _without(row, absent)


def account_pool(seed: int) -> tuple[list[Account], tuple[np.ndarray, np.ndarray]]:
    """The uploading accounts of a corpus and their choice weights (real, synthetic uploads)."""
    accounts = _account_pool(seed)
    return accounts, _account_weights(accounts)


def upload_event(
    seed: int, plan: ItemPlan, accounts: list[Account], weights: tuple[np.ndarray, np.ndarray], declared_ai: bool
) -> dict[str, Any]:
    """The manifest row of one item's upload: account, time, surface, country, notice, with the
    optional fields left out at `ABSENT_SHARES` (each from the item's own random streams)."""
    account, uploaded_at, surface, country = _plan_upload(seed, plan, accounts, weights)
    notice = _plan_notice(seed, plan, uploaded_at)
    return _manifest_row(plan, account, uploaded_at, surface, country, declared_ai, notice, _absent_fields(seed, plan))
