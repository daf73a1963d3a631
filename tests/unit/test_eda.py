"""The eda profile on a tiny synthetic dataset built in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from PIL import Image

from artist_id import eda
from artist_id.stage import read_json

EXPECTED_FILES = {
    "contact_sheet.png",
    "genre.png",
    "image_sizes.png",
    "nationality.png",
    "paintings_per_artist.json",
    "paintings_per_artist.png",
    "period.png",
    "summary.json",
}
MIN_PAINTINGS = 3
THUMBNAILS = 4

ARTISTS = pd.DataFrame(
    [
        # id, name, years, genre, nationality, paintings
        ("0", "Ada Brush", "1884 - 1920", "Expressionism,Abstractionism", "French,British", "5"),
        ("1", "Bea Stroke", "1853 – 1890", "Expressionism", "French", "4"),  # en dash
        ("2", "Cy Palette", "1450 - 1516", "Baroque", "Dutch", "3"),
        ("3", "Dee Canvas", "unknown", "", "Dutch", "2"),  # no images, no years
    ],
    columns=["id", "name", "years", "genre", "nationality", "paintings"],
).assign(bio="", wikipedia="")

# artist -> (ok images, quarantined files); Ada is the only one above MIN_PAINTINGS
# (Bea has exactly 3 usable: "more than" excludes her).
IMAGES = {"Ada Brush": (5, 0), "Bea Stroke": (3, 1), "Cy Palette": (2, 0)}


def _write_dataset(root: Path) -> pd.DataFrame:
    """Tiny JPEGs under root/data/raw/images and the manifest that describes them."""
    rows: list[dict[str, Any]] = []
    colours = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 200, 40), (90, 90, 90)]
    for a, (artist, (ok, bad)) in enumerate(IMAGES.items()):
        slug = artist.replace(" ", "_")
        for i in range(ok + bad):
            image_id = f"{slug}_{i + 1}"
            row: dict[str, Any] = {
                "image_id": image_id,
                "artist": artist,
                "source_path": f"images/{slug}/{image_id}.jpg",
                "path": "",
                "width": "",
                "height": "",
                "source_width": "",
                "source_height": "",
                "source_mode": "",
                "source_format": "",
                "bytes": "10",
                "sha256": "",
                "phash": "",
                "status": "quarantined",
                "reason": "truncated",
            }
            if i < ok:
                w, h = (48, 32) if (a + i) % 2 else (30, 45)
                mode = "L" if (artist, i) == ("Ada Brush", 0) else "RGB"
                rel = Path("data/raw/images") / slug / f"{image_id}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (w, h), colours[(a + i) % len(colours)]).save(root / rel)
                row.update(
                    path=rel.as_posix(),
                    width=str(w),
                    height=str(h),
                    source_width=str(w * 10),
                    source_height=str(h * 10),
                    source_mode=mode,
                    source_format="JPEG",
                    status="ok",
                    reason="",
                )
            rows.append(row)
    return pd.DataFrame(rows).astype(str)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("eda")
    return root, _write_dataset(root)


@pytest.fixture(scope="module")
def report(dataset: tuple[Path, pd.DataFrame]) -> tuple[Path, dict[str, Any]]:
    root, manifest = dataset
    out = root / "reports" / "eda"
    summary = eda.profile(ARTISTS, manifest, MIN_PAINTINGS, THUMBNAILS, out, image_root=root)
    return out, summary


def test_writes_every_file(report: tuple[Path, dict[str, Any]]) -> None:
    out, _ = report
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES


def test_pngs_open_with_sensible_sizes(report: tuple[Path, dict[str, Any]]) -> None:
    out, _ = report
    for png in sorted(out.glob("*.png")):
        with Image.open(png) as img:
            img.verify()
        with Image.open(png) as img:
            assert img.format == "PNG"
            assert 300 <= img.width <= 3000 and 150 <= img.height <= 4000, (png.name, img.size)
    with Image.open(out / "contact_sheet.png") as sheet:
        # one row per artist with images (3), each row a strip of THUMBNAILS cells
        assert sheet.height > 3 * 100


def test_summary_counts(report: tuple[Path, dict[str, Any]]) -> None:
    out, summary = report
    assert read_json(out / "summary.json") == summary
    assert summary["artists"] == 4
    assert summary["artists_with_images"] == 3
    assert summary["artists_kept"] == 1
    assert summary["paintings_declared"] == 14
    assert summary["images"] == {"files": 11, "ok": 10, "quarantined": 1}
    assert summary["per_artist"]["Bea Stroke"] == {"declared": 4, "found": 3, "kept": False}
    assert summary["per_artist"]["Ada Brush"]["kept"] is True
    # multi-valued cells are split; an artist counts once per value
    assert summary["genre"] == {"Expressionism": 2, "Abstractionism": 1, "Baroque": 1}
    assert summary["nationality"] == {"Dutch": 2, "French": 2, "British": 1}
    # lifetime midpoints 1902, 1871 (en-dash years), 1483; "unknown" is reported, not guessed
    assert summary["period"] == {"1450-1499": 1, "1850-1899": 1, "1900-1949": 1}
    assert summary["years_unparsed"] == ["Dee Canvas"]
    assert summary["greyscale"] == {"images": 1, "share": 0.1}
    assert summary["sizes"]["width"] == {"min": 300, "median": 390.0, "max": 480}
    assert summary["sizes"]["height"] == {"min": 320, "median": 385.0, "max": 450}
    assert summary["source_formats"] == {"JPEG": 10}


def test_plot_data_matches_declared_and_found(report: tuple[Path, dict[str, Any]]) -> None:
    out, _ = report
    assert read_json(out / "paintings_per_artist.json") == [
        {"artist": "Ada Brush", "declared": 5, "found": 5},
        {"artist": "Bea Stroke", "declared": 4, "found": 3},
        {"artist": "Cy Palette", "declared": 3, "found": 2},
        {"artist": "Dee Canvas", "declared": 2, "found": 0},
    ]


def test_missing_columns_and_images_do_not_crash(tmp_path: Path) -> None:
    artists = pd.DataFrame({"name": ["Ada Brush", "Bea Stroke"], "paintings": ["x", "2"]})
    manifest = pd.DataFrame(
        {
            "artist": ["Ada Brush", "Bea Stroke"],
            "path": ["gone.jpg", ""],
            "status": ["ok", "quarantined"],
            "image_id": ["a", "b"],
        }
    )
    summary = eda.profile(artists, manifest, 0, 2, tmp_path / "out", image_root=tmp_path)
    assert {p.name for p in (tmp_path / "out").iterdir()} == EXPECTED_FILES
    assert summary["per_artist"]["Ada Brush"] == {"declared": None, "found": 1, "kept": True}
    assert summary["genre"] == {}
    assert summary["sizes"]["width"] == {"min": None, "median": None, "max": None}
    assert summary["years_unparsed"] == ["Ada Brush", "Bea Stroke"]


def test_contact_sheet_order_and_pick() -> None:
    rows = eda.artist_table(ARTISTS, _manifest_counts({"A": 2, "B": 9, "C": 5}), 4)
    assert eda.contact_artists(rows) == ["B", "C", "A"]  # kept (B, C) first, by count
    assert eda.contact_artists(rows, limit=2) == ["B", "C"]
    assert eda.pick_evenly(list("abcdefghi"), 3) == ["a", "e", "i"]
    assert eda.pick_evenly(list("ab"), 5) == ["a", "b"]
    assert eda.pick_evenly(list("ab"), 0) == []


def _manifest_counts(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"artist": a, "status": "ok", "image_id": f"{a}{i}"}
            for a, n in counts.items()
            for i in range(n)
        ]
    )


def test_stage_rerun_is_byte_identical(
    dataset: tuple[Path, pd.DataFrame],
    report: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stages/eda.py from a repository root gives the same bytes as the earlier profile run."""
    from stages import eda as eda_stage

    source, manifest = dataset
    first, _ = report
    repo = Path(__file__).resolve().parents[2]
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["select"]["min_paintings"] = MIN_PAINTINGS
    params["eda"]["thumbnails"] = THUMBNAILS
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    shutil.copytree(source / "data", tmp_path / "data")
    ARTISTS.to_csv(tmp_path / "data/raw/artists.csv", index=False)
    manifest.to_csv(tmp_path / "data/raw/manifest.csv", index=False)
    out = tmp_path / "reports/eda"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("from an older run")  # the folder is rewritten whole
    monkeypatch.chdir(tmp_path)

    eda_stage.main()

    assert sorted(p.name for p in out.iterdir()) == sorted(EXPECTED_FILES)
    for name in sorted(EXPECTED_FILES):
        assert (out / name).read_bytes() == (first / name).read_bytes(), name
