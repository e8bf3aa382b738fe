"""The jobs (`python -m pipelines.batch`, `python -m pipelines.streaming`), their launcher and
the detection graph they share."""

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes, the failed cuInit of a
# machine without a GPU) buries the job's own output, and it is written before any flag is
# parsed: it stays hidden unless the command line asks for --verbose or the user sets
# TF_CPP_MIN_LOG_LEVEL themselves.
if "--verbose" not in sys.argv:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
