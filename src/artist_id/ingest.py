"""The ``ingest`` stage's library: the Kaggle "Best Artworks of All Time" layouts, name
matching, safe decoding into canonical JPEGs, the manifest and the quarantine.

The source is a folder or a ``.zip`` holding ``artists.csv`` and the images in one of the
layouts below. Nothing here writes into the source; :func:`ingest` re-encodes every good
image to a canonical JPEG under the output folder and records a manifest row per source file.

Layouts (checked in this order):

* nested:  ``images/images/<Artist_Name>/<Artist_Name>_<n>.jpg`` (the Kaggle archive)
* folders: ``images/<Artist_Name>/<Artist_Name>_<n>.jpg`` (the embedded sample)
* flat:    ``resized/resized/<Artist_Name>_<n>.jpg`` or ``resized/<Artist_Name>_<n>.jpg``

Odd entries of the source are quarantined with their own reason, never followed or opened:
a symbolic link (``symlink``, wherever it points), a FIFO, device or socket
(``not_a_regular_file``), a file name that is not valid UTF-8 (``bad_file_name``, shown
escaped), a file in a sub-folder of an artist folder, e.g. inside a directory named
``y.jpg`` (``misplaced``). An image whose canonical side is below ``validate.min_side`` is
``too_small``. Outputs are written to a staging folder and moved into place at the end, so a
failure leaves the previous run's outputs whole.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import io
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from artist_id import images, progress
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
    """One entry of the source below the image root: its artist folder, relative path, size
    and a way to read it, or the ``problem`` (reason, detail) that keeps it from being read."""

    folder: str
    relpath: str
    size: int
    read: Callable[[], bytes]
    problem: tuple[str, str] | None = None


# Source-level quarantine reasons (the decoding ones are images.STATUS_BY_REASON's).
SOURCE_REASONS = ("symlink", "not_a_regular_file", "bad_file_name", "misplaced", "too_small")

_ZIP_SYMLINK = 0o120000


def shown_name(name: str) -> str:
    """``name`` as printable UTF-8: undecodable bytes (surrogate escapes) become ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Source:
    """A folder or a zip archive in the Kaggle layout, read-only.

    A folder is listed without following symbolic links; every entry keeps its kind
    (regular file, symlink, other) so that only regular files are ever opened, and those
    with ``O_NOFOLLOW`` (a file swapped for a link after listing is refused too).
    """

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.location = Path(location)
        if not self.location.exists():
            raise DatasetError(
                f"data source {str(location)!r} does not exist. For the embedded sample run "
                "`dvc repro sample`; for the Kaggle data see README 'Real dataset'."
            )
        self._zip: zipfile.ZipFile | None = None
        self._kinds: dict[str, str] = {}  # name -> "file" | "symlink" | "other"
        self.image_like_dirs: list[str] = []  # directories named like an image file
        if self.location.is_file():
            if not zipfile.is_zipfile(self.location):
                raise DatasetError(f"{location}: a file source must be a .zip archive")
            self._zip = zipfile.ZipFile(self.location)
            for info in self._zip.infolist():
                if info.is_dir():
                    self._note_dir(info.filename.rstrip("/"))
                    continue
                link = (info.external_attr >> 16) & 0o170000 == _ZIP_SYMLINK
                self._kinds[info.filename] = "symlink" if link else "file"
        else:
            self._list_folder()
        self._names = sorted(self._kinds)

    def _list_folder(self) -> None:
        root = self.location
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            for d in list(dirnames):
                path = here / d
                rel = path.relative_to(root).as_posix()
                if path.is_symlink():  # never descended into; reported as an entry
                    self._kinds[rel] = "symlink"
                    dirnames.remove(d)
                else:
                    self._note_dir(rel)
            for f in filenames:
                path = here / f
                mode = path.lstat().st_mode
                kind = (
                    "symlink" if stat.S_ISLNK(mode) else "file" if stat.S_ISREG(mode) else "other"
                )
                self._kinds[path.relative_to(root).as_posix()] = kind
            dirnames.sort()

    def _note_dir(self, rel: str) -> None:
        if PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES:
            self.image_like_dirs.append(rel)

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
        return (self.location / name).lstat().st_size

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(self.location / name, flags)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise OSError(f"{shown_name(name)} is not a regular file")
            return fh.read()

    def _root_prefix(self) -> str:
        """Zips often wrap everything in one top folder: find the folder with artists.csv."""
        candidates = [
            n
            for n in self._names
            if PurePosixPath(n).name == "artists.csv" and self._kinds[n] == "file"
        ]
        if not candidates:
            raise DatasetError(f"{self.location}: no artists.csv found (as a regular file)")
        best = min(candidates, key=lambda n: (n.count("/"), n))
        return best[: -len("artists.csv")]

    def artists_csv(self) -> bytes:
        return self.read(self._root_prefix() + "artists.csv")

    def image_files(self) -> tuple[str, list[SourceFile]]:
        """Return the layout name and every entry below the image root, sorted.

        Entries the layout does not place (a file in a sub-folder of an artist folder) are
        returned too, with their ``problem``, so that nothing is skipped silently.
        """
        root = self._root_prefix()
        rel = [n[len(root) :] for n in self._names if n.startswith(root)]
        for layout, prefix, nested in (
            ("nested", "images/images/", True),
            ("folders", "images/", True),
            ("flat", "resized/resized/", False),
            ("flat", "resized/", False),
        ):
            members = [r for r in rel if r.startswith(prefix)]
            depth = 1 if nested else 0
            placed = [r for r in members if r[len(prefix) :].count("/") == depth]
            if placed:
                deeper = [r for r in members if r[len(prefix) :].count("/") > depth]
                files = [self._file(root, prefix, r, nested) for r in placed]
                files += [self._file(root, prefix, r, nested, misplaced=True) for r in deeper]
                return layout, sorted(files, key=lambda f: f.relpath)
        raise DatasetError(
            f"{self.location}: no images found under images/images/<Artist>/, "
            "images/<Artist>/ or resized/resized/"
        )

    def _file(
        self, root: str, prefix: str, relpath: str, nested: bool, *, misplaced: bool = False
    ) -> SourceFile:
        tail = relpath[len(prefix) :]
        folder = tail.split("/", 1)[0] if nested else flat_prefix(PurePosixPath(tail).stem)
        name = root + relpath
        kind = self._kinds[name]
        problem: tuple[str, str] | None = None
        if kind == "symlink":
            problem = ("symlink", "a symbolic link: not followed (copy the file itself)")
        elif kind == "other":
            problem = ("not_a_regular_file", "not a regular file (FIFO, device or socket)")
        elif not _valid_utf8(name):
            problem = (
                "bad_file_name",
                f"the file name {shown_name(PurePosixPath(relpath).name)!r} is not valid UTF-8: "
                "rename it, or give ingest a .zip of the folder",
            )
        elif misplaced:
            where = "images/images/<Artist>/" if nested else prefix
            problem = ("misplaced", f"in a sub-folder: images belong directly in {where}")
        size = self._size(name) if kind == "file" else 0
        return SourceFile(folder, relpath, size, lambda: self.read(name), problem)


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
    staging: Path  # the new images and artists.csv, waiting for :func:`publish`


def _is_hidden(relpath: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relpath.split("/"))


def _process(
    file: SourceFile, limits: images.DecodeLimits, max_side: int, quality: int, min_side: int
) -> tuple[dict[str, Any], bytes | None, str]:
    """Decode one file; return its manifest fields, the canonical JPEG (or None) and detail."""
    row: dict[str, Any] = {"bytes": file.size, "sha256": ""}
    if file.problem is not None:
        reason, detail = file.problem
        row.update(status="quarantined", reason=reason)
        return row, None, detail
    if file.size > limits.max_bytes:
        # Refuse before reading: a huge member of a zip would otherwise be inflated in memory.
        row.update(status="quarantined", reason="too_many_bytes")
        detail = f"file is {file.size:,} bytes, the limit is {limits.max_bytes:,}"
        return row, None, detail
    try:
        data = file.read()
    except OSError as exc:  # e.g. swapped for a symlink since listing (O_NOFOLLOW), no access
        row.update(status="quarantined", reason="not_a_regular_file")
        return row, None, f"cannot be read as a regular file: {exc.strerror or exc}"
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
    )
    if min(canonical.size) < min_side:
        # validate would stop the whole pipeline on it: one small file is quarantined instead
        row.update(status="quarantined", reason="too_small")
        detail = (
            f"{canonical.width}x{canonical.height} px after resizing to at most {max_side} px; "
            f"validate.min_side is {min_side}"
        )
        return row, None, detail
    row.update(phash=images.phash(canonical), status="ok", reason="")
    return row, images.encode_jpeg(canonical, quality), ""


def ingest(
    source: str | os.PathLike[str],
    out_dir: Path,
    *,
    max_side: int,
    jpeg_quality: int,
    limits: images.DecodeLimits,
    min_side: int = 1,
    workers: int | None = None,
) -> IngestResult:
    """Read the source and stage ``out_dir``'s new ``artists.csv`` and ``images/``.

    Nothing in ``out_dir`` changes here: the new files go to a staging folder beside it,
    which :func:`publish` moves into place (a failure before that leaves the previous run
    whole). Paths in the manifest are the final ones, relative to the current directory (the
    repository root when run as a stage), POSIX style.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-staging-", dir=out_dir.parent))
    try:
        return _ingest(source, out_dir, staging, max_side, jpeg_quality, limits, min_side, workers)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _ingest(
    source: str | os.PathLike[str],
    out_dir: Path,
    staging: Path,
    max_side: int,
    jpeg_quality: int,
    limits: images.DecodeLimits,
    min_side: int,
    workers: int | None,
) -> IngestResult:
    with Source(source) as src:
        artists_bytes = src.artists_csv()
        artists = read_artists(artists_bytes)
        layout, files = src.image_files()
        hidden = [f.relpath for f in files if _is_hidden(f.relpath)]
        files = [f for f in files if not _is_hidden(f.relpath)]
        for h in hidden:
            log.info("skipping hidden file %s", shown_name(h))
        for d in src.image_like_dirs:
            log.warning("%s is a directory named like an image; its files are quarantined", d)
        mapping = match_folders(sorted({f.folder for f in files}), list(artists["name"]))

        (staging / "images").mkdir()
        (staging / "artists.csv").write_bytes(artists_bytes)

        ids = _image_ids(files, mapping)
        rows: list[dict[str, Any]] = []
        details: list[dict[str, str]] = []
        workers = workers or min(4, os.cpu_count() or 1)

        def work(f: SourceFile) -> tuple[dict[str, Any], bytes | None, str]:
            return _process(f, limits, max_side, jpeg_quality, min_side)

        # Pillow releases the GIL while decoding and resizing, so threads give real speed-up;
        # map() keeps the input order, so the output does not depend on scheduling.
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = pool.map(work, files)
            for file, (row, jpeg, detail) in progress.bar(
                zip(files, results, strict=True), total=len(files), desc="ingest"
            ):
                artist = mapping[file.folder]
                image_id = ids[file.relpath]
                source_path = shown_name(file.relpath)
                path = ""
                if jpeg is not None:
                    rel = Path(slug(artist)) / f"{image_id}.jpg"
                    target = staging / "images" / rel
                    target.parent.mkdir(exist_ok=True)
                    target.write_bytes(jpeg)
                    path = (out_dir / "images" / rel).as_posix()
                else:
                    details.append(
                        {"source_path": source_path, "reason": row["reason"], "detail": detail}
                    )
                    log.warning("quarantined %s: %s", source_path, detail)
                rows.append(
                    {
                        "image_id": image_id,
                        "artist": artist,
                        "source_path": source_path,
                        "path": path,
                        **row,
                    }
                )
        image_like_dirs = list(src.image_like_dirs)

    manifest = pd.DataFrame(rows).reindex(columns=MANIFEST_COLUMNS)
    for col in ("width", "height", "source_width", "source_height", "bytes"):
        # integers as text, empty for quarantined rows (no float "12.0" in the CSV)
        manifest[col] = [("" if pd.isna(v) else str(int(v))) for v in manifest[col]]
    manifest = manifest.fillna("").sort_values(["artist", "image_id"], kind="stable")
    manifest = manifest.reset_index(drop=True)
    quarantine = pd.DataFrame(details, columns=["source_path", "reason", "detail"])
    summary = _summary(str(source), layout, artists, manifest, hidden)
    summary["directories_named_like_images"] = sorted(image_like_dirs)
    return IngestResult(manifest, summary, quarantine, staging)


def publish(result: IngestResult, out_dir: Path, reports_dir: Path) -> None:
    """Write the manifest, quarantine list, summary (metrics) and details, then move every
    output into place.

    Each file is written to the staging folder and renamed over the old one; the images
    folder is swapped with two renames. Until the first rename the previous outputs are
    untouched, so an error while writing (a full disk, an unencodable value) loses nothing.
    """
    staging = result.staging
    try:
        result.manifest.to_csv(staging / "manifest.csv", index=False)
        result.quarantine.to_csv(staging / "quarantine.csv", index=False)
        # summary.json: the DVC metrics (a few counts under "ingest"); details.json: all of it
        metrics = {"ingest": {k: result.summary[k] for k in ("files", "ok", "quarantined")}}
        for name, data in (("summary.json", metrics), ("details.json", result.summary)):
            (staging / name).write_text(
                json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        reports_dir.mkdir(parents=True, exist_ok=True)
        old = out_dir / "images"
        if old.exists():
            old.rename(staging / "previous-images")
        (staging / "images").rename(old)
        for name, target in (
            ("artists.csv", out_dir / "artists.csv"),
            ("manifest.csv", out_dir / "manifest.csv"),
            ("quarantine.csv", reports_dir / "quarantine.csv"),
            ("summary.json", reports_dir / "summary.json"),
            ("details.json", reports_dir / "details.json"),
        ):
            (staging / name).replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
    except pd.errors.EmptyDataError:
        raise DatasetError(
            "artists.csv is empty: it needs a header row and one row per artist"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"artists.csv cannot be parsed: {exc}") from exc
    if "name" not in frame.columns:
        raise DatasetError(
            f"artists.csv has no 'name' column (columns: {', '.join(frame.columns)})"
        )
    repeated = frame["name"][frame["name"].duplicated(keep=False) & (frame["name"] != "")]
    if not repeated.empty:
        name = repeated.iloc[0]
        rows = [str(i + 2) for i in repeated.index[repeated == name]]  # file lines, header = 1
        raise DatasetError(
            f"artists.csv names {name!r} more than once (lines {', '.join(rows)}): "
            "each artist must appear once"
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
