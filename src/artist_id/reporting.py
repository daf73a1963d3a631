"""Markdown building blocks shared by the run report (``modelcard``) and the PR report.

GitHub renders both: tables in GitHub-flavoured Markdown, images as relative links to small
PNG/JPEG files next to the report. Images are written without metadata (no timestamps,
no software versions) so the same pixels give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

# Widest image a report links: GitHub shows comments and files ~900 px wide.
MAX_WIDTH = 900


def number(value: Any) -> float:
    """``value`` as a float, NaN for anything that is not a number (bools included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def fmt(value: Any, spec: str = ".3f") -> str:
    x = number(value)
    return "–" if math.isnan(x) else format(x, spec)


def fmt_delta(value: Any, spec: str = "+.3f") -> str:
    x = number(value)
    if math.isnan(x):
        return "–"
    return format(0.0 if x == 0 else x, spec)  # no "-0.000"


def interval(value: Any) -> tuple[float, float] | None:
    """A ``[lo, hi]`` pair from metrics.json, or None."""
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = number(value[0]), number(value[1])
        if not (math.isnan(lo) or math.isnan(hi)):
            return lo, hi
    return None


def fmt_ci(value: Any, spec: str = ".2f") -> str:
    ci = interval(value)
    return "" if ci is None else f"[{ci[0]:{spec}}, {ci[1]:{spec}}]"


def with_ci(point: Any, ci: Any) -> str:
    """``0.955 [0.88, 1.00]`` (the point value alone when there is no interval)."""
    text = fmt(point)
    bounds = fmt_ci(ci)
    return f"{text} {bounds}" if bounds and text != "–" else text


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def code(text: Any) -> str:
    return f"`{cell(text).replace('`', '')}`"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    """A GitHub Markdown table; ``align`` is one letter per column (l, r, c), default l."""
    spec = {"l": "---", "r": "---:", "c": ":---:"}
    marks = [spec[align[i]] if i < len(align) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def image(alt: str, link: str, width: int | None = None) -> str:
    """A Markdown image, or an HTML one when a display width is wanted."""
    if width is None:
        return f"![{alt}]({link})"
    return f'<img src="{link}" alt="{alt}" width="{width}">'


def save_image(source: bytes | Path, target: Path, max_width: int = MAX_WIDTH) -> Path:
    """Copy an image, shrunk to ``max_width`` px wide, as a metadata-free PNG (JPEG for
    photographs: ``target`` with a ``.jpg`` suffix)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        img = opened.convert("RGB")
    if img.width > max_width:
        height = max(1, round(img.height * max_width / img.width))
        img = img.resize((max_width, height), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() in {".jpg", ".jpeg"}:
        img.save(target, format="JPEG", quality=85, optimize=True)
    else:
        img.save(target, format="PNG", optimize=True)
    return target
