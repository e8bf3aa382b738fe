"""Campaigns: uploads whose media match each other (pictures by PDQ, sound by the audio
fingerprint) within one event-time window, across distinct accounts.

Deepfake abuse at scale is rarely one upload: the same synthetic clip re-posted by twenty new
accounts in an hour is one campaign, not twenty unrelated decisions. `find_campaigns` links
every pair of a window's uploads whose media match (the bank's own thresholds: PDQ within 31
bits, audio under the fingerprint's bit error rate), takes the linked groups (connected
components, so A~B and B~C put A, B and C together), and keeps the groups the policy's
`campaigns` section calls a campaign (at least `min_members` uploads from at least
`min_accounts` accounts). Fixed event-time windows make batch and streaming agree: the same
uploads in the same window give the same campaign, whenever they arrive.

`find_campaigns` is plain Python over the members' hashes and fingerprints; `FindCampaigns`
is the jobs' transform: members timestamped by upload time, fixed windows, one group a window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.transforms import trigger
from apache_beam.transforms import window as beam_window

from enforcement.ids import content_decision_id, stable_id
from schemas.records import MediaFeatures
from schemas.version import PIPELINE_VERSION
from transforms.audio_fingerprint import AudioIndex, unpack
from transforms.hashbank import (
    DEFAULT_MAX_DISTANCE,
    SEQUENCE_FRAMES,
    hash_frames,
    longest_chain,
    packed_hashes,
    pdq_index,
)

# PDQ hashes a member's frames may bring; a video's first ones stand for it.
MAX_HASHES_PER_MEMBER = 16


@dataclasses.dataclass(frozen=True)
class Member:
    """One upload as campaign detection sees it."""

    content_id: str
    account_id: str
    uploaded_at: dt.datetime
    pdq_hashes: tuple[str, ...] = ()
    audio_fingerprint: bytes | None = None
    evidence: float = 0.0  # the strongest content evidence of the upload (score, or 1.0 for a bank match)
    media_uri: str = ""
    media_type: str = ""
    pdq_frames: tuple[int, ...] = ()  # the frame each hash came from (a video is matched as a sequence)


@dataclasses.dataclass(frozen=True)
class Campaign:
    campaign_id: str
    window_start: dt.datetime
    members: tuple[str, ...]  # content ids, by upload time
    accounts: tuple[str, ...]
    first_seen: dt.datetime
    last_seen: dt.datetime
    strongest: Member  # the member with the strongest evidence (what the campaign's review item shows)
    links: int  # matching pairs found among the members
    # The policy whose decisions on the members the campaign's one review covers, and those decisions.
    policy_id: str = ""
    policy_version: str = ""
    member_decisions: tuple[str, ...] = ()

    @property
    def strongest_member(self) -> str:
        return self.strongest.content_id

    @property
    def strongest_evidence(self) -> float:
        return self.strongest.evidence

    @property
    def review_id(self) -> str:
        """The campaign's one review item: a verdict on it applies to every member."""
        return stable_id(self.campaign_id, "review")

    def to_row(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "review_id": self.review_id,
            "window_start": self.window_start,
            "members": list(self.members),
            "member_count": len(self.members),
            "accounts": list(self.accounts),
            "account_count": len(self.accounts),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "strongest_member": self.strongest_member,
            "strongest_evidence": self.strongest_evidence,
            "links": self.links,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "member_decisions": list(self.member_decisions),
            "found_at": dt.datetime.now(dt.UTC),
            "pipeline_version": PIPELINE_VERSION,
        }


def member_of(features: MediaFeatures) -> Member:
    """An upload's features as campaign detection sees them: its hashes, its sound, and a bank
    match as its evidence."""
    event = features.event
    return Member(event.content_id, event.account_id, event.uploaded_at,
                  features.visual.pdq_hashes if features.visual is not None else (),
                  features.audio.fingerprint if features.audio is not None else None,
                  1.0 if features.hash_match else 0.0, event.media_uri, features.info.media_type,
                  features.visual.pdq_frames if features.visual is not None else ())  # fmt: skip


def _frames(member: Member) -> tuple[int, ...]:
    return hash_frames(member.pdq_hashes, member.pdq_frames)[:MAX_HASHES_PER_MEMBER]


def _links(members: Sequence[Member], max_distance: int) -> set[tuple[int, int]]:
    """Every pair of members (i < j) whose pictures (two videos: as a sequence of frames,
    `transforms.hashbank.longest_chain`) or sound match."""
    pairs: set[tuple[int, int]] = set()
    owners, hashes, frames = [], [], []
    for number, member in enumerate(members):
        for digest, frame in zip(member.pdq_hashes[:MAX_HASHES_PER_MEMBER], _frames(member)):
            owners.append(number)
            hashes.append(digest)
            frames.append(frame)
    if hashes:
        index = pdq_index(hashes)
        limits, _, found = index.range_search(packed_hashes(hashes), max_distance + 1)
        matched: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (a, b) -> (a's frame, b's frame)
        for query, owner in enumerate(owners):
            for entry in found[limits[query] : limits[query + 1]].tolist():
                other = owners[entry]
                if owner < other:
                    matched.setdefault((owner, other), []).append((frames[query], frames[entry]))
        counts = [len(set(_frames(member))) for member in members]
        for (a, b), frame_pairs in matched.items():
            if longest_chain(frame_pairs) >= min(SEQUENCE_FRAMES, counts[a], counts[b]):
                pairs.add((a, b))
    prints = AudioIndex()
    numbered = [(n, unpack(m.audio_fingerprint)) for n, m in enumerate(members) if m.audio_fingerprint]
    for number, fingerprint in numbered:
        prints.add(number, fingerprint)
    for number, fingerprint in numbered:
        for match in prints.matches(fingerprint, candidates=len(numbered) + 8):
            if match.entry != number:
                pairs.add((min(number, match.entry), max(number, match.entry)))
    return pairs


def _components(count: int, pairs: set[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in sorted(pairs):
        parent[max(root(a), root(b))] = min(root(a), root(b))
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def find_campaigns(members: Sequence[Member], window_start: dt.datetime, min_members: int, min_accounts: int,
                   max_distance: int = DEFAULT_MAX_DISTANCE, decided_under: tuple[str, str] = ("", "")) -> list[Campaign]:  # fmt: skip
    """The campaigns among one window's uploads, largest first. The result does not depend on
    the members' order (a member's id, time and account decide everything). `decided_under`
    (policy id, version): the policy whose decisions on the members the campaign's review covers."""
    ordered = sorted(members, key=lambda m: (m.uploaded_at, m.content_id))
    pairs = _links(ordered, max_distance)
    campaigns = []
    for group in _components(len(ordered), pairs):
        chosen = [ordered[i] for i in group]
        accounts = sorted({m.account_id for m in chosen})
        if len(chosen) < min_members or len(accounts) < min_accounts:
            continue
        strongest = max(chosen, key=lambda m: (m.evidence, -m.uploaded_at.timestamp(), m.content_id))
        ids = tuple(m.content_id for m in chosen)
        key = f"{window_start.isoformat()}:{min(ids)}"
        campaigns.append(Campaign(
            hashlib.sha256(key.encode()).hexdigest()[:32], window_start, ids, tuple(accounts),
            chosen[0].uploaded_at, chosen[-1].uploaded_at, strongest,
            sum(1 for a, b in pairs if a in group and b in group), *decided_under,
            tuple(content_decision_id(i, *decided_under) for i in ids) if all(decided_under) else (),
        ))  # fmt: skip
    return sorted(campaigns, key=lambda c: (-len(c.members), c.campaign_id))


class _Cluster(beam.DoFn):
    def __init__(self, min_members: int, min_accounts: int, decided_under: tuple[str, str]):
        self._min_members, self._min_accounts, self._decided_under = min_members, min_accounts, decided_under

    def process(self, keyed, window=beam.DoFn.WindowParam):
        _, members = keyed
        start = window.start.to_utc_datetime().replace(tzinfo=dt.UTC)
        yield from find_campaigns(list(members), start, self._min_members, self._min_accounts,
                                  decided_under=self._decided_under)  # fmt: skip


class FindCampaigns(beam.PTransform):
    """Member -> Campaign, per fixed event-time window of `window_s` seconds (the upload
    times'): batch groups each window whole; streaming groups it when the watermark passes its
    end (and again, in a later pane, for members within `allowed_lateness_s`), so both give
    the same campaigns for the same uploads.

    One group per window is what this scale needs (the index makes a window's linking linear
    in its members); a platform's hourly millions would first be keyed by PDQ chunk and
    fingerprint word to find candidate pairs in parallel.
    """

    def __init__(self, window_s: float, min_members: int, min_accounts: int, allowed_lateness_s: float = 0,
                 decided_under: tuple[str, str] = ("", "")):  # fmt: skip
        super().__init__()
        self._window_s, self._lateness_s = window_s, allowed_lateness_s
        self._min_members, self._min_accounts, self._decided_under = min_members, min_accounts, decided_under

    def expand(self, members):
        return (
            members
            | "AtUploadTime" >> beam.Map(lambda m: beam_window.TimestampedValue(m, m.uploaded_at.timestamp()))
            | "Windows"
            >> beam.WindowInto(
                beam_window.FixedWindows(self._window_s),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,  # a late pane is the whole window again
                allowed_lateness=self._lateness_s,
            )
            | "OneGroupAWindow" >> beam.Map(lambda m: ("window", m))
            | "GroupWindow" >> beam.GroupByKey()
            | "Cluster" >> beam.ParDo(_Cluster(self._min_members, self._min_accounts, self._decided_under))
        )


def member_share_linked(campaigns: Sequence[Campaign], expected: Sequence[str]) -> float:
    """The share of `expected` content ids that landed in one campaign together (the largest
    share any one campaign holds): a campaign's recall."""
    wanted = set(expected)
    if not wanted:
        return 0.0
    return float(np.max([len(wanted & set(c.members)) for c in campaigns], initial=0)) / len(wanted)
