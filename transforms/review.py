"""The review loop as Beam transforms: contact sheets for the queue, verdicts applied once and
joined to their decisions, and the decision log (`enforcement.review` holds what they mean).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import window as beam_window

from enforcement.appeals import AppealOutcome
from enforcement.policy import Policy
from enforcement.review import (
    InvalidVerdict,
    LogEntry,
    ReviewItem,
    ReviewOutcome,
    Verdict,
    campaign_member_verdicts,
    campaign_review_item,
    decision_entry,
    verdict_consequences,
    verdict_entries,
    verdict_from_record,
)
from schemas.records import Decision
from schemas.vocabulary import SUSPEND_ACTION
from transforms.appeals import JoinToDecision, SkipRecorded, parse_record
from transforms.limits import MediaLimits
from transforms.parse import RawRow

CONTACT_SHEET_COLUMNS = 4
CONTACT_SHEET_TILE = 240  # pixels on the longer side of each frame's tile


def parse_verdict(row: RawRow) -> Verdict:
    """Validates one verdict row (see `enforcement.review.verdict_from_record`).

    Raises:
        InvalidVerdict: names the field and what was expected.
    """
    return parse_record(row, verdict_from_record, InvalidVerdict)


def contact_sheet(frames: list[np.ndarray]) -> bytes:
    """The frames side by side (up to `CONTACT_SHEET_COLUMNS` a row) as one PNG."""
    from PIL import Image

    tiles = []
    for frame in frames:
        tile = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
        tile.thumbnail((CONTACT_SHEET_TILE, CONTACT_SHEET_TILE))
        tiles.append(tile)
    columns = min(CONTACT_SHEET_COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    width, height = max(t.width for t in tiles), max(t.height for t in tiles)
    sheet = Image.new("RGB", (columns * width + (columns - 1) * 4, rows * height + (rows - 1) * 4), "white")
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * (width + 4), (index // columns) * (height + 4)))
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return out.getvalue()


def sampled_frames(media_uri: str, media_type: str, limits: MediaLimits) -> list[np.ndarray]:
    """The frames the visual detector reads, decoded again from the stored media."""
    from transforms.fetch import read_media
    from transforms.media import decode_image_frames, decode_video_frames, open_image
    from transforms.visual import MAX_FRAMES

    data = read_media(media_uri, limits)
    if media_type == "image":
        image = open_image(data, limits)
        return decode_image_frames(image, MAX_FRAMES) if image is not None else []
    return decode_video_frames(data, MAX_FRAMES, limits).frames


class _RenderContactSheet(beam.DoFn):
    """Adds a contact sheet (PNG of the sampled frames) to a visual item's queue row.

    A sheet that cannot be made (the media is gone, say) leaves the row without one, counted
    in `review/contact_sheet_failed`: the row itself is never held back for it.
    """

    def __init__(self, out_dir: str, limits: MediaLimits):
        self._out_dir, self._limits = out_dir, limits
        self._made = Metrics.counter("review", "contact_sheets")
        self._failed = Metrics.counter("review", "contact_sheet_failed")

    def process(self, item: ReviewItem):
        if item.media_type not in ("image", "video"):
            yield item
            return
        path = FileSystems.join(self._out_dir, f"{item.content_id}.png")
        try:
            png = contact_sheet(sampled_frames(item.media_uri, item.media_type, self._limits))
            with FileSystems.create(path) as out:
                out.write(png)
        except Exception:  # any failure leaves the row without a sheet, counted
            self._failed.inc()
            yield item
            return
        self._made.inc()
        yield dataclasses.replace(item, contact_sheet=path)


class RenderContactSheets(beam.PTransform):
    """ReviewItem -> ReviewItem with `contact_sheet` set for visual items (written to `out_dir`)."""

    def __init__(self, out_dir: str, limits: MediaLimits):
        super().__init__()
        self._out_dir, self._limits = out_dir, limits

    def expand(self, items):
        return items | "Render" >> beam.ParDo(_RenderContactSheet(self._out_dir, self._limits))


@dataclasses.dataclass(frozen=True)
class CampaignMembers:
    """What a verdict on a campaign is applied to: the decisions on its members."""

    campaign_id: str
    member_decisions: tuple[str, ...]


def _recorded_campaign(row) -> Iterable[CampaignMembers]:
    if row.get("member_decisions"):  # a row without them cannot take a verdict: it is unknown_campaign
        yield CampaignMembers(str(row["campaign_id"]), tuple(row["member_decisions"]))


def _found_campaign(campaign) -> CampaignMembers:
    return CampaignMembers(campaign.campaign_id, campaign.member_decisions)


def _largest(campaigns: Iterable[CampaignMembers]) -> CampaignMembers:
    return max(campaigns, key=lambda c: (len(c.member_decisions), c.member_decisions))


def _on_campaign(verdict: Verdict, partitions: int) -> int:
    return int(verdict.campaign_id is not None)


def _member_verdicts(verdict: Verdict, campaign: CampaignMembers) -> list[Verdict]:
    return campaign_member_verdicts(verdict, campaign.member_decisions)


# What reconciliation adds to the verdict rows read: each verdict on a campaign is one row read
# and as many verdicts applied, dead-lettered or skipped as the campaign has members.
CAMPAIGN_MEMBER_VERDICTS = "verdicts_for_campaign_members"


def _each(items: list) -> list:
    Metrics.counter("reconcile", CAMPAIGN_MEMBER_VERDICTS).inc(len(items) - 1)
    return items


class ExpandCampaignVerdicts(beam.PTransform):
    """{"verdicts": Verdict, "campaigns": this run's Campaigns, "recorded": earlier `campaigns`
    rows} -> (verdicts each on one decision, dead letters): a verdict naming a campaign becomes
    one verdict per member (`campaign_member_verdicts`); one naming a campaign the warehouse does
    not hold is dead-lettered (`unknown_campaign`). A campaign found in several panes (a late
    member makes a streaming window fire again) is applied as its largest."""

    def __init__(self, streaming: bool = False):
        super().__init__()
        self._streaming = streaming

    def expand(self, inputs):
        on_item, on_campaign = inputs["verdicts"] | "ItemOrCampaign" >> beam.Partition(_on_campaign, 2)
        known = (
            inputs["recorded"] | "RecordedCampaigns" >> beam.FlatMap(_recorded_campaign),
            inputs["campaigns"] | "FoundCampaigns" >> beam.Map(_found_campaign),
        ) | "Campaigns" >> beam.Flatten()
        expanded, unknown = {"items": on_campaign, "decisions": known} | "JoinCampaigns" >> JoinToDecision(
            _member_verdicts, "apply_verdicts", self._streaming, key="campaign_id", what="campaign", prefer=_largest
        )
        members = expanded | "EachMember" >> beam.FlatMap(_each)
        return (on_item, members) | "EveryVerdict" >> beam.Flatten(), unknown


def campaign_review_items(campaigns: beam.PCollection, policy: Policy) -> beam.PCollection:
    """Each campaign's one review item, in the global window beside the other queue rows."""
    return (
        campaigns
        | "CampaignReviewItems" >> beam.Map(campaign_review_item, policy)
        | "QueueWindow" >> beam.WindowInto(beam_window.GlobalWindows())
    )


def _review_id(verdict: Verdict) -> str:
    return verdict.review_id


def _verdict_outputs(outcome: ReviewOutcome, policy: Policy):
    done = verdict_consequences(outcome, policy)
    yield beam.pvalue.TaggedOutput("decisions", done.decision)
    if done.acts:
        yield beam.pvalue.TaggedOutput("acting", done.decision)
    for event in done.events:
        yield beam.pvalue.TaggedOutput("events", event)
    if done.strike_reversal is not None:
        yield beam.pvalue.TaggedOutput("strike_reversals", done.strike_reversal)
    yield beam.pvalue.TaggedOutput("labels", done.label)
    for entry in verdict_entries(outcome, done):
        yield beam.pvalue.TaggedOutput("log", entry)
    yield outcome


class ApplyVerdicts(beam.PTransform):
    """{"verdicts": Verdict, "recorded": `reviews` rows, "decisions": Decision} -> a dict of
    outcomes (`reviews` rows), the verdicts' decisions, those that act (strikes), events,
    strike reversals, retraining labels, decision-log entries, skipped repeats and dead letters
    (verdicts for decisions the warehouse does not hold)."""

    def __init__(self, policy: Policy, streaming: bool = False):
        super().__init__()
        self._policy, self._streaming = policy, streaming

    def expand(self, inputs):
        verdicts, repeated = {"items": inputs["verdicts"], "recorded": inputs["recorded"]} | "SkipRecorded" >> (
            SkipRecorded(_review_id, Verdict.to_json, "review_id", "verdict", "dedupe_verdicts", self._streaming)
        )
        outcomes, unknown = {"items": verdicts, "decisions": inputs["decisions"]} | "JoinDecisions" >> JoinToDecision(
            ReviewOutcome, "apply_verdicts", self._streaming
        )
        split = outcomes | "Consequences" >> beam.FlatMap(_verdict_outputs, self._policy).with_outputs(
            "decisions", "acting", "events", "strike_reversals", "labels", "log", main="outcomes"
        )
        return {
            "outcomes": split.outcomes,
            "decisions": split.decisions,
            "acting": split.acting,
            "events": split.events,
            "strike_reversals": split.strike_reversals,
            "labels": split.labels,
            "log": split.log,
            "skipped": repeated,
            "dead_letters": unknown,
        }


def _decision_log_entries(decision: Decision):
    if decision.supersedes is not None:
        return  # a reviewer's verdict: logged with its verdict (`verdict_entries`)
    yield decision_entry(decision, "account_suspension" if decision.action == SUSPEND_ACTION else "automated_decision")


def _appeal_log_entry(outcome: AppealOutcome) -> LogEntry:
    decision, appeal = outcome.decision, outcome.appeal
    return decision_entry(decision, f"appeal_{appeal.outcome}", decision.action, "appeal", None, appeal.decided_at)


class LogDecisions(beam.PTransform):
    """Decision -> LogEntry: every change of an item's or account's state, for the
    `decision_log` table, with the appeal outcomes' (`appeals`) and the verdicts' entries
    (`verdict_entries`, from `ApplyVerdicts`; a verdict's decision is logged by those)."""

    def __init__(self, appeals: beam.PCollection | None = None, verdict_entries: list[beam.PCollection] = ()):
        super().__init__()
        self._appeals, self._verdict_entries = appeals, list(verdict_entries)

    def expand(self, decisions):
        entries = [decisions | "Decisions" >> beam.FlatMap(_decision_log_entries)]
        if self._appeals is not None:
            entries.append(self._appeals | "Appeals" >> beam.Map(_appeal_log_entry))
        return (*entries, *self._verdict_entries) | "All" >> beam.Flatten()


def _keyed_question(item: ReviewItem, policy: Policy) -> tuple[ReviewItem, tuple[str, str]]:
    """The item as its own key, with what the model is asked: its evidence and its category's text."""
    return item, (item.evidence, policy.category_text(item.category))


def _with_opinion(keyed) -> ReviewItem:
    item, result = keyed
    opinion = result.inference
    return dataclasses.replace(item, second_opinion=opinion.probability,
                               second_opinion_rationale=opinion.rationale, second_opinion_model=opinion.model)  # fmt: skip


def _without_opinion(failure) -> Iterable[ReviewItem]:
    """A batch the second opinion failed on: its items are queued without one, counted."""
    batch, _ = failure
    for item, _question_asked in batch:
        Metrics.counter("review", "second_opinion_failed").inc()
        yield item


class ConsultSecondOpinion(beam.PTransform):
    """ReviewItem -> ReviewItem with the second-opinion model's probability, rationale and name
    (`models.second_opinion`), through RunInference, batched (on the accelerator workers with
    `accelerator`). An item the model fails on is queued without an opinion, never held back."""

    def __init__(self, model_uri: str, policy: Policy, accelerator: str | None = None):
        super().__init__()
        from apache_beam.ml.inference.base import KeyedModelHandler

        from models.second_opinion import SecondOpinionHandler

        self._handler = KeyedModelHandler(SecondOpinionHandler(model_uri))
        self._policy, self._accelerator = policy, accelerator

    def expand(self, items):
        from apache_beam.ml.inference.base import RunInference

        inference = RunInference(self._handler).with_exception_handling()
        if self._accelerator:
            inference = inference.with_resource_hints(accelerator=self._accelerator)
        answered, errors = items | "Ask" >> beam.Map(_keyed_question, policy=self._policy) | "RunInference" >> inference
        unanswered = errors.failed_inferences | "QueueWithout" >> beam.FlatMap(_without_opinion)
        return (answered | "Attach" >> beam.Map(_with_opinion), unanswered) | "All" >> beam.Flatten()
