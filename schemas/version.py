"""The pipeline's version: stamped on every row it writes (`pipeline_version`)."""

PIPELINE_VERSION = "0.1.0"
