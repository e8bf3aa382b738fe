"""Deterministic ids: the same parts give the same id on every run, batch or streaming."""

from __future__ import annotations

import hashlib


def stable_id(*parts: str) -> str:
    """A deterministic id: the same parts give the same id on every run."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def content_decision_id(content_id: str, policy_id: str, policy_version: str) -> str:
    """The id of the decision a policy version makes on an upload (one per upload and version)."""
    return stable_id(content_id, policy_id, policy_version)
