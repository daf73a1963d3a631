"""The ``ingest`` stage's library: the Kaggle "Best Artworks of All Time" layouts, name
matching, safe decoding into canonical JPEGs, the manifest and the quarantine.

The source is a folder or a ``.zip`` holding ``artists.csv`` and the images in one of the
layouts below. Nothing here writes into the source; :func:`ingest` re-encodes every good
image to a canonical JPEG under the output folder and records a manifest row per source file.

Layouts (checked in this order):

* nested:  ``images/images/<Artist_Name>/<Artist_Name>_<n>.jpg`` (the Kaggle archive)
* folders: ``images/<Artist_Name>/<Artist_Name>_<n>.jpg`` (the embedded sample)
* flat:    ``resized/resized/<Artist_Name>_<n>.jpg`` or ``resized/<Artist_Name>_<n>.jpg``
"""

from __future__ import annotations

import concurrent.futures
import difflib
import io
import logging
import os
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from tqdm import tqdm

from artist_id import images
from artist_id.manifest import MANIFEST_COLUMNS, DatasetError, name_key, slug

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


# --------------------------------------------------------------------------- names


def match_folders(folders: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """Map each image folder (or flat-file prefix) to its artist name in artists.csv.

    Raises :class:`DatasetError` naming every folder that matches no artist, with the
    closest artist names as a hint, and on two artists sharing one key.
    """
    by_key: dict[str, str] = {}
    for name in names:
        key = name_key(name)
        if key in by_key and by_key[key] != name:
            raise DatasetError(f"artists.csv: {by_key[key]!r} and {name!r} are the same name")
        by_key[key] = name
    mapping: dict[str, str] = {}
    unmatched: list[str] = []
    for folder in sorted(folders):
        key = name_key(folder)
        if key in by_key:
            mapping[folder] = by_key[key]
        else:
            unmatched.append(folder)
    if unmatched:
        hints = []
        for folder in unmatched:
            close = difflib.get_close_matches(name_key(folder), list(by_key), n=2, cutoff=0.6)
            hint = f" (closest: {', '.join(by_key[c] for c in close)})" if close else ""
            hints.append(f"{folder!r}{hint}")
        raise DatasetError(
            "image folder(s) match no artist in artists.csv: "
            + "; ".join(hints)
            + ". Rename the folder or add the artist to artists.csv."
        )
    return mapping


# ----------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceFile:
    """One image file of the source: its artist folder, relative path and a way to read it."""

    folder: str
    relpath: str
    size: int
    read: Callable[[], bytes]


class Source:
    """A folder or a zip archive in the Kaggle layout, read-only."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.location = Path(location)
        if not self.location.exists():
            raise DatasetError(
                f"data source {str(location)!r} does not exist. For the embedded sample run "
                "`dvc repro sample`; for the Kaggle data see README 'Real dataset'."
            )
        self._zip: zipfile.ZipFile | None = None
        if self.location.is_file():
            if not zipfile.is_zipfile(self.location):
                raise DatasetError(f"{location}: a file source must be a .zip archive")
            self._zip = zipfile.ZipFile(self.location)
            self._names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        else:
            self._names = sorted(
                p.relative_to(self.location).as_posix()
                for p in self.location.rglob("*")
                if p.is_file()
            )

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _size(self, name: str) -> int:
        if self._zip is not None:
            return self._zip.getinfo(name).file_size
        return (self.location / name).stat().st_size

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.location / name).read_bytes()

    def _root_prefix(self) -> str:
        """Zips often wrap everything in one top folder: find the folder with artists.csv."""
        candidates = [n for n in self._names if PurePosixPath(n).name == "artists.csv"]
        if not candidates:
            raise DatasetError(f"{self.location}: no artists.csv found")
        best = min(candidates, key=lambda n: (n.count("/"), n))
        return best[: -len("artists.csv")]

    def artists_csv(self) -> bytes:
        return self.read(self._root_prefix() + "artists.csv")

    def image_files(self) -> tuple[str, list[SourceFile]]:
        """Return the layout name and every file below the image root, sorted."""
        root = self._root_prefix()
        rel = [n[len(root) :] for n in self._names if n.startswith(root)]
        for layout, prefix, nested in (
            ("nested", "images/images/", True),
            ("folders", "images/", True),
            ("flat", "resized/resized/", False),
            ("flat", "resized/", False),
        ):
            members = [r for r in rel if r.startswith(prefix)]
            if nested:
                members = [r for r in members if r[len(prefix) :].count("/") == 1]
            else:
                members = [r for r in members if "/" not in r[len(prefix) :]]
            if members:
                return layout, [self._file(root, prefix, r, nested) for r in members]
        raise DatasetError(
            f"{self.location}: no images found under images/images/<Artist>/, "
            "images/<Artist>/ or resized/resized/"
        )

    def _file(self, root: str, prefix: str, relpath: str, nested: bool) -> SourceFile:
        tail = relpath[len(prefix) :]
        folder = tail.split("/", 1)[0] if nested else flat_prefix(PurePosixPath(tail).stem)
        name = root + relpath
        return SourceFile(folder, relpath, self._size(name), lambda: self.read(name))


def flat_prefix(stem: str) -> str:
    """``Vincent_van_Gogh_12`` -> ``Vincent_van_Gogh`` (the flat layout's artist part)."""
    match = re.fullmatch(r"(.+?)_\d+", stem)
    return match.group(1) if match else stem


def _number(stem: str) -> int | None:
    match = re.search(r"_(\d+)$", stem)
    return int(match.group(1)) if match else None


# ------------------------------------------------------------------------ ingest


@dataclass(frozen=True)
class IngestResult:
    manifest: pd.DataFrame
    summary: dict[str, Any]
    quarantine: pd.DataFrame


def _is_hidden(relpath: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relpath.split("/"))


def _process(
    file: SourceFile, limits: images.DecodeLimits, max_side: int, quality: int
) -> tuple[dict[str, Any], bytes | None, str]:
    """Decode one file; return its manifest fields, the canonical JPEG (or None) and detail."""
    row: dict[str, Any] = {"bytes": file.size}
    if file.size > limits.max_bytes:
        # Refuse before reading: a huge member of a zip would otherwise be inflated in memory.
        row.update(status="quarantined", reason="too_many_bytes", sha256="")
        detail = f"file is {file.size:,} bytes, the limit is {limits.max_bytes:,}"
        return row, None, detail
    data = file.read()
    row["sha256"] = images.sha256_hex(data)
    try:
        decoded = images.decode_bytes(data, limits)
    except images.ImageError as exc:
        row.update(status="quarantined", reason=exc.reason)
        return row, None, str(exc)
    canonical = images.resize_max_side(decoded.image, max_side)
    row.update(
        width=canonical.width,
        height=canonical.height,
        source_width=decoded.source_width,
        source_height=decoded.source_height,
        source_mode=decoded.source_mode,
        source_format=decoded.source_format,
        phash=images.phash(canonical),
        status="ok",
        reason="",
    )
    return row, images.encode_jpeg(canonical, quality), ""


def ingest(
    source: str | os.PathLike[str],
    out_dir: Path,
    *,
    max_side: int,
    jpeg_quality: int,
    limits: images.DecodeLimits,
    workers: int | None = None,
) -> IngestResult:
    """Read the source, write ``out_dir/{artists.csv,images/}``, return the manifest.

    ``out_dir/images`` is rewritten whole. Paths in the manifest are relative to the
    current directory (the repository root when run as a stage), POSIX style.
    """
    with Source(source) as src:
        artists_bytes = src.artists_csv()
        artists = read_artists(artists_bytes)
        layout, files = src.image_files()
        hidden = [f.relpath for f in files if _is_hidden(f.relpath)]
        files = [f for f in files if not _is_hidden(f.relpath)]
        for h in hidden:
            log.info("skipping hidden file %s", h)
        mapping = match_folders(sorted({f.folder for f in files}), list(artists["name"]))

        images_dir = out_dir / "images"
        if images_dir.exists():
            shutil.rmtree(images_dir)
        images_dir.mkdir(parents=True)
        (out_dir / "artists.csv").write_bytes(artists_bytes)

        ids = _image_ids(files, mapping)
        rows: list[dict[str, Any]] = []
        details: list[dict[str, str]] = []
        workers = workers or min(4, os.cpu_count() or 1)
        # Pillow releases the GIL while decoding and resizing, so threads give real speed-up;
        # map() keeps the input order, so the output does not depend on scheduling.
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = pool.map(lambda f: _process(f, limits, max_side, jpeg_quality), files)
            for file, (row, jpeg, detail) in tqdm(
                zip(files, results, strict=True),
                total=len(files),
                desc="ingest",
                unit="img",
                mininterval=1.0,
            ):
                artist = mapping[file.folder]
                image_id = ids[file.relpath]
                path = ""
                if jpeg is not None:
                    target = images_dir / slug(artist) / f"{image_id}.jpg"
                    target.parent.mkdir(exist_ok=True)
                    target.write_bytes(jpeg)
                    path = target.as_posix()
                else:
                    details.append(
                        {"source_path": file.relpath, "reason": row["reason"], "detail": detail}
                    )
                    log.warning("quarantined %s: %s", file.relpath, detail)
                rows.append(
                    {
                        "image_id": image_id,
                        "artist": artist,
                        "source_path": file.relpath,
                        "path": path,
                        **row,
                    }
                )

    manifest = pd.DataFrame(rows).reindex(columns=MANIFEST_COLUMNS)
    for col in ("width", "height", "source_width", "source_height", "bytes"):
        # integers as text, empty for quarantined rows (no float "12.0" in the CSV)
        manifest[col] = [("" if pd.isna(v) else str(int(v))) for v in manifest[col]]
    manifest = manifest.fillna("").sort_values(["artist", "image_id"], kind="stable")
    manifest = manifest.reset_index(drop=True)
    quarantine = pd.DataFrame(details, columns=["source_path", "reason", "detail"])
    summary = _summary(str(source), layout, artists, manifest, hidden)
    return IngestResult(manifest, summary, quarantine)


def _image_ids(files: Sequence[SourceFile], mapping: dict[str, str]) -> dict[str, str]:
    """Stable ASCII ids: ``<Artist_Slug>_<n>`` from the file name, de-duplicated."""
    ids: dict[str, str] = {}
    seen: Counter[str] = Counter()
    for f in sorted(files, key=lambda f: f.relpath):
        stem = PurePosixPath(f.relpath).stem
        number = _number(stem)
        base = f"{slug(mapping[f.folder])}_{number}" if number is not None else slug(stem)
        seen[base] += 1
        ids[f.relpath] = base if seen[base] == 1 else f"{base}__{seen[base]}"
    return ids


def read_artists(data: bytes) -> pd.DataFrame:
    """Parse artists.csv as strings; ingest needs only the ``name`` column."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"artists.csv cannot be parsed: {exc}") from exc
    if "name" not in frame.columns:
        raise DatasetError(
            f"artists.csv has no 'name' column (columns: {', '.join(frame.columns)})"
        )
    return frame


def _summary(
    source: str,
    layout: str,
    artists: pd.DataFrame,
    manifest: pd.DataFrame,
    hidden: list[str],
) -> dict[str, Any]:
    declared: dict[str, int | None] = {}
    for name, value in zip(
        artists["name"], artists.get("paintings", [""] * len(artists)), strict=True
    ):
        declared[name] = int(value) if str(value).isdigit() else None
    per_artist: dict[str, dict[str, Any]] = {}
    for name in sorted(set(artists["name"]) | set(manifest["artist"])):
        rows = manifest[manifest["artist"] == name]
        per_artist[name] = {
            "declared": declared.get(name),
            "files": len(rows),
            "ok": int((rows["status"] == "ok").sum()),
            "quarantined": int((rows["status"] == "quarantined").sum()),
        }
    reasons = Counter(manifest.loc[manifest["status"] == "quarantined", "reason"])
    return {
        "source": source,
        "layout": layout,
        "artists_in_csv": len(artists),
        "artists_with_images": int(manifest["artist"].nunique()),
        "files": len(manifest),
        "ok": int((manifest["status"] == "ok").sum()),
        "quarantined": int((manifest["status"] == "quarantined").sum()),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "skipped_hidden_files": len(hidden),
        "per_artist": per_artist,
    }
