"""The operator pages' common layout: a page a person reads at 1280 px or less (one column,
tables that wrap, images that shrink), small tables from rows, and matplotlib charts inlined as
PNG. Used by the transparency report, simulation and signal-health pages."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

PAGE_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;line-height:1.4}"
    "table{border-collapse:collapse;max-width:100%;margin:.5em 0 1em}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
    "img{display:block;max-width:100%;height:auto;margin:1em 0}.note{color:#444}"
)
CHART_INCHES = (9.0, 3.6)  # at CHART_DPI: 900 px wide, inside the page's 1100 px column
CHART_DPI = 100


def html_page(title: str, sections: list[str], style: str = "") -> str:
    """A page a person reads at 1280 px or less: a title, one column of at most 1100 px, tables
    whose cells wrap and images that shrink to the column, so nothing scrolls sideways."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}{style}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )


def html_table(rows: list[dict[str, Any]], columns: dict[str, str], empty: str = "No rows.") -> str:
    """`rows` as a table: `columns` maps each key to its heading; None reads "n/a"."""
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(heading)}</th>" for heading in columns.values())
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(row.get(key)))}</td>" for key in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def percent(value: float | None) -> str | None:
    """A share as a percentage (None stays None: the table reads it "n/a")."""
    return None if value is None else f"{value:.1%}"


def figure(rows: int = 1, columns: int = 1, inches: tuple[float, float] = CHART_INCHES):
    """A matplotlib figure and its axes, drawn off-screen (matplotlib loads only for a page)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, columns, figsize=inches, layout="constrained")


def png_uri(fig) -> str:
    """`fig` as an inline PNG (data URI), closed after."""
    import matplotlib.pyplot as plt

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=CHART_DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
