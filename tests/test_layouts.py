"""The hand-made signal layouts: declared once, packed by name, checked for real."""

from __future__ import annotations

import numpy as np
import pytest

from models.audio_layout import AUDIO
from models.layout import Field, Layout, LayoutError
from models.metadata_layout import METADATA
from models.signature import AUDIO_HANDCRAFTED_DIM, METADATA_DIM, VISUAL_HANDCRAFTED_DIM
from models.visual_layout import FRAME, VISUAL

SMALL = Layout("small", (Field("a", 2, "two"), Field("b", 1, "one"), Field("c", 3, "three")))


def test_the_served_signature_widths_are_the_layouts():
    assert (VISUAL.dim, AUDIO.dim, METADATA.dim) == (VISUAL_HANDCRAFTED_DIM, AUDIO_HANDCRAFTED_DIM, METADATA_DIM)
    for layout in (VISUAL, AUDIO, METADATA):
        names = layout.signal_names()
        assert len(names) == layout.dim and len(set(names)) == layout.dim


def test_the_per_frame_signals_open_the_visual_vector():
    assert [f.name for f in VISUAL.fields[: len(FRAME.fields)]] == [f.name for f in FRAME.fields]
    assert FRAME.slot("residual_std") == VISUAL.slot("residual_std")


def test_pack_places_runs_by_name():
    vector = SMALL.pack({"a": [1, 2, 3], "c": [4, 5, 6]})  # the run at "a" covers a and b
    assert vector.tolist() == [1, 2, 3, 4, 5, 6]
    assert vector[SMALL.slot("b")] == 3 and vector[SMALL.slots["c"]].tolist() == [4, 5, 6]


@pytest.mark.parametrize(
    "runs, message",
    [
        ({"a": [1, 2], "c": [4, 5, 6]}, "run 'a' has 2 values, the layout 3"),
        ({"b": [1], "c": [1, 2, 3]}, "starts at 2"),
        ({"a": [1, 2, 3]}, "has 3 values, the layout 6"),
        ({"c": [4, 5, 6], "a": [1, 2, 3]}, "out of order"),
        ({"a": [1, 2, float("nan")], "c": [4, float("inf"), 6]}, r"not finite: b, c\[1\]"),
    ],
)
def test_a_run_that_does_not_fit_is_an_error_not_an_assert(runs, message):
    with pytest.raises(LayoutError, match=message):
        SMALL.pack(runs)


def test_a_layout_refuses_a_name_twice():
    with pytest.raises(LayoutError, match="declared twice"):
        Layout("bad", (Field("a", 1, ""), Field("a", 1, "")))


def test_the_description_names_every_field_with_its_offsets():
    text = VISUAL.describe()
    assert "60-176  spam_whole" in text and "255  face_wobble " in text
    assert np.all([f.name in text for f in VISUAL.fields])
