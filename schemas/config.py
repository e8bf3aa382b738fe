"""Strict reading of the files that configure the jobs (the policy, error costs, the provider
file, hash banks): a key the reader does not know is an error that names its path, never a
default applied in silence (a top-level `strike:` for `strikes:` used to load with no strikes)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


def refuse_unknown(
    document: Mapping[str, Any], allowed: Iterable[str], where: str, error: type[Exception] = ValueError
) -> None:
    """Raises `error` naming the first key of `document` not in `allowed`, at `where` (its path
    with a trailing dot, as `strikes.`; empty at the top level), with the nearest allowed key.
    """
    known = tuple(allowed)
    unknown = sorted(str(key) for key in document if key not in known)
    if unknown:
        nearest = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
        hint = f" (did you mean {nearest[0]!r}?)" if nearest else ""
        raise error(f"{where}{unknown[0]}: unknown field{hint}; expected {', '.join(known)}")
