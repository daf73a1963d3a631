"""Great Expectations suites: pass on valid data, fail with readable lines on bad data."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from artist_id.config import ValidateParams
from artist_id.expectations import (
    ARTISTS_COLUMNS,
    MANIFEST_COLUMNS,
    ValidationReport,
    validate_dataset,
)

# Importing Great Expectations alone takes seconds, and each validation about one.
pytestmark = pytest.mark.slow

PARAMS = ValidateParams(min_side=32, max_quarantined=0.05, paintings_tolerance=0.25)
REAL_ARTISTS = Path(__file__).resolve().parents[3] / "shared" / "real-sample" / "artists.csv"

# name, years, declared paintings; one en dash, as in the real file.
ARTISTS = [
    ("Ada Vermeulen", "1884 - 1920", 10),
    ("Bruno Castellane", "1853 – 1890", 8),
    ("Clara Ostrowska", "1901 - 1975", 12),
    ("Dmitri Volkonsky", "1866 - 1944", 20),
]


def make_artists() -> pd.DataFrame:
    """A valid artists.csv, string-typed as the stage reads it."""
    rows = [
        {
            "id": str(i),
            "name": name,
            "years": years,
            "genre": "Expressionism,Abstractionism" if i % 2 else "Impressionism",
            "nationality": "French",
            "bio": f"{name} was a fictional painter, born in {years[:4]}.",
            "wikipedia": "http://en.wikipedia.org/wiki/" + name.replace(" ", "_"),
            "paintings": str(paintings),
        }
        for i, (name, years, paintings) in enumerate(ARTISTS)
    ]
    return pd.DataFrame(rows, columns=list(ARTISTS_COLUMNS))


def make_manifest() -> pd.DataFrame:
    """A valid manifest: found == declared per artist, 1 of 50 files quarantined."""
    rows = []
    for name, _years, paintings in ARTISTS:
        folder = name.replace(" ", "_")
        for n in range(1, paintings + 1):
            image_id = f"{folder}_{n}"
            digest = hashlib.sha256(image_id.encode()).hexdigest()
            rows.append(
                {
                    "image_id": image_id,
                    "artist": name,
                    "source_path": f"images/images/{folder}/{folder}_{n}.jpg",
                    "path": f"images/{image_id}.jpg",
                    "width": str(40 + n),
                    "height": str(64 + 2 * n),
                    "source_width": str(400 + n),
                    "source_height": str(640 + n),
                    "source_mode": "L" if n == 2 else "RGB",
                    "source_format": "JPEG",
                    "bytes": str(10_000 + n),
                    "sha256": digest,
                    "phash": digest[:16],
                    "status": "ok",
                    "reason": "",
                }
            )
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    quarantine(frame, [5])
    return frame


def quarantine(frame: pd.DataFrame, rows: list[int], reason: str = "truncated") -> None:
    """Mark rows quarantined the way ingest does: sizes, path and hash empty, reason set."""
    for col in ("path", "width", "height", "source_width", "source_height", "phash"):
        frame.loc[rows, col] = ""
    frame.loc[rows, "source_mode"] = ""
    frame.loc[rows, "status"] = "quarantined"
    frame.loc[rows, "reason"] = reason


def run(
    artists: pd.DataFrame | None = None,
    manifest: pd.DataFrame | None = None,
    params: ValidateParams = PARAMS,
    docs_dir: Path | None = None,
) -> ValidationReport:
    return validate_dataset(
        make_artists() if artists is None else artists,
        make_manifest() if manifest is None else manifest,
        params,
        docs_dir=docs_dir,
    )


def critical_targets(report: ValidationReport) -> set[str]:
    return {f"{f.suite}.{f.column}" if f.column else f.suite for f in report.critical}


@pytest.fixture(scope="module")
def valid_report() -> ValidationReport:
    return run()


def test_valid_data_passes(valid_report: ValidationReport) -> None:
    assert valid_report.lines() == []
    assert valid_report.success
    assert valid_report.skipped == []
    # artists 10 + manifest 12 + manifest_ok 5 + found_vs_declared 1
    assert valid_report.evaluated == 28


def _drop_genre(a: pd.DataFrame, m: pd.DataFrame) -> None:
    del a["genre"]


def _duplicate_id(a: pd.DataFrame, m: pd.DataFrame) -> None:
    a.loc[2, "id"] = "1"


def _unknown_artist(a: pd.DataFrame, m: pd.DataFrame) -> None:
    m.loc[[3, 4], "artist"] = "Nobody Known"


def _small_images(a: pd.DataFrame, m: pd.DataFrame) -> None:
    # Rows after the quarantined row 5: examples must come from the right rows.
    m.loc[7, "width"] = "12"
    m.loc[30, "height"] = "31"


def _non_integer_paintings(a: pd.DataFrame, m: pd.DataFrame) -> None:
    a.loc[1, "paintings"] = "12.5"
    a.loc[3, "paintings"] = "many"


def _zero_paintings(a: pd.DataFrame, m: pd.DataFrame) -> None:
    a.loc[0, "paintings"] = "0"


def _too_many_quarantined(a: pd.DataFrame, m: pd.DataFrame) -> None:
    quarantine(m, list(range(10, 20)), reason="cannot identify image file")


def _bad_years(a: pd.DataFrame, m: pd.DataFrame) -> None:
    a.loc[0, "years"] = "1884-1920"
    a.loc[2, "years"] = "c. 1900"


def _bad_wikipedia(a: pd.DataFrame, m: pd.DataFrame) -> None:
    a.loc[1, "wikipedia"] = "https://example.com/wiki/Bruno_Castellane"


def _quarantined_without_reason(a: pd.DataFrame, m: pd.DataFrame) -> None:
    m.loc[5, "reason"] = ""


def _ok_without_phash(a: pd.DataFrame, m: pd.DataFrame) -> None:
    m.loc[8, "phash"] = ""


def _ok_without_sha256(a: pd.DataFrame, m: pd.DataFrame) -> None:
    m.loc[7, "sha256"] = ""


def _bad_status_and_sha(a: pd.DataFrame, m: pd.DataFrame) -> None:
    m.loc[0, "sha256"] = m.loc[0, "sha256"].upper()
    m.loc[1, "status"] = "broken"


BAD_CASES: list[tuple[str, Callable[[pd.DataFrame, pd.DataFrame], None], set[str], str]] = [
    (
        "missing_column",
        _drop_genre,
        {"artists"},
        "[critical] artists: missing column(s) genre (expected "
        "id,name,years,genre,nationality,bio,wikipedia,paintings)",
    ),
    (
        "duplicate_id",
        _duplicate_id,
        {"artists.id"},
        "[critical] artists.id: must be unique (2 of 4 artists) — e.g. '1'",
    ),
    (
        "unknown_artist",
        _unknown_artist,
        {"manifest.artist"},
        "[critical] manifest.artist: must be an artist named in artists.csv (2 of 50 files)"
        " — e.g. 'Nobody Known'",
    ),
    (
        "too_small_images",
        _small_images,
        {"manifest_ok.width", "manifest_ok.height"},
        "[critical] manifest_ok.width: width must be an integer >= 32 px (1 of 49 ok files)"
        " — e.g. 'Ada_Vermeulen_8: width=12'",
    ),
    (
        "non_integer_paintings",
        _non_integer_paintings,
        {"artists.paintings"},
        "[critical] artists.paintings: values must be integers >= 1 (2 of 4 artists)"
        " — e.g. '12.5', 'many'",
    ),
    (
        "zero_paintings",
        _zero_paintings,
        {"artists.paintings"},
        "[critical] artists.paintings: values must be integers >= 1 (1 of 4 artists) — e.g. '0'",
    ),
    (
        "too_many_quarantined",
        _too_many_quarantined,
        {"manifest.status"},
        "[critical] manifest.status: at most 5% of files may be quarantined"
        " (11 of 50 files not ok, 22.0%) — e.g. 'Ada_Vermeulen_6 (truncated)',"
        " 'Bruno_Castellane_1 (cannot identify image file)',"
        " 'Bruno_Castellane_2 (cannot identify image file)',"
        " 'Bruno_Castellane_3 (cannot identify image file)',"
        " 'Bruno_Castellane_4 (cannot identify image file)'",
    ),
    (
        "bad_years",
        _bad_years,
        {"artists.years"},
        "[critical] artists.years: must look like 'YYYY - YYYY' (hyphen or en dash)"
        " (2 of 4 artists) — e.g. '1884-1920', 'c. 1900'",
    ),
    (
        "bad_wikipedia",
        _bad_wikipedia,
        {"artists.wikipedia"},
        "[critical] artists.wikipedia: must be a URL like http://en.wikipedia.org/wiki/Name"
        " (1 of 4 artists) — e.g. 'https://example.com/wiki/Bruno_Castellane'",
    ),
    (
        "quarantined_without_reason",
        _quarantined_without_reason,
        {"manifest.reason"},
        "[critical] manifest.reason: quarantined files must give a reason (1 of 1 files)"
        " — e.g. 'Ada_Vermeulen_6: reason empty'",
    ),
    (
        "ok_without_phash",
        _ok_without_phash,
        {"manifest_ok.phash"},
        "[critical] manifest_ok.phash: must not be empty for ok files (1 of 49 ok files)"
        " — e.g. 'Ada_Vermeulen_9: phash empty'",
    ),
    (
        "ok_without_sha256",
        _ok_without_sha256,
        {"manifest_ok.sha256"},
        "[critical] manifest_ok.sha256: must not be empty for ok files (1 of 49 ok files)"
        " — e.g. 'Ada_Vermeulen_8: sha256 empty'",
    ),
    (
        "bad_status_and_sha",
        _bad_status_and_sha,
        # "broken" is not ok either, so 2 of 50 files are not ok: still within 5%.
        {"manifest.sha256", "manifest.status"},
        "[critical] manifest.status: must be 'ok' or 'quarantined' (1 of 50 files) — e.g. 'broken'",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "targets", "line"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_data_fails_with_readable_line(
    mutate: Callable[[pd.DataFrame, pd.DataFrame], None], targets: set[str], line: str
) -> None:
    artists, manifest = make_artists(), make_manifest()
    mutate(artists, manifest)
    report = run(artists, manifest)
    assert not report.success
    assert critical_targets(report) == targets, report.lines()
    assert line in report.lines(), report.lines()
    assert all("\n" not in text for text in report.lines())


def test_missing_column_skips_dependent_expectations_cleanly() -> None:
    artists = make_artists().drop(columns=["paintings"])
    manifest = make_manifest().drop(columns=["width", "status"])
    report = run(artists, manifest)
    assert not report.success
    assert critical_targets(report) == {"artists", "manifest"}
    assert "[critical] manifest: missing column(s) width, status (expected " in "\n".join(
        report.lines()
    )
    assert "artists.paintings.positive_int (missing artists.paintings)" in report.skipped
    assert "found_vs_declared.ratio (missing artists.paintings)" in report.skipped
    assert "manifest.status.quarantined_share (missing manifest.status)" in report.skipped
    assert "manifest_ok.width.min_side (missing manifest.status, manifest.width)" in report.skipped
    # Checks that do not need the missing columns still run.
    assert report.evaluated > 10


def test_empty_manifest_fails() -> None:
    report = run(manifest=make_manifest().iloc[0:0])
    assert not report.success
    assert critical_targets(report) == {"manifest"}
    assert "[critical] manifest: must have at least one row (0 rows)" in report.lines()


def test_found_vs_declared_mismatch_is_only_a_warning() -> None:
    artists, manifest = make_artists(), make_manifest()
    artists.loc[0, "paintings"] = "20"  # Ada: 10 files found of 20 declared
    manifest = manifest[manifest["artist"] != "Bruno Castellane"].reset_index(drop=True)
    report = run(artists, manifest)
    assert report.success
    assert report.critical == []
    assert report.lines() == [
        "[warning] found_vs_declared.paintings: files found per artist must be within ±25% of"
        " the declared paintings (2 of 4 artists) — e.g. 'Ada Vermeulen: found 10 of 20"
        " declared', 'Bruno Castellane: found 0 of 8 declared'"
    ]
    assert report.to_json()["warnings"] == 1


def test_tolerance_comes_from_params() -> None:
    artists = make_artists()
    artists.loc[3, "paintings"] = "27"  # Dmitri: 20 found of 27 declared, ratio 0.74
    (warning,) = run(artists).warnings
    assert warning.examples == ["Dmitri Volkonsky: found 20 of 27 declared"]
    loose = ValidateParams(min_side=32, max_quarantined=0.05, paintings_tolerance=0.26)
    assert run(artists, params=loose).warnings == []


def test_data_docs_are_written_into_docs_dir_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    docs = tmp_path / "reports" / "validate" / "docs"
    artists = make_artists()
    _bad_years(artists, make_manifest())
    report = run(artists, docs_dir=docs)
    assert not report.success
    index = docs / "index.html"
    assert index.is_file()
    html = index.read_text(encoding="utf-8")
    for suite in ("artists", "manifest", "manifest_ok", "found_vs_declared"):
        assert suite in html
    assert list(cwd.iterdir()) == []  # no gx/ folder or anything else beside the docs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "reports"]


# What a page loads: scripts, stylesheets, images, and url(...) inside CSS.
LOADED = re.compile(
    r"""<(?:script|img)\b[^>]*\bsrc="([^"]+)"|<link\b[^>]*\bhref="([^"]+)"|url\('?([^')]+)'?\)"""
)


def test_data_docs_load_every_script_style_and_image_from_the_site(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    artists = make_artists()
    _bad_years(artists, make_manifest())
    run(artists, docs_dir=docs)
    pages = [p for p in docs.rglob("*") if p.suffix in (".html", ".css")]
    pages = [p for p in pages if "vendor" not in p.relative_to(docs).parts]
    assert len(pages) >= 10  # index, 4 suites, 4 validation results, GX's stylesheets
    seen = set()
    for page in pages:
        for groups in LOADED.findall(page.read_text(encoding="utf-8")):
            ref = next(g for g in groups if g)
            if ref.startswith(("data:", "#")) or ref.endswith("favicon.ico"):
                continue  # GX's own favicon link is one level short on validation pages
            assert not re.match(r"(https?:)?//", ref), f"{page.name} loads {ref}"
            target = (page.parent / ref.split("?")[0].split("#")[0]).resolve()
            assert target.is_file(), f"{page.name}: {ref} is not a file of the site"
            seen.add(target.relative_to(docs.resolve()).as_posix())
    assert {
        "static/vendor/jquery-3.7.1/jquery.min.js",
        "static/vendor/bootstrap-table-1.19.1/bootstrap-table.min.js",
        "static/vendor/bootstrap-4.3.1/css/bootstrap.min.css",
        "static/images/logo-long.png",
    } <= seen
    assert (docs / "static/vendor/THIRD_PARTY_LICENSES.txt").is_file()
    # links a reader follows are left alone
    assert 'href="https://greatexpectations.io"' in (docs / "index.html").read_text("utf-8")


def test_to_json_is_deterministic(tmp_path: Path) -> None:
    artists, manifest = make_artists(), make_manifest()
    _non_integer_paintings(artists, manifest)
    _small_images(artists, manifest)
    manifest = manifest[manifest["artist"] != "Clara Ostrowska"].reset_index(drop=True)
    first = json.dumps(run(artists, manifest).to_json(), sort_keys=True, ensure_ascii=False)
    second = json.dumps(
        run(artists, manifest, docs_dir=tmp_path / "docs").to_json(),
        sort_keys=True,
        ensure_ascii=False,
    )
    assert first == second
    summary = json.loads(first)
    assert summary["success"] is False
    assert summary["critical"] == 3 and summary["warnings"] == 1
    lines = [f["line"] for f in summary["failures"]]
    assert lines[0].startswith("[critical] artists.paintings")  # critical first, then sorted
    assert lines[-1].startswith("[warning] found_vs_declared")
    assert str(tmp_path) not in first


@pytest.mark.skipif(not REAL_ARTISTS.is_file(), reason=f"real sample absent: {REAL_ARTISTS}")
def test_real_artists_csv_passes() -> None:
    artists = pd.read_csv(REAL_ARTISTS, dtype=str, keep_default_na=False)
    assert list(artists.columns) == list(ARTISTS_COLUMNS)
    assert artists["years"].str.contains("–").any()  # the en dash rows are really there
    name = artists.loc[0, "name"]
    manifest = make_manifest()
    manifest["artist"] = name
    report = run(artists, manifest)
    assert report.critical == [], report.lines()
    assert report.success
    # Only one of 50 artists has files, so the per-artist ratio warns.
    assert [f.suite for f in report.warnings] == ["found_vs_declared"]


def test_a_quarantined_file_ingest_never_read_needs_no_hash() -> None:
    """Symlinks, special files and files over the byte cap are refused unread: no sha256."""
    manifest = make_manifest()
    manifest.loc[5, ["sha256", "bytes"]] = ["", "0"]
    manifest.loc[5, "reason"] = "symlink"
    report = run(manifest=manifest)
    assert report.success, report.lines()
