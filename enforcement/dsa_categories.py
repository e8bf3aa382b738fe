"""The category list of the DSA harmonised transparency templates (Implementing Regulation (EU)
2024/2835, Annex I, part `2_categories_names`), the same codes as the EU Transparency
Database's statement categories and keywords.

Read from the Commission's own CSV part (`schemas/dsa_categories_names.csv`, byte for byte the
file under `tests/data/dsa_template/`), so labels, descriptions and codes are spelt as the
template spells them. Every sub-category list ends with `KEYWORD_OTHER`, which the template
lets a provider repeat, each time with its own description. Categories 16 and 17 (not
specified by the authority, by the notifier) have no sub-categories.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from importlib import resources

TOTAL = "TOTAL"
KEYWORD_OTHER = "KEYWORD_OTHER"
NOT_SPECIFIED_ORDER = "STATEMENT_CATEGORY_NOT_SPECIFIED_ORDER"
NOT_SPECIFIED_NOTICE = "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE"
OTHER_VIOLATION_TC = "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"
NAMES_FILE = "dsa_categories_names.csv"


@dataclasses.dataclass(frozen=True)
class Name:
    """One row of part 2: "Category 1a", "Animal harm", KEYWORD_ANIMAL_HARM."""

    label: str
    description: str
    code: str


def _read_names() -> tuple[tuple[str, ...], tuple[Name, ...]]:
    text = (resources.files("schemas") / NAMES_FILE).read_text("utf-8")
    header, *rows = csv.reader(io.StringIO(text, newline=""))
    return tuple(header), tuple(Name(*row[:3]) for row in rows)


NAMES_HEADER, NAMES = _read_names()


def _categories() -> tuple[tuple[str, tuple[str, ...]], ...]:
    categories: list[tuple[str, list[str]]] = []
    for name in NAMES:
        if name.code.startswith("STATEMENT_CATEGORY_") and name.code not in (NOT_SPECIFIED_ORDER, NOT_SPECIFIED_NOTICE):
            categories.append((name.code, []))
        elif name.code.startswith("KEYWORD_") and name.code != KEYWORD_OTHER:
            categories[-1][1].append(name.code)
    return tuple((code, tuple(keywords)) for code, keywords in categories)


# Categories 1 to 14 (illegal content) and 15 (other violations of the terms and conditions),
# each with its keywords in the template's order (KEYWORD_OTHER left implicit).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = _categories()
ILLEGAL_CATEGORIES = tuple(code for code, _ in CATEGORIES if code != OTHER_VIOLATION_TC)
KEYWORDS_OF: dict[str, tuple[str, ...]] = {code: (*keywords, KEYWORD_OTHER) for code, keywords in CATEGORIES}


def category_rows(categories: tuple[str, ...], closing: tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
    """The template's rows for `categories`: TOTAL, then each category followed by its keywords
    (the category code each keyword belongs to, None for TOTAL and the categories), then the
    `closing` codes (the "not specified" categories)."""
    rows: list[tuple[str, str | None]] = [(TOTAL, None)]
    for code in categories:
        rows.append((code, None))
        rows.extend((keyword, code) for keyword in KEYWORDS_OF[code])
    rows.extend((code, None) for code in closing)
    return rows
