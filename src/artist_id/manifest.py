"""The manifest contract between ``ingest`` and the stages after it.

``ingest`` writes ``data/raw/manifest.csv`` with :data:`MANIFEST_COLUMNS`; ``validate``,
``select`` and ``augment`` read it with :func:`read_manifest` and name artist folders with
:func:`slug`. Kept apart from :mod:`artist_id.ingest` so that an edit to the ingest code
(layouts, decoding) does not re-run the stages that only read its output.
"""

from __future__ import annotations

import os
import re
import unicodedata

import pandas as pd

MANIFEST_COLUMNS = [
    "image_id",
    "artist",
    "source_path",
    "path",
    "width",
    "height",
    "source_width",
    "source_height",
    "source_mode",
    "source_format",
    "bytes",
    "sha256",
    "phash",
    "status",
    "reason",
]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


class DatasetError(ValueError):
    """The source does not look like the Kaggle layout; the message says what to fix."""


# --------------------------------------------------------------------------- names


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 bytes that were decoded as cp437 (how zip tools mangle ``Dürer``).

    The Kaggle archive stores ``Albrecht_Du╠êrer``: the NFD bytes of ``ü`` (``u`` + U+0308
    = ``CC 88``) shown as cp437 ``╠ê``. Text that is not such mojibake comes back unchanged.
    """
    try:
        repaired = text.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text
    return unicodedata.normalize("NFC", repaired)


def name_key(text: str) -> str:
    """A matching key: mojibake repaired, accents dropped, case folded, separators unified."""
    text = unicodedata.normalize("NFKD", fix_mojibake(text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[\s_\-.]+", " ", text.casefold())
    return text.strip()


def slug(text: str) -> str:
    """ASCII file-system name for an artist: ``Zoë Várkonyi`` -> ``Zoe_Varkonyi``."""
    ascii_text = unicodedata.normalize("NFKD", fix_mojibake(text))
    ascii_text = ascii_text.encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_")
    if not name:
        raise DatasetError(f"cannot make a file name from {text!r}: no ASCII letter or digit")
    return name


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load ``manifest.csv`` with every column as text (empty, not NaN, when missing)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)
