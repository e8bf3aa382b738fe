"""The served models on a handful of the visual held-out set, through the real job.

Packaged GAN output (MobileStyleGAN faces of the `random_face` wheel, as the generator writes
them) against real photographs of people and real face crops from packages never trained on
(`group_photos`, `people_elsewhere`, `face_chips`), all fetched into the source cache once
(`make test-media`) and the faces generated there once. Evaluation only: nothing here trains,
tunes or chooses a threshold.

What each class gets is checked in two parts: what must hold of any served set (every item
scored and decided under the shipped policy, no full-size real photograph removed), and the
bar set for the visual detector (half the GAN faces acted on, no real picture removed or
sent to review), which the served set does not meet yet and is marked so: when a served set
meets it, the strict mark fails the suite until it is taken off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.image_synthesis import ImageRequest, generate
from training.sources import BY_NAME, fetch_all, media_files

from .conftest import query_warehouse, run_batch_on_files

CACHE = Path("data/sources")
POLICY = "policies/synthetic_media_v1.yaml"
UPLOADED = "2026-11-02T12:00:00Z"
FACES = 4  # MobileStyleGAN stills, seeds 0..3
ACTED_ON = ("human_review", "remove")


def _gan_faces() -> list[Path]:
    """The handful of generated faces, made once into the cache."""
    folder = CACHE / "generated" / "random_face_handful"
    made = sorted(folder.glob("*.png"))
    if len(made) != FACES:
        for stale in made:
            stale.unlink()
        made = [frames[0] for frames in generate(BY_NAME["random_face"], CACHE,
                                                 [ImageRequest(seed=s) for s in range(FACES)], folder)]  # fmt: skip
    return made


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    sources = [BY_NAME[n] for n in ("random_face", "group_photos", "people_elsewhere", "face_chips")]
    fetch_all(sources, CACHE)
    real = {
        "photo": media_files(BY_NAME["group_photos"], CACHE)[:3] + media_files(BY_NAME["people_elsewhere"], CACHE)[:3],
        "face_chip": media_files(BY_NAME["face_chips"], CACHE)[::11][:3],  # one crop of each of three men
    }
    kinds = {f"gan-{i}": ("synthetic", "gan_face", path) for i, path in enumerate(_gan_faces())}
    kinds |= {f"{kind}-{i}": ("real", kind, path) for kind, paths in real.items() for i, path in enumerate(paths)}
    events = [{"content_id": cid, "media_uri": str(path.resolve()), "account_id": f"acct-{cid}",
               "uploaded_at": UPLOADED} for cid, (_, _, path) in kinds.items()]  # fmt: skip
    warehouse = run_batch_on_files(tmp_path_factory.mktemp("visual_held_out"), events, "--policy", POLICY)
    rows = query_warehouse(warehouse, "select s.content_id, s.visual_score, d.action from media_scores s "
                                      "join enforcement_decisions d using (content_id)")  # fmt: skip
    return {"kinds": kinds, "decided": {cid: (visual, action) for cid, visual, action in rows}}


def _actions(job, label: str, kind: str | None = None) -> list[str]:
    return [job["decided"][cid][1] for cid, (lab, k, _) in job["kinds"].items() if lab == label and kind in (None, k)]


def test_every_gan_face_and_real_picture_is_scored_and_decided(job):
    assert set(job["decided"]) == set(job["kinds"])
    assert all(visual is not None for visual, _ in job["decided"].values()), job["decided"]


def test_no_full_size_real_photograph_of_people_is_removed(job):
    assert "remove" not in _actions(job, "real", "photo"), job["decided"]


@pytest.mark.xfail(
    strict=True,
    reason="the bar set for the visual detector on neural generators: the served visual model ranks "
    "MobileStyleGAN faces below real photographs (reports/heldout_visual_outcomes_f10.json)",
)
def test_half_the_gan_faces_are_acted_on_and_no_real_picture_is_removed_or_reviewed(job):
    faces = _actions(job, "synthetic")
    assert sum(a in ACTED_ON for a in faces) >= len(faces) / 2, job["decided"]
    assert not [a for a in _actions(job, "real") if a in ACTED_ON], job["decided"]
