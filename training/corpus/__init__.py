"""Deterministic generator of a labelled corpus of real-looking and synthetic media.

The corpus is made procedurally (nothing is downloaded) so detectors can be trained and tested
on a problem with a known answer:

* "real" items imitate camera captures: textured scenes with a face-like region, motion, lens
  blur and signal-dependent sensor noise; speech-like audio from a jittery glottal source
  through moving formants, a room and background noise; some music and ambience.
* "synthetic" items carry the traces of one generator family per modality (`FAMILIES`), with a
  strength drawn per item, so a family can be held out to test generalisation.
* Platform degradations (rescale, grain, recompression, codec choice) hit both classes alike,
  and metadata tells (EXIF, XMP, tags, resolution, account age) are only probabilistic.
  Recompression stays within what platforms ship (H.264 CRF 18-30, VP9 CRF 24-40, JPEG
  quality 65-96, AAC from 48 kbit/s, Opus from 24 kbit/s): harsher settings erase the traces
  outright, and an item whose evidence is gone teaches nothing and measures nothing.

Output in ``out_dir``: ``media/<content_id>.<ext>``, ``manifest.jsonl`` (upload events, as the
pipeline sees them) and ``labels.jsonl`` (ground truth, kept apart). Every item draws from its
own random stream, ``default_rng([seed, 0, index, purpose])``, so an item does not depend on
the others, on generation order or on how many processes make the media (``--workers``).

Usage: ``python -m training.corpus --out DIR --count N [--seed S] [--corrupt K] [--workers W]``

The package, by subject: `plans` (what each item is), `visual` and `audio` (rendering),
`containers` (files and their metadata), `generate` (the corpus), `cli` (the command line).
It is a development tool: workers never import it, and the package workers install leaves it
out (setup.py).
"""

from training.corpus.cli import main
from training.corpus.containers import write_audio, write_video
from training.corpus.generate import generate_corpus
from training.corpus.plans import ABSENT_SHARES, FAMILIES, PLATFORM_STRIPPED_SHARE, ItemPlan, account_pool, upload_event
from training.corpus.visual import render_image

__all__ = [
    "ABSENT_SHARES",
    "FAMILIES",
    "PLATFORM_STRIPPED_SHARE",
    "ItemPlan",
    "account_pool",
    "generate_corpus",
    "main",
    "render_image",
    "upload_event",
    "write_audio",
    "write_video",
]
