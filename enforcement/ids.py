"""Deterministic ids: the same parts give the same id on every run, batch or streaming."""

from __future__ import annotations

import hashlib


def stable_id(*parts: str) -> str:
    """A deterministic id: the same parts give the same id on every run."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
