"""Pipeline entry points: `python -m pipelines.batch` (and, later, streaming)."""
