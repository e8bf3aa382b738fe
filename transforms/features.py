"""Feature extraction as one composite: metadata, then visual, then audio, then release the bytes."""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from schemas.records import MediaFeatures
from transforms.audio import ExtractAudioFeatures
from transforms.limits import MediaLimits
from transforms.metadata import ExtractMetadataFeatures
from transforms.visual import ExtractVisualFeatures


def release_media(features: MediaFeatures) -> MediaFeatures:
    """Drops the media bytes once every extractor has read them."""
    return dataclasses.replace(features, data=None)


class ExtractFeatures(beam.PTransform):
    """MediaBlob -> MediaFeatures (every modality the media carries).

    The extractors run in sequence on the same element, so they fuse into one stage and the
    media bytes never cross a shuffle. Returns `(features, dead_letters)`.
    """

    def __init__(self, limits: MediaLimits):
        super().__init__()
        self._limits = limits

    def expand(self, blobs):
        features, metadata_dead = blobs | "Metadata" >> ExtractMetadataFeatures(self._limits)
        features, visual_dead = features | "Visual" >> ExtractVisualFeatures(self._limits)
        features, audio_dead = features | "Audio" >> ExtractAudioFeatures(self._limits)
        features = features | "ReleaseMedia" >> beam.Map(release_media)
        dead = (metadata_dead, visual_dead, audio_dead) | "MergeExtractionFailures" >> beam.Flatten()
        return features, dead
