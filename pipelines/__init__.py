"""Pipeline entry points: `python -m pipelines.batch` (and, later, streaming)."""

import os

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) buries the job's own
# output; a user who wants it sets TF_CPP_MIN_LOG_LEVEL themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
