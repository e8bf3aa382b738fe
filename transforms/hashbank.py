"""A bank of perceptual hashes (PDQ) and audio fingerprints of known synthetic media, and
matching uploads against it.

PDQ (the hash Meta's Hasher-Matcher-Actioner and ThreatExchange use) survives re-encoding,
resizing and small edits: a re-upload of a known deepfake lands within a small Hamming
distance of its banked hash even when no detector would score it; a re-posted voice note
matches by its audio fingerprint (`transforms.audio_fingerprint`), PDQ being for pictures. A
match is a policy signal (`hash_match`), not a decision by itself.

Bank file: JSON Lines, one entry a line: {"pdq": "<64 hex digits>", "label": "...", ...}.
"""

from __future__ import annotations

import atexit
import bisect
import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from schemas.config import refuse_unknown
from schemas.records import MediaFeatures, ScoredMedia
from schemas.version import PIPELINE_VERSION
from transforms.audio_fingerprint import AudioIndex, unpack
from transforms.dead_letter import ParDoOrDeadLetter

# The threshold ThreatExchange uses for PDQ matches (of 256 bits).
DEFAULT_MAX_DISTANCE = 31
BANK_FIELDS = ("pdq", "label")  # one JSON object per line
# Frames PDQ rates below this quality (flat, featureless) hash unreliably and are skipped.
MIN_QUALITY = 50


# PDQ reduces a picture to 64x64 with its Jarosz tent filters; above this side it is hashed
# from an area-averaged copy (a 1080p frame costs a seventh as much, and the hash moves by a
# few bits of 256, far inside the match distance: tests/test_hashbank.py measures it).
PDQ_INPUT_SIDE = 512


def _pdq_input(frame: np.ndarray) -> np.ndarray:
    import cv2

    height, width = frame.shape[:2]
    if max(height, width) > PDQ_INPUT_SIDE:
        scale = PDQ_INPUT_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame)


def _hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_hash(frame: np.ndarray) -> tuple[str, int]:
    """The PDQ hash of an RGB frame as 64 hex digits, and PDQ's quality score (0-100)."""
    import pdqhash

    bits, quality = pdqhash.compute(_pdq_input(frame))
    return _hex(bits), int(quality)


# PDQ survives re-encoding, resizing and light edits, but neither a mirror image nor a crop of
# a few percent (benchmarks/pdq_robustness.py: 0 of 246 photographs either way). So each frame
# is hashed as it is, mirrored (PDQ's dihedral hashes come from the same transform: one
# computation), and as its central 90% and 80%: a re-upload cropped by up to about a tenth
# each side lands near one of them, since its own full frame is that central part.
CENTRAL_SHARES = (0.9, 0.8)
_MIRRORED = 5  # pdqhash's dihedral order: original, three rotations, then flips; this one is left-right


# The central parts cost a PDQ computation each: a video's first frames carry them, the rest
# only the hash as it is and mirrored (a re-posted clip is matched by any of its frames).
CENTRAL_FRAMES = 4


def frame_variant_hashes(frame: np.ndarray, central: bool = True) -> tuple[tuple[str, ...], int]:
    """A frame's hashes (as it is, mirrored, and with `central` its central parts) and the
    quality of the whole."""
    import pdqhash

    whole = _pdq_input(frame)
    dihedral, quality = pdqhash.compute_dihedral(whole)
    hashes = [_hex(dihedral[0]), _hex(dihedral[_MIRRORED])]
    height, width = whole.shape[:2]
    for share in CENTRAL_SHARES if central else ():
        dy, dx = round(height * (1 - share) / 2), round(width * (1 - share) / 2)
        bits, central_quality = pdqhash.compute(np.ascontiguousarray(whole[dy : height - dy, dx : width - dx]))
        if central_quality >= MIN_QUALITY:  # a flat middle hashes unreliably
            hashes.append(_hex(bits))
    return tuple(hashes), int(quality)


def frame_hashes(frames: list[np.ndarray]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Distinct hashes of the frames good enough to hash, each frame's variants
    (`frame_variant_hashes`) together, and the number of the frame each came from (the first
    that gave it): what matching a video as a sequence needs."""
    hashes: list[str] = []
    numbers: list[int] = []
    for number, frame in enumerate(frames):
        variants, quality = frame_variant_hashes(frame, central=number < CENTRAL_FRAMES)
        if quality >= MIN_QUALITY:
            for digest in variants:
                if digest not in hashes:
                    hashes.append(digest)
                    numbers.append(number)
    return tuple(hashes), tuple(numbers)


def hash_frames(hashes: Sequence[str], frames: Sequence[int] | None) -> tuple[int, ...]:
    """The frame each hash came from: `frames` when it gives one per hash, else 0 for every
    hash (a still, a hash file's entry, features written before frames were recorded)."""
    frames = tuple(frames or ())
    return frames if len(frames) == len(hashes) else (0,) * len(hashes)


# A video matches a banked video when at least this many of its frames match the entry's frames
# in the same order (fewer when either has fewer frames hashed): one shared frame (a title card,
# a logo, a black frame) does not make two videos copies of each other.
SEQUENCE_FRAMES = 2


def longest_chain(pairs: Iterable[tuple[int, int]]) -> int:
    """The most (upload frame, banked frame) pairs that increase in both at once: how many of an
    upload's frames match a banked item's frames in order. A longest strictly increasing
    subsequence: pairs by upload frame, and within one upload frame by banked frame descending
    (so two pairs of one upload frame never chain), then patience sorting on the banked frames."""
    tails: list[int] = []  # tails[k]: the smallest banked frame ending a chain of k + 1 pairs
    for _, banked in sorted(set(pairs), key=lambda pair: (pair[0], -pair[1])):
        at = bisect.bisect_left(tails, banked)
        tails[at : at + 1] = [banked]
    return len(tails)


def packed_hashes(hex_digests: Sequence[str]) -> np.ndarray:
    return np.frombuffer(bytes.fromhex("".join(hex_digests)), dtype=np.uint8).reshape(-1, 32)


# The bank's index: PDQ's 256 bits cut into 16 chunks of 16, each chunk a hash table (faiss's
# multi-index hashing, as Hasher-Matcher-Actioner's PDQ index does). Two hashes within 31 bits
# differ in at most one bit in some chunk (16 chunks, 31 bits), so probing each chunk's key and
# its 16 one-bit neighbours finds every banked hash within the match distance, exactly: a
# query costs about 270 bucket probes and the distance of what they hold, not a scan.
INDEX_CHUNKS, INDEX_CHUNK_BITS = 16, 16


def pdq_index(hashes: Sequence[str]):
    import faiss

    index = faiss.IndexBinaryMultiHash(256, INDEX_CHUNKS, INDEX_CHUNK_BITS)
    index.nflip = 1
    if hashes:
        index.add(packed_hashes(hashes))
    return index


@dataclasses.dataclass(frozen=True)
class HashBank:
    """Banked PDQ hashes with their labels, and banked audio fingerprints (packed, as
    `features.audio_fingerprint` holds them) with theirs."""

    hashes: tuple[str, ...]
    labels: tuple[str, ...]
    max_distance: int = DEFAULT_MAX_DISTANCE
    audio: tuple[tuple[str, bytes], ...] = ()  # (label, packed fingerprint)
    # Per hash: the banked item it belongs to and the number of its frame it came from (empty: each
    # hash an item of its own, one frame: a still, or a hash file's entry).
    items: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()

    @classmethod
    def load(cls, path: str | Path, max_distance: int = DEFAULT_MAX_DISTANCE) -> HashBank:
        """Reads a bank file.

        Raises:
            ValueError: a line is not JSON or its `pdq` is not 64 hex digits (line number named).
        """
        hashes, labels = [], []
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                digest = str(entry["pdq"]).lower()
                bytes.fromhex(digest)
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}:{number}: expected {{'pdq': <64 hex digits>, 'label': ...}}") from None
            refuse_unknown(entry, BANK_FIELDS, f"{path}:{number}: ")
            if len(digest) != 64:
                raise ValueError(f"{path}:{number}: pdq must be 64 hex digits, got {len(digest)}")
            hashes.append(digest)
            labels.append(str(entry.get("label", "known_synthetic")))
        return cls(tuple(hashes), tuple(labels), max_distance)

    @classmethod
    def of(cls, entries: Iterable[tuple]) -> HashBank | None:
        """A bank of (label, PDQ hashes, packed audio fingerprint or None[, the hashes' frame
        numbers]) entries, one banked item each, a hash held by several keeping the first;
        None when they hold no hash and no sound."""
        kept: dict[str, tuple[str, int, int]] = {}  # hash -> (label, item, frame)
        audio = []
        for item, (label, hashes, packed, *numbers) in enumerate(entries):
            hashes = tuple(hashes)
            for digest, frame in zip(hashes, hash_frames(hashes, numbers[0] if numbers else None)):
                kept.setdefault(digest, (label, item, frame))
            if packed:
                audio.append((label, packed))
        if not kept and not audio:
            return None
        values = list(kept.values())
        return cls(tuple(kept), tuple(v[0] for v in values), audio=tuple(audio),
                   items=tuple(v[1] for v in values), frames=tuple(v[2] for v in values))  # fmt: skip

    @staticmethod
    def combined(*banks: HashBank | None) -> HashBank | None:
        """One bank of the given ones' entries (None when there are none)."""
        present = [bank for bank in banks if bank is not None and (bank.hashes or bank.audio)]
        if not present:
            return None
        if len(present) == 1:
            return present[0]
        items, frames, offset = [], [], 0
        for bank in present:  # items numbered apart, bank after bank
            own = bank._item_of
            items += [offset + item for item in own]
            frames += bank._frame_of
            offset += max(own, default=-1) + 1
        return HashBank(tuple(h for bank in present for h in bank.hashes),
                        tuple(label for bank in present for label in bank.labels),
                        max(bank.max_distance for bank in present),
                        tuple(entry for bank in present for entry in bank.audio), tuple(items), tuple(frames))  # fmt: skip

    def __post_init__(self):
        if self.max_distance >= 2 * INDEX_CHUNKS:
            raise ValueError(f"max_distance {self.max_distance}: the index finds matches within "
                             f"{2 * INDEX_CHUNKS - 1} bits")  # fmt: skip

    @functools.cached_property
    def _index(self):
        return pdq_index(self.hashes)

    @functools.cached_property
    def _item_of(self) -> tuple[int, ...]:
        return self.items or tuple(range(len(self.hashes)))

    @functools.cached_property
    def _frame_of(self) -> tuple[int, ...]:
        return hash_frames(self.hashes, self.frames)

    @functools.cached_property
    def _frames_of_item(self) -> dict[int, int]:
        """How many distinct frames each banked item has hashes of."""
        seen: dict[int, set[int]] = {}
        for item, frame in zip(self._item_of, self._frame_of):
            seen.setdefault(item, set()).add(frame)
        return {item: len(frames) for item, frames in seen.items()}

    @functools.cached_property
    def _audio_index(self) -> AudioIndex:
        index = AudioIndex()
        for label, packed in self.audio:
            index.add(label, unpack(packed))
        return index

    def __getstate__(self):  # the indexes are built again where the bank is used, not shipped
        cached = ("_index", "_audio_index", "_item_of", "_frame_of", "_frames_of_item")
        return {key: value for key, value in self.__dict__.items() if key not in cached}

    def match_audio(self, packed: bytes | None) -> str | None:
        """The label of the banked recording the audio is a copy of (re-encoded, resampled,
        trimmed or louder or quieter: `transforms.audio_fingerprint`), else None."""
        if not packed or not self.audio:
            return None
        found = self._audio_index.match(unpack(packed))
        return str(found.entry) if found is not None else None

    def match(self, hashes: tuple[str, ...], frames: tuple[int, ...] = ()) -> tuple[str | None, int | None]:
        """The label of the banked item the upload's pictures copy, and the closest distance,
        else (None, None). A hash within `max_distance` of an item's is a match for a still;
        between videos (the hashes' frame numbers in `frames`), at least `SEQUENCE_FRAMES` of the
        upload's frames must match the item's frames in the same order. The longest run wins,
        then the closest, then the first banked."""
        if not hashes or not self.hashes:
            return None, None
        limits, distances, found = self._index.range_search(packed_hashes(hashes), self.max_distance + 1)
        if not len(found):
            return None, None
        frames = hash_frames(hashes, frames)
        runs: dict[int, list[tuple[int, int]]] = {}  # banked item -> (upload frame, banked frame)
        closest: dict[int, tuple[int, int]] = {}  # banked item -> (distance, entry)
        banked_frames, item_of = self._frame_of, self._item_of
        for query in range(len(hashes)):
            for distance, entry in zip(distances[limits[query] : limits[query + 1]].tolist(),
                                       found[limits[query] : limits[query + 1]].tolist()):  # fmt: skip
                item = item_of[entry]
                runs.setdefault(item, []).append((frames[query], banked_frames[entry]))
                closest[item] = min(closest.get(item, (distance, entry)), (distance, entry))
        upload_frames = len(set(frames))
        ranked = []
        for item, pairs in runs.items():
            chain = longest_chain(pairs)
            if chain >= min(SEQUENCE_FRAMES, upload_frames, self._frames_of_item[item]):
                ranked.append((-chain, *closest[item]))
        if not ranked:
            return None, None
        _, distance, entry = min(ranked)
        return self.labels[entry], int(distance)


class LiveBank:
    """A bank kept current while a job runs: `reload()` (the warehouse's bank, read again)
    every `every_s` seconds, combined with the fixed `bank` (a --hash_bank file). The first
    read is made before the first match; the next ones on a thread of their own, so matching
    never waits on a read, and a failed read keeps the last bank. One per process and `key`,
    shared by every DoFn instance (runners create and tear those down as they please); it
    stops with `stop_all` (the job's end) or when the process exits."""

    _live: ClassVar[dict[str, LiveBank]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, bank: HashBank | None, reload: Callable[[], HashBank | None], every_s: float):
        self._fixed, self._reload, self._every_s = bank, reload, every_s
        self.bank = bank
        self.read_at: float | None = None
        self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="bank-refresh", daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls, key: str, bank: HashBank | None, reload: Callable[[], HashBank | None],
               every_s: float) -> LiveBank:  # fmt: skip
        with cls._lock:
            if key not in cls._live:
                if not cls._live:
                    atexit.register(cls.stop_all)
                cls._live[key] = cls(bank, reload, every_s)
            return cls._live[key]

    @classmethod
    def stop_all(cls) -> None:
        with cls._lock:
            live, cls._live = list(cls._live.values()), {}
        for bank in live:
            bank._stop.set()
            bank._thread.join(timeout=60)  # a read under way finishes

    def _read(self) -> None:
        try:
            fresh = HashBank.combined(self._fixed, self._reload())
            if fresh != self.bank:  # an unchanged bank keeps its built index
                self.bank = fresh
            self.read_at = time.monotonic()
        except Exception as exc:  # a read that fails keeps the bank it had
            logging.warning("hash bank refresh failed, matching against the last bank read: %s", exc)

    def _refresh(self) -> None:
        while not self._stop.wait(self._every_s):
            self._read()


@dataclasses.dataclass(frozen=True)
class BankRefresh:
    """How a streaming job keeps its banks current: `reload` (picklable: the bank of confirmed
    violations) and `reload_suspended` (the media of suspended accounts) every `every_s`."""

    reload: Callable[[], HashBank | None]
    every_s: float
    key: str  # one live bank per process and key (the warehouse it reads)
    reload_suspended: Callable[[], HashBank | None] | None = None


def evasion_label(account_id: str, decision_id: str) -> str:
    return f"suspended:{account_id}:{decision_id}"


def evaded_account(label: str) -> str:
    return label.split(":")[1]


@dataclasses.dataclass(frozen=True)
class EvasionLink:
    """A scored upload whose media matches an upload of another, suspended account: a row of
    `evasion_links`, for review (never a suspension by itself)."""

    scored: ScoredMedia

    def to_row(self) -> dict:
        _, suspended, decision_id = self.scored.evasion_match.split(":", 2)
        event = self.scored.event
        return {
            "link_id": hashlib.sha256(f"{event.content_id}:{self.scored.evasion_match}".encode()).hexdigest()[:32],
            "content_id": event.content_id,
            "account_id": event.account_id,
            "suspended_account_id": suspended,
            "suspension_decision_id": decision_id,
            "uploaded_at": event.uploaded_at,
            "found_at": self.scored.scored_at,
            "pipeline_version": PIPELINE_VERSION,
        }


class _MatchDoFn(beam.DoFn):
    def __init__(self, bank: HashBank | None, refresh: BankRefresh | None = None, suspended: HashBank | None = None):
        self._bank, self._refresh, self._suspended = bank, refresh, suspended
        self._matches = Metrics.counter("hash_bank", "matches")
        self._evasions = Metrics.counter("hash_bank", "suspended_account_matches")
        self._live: LiveBank | None = None
        self._live_suspended: LiveBank | None = None

    def setup(self):
        refresh = self._refresh
        if refresh is not None:
            self._live = LiveBank.shared(refresh.key, self._bank, refresh.reload, refresh.every_s)
            if refresh.reload_suspended is not None:  # the accounts suspended since launch join it
                self._live_suspended = LiveBank.shared(f"{refresh.key} suspended", None, refresh.reload_suspended,
                                                       refresh.every_s)  # fmt: skip

    @staticmethod
    def _find(bank: HashBank | None, item: MediaFeatures) -> tuple[str | None, int | None]:
        """A picture's match first, then the sound's."""
        if bank is None:
            return None, None
        visual = item.visual
        label, distance = bank.match(visual.pdq_hashes, visual.pdq_frames) if visual is not None else (None, None)
        if label is None and item.audio is not None:
            label = bank.match_audio(item.audio.fingerprint)
        return label, distance

    def process(self, item: MediaFeatures):
        label, distance = self._find(self._live.bank if self._live is not None else self._bank, item)
        if label is not None:
            self._matches.inc()
        suspended = self._live_suspended.bank if self._live_suspended is not None else self._suspended
        evasion, _ = self._find(suspended, item)
        if evasion is not None and evaded_account(evasion) == item.event.account_id:
            evasion = None  # the suspended account's own upload: no other account to link
        if evasion is not None:
            self._evasions.inc()
        yield dataclasses.replace(item, hash_match=label, hash_distance=distance, evasion_match=evasion)


class MatchHashBank(beam.PTransform):
    """MediaFeatures -> MediaFeatures with `hash_match` set from the bank (kept current by
    `refresh`, when given) and `evasion_match` from the media of suspended accounts.

    Returns `(items, dead_letters)` (step `match_hash_bank`)."""

    def __init__(self, bank: HashBank | None, refresh: BankRefresh | None = None, suspended: HashBank | None = None):
        super().__init__()
        self._bank, self._refresh, self._suspended = bank, refresh, suspended

    def expand(self, items):
        match = _MatchDoFn(self._bank, self._refresh, self._suspended)
        return items | "Match" >> ParDoOrDeadLetter(match, step="match_hash_bank")
