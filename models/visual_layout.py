"""The visual model's hand-made signals (`handcrafted`), declared once: name, width, meaning.

    python -m models.visual_layout      # prints the table with its offsets

`transforms.visual.visual_features` packs the vector by these names (`VISUAL.pack`); the
offsets, the length (`VISUAL_HANDCRAFTED_DIM`) and the names in model cards come from here.
Per-frame signals are averaged over the sampled frames; face signals over the frames with a
face (0 without one). Zones around a face are in half box sides from its centre: inside
(within 0.55), the band where a pasted face's edge sits (0.55-0.9), around (0.9-1.6).
"""

from __future__ import annotations

from models.layout import Field, Layout

# Per frame (`transforms.visual.frame_signals`), in this order.
FRAME_FIELDS = (
    Field("spectrum", 12, "radial log power spectrum, 12 bands from low to high frequency, mean-removed"),
    Field("spectral_peak", 1, "max/median power in the high band (periodic upsampling grids)"),
    Field("checkerboard", 1, "energy at the Nyquist corners (transposed-convolution traces)"),
    Field("high_share", 1, "share of power above half the Nyquist frequency"),
    Field("residual_std", 1, "log noise residual standard deviation (sensor noise is missing in renders)"),
    Field("residual_kurtosis", 1, "noise residual kurtosis"),
    Field("sharpness", 1, "log Laplacian variance"),
    Field("blockiness", 1, "8x8 grid strength (JPEG/H.264)"),
    Field("saturation_mean", 1, "saturation mean"),
    Field("saturation_spread", 1, "saturation spread"),
    Field("centre_residual_ratio", 1, "noise residual, centre against periphery (blending seams, swapped faces)"),
)

FRAME = Layout("visual frame", FRAME_FIELDS)

VISUAL = Layout(
    "visual",
    (
        *FRAME_FIELDS,
        Field("temporal_change", 1, "mean absolute change between sampled frames"),
        Field("residual_spread", 1, "spread of the noise residual across frames"),
        Field(
            "flat_noise",
            3,
            "noise in flat 8x8 blocks at low, middle and high brightness (shot noise grows "
            "with brightness; renders are flat or noiseless)",
        ),
        Field("flat_noise_all", 1, "noise level of all flat blocks"),
        Field("flat_noise_slope", 1, "its slope from dark to bright"),
        Field(
            "block_noise_spread",
            3,
            "spread of block noise levels: overall, above and below the median (pasted regions)",
        ),
        Field("phase_variation", 3, "variation of |residual| across pixel phases of period 2, 4, 8 (upsampling grids)"),
        Field("autocorrelation_peak", 1, "strongest off-centre autocorrelation peak (tiled, too-regular texture)"),
        Field("face_noise_ratio", 1, "noise of the face against the rest of the frame (log ratio)"),
        Field("face_share", 1, "share of the frame the face covers"),
        Field("face_sharpness", 1, "sharpness of the face against the rest"),
        Field("face_boundary_step", 1, "noise step across the face boundary (a ring outside against inside)"),
        Field("face_found_share", 1, "share of sampled frames with a face found"),
        Field("bits_per_pixel", 1, "log bits per pixel the picture was stored with (video: per frame)"),
        Field("jpeg_quantiser", 1, "log mean JPEG luminance quantiser step (0 for other formats)"),
        Field(
            "palette_size",
            1,
            "palette size / 256 for palette images (GIF, indexed PNG), 0 otherwise; with the "
            "two above: how much fine detail survived the encode",
        ),
        Field(
            "face_rings",
            16,
            "log median local noise in 16 elliptical rings from the face centre out to 1.6, "
            "0.1 wide, relative to the rings at 0.2-0.5 (a pasted face lacks the camera noise around it)",
        ),
        Field(
            "spam_whole",
            117,
            "residual co-occurrences of the whole picture (SPAM): three high-pass residuals "
            "(first and second differences, the 3x3 KB kernel) truncated to [-2, 2], runs of three along rows and "
            "columns, mirrored runs together, 39 classes each: what the noise is like, not only how much",
        ),
        Field(
            "spam_face",
            78,
            "the first-order and KB co-occurrences inside the face ellipse (within 0.55) minus "
            "between 0.9 and 1.6: a pasted face's noise is unlike the frame's around it",
        ),
        Field(
            "face_wobble",
            1,
            "log mean shift of the face's inside against the head around it between "
            "consecutive frames, by phase correlation (px): a face swapped frame by frame wobbles",
        ),
        Field("face_wobble_relative", 1, "the same relative to the half box side (log)"),
        Field("face_wobble_spread", 1, "its spread over the frame pairs (px)"),
        Field("face_inside_rigidity", 1, "mean phase-correlation peak of the inside (how rigidly it moved)"),
        Field("face_around_motion", 1, "log mean motion around the face (px)"),
        Field("face_pairs_share", 1, "share of the sampled frames with a pair measured (0 for stills)"),
        Field(
            "face_tint",
            4,
            "median Cr of the inside minus the band and minus around, the same for Cb "
            "(a pasted face keeps its source's tint)",
        ),
        Field(
            "face_lens_blur",
            6,
            "for inside, band and around: log ratios of luma detail between Gaussian scales "
            "0.7, 1.4, 2.8 px, fine to middle and middle to coarse (a pasted face missed the lens blur)",
        ),
        Field("face_chroma_noise", 2, "log ratio of chroma noise (Cr, Cb) inside to around"),
    ),
)
VISUAL_HANDCRAFTED_DIM = VISUAL.dim


if __name__ == "__main__":
    print(VISUAL.describe())
