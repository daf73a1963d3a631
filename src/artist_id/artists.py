"""What ``artists.csv`` says about an artist: life span, period, genres, nationalities.

One place for the parsing that the eda, genre and periods stages (and the service's metadata)
share. The real file writes ``years`` as ``1884 - 1920`` (36 rows) or ``1853 – 1890`` (en dash,
14 rows) and keeps several comma-separated values in ``genre`` and ``nationality``
(``"Symbolism,Post-Impressionism"``).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

# "1884 - 1920", "1853 – 1890" (en dash), "1853—1890", "1853 − 1890" (minus sign)
_YEARS = re.compile(r"(\d{3,4})\s*[-\u2010-\u2015\u2212]\s*(\d{3,4})")
_YEAR = re.compile(r"(?<!\d)\d{3,4}(?!\d)")
_SPLIT = re.compile(r"\s*[,;/]\s*")

Anchor = Literal["birth", "midpoint", "death"]
UNKNOWN_PERIOD = "unknown"


def parse_years(text: str) -> tuple[int, int] | None:
    """``"1853 – 1890"`` -> ``(1853, 1890)``; any dash; ``None`` when no range is found.

    Falls back to the first and last 3-4 digit numbers ("c. 1525 to 1569"); a range whose end
    precedes its start is rejected.
    """
    text = str(text)
    match = _YEARS.search(text)
    if match:
        start, end = int(match.group(1)), int(match.group(2))
    else:
        numbers = [int(n) for n in _YEAR.findall(text)]
        if len(numbers) < 2:
            return None
        start, end = numbers[0], numbers[-1]
    if end < start:
        return None
    return start, end


def split_values(text: str) -> list[str]:
    """``"French,British"`` -> ``["French", "British"]``: stripped, de-duplicated, in order."""
    out: list[str] = []
    for part in _SPLIT.split(str(text)):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


def period(years: tuple[int, int], width: int = 50, anchor: Anchor = "midpoint") -> str:
    """The ``width``-year bucket holding the anchor year of a life span.

    ``(1853, 1890)`` -> ``"1850-1899"`` (midpoint 1871, half-centuries). Buckets start at
    multiples of ``width``; ``anchor`` picks the birth year, the midpoint (rounded down) or
    the death year.
    """
    if width < 1:
        raise ValueError(f"period width must be at least 1 year, got {width}")
    start, end = years
    year = {"birth": start, "midpoint": (start + end) // 2, "death": end}[anchor]
    first = year // width * width
    return f"{first:04d}-{first + width - 1:04d}"


def half_century(years: tuple[int, int]) -> str:
    """Bucket of a lifetime's midpoint: ``(1853, 1890)`` -> ``"1850-1899"``."""
    return period(years, 50, "midpoint")


@dataclass(frozen=True)
class ArtistMeta:
    """One artists.csv row, parsed."""

    name: str
    years: tuple[int, int] | None
    genres: tuple[str, ...]
    nationalities: tuple[str, ...]

    def period(self, width: int = 50, anchor: Anchor = "midpoint") -> str:
        """:func:`period` of the life span, :data:`UNKNOWN_PERIOD` when years do not parse."""
        return UNKNOWN_PERIOD if self.years is None else period(self.years, width, anchor)


def read_artists_csv(source: str | os.PathLike[str] | bytes) -> dict[str, ArtistMeta]:
    """Parse artists.csv (a path or its bytes) into ``name -> ArtistMeta``.

    Every column is read as text; missing columns count as empty. The first row of a
    repeated name wins.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    if "name" not in frame.columns:
        raise ValueError(f"artists.csv has no 'name' column (columns: {', '.join(frame.columns)})")
    out: dict[str, ArtistMeta] = {}
    for row in frame.to_dict(orient="records"):
        name = str(row["name"]).strip()
        if name and name not in out:
            out[name] = ArtistMeta(
                name=name,
                years=parse_years(row.get("years", "")),
                genres=tuple(split_values(row.get("genre", ""))),
                nationalities=tuple(split_values(row.get("nationality", ""))),
            )
    return out


def genres_of(artists: Sequence[str], meta: Mapping[str, ArtistMeta]) -> list[tuple[str, ...]]:
    """The genres of each artist in ``artists`` (empty for an artist missing from ``meta``)."""
    return [meta[a].genres if a in meta else () for a in artists]
